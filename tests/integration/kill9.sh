#!/bin/sh
# kill -9 of random workers, five times, while 20,000 jobs flow: every job is
# handled, and no more are handled twice than there were kills (DESIGN.md's
# promise: a killed worker repeats at most the job in hand).
. "$(dirname "$0")/lib.sh"
require_tools
N=20000
KILLS=5

plugins "$T/plugins"
pool_conf "$T/pool.conf" <<EOF2
[worker:k]
topic = killed$R
handler = probe
record = $T/record
processes = 2
EOF2
start_kpoold "$T/pool.conf" "$T/kpoold.log"
bootstrap "$T/state" >/dev/null || { not_ok "embedded broker started"; exit 1; }
"$PYTHON3" -c "
for i in range($N): print('{\"eventId\":\"k%d\",\"do\":\"sleep\",\"ms\":1}' % i)" |
	"$KPOOL" -c "$T/pool.conf" send "killed$R" 2>/dev/null
check "$N jobs queued" test $? -eq 0

kills=0
step=$((N / (KILLS + 2)))
for i in $(seq 1 $KILLS); do
	wait_for 120 at_least $((i * step)) lines_in "$T/record" || break
	victim=$(pgrep -P "$KPID" '^worker k#' | shuf -n 1) # its own: not another test's
	[ -n "$victim" ] && kill -KILL "$victim" && kills=$((kills + 1))
	diag "kill $kills: pid $victim after $(lines_in "$T/record") jobs"
done
check "$KILLS workers killed mid-stream" test "$kills" -eq $KILLS
check "every job handled" wait_for 180 sh -c "[ \$(grep ' done' '$T/record' | cut -d' ' -f1 | sort -u | wc -l) -eq $N ]"
twice=$(grep ' done' "$T/record" | cut -d' ' -f1 | sort | uniq -d | wc -l)
diag "handled twice: $twice after $kills kills"
check "handled twice ($twice) <= kills ($kills)" test "$twice" -le "$kills"
check "the supervisor restarted them" test "$(grep -c 'restarting in' "$T/kpoold.log")" -ge $KILLS
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
