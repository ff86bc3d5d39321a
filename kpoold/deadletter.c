/*
 * deadletter.c - the dead-letter record (the original key, value and headers
 * plus kpool's own headers) and its produce, acknowledged by every in-sync
 * replica (acks=all, idempotent producer).  Sending does not wait: the
 * outcome comes back through the done callback, from kp_dlq_poll() in the
 * worker's loop, and only then may the job be recorded as finished.
 */
#include "config.h"

#include <inttypes.h>
#include <stdbool.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kpoold.h"

#define DLQ_TIMEOUT  "60000" /* message.timeout.ms: then the worker tries again later */
#define DLQ_CLOSE_MS 500     /* what kp_dlq_close() waits, after the worker did */

struct kp_dlq {
	rd_kafka_t *rk;
	const struct kp_binding *b;
	kp_dlq_done_fn *done;
	void *ctx;
	struct sending *sending; /* the copies on their way */
	char handler[KP_NAME_MAX];
	char host[256];
	char pid[16];
};

/* What of the original record a dead-letter copy leaves out. */
enum omit { OMIT_NONE, OMIT_VALUE, OMIT_ALL };

/* One copy on its way; the job's message stays with the caller until done. */
struct sending {
	struct kp_dlq *q;
	struct sending *next, **prev; /* in q->sending */
	void *opaque;
	const rd_kafka_message_t *m;
	enum kp_class class;
	int attempts;
	enum omit omit;
	char topic[KP_TOPIC_MAX + 8];
	char event_id[KP_EVENT_ID_MAX];
	char reason[KPOOL_REASON_MAX];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
static void finished(struct sending *s, rd_kafka_resp_err_t e);

/*
 * Creates the dead-letter producer of a binding, whose outcomes go to
 * done(ctx, ...); NULL with err on failure.
 */
struct kp_dlq *kp_dlq_open(const struct kp_conf *conf, const struct kp_binding *b,
			   const char *bootstrap, kp_dlq_done_fn *done, void *ctx, char *err,
			   size_t len)
{
	struct kp_dlq *q = calloc(1, sizeof(*q));
	rd_kafka_conf_t *rc = rd_kafka_conf_new();

	if (q == NULL)
		goto fail;
	q->b = b;
	q->done = done;
	q->ctx = ctx;
	snprintf(q->handler, sizeof(q->handler), "%s", b->handler);
	if (gethostname(q->host, sizeof(q->host)) < 0)
		snprintf(q->host, sizeof(q->host), "unknown");
	snprintf(q->pid, sizeof(q->pid), "%d", (int)getpid());
	if (kp_conf_kafka_apply(conf, rc, true, err, len) < 0 ||
	    rd_kafka_conf_set(rc, "bootstrap.servers", bootstrap, err, len) ||
	    rd_kafka_conf_set(rc, "acks", "all", err, len) ||
	    rd_kafka_conf_set(rc, "enable.idempotence", "true", err, len) ||
	    rd_kafka_conf_set(rc, "message.timeout.ms", DLQ_TIMEOUT, err, len) ||
	    rd_kafka_conf_set(rc, "linger.ms", "0", err, len))
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(rc, on_delivery);
	rd_kafka_conf_set_log_cb(rc, kp_rdkafka_log);
	q->rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, len);
	if (q->rk == NULL)
		goto fail;
	return q; /* rc is now owned by q->rk */
fail:
	if (rc && (q == NULL || q->rk == NULL))
		rd_kafka_conf_destroy(rc);
	free(q);
	return NULL;
}

/*
 * Waits briefly for the copies in flight, then gives up on the others:
 * every copy sent gets its done call, acknowledged or not, before the
 * producer is freed.
 */
void kp_dlq_close(struct kp_dlq *q)
{
	if (q == NULL)
		return;
	rd_kafka_flush(q->rk, DLQ_CLOSE_MS);
	rd_kafka_purge(q->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	for (int i = 0; i < 10 && q->sending; i++) /* the purged copies' reports */
		rd_kafka_poll(q->rk, 10);
	rd_kafka_destroy(q->rk);
	while (q->sending) /* never reported: not acknowledged either */
		finished(q->sending, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT);
	free(q);
}

/* Serves delivery reports (and so done calls), waiting up to ms for one. */
void kp_dlq_poll(struct kp_dlq *q, int ms)
{
	rd_kafka_poll(q->rk, ms);
}

/* Now, in UTC, to the millisecond: "2025-12-01T08:00:00.250Z" (kpool.failed-at). */
static void rfc3339_now(char *buf, size_t len)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	kp_rfc3339((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, buf, len);
}

/* Whether Kafka (or librdkafka before it) refused a record for its size. */
static bool too_large(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
	       e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
	       e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE;
}

/*
 * The headers of m's dead-letter copy: m's own (unless omit is OMIT_ALL)
 * and kpool's, the last round's replaced.  A copy without the value says so
 * (kpool.omitted, kpool.original.value-bytes, and in kpool.error).
 */
static rd_kafka_headers_t *dlq_headers(const struct sending *s)
{
	struct kp_dlq *q = s->q;
	const rd_kafka_message_t *m = s->m;
	const char *topic = s->topic;
	enum omit omit = s->omit;
	const char *src = rd_kafka_topic_name(m->rkt);
	char part[16], off[24], ts[24], attempts[16], failed_at[40], bytes[24];
	char reason[KP_ERROR_MAX + KP_TOPIC_MAX * 2 + 160];
	rd_kafka_headers_t *orig = NULL, *h;
	rd_kafka_timestamp_type_t tstype;
	int64_t tsv = rd_kafka_message_timestamp(m, &tstype);

	snprintf(part, sizeof(part), "%" PRId32, m->partition);
	snprintf(off, sizeof(off), "%" PRId64, m->offset);
	snprintf(ts, sizeof(ts), "%" PRId64, tsv);
	snprintf(attempts, sizeof(attempts), "%d", s->attempts);
	snprintf(bytes, sizeof(bytes), "%zu", m->len);
	rfc3339_now(failed_at, sizeof(failed_at));
	if (omit == OMIT_NONE)
		snprintf(reason, sizeof(reason), "%s", s->reason);
	else
		snprintf(reason, sizeof(reason),
			 "%s (this copy is without the job's %s: too large for %s; the job "
			 "stays at %s/%s/%s until that topic's retention ends)",
			 s->reason, omit == OMIT_VALUE ? "value" : "value, key and headers", topic,
			 src, part, off);

	h = omit != OMIT_ALL && rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR
		? rd_kafka_headers_copy(orig)
		: rd_kafka_headers_new(16);
	const char *v[KP_DLH_MAX] = {
	    [KP_DLH_TOPIC] = src,
	    [KP_DLH_PARTITION] = part,
	    [KP_DLH_OFFSET] = off,
	    [KP_DLH_TIMESTAMP] = ts,
	    [KP_DLH_EVENT_ID] = s->event_id,
	    [KP_DLH_WORKER] = q->b->name,
	    [KP_DLH_HANDLER] = q->handler,
	    [KP_DLH_CLASS] = kp_class_name(s->class),
	    [KP_DLH_ERROR] = reason,
	    [KP_DLH_ATTEMPTS] = attempts,
	    [KP_DLH_FAILED_AT] = failed_at,
	    [KP_DLH_HOST] = q->host,
	    [KP_DLH_PID] = q->pid,
	    [KP_DLH_OMITTED] = omit == OMIT_NONE    ? NULL
			       : omit == OMIT_VALUE ? "value"
						    : "value,key,headers",
	    [KP_DLH_VALUE_BYTES] = omit == OMIT_NONE ? NULL : bytes,
	};
	kp_dlh_write(h, v);
	return h;
}

/* Produces s's copy, at its omit level. */
static rd_kafka_resp_err_t produce(struct sending *s)
{
	const rd_kafka_message_t *m = s->m;
	rd_kafka_headers_t *h = dlq_headers(s);
	const void *key = s->omit == OMIT_ALL ? NULL : m->key;
	size_t key_len = s->omit == OMIT_ALL ? 0 : m->key_len;
	void *value = s->omit == OMIT_NONE ? m->payload : NULL;
	size_t len = s->omit == OMIT_NONE ? m->len : 0;
	rd_kafka_resp_err_t e;

	e = rd_kafka_producev(s->q->rk, RD_KAFKA_V_TOPIC(s->topic),
			      RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
			      RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, len),
			      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
			      RD_KAFKA_V_OPAQUE(s), RD_KAFKA_V_END);
	if (e)
		rd_kafka_headers_destroy(h); /* not taken over on failure */
	return e;
}

/* Whether s is sent again smaller, after Kafka refused it with e for its size. */
static bool smaller(struct sending *s, rd_kafka_resp_err_t *e)
{
	const rd_kafka_message_t *m = s->m;

	if (!too_large(*e) || s->omit == OMIT_ALL)
		return false;
	if (s->omit == OMIT_NONE)
		kp_log(KP_ERROR,
		       "%s: the dead-letter copy of %s/%" PRId32 "/%" PRId64
		       " (%zu bytes) is too large for %s (%s): sending it without its value",
		       s->q->b->name, rd_kafka_topic_name(m->rkt), m->partition, m->offset, m->len,
		       s->topic, rd_kafka_err2str(*e));
	else
		kp_log(KP_ERROR, "%s: still too large for %s: sending it without key and headers",
		       s->q->b->name, s->topic);
	s->omit++;
	*e = produce(s);
	return *e == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Unlinks s and tells the binding its copy's outcome (e: 0 when acknowledged); frees s. */
static void finished(struct sending *s, rd_kafka_resp_err_t e)
{
	char err[KP_TOPIC_MAX + 128];

	snprintf(err, sizeof(err), "produce to %s: %s", s->topic, rd_kafka_err2str(e));
	*s->prev = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->q->done(s->q->ctx, s->opaque, e, e ? err : NULL);
	free(s);
}

/*
 * librdkafka's word on a copy: acknowledged, refused for its size (sent
 * again smaller), or failed.
 */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct sending *s = m->_private;
	rd_kafka_resp_err_t e = m->err;

	(void)rk;
	(void)opaque;
	if (s == NULL || smaller(s, &e))
		return;
	finished(s, e);
}

/*
 * Sends the dead-letter copy of m (left with the caller, who keeps it until
 * done).  A copy refused for its size is sent again without the job's
 * value, then also without its key and headers: a job too large to copy
 * must not stop its partition, and the copy points at where the job still
 * is.  Returns 0 when the copy is on its way: done(ctx, opaque, ...) is
 * called once Kafka acknowledged it (err 0) or did not (and then nothing
 * may be recorded: the caller tries again later, or the job is
 * redelivered).  -1 with err when it could not be sent at all; done is not
 * called then.
 */
int kp_dlq_send(struct kp_dlq *q, const rd_kafka_message_t *m, const struct kp_dlq_info *info,
		void *opaque, char *err, size_t len)
{
	struct sending *s = calloc(1, sizeof(*s));
	rd_kafka_resp_err_t e;

	if (s == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	*s = (struct sending){.q = q,
			      .opaque = opaque,
			      .m = m,
			      .class = info->class,
			      .attempts = info->attempts,
			      .omit = OMIT_NONE};
	kp_dlq_topic(q->b, rd_kafka_topic_name(m->rkt), s->topic, sizeof(s->topic));
	snprintf(s->event_id, sizeof(s->event_id), "%s", info->event_id);
	snprintf(s->reason, sizeof(s->reason), "%s", info->reason);
	e = produce(s);
	if (e && !smaller(s, &e)) { /* librdkafka knows the size limit too */
		snprintf(err, len, "produce to %s: %s", s->topic, rd_kafka_err2str(e));
		free(s);
		return -1;
	}
	s->next = q->sending;
	s->prev = &q->sending;
	if (q->sending)
		q->sending->prev = &s->next;
	q->sending = s;
	return 0;
}
