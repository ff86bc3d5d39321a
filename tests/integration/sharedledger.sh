#!/bin/sh
# The ledger the hosts of a binding share through its ledger topic
# (ledger = kafka), with two kpoold "hosts" of their own state_dirs:
#
# 1. A host joining with an empty state_dir reads the ledger before it
#    handles anything: ids the other host finished before it joined are
#    skipped when their copies come to it.
# 2. A job that kills workers on host 1 and then on host 2 is dead-lettered
#    after max_crashes deaths in all: host 2 learns host 1's count.
# On the real tier and on the embedded broker (which keeps every record: it
# has no compaction).
. "$(dirname "$0")/lib.sh"
require_tools
# The poison pill's SIGSEGV is the test's, not a finding: under ASan the
# worker dies of it as it would without (as in crash.sh).
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0"
export ASAN_OPTIONS
N=200

plugins "$T/plugins"
start_broker "$T/broker" || { not_ok "the broker starts"; exit 1; }
BOOTSTRAP=$B
for h in 1 2; do
	pool_conf "$T/host$h.conf" "state_dir = $T/host$h" "metrics_listen = 127.0.0.1:0" <<EOF2
[worker:x]
topic = shared$R
handler = probe
record = $T/record-$h
processes = 2
group = shared$R

[worker:pill]
topic = pill$R
handler = probe
record = $T/pill-$h
max_crashes = 3
group = pill$R
EOF2
done

# 1. Host 1 alone handles N jobs.
start_kpoold "$T/host1.conf" "$T/host1.log"
HOST1=$KPID
check "host 1 reads the ledger topic" wait_for 30 log_has "$T/host1.log" "ledger topic shared$R.ledger"
"$PYTHON3" -c "
for i in range($N): print('k%d|{\"eventId\":\"s%d\"}' % (i, i))" >"$T/jobs"
"$top_builddir/tests/helpers/produce" "$B" "shared$R" - <"$T/jobs"
check "$N jobs sent" test $? -eq 0
check "host 1 handles them" wait_for 60 at_least $N lines_in "$T/record-1"

# Host 2 joins with an empty state_dir; the same ids come again, to either host.
start_kpoold "$T/host2.conf" "$T/host2.log"
HOST2=$KPID
assigned() { grep -o "worker=x#[01] assigned partitions=[0-9]*" "$1" | awk -F'[ =]' '{ last[$2] = $NF } END { for (w in last) s += last[w]; print s + 0 }'; }
both() { [ "$(assigned "$T/host1.log")" -gt 0 ] && [ "$(assigned "$T/host2.log")" -gt 0 ]; }
check "host 2 joins: both hold partitions" wait_for 60 both
check "host 2 caught up on the ledger before handling" wait_for 30 log_has "$T/host2.log" "worker=x#0 ledger caught up"
diag "host 2: $(grep -o 'worker=x#[01] ledger caught up: partitions=[0-9]* waited_ms=[0-9]*' "$T/host2.log" | tr '\n' ' ')"
sed 's/^k/again/' "$T/jobs" | "$top_builddir/tests/helpers/produce" "$B" "shared$R" -
check "the $N ids sent again, with other keys" test $? -eq 0
U1=$(metrics_url "$T/host1")
U2=$(metrics_url "$T/host2")
dups() {
	a=$(metric "$U1" kpool_jobs_total 'worker="x",result="duplicate"')
	b=$(metric "$U2" kpool_jobs_total 'worker="x",result="duplicate"')
	echo $((${a:-0} + ${b:-0}))
}
# Done once both hosts counted at least N duplicates (copies redelivered
# after the rebalance count too) and their partitions have no lag left.
lag_left() { { http "$U1/metrics"; http "$U2/metrics"; } | awk '/^kpool_consumer_lag\{worker="x"/ { s += $2 } END { print s + 0 }'; }
settled() { at_least $N dups && [ "$(lag_left)" = 0 ]; }
check "all $N copies counted as duplicates" wait_for 60 settled
d2=$(metric "$U2" kpool_jobs_total 'worker="x",result="duplicate"')
diag "duplicates: host 1 $(metric "$U1" kpool_jobs_total 'worker="x",result="duplicate"'), host 2 $d2"
check "host 2 took some of the copies ($d2)" test "${d2:-0}" -gt 0
check "host 2 handled none of them" test "$(cat "$T/record-2" 2>/dev/null | grep -c '^s')" = 0
check "host 1 handled each once" test "$(lines_in "$T/record-1")" = $N
check "/metrics counts the ledger records host 2 read" \
	at_least $N metric "$U2" kpool_ledger_topic_records_total 'worker="x",direction="imported"'
lags() { http "$U2/metrics" | grep -c '^kpool_ledger_topic_lag{worker="x",host="[^"]*",store="[0-9a-f]*"} [0-9]'; }
check "/metrics on host 2 shows the ledger lag of both hosts" wait_for 15 at_least 2 lags

# 2. A poison pill: two deaths on host 1, then host 1 stops; the third on host 2.
stop_kpoold "$HOST2"
echo 'p|{"eventId":"pill","do":"crash"}' | "$top_builddir/tests/helpers/produce" "$B" "pill$R" -
check "host 1 counts two deaths" wait_for 60 log_has "$T/host1.log" "event=pill killed 2 workers"
stop_kpoold "$HOST1"
check "host 1 stops with status 0" test $? -eq 0
start_kpoold "$T/host2.conf" "$T/host2b.log"
HOST2=$KPID
check "host 2 learns host 1's count" wait_for 60 log_has "$T/host2b.log" "event=pill killed 2 workers (another host's count)"
check "host 2 counts the third death" wait_for 60 log_has "$T/host2b.log" "event=pill killed 3 workers"
pill_dlq() { "$KPOOL" -c "$T/host2.conf" dlq list "pill$R.dlq" --json 2>/dev/null | grep -q '"crash"'; }
check "then the job is dead-lettered with class crash" wait_for 60 pill_dlq
check "the handler ran once on host 2 ($(cat "$T/pill-2" 2>/dev/null | grep -c '^pill') calls)" \
	test "$(grep -c '^pill' "$T/pill-2")" = 1
check "and twice on host 1" test "$(grep -c '^pill' "$T/pill-1")" = 2
stop_kpoold "$HOST2"
check "host 2 stops with status 0" test $? -eq 0
