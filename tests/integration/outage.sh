#!/bin/sh
# Real Kafka stopped for 10 s in the middle of 20,000 jobs, then started
# again: /healthz reports the outage while it lasts, the application's jobs
# published meanwhile wait in its producer, and afterwards every job is
# handled, none twice.  The broker is the test's own, so that stopping it
# disturbs no other test.
. "$(dirname "$0")/lib.sh"
require_tools
need_real
N=20000

KB=$(kafka_dev "$T/kafka")
check "a broker of the test's own started" test -n "$KB"
[ -n "$KB" ] || exit 1
REAL=$KB
plugins "$T/plugins"
BOOTSTRAP=$KB pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:o]
topic = outage$R
handler = probe
record = $T/record
processes = 2
EOF2
start_kpoold "$T/pool.conf" "$T/kpoold.log"
U=$(metrics_url "$T/state")
healthy() { http "$U/healthz" >"$T/healthz"; [ "$(cat "$T/http.code")" = 200 ]; }
check "/healthz answers 200 before" wait_for 30 healthy

# The application publishes at about 1,000 jobs/s through the outage.
"$PYTHON3" -c "
import sys, time
for i in range($N):
    print('{\"eventId\":\"o%d\",\"do\":\"sleep\",\"ms\":1}' % i)
    if i % 100 == 99:
        sys.stdout.flush(); time.sleep(0.1)" |
	"$KPOOL" -c "$T/pool.conf" send "outage$R" 2>"$T/send.log" &
SENDER=$!
PIDS="$PIDS $SENDER"

check "jobs flow" wait_for 60 at_least 4000 lines_in "$T/record"
KAFKA_DEV_DIR=$T/kafka "$top_srcdir/scripts/kafka-dev" stop
down_at=$(lines_in "$T/record")
diag "broker stopped after $down_at jobs"
unhealthy() { http "$U/healthz" >"$T/healthz"; [ "$(cat "$T/http.code")" = 503 ] && ! grep -q '"kafka":"up"' "$T/healthz"; }
check "/healthz answers 503 during the outage" wait_for 10 unhealthy
diag "healthz: $(cat "$T/healthz")"
# The outage lasts 10 s: the length of the scenario, not a wait for a condition.
sleep 10
check "/healthz still says so after 10 s" unhealthy
check "kpoold stays up" kill -0 "$KPID"
check "the broker starts again" sh -c "KAFKA_DEV_DIR='$T/kafka' '$top_srcdir/scripts/kafka-dev' start >/dev/null 2>>'$T/kafka-dev.log'"
check "/healthz answers 200 again" wait_for 60 healthy

wait "$SENDER"
check "every job published was acknowledged" test $? -eq 0
check "every job handled" wait_for 180 sh -c "[ \$(cut -d' ' -f1 '$T/record' | sort -u | wc -l) -eq $N ]"
twice=$(cut -d' ' -f1 "$T/record" | sort | uniq -d | wc -l)
diag "handled twice: $twice"
check "none handled twice ($twice)" test "$twice" -eq 0
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
