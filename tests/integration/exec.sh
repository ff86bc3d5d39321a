#!/bin/sh
# The exec handler with a shell-script handler: the job on standard input and
# KPOOL_* in the environment, words of the command (quoted too), exit 0 done,
# 75 retried, 1 dead-lettered with the last line of standard error, killed by
# a signal, a command over its timeout killed with what it started, no
# descriptor of the worker's in the command, and a command that exits 0 while
# what it started holds its standard error: done at once, what it left killed
# (in its process group, and in a session of its own).
. "$(dirname "$0")/lib.sh"
require_tools

cat >"$T/handler.sh" <<EOF2
#!/bin/sh
job=\$(cat)
echo "\$KPOOL_EVENT_ID|\$KPOOL_TOPIC|\$KPOOL_PARTITION|\$KPOOL_OFFSET|\$KPOOL_ATTEMPT|\$job" >>"$T/record"
case "\$job" in
*'"do":"fail"'*) echo "some detail" >&2; echo "cannot handle: no such user" >&2; exit 1 ;;
*'"do":"tempfail"'*) [ "\$KPOOL_ATTEMPT" -ge 2 ] || { echo "busy, later" >&2; exit 75; } ;;
*'"do":"hang"'*) sleep 29.5 & sleep 28.5 ;;
*'"do":"crash"'*) echo "about to crash" >&2; kill -9 \$\$ ;;
*'"do":"args"'*) printf '%s|' "\$@" >"$T/args" ;;
*'"do":"fds"'*) ls -l /proc/self/fd >"$T/fds" 2>&1 ;;
esac
exit 0
EOF2
chmod 755 "$T/handler.sh"

plugins "$T/plugins"
# [worker:bg] runs a command that leaves children behind, their sleeps named
# by this test's pid, so that only its own are looked for.
pool_conf "$T/pool.conf" 'metrics_listen = 127.0.0.1:0' <<EOF2
[worker:run]
topic = exec-jobs$R
handler = exec
command = $T/handler.sh "two words" plain 'single quoted'
timeout = 1s
max_attempts = 2
retry_backoff = 100ms
[worker:bg]
topic = exec-bg$R
handler = exec
command = /bin/sh -c "echo started >>$T/bg-record; sleep 86$$ & setsid sleep 87$$ & exit 0"
timeout = 2s
max_attempts = 2
retry_backoff = 100ms
EOF2
check "kpoold -t accepts the exec binding" "$KPOOLD" -t -c "$T/pool.conf"
start_kpoold "$T/pool.conf" "$T/kpoold.log"
B=$(bootstrap "$T/state")
"$KPOOL" -c "$T/pool.conf" send "exec-jobs$R" --key k 2>"$T/send.log" <<'EOF2'
{"eventId":"e-done","do":"nothing","n":1}
{"eventId":"e-args","do":"args"}
{"eventId":"e-fds","do":"fds"}
{"eventId":"e-fail","do":"fail"}
{"eventId":"e-temp","do":"tempfail"}
{"eventId":"e-crash","do":"crash"}
{"eventId":"e-hang","do":"hang"}
{"eventId":"e-last","do":"nothing"}
EOF2
check "jobs queued" test $? -eq 0

check "the last job is handled" wait_for 60 grep -qs '^e-last|' "$T/record"
rec() { grep "^$1|" "$T/record" | head -1 | cut -d'|' -f"$2"; }
check "exit 0: done, the job on standard input" test "$(rec e-done 6)" = '{"eventId":"e-done","do":"nothing","n":1}'
check "KPOOL_EVENT_ID, KPOOL_TOPIC, KPOOL_ATTEMPT" test "$(rec e-done 1)|$(rec e-done 2)|$(rec e-done 5)" = "e-done|exec-jobs$R|1"
check "KPOOL_PARTITION and KPOOL_OFFSET as Kafka has them" sh -c "'$KCAT' -C -b '$B' -t 'exec-jobs$R' -e -q -f '%p|%o|%s\n' | grep -qF '$(rec e-done 3)|$(rec e-done 4)|{\"eventId\":\"e-done\"'"
check "the command's words, quoted ones whole" test "$(cat "$T/args" 2>/dev/null)" = "two words|plain|single quoted|"
dlq() { dlq_field "exec-jobs$R.dlq" "$1" "$2"; }
check "exit 1: dead-lettered as fail" test "$(dlq e-fail 2)" = fail
check "  with the last line of standard error" test "$(dlq e-fail 9)" = "$T/handler.sh exited 1: cannot handle: no such user"
check "exit 75: retried, done on attempt 2" test "$(grep -c '^e-temp|' "$T/record")|$(grep '^e-temp|' "$T/record" | tail -1 | cut -d'|' -f5)" = "2|2"
check "  and not dead-lettered" test -z "$(dlq e-temp 1)"
check "  the log says why it was retried" grep -q 'event=e-temp: .*handler.sh exited 75: busy, later (retry 1/1' "$T/kpoold.log"
check "killed by a signal: dead-lettered" test "$(dlq e-crash 2)|$(dlq e-crash 9)" = "fail|$T/handler.sh killed by signal 9: about to crash"
check "over its timeout: killed, retried, then dead-lettered" test "$(dlq e-hang 2)|$(dlq e-hang 3)" = "retries-exhausted|2"
check "  saying so" test "$(dlq e-hang 9)" = "$T/handler.sh: killed after timeout (1000 ms)"
check "  what it started is gone too" wait_for 10 sh -c "! pgrep -f 'sleep 2[89][.]5' >/dev/null"
check "jobs after it are handled in order" test "$(cut -d'|' -f1 "$T/record" | uniq | tr '\n' ' ')" = "e-done e-args e-fds e-fail e-temp e-crash e-hang e-last "
# ls lists its own descriptor of /proc/PID/fd too.
fds=$(sed -n 's/.* \([0-9][0-9]*\) -> \(.*\)$/\1 \2/p' "$T/fds" 2>/dev/null | grep -v ' /proc/[0-9]*/fd$' | cut -d' ' -f1 | sort -n | tr '\n' ' ')
check "the command has standard input, output and error, and no descriptor of the worker's ($fds)" test "$fds" = "0 1 2 "
[ "$fds" = "0 1 2 " ] || sed 's/^/# /' "$T/fds"

# A command that exits 0 and leaves children holding its standard error:
# judged by its exit status, not by the end of its standard error.
printf '{"eventId":"e-bg"}\n' | "$KPOOL" -c "$T/pool.conf" send "exec-bg$R" 2>>"$T/send.log"
u=$(metrics_url "$T/state")
check "exit 0, children hold standard error: done" wait_for 15 at_least 1 metric "$u" kpool_jobs_total 'worker="bg",result="done"'
check "  once, not retried" test "$(lines_in "$T/bg-record")" -eq 1
check "  not dead-lettered" test -z "$(dlq_field "exec-bg$R.dlq" e-bg 2)"
check "  what it left in its process group is killed" wait_for 10 sh -c "! pgrep -f 'sleep 8[6]$$' >/dev/null"
check "  what it left in a session of its own (setsid) too" wait_for 10 sh -c "! pgrep -f 'sleep 8[7]$$' >/dev/null"
# Whatever is left (if the checks above failed) goes with the test.
PIDS="$PIDS $(pgrep -f "sleep 8[67]$$" | tr '\n' ' ')"

# Refused at start, naming file, line and key.
sed "s|^command = .*|command = handler.sh|" "$T/pool.conf" >"$T/rel.conf"
"$KPOOLD" -t -c "$T/rel.conf" >"$T/rel.out" 2>&1
check "a command without an absolute path is refused" grep -q "rel.conf:[0-9]*: \[worker:run\] command: exec refused: command: handler.sh: give the program's absolute path" "$T/rel.out"
sed "s|^command = .*|command = $T/missing --x|" "$T/pool.conf" >"$T/missing.conf"
"$KPOOLD" -t -c "$T/missing.conf" >"$T/missing.out" 2>&1
check "a missing program is refused" grep -q "command: $T/missing: No such file or directory" "$T/missing.out"
sed "s|^command = .*|command = $T/handler.sh \"unclosed|" "$T/pool.conf" >"$T/quote.conf"
"$KPOOLD" -t -c "$T/quote.conf" >"$T/quote.out" 2>&1
check "an unclosed quote is refused" grep -q 'command: unclosed "' "$T/quote.out"
