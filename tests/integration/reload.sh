#!/bin/sh
# SIGHUP reload: untouched bindings keep their processes, removed ones drain,
# new ones start, changed ones get new workers, an invalid conf is refused
# and the pool keeps running; no job is lost or handled twice across it.
. "$(dirname "$0")/lib.sh"
require_tools

plugins "$T/plugins"
# conf NAME...: writes $T/pool.conf with one probe binding per NAME (NAME:KEY=VALUE adds a key).
conf() {
	{
		printf '[kafka]\nbootstrap.servers = %s\n[pool]\nplugin_dir = %s\nstate_dir = %s\nmetrics_listen =\nshutdown_timeout = 10s\n' "${REAL:-embedded}" "$T/plugins" "$T/state"
		for spec in "$@"; do
			name=${spec%%:*}
			printf '[worker:%s]\ntopic = %s-jobs%s\nhandler = probe\nrecord = %s/record-%s\nledger_topic = kpool-%s%s.ledger\n' "$name" "$name" "$R" "$T" "$name" "$name" "$R"
			case $spec in *:*) printf '%s\n' "${spec#*:}" ;; esac
		done
	} >"$T/pool.conf"
	# shellcheck disable=SC2046
	make_topic 4 $(sed -n 's/^topic *= *//p' "$T/pool.conf")
}
pids_of() { pgrep "^worker $1" | sort | tr '\n' ' '; }
send() { printf '{"eventId":"%s"}\n' "$@" | "$KPOOL" -c "$T/pool.conf" send "${topic}$R" 2>/dev/null; }

conf keep gone changing
start_kpoold "$T/pool.conf" "$T/kpoold.log"
bootstrap "$T/state" >/dev/null || { not_ok "embedded broker started"; exit 1; }
check "three bindings joined" wait_for 30 sh -c "[ \$(grep -c 'assigned partitions' '$T/kpoold.log') -ge 3 ]"
keep_pids=$(pids_of keep)
topic=changing-jobs send c1 c2 c3
check "jobs flow before the reload" wait_for 30 at_least 3 lines_in "$T/record-changing"

conf keep changing:processes=2 new
kill -HUP "$KPID"
check "reload is logged" wait_for 20 log_has "$T/kpoold.log" "reloaded: 3 bindings"
check "the untouched binding keeps its process" test "$(pids_of keep)" = "$keep_pids"
check "the removed binding drains and stops" wait_for 20 sh -c "[ -z \"\$(pgrep '^worker gone#')\" ]"
check "the removed binding is logged" log_has "$T/kpoold.log" "worker=gone draining (removed from the conf)"
check "the changed binding runs two new workers" wait_for 20 sh -c "[ \$(pgrep '^worker changing' | wc -l) -eq 2 ]"
check "the new binding starts" wait_for 20 sh -c "pgrep '^worker new#0' >/dev/null"
topic=new-jobs send n1
check "the new binding handles jobs" wait_for 60 grep -q '^n1 1 done' "$T/record-new"
topic=changing-jobs send c4 c5 c6
check "the changed binding goes on" wait_for 60 at_least 6 lines_in "$T/record-changing"
check "nothing handled twice across the change" test -z "$(cut -d' ' -f1 "$T/record-changing" | sort | uniq -d)"

# A plugin whose bytes change is a changed binding, even with the same conf.
cp "$top_builddir/tests/plugins/.libs/probe.so" "$T/plugins/probe2.so"
conf keep changing:processes=2 new plugged:handler=probe2
kill -HUP "$KPID"
check "a binding on a second plugin file starts" wait_for 20 sh -c "pgrep '^worker plugged' >/dev/null"
plugged=$(pids_of plugged)
cp "$top_builddir/tests/plugins/.libs/probebatch.so" "$T/plugins/probe2.so.new"
mv "$T/plugins/probe2.so.new" "$T/plugins/probe2.so"
kill -HUP "$KPID"
check "a changed plugin file restarts its binding" wait_for 20 sh -c "p=\$(pgrep '^worker plugged'); [ -n \"\$p\" ] && [ \"\$p \" != '$plugged' ]"
check "but not the others" test "$(pids_of keep)" = "$keep_pids"
one_plugged() { [ "$(pgrep '^worker plugged' | wc -l)" -eq 1 ]; }
check "and its old worker drains" wait_for 20 one_plugged

cp "$T/pool.conf" "$T/good.conf"
printf '[worker:broken]\ntopic = x\nhandler = probe\nretry_backoff = soon\n' >>"$T/pool.conf"
before=$(pgrep '^worker ' | sort | tr '\n' ' ')
kill -HUP "$KPID"
check "an invalid conf is refused, naming the key" wait_for 20 log_has "$T/kpoold.log" "reload refused, keeping the running conf: $T/pool.conf:"
check "and the pool keeps running as it was" test "$(pgrep '^worker ' | sort | tr '\n' ' ')" = "$before"
check "kpoold is still up" kill -0 "$KPID"
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
