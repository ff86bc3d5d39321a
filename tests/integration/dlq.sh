#!/bin/sh
# The dead-letter tools: jobs of several classes are dead-lettered, listed and
# filtered, one is shown, a class is replayed into the original topic where
# the handler, now fixed, does them; a second replay sends nothing again; a
# replayed job dead-lettered again carries one set of kpool headers; Spring
# Kafka's and Kafka Connect's dead-letter records are read and replayed.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
pool_conf "$T/dlq.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:d]
topic = orders$R
handler = probe
processes = 2
max_attempts = 2
retry_backoff = 10ms
record = $T/record
fixed_when = $T/fixed
EOF2
DLQ=orders$R.dlq
make_topic 4 "$DLQ"
start_kpoold "$T/dlq.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
U=$(metrics_url "$T/state")
check "workers joined their group" wait_for 30 log_has "$T/kpoold.log" "assigned partitions="
kp() { "$KPOOL" -c "$T/dlq.conf" "$@"; }
# jget FILE EXPR: a Python expression over the JSON document d in FILE.
jget() { "$PYTHON3" -c "import json,sys; d=json.load(open(sys.argv[1])); print(($2))" "$1"; }
dlq_total() { kp dlq list "$DLQ" --json 2>/dev/null | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
done_count() { grep -c "^$1 [0-9]* done" "$T/record"; }

# Five jobs that fail, three that keep asking for a retry, three that are no
# jobs (not JSON twice, not UTF-8 once), ten good ones; keyless, so spread
# over the four partitions.
{
	for i in 1 2 3 4 5; do printf '{"id":"f%d","do":"fail","n":%d}\n' $i $i; done
	for i in 1 2 3; do printf '{"id":"r%d","do":"retry"}\n' $i; done
	printf 'not json\n{"id": \n\377\376binary\n'
	for i in 1 2 3 4 5 6 7 8 9 10; do printf '{"id":"ok%d"}\n' $i; done
} | kp send "orders$R" --header event-src=dlq-test 2>/dev/null
total_is() { [ "$(dlq_total)" = "$1" ]; }
check "eleven jobs dead-lettered" wait_for 60 total_is 11

# list: a table and a summary per class.
kp dlq list "$DLQ" >"$T/list.txt" 2>"$T/list.err"
check "list exits 0" test $? -eq 0
check "list has a header" grep -q '^RECORD  *FAILED AT  *FROM  *CLASS  *ATTEMPTS  *REASON' "$T/list.txt"
check "list: a row per record" test "$(grep -c "orders$R/" "$T/list.txt")" -eq 11
check "summary counts the classes" grep -Eq '^11 records: .*fail 5' "$T/list.txt"
check "summary: retries-exhausted 3" grep -q 'retries-exhausted 3' "$T/list.txt"
check "summary: bad-input 3" grep -q 'bad-input 3' "$T/list.txt"
check "a fail row: attempts 1 and the reason" grep -Eq " fail +1 +probe: failing as asked$" "$T/list.txt"
check "a retries-exhausted row: attempts 2" grep -Eq " retries-exhausted +2 +probe: not yet \(attempt 2\)$" "$T/list.txt"
check "rows are aligned (the class column starts at one place)" \
	test "$(grep "orders$R/" "$T/list.txt" | awk '{ print index($0, $4) }' | sort -u | wc -l)" -eq 1

kp dlq list "$DLQ" --json >"$T/list.json"
check "--json: one document" test "$(jget "$T/list.json" 'd["topic"]')" = "$DLQ"
check "--json: classes" test "$(jget "$T/list.json" 'sorted(d["classes"].items())')" = \
	"[('bad-input', 3), ('fail', 5), ('retries-exhausted', 3)]"
check "--json: where each came from" test "$(jget "$T/list.json" 'sorted(set(r["original"]["topic"] for r in d["records"]))')" = "['orders$R']"
check "--json: the event ids of the failed ones" test "$(jget "$T/list.json" 'sorted(r["event_id"] for r in d["records"] if r["class"] == "fail")')" = \
	"['f1', 'f2', 'f3', 'f4', 'f5']"
kp dlq list "$DLQ" --error-class fail --json >"$T/fail.json"
check "--error-class fail: five" test "$(jget "$T/fail.json" 'd["total"], d["shown"], list(d["classes"])')" = "(5, 5, ['fail'])"
kp dlq list "$DLQ" --limit 4 >"$T/limit.txt"
check "--limit 4: four rows, and says so" test "$(grep -c "orders$R/" "$T/limit.txt")" -eq 4
check "--limit 4: the summary counts all" grep -q '^4 of 11 records shown: .*fail 5' "$T/limit.txt"
check "--since an hour ago: all" test "$(kp dlq list "$DLQ" --since 1h --json | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["total"])')" = 11
kp dlq list "$DLQ" --since 2099-01-01T00:00:00Z >"$T/none.txt"
check "--since the future: none" grep -q '^0 records$' "$T/none.txt"
kp dlq list "$DLQ" --since yesterday >/dev/null 2>"$T/since.err"
check "--since yesterday: usage error 2" test $? -eq 2
check "--since: says what a time is" grep -q "not a time" "$T/since.err"
kp dlq list "nosuch$R" >/dev/null 2>"$T/nosuch.err"
check "a topic that does not exist: exit 1" test $? -eq 1
check "... and says so" grep -q "nosuch$R: no such topic" "$T/nosuch.err"

# show: every header, the job indented; non-UTF-8 as hex.
F1=$(jget "$T/list.json" '["%d:%d" % (r["partition"], r["offset"]) for r in d["records"] if r["event_id"] == "f1"][0]')
kp dlq show "$DLQ" "$F1" >"$T/show.txt"
check "show exits 0" test $? -eq 0
check "show: the original header kept" grep -Eq '^  event-src +dlq-test$' "$T/show.txt"
for h in kpool.original.topic kpool.original.partition kpool.original.offset kpool.original.timestamp \
	kpool.event-id kpool.worker kpool.handler kpool.error.class kpool.error kpool.attempts \
	kpool.failed-at kpool.host kpool.pid; do
	grep -Eq "^  $h " "$T/show.txt" || diag "missing $h"
done
check "show: all thirteen kpool headers" test "$(grep -cE '^  kpool\.' "$T/show.txt")" -eq 13
check "show: the job pretty-printed" grep -q '^  "id": "f1",$' "$T/show.txt"
kp dlq show "$DLQ" "$F1" --json >"$T/show.json"
check "show --json: the job as JSON" test "$(jget "$T/show.json" 'd["job"]["id"], d["job"]["n"]')" = "('f1', 1)"
check "show --json: headers in order" test "$(jget "$T/show.json" 'd["headers"][0]["name"], d["headers"][0]["value"]')" = "('event-src', 'dlq-test')"
BIN=$(jget "$T/list.json" '["%d:%d" % (r["partition"], r["offset"]) for r in d["records"] if "UTF-8" in r["reason"]][0]')
kp dlq show "$DLQ" "$BIN" >"$T/bin.txt"
check "show: a job that is not UTF-8 is shown as hex" grep -q '^00000000  ff fe 62 69 6e 61 72 79' "$T/bin.txt"
check "show: ... and says why" grep -q 'not UTF-8; shown as hex' "$T/bin.txt"
kp dlq show "$DLQ" "$BIN" --json >"$T/bin.json"
check "show --json: value_hex" test "$(jget "$T/bin.json" 'd["value_hex"]')" = "ff fe 62 69 6e 61 72 79"
kp dlq show "$DLQ" 0:999999 >/dev/null 2>"$T/show.err"
check "show: no such record, exit 1" test $? -eq 1
check "show: ... with the offsets there are" grep -q "no record at 0:999999" "$T/show.err"
kp dlq show "$DLQ" nine >/dev/null 2>&1
check "show: not PARTITION:OFFSET, exit 2" test $? -eq 2

# replay --dry-run sends nothing.
kp dlq replay "$DLQ" --error-class fail --dry-run >"$T/dry.txt"
check "dry run: would replay five" grep -q '^would replay 5 records from ' "$T/dry.txt"
check "dry run: lists them with their destination" test "$(grep -c " fail .* orders$R\$" "$T/dry.txt")" -eq 5
check "dry run: nothing was sent" test "$(dlq_json "$B" "orders$R" | grep -c replayed-from)" -eq 0

# The handler is fixed; the failed class goes back to where it came from.
: >"$T/fixed"
kp dlq replay "$DLQ" --error-class fail >"$T/replay1.txt" 2>"$T/replay1.err"
check "replay exits 0" test $? -eq 0
check "replay: five sent" grep -q "^replayed 5 records from $DLQ; 6 left as they are$" "$T/replay1.txt"
check "replay: where each went" test "$(grep -cE " fail .* orders$R [0-9]+:[0-9]+\$" "$T/replay1.txt")" -eq 5
check "the fixed handler did all five" wait_for 30 sh -c \
	"[ \$(grep -cE '^f[1-5] [0-9]+ done' '$T/record') -eq 5 ]"
check "each once" test -z "$(grep -E '^f[1-5] [0-9]+ done' "$T/record" | cut -d' ' -f1 | sort | uniq -d)"
dlq_json "$B" "orders$R" >"$T/orders.json"
check "the replayed records keep key, value and headers, plus kpool.replayed-from" "$PYTHON3" - "$T/orders.json" "$DLQ" <<'PY'
import json, sys
rep = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    r = json.loads(line)
    h = dict(zip(r["headers"][::2], r["headers"][1::2])) if r.get("headers") else {}
    if "kpool.replayed-from" in h:
        rep.append((r, h))
assert len(rep) == 5, len(rep)
for r, h in rep:
    assert h["event-src"] == "dlq-test", h
    assert h["kpool.replayed-from"].startswith(sys.argv[2] + "/"), h
    assert json.loads(r["payload"])["do"] == "fail", r
PY

# Again: the progress committed in kpool-replay-DLQ means nothing twice.
kp dlq replay "$DLQ" --error-class fail --json >"$T/replay2.json"
check "replay again: nothing sent" test "$(jget "$T/replay2.json" 'len(d["replayed"]), d["group"]')" = "(0, 'kpool-replay-$DLQ')"
check "replay again: no new record in the topic" test "$(dlq_json "$B" "orders$R" | grep -c replayed-from)" -eq 5
kp dlq replay "$DLQ" --error-class fail --from-start --dry-run >"$T/fromstart.txt"
check "--from-start would send them again" grep -q '^would replay 5 records' "$T/fromstart.txt"

# Everything else: the retries now succeed, the bad input fails again and is
# dead-lettered anew, with one set of kpool headers and its replayed-from.
kp dlq replay "$DLQ" >"$T/replay3.txt"
check "replay the rest: six" grep -q "^replayed 6 records from $DLQ" "$T/replay3.txt"
check "the retried ones are done" wait_for 30 sh -c \
	"[ \$(grep -cE '^r[1-3] [0-9]+ done' '$T/record') -eq 3 ]"
check "the bad input is dead-lettered again" wait_for 30 total_is 14
kp dlq list "$DLQ" --json >"$T/list2.json"
AGAIN=$(jget "$T/list2.json" '["%d:%d" % (r["partition"], r["offset"]) for r in d["records"] if "UTF-8" in r["reason"]][-1]')
kp dlq show "$DLQ" "$AGAIN" --json >"$T/again.json"
check "dead-lettered again: one kpool.error.class" test "$(jget "$T/again.json" 'sum(1 for h in d["headers"] if h["name"] == "kpool.error.class")')" = 1
check "dead-lettered again: says which replay" test "$(jget "$T/again.json" '[h["value"] for h in d["headers"] if h["name"] == "kpool.replayed-from"][0]')" = "$DLQ/$(echo "$BIN" | tr : /)"

# Sent twice on purpose (--from-start): the processed table absorbs it.
DUP0=$(metric "$U" kpool_jobs_total 'worker="d",result="duplicate"')
kp dlq replay "$DLQ" --error-class fail --from-start >/dev/null
dups_are() { [ "$(metric "$U" kpool_jobs_total 'worker="d",result="duplicate"')" = "$1" ]; }
check "a forced second replay is counted as duplicates" wait_for 30 dups_are $((DUP0 + 5))
check "... and not handled again" test "$(grep -cE '^f[1-5] [0-9]+ done' "$T/record")" -eq 5

# Records written by Spring Kafka and Kafka Connect.
PRODUCE=$top_builddir/tests/helpers/produce
"$PRODUCE" "$B" "$DLQ" k1 '{"id":"spring-1","do":"fail"}' \
	"kafka_dlt-original-topic=orders$R" kafka_dlt-original-partition=0x00000002 \
	kafka_dlt-original-offset=0x000000000000004d kafka_dlt-original-timestamp=0x0000018c1e1f6e00 \
	kafka_dlt-exception-fqcn=org.springframework.kafka.listener.ListenerExecutionFailedException \
	"kafka_dlt-exception-message=Listener method threw exception; nested: IllegalStateException"
"$PRODUCE" "$B" "$DLQ" k2 '{"id":"connect-1"}' \
	"__connect.errors.topic=orders$R" __connect.errors.partition=1 __connect.errors.offset=12 \
	__connect.errors.exception.class.name=org.apache.kafka.connect.errors.DataException \
	"__connect.errors.exception.message=Converting byte[] to Kafka Connect data failed"
kp dlq list "$DLQ" --error-class ListenerExecutionFailedException >"$T/spring.txt"
check "Spring's record: listed by its exception's simple name" grep -q '^1 record: org.springframework.kafka.listener.ListenerExecutionFailedException 1$' "$T/spring.txt"
check "Spring's record: where it came from (big-endian numbers)" grep -q " orders$R/2/77 " "$T/spring.txt"
check "Spring's record: its reason" grep -q "Listener method threw exception; nested: IllegalStateException$" "$T/spring.txt"
kp dlq list "$DLQ" --error-class org.apache.kafka.connect.errors.DataException >"$T/connect.txt"
check "Connect's record: listed, with where it came from" grep -q " orders$R/1/12 .*Converting byte\[\] to Kafka Connect data failed$" "$T/connect.txt"
SP=$(kp dlq list "$DLQ" --error-class ListenerExecutionFailedException --json | "$PYTHON3" -c 'import json,sys; r=json.load(sys.stdin)["records"][0]; print("%d:%d" % (r["partition"], r["offset"]))')
kp dlq show "$DLQ" "$SP" >"$T/spring-show.txt"
check "show: Spring's partition header decoded" grep -Eq '^  kafka_dlt-original-partition +2 \(00 00 00 02\)$' "$T/spring-show.txt"
kp dlq replay "$DLQ" --error-class ListenerExecutionFailedException >"$T/spring-replay.txt"
check "Spring's record replayed to its original topic" grep -q "^replayed 1 record from $DLQ" "$T/spring-replay.txt"
kp dlq replay "$DLQ" --error-class DataException >/dev/null
check "the fixed handler did Spring's and Connect's jobs" wait_for 30 sh -c \
	"grep -q '^spring-1 [0-9]* done' '$T/record' && grep -q '^connect-1 [0-9]* done' '$T/record'"

# --to, --offsets, --limit and bad options.
kp dlq replay "$DLQ" --from-start --to "elsewhere$R" --offsets 0:0..0 --dry-run --json >"$T/to.json"
check "--to and --offsets P:A..B pick the destination and the records" \
	test "$(jget "$T/to.json" 'sorted(set((r["partition"], r["to"]) for r in d["would_replay"]))')" = "[(0, 'elsewhere$R')]"
kp dlq replay "$DLQ" --from-start --limit 2 --dry-run --json >"$T/lim.json"
check "--limit 2" test "$(jget "$T/lim.json" 'len(d["would_replay"])')" = 2
kp dlq replay "$DLQ" --offsets 5 >/dev/null 2>"$T/off.err"
check "--offsets without .. is a usage error" test $? -eq 2
check "... saying what it wants" grep -q "A..B or PARTITION:A..B" "$T/off.err"
kp dlq >/dev/null 2>&1
check "dlq without a subcommand: usage, exit 2" test $? -eq 2

stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
