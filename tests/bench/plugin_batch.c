/*
 * plugin_batch.c - a handler plugin alone, without Kafka: dlopen()s it as
 * kpoold does, hands it the jobs of a file (one per line) through
 * handle_batch in batches, and prints jobs/s, the outcomes and the peak RSS.
 * What scripts/bench analytics sets next to the whole pool's figure: the
 * plugin's own capacity per process.
 *
 * usage: plugin_batch PLUGIN.so JOBS STATE_DIR BATCH [KEY=VALUE]...
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kpool_plugin.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void host_log(int level, const char *fmt, ...)
{
	va_list ap;

	(void)level;
	va_start(ap, fmt);
	fputs("plugin_batch: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int main(int argc, char **argv)
{
	struct kpool_host host = {.worker = "bench", .index = 0, .log = host_log};
	struct kpool_option opts[16];
	const struct kpool_plugin *p;
	struct kpool_job *jobs = NULL;
	const struct kpool_job **ptrs;
	kpool_status *st;
	char(*reason)[KPOOL_REASON_MAX], err[512], *line = NULL;
	size_t n = 0, cap = 0, len = 0, batch, n_opts = 0, outcome[3] = {0};
	ssize_t got;
	void *dl, *state;
	FILE *f;
	double t0, t1;
	struct rusage ru;

	if (argc < 5) {
		fprintf(stderr,
			"usage: plugin_batch PLUGIN.so JOBS STATE_DIR BATCH [KEY=VALUE]...\n");
		return 2;
	}
	host.state_dir = argv[3];
	batch = (size_t)atol(argv[4]);
	for (int i = 5; i < argc && n_opts < 16; i++) {
		char *eq = strchr(argv[i], '=');
		if (eq == NULL)
			return 2;
		*eq = '\0';
		opts[n_opts++] = (struct kpool_option){argv[i], eq + 1};
	}
	if ((dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL ||
	    (p = dlsym(dl, "kpool_plugin")) == NULL || p->handle_batch == NULL) {
		fprintf(stderr, "plugin_batch: %s: %s\n", argv[1],
			dl ? "no kpool_plugin with handle_batch" : dlerror());
		return 1;
	}
	if ((f = fopen(argv[2], "r")) == NULL) {
		perror(argv[2]);
		return 1;
	}
	while ((got = getline(&line, &len, f)) > 0) {
		if (line[got - 1] == '\n')
			line[--got] = '\0';
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((jobs = realloc(jobs, cap * sizeof(*jobs))) == NULL)
				return 1;
		}
		char *id = malloc(32);
		snprintf(id, 32, "job-%zu", n);
		jobs[n] = (struct kpool_job){.topic = "bench",
					     .offset = (int64_t)n,
					     .timestamp_ms = (int64_t)time(NULL) * 1000,
					     .value = strdup(line),
					     .value_len = (size_t)got,
					     .event_id = id,
					     .attempt = 1};
		n++;
	}
	fclose(f);
	free(line);
	ptrs = malloc(batch * sizeof(*ptrs));
	st = malloc(batch * sizeof(*st));
	reason = malloc(batch * sizeof(*reason));
	if ((state = p->init(&host, opts, n_opts, err, sizeof(err))) == NULL) {
		fprintf(stderr, "plugin_batch: init: %s\n", err);
		return 1;
	}
	t0 = now();
	for (size_t done = 0; done < n; done += batch) {
		size_t m = n - done < batch ? n - done : batch;
		for (size_t i = 0; i < m; i++)
			ptrs[i] = &jobs[done + i];
		p->handle_batch(state, ptrs, m, st, reason);
		for (size_t i = 0; i < m; i++)
			outcome[st[i]]++;
	}
	t1 = now();
	p->fini(state);
	getrusage(RUSAGE_SELF, &ru);
	printf("jobs=%zu batch=%zu seconds=%.3f jobs_per_s=%.0f done=%zu retry=%zu fail=%zu "
	       "rss_kib=%ld\n",
	       n, batch, t1 - t0, (double)n / (t1 - t0), outcome[KPOOL_DONE], outcome[KPOOL_RETRY],
	       outcome[KPOOL_FAIL], ru.ru_maxrss);
	for (size_t i = 0; i < n; i++) {
		free((void *)jobs[i].value);
		free((void *)jobs[i].event_id);
	}
	free(jobs);
	free(ptrs);
	free(st);
	free(reason);
	dlclose(dl);
	return outcome[KPOOL_DONE] == n ? 0 : 1;
}
