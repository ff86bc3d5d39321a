#!/bin/sh
# kpool pause and resume: a paused binding's workers handle nothing (its
# jobs wait in Kafka, and the lag says so) when it was paused while kpoold
# was down, across a reload that replaces its workers, across a restart of
# kpoold, and when it is paused while it runs; /healthz stays 200 and says
# paused, /metrics and kpool status show it; once resumed every job is
# handled exactly once.  The broker runs in its own kpoold so that it
# outlives the pool.  (A worker's restart on request is asked for by the web
# console only; its tests are the console's.)
. "$(dirname "$0")/lib.sh"
require_tools
N=40

plugins "$T/plugins"
start_broker "$T/broker" || { not_ok "embedded broker started"; exit 1; }
BOOTSTRAP=$B pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' 'shutdown_timeout = 10s' <<EOF2
[worker:s]
topic = held$R
handler = probe
record = $T/record
processes = 2
EOF2
kp() { "$KPOOL" -c "$T/pool.conf" "$@"; }
jget() { "$PYTHON3" -c "import json,sys; d=json.load(open(sys.argv[1])); print(($2))" "$1"; }
handled() { lines_in "$T/record"; }
# send FROM TO: jobs jFROM..jTO, without a key (so spread over the partitions).
send() {
	"$PYTHON3" -c "
import sys
for i in range(int(sys.argv[1]), int(sys.argv[2]) + 1): print('{\"eventId\":\"j%d\"}' % i)" "$1" "$2" |
		kp send "held$R" 2>/dev/null
}
# lag_is N: /metrics says the binding's workers are N jobs behind on the topic, in all.
lag_is() {
	[ "$(http "$U/metrics" | awk -v s="kpool_consumer_lag{worker=\"s\",topic=\"held$R\"," \
		'index($1, s) == 1 { n += $2 } END { print n + 0 }')" = "$1" ]
}
# health_paused True|False: /healthz answers 200 and says the binding is paused, or not.
health_paused() {
	http "$U/healthz" >"$T/healthz" && [ "$(cat "$T/http.code")" = 200 ] &&
		[ "$(jget "$T/healthz" 'd["workers"]["s"]["paused"]')" = "$1" ]
}
metric_paused() { [ "$(metric "$U" kpool_binding_paused 'binding="s"')" = "$1" ]; }
# held_in LOG N: the workers logging to LOG held jobs of N partitions or more (a
# partition is paused as it fetches them, once per assignment).
held_in() { [ "$(grep -c 'paused as it fetched: the binding is paused' "$1")" -ge "$2" ]; }
# once N: every one of jobs j1..jN was handled, each once.
once() {
	[ "$(handled)" -eq "$1" ] && [ "$(cut -d' ' -f1 "$T/record" | sort -u | wc -l)" -eq "$1" ]
}

kp pause nosuch >"$T/out" 2>"$T/err"
check "pause of an unknown binding: exit 2" test $? -eq 2
check "  naming it" grep -q "^kpool: pause: no binding 'nosuch' in $T/pool.conf\$" "$T/err"
kp resume nosuch >"$T/out" 2>"$T/err"
check "resume of an unknown binding: exit 2, naming it" \
	sh -c "[ $? -eq 2 ] && grep -q \"no binding 'nosuch'\" '$T/err'"
kp pause >/dev/null 2>"$T/err"
check "pause without a binding: exit 2, its usage" \
	sh -c "[ $? -eq 2 ] && grep -q '^usage: kpool -c CONF pause NAME' '$T/err'"

# Paused while kpoold is down: it starts paused.
kp pause s >"$T/out"
check "pause while kpoold is down: exit 0" test $? -eq 0
check "  it says so" grep -qx "s: paused" "$T/out"
check "  one file in state_dir/paused" test -f "$T/state/paused/s"
kp pause s >"$T/out"
check "pausing again: exit 0, paused already, since when" \
	sh -c "[ $? -eq 0 ] && grep -Eq '^s: paused already, since [0-9-]{10}T[0-9:]{8}Z\$' '$T/out'"
send 1 $N
check "$N jobs queued" test $? -eq 0
start_kpoold "$T/pool.conf" "$T/kpoold1.log"
U=$(metrics_url "$T/state") || { not_ok "metrics listen"; exit 1; }
check "kpoold starts it paused" wait_for 30 log_has "$T/kpoold1.log" "worker=s is paused"
check "both workers joined the group" wait_for 30 joined "$T/kpoold1.log" s 2
check "the workers held the jobs of the 4 partitions as they fetched them" \
	wait_for 30 held_in "$T/kpoold1.log" 4
check "/metrics: the lag is the $N jobs" wait_for 30 lag_is $N
check "  and none was handled" test "$(handled)" -eq 0
check "/healthz: 200, paused" wait_for 30 health_paused True
check "/metrics: kpool_binding_paused 1" metric_paused 1
check "both workers said they paused" \
	test "$(grep -c 'worker=s#[01] paused: the binding is paused' "$T/kpoold1.log")" -eq 2

# More jobs: the lag grows, in /metrics and in kpool status.
send $((N + 1)) $((2 * N))
check "/metrics: the lag grows to $((2 * N))" wait_for 30 lag_is $((2 * N))
kp status >"$T/st.txt" 2>"$T/st.err"
check "status: exit 0" test $? -eq 0
check "status: the PAUSED column" \
	grep -Eq '^BINDING +HANDLER +PROCESSES +PAUSED +RATE +WAITED +DONE +RETRIED +FAILED +DEAD-LETTERED +DUPLICATE +EXPIRED +RESTARTS +LAG$' "$T/st.txt"
check "status: s paused, nothing done, $((2 * N)) behind" \
	grep -Eq "^s +probe +2/2 +yes +- +- +0 +0 +0 +0 +0 +0 +0 +$((2 * N))\$" "$T/st.txt"
kp status --json >"$T/st.json" 2>"$T/st.err"
check "status --json: paused, since when, the lag" \
	test "$(jget "$T/st.json" '(d["bindings"][0]["paused"], d["bindings"][0]["paused_since"][-1], d["bindings"][0]["lag_total"])')" = "(True, 'Z', $((2 * N)))"
check "  still none handled" test "$(handled)" -eq 0

# A reload that changes the binding: its new workers start paused.
printf 'max_attempts = 4\n' >>"$T/pool.conf"
kill -HUP "$KPID"
check "SIGHUP: the binding changed, new workers" wait_for 30 log_has "$T/kpoold1.log" "worker=s changed: starting new workers"
check "  the old workers stopped" \
	wait_for 30 sh -c "[ \$(grep -c 'worker=s#[01] stopped' '$T/kpoold1.log') -eq 2 ]"
check "  the new workers held the jobs of the 4 partitions" wait_for 30 held_in "$T/kpoold1.log" 8
check "  the lag is still $((2 * N))" wait_for 30 lag_is $((2 * N))
check "  none handled" test "$(handled)" -eq 0
check "  /healthz: 200, paused" wait_for 30 health_paused True

# A restart of kpoold: still paused.
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
start_kpoold "$T/pool.conf" "$T/kpoold2.log"
U=$(metrics_url "$T/state") || { not_ok "metrics listen"; exit 1; }
check "restarted: kpoold starts it paused" wait_for 30 log_has "$T/kpoold2.log" "worker=s is paused"
check "  the workers held the jobs of the 4 partitions" wait_for 30 held_in "$T/kpoold2.log" 4
check "  the lag is still $((2 * N))" wait_for 30 lag_is $((2 * N))
check "  none handled" test "$(handled)" -eq 0

# Resumed: every job handled once.
kp resume s >"$T/out"
check "resume: exit 0, it says so" sh -c "[ $? -eq 0 ] && grep -qx 's: resumed' '$T/out'"
check "  the file is gone" test ! -e "$T/state/paused/s"
check "every job is handled once" wait_for 60 once $((2 * N))
check "/metrics: the lag is 0" wait_for 30 lag_is 0
check "/metrics: kpool_binding_paused 0" wait_for 10 metric_paused 0
check "/healthz: 200, not paused" wait_for 10 health_paused False
kp resume s >"$T/out"
check "resuming again: exit 0, not paused" sh -c "[ $? -eq 0 ] && grep -qx 's: not paused' '$T/out'"

# Paused while it runs.
kp pause s >/dev/null
check "paused while running: both workers pause" \
	wait_for 30 sh -c "[ \$(grep -c 'worker=s#[01] paused: the binding is paused' '$T/kpoold2.log') -eq 4 ]"
send $((2 * N + 1)) $((3 * N))
check "  /metrics: $N behind" wait_for 30 lag_is $N
check "  none of them handled" test "$(handled)" -eq $((2 * N))
kp resume s >/dev/null
check "  resumed: every job is handled once" wait_for 60 once $((3 * N))
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
check "no job handled twice" test -z "$(cut -d' ' -f1 "$T/record" | sort | uniq -d)"
