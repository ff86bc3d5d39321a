#!/bin/sh
# The console on a dead-letter topic of 1,000,000 records (the real tier: the
# embedded broker keeps only the newest few MB of a partition): the first
# page reads a window per partition, not the topic, and answers in well
# under a second; the newest job is on it; the next page starts where it
# ended; a text that matches nothing reads at most the page budget and says
# so.
. "$(dirname "$0")/lib.sh"
require_tools
need_real
command -v curl >/dev/null || skip_all "curl is missing (scripts/setup installs it)"
N=1000000

plugins "$T/plugins"
pool_conf "$T/c.conf" <<EOF2
[worker:big]
topic = bigsrc$R
handler = probe
dead_letter_topic = big$R.dlq
[console]
listen = 127.0.0.1:0
EOF2
make_topic 4 "big$R.dlq"
# A million records of kpool's own shape, in one kcat run (about 60 MB).
"$PYTHON3" -c "
import sys
w = sys.stdout.write
for i in range($N):
    w('{\"id\":\"e%d\",\"n\":%d}\n' % (i, i))
" >"$T/values"
check "a million records produced" "$KCAT" -P -b "$REAL" -t "big$R.dlq" -z lz4 \
	-H kpool.error.class=fail -H kpool.error=timeout -H kpool.attempts=1 -l "$T/values"
start_kpoold "$T/c.conf" "$T/kpoold.log"
check "the console writes its address" wait_for 30 test -s "$T/state/console.url"
C=$(sed 's,/$,,' "$T/state/console.url")
count() { curl -s "$C/dlq" | grep -o "big$R.dlq</a></td><td class=\"num\">[0-9]*" | sed 's/.*>//'; }
full() { [ "$(count)" = "$N" ]; }
check "the topics page counts 1,000,000 (watermarks only)" wait_for 60 full

# get PATH: body to $T/body, headers to $T/head; prints "STATUS SECONDS".
get() { curl -s -o "$T/body" -D "$T/head" -w '%{http_code} %{time_total}' "$C$1"; }
read_n() { sed -n 's/^X-Kpool-Records-Read: //Ip' "$T/head" | tr -d '\r'; }
set -- $(get "/dlq/big$R.dlq")
check "the first page answers" test "$1" = 200
diag "first page of $N records: $2 s, $(read_n) records read"
check "it reads a window per partition, not the topic" test "$(read_n)" -le 256
check "it shows 50 records" test "$(grep -c '<tr id="r-' "$T/body")" -eq 50
check "in under a second" awk -v t="$2" 'BEGIN { exit !(t < 1.0) }'
first=$(grep -o '<tr id="r-[0-9]*:[0-9]*"' "$T/body" | sort)
older=$(sed -n 's,.*<a id="older" href="\([^"]*\)".*,\1,p' "$T/body" | sed 's/&amp;/\&/g')
# The newest job, found by its text (a page that matches one record reads on
# to its budget looking for more), is one of the first page's.
set -- $(get "/dlq/big$R.dlq?q=%22e$((N - 1))%22")
check "the newest job is found by its text" test "$(grep -c '<tr id="r-' "$T/body")" -eq 1
newest=$(grep -o '<tr id="r-[0-9]*:[0-9]*"' "$T/body")
check "... and it is on the first page" sh -c "echo '$first' | grep -qxF '$newest'"
set -- $(get "$older")
diag "second page: $2 s, $(read_n) records read"
check "the next page starts where the first ended" test "$(grep -c '<tr id="r-' "$T/body")" -eq 50
check "... also reading a window" test "$(read_n)" -le 256
set -- $(get "/dlq/big$R.dlq?since=1d")
check "a since bound answers" test "$1" = 200
set -- $(get "/dlq/big$R.dlq?q=no-such-text-anywhere")
diag "a text matching nothing: $2 s, $(read_n) records read"
check "a text that matches nothing reads at most the budget" test "$(read_n)" -le 20000
check "... and says older ones are on the next page" grep -q 'the most a page reads' "$T/body"
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
