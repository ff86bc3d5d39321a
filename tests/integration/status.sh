#!/bin/sh
# kpool status and /metrics: the processes kpoold runs (pids, uptime,
# restarts), the job counts, and the lag per partition, which must equal what
# the test produced minus what was handled; kpool status while kpoold is down;
# Prometheus's own parser reads /metrics, and the Grafana dashboard asks only
# for series /metrics has.
. "$(dirname "$0")/lib.sh"
require_tools

# Prometheus's text-format parser (Debian: python3-prometheus-client).
PROM_PY=""
for p in /usr/bin/python3 "$PYTHON3"; do
	"$p" -c 'import prometheus_client.parser' 2>/dev/null && { PROM_PY=$p; break; }
done

plugins "$T/plugins"
start_broker "$T/broker" || { not_ok "embedded broker started"; exit 1; }
BOOTSTRAP=$B pool_conf "$T/s.conf" 'metrics_listen = 127.0.0.1:0' 'shutdown_timeout = 1s' <<EOF2
[worker:s]
topic = work$R
handler = probe
processes = 2
max_attempts = 3
retry_backoff = 10m
retry_backoff_max = 10m
record = $T/record
EOF2
start_kpoold "$T/s.conf" "$T/kpoold.log"
U=$(metrics_url "$T/state") || { not_ok "metrics listen"; exit 1; }
check "both workers joined the group" wait_for 30 joined "$T/kpoold.log" s 2
kp() { "$KPOOL" -c "$T/s.conf" "$@"; }
jget() { "$PYTHON3" -c "import json,sys; d=json.load(open(sys.argv[1])); print(($2))" "$1"; }
handled() { grep -c ' done$' "$T/record" 2>/dev/null || echo 0; }
status_json() { kp status --json >"$T/st.json" 2>"$T/st.err"; }
lag_total() { status_json; jget "$T/st.json" 'd["bindings"][0]["lag_total"]'; }
# lag_is N: kpool status says the binding is N behind in all.
lag_is() { [ "$(lag_total)" = "$1" ]; }

i=1
while [ $i -le 20 ]; do printf '{"id":"a%d"}\n' $i; i=$((i + 1)); done | kp send "work$R" 2>/dev/null
PRODUCED=20
check "twenty jobs handled" wait_for 30 sh -c "[ \$(grep -c ' done\$' '$T/record') -eq 20 ]"
check "status: lag = produced - handled = 0" wait_for 30 lag_is 0

kp status >"$T/st.txt"
check "status exits 0 while kpoold runs" test $? -eq 0
check "status: kpoold is up" grep -q "^kpoold: up (http://" "$T/st.txt"
check "status: the bindings table" grep -Eq '^BINDING +HANDLER +PROCESSES +PAUSED +RATE +WAITED +DONE +RETRIED +FAILED +DEAD-LETTERED +DUPLICATE +EXPIRED +RESTARTS +LAG$' "$T/st.txt"
check "status: s runs 2/2, not paused, and did 20" grep -Eq '^s +probe +2/2 +no +- +- +20 +0 +0 +0 +0 +0 +0 +0$' "$T/st.txt"
check "status: a row per process" test "$(grep -cE '^s#[01] +[0-9]+ +running +[0-9]+s +0$' "$T/st.txt")" -eq 2
check "status: a lag row per partition" test "$(grep -cE "^s +work$R +[0-3] " "$T/st.txt")" -eq 4
check "status: the ledger table" grep -Eq '^BINDING +LEDGER +STATE +HOST +STORE +LEDGER-LAG$' "$T/st.txt"
check "status: the shared ledger's topic, ready, this host's lag on it" \
	grep -Eq "^s +[^ ]+\.ledger +ready +$(hostname) +[0-9a-f]{16} +[0-9]+$" "$T/st.txt"

status_json
# worker_pid I: the pid of the latest worker s#I, as its start was logged.
worker_pid() { sed -n "s/^info worker=s#$1 started .* pid=\([0-9]*\).*/\1/p" "$T/kpoold.log" | tail -1; }
P0=$(worker_pid 0)
P1=$(worker_pid 1)
check "the workers are running" kill -0 "$P0" "$P1"
check "status --json: the pids are the workers'" test "$(jget "$T/st.json" '" ".join(str(p["pid"]) for p in d["bindings"][0]["processes"])')" = "$P0 $P1"
check "status --json: running, no restarts" test "$(jget "$T/st.json" 'sorted(set((p["state"], p["restarts"]) for p in d["bindings"][0]["processes"]))')" = "[('running', 0)]"
check "status --json: uptime in seconds" test "$(jget "$T/st.json" 'all(0 <= p["uptime_s"] < 600 for p in d["bindings"][0]["processes"])')" = True
check "status --json: job counts" test "$(jget "$T/st.json" 'd["bindings"][0]["jobs"]["done"]')" = 20
check "status --json: not paused" test "$(jget "$T/st.json" '(d["bindings"][0]["paused"], d["bindings"][0]["paused_since"])')" = "(False, None)"
check "status --json: the ledger, its state and hosts" test "$(jget "$T/st.json" '(d["bindings"][0]["ledger"]["ledger"], d["bindings"][0]["ledger"]["state"], len(d["bindings"][0]["ledger"]["hosts"]))')" = "('kafka', 'ready', 1)"

# A worker killed: the supervisor restarts it, status shows the new pid and the restart.
kill -KILL "$P1"
restarted() { status_json && [ "$(jget "$T/st.json" 'd["bindings"][0]["processes"][1]["restarts"]')" = 1 ] &&
	[ "$(jget "$T/st.json" 'd["bindings"][0]["processes"][1]["state"]')" = running ]; }
check "status: worker #1 restarted once" wait_for 30 restarted
NP1=$(jget "$T/st.json" 'd["bindings"][0]["processes"][1]["pid"]')
check "status: with its new pid" test "$NP1" != "$P1" -a "$NP1" = "$(worker_pid 1)"
check "status: the binding counts one restart" test "$(jget "$T/st.json" 'd["bindings"][0]["restarts"]')" = 1
check "both workers back in the group" wait_for 30 sh -c "[ \$(grep -c 'assigned partitions=' '$T/kpoold.log') -ge 4 ]"

# One partition stuck behind a job waiting to be retried (in ten minutes):
# its lag is what waits there, while the worker goes on with the others.
printf '{"id":"block","do":"retry"}\n' | kp send "work$R" --key stuck 2>/dev/null
check "the job waiting for its retry was tried" wait_for 30 log_has "$T/record" "block 1 retry"
i=1
while [ $i -le 9 ]; do printf '{"id":"q%d"}\n' $i; i=$((i + 1)); done | kp send "work$R" --key stuck 2>/dev/null
i=1
while [ $i -le 15 ]; do printf '{"id":"b%d"}\n' $i; i=$((i + 1)); done | kp send "work$R" 2>/dev/null
PRODUCED=$((PRODUCED + 25))
# Behind it wait the nine keyed jobs and the keyless ones that landed on its
# partition; everything else gets handled.
STUCK=$("$KCAT" -C -b "$B" -t "work$R" -e -q -f '%p %s\n' | awk '/"block"/ { print $1 }')
WAITING=$("$KCAT" -C -b "$B" -t "work$R" -p "$STUCK" -e -q -f '%s\n' | sed -n '/"block"/,$p' | wc -l)
others_done() { [ "$(handled)" -eq $((PRODUCED - WAITING)) ]; }
check "every job not behind the waiting one is handled" wait_for 30 others_done
equation() { [ "$(lag_total)" = $((PRODUCED - $(handled))) ]; }
check "status: lag = produced - handled, with a partition waiting" wait_for 30 equation
diag "produced $PRODUCED, handled $(handled), lag $(lag_total), waiting on partition $STUCK: $WAITING"
check "status: the lag is all on that partition" test "$(jget "$T/st.json" '[x["partition"] for x in d["bindings"][0]["lag"] if x["lag"] > 0]')" = "[$STUCK]"
STUCK_LAG=$(jget "$T/st.json" '[x["lag"] for x in d["bindings"][0]["lag"] if x["lag"] > 0][0]')
check "status: at least the ten keyed jobs wait there" test "$STUCK_LAG" -ge 10
check "status: lag = end - committed" test "$(jget "$T/st.json" 'all(x["lag"] == x["end"] - x["committed"] for x in d["bindings"][0]["lag"] if x["committed"] is not None)')" = True
metrics_lag_is() { [ "$(metric "$U" kpool_consumer_lag "worker=\"s\",topic=\"work$R\",partition=\"$STUCK\"")" = "$1" ]; }
check "/metrics: kpool_consumer_lag of that partition agrees" wait_for 30 metrics_lag_is "$STUCK_LAG"

# Prometheus's parser reads all of /metrics.
http "$U/metrics" >"$T/metrics.txt"
if [ -z "$PROM_PY" ]; then
	diag "SKIP: prometheus_client not found (Debian: python3-prometheus-client; scripts/setup installs it)"
	ok "# SKIP Prometheus parser: prometheus_client missing"
else
	check "prometheus_client parses /metrics, the series DESIGN.md names are there" "$PROM_PY" - "$T/metrics.txt" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
want = {"kpool_jobs": "counter", "kpool_job_seconds": "histogram", "kpool_consumer_lag": "gauge",
        "kpool_worker_restarts": "counter", "kpool_workers": "gauge", "kpool_dead_letter": "counter",
        "kpool_worker_start_time_seconds": "gauge", "kpool_worker_process_restarts": "counter",
        "kpool_rate_limited_seconds": "counter"}
for name, typ in want.items():
    assert name in fams, name
    assert fams[name].type == typ, (name, fams[name].type)
results = {s.labels["result"] for s in fams["kpool_jobs"].samples if s.name == "kpool_jobs_total"}
assert results == {"done", "retried", "failed", "dead_lettered", "duplicate", "expired"}, results
classes = {s.labels["class"] for s in fams["kpool_dead_letter"].samples}
assert classes == {"fail", "retries-exhausted", "crash", "bad-input", "handler-unavailable", "expired"}, classes
b = [s for s in fams["kpool_job_seconds"].samples if s.name.endswith("_bucket")]
counts = [s.value for s in b]
assert counts == sorted(counts), "buckets are cumulative"
assert b[-1].labels["le"] == "+Inf"
count = [s.value for s in fams["kpool_job_seconds"].samples if s.name.endswith("_count")][0]
assert count == b[-1].value
assert any(s.labels["partition"] for s in fams["kpool_consumer_lag"].samples)
PY
	check "the Grafana dashboard asks only for series /metrics has" "$PROM_PY" - "$T/metrics.txt" "$top_srcdir/conf/grafana-dashboard.json" <<'PY'
import json, re, sys
from prometheus_client.parser import text_string_to_metric_families
have = {s.name for f in text_string_to_metric_families(open(sys.argv[1]).read()) for s in f.samples}
d = json.load(open(sys.argv[2]))
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
assert len(exprs) >= 10, len(exprs)
used = {m for e in exprs for m in re.findall(r"\bkpool_[a-z_]+", e)}
missing = used - have
assert not missing, missing
for m in ("kpool_jobs_total", "kpool_consumer_lag", "kpool_dead_letter_total", "kpool_job_seconds_bucket"):
    assert m in used, m
PY
fi

# kpoold down: status says so (exit 1), and still tells the lag from Kafka.
stop_kpoold "$KPID"
printf '{"id":"late1"}\n{"id":"late2"}\n' | kp send "work$R" --key stuck 2>/dev/null
PRODUCED=$((PRODUCED + 2))
kp status >"$T/down.txt" 2>"$T/down.err"
check "status exits 1 while kpoold is down" test $? -eq 1
check "status: says kpoold is not running" grep -q "^kpoold: not running" "$T/down.txt"
status_json
check "status --json: up false" test "$(jget "$T/st.json" 'd["kpoold"]["up"]')" = False
check "status: lag = produced - handled, kpoold down" test "$(jget "$T/st.json" 'd["bindings"][0]["lag_total"]')" = $((PRODUCED - $(handled)))
kp status --bogus >/dev/null 2>&1
check "status with a bad option: exit 2" test $? -eq 2
