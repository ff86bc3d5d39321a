/*
 * abi1.c - a fixture plugin built against ABI 1's first header, frozen in
 * tests/plugins/abi1/kpool_plugin.h (its include path has no other): a
 * struct kpool_host of four fields, options handed over as written, and
 * kpool_retry_after() a weak global that kpoold exports.
 *
 * Option record = PATH (required): lines appended there, "opt KEY=VALUE" for
 * each option init() gets (in a worker, not in kpoold's check), then per
 * call "EVENT_ID ATTEMPT done|retry MS" (MS: the wall clock in ms).  Any
 * other key is taken and recorded.  A job holding "retry" asks, on its
 * first attempt, to be tried again after RETRY_AFTER_MS, through
 * kpool_retry_after().
 */
#define _GNU_SOURCE /* memmem */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kpool_plugin.h"

#ifdef KPOOL_PLUGIN_OPTIONS
#error "abi1.c must be built against the frozen first header"
#endif

#define RETRY_AFTER_MS 3000

struct abi1 {
	int fd;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The state, with record open; NULL with err if record is missing or cannot be opened. */
static void *abi1_init(const struct kpool_host *host, const struct kpool_option *opts,
		       size_t n_opts, char *err, size_t err_len)
{
	struct abi1 *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		snprintf(err, err_len, "abi1: out of memory");
		return NULL;
	}
	a->fd = -1;
	for (size_t i = 0; i < n_opts; i++)
		if (strcmp(opts[i].key, "record") == 0) {
			if (a->fd >= 0)
				close(a->fd);
			a->fd =
			    open(opts[i].value, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		}
	if (a->fd < 0) {
		snprintf(err, err_len, "abi1: record: missing, or cannot be opened");
		free(a);
		return NULL;
	}
	if (host->index >= 0)
		for (size_t i = 0; i < n_opts; i++)
			dprintf(a->fd, "opt %s=%s\n", opts[i].key, opts[i].value);
	return a;
}

static kpool_status abi1_handle(void *state, const struct kpool_job *job,
				char reason[KPOOL_REASON_MAX])
{
	struct abi1 *a = state;
	int retry = job->attempt == 1 && memmem(job->value, job->value_len, "retry", 5) != NULL;

	dprintf(a->fd, "%s %d %s %lld\n", job->event_id, job->attempt, retry ? "retry" : "done",
		(long long)now_ms());
	if (!retry)
		return KPOOL_DONE;
	snprintf(reason, KPOOL_REASON_MAX, "abi1: asked to retry");
	if (kpool_retry_after)
		kpool_retry_after(job, RETRY_AFTER_MS);
	return KPOOL_RETRY;
}

static void abi1_fini(void *state)
{
	struct abi1 *a = state;

	close(a->fd);
	free(a);
}

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER, .name = "abi1",	.version = "1.0",
    .init = abi1_init,	 .handle = abi1_handle, .fini = abi1_fini,
};
