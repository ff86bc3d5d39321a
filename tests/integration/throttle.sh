#!/bin/sh
# A crash-looping binding is throttled (1 s doubling) without starving the
# others, and says so in the log, /healthz and /metrics.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:loop]
topic = loop-jobs$R
handler = probe
broken = on
[worker:fine]
topic = fine-jobs$R
handler = probe
record = $T/record
EOF2
start_kpoold "$T/pool.conf" "$T/kpoold.log"
bootstrap "$T/state" >/dev/null || { not_ok "embedded broker started"; exit 1; }
U=$(metrics_url "$T/state")
check "the broken binding is throttled, logged once" wait_for 20 log_has "$T/kpoold.log" "worker=loop throttled"
check "restarts back off: 1s, 2s, 4s" wait_for 30 sh -c \
	"grep -o 'worker=loop#0 restarting in [0-9]*s' '$T/kpoold.log' | head -3 | tr '\n' ' ' | grep -q 'in 1s .*in 2s .*in 4s'"
check "the throttle is logged once, not per restart" test "$(grep -c 'worker=loop throttled' "$T/kpoold.log")" -eq 1
check "the plugin's reason is logged" log_has "$T/kpoold.log" "probe: broken, as asked"
printf '{"eventId":"f%d"}\n' 1 2 3 | "$KPOOL" -c "$T/pool.conf" send "fine-jobs$R" 2>/dev/null
check "the other binding is not starved" wait_for 30 at_least 3 lines_in "$T/record"
http "$U/healthz" >"$T/healthz"
check "/healthz: 503, the binding throttled" sh -c "[ \"\$(cat '$T/http.code')\" = 503 ] && grep -q '\"loop\":{[^}]*\"throttled\":true' '$T/healthz'"
check "/metrics: restarts counted" at_least 2 metric "$U" kpool_worker_restarts_total 'worker="loop"'
throttled_state() { [ "$(metric "$U" kpool_workers 'worker="loop",state="throttled"')" = 1 ]; }
check "/metrics: kpool_workers state throttled" wait_for 10 throttled_state
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
