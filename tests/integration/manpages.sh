#!/bin/sh
# The man pages: they format without warnings; kpool.conf(5) documents every
# key of the option tables with its default; kpool(1) every subcommand and
# option kpool's usage names; kpoold(8) every metric /metrics serves; and
# kpool-plugin(7)'s example plugin compiles, loads and handles jobs.
. "$(dirname "$0")/lib.sh"
require_tools
M=$top_builddir/man

check "the four pages were made by configure" test -s "$M/kpoold.8" -a -s "$M/kpool.1" -a -s "$M/kpool.conf.5" -a -s "$M/kpool-plugin.7"
if command -v groff >/dev/null; then
	for p in kpoold.8 kpool.1 kpool.conf.5 kpool-plugin.7; do
		LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 "$M/$p" >"$T/groff.$p" 2>&1
		check "$p formats without warnings" test ! -s "$T/groff.$p"
	done
else
	ok "# SKIP groff not found (Debian: groff-base): the pages were not formatted"
fi
check "the version is filled in" grep -q "^\.TH KPOOLD 8 .* \"kpool [0-9]" "$M/kpoold.8"

# kpool.conf(5) against kpoold --options: each key, with its default.
"$KPOOLD" --options >"$T/options.txt"
missing=""
# key, then the default up to two spaces (a default may hold single spaces)
awk '/^[a-z]/ { k = $1; r = substr($0, length(k) + 1); sub(/^ +/, "", r); sub(/  .*/, "", r); print k "\t" r }' \
	"$T/options.txt" >"$T/keys.tsv"
while IFS='	' read -r key def; do
	if [ "$def" = - ]; then
		grep -qx "\.B $key" "$M/kpool.conf.5" || missing="$missing $key"
	else
		grep -qxF ".B \"$key = $def\"" "$M/kpool.conf.5" || missing="$missing $key=$def"
	fi
done <"$T/keys.tsv"
# kpoold's own keys come first; each handler's table follows its "[worker:NAME] handler = H" line.
sed '/^\[worker:NAME\] handler = /,$d' "$T/options.txt" | grep -c '^[a-z]' >"$T/core-keys"
check "the option table lists 31 keys" test "$(cat "$T/core-keys")" -eq 31
for h in analytics audit email exec log webhook; do
	grep -q "^\[worker:NAME\] handler = $h " "$T/options.txt" || missing="$missing handler:$h"
	grep -qx "\.SS $h" "$M/kpool.conf.5" || missing="$missing section:$h"
done
check "kpool.conf(5) documents every key of the option tables with its default, the handlers' too" test -z "$missing"
[ -z "$missing" ] || diag "missing:$missing"
check "kpool.conf(5) has all four sections" test "$(grep -cE '^\.SH \[(kafka|pool|console|worker:NAME)\]$' "$M/kpool.conf.5")" -eq 4

# kpool(1) against kpool's usage.
"$KPOOL" -h >"$T/usage.txt"
missing=""
for cmd in "send" "dlq list" "dlq show" "dlq replay" "status" "pause" "resume" "audit verify" "audit query" \
	"analytics report"; do
	grep -q "kpool .*$cmd" "$T/usage.txt" || missing="$missing usage:$cmd"
	grep -qE "^\.B (kpool (-c )?)?$cmd\$|^\.B kpool $cmd\$|^\.B $cmd\$" "$M/kpool.1" || missing="$missing $cmd"
done
for opt in $(grep -oE -- '--[a-z][a-z-]+' "$T/usage.txt" | sort -u); do
	grep -qF -- "$(echo "$opt" | sed 's/-/\\-/g')" "$M/kpool.1" || missing="$missing $opt"
done
check "kpool(1) documents every subcommand and option of kpool's usage" test -z "$missing"
[ -z "$missing" ] || diag "missing:$missing"

# kpoold(8) against what /metrics serves.
plugins "$T/plugins"
pool_conf "$T/m.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:m]
topic = mp$R
handler = log
EOF2
start_kpoold "$T/m.conf" "$T/kpoold.log"
U=$(metrics_url "$T/state") || { not_ok "metrics listen"; exit 1; }
check "a worker runs" wait_for 30 log_has "$T/kpoold.log" "assigned partitions="
http "$U/metrics" | sed -n 's/^# TYPE \([a-z_]*\) .*/\1/p' >"$T/families.txt"
missing=""
for f in $(cat "$T/families.txt"); do
	grep -qF "$f" "$M/kpoold.8" || missing="$missing $f"
done
check "kpoold(8) documents every metric family /metrics serves" test -z "$missing" -a -s "$T/families.txt"
[ -z "$missing" ] || diag "missing:$missing"
stop_kpoold "$KPID"

# kpool-plugin(7)'s example, taken from the page, built like a user would.
sed -n '/^\.\\" example begins/,/^\.\\" example ends/p' "$top_srcdir/man/kpool-plugin.7.in" |
	sed '1d;$d' | sed 's/\\-/-/g; s/\\e/\\/g' >"$T/append.c"
mkdir -p "$T/include/kpool"
ln -s "$top_srcdir/plugins/kpool_plugin.h" "$T/include/kpool/kpool_plugin.h"
check "the example is there" grep -q 'const struct kpool_plugin kpool_plugin' "$T/append.c"
mkdir -p "$T/own"
check "the example compiles without warnings" ${CC:-cc} -shared -fPIC -D_GNU_SOURCE -Wall -Wextra -Werror \
	-I"$T/include" -o "$T/own/append.so" "$T/append.c"
cp "$T/plugins/"*.so "$T/own/" 2>/dev/null
pool_conf "$T/a.conf" "plugin_dir = $T/own" <<EOF2
[worker:journal]
topic = journal$R
handler = append
file = $T/journal.txt
max_attempts = 1
EOF2
check "kpoold -t accepts it" "$KPOOLD" -c "$T/a.conf" -t
sed 's/^file = .*/colour = red/' "$T/a.conf" >"$T/bad.conf"
"$KPOOLD" -c "$T/bad.conf" -t 2>"$T/bad.err"
check "... and kpoold refuses an option its table does not declare" \
	grep -qF "[worker:journal] colour: append refused: unknown option 'colour' (file, wait)" "$T/bad.err"
start_kpoold "$T/a.conf" "$T/a.log"
B=$(bootstrap "$T/state") || { not_ok "embedded broker started"; exit 1; }
check "the worker joined its group" wait_for 30 log_has "$T/a.log" "assigned partitions="
printf '{"id":"j1","line":"hello"}\n{"id":"j2"}\n' | "$KPOOL" -c "$T/a.conf" send "journal$R" --key k 2>"$T/send.err"
check "kpool send sent both jobs" test $? -eq 0
sed 's/^/# send: /' "$T/send.err"
check "the example plugin handled the job" wait_for 30 grep -sqx "j1 hello" "$T/journal.txt"
check "and dead-lettered the one without a line, with its reason" wait_for 30 sh -c \
	"'$KPOOL' -c '$T/a.conf' dlq list 'journal$R.dlq' | grep -q 'append: the job has no \"line\"'"
stop_kpoold "$KPID"
