#!/bin/sh
# The web console over HTTP (its browser tests are tests/browser/console.py):
# the login turns the token into a session cookie and refuses a wrong one;
# every page carries a Content-Security-Policy without inline script; a
# dead-lettered job's hostile value and headers are escaped; a POST without
# the session's CSRF token is refused; a record replayed from the console is
# handled once; pause and resume, and restarting a process; pages of a
# topic's records, newest first, each read from a cursor; filters; no
# secret of the conf on any page; a read-only console (no token_file)
# offers no action and refuses POSTs; HTTPS with cert_file and key_file;
# the conf's errors (a console on a public address without a token, a
# token file others may change) name file, line and key.
. "$(dirname "$0")/lib.sh"
require_tools
command -v curl >/dev/null || skip_all "curl is missing (scripts/setup installs it)"

plugins "$T/plugins"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/token"
chmod 600 "$T/token"
TOKEN=$(cat "$T/token")
pool_conf "$T/c.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:c]
topic = orders$R
handler = probe
processes = 2
max_attempts = 1
record = $T/record
fixed_when = $T/fixed
[worker:t]
topic = other$R
handler = probe
broken = on
[console]
listen = 127.0.0.1:0
token_file = $T/token
EOF2
# The [kafka] section gets a password no page may show (the embedded broker
# speaks plaintext, so librdkafka never uses it).
sed -i "s/^bootstrap.servers = .*/&\nsasl.password = not-a-page-secret-7731/" "$T/c.conf"
DLQ=orders$R.dlq
make_topic 4 "$DLQ"
start_kpoold "$T/c.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
U=$(metrics_url "$T/state")
check "the console writes its address" wait_for 30 test -s "$T/state/console.url"
C=$(sed 's,/$,,' "$T/state/console.url")
check "the console is a process of its own" wait_for 10 sh -c "pgrep -f '^kpoold: [c]onsole' >/dev/null || grep -q 'console: started on 127.0.0.1:0 pid=' '$T/kpoold.log'"
check "workers joined their group" wait_for 30 joined "$T/kpoold.log" c 2
kp() { "$KPOOL" -c "$T/c.conf" "$@"; }

# get PATH [CURL ARGS]: the body to $T/body, headers to $T/head; prints the status.
get() {
	p=$1; shift
	curl -s -o "$T/body" -D "$T/head" -w '%{http_code}' -b "$T/jar" -c "$T/jar" "$@" "$C$p"
}
post() { p=$1; shift; get "$p" -X POST "$@"; }
has() { grep -qF -- "$1" "$T/body"; }
head_has() { grep -qi -- "$1" "$T/head"; }
csrf() { sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p' "$T/body" | head -1; }

# ---- login ---------------------------------------------------------------------
: >"$T/jar"
check "no session: a page sends to /login" test "$(get /)" = 303 -a "$(sed -n 's/^Location: //Ip' "$T/head" | tr -d '\r')" = /login
check "the login page answers" test "$(get /login)" = 200
check "a wrong token is refused (403)" test "$(post /login --data-urlencode token=not-the-token)" = 403
check "... and gets no cookie" test "$(grep -c kpool_session "$T/jar")" = 0
check "... and is logged with the client's address" log_has "$T/kpoold.log" "console: a wrong token from 127.0.0.1"
check "the right token logs in (303)" test "$(post /login --data-urlencode "token=$TOKEN")" = 303
check "... with an HttpOnly, SameSite=Strict cookie" grep -qi 'Set-Cookie: kpool_session=[0-9]*\.[0-9a-f]*; Path=/; HttpOnly; SameSite=Strict' "$T/head"
check "the overview answers with the cookie" test "$(get /)" = 200
check "every page has a CSP without inline script" \
	grep -qi "^Content-Security-Policy: default-src 'none'; script-src 'self';" "$T/head"
check "... and unsafe-inline nowhere" sh -c "! grep -qi unsafe-inline '$T/head'"
check "the overview lists the binding" has '<tr id="b-c">'
CSRF=$(csrf)
check "the overview's forms carry a CSRF token" test "${#CSRF}" -eq 32
api() { curl -s -b "$T/jar" "$C/api/overview" | "$PYTHON3" -c "import json,sys; d=json.load(sys.stdin)['bindings']; print($1)"; }
throttled() { [ "$(api 'd["t"]["state"]')" = throttled ]; }
check "a binding whose workers die at start shows throttled" wait_for 30 throttled
check "... and the other running" test "$(api 'd["c"]["state"]')" = running

# ---- a hostile job, shown escaped, and replayed once ------------------------------
"$top_builddir/tests/helpers/produce" "$B" "orders$R" k1 '{"id":"x1","do":"fail","note":"<script>window.__pwned=1</script>"}' \
	'x-evil=<img src=x onerror="window.__pwned=1">' >/dev/null 2>&1
check "the job is dead-lettered" wait_for 60 sh -c "grep -q '^x1 1 fail' '$T/record'"
listed() { get "/dlq/$DLQ" >/dev/null; has '>x1</td>'; }
check "the dead-letter page lists it" wait_for 30 listed
AT=$(sed -n 's,.*<tr id="r-\([0-9]*:[0-9]*\)">.*>x1</td>.*,\1,p' "$T/body" | head -1)
check "the record page answers" test "$(get "/dlq/$DLQ/$AT")" = 200
check "its value is escaped" has '&lt;script&gt;window.__pwned=1&lt;/script&gt;'
check "its header is escaped" has '&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;'
check "no raw <script> of the job's" sh -c "! grep -q '<script>window' '$T/body'"
check "no raw onerror= attribute" sh -c "! grep -q '<img src=x' '$T/body'"
check "no replay without the CSRF token (403)" test "$(post "/dlq/$DLQ/$AT/replay" -d x=1)" = 403
check "no replay with a wrong CSRF token (403)" test "$(post "/dlq/$DLQ/$AT/replay" -d csrf=00000000000000000000000000000000)" = 403
check "not replayed by either" sh -c "test \$(grep -c '^x1 ' '$T/record') -eq 1"
touch "$T/fixed"
check "a replay with the token is started (303)" test "$(post "/dlq/$DLQ/$AT/replay" -d "csrf=$CSRF")" = 303
RP=$(sed -n 's/^Location: //Ip' "$T/head" | tr -d '\r')
finished() { get "$RP" >/dev/null; grep -q 'id="replay-state">finished<' "$T/body"; }
check "the replay finishes" wait_for 30 finished
check "its page shows what kpool dlq replay prints" has 'replayed 1 record from'
check "the probe handles it once" wait_for 30 sh -c "test \$(grep -c '^x1 [0-9]* done' '$T/record') -eq 1"

# ---- another tool's dead letter: Spring Kafka's, shown as kpool dlq show shows it ------
printf '{"id":"sp1"}\n' | "$KCAT" -P -b "$B" -t "$DLQ" -H "kafka_dlt-original-topic=orders$R" \
	-H kafka_dlt-exception-fqcn=org.springframework.kafka.listener.ListenerExecutionFailedException \
	-H 'kafka_dlt-exception-message=Listener failed: <b>boom</b>' 2>/dev/null
spring() { get "/dlq/$DLQ?q=sp1" >/dev/null; has 'ListenerExecutionFailedException'; }
check "a Spring Kafka record is listed with its exception class" wait_for 30 spring
SAT=$(sed -n 's,.*<tr id="r-\([0-9]*:[0-9]*\)">.*,\1,p' "$T/body" | head -1)
get "/dlq/$DLQ/$SAT" >/dev/null
check "... its page says who wrote it" has '<dd id="writer">spring</dd>'
check "... where it came from" has "<dd id=\"from\">orders$R</dd>"
check "... and its reason, escaped" has 'Listener failed: &lt;b&gt;boom&lt;/b&gt;'

# ---- pause, resume, restart -------------------------------------------------------
check "pause without the CSRF token is refused" test "$(post /bindings/c/pause -d x=1)" = 403
check "pause from the console (303)" test "$(post /bindings/c/pause -d "csrf=$CSRF")" = 303
check "kpool status says paused" wait_for 10 sh -c "'$KPOOL' -c '$T/c.conf' status 2>/dev/null | grep -q '^c  *probe  *2/2  *yes '"
check "the overview says paused" sh -c "test \"\$(curl -s -b '$T/jar' '$C/api/overview' | '$PYTHON3' -c 'import json,sys; print(json.load(sys.stdin)[\"bindings\"][\"c\"][\"paused\"])')\" = True"
check "resume from the console (303)" test "$(post /bindings/c/resume -d "csrf=$CSRF")" = 303
status_paused() { "$KPOOL" -c "$T/c.conf" status --json 2>/dev/null | "$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print([b for b in d["bindings"] if b["name"] == "c"][0]["paused"])'; }
not_paused() { [ "$(status_paused)" = False ]; }
check "kpool status no longer says paused" wait_for 10 not_paused
get /processes >/dev/null
SLOT=$(sed -n 's/.*<tr id="p-\([0-9]*\)">.*/\1/p' "$T/body" | head -1)
PID0=$(sed -n "s/.*<tr id=\"p-$SLOT\"><td>c<\/td><td>[0-9]*<\/td><td>\([0-9]*\)<.*/\1/p" "$T/body")
check "the processes page lists the workers" test -n "$SLOT" -a -n "$PID0"
check "restart without the CSRF token is refused" test "$(post "/processes/$SLOT/restart" -d x=1)" = 403
check "restart a process (303)" test "$(post "/processes/$SLOT/restart" -d "csrf=$CSRF")" = 303
newpid() {
	get /processes >/dev/null
	p=$(sed -n "s/.*<tr id=\"p-$SLOT\"><td>c<\/td><td>[0-9]*<\/td><td>\([0-9]*\)<\/td><td>running.*/\1/p" "$T/body")
	[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$PID0" ]
}
check "it runs again with a new pid" wait_for 30 newpid

# ---- pages of records, filters ----------------------------------------------------
i=0
while [ $i -lt 120 ]; do printf '{"id":"p%03d","do":"fail"}\n' $i; i=$((i + 1)); done >"$T/jobs"
rm -f "$T/fixed"
kp send "orders$R" <"$T/jobs" 2>/dev/null
many() { [ "$(kp dlq list "$DLQ" --json 2>/dev/null | "$PYTHON3" -c 'import json,re,sys; print(sum(1 for r in json.load(sys.stdin)["records"] if re.fullmatch("p[0-9]{3}", r.get("event_id") or "")))')" = 120 ]; }
check "120 more dead-lettered" wait_for 90 many
# page_through URL SED: follows "older" from URL (10 pages at most), each page's
# rows picked by SED appended to $T/seen; the number of pages to $pages.
page_through() {
	: >"$T/seen"
	url=$1
	pages=0
	while [ -n "$url" ] && [ $pages -lt 10 ]; do
		get "$url" >/dev/null
		sed -n "$2" "$T/body" >>"$T/seen"
		url=$(sed -n 's,.*<a id="older" href="\([^"]*\)".*,\1,p' "$T/body" | sed 's/&amp;/\&/g')
		pages=$((pages + 1))
	done
}
page_through "/dlq/$DLQ?q=p" 's,.*>\(p[0-9][0-9][0-9]\)</td></tr>.*,\1,p'
check "three pages of 50, 50 and 20" test "$pages" -eq 3
check "every record once across the pages" test "$(sort -u "$T/seen" | wc -l)" -eq 120 -a "$(wc -l <"$T/seen")" -eq 120
get "/dlq/$DLQ" >/dev/null
first=$(sed -n 's,.*<td class="time">\([^<]*\)</td>.*,\1,p' "$T/body" | head -1)
last=$(sed -n 's,.*<td class="time">\([^<]*\)</td>.*,\1,p' "$T/body" | tail -1)
check "newest first" test "$first" \> "$last" -o "$first" = "$last"
READ=$(sed -n 's/^X-Kpool-Records-Read: //Ip' "$T/head" | tr -d '\r')
check "the first page reads a window, not the topic ($READ records)" test "$READ" -le 256
check "a filter by text finds one job" sh -c "test \"\$(curl -s -b '$T/jar' '$C/dlq/$DLQ?q=p042' | grep -c '>p042</td>')\" = 1"
check "a filter by class: fail matches" sh -c "curl -s -b '$T/jar' '$C/dlq/$DLQ?class=fail' | grep -q '>p1'"
check "a filter by class: crash matches none" sh -c "curl -s -b '$T/jar' '$C/dlq/$DLQ?class=crash' | grep -q 'id=\"empty\"'"
check "until an hour ago: none" sh -c "curl -s -b '$T/jar' '$C/dlq/$DLQ?until=1h' | grep -q 'id=\"empty\"'"
check "a bad time is a 400 that says why" test "$(get "/dlq/$DLQ?since=yesterdayish")" = 400
check "... naming the field" has 'since: '
check "another topic is not read (404)" test "$(get /dlq/orders$R)" = 404
check "the command filters the same way (--grep)" sh -c "test \"\$('$KPOOL' -c '$T/c.conf' dlq list '$DLQ' --grep p042 --json | '$PYTHON3' -c 'import json,sys; print(json.load(sys.stdin)[\"total\"])')\" = 1"
# Failure times out of offset order in one partition, as when two processes
# dead-letter into it at once: 4 runs of 30, the newest run first. Still every
# record on exactly one page.
for t in 3 1 2 0; do
	i=0
	while [ $i -lt 30 ]; do printf '{"id":"zq%d%02d"}\n' $t $i; i=$((i + 1)); done |
		"$KCAT" -P -b "$B" -t "$DLQ" -p 0 -H "kpool.failed-at=2026-01-01T00:00:0$t.000Z" \
			-H kpool.error.class=fail -H kpool.error=crafted -H "kpool.original.topic=orders$R" 2>/dev/null
done
zq_all() { [ "$(kp dlq list "$DLQ" --grep zq --json 2>/dev/null | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["total"])')" = 120 ]; }
check "120 records written with times out of offset order" wait_for 30 zq_all
page_through "/dlq/$DLQ?q=zq" 's,.*<tr id="r-\(0:[0-9]*\)">.*,\1,p'
check "... paged in 50, 50 and 20" test "$pages" -eq 3
check "... every record once across the pages" test "$(sort -u "$T/seen" | wc -l)" -eq 120 -a "$(wc -l <"$T/seen")" -eq 120

# ---- replay all that match: counted first, then confirmed -------------------------
touch "$T/fixed"
check "replay-all starts a count (303)" test "$(post "/dlq/$DLQ/replay" -d "csrf=$CSRF" --data-urlencode q=p11)" = 303
RP=$(sed -n 's/^Location: //Ip' "$T/head" | tr -d '\r')
check "the count finishes" wait_for 30 finished
check "... and asks to replay the 10 it found" has 'replay 10 records</button>'
check "nothing was sent by counting" sh -c "test \$(grep -c '^p11[0-9] [0-9]* done' '$T/record') -eq 0"
sed -n 's/.*<form method="post" id="confirm".*<\/form>.*/&/p' "$T/body" >"$T/form"
args=$(sed 's/<input type="hidden" name="\([a-z_]*\)" value="\([^"]*\)">/\n\1=\2\n/g' "$T/form" | grep '^[a-z_]*=' | tr '\n' '&')
check "confirming replays them (303)" test "$(post "/dlq/$DLQ/replay" -d "$args")" = 303
RP=$(sed -n 's/^Location: //Ip' "$T/head" | tr -d '\r')
check "the replay finishes" wait_for 60 finished
check "the ten are handled, once each" wait_for 30 sh -c "test \$(grep -c '^p11[0-9] [0-9]* done' '$T/record') -eq 10"

# ---- secrets ------------------------------------------------------------------------
for p in / /processes /dlq "/dlq/$DLQ" "/dlq/$DLQ/$AT" /api/overview "$RP" /login; do
	get "$p" >/dev/null
	cat "$T/body" "$T/head" >>"$T/all"
done
check "no page shows sasl.password" sh -c "! grep -q not-a-page-secret-7731 '$T/all'"
check "no page shows the token" sh -c "! grep -qF '$TOKEN' '$T/all'"

# ---- logout, and the login's throttle ----------------------------------------------
check "log out (303)" test "$(post /logout -d "csrf=$CSRF")" = 303
check "... clears the cookie" grep -qi 'Set-Cookie: kpool_session=;' "$T/head"
: >"$T/jar"
check "then a page sends to /login again" test "$(get /)" = 303
n=0
while [ $n -lt 10 ]; do post /login -d token=wrong >/dev/null; n=$((n + 1)); done
check "after 10 wrong tokens in a minute, logins wait (429)" test "$(post /login --data-urlencode "token=$TOKEN")" = 429
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
check "the console process is gone" sh -c "! pgrep -f '^kpoold: [c]onsole' >/dev/null"

# ---- read-only: no token -----------------------------------------------------------
sed '/^token_file/d; s/^listen = .*/listen = 127.0.0.1:0/' "$T/c.conf" >"$T/ro.conf"
rm -f "$T/state/console.url" "$T/state/embedded.bootstrap"
start_kpoold "$T/ro.conf" "$T/ro.log"
check "a read-only console starts" wait_for 30 test -s "$T/state/console.url"
B2=$(bootstrap "$T/state")
check "... and its workers join" wait_for 30 joined "$T/ro.log" c 2
C=$(sed 's,/$,,' "$T/state/console.url")
: >"$T/jar"
check "no login: the overview answers" test "$(get /)" = 200
check "... says read-only" has 'id="read-only"'
check "... and offers no action (no POST form)" sh -c "! grep -q 'method=\"post\"' '$T/body'"
# The embedded broker kept nothing: a job dead-lettered anew.
rm -f "$T/fixed"
"$top_builddir/tests/helpers/produce" "$B2" "orders$R" k1 '{"id":"ro1","do":"fail"}' >/dev/null 2>&1
listed_ro() { get "/dlq/$DLQ" >/dev/null; has '>ro1</td>'; }
check "read-only: a dead letter is listed" wait_for 60 listed_ro
AT=$(sed -n 's,.*<tr id="r-\([0-9]*:[0-9]*\)">.*>ro1</td>.*,\1,p' "$T/body" | head -1)
check "a record page offers no replay" sh -c "test \"\$(curl -s -o '$T/body' -w '%{http_code}' '$C/dlq/$DLQ/$AT')\" = 200 && ! grep -q 'method=\"post\"' '$T/body'"
check "a POST is refused (403)" test "$(post "/dlq/$DLQ/$AT/replay" -d x=1)" = 403
check "... saying why" has 'read-only'
check "pause is refused too" test "$(post /bindings/c/pause -d x=1)" = 403
stop_kpoold "$KPID"

# ---- HTTPS -------------------------------------------------------------------------
if make_certs "$T/tls"; then
	sed "s,^listen = .*,listen = 127.0.0.1:0\ncert_file = $T/tls/server.pem\nkey_file = $T/tls/server.key," "$T/c.conf" >"$T/tls.conf"
	rm -f "$T/state/console.url"
	start_kpoold "$T/tls.conf" "$T/tls.log"
	check "an HTTPS console starts" wait_for 30 test -s "$T/state/console.url"
	C=$(sed 's,/$,,' "$T/state/console.url")
	check "its address is https" sh -c "echo '$C' | grep -q '^https://'"
	: >"$T/jar"
	check "the login works over TLS" test "$(post /login --cacert "$T/tls/ca.pem" --data-urlencode "token=$TOKEN")" = 303
	check "... and the cookie is Secure" grep -qi 'Set-Cookie: kpool_session=.*; Secure' "$T/head"
	stop_kpoold "$KPID"
else
	ok "# SKIP HTTPS: openssl could not make test certificates ($T/tls/openssl.log)"
fi

# ---- the conf's errors ------------------------------------------------------------
sed '/^token_file/d; s/^listen = .*/listen = 0.0.0.0:8080/' "$T/c.conf" >"$T/open.conf"
"$KPOOLD" -c "$T/open.conf" -t >"$T/open.out" 2>&1
check "a public address without a token is refused" test $? -ne 0
line=$(grep -n '^listen = 0.0.0.0' "$T/open.conf" | cut -d: -f1)
check "... naming file, line and key" grep -q "open.conf:$line: \[console\] listen: '0.0.0.0:8080' is not a loopback address" "$T/open.out"
chmod 622 "$T/token"
"$KPOOLD" -c "$T/c.conf" -t >"$T/perm.out" 2>&1
check "a token file others may change is refused" test $? -ne 0
line=$(grep -n '^token_file' "$T/c.conf" | cut -d: -f1)
check "... naming file, line and key" grep -q "c.conf:$line: \[console\] token_file: .*others may change it" "$T/perm.out"
chmod 644 "$T/token"
"$KPOOLD" -c "$T/c.conf" -t >"$T/perm.out" 2>&1
check "one anyone may read is used" test $? -eq 0
check "... with a warning" grep -q "anyone on this host may read the token (mode 644): chmod o-r it" "$T/perm.out"
chmod 600 "$T/token"
printf 'short\n' >"$T/short"
chmod 600 "$T/short"
sed "s,^token_file = .*,token_file = $T/short," "$T/c.conf" >"$T/short.conf"
"$KPOOLD" -c "$T/short.conf" -t >"$T/short.out" 2>&1
check "a token shorter than 16 characters is refused" grep -q 'token of 16 characters at least' "$T/short.out"
printf '[kafka]\nbootstrap.servers = embedded\n[console]\ntoken_file = %s\n' "$T/token" >"$T/nolisten.conf"
"$KPOOLD" -c "$T/nolisten.conf" -t >"$T/nolisten.out" 2>&1
check "token_file without listen is refused" grep -q 'nolisten.conf:4: \[console\] token_file: set, but the console is off' "$T/nolisten.out"
