# lib.sh - helpers for the integration tests: TAP output, waiting on
# conditions with deadlines, and starting kpoold on a test conf.
# Sourced by each tests/integration/*.sh; needs top_builddir and top_srcdir.

set -u
: "${top_builddir:?run through make check, or set top_builddir}"
: "${top_srcdir:?run through make check, or set top_srcdir}"
KPOOLD=$top_builddir/kpoold/kpoold
KPOOL=$top_builddir/kpool/kpool
KCAT=${KCAT:-$(command -v kcat || true)}
PYTHON3=${PYTHON3:-$(command -v python3 || true)}
T=$(mktemp -d "${TMPDIR:-/tmp}/kpool-test.XXXXXX")
PIDS=""
KDIRS=""
# The broker: KPOOL_TEST_BROKERS=host:port runs the scenarios on that Kafka
# (the real tier: scripts/test starts one with scripts/kafka-dev), else each
# test runs its own embedded broker.  A real broker is shared by the tests and
# keeps what earlier runs left, so there topic names carry the suffix R.
REAL=${KPOOL_TEST_BROKERS:-}
R=""
[ -n "$REAL" ] && R="-$(date +%s)-$$"
tap_n=0
tap_failed=0
# Under scripts/valgrind the kpool command runs under the same tool as kpoold.
if [ -n "${KPOOLD_WRAPPER:-}" ]; then
	printf '#!/bin/sh\nexec %s --log-file=%s/valgrind.%%p.log %s "$@"\n' \
		"$KPOOLD_WRAPPER" "$T" "$top_builddir/kpool/kpool" >"$T/kpool"
	chmod +x "$T/kpool"
	KPOOL=$T/kpool
fi

cleanup() {
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for d in $KDIRS; do KAFKA_DEV_DIR=$d "$top_srcdir/scripts/kafka-dev" stop; done
	for p in $PIDS; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$p" 2>/dev/null
	done
	# Whatever a sanitizer or UBSan said in any kpoold log fails the test.
	if [ -z "${tap_planned:-}" ]; then
		reports=$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:|ERROR SUMMARY: [1-9]|definitely lost: [1-9]' "$T"/*.log 2>/dev/null)
		if [ -n "$reports" ]; then
			not_ok "no sanitizer reports in the logs"
			grep -hE -A5 'Sanitizer|runtime error:|ERROR SUMMARY|definitely lost' $reports | sed 's/^/# /'
		else
			ok "no sanitizer reports in the logs"
		fi
		echo "1..$tap_n"
	fi
	if [ "$tap_failed" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$T"; else echo "# kept $T"; fi
}
trap cleanup EXIT

ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
not_ok() { tap_n=$((tap_n + 1)); tap_failed=1; echo "not ok $tap_n - $*"; }
skip_all() { tap_planned=1; echo "1..0 # SKIP $*"; exit 0; }
diag() { echo "# $*"; }
# check DESC CMD...: one test point from a command's exit status.
check() {
	desc=$1; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds; 1 if the deadline passes.
wait_for() {
	deadline=$(($(date +%s) + $1)); shift
	until "$@"; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.1
	done
	return 0
}

# need_real: skips the test unless the real tier runs.
need_real() {
	[ -n "$REAL" ] || skip_all "needs a real Kafka broker: KPOOL_TEST_BROKERS=host:port (scripts/test starts one with scripts/kafka-dev)"
}

# kafka_dev DIR [ARGS]: a broker of the test's own (scripts/kafka-dev start
# ARGS, state in DIR), stopped when the test ends; prints its address.
kafka_dev() {
	d=$1; shift
	KDIRS="$KDIRS $d"
	KAFKA_DEV_DIR=$d "$top_srcdir/scripts/kafka-dev" start "$@" 2>>"$T/kafka-dev.log"
}

require_tools() {
	[ -n "$KCAT" ] || skip_all "kcat not found (Debian: kcat; scripts/setup installs it)"
	[ -n "$PYTHON3" ] || skip_all "python3 not found"
}

# plugins DIR: a plugin_dir holding the shipped and the fixture plugins.
plugins() {
	mkdir -p "$1"
	for so in "$top_builddir"/plugins/.libs/*.so "$top_builddir"/tests/plugins/.libs/*.so; do
		[ -e "$so" ] && ln -sf "$so" "$1/"
	done
	return 0
}

# make_certs DIR: a test CA (DIR/ca.pem) and a server certificate it signed
# for 127.0.0.1 and localhost (DIR/server.pem, DIR/server.key), with openssl;
# its output goes to DIR/openssl.log.  1 if openssl fails.
make_certs() {
	mkdir -p "$1"
	(
		cd "$1" || exit 1
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=kpool-test-ca &&
			openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext &&
			openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
				-extfile san.ext -out server.pem
	) >"$1/openssl.log" 2>&1
}

# make_topic PARTITIONS TOPIC...: on the real tier, creates the topics, as the
# applications' deploy would.  A kpoold with bootstrap.servers = embedded makes
# its conf's topics itself; for a conf pointing at another kpoold's embedded
# broker ($BOOTSTRAP), they are made there by asking for them (librdkafka 2.8's
# consumers no longer make them on first use).  Nothing listening there (a test
# of an unreachable broker) is not an error: such a test makes them later.
make_topic() {
	if [ -n "$REAL" ]; then
		"$top_builddir/tests/helpers/mktopic" "$REAL" "$@"
	elif [ -n "${BOOTSTRAP:-}" ]; then
		"$top_builddir/tests/helpers/mktopic" --auto "$BOOTSTRAP" "$@" 2>"$T/mktopic.err" ||
			sed 's/^/# /' "$T/mktopic.err"
	fi
}

# hold_requests API_KEY: on the real tier, stands between kpool and the broker
# on every connection (scripts/kafka-dev's proxied listener) and holds every
# request with that API key unanswered, noting each in $T/held; sets PROXY to
# the address to give kpool.  Tests take the listener in turn (a lock in
# KAFKA_DEV_DIR).  Skips the test without that listener.
hold_requests() { proxy --hold-api "$1"; }

# refuse_topics ERR: as hold_requests, but every CreateTopics is answered
# with Kafka error code ERR (29: not authorized), as by a broker's ACLs.
refuse_topics() { proxy --refuse-topics "$1"; }

proxy() {
	need_real
	d=${KAFKA_DEV_DIR:-}
	[ -n "$d" ] && [ -s "$d/bootstrap.proxied" ] && [ -s "$d/proxied.target" ] ||
		skip_all "needs scripts/kafka-dev's proxied listener (\$KAFKA_DEV_DIR/bootstrap.proxied; scripts/test sets KAFKA_DEV_DIR)"
	PROXY=$(cat "$d/bootstrap.proxied")
	"$PYTHON3" "$top_srcdir/tests/integration/tcpfwd.py" "${PROXY##*:}" "$(cat "$d/proxied.target")" \
		"$@" --held "$T/held" --lock "$d/proxied.lock" --ready "$T/fwd.ready" &
	PIDS="$PIDS $!"
	wait_for 300 test -e "$T/fwd.ready" || { not_ok "the proxied listener is ours within 300 s"; exit 1; }
}

# pool_conf FILE [LINE...]: writes a conf to FILE: the embedded broker (or
# $BOOTSTRAP, or the real tier's), plugin_dir $T/plugins, state_dir $T/state,
# no metrics; each LINE ("key = value") is added to [pool] and wins over
# those; stdin follows (the [worker:NAME] sections), whose topics are made.
pool_conf() {
	f=$1; shift
	{
		printf '[kafka]\nbootstrap.servers = %s\n[pool]\nplugin_dir = %s\nstate_dir = %s\nmetrics_listen =\n' \
			"${BOOTSTRAP:-${REAL:-embedded}}" "$T/plugins" "$T/state"
		for line in "$@"; do printf '%s\n' "$line"; done
		# A real broker is shared by every test (and run): a binding without
		# a group of its own gets a ledger topic of its own.
		awk -v r="$R" '{ line[NR] = $0 } /^\[worker:/ { s = NR } /^(group|ledger_topic) *=/ { has[s] = 1 }
			END { for (i = 1; i <= NR; i++) { print line[i]
				if (r != "" && line[i] ~ /^\[worker:/ && !has[i]) {
					n = line[i]; sub(/^\[worker:/, "", n); sub(/\].*$/, "", n)
					print "ledger_topic = kpool-" n r ".ledger" } } }'
	} >"$f"
	# shellcheck disable=SC2046
	make_topic 4 $(sed -n 's/^topic *= *//p' "$f" | tr ',' ' ')
	# Another kpoold's embedded broker does not answer CreateTopics on every
	# librdkafka version (2.8's never does): the ledger and dead-letter topics
	# are made there as the others, so no worker waits on such a request.
	# shellcheck disable=SC2046
	[ -z "$REAL" ] && [ -n "${BOOTSTRAP:-}" ] && make_topic 4 $(ledger_topics "$f") $(dlq_topics "$f")
	return 0
}

# dlq_topics CONF: the dead-letter topic of each topic of each binding.
dlq_topics() {
	awk '/^\[worker:/ { flush(); d = "" } /^topic *=/ { sub(/^topic *= */, ""); t = $0 }
		/^dead_letter_topic *=/ { sub(/^dead_letter_topic *= */, ""); d = $0 }
		function flush(  n, a, i) { n = split(t, a, / *, */); for (i = 1; i <= n; i++) if (a[i] != "") print (d != "" ? d : a[i] ".dlq"); t = "" }
		END { flush() }' "$1" | sort -u
}

# ledger_topics CONF: the ledger topic of each binding (ledger_topic, else GROUP.ledger).
ledger_topics() {
	awk '/^\[worker:/ { if (n) print t; n = substr($1, 9); sub(/\]$/, "", n); t = "kpool-" n ".ledger"; lt = 0 }
		/^group *=/ { sub(/^group *= */, ""); if (!lt) t = $0 ".ledger" }
		/^ledger_topic *=/ { sub(/^ledger_topic *= */, ""); t = $0; lt = 1 }
		END { if (n) print t }' "$1"
}

# start_broker DIR: a kpoold with the embedded broker and no workers, whose
# state is DIR, so that the broker outlives the pools under test; sets B to
# its address once it listens (1 if it does not).  $T/broker.conf is its conf.
# On the real tier, B is that broker.
start_broker() {
	if [ -n "$REAL" ]; then
		printf '[kafka]\nbootstrap.servers = %s\n[pool]\nstate_dir = %s\nmetrics_listen =\n' "$REAL" "$1" >"$T/broker.conf"
		B=$REAL
		return 0
	fi
	printf '[kafka]\nbootstrap.servers = embedded\n[pool]\nstate_dir = %s\nmetrics_listen =\n' "$1" >"$T/broker.conf"
	start_kpoold "$T/broker.conf" "$T/broker.log"
	B=$(bootstrap "$1")
}

# start_kpoold CONF LOG: starts kpoold in the background; sets KPID.
# KPOOLD_WRAPPER runs kpoold under a tool, e.g. "valgrind --leak-check=full"
# (scripts/valgrind does that), whose per-process logs go to $T/valgrind.PID.log.
start_kpoold() {
	# shellcheck disable=SC2086
	${KPOOLD_WRAPPER:+$KPOOLD_WRAPPER --log-file=$T/valgrind.%p.log} "$KPOOLD" -c "$1" >"$2" 2>&1 &
	KPID=$!
	PIDS="$PIDS $KPID"
}

# stop_kpoold PID [SECONDS]: SIGTERM and wait; returns kpoold's exit status.
stop_kpoold() {
	kill -TERM "$1" 2>/dev/null
	wait "$1"
}

# bootstrap STATE_DIR: the embedded broker's address, once it is written (the real tier's broker there).
bootstrap() {
	[ -n "$REAL" ] && { echo "$REAL"; return 0; }
	wait_for 20 test -s "$1/embedded.bootstrap" && cat "$1/embedded.bootstrap"
}

# metrics_url STATE_DIR: where kpoold serves /metrics, once it listens.
metrics_url() {
	wait_for 20 test -s "$1/metrics.address" && echo "http://$(cat "$1/metrics.address")"
}

# http URL: prints the body; the status code goes to $T/http.code.
http() {
	"$PYTHON3" - "$1" "$T/http.code" <<'PY'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5); code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
except Exception as e:
    code, body = 0, str(e).encode()
open(sys.argv[2], "w").write(str(code))
sys.stdout.write(body.decode())
PY
}

# metric URL NAME LABELS: the value of one sample, e.g. metric $u kpool_jobs_total 'worker="w",result="done"'.
metric() {
	http "$1/metrics" | awk -v want="$2{$3}" '$1 == want { print $2 }'
}

# log_has LOG TEXT: true once TEXT is in the log.
# joined LOG NAME N: N processes of binding NAME hold partitions (their last assignments).
joined() {
	[ "$(grep -o "worker=$2#[0-9]* assigned partitions=[0-9]*" "$1" |
		awk -F'[ =]' '{ last[$2] = $NF } END { n = 0; for (w in last) if (last[w] > 0) n++; print n }')" = "$3" ]
}
log_has() { grep -qF -- "$2" "$1"; }

# lines_in FILE: how many lines FILE has (0 if it does not exist).
lines_in() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }

# at_least N CMD...: true when CMD prints a number >= N.
at_least() { n=$1; shift; v=$("$@"); [ "${v:-0}" -ge "$n" ]; }

# for_people FILE: valid UTF-8 without a control character but newline: no
# C0 (ESC, BEL, CR, ...), no DEL, no C1 (U+0080-U+009F, such as CSI).
for_people() {
	"$PYTHON3" - "$1" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
try:
    s = b.decode("utf-8")
except UnicodeDecodeError as e:
    sys.exit("%s: not UTF-8: %s" % (sys.argv[1], e))
bad = [(i, hex(ord(c))) for i, c in enumerate(s) if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]
if bad:
    sys.exit("%s: control characters at %s" % (sys.argv[1], bad[:5]))
PY
}

# dlq_json BOOTSTRAP TOPIC: every record of TOPIC, one JSON object per line (kcat -J).
dlq_json() {
	"$KCAT" -C -b "$1" -t "$2" -e -J -q 2>/dev/null
}

# dlq_field TOPIC EVENT FIELD: a field of EVENT's record on the dead-letter
# topic TOPIC of broker $B, as dlq_dump.py numbers them (2 class, 3 attempts,
# 9 error); nothing if there is none.
dlq_field() {
	dlq_json "$B" "$1" | "$PYTHON3" "$top_srcdir/tests/integration/dlq_dump.py" |
		awk -F'\t' -v id="$2" -v f="$3" '$1 == id { print $f }'
}

