# shellcheck shell=bash
# scripts/bench-lib.sh - what the benchmarks (scripts/bench, scripts/bench-email,
# scripts/bench-webhook) share; sourced, with NAME set to a short name.
# Sets T (a scratch directory, removed at exit) and B (an embedded broker in
# a kpoold of its own, unless BENCH_NO_BROKER is set); pids+=(PID) has PID
# stopped at exit, and a function bench_at_exit, if defined, is called then.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup
scripts/build
T=$(mktemp -d "/tmp/kpool-bench-$NAME.XXXXXX")
chmod 755 "$T"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if declare -F bench_at_exit >/dev/null; then bench_at_exit || true; fi
	rm -rf "$T"
}
trap cleanup EXIT
wait_for() { # SECONDS CMD...
	local end=$(($(date +%s) + $1)); shift
	until "$@"; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.2; done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# BENCH_NO_BROKER=1: no embedded broker; the caller sets B itself.
if [ -z "${BENCH_NO_BROKER:-}" ]; then
	printf '[kafka]\nbootstrap.servers = embedded\n[pool]\nstate_dir = %s/broker\nmetrics_listen =\n' "$T" >"$T/broker.conf"
	build/kpoold/kpoold -c "$T/broker.conf" 2>"$T/broker.log" &
	pids+=($!)
	wait_for 20 test -s "$T/broker/embedded.bootstrap"
	B=$(cat "$T/broker/embedded.bootstrap")
fi

# bench_conf NAME: $T/NAME.conf, one binding NAME on topic NAME with the
# handler lines (handler = ... and its options) read from stdin, and the
# [kafka] lines in BENCH_KAFKA, if any.
bench_conf() {
	local kafka=""
	[ -n "${BENCH_KAFKA:-}" ] && kafka=$BENCH_KAFKA$'\n'
	{
		printf '[kafka]\nbootstrap.servers = %s\n%s[pool]\nstate_dir = %s/%s\nmetrics_listen =\nlog_level = warning\n' "$B" "$kafka" "$T" "$1"
		printf '[worker:%s]\ntopic = %s\n' "$1" "$1"
		cat
	} >"$T/$1.conf"
}

# bench_run NAME N: starts binding NAME, waits for its N jobs, prints
# "JOBS_PER_S PEAK_RSS_KIB" of its worker process.
bench_run() {
	build/kpoold/kpoold -c "$T/$1.conf" 2>"$T/$1.log" &
	local kp=$! rss=0 wpid
	pids+=("$kp")
	until [ "$(sqlite3 "$T/$1/$1.db" 'SELECT coalesce(sum(n), 0) FROM processed_counts' 2>/dev/null || echo 0)" -ge "$2" ]; do
		wpid=$(pgrep -f "kpoold: worker $1#0" | head -1 || true)
		[ -n "$wpid" ] && rss=$(awk '/VmHWM/ {print $2}' "/proc/$wpid/status" 2>/dev/null || echo "$rss")
		sleep 0.2
	done
	read -r first last <<<"$(sqlite3 -separator ' ' "$T/$1/$1.db" 'SELECT min(first_ms), max(last_ms) FROM processed_counts')"
	kill -TERM "$kp"; wait "$kp" || true
	echo "$(python3 -c "print(round(($2 - 1) / max(($last - $first) / 1000, 0.001)))") $rss"
}
