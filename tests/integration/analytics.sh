#!/bin/sh
# The analytics handler: 10,000 events over three simulated hours (times as
# ISO 8601 text, seconds and milliseconds, bare and in both envelope forms),
# folded by two worker processes sharing the rollup; `kpool analytics report`
# matches the counts of every minute, hour and day bucket exactly, and the
# distinct users within 2% (exactly where it says so); duplicates add
# nothing; events without a time fall in the bucket of their Kafka
# timestamp; bad events are dead-lettered with their reason (timestamps that
# are no time among them: 1e300, -1e300, 1e19, "NaN"); the rollup is its
# owner's only (0600, whatever the umask); --event, --since and --json work,
# and --svg draws a chart that parses as XML.
. "$(dirname "$0")/lib.sh"
require_tools
SQLITE3=${SQLITE3:-$(command -v sqlite3 || true)}
[ -n "$SQLITE3" ] || skip_all "sqlite3 not found (Debian: sqlite3; scripts/setup installs it)"

plugins "$T/plugins"
pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:analytics]
topic = analytics-events$R
handler = analytics
processes = 2
EOF2
check "kpoold -t accepts the analytics binding" "$KPOOLD" -t -c "$T/pool.conf"
check "  and creates no file" test ! -e "$T/state/analytics-analytics.db"
sed 's/^handler = analytics$/handler = analytics\ndatabase = x.db/' "$T/pool.conf" >"$T/bad.conf"
"$KPOOLD" -t -c "$T/bad.conf" >"$T/bad.out" 2>&1
check "an unknown option is refused, naming file and line" grep -q "bad.conf:[0-9]*: \[worker:analytics\] database: analytics refused: unknown option 'database' (db)" "$T/bad.out"
umask 022 # a permissive umask: the rollup's mode must not come from it
start_kpoold "$T/pool.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state")
U=$(metrics_url "$T/state")
DB=$T/state/analytics-analytics.db
send() { "$KPOOL" -c "$T/pool.conf" send "analytics-events$R" "$@" 2>>"$T/send.log"; }

# The events, and what each bucket must hold: counts and the exact distinct users.
"$PYTHON3" - "$T/events.jsonl" "$T/expected.json" <<'EOF2'
import datetime, json, random, sys
random.seed(7)
base = 1710061200  # 2024-03-10T09:00:00Z
names = ["page_view"] * 6 + ["click"] * 2 + ["signup", "purchase"]
expected, out = {}, open(sys.argv[1], "w")
for i in range(10000):
    t = base + random.randrange(3 * 3600)
    event = random.choice(names)
    user = "u%d" % random.randrange(6000 if event == "page_view" else 1500)
    form = i % 5
    if form == 0:
        job = {"userId": user, "event": event, "properties": {"path": "/p"}, "timestamp":
               datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    elif form == 1:
        job = {"userId": user, "event": event, "timestamp": t}
    elif form == 2:
        job = {"userId": user, "event": event, "timestamp": t * 1000 + 999}
    elif form == 3:
        job = {"eventType": event, "data": {"userId": user, "timestamp": t}}
    else:
        job = {"type": event, "data": {"userId": user}, "metadata": {"timestamp": t * 1000}}
    job["eventId"] = "e%d" % i
    out.write(json.dumps(job) + "\n")
    for g, w in (("minute", 60), ("hour", 3600), ("day", 86400)):
        k = "%s %d %s" % (g, t - t % w, event)
        c, users = expected.get(k, (0, set()))
        users.add(user)
        expected[k] = (c + 1, users)
json.dump({k: [c, len(u)] for k, (c, u) in expected.items()}, open(sys.argv[2], "w"))
EOF2
send <"$T/events.jsonl"
check "10,000 events queued" test $? -eq 0
# -readonly: a look before the handler made the file must not make it.
counted() { "$SQLITE3" -readonly "$DB" "SELECT coalesce(sum(count), 0) FROM rollup WHERE granularity = 'minute'" 2>/dev/null || echo 0; }
check "every event is counted" wait_for 120 at_least 10000 counted
check "two worker processes share the rollup" test "$(grep -c 'worker=analytics#[01] analytics: ' "$T/kpoold.log")" -ge 2
modes=$(stat -c %a "$DB" "$DB-wal" "$DB-shm" | tr '\n' ' ')
check "the rollup and its -wal and -shm files are its owner's only ($modes)" test "$modes" = "600 600 600 "

# The same events again (a redelivery), then a few without a time of their own, and bad ones.
# First the ids must be in the ledger's file (the ledger shares them between
# the processes at once, but the embedded broker may rebalance and the file
# is what outlives everything).
processed() { "$SQLITE3" -readonly "$T/state/analytics.db" 'SELECT coalesce(sum(n), 0) FROM processed_counts' 2>/dev/null || echo 0; }
check "every event id is in the ledger's file" wait_for 30 at_least 10000 processed
head -500 "$T/events.jsonl" | send
before=$(date +%s)
printf '{"eventId":"k%d","userId":"k%d","event":"no_time"}\n' 1 1 2 2 3 3 | send
after=$(date +%s)
send <<'EOF2'
{"eventId":"bad-noevent","userId":"u1","properties":{}}
{"eventId":"bad-time","userId":"u1","event":"click","timestamp":"yesterday"}
{"eventId":"bad-user","userId":{"id":1},"event":"click"}
{"eventId":"big-1e300","userId":"u1","event":"click","timestamp":1e300}
{"eventId":"big-neg","userId":"u1","event":"click","timestamp":-1e300}
{"eventId":"big-1e19","userId":"u1","event":"click","timestamp":1e19}
{"eventId":"big-nan","userId":"u1","event":"click","timestamp":"NaN"}
{"type":"click","data":{"userId":"u1"},"metadata":{"eventId":"big-meta","timestamp":1e300}}
{"eventId":"last","event":"last","timestamp":1710061200}
EOF2
row() { "$SQLITE3" -separator '|' "$DB" "SELECT $1 FROM rollup WHERE $2" 2>/dev/null; }
dups() { metric "$U" kpool_jobs_total 'worker="analytics",result="duplicate"'; }
check "the redelivered events are seen as duplicates" wait_for 60 at_least 500 dups
# The events after them (on other partitions, so in any order): 3 without a
# time, and one named last.
check "the events after them are counted" wait_for 30 at_least 10004 counted
check "duplicates add nothing" test "$(counted)" -eq 10004
bucket=$(row bucket "event = 'no_time' AND granularity = 'minute'")
check "no time of its own: the minute of its Kafka timestamp ($bucket in $before..$after)" \
	test -n "$bucket" -a "${bucket:-0}" -ge $((before - before % 60)) -a "${bucket:-0}" -le "$after"
check "  three of them, three users" test "$(row 'count, length(users)' "event = 'no_time' AND granularity = 'hour'")" = "3|26"
dlq() { dlq_field "analytics-events$R.dlq" "$1" "$2"; }
dead() { [ -n "$(dlq "$1" 1)" ]; }
check "bad events are dead-lettered" wait_for 30 dead bad-user
check "  no event, saying why" test "$(dlq bad-noevent 2)|$(dlq bad-noevent 9)" = 'fail|no event: the job has neither "event", "eventType" nor "type"'
check "  a timestamp that is no time" test "$(dlq bad-time 9)" = 'timestamp "yesterday" is not a time (ISO 8601, or seconds or milliseconds since the epoch)'
check "  a userId that is an object" test "$(dlq bad-user 9)" = 'userId is neither a string nor an integer'
check "  a timestamp of 1e300 (past 2^63 ms)" test "$(dlq big-1e300 2)|$(dlq big-1e300 9)" = 'fail|timestamp 1.0000000000000001e300 is not a time (seconds or milliseconds since the epoch, up to the year 9999)'
check "  a timestamp of -1e300" test "$(dlq big-neg 2)|$(dlq big-neg 9)" = 'fail|timestamp -1.0000000000000001e300 is not a time (seconds or milliseconds since the epoch, up to the year 9999)'
check "  a timestamp of 1e19" test "$(dlq big-1e19 2)|$(dlq big-1e19 9)" = 'fail|timestamp 1e19 is not a time (seconds or milliseconds since the epoch, up to the year 9999)'
check "  a metadata.timestamp of 1e300" test "$(dlq big-meta 2)" = fail
check "  a timestamp of \"NaN\"" test "$(dlq big-nan 2)|$(dlq big-nan 9)" = 'fail|timestamp "NaN" is not a time (ISO 8601, or seconds or milliseconds since the epoch)'
check "the rollup is in WAL mode" test "$("$SQLITE3" "$DB" 'PRAGMA journal_mode')" = wal
stop_kpoold "$KPID"

# The report against what was sent.
for by in minute hour day; do
	"$KPOOL" analytics report "$DB" --by $by --json >"$T/report-$by.json"
	check "report --by $by --json" test $? -eq 0
done
"$PYTHON3" - "$T" >"$T/compare.out" <<'EOF2'
import json, sys
t = sys.argv[1]
want = json.load(open(t + "/expected.json"))
rows, worst, estimated = 0, 0.0, 0
for by in ("minute", "hour", "day"):
    doc = json.load(open("%s/report-%s.json" % (t, by)))
    assert doc["by"] == by, doc["by"]
    got = {}
    for s in doc["series"]:
        if s["event"] in ("no_time", "last"):
            continue
        got["%s %d %s" % (by, s["bucket_s"], s["event"])] = s
    mine = {k: v for k, v in want.items() if k.startswith(by + " ")}
    assert set(got) == set(mine), (by, sorted(set(got) ^ set(mine))[:5])
    for k, (count, users) in mine.items():
        s = got[k]
        assert s["count"] == count, (k, s, count)
        err = abs(s["users"] - users) / users
        if s["users_exact"]:
            assert s["users"] == users, (k, s, users)
        else:
            estimated += 1
            assert err <= 0.02, (k, s, users)
        worst = max(worst, err)
        rows += 1
print("rows=%d estimated=%d worst=%.4f" % (rows, estimated, worst))
EOF2
rc=$?
diag "$(cat "$T/compare.out")"
check "every bucket's count is exact, its users within 2%" test $rc -eq 0
check "  some of them are HyperLogLog estimates" grep -q 'estimated=[1-9]' "$T/compare.out"
check "  minute, hour and day buckets: all of them" grep -q 'rows=[0-9]' "$T/compare.out"

total() { # EVENT: count and users over the whole report, from --json's totals
	"$KPOOL" analytics report "$DB" --by hour --json |
		"$PYTHON3" -c "import json, sys; print(*[(t['count'], t['users']) for t in json.load(sys.stdin)['totals'] if t['event'] == '$1'][0])"
}
want_total=$("$PYTHON3" -c "
import json
e = [json.loads(l) for l in open('$T/events.jsonl')]
pv = [x for x in e if x.get('event', x.get('eventType', x.get('type'))) == 'page_view']
print(len(pv), len({x.get('userId') or x['data']['userId'] for x in pv}))")
set -- $(total page_view) $want_total
check "totals: page_view's count exact ($1 = $3), its users within 2% ($2 ~ $4)" \
	"$PYTHON3" -c "import sys; sys.exit(not ($1 == $3 and abs($2 - $4) <= 0.02 * $4))"

out=$("$KPOOL" analytics report "$DB" --by day --event signup)
check "a table: bucket, event, count, users" test "$(echo "$out" | head -1 | tr -s ' ')" = "BUCKET EVENT COUNT USERS"
check "  --event keeps that event" test "$(echo "$out" | awk 'NR > 1 && /^20/ { print $1, $2 }')" = "2024-03-10T00:00:00Z signup"
check "  its count matches" test "$(echo "$out" | awk 'NR == 2 { print $3 }')" = "$("$PYTHON3" -c "import json; print(sum(c for k, (c, u) in json.load(open('$T/expected.json')).items() if k.startswith('day ') and k.endswith(' signup')))")"
check "--since leaves out the buckets before it" test "$("$KPOOL" analytics report "$DB" --by hour --since 2024-03-10T11:00:00Z --json | "$PYTHON3" -c "import json, sys; print(sorted({s['bucket'] for s in json.load(sys.stdin)['series']})[0])")" = "2024-03-10T11:00:00Z"
check "--since in the future: no buckets" test "$("$KPOOL" analytics report "$DB" --since 2999-01-01T00:00:00Z | grep -c 'buckets$')" -eq 1

"$KPOOL" analytics report "$DB" --by minute --event page_view --svg "$T/chart.svg" >/dev/null
check "--svg writes the chart" test $? -eq 0 -a -s "$T/chart.svg"
check "  it parses as XML: an svg with a bar per minute, and a legend" "$PYTHON3" -c "
import json, sys, xml.etree.ElementTree as ET
root = ET.parse('$T/chart.svg').getroot()
ns = '{http://www.w3.org/2000/svg}'
assert root.tag == ns + 'svg', root.tag
bars = [r for r in root.iter(ns + 'rect') if r.find(ns + 'title') is not None]
want = sum(1 for k in json.load(open('$T/expected.json')) if k.startswith('minute ') and k.endswith(' page_view'))
assert len(bars) == want, (len(bars), want)
assert all(float(r.get('height')) >= 0 for r in bars)
legend = [t.text for t in root.iter(ns + 'text') if t.text and t.text.startswith('page_view (')]
assert legend, 'no legend'
"
"$KPOOL" analytics report "$DB" --by minute --svg "$T/all.svg" >/dev/null 2>"$T/svg.out"
check "  too many bars (minutes from 2024 to now): exit 2" test $? -eq 2
check "  saying why" grep -qx 'kpool: --svg: [0-9]* minute buckets are too many bars (at most 2000); use --since or a coarser --by' "$T/svg.out"
check "  and no file is left" test ! -e "$T/all.svg"
"$KPOOL" analytics report "$DB" --by week >/dev/null 2>"$T/by.out"
check "a bad --by is refused" test "$? $(cat "$T/by.out")" = "2 kpool: --by week: minute, hour or day"
"$KPOOL" analytics report "$T/missing.db" >/dev/null 2>"$T/missing.out"
check "a missing file: exit 2, saying so" test "$?" -eq 2 -a -s "$T/missing.out"
