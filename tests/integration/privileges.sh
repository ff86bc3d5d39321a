#!/bin/sh
# Plugins others could have written are refused, naming the path; [pool] user
# drops root once the metrics socket is open, and a pause written by kpool
# as root is the user's.
. "$(dirname "$0")/lib.sh"
require_tools

mkdir -p "$T/plugins"
cp "$top_builddir/tests/plugins/.libs/probe.so" "$T/plugins/probe.so"
chmod 755 "$T/plugins"
chmod 644 "$T/plugins/probe.so"
pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:p]
topic = perms$R
handler = probe
EOF2
check "a plugin only its owner can write is accepted" "$KPOOLD" -t -c "$T/pool.conf"
chmod o+w "$T/plugins/probe.so"
"$KPOOLD" -t -c "$T/pool.conf" >"$T/out" 2>&1
check "a world-writable plugin is refused" test $? -eq 1
check "the refusal names the file" grep -q "$T/plugins/probe.so: the plugin is writable by others; refusing" "$T/out"
chmod o-w "$T/plugins/probe.so"
chmod g+w "$T/plugins"
"$KPOOLD" -t -c "$T/pool.conf" >"$T/out" 2>&1
check "a group-writable plugin_dir is refused, naming it" grep -q "$T/plugins: its directory is writable by its group" "$T/out"
chmod g-w "$T/plugins"

# A plugin named through a link in a directory others can write is refused:
# they could point the link anywhere.
mkdir -p "$T/open" "$T/safe"
cp "$top_builddir/tests/plugins/.libs/probe.so" "$T/safe/probe.so"
chmod 755 "$T/safe"
chmod 644 "$T/safe/probe.so"
chmod 777 "$T/open"
ln -sf "$T/safe/probe.so" "$T/open/probe.so"
sed "s|^plugin_dir = .*|plugin_dir = $T/open|" "$T/pool.conf" >"$T/open.conf"
"$KPOOLD" -t -c "$T/open.conf" >"$T/out" 2>&1
check "a link in a world-writable plugin_dir is refused, naming the directory" \
	grep -q "$T/open: its directory is writable by others" "$T/out"

# The file checked is the file loaded: a link switched between a safe
# plugin and one anyone could have written (whose constructor leaves a
# mark) never gets the second loaded, however the switches fall.
mkdir -p "$T/pd" "$T/bad"
chmod 755 "$T/pd"
cp "$top_builddir/tests/plugins/.libs/marker.so" "$T/bad/probe.so"
chmod 666 "$T/bad/probe.so"
ln -sf "$T/open/link.so" "$T/pd/probe.so"
ln -sf "$T/safe/probe.so" "$T/open/link.so"
sed "s|^plugin_dir = .*|plugin_dir = $T/pd|" "$T/pool.conf" >"$T/race.conf"
"$PYTHON3" - "$T/open/link.so" "$T/safe/probe.so" "$T/bad/probe.so" "$T/race.stop" <<'PY' &
import os, sys
link, good, bad, stop = sys.argv[1:]
tmp = link + ".new"
while not os.path.exists(stop):
    for target in (good, bad):
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(target, tmp)
        os.replace(tmp, link)
PY
swapper=$!
i=0 accepted=0
while [ $i -lt 300 ] && [ ! -s "$T/race.mark" ]; do
	KPOOL_TEST_MARKER=$T/race.mark "$KPOOLD" -t -c "$T/race.conf" >/dev/null 2>&1 && accepted=$((accepted + 1))
	i=$((i + 1))
done
touch "$T/race.stop"
wait $swapper
diag "race: $i tries, $accepted accepted"
check "a plugin switched under the check is never loaded ($i tries)" test ! -s "$T/race.mark"
check "  the safe one was accepted meanwhile" test "$accepted" -gt 0

# State is private: the directory 0700, the databases 0600.
start_kpoold "$T/pool.conf" "$T/kpoold0.log"
check "the ledger's database is made" wait_for 30 test -e "$T/state/p.db"
check "state_dir is 0700" test "$(stat -c %a "$T/state")" = 700
check "the databases are 0600" sh -c "[ -z \"\$(find '$T/state' -name '*.db*' ! -perm 600)\" ]"
stop_kpoold "$KPID"

if [ "$(id -u)" -ne 0 ] || ! id nobody >/dev/null 2>&1; then
	diag "SKIP [pool] user: needs root and a user 'nobody'"
elif [ -n "${KPOOLD_WRAPPER:-}" ]; then
	diag "SKIP [pool] user under $KPOOLD_WRAPPER: its per-process logs cannot follow the switch"
else
	chmod 755 "$T"
	printf 'user = nobody\n' >"$T/user.conf.pool"
	sed "s|^metrics_listen = 127.0.0.1:0|metrics_listen = 127.0.0.1:0\nuser = nobody|" "$T/pool.conf" >"$T/user.conf"
	start_kpoold "$T/user.conf" "$T/kpoold.log"
	check "workers run as the [pool] user" wait_for 30 sh -c \
		"p=\$(pgrep '^worker p#0') && [ \"\$(ps -o user= -p \$p)\" = nobody ]"
	check "so does the supervisor" sh -c "[ \"\$(ps -o user= -p $KPID)\" = nobody ]"
	check "the state directory is theirs" sh -c "[ \"\$(stat -c %U '$T/state')\" = nobody ]"
	check "it logs the switch" log_has "$T/kpoold.log" "running as user nobody"
	# kpool pause run as root, kpoold running as the user: kpoold sees the
	# binding's file, which is the user's.
	"$KPOOL" -c "$T/user.conf" pause p >/dev/null
	check "kpool pause run as root: kpoold, as the user, pauses the binding" \
		wait_for 10 log_has "$T/kpoold.log" "worker=p paused"
	check "  the file is the user's" test "$(stat -c %U "$T/state/paused/p")" = nobody
	"$KPOOL" -c "$T/user.conf" resume p >/dev/null
	check "  kpool resume as root: resumed" wait_for 10 log_has "$T/kpoold.log" "worker=p resumed"
	stop_kpoold "$KPID"
	check "kpoold stops with status 0" test $? -eq 0

	# The start-up check runs plugin code as the user too.
	mkdir -p "$T/mk"
	chmod 755 "$T/mk"
	cp "$top_builddir/tests/plugins/.libs/marker.so" "$T/mk/probe.so"
	chmod 644 "$T/mk/probe.so"
	: >"$T/user.mark"
	chmod 666 "$T/user.mark"
	sed "s|^plugin_dir = .*|plugin_dir = $T/mk|" "$T/user.conf" >"$T/mk.conf"
	KPOOL_TEST_MARKER=$T/user.mark "$KPOOLD" -t -c "$T/mk.conf" >"$T/out" 2>&1
	check "kpoold -t runs the plugin's code as the [pool] user" \
		test "$(sort -u "$T/user.mark" | tr '\n' ' ')" = "init as $(id -u nobody) loaded as $(id -u nobody) "

	# Databases root made before user was set are given to the user: the
	# audit log written as root, then as nobody.
	mkdir -p "$T/ap"
	chmod 755 "$T/ap"
	cp "$top_builddir/plugins/.libs/audit.so" "$T/ap/audit.so"
	chmod 644 "$T/ap/audit.so"
	pool_conf "$T/audit.conf" "plugin_dir = $T/ap" <<EOF2
[worker:a]
topic = audited$R
handler = audit
EOF2
	sed 's|^metrics_listen =.*|metrics_listen =\nuser = nobody|' "$T/audit.conf" >"$T/audit-user.conf"
	start_kpoold "$T/audit.conf" "$T/audit0.log"
	bootstrap "$T/state" >/dev/null
	printf '{"eventId":"as-root","userId":"u","action":"a","resource":"r"}\n' |
		"$KPOOL" -c "$T/audit.conf" send "audited$R" 2>>"$T/send.log"
	rows() { "$SQLITE3" -readonly "$T/state/audit-a.db" 'SELECT count(*) FROM audit_log' 2>/dev/null || echo 0; }
	check "an audit entry written as root" wait_for 30 at_least 1 rows
	stop_kpoold "$KPID"
	# A file planted in state_dir as a link is not given away.
	: >"$T/victim"
	ln -sf "$T/victim" "$T/state/planted.db"
	start_kpoold "$T/audit-user.conf" "$T/audit1.log"
	bootstrap "$T/state" >/dev/null
	printf '{"eventId":"as-nobody","userId":"u","action":"a","resource":"r"}\n' |
		"$KPOOL" -c "$T/audit-user.conf" send "audited$R" 2>>"$T/send.log"
	check "then one written as nobody, into the same log" wait_for 30 at_least 2 rows
	check "  the log is nobody's now" test "$(stat -c %U "$T/state/audit-a.db")" = nobody
	check "  nothing was dead-lettered" test "$(grep -c 'dead-lettered' "$T/audit1.log")" -eq 0
	check "  a link planted there was not followed" test "$(stat -c %U "$T/victim")" = root
	stop_kpoold "$KPID"
fi
