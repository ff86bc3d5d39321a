/*
 * log.c - the log handler: logs each job and calls it done.  The no-op
 * handler for demos and benchmarks.
 *
 * Options: level = debug | info | notice (default info), show = N (bytes of
 * the job shown, default 200).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "kpool_plugin.h"

struct log_state {
	const struct kpool_host *host;
	int level;
	size_t show;
};

static void *log_init(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
		      char *err, size_t err_len)
{
	struct log_state *st = calloc(1, sizeof(*st));

	if (st == NULL) {
		snprintf(err, err_len, "log plugin: out of memory");
		return NULL;
	}
	st->host = host;
	st->level = LOG_INFO;
	st->show = 200;
	for (size_t i = 0; i < n_opts; i++) {
		const char *k = opts[i].key, *v = opts[i].value;
		char *end;

		if (strcmp(k, "level") == 0) {
			if (strcmp(v, "debug") == 0)
				st->level = LOG_DEBUG;
			else if (strcmp(v, "info") == 0)
				st->level = LOG_INFO;
			else if (strcmp(v, "notice") == 0)
				st->level = LOG_NOTICE;
			else {
				snprintf(err, err_len,
					 "log plugin: level '%s' is not debug, info or notice", v);
				goto fail;
			}
		} else if (strcmp(k, "show") == 0) {
			st->show = strtoul(v, &end, 10);
			if (*v == '\0' || *end) {
				snprintf(err, err_len, "log plugin: show '%s' is not a byte count",
					 v);
				goto fail;
			}
		} else {
			snprintf(err, err_len,
				 "log plugin: unknown option '%s' (known: level, show)", k);
			goto fail;
		}
	}
	return st;
fail:
	free(st);
	return NULL;
}

static kpool_status log_handle(void *state, const struct kpool_job *job,
			       char reason[KPOOL_REASON_MAX])
{
	struct log_state *st = state;
	size_t n = job->value_len < st->show ? job->value_len : st->show;

	st->host->log(st->level, "handler=log topic=%s partition=%d offset=%lld event=%s: %.*s%s",
		      job->topic, (int)job->partition, (long long)job->offset, job->event_id,
		      (int)n, (const char *)job->value, n < job->value_len ? "..." : "");
	return KPOOL_DONE;
}

static void log_fini(void *state)
{
	free(state);
}

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER, .name = "log",	       .version = "1.0",
    .init = log_init,	 .handle = log_handle, .fini = log_fini,
};
