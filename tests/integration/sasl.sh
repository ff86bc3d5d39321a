#!/bin/sh
# Security pass-through on real Kafka: a listener with SASL/SCRAM-SHA-256 over
# TLS (a CA and a broker certificate made here with openssl).  kpool connects
# with security.protocol, sasl.*, ssl.* from the conf, the password read from
# sasl.password.file; with a wrong password kpoold stays up and /healthz and
# the log say what failed and where.
. "$(dirname "$0")/lib.sh"
require_tools
need_real
command -v openssl >/dev/null || skip_all "openssl not found (Debian: openssl)"

# A CA, and a broker certificate for 127.0.0.1 signed by it.
make_certs "$T/tls" && cat "$T/tls/server.key" "$T/tls/server.pem" >"$T/tls/keystore.pem"
check "certificates made with openssl" test -s "$T/tls/keystore.pem"

KB=$(kafka_dev "$T/kafka" --sasl-ssl "$T/tls/keystore.pem" --scram-user alice:alice-secret)
check "a broker with a SASL_SSL listener started" test -n "$KB"
[ -n "$KB" ] || exit 1
REAL=$KB
S=$(cat "$T/kafka/bootstrap.sasl_ssl")
make_topic 4 "secure$R"

plugins "$T/plugins"
printf 'alice-secret\n' >"$T/password"
printf 'not-her-password\n' >"$T/wrong-password"
chmod 600 "$T/password" "$T/wrong-password"
# conf FILE PASSWORD_FILE STATE_DIR
conf() {
	cat >"$1" <<EOF2
[kafka]
bootstrap.servers = $S
security.protocol = SASL_SSL
sasl.mechanisms = SCRAM-SHA-256
sasl.username = alice
sasl.password.file = $2
ssl.ca.location = $T/tls/ca.pem
[pool]
plugin_dir = $T/plugins
state_dir = $3
metrics_listen = 127.0.0.1:0
[worker:a]
topic = secure$R
handler = probe
record = $T/record
EOF2
}
conf "$T/pool.conf" password "$T/state"
check "the conf passes kpoold -t" "$KPOOLD" -t -c "$T/pool.conf"
check "and holds no password" sh -c "! grep -q alice-secret '$T/pool.conf'"
start_kpoold "$T/pool.conf" "$T/kpoold.log"
U=$(metrics_url "$T/state")
printf '{"eventId":"s%d"}\n' 1 2 3 | "$KPOOL" -c "$T/pool.conf" send "secure$R" 2>"$T/send.log"
check "kpool send authenticates with the password file" test $? -eq 0
check "jobs flow over SASL_SSL" wait_for 60 at_least 3 lines_in "$T/record"
healthy() { http "$U/healthz" >"$T/healthz"; [ "$(cat "$T/http.code")" = 200 ]; }
check "/healthz answers 200" wait_for 20 healthy
check "the records really went over TLS with SCRAM" sh -c \
	"'$KCAT' -C -b '$S' -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-256 \
	-X sasl.username=alice -X sasl.password=alice-secret -X ssl.ca.location='$T/tls/ca.pem' \
	-t 'secure$R' -e -q | grep -c eventId | grep -qx 3"
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0

# The wrong password: kpoold stays up and says so.
conf "$T/wrong.conf" wrong-password "$T/wrong"
start_kpoold "$T/wrong.conf" "$T/wrong.log"
WRONG=$KPID
U=$(metrics_url "$T/wrong")
auth_failed() {
	http "$U/healthz" >"$T/healthz"
	[ "$(cat "$T/http.code")" = 503 ] && grep -q 'Authentication failed' "$T/healthz"
}
check "/healthz answers 503: authentication failed" wait_for 30 auth_failed
diag "healthz: $(cat "$T/healthz")"
check "the log names the broker" log_has "$T/wrong.log" "sasl_ssl://$S/bootstrap: SASL authentication error"
check "kpoold stays up" kill -0 "$WRONG"
check "the worker stays up" sh -c "pgrep '^worker a#0' >/dev/null"
stop_kpoold "$WRONG"
check "kpoold stops with status 0" test $? -eq 0
