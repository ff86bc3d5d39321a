#!/bin/sh
# Bad confs and bad plugins: kpoold exits 1 before starting anything, with one
# line naming the file, line and key (or the plugin path).
. "$(dirname "$0")/lib.sh"

plugins "$T/plugins"

# write NAME: the conf from stdin, with [kafka] and [pool] in front.
write() {
	{
		printf '[kafka]\nbootstrap.servers = embedded\n\n[pool]\nplugin_dir = %s\nstate_dir = %s\n' \
			"$T/plugins" "$T/state-$1"
		cat
	} >"$T/$1.conf"
}

# refused NAME TEXT: kpoold -c NAME.conf exits 1, says TEXT on one line, starts nothing.
refused() {
	# A conf wrongly accepted would start a pool: the timeout ends it, failing.
	timeout -k 5 20 "$KPOOLD" -c "$T/$1.conf" >"$T/$1.out" 2>&1
	rc=$?
	if [ $rc -ne 1 ]; then diag "$1: exit $rc"; cat "$T/$1.out" | sed 's/^/# /'; return 1; fi
	if [ "$(wc -l <"$T/$1.out")" -ne 1 ]; then diag "$1: not one line:"; sed 's/^/# /' "$T/$1.out"; return 1; fi
	if ! grep -qF -- "$2" "$T/$1.out"; then diag "$1: wanted '$2', got: $(cat "$T/$1.out")"; return 1; fi
	if [ -e "$T/state-$1" ]; then diag "$1: state_dir was created"; return 1; fi
	return 0
}

write good <<'EOF2'
[worker:w]
topic = t1, t2
handler = probe
processes = 2
retry_backoff = 250ms
max_job_bytes = 64KiB
EOF2
check "a good conf passes -t" sh -c "'$KPOOLD' -t -c '$T/good.conf' | grep -q ': ok'"

# secret NAME [KAFKA LINE...]: a conf whose [kafka] has these lines after bootstrap.servers.
secret() {
	name=$1; shift
	{
		printf '[kafka]\nbootstrap.servers = embedded\n'
		for line in "$@"; do printf '%s\n' "$line"; done
		printf '[pool]\nplugin_dir = %s\nstate_dir = %s\n[worker:w]\ntopic = t\nhandler = probe\n' \
			"$T/plugins" "$T/state-$name"
	} >"$T/$name.conf"
}
printf 's3cret\n' >"$T/password"
: >"$T/empty-password"
secret withsecret 'sasl.mechanisms = PLAIN' 'sasl.username = u' 'sasl.password.file = password'
check "sasl.password.file, relative to the conf, passes -t" sh -c "'$KPOOLD' -t -c '$T/withsecret.conf' | grep -q ': ok'"
secret nosecret 'sasl.password.file = nowhere'
check "a missing sasl.password.file names key and path" \
	refused nosecret "$T/nosecret.conf:3: [kafka] sasl.password.file: $T/nowhere: No such file or directory"
secret emptysecret 'sasl.password.file = empty-password'
check "an empty sasl.password.file is refused" \
	refused emptysecret "$T/emptysecret.conf:3: [kafka] sasl.password.file: $T/empty-password: empty"
secret twosecrets 'sasl.password = inline' 'sasl.password.file = password'
check "sasl.password and sasl.password.file together are refused" \
	refused twosecrets "$T/twosecrets.conf:4: [kafka] sasl.password.file: sasl.password is given already"

write section <<'EOF2'
[worker:w]
topic = t
handler = probe

[wokrer:x]
topic = t
EOF2
check "unknown section names file and line" refused section "$T/section.conf:11: [wokrer:x]: unknown section"

write duration <<'EOF2'
[worker:w]
topic = t
handler = probe
retry_backoff = 5 parsecs
EOF2
check "bad duration names file, line and key" refused duration "$T/duration.conf:10: [worker:w] retry_backoff: bad duration '5 parsecs'"

write size <<'EOF2'
[worker:w]
topic = t
handler = probe
max_job_bytes = 1MB
EOF2
check "bad size names the key" refused size "$T/size.conf:10: [worker:w] max_job_bytes: bad size '1MB'"

write notopic <<'EOF2'
[worker:w]
handler = probe
EOF2
check "missing topic names the section" refused notopic "$T/notopic.conf:7: [worker:w] topic: missing"

write nohandler <<'EOF2'
[worker:w]
topic = t
EOF2
check "missing handler names the section" refused nohandler "[worker:w] handler: missing"

write option <<'EOF2'
[worker:w]
topic = t
handler = probe
recrod = /tmp/x
EOF2
check "unknown handler option names its line and key" refused option "$T/option.conf:10: [worker:w] recrod: probe refused: probe: unknown option 'recrod'"

write missing <<'EOF2'
[worker:w]
topic = t
handler = nosuch
EOF2
check "missing plugin names its path" refused missing "$T/plugins/nosuch.so: No such file or directory"

write abi <<'EOF2'
[worker:w]
topic = t
handler = badabi
EOF2
check "wrong ABI is refused naming the file" refused abi "$T/plugins/badabi.so: is not binary compatible (plugin ABI version 99, kpoold speaks 1)"

write nosym <<'EOF2'
[worker:w]
topic = t
handler = nosym
EOF2
check "a .so without kpool_plugin is refused" refused nosym "$T/plugins/nosym.so: not a kpool plugin (no kpool_plugin symbol)"

write tiny <<'EOF2'
[worker:w]
topic = t
handler = tiny
EOF2
check "a struct_size too small is refused naming the file" refused tiny "$T/plugins/tiny.so: is not binary compatible (struct_size 32, at least 56)"

write poolkey <<'EOF2'
[worker:w]
topic = t
handler = probe
[pool]
metrics_lisen = 127.0.0.1:0
EOF2
check "unknown [pool] key" refused poolkey "$T/poolkey.conf:11: [pool] metrics_lisen: unknown key"

write kafkakey <<'EOF2'
[kafka]
fetch.wait.max.ms = soon
[worker:w]
topic = t
handler = probe
EOF2
check "bad librdkafka key names the line" refused kafkakey "$T/kafkakey.conf:8: [kafka] fetch.wait.max.ms:"

write badname <<'EOF2'
[worker:Email]
topic = t
handler = probe
EOF2
check "bad worker name" refused badname "[worker:Email]: bad worker name"

write badint <<'EOF2'
[worker:w]
topic = t
handler = probe
processes = many
EOF2
check "bad number" refused badint "$T/badint.conf:10: [worker:w] processes: 'many' is not a whole number"

write badledger <<'EOF2'
[worker:w]
topic = t
handler = probe
ledger = shared
EOF2
check "bad ledger names file, line and key" refused badledger "$T/badledger.conf:10: [worker:w] ledger: 'shared' is neither kafka nor local"

write syntax <<'EOF2'
[worker:w]
topic = t
handler probe
EOF2
check "syntax error names the line" refused syntax "$T/syntax.conf:9: syntax error"

write outside <<'EOF2'
EOF2
printf 'stray = 1\n' | cat - "$T/outside.conf" >"$T/outside2.conf" && mv "$T/outside2.conf" "$T/outside.conf"
check "key outside any section" refused outside "$T/outside.conf:1: 'stray' is outside any section"

write backoff <<'EOF2'
[worker:w]
topic = t
handler = probe
retry_backoff = 10s
retry_backoff_max = 1s
EOF2
check "retry_backoff_max below retry_backoff" refused backoff "[worker:w] retry_backoff_max: shorter than retry_backoff"

# rate, max_age, expired: each bad value named with file, line and key.
for bad in "rate = 50/week" "rate = fast" "rate = 0/s" "rate = 2000000000/s"; do
	printf '[worker:w]\ntopic = t\nhandler = probe\n%s\n' "$bad" | write rate
	check "$bad is refused" refused rate "$T/rate.conf:10: [worker:w] rate: '${bad#rate = }' is not a rate (use N/s, N/m or N/h"
done
printf '[worker:w]\ntopic = t\nhandler = probe\nmax_age = soon\n' | write maxage
check "max_age = soon is refused" refused maxage "$T/maxage.conf:10: [worker:w] max_age: bad duration 'soon'"
printf '[worker:w]\ntopic = t\nhandler = probe\nexpired = keep\n' | write expired
check "expired = keep is refused" refused expired "$T/expired.conf:10: [worker:w] expired: 'keep' is neither dead-letter nor drop"
printf '[worker:w]\ntopic = t\nhandler = probe\nrate = 14/s\nmax_age = 15m\nexpired = drop\n' | write limits
check "rate = 14/s, max_age = 15m, expired = drop pass -t" sh -c "'$KPOOLD' -t -c '$T/limits.conf' | grep -q ': ok'"

write idkey <<'EOF2'
[worker:w]
topic = t
handler = probe
idempotency_key = header:event-id, body:id
EOF2
check "bad idempotency_key source" refused idkey "[worker:w] idempotency_key: 'body:id' is not header:NAME or json:PATH"

# Nine sources: the ninth is refused (it was written past the eight slots).
for last in json:x.y.z header:i; do
	write idkey9 <<EOF2
[worker:w]
topic = t
handler = probe
idempotency_key = header:a, header:b, header:c, header:d, header:e, header:f, header:g, header:h, $last
EOF2
	check "nine idempotency_key sources, the last $last" refused idkey9 \
		"idkey9.conf:10: [worker:w] idempotency_key: more than 8 sources"
	check "  and kpoold -t says the same" sh -c "'$KPOOLD' -t -c '$T/idkey9.conf' 2>&1 | grep -qF 'idempotency_key: more than 8 sources'"
done

check "-t reports the same error" sh -c "'$KPOOLD' -t -c '$T/abi.conf' 2>&1 | grep -q 'is not binary compatible'"
"$KPOOLD" -c "$T/nonexistent.conf" >"$T/noconf.out" 2>&1
check "a missing conf file is named" test $? -eq 1 -a -n "$(grep -F "$T/nonexistent.conf: No such file" "$T/noconf.out")"
"$KPOOLD" >/dev/null 2>&1
check "no -c is a usage error (exit 2)" test $? -eq 2
"$KPOOL" -c "$T/good.conf" frobnicate >/dev/null 2>&1
check "kpool with an unknown command exits 2" test $? -eq 2
check "the shipped conf/kpool.conf passes -t" "$KPOOLD" -t -c "$top_srcdir/conf/kpool.conf"
check "the shipped conf/demo.conf passes -t (from the top of the tree)" sh -c "cd '$top_srcdir' && '$KPOOLD' -t -c conf/demo.conf"
