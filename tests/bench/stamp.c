/*
 * stamp.c - the handler scripts/bench runs kpool with: it does nothing with a
 * job but note when it was called, so that the figures are the pool's own.
 *
 * Per call it takes the time (CLOCK_REALTIME, ms).  Jobs whose event id starts
 * with "lat-" are latency samples: their record's timestamp and the call's
 * time are kept.  Those whose event id starts with "bench-" count towards
 * throughput: how many, the first call's time and the last's.  Other jobs
 * (the benchmark's warm-ups) are not counted.
 *
 * Option out = PATH: the file, rewritten (atomically, through PATH.tmp) each
 * time the count reaches a multiple of 1000, at each latency sample and at
 * fini, in the format the benchmark's peers write too:
 *
 *	COUNT FIRST_MS LAST_MS
 *	TIMESTAMP_MS CALLED_MS		(one line per latency sample)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpool_plugin.h"

#define LAT_MAX 20000

struct stamp {
	char *out, *tmp;
	long count;
	int64_t first, last;
	int64_t (*lat)[2];
	size_t n_lat;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stamp_write(const struct stamp *s)
{
	FILE *f;

	if (s->out == NULL)
		return;
	f = fopen(s->tmp, "w");
	if (f == NULL)
		return;
	fprintf(f, "%ld %lld %lld\n", s->count, (long long)s->first, (long long)s->last);
	for (size_t i = 0; i < s->n_lat; i++)
		fprintf(f, "%lld %lld\n", (long long)s->lat[i][0], (long long)s->lat[i][1]);
	if (fclose(f) == 0)
		rename(s->tmp, s->out);
}

static void stamp_free(struct stamp *s)
{
	free(s->out);
	free(s->tmp);
	free(s->lat);
	free(s);
}

static void *stamp_init(const struct kpool_host *host, const struct kpool_option *opts,
			size_t n_opts, char *err, size_t err_len)
{
	struct stamp *s = calloc(1, sizeof(*s));

	(void)host;
	if (s == NULL || (s->lat = calloc(LAT_MAX, sizeof(*s->lat))) == NULL) {
		snprintf(err, err_len, "stamp: out of memory");
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "out") == 0) {
			size_t len = strlen(opts[i].value) + 5;

			free(s->out);
			free(s->tmp);
			s->out = strdup(opts[i].value);
			s->tmp = malloc(len);
			if (s->out == NULL || s->tmp == NULL) {
				snprintf(err, err_len, "stamp: out of memory");
				stamp_free(s);
				return NULL;
			}
			snprintf(s->tmp, len, "%s.tmp", s->out);
		} else {
			snprintf(err, err_len, "stamp: unknown option '%s'", opts[i].key);
			stamp_free(s);
			return NULL;
		}
	}
	return s;
}

static kpool_status stamp_handle(void *state, const struct kpool_job *job,
				 char reason[KPOOL_REASON_MAX])
{
	struct stamp *s = state;
	int64_t now = now_ms();

	(void)reason;
	if (strncmp(job->event_id, "lat-", 4) == 0) {
		if (s->n_lat < LAT_MAX) {
			s->lat[s->n_lat][0] = job->timestamp_ms;
			s->lat[s->n_lat][1] = now;
			s->n_lat++;
		}
		stamp_write(s);
		return KPOOL_DONE;
	}
	if (strncmp(job->event_id, "bench-", 6) != 0)
		return KPOOL_DONE;
	if (s->count++ == 0)
		s->first = now;
	s->last = now;
	if (s->count % 1000 == 0)
		stamp_write(s);
	return KPOOL_DONE;
}

static void stamp_fini(void *state)
{
	struct stamp *s = state;

	if (s->count > 0 || s->n_lat > 0) /* not the check kpoold makes of the conf */
		stamp_write(s);
	stamp_free(s);
}

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER, .name = "stamp",	 .version = "1.0",
    .init = stamp_init,	 .handle = stamp_handle, .fini = stamp_fini,
};
