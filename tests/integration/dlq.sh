#!/bin/sh
# The dead-letter tools: jobs of several classes are dead-lettered, listed and
# filtered, one is shown, a class is replayed into the original topic where
# the handler, now fixed, does them; a second replay sends nothing again; a
# replayed job dead-lettered again carries one set of kpool headers; Spring
# Kafka's and Kafka Connect's dead-letter records are read and replayed.
# Hostile records: headers that would drive a terminal or are not UTF-8 are
# shown escaped (and kept in valid JSON), a kpool.failed-at that is no time
# is shown unknown, a record naming a topic whose failed jobs do not go to
# its dead-letter topic is refused unless --to says where, and replay
# progress metadata that overflows or spans huge ranges is read in no time.
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
check "dry run: says where they would go" grep -q "^would replay 5 records from $DLQ to orders$R; " "$T/dry.txt"
check "dry run: lists them with their destination" test "$(grep -c " fail .* orders$R\$" "$T/dry.txt")" -eq 5
check "dry run: nothing was sent" test "$(dlq_json "$B" "orders$R" | grep -c replayed-from)" -eq 0

# The handler is fixed; the failed class goes back to where it came from.
: >"$T/fixed"
kp dlq replay "$DLQ" --error-class fail >"$T/replay1.txt" 2>"$T/replay1.err"
check "replay exits 0" test $? -eq 0
check "replay: five sent, and where" grep -q "^replayed 5 records from $DLQ to orders$R; 6 left as they are$" "$T/replay1.txt"
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
kp dlq replay "$DLQ" --offsets 3000000000:0..0 --dry-run >/dev/null 2>"$T/off2.err"
check "--offsets with a partition past 2^31-1: usage error, nothing replayed" test $? -eq 2
check "... saying what it wants" grep -q "a partition below 2^31" "$T/off2.err"
kp dlq replay "$DLQ" --offsets 0:99999999999999999999..0 --dry-run >/dev/null 2>&1
check "--offsets with an offset past 2^63-1: usage error" test $? -eq 2
kp dlq replay "$DLQ" --offsets 0:5..4 --dry-run >/dev/null 2>&1
check "--offsets running backwards: usage error" test $? -eq 2
kp dlq replay "$DLQ" --offsets 7:0..0 --dry-run >/dev/null 2>"$T/off3.err"
check "--offsets naming a partition the topic does not have: exit 1" test $? -eq 1
check "... saying so" grep -q "$DLQ has no partition 7" "$T/off3.err"
kp dlq list "$DLQ" --since 1e300d >/dev/null 2>"$T/since2.err"
check "--since 1e300d: usage error 2" test $? -eq 2
check "... saying it reaches back before 1970" grep -q "^kpool: --since 1e300d: an age reaching back before 1970$" "$T/since2.err"
kp dlq list "$DLQ" --since -1e300s >/dev/null 2>"$T/since3.err"
check "--since -1e300s: usage error 2, saying why" test "$? $(cat "$T/since3.err")" = "2 kpool: --since -1e300s: a negative number is no time nor age"
kp dlq list "$DLQ" --since 1e300 >/dev/null 2>"$T/since4.err"
check "--since 1e300 (seconds): usage error 2, saying why" test "$? $(cat "$T/since4.err")" = "2 kpool: --since 1e300: seconds since the epoch past the year 9999"


# A record planted in the dead-letter topic, naming a topic no binding
# dead-letters there: refused unless --to says so.
"$PRODUCE" "$B" "$DLQ" planted '{"id":"planted-1","pay":1000000}' \
	"kpool.original.topic=payments$R" kpool.original.partition=0 kpool.original.offset=1 \
	kpool.error.class=planted "kpool.error=replay me into payments"
PL=$(kp dlq list "$DLQ" --error-class planted --json | "$PYTHON3" -c 'import json,sys; r=json.load(sys.stdin)["records"][0]; print("%d:%d..%d" % (r["partition"], r["offset"], r["offset"]))')
kp dlq replay "$DLQ" --offsets "$PL" --dry-run >"$T/planted-dry.txt" 2>"$T/planted-dry.err"
check "dry run of a record naming another topic: exit 1" test $? -eq 1
check "... says it is not replayed there, and why" grep -q "not replayed to payments$R: no binding of $T/dlq.conf sends that topic's failed jobs to $DLQ (those that do: orders$R); --to TOPIC sends it there" "$T/planted-dry.err"
check "... would replay nothing, one refused" grep -q "^would replay 0 records from $DLQ;.* 1 REFUSED" "$T/planted-dry.txt"
kp dlq replay "$DLQ" --offsets "$PL" >"$T/planted.txt" 2>"$T/planted.err"
check "replay of a record naming another topic: exit 1, nothing sent" test "$? $(dlq_json "$B" "payments$R" | wc -l)" = "1 0"
check "... one refused" grep -q "^replayed 0 records from $DLQ;.* 1 REFUSED" "$T/planted.txt"
kp dlq replay "$DLQ" --offsets "$PL" --to "payments$R" --dry-run --json >"$T/planted-to.json"
check "--to sends it where the operator says" test "$(jget "$T/planted-to.json" '[r["to"] for r in d["would_replay"]], d["destinations"], len(d["refused"])')" = "(['payments$R'], {'payments$R': 1}, 0)"

# Hostile records on a topic of their own, one partition (one key): a time
# that is no time; escapes of terminals in the class, the reason, the event
# id, a header's name and value; bytes that are not UTF-8.
H=hostile$R.dlq
make_topic 1 "$H"
"$PRODUCE" "$B" "$H" h '{"id":"h-time"}' "kpool.original.topic=orders$R" kpool.original.partition=0 \
	kpool.original.offset=1 kpool.error.class=fail "kpool.error=a time that is none" \
	kpool.failed-at=2024-01-01T00:00:00-0:0
"$PRODUCE" "$B" "$H" h '{"id":"h-esc"}' "kpool.original.topic=orders$R" kpool.original.partition=0 \
	kpool.original.offset=2 kpool.error.class=0x6573631b5b33316d \
	kpool.error=0x1b5d303b6f776e6564070d63720720c29b324a209b324a7f \
	kpool.event-id=0x651b5b324a "$(printf 'x-\033[1mname=value\rcr')" \
	kpool.failed-at=2024-01-01T00:00:00Z
"$PRODUCE" "$B" "$H" h '{"id":"h-bytes"}' "kpool.original.topic=orders$R" kpool.original.partition=0 \
	kpool.original.offset=3 kpool.error.class=0x626164ff kpool.error=0x72fe \
	kpool.failed-at=2024-01-01T00:00:01Z
kp dlq list "$H" >"$T/hostile.txt" 2>"$T/hostile-list.log"
check "list of hostile records: exit 0" test $? -eq 0
check "list: a row for each" test "$(grep -c "orders$R/0/" "$T/hostile.txt")" -eq 3
check "list: a kpool.failed-at that is no time is shown unknown" grep -Eq "^[0-9]+:[0-9]+ +- +orders$R/0/1 +fail " "$T/hostile.txt"
check "list: no control character reaches the terminal" for_people "$T/hostile.txt"
check "list: ESC shown as \\x1b" grep -qF 'esc\x1b[31m' "$T/hostile.txt"
check "list: OSC, BEL, CR, CSI (C1, as UTF-8 and as a byte) and DEL shown" \
	grep -qF '\x1b]0;owned\x07\rcr\x07 \u009b2J �2J\x7f' "$T/hostile.txt"
check "list: bytes that are not UTF-8 shown as U+FFFD" grep -qF ' bad� ' "$T/hostile.txt"
check "list: the summary escapes too" grep -qF 'esc\x1b[31m 1' "$T/hostile.txt"
kp dlq list "$H" --json >"$T/hostile.json" 2>>"$T/hostile-list.log"
check "list --json: valid JSON, no control character in its text" for_people "$T/hostile.json"
check "list --json: the time that is none is null" test "$(jget "$T/hostile.json" '[r["failed_at"] for r in d["records"] if r["reason"] == "a time that is none"]')" = "[None]"
check "list --json: classes and total agree (none dropped)" test "$(jget "$T/hostile.json" 'ascii((d["total"], sum(d["classes"].values()), sorted(d["classes"])))')" = \
	"(3, 3, ['bad\ufffd', 'esc\x1b[31m', 'fail'])"
check "list --json: the escapes kept, as JSON escapes" test "$(jget "$T/hostile.json" 'ascii([(r["class"], r["reason"], r["event_id"]) for r in d["records"] if r["event_id"]])')" = \
	"[('esc\x1b[31m', '\x1b]0;owned\x07\rcr\x07 \x9b2J \ufffd2J\x7f', 'e\x1b[2J')]"
check "list --json: a record whose headers are not UTF-8 keeps its class, reason and origin" \
	test "$(jget "$T/hostile.json" 'ascii([(r["class"], r["reason"], r["original"]["topic"]) for r in d["records"] if r["class"].startswith("bad")])')" = \
	"[('bad\ufffd', 'r\ufffd', 'orders$R')]"
HE=$(jget "$T/hostile.json" '["%d:%d" % (r["partition"], r["offset"]) for r in d["records"] if r["event_id"]][0]')
kp dlq show "$H" "$HE" >"$T/hostile-show.txt" 2>"$T/hostile-show.log"
check "show of a hostile record: exit 0" test $? -eq 0
check "show: no control character reaches the terminal" for_people "$T/hostile-show.txt"
check "show: a header's name and a value with CR, escaped" grep -Eq '^  x-\\x1b\[1mname +value\\rcr$' "$T/hostile-show.txt"
kp dlq show "$H" "$HE" --json >"$T/hostile-show.json" 2>>"$T/hostile-show.log"
check "show --json: valid JSON, no control character in its text" for_people "$T/hostile-show.json"
check "show --json: the header's name and value kept" test "$(jget "$T/hostile-show.json" 'ascii([(h["name"], h["value"]) for h in d["headers"] if h["name"].startswith("x-")])')" = \
	"[('x-\x1b[1mname', 'value\rcr')]"
kp dlq replay "$H" --from-start --dry-run >"$T/hostile-replay.txt" 2>"$T/hostile-replay.err"
check "replay from a topic no binding dead-letters to: exit 1, all three refused" \
	test "$? $(grep -c "not replayed to orders$R: no binding of $T/dlq.conf sends that topic's failed jobs to $H; --to" "$T/hostile-replay.err")" = "1 3"

# Replay progress metadata that is no offsets, overflows, or spans huge ranges.
# commit_meta GROUP TOPIC PARTITION OFFSET METADATA: commits as a consumer
# outside the group would (OffsetCommit v2, generation -1).
commit_meta() {
	"$PYTHON3" - "$B" "$@" <<'PY'
import socket, struct, sys, time
boot, group, topic, part, off, meta = sys.argv[1:7]
def s16(x):
    x = x.encode()
    return struct.pack(">h", len(x)) + x
def call(addr, key, ver, body):
    host, port = addr.rsplit(":", 1)
    c = socket.create_connection((host, int(port)), timeout=10)
    req = struct.pack(">hhi", key, ver, 1) + s16("kpool-test") + body
    c.sendall(struct.pack(">i", len(req)) + req)
    n = struct.unpack(">i", c.recv(4, socket.MSG_WAITALL))[0]
    r = b""
    while len(r) < n:
        r += c.recv(n - len(r))
    c.close()
    return r[4:]
def commit():
    r = call(boot.split(",")[0], 10, 0, s16(group))  # FindCoordinator
    err, node, hl = struct.unpack(">hih", r[:8])
    if err:
        return "FindCoordinator: error %d" % err
    host = r[8:8 + hl].decode()
    port = struct.unpack(">i", r[8 + hl:12 + hl])[0]
    body = s16(group) + struct.pack(">i", -1) + s16("") + struct.pack(">q", -1)
    body += struct.pack(">i", 1) + s16(topic) + struct.pack(">i", 1)
    body += struct.pack(">iq", int(part), int(off)) + s16(meta)
    r = call("%s:%d" % (host, port), 8, 2, body)  # OffsetCommit
    tl = struct.unpack(">h", r[4:6])[0]
    err = struct.unpack(">h", r[6 + tl + 8:6 + tl + 10])[0]
    return "OffsetCommit: error %d" % err if err else None
# A coordinator still loading (14), not there yet (15) or moved (16) is asked again.
deadline = time.time() + 20
while True:
    why = commit()
    if why is None:
        break
    if not why.endswith((" 14", " 15", " 16")) or time.time() > deadline:
        sys.exit(why)
    time.sleep(0.2)
PY
}
HP=$(jget "$T/hostile.json" 'd["records"][0]["partition"]')
commit_meta "kpool-replay-$H" "$H" "$HP" 0 "replayed:99999999999999999999"
check "progress metadata committed (an offset past 2^63-1)" test $? -eq 0
timeout 20 "$KPOOL" -c "$T/dlq.conf" dlq replay "$H" --dry-run >"$T/meta1.txt" 2>"$T/meta1.err"
check "replay with it ends at once (not 124: killed after 20 s)" test $? -eq 1
check "... saying the metadata is ignored" grep -q "^kpool: $H \[$HP\]: the replay progress of group kpool-replay-$H has metadata that is not \"replayed:A-B,C\" (its item 1 (at byte 9) is not an offset N or a range A-B of offsets up to 2^63-1); it is ignored, so records from offset 0 on may be sent again$" "$T/meta1.err"
commit_meta "kpool-replay-$H" "$H" "$HP" 0 "replayed:1-9999999,0-9999998"
timeout 20 "$KPOOL" -c "$T/dlq.conf" dlq replay "$H" --dry-run >"$T/meta2.txt" 2>"$T/meta2.err"
check "replay with ranges of ten million offsets ends at once" test $? -eq 0
check "... and takes them as replayed" grep -q "^would replay 0 records from $H; 3 replayed before" "$T/meta2.txt"

stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
