/*
 * consumer.c - a worker process: the consumer loop, librdkafka's callbacks
 * (rebalance, errors, statistics), the binding's topics and the offsets.
 * Each message goes down the job path (jobpath.c); this file stores a
 * partition's offset for commit once everything before it is finished and
 * its outcomes are durable in the ledger (ledger.c), so a commit never runs
 * ahead of what the ledger knows.
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

#include "worker.h"

#define STORE_EVERY_MS 20   /* how often offsets the ledger made safe are stored */
#define REVOKE_WAIT_MS 2000 /* how long a revoke waits for the ledger */
#define DLQ_DRAIN_MS   5000 /* how long a stop waits for dead-letter copies on their way */
#define CLOSE_MAX_MS   5000 /* how long a stop waits for the group to take the last commit */

volatile sig_atomic_t kp_stopping;
static volatile sig_atomic_t reinit; /* SIGHUP: the supervisor reloaded, our binding unchanged */

static unsigned stop_alarm_s; /* shutdown_timeout + 2 s */

/*
 * A stop: the loop finishes what it holds and commits.  Should anything
 * block it meanwhile (a broker that no longer answers a request made in a
 * callback), the worker ends itself a little after shutdown_timeout, as it
 * does when closing: SIGALRM's default action.
 */
static void on_stop(int sig)
{
	(void)sig;
	if (!kp_stopping)
		alarm(stop_alarm_s);
	kp_stopping = 1;
}

/* SIGHUP: the plugin reads its files again, between jobs. */
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
	if (kp_plugin_init(&fresh, &w->host, w->conf, w->b, err, sizeof(err)) < 0) {
		kp_log(KP_ERROR, "handler %s: reload refused, keeping the running one: %s",
		       w->b->handler, err);
		return;
	}
	if (w->pl.p.init && w->pl.p.fini)
		w->pl.p.fini(w->pl.state);
	w->pl.state = fresh.state;
	kp_log(KP_INFO, "handler %s: reloaded", w->b->handler);
}

/* The index of topic name among the binding's, -1 if it is not one of them. */
static int topic_index(const struct worker *w, const char *name)
{
	for (int i = 0; i < w->b->n_topics; i++)
		if (strcmp(w->b->topics[i], name) == 0)
			return i;
	return -1;
}

/* The state of an assigned partition; made when create, else NULL if unknown. */
struct part *kp_part_get(struct worker *w, int16_t topic, int32_t partition, bool create)
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
	p->fin_next = -1;
	return p;
}

/*
 * Stores for commit the offsets whose jobs are finished and durable.  A
 * partition's finished mark moves on with every job, and the ledger's tail
 * follows it a moment later; so the mark is taken as a candidate, and
 * stored once the tail has passed the ring position it needed.  With
 * idempotency off there is nothing to wait for.  Never past a parked job,
 * nor past one whose dead-letter copy Kafka has not acknowledged yet.
 */
static void store_offsets(struct worker *w)
{
	uint64_t durable = w->b->idempotency ? kp_ledger_durable(w->ledger) : UINT64_MAX;
	rd_kafka_topic_partition_list_t *l = NULL;

	for (size_t i = 0; i < w->n_parts; i++) {
		struct part *p = &w->parts[i];
		int64_t next = p->fin_next, sending = kp_job_min_sending(w, p);

		if (p->cand_next > 0 && p->cand_seq <= durable) {
			if (l == NULL)
				l = rd_kafka_topic_partition_list_new((int)w->n_parts);
			rd_kafka_topic_partition_list_add(l, w->b->topics[p->topic], p->partition)
			    ->offset = p->cand_next;
			p->stored = p->cand_next;
			p->cand_next = 0;
		}
		if (p->parked && p->parked->m->offset < next)
			next = p->parked->m->offset;
		if (sending < next)
			next = sending;
		if (p->cand_next == 0 && next > p->stored) {
			p->cand_next = next;
			p->cand_seq = p->fin_seq;
		}
	}
	if (l) {
		rd_kafka_resp_err_t e = rd_kafka_offsets_store(w->rk, l);
		if (e)
			kp_log(KP_WARNING, "offsets store: %s", rd_kafka_err2str(e));
		rd_kafka_topic_partition_list_destroy(l);
	}
}

/*
 * Before partitions go (a revoke, a stop): waits, briefly, for the ledger to
 * make every finished job durable, and stores their offsets.  What is still
 * not durable after REVOKE_WAIT_MS (the ledger process is down) is not
 * stored, and is redelivered to whoever takes the partitions.
 */
static void store_final(struct worker *w)
{
	uint64_t need = 0;
	int64_t until = kp_mono_ms() + REVOKE_WAIT_MS;

	for (size_t i = 0; i < w->n_parts; i++)
		if (w->parts[i].fin_seq > need)
			need = w->parts[i].fin_seq;
	while (w->b->idempotency && kp_ledger_durable(w->ledger) < need && kp_mono_ms() < until)
		usleep(1000);
	store_offsets(w); /* stores the candidates ... */
	store_offsets(w); /* ... and then what is finished now */
}

/* Lets the partitions that waited for the shared ledger go, once it has caught up. */
static void catchup_check(struct worker *w)
{
	int n = 0;

	if (!kp_ledger_caught_up(w->ledger, w->catchup))
		return;
	for (size_t i = 0; i < w->n_parts; i++) {
		struct part *p = &w->parts[i];
		if (p->catchup && p->catchup <= w->catchup) {
			p->catchup = 0;
			kp_job_resume(w, p);
			n++;
		}
	}
	kp_log(KP_INFO, "ledger caught up: partitions=%d waited_ms=%lld", n,
	       (long long)(kp_mono_ms() - w->catchup_ms));
	w->catchup = 0;
}

/*
 * The operator paused or resumed the binding (the supervisor sets
 * slot->pause_want; the slot's paused says the worker did as asked).
 * Paused, nothing more is handled: what was fetched and not handled waits
 * in its partition's backlog, a parked job stays parked, and each partition
 * that fetched since its assignment is paused now; the others are paused
 * as they fetch (on_message), never right after their assignment (#5591).
 * The loop goes on polling, so the worker stays in its group.  Resumed,
 * each partition runs its backlog and fetches again, unless a parked job,
 * dead-letter copies on their way or the shared ledger still hold it.
 */
static void hold_check(struct worker *w)
{
	bool want = __atomic_load_n(&w->slot->pause_want, __ATOMIC_ACQUIRE) != 0;
	int n = 0;

	if (want == w->held)
		return;
	w->held = want;
	for (size_t i = 0; i < w->n_parts; i++) {
		struct part *p = &w->parts[i];

		if (!p->assigned) /* revoked: another worker has it now */
			continue;
		if (want) {
			kp_job_pause(w, p);
			n += p->paused;
		} else if (!p->catchup) { /* catchup_check() lets those go */
			kp_job_resume(w, p);
		}
	}
	__atomic_store_n(&w->slot->paused, want, __ATOMIC_RELEASE);
	if (want)
		kp_log(KP_NOTICE, "paused: the binding is paused; partitions paused=%d", n);
	else
		kp_log(KP_NOTICE, "resumed: the binding is no longer paused");
}

/* Runs what each partition has taken, for plugins with handle_batch. */
static void run_batches(struct worker *w)
{
	for (size_t i = 0; i < w->n_parts; i++)
		if (w->parts[i].n_batch > 0)
			kp_job_run_batch(w, &w->parts[i]);
}

/*
 * A fetched message: to its partition's backlog while it waits (a parked
 * job, the shared ledger catching up, the binding paused), its batch, or its
 * job path; not ours (or fetched again), it is destroyed.
 */
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
	p = t < 0 ? NULL : kp_part_get(w, (int16_t)t, m->partition, true);
	if (p == NULL || m->offset <= p->last_seen) { /* not ours, or fetched again after a pause */
		rd_kafka_message_destroy(m);
		return;
	}
	p->last_seen = m->offset;
	p->fetched = true;
	if (p->parked || p->catchup || w->held) { /* fetched before the pause took */
		bool was = p->paused;

		kp_job_backlog(p, m);
		/* A partition waiting for the shared ledger, or assigned while the
		 * binding is paused, is paused from here, once it fetches: paused
		 * in the rebalance callback, right after assign and resume,
		 * librdkafka 2.8 left one paused for good now and then (librdkafka
		 * #5591). */
		if (p->catchup || w->held)
			kp_job_pause(w, p);
		if (w->held && !was && p->paused)
			kp_log(KP_INFO,
			       "topic=%s partition=%d paused as it fetched: the binding is paused",
			       w->b->topics[p->topic], p->partition);
	} else if (w->bjobs)
		p->batch[p->n_batch++] = m; /* run_batches() takes it from here */
	else
		kp_job_start(w, p, m);
}

/*
 * Partitions assigned (from the committed offsets, paused until the shared
 * ledger caught up) or revoked (what is finished stored and committed
 * without waiting, jobs in hand dropped).
 */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *l, void *opaque)
{
	struct worker *w = opaque;
	bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *e = NULL;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		/* With a shared ledger, the partitions wait until it has read what
		 * the other hosts finished (their previous owner among them). */
		uint64_t ticket = w->b->ledger_kafka ? kp_ledger_catchup_ask(w->ledger) : 0;
		for (int i = 0; i < l->cnt; i++) {
			int t = topic_index(w, l->elems[i].topic);
			struct part *p =
			    t < 0 ? NULL : kp_part_get(w, (int16_t)t, l->elems[i].partition, true);
			if (p) { /* from the group's committed offset on */
				p->last_seen = p->fin_next = -1;
				p->cand_next = p->stored = 0;
				p->fin_seq = 0;
				p->gen++; /* copies on their way from before are not ours */
				p->n_sending = 0;
				p->paused = false; /* resumed below */
				p->catchup = ticket;
				p->fetched = false; /* paused, if need be, once it fetches */
				p->assigned = true;
			}
		}
		kp_log(KP_INFO, "assigned partitions=%d", l->cnt);
		if (cooperative)
			e = rd_kafka_incremental_assign(rk, l);
		else
			rd_kafka_assign(rk, l);
		/* A partition paused for a job that waited when it was revoked stays
		 * paused in librdkafka if it comes back: it starts afresh here. */
		rd_kafka_resume_partitions(rk, l);
		if (ticket) { /* paused as they fetch (on_message) */
			if (w->catchup == 0)
				w->catchup_ms = kp_mono_ms();
			w->catchup = ticket;
		}
	} else {
		/* Commit what is finished before the partitions move on (without
		 * waiting for the broker's answer here, in a callback). */
		store_final(w);
		rd_kafka_commit(rk, NULL, 1);
		for (int i = 0; i < l->cnt; i++) {
			int t = topic_index(w, l->elems[i].topic);
			struct part *p =
			    t < 0 ? NULL : kp_part_get(w, (int16_t)t, l->elems[i].partition, false);
			if (p) {
				kp_job_drop(w, p);
				p->assigned = false;
			}
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
	/* The share of the binding's rate this process holds (rate.c). */
	int32_t n = 0;
	for (size_t i = 0; i < w->n_parts; i++)
		n += w->parts[i].assigned;
	__atomic_store_n(&w->slot->rate_parts, n, __ATOMIC_RELAXED);
}

/* The worker's view of Kafka for /healthz, and why (NULL keeps the last reason). */
static void set_kafka(struct kp_slot *s, int state, const char *why)
{
	if (why)
		snprintf(s->kafka_error, sizeof(s->kafka_error), "%s", why);
	__atomic_store_n(&s->kafka_state, state, __ATOMIC_RELEASE);
}

/* librdkafka's errors: logged, and those that mean no broker is reachable mark Kafka down. */
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
	int n = 0, total = 0;
	topics = json_object_get(root, "topics");
	json_object_foreach (topics, name, v) {
		int t = topic_index(w, name), count = 0;
		const char *pname;
		json_t *pv;

		if (t < 0)
			continue;
		json_object_foreach (json_object_get(v, "partitions"), pname, pv) {
			json_int_t part = json_integer_value(json_object_get(pv, "partition"));
			if (part >= count &&
			    part < INT32_MAX) /* the topic's, as its metadata says */
				count = (int)part + 1;
			json_int_t hi = json_integer_value(json_object_get(pv, "hi_offset"));
			json_int_t lo = json_integer_value(json_object_get(pv, "lo_offset"));
			json_int_t co = json_integer_value(json_object_get(pv, "committed_offset"));
			struct part *pp;
			int64_t qhi;

			/* Only the partitions assigned to us now: librdkafka keeps
			 * reporting a revoked one, its watermark and committed offset
			 * frozen, and may leave it "desired" too. */
			pp = part < 0 ? NULL : kp_part_get(w, (int16_t)t, (int32_t)part, false);
			if (pp == NULL || !pp->assigned || n == KP_LAG_MAX || hi < 0 ||
			    (co < 0 && lo < 0))
				continue;
			/* A paused partition fetches nothing, so its high watermark in
			 * the statistics stands still: the watch thread asks for it. */
			if (pp->paused &&
			    (qhi = kp_watch_high(w->watch, (int16_t)t, pp->partition)) > hi)
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
		total += count;
	}
	s->n_lag = n;
	if (total > 0) /* partitions of the binding's topics, for its rate's share (rate.c) */
		__atomic_store_n(&s->rate_total, total, __ATOMIC_RELAXED);
	json_decref(root);
	return 0;
}

/* The slot's topics become this binding's: the supervisor reads its hand and lag by them. */
static void slot_topics(struct worker *w)
{
	struct kp_slot *s = w->slot;

	s->in_hand = 0;
	s->died_signal = 0;
	s->rate_parts = 0; /* none yet: a predecessor's no longer count */
	s->rate_waiting = 0;
	for (int i = 0; i < w->b->n_topics; i++)
		snprintf(s->topics[i], sizeof(s->topics[i]), "%s", w->b->topics[i]);
	s->n_topics = w->b->n_topics;
}

/*
 * The binding's consumer with kpool's defaults under the conf's [kafka]
 * keys; NULL with err on failure.
 */
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
	if (kp_conf_kafka_apply(w->conf, rc, false, err, len) < 0 ||
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

/* Subscribes to the binding's topics that exist; -1 with err on failure. */
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
 * Closes the consumer: the revoke (what is finished stored and committed),
 * the commit's answer, leaving the group.  A group coordinator that does not
 * answer (a commit held, or one librdkafka retries for ever after "Unknown
 * member") would hold it past shutdown_timeout, so it waits CLOSE_MAX_MS at
 * most, half of shutdown_timeout when that is shorter.  Returns false when it
 * gave up: the worker then exits without destroying the handle, and what
 * was not committed comes again, to be found in the ledger.
 */
static bool consumer_close(struct worker *w)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(w->rk);
	int64_t wait = w->conf->shutdown_timeout_ms / 2, until;
	rd_kafka_error_t *e;
	bool closed;

	if (wait > CLOSE_MAX_MS)
		wait = CLOSE_MAX_MS;
	until = kp_mono_ms() + wait;
	e = rd_kafka_consumer_close_queue(w->rk, q); /* the revoke comes through q */
	if (e) {
		kp_log(KP_WARNING, "kafka: close: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
	while (!rd_kafka_consumer_closed(w->rk) && kp_mono_ms() < until) {
		rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);

		if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
			on_rebalance(w->rk, rd_kafka_event_error(ev),
				     rd_kafka_event_topic_partition_list(ev), w);
		if (ev)
			rd_kafka_event_destroy(ev);
	}
	closed = rd_kafka_consumer_closed(w->rk);
	if (!closed)
		kp_log(KP_WARNING,
		       "kafka: the group did not see this worker off within %lld ms (no answer to "
		       "its last commit or its leave); leaving without it: what it did not "
		       "commit comes again and is found in the ledger",
		       (long long)wait);
	rd_kafka_queue_destroy(q);
	return closed;
}

/*
 * The worker process, run in the supervisor's new child: returns the
 * status the child exits with (spawn.c passes it to _exit): 0 after a
 * graceful stop, KP_EXIT_CONFIG when it cannot start (the supervisor then
 * throttles the binding).
 */
int kp_worker_run(const struct kp_conf *conf, const struct kp_binding *b, struct kp_slot *slot,
		  struct kp_ledger_shm *ledger)
{
	struct worker w = {.conf = conf, .b = b, .slot = slot};
	char err[512], path[PATH_MAX], *bootstrap = NULL;
	struct sigaction sa = {.sa_handler = on_stop};
	int rc = KP_EXIT_CONFIG;
	bool closed;

	stop_alarm_s = (unsigned)(conf->shutdown_timeout_ms / 1000) + 2;
	signal(SIGALRM, SIG_DFL);
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
	kp_plugin_host(&w.host, conf, b, slot->index);

	if (kp_plugin_path(conf, b->handler, path, sizeof(path)) < 0 ||
	    kp_plugin_open(&w.pl, path, err, sizeof(err)) < 0 ||
	    kp_plugin_init(&w.pl, &w.host, conf, b, err, sizeof(err)) < 0) {
		kp_log(KP_ERROR, "handler %s: %s", b->handler, err);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s.db", conf->state_dir, b->name);
	if ((w.ledger = kp_ledger_open(ledger, path)) == NULL) {
		kp_log(KP_ERROR, "out of memory");
		goto out;
	}
	slot_topics(&w);
	if (b->rate_period_ms)
		w.rate = &ledger->rate;
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
	    (w.dlq = kp_dlq_open(conf, b, bootstrap, kp_job_dead_lettered, &w, err, sizeof(err))) ==
		NULL ||
	    (w.rk = consumer_new(&w, bootstrap, err, sizeof(err))) == NULL) {
		kp_log(KP_ERROR, "kafka: %s", err);
		goto out;
	}
	/* The embedded broker made every topic of the conf and its dead-letter
	 * topic; elsewhere the watch thread looks for them, and the loop
	 * subscribes to each once it is there. */
	if ((w.watch = kp_watch_start(conf, b, bootstrap, conf->embedded, err, sizeof(err))) ==
	    NULL) {
		kp_log(KP_ERROR, "%s", err);
		goto out;
	}
	w.queue = rd_kafka_queue_get_consumer(w.rk);
	slot->started_ms = (uint64_t)kp_now_ms();
	__atomic_store_n(&slot->state, KP_SLOT_RUNNING, __ATOMIC_RELEASE);
	kp_log(KP_INFO, "started handler=%s topics=%s group=%s pid=%d", b->handler, b->topic_list,
	       b->group, (int)getpid());

	while (!kp_stopping) {
		int64_t timeout, now;
		rd_kafka_message_t *ms[BATCH_MAX];
		ssize_t n;

		hold_check(&w); /* before the first poll: a worker may start paused */
		timeout = kp_job_run_due(&w);

		if (timeout > STORE_EVERY_MS)
			timeout = STORE_EVERY_MS;
		/* The first message as soon as it comes, then what is there, up to
		 * a batch, under one lock of librdkafka's queue (which serves the
		 * callbacks too).  rd_kafka_consume_batch_queue() alone would wait
		 * out its timeout for a batch to fill. */
		ms[0] = rd_kafka_consumer_poll(w.rk, (int)timeout); /* returns at the first */
		n = ms[0] ? 1 + rd_kafka_consume_batch_queue(w.queue, 0, ms + 1, BATCH_MAX - 1) : 0;
		if (n < 1) /* an error of the batch call: only the first */
			n = ms[0] ? 1 : 0;
		for (ssize_t i = 0; i < n; i++)
			on_message(&w, ms[i]);
		if (n > 0 && slot->kafka_state != KP_KAFKA_UP)
			set_kafka(slot, KP_KAFKA_UP, "");
		if (w.catchup)
			catchup_check(&w);
		if (w.bjobs && n > 0) /* hand them over by partition */
			run_batches(&w);
		if (reinit)
			plugin_reinit(&w);
		if (kp_watch_topics(w.watch, w.topic_there) && subscribe(&w, err, sizeof(err)) < 0)
			kp_log(KP_ERROR, "kafka: %s", err);
		kp_dlq_poll(w.dlq, 0); /* dead-letter acknowledgements, and the producer's events */
		now = kp_mono_ms();
		if (now >= w.store_due) {
			store_offsets(&w);
			w.store_due = now + STORE_EVERY_MS;
		}
	}
	__atomic_store_n(&slot->state, KP_SLOT_STOPPING, __ATOMIC_RELEASE);
	kp_log(KP_INFO, "stopping");
	/* Dead-letter copies on their way: once acknowledged, their jobs are
	 * finished and the offsets past them can be committed. */
	for (int64_t until = kp_mono_ms() + DLQ_DRAIN_MS;
	     w.n_in_flight > 0 && kp_mono_ms() < until;)
		kp_dlq_poll(w.dlq, 50);
	store_final(&w);
	rc = 0;
out:
	/* Closing commits, and waits for the broker to answer: a worker whose
	 * supervisor is gone (nobody to kill it after shutdown_timeout) and whose
	 * broker is gone too would wait for ever.  It ends itself a little after
	 * shutdown_timeout instead; what it did not commit is redelivered and
	 * found in the ledger. */
	alarm(stop_alarm_s);
	if (w.queue)
		rd_kafka_queue_destroy(w.queue);
	kp_watch_stop(w.watch);
	w.watch = NULL; /* the statistics callback may still run while closing */
	closed = w.rk == NULL || consumer_close(&w);
	/* Messages still held (a partition lost without a revoke, copies not
	 * acknowledged) go before the handle they belong to: destroyed after
	 * it, they are freed memory.  Closing the producer gives every copy
	 * still on its way its outcome. */
	kp_dlq_close(w.dlq);
	kp_job_abandon(&w);
	for (size_t i = 0; i < w.n_parts; i++)
		kp_job_drop(&w, &w.parts[i]);
	/* A handle whose group did not let go cannot be destroyed either:
	 * librdkafka waits for the commits it holds, for ever.  It is left to
	 * the process's exit, which is at hand. */
	if (w.rk && closed)
		rd_kafka_destroy(w.rk);
	free(w.parts);
	free(w.bjobs);
	free(w.breasons);
	kp_ledger_close(w.ledger);
	kp_plugin_close(&w.pl);
	free(bootstrap);
	if (rc == 0)
		kp_log(KP_INFO, "stopped");
	return rc;
}
