#!/bin/sh
# The job lifecycle end to end: duplicates absorbed,
# retries, failures and bad input dead-lettered with every header, and the
# worker going on after each.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
pool_conf "$T/jobs.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:w]
topic = jobs$R
handler = probe
record = $T/record
max_attempts = 3
retry_backoff = 100ms
retry_backoff_max = 400ms
max_job_bytes = 1KiB
EOF2
# A consumer's key and a producer's in [kafka]: each client takes its own.
sed -i '/^\[kafka\]/a fetch.wait.max.ms = 50\nlinger.ms = 2' "$T/jobs.conf"
start_kpoold "$T/jobs.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
U=$(metrics_url "$T/state")
check "worker joined its group" wait_for 30 log_has "$T/kpoold.log" "assigned partitions="

send() { "$KPOOL" -c "$T/jobs.conf" send "jobs$R" "$@" 2>>"$T/send.log"; }
printf '{"n":1}\n' | send --header event-id=h1
printf '{"n":2}\n' | send --header event-id=h1
printf '%s\n' '{"metadata":{"eventId":"m1"},"data":{"x":1}}' '{"metadata":{"eventId":"m1"},"data":{"x":2}}' | send
printf '%s\n' '{"eventId":"p1"}' '{"id":42}' '{"eventId":"f1","do":"fail"}' \
	'{"eventId":"r1","do":"retry","succeed_at":3}' '{"eventId":"r2","do":"retry"}' | send
printf '%s\n' '{"eventId":"k1","do":"fail"}' | send --key user-7 --header trace=abc
printf 'not json\n' | "$KCAT" -P -b "$B" -t "jobs$R" -H event-id=bad-json
printf '[1,2]\n' | "$KCAT" -P -b "$B" -t "jobs$R" -H event-id=bad-array
printf '{"a":"\377"}\n' | "$KCAT" -P -b "$B" -t "jobs$R" -H event-id=bad-utf8
printf '\n' | send --keep-empty --header event-id=bad-empty
"$PYTHON3" -c 'print("{\"pad\":\"" + "x" * 2000 + "\"}")' | "$KCAT" -P -b "$B" -t "jobs$R" -H event-id=bad-big
printf '{"eventId":"after"}\n' | send

check "the job after the bad ones is handled" wait_for 30 grep -q '^after 1 done' "$T/record"
check "no client was given the other kind's [kafka] keys (CONFWARN)" \
	sh -c "! grep -h CONFWARN '$T/send.log' '$T/kpoold.log'"
check "eight jobs reach the dead-letter topic" wait_for 30 sh -c "[ \$('$KCAT' -C -b '$B' -t 'jobs$R.dlq' -e -q | wc -l) -ge 8 ]"
dlq_json "$B" "jobs$R.dlq" | "$PYTHON3" "$top_srcdir/tests/integration/dlq_dump.py" >"$T/dlq.tsv"
field() { awk -F'\t' -v id="$1" -v f="$2" '$1 == id { print $f }' "$T/dlq.tsv"; }

check "duplicate by header event-id handled once" test "$(grep -c '^h1 ' "$T/record")" -eq 1
check "duplicate by metadata.eventId handled once" test "$(grep -c '^m1 ' "$T/record")" -eq 1
check "json:id numbers are event ids" grep -q '^42 1 done' "$T/record"
dups=$(metric "$U" kpool_jobs_total 'worker="w",result="duplicate"')
check "kpool_jobs_total duplicate = 2 (got $dups)" test "$dups" = 2
check "a flaky job is retried, then done on attempt 3" \
	test "$(grep '^r1 ' "$T/record" | tr '\n' '|')" = "r1 1 retry|r1 2 retry|r1 3 done|"
retried=$(metric "$U" kpool_jobs_total 'worker="w",result="retried"')
check "retries are counted (got $retried)" test "$retried" = 5
check "exhausted retries: class retries-exhausted" test "$(field r2 2)" = retries-exhausted
check "exhausted retries: attempts = max_attempts" test "$(field r2 3)" = 3
check "exhausted retries: the handler's last reason" test "$(field r2 9)" = "probe: not yet (attempt 3)"
check "a failing job: class fail, attempts 1" test "$(field f1 2) $(field f1 3)" = "fail 1"
check "a failing job: the handler's reason" test "$(field f1 9)" = "probe: failing as asked"
check "dead-letter keeps key, value and headers" \
	test "$(field k1 5)|$(field k1 8)|$(field k1 10)" = 'user-7|{"eventId":"k1","do":"fail"}|trace=abc'
check "every dead-letter record has every kpool header" \
	test "$(awk -F'\t' '$4 != "none"' "$T/dlq.tsv" | wc -l)" -eq 0
check "original topic and offsets recorded" \
	test "$(awk -F'\t' -v t="jobs$R" '$6 != t || $7 != "yes"' "$T/dlq.tsv" | wc -l)" -eq 0
check "not JSON is bad-input" test "$(field bad-json 2)" = bad-input
check "not JSON: reason" sh -c "awk -F'\t' '\$1==\"bad-json\"{print \$9}' '$T/dlq.tsv' | grep -q 'job is not JSON'"
check "not an object is bad-input" test "$(field bad-array 2)|$(field bad-array 9)" = "bad-input|job is not a JSON object"
check "not UTF-8 is bad-input" test "$(field bad-utf8 2)|$(field bad-utf8 9)" = "bad-input|job is not UTF-8"
check "empty is bad-input" test "$(field bad-empty 2)|$(field bad-empty 9)" = "bad-input|empty job"
check "over max_job_bytes is bad-input" sh -c "awk -F'\t' '\$1==\"bad-big\"{print \$2, \$9}' '$T/dlq.tsv' | grep -q '^bad-input job is 2010 bytes, over max_job_bytes (1024)'"
check "bad input never reaches the handler" test "$(grep -c '^bad-' "$T/record")" -eq 0
check "the ledger's file records done and dead-lettered ids" wait_for 10 sh -c \
	"[ \"\$('$SQLITE3' '$T/state/w.db' \"SELECT outcome, n FROM processed_counts ORDER BY outcome\" | tr '\n' ' ')\" = 'dead-lettered|8 done|6 ' ]"

# A job whose id names another job's place (topic/partition/offset, the id of
# a job that has none) does not make that job a duplicate.
printf '{"eventId":"place-probe"}' | "$KCAT" -P -b "$B" -t "jobs$R" -k place
wait_for 30 grep -q '^place-probe 1 done' "$T/record"
pl=$("$KCAT" -C -b "$B" -t "jobs$R" -e -q -f '%k %p %o\n' 2>/dev/null | awk '$1 == "place" { print $2 "/" $3 + 2 }')
printf '{"id":"jobs%s/%s"}' "$R" "$pl" | "$KCAT" -P -b "$B" -t "jobs$R" -k place
printf '{"n":"no id"}' | "$KCAT" -P -b "$B" -t "jobs$R" -k place
check "a job named by another's place is still handled (place $pl)" \
	wait_for 30 sh -c "[ \$(grep -c '^jobs$R/$pl 1 done' '$T/record') -eq 2 ]"
http "$U/healthz" >"$T/healthz"
check "/healthz answers 200 with status ok" sh -c "[ \"\$(cat '$T/http.code')\" = 200 ] && grep -q '\"status\":\"ok\"' '$T/healthz'"
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
[ -n "$REAL" ] && exit 0

# The embedded broker forgets everything on a restart: so must the processed
# tables, or the new broker's jobs would be skipped as duplicates.
start_kpoold "$T/jobs.conf" "$T/kpoold2.log"
bootstrap "$T/state" >/dev/null || { not_ok "embedded broker started again"; exit 1; }
printf '{"eventId":"after"}\n' | send
check "after an embedded restart a known event id is a new job" \
	wait_for 30 sh -c "[ \$(grep -c '^after 1 done' '$T/record') -eq 2 ]"
stop_kpoold "$KPID"
check "kpoold stops with status 0 again" test $? -eq 0
