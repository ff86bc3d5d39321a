#!/bin/sh
# Jobs too large for the dead-letter topic: the copy goes without the job's
# value (and says where the job is) instead of being tried again for ever,
# and the jobs behind it on the partition are handled.  The default
# max_job_bytes leaves room for a whole copy.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
pool_conf "$T/big.conf" <<EOF2
[worker:w]
topic = big$R
handler = probe
record = $T/record
retry_backoff = 200ms
max_job_bytes = 2MiB

[worker:d]
topic = dflt$R
handler = probe
record = $T/record-d
retry_backoff = 200ms
EOF2
start_kpoold "$T/big.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
check "workers joined their groups" wait_for 30 sh -c "[ \$(grep -c 'assigned partitions=' '$T/kpoold.log') -ge 2 ]"

# produce TOPIC FILE EVENT-ID: FILE as one record (up to 2 MB), all under one
# key, so that a job waits behind the one before it on its partition.
produce() {
	"$KCAT" -P -b "$B" -t "$1" -k same -X message.max.bytes=2000000 -H "event-id=$3" "$2" \
		2>>"$T/kcat.log"
}
# 1,000,100 bytes that are not JSON: bad input, and its copy with kpool's
# headers is over the 1,000,000 bytes a producer and a default topic take.
"$PYTHON3" -c 'import sys; sys.stdout.write("x" * 1000100)' >"$T/big.txt"
produce "big$R" "$T/big.txt" big-bad
printf '{"eventId":"after"}' >"$T/after.json"
produce "big$R" "$T/after.json" after

check "the job behind the big one is handled" wait_for 60 grep -q '^after 1 done' "$T/record"
# dump TOPIC: the dead-letter records of TOPIC, one line each: event id, class,
# kpool.omitted, kpool.original.value-bytes, value length, whether kpool.error
# names the job's topic/partition/offset.
dump() {
	dlq_json "$B" "$1" | "$PYTHON3" -c '
import json, sys
for line in sys.stdin:
    if not line.strip():
        continue
    r = json.loads(line)
    f = r.get("headers") or []
    h = dict(zip(f[0::2], f[1::2]))
    where = "%s/%s/%s" % (h.get("kpool.original.topic"), h.get("kpool.original.partition"),
                          h.get("kpool.original.offset"))
    print(h.get("kpool.event-id"), h.get("kpool.error.class"), h.get("kpool.omitted", "-"),
          h.get("kpool.original.value-bytes", "-"), len(r.get("payload") or ""),
          "points" if where in h.get("kpool.error", "") else "no-pointer")
'
}
check "the big job is dead-lettered" \
	wait_for 30 sh -c "'$KCAT' -C -b '$B' -t 'big$R.dlq' -e -q -f '%o\n' 2>/dev/null | grep -q ."
dump "big$R.dlq" >"$T/big.dlq"
diag "big.dlq: $(cat "$T/big.dlq")"
check "its copy is without the value, says so and how large it was" \
	grep -qx 'big-bad bad-input value 1000100 0 points' "$T/big.dlq"
check "one copy only (not sent again and again)" test "$(wc -l <"$T/big.dlq")" -eq 1
check "the log says the copy went without its value" \
	log_has "$T/kpoold.log" "too large for big$R.dlq"
check "the big job is not retried" test "$(grep -c 'dead-letter failed' "$T/kpoold.log")" -eq 0
# Replaying that copy would send an empty job: refused, saying where the job is.
"$KPOOL" -c "$T/big.conf" dlq replay "big$R.dlq" >"$T/replay.out" 2>"$T/replay.err"
check "kpool dlq replay refuses the copy without its value (exit 1)" test $? -eq 1
check "  and says where the job is" grep -q "without the job's value.*the job is at big$R/[0-9]*/0" "$T/replay.err"
check "  nothing was sent" test "$("$KCAT" -C -b "$B" -t "big$R" -e -q -f '%o\n' 2>/dev/null | wc -l)" -eq 2

# The default max_job_bytes (960KiB): one byte over is bad input, and its
# whole copy fits.
"$PYTHON3" -c 'import sys; sys.stdout.write("y" * (960 * 1024 + 1))' >"$T/over.txt"
produce "dflt$R" "$T/over.txt" over-default
produce "dflt$R" "$T/after.json" after-d
check "the job behind one over the default limit is handled" wait_for 60 grep -q '^after-d 1 done' "$T/record-d"
wait_for 30 sh -c "'$KCAT' -C -b '$B' -t 'dflt$R.dlq' -e -q -f '%o\n' 2>/dev/null | grep -q ."
dump "dflt$R.dlq" >"$T/dflt.dlq"
diag "dflt.dlq: $(cat "$T/dflt.dlq")"
check "a job over the default max_job_bytes is dead-lettered whole" \
	grep -qx "over-default bad-input - - $((960 * 1024 + 1)) no-pointer" "$T/dflt.dlq"
