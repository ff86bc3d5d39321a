#!/bin/sh
# A binding's rate on one host: two processes of a binding with rate = 50/s
# share one bucket.  1,000 jobs: the probe's calls, timed as it makes them,
# never exceed 50 in any 1-second window (the bucket's burst is 1 at this
# rate, see kpoold/rate.c; one more is allowed for the time between the
# bucket's clock and the probe's, which the scheduler may stretch), the
# rate comes near 50/s, and all 1,000 are handled once, none retried or counted
# an attempt.  While jobs wait, the lag shows them, /metrics and kpool status
# count the time waited, the console says rate-limited, and another
# binding's jobs flow.
. "$(dirname "$0")/lib.sh"
require_tools
N=1000
RATE=50

plugins "$T/plugins"
pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:r]
topic = rated$R
handler = probe
record = $T/record
timed = on
processes = 2
rate = $RATE/s
[worker:rb]
topic = batched$R
handler = probebatch
record = $T/batched
timed = on
processes = 2
rate = 20/s
[worker:free]
topic = free$R
handler = probe
record = $T/free
[console]
listen = 127.0.0.1:0
EOF2
kp() { "$KPOOL" -c "$T/pool.conf" "$@"; }
start_kpoold "$T/pool.conf" "$T/kpoold.log"
U=$(metrics_url "$T/state") || { not_ok "metrics listen"; exit 1; }
check "both processes of the rated binding joined" wait_for 60 joined "$T/kpoold.log" r 2

"$PYTHON3" -c "
for i in range($N): print('{\"id\":\"r%d\"}' % i)" | kp send "rated$R" 2>/dev/null
check "$N jobs published" test $? -eq 0
"$PYTHON3" -c "
for i in range(200): print('{\"id\":\"b%d\"}' % i)" | kp send "batched$R" 2>/dev/null
lag() { http "$U/metrics" | awk -v s="kpool_consumer_lag{worker=\"r\"," 'index($1, s) == 1 { n += $2 } END { print n + 0 }'; }
check "the jobs waiting for the rate show as lag" wait_for 30 at_least 200 lag
waiting() { [ "$(metric "$U" kpool_rate_waiting 'worker="r"')" -ge 1 ]; }
check "/metrics: processes wait for the rate" wait_for 10 waiting
console_state() { "$PYTHON3" -c "import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1] + 'api/overview'))['bindings']['r']['state'])" "$(cat "$T/state/console.url")"; }
rate_limited() { [ "$(console_state 2>/dev/null)" = rate-limited ]; }
check "the console says rate-limited" wait_for 20 rate_limited
"$PYTHON3" -c "
for i in range(200): print('{\"id\":\"f%d\"}' % i)" | kp send "free$R" 2>/dev/null
check "another binding's 200 jobs flow meanwhile" wait_for 20 sh -c "[ \$(wc -l <'$T/free') -ge 200 ]"
check "... while the rated binding still has most of its jobs to do" \
	test "$(lines_in "$T/record")" -lt $((N * 3 / 4))
kp status >"$T/status"
check "kpool status shows the rate" grep -Eq "^r  *probe  *2/2  *no  *$RATE/s  *[0-9.]+s " "$T/status"

check "all $N handled" wait_for 90 sh -c "[ \$(wc -l <'$T/record') -ge $N ]"
check "... each once" test "$(cut -d' ' -f1 "$T/record" | sort -u | wc -l)" -eq $N -a "$(lines_in "$T/record")" -eq $N
check "... at the first attempt" test "$(awk '$2 != 1' "$T/record" | wc -l)" -eq 0
check "none retried" test "$(metric "$U" kpool_jobs_total 'worker="r",result="retried"')" = 0
# windows FILE: the busiest 1-second window of the calls FILE records (its
# last field is the time), and the rate from the first call to the last.
windows() {
	"$PYTHON3" - "$1" <<'PY'
import sys
t = sorted(int(l.split()[-1]) for l in open(sys.argv[1]))
j = busiest = 0
for i in range(len(t)):
    while t[i] - t[j] >= 1000000:
        j += 1
    busiest = max(busiest, i - j + 1)
print(busiest, "%.1f" % ((len(t) - 1) / ((t[-1] - t[0]) / 1e6)))
PY
}
windows "$T/record" >"$T/windows"
read -r BUSIEST RATE_SEEN <"$T/windows"
diag "busiest 1-second window: $BUSIEST calls; $RATE_SEEN calls/s from the first to the last"
check "no 1-second window holds more than $RATE + 1 calls ($BUSIEST)" test "$BUSIEST" -le $((RATE + 1))
# A call taken late is not made up for (the bucket holds one): a loaded
# machine's late wake-ups cost a little of the rate, never more than it.
check "the binding ran at 40/s or more ($RATE_SEEN)" "$PYTHON3" -c "import sys; sys.exit(float('$RATE_SEEN') < 40)"
check "a batch handler's 200 jobs at rate = 20/s: all handled" wait_for 30 sh -c "[ \$(wc -l <'$T/batched') -ge 200 ]"
check "... each once" test "$(cut -d' ' -f1 "$T/batched" | sort -u | wc -l)" -eq 200 -a "$(lines_in "$T/batched")" -eq 200
windows "$T/batched" >"$T/bwindows"
read -r BBUSIEST BRATE <"$T/bwindows"
diag "batch handler: busiest 1-second window: $BBUSIEST calls; $BRATE calls/s"
check "... no 1-second window holds more than 21 jobs ($BBUSIEST)" test "$BBUSIEST" -le 21
waited() { "$PYTHON3" -c "import sys; sys.exit(not float(sys.argv[1]) > 5)" "$(metric "$U" kpool_rate_limited_seconds_total 'worker="r"')"; }
check "/metrics counts the time jobs waited for the rate" waited
check "/metrics says the rate" test "$(metric "$U" kpool_rate_limit 'worker="r"')" = $RATE
check "... and the binding without one waited not at all" test "$(metric "$U" kpool_rate_limited_seconds_total 'worker="free"')" = 0.000
nolag() { [ "$(lag)" = 0 ]; }
check "the lag is back to 0" wait_for 30 nolag
stop_kpoold "$KPID"
check "kpoold stops cleanly" test $? -eq 0
check "no sanitizer reports in the log" sh -c "! grep -q 'Sanitizer' '$T/kpoold.log'"
