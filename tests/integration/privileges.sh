#!/bin/sh
# Plugins others could have written are refused, naming the path; [pool] user
# drops root once the metrics socket is open.
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
	stop_kpoold "$KPID"
	check "kpoold stops with status 0" test $? -eq 0
fi
