/*
 * watch.c - a worker's second thread, for the questions to Kafka whose
 * answers take a round trip or longer: whether the binding's topics exist
 * and with how many partitions, creating their dead-letter topics, and the
 * high watermarks of paused partitions (whose statistics stand still).
 *
 * The consumer loop and librdkafka's callbacks only read what this thread
 * found, under a lock it never holds across a request; so a broker that is
 * slow, or never answers, delays an answer, never the loop.  Each outcome is
 * logged once.  It asks through a handle of its own (a consumer without a
 * group, made when first needed): a broker answers a connection's requests
 * one at a time, so a CreateTopics waiting on the controller must not sit
 * before the worker's fetches.  A consumer's metadata requests never create
 * a topic (allow.auto.create.topics is false for consumers).
 */
#include "config.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker.h"

#define ASK_MS	      1000 /* a metadata request for one topic */
#define CREATE_MS     5000 /* CreateTopics */
#define CHECK_MS      2000 /* how often to look for a topic that is not there yet */
#define HIGH_MS	      500  /* a watermark request */
#define HIGH_EVERY_MS 1000 /* how often a paused partition's watermark is asked */
#define HIGH_KEEP_MS  5000 /* a watermark nobody read for this long is dropped */

struct high {
	int16_t topic;
	int32_t partition;
	int64_t hi;	  /* -1 until answered */
	int64_t read_ms;  /* when the loop last wanted it */
	int64_t asked_ms; /* when it was last asked */
};

struct kp_watch {
	const struct kp_conf *conf;
	const struct kp_binding *b;
	char *bootstrap;
	rd_kafka_t *rk; /* the thread's own, once made */
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	/* Under lock. */
	bool stop;
	bool there[KP_TOPICS_MAX]; /* the topic exists: the loop may subscribe to it */
	bool changed;		   /* there[] changed since the loop last looked */
	struct high high[KP_LAG_MAX];
	size_t n_high;
	/* The thread's own. */
	bool dlq_done[KP_TOPICS_MAX], told[KP_TOPICS_MAX], create_told[KP_TOPICS_MAX];
	bool topics_done;
	int64_t topics_due;
};

/* The thread's handle, made on first use; NULL (said once) if it cannot be made. */
static rd_kafka_t *handle(struct kp_watch *wt)
{
	static const char *const keys[][2] = {
	    {"enable.auto.commit", "false"},
	    {"log.connection.close", "false"}, /* a held request closes it quietly */
	};
	rd_kafka_conf_t *rc;
	char err[512];

	if (wt->rk)
		return wt->rk;
	rc = rd_kafka_conf_new();
	if (kp_conf_kafka_apply(wt->conf, rc, false, err, sizeof(err)) == 0 &&
	    rd_kafka_conf_set(rc, "bootstrap.servers", wt->bootstrap, err, sizeof(err)) == 0 &&
	    rd_kafka_conf_set(rc, keys[0][0], keys[0][1], err, sizeof(err)) == 0 &&
	    rd_kafka_conf_set(rc, keys[1][0], keys[1][1], err, sizeof(err)) == 0) {
		rd_kafka_conf_set_log_cb(rc, kp_rdkafka_log);
		wt->rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, err, sizeof(err));
	}
	if (wt->rk == NULL) {
		rd_kafka_conf_destroy(rc);
		kp_log(KP_ERROR, "kafka: the topic watch: %s", err);
	}
	return wt->rk;
}

/* Whether the watch thread is asked to stop (for kp_topic_create). */
static bool stopped(void *arg)
{
	struct kp_watch *wt = arg;

	pthread_mutex_lock(&wt->lock);
	bool s = wt->stop;
	pthread_mutex_unlock(&wt->lock);
	return s;
}

/* The topics found this pass become there[] at once: one subscription, one rebalance. */
static void set_there(struct kp_watch *wt, const bool found[KP_TOPICS_MAX])
{
	pthread_mutex_lock(&wt->lock);
	for (int i = 0; i < wt->b->n_topics; i++)
		if (found[i] && !wt->there[i])
			wt->there[i] = wt->changed = true;
	pthread_mutex_unlock(&wt->lock);
}

/*
 * One look at the binding's topics: those that exist become there[], and
 * each one's dead-letter topic is made when absent, with as many
 * partitions.  librdkafka 2.0 never notices a subscribed topic that is
 * created later (librdkafka #1201), so a topic the applications have not
 * published to yet is looked for again every CHECK_MS.
 */
static void topics_pass(struct kp_watch *wt)
{
	const struct kp_binding *b = wt->b;
	char why[512], dlq[KP_TOPIC_MAX + 8];
	int n[KP_TOPICS_MAX] = {0}, final;
	bool found[KP_TOPICS_MAX] = {false};

	wt->topics_due = kp_mono_ms() + CHECK_MS;
	if (handle(wt) == NULL)
		return;
	/* First which topics exist, so that the loop consumes them all at once ... */
	for (int i = 0; i < b->n_topics && !stopped(wt); i++) {
		const char *t = b->topics[i];
		bool there;

		if (wt->dlq_done[i])
			continue;
		n[i] = kp_topic_partitions(wt->rk, t, ASK_MS, why, sizeof(why));
		if (n[i] < 0) /* Kafka unreachable: the error callback says so; ask later */
			return;
		pthread_mutex_lock(&wt->lock);
		there = wt->there[i];
		pthread_mutex_unlock(&wt->lock);
		if (!there && n[i] == 0) {
			if (!wt->told[i])
				kp_log(KP_WARNING,
				       "topic=%s does not exist yet; consuming it once it does", t);
			wt->told[i] = true;
		} else if (!there) {
			if (wt->told[i])
				kp_log(KP_NOTICE, "topic=%s appeared with %d partitions", t, n[i]);
			found[i] = true;
		}
	}
	set_there(wt, found);
	/* ... then their dead-letter topics, which may take a while. */
	for (int i = 0; i < b->n_topics && !stopped(wt); i++) {
		if (wt->dlq_done[i] || n[i] <= 0)
			continue;
		kp_dlq_topic(b, b->topics[i], dlq, sizeof(dlq));
		int have = kp_topic_partitions(wt->rk, dlq, ASK_MS, why, sizeof(why));
		if (have > 0) {
			wt->dlq_done[i] = true;
		} else if (have == 0 && kp_topic_create(wt->rk, dlq, n[i], NULL, CREATE_MS, stopped,
							wt, &final, why, sizeof(why)) == 0) {
			kp_log(KP_NOTICE, "created the dead-letter topic %s with %d partitions",
			       dlq, n[i]);
			wt->dlq_done[i] = true;
		} else if (have == 0 && final) {
			kp_log(KP_WARNING, "%s; create it with %d partitions", why, n[i]);
			wt->dlq_done[i] = true;	  /* a first dead letter may still create it */
		} else if (!wt->create_told[i]) { /* once: then every CHECK_MS until it works */
			kp_log(KP_WARNING, "%s; trying again every %d s", why, CHECK_MS / 1000);
			wt->create_told[i] = true;
		}
	}
	wt->topics_done = true;
	for (int i = 0; i < b->n_topics; i++)
		if (!wt->dlq_done[i])
			wt->topics_done = false;
	wt->topics_due = kp_mono_ms() + CHECK_MS;
}

/* Asks the high watermarks the loop wants, one request at a time, outside the lock. */
static void highs_pass(struct kp_watch *wt)
{
	for (;;) {
		int64_t now = kp_mono_ms(), lo, hi;
		char topic[KP_TOPIC_MAX];
		int32_t partition = -1;

		pthread_mutex_lock(&wt->lock);
		for (size_t i = 0; i < wt->n_high; i++) {
			struct high *h = &wt->high[i];
			if (now - h->read_ms > HIGH_KEEP_MS) { /* no longer paused */
				*h = wt->high[--wt->n_high];
				i--;
			} else if (partition < 0 && now - h->asked_ms >= HIGH_EVERY_MS) {
				h->asked_ms = now;
				partition = h->partition;
				snprintf(topic, sizeof(topic), "%s", wt->b->topics[h->topic]);
			}
		}
		bool stop = wt->stop;
		pthread_mutex_unlock(&wt->lock);
		if (partition < 0 || stop || handle(wt) == NULL)
			return;
		if (rd_kafka_query_watermark_offsets(wt->rk, topic, partition, &lo, &hi, HIGH_MS) !=
		    RD_KAFKA_RESP_ERR_NO_ERROR)
			continue; /* asked again in HIGH_EVERY_MS */
		pthread_mutex_lock(&wt->lock);
		for (size_t i = 0; i < wt->n_high; i++)
			if (wt->high[i].partition == partition &&
			    strcmp(wt->b->topics[wt->high[i].topic], topic) == 0)
				wt->high[i].hi = hi;
		pthread_mutex_unlock(&wt->lock);
	}
}

/*
 * The watch thread: topic lookups and high watermarks, off the worker's
 * loop, until asked to stop.
 */
static void *run(void *arg)
{
	struct kp_watch *wt = arg;

	pthread_mutex_lock(&wt->lock);
	while (!wt->stop) {
		int64_t now = kp_mono_ms(), wait = HIGH_EVERY_MS;
		struct timespec ts;

		if (!wt->topics_done && now >= wt->topics_due) {
			pthread_mutex_unlock(&wt->lock);
			topics_pass(wt);
			pthread_mutex_lock(&wt->lock);
		}
		if (wt->n_high > 0) {
			pthread_mutex_unlock(&wt->lock);
			highs_pass(wt);
			pthread_mutex_lock(&wt->lock);
		}
		if (!wt->topics_done && wt->topics_due - kp_mono_ms() < wait)
			wait = wt->topics_due - kp_mono_ms();
		if (wait <= 0 || wt->stop)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += wait / 1000;
		ts.tv_nsec += (wait % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&wt->wake, &wt->lock, &ts);
	}
	pthread_mutex_unlock(&wt->lock);
	return NULL;
}

/*
 * Starts the thread for b's topics, asking the brokers of bootstrap.  With topics_exist (the
 * embedded broker made them all, with their dead-letter topics) it only asks watermarks.  NULL with
 * err when no thread could be made.
 */
struct kp_watch *kp_watch_start(const struct kp_conf *conf, const struct kp_binding *b,
				const char *bootstrap, bool topics_exist, char *err, size_t len)
{
	struct kp_watch *wt = calloc(1, sizeof(*wt));
	pthread_condattr_t ca;
	sigset_t all, old;
	int e;

	if (wt == NULL || (wt->bootstrap = strdup(bootstrap)) == NULL) {
		free(wt);
		snprintf(err, len, "out of memory");
		return NULL;
	}
	wt->conf = conf;
	wt->b = b;
	for (int i = 0; i < b->n_topics; i++)
		wt->there[i] = wt->dlq_done[i] = topics_exist;
	wt->changed = topics_exist;
	wt->topics_done = topics_exist;
	pthread_mutex_init(&wt->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wt->wake, &ca);
	pthread_condattr_destroy(&ca);
	/* Signals are the loop's: the thread starts with all of them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&wt->thread, NULL, run, wt);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		snprintf(err, len, "cannot start a thread: %s", strerror(e));
		pthread_cond_destroy(&wt->wake);
		pthread_mutex_destroy(&wt->lock);
		free(wt->bootstrap);
		free(wt);
		return NULL;
	}
	wt->running = true;
	return wt;
}

/*
 * Whether the topics that exist changed since the last call; if so, there[]
 * gets which of b's topics exist, for the loop to subscribe to them.
 */
bool kp_watch_topics(struct kp_watch *wt, bool there[KP_TOPICS_MAX])
{
	bool changed;

	pthread_mutex_lock(&wt->lock);
	changed = wt->changed;
	if (changed)
		memcpy(there, wt->there, sizeof(wt->there));
	wt->changed = false;
	pthread_mutex_unlock(&wt->lock);
	return changed;
}

/*
 * The last high watermark asked for a paused partition, -1 until one is
 * known; asking is what keeps it asked for, every HIGH_EVERY_MS.
 */
int64_t kp_watch_high(struct kp_watch *wt, int16_t topic, int32_t partition)
{
	int64_t hi = -1, now = kp_mono_ms();
	size_t i;

	if (wt == NULL) /* stopped, or never started */
		return -1;
	pthread_mutex_lock(&wt->lock);
	for (i = 0; i < wt->n_high; i++)
		if (wt->high[i].topic == topic && wt->high[i].partition == partition)
			break;
	if (i == wt->n_high && wt->n_high < KP_LAG_MAX) {
		wt->high[wt->n_high++] = (struct high){.topic = topic,
						       .partition = partition,
						       .hi = -1,
						       .asked_ms = now - HIGH_EVERY_MS};
		pthread_cond_signal(&wt->wake);
	}
	if (i < wt->n_high) {
		wt->high[i].read_ms = now;
		hi = wt->high[i].hi;
	}
	pthread_mutex_unlock(&wt->lock);
	return hi;
}

/* Stops the thread (within one request's timeout at most) and frees it. */
void kp_watch_stop(struct kp_watch *wt)
{
	if (wt == NULL)
		return;
	pthread_mutex_lock(&wt->lock);
	wt->stop = true;
	pthread_cond_signal(&wt->wake);
	pthread_mutex_unlock(&wt->lock);
	if (wt->running)
		pthread_join(wt->thread, NULL);
	if (wt->rk)
		rd_kafka_destroy(wt->rk);
	pthread_cond_destroy(&wt->wake);
	pthread_mutex_destroy(&wt->lock);
	free(wt->bootstrap);
	free(wt);
}
