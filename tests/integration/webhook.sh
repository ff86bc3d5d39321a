#!/bin/sh
# The webhook handler against a real HTTP server (scripts/webhook-receiver on
# a free loopback port): URL placeholders, the signature checked with the same
# secret, Idempotency-Key, 503 then 200, 429 and 503 with Retry-After (seconds
# and HTTP date, capped by retry_backoff_max), 400 and 301 dead-lettered with
# the answer, the SSRF guard (a name that resolves to loopback, an address the
# job chose, a host name too long to be one: 269 bytes whose first 255 end in
# an allowed domain), TLS with a CA made here, keep-alive, a batch sent
# concurrently across keys and in order within one, a Retry-After too large
# to multiply, and URLs with credentials that never reach the log nor a
# dead-letter reason.  Where it may (root, unshare), kpoold runs in a mount
# namespace whose /etc/hosts maps the long name and hooks.example.com to
# 127.0.0.1, so that a guard judging part of the name would be seen calling it.
. "$(dirname "$0")/lib.sh"
require_tools
command -v openssl >/dev/null || skip_all "openssl not found (Debian: openssl)"
RECEIVER=$top_srcdir/scripts/webhook-receiver

printf 'whsec-%s\n' "$$" >"$T/secret"
mkdir -p "$T/http" "$T/https"
make_certs "$T/tls"
check "certificates made with openssl" test -s "$T/tls/server.pem"
"$PYTHON3" "$RECEIVER" --dir "$T/http" --secret-file "$T/secret" --quiet &
PIDS="$PIDS $!"
"$PYTHON3" "$RECEIVER" --dir "$T/https" --tls "$T/tls/server.pem" "$T/tls/server.key" --quiet &
PIDS="$PIDS $!"
wait_for 20 test -s "$T/http/port" || { not_ok "the HTTP receiver started"; exit 1; }
wait_for 20 test -s "$T/https/port" || { not_ok "the HTTPS receiver started"; exit 1; }
P=$(cat "$T/http/port")
PS=$(cat "$T/https/port")

plugins "$T/plugins"
start_broker "$T/broker"
check "embedded broker started" test -n "$B"
BOOTSTRAP=$B pool_conf "$T/pool.conf" <<EOF2
[worker:notify]
topic = notifications$R
handler = webhook
url = http://127.0.0.1:$P/notify/{{userId}}?type={{type}}
secret_file = $T/secret
allow_hosts = 127.0.0.1/32
header = Authorization: Bearer t0ken
header = X-Test: yes
[worker:get]
topic = get$R
handler = webhook
method = GET
url = http://127.0.0.1:$P/get/{{eventId}}
secret_file = $T/secret
allow_hosts = 127.0.0.1
[worker:flaky]
topic = flaky$R
handler = webhook
url = http://127.0.0.1:$P/seq/{{codes}}/{{eventId}}
allow_hosts = 127.0.0.1
max_attempts = 3
retry_backoff = 100ms
retry_backoff_max = 3s
[worker:ssrf]
topic = ssrf$R
handler = webhook
url = http://localhost:$P/ssrf/{{eventId}}
max_attempts = 2
retry_backoff = 100ms
[worker:chosen]
topic = chosen$R
handler = webhook
url = http://{{host}}:$P/chosen/{{eventId}}
max_attempts = 2
retry_backoff = 100ms
[worker:longname]
topic = longname$R
handler = webhook
url = http://{{host}}:$P/long/{{eventId}}
allow_hosts = public, *.example.com
max_attempts = 2
retry_backoff = 100ms
[worker:creds]
topic = creds$R
handler = webhook
url = http://kpuser:s3cr3tpass@127.0.0.1:$P/creds/PATHTOKEN/{{eventId}}?key=QUERYTOKEN
allow_hosts = 127.0.0.1
[worker:credhost]
topic = credhost$R
handler = webhook
url = http://kpuser:s3cr3tpass@{{host}}:$P/credhost/PATHTOKEN/{{eventId}}
allow_hosts = 127.0.0.1
max_attempts = 2
retry_backoff = 100ms
[worker:tls]
topic = tls$R
handler = webhook
url = https://127.0.0.1:$PS/tls/{{eventId}}
allow_hosts = 127.0.0.1
ca_file = $T/tls/ca.pem
[worker:untrusted]
topic = untrusted$R
handler = webhook
url = https://localhost:$PS/untrusted/{{eventId}}
allow_hosts = localhost
max_attempts = 2
retry_backoff = 100ms
[worker:batch]
topic = batch$R
handler = webhook
url = http://127.0.0.1:$P/slow/300/batch/{{eventId}}
allow_hosts = 127.0.0.1
concurrency = 4
EOF2
"$KPOOLD" -t -c "$T/pool.conf" >"$T/check.out" 2>&1
check "kpoold -t accepts the webhook bindings" test $? -eq 0
send() { t=$1; shift; "$KPOOL" -c "$T/pool.conf" send "$t$R" "$@" 2>>"$T/send.log"; }

# A batch queued before the pool starts: six jobs of one key (in order, one
# at a time) and twelve without a key (concurrently).
"$PYTHON3" -c "
for i in range(6): print('{\"eventId\":\"k%d\",\"seq\":%d}' % (i, i))" | send batch --key same-key
"$PYTHON3" -c "
for i in range(12): print('{\"eventId\":\"free%d\"}' % i)" | send batch
check "jobs queued before the pool starts" test $? -eq 0

# A name of 269 bytes whose first 255 end in .example.com (labels of 60).
LONG=$("$PYTHON3" -c "print('.'.join(['a' * 60] * 4) + '.example.com' + '.attacker.test')")
# kpoold in a mount namespace of its own where /etc/hosts maps LONG and
# hooks.example.com to 127.0.0.1, when this may be done (root, unshare).
NS=""
if [ -z "${KPOOLD_WRAPPER:-}" ] && command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
	{ cat /etc/hosts; printf '127.0.0.1 %s\n127.0.0.1 hooks.example.com\n' "$LONG"; } >"$T/hosts"
	cat >"$T/kpoold-ns" <<EOF2
#!/bin/sh
exec unshare -m sh -c 'mount --bind "\$0" /etc/hosts && exec "\$@"' "$T/hosts" "$KPOOLD" "\$@"
EOF2
	chmod +x "$T/kpoold-ns"
	NS=yes
fi
real_kpoold=$KPOOLD
[ -n "$NS" ] && KPOOLD=$T/kpoold-ns
start_kpoold "$T/pool.conf" "$T/kpoold.log"
KPOOLD=$real_kpoold
send notifications <<'EOF2'
{"eventId":"n1","userId":"u 1/ä","type":"comment","title":"New reply","message":"Ana replied"}
{"type":"mention","data":{"userId":"u2","title":"You were mentioned"},"metadata":{"eventId":"n2"}}
{"eventId":"n-no-user","type":"comment","title":"nobody to tell"}
EOF2
check "notifications queued" test $? -eq 0
send flaky <<'EOF2'
{"eventId":"f-503","codes":"503,200"}
{"eventId":"f-400","codes":"400"}
{"eventId":"f-301","codes":"301"}
EOF2
printf '{"eventId":"g1"}\n' | send get
printf '{"eventId":"s1"}\n' | send ssrf
printf '{"eventId":"c1","host":"127.0.0.1"}\n' | send chosen
printf '{"eventId":"l1","host":"%s"}\n' "$LONG" | send longname
[ -n "$NS" ] && printf '{"eventId":"l2","host":"hooks.example.com"}\n' | send longname
printf '{"eventId":"cr1"}\n' | send creds
printf '{"eventId":"ch1","host":"127.0.0.1"}\n{"eventId":"ch2","host":"bad host"}\n' | send credhost
printf '{"eventId":"t1","userId":"u9"}\n' | send tls
printf '{"eventId":"t2","userId":"u9"}\n' | send untrusted

reqs() { "$PYTHON3" "$top_srcdir/tests/integration/http_requests.py" "$1/requests.jsonl"; }
# seen PATTERN [N] [DIR]: at least N (1) requests whose line matches PATTERN reached the receiver.
seen() { [ "$(reqs "${3:-$T/http}" | grep -c -- "$1")" -ge "${2:-1}" ]; }
req() { reqs "$T/http" | awk -F'\t' -v p="$1" -v f="$2" 'index($1, p) == 1 { print $f }'; }
dlq() { dlq_field "$1$R.dlq" "$2" "$3"; }
dlq_has() { [ -n "$(dlq "$1" "$2" 1)" ]; }
dlq_error() { dlq "$1" "$2" 9; }
dlq_class() { dlq "$1" "$2" 2; }

# Placeholders, signature, Idempotency-Key, headers, the body as published.
check "the notifications are delivered" wait_for 30 seen '^/notify/u' 2
check "placeholders filled and URL-encoded" test "$(req /notify/u%201 1)" = "/notify/u%201%2F%C3%A4?type=comment"
check "Idempotency-Key is the event id" test "$(req /notify/u%201 2)" = n1
check "the signature verifies with the same secret" test "$(req /notify/u%201 3)" = ok
check "the body is the job as published" test "$(req /notify/u%201 12)" = '{"eventId":"n1","userId":"u 1/ä","type":"comment","title":"New reply","message":"Ana replied"}'
check "header options are sent" test "$(req /notify/u%201 9)|$(req /notify/u%201 10)|$(req /notify/u%201 11)" = "Bearer t0ken|yes|application/json"
check "the envelope form: placeholders from data, then the job" test "$(req /notify/u2 1)" = "/notify/u2?type=mention"
check "the envelope form: Idempotency-Key from metadata.eventId" test "$(req /notify/u2 2)" = n2
check "a missing placeholder value: dead-lettered" wait_for 30 dlq_has notifications n-no-user
check "  saying which" test "$(dlq_error notifications n-no-user)" = "url: no value for {{userId}} in the job"
# the signature is checked here too, not only by the receiver
sig_ok=$("$PYTHON3" - "$T/http/requests.jsonl" "$T/secret" <<'EOF2'
import hashlib, hmac, json, sys
secret = open(sys.argv[2], "rb").readline().strip()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["headers"].get("idempotency-key") == "n1":
        p = dict(x.split("=", 1) for x in r["headers"]["kpool-signature"].split(","))
        mac = hmac.new(secret, p["t"].encode() + b"." + r["body"].encode(), hashlib.sha256)
        print("yes" if hmac.compare_digest(mac.hexdigest(), p["v1"]) else "no")
EOF2
)
check "Kpool-Signature is t=UNIX,v1=HMAC-SHA256(t.body)" test "$sig_ok" = yes
check "method = GET: sent" wait_for 30 seen '^/get/g1'
check "  no body, and the signature covers none" test "$(req /get/g1 3)|$(req /get/g1 12)" = "ok|"
printf '{"eventId":"n1","userId":"again","type":"comment"}\n' | send notifications
printf '{"eventId":"n3","userId":"u3","type":"comment"}\n' | send notifications
check "a job after the duplicate is delivered" wait_for 30 seen '^/notify/u3'
check "a duplicate event id is not sent again" test -z "$(req /notify/again 1)"

# Outcomes.
check "503 then 200: delivered" wait_for 30 seen '^/seq/503%2C200/f-503' 2
check "  sent twice, the second as attempt 2" test "$(req /seq/503%2C200/ 7 | tr '\n' ' ')" = "503 200 "
check "  not dead-lettered" sh -c "! '$KCAT' -C -b '$B' -t 'flaky$R.dlq' -e -q -f '%h\n' 2>/dev/null | grep -q 'event-id=f-503,'"
# One at a time from here, so that each is the first of its batch to retry:
# the one whose wait the partition keeps (those behind it run after it).
printf '{"eventId":"f-429","codes":"429+2,200"}\n' | send flaky
check "429 with Retry-After: 2: delivered" wait_for 30 seen '^/seq/429%2B2%2C200/' 2
gap() { req "$1" 5 | "$PYTHON3" -c 'import sys; t = [float(x) for x in sys.stdin]; print(int((t[1] - t[0]) * 1000) if len(t) > 1 else -1)'; }
g=$(gap /seq/429%2B2%2C200/)
check "  the retry waited as asked, not retry_backoff's 100ms (${g}ms)" test "$g" -ge 1900
check "  the log says so" grep -q "event=f-429: HTTP 429.*as the handler asked" "$T/kpoold.log"
printf '{"eventId":"f-date","codes":"503+d3,200"}\n' | send flaky
check "503 with Retry-After as an HTTP date: delivered" wait_for 30 seen '^/seq/503%2Bd3%2C200/' 2
g=$(gap /seq/503%2Bd3%2C200/)
check "  the retry waited for the date (${g}ms)" test "$g" -ge 1900
printf '{"eventId":"f-capped","codes":"429+3600,200"}\n' | send flaky
check "Retry-After: 3600 is capped by retry_backoff_max = 3s" wait_for 30 seen '^/seq/429%2B3600%2C200/' 2
g=$(gap /seq/429%2B3600%2C200/)
check "  waited between 3s and 10s (${g}ms)" sh -c "[ $g -ge 2900 ] && [ $g -lt 10000 ]"
# 2^63 - 1 seconds: as milliseconds it does not fit in 64 bits.
printf '{"eventId":"f-huge","codes":"503+9223372036854775807,200"}\n' | send flaky
check "Retry-After: 9223372036854775807: delivered" wait_for 30 seen '^/seq/503%2B9223372036854775807%2C200/' 2
g=$(gap /seq/503%2B9223372036854775807%2C200/)
check "  capped by retry_backoff_max = 3s, waited between 3s and 10s (${g}ms)" sh -c "[ $g -ge 2900 ] && [ $g -lt 10000 ]"
check "  no worker of the binding died" sh -c "! grep -E 'worker=flaky#[0-9]+ pid=[0-9]+ (exited|killed)' '$T/kpoold.log'"
check "400: dead-lettered at once" wait_for 30 dlq_has flaky f-400
check "  as fail, attempt 1" test "$(dlq_class flaky f-400) $(req /seq/400/ 8)" = "fail 1"
err=$(dlq_error flaky f-400)
check "  the reason: status and the first 200 bytes of the body" test "$err" = "HTTP 400: $(printf '{"error": "scripted answer 400", "detail": "%s' "$(printf '%*s' 400 '' | tr ' ' x)" | cut -c1-200)"
check "301: dead-lettered, the redirect not followed" wait_for 30 dlq_has flaky f-301
check "  as fail" test "$(dlq_class flaky f-301) $(req /seq/301/ 7 | wc -l)" = "fail 1"
printf '{"eventId":"f-always","codes":"503"}\n' | send flaky
check "503 every time: dead-lettered after max_attempts" wait_for 60 dlq_has flaky f-always
check "  as retries-exhausted, sent 3 times" test "$(dlq_class flaky f-always) $(req /seq/503/ 7 | wc -l)" = "retries-exhausted 3"

# The SSRF guard: checked on the address a name resolves to.
check "a URL that resolves to 127.0.0.1, no allow_hosts: dead-lettered" wait_for 30 dlq_has ssrf s1
check "  as fail, with the reason" sh -c "[ '$(dlq_class ssrf s1)' = fail ] && echo '$(dlq_error ssrf s1)' | grep -q '^refused: localhost resolves to .*, which allow_hosts does not allow (public addresses only)'"
check "  nothing reached the server" test -z "$(req /ssrf 1)"
check "an address the job chose: refused" wait_for 30 dlq_has chosen c1
check "  saying so" sh -c "echo '$(dlq_error chosen c1)' | grep -q '^refused: 127.0.0.1 resolves to 127.0.0.1'"
check "  nothing reached the server" test -z "$(req /chosen 1)"
# A host name too long to be one is refused whole, never judged by a part of it.
check "a host name of 269 bytes under an allowed domain: dead-lettered" wait_for 30 dlq_has longname l1
check "  as fail, attempt 1" test "$(dlq_class longname l1) $(dlq longname l1 3)" = "fail 1"
check "  saying why" test "$(dlq_error longname l1)" = "url: a host name of 269 bytes (at most 253): $(printf '%s' "$LONG" | cut -c1-40)..."
check "  nothing reached the server" test -z "$(req /long/l1 1)"
if [ -n "$NS" ]; then
	check "  (a name that fits, hooks.example.com, is allowed by name: delivered)" wait_for 30 seen '^/long/l2'
else
	ok "a name that fits is allowed by name # SKIP needs root and unshare -m (a mount namespace with its own /etc/hosts)"
fi

# Credentials in the URL: used, and never logged nor put in a reason.
check "a URL with userinfo: delivered" wait_for 30 seen '^/creds/PATHTOKEN/cr1'
check "  with its credentials as Basic auth" test "$(req /creds/PATHTOKEN/cr1 9)" = "Basic $(printf 'kpuser:s3cr3tpass' | base64)"
check "  the log names the URL by its origin" grep -q "worker=creds#0 webhook: POST http://127.0.0.1:$P\$" "$T/kpoold.log"
check "  and a templated host's by its template" grep -q "worker=credhost#0 webhook: POST http://{{host}}:$P\$" "$T/kpoold.log"
check "a templated host with userinfo: delivered" wait_for 30 seen '^/credhost/PATHTOKEN/ch1'
check "  a value that makes it no URL: dead-lettered" wait_for 30 dlq_has credhost ch2
check "  saying why, without the URL" test "$(dlq_class credhost ch2)|$(dlq_error credhost ch2)" = "fail|url: not a URL (Bad hostname)"
SECRETS='kpuser|s3cr3tpass|PATHTOKEN|QUERYTOKEN'
absent() { ! grep -E "$SECRETS" "$@"; }
check "no user name, password, path or query token in the log" absent "$T/kpoold.log" "$T/check.out"
for t in creds credhost longname; do
	"$KCAT" -C -b "$B" -t "$t$R.dlq" -e -q -f '%h\n' 2>/dev/null
done >"$T/reasons.out"
check "  nor in a dead-letter reason" absent "$T/reasons.out"

sed "s|^url = http://127.0.0.1:$P/notify.*|url = http://127.0.0.1:$P/fixed|; s|^allow_hosts = 127.0.0.1/32||" "$T/pool.conf" >"$T/literal.conf"
line=$(grep -n "^url = http://127.0.0.1:$P/fixed" "$T/literal.conf" | cut -d: -f1)
"$KPOOLD" -t -c "$T/literal.conf" >"$T/literal.out" 2>&1
rc=$?
check "a fixed URL to a private address without allow_hosts: kpoold -t refuses" test $rc -ne 0
check "  naming file, line and key" grep -q "$T/literal.conf:$line: \[worker:notify\] url: webhook refused: url: 127.0.0.1 is not a public address" "$T/literal.out"

# TLS: a server certificate of a CA made here.
check "TLS with ca_file: delivered" wait_for 30 seen '^/tls/t1' 1 "$T/https"
check "TLS without the CA: dead-lettered after retries" wait_for 60 dlq_has untrusted t2
check "  the reason says why" sh -c "[ '$(dlq_class untrusted t2)' = retries-exhausted ] && echo '$(dlq_error untrusted t2)' | grep -q 'localhost: SSL certificate problem: unable to get local issuer certificate'"
check "  nothing reached the server" test -z "$(reqs "$T/https" | grep untrusted)"

# The batch: one key in order, one at a time; different keys at once; keep-alive.
check "the batch is delivered" wait_for 60 seen '^/slow/300/batch/' 18
reqs "$T/http" | grep '^/slow/300/batch/' >"$T/batch.tsv"
check "jobs of one key arrive in their order" test "$(awk -F'\t' '$2 ~ /^k/ { printf "%s ", $2 }' "$T/batch.tsv")" = "k0 k1 k2 k3 k4 k5 "
overlap() { # PATTERN: how many pairs of matching requests were in flight at once
	awk -F'\t' -v p="$1" '$2 ~ p { s[n] = $5; e[n] = $6; n++ }
		END { c = 0; for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (s[i] < e[j] && s[j] < e[i]) c++; print c }' "$T/batch.tsv"
}
check "jobs of one key never in flight together" test "$(overlap '^k')" -eq 0
o=$(overlap '^free')
check "jobs without a key sent concurrently ($o overlapping pairs)" test "$o" -gt 0
conns=$(cut -f4 "$T/batch.tsv" | sort -u | wc -l)
check "connections kept alive: $conns for 18 requests" test "$conns" -le 8
check "each sent once" test "$(cut -f2 "$T/batch.tsv" | sort -u | wc -l)" -eq 18
check "no job of the batch was dead-lettered" sh -c "! grep -q 'worker=batch#0.*dead-lettered' '$T/kpoold.log'"
