#!/bin/sh
# Scale-out across hosts on real Kafka: two kpoold instances with state_dirs
# of their own (two "hosts") in one consumer group on a 6-partition topic,
# sharing the binding's ledger through its ledger topic.
#
# 1. Copies of one event id published 100 ms apart with different keys (so
#    to different partitions, often the other host's): handled once, but for
#    at most 1 pair of 300 (the ledger's propagation delay is tens of ms).
# 2. One host is killed with SIGKILL, supervisor and workers at once,
#    mid-stream: the other takes its partitions over, reads the ledger up to
#    its end first, and handles every job; it repeats only the dead host's
#    jobs whose ledger records Kafka had not acknowledged (and those in hand):
#    at most 10.
. "$(dirname "$0")/lib.sh"
require_tools
need_real
PAIRS=300
N=12000

plugins "$T/plugins"
make_topic 6 "scale$R" "pairs$R"
for h in 1 2; do
	pool_conf "$T/host$h.conf" "state_dir = $T/host$h" <<EOF2
[worker:x]
topic = scale$R, pairs$R
handler = probe
record = $T/record-$h
processes = 2
group = scale$R
EOF2
done
# partitions TOPIC: how many it has, 0 if it does not exist.  All topics are
# listed: asking for one by name would make it (kcat asks as a producer).
partitions() { "$KCAT" -L -b "$REAL" 2>/dev/null | awk -v t="\"$1\"" '$1 == "topic" && $2 == t { n = $4 } END { print n + 0 }'; }
check "no ledger topic before kpoold starts" test "$(partitions "scale$R.ledger")" = 0
start_kpoold "$T/host1.conf" "$T/host1.log"
HOST1=$KPID
start_kpoold "$T/host2.conf" "$T/host2.log"
HOST2=$KPID
ledger_made() { [ "$(partitions "scale$R.ledger")" = 1 ]; }
check "the ledger topic is created, with 1 partition" wait_for 30 ledger_made
check "host 1 says it made it compacted, kept idempotency_ttl" wait_for 10 sh -c \
	"grep -q 'created the ledger topic scale$R.ledger (1 partition, compacted, retention.ms=604800000)' '$T/host1.log' '$T/host2.log'"
# assigned LOG: partitions the host's two workers hold now (their last assignments).
assigned() { grep -o 'worker=x#[01] assigned partitions=[0-9]*' "$1" | awk -F'[ =]' '{ last[$2] = $NF } END { for (w in last) s += last[w]; print s + 0 }'; }
shared() { a=$(assigned "$T/host1.log"); b=$(assigned "$T/host2.log"); [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ $((a + b)) -eq 12 ]; }
check "both hosts share the twelve partitions" wait_for 60 shared
caught() { [ "$(grep -c 'ledger caught up' "$T/host1.log" "$T/host2.log" | awk -F: '{ s += ($2 > 0) } END { print s }')" = 2 ]; }
check "both hosts caught up on the ledger before handling" wait_for 30 caught

# 1. Pairs: copy a of pair i at i*20 ms, copy b 100 ms later, other key.
"$PYTHON3" - "$PAIRS" <<'PY' | "$top_builddir/tests/helpers/produce" "$REAL" "pairs$R" -
import sys, time
n = int(sys.argv[1])
events = sorted([(i * 0.02, "a%d" % i, i) for i in range(n)] + [(i * 0.02 + 0.1, "b%d" % i, i) for i in range(n)])
t0 = time.monotonic()
for at, key, i in events:
    d = t0 + at - time.monotonic()
    if d > 0:
        time.sleep(d)
    print('%s|{"eventId":"pair%d"}' % (key, i), flush=True)
PY
check "$PAIRS pairs sent" test $? -eq 0
pair_lines() { cat "$T/record-1" "$T/record-2" 2>/dev/null | grep -c '^pair'; }
# Every pair is handled at least once; the second copies are skipped or
# handled, which the duplicates counted in the logs cannot tell apart: wait
# until the ids seen stop growing, then count.
check "every pair handled" wait_for 60 sh -c \
	"[ \$(cat '$T/record-1' '$T/record-2' 2>/dev/null | grep '^pair' | cut -d' ' -f1 | sort -u | wc -l) -eq $PAIRS ]"
settled() { a=$(pair_lines); sleep 1; [ "$(pair_lines)" = "$a" ]; }
wait_for 30 settled
twice=$(cat "$T/record-1" "$T/record-2" | grep '^pair' | cut -d' ' -f1 | sort | uniq -d | wc -l)
cross=$(for h in 1 2; do grep '^pair' "$T/record-$h" | cut -d' ' -f1 | sort -u; done | sort | uniq -d | wc -l)
diag "pairs handled twice: $twice of $PAIRS (by both hosts: $cross); host 1 handled $(grep -c '^pair' "$T/record-1"), host 2 $(grep -c '^pair' "$T/record-2")"
check "copies 100 ms apart on two hosts: at most 1 of $PAIRS pairs handled twice ($twice)" test "$twice" -le 1
check "each host handled some pairs (both took copies)" sh -c "grep -q '^pair' '$T/record-1' && grep -q '^pair' '$T/record-2'"

# 2. A host killed mid-stream.
"$PYTHON3" -c "
for i in range($N): print('{\"eventId\":\"x%d\",\"do\":\"sleep\",\"ms\":1}' % i)" |
	"$KPOOL" -c "$T/host1.conf" send "scale$R" 2>/dev/null
check "$N jobs queued" test $? -eq 0
xs() { grep -c '^x' "$1" 2>/dev/null || echo 0; }
check "both hosts handle jobs" wait_for 60 sh -c \
	"[ \$(cat '$T/record-1' '$T/record-2' | grep -c '^x') -ge $((N / 4)) ] && grep -q '^x' '$T/record-1' && grep -q '^x' '$T/record-2'"
# Host 1's rate just before it dies: the time it takes for 500 more jobs.
c0=$(xs "$T/record-1")
t0=$(date +%s%N)
wait_for 30 at_least $((c0 + 500)) xs "$T/record-1"
# The host dies: every process of it stopped at once, then killed.
victims="$HOST1 $(pgrep -P "$HOST1" | tr '\n' ' ')"
# shellcheck disable=SC2086
kill -STOP $victims && kill -KILL $victims
killed_at=$(xs "$T/record-1")
t1=$(date +%s%N)
rate=$(((killed_at - c0) * 1000000000 / (t1 - t0 + 1)))
diag "host 1 killed (pids $victims) after handling $killed_at jobs ($rate/s just before); host 2 had $(xs "$T/record-2")"
check "host 1 is gone" wait_for 10 sh -c "! kill -0 $HOST1 2>/dev/null"
check "host 2 takes over: every job handled" wait_for 240 sh -c \
	"[ \$(cat '$T/record-1' '$T/record-2' | grep '^x' | cut -d' ' -f1 | sort -u | wc -l) -eq $N ]"
took_all() { [ "$(assigned "$T/host2.log")" = 12 ]; }
check "host 2 took all twelve partitions" wait_for 30 took_all
grep '^x' "$T/record-1" | cut -d' ' -f1 | sort >"$T/ids-1"
grep '^x' "$T/record-2" | cut -d' ' -f1 | sort >"$T/ids-2"
check "neither host handled a job twice itself" test -z "$(uniq -d "$T/ids-1")$(uniq -d "$T/ids-2")"
comm -12 "$T/ids-1" "$T/ids-2" >"$T/twice"
twice=$(wc -l <"$T/twice")
# Which they are: host 1's last jobs (how far from its end each was handled).
grep '^x' "$T/record-1" | cut -d' ' -f1 >"$T/order-1"
last=$(wc -l <"$T/order-1")
where=$(while read -r id; do echo "$id(-$((last - $(grep -nx "$id" "$T/order-1" | cut -d: -f1))))"; done <"$T/twice" | tr '\n' ' ')
diag "handled by both hosts: $twice of $N: ${where:-none} (-K: host 1 handled K jobs after it)"
diag "host 2 $(grep -o 'ledger caught up: partitions=[0-9]* waited_ms=[0-9]*' "$T/host2.log" | tail -1)"
check "a host killed at $rate jobs/s: at most 10 jobs handled twice ($twice)" test "$twice" -le 10
stop_kpoold "$HOST2"
check "host 2 stops with status 0" test $? -eq 0
