#!/bin/sh
# Plugins with handle_batch: jobs of one partition arrive together; duplicates,
# bad input, failures and retries inside a batch are treated as for one job.
. "$(dirname "$0")/lib.sh"
require_tools
N=500

plugins "$T/plugins"
pool_conf "$T/batch.conf" <<EOF2
[worker:b]
topic = batched$R
handler = probebatch
record = $T/record
max_attempts = 3
retry_backoff = 100ms
retry_backoff_max = 200ms
EOF2
start_kpoold "$T/batch.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
# Queue everything before the worker joins, so that it finds full batches.
{
	i=0; while [ $i -lt $N ]; do printf '{"eventId":"b%d"}\n' $i; i=$((i + 1)); done
	printf '%s\n' '{"eventId":"twin"}' '{"eventId":"twin"}' '{"eventId":"twin-after"}'
	printf '%s\n' '{"eventId":"b7"}' '{"eventId":"bf","do":"fail"}' 'nonsense' \
		'{"eventId":"br","do":"retry","succeed_at":2}' '{"eventId":"bx","do":"retry"}' '{"eventId":"last"}'
} | "$KPOOL" -c "$T/batch.conf" send "batched$R" --key one-partition 2>/dev/null
check "every job handled" wait_for 60 sh -c "grep -q '^last 1 done' '$T/record' && [ \$(grep -c '^b[0-9]* 1 done' '$T/record') -ge $N ]"
check "jobs came in batches of more than one" test "$(awk '$4 > 1' "$T/record" | wc -l)" -gt 0
check "a duplicate inside a batch is skipped" test "$(grep -c '^b7 ' "$T/record")" -eq 1
check "the same event twice in a row in one batch: handled once" test "$(grep -c '^twin ' "$T/record")" -eq 1
check "and what follows it is handled" grep -q '^twin-after 1 done' "$T/record"
check "no job handled twice" test -z "$(grep ' done' "$T/record" | cut -d' ' -f1 | sort | uniq -d)"
check "a retried job is done on attempt 2" wait_for 30 grep -q '^br 2 done' "$T/record"
check "failure, bad input and exhausted retries are dead-lettered" wait_for 30 sh -c \
	"[ \"\$('$KCAT' -C -b '$B' -t 'batched$R.dlq' -e -q -f '%h\n' | grep -oE 'kpool.error.class=[a-z-]+' | sort | tr '\n' ' ')\" = 'kpool.error.class=bad-input kpool.error.class=fail kpool.error.class=retries-exhausted ' ]"
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
