#!/bin/sh
# The audit handler: seed-shaped jobs and the envelope form appended to the
# hash-chained log by two worker processes sharing it, duplicates absorbed, a
# job without an action dead-lettered; `kpool audit verify` passes, then
# names the entry a test edits with sqlite3 (and the one after a deleted
# entry); a verifier written from README's description of the chain
# (audit_chain.py) agrees with it on each; `kpool audit query` filters, and
# prints JSON.  The log is its owner's only (0600, whatever the umask), and
# timestamps that are no time (1e300, -1e300, 1e19, "NaN") leave the entry at
# its Kafka time.
. "$(dirname "$0")/lib.sh"
require_tools
SQLITE3=${SQLITE3:-$(command -v sqlite3 || true)}
[ -n "$SQLITE3" ] || skip_all "sqlite3 not found (Debian: sqlite3; scripts/setup installs it)"

plugins "$T/plugins"
pool_conf "$T/pool.conf" <<EOF2
[worker:audit]
topic = audit-log$R
handler = audit
processes = 2
EOF2
check "kpoold -t accepts the audit binding" "$KPOOLD" -t -c "$T/pool.conf"
check "  and creates no file" test ! -e "$T/state/audit-audit.db"
umask 022 # a permissive umask: the log's mode must not come from it
start_kpoold "$T/pool.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state")
DB=$T/state/audit-audit.db
send() { "$KPOOL" -c "$T/pool.conf" send "audit-log$R" "$@" 2>>"$T/send.log"; }
send <<'EOF2'
{"eventId":"a1","userId":"u1","action":"login","resource":"session","details":{"ip":"203.0.113.9"}}
{"type":"user.updated","data":{"userId":"u2","resource":"profile","details":{"field":"email"}},"metadata":{"eventId":"a2","tenantId":"t1","source":"web","timestamp":"2024-01-15T10:30:00Z"}}
{"eventId":"a-none","userId":"u3","resource":"x"}
EOF2
"$PYTHON3" -c "
for i in range(300):
    print('{\"eventId\":\"g%d\",\"userId\":\"u%d\",\"action\":\"%s\",\"resource\":\"doc/%d\"}' % (i, i % 7, ['view', 'edit', 'delete'][i % 3], i))
" | send
check "jobs queued" test $? -eq 0
# -readonly: a look before the handler made the file must not make it.
rows() { "$SQLITE3" -readonly "$DB" 'SELECT count(*) FROM audit_log' 2>/dev/null || echo 0; }
row() { "$SQLITE3" -separator '|' "$DB" "SELECT $2 FROM audit_log WHERE event_id = '$1'"; }
check "every entry is in the log" wait_for 60 at_least 302 rows
check "two worker processes share it" test "$(grep -c 'worker=audit#[01] audit: ' "$T/kpoold.log")" -ge 2
modes=$(stat -c %a "$DB" "$DB-wal" "$DB-shm" | tr '\n' ' ')
check "the log and its -wal and -shm files are its owner's only ($modes)" test "$modes" = "600 600 600 "
before=$(date +%s%3N)
send <<'EOF2'
{"eventId":"a1","userId":"u1","action":"login","resource":"session"}
{"type":"user.updated","data":{"userId":"u2"},"metadata":{"eventId":"a2"}}
{"eventId":"ts-1e300","userId":"u1","action":"t","timestamp":1e300}
{"eventId":"ts-neg","userId":"u1","action":"t","timestamp":-1e300}
{"eventId":"ts-1e19","userId":"u1","action":"t","timestamp":1e19}
{"eventId":"ts-nan","userId":"u1","action":"t","timestamp":"NaN"}
{"type":"t","data":{"userId":"u1"},"metadata":{"eventId":"ts-meta","timestamp":1e300}}
{"eventId":"a-last","userId":"u9","action":"logout"}
EOF2
after=$(date +%s%3N)
check "the jobs after the duplicates are in the log" wait_for 30 at_least 308 rows
check "duplicates add nothing" test "$(rows)" -eq 308
check "seq runs 1..308 without a gap" test "$("$SQLITE3" "$DB" 'SELECT min(seq), max(seq), count(DISTINCT seq) FROM audit_log')" = "1|308|308"
for id in ts-1e300 ts-neg ts-1e19 ts-nan ts-meta; do
	at=$(row $id at)
	check "timestamp of $id is no time: the entry is at its Kafka time ($at in $before..$after)" \
		test -n "$at" -a "${at:-0}" -ge "$before" -a "${at:-0}" -le "$after"
done
check "a seed-shaped job" test "$(row a1 'user_id, action, resource, details')" = 'u1|login|session|{"ip":"203.0.113.9"}'
check "the envelope: action from type, fields from data, time from metadata" \
	test "$(row a2 'user_id, action, resource, details, at')" = 'u2|user.updated|profile|{"field":"email"}|1705314600000'
check "  the whole job is kept" test "$(row a2 "json_extract(job, '$.metadata.tenantId')")" = t1
check "the log is in WAL mode" test "$("$SQLITE3" "$DB" 'PRAGMA journal_mode')" = wal
dlq() { dlq_field "audit-log$R.dlq" "$1" "$2"; }
dead() { [ -n "$(dlq "$1" 1)" ]; }
check "no action: dead-lettered" wait_for 30 dead a-none
check "  as fail, saying why" test "$(dlq a-none 2)|$(dlq a-none 9)" = 'fail|no action: the job has neither "action" nor "type"'
stop_kpoold "$KPID"

# verify
out=$("$KPOOL" audit verify "$DB")
check "verify: ok 308 entries" test "$? $out" = "0 ok 308 entries"
# A verifier with nothing of kpool's code, the layout read from README.md.
chain() { "$PYTHON3" "$top_srcdir/tests/integration/audit_chain.py" "$1" "$top_srcdir/README.md"; }
mine=$(chain "$DB")
check "README's layout, recomputed independently, agrees: $mine" test "$? $mine" = "0 ok 308 entries"
# query
check "query --user" test "$("$KPOOL" audit query "$DB" --user u1 | awk 'NR > 1 && $6 == "a1" { print $3, $4, $5 }')" = "u1 login session"
check "query --action: a table and a count" test "$("$KPOOL" audit query "$DB" --action delete | tail -1)" = "100 entries"
check "query --since (in the future: nothing)" test "$("$KPOOL" audit query "$DB" --since 2999-01-01T00:00:00Z | tail -1)" = "0 entries"
check "query --since an age" test "$("$KPOOL" audit query "$DB" --since 1h --action user.updated | tail -1)" = "0 entries"
check "query --json: one document" sh -c "'$KPOOL' audit query '$DB' --action user.updated --json | '$PYTHON3' -c 'import json, sys; d = json.load(sys.stdin); assert len(d) == 1 and d[0][\"details\"] == {\"field\": \"email\"} and d[0][\"at\"] == \"2024-01-15T10:30:00Z\", d'"
"$KPOOL" audit query "$DB" --since yesterday >/dev/null 2>"$T/since.out"
check "a bad --since is refused" test "$? $(cat "$T/since.out")" = "2 kpool: --since yesterday: not a time (2024-01-15T10:00:00Z, 1705312800, or an age: 90m, 24h, 7d)"

# tampering, on copies made with SQLite's backup, which takes what is still
# in the write-ahead log too (two workers closing at once leave it there)
"$SQLITE3" "$DB" ".backup '$T/edited.db'"
"$SQLITE3" "$T/edited.db" "UPDATE audit_log SET user_id = 'mallory' WHERE seq = 42"
out=$("$KPOOL" audit verify "$T/edited.db")
check "an edited entry: verify exits 1 naming its seq" test "$? $out" = "1 bad seq 42: its hash does not match its contents (41 entries before it hold)"
check "  the independent verifier says the same" test "$(chain "$T/edited.db")" = "$out"
"$SQLITE3" "$DB" ".backup '$T/deleted.db'"
"$SQLITE3" "$T/deleted.db" "DELETE FROM audit_log WHERE seq = 100"
out=$("$KPOOL" audit verify "$T/deleted.db")
check "a deleted entry: verify names the one after it" test "$? $out" = "1 bad seq 101: prev_hash is not the hash of the entry before it (99 entries before it hold)"
check "  the independent verifier says the same" test "$(chain "$T/deleted.db")" = "$out"
"$KPOOL" audit verify "$T/missing.db" >/dev/null 2>"$T/missing.out"
check "a missing file: exit 2, saying so" test "$?" -eq 2
