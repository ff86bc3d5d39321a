#!/bin/sh
# Expiry: a job past its deadline when its turn comes is not handled.
#  - its own deadline, expiresAt or metadata.expiresAt, as an ISO 8601 time,
#    epoch milliseconds or epoch seconds: past ones are dead-lettered with
#    class expired and the deadline in the reason, future ones handled; one
#    that is no time is bad input;
#  - a job asking for retries stops at its deadline: dead-lettered expired
#    once its next attempt would come after it, with the attempts it had;
#  - max_age, from the Kafka timestamp: jobs that waited (their binding
#    paused) longer are dead-lettered expired, a fresh one is handled; with
#    expired = drop they are counted and skipped, nothing dead-lettered.
# kpool dlq list --error-class expired finds them; /metrics and kpool status
# count them.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
pool_conf "$T/x.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:e]
topic = stale$R
handler = probe
record = $T/record
max_attempts = 10
retry_backoff = 1s
retry_backoff_max = 8s
[worker:a]
topic = aged$R
handler = probe
record = $T/aged
max_age = 2s
[worker:d]
topic = dropped$R
handler = probe
record = $T/dropped
max_age = 2s
expired = drop
EOF2
make_topic 4 "stale$R.dlq" "aged$R.dlq" "dropped$R.dlq"
kp() { "$KPOOL" -c "$T/x.conf" "$@"; }
now_ms() { "$PYTHON3" -c 'import time; print(int(time.time() * 1000))'; }
# a and d start paused: their jobs wait, and grow old.
kp pause a >/dev/null && kp pause d >/dev/null
start_kpoold "$T/x.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
U=$(metrics_url "$T/state") || { not_ok "metrics listen"; exit 1; }
check "the workers joined" wait_for 60 sh -c "grep -q 'worker=e#0 assigned partitions=[1-9]' '$T/kpoold.log'"

"$PYTHON3" - >"$T/jobs" <<'PY'
import json, time
from datetime import datetime, timezone, timedelta
now = time.time()
iso = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
jobs = [
    {"id": "past-iso", "expiresAt": iso(now - 3600)},
    {"id": "past-ms", "expiresAt": int((now - 60) * 1000)},
    {"type": "reminder", "data": {}, "metadata": {"eventId": "past-meta", "expiresAt": iso(now - 1)}},
    {"id": "past-s", "expiresAt": int(now - 10)},
    {"id": "future-iso", "expiresAt": datetime.fromtimestamp(now + 3600, timezone(timedelta(hours=2))).isoformat()},
    {"id": "future-ms", "expiresAt": int((now + 3600) * 1000)},
    {"id": "future-s", "expiresAt": now + 3600.5},
    {"type": "reminder", "data": {}, "metadata": {"eventId": "future-meta", "expiresAt": iso(now + 3600)}},
    {"id": "none"},
    {"id": "nodate", "expiresAt": "tomorrow"},
    {"id": "retrying", "do": "retry", "expiresAt": iso(now + 6)},
]
for j in jobs:
    print(json.dumps(j))
PY
kp send "stale$R" <"$T/jobs" 2>/dev/null
check "11 jobs published" test $? -eq 0
cls() { dlq_field "stale$R.dlq" "$1" 2; }
reason() { dlq_field "stale$R.dlq" "$1" 9; }
reason_has() { reason "$1" | grep -Eq "$2"; }
expired_dl() { [ "$(cls "$1")" = expired ]; }
for e in past-iso past-ms past-meta past-s; do
	check "$e: dead-lettered, class expired" wait_for 30 expired_dl $e
done
check "... the reason names the deadline and where it came from" \
	reason_has past-meta '^expired: its deadline [0-9-]{10}T[0-9:.]{12}Z \(metadata\.expiresAt\) passed before its turn$'
check "... and for expiresAt" reason_has past-iso ' \(expiresAt\) passed before its turn$'
check "... none of them reached the handler" \
	test "$(grep -cE '^past-(iso|ms|meta|s) ' "$T/record")" -eq 0
handled() { grep -q "^$1 1 done" "$T/record"; }
for e in future-iso future-ms future-s future-meta none; do
	check "$e: handled" wait_for 30 handled $e
done
badin() { [ "$(cls nodate)" = bad-input ]; }
check "a deadline that is no time: bad input" wait_for 30 badin
check "... saying which field" reason_has nodate '^expiresAt is not a time'
check "a job retrying past its deadline: dead-lettered expired" wait_for 30 expired_dl retrying
ATT=$(dlq_field "stale$R.dlq" retrying 3)
check "... after the attempts it had before it ($ATT)" test "${ATT:-0}" -ge 2 -a "$(grep -c '^retrying ' "$T/record")" -eq "${ATT:-0}"
check "... its reason: retries stop" reason_has retrying 'comes before its next attempt \([0-9]+ of 10, in [0-9]+ ms\): retries stop$'

# A replay is the operator's decision: the replayed jobs are handled, deadline or not.
kp dlq replay "stale$R.dlq" --error-class expired --grep past- >"$T/replay.out" 2>&1
check "kpool dlq replay --error-class expired --grep past-: exit 0" test $? -eq 0
replayed() { [ "$(grep -cE '^past-(iso|ms|meta|s) 1 done' "$T/record")" = 4 ]; }
check "... the 4 replayed jobs are handled, past their deadlines" wait_for 30 replayed

# max_age: the paused bindings' jobs wait past it.
{ for i in 1 2 3 4 5; do printf '{"id":"a%d"}\n' $i; done; } | kp send "aged$R" 2>/dev/null
{ for i in 1 2 3 4 5; do printf '{"id":"d%d"}\n' $i; done; } | kp send "dropped$R" 2>/dev/null
SENT=$(now_ms)
old_enough() { [ $(($(now_ms) - SENT)) -ge 2500 ]; }
check "the jobs of a and d grow older than max_age" wait_for 10 old_enough
kp resume a >/dev/null && kp resume d >/dev/null
aged_dl() { [ "$(kp dlq list "aged$R.dlq" --error-class expired --json 2>/dev/null | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["total"])')" = 5 ]; }
check "max_age: the 5 old jobs dead-lettered, class expired (kpool dlq list --error-class expired)" wait_for 30 aged_dl
aged_reason() { dlq_field "aged$R.dlq" a3 9 | grep -q '(max_age = 2s from its Kafka timestamp) passed before its turn$'; }
check "... the reason says max_age" aged_reason
check "... none handled" test "$(lines_in "$T/aged")" -eq 0
printf '{"id":"a6"}\n' | kp send "aged$R" 2>/dev/null
check "a fresh job is handled" wait_for 30 sh -c "grep -q '^a6 1 done' '$T/aged'"
dropped() { [ "$(metric "$U" kpool_jobs_total 'worker="d",result="expired"')" = 5 ]; }
check "expired = drop: the 5 counted expired" wait_for 30 dropped
check "... none handled" test "$(lines_in "$T/dropped")" -eq 0
check "... none dead-lettered" test "$(metric "$U" kpool_jobs_total 'worker="d",result="dead_lettered"')" = 0 -a \
	"$(kp dlq list "dropped$R.dlq" --json 2>/dev/null | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["total"])')" = 0

check "/metrics: e expired 5" test "$(metric "$U" kpool_jobs_total 'worker="e",result="expired"')" = 5
check "... and dead-lettered them as expired" test "$(metric "$U" kpool_dead_letter_total 'worker="e",class="expired"')" = 5
check "... a expired 5" test "$(metric "$U" kpool_dead_letter_total 'worker="a",class="expired"')" = 5
kp status >"$T/status"
check "kpool status: the EXPIRED column" grep -Eq '^d +probe +1/1 +no +- +- +0 +0 +0 +0 +0 +5 ' "$T/status"
check "kpool dlq list --error-class expired: e's 5" sh -c \
	"'$KPOOL' -c '$T/x.conf' dlq list 'stale$R.dlq' --error-class expired | grep -Eq '^5 records: expired 5'"
stop_kpoold "$KPID"
check "kpoold stops cleanly" test $? -eq 0
check "no sanitizer reports in the log" sh -c "! grep -q 'Sanitizer' '$T/kpoold.log'"
