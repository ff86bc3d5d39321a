#!/bin/sh
# A plugin built out of the tree with only <kpool/kpool_plugin.h> and
# `pkg-config --cflags kpool-plugin` is loaded and runs jobs.
. "$(dirname "$0")/lib.sh"
require_tools
CC=${CC:-cc}
command -v pkg-config >/dev/null || skip_all "pkg-config not found"

# Lay the header out as `make install` does, and point pkg-config at it.
mkdir -p "$T/prefix/include/kpool" "$T/plugins" "$T/src"
cp "$top_srcdir/plugins/kpool_plugin.h" "$T/prefix/include/kpool/"
CFLAGS_PLUGIN=$(PKG_CONFIG_PATH="$top_builddir/plugins" pkg-config --define-variable=prefix="$T/prefix" --cflags kpool-plugin)
check "pkg-config knows kpool-plugin" test $? -eq 0
cat >"$T/src/hello.c" <<'EOF2'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <kpool/kpool_plugin.h>

struct hello { FILE *out; };

static void *hello_init(const struct kpool_host *host, const struct kpool_option *opts,
			size_t n, char *err, size_t err_len)
{
	struct hello *h = calloc(1, sizeof(*h));
	for (size_t i = 0; i < n; i++) {
		if (strcmp(opts[i].key, "out") != 0) {
			snprintf(err, err_len, "hello: unknown option '%s'", opts[i].key);
			free(h);
			return NULL;
		}
		h->out = fopen(opts[i].value, "a");
	}
	host->log(6, "hello plugin ready for %s#%d", host->worker, host->index);
	return h;
}

static kpool_status hello_handle(void *state, const struct kpool_job *job,
				 char reason[KPOOL_REASON_MAX])
{
	struct hello *h = state;
	(void)reason;
	fprintf(h->out, "hello %s %.*s\n", job->event_id, (int)job->value_len, (const char *)job->value);
	fflush(h->out);
	return KPOOL_DONE;
}

static void hello_fini(void *state)
{
	struct hello *h = state;
	if (h->out)
		fclose(h->out);
	free(h);
}

const struct kpool_plugin kpool_plugin = {
	KPOOL_PLUGIN_HEADER,
	.name = "hello",
	.version = "0.1",
	.init = hello_init,
	.handle = hello_handle,
	.fini = hello_fini,
};
EOF2
# shellcheck disable=SC2086
"$CC" -shared -fPIC -Wall -Werror $CFLAGS_PLUGIN -o "$T/plugins/hello.so" "$T/src/hello.c" 2>"$T/cc.log"
check "the plugin compiles against the installed header alone" test $? -eq 0
pool_conf "$T/pool.conf" <<EOF2
[worker:hello]
topic = greetings$R
handler = hello
out = $T/out
EOF2
check "kpoold -t accepts it" "$KPOOLD" -t -c "$T/pool.conf"
start_kpoold "$T/pool.conf" "$T/pool.log"
bootstrap "$T/state" >/dev/null || { not_ok "embedded broker started"; exit 1; }
printf '{"eventId":"g1","name":"world"}\n' | "$KPOOL" -c "$T/pool.conf" send "greetings$R" 2>/dev/null
check "it runs a job" wait_for 30 grep -q '^hello g1 {"eventId":"g1","name":"world"}$' "$T/out"
check "its log lines carry the worker" log_has "$T/pool.log" "worker=hello#0 hello plugin ready for hello#0"

# A plugin built against a shorter struct: handle_batch lies past its
# struct_size, so it must never be called (the fixture's aborts).
BOOTSTRAP=$(bootstrap "$T/state") pool_conf "$T/old.conf" "state_dir = $T/old" <<EOF2
[worker:old]
topic = greetings$R
handler = oldsize
EOF2
ln -sf "$top_builddir/tests/plugins/.libs/oldsize.so" "$T/plugins/"
start_kpoold "$T/old.conf" "$T/old.log"
OLD=$KPID
check "an older plugin runs jobs through handle" wait_for 30 sh -c \
	"[ \"\$('$SQLITE3' '$T/old/old.db' 'SELECT sum(n) FROM processed_counts' 2>/dev/null)\" = 1 ]"
check "its handle_batch, past struct_size, was never called" sh -c "! grep -q 'killed by\|exited with' '$T/old.log'"
stop_kpoold "$OLD"
stop_kpoold "$KPID"
check "kpoold stops with status 0" test $? -eq 0
