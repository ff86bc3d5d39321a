/*
 * log.c - the log handler: logs each job and calls it done.  The no-op
 * handler for demos and benchmarks.  Its options are in log_options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "kpool_plugin.h"
#include "opts.h"

static const struct kpool_option_spec log_options[] = {
    {.name = "level",
     .type = KPOOL_OPT_ENUM,
     .def = "info",
     .choices = "debug|info|notice",
     .desc = "the syslog level the jobs are logged at"},
    {.name = "show",
     .type = KPOOL_OPT_SIZE,
     .def = "200",
     .desc = "bytes of each job logged; the rest is cut, with ..."},
    {.name = NULL},
};

struct log_state {
	const struct kpool_host *host;
	int level;
	size_t show;
};

/* The state for a binding; NULL with err if memory runs out (the options are kpoold's checked). */
static void *log_init(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
		      char *err, size_t err_len)
{
	struct log_state *st = calloc(1, sizeof(*st));
	const char *level = opts_get(opts, n_opts, "level");

	if (st == NULL) {
		snprintf(err, err_len, "log plugin: out of memory");
		return NULL;
	}
	st->host = host;
	st->level = level && strcmp(level, "debug") == 0    ? LOG_DEBUG
		    : level && strcmp(level, "notice") == 0 ? LOG_NOTICE
							    : LOG_INFO;
	st->show = (size_t)opts_int(opts, n_opts, "show");
	return st;
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
    KPOOL_PLUGIN_HEADER,
    .name = "log",
    .version = "1.0",
    .init = log_init,
    .handle = log_handle,
    .fini = log_fini,
    KPOOL_PLUGIN_OPTIONS(log_options),
};
