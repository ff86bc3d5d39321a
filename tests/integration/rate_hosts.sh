#!/bin/sh
# A binding's rate across hosts, on real Kafka: two kpoold instances with
# state_dirs of their own (two "hosts", two processes each) in one consumer
# group on an 8-partition topic, rate = 40/s.  Each host takes the share of
# the rate its share of the partitions gives it (4 of 8: 20/s), with no
# traffic between them.  Over 20 s of a backlog both hosts work on, the
# probe's calls of both together come within 10% of 40/s, each host did
# about half, and every job is handled once.  It runs alone (a serial test):
# another test's load would be in its figure.
. "$(dirname "$0")/lib.sh"
require_tools
need_real
N=1400
RATE=40

plugins "$T/plugins"
make_topic 8 "quota$R"
for h in 1 2; do
	pool_conf "$T/host$h.conf" "state_dir = $T/host$h" <<EOF2
[worker:q]
topic = quota$R
handler = probe
record = $T/record-$h
timed = on
processes = 2
group = quota$R
rate = $RATE/s
EOF2
done
start_kpoold "$T/host1.conf" "$T/host1.log"
start_kpoold "$T/host2.conf" "$T/host2.log"
# assigned LOG: partitions the host's two workers hold now (their last assignments).
assigned() { grep -o 'worker=q#[01] assigned partitions=[0-9]*' "$1" | awk -F'[ =]' '{ last[$2] = $NF } END { for (w in last) s += last[w]; print s + 0 }'; }
halves() { [ "$(assigned "$T/host1.log")" = 4 ] && [ "$(assigned "$T/host2.log")" = 4 ]; }
check "the hosts hold 4 of the 8 partitions each" wait_for 90 halves

"$PYTHON3" -c "
for i in range($N): print('{\"id\":\"q%d\"}' % i)" | "$KPOOL" -c "$T/host1.conf" send "quota$R" 2>/dev/null
check "$N jobs published" test $? -eq 0
all_done() { [ $(($(lines_in "$T/record-1") + $(lines_in "$T/record-2"))) -ge $N ]; }
check "all $N handled" wait_for 120 all_done
check "... each once" test "$(cat "$T/record-1" "$T/record-2" | cut -d' ' -f1 | sort -u | wc -l)" -eq $N -a \
	"$(cat "$T/record-1" "$T/record-2" | wc -l)" -eq $N
# The 20 s from 5 s after the first call: calls of each host, and together per second.
"$PYTHON3" - "$T/record-1" "$T/record-2" >"$T/figures" <<'PY'
import sys
t = [[int(l.split()[-1]) for l in open(f)] for f in sys.argv[1:]]
start = min(min(x) for x in t) + 5000000
end = start + 20000000
n = [sum(start <= c < end for c in x) for x in t]
busy = all(max(x) >= end for x in t)  # both hosts still had jobs at the end
print(n[0], n[1], "%.1f" % ((n[0] + n[1]) / 20), int(busy))
PY
read -r H1 H2 SEEN BUSY <"$T/figures"
diag "over 20 s: host 1 $H1 calls, host 2 $H2; together $SEEN/s (rate = $RATE/s)"
check "both hosts had work for the whole 20 s" test "$BUSY" = 1
check "together within 10% of $RATE/s ($SEEN)" "$PYTHON3" -c "import sys; sys.exit(abs(float('$SEEN') - $RATE) > $RATE * 0.1)"
check "each host did its share, 20/s within 15% ($H1, $H2 in 20 s)" \
	"$PYTHON3" -c "import sys; sys.exit(not all(340 <= int(x) <= 460 for x in sys.argv[1:]))" "$H1" "$H2"
for h in 1 2; do
	check "host $h: no sanitizer reports" sh -c "! grep -q 'Sanitizer' '$T/host$h.log'"
done
