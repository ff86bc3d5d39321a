#!/bin/sh
# The ledger (DESIGN.md, "The ledger: handled once"): the processes of a
# binding on one host share it.  Copies of an id arriving on partitions of two
# sibling processes, 0-50 ms apart, are handled once; with one of them killed
# three times meanwhile, nothing is lost and no more ids are handled twice
# than the jobs in hand at the kills; a batch whose last job is dead-lettered
# is committed; the ledger outlives a restart of kpoold; idempotency_ttl
# forgets an id, and not before; a killed ledger process loses nothing.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
TAB=$(printf '\t')
# The time bounds of points 3 and 5, stretched under a wrapper (scripts/valgrind).
LAG_MS=2000
TTL_S=3
if [ -n "${KPOOLD_WRAPPER:-}" ]; then
	LAG_MS=20000
	TTL_S=15
	diag "under $KPOOLD_WRAPPER: the lag is to be 0 within ${LAG_MS} ms, idempotency_ttl = ${TTL_S}s"
fi
now_ms() { date +%s%3N; }
# wait_ms MS CMD...: wait_for with a deadline in milliseconds.
wait_ms() {
	wms_end=$(($(now_ms) + $1)); shift
	until "$@"; do
		[ "$(now_ms)" -ge "$wms_end" ] && return 1
		sleep 0.1
	done
	return 0
}
jget() { "$PYTHON3" -c "import json,sys; d=json.load(open(sys.argv[1])); print(($2))" "$1"; }
# status_json CONF: kpool status --json into $T/st.json.
status_json() { "$KPOOL" -c "$1" status --json >"$T/st.json" 2>>"$T/status.err"; }
# lag_is CONF N: the binding's lag_total, end minus committed over its partitions, is N.
lag_is() { status_json "$1"; [ "$(jget "$T/st.json" 'd["bindings"][0]["lag_total"]')" = "$2" ]; }
# jobs_of CONF RESULT: the binding's kpool_jobs_total of RESULT (done, duplicate, ...).
jobs_of() { status_json "$1"; jget "$T/st.json" "d['bindings'][0]['jobs']['$2']"; }
jobs_is() { [ "$(jobs_of "$1" "$2")" = "$3" ]; }
# handled RECORD: how many ids the probe did; twice RECORD: how many it did more than once.
handled() { grep ' done' "$1" 2>/dev/null | cut -d' ' -f1 | sort -u | wc -l | tr -d ' '; }
twice() { grep ' done' "$1" 2>/dev/null | cut -d' ' -f1 | sort | uniq -d | wc -l | tr -d ' '; }
# worker_pid LOG NAME I: the pid of the latest process NAME#I, as its start was logged.
worker_pid() { sed -n "s/^info worker=$2#$3 started .* pid=\([0-9]*\).*/\1/p" "$1" | tail -1; }
# once_each RECORD WANT: the record has one line "ID 1 done" per id of the file WANT, and no other.
once_each() {
	[ "$(awk '$2 == 1 && $3 == "done" { print $1 }' "$1" | sort)" = "$(cat "$2")" ] &&
		[ "$(lines_in "$1")" -eq "$(lines_in "$2")" ]
}
# consumed CONF RECORD N: N ids handled and the group committed everything.
consumed() { [ "$(handled "$2")" -ge "$3" ] && lag_is "$1" 0; }
# pool NAME [LINE...]: conf $T/NAME.conf for binding NAME (handler probe unless
# a LINE says otherwise, topic NAME$R, record $T/NAME.record, state $T/NAME),
# started; sets KPID and B.  LINEs go to the [worker:NAME] section.
pool() {
	name=$1; shift
	{
		printf '[worker:%s]\ntopic = %s%s\nrecord = %s/%s.record\n' "$name" "$name" "$R" "$T" "$name"
		for line in "$@"; do printf '%s\n' "$line"; done
		case "$*" in *handler*) ;; *) echo 'handler = probe' ;; esac
	} | pool_conf "$T/$name.conf" 'metrics_listen = 127.0.0.1:0' "state_dir = $T/$name"
	start_kpoold "$T/$name.conf" "$T/$name.log"
	if [ -n "${BOOTSTRAP:-}" ]; then B=$BOOTSTRAP; else B=$(bootstrap "$T/$name"); fi
}

# publish.py N PREFIX EXTRA GAP_MS: ids PREFIX0..PREFIX(N-1), one every GAP_MS,
# each with key kI, and a copy of each with key cI 0-50 ms after it (so
# mostly on another partition), as "KEY<TAB>JOB" lines for kcat -K, in time.
cat >"$T/publish.py" <<'PY'
import random, sys, time
n, prefix, extra, gap = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]) / 1000
ev = []
for i in range(n):
    job = '{"eventId":"%s%d"%s}' % (prefix, i, extra)
    ev.append((i * gap, "k%d" % i, job))
    ev.append((i * gap + random.uniform(0, 0.05), "c%d" % i, job))
ev.sort()
start = time.monotonic()
for t, key, job in ev:
    d = start + t - time.monotonic()
    if d > 0:
        sys.stdout.flush()
        time.sleep(d)
    sys.stdout.write("%s\t%s\n" % (key, job))
sys.stdout.flush()
PY
publish() { "$PYTHON3" "$T/publish.py" "$@" | "$KCAT" -P -b "$B" -t "$TOPIC" -K "$TAB" 2>>"$T/kcat.log"; }
# apart TOPIC: how many copies landed on another partition than their original.
apart() {
	"$KCAT" -C -b "$B" -t "$1" -e -q -f "%k %p\n" 2>/dev/null |
		awk '{ i = substr($1, 2); if (substr($1, 1, 1) == "k") k[i] = $2; else c[i] = $2 }
			END { n = 0; for (i in k) if ((i in c) && c[i] != k[i]) n++; print n }'
}

# 1. Siblings: two processes, 500 ids each sent twice under two keys, the
# copy 0-50 ms after the original: every id handled once.
N=500
pool sib 'processes = 2'
check "siblings: both processes hold partitions" wait_for 60 joined "$T/sib.log" sib 2
TOPIC=sib$R publish $N s '' 2
check "siblings: $N ids and their copies published" test $? -eq 0
check "siblings: every job consumed and committed" wait_for 60 consumed "$T/sib.conf" "$T/sib.record" $N
diag "siblings: copies on another partition than their original: $(apart "sib$R") of $N"
tw=$(twice "$T/sib.record")
diag "siblings: ids handled twice: $tw"
seq 0 $((N - 1)) | sed 's/^/s/' | sort >"$T/sib.want"
check "siblings: every id in the record exactly once, done ($tw handled twice)" once_each "$T/sib.record" "$T/sib.want"
dups=$(jobs_of "$T/sib.conf" duplicate)
check "siblings: the $N copies counted as duplicates (got $dups)" test "$dups" = $N
stop_kpoold "$KPID"
check "siblings: kpoold stops with status 0" test $? -eq 0

# 2. The same while the process sib#0 is killed (SIGKILL) three times:
# nothing lost, and no more ids handled twice than jobs were in hand.
N=1500
KILLS=3
pool kil 'processes = 2'
check "kill: both processes hold partitions" wait_for 60 joined "$T/kil.log" kil 2
TOPIC=kil$R publish $N k ',"do":"sleep","ms":2' 4 &
PUB=$!
kills=0
restarts=0
for i in $(seq 1 $KILLS); do
	wait_for 60 at_least $((i * N / (KILLS + 2))) lines_in "$T/kil.record" || break
	victim=$(worker_pid "$T/kil.log" kil 0)
	{ [ -n "$victim" ] && kill -KILL "$victim"; } || break
	kills=$((kills + 1))
	diag "kill $kills: kil#0 pid $victim after $(lines_in "$T/kil.record") jobs"
	new_pid() { p=$(worker_pid "$T/kil.log" kil 0); [ -n "$p" ] && [ "$p" != "$victim" ] && kill -0 "$p" 2>/dev/null; }
	wait_for 30 new_pid || break
	restarts=$((restarts + 1))
done
wait "$PUB"
check "kill: $N ids and their copies published" test $? -eq 0
check "kill: kil#0 killed $KILLS times mid-stream, restarted after each" test "$kills-$restarts" = "$KILLS-$KILLS"
check "kill: every job consumed and committed" wait_for 120 lag_is "$T/kil.conf" 0
h=$(handled "$T/kil.record")
check "kill: nothing lost, every id handled ($h of $N)" test "$h" -eq $N
diag "kill: copies on another partition than their original: $(apart "kil$R") of $N"
tw=$(twice "$T/kil.record")
# The probe takes one job at a time: a killed process had at most one in hand.
diag "kill: ids handled twice: $tw; bound: the jobs in hand at the $kills kills, one each on the one-job path, so $kills"
check "kill: handled twice ($tw) <= jobs in hand at the kills ($kills)" test "$tw" -le "$kills"
stop_kpoold "$KPID"
check "kill: kpoold stops with status 0" test $? -eq 0

# 3. A batch handler: the partition's last job is bad input, dead-lettered;
# it is committed with the rest, the group's lag goes to 0.
pool bat 'handler = probebatch'
check "batch: the worker holds partitions" wait_for 60 joined "$T/bat.log" bat 1
printf '%s\n' '{"eventId":"g1"}' '{"eventId":"g2"}' 'not json' |
	"$KPOOL" -c "$T/bat.conf" send "bat$R" --key one 2>>"$T/send.log"
dlq_has() { "$KCAT" -C -b "$B" -t "bat$R.dlq" -e -q -f '%h\n' 2>/dev/null | grep -q 'kpool.error.class=bad-input'; }
check "batch: the bad job reaches the dead-letter topic as bad-input" wait_for 30 dlq_has
t0=$(now_ms)
wait_ms $LAG_MS lag_is "$T/bat.conf" 0
rc=$?
t1=$(now_ms)
diag "batch: lag $(jget "$T/st.json" 'd["bindings"][0]["lag"]') $((t1 - t0)) ms after the dead-letter record was seen"
check "batch: the group's lag is 0 within $LAG_MS ms of the dead-letter record" test $rc -eq 0
check "batch: the two good jobs handled once" test "$(grep -c '^g[12] 1 done' "$T/bat.record")" = 2
stop_kpoold "$KPID"
check "batch: kpoold stops with status 0" test $? -eq 0

# 4. The ledger outlives kpoold: 20 ids handled, kpoold stopped and started
# again, their copies are duplicates.  The broker is another kpoold's (or
# the real one), so that it outlives the pool.
start_broker "$T/broker" || { not_ok "embedded broker started"; exit 1; }
BOOTSTRAP=$B
pool keep
unset BOOTSTRAP
check "restart: the worker holds partitions" wait_for 60 joined "$T/keep.log" keep 1
send20() { i=1; while [ $i -le 20 ]; do printf '{"eventId":"r%d"}\n' $i; i=$((i + 1)); done |
	"$KPOOL" -c "$T/keep.conf" send "keep$R" 2>>"$T/send.log"; }
send20
check "restart: 20 jobs handled and committed" wait_for 30 consumed "$T/keep.conf" "$T/keep.record" 20
stop_kpoold "$KPID"
check "restart: kpoold stops with status 0" test $? -eq 0
start_kpoold "$T/keep.conf" "$T/keep2.log"
check "restart: the new worker holds partitions" wait_for 60 joined "$T/keep2.log" keep 1
send20
check "restart: the copies consumed" wait_for 30 lag_is "$T/keep.conf" 0
dups=$(jobs_of "$T/keep.conf" duplicate)
check "restart: the 20 copies counted as duplicates (got $dups)" test "$dups" = 20
check "restart: none handled again" test "$(lines_in "$T/keep.record")-$(twice "$T/keep.record")" = "20-0"
stop_kpoold "$KPID"
check "restart: kpoold stops with status 0 again" test $? -eq 0

# 5. idempotency_ttl = 3s (TTL_S): a copy right after the job is a duplicate; once
# the TTL has passed the id is forgotten and a copy is handled again.
pool ttl "idempotency_ttl = ${TTL_S}s"
check "ttl: the worker holds partitions" wait_for 60 joined "$T/ttl.log" ttl 1
send_t1() { printf '{"eventId":"t1"}\n' | "$KPOOL" -c "$T/ttl.conf" send "ttl$R" --key t 2>>"$T/send.log"; }
t1_count() { grep -c '^t1 ' "$T/ttl.record" 2>/dev/null || echo 0; }
send_t1
check "ttl: the job handled" wait_for 30 grep -q '^t1 1 done' "$T/ttl.record"
first=$(now_ms)
send_t1
check "ttl: a copy within the TTL is counted as a duplicate" wait_for 10 jobs_is "$T/ttl.conf" duplicate 1
diag "ttl: the copy was skipped $(($(now_ms) - first)) ms after the job was handled"
check "ttl: a copy within the TTL is not handled" test "$(t1_count)" = 1
past() { [ "$(now_ms)" -ge "$1" ]; }
wait_for $((TTL_S + 10)) past $((first + TTL_S * 1000 + 1000))
# A copy every 2 s until one is handled: forgetting need not be immediate.
next=0
copied=0
handled_again() {
	[ "$(t1_count)" -ge 2 ] && return 0
	if past $next; then send_t1; copied=$((copied + 1)); next=$(($(now_ms) + 2000)); fi
	return 1
}
wait_for 20 handled_again
rc=$?
diag "ttl: $copied copies sent after the TTL; handled again $(($(now_ms) - first)) ms after the first handling"
check "ttl: a copy after the TTL is handled again" test $rc -eq 0
check "ttl: all consumed" wait_for 30 lag_is "$T/ttl.conf" 0
check "ttl: the record shows t1 twice, both done" test "$(grep -c '^t1 1 done$' "$T/ttl.record")-$(t1_count)" = "2-2"
stop_kpoold "$KPID"
check "ttl: kpoold stops with status 0" test $? -eq 0

# 6. The ledger process killed (SIGKILL) while jobs flow: it is restarted and
# picks up the ring where it was; nothing is lost or handled twice, every
# offset is committed once the ids are durable, and the file has every id.
ledger_pid() { sed -n "s/^info ledger=$2 started .* pid=\([0-9]*\).*/\1/p" "$1" | tail -1; }
pool led 'processes = 2'
check "ledger: both processes hold partitions" wait_for 60 joined "$T/led.log" led 2
N=600
TOPIC=led$R publish $N l '' 3 &
PUB=$!
wait_for 60 at_least $((N / 3)) lines_in "$T/led.record"
victim=$(ledger_pid "$T/led.log" led)
check "ledger: the ledger process is there ($victim)" kill -KILL "$victim"
relaunched() { p=$(ledger_pid "$T/led.log" led); [ -n "$p" ] && [ "$p" != "$victim" ] && kill -0 "$p" 2>/dev/null; }
check "ledger: the supervisor starts it again" wait_for 30 relaunched
wait "$PUB"
check "ledger: every job consumed and committed" wait_for 60 consumed "$T/led.conf" "$T/led.record" $N
seq 0 $((N - 1)) | sed 's/^/l/' | sort >"$T/led.want"
check "ledger: every id handled exactly once" once_each "$T/led.record" "$T/led.want"
in_file() { [ "$("$SQLITE3" "$T/led/led.db" 'SELECT sum(n) FROM processed_counts' 2>/dev/null)" = "$N" ]; }
check "ledger: the file holds the $N ids" wait_for 10 in_file
unwritten() { http "$(metrics_url "$T/led")/metrics" | grep -q '^kpool_ledger_unwritten{worker="led"} 0$'; }
check "ledger: /metrics shows nothing left unwritten" wait_for 10 unwritten
stop_kpoold "$KPID"
check "ledger: kpoold stops with status 0" test $? -eq 0
