/*
 * probe.c - a fixture handler whose behaviour each job chooses, and which
 * records every call, so tests can count how often each job was handled.
 *
 * Option record = PATH: one line "EVENT_ID ATTEMPT RESULT" appended per call.
 * Option broken = on: init succeeds when kpoold checks the conf but fails in
 * every worker, the way a plugin whose backend is down would.
 * Option timed = on: each record line ends with the call's time, in
 * microseconds since the epoch (CLOCK_REALTIME), for tests of the rate.
 * Option fixed_when = PATH: once PATH exists, "fail" and "retry" jobs are done
 * (the handler was fixed), which is what a replay from the dead-letter topic needs.
 * Job fields: "do": "ok" (default) | "fail" | "retry" (until attempt
 * "succeed_at", default never) | "crash" (SIGSEGV) | "exit" (exit(3)) | "sleep" ("ms" milliseconds,
 * then ok; with "announce": true a line "EVENT_ID ATTEMPT start" is written first).
 *
 * Built with -DPROBE_BATCH it is "probebatch": the same, through handle_batch,
 * with the batch size as a fourth field of each record line.
 */
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kpool_plugin.h"

struct probe {
	int fd;
	char *fixed_when;
	size_t batch; /* size of the batch being handled, 0 outside one */
	int timed;    /* record lines end with the time */
};

static void *probe_init(const struct kpool_host *host, const struct kpool_option *opts,
			size_t n_opts, char *err, size_t err_len)
{
	struct probe *p = calloc(1, sizeof(*p));

	p->fd = -1;
	for (size_t i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "broken") == 0) {
			if (host->index >= 0) {
				snprintf(err, err_len, "probe: broken, as asked");
				if (p->fd >= 0)
					close(p->fd);
				free(p->fixed_when);
				free(p);
				return NULL;
			}
		} else if (strcmp(opts[i].key, "timed") == 0) {
			p->timed = strcmp(opts[i].value, "on") == 0;
		} else if (strcmp(opts[i].key, "fixed_when") == 0) {
			free(p->fixed_when);
			p->fixed_when = strdup(opts[i].value);
		} else if (strcmp(opts[i].key, "record") == 0) {
			p->fd =
			    open(opts[i].value, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (p->fd < 0) {
				snprintf(err, err_len, "probe: cannot open record file %s",
					 opts[i].value);
				free(p->fixed_when);
				free(p);
				return NULL;
			}
		} else {
			snprintf(err, err_len, "probe: unknown option '%s'", opts[i].key);
			if (p->fd >= 0)
				close(p->fd);
			free(p->fixed_when);
			free(p);
			return NULL;
		}
	}
	return p;
}

static void record(struct probe *p, const struct kpool_job *job, const char *result)
{
	char line[512], at[32] = "";
	int n;

	if (p->fd < 0)
		return;
	if (p->timed) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(at, sizeof(at), " %lld",
			 (long long)ts.tv_sec * 1000000 + (long long)ts.tv_nsec / 1000);
	}
	if (p->batch)
		n = snprintf(line, sizeof(line), "%s %d %s %zu%s\n", job->event_id, job->attempt,
			     result, p->batch, at);
	else
		n = snprintf(line, sizeof(line), "%s %d %s%s\n", job->event_id, job->attempt,
			     result, at);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)!write(p->fd, line, (size_t)n);
}

static kpool_status probe_handle(void *state, const struct kpool_job *job,
				 char reason[KPOOL_REASON_MAX])
{
	struct probe *p = state;
	json_t *root = json_loadb(job->value, job->value_len, 0, NULL);
	const char *what = json_string_value(json_object_get(root, "do"));
	kpool_status st = KPOOL_DONE;

	if (what == NULL || strcmp(what, "ok") == 0 ||
	    (p->fixed_when && access(p->fixed_when, F_OK) == 0 &&
	     (strcmp(what, "fail") == 0 || strcmp(what, "retry") == 0))) {
		record(p, job, "done");
	} else if (strcmp(what, "fail") == 0) {
		snprintf(reason, KPOOL_REASON_MAX, "probe: failing as asked");
		record(p, job, "fail");
		st = KPOOL_FAIL;
	} else if (strcmp(what, "retry") == 0) {
		json_int_t at = json_integer_value(json_object_get(root, "succeed_at"));
		if (at > 0 && job->attempt >= at) {
			record(p, job, "done");
		} else {
			snprintf(reason, KPOOL_REASON_MAX, "probe: not yet (attempt %d)",
				 job->attempt);
			record(p, job, "retry");
			st = KPOOL_RETRY;
		}
	} else if (strcmp(what, "crash") == 0) {
		record(p, job, "crash");
		raise(SIGSEGV);
	} else if (strcmp(what, "exit") == 0) {
		record(p, job, "exit");
		exit(3);
	} else if (strcmp(what, "sleep") == 0) {
		json_int_t ms = json_integer_value(json_object_get(root, "ms"));
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
		if (json_is_true(json_object_get(root, "announce")))
			record(p, job, "start");
		while (nanosleep(&ts, &ts) < 0) /* a signal does not cut the job short */
			;
		record(p, job, "done");
	} else {
		snprintf(reason, KPOOL_REASON_MAX, "probe: unknown do '%s'", what);
		st = KPOOL_FAIL;
	}
	json_decref(root);
	return st;
}

static void probe_fini(void *state)
{
	struct probe *p = state;

	if (p->fd >= 0)
		close(p->fd);
	free(p->fixed_when);
	free(p);
}

#ifdef PROBE_BATCH
static void probe_handle_batch(void *state, const struct kpool_job *const *jobs, size_t n,
			       kpool_status *status, char (*reason)[KPOOL_REASON_MAX])
{
	struct probe *p = state;

	p->batch = n;
	for (size_t i = 0; i < n; i++)
		status[i] = probe_handle(state, jobs[i], reason[i]);
	p->batch = 0;
}
#endif

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER,
#ifdef PROBE_BATCH
    .name = "probebatch",   .handle_batch = probe_handle_batch,
#else
    .name = "probe",
#endif
    .version = "1.0",	    .init = probe_init,
    .handle = probe_handle, .fini = probe_fini,
};
