/*
 * metrics.c - GET /metrics (Prometheus text format) and GET /healthz, served
 * by libmicrohttpd inside the supervisor's own poll loop (no thread), from the
 * shared stats slots.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor.h"

struct kp_metrics {
	struct MHD_Daemon *d;
	const struct kp_supervisor *sv;
	char address_file[PATH_MAX];
};

static const char *const result_names[KP_R_MAX] = {"done",	    "retried",	 "failed",
						   "dead_lettered", "duplicate", "expired"};
static const char *const state_names[KP_SLOT_STATES + 1] = {"stopped", "starting", "running",
							    "stopping", "throttled"};

/* True if an earlier binding state has the same name: its series were written already. */
static bool seen_before(const struct kp_supervisor *sv, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(sv->bs[j]->b->name, sv->bs[i]->b->name) == 0)
			return true;
	return false;
}

/* What the slots of one binding say, summed. */
struct sums {
	const char *name;
	uint64_t results[KP_R_MAX], dead[KP_CLASS_MAX], hist[KP_HIST_BUCKETS + 1];
	uint64_t sum_us, restarts;
	int states[KP_SLOT_STATES + 1]; /* the last: throttled */
	bool paused;			/* its current state is paused by the operator */
	uint64_t rate_waited_us;	/* time its processes' jobs waited for the rate */
	int rate_waiting;		/* its processes waiting for the rate now */
	double rate_per_s;		/* its current state's rate, 0 for none */
};

/*
 * Sums the slots of every state of binding b->name (during a reload the old
 * generation drains while the new one runs).
 */
static void binding_sums(const struct kp_supervisor *sv, struct sums *b)
{
	for (size_t i = 0; i < sv->n_bs; i++) {
		const struct kp_binding_state *bs = sv->bs[i];
		if (strcmp(bs->b->name, b->name) != 0)
			continue;
		b->restarts += bs->restarts;
		if (!bs->draining) {
			b->paused = bs->paused;
			b->rate_per_s = bs->b->rate_period_ms ? (double)bs->b->rate_n * 1000 /
								    (double)bs->b->rate_period_ms
							      : 0;
		}
		for (int k = 0; k < bs->b->processes; k++) {
			const struct kp_slot *s = bs->slots[k];
			for (int r = 0; r < KP_R_MAX; r++)
				b->results[r] += s->results[r];
			for (int c = 0; c < KP_CLASS_MAX; c++)
				b->dead[c] += s->dead[c];
			for (int h = 0; h <= KP_HIST_BUCKETS; h++)
				b->hist[h] += s->hist[h];
			b->sum_us += s->hist_sum_us;
			b->rate_waited_us += s->rate_waited_us;
			b->rate_waiting += s->pid > 0 && s->rate_waiting;
			if (bs->due_ms[k] && bs->throttled)
				b->states[KP_SLOT_STATES]++;
			else if (s->state >= 0 && s->state < KP_SLOT_STATES)
				b->states[s->state]++;
		}
	}
}

/* A metric family's HELP and TYPE lines. */
static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Whether lp is in use by a binding whose hosts share its ledger (once unused, its binding may be
 * gone). */
static bool shared(const struct kp_ledger_proc *lp)
{
	return lp->refs > 0 && lp->bs != NULL && lp->bs->b->ledger_kafka;
}

/*
 * The ledger topics of the bindings whose hosts share their ledger: whether
 * it is there, the records this host produced, read and took from other
 * hosts, and each host's lag on it (this one's now, the others' as they last
 * said, within the last 30 s).
 */
static void write_ledger_topic(FILE *f, const struct kp_supervisor *sv)
{
	static const char *const states[] = {"off", "starting", "ready", "failing"};
	char host[64];
	int64_t now = kp_now_ms();

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown");
	family(f, "kpool_ledger_topic_state", "gauge",
	       "1 for the state of the binding's ledger topic: starting, ready or failing "
	       "(nothing is handled until it is ready).");
	for (size_t i = 0; i < sv->n_ledgers; i++) {
		const struct kp_ledger_proc *lp = sv->ledgers[i];
		int st = lp->shm->topic_state;
		if (!shared(lp))
			continue;
		for (int k = 1; k < 4; k++)
			fprintf(f,
				"kpool_ledger_topic_state{worker=\"%s\",topic=\"%s\",state=\"%s\"} "
				"%d\n",
				lp->name, lp->bs->b->ledger_topic, states[k], st == k);
	}
	family(f, "kpool_ledger_topic_records_total", "counter",
	       "The ledger topic: ids this host produced (acknowledged), records it read, and "
	       "ids it imported (another host finished them).");
	for (size_t i = 0; i < sv->n_ledgers; i++) {
		const struct kp_ledger_proc *lp = sv->ledgers[i];
		if (!shared(lp))
			continue;
		fprintf(
		    f,
		    "kpool_ledger_topic_records_total{worker=\"%s\",direction=\"produced\"} %llu\n",
		    lp->name, (unsigned long long)lp->shm->produced);
		fprintf(f,
			"kpool_ledger_topic_records_total{worker=\"%s\",direction=\"read\"} %llu\n",
			lp->name, (unsigned long long)lp->shm->consumed);
		fprintf(
		    f,
		    "kpool_ledger_topic_records_total{worker=\"%s\",direction=\"imported\"} %llu\n",
		    lp->name, (unsigned long long)lp->shm->imported);
	}
	family(f, "kpool_ledger_topic_lag", "gauge",
	       "Ledger topic records a host has still to read (store: the host's ledger file, "
	       "as its records name it): this host now, the others as they last said.");
	for (size_t i = 0; i < sv->n_ledgers; i++) {
		const struct kp_ledger_proc *lp = sv->ledgers[i];
		if (!shared(lp))
			continue;
		fprintf(
		    f, "kpool_ledger_topic_lag{worker=\"%s\",host=\"%s\",store=\"%016llx\"} %lld\n",
		    lp->name, host, (unsigned long long)lp->shm->origin,
		    (long long)lp->shm->topic_lag);
		for (uint32_t h = 0; h < lp->shm->n_hosts && h < KP_LEDGER_HOSTS; h++) {
			const struct kp_lhost *o = &lp->shm->hosts[h];
			char name[sizeof(o->name)];
			memcpy(name, o->name, sizeof(name));
			name[sizeof(name) - 1] = '\0';
			for (char *c = name; *c; c++)
				if (*c == '"' || *c == '\\' || *c == '\n')
					*c = '_';
			if (now - o->at_ms < KP_LEDGER_HOST_KEEP_MS && o->origin != lp->shm->origin)
				fprintf(f,
					"kpool_ledger_topic_lag{worker=\"%s\",host=\"%s\",store=\"%"
					"016llx\"} "
					"%lld\n",
					lp->name, name, (unsigned long long)o->origin,
					(long long)o->lag);
		}
	}
}

/*
 * Each binding's ledger (ledger.h): ids in memory by state, ids and bytes on
 * disk, finished ids not yet durable, and how often the store was read.
 */
static void write_ledger(FILE *f, const struct kp_supervisor *sv)
{
	struct kp_ledger_counts *c = calloc(sv->n_ledgers ? sv->n_ledgers : 1, sizeof(*c));
	static const char *const states[] = {"claimed", "pending", "durable", "crashed"};

	if (c == NULL)
		return;
	for (size_t i = 0; i < sv->n_ledgers; i++)
		kp_ledger_counts(sv->ledgers[i]->shm, &c[i]);
	family(f, "kpool_ledger_memory_ids", "gauge",
	       "Event ids in the ledger's shared memory, by state.");
	for (size_t i = 0; i < sv->n_ledgers; i++) {
		uint64_t v[] = {c[i].claimed, c[i].pending, c[i].durable, c[i].crashed};
		for (size_t k = 0; k < 4; k++)
			fprintf(f, "kpool_ledger_memory_ids{worker=\"%s\",state=\"%s\"} %llu\n",
				sv->ledgers[i]->name, states[k], (unsigned long long)v[k]);
	}
	family(f, "kpool_ledger_disk_ids", "gauge",
	       "Event ids in the ledger's SQLite file (within idempotency_ttl).");
	for (size_t i = 0; i < sv->n_ledgers; i++)
		fprintf(f, "kpool_ledger_disk_ids{worker=\"%s\"} %lld\n", sv->ledgers[i]->name,
			(long long)sv->ledgers[i]->shm->disk_ids);
	family(f, "kpool_ledger_bytes", "gauge",
	       "The ledger's size: shared memory (table, ring, filter) and disk (file and WAL).");
	for (size_t i = 0; i < sv->n_ledgers; i++) {
		fprintf(f, "kpool_ledger_bytes{worker=\"%s\",where=\"memory\"} %llu\n",
			sv->ledgers[i]->name, (unsigned long long)c[i].memory_bytes);
		fprintf(f, "kpool_ledger_bytes{worker=\"%s\",where=\"disk\"} %lld\n",
			sv->ledgers[i]->name, (long long)sv->ledgers[i]->shm->disk_bytes);
	}
	family(f, "kpool_ledger_unwritten", "gauge",
	       "Finished ids the ledger process has not made durable yet.");
	for (size_t i = 0; i < sv->n_ledgers; i++)
		fprintf(
		    f, "kpool_ledger_unwritten{worker=\"%s\"} %llu\n", sv->ledgers[i]->name,
		    (unsigned long long)(sv->ledgers[i]->shm->head - sv->ledgers[i]->shm->tail));
	family(f, "kpool_ledger_waits_total", "counter",
	       "Times a worker waited for the ledger process (no room in memory, its ring full, or "
	       "an id unacknowledged by Kafka for 5 ms or twice the usual wait).");
	for (size_t i = 0; i < sv->n_ledgers; i++) {
		fprintf(f, "kpool_ledger_waits_total{worker=\"%s\",for=\"room\"} %llu\n",
			sv->ledgers[i]->name, (unsigned long long)sv->ledgers[i]->shm->waits);
		fprintf(f, "kpool_ledger_waits_total{worker=\"%s\",for=\"ring\"} %llu\n",
			sv->ledgers[i]->name, (unsigned long long)sv->ledgers[i]->shm->ring_waits);
		fprintf(f, "kpool_ledger_waits_total{worker=\"%s\",for=\"share\"} %llu\n",
			sv->ledgers[i]->name, (unsigned long long)sv->ledgers[i]->shm->share_waits);
	}
	family(f, "kpool_ledger_store_reads_total", "counter",
	       "Ids the filter could not rule out, so the SQLite file was read.");
	for (size_t i = 0; i < sv->n_ledgers; i++)
		fprintf(f, "kpool_ledger_store_reads_total{worker=\"%s\"} %llu\n",
			sv->ledgers[i]->name, (unsigned long long)sv->ledgers[i]->shm->lookups);
	write_ledger_topic(f, sv);
	free(c);
}

/*
 * The Prometheus text format: each family's HELP and TYPE, then all of its
 * samples, every binding's, before the next family.
 */
static void write_metrics(FILE *f, const struct kp_supervisor *sv)
{
	struct sums *b = calloc(sv->n_bs ? sv->n_bs : 1, sizeof(*b));
	size_t n = 0;

	if (b == NULL)
		return;
	for (size_t i = 0; i < sv->n_bs; i++) {
		if (seen_before(sv, i))
			continue;
		b[n].name = sv->bs[i]->b->name;
		binding_sums(sv, &b[n++]);
	}
	family(f, "kpool_jobs_total", "counter", "Jobs finished, by result.");
	for (size_t i = 0; i < n; i++)
		for (int r = 0; r < KP_R_MAX; r++)
			fprintf(f, "kpool_jobs_total{worker=\"%s\",result=\"%s\"} %llu\n",
				b[i].name, result_names[r], (unsigned long long)b[i].results[r]);
	family(f, "kpool_dead_letter_total", "counter",
	       "Jobs sent to the dead-letter topic, by error class.");
	for (size_t i = 0; i < n; i++)
		for (int c = KP_CLASS_NONE + 1; c < KP_CLASS_MAX; c++)
			fprintf(f, "kpool_dead_letter_total{worker=\"%s\",class=\"%s\"} %llu\n",
				b[i].name, kp_class_name(c), (unsigned long long)b[i].dead[c]);
	family(f, "kpool_job_seconds", "histogram", "Time the handler took per call.");
	for (size_t i = 0; i < n; i++) {
		uint64_t cum = 0;
		for (int h = 0; h <= KP_HIST_BUCKETS; h++) {
			cum += b[i].hist[h];
			if (h < KP_HIST_BUCKETS)
				fprintf(f,
					"kpool_job_seconds_bucket{worker=\"%s\",le=\"%g\"} %llu\n",
					b[i].name, kp_hist_bounds[h], (unsigned long long)cum);
			else
				fprintf(
				    f, "kpool_job_seconds_bucket{worker=\"%s\",le=\"+Inf\"} %llu\n",
				    b[i].name, (unsigned long long)cum);
		}
		fprintf(f, "kpool_job_seconds_sum{worker=\"%s\"} %.6f\n", b[i].name,
			(double)b[i].sum_us / 1e6);
		fprintf(f, "kpool_job_seconds_count{worker=\"%s\"} %llu\n", b[i].name,
			(unsigned long long)cum);
	}
	family(f, "kpool_worker_restarts_total", "counter",
	       "Worker processes restarted after dying.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "kpool_worker_restarts_total{worker=\"%s\"} %llu\n", b[i].name,
			(unsigned long long)b[i].restarts);
	family(f, "kpool_workers", "gauge", "Worker processes, by state.");
	for (size_t i = 0; i < n; i++)
		for (int st = 0; st <= KP_SLOT_STATES; st++)
			fprintf(f, "kpool_workers{worker=\"%s\",state=\"%s\"} %d\n", b[i].name,
				state_names[st], b[i].states[st]);
	family(f, "kpool_binding_paused", "gauge",
	       "1 while the binding is paused (kpool pause): its jobs wait in Kafka.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "kpool_binding_paused{binding=\"%s\"} %d\n", b[i].name, b[i].paused);
	family(f, "kpool_rate_limit", "gauge",
	       "The binding's rate (handler calls per second, all hosts together); absent without "
	       "one.");
	for (size_t i = 0; i < n; i++)
		if (b[i].rate_per_s > 0)
			fprintf(f, "kpool_rate_limit{worker=\"%s\"} %g\n", b[i].name,
				b[i].rate_per_s);
	family(f, "kpool_rate_limited_seconds_total", "counter",
	       "Time jobs waited for the binding's rate, summed over its processes.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "kpool_rate_limited_seconds_total{worker=\"%s\"} %.3f\n", b[i].name,
			(double)b[i].rate_waited_us / 1e6);
	family(f, "kpool_rate_waiting", "gauge",
	       "The binding's processes whose next job waits for the rate now.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "kpool_rate_waiting{worker=\"%s\"} %d\n", b[i].name, b[i].rate_waiting);
	free(b);
	if (sv->conf->console_listen) {
		family(f, "kpool_console_up", "gauge",
		       "1 while the web console's process runs, 0 while it waits to start again.");
		fprintf(f, "kpool_console_up %d\n", sv->console.pid > 0);
	}
	if (sv->conf->embedded) {
		family(f, "kpool_embedded_broker_up", "gauge",
		       "1 when the embedded broker listens, 0 while it starts (again).");
		fprintf(f, "kpool_embedded_broker_up %d\n", sv->broker.up);
		family(f, "kpool_embedded_broker_starts_total", "counter",
		       "Embedded brokers started, the first one included.");
		fprintf(f, "kpool_embedded_broker_starts_total %llu\n",
			(unsigned long long)sv->broker.starts);
	}

	/* Per process, of the current bindings (not those draining after a reload). */
	family(f, "kpool_worker_process_restarts_total", "counter",
	       "Restarts of one worker process slot.");
	for (size_t i = 0; i < sv->n_bs; i++)
		for (int k = 0; !sv->bs[i]->draining && k < sv->bs[i]->b->processes; k++)
			fprintf(f,
				"kpool_worker_process_restarts_total{worker=\"%s\",index=\"%d\"} "
				"%llu\n",
				sv->bs[i]->b->name, k,
				(unsigned long long)sv->bs[i]->slots[k]->restarts);
	family(f, "kpool_worker_start_time_seconds", "gauge",
	       "When a worker process started (unix time).");
	for (size_t i = 0; i < sv->n_bs; i++)
		for (int k = 0; !sv->bs[i]->draining && k < sv->bs[i]->b->processes; k++) {
			const struct kp_slot *s = sv->bs[i]->slots[k];
			if (s->pid > 0 && s->state != KP_SLOT_EMPTY)
				fprintf(
				    f,
				    "kpool_worker_start_time_seconds{worker=\"%s\",index=\"%d\","
				    "pid=\"%d\",state=\"%s\"} %.3f\n",
				    sv->bs[i]->b->name, k, (int)s->pid, state_names[s->state],
				    (double)s->started_ms / 1e3);
		}
	write_ledger(f, sv);
	family(f, "kpool_consumer_lag", "gauge",
	       "Messages behind the high watermark (the group's committed offset to the end).");
	for (size_t i = 0; i < sv->n_bs; i++) {
		const struct kp_binding_state *bs = sv->bs[i];
		for (int k = 0; !bs->draining && k < bs->b->processes; k++) {
			const struct kp_slot *s = bs->slots[k];
			if (s->state != KP_SLOT_RUNNING)
				continue;
			for (int l = 0; l < s->n_lag && l < KP_LAG_MAX; l++)
				if (s->lag[l].topic < s->n_topics)
					fprintf(f,
						"kpool_consumer_lag{worker=\"%s\",topic=\"%s\","
						"partition=\"%d\"} %lld\n",
						bs->b->name, s->topics[s->lag[l].topic],
						s->lag[l].partition, (long long)s->lag[l].lag);
		}
	}
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body,
			     size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	MHD_add_response_header(r, "Content-Type", type);
	rc = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **con_cls)
{
	struct kp_metrics *m = cls;
	char *body = NULL;
	size_t len = 0;
	FILE *f;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", strdup("GET only\n"), 9);
	if (strcmp(url, "/metrics") == 0) {
		f = open_memstream(&body, &len);
		if (f == NULL)
			return MHD_NO;
		write_metrics(f, m->sv);
		fclose(f);
		return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
	}
	if (strcmp(url, "/healthz") == 0) {
		int ok = kp_health(m->sv, &body);
		return reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
			     body, strlen(body));
	}
	return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", strdup("try /metrics or /healthz\n"), 25);
}

/*
 * Opens the listening socket on HOST:PORT (port 0 picks one) and writes the
 * address it got to state_dir/metrics.address.  NULL with err on failure.
 */
struct kp_metrics *kp_metrics_start(const char *listen, const char *state_dir,
				    const struct kp_supervisor *sv, char *err, size_t len)
{
	struct kp_metrics *m = calloc(1, sizeof(*m));
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | AI_PASSIVE},
			*ai = NULL;
	char host[256], *colon;
	const union MHD_DaemonInfo *info;
	FILE *f;
	int rc;

	if (m == NULL)
		return NULL;
	m->sv = sv;
	snprintf(host, sizeof(host), "%s", listen);
	colon = strrchr(host, ':');
	if (colon == NULL) {
		snprintf(err, len, "metrics_listen '%s' is not HOST:PORT", listen);
		goto fail;
	}
	*colon = '\0';
	if (host[0] == '[' && colon[-1] == ']') { /* [::1]:9464 */
		colon[-1] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (rc != 0) {
		snprintf(err, len, "metrics_listen '%s': %s", listen, gai_strerror(rc));
		goto fail;
	}
	m->d = MHD_start_daemon(MHD_USE_EPOLL | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0,
				NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (m->d == NULL) {
		snprintf(err, len, "metrics_listen '%s': cannot listen (%s)", listen,
			 strerror(errno));
		goto fail;
	}
	info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(m->address_file, sizeof(m->address_file), "%s/%s", state_dir, KP_METRICS_FILE);
	f = fopen(m->address_file, "w");
	if (f) {
		fprintf(f, "%s:%u\n", host[0] ? host : "0.0.0.0", info ? info->port : 0);
		fclose(f);
	}
	kp_log(KP_INFO, "metrics on http://%s:%u/metrics", host[0] ? host : "0.0.0.0",
	       info ? info->port : 0);
	return m;
fail:
	free(m);
	return NULL;
}

/* The fd to poll for readability. */
int kp_metrics_fd(const struct kp_metrics *m)
{
	return MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd;
}

/* How long the poll may sleep before kp_metrics_run() must run anyway; -1 for ever. */
int kp_metrics_timeout_ms(struct kp_metrics *m)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (MHD_get_timeout(m->d, &t) == MHD_YES)
		return t > INT_MAX ? INT_MAX : (int)t;
	return -1;
}

/* Serves what is ready, without blocking. */
void kp_metrics_run(struct kp_metrics *m)
{
	MHD_run(m->d);
}

/* In a freshly forked child: closes the supervisor's sockets without touching its state. */
void kp_metrics_close_in_child(struct kp_metrics *m)
{
	const union MHD_DaemonInfo *i;

	if (m == NULL)
		return;
	if ((i = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_LISTEN_FD)))
		close(i->listen_fd);
	if ((i = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD)))
		close(i->epoll_fd);
}

/* Stops serving and removes the address file; NULL is fine. */
void kp_metrics_stop(struct kp_metrics *m)
{
	if (m == NULL)
		return;
	MHD_stop_daemon(m->d);
	unlink(m->address_file);
	free(m);
}
