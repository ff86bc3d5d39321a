#!/bin/sh
# A broker that never answers CreateTopics (tests/integration/tcpfwd.py holds
# those requests on every connection): nothing in a worker's loop waits for
# it.  Jobs on the binding's topics are handled at once while the dead-letter
# topics cannot be made, the failure is logged once, not at every try, and
# kpoold stops on SIGTERM at once.  A loop that waited for the request (5 s,
# again every 2 s) would hold jobs for seconds: the bound below is half that.
. "$(dirname "$0")/lib.sh"
require_tools
hold_requests 19 # CreateTopics

plugins "$T/plugins"
BOOTSTRAP=$PROXY pool_conf "$T/pool.conf" <<EOF2
[worker:s]
topic = sa$R, sb$R
handler = probe
record = $T/record
EOF2
# The ledger topic the binding shares is there, as an operator made it:
# without it nothing would be handled (ledgeracl.sh).
make_topic 1 "kpool-s$R.ledger"
start_kpoold "$T/pool.conf" "$T/pool.log"
check "the worker asks to create the dead-letter topics, and no answer comes" wait_for 60 test -s "$T/held"
check "the worker joined its group meanwhile" wait_for 60 log_has "$T/pool.log" "assigned partitions="

# One job at a time for 15 s, alternating topics: sent, then waited for.
rounds=0 worst=0 lost=""
t_end=$(($(date +%s) + 15))
while [ "$(date +%s)" -lt $t_end ]; do
	rounds=$((rounds + 1))
	t=sa$R
	[ $((rounds % 2)) -eq 0 ] && t=sb$R
	t0=$(date +%s%N)
	printf '{"eventId":"r-%d"}\n' $rounds | "$KPOOL" -c "$T/pool.conf" send "$t" 2>>"$T/send.err"
	wait_for 30 grep -q "^r-$rounds " "$T/record" || { lost="r-$rounds"; break; }
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ $ms -gt $worst ] && worst=$ms
done
diag "$rounds jobs, the slowest handled $worst ms after it was sent; $(lines_in "$T/held") CreateTopics held"
check "every job was handled" test -z "$lost"
check "each within 2.5 s of being sent (a loop waiting on CreateTopics holds it 5 s)" test "$worst" -le 2500
check "CreateTopics was asked again meanwhile, and held again" at_least 2 lines_in "$T/held"
n=$(grep -c "creating sa$R.dlq" "$T/pool.log")
check "the failure is logged once, not at every try ($n)" test "$n" -eq 1
grep "creating sa$R.dlq" "$T/pool.log" | sed 's/^/# /'

kill -TERM "$KPID"
t0=$(date +%s)
check "kpoold stops on SIGTERM" wait_for 15 sh -c "! kill -0 $KPID 2>/dev/null"
diag "stopped in $(($(date +%s) - t0)) s"
wait "$KPID"
check "with status 0" test $? -eq 0
