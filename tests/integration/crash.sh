#!/bin/sh
# The crash guard: a job that kills its worker is retried by a restarted
# worker; after max_crashes deaths it is dead-lettered with class crash and
# the signal, and every other job is handled exactly once.
. "$(dirname "$0")/lib.sh"
# The probe's crash is a SIGSEGV on purpose: in a sanitizer build, let it kill
# the worker as it would anywhere else, instead of AddressSanitizer's handler.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0"
export ASAN_OPTIONS
require_tools

plugins "$T/plugins"
pool_conf "$T/crash.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:c]
topic = crashy$R
handler = probe
record = $T/record

[worker:x]
topic = quitty$R
handler = probe
record = $T/record-x
EOF2
start_kpoold "$T/crash.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
U=$(metrics_url "$T/state")
check "worker joined its group" wait_for 30 log_has "$T/kpoold.log" "assigned partitions="

# Forty good jobs, the crashing one among them, all on one partition (one key).
{
	i=1; while [ $i -le 20 ]; do printf '{"eventId":"ok-%d"}\n' $i; i=$((i + 1)); done
	printf '{"eventId":"boom","do":"crash"}\n'
	while [ $i -le 40 ]; do printf '{"eventId":"ok-%d"}\n' $i; i=$((i + 1)); done
} | "$KPOOL" -c "$T/crash.conf" send "crashy$R" --key same 2>/dev/null

check "the crashing job reaches the dead-letter topic" wait_for 90 sh -c \
	"'$KCAT' -C -b '$B' -t 'crashy$R.dlq' -e -q | grep -q boom"
dlq_json "$B" "crashy$R.dlq" | "$PYTHON3" "$top_srcdir/tests/integration/dlq_dump.py" >"$T/dlq.tsv"
field() { awk -F'\t' -v id="$1" -v f="$2" '$1 == id { print $f }' "$T/dlq.tsv"; }
check "class crash" test "$(field boom 2)" = crash
check "kpool.error names the signal" test "$(field boom 9)" = SIGSEGV
check "kpool.attempts counts the deaths" test "$(field boom 3)" = 3
check "the handler ran it max_crashes (3) times" test "$(grep -c '^boom ' "$T/record")" -eq 3
check "every good job handled" wait_for 30 sh -c "[ \$(grep -c '^ok-' '$T/record') -ge 40 ]"
check "no good job handled twice" test -z "$(grep '^ok-' "$T/record" | cut -d' ' -f1 | sort | uniq -d)"
check "the supervisor restarted the worker 3 times" \
	test "$(metric "$U" kpool_worker_restarts_total 'worker="c"')" = 3
check "the death was logged with the job in hand" \
	log_has "$T/kpoold.log" "killed by SIGSEGV with a job in hand: topic=crashy$R"
check "crashes table counted it" test "$("$SQLITE3" "$T/state/c.db" \
	"SELECT count, last_signal FROM crashes WHERE event_id = 'boom'")" = "3|SIGSEGV"

# A handler that exits (not killed by a signal) with the job in hand is as
# fatal: the guard counts it too, instead of starting the worker for ever.
printf '{"eventId":"quit","do":"exit"}\n{"eventId":"after-quit"}\n' |
	"$KPOOL" -c "$T/crash.conf" send "quitty$R" --key same 2>/dev/null
check "a job whose handler exits reaches the dead-letter topic" wait_for 90 sh -c \
	"'$KCAT' -C -b '$B' -t 'quitty$R.dlq' -e -q | grep -q quit"
dlq_json "$B" "quitty$R.dlq" | "$PYTHON3" "$top_srcdir/tests/integration/dlq_dump.py" >"$T/dlq.tsv"
check "  class crash, kpool.error exit, attempts 3" \
	test "$(field quit 2) $(field quit 9) $(field quit 3)" = "crash exit 3"
check "  the handler ran it 3 times" test "$(grep -c '^quit ' "$T/record-x")" -eq 3
check "  the job behind it is handled" wait_for 30 grep -q '^after-quit 1 done' "$T/record-x"
check "  the exit was logged with the job in hand" \
	log_has "$T/kpoold.log" "exited with status 3 with a job in hand: topic=quitty$R"
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
