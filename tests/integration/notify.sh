#!/bin/sh
# The systemd notify protocol, read by a listener on a NOTIFY_SOCKET of our
# own: READY=1, STATUS=, WATCHDOG=1 (with WATCHDOG_USEC), RELOADING=1 on HUP,
# STOPPING=1 on TERM.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
pool_conf "$T/pool.conf" <<EOF2
[worker:n]
topic = notified$R
handler = probe
EOF2
"$PYTHON3" "$top_srcdir/tests/integration/notify_listen.py" "$T/notify.sock" "$T/notify.log" &
PIDS="$PIDS $!"
wait_for 10 test -S "$T/notify.sock"
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=400000 start_kpoold "$T/pool.conf" "$T/kpoold.log"
check "READY=1" wait_for 30 grep -qx 'READY=1' "$T/notify.log"
check "STATUS= says what runs" grep -q '^STATUS=.*worker processes running' "$T/notify.log"
check "WATCHDOG=1 keeps coming" wait_for 10 sh -c "[ \$(grep -cx 'WATCHDOG=1' '$T/notify.log') -ge 3 ]"
kill -HUP "$KPID"
check "RELOADING=1 on SIGHUP" wait_for 20 grep -qx 'RELOADING=1' "$T/notify.log"
check "READY=1 again after the reload" wait_for 20 sh -c "[ \$(grep -cx 'READY=1' '$T/notify.log') -ge 2 ]"
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
check "STOPPING=1 on SIGTERM" grep -qx 'STOPPING=1' "$T/notify.log"
