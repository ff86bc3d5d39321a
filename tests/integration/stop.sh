#!/bin/sh
# Graceful stop mid-stream: SIGTERM while jobs flow, start again, and every
# job is handled exactly once.  The broker runs in its own kpoold (with no
# workers) so that it outlives the worker pool.
. "$(dirname "$0")/lib.sh"
require_tools
N=3000

plugins "$T/plugins"
start_broker "$T/broker" || { not_ok "embedded broker started"; exit 1; }
BOOTSTRAP=$B pool_conf "$T/pool.conf" 'shutdown_timeout = 20s' <<EOF2
[worker:s]
topic = stream$R
handler = probe
record = $T/record
processes = 2
EOF2
"$PYTHON3" -c "
for i in range($N): print('{\"eventId\":\"j%d\",\"do\":\"sleep\",\"ms\":1}' % i)" |
	"$KPOOL" -c "$T/pool.conf" send "stream$R" 2>/dev/null
check "$N jobs queued" test $? -eq 0

start_kpoold "$T/pool.conf" "$T/pool1.log"
check "jobs flow" wait_for 60 at_least 300 lines_in "$T/record"
stop_kpoold "$KPID"
check "SIGTERM mid-stream: kpoold exits 0" test $? -eq 0
first=$(lines_in "$T/record")
check "it stopped mid-stream ($first of $N handled)" test "$first" -lt $N
check "each worker finished, committed and left" test "$(grep -c 'worker=s#[01] stopped' "$T/pool1.log")" -eq 2

start_kpoold "$T/pool.conf" "$T/pool2.log"
check "after a restart every job is handled" wait_for 120 at_least $N lines_in "$T/record"
# Give a duplicate the chance to show up: wait until both workers committed all.
check "nothing left behind" wait_for 30 sh -c "[ \$(cut -d' ' -f1 '$T/record' | sort -u | wc -l) -eq $N ]"
stop_kpoold "$KPID"
dups=$(cut -d' ' -f1 "$T/record" | sort | uniq -d | wc -l)
check "no job handled twice ($dups repeated)" test "$dups" -eq 0

# A worker that does not finish in shutdown_timeout is killed, named, and kpoold exits 1.
sed 's/^shutdown_timeout = 20s/shutdown_timeout = 1s/; s/^processes = 2/processes = 1/' "$T/pool.conf" >"$T/slow.conf"
start_kpoold "$T/slow.conf" "$T/pool3.log"
check "process names: supervisor" wait_for 10 sh -c "pgrep '^supervisor$' >/dev/null"
check "process names: worker" wait_for 10 sh -c "pgrep '^worker s#0$' >/dev/null"
if [ -z "${KPOOLD_WRAPPER:-}" ]; then # a wrapper owns argv: no titles then
	check "process titles: supervisor" sh -c "pgrep -f '^kpoold: supervisor$' >/dev/null"
	check "process titles: worker" sh -c "pgrep -f '^kpoold: worker s#0$' >/dev/null"
	# The embedded broker of start_broker's kpoold; the real tier has none.
	[ -n "$REAL" ] || check "process titles: broker" sh -c "pgrep -f '^kpoold: broker$' >/dev/null"
fi
printf '{"eventId":"slow","do":"sleep","ms":8000,"announce":true}\n' | "$KPOOL" -c "$T/pool.conf" send "stream$R" 2>/dev/null
check "the slow job is in hand" wait_for 60 grep -q '^slow 1 start' "$T/record"
sleep_started=$(date +%s)
stop_kpoold "$KPID"
rc=$?
check "kpoold exits 1 when a worker had to be killed" test "$rc" -eq 1
check "it names the worker it killed" log_has "$T/pool3.log" "worker=s#0 pid="
check "and why" log_has "$T/pool3.log" "did not stop within shutdown_timeout; killing it"
check "it did not wait for the job" test $(($(date +%s) - sleep_started)) -lt 6

# A worker left alone, its supervisor killed with SIGKILL after the broker
# died: it stops (PR_SET_PDEATHSIG), cannot commit, and ends itself a little
# after shutdown_timeout rather than wait for the broker for ever.
if [ -z "$REAL" ]; then
	start_broker "$T/broker2"
	BKPID=$KPID
	BOOTSTRAP=$B pool_conf "$T/alone.conf" 'shutdown_timeout = 2s' <<EOF2
[worker:alone]
topic = alone
handler = probe
record = $T/alone.record
EOF2
	start_kpoold "$T/alone.conf" "$T/alone.log"
	APID=$KPID
	printf '{"eventId":"a1","do":"fail"}\n{"eventId":"a2","do":"retry"}\n' |
		"$KPOOL" -c "$T/alone.conf" send alone --key one 2>/dev/null
	check "a lone worker: its jobs are in hand" wait_for 60 grep -q '^a2 ' "$T/alone.record"
	# The worker, not the binding's ledger process (also a child).
	wpid=$(pgrep -P "$APID" -f 'kpoold: worker alone#0' | head -1)
	kill -KILL $(pgrep -P "$BKPID") "$BKPID" 2>/dev/null
	kill -KILL "$APID"
	check "  its broker and supervisor killed, it ends within shutdown_timeout + 2s" \
		wait_for 15 sh -c "! kill -0 $wpid 2>/dev/null"
fi
