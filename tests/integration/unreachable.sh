#!/bin/sh
# Kafka unreachable at start: kpoold keeps running, /healthz says why (503),
# and jobs flow once the broker appears.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
P=$("$PYTHON3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BOOTSTRAP=127.0.0.1:$P pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:u]
topic = later$R
handler = probe
record = $T/record
EOF2
start_kpoold "$T/pool.conf" "$T/pool.log"
POOL=$KPID
U=$(metrics_url "$T/state")
unhealthy() { http "$U/healthz" >"$T/healthz"; [ "$(cat "$T/http.code")" = 503 ] && ! grep -q '"kafka":"up"' "$T/healthz" && grep -q '"kafka":"[^c]' "$T/healthz"; }
check "/healthz answers 503 and says why" wait_for 30 unhealthy
diag "healthz: $(cat "$T/healthz")"
check "the log names the broker" wait_for 10 log_has "$T/pool.log" "127.0.0.1:$P"
check "kpoold keeps running" kill -0 "$POOL"

# Now the broker appears on that address.
start_broker "$T/broker" || { not_ok "embedded broker started"; exit 1; }
# The binding's ledger topic, as the applications' deploy makes its topics
# (that broker does not answer CreateTopics on every librdkafka version).
# shellcheck disable=SC2046
BOOTSTRAP=$B make_topic 4 $(ledger_topics "$T/pool.conf")
"$PYTHON3" "$top_srcdir/tests/integration/tcpfwd.py" "$P" "$B" &
PIDS="$PIDS $!"
printf '{"eventId":"late-%d"}\n' 1 2 3 4 5 | "$KPOOL" -c "$T/broker.conf" send "later$R" 2>/dev/null
check "jobs flow once the broker is there" wait_for 90 at_least 5 lines_in "$T/record"
healthy() { http "$U/healthz" >"$T/healthz"; [ "$(cat "$T/http.code")" = 200 ]; }
check "/healthz answers 200 again" wait_for 30 healthy
stop_kpoold "$POOL"
check "kpoold stops with status 0" test $? -eq 0
