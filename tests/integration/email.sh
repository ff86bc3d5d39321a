#!/bin/sh
# The email handler against a real SMTP server (aiosmtpd on a free loopback
# port): templates with non-ASCII data, text+html, the envelope form, 4xx then
# success, 5xx dead-lettered with the reply, CR/LF in subject and address
# dead-lettered with nothing reaching the server, STARTTLS required against a
# server without it, one SMTP session per batch, the file:// transport,
# STARTTLS with AUTH against a server with a certificate made here, long
# headers folded (ten long recipients, 2,000-character subjects), and a
# connect bounded by the timeout against a port that drops SYNs.
. "$(dirname "$0")/lib.sh"
require_tools
SMTPD_PYTHON=""
for p in /usr/bin/python3 "$PYTHON3"; do
	"$p" -c 'import aiosmtpd' 2>/dev/null && { SMTPD_PYTHON=$p; break; }
done
[ -n "$SMTPD_PYTHON" ] || skip_all "aiosmtpd not found (Debian: python3-aiosmtpd; scripts/setup installs it)"

mkdir -p "$T/smtp" "$T/tpl"
"$SMTPD_PYTHON" "$top_srcdir/tests/integration/smtp_server.py" "$T/smtp" \
	--reject 'nobody@example.com=550 5.1.1 no such user here' --tempfail-once flaky@example.com &
PIDS="$PIDS $!"
wait_for 20 test -s "$T/smtp/port" || { not_ok "the SMTP server started"; exit 1; }
SMTP=127.0.0.1:$(cat "$T/smtp/port")

# A second server: STARTTLS with a certificate of a CA made here, AUTH required.
mkdir -p "$T/smtps"
make_certs "$T/tls"
"$SMTPD_PYTHON" "$top_srcdir/tests/integration/smtp_server.py" "$T/smtps" \
	--starttls "$T/tls/server.pem" "$T/tls/server.key" --auth kpool:s3cret &
PIDS="$PIDS $!"
wait_for 20 test -s "$T/smtps/port" || { not_ok "the STARTTLS SMTP server started"; exit 1; }
SMTPS=127.0.0.1:$(cat "$T/smtps/port")
CLOSED=$("$PYTHON3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# A port whose SYNs are dropped, as by a host behind a firewall that drops packets.
mkdir -p "$T/blackhole"
"$SMTPD_PYTHON" "$top_srcdir/tests/integration/smtp_server.py" "$T/blackhole" --blackhole &
PIDS="$PIDS $!"
wait_for 20 sh -c "test -s '$T/blackhole/port' || test -s '$T/blackhole/failed'"
BLACKHOLE=$(cat "$T/blackhole/port" 2>/dev/null || echo "$CLOSED")
printf 's3cret\n' >"$T/smtp-password"
printf 'wrong\n' >"$T/wrong-password"

printf 'Subject: Welcome, {{name}}!\nHello {{name}},\nyour plan is {{plan.name}}.\n' >"$T/tpl/welcome.txt"
printf '<p>Hello <b>{{name}}</b>, plan {{plan.name}}</p>\n' >"$T/tpl/welcome.html"
printf 'Hi {{user.first}}, nothing but text.\n' >"$T/tpl/plain.txt"

plugins "$T/plugins"
pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:mail]
topic = email-queue$R
handler = email
smtp_url = smtp://$SMTP
from = "Example App" <noreply@example.com>
template_dir = $T/tpl
max_attempts = 3
retry_backoff = 200ms
retry_backoff_max = 400ms
[worker:tlsmail]
topic = tls-queue$R
handler = email
smtp_url = smtp://$SMTP
starttls = required
from = noreply@example.com
max_attempts = 2
retry_backoff = 100ms
[worker:secure]
topic = secure-queue$R
handler = email
smtp_url = smtp://$SMTPS
starttls = required
ca_file = $T/tls/ca.pem
username = kpool
password_file = $T/smtp-password
from = noreply@example.com
[worker:untrusted]
topic = untrusted-queue$R
handler = email
smtp_url = smtp://$SMTPS
starttls = required
username = kpool
password_file = $T/smtp-password
from = noreply@example.com
max_attempts = 2
retry_backoff = 100ms
[worker:badauth]
topic = badauth-queue$R
handler = email
smtp_url = smtp://$SMTPS
starttls = required
ca_file = $T/tls/ca.pem
username = kpool
password_file = $T/wrong-password
from = noreply@example.com
max_attempts = 2
retry_backoff = 100ms
[worker:down]
topic = down-queue$R
handler = email
smtp_url = smtp://127.0.0.1:$CLOSED
from = noreply@example.com
max_attempts = 2
retry_backoff = 100ms
[worker:slow]
topic = slow-queue$R
handler = email
smtp_url = smtp://127.0.0.1:$BLACKHOLE
from = noreply@example.com
timeout = 2s
max_attempts = 2
retry_backoff = 100ms
[worker:files]
topic = file-queue$R
handler = email
smtp_url = file://mail
from = noreply@example.com
template_dir = $T/tpl
EOF2
check "kpoold -t accepts the email bindings" "$KPOOLD" -t -c "$T/pool.conf"
start_kpoold "$T/pool.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
send() { t=$1; shift; "$KPOOL" -c "$T/pool.conf" send "$t$R" "$@" 2>>"$T/send.log"; }

# One key: every job on one partition, so they come in batches.
send email-queue --key k <<'EOF2'
{"eventId":"m-welcome","to":"user@example.com","template":"welcome","data":{"name":"Zoë <admin>","plan":{"name":"Pro"}}}
{"eventId":"m-literal","to":["a@example.com","Jürgen Groß <j@example.com>"],"cc":"c@example.com","bcc":"hidden@example.com","replyTo":"help@example.com","subject":"Ihre Bestellung – danke","text":"Danke!","html":"<p>Danke!</p>"}
{"type":"user.registered","data":{"to":"env@example.com","template":"plain","data":{"user":{"first":"Ana"}},"subject":"Envelope"},"metadata":{"eventId":"m-envelope","source":"web"}}
{"eventId":"m-flaky","to":"flaky@example.com","subject":"Flaky","text":"eventually"}
{"eventId":"m-nobody","to":"nobody@example.com","subject":"Bounce","text":"never"}
{"eventId":"m-crlf-subject","to":"x@example.com","subject":"Hi\r\nBcc: evil@example.com","text":"injected"}
{"eventId":"m-crlf-to","to":"x@example.com\r\nBcc: evil@example.com","subject":"Hi","text":"injected"}
{"eventId":"m-bad-address","to":"not an address","subject":"Hi","text":"x"}
{"eventId":"m-no-rcpt","subject":"Hi","text":"x"}
{"eventId":"m-no-template","to":"x@example.com","template":"missing","data":{}}
{"eventId":"m-no-value","to":"x@example.com","template":"welcome","data":{"name":"X"}}
{"eventId":"m-last","to":"last@example.com","subject":"Last","text":"the end"}
EOF2
check "jobs queued" test $? -eq 0
dump() { "$SMTPD_PYTHON" "$top_srcdir/tests/integration/mail_dump.py" "$1"; }
delivered() { [ "$(dump "$T/smtp" | wc -l)" -ge "$1" ]; }
check "the deliverable ones arrive" wait_for 60 delivered 5
check "seven jobs are dead-lettered" wait_for 60 sh -c "[ \$('$KCAT' -C -b '$B' -t 'email-queue$R.dlq' -e -q | wc -l) -ge 7 ]"
dump "$T/smtp" >"$T/mail.tsv"
dlq_json "$B" "email-queue$R.dlq" | "$PYTHON3" "$top_srcdir/tests/integration/dlq_dump.py" >"$T/dlq.tsv"
mail() { awk -F'\t' -v to="$1" -v f="$2" '$1 ~ to { print $f }' "$T/mail.tsv"; }
field() { awk -F'\t' -v id="$1" -v f="$2" '$1 == id { print $f }' "$T/dlq.tsv"; }

check "template: subject from the .txt, non-ASCII value" test "$(mail '^user@' 2)" = "Welcome, Zoë <admin>!"
check "template: the subject is RFC 2047 encoded" sh -c "awk -F'\t' '\$1 ~ /^user@/ { print \$7 }' '$T/mail.tsv' | grep -q '^=?UTF-8?B?'"
check "template: text and html make multipart/alternative" \
	test "$(mail '^user@' 3)" = "multipart/alternative,text/plain,text/html"
check "template: values filled, dotted paths too" sh -c "awk -F'\t' '\$1 ~ /^user@/ { print \$6 }' '$T/mail.tsv' | grep -qF 'Hello Zoë <admin>,\\nyour plan is Pro.'"
check "template: values HTML-escaped in the .html" sh -c "awk -F'\t' '\$1 ~ /^user@/ { print \$6 }' '$T/mail.tsv' | grep -qF '<b>Zoë &lt;admin&gt;</b>, plan Pro'"
check "literal text+html, to, cc and bcc all in the envelope" \
	test "$(mail '^a@' 1)" = "a@example.com,j@example.com,c@example.com,hidden@example.com"
check "bcc is not a header" sh -c "! awk -F'\t' '\$1 ~ /^a@/ { print \$5 }' '$T/mail.tsv' | grep -q bcc"
check "non-ASCII subject and display name" sh -c "[ \"\$(awk -F'\t' '\$1 ~ /^a@/ { print \$2 }' '$T/mail.tsv')\" = 'Ihre Bestellung – danke' ]"
check "the envelope form: fields from data" test "$(mail '^env@' 2)|$(mail '^env@' 6)" = "Envelope|Hi Ana, nothing but text.\\n"
mid=$("$PYTHON3" -c 'import hashlib; print(hashlib.sha256(b"m-welcome").hexdigest()[:32])')
check "Message-ID derived from the event id" test "$(mail '^user@' 4)" = "<$mid.kpool@example.com>"
check "4xx then success: delivered once" test "$(awk -F'\t' '$1 == "flaky@example.com"' "$T/mail.tsv" | wc -l)" -eq 1
check "4xx: the job was retried, with the server's reply" grep -q 'event=m-flaky: flaky@example.com: 451 4.3.0 try again later (retry 1/' "$T/kpoold.log"
check "5xx: dead-lettered as fail" test "$(field m-nobody 2)" = fail
check "5xx: the server's reply is the reason" test "$(field m-nobody 9)" = "nobody@example.com: 550 5.1.1 no such user here"
check "CR/LF in subject: dead-lettered" sh -c "[ \"\$(awk -F'\t' '\$1 == \"m-crlf-subject\" { print \$2, \$9 }' '$T/dlq.tsv')\" = 'fail subject: CR or LF in a header value (header injection)' ]"
check "CR/LF in to: dead-lettered" sh -c "awk -F'\t' '\$1 == \"m-crlf-to\" { print \$9 }' '$T/dlq.tsv' | grep -q 'CR or LF in an address (header injection)'"
check "no injected header or recipient reached the server" sh -c "! grep -rq 'evil@' '$T/smtp'"
check "an invalid address fails" sh -c "awk -F'\t' '\$1 == \"m-bad-address\" { print \$9 }' '$T/dlq.tsv' | grep -q \"invalid address 'not an address'\""
check "no recipient fails" test "$(field m-no-rcpt 9)" = "no recipient (to, cc or bcc)"
check "a missing template fails, naming it" sh -c "awk -F'\t' '\$1 == \"m-no-template\" { print \$9 }' '$T/dlq.tsv' | grep -q '^template missing: not in'"
check "a missing value fails, naming template and placeholder" test "$(field m-no-value 9)" = "template welcome.txt: no value for {{plan.name}}"
check "the job after them is delivered" wait_for 30 sh -c "dump() { '$SMTPD_PYTHON' '$top_srcdir/tests/integration/mail_dump.py' \"\$1\"; }; dump '$T/smtp' | grep -q '^last@'"
sessions=$(lines_in "$T/smtp/sessions")
diag "SMTP sessions for 12 jobs on one partition: $sessions"
check "jobs of a batch share SMTP sessions ($sessions sessions for 6 deliveries and a retry)" test "$sessions" -lt 7

# Long headers: folded as RFC 5322 asks (lines of at most 998 characters,
# here of 78), never cut; every recipient in To and in the envelope, and what
# follows a long header on a line of its own.
"$PYTHON3" - >"$T/long.jsonl" <<'PY'
import json
to = ["Recipient Number %d With A Long Display Name <r%d@example.com>" % (i, i) for i in range(1, 11)]
print(json.dumps({"eventId": "m-ten", "to": to, "subject": "Ten recipients", "text": "x"}))
words = " ".join("word%04d" % i for i in range(250))[:2000]
print(json.dumps({"eventId": "m-long-words", "to": "words@example.com", "subject": words, "text": "x"}))
print(json.dumps({"eventId": "m-long-word", "to": "word@example.com", "subject": "x" * 2000, "text": "x"}))
PY
"$PYTHON3" -c 'print(" ".join("word%04d" % i for i in range(250))[:2000])' >"$T/words.txt"
send email-queue --key k <"$T/long.jsonl"
check "long headers: the three messages arrive" wait_for 60 sh -c "dump() { '$SMTPD_PYTHON' '$top_srcdir/tests/integration/mail_dump.py' \"\$1\"; }; dump '$T/smtp' | grep -q '^word@'"
dump "$T/smtp" >"$T/mail.tsv"
tens=$(seq -f 'r%g@example.com' 1 10 | paste -sd, -)
check "ten long recipients: all in the envelope" test "$(mail '^r1@' 1)" = "$tens"
check "  all in To, as a reader parses it" test "$(mail '^r1@' 8)" = "$tens"
check "  the Subject a header of its own" test "$(mail '^r1@' 2)" = "Ten recipients"
check "  no header line over 78 characters ($(mail '^r1@' 9))" test "$(mail '^r1@' 9)" -le 78
check "a 2,000-character subject of words: read back whole" test "$(mail '^words@' 2)" = "$(cat "$T/words.txt")"
check "  folded: no header line over 78 characters ($(mail '^words@' 9))" test "$(mail '^words@' 9)" -le 78
check "a 2,000-character word as subject: read back whole" test "$(mail '^word@' 2)" = "$("$PYTHON3" -c 'print("x" * 2000)')"
check "  encoded words: no header line over 78 characters ($(mail '^word@' 9))" test "$(mail '^word@' 9)" -le 78

# STARTTLS required, the server without it: retried, and the reason says why.
printf '{"eventId":"t1","to":"t@example.com","subject":"TLS","text":"secret"}\n' | send tls-queue
check "STARTTLS required but not offered: dead-lettered after retries" wait_for 60 sh -c \
	"'$KCAT' -C -b '$B' -t 'tls-queue$R.dlq' -e -q -f '%h\n' | grep -q 'kpool.error.class=retries-exhausted'"
check "the reason says why" sh -c "'$KCAT' -C -b '$B' -t 'tls-queue$R.dlq' -e -q -f '%h\n' | grep -q 'does not offer STARTTLS (starttls = required)'"
check "nothing was sent in clear" sh -c "! grep -rq secret '$T/smtp'"

# STARTTLS and AUTH: delivered over TLS, logged in; a certificate the system
# CAs do not vouch for, and a wrong password, are not.
printf '{"eventId":"s1","to":"secure@example.com","subject":"Over TLS","text":"private"}\n' | send secure-queue
printf '{"eventId":"s2","to":"untrusted@example.com","subject":"Untrusted","text":"private"}\n' | send untrusted-queue
printf '{"eventId":"s3","to":"badauth@example.com","subject":"Bad auth","text":"private"}\n' | send badauth-queue
tls_json() { cat "$T"/smtps/*.json 2>/dev/null; }
check "STARTTLS + AUTH: delivered" wait_for 30 sh -c "cat '$T'/smtps/*.json 2>/dev/null | grep -q secure@example.com"
check "STARTTLS + AUTH: over TLS, as the user" sh -c "cat '$T'/smtps/*.json | grep secure@example.com | grep -q '\"tls\": true, \"auth\": \"kpool\"'"
check "an unverifiable certificate: dead-lettered after retries" wait_for 60 sh -c \
	"'$KCAT' -C -b '$B' -t 'untrusted-queue$R.dlq' -e -q -f '%h\n' | grep -q 'kpool.error.class=retries-exhausted'"
check "an unverifiable certificate: the reason says why" sh -c "'$KCAT' -C -b '$B' -t 'untrusted-queue$R.dlq' -e -q -f '%h\n' | grep -q \"certificate does not verify: unable to get local issuer certificate\""
check "a wrong password: dead-lettered after retries" wait_for 60 sh -c \
	"'$KCAT' -C -b '$B' -t 'badauth-queue$R.dlq' -e -q -f '%h %s\n' | grep 'kpool.error.class=retries-exhausted' | grep -q s3"
check "a wrong password: the reason says so" sh -c "'$KCAT' -C -b '$B' -t 'badauth-queue$R.dlq' -e -q -f '%h\n' | grep -q 'authentication as kpool failed: 535 5.7.8 Authentication credentials invalid'"
check "neither reached the server" sh -c "! cat '$T'/smtps/*.json | grep -q 'untrusted@\|badauth@'"

# No server at all: retried, then dead-lettered saying so.
printf '{"eventId":"d1","to":"down@example.com","subject":"Down","text":"x"}\n' | send down-queue
check "connection refused: retried, then dead-lettered" wait_for 60 sh -c \
	"'$KCAT' -C -b '$B' -t 'down-queue$R.dlq' -e -q -f '%h\n' | grep -q 'kpool.error.class=retries-exhausted'"
check "connection refused: the reason says so" sh -c "'$KCAT' -C -b '$B' -t 'down-queue$R.dlq' -e -q -f '%h\n' | grep -q 'kpool.error=smtp 127.0.0.1:$CLOSED: Connection refused'"

# A server that never answers the connect: each attempt ends after the
# timeout (2 s), not after the kernel's SYN retries (over two minutes).
if [ -s "$T/blackhole/port" ]; then
	start=$(date +%s)
	printf '{"eventId":"b1","to":"slow@example.com","subject":"Slow","text":"x"}\n' | send slow-queue
	check "no answer to the connect: dead-lettered within 20 s (2 attempts, timeout = 2s)" wait_for 20 sh -c \
		"'$KCAT' -C -b '$B' -t 'slow-queue$R.dlq' -e -q -f '%h\n' | grep -q 'kpool.error.class=retries-exhausted'"
	diag "dead-lettered $(($(date +%s) - start)) s after it was sent"
	check "  the reason says so" sh -c "'$KCAT' -C -b '$B' -t 'slow-queue$R.dlq' -e -q -f '%h\n' | grep -q 'kpool.error=smtp 127.0.0.1:$BLACKHOLE: no connection within 2000 ms (timeout)'"
else
	ok "no answer to the connect # SKIP no port that drops SYNs here: $(cat "$T/blackhole/failed" 2>/dev/null)"
fi

# file:// transport: a .eml file per message, named by the Message-ID.
printf '{"eventId":"f1","to":"file@example.com","template":"welcome","data":{"name":"Ana","plan":{"name":"Pro"}}}\n' | send file-queue
fid=$("$PYTHON3" -c 'import hashlib; print(hashlib.sha256(b"f1").hexdigest()[:32])')
check "file://: the message is written to state_dir/mail" wait_for 30 test -f "$T/state/mail/$fid.eml"
check "file://: it is the whole message" sh -c "'$SMTPD_PYTHON' '$top_srcdir/tests/integration/mail_dump.py' '$T/state/mail' | grep -q 'Welcome, Ana!'"

# Templates are read once; SIGHUP reads them again (the binding is unchanged).
printf 'Hello again {{user.first}}, from the new template.\n' >"$T/tpl/plain.txt"
kill -HUP "$KPID"
check "SIGHUP: the handlers read their templates again" wait_for 20 sh -c "[ \$(grep -c 'worker=mail#0 handler email: reloaded' '$T/kpoold.log') -ge 1 ]"
printf '{"eventId":"m-reloaded","to":"again@example.com","template":"plain","subject":"Again","data":{"user":{"first":"Ana"}}}\n' | send email-queue
check "SIGHUP: the new template is used" wait_for 30 sh -c "'$SMTPD_PYTHON' '$top_srcdir/tests/integration/mail_dump.py' '$T/smtp' | grep -q 'Hello again Ana, from the new template'"
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
