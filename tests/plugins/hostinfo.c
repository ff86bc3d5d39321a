/*
 * hostinfo.c - a fixture plugin built against today's header: it declares
 * an option of every type, and records what kpoold offers it.
 *
 * Lines appended to record (a path, so a relative one is the conf
 * directory's), by a worker only: "opt KEY=VALUE" for each option init()
 * gets, "host struct_size=N built=M retry_after=yes|no conf_dir=DIR", then
 * per call "EVENT_ID ATTEMPT done|retry MS" (MS: the wall clock in ms).  A
 * job holding "retry" asks, on its first attempt, to be tried again after
 * the option wait, through host->retry_after.
 */
#define _GNU_SOURCE /* memmem */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kpool_plugin.h"

static const struct kpool_option_spec hostinfo_options[] = {
    {.name = "record",
     .type = KPOOL_OPT_PATH,
     .flags = KPOOL_OPT_REQUIRED,
     .desc = "where the lines go"},
    {.name = "wait",
     .type = KPOOL_OPT_DURATION,
     .def = "1.5s",
     .min = 1,
     .desc = "what a retried job asks to wait"},
    {.name = "size", .type = KPOOL_OPT_SIZE, .def = "1KiB", .desc = "a size"},
    {.name = "flag", .type = KPOOL_OPT_BOOL, .def = "yes", .desc = "a switch"},
    {.name = "n", .type = KPOOL_OPT_INT, .def = "+7", .min = 1, .max = 9, .desc = "a number"},
    {.name = "mode", .type = KPOOL_OPT_ENUM, .def = "a", .choices = "a|b", .desc = "a choice"},
    {.name = "tag", .flags = KPOOL_OPT_MULTI, .desc = "any text, repeatable"},
    {.name = NULL},
};

struct hostinfo {
	const struct kpool_host *host;
	int fd;
	int64_t wait_ms;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The state, with record open; NULL with err if it cannot be opened. */
static void *hostinfo_init(const struct kpool_host *host, const struct kpool_option *opts,
			   size_t n_opts, char *err, size_t err_len)
{
	struct hostinfo *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		snprintf(err, err_len, "hostinfo: out of memory");
		return NULL;
	}
	h->host = host;
	h->fd = -1;
	for (size_t i = 0; i < n_opts; i++)
		if (strcmp(opts[i].key, "record") == 0)
			h->fd =
			    open(opts[i].value, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		else if (strcmp(opts[i].key, "wait") == 0)
			h->wait_ms = strtoll(opts[i].value, NULL, 10);
	if (h->fd < 0) {
		snprintf(err, err_len, "hostinfo: record cannot be opened");
		free(h);
		return NULL;
	}
	if (host->index >= 0) {
		for (size_t i = 0; i < n_opts; i++)
			dprintf(h->fd, "opt %s=%s\n", opts[i].key, opts[i].value);
		dprintf(h->fd, "host struct_size=%zu built=%zu retry_after=%s conf_dir=%s\n",
			host->struct_size, sizeof(struct kpool_host),
			host->retry_after ? "yes" : "no", host->conf_dir);
	}
	return h;
}

static kpool_status hostinfo_handle(void *state, const struct kpool_job *job,
				    char reason[KPOOL_REASON_MAX])
{
	struct hostinfo *h = state;
	int retry = job->attempt == 1 && memmem(job->value, job->value_len, "retry", 5) != NULL;

	dprintf(h->fd, "%s %d %s %lld\n", job->event_id, job->attempt, retry ? "retry" : "done",
		(long long)now_ms());
	if (!retry)
		return KPOOL_DONE;
	snprintf(reason, KPOOL_REASON_MAX, "hostinfo: asked to retry");
	h->host->retry_after(job, h->wait_ms);
	return KPOOL_RETRY;
}

static void hostinfo_fini(void *state)
{
	struct hostinfo *h = state;

	close(h->fd);
	free(h);
}

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER,
    .name = "hostinfo",
    .version = "1.0",
    .init = hostinfo_init,
    .handle = hostinfo_handle,
    .fini = hostinfo_fini,
    KPOOL_PLUGIN_OPTIONS(hostinfo_options),
};
