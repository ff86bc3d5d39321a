#!/bin/sh
# A group coordinator that never answers a commit (tests/integration/tcpfwd.py
# holds every OffsetCommit): a stopping worker waits for it 5 s at most,
# then leaves without it, and kpoold stops with status 0 well within
# shutdown_timeout instead of having to kill it.  What was never committed
# comes again to the next kpoold, and the ledger finds it: nothing is handled
# twice.
. "$(dirname "$0")/lib.sh"
require_tools
hold_requests 8 # OffsetCommit

plugins "$T/plugins"
BOOTSTRAP=$PROXY pool_conf "$T/pool.conf" 'shutdown_timeout = 30s' <<EOF2
[worker:c]
topic = ch$R
handler = probe
record = $T/record
EOF2
start_kpoold "$T/pool.conf" "$T/pool1.log"
printf '{"eventId":"c%d"}\n' $(seq 1 20) | "$KPOOL" -c "$T/pool.conf" send "ch$R" 2>/dev/null
check "20 jobs handled" wait_for 60 at_least 20 lines_in "$T/record"
check "the worker commits, and no answer comes" wait_for 30 test -s "$T/held"

kill -TERM "$KPID"
t0=$(date +%s)
check "kpoold stops within 15 s of SIGTERM (shutdown_timeout is 30 s)" \
	wait_for 15 sh -c "! kill -0 $KPID 2>/dev/null"
diag "stopped in $(($(date +%s) - t0)) s"
wait "$KPID"
check "with status 0: no worker had to be killed" test $? -eq 0
check "the worker says it left without the group's answer" \
	log_has "$T/pool1.log" "worker=c#0 kafka: the group did not see this worker off within 5000 ms"
check "and then stopped" log_has "$T/pool1.log" "worker=c#0 stopped"

# The same binding on the broker itself: the jobs come again, none committed.
pool_conf "$T/direct.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:c]
topic = ch$R
handler = probe
record = $T/record
EOF2
start_kpoold "$T/direct.conf" "$T/pool2.log"
U=$(metrics_url "$T/state")
dups() { metric "$U" kpool_jobs_total 'worker="c",result="duplicate"'; }
check "the 20 jobs come again, and the ledger finds each" wait_for 60 at_least 20 dups
check "none handled twice" test "$(lines_in "$T/record")" -eq 20
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
