#!/bin/sh
# The plugin ABI grows at its ends.  A plugin built against ABI 1's first
# header (tests/plugins/abi1) loads, handles jobs, gets its options as they
# are written, and has its kpool_retry_after() honoured; one built against
# today's (tests/plugins/hostinfo) sees the host's struct_size, retry_after
# and conf_dir, and gets its declared options checked and normalized.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
mkdir -p "$T/conf"
C=$(cd "$T/conf" && pwd -P)

# refused NAME TEXT: kpoold -t -c $C/NAME.conf exits 1 with one line holding TEXT.
refused() {
	"$KPOOLD" -t -c "$C/$1.conf" >"$T/$1.out" 2>&1
	rc=$?
	if [ $rc -ne 1 ]; then diag "$1: exit $rc"; sed 's/^/# /' "$T/$1.out"; return 1; fi
	if [ "$(wc -l <"$T/$1.out")" -ne 1 ]; then diag "$1: not one line:"; sed 's/^/# /' "$T/$1.out"; return 1; fi
	if ! grep -qF -- "$2" "$T/$1.out"; then diag "$1: wanted '$2', got: $(cat "$T/$1.out")"; return 1; fi
	return 0
}

# bad NAME LINE...: a conf whose [worker:new] (handler hostinfo) has these lines.
bad() {
	name=$1; shift
	{
		printf '[worker:new]\ntopic = new%s\nhandler = hostinfo\n' "$R"
		for line in "$@"; do printf '%s\n' "$line"; done
	} | pool_conf "$C/$name.conf"
}
# line_of NAME TEXT: the line of NAME.conf that starts with TEXT.
line_of() { grep -n "^$2" "$C/$1.conf" | cut -d: -f1; }

bad unknown 'record = x.rec' 'colour = red'
check "an undeclared key is refused by kpoold, naming file, line and key" refused unknown \
	"$C/unknown.conf:$(line_of unknown colour): [worker:new] colour: hostinfo refused: unknown option 'colour' (record, wait, size, flag, n, mode, tag)"
bad baddur 'record = x.rec' 'wait = soon'
check "a bad duration, in the core's words" refused baddur \
	"$C/baddur.conf:$(line_of baddur wait): [worker:new] wait: bad duration 'soon' (use a number with ms, s, m, h or d)"
bad badint 'record = x.rec' 'n = 10'
check "a number out of its range" refused badint \
	"$C/badint.conf:$(line_of badint n): [worker:new] n: '10' is not a whole number from 1 to 9"
bad badenum 'record = x.rec' 'mode = c'
check "a value not among the choices" refused badenum \
	"$C/badenum.conf:$(line_of badenum mode): [worker:new] mode: 'c' is not a or b"
bad badbool 'record = x.rec' 'flag = perhaps'
check "a bad on/off" refused badbool "[worker:new] flag: 'perhaps' is not on or off"
bad norecord 'wait = 2s'
check "a required option missing names the section's line" refused norecord \
	"$C/norecord.conf:$(line_of norecord '\[worker:new\]'): [worker:new] record: missing (hostinfo needs it"
check "a declared table is listed by kpoold --options HANDLER" sh -c \
	"'$KPOOLD' --options -c '$C/unknown.conf' hostinfo | grep -qE '^wait +1.5s +what a retried job asks to wait'"

pool_conf "$C/pool.conf" <<EOF2
[worker:old]
topic = old$R
handler = abi1
record = $T/old.rec
timeout = 1.5s
flag = yes
size = 1KiB
retry_backoff = 100ms
retry_backoff_max = 1m

[worker:new]
topic = new$R
handler = hostinfo
record = new.rec
wait = 3s
tag = first
tag = second
retry_backoff = 100ms
retry_backoff_max = 1m
EOF2
check "kpoold -t accepts both plugins" "$KPOOLD" -t -c "$C/pool.conf"
start_kpoold "$C/pool.conf" "$T/pool.log"
bootstrap "$T/state" >/dev/null || { not_ok "embedded broker started"; exit 1; }
check "both workers joined their groups" wait_for 30 sh -c \
	"[ \$(grep -c 'assigned partitions=' '$T/pool.log') -ge 2 ]"
printf '{"id":"o1"}\n{"id":"o2","do":"retry"}\n' | "$KPOOL" -c "$C/pool.conf" send "old$R" 2>/dev/null
check "kpool send sent the old plugin's jobs" test $? -eq 0
printf '{"id":"n1"}\n{"id":"n2","do":"retry"}\n' | "$KPOOL" -c "$C/pool.conf" send "new$R" 2>/dev/null
check "kpool send sent the new plugin's jobs" test $? -eq 0

# waited REC ID: how long the second attempt at ID came after the first, in ms.
waited() {
	awk -v id="$2" '$1 == id && $2 == 1 { a = $4 } $1 == id && $2 == 2 { b = $4 } END { print b - a }' "$1"
}

# The first header's plugin.
check "the ABI 1 plugin handles a job" wait_for 30 grep -q '^o1 1 done ' "$T/old.rec"
check "  and a retried one, on its second attempt" wait_for 30 grep -q '^o2 2 done ' "$T/old.rec"
w=$(waited "$T/old.rec" o2)
check "  after the 3000 ms its weak kpool_retry_after asked for, not retry_backoff's 100 ms (waited $w ms)" \
	test "$w" -ge 2900
printf 'opt record=%s\nopt timeout=1.5s\nopt flag=yes\nopt size=1KiB\n' "$T/old.rec" >"$T/old.want"
grep '^opt ' "$T/old.rec" >"$T/old.got"
check "  its options come as written, in conf order, nothing added" cmp -s "$T/old.want" "$T/old.got"
cmp -s "$T/old.want" "$T/old.got" || sed 's/^/# got: /' "$T/old.got"

# Today's header's plugin: its record file is where conf_dir puts new.rec.
check "the new plugin's relative path is the conf directory's" wait_for 30 grep -q '^n1 1 done ' "$C/new.rec"
check "  and a retried job is done on its second attempt" wait_for 30 grep -q '^n2 2 done ' "$C/new.rec"
w=$(waited "$C/new.rec" n2)
check "  after the 3 s it asked for through host->retry_after (waited $w ms)" test "$w" -ge 2900
printf 'opt record=%s\nopt wait=3000\nopt size=1024\nopt flag=true\nopt n=7\nopt mode=a\nopt tag=first\nopt tag=second\n' \
	"$C/new.rec" >"$T/new.want"
grep '^opt ' "$C/new.rec" >"$T/new.got"
check "  its options come normalized, with the defaults, in the table's order" cmp -s "$T/new.want" "$T/new.got"
cmp -s "$T/new.want" "$T/new.got" || sed 's/^/# got: /' "$T/new.got"
check "  it sees the host's struct_size (as built), retry_after and conf_dir" awk -v dir="$C" '
	$1 == "host" { split($2, s, "="); split($3, b, "="); n++
		if (s[2] != b[2] || s[2] + 0 < 48 || $4 != "retry_after=yes" || $5 != "conf_dir=" dir) bad = 1 }
	END { exit !(n >= 1 && !bad) }' "$C/new.rec"
grep '^host ' "$C/new.rec" | sed 's/^/# /'
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
