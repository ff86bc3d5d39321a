/*
 * jobpath.c - one job's path through a worker, the lifecycle of DESIGN.md:
 * check (bad input), event id, claim in the ledger (a duplicate is skipped,
 * an id in a sibling's hands waited for), crash guard, the handler call,
 * and settling its answer: done, a retry with the partition paused, or the
 * dead-letter topic.  A job that must wait (a retry, a sibling's claim) is
 * parked at its stage and resumed from there; jobs behind it on its
 * partition wait in order.  A dead-letter copy is not waited for: the
 * partition goes on while it is on its way, and the job is finished when
 * Kafka acknowledges it (or sent again later if Kafka did not take it).
 *
 * Finishing a job records its outcome in the ledger and moves its
 * partition's finished mark; consumer.c stores that offset for commit once
 * the ledger has made the outcome durable.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

#define CLAIM_WAIT_MS  2    /* a sibling holds the id: look again after this */
#define FULL_WAIT_US   200  /* no room in the ledger: look again after this ... */
#define FULL_SPINS     250  /* ... this many times (50 ms), then park the job */
#define FULL_WAIT_MS   100  /* for this long */
#define STORE_WAIT_MS  100  /* the store could not be read */
#define SETTLE_WAIT_US 1000 /* the ledger's ring is full: look again after this */
#define SENDING_MAX    64   /* a partition's dead-letter copies on their way: then it pauses */

/* The jobs handed to the plugin in the call under way, for kpool_retry_after(). */
static struct {
	const struct kpool_job *kj;
	struct job *const *jobs;
	size_t n;
} in_call;

/*
 * Offered to plugins as host->retry_after (kpool_plugin.h): with
 * KPOOL_RETRY, the next attempt at job waits at least ms, within
 * retry_backoff_max.  A job not in the call under way is ignored.
 */
void kp_job_retry_after(const struct kpool_job *job, int64_t ms)
{
	for (size_t i = 0; i < in_call.n; i++)
		if (&in_call.kj[i] == job && ms > in_call.jobs[i]->retry_after_ms)
			in_call.jobs[i]->retry_after_ms = ms;
}

/*
 * The same, for plugins built against ABI 1's first header, which declared
 * it a weak global: kpoold keeps exporting it (Makefile.am) so that they
 * find it at load time.
 */
__attribute__((visibility("default"))) void kpool_retry_after(const struct kpool_job *job,
							      int64_t ms)
{
	kp_job_retry_after(job, ms);
}

/*
 * Pauses or resumes fetching partition p as its state asks: paused while a
 * job is parked or waits behind one, while too many of its jobs' dead-letter
 * copies are on their way, while the shared ledger catches up, or while the
 * operator pauses the binding (once the partition has fetched since its
 * assignment: pausing one before may leave it paused for good, #5591).
 */
void kp_job_pause(struct worker *w, struct part *p)
{
	bool pause = p->parked || p->n_backlog > 0 || p->n_sending >= SENDING_MAX || p->catchup ||
		     (w->held && p->fetched);
	rd_kafka_topic_partition_list_t *l;

	if (pause == p->paused)
		return;
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, w->b->topics[p->topic], p->partition);
	if (pause)
		rd_kafka_pause_partitions(w->rk, l);
	else
		rd_kafka_resume_partitions(w->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	p->paused = pause;
}

/* Frees a job and the message it holds; a job on the stack only lets go of its message. */
static void job_free(struct job *j)
{
	if (j == NULL)
		return;
	if (j->m)
		rd_kafka_message_destroy(j->m);
	if (j->heap)
		free(j);
}

/* Logs a line about job j: its topic, partition, offset and event id, then the message. */
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

/* Whether the job holds a claim in the ledger that is not settled. */
static bool holds_claim(const struct worker *w, const struct job *j)
{
	return w->b->idempotency && j->stage != JOB_CLAIM;
}

/*
 * Monotonic milliseconds, precise: a parked job is due within a millisecond,
 * not a coarse clock's tick (a tick late per call would take a fifth off a
 * rate of 50/s).  Read once per turn of the loop and per job parked, not per
 * job.
 */
static int64_t precise_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Counts the time this process's jobs wait for the binding's rate into its
 * slot, up to now, then delta more or fewer jobs wait.  A wait while the
 * operator pauses the binding is the pause's, not counted.
 */
static void rate_account(struct worker *w, int delta)
{
	int64_t now = kp_mono_ms();

	if (w->rate_waiting > 0 && !w->held)
		__atomic_add_fetch(&w->slot->rate_waited_us,
				   (uint64_t)(now - w->rate_mark_ms) * 1000, __ATOMIC_RELAXED);
	w->rate_mark_ms = now;
	w->rate_waiting += delta;
	__atomic_store_n(&w->slot->rate_waiting, w->rate_waiting > 0, __ATOMIC_RELAXED);
}

/* A job that waited for the rate waits no more (it runs, expires or leaves). */
static void rate_done(struct worker *w, struct job *j)
{
	if (j->rate_wait) {
		j->rate_wait = false;
		rate_account(w, -1);
	}
}

/* Lets go of a job left unrecorded, for redelivery: its claim (if held), then the job. */
static void forget(struct worker *w, struct job *j)
{
	rate_done(w, j);
	if (holds_claim(w, j))
		kp_ledger_release(w->ledger, &j->id);
	job_free(j);
}

/*
 * Forgets a partition's parked job, backlog and taken batch, when the
 * partition is revoked: they will be redelivered to its next owner, which
 * must be able to claim the parked job's id.
 */
void kp_job_drop(struct worker *w, struct part *p)
{
	if (p->parked)
		forget(w, p->parked);
	p->parked = NULL;
	for (size_t i = 0; i < p->n_backlog; i++)
		rd_kafka_message_destroy(p->backlog[i]);
	free(p->backlog);
	p->backlog = NULL;
	p->n_backlog = p->cap_backlog = 0;
	for (size_t i = 0; i < p->n_batch; i++)
		rd_kafka_message_destroy(p->batch[i]);
	p->n_batch = 0;
	/* Copies still on their way belong to the assignment that ends here. */
	p->gen++;
	p->n_sending = 0;
	p->catchup = 0;
	p->fetched = false;
}

/*
 * The job, moved to the heap to outlive the call that took it; NULL when
 * memory ran out (then it is dropped, unrecorded, for redelivery).
 */
static struct job *on_heap(struct worker *w, struct job *j)
{
	struct job *h;

	if (j->heap)
		return j;
	if ((h = malloc(sizeof(*h))) == NULL) {
		kp_log(KP_ERROR, "out of memory; dropping a job for redelivery");
		forget(w, j);
		return NULL;
	}
	memcpy(h, j, sizeof(*h));
	h->heap = true;
	return h;
}

/* Keeps a job aside until delay_ms have passed, its partition paused meanwhile. */
static void park(struct worker *w, struct part *p, struct job *j, int64_t delay_ms)
{
	if ((j = on_heap(w, j)) == NULL)
		return;
	j->due_ms = precise_ms() + delay_ms;
	p->parked = j;
	kp_job_pause(w, p);
}

/*
 * Marks a job finished: its outcome into the ledger (not for a skipped
 * duplicate), its offset into the partition's finished mark (p NULL: the
 * partition is no longer ours, only the ledger learns it).  A full ledger
 * ring (its process is behind) is waited for; while stopping the job is left
 * unfinished instead, to be redelivered.  Frees the job.
 */
static void finish(struct worker *w, struct part *p, struct job *j, enum kp_outcome outcome)
{
	uint64_t seq = 0;

	if (w->b->idempotency && outcome != KP_OUT_SKIP) {
		while (kp_ledger_settle(w->ledger, &j->id, outcome == KP_OUT_DEAD, &seq) < 0) {
			if (kp_stopping) {
				kp_ledger_release(w->ledger, &j->id);
				job_free(j);
				return;
			}
			usleep(SETTLE_WAIT_US);
		}
	}
	if (p && j->m->offset + 1 > p->fin_next)
		p->fin_next = j->m->offset + 1;
	if (p && seq > p->fin_seq)
		p->fin_seq = seq;
	job_free(j);
}

/* After Kafka did not take a job's dead-letter copy: it is sent again after the backoff. */
static void resend_later(struct worker *w, struct job *j, const char *err)
{
	job_log(KP_ERROR, j, "dead-letter failed, will try again: %s", err);
	j->in_flight = false;
	j->resend_ms = kp_mono_ms() + (w->b->retry_backoff_ms > 0 ? w->b->retry_backoff_ms : 1000);
}

/* Hands a job's dead-letter copy to the producer; one it cannot take is tried again later. */
static void send_copy(struct worker *w, struct job *j)
{
	char err[512];
	struct kp_dlq_info info = {.class = j->class,
				   .reason = j->reason,
				   .event_id = j->event_id,
				   .attempts = j->attempts};

	if (kp_dlq_send(w->dlq, j->m, &info, j, err, sizeof(err)) < 0) {
		resend_later(w, j, err);
		return;
	}
	j->in_flight = true;
	w->n_in_flight++;
}

/*
 * Sends a job to the dead-letter topic.  The loop does not wait for Kafka's
 * acknowledgement: the job joins w->sending, the partition goes on (its
 * offset is not stored past the job meanwhile), and kp_job_dead_lettered()
 * records it once acknowledged.  Returns true: the partition need not wait.
 */
static bool dead_letter(struct worker *w, struct part *p, struct job *j)
{
	j->stage = JOB_SENDING;
	if ((j = on_heap(w, j)) == NULL)
		return true;
	j->topic = p->topic;
	j->gen = p->gen;
	j->next = w->sending;
	j->prev = &w->sending;
	if (w->sending)
		w->sending->prev = &j->next;
	w->sending = j;
	p->n_sending++;
	send_copy(w, j);
	kp_job_pause(w, p);
	return true;
}

/* Takes j out of w->sending (and its partition's count, when it is still ours). */
static void unlink_sending(struct worker *w, struct part *p, struct job *j)
{
	*j->prev = j->next;
	if (j->next)
		j->next->prev = j->prev;
	if (p)
		p->n_sending--;
}

/* The job's partition, if the assignment it was taken in is still on. */
static struct part *still_ours(struct worker *w, const struct job *j)
{
	struct part *p = kp_part_get(w, j->topic, j->m->partition, false);

	return p && p->gen == j->gen ? p : NULL;
}

/*
 * The outcome of a dead-letter copy (kp_dlq_done_fn, from kp_dlq_poll() in
 * the loop).  Acknowledged: the job is recorded as dead-lettered and
 * finished.  Not: it is sent again later, unless its partition is no longer
 * ours or the worker is stopping; then it is left unrecorded, for
 * redelivery.
 */
void kp_job_dead_lettered(void *ctx, void *opaque, int err, const char *errstr)
{
	struct worker *w = ctx;
	struct job *j = opaque;
	struct part *p = still_ours(w, j);

	j->in_flight = false;
	w->n_in_flight--;
	if (err && p && !kp_stopping) {
		resend_later(w, j, errstr);
		return;
	}
	unlink_sending(w, p, j);
	if (err) {
		job_log(KP_WARNING, j, "dead-letter not acknowledged (%s); left for redelivery",
			errstr);
		forget(w, j);
	} else {
		job_log(KP_WARNING, j, "dead-lettered class=%s attempts=%d: %s",
			kp_class_name(j->class), j->attempts, j->reason);
		kp_stats_dead(w->slot, j->class);
		finish(w, p, j, KP_OUT_DEAD);
	}
	if (p)
		kp_job_pause(w, p);
}

/* Sends again the copies whose wait is over; returns ms until the next is due (at most max). */
static int64_t resend_due(struct worker *w, int64_t now, int64_t max)
{
	struct job *j, *next;

	for (j = w->sending; j; j = next) {
		next = j->next;
		if (j->in_flight)
			continue;
		if (j->resend_ms > now) {
			if (j->resend_ms - now < max)
				max = j->resend_ms - now;
			continue;
		}
		if (still_ours(w, j)) {
			send_copy(w, j);
		} else { /* its partition moved on: whoever has it now takes the job */
			unlink_sending(w, NULL, j);
			forget(w, j);
		}
	}
	return max;
}

/* The lowest offset of p's jobs whose copies are on their way; INT64_MAX if none. */
int64_t kp_job_min_sending(const struct worker *w, const struct part *p)
{
	int64_t min = INT64_MAX;

	if (p->n_sending == 0)
		return min;
	for (const struct job *j = w->sending; j; j = j->next)
		if (j->topic == p->topic && j->m->partition == p->partition && j->gen == p->gen &&
		    j->m->offset < min)
			min = j->m->offset;
	return min;
}

/* At the end: the copies still waiting to be sent again are left for redelivery. */
void kp_job_abandon(struct worker *w)
{
	while (w->sending) {
		struct job *j = w->sending;
		unlink_sending(w, NULL, j);
		forget(w, j);
	}
}

/* Lists a message's headers, as plugins see them (at most MAX_HEADERS), noting a replay. */
static size_t job_headers(const rd_kafka_message_t *m, struct kpool_header *out, bool *replay)
{
	rd_kafka_headers_t *h;
	size_t n = 0;

	*replay = false;
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	while (n < MAX_HEADERS &&
	       rd_kafka_header_get_all(h, n, &out[n].name, &out[n].value, &out[n].len) ==
		   RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (out[n].name[0] == 'k' && strcmp(out[n].name, KP_REPLAYED_FROM) == 0)
			*replay = true;
		n++;
	}
	return n;
}

/*
 * Claims the job's id (step 2 of the lifecycle) and applies the crash guard
 * (step 3).  Returns true when the handler is to be called; otherwise the
 * job was finished (a duplicate, or dead-lettered) or parked to claim again.
 */
static bool claim(struct worker *w, struct part *p, struct job *j)
{
	char sig[32];
	int crashes, signal, spins = 0;
	enum kp_claim c;

	/* No room: the ledger process is behind.  Wait here, briefly (a parked
	 * job pauses its partition, which fetches again when resumed); park only
	 * when it lasts (the ledger process is down, or we are stopping). */
	while ((c = kp_ledger_claim(w->ledger, &j->id, j->replay, w->b->idempotency, &crashes,
				    &signal)) == KP_CLAIM_FULL &&
	       spins++ < FULL_SPINS && !kp_stopping)
		usleep(FULL_WAIT_US);
	switch (c) {
	case KP_CLAIM_DUP:
		kp_stats_add(w->slot, KP_R_DUPLICATE);
		job_log(KP_DEBUG, j, "duplicate, skipped");
		finish(w, p, j, KP_OUT_SKIP);
		return false;
	case KP_CLAIM_BUSY:
		job_log(KP_DEBUG, j, "in another worker's hands; waiting for its outcome");
		park(w, p, j, CLAIM_WAIT_MS);
		return false;
	case KP_CLAIM_FULL:
		park(w, p, j, FULL_WAIT_MS);
		return false;
	case KP_CLAIM_ERROR:
		park(w, p, j, STORE_WAIT_MS);
		return false;
	case KP_CLAIM_NEW:
		break;
	}
	j->stage = JOB_HANDLE;
	if (j->bad) {
		j->class = KP_CLASS_BAD_INPUT;
		dead_letter(w, p, j);
		return false;
	}
	if (crashes >= w->b->max_crashes) {
		j->class = KP_CLASS_CRASH;
		/* Signal 0: the worker exited (not killed) with the job in hand. */
		snprintf(j->reason, sizeof(j->reason), "%s",
			 signal ? kp_signame(signal, sig, sizeof(sig)) : "exit");
		j->attempts = crashes;
		dead_letter(w, p, j);
		return false;
	}
	return true;
}

/*
 * The job's deadline: the earlier of its own (f: the scan's finds for
 * KP_DEADLINE_KEYS) and the binding's max_age from its Kafka timestamp.
 * False, with the reason, when the job names a deadline that is no time:
 * it is bad input.
 */
static bool deadline(const struct worker *w, struct job *j, const struct kp_found *f)
{
	rd_kafka_timestamp_type_t tstype;
	int64_t ms = 0, ts;
	int which = 0, rc = kp_job_deadline(f, &ms, &which);

	j->deadline_ms = 0;
	if (rc < 0) {
		snprintf(j->reason, sizeof(j->reason),
			 "%s is not a time (an ISO 8601 time, or epoch milliseconds)",
			 kp_deadline_names[which]);
		return false;
	}
	if (rc > 0) {
		j->deadline_ms = ms > 0 ? ms : 1; /* 0 means none */
		j->deadline_from = (int8_t)which;
	}
	if (w->b->max_age_ms > 0 && (ts = rd_kafka_message_timestamp(j->m, &tstype)) > 0 &&
	    (j->deadline_ms == 0 || ts + w->b->max_age_ms < j->deadline_ms)) {
		j->deadline_ms = ts + w->b->max_age_ms;
		j->deadline_from = -1;
	}
	return true;
}

/*
 * Step 1 for a message just taken: the checks and the event id; then the
 * claim.  Returns true when the job is to be handled.
 */
static bool prepare(struct worker *w, struct part *p, struct job *j, rd_kafka_message_t *m)
{
	struct kp_found found[KP_IDKEYS_MAX + KP_DEADLINE_N];
	const struct kp_binding *b = w->b;
	bool json_ok;

	j->m = m;
	j->heap = false;
	j->stage = JOB_CLAIM;
	j->attempts = 0;
	j->class = KP_CLASS_NONE;
	j->reason[0] = '\0';
	j->rate_wait = false;
	j->deadline_ms = 0;
	json_ok =
	    kp_job_check(m->payload, m->len, b->max_job_bytes, b->idkeys,
			 b->n_idkeys + KP_DEADLINE_N, found, j->reason, sizeof(j->reason)) == 0;
	j->n_hdrs = job_headers(m, j->hdrs, &j->replay);
	j->bad = !json_ok || !deadline(w, j, found + b->n_idkeys);
	if (j->replay) /* replaying is the operator's decision: whatever the deadline */
		j->deadline_ms = 0;
	/* A job without an id is known by its place, in keys of their own. */
	if (kp_job_event_id(b, j->hdrs, j->n_hdrs, json_ok ? found : NULL, b->topics[p->topic],
			    m->partition, m->offset, j->event_id, sizeof(j->event_id)) == 1)
		kp_ledger_place_id(j->event_id, &j->id);
	else
		kp_ledger_id(j->event_id, &j->id);
	return claim(w, p, j);
}

/* A duration as conf writes it: 15m, 2h, 90s, 1500ms. */
static const char *dur_text(int64_t ms, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
			return buf;
		}
	snprintf(buf, len, "%" PRId64 "ms", ms);
	return buf;
}

/*
 * A job past its deadline (when is what came after it): dead-lettered with
 * class expired, or, with expired = drop, counted and finished.  Returns
 * true, as dead_letter() does.
 */
static bool expire(struct worker *w, struct part *p, struct job *j, const char *when)
{
	char at[40], from[64], d[32];

	rate_done(w, j);
	kp_rfc3339(j->deadline_ms, at, sizeof(at));
	if (j->deadline_from >= 0)
		snprintf(from, sizeof(from), "%s", kp_deadline_names[j->deadline_from]);
	else
		snprintf(from, sizeof(from), "max_age = %s from its Kafka timestamp",
			 dur_text(w->b->max_age_ms, d, sizeof(d)));
	snprintf(j->reason, sizeof(j->reason), "expired: its deadline %s (%s) %s", at, from, when);
	kp_stats_add(w->slot, KP_R_EXPIRED);
	if (w->b->expired_drop) {
		job_log(KP_NOTICE, j, "dropped (expired = drop): %s", j->reason);
		finish(w, p, j, KP_OUT_DEAD);
		return true;
	}
	j->class = KP_CLASS_EXPIRED;
	return dead_letter(w, p, j);
}

/* Whether job j is past its deadline now. */
static bool past(const struct job *j)
{
	return j->deadline_ms && kp_now_ms() >= j->deadline_ms;
}

/* Parks j until the binding's rate may have room for it, in wait ms. */
static void rate_park(struct worker *w, struct part *p, struct job *j, int64_t wait)
{
	if (!j->rate_wait) {
		j->rate_wait = true;
		rate_account(w, +1);
	}
	park(w, p, j, wait);
}

/*
 * Takes up to want calls from the binding's rate for partition p's jobs;
 * with none there, parks j (the first of them) until there is one: its
 * partition pauses and the job is not an attempt.  Returns how many calls
 * were taken.
 */
static int rate_take(struct worker *w, struct part *p, struct job *j, int want)
{
	int64_t wait;
	int got =
	    kp_rate_take(w->rate, w->b, want, w->slot->rate_parts, w->slot->rate_total, &wait);

	if (got > 0) {
		w->rate_grants++;
		rate_done(w, j);
		return got;
	}
	rate_park(w, p, j, wait);
	return 0;
}

/*
 * Acts on a handler's answer for one job; returns true when it is finished
 * (and freed) or handed to the dead-letter producer.
 */
static bool settle(struct worker *w, struct part *p, struct job *j, kpool_status st)
{
	struct kp_slot *s = w->slot;

	j->reason[KPOOL_REASON_MAX - 1] = '\0';
	switch (st) {
	case KPOOL_DONE:
		kp_stats_add(s, KP_R_DONE);
		job_log(KP_DEBUG, j, "done attempt=%d", j->attempts);
		finish(w, p, j, KP_OUT_DONE);
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
			if (j->deadline_ms && kp_now_ms() + d >= j->deadline_ms) {
				char when[96];
				snprintf(when, sizeof(when),
					 "comes before its next attempt (%d of %d, in %" PRId64
					 " ms): retries stop",
					 j->attempts + 1, w->b->max_attempts, d);
				return expire(w, p, j, when);
			}
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

/* What a plugin sees of a job, for its next attempt. */
static void plugin_job(const struct worker *w, const struct part *p, struct job *j,
		       struct kpool_job *kj)
{
	rd_kafka_timestamp_type_t tstype;

	*kj = (struct kpool_job){
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
	j->reason[0] = '\0';
	j->retry_after_ms = 0;
}

/*
 * Calls the handler for jobs[0..n) of partition p: handle_batch when n > 1
 * or the plugin has only that, else handle.  jobs[0] is the job in hand
 * should the call kill the process.  The time is counted per job.
 */
static void call_handler(struct worker *w, struct part *p, struct job *const *jobs,
			 struct kpool_job *kj, size_t n, kpool_status *st)
{
	struct kp_slot *s = w->slot;
	struct timespec t0, t1;
	int64_t us;

	s->hand_topic = p->topic;
	s->hand_partition = p->partition;
	s->hand_offset = jobs[0]->m->offset;
	s->hand_id = jobs[0]->id;
	memcpy(s->hand_event_id, jobs[0]->event_id, sizeof(s->hand_event_id));
	__atomic_store_n(&s->in_hand, 1, __ATOMIC_RELEASE);
	in_call.kj = kj;
	in_call.jobs = jobs;
	in_call.n = n;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (w->pl.p.handle_batch && (n > 1 || w->pl.p.handle == NULL)) {
		const struct kpool_job *kjs[BATCH_MAX];
		for (size_t i = 0; i < n; i++) {
			kjs[i] = &kj[i];
			st[i] = KPOOL_FAIL; /* what a plugin that sets no status meant */
			w->breasons[i][0] = '\0';
		}
		w->pl.p.handle_batch(w->pl.state, kjs, n, st, w->breasons);
		for (size_t i = 0; i < n; i++)
			memcpy(jobs[i]->reason, w->breasons[i], KPOOL_REASON_MAX);
	} else {
		st[0] = w->pl.p.handle(w->pl.state, kj, jobs[0]->reason);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	in_call.n = 0;
	__atomic_store_n(&s->in_hand, 0, __ATOMIC_RELEASE);
	us = ((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000) / (int64_t)n;
	for (size_t i = 0; i < n; i++)
		kp_stats_observe(s, us);
}

/* Calls the handler for one claimed job and acts on its answer; true when it is finished. */
static bool handle_one(struct worker *w, struct part *p, struct job *j)
{
	struct kpool_job kj;
	kpool_status st;

	if (past(j))
		return expire(w, p, j, "passed before its turn");
	if (w->rate && rate_take(w, p, j, 1) == 0)
		return false; /* parked until the rate has room */
	plugin_job(w, p, j, &kj);
	call_handler(w, p, &j, &kj, 1, &st);
	return settle(w, p, j, st);
}

/*
 * Takes a parked job on from its stage: claims it, or calls the handler.
 * Returns true when it is finished (and freed) or handed to the dead-letter
 * producer, false when it is parked again.
 */
static bool step(struct worker *w, struct part *p, struct job *j)
{
	if (j->stage == JOB_CLAIM && !claim(w, p, j))
		return p->parked == NULL; /* finished, or parked again */
	return handle_one(w, p, j);
}

/* The lifecycle for a message just taken from Kafka (the one-job path). */
void kp_job_start(struct worker *w, struct part *p, rd_kafka_message_t *m)
{
	struct job *j = &w->scratch;

	if (prepare(w, p, j, m))
		handle_one(w, p, j);
}

/*
 * Runs a partition's backlog after its parked job finished, until one parks
 * again; nothing while the operator pauses the binding.
 */
static void drain(struct worker *w, struct part *p)
{
	size_t i = 0;

	while (i < p->n_backlog && !p->parked && !kp_stopping && !w->held)
		kp_job_start(w, p, p->backlog[i++]);
	if (i > 0 && i < p->n_backlog)
		memmove(p->backlog, p->backlog + i, (p->n_backlog - i) * sizeof(*p->backlog));
	p->n_backlog -= i;
	kp_job_pause(w, p);
}

/*
 * Runs what partition p kept while it waited for the ledger to catch up, or
 * while the binding was paused; then it fetches again unless something else
 * holds it.
 */
void kp_job_resume(struct worker *w, struct part *p)
{
	if (p->parked)
		kp_job_pause(w, p);
	else
		drain(w, p);
}

/*
 * Resumes parked jobs whose wait is over (none while the binding is paused:
 * they wait on, parked); returns ms until the next one is due.  Jobs that
 * wait for the binding's rate take turns: the partition after the last one
 * the rate let go is looked at first.
 */
int64_t kp_job_run_due(struct worker *w)
{
	int64_t now = precise_ms(), next = 100;

	if (w->sending)
		next = resend_due(w, now, next);
	if (w->rate_waiting)
		rate_account(w, 0);

	for (size_t k = 0; k < w->n_parts && !kp_stopping && !w->held; k++) {
		size_t i = (w->rr + k) % w->n_parts;
		struct part *p = &w->parts[i];
		struct job *j = p->parked;
		uint64_t grants = w->rate_grants;

		if (j == NULL)
			continue;
		if (j->due_ms > now) {
			if (j->due_ms - now < next)
				next = j->due_ms - now;
			continue;
		}
		p->parked = NULL;
		if (step(w, p, j))
			drain(w, p);
		if (p->parked && p->parked->due_ms - now < next)
			next = p->parked->due_ms - now;
		if (w->rate_grants != grants)
			w->rr = i + 1;
	}
	return next < 0 ? 0 : next;
}

/* Queues a message behind a partition's parked job; on no memory it is dropped for redelivery. */
void kp_job_backlog(struct part *p, rd_kafka_message_t *m)
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

/* Puts a job that was parked back in the backlog, to start again from its message. */
static void requeue(struct worker *w, struct part *p, struct job *j)
{
	rd_kafka_message_t *m = j->m;

	if (holds_claim(w, j))
		kp_ledger_release(w->ledger, &j->id);
	j->m = NULL;
	job_free(j);
	kp_job_backlog(p, m);
}

/*
 * Hands a partition's taken messages to the plugin in one call.  Jobs that
 * are duplicates or bad input are finished on the way; the first that must
 * wait (its id in a sibling's hands, or earlier in this batch) ends the
 * batch.  After the call, the first job that asks for a retry parks the
 * partition, and every job that must wait follows it in offset order.
 */
void kp_job_run_batch(struct worker *w, struct part *p)
{
	struct kpool_job kj[BATCH_MAX];
	struct job *ready[BATCH_MAX], *held = NULL;
	kpool_status st[BATCH_MAX];
	size_t n = 0, i, rest, run;

	for (i = 0; i < p->n_batch && held == NULL; i++) {
		struct job *j = &w->bjobs[n];
		if (prepare(w, p, j, p->batch[i]))
			ready[n++] = j;
		else if (p->parked) { /* waits; the jobs before it go first */
			held = p->parked;
			p->parked = NULL;
		}
	}
	rest = i;
	/* The expired go now, not to the handler; the rate may let only some run. */
	for (i = 0, run = 0; i < n; i++)
		if (past(ready[i]))
			expire(w, p, ready[i], "passed before its turn");
		else
			ready[run++] = ready[i];
	n = run;
	if (w->rate && n > 0)
		run = (size_t)rate_take(w, p, ready[0], (int)n); /* none: ready[0] parked */
	if (run > 0) {
		for (i = 0; i < run; i++)
			plugin_job(w, p, ready[i], &kj[i]);
		call_handler(w, p, ready, kj, run, st);
	}
	for (i = 0; i < run; i++) {
		if (st[i] == KPOOL_RETRY && p->parked) { /* behind one that waits: wait too */
			kp_stats_add(w->slot, KP_R_RETRIED);
			requeue(w, p, ready[i]);
			continue;
		}
		settle(w, p, ready[i], st[i]);
	}
	/* Those the rate did not let run: the first waits for it (parked, unless a
	 * job before it waits already), the others behind it. */
	for (i = run ? run : 1; i < n; i++) {
		if (i == run && p->parked == NULL)
			rate_park(w, p, ready[i], 1); /* handle_one() asks the rate again */
		else
			requeue(w, p, ready[i]);
	}
	if (held && p->parked)
		requeue(w, p, held);
	else if (held)
		p->parked = held;
	for (i = rest; i < p->n_batch; i++)
		kp_job_backlog(p, p->batch[i]);
	p->n_batch = 0;
}
