/*
 * worker.c - one worker process: the consume loop, the job lifecycle of
 * DESIGN.md (event id, dedupe, crash guard, handle, retry with the partition
 * paused, dead-letter, record then commit) and the offsets.
 *
 * A finished job's id goes into the slot's ring in shared memory, which
 * outlives the process, and into an in-memory set that dedupe checks along
 * with the processed table.  Every KP_FLUSH_JOBS jobs or KP_FLUSH_MS the ring
 * is written to SQLite in one short transaction (so the processes of one
 * binding barely contend for its database), and only then are the offsets
 * stored for commit.  A worker killed in between leaves the ring to its
 * successor in the same slot, which writes it before it consumes; so a
 * killed worker repeats at most the job it had in hand.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "kpoold.h"

#define POLL_MS		 100
#define TOPICS_ASK_MS	 1000 /* a metadata request for one topic */
#define TOPICS_CREATE_MS 5000 /* CreateTopics */
#define TOPICS_CHECK_MS	 2000 /* how often to look for a topic that is not there yet */
#define MAX_HEADERS	 64
#define KP_PENDING_SLOTS (2 * KP_RING_MAX) /* open addressing, at most half full */
#define BATCH_MAX	 256 /* jobs of one partition handed to handle_batch at once */

_Static_assert(KP_RING_MAX < UINT16_MAX, "ring indices are kept in uint16_t");

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t reinit; /* SIGHUP: the supervisor reloaded, our binding unchanged */

/* A job taken from Kafka and not finished yet. */
struct job {
	rd_kafka_message_t *m;
	json_t *root; /* NULL for bad input */
	bool heap;    /* parked jobs live on the heap, the others in worker.scratch */
	struct kpool_header hdrs[MAX_HEADERS]; /* point into m */
	size_t n_hdrs;
	char event_id[KP_EVENT_ID_MAX];
	uint32_t hash;	     /* of event_id, for the in-process lookups */
	int attempts;	     /* handler calls so far */
	enum kp_class class; /* set once it is to be dead-lettered */
	char reason[KPOOL_REASON_MAX];
	int64_t due_ms;		/* when parked: when to try again */
	int64_t retry_after_ms; /* the handler's wish for the next retry (kpool_retry_after) */
};

/* One assigned partition. */
struct part {
	int16_t topic;
	int32_t partition;
	int64_t last_seen;	      /* highest offset taken from Kafka, to drop refetched ones */
	int64_t done_offset;	      /* highest offset finished since the last flush, or -1 */
	struct job *parked;	      /* head job waiting for a retry; the partition is paused */
	rd_kafka_message_t **backlog; /* arrived behind the parked job, in order */
	size_t n_backlog, cap_backlog;
	rd_kafka_message_t *batch[BATCH_MAX]; /* taken, for handle_batch, not started yet */
	size_t n_batch;
};

struct worker {
	const struct kp_conf *conf;
	const struct kp_binding *b;
	struct kp_slot *slot;
	rd_kafka_t *rk;
	struct kp_dlq *dlq;
	struct kp_dedupe *dd;
	struct kp_plugin pl;
	struct kpool_host host;
	struct part *parts;
	size_t n_parts;
	int64_t flush_due;
	int64_t prune_due;
	uint16_t pending[KP_PENDING_SLOTS]; /* ring index + 1 by id hash; 0 = empty */
	int64_t next_dlq_poll;
	unsigned rnd;
	struct job scratch; /* the job in hand, unless it had to be parked */
	struct job *bjobs;  /* BATCH_MAX of them, when the plugin has handle_batch */
	char (*breasons)[KPOOL_REASON_MAX]; /* and their reasons */
	/* Topics are subscribed once they exist; dead-letter topics made to match. */
	bool topic_there[KP_TOPICS_MAX], dlq_there[KP_TOPICS_MAX], topic_told[KP_TOPICS_MAX];
	int n_subscribed;
	int64_t topics_due; /* when to look again; 0 once everything is there */
};

/* The jobs handed to the plugin in the call under way, for kpool_retry_after(). */
static struct {
	const struct kpool_job *kj;
	struct job *const *jobs;
	size_t n;
} in_call;

/*
 * Offered to plugins (kpool_plugin.h): with KPOOL_RETRY, the next attempt at
 * job waits at least ms, within retry_backoff_max.  kpoold exports it; a
 * plugin finds it at load time.
 */
__attribute__((visibility("default"))) void kpool_retry_after(const struct kpool_job *job,
							      int64_t ms)
{
	for (size_t i = 0; i < in_call.n; i++)
		if (&in_call.kj[i] == job && ms > in_call.jobs[i]->retry_after_ms)
			in_call.jobs[i]->retry_after_ms = ms;
}

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	reinit = 1;
}

/*
 * After a reload that kept this binding: a second instance of the plugin is
 * made with the same options, so that it reads its files again; it replaces
 * the first only if its init() succeeds.
 */
static void plugin_reinit(struct worker *w)
{
	struct kp_plugin fresh = w->pl;
	char err[512];

	reinit = 0;
	if (kp_plugin_init(&fresh, &w->host, w->b->opts, w->b->n_opts, err, sizeof(err)) < 0) {
		kp_log(KP_ERROR, "handler %s: reload refused, keeping the running one: %s",
		       w->b->handler, err);
		return;
	}
	if (w->pl.p.init && w->pl.p.fini)
		w->pl.p.fini(w->pl.state);
	w->pl.state = fresh.state;
	kp_log(KP_INFO, "handler %s: reloaded", w->b->handler);
}

static int topic_index(const struct worker *w, const char *name)
{
	for (int i = 0; i < w->b->n_topics; i++)
		if (strcmp(w->b->topics[i], name) == 0)
			return i;
	return -1;
}

static struct part *part_get(struct worker *w, int16_t topic, int32_t partition, bool create)
{
	for (size_t i = 0; i < w->n_parts; i++)
		if (w->parts[i].topic == topic && w->parts[i].partition == partition)
			return &w->parts[i];
	if (!create)
		return NULL;
	struct part *p = realloc(w->parts, (w->n_parts + 1) * sizeof(*p));
	if (p == NULL)
		return NULL;
	w->parts = p;
	p = &w->parts[w->n_parts++];
	memset(p, 0, sizeof(*p));
	p->topic = topic;
	p->partition = partition;
	p->last_seen = -1;
	p->done_offset = -1;
	return p;
}

static void job_free(struct job *j)
{
	if (j == NULL)
		return;
	if (j->root)
		json_decref(j->root);
	if (j->m)
		rd_kafka_message_destroy(j->m);
	if (j->heap)
		free(j);
}

/* Forgets a partition's parked job and backlog; they will be redelivered. */
static void part_drop(struct part *p)
{
	job_free(p->parked);
	p->parked = NULL;
	for (size_t i = 0; i < p->n_backlog; i++)
		rd_kafka_message_destroy(p->backlog[i]);
	free(p->backlog);
	p->backlog = NULL;
	p->n_backlog = p->cap_backlog = 0;
	for (size_t i = 0; i < p->n_batch; i++)
		rd_kafka_message_destroy(p->batch[i]);
	p->n_batch = 0;
}

static void pause_resume(struct worker *w, struct part *p, bool pause)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(l, w->b->topics[p->topic], p->partition);
	if (pause)
		rd_kafka_pause_partitions(w->rk, l);
	else
		rd_kafka_resume_partitions(w->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
}

static uint32_t id_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

/*
 * True when an id (of hash h) finished in this process and is not in SQLite
 * yet; with done_only (a replayed job), only when it was done.
 */
static bool pending_has(const struct worker *w, const char *id, uint32_t h, bool done_only)
{
	for (uint32_t i = h;; i++) {
		uint16_t at = w->pending[i % KP_PENDING_SLOTS];
		const struct kp_done *r;
		if (at == 0)
			return false;
		r = &w->slot->ring[at - 1];
		if (strcmp(r->event_id, id) == 0 && (!done_only || r->outcome == KP_OUT_DONE))
			return true;
	}
}

static void pending_add(struct worker *w, uint32_t ring_index, uint32_t h)
{
	uint32_t i = h;

	while (w->pending[i % KP_PENDING_SLOTS] != 0)
		i++;
	w->pending[i % KP_PENDING_SLOTS] = (uint16_t)(ring_index + 1);
}

/*
 * Writes the finished ids to SQLite and then stores their offsets for commit.
 * If the write fails nothing is stored; the ring keeps the ids for next time.
 */
static void flush(struct worker *w)
{
	struct kp_slot *s = w->slot;
	uint32_t n = s->ring_n;
	rd_kafka_topic_partition_list_t *l;

	if (n == 0)
		return;
	if (w->b->idempotency &&
	    kp_dedupe_record_ring(w->dd, s->ring, n, (const char(*)[KP_TOPIC_MAX])s->topics,
				  s->n_topics) < 0) {
		w->flush_due = kp_mono_ms() + KP_FLUSH_MS;
		return;
	}
	l = rd_kafka_topic_partition_list_new((int)w->n_parts);
	for (size_t i = 0; i < w->n_parts; i++) {
		struct part *p = &w->parts[i];
		int64_t next = p->done_offset + 1;

		/* A batch may finish jobs behind one that waits for a retry: commit no
		 * further than the waiting one, whatever comes after it. */
		if (p->parked && p->parked->m->offset < next)
			next = p->parked->m->offset;
		if (p->done_offset >= 0 && next > 0) {
			rd_kafka_topic_partition_list_add(l, w->b->topics[p->topic], p->partition)
			    ->offset = next;
			p->done_offset = -1;
		}
	}
	if (l->cnt > 0) {
		rd_kafka_resp_err_t e = rd_kafka_offsets_store(w->rk, l);
		if (e)
			kp_log(KP_WARNING, "offsets store: %s", rd_kafka_err2str(e));
	}
	rd_kafka_topic_partition_list_destroy(l);
	__atomic_store_n(&s->ring_n, 0, __ATOMIC_RELEASE);
	memset(w->pending, 0, sizeof(w->pending));
}

/* Marks a job finished: its id into the open transaction and the ring, its offset pending. */
static void finish(struct worker *w, struct part *p, const struct job *j, enum kp_outcome outcome)
{
	struct kp_slot *s = w->slot;
	int64_t now = kp_now_ms();

	if (s->ring_n == KP_RING_MAX)
		flush(w);
	while (s->ring_n == KP_RING_MAX && !stopping) { /* SQLite keeps failing: hold on */
		usleep(KP_FLUSH_MS * 1000);
		flush(w);
	}
	if (s->ring_n == KP_RING_MAX)
		return; /* stopping: the job is redelivered */
	struct kp_done *d = &s->ring[s->ring_n];
	memcpy(d->event_id, j->event_id, sizeof(d->event_id));
	d->offset = j->m->offset;
	d->at_ms = now;
	d->partition = p->partition;
	d->topic = p->topic;
	d->outcome = (int8_t)outcome;
	if (outcome != KP_OUT_SKIP)
		pending_add(w, s->ring_n, j->hash);
	__atomic_store_n(&s->ring_n, s->ring_n + 1, __ATOMIC_RELEASE);
	if (s->ring_n == 1)
		w->flush_due = kp_mono_ms() + KP_FLUSH_MS;
	p->done_offset = j->m->offset;
}

static void job_log(int level, const struct job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_log(int level, const struct job *j, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level < kp_log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kp_log(level, "topic=%s partition=%" PRId32 " offset=%" PRId64 " event=%s: %s",
	       rd_kafka_topic_name(j->m->rkt), j->m->partition, j->m->offset, j->event_id, msg);
}

/* Keeps a job aside until delay_ms have passed, its partition paused meanwhile. */
static void park(struct worker *w, struct part *p, struct job *j, int64_t delay_ms)
{
	if (!j->heap) {
		struct job *h = malloc(sizeof(*h));
		if (h == NULL) { /* not finished, not recorded: redelivered after a restart */
			kp_log(KP_ERROR, "out of memory; dropping a job for redelivery");
			job_free(j);
			return;
		}
		memcpy(h, j, sizeof(*h));
		h->heap = true;
		j = h;
	}
	j->due_ms = kp_mono_ms() + delay_ms;
	p->parked = j;
	pause_resume(w, p, true);
}

/*
 * Sends a job to the dead-letter topic and records it.  If Kafka does not
 * acknowledge the copy, the job is parked and the send tried again later.
 * Returns true when the job is finished (and freed).
 */
static bool dead_letter(struct worker *w, struct part *p, struct job *j)
{
	char err[512];
	struct kp_dlq_info info = {.class = j->class,
				   .reason = j->reason,
				   .event_id = j->event_id,
				   .attempts = j->attempts};

	if (kp_dlq_send(w->dlq, j->m, &info, err, sizeof(err)) < 0) {
		job_log(KP_ERROR, j, "dead-letter failed, will try again: %s", err);
		park(w, p, j, w->b->retry_backoff_ms > 0 ? w->b->retry_backoff_ms : 1000);
		return false;
	}
	job_log(KP_WARNING, j, "dead-lettered class=%s attempts=%d: %s", kp_class_name(j->class),
		j->attempts, j->reason);
	kp_stats_dead(w->slot, j->class);
	finish(w, p, j, KP_OUT_DEAD);
	job_free(j);
	return true;
}

/* Lists a message's headers, as plugins see them; at most MAX_HEADERS. */
static size_t job_headers(const rd_kafka_message_t *m, struct kpool_header *out)
{
	rd_kafka_headers_t *h;
	size_t n = 0;

	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	while (n < MAX_HEADERS &&
	       rd_kafka_header_get_all(h, n, &out[n].name, &out[n].value, &out[n].len) ==
		   RD_KAFKA_RESP_ERR_NO_ERROR)
		n++;
	return n;
}

/*
 * True when the job's event id was handled before.  A job that kpool dlq
 * replay sent (it carries kpool.replayed-from) is one only if it was done:
 * its dead-lettered copy is what the replay means to run again.  The replay
 * header is looked for only when the id was found, which is rare.
 */
static bool duplicate(struct worker *w, const struct job *j)
{
	bool replayed = false;

	if (!pending_has(w, j->event_id, j->hash, false) &&
	    kp_dedupe_seen(w->dd, j->event_id, false) != 1)
		return false;
	for (size_t i = 0; i < j->n_hdrs; i++)
		replayed = replayed || strcmp(j->hdrs[i].name, "kpool.replayed-from") == 0;
	return !replayed || pending_has(w, j->event_id, j->hash, true) ||
	       kp_dedupe_seen(w->dd, j->event_id, true) == 1;
}

/* Queues a message behind a partition's parked job; on no memory it is dropped for redelivery. */
static void backlog_push(struct part *p, rd_kafka_message_t *m)
{
	if (p->n_backlog == p->cap_backlog) {
		size_t cap = p->cap_backlog ? p->cap_backlog * 2 : 64;
		void *nb = realloc(p->backlog, cap * sizeof(*p->backlog));
		if (nb == NULL) {
			kp_log(KP_ERROR, "out of memory");
			rd_kafka_message_destroy(m);
			return;
		}
		p->backlog = nb;
		p->cap_backlog = cap;
	}
	p->backlog[p->n_backlog++] = m;
}

/*
 * Steps 1-3 of the lifecycle for a batch job: checks, event id, dedupe, crash
 * guard.  Returns true when the job is still to be handled; otherwise it was
 * finished (skipped or dead-lettered) or parked.
 */
static bool prepare(struct worker *w, struct part *p, struct job *j, rd_kafka_message_t *m)
{
	char sig[32];
	int bad, crashes;

	j->m = m;
	j->heap = false;
	j->attempts = 0;
	j->class = KP_CLASS_NONE;
	j->reason[0] = '\0';
	bad = kp_job_check(m->payload, m->len, w->b->max_job_bytes, &j->root, j->reason,
			   sizeof(j->reason));
	j->n_hdrs = job_headers(m, j->hdrs);
	kp_job_event_id(w->b, j->hdrs, j->n_hdrs, j->root, w->b->topics[p->topic], m->partition,
			m->offset, j->event_id, sizeof(j->event_id));
	j->hash = id_hash(j->event_id);
	if (w->b->idempotency && duplicate(w, j)) {
		kp_stats_add(w->slot, KP_R_DUPLICATE);
		job_log(KP_DEBUG, j, "duplicate, skipped");
		finish(w, p, j, KP_OUT_SKIP);
		job_free(j);
		return false;
	}
	if (bad < 0) {
		j->class = KP_CLASS_BAD_INPUT;
		dead_letter(w, p, j);
		return false;
	}
	crashes = kp_dedupe_crash_count(w->dd, w->b->topics[p->topic], m->partition, m->offset, sig,
					sizeof(sig));
	if (crashes >= w->b->max_crashes) {
		j->class = KP_CLASS_CRASH;
		snprintf(j->reason, sizeof(j->reason), "%s", sig);
		j->attempts = crashes;
		dead_letter(w, p, j);
		return false;
	}
	return true;
}

/* Acts on a handler's answer for one job; returns true when it is finished (and freed). */
static bool settle(struct worker *w, struct part *p, struct job *j, kpool_status st)
{
	struct kp_slot *s = w->slot;

	j->reason[KPOOL_REASON_MAX - 1] = '\0';
	switch (st) {
	case KPOOL_DONE:
		kp_stats_add(s, KP_R_DONE);
		job_log(KP_DEBUG, j, "done attempt=%d", j->attempts);
		finish(w, p, j, KP_OUT_DONE);
		job_free(j);
		return true;
	case KPOOL_RETRY:
		kp_stats_add(s, KP_R_RETRIED);
		if (j->attempts < w->b->max_attempts) {
			int64_t d =
			    kp_backoff_ms(w->b->retry_backoff_ms, w->b->retry_backoff_max_ms,
					  j->attempts, (uint32_t)rand_r(&w->rnd));
			int64_t asked = j->retry_after_ms < w->b->retry_backoff_max_ms
					    ? j->retry_after_ms
					    : w->b->retry_backoff_max_ms;
			if (asked > d)
				d = asked;
			job_log(KP_NOTICE, j, "%s (retry %d/%d in %" PRId64 "ms%s)",
				j->reason[0] ? j->reason : "retry", j->attempts,
				w->b->max_attempts - 1, d,
				j->retry_after_ms > 0 ? ", as the handler asked" : "");
			park(w, p, j, d);
			return false;
		}
		j->class = KP_CLASS_RETRIES;
		if (!j->reason[0])
			snprintf(j->reason, sizeof(j->reason), "handler asked to retry");
		return dead_letter(w, p, j);
	case KPOOL_FAIL:
	default:
		kp_stats_add(s, KP_R_FAILED);
		j->class = KP_CLASS_FAIL;
		if (!j->reason[0])
			snprintf(j->reason, sizeof(j->reason),
				 st == KPOOL_FAIL ? "handler failed" : "handler returned %d",
				 (int)st);
		return dead_letter(w, p, j);
	}
}

/*
 * Calls the handler for a job (again) and acts on its answer.  Returns true
 * when the job is finished (and freed), false when it is parked.
 */
static bool run(struct worker *w, struct part *p, struct job *j)
{
	struct kp_slot *s = w->slot;
	struct kpool_job kj = {0};
	rd_kafka_timestamp_type_t tstype;
	struct timespec t0, t1;
	kpool_status st;

	if (j->class != KP_CLASS_NONE) /* a dead-letter send that failed before */
		return dead_letter(w, p, j);
	kj.topic = w->b->topics[p->topic];
	kj.partition = j->m->partition;
	kj.offset = j->m->offset;
	kj.timestamp_ms = rd_kafka_message_timestamp(j->m, &tstype);
	kj.key = j->m->key;
	kj.key_len = j->m->key_len;
	kj.value = j->m->payload;
	kj.value_len = j->m->len;
	kj.headers = j->hdrs;
	kj.header_count = j->n_hdrs;
	kj.event_id = j->event_id;
	kj.attempt = ++j->attempts;
	j->reason[0] = '\0';
	j->retry_after_ms = 0;

	/* The job in hand, for the crash guard should the handler kill us. */
	s->hand_topic = p->topic;
	s->hand_partition = p->partition;
	s->hand_offset = j->m->offset;
	memcpy(s->hand_event_id, j->event_id, sizeof(s->hand_event_id));
	__atomic_store_n(&s->in_hand, 1, __ATOMIC_RELEASE);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	in_call.kj = &kj;
	in_call.jobs = &j;
	in_call.n = 1;
	st = w->pl.p.handle(w->pl.state, &kj, j->reason);
	in_call.n = 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	__atomic_store_n(&s->in_hand, 0, __ATOMIC_RELEASE);
	kp_stats_observe(s, (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
	return settle(w, p, j, st);
}

/* Steps 1-4 of the job lifecycle for a message just taken from Kafka. */
static bool start(struct worker *w, struct part *p, rd_kafka_message_t *m)
{
	struct job *j = &w->scratch;

	if (!prepare(w, p, j, m))
		return !p->parked;
	return run(w, p, j);
}

/* Runs a partition's backlog after its parked job finished, until one parks again. */
static void drain(struct worker *w, struct part *p)
{
	size_t i = 0;

	while (i < p->n_backlog && !p->parked && !stopping)
		start(w, p, p->backlog[i++]);
	if (i > 0 && i < p->n_backlog)
		memmove(p->backlog, p->backlog + i, (p->n_backlog - i) * sizeof(*p->backlog));
	p->n_backlog -= i;
	if (!p->parked && p->n_backlog == 0)
		pause_resume(w, p, false);
}

/* Tries parked jobs whose back-off has passed; returns ms until the next one is due. */
static int64_t run_due(struct worker *w)
{
	int64_t now = kp_mono_ms(), next = POLL_MS;

	for (size_t i = 0; i < w->n_parts && !stopping; i++) {
		struct part *p = &w->parts[i];
		struct job *j = p->parked;

		if (j == NULL)
			continue;
		if (j->due_ms > now) {
			if (j->due_ms - now < next)
				next = j->due_ms - now;
			continue;
		}
		p->parked = NULL;
		if (run(w, p, j))
			drain(w, p);
	}
	return next;
}

/*
 * Hands a partition's taken messages to the plugin's handle_batch in one call.
 * The first job counts as the one in hand should the batch kill the worker.
 * After a job that must wait for a retry, the partition is paused: jobs behind
 * it that also want a retry go to its backlog, to be run one by one after it.
 */
static bool batch_has(struct job *const *ready, size_t n, const struct job *j)
{
	for (size_t i = 0; i < n; i++)
		if (ready[i]->hash == j->hash && strcmp(ready[i]->event_id, j->event_id) == 0)
			return true;
	return false;
}

static void run_batch(struct worker *w, struct part *p)
{
	struct kp_slot *s = w->slot;
	const struct kpool_job *kjs[BATCH_MAX];
	struct kpool_job kj[BATCH_MAX];
	struct job *ready[BATCH_MAX];
	kpool_status st[BATCH_MAX];
	rd_kafka_timestamp_type_t tstype;
	struct timespec t0, t1;
	size_t n = 0, i;

again:
	n = 0;
	for (i = 0; i < p->n_batch && !p->parked; i++) {
		struct job *j = &w->bjobs[n];
		if (!prepare(w, p, j, p->batch[i]))
			continue;
		if (w->b->idempotency && batch_has(ready, n, j)) {
			/* The same event twice in one batch: the second waits for the
			 * first to finish, then is a duplicate (or not, if it failed). */
			j->m = NULL;
			job_free(j);
			break;
		}
		ready[n++] = j;
	}
	size_t rest = i;
	if (p->parked) { /* a dead-letter send failed and parked the partition */
		for (; i < p->n_batch; i++)
			backlog_push(p, p->batch[i]);
		rest = p->n_batch;
	}
	if (n == 0) {
		p->n_batch = 0;
		return;
	}
	for (i = 0; i < n; i++) {
		struct job *j = ready[i];
		kj[i] = (struct kpool_job){
		    .topic = w->b->topics[p->topic],
		    .partition = j->m->partition,
		    .offset = j->m->offset,
		    .timestamp_ms = rd_kafka_message_timestamp(j->m, &tstype),
		    .key = j->m->key,
		    .key_len = j->m->key_len,
		    .value = j->m->payload,
		    .value_len = j->m->len,
		    .headers = j->hdrs,
		    .header_count = j->n_hdrs,
		    .event_id = j->event_id,
		    .attempt = ++j->attempts,
		};
		kjs[i] = &kj[i];
		st[i] = KPOOL_FAIL; /* what a plugin that sets no status meant */
		w->breasons[i][0] = '\0';
		j->retry_after_ms = 0;
	}
	s->hand_topic = p->topic;
	s->hand_partition = p->partition;
	s->hand_offset = ready[0]->m->offset;
	memcpy(s->hand_event_id, ready[0]->event_id, sizeof(s->hand_event_id));
	__atomic_store_n(&s->in_hand, 1, __ATOMIC_RELEASE);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	in_call.kj = kj;
	in_call.jobs = ready;
	in_call.n = n;
	w->pl.p.handle_batch(w->pl.state, kjs, n, st, w->breasons);
	in_call.n = 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	__atomic_store_n(&s->in_hand, 0, __ATOMIC_RELEASE);
	int64_t us =
	    ((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000) / (int64_t)n;
	for (i = 0; i < n; i++) {
		struct job *j = ready[i];

		kp_stats_observe(s, us);
		memcpy(j->reason, w->breasons[i], KPOOL_REASON_MAX);
		if (st[i] == KPOOL_RETRY && p->parked) {
			rd_kafka_message_t *m = j->m;

			kp_stats_add(s, KP_R_RETRIED);
			j->m = NULL;
			job_free(j);
			backlog_push(p, m);
			continue;
		}
		settle(w, p, j, st[i]);
	}
	/* What a duplicate held back: hand it over after these. */
	if (rest < p->n_batch) {
		if (p->parked) {
			for (i = rest; i < p->n_batch; i++)
				backlog_push(p, p->batch[i]);
		} else {
			memmove(p->batch, p->batch + rest, (p->n_batch - rest) * sizeof(*p->batch));
			p->n_batch -= rest;
			goto again;
		}
	}
	p->n_batch = 0;
}

/* Runs what each partition has taken, for plugins with handle_batch. */
static void run_batches(struct worker *w)
{
	for (size_t i = 0; i < w->n_parts; i++)
		if (w->parts[i].n_batch > 0)
			run_batch(w, &w->parts[i]);
}

static void on_message(struct worker *w, rd_kafka_message_t *m)
{
	int t;
	struct part *p;

	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			kp_log(KP_WARNING, "consume: %s", rd_kafka_message_errstr(m));
		rd_kafka_message_destroy(m);
		return;
	}
	t = topic_index(w, rd_kafka_topic_name(m->rkt));
	p = t < 0 ? NULL : part_get(w, (int16_t)t, m->partition, true);
	if (p == NULL || m->offset <= p->last_seen) { /* not ours, or fetched again after a pause */
		rd_kafka_message_destroy(m);
		return;
	}
	p->last_seen = m->offset;
	if (p->parked)
		backlog_push(p, m);
	else if (w->bjobs)
		p->batch[p->n_batch++] = m; /* run_batches() takes it from here */
	else
		start(w, p, m);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *l, void *opaque)
{
	struct worker *w = opaque;
	bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *e = NULL;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < l->cnt; i++) {
			int t = topic_index(w, l->elems[i].topic);
			struct part *p =
			    t < 0 ? NULL : part_get(w, (int16_t)t, l->elems[i].partition, true);
			if (p)
				p->last_seen = -1;
		}
		kp_log(KP_INFO, "assigned partitions=%d", l->cnt);
		if (cooperative)
			e = rd_kafka_incremental_assign(rk, l);
		else
			rd_kafka_assign(rk, l);
	} else {
		/* Record and commit what is finished before the partitions move on. */
		flush(w);
		rd_kafka_commit(rk, NULL, 0);
		for (int i = 0; i < l->cnt; i++) {
			int t = topic_index(w, l->elems[i].topic);
			struct part *p =
			    t < 0 ? NULL : part_get(w, (int16_t)t, l->elems[i].partition, false);
			if (p)
				part_drop(p);
		}
		kp_log(KP_INFO, "revoked partitions=%d", l->cnt);
		if (cooperative)
			e = rd_kafka_incremental_unassign(rk, l);
		else
			rd_kafka_assign(rk, NULL);
	}
	if (e) {
		kp_log(KP_ERROR, "rebalance: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

static void set_kafka(struct kp_slot *s, int state, const char *why)
{
	if (why)
		snprintf(s->kafka_error, sizeof(s->kafka_error), "%s", why);
	__atomic_store_n(&s->kafka_state, state, __ATOMIC_RELEASE);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct worker *w = opaque;

	kp_log(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? KP_ERROR : KP_WARNING, "kafka: %s: %s",
	       rd_kafka_err2name(err), reason);
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && w->slot->kafka_state == KP_KAFKA_DOWN) {
		/* Keep the cause (which broker, what failed) and say that it is all of them. */
		char why[KP_ERROR_MAX];
		if (strncmp(w->slot->kafka_error, "all brokers down", 16) != 0) {
			snprintf(why, sizeof(why), "all brokers down: %s", w->slot->kafka_error);
			set_kafka(w->slot, KP_KAFKA_DOWN, why);
		}
	} else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
		   err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__RESOLVE ||
		   err == RD_KAFKA_RESP_ERR__TRANSPORT || rd_kafka_fatal_error(rk, NULL, 0)) {
		set_kafka(w->slot, KP_KAFKA_DOWN, reason);
	}
}

/* librdkafka's statistics, once a second: broker reachability and consumer lag. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	struct worker *w = opaque;
	struct kp_slot *s = w->slot;
	json_t *root = json_loadb(json, len, 0, NULL), *brokers, *topics, *v;
	const char *name;
	int up = 0;

	if (root == NULL)
		return 0;
	brokers = json_object_get(root, "brokers");
	json_object_foreach (brokers, name, v) {
		if (json_integer_value(json_object_get(v, "nodeid")) >= 0 &&
		    strcmp(json_string_value(json_object_get(v, "state")) ?: "", "UP") == 0)
			up++;
	}
	if (up)
		set_kafka(s, KP_KAFKA_UP, "");
	else if (s->kafka_state != KP_KAFKA_DOWN)
		set_kafka(s, KP_KAFKA_DOWN, "no broker reachable");
	int n = 0;
	topics = json_object_get(root, "topics");
	json_object_foreach (topics, name, v) {
		int t = topic_index(w, name);
		const char *pname;
		json_t *pv;

		if (t < 0)
			continue;
		json_object_foreach (json_object_get(v, "partitions"), pname, pv) {
			json_int_t part = json_integer_value(json_object_get(pv, "partition"));
			json_int_t hi = json_integer_value(json_object_get(pv, "hi_offset"));
			json_int_t lo = json_integer_value(json_object_get(pv, "lo_offset"));
			json_int_t co = json_integer_value(json_object_get(pv, "committed_offset"));
			struct part *pp;
			int64_t qlo, qhi;

			if (part < 0 || n == KP_LAG_MAX || hi < 0 || (co < 0 && lo < 0) ||
			    !json_is_true(json_object_get(pv, "desired")))
				continue;
			/* A paused partition fetches nothing, so its high watermark in
			 * the statistics stands still: ask for it (briefly). */
			pp = part_get(w, (int16_t)t, (int32_t)part, false);
			if (pp && pp->parked && s->kafka_state == KP_KAFKA_UP &&
			    rd_kafka_query_watermark_offsets(w->rk, name, (int32_t)part, &qlo, &qhi,
							     100) == RD_KAFKA_RESP_ERR_NO_ERROR)
				hi = qhi;
			/* From the committed offset, as kpool status counts it:
			 * librdkafka's consumer_lag starts at what was fetched, which
			 * includes jobs waiting behind a parked one. */
			json_int_t lag = hi - (co >= 0 ? co : lo);
			if (lag < 0)
				lag = 0;
			s->lag[n].topic = (int16_t)t;
			s->lag[n].partition = (int32_t)part;
			s->lag[n].lag = lag;
			n++;
		}
	}
	s->n_lag = n;
	json_decref(root);
	return 0;
}

/*
 * Before consuming: write the ids a dead predecessor in this slot finished
 * but did not commit, and count the job it died on in the crashes table.  The
 * predecessor may have had other topics (a reload): the slot's topic table,
 * still its own here, names them.  Then the slot's topics become ours.
 */
static int recover(struct worker *w)
{
	struct kp_slot *s = w->slot;
	const char(*topics)[KP_TOPIC_MAX] = (const char(*)[KP_TOPIC_MAX])s->topics;
	char sig[32];

	if (s->ring_n > 0 && w->b->idempotency) {
		if (kp_dedupe_record_ring(w->dd, s->ring, s->ring_n, topics, s->n_topics) < 0)
			return -1;
		kp_log(KP_NOTICE, "recovered %u finished jobs of the previous process", s->ring_n);
	}
	s->ring_n = 0;
	if (s->died_signal && s->in_hand && s->hand_topic < s->n_topics) {
		kp_signame(s->died_signal, sig, sizeof(sig));
		kp_log(KP_WARNING,
		       "topic=%s partition=%" PRId32 " offset=%" PRId64
		       " event=%s: killed a worker (%s)",
		       topics[s->hand_topic], s->hand_partition, s->hand_offset, s->hand_event_id,
		       sig);
		if (kp_dedupe_crash_add(w->dd, topics[s->hand_topic], s->hand_partition,
					s->hand_offset, s->hand_event_id, sig) < 0)
			return -1;
	}
	s->in_hand = 0;
	s->died_signal = 0;
	for (int i = 0; i < w->b->n_topics; i++)
		snprintf(s->topics[i], sizeof(s->topics[i]), "%s", w->b->topics[i]);
	s->n_topics = w->b->n_topics;
	return 0;
}

static rd_kafka_t *consumer_new(struct worker *w, const char *bootstrap, char *err, size_t len)
{
	static const char *const defaults[][2] = {
	    {"auto.offset.reset", "earliest"},
	    {"queued.max.messages.kbytes", "4096"}, /* bounds prefetch, and so RSS */
	    /* as often as ids are written, so another host repeats little of a dead one's */
	    {"auto.commit.interval.ms", "200"},
	    {"session.timeout.ms", "10000"},
	    {"heartbeat.interval.ms", "1000"},
	    {"fetch.wait.max.ms", "100"}, /* jobs are waited for: fetch again soon */
	};
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	rd_kafka_t *rk;
	char client[KP_NAME_MAX + 32];

	snprintf(client, sizeof(client), "kpool-%s-%d", w->b->name, w->slot->index);
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		rd_kafka_conf_set(rc, defaults[i][0], defaults[i][1], NULL, 0);
	if (kp_conf_kafka_apply(w->conf, rc, err, len) < 0 ||
	    rd_kafka_conf_set(rc, "bootstrap.servers", bootstrap, err, len) ||
	    rd_kafka_conf_set(rc, "group.id", w->b->group, err, len) ||
	    rd_kafka_conf_set(rc, "client.id", client, err, len) ||
	    /* what record-then-commit rests on: */
	    rd_kafka_conf_set(rc, "enable.auto.offset.store", "false", err, len) ||
	    rd_kafka_conf_set(rc, "enable.auto.commit", "true", err, len) ||
	    rd_kafka_conf_set(rc, "statistics.interval.ms", "1000", err, len)) {
		rd_kafka_conf_destroy(rc);
		return NULL;
	}
	rd_kafka_conf_set_opaque(rc, w);
	rd_kafka_conf_set_rebalance_cb(rc, on_rebalance);
	rd_kafka_conf_set_error_cb(rc, on_error);
	rd_kafka_conf_set_log_cb(rc, kp_rdkafka_log);
	rd_kafka_conf_set_stats_cb(rc, on_stats);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, err, len);
	if (rk == NULL) {
		rd_kafka_conf_destroy(rc);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk); /* rc is now owned by rk */
	return rk;
}

static int subscribe(struct worker *w, char *err, size_t len)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(w->b->n_topics);
	rd_kafka_resp_err_t e;

	for (int i = 0; i < w->b->n_topics; i++)
		if (w->topic_there[i])
			rd_kafka_topic_partition_list_add(l, w->b->topics[i],
							  RD_KAFKA_PARTITION_UA);
	e = l->cnt ? rd_kafka_subscribe(w->rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
	w->n_subscribed = l->cnt;
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		snprintf(err, len, "subscribe: %s", rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

/*
 * Subscribes to the binding's topics that exist, and makes each one's
 * dead-letter topic, when absent, with as many partitions.  librdkafka 2.0
 * never notices a subscribed topic that is created later (librdkafka #1201),
 * so a topic the applications have not published to yet is looked for again
 * every TOPICS_CHECK_MS and subscribed when it appears.
 */
static int watch_topics(struct worker *w, char *err, size_t len)
{
	char why[512], dlq[KP_TOPIC_MAX + 8];
	bool changed = false, waiting = false;

	for (int i = 0; i < w->b->n_topics && !stopping; i++) {
		const char *t = w->b->topics[i];
		int n = 0, final;

		if (!w->topic_there[i] || !w->dlq_there[i]) {
			n = kp_topic_partitions(w->rk, t, TOPICS_ASK_MS, why, sizeof(why));
			if (n < 0) { /* Kafka unreachable: on_error says so; ask later */
				waiting = true;
				break;
			}
		}
		if (!w->topic_there[i] && n == 0) {
			if (!w->topic_told[i])
				kp_log(KP_WARNING,
				       "topic=%s does not exist yet; consuming it once it does", t);
			w->topic_told[i] = true;
			waiting = true;
			continue;
		}
		if (!w->topic_there[i]) {
			if (w->topic_told[i])
				kp_log(KP_NOTICE, "topic=%s appeared with %d partitions", t, n);
			w->topic_there[i] = changed = true;
		}
		if (w->dlq_there[i])
			continue;
		kp_dlq_topic(w->b, t, dlq, sizeof(dlq));
		int have = kp_topic_partitions(w->rk, dlq, TOPICS_ASK_MS, why, sizeof(why));
		if (have > 0 || kp_topic_create(w->rk, dlq, n, TOPICS_CREATE_MS, &final, why,
						sizeof(why)) == 0) {
			if (have <= 0)
				kp_log(KP_NOTICE,
				       "created the dead-letter topic %s with %d partitions", dlq,
				       n);
			w->dlq_there[i] = true;
		} else if (final) {
			kp_log(KP_WARNING, "%s; create it with %d partitions", why, n);
			w->dlq_there[i] = true; /* a first dead letter may still create it */
		} else {
			kp_log(KP_INFO, "%s; trying again", why);
			waiting = true;
		}
	}
	w->topics_due = waiting ? kp_mono_ms() + TOPICS_CHECK_MS : 0;
	return changed ? subscribe(w, err, len) : 0;
}

/*
 * The worker process: never returns; exits 0 after a graceful stop, or
 * KP_EXIT_CONFIG when it cannot start (the supervisor throttles it).
 */
int kp_worker_run(const struct kp_conf *conf, const struct kp_binding *b, struct kp_slot *slot)
{
	struct worker w = {.conf = conf, .b = b, .slot = slot};
	char err[512], path[PATH_MAX], *bootstrap = NULL;
	struct sigaction sa = {.sa_handler = on_stop};
	int rc = KP_EXIT_CONFIG;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	struct sigaction hup = {.sa_handler = on_hup, .sa_flags = SA_RESTART};
	sigemptyset(&hup.sa_mask);
	sigaction(SIGHUP, &hup, NULL);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM); /* a supervisor gone is a graceful stop */
	kp_log_who("worker=%s#%d", b->name, slot->index);
	kp_proctitle("kpoold: worker %s#%d", b->name, slot->index);
	w.rnd = (unsigned)getpid() ^ (unsigned)kp_now_ms();
	w.host = (struct kpool_host){.worker = b->name,
				     .index = slot->index,
				     .state_dir = conf->state_dir,
				     .log = kp_plugin_log};

	if (kp_plugin_path(conf, b->handler, path, sizeof(path)) < 0 ||
	    kp_plugin_open(&w.pl, path, err, sizeof(err)) < 0 ||
	    kp_plugin_init(&w.pl, &w.host, b->opts, b->n_opts, err, sizeof(err)) < 0) {
		kp_log(KP_ERROR, "handler %s: %s", b->handler, err);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s.db", conf->state_dir, b->name);
	w.dd = kp_dedupe_open(path, err, sizeof(err));
	if (w.dd == NULL) {
		kp_log(KP_ERROR, "%s", err);
		goto out;
	}
	if (recover(&w) < 0)
		goto out;
	if (w.pl.p.handle_batch) {
		w.bjobs = calloc(BATCH_MAX, sizeof(*w.bjobs));
		w.breasons = calloc(BATCH_MAX, sizeof(*w.breasons));
		if (w.bjobs == NULL || w.breasons == NULL) {
			kp_log(KP_ERROR, "out of memory");
			goto out;
		}
	}
	bootstrap = kp_conf_bootstrap(conf, err, sizeof(err));
	if (bootstrap == NULL ||
	    (w.dlq = kp_dlq_open(conf, b, bootstrap, err, sizeof(err))) == NULL ||
	    (w.rk = consumer_new(&w, bootstrap, err, sizeof(err))) == NULL) {
		kp_log(KP_ERROR, "kafka: %s", err);
		goto out;
	}
	/* The embedded broker made every topic of the conf and its dead-letter topic. */
	for (int i = 0; i < b->n_topics; i++)
		w.topic_there[i] = w.dlq_there[i] = conf->embedded;
	if (conf->embedded ? subscribe(&w, err, sizeof(err)) : watch_topics(&w, err, sizeof(err))) {
		kp_log(KP_ERROR, "kafka: %s", err);
		goto out;
	}
	slot->started_ms = (uint64_t)kp_now_ms();
	__atomic_store_n(&slot->state, KP_SLOT_RUNNING, __ATOMIC_RELEASE);
	kp_log(KP_INFO, "started handler=%s topics=%s group=%s pid=%d", b->handler, b->topic_list,
	       b->group, (int)getpid());
	w.prune_due = kp_mono_ms() + KP_PRUNE_EVERY_MS;

	while (!stopping) {
		int64_t timeout = run_due(&w), now;
		rd_kafka_message_t *m;

		if (slot->ring_n > 0 && w.flush_due - kp_mono_ms() < timeout)
			timeout = w.flush_due - kp_mono_ms();
		m = rd_kafka_consumer_poll(w.rk, timeout > 0 ? (int)timeout : 0);
		if (m) {
			on_message(&w, m);
			if (slot->kafka_state != KP_KAFKA_UP)
				set_kafka(slot, KP_KAFKA_UP, "");
		}
		if (w.bjobs && m) { /* take what is already there, then hand it over by partition */
			for (int i = 1; i < BATCH_MAX && (m = rd_kafka_consumer_poll(w.rk, 0)); i++)
				on_message(&w, m);
			run_batches(&w);
		}
		if (reinit)
			plugin_reinit(&w);
		now = kp_mono_ms();
		if (w.topics_due && now >= w.topics_due && watch_topics(&w, err, sizeof(err)) < 0)
			kp_log(KP_ERROR, "kafka: %s", err);
		if (slot->ring_n >= KP_FLUSH_JOBS || (slot->ring_n > 0 && now >= w.flush_due))
			flush(&w);
		if (now >= w.prune_due && b->idempotency) {
			int n = kp_dedupe_prune(w.dd, kp_now_ms() - b->idempotency_ttl_ms);
			if (n > 0)
				kp_log(KP_INFO,
				       "pruned %d event ids older than the idempotency_ttl", n);
			w.prune_due = now + KP_PRUNE_EVERY_MS;
		}
		if (now >= w.next_dlq_poll) { /* the producer's events; sends wait on their own */
			kp_dlq_poll(w.dlq);
			w.next_dlq_poll = now + POLL_MS;
		}
	}
	__atomic_store_n(&slot->state, KP_SLOT_STOPPING, __ATOMIC_RELEASE);
	kp_log(KP_INFO, "stopping");
	flush(&w);
	rc = 0;
out:
	/* Closing commits, and waits for the broker to answer: a worker whose
	 * supervisor is gone (nobody to kill it after shutdown_timeout) and whose
	 * broker is gone too would wait for ever.  It ends itself a little after
	 * shutdown_timeout instead; what it did not commit is redelivered and
	 * found in the processed table. */
	signal(SIGALRM, SIG_DFL);
	alarm((unsigned)(w.conf->shutdown_timeout_ms / 1000) + 2);
	if (w.rk) {
		rd_kafka_consumer_close(w.rk); /* revokes (flush, commit) and leaves the group */
		rd_kafka_destroy(w.rk);
	}
	for (size_t i = 0; i < w.n_parts; i++)
		part_drop(&w.parts[i]);
	free(w.parts);
	free(w.bjobs);
	free(w.breasons);
	kp_dlq_close(w.dlq);
	kp_dedupe_close(w.dd);
	kp_plugin_close(&w.pl);
	free(bootstrap);
	if (rc == 0)
		kp_log(KP_INFO, "stopped");
	return rc;
}
