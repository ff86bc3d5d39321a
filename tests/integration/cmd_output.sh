#!/bin/sh
# What `kpool audit query` and `kpool analytics report` print of job data
# that would drive a terminal: ESC (colours, clearing), OSC (a window title)
# ending in BEL, CR, DEL, the C1 control CSI (U+009B) and bytes that are not
# UTF-8.  For people every control character is shown as an escape (\x1b,
# \r, \u009b) and a byte that is not UTF-8 as U+FFFD; --json is valid JSON
# whose text holds no control character either, and no entry is dropped for
# its bytes.  The jobs go through kpoold's audit and analytics handlers; the
# bytes no job can carry (not UTF-8) are written with sqlite3.  First,
# what kpool and kpoold print when asked: --help and --version.
. "$(dirname "$0")/lib.sh"
require_tools
SQLITE3=${SQLITE3:-$(command -v sqlite3 || true)}
[ -n "$SQLITE3" ] || skip_all "sqlite3 not found (Debian: sqlite3; scripts/setup installs it)"

"$KPOOL" --help >"$T/help.out" 2>"$T/help.err"
check "--help: exit 0" test $? -eq 0
check "--help: the usage on standard output" grep -q '^usage: kpool -c CONF send TOPIC' "$T/help.out"
check "--help: nothing on standard error" test ! -s "$T/help.err"
"$KPOOL" -h >"$T/h.out" 2>"$T/h.err"
check "-h: exit 0, the same usage, nothing on standard error" \
	test "$? $(cat "$T/h.err")" = "0 " -a -s "$T/h.out"
check "-h and --help print the same" cmp -s "$T/h.out" "$T/help.out"
VERSION=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$top_builddir/config.h")
"$KPOOL" --version >"$T/version.out" 2>"$T/version.err"
check "--version: exit 0, nothing on standard error" test "$? $(cat "$T/version.err")" = "0 "
check "--version: 'kpool $VERSION', configure's version" \
	test -n "$VERSION" -a "$(cat "$T/version.out")" = "kpool $VERSION"
check "-V prints what --version does" test "$("$KPOOL" -V 2>&1)" = "kpool $VERSION"
"$KPOOL" --no-such-option >"$T/bad.out" 2>"$T/bad.err"
check "an unknown option: exit 2, the usage on standard error only" \
	test "$? $(wc -c <"$T/bad.out")" = "2 0" -a -s "$T/bad.err"
# And kpoold's.
"$KPOOLD" --help >"$T/dhelp.out" 2>"$T/dhelp.err"
check "kpoold --help: exit 0, the usage on standard output only" \
	test "$? $(wc -c <"$T/dhelp.err")" = "0 0" -a -n "$(sed -n '/^usage: kpoold -c CONF/p' "$T/dhelp.out")"
"$KPOOLD" --version >"$T/dversion.out" 2>"$T/dversion.err"
check "kpoold --version: exit 0, 'kpoold $VERSION (plugin ABI N)'" \
	test "$? $(wc -c <"$T/dversion.err")" = "0 0" -a -n "$(sed -n "/^kpoold $VERSION (plugin ABI [0-9]*)\$/p" "$T/dversion.out")"
check "kpoold -V prints what --version does" test "$("$KPOOLD" -V 2>&1)" = "$(cat "$T/dversion.out")"
"$KPOOLD" --no-such-option >"$T/dbad.out" 2>"$T/dbad.err"
check "kpoold, an unknown option: exit 2, the usage on standard error only" \
	test "$? $(wc -c <"$T/dbad.out")" = "2 0" -a -n "$(sed -n '/^usage: kpoold/p' "$T/dbad.err")"

plugins "$T/plugins"
pool_conf "$T/pool.conf" <<EOF2
[worker:audit]
topic = audit-out$R
handler = audit
[worker:analytics]
topic = events-out$R
handler = analytics
EOF2
start_kpoold "$T/pool.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
AUDIT=$T/state/audit-audit.db
ROLLUP=$T/state/analytics-analytics.db
send() { "$KPOOL" -c "$T/pool.conf" send "$1" 2>>"$T/send.log"; }
send "audit-out$R" <<'EOF2'
{"eventId":"x1","userId":"\u001b[31mred\u001b[0m","action":"login\u0007","resource":"\u001b]0;owned\u0007doc\r","details":{"note":"\u009b2J\u007f"}}
EOF2
send "events-out$R" <<'EOF2'
{"eventId":"e1","userId":"u1","event":"click\u001b[2J\u009b","timestamp":"2024-03-10T09:00:00Z"}
EOF2
count() { "$SQLITE3" "$1" "SELECT count(*) FROM $2" 2>/dev/null || echo 0; }
check "the audit entry is written" wait_for 60 at_least 1 count "$AUDIT" audit_log
check "the event is counted" wait_for 60 at_least 1 count "$ROLLUP" rollup
stop_kpoold "$KPID"
# Text that is not UTF-8 (0xff, and 0x9b alone: CSI's byte in Latin-1).
"$SQLITE3" "$AUDIT" "INSERT INTO audit_log (seq, event_id, at, user_id, action, resource, details, job, prev_hash, hash)
	VALUES ((SELECT max(seq) + 1 FROM audit_log), 'raw-1', 1705314600000, CAST(X'75ff9b' AS TEXT),
	CAST(X'61c29b' AS TEXT), 'r', CAST(X'7bff' AS TEXT), '{}', X'00', X'00')"
"$SQLITE3" "$ROLLUP" "INSERT INTO rollup VALUES ('hour', 1710061200, CAST(X'6576ff9b1b' AS TEXT), 3, X'010e')"

# jget FILE EXPR: a Python expression over the JSON document d in FILE.
jget() { "$PYTHON3" -c "import json,sys; d=json.load(open(sys.argv[1])); print(($2))" "$1"; }

"$KPOOL" audit query "$AUDIT" >"$T/query.txt" 2>"$T/query.log"
check "audit query: exit 0" test $? -eq 0
check "audit query: no control character reaches the terminal" for_people "$T/query.txt"
check "audit query: the user's ESC shown as \\x1b" grep -qF '\x1b[31mred\x1b[0m' "$T/query.txt"
check "audit query: the action's BEL, the resource's OSC and CR shown" \
	grep -Eq ' login\\x07 +\\x1b]0;owned\\x07doc\\r ' "$T/query.txt"
check "audit query: the details' C1 and DEL shown" grep -qF '\u009b2J\x7f' "$T/query.txt"
check "audit query: text that is not UTF-8 shown as U+FFFD" grep -Eq ' u�� +a\\u009b ' "$T/query.txt"
check "audit query: both entries" test "$(tail -1 "$T/query.txt")" = "2 entries"
"$KPOOL" audit query "$AUDIT" --json >"$T/query.json" 2>>"$T/query.log"
check "audit query --json: exit 0" test $? -eq 0
check "audit query --json: no control character in its text" for_people "$T/query.json"
check "audit query --json: both entries (none dropped for its bytes)" \
	test "$(jget "$T/query.json" '[e["event_id"] for e in d]')" = "['x1', 'raw-1']"
check "audit query --json: the escapes kept, as JSON escapes" \
	test "$(jget "$T/query.json" 'ascii([(e["user_id"], e["action"], e["resource"], e["details"]) for e in d])')" = \
	"[('\x1b[31mred\x1b[0m', 'login\x07', '\x1b]0;owned\x07doc\r', {'note': '\x9b2J\x7f'}), ('u\ufffd\ufffd', 'a\x9b', 'r', '{\ufffd')]"

"$KPOOL" analytics report "$ROLLUP" --by hour >"$T/report.txt" 2>"$T/report.log"
check "analytics report: exit 0" test $? -eq 0
check "analytics report: no control character reaches the terminal" for_people "$T/report.txt"
check "analytics report: the event name's ESC and CSI shown" grep -qF 'click\x1b[2J\u009b' "$T/report.txt"
check "analytics report: a name that is not UTF-8 shown with U+FFFD" grep -qF 'ev��\x1b' "$T/report.txt"
"$KPOOL" analytics report "$ROLLUP" --by hour --json >"$T/report.json" 2>>"$T/report.log"
check "analytics report --json: exit 0" test $? -eq 0
check "analytics report --json: no control character in its text" for_people "$T/report.json"
check "analytics report --json: every event (none dropped for its bytes)" \
	test "$(jget "$T/report.json" 'ascii(sorted((t["event"], t["count"]) for t in d["totals"]))')" = \
	"[('click\x1b[2J\x9b', 1), ('ev\ufffd\ufffd\x1b', 3)]"
check "analytics report --json: the series too" \
	test "$(jget "$T/report.json" 'len(d["series"])')" = 2
