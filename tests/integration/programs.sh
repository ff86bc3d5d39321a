#!/bin/sh
# The two programs each hold only their own part: kpool is built from the
# core and the command's files, without the daemon's objects or libraries,
# and a command file cannot include the daemon's headers.
. "$(dirname "$0")/lib.sh"
command -v nm >/dev/null && command -v readelf >/dev/null ||
	skip_all "nm and readelf are needed (binutils; scripts/setup installs them)"

defined() { nm --defined-only "$1" | awk '{ print $3 }'; }
needed() { readelf -d "$1" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'; }
defined "$KPOOL" >"$T/kpool.syms"
defined "$KPOOLD" >"$T/kpoold.syms"
check "kpool has the core (kp_conf_load, kp_dlh_write)" sh -c "grep -qx kp_conf_load '$T/kpool.syms' && grep -qx kp_dlh_write '$T/kpool.syms'"
daemon='kp_supervisor_run|kp_spawn_reap|kp_worker_run|kp_ledger_run|kp_plugin_open|kp_metrics_start|kp_dlq_send|kp_embedded_run|kp_stats_map'
check "kpoold has the daemon's parts" test "$(grep -cxE "$daemon" "$T/kpoold.syms")" -eq 9
check "kpool has none of them" sh -c "! grep -xE '$daemon' '$T/kpool.syms'"
needed "$KPOOL" >"$T/kpool.needed"
needed "$KPOOLD" >"$T/kpoold.needed"
check "kpoold links libmicrohttpd and libsystemd" sh -c "grep -q '^libmicrohttpd' '$T/kpoold.needed' && grep -q '^libsystemd' '$T/kpoold.needed'"
check "kpool links neither" sh -c "! grep -qE '^lib(microhttpd|systemd)' '$T/kpool.needed'"

# A file compiled as the command's are: the core's and the command's headers
# are found, the daemon's are not.
# (run from the build directory, whose paths it may hold relative to it;
# out of the make check that runs this test, whose flags would have it say
# where it is)
cc=$(MAKEFLAGS= MFLAGS= MAKELEVEL= make -s --no-print-directory -C "$top_builddir" print-cmd-compile)
diag "compiled as: $cc"
printf '#include "config.h"\n#include "core.h"\n#include "kpool_cmd.h"\nint main(void) { return kp_level_parse("info"); }\n' >"$T/cmd.c"
printf '#include "config.h"\n#include "supervisor.h"\nint main(void) { return 0; }\n' >"$T/daemon.c"
check "a command file compiles with the core's and its own headers" sh -c "cd '$top_builddir' && $cc -fsyntax-only '$T/cmd.c'"
(cd "$top_builddir" && eval "$cc -fsyntax-only '$T/daemon.c'") 2>"$T/daemon.err"
check "a command file that includes the daemon's headers does not compile" sh -c "grep -q 'supervisor.h' '$T/daemon.err'"
