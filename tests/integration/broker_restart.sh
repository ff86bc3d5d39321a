#!/bin/sh
# The embedded broker dies: kpoold starts a new one without its loop waiting
# for it.  While the new broker hangs before it can listen, /metrics and
# /healthz answer at once and say so; a broker that does not start in time is
# killed and started again; once one is up the workers run on it.
. "$(dirname "$0")/lib.sh"
require_tools
[ -n "$REAL" ] && skip_all "the embedded broker only"

# listener PORT: the pid of the process listening on PORT, found through
# /proc (the socket's inode among its descriptors), as under valgrind too.
listener() {
	"$PYTHON3" - "$1" <<'PY'
import os, sys
port, inodes = int(sys.argv[1]), set()
for f in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(f).readlines()[1:]:
        p = line.split()
        if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
            inodes.add("socket:[%s]" % p[9])
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if any(os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes for fd in os.listdir("/proc/%s/fd" % pid)):
            print(pid)
            break
    except OSError:
        pass
PY
}

plugins "$T/plugins"
pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:w]
topic = jobs
handler = probe
record = $T/record
EOF2
start_kpoold "$T/pool.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
U=$(metrics_url "$T/state")
broker_up() { http "$U/metrics" | awk '$1 == "kpool_embedded_broker_up" { print $2 }'; }
printf '{"eventId":"a%d"}\n' 1 2 3 | "$KPOOL" -c "$T/pool.conf" send jobs 2>/dev/null
check "jobs flow on the first broker" wait_for 60 at_least 3 lines_in "$T/record"
check "/metrics: the broker is up" test "$(broker_up)" = 1

# The next broker hangs opening the file it writes its address through (a
# FIFO nobody reads), as a broker that cannot start would.
mkfifo "$T/state/embedded.bootstrap.tmp"
broker=$(listener "${B##*:}")
check "the broker is the process listening on $B" test -n "$broker"
kill -KILL "$broker"
check "the broker's death is logged" wait_for 20 log_has "$T/kpoold.log" "embedded broker died"
if [ -z "${KPOOLD_WRAPPER:-}" ]; then # a wrapper owns argv: no titles then
	check "a new broker is started" wait_for 20 sh -c "pgrep -P $KPID -f 'kpoold: broker' | grep -vx $broker >/dev/null"
fi

# fast URL: the body of URL, within 5 s (a loop that waited for the broker
# would answer after 15 s).
fast() {
	start=$(date +%s%N)
	http "$1" >"$T/fast.body"
	[ $(($(date +%s%N) - start)) -lt 5000000000 ]
}
slow=0
for i in 1 2 3 4 5; do
	fast "$U/metrics" && [ "$(cat "$T/http.code")" = 200 ] || { slow=$((slow + 1)); diag "metrics: $(cat "$T/http.code") after $((($(date +%s%N) - start) / 1000000)) ms"; }
	fast "$U/healthz" && [ "$(cat "$T/http.code")" = 503 ] || { slow=$((slow + 1)); diag "healthz: $(cat "$T/http.code") after $((($(date +%s%N) - start) / 1000000)) ms"; }
	sleep 0.5 # spread the requests over the broker's start
done
check "while the broker starts, /metrics and /healthz answer within 5 s ($slow of 10 did not)" test "$slow" -eq 0
http "$U/healthz" >"$T/healthz"
check "/healthz: 503, the embedded broker starting" sh -c "[ \"\$(cat '$T/http.code')\" = 503 ] && grep -q '\"embedded_broker\":\"starting\"' '$T/healthz'"
check "/metrics: the broker is not up" test "$(broker_up)" = 0

rm -f "$T/state/embedded.bootstrap.tmp"
check "a broker that does not start in time is killed" wait_for 40 log_has "$T/kpoold.log" "did not start within 15s; killing it"
check "the next one comes up" wait_for 30 log_has "$T/kpoold.log" "embedded broker up again; restarting the workers"
up() { [ "$(broker_up)" = 1 ]; }
check "/metrics: the broker is up again" wait_for 10 up
printf '{"eventId":"b%d"}\n' 1 2 3 | "$KPOOL" -c "$T/pool.conf" send jobs 2>/dev/null
check "jobs flow on the new broker" wait_for 60 sh -c "[ \$(grep -c '^b' '$T/record') -ge 3 ]"
healthy() { http "$U/healthz" >/dev/null; [ "$(cat "$T/http.code")" = 200 ]; }
check "/healthz: 200 again" wait_for 30 healthy
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
