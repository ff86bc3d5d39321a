#!/bin/sh
# A broker that takes no dead-letter copy (tests/integration/tcpfwd.py holds
# every Produce request of kpoold's): the partition goes on behind the failed
# job, the job's offset is not committed past, and after a stop the job is
# handled again and dead-lettered once the broker takes copies.  Nothing is
# lost, and no later job of the partition is handled twice.
. "$(dirname "$0")/lib.sh"
require_tools
hold_requests 0 # Produce

plugins "$T/plugins"
pool_conf "$T/direct.conf" <<EOF2
[worker:d]
topic = dl$R
handler = probe
record = $T/record
max_attempts = 1
; a shared ledger needs Produce too: with every Produce held, nothing would be
; handled (the ledger topic's catch-up markers never land)
ledger = local
EOF2
sed "s|^bootstrap.servers = .*|bootstrap.servers = $PROXY|" "$T/direct.conf" >"$T/proxied.conf"
start_kpoold "$T/proxied.conf" "$T/pool.log"
check "the worker joined its group" wait_for 60 log_has "$T/pool.log" "assigned partitions="

# One partition (one key): a job that fails, then five that are done.
printf '%s\n' '{"eventId":"f1","do":"fail"}' '{"eventId":"g1"}' '{"eventId":"g2"}' '{"eventId":"g3"}' \
	'{"eventId":"g4"}' '{"eventId":"g5"}' | "$KPOOL" -c "$T/direct.conf" send "dl$R" --key k 2>>"$T/send.err"
check "the failed job's copy is sent, and held" wait_for 30 test -s "$T/held"
check "the jobs behind it are handled meanwhile" wait_for 30 grep -q "^g5 1 done" "$T/record"
dlq_count() { "$KCAT" -C -b "$REAL" -t "dl$R.dlq" -e -q -f '%h\n' 2>/dev/null | grep -c "kpool.event-id=f1"; }
dlq_has() { [ "$(dlq_count)" -ge 1 ]; }
check "and no copy reached the dead-letter topic" test "$(dlq_count)" -eq 0

kill -TERM "$KPID"
check "kpoold stops on SIGTERM, with the copy still held" wait_for 30 sh -c "! kill -0 $KPID 2>/dev/null"
check "saying the job is left for redelivery" log_has "$T/pool.log" "event=f1: dead-letter not acknowledged"

# Again, straight to the broker: the failed job comes back, the others do not.
start_kpoold "$T/direct.conf" "$T/pool2.log"
check "the failed job is handled again and dead-lettered" wait_for 60 dlq_has
check "once" test "$(dlq_count)" -eq 1
check "no job behind it was handled twice" test "$(grep -c '^g' "$T/record")" -eq 5
grep -c "^f1 " "$T/record" | sed 's/^/# the failed job was called this many times: /'
