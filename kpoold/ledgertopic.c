/*
 * ledgertopic.c - the ledger topic: how the hosts of a binding share its
 * ledger (ledger = kafka), through Kafka itself, as Kafka Streams shares a
 * store through its changelog topic.  The binding's ledger process on every
 * host
 *
 *   - produces each id its workers finish (woken by them), and each crash
 *     its supervisor counts, to the ledger topic (idempotent, acks=all, not
 *     lingering: the producer batches what comes while its requests are on
 *     their way); the ring's tail, which lets workers commit, passes an id
 *     only once Kafka has acknowledged it (and the store has it);
 *   - tails the topic from where it last read (kept in the store, in the
 *     same transaction as what it read) into its store and filter, so that a
 *     copy of a job arriving here finds the id another host finished;
 *   - catches up for workers given partitions: it sends a marker to every
 *     partition of the topic and answers their ticket once it has read its
 *     markers back, and so everything that was in the topic before them.
 *
 * The topic is compacted, its records kept idempotency_ttl, and made with one
 * partition when absent (every host reads all of it anyway).  Until it is
 * there and read, no worker of the binding handles a job: they wait in
 * Kafka.
 *
 * Its records are read and written by ledgerrec.c.  What one look at the
 * ring found goes in one record (up to IDS_MAX ids), so that a busy host
 * sends hundreds of ids a record, not a record an id.
 */
#include "config.h"

#include <endian.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "kpoold.h"
#include "ledger.h"

#define ASK_MS	      2000  /* a metadata request for the topic */
#define CREATE_MS     5000  /* CreateTopics */
#define RETRY_MS      2000  /* how often a topic not there, or refused copies, are tried again */
#define ROUND_MS      10000 /* a catch-up round not read back within this is sent again */
#define HOST_EVERY_MS 5000  /* how often this host says its lag */
#define POS_EVERY_MS  1000  /* how often positions alone are written */
#define READ_MAX      8192  /* records read in one step, at most */
#define LINGER_MS     "1"

#define IDS_MAX	  256 /* finished ids in one record, at most */
#define SEQ_SHIFT 11  /* opaque of an ids record: first << SEQ_SHIFT | n << 2 | 1 */
enum slot { S_FREE, S_SENT, S_ACKED, S_FAILED }; /* a ring record on its way */

/* A crash record on its way: sent again until Kafka takes it. */
struct pending {
	struct pending *next;
	size_t klen, vlen;
	int64_t at_ms;
	unsigned char buf[17 + KP_LREC_HEAD + 2 + 256];
};

struct kp_ltopic {
	const struct kp_binding *b;
	struct kp_ledger_shm *shm;
	struct kp_lstore *st;
	volatile sig_atomic_t *stopping;
	char *bootstrap;
	rd_kafka_t *prod, *cons;
	rd_kafka_queue_t *cq;
	const char *topic;
	char host[64];
	uint64_t origin;
	bool ready, told;
	bool embedded; /* the embedded broker: it makes a topic a producer asks for */
	int64_t next_try, next_host, next_pos, next_lag;
	int n_parts;
	int64_t *pos; /* per partition: the next offset to read */
	bool pos_dirty;
	uint64_t round; /* the catch-up round on its way, 0 when none */
	int markers_left;
	int64_t round_at;
	uint8_t *slot; /* per ring slot: enum slot */
	uint64_t acked_to, sent_to;
	size_t n_failed;
	int64_t resend_at;
	struct pending *resend; /* crash records refused, to send again */
	double usual_ms;	/* how long Kafka takes to acknowledge ids, on average */
	struct kp_lrec imp[READ_MAX];
	size_t n_imp;
};

/* The ledger topic's state for /metrics and kpool status, and why (NULL keeps the last reason). */
static void set_state(struct kp_ltopic *t, int state, const char *why)
{
	if (why)
		snprintf(t->shm->topic_error, sizeof(t->shm->topic_error), "%s", why);
	__atomic_store_n(&t->shm->topic_state, state, __ATOMIC_RELEASE);
}

/* Produces one record; its outcome comes to on_delivery() with opaque. */
static rd_kafka_resp_err_t produce(struct kp_ltopic *t, int32_t partition, const void *k,
				   size_t klen, const void *v, size_t vlen, int64_t at_ms,
				   uintptr_t opaque)
{
	return rd_kafka_producev(
	    t->prod, RD_KAFKA_V_TOPIC(t->topic), RD_KAFKA_V_PARTITION(partition),
	    RD_KAFKA_V_KEY(k, klen), RD_KAFKA_V_VALUE((void *)v, vlen),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(at_ms),
	    RD_KAFKA_V_OPAQUE((void *)opaque), RD_KAFKA_V_END);
}

/*
 * Sends the n finished ids of the ring from sequence number first on, in one
 * record (they stay in the ring until acknowledged).
 */
static void send_ids(struct kp_ltopic *t, uint64_t first, size_t n)
{
	unsigned char v[KP_LREC_HEAD + IDS_MAX * KP_LREC_ID_BYTES], *p = v + KP_LREC_HEAD;
	char key[64];
	int64_t now = kp_now_ms();

	kp_lrec_head(v, KP_LK_IDS, t->origin, now);
	for (size_t i = 0; i < n; i++) {
		kp_lrec_put_id(p, &t->shm->ring[(first + i) % KP_LEDGER_RING]);
		p += KP_LREC_ID_BYTES;
	}
	snprintf(key, sizeof(key), "kpool.ids.%016" PRIx64 ".%" PRIu64, t->origin, first);
	bool sent =
	    t->ready &&
	    produce(t, RD_KAFKA_PARTITION_UA, key, strlen(key), v, (size_t)(p - v), now,
		    (uintptr_t)(first << SEQ_SHIFT | n << 2 | 1)) == RD_KAFKA_RESP_ERR_NO_ERROR;
	for (size_t i = 0; i < n; i++)
		t->slot[(first + i) % KP_LEDGER_RING] = sent ? S_SENT : S_FAILED;
	if (!sent) /* not there yet, or the producer's queue is full: later */
		t->n_failed += n;
}

/* Produces a record that waits; one that cannot go now waits on the resend list. */
static void send_pending(struct kp_ltopic *t, struct pending *p)
{
	if (!t->ready || produce(t, RD_KAFKA_PARTITION_UA, p->buf, p->klen, p->buf + p->klen,
				 p->vlen, p->at_ms, (uintptr_t)p)) {
		p->next = t->resend;
		t->resend = p;
	}
}

/*
 * Kafka's word on a record: acknowledged ids are marked so the tail may
 * pass them (and their wait feeds the usual acknowledgement time the share
 * bound uses); a failed record is sent again.
 */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kp_ltopic *t = opaque;
	uintptr_t o = (uintptr_t)m->_private;
	(void)rk;

	if (m->err)
		kp_log(t->told ? KP_DEBUG : KP_WARNING, "ledger topic %s: %s; sending again",
		       t->topic, rd_kafka_err2str(m->err));
	switch (o & 3) {
	case 1: { /* finished ids */
		uint64_t first = o >> SEQ_SHIFT;
		size_t n = (o >> 2) & ((1u << (SEQ_SHIFT - 2)) - 1);
		for (size_t i = 0; i < n; i++)
			t->slot[(first + i) % KP_LEDGER_RING] = m->err ? S_FAILED : S_ACKED;
		if (m->err) {
			t->n_failed += n;
			break;
		}
		__atomic_add_fetch(&t->shm->produced, n, __ATOMIC_RELAXED);
		/* how long it usually takes, for how long workers may go on without it */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t age = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 -
			      t->shm->ring[first % KP_LEDGER_RING].at_ms;
		t->usual_ms = 0.875 * t->usual_ms + 0.125 * (double)(age > 0 ? age : 0);
		int32_t ms = (int32_t)(KP_LEDGER_SHARE_TIMES * t->usual_ms) + 1;
		t->shm->share_ms = ms > KP_LEDGER_SHARE_MS ? ms : KP_LEDGER_SHARE_MS;
		break;
	}
	case 0: /* a crash count */
		if (m->err) {
			struct pending *p = (struct pending *)o;
			p->next = t->resend;
			t->resend = p;
		} else {
			free((void *)o);
			__atomic_add_fetch(&t->shm->produced, 1, __ATOMIC_RELAXED);
		}
		break;
	case 2: /* a marker: a round whose marker is lost is sent again after ROUND_MS */
		break;
	}
}

/*
 * Makes the ledger topic's handles; NULL with err when the conf cannot make
 * them.  The topic itself is looked for (and made) by kp_ltopic_step().
 */
struct kp_ltopic *kp_ltopic_new(const struct kp_conf *conf, const struct kp_binding *b,
				struct kp_ledger_shm *shm, struct kp_lstore *st,
				volatile sig_atomic_t *stopping, char *err, size_t len)
{
	struct kp_ltopic *t = calloc(1, sizeof(*t));
	rd_kafka_conf_t *pc = NULL, *cc = NULL;
	char v[32];

	if (t == NULL || (t->slot = calloc(KP_LEDGER_RING, 1)) == NULL) {
		snprintf(err, len, "out of memory");
		goto fail;
	}
	t->b = b;
	t->shm = shm;
	t->st = st;
	t->stopping = stopping;
	t->topic = b->ledger_topic;
	t->embedded = conf->embedded;
	if (gethostname(t->host, sizeof(t->host)) < 0)
		snprintf(t->host, sizeof(t->host), "unknown");
	/* This store's origin: its own records are not read back into it. */
	if (kp_lstore_meta_get(st, "origin", v, sizeof(v)) == 1) {
		t->origin = strtoull(v, NULL, 16);
	} else {
		if (getrandom(&t->origin, sizeof(t->origin), 0) != sizeof(t->origin))
			t->origin = (uint64_t)kp_now_ms() * 2654435761u ^ (uint64_t)getpid();
		snprintf(v, sizeof(v), "%016" PRIx64, t->origin);
		if (kp_lstore_meta_put(st, "origin", v) < 0) {
			snprintf(err, len, "cannot write the ledger's origin");
			goto fail;
		}
	}
	shm->origin = t->origin;
	if ((t->bootstrap = kp_conf_bootstrap(conf, err, len)) == NULL)
		goto fail;
	pc = rd_kafka_conf_new();
	if (kp_conf_kafka_apply(conf, pc, true, err, len) < 0 ||
	    rd_kafka_conf_set(pc, "bootstrap.servers", t->bootstrap, err, len) ||
	    rd_kafka_conf_set(pc, "acks", "all", err, len) ||
	    rd_kafka_conf_set(pc, "enable.idempotence", "true", err, len) ||
	    rd_kafka_conf_set(pc, "linger.ms", LINGER_MS, err, len))
		goto fail;
	rd_kafka_conf_set_opaque(pc, t);
	rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
	rd_kafka_conf_set_log_cb(pc, kp_rdkafka_log);
	if ((t->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, len)) == NULL)
		goto fail;
	pc = NULL;
	cc = rd_kafka_conf_new();
	if (kp_conf_kafka_apply(conf, cc, false, err, len) < 0 ||
	    rd_kafka_conf_set(cc, "bootstrap.servers", t->bootstrap, err, len) ||
	    /* a group only for librdkafka's consumer queue: assigned, never joined */
	    rd_kafka_conf_set(cc, "group.id", t->topic, err, len) ||
	    rd_kafka_conf_set(cc, "enable.auto.commit", "false", err, len) ||
	    rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", err, len) ||
	    rd_kafka_conf_set(cc, "fetch.wait.max.ms", "20", err, len) ||
	    rd_kafka_conf_set(cc, "queued.max.messages.kbytes", "4096", err, len))
		goto fail;
	rd_kafka_conf_set_log_cb(cc, kp_rdkafka_log);
	if ((t->cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, len)) == NULL)
		goto fail;
	cc = NULL;
	rd_kafka_poll_set_consumer(t->cons);
	t->cq = rd_kafka_queue_get_consumer(t->cons);
	set_state(t, KP_LT_STARTING, "");
	return t;
fail:
	if (pc)
		rd_kafka_conf_destroy(pc);
	if (cc)
		rd_kafka_conf_destroy(cc);
	kp_ltopic_close(t, 0);
	return NULL;
}

/* Whether the ledger process is stopping (for kp_topic_create). */
static bool stop_asked(void *arg)
{
	return *((struct kp_ltopic *)arg)->stopping;
}

/* The command that makes the topic as kpool would, for an operator. */
static void how_to_make(const struct kp_ltopic *t, char *buf, size_t len)
{
	snprintf(buf, len,
		 "create it (kafka-topics.sh --bootstrap-server %s --create --topic %s "
		 "--partitions 1 --config cleanup.policy=compact,delete --config "
		 "retention.ms=%" PRId64 "), or let kpool's principal create it (kafka-acls.sh "
		 "--bootstrap-server %s --add --allow-principal User:KPOOL --operation Create "
		 "--operation Describe --operation Read --operation Write --topic %s)",
		 t->bootstrap, t->topic, t->shm->ttl_ms, t->bootstrap, t->topic);
}

/* Starts reading the topic's n partitions from where the store says it stopped. */
static int assign(struct kp_ltopic *t, int n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	char v[32], key[64];
	bool same =
	    kp_lstore_meta_get(t->st, "topic", v, sizeof(v)) == 1 && strcmp(v, t->topic) == 0;
	rd_kafka_resp_err_t e;

	free(t->pos);
	if ((t->pos = calloc((size_t)n, sizeof(*t->pos))) == NULL) {
		rd_kafka_topic_partition_list_destroy(l);
		return -1;
	}
	t->n_parts = n;
	for (int p = 0; p < n; p++) {
		snprintf(key, sizeof(key), "pos.%d", p);
		t->pos[p] = same && kp_lstore_meta_get(t->st, key, v, sizeof(v)) == 1
				? strtoll(v, NULL, 10)
				: RD_KAFKA_OFFSET_BEGINNING;
		rd_kafka_topic_partition_list_add(l, t->topic, p)->offset = t->pos[p];
	}
	e = rd_kafka_assign(t->cons, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		kp_log(KP_ERROR, "ledger topic %s: assign: %s", t->topic, rd_kafka_err2str(e));
		return -1;
	}
	if (!same)
		kp_lstore_meta_put(t->st, "topic", t->topic);
	return 0;
}

/*
 * Looks for the topic, makes it when absent, and starts reading it.  A
 * failure is logged once, with what the operator can do; then tried again
 * every RETRY_MS, quietly.
 */
static void setup(struct kp_ltopic *t, int64_t now)
{
	static const char *const configs[] = {"cleanup.policy", "compact,delete", "retention.ms",
					      NULL, NULL};
	const char *cfg[5];
	char why[512], how[1024], ttl[32];
	int n, final = 0;

	t->next_try = now + RETRY_MS;
	n = kp_topic_partitions(t->cons, t->topic, ASK_MS, why, sizeof(why));
	/* The embedded broker does not answer CreateTopics on every librdkafka
	 * version (a binding added by a reload has no topic made at its start):
	 * it makes the topic when a producer asks for it.  It compacts nothing. */
	for (int64_t until = kp_mono_ms() + ASK_MS; n <= 0 && t->embedded && kp_mono_ms() < until;)
		if ((n = kp_topic_partitions(t->prod, t->topic, ASK_MS, why, sizeof(why))) <= 0)
			usleep(100 * 1000);
	if (n == 0) {
		memcpy(cfg, configs, sizeof(cfg));
		snprintf(ttl, sizeof(ttl), "%" PRId64, t->shm->ttl_ms);
		cfg[3] = ttl;
		if (kp_topic_create(t->prod, t->topic, 1, cfg, CREATE_MS, stop_asked, t, &final,
				    why, sizeof(why)) == 0) {
			kp_log(KP_NOTICE,
			       "created the ledger topic %s (1 partition, compacted, "
			       "retention.ms=%s)",
			       t->topic, ttl);
			n = kp_topic_partitions(t->cons, t->topic, ASK_MS, why, sizeof(why));
			if (n <= 0) { /* the metadata has not caught up: looked for again soon */
				t->next_try = now + RETRY_MS / 10;
				return;
			}
		}
	}
	if (n > 0 && assign(t, n) == 0) {
		t->ready = true;
		t->next_try = 0;
		t->resend_at = now;
		set_state(t, KP_LT_READY, "");
		kp_log(t->told ? KP_NOTICE : KP_INFO,
		       "ledger topic %s: %d partition%s, reading from %s", t->topic, n,
		       n == 1 ? "" : "s",
		       t->pos[0] == RD_KAFKA_OFFSET_BEGINNING ? "its start"
							      : "where this host stopped");
		t->told = false;
		return;
	}
	if (n > 0)
		snprintf(why, sizeof(why), "%s: cannot read it", t->topic);
	how_to_make(t, how, sizeof(how));
	if (!t->told)
		kp_log(KP_ERROR,
		       "ledger topic %s: %s; no job of worker %s is handled until it is there "
		       "(they wait in Kafka): %s; trying again every %d s",
		       t->topic, why, t->b->name, how, RETRY_MS / 1000);
	t->told = true;
	set_state(t, KP_LT_FAILING, why);
}

/* Writes what was read from other hosts, and where reading stopped, in one transaction. */
static void import(struct kp_ltopic *t, int64_t now)
{
	struct kp_ledger_shm *shm = t->shm;
	char key[32], v[32];
	int rc;

	if (t->n_imp == 0 && !(t->pos_dirty && now >= t->next_pos))
		return;
	rc = kp_lstore_begin(t->st);
	if (rc == 0 && t->n_imp)
		rc = kp_lstore_write(t->st, t->imp, t->n_imp);
	for (int p = 0; rc == 0 && p < t->n_parts; p++) {
		if (t->pos[p] < 0)
			continue;
		snprintf(key, sizeof(key), "pos.%d", p);
		snprintf(v, sizeof(v), "%" PRId64, t->pos[p]);
		rc = kp_lstore_meta_put(t->st, key, v);
	}
	if (rc < 0 || kp_lstore_commit(t->st) < 0) {
		/* Read again from the last position written. */
		kp_log(KP_ERROR,
		       "ledger topic %s: what was read is not in the store; reading it again",
		       t->topic);
		t->n_imp = 0;
		t->ready = false;
		rd_kafka_assign(t->cons, NULL);
		t->next_try = now + RETRY_MS;
		return;
	}
	if (t->n_imp) {
		uint64_t *filter = kp_ledger_filter(shm, shm->filter_buf);
		for (size_t i = 0; i < t->n_imp; i++)
			kp_ledger_filter_add(filter, shm->filter_blocks, &t->imp[i].id);
		kp_ledger_import(shm, t->imp, t->n_imp);
		shm->disk_ids += (int64_t)t->n_imp;
		__atomic_add_fetch(&shm->imported, t->n_imp, __ATOMIC_RELAXED);
	}
	t->n_imp = 0;
	t->pos_dirty = false;
	t->next_pos = now + POS_EVERY_MS;
}

/*
 * Notes what a host last said of its lag; the one heard from longest ago
 * makes way when the table is full.
 */
static void host_heard(struct kp_ltopic *t, uint64_t origin, int64_t at_ms, int64_t lag,
		       const char *name)
{
	struct kp_ledger_shm *shm = t->shm;
	struct kp_lhost *h = NULL;

	kp_ledger_lock(shm);
	for (uint32_t i = 0; i < shm->n_hosts && h == NULL; i++)
		if (shm->hosts[i].origin == origin)
			h = &shm->hosts[i];
	if (h == NULL && shm->n_hosts < KP_LEDGER_HOSTS)
		h = &shm->hosts[shm->n_hosts++];
	if (h == NULL) /* the one heard from longest ago makes way */
		for (uint32_t i = 0; i < shm->n_hosts; i++)
			if (h == NULL || shm->hosts[i].at_ms < h->at_ms)
				h = &shm->hosts[i];
	h->origin = origin;
	h->at_ms = at_ms;
	h->lag = lag;
	snprintf(h->name, sizeof(h->name), "%s", name);
	kp_ledger_unlock(shm);
}

/* One record of the topic. */
static void read_one(struct kp_ltopic *t, const rd_kafka_message_t *m)
{
	struct kp_lmsg r;

	if (m->partition >= 0 && m->partition < t->n_parts) {
		t->pos[m->partition] = m->offset + 1;
		t->pos_dirty = true;
	}
	__atomic_add_fetch(&t->shm->consumed, 1, __ATOMIC_RELAXED);
	kp_lrec_parse(m->key, m->key_len, m->payload, m->len, &r);
	if (r.kind == KP_LK_MARKER) {
		if (r.origin == t->origin && t->round && r.round == t->round)
			t->markers_left--;
		return;
	}
	if (r.origin == t->origin) /* this host's own: its store has it */
		return;
	switch (r.kind) {
	case KP_LK_IDS:
		for (size_t i = 0; i < r.n_ids && t->n_imp < READ_MAX; i++)
			if (kp_lrec_id(&r, i, &t->imp[t->n_imp]))
				t->n_imp++;
		break;
	case KP_LK_CRASH:
		kp_log(KP_NOTICE, "event=%s killed %d worker%s (another host's count)",
		       r.crash.event_id, r.crash.count, r.crash.count == 1 ? "" : "s");
		kp_lstore_crash(t->st, &r.crash);
		kp_ledger_lock(t->shm);
		kp_ledger_crash_load(t->shm, &r.crash.id, r.crash.count, r.crash.signal);
		t->shm->n_crashed++;
		kp_ledger_unlock(t->shm);
		break;
	case KP_LK_HOST:
		host_heard(t, r.origin, r.at_ms, r.lag, r.host);
		break;
	default: /* a tombstone, or a later version's record */
		break;
	}
}

/* Sends a marker to every partition for the tickets handed out so far. */
static void round_start(struct kp_ltopic *t, int64_t now)
{
	unsigned char v[KP_LREC_HEAD + 8];
	char key[64];

	t->round = __atomic_load_n(&t->shm->catchup_asked, __ATOMIC_ACQUIRE);
	t->markers_left = t->n_parts;
	t->round_at = now;
	kp_lrec_head(v, KP_LK_MARKER, t->origin, kp_now_ms());
	kp_lrec_put64(v + KP_LREC_HEAD, t->round);
	for (int p = 0; p < t->n_parts; p++) {
		snprintf(key, sizeof(key), "kpool.marker.%016" PRIx64 ".%d", t->origin, p);
		if (produce(t, p, key, strlen(key), v, sizeof(v), kp_now_ms(), 2))
			t->round_at = now - ROUND_MS + RETRY_MS; /* sent again soon */
	}
}

/* This host's lag, and how it says it to the others. */
static void lag(struct kp_ltopic *t, int64_t now)
{
	int64_t total = 0, lo, hi;
	unsigned char v[KP_LREC_HEAD + 8 + sizeof(t->host)];
	char key[64];
	size_t n = strlen(t->host);

	for (int p = 0; p < t->n_parts; p++)
		if (rd_kafka_get_watermark_offsets(t->cons, t->topic, p, &lo, &hi) == 0 && hi >= 0)
			total += hi > (t->pos[p] > lo ? t->pos[p] : lo)
				     ? hi - (t->pos[p] > lo ? t->pos[p] : lo)
				     : 0;
	t->shm->topic_lag = total;
	t->next_lag = now + 1000;
	if (now < t->next_host)
		return;
	t->next_host = now + HOST_EVERY_MS;
	kp_lrec_head(v, KP_LK_HOST, t->origin, kp_now_ms());
	kp_lrec_put64(v + KP_LREC_HEAD, (uint64_t)total);
	memcpy(v + KP_LREC_HEAD + 8, t->host, n);
	snprintf(key, sizeof(key), "kpool.host.%016" PRIx64, t->origin);
	produce(t, RD_KAFKA_PARTITION_UA, key, strlen(key), v, KP_LREC_HEAD + 8 + n, kp_now_ms(),
		3);
}

/*
 * Does what is due: looks for the topic until it is there, takes Kafka's
 * acknowledgements, sends again what it refused, reads what the other hosts
 * wrote, and answers the workers' tickets.  Waits for nothing but the
 * store, except while looking for the topic (ASK_MS, CREATE_MS).
 */
void kp_ltopic_step(struct kp_ltopic *t, bool stopping)
{
	int64_t now = kp_mono_ms();
	rd_kafka_message_t *ms[256];
	size_t got = 0;
	ssize_t n;

	rd_kafka_poll(t->prod, 0);
	while (t->acked_to < t->sent_to && t->slot[t->acked_to % KP_LEDGER_RING] == S_ACKED)
		t->slot[t->acked_to++ % KP_LEDGER_RING] = S_FREE;
	if (!t->ready) {
		if (!stopping && now >= t->next_try)
			setup(t, now);
		if (!t->ready)
			return;
	}
	if ((t->n_failed || t->resend) && now >= t->resend_at) {
		struct pending *p = t->resend;
		t->resend = NULL;
		t->n_failed = 0;
		for (uint64_t s = t->acked_to; s < t->sent_to;) {
			size_t run = 0;
			while (s + run < t->sent_to && run < IDS_MAX &&
			       t->slot[(s + run) % KP_LEDGER_RING] == S_FAILED)
				run++;
			if (run)
				send_ids(t, s, run);
			s += run ? run : 1;
		}
		while (p) {
			struct pending *next = p->next;
			send_pending(t, p);
			p = next;
		}
		t->resend_at = now + RETRY_MS;
	}
	while (got < READ_MAX && t->ready &&
	       (n = rd_kafka_consume_batch_queue(t->cq, 0, ms, 256)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (t->n_imp + IDS_MAX > READ_MAX) /* room for a whole record */
				import(t, now);
			/* (not ready: the store refused what was read; it is read again) */
			if (t->ready && ms[i]->err == RD_KAFKA_RESP_ERR_NO_ERROR)
				read_one(t, ms[i]);
			else if (t->ready && ms[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				kp_log(KP_WARNING, "ledger topic %s: %s", t->topic,
				       rd_kafka_message_errstr(ms[i]));
			rd_kafka_message_destroy(ms[i]);
		}
		got += (size_t)n;
	}
	import(t, now);
	if (!t->ready)
		return;
	if (t->round && t->markers_left <= 0) {
		__atomic_store_n(&t->shm->catchup_done, t->round, __ATOMIC_RELEASE);
		kp_log(KP_DEBUG, "ledger caught up to ticket %" PRIu64 " in %" PRId64 " ms",
		       t->round, now - t->round_at);
		t->round = 0;
	}
	if (!stopping &&
	    ((t->round == 0 && __atomic_load_n(&t->shm->catchup_asked, __ATOMIC_ACQUIRE) >
				   __atomic_load_n(&t->shm->catchup_done, __ATOMIC_ACQUIRE)) ||
	     (t->round && now - t->round_at >= ROUND_MS)))
		round_start(t, now);
	if (now >= t->next_lag)
		lag(t, now);
}

/*
 * Sends n finished ids of the ring, from sequence number first on (the
 * ring keeps them until kp_ltopic_acked() has passed them).
 */
void kp_ltopic_send(struct kp_ltopic *t, uint64_t first, size_t n)
{
	if (t->acked_to == t->sent_to)
		t->acked_to = t->sent_to = first;
	for (size_t i = 0; i < n; i += IDS_MAX)
		send_ids(t, first + i, n - i < IDS_MAX ? n - i : IDS_MAX);
	t->sent_to = first + n;
}

/* Sends a crash count the supervisor noted. */
void kp_ltopic_crash(struct kp_ltopic *t, const struct kp_lcrash *c)
{
	struct pending *p = calloc(1, sizeof(*p));
	size_t n = strlen(c->event_id);

	if (p == NULL)
		return;
	memcpy(p->buf, c->id.h, sizeof(c->id.h));
	p->buf[16] = 'c';
	p->klen = 17;
	p->at_ms = kp_now_ms();
	kp_lrec_head(p->buf + p->klen, KP_LK_CRASH, t->origin, p->at_ms);
	p->buf[p->klen + KP_LREC_HEAD] = (unsigned char)(c->count > 255 ? 255 : c->count);
	p->buf[p->klen + KP_LREC_HEAD + 1] = (unsigned char)c->signal;
	if (n > 256)
		n = 256;
	memcpy(p->buf + p->klen + KP_LREC_HEAD + 2, c->event_id, n);
	p->vlen = KP_LREC_HEAD + 2 + n;
	send_pending(t, p);
}

/* The sequence number up to which Kafka has every id sent; UINT64_MAX when none is on its way. */
uint64_t kp_ltopic_acked(const struct kp_ltopic *t)
{
	return t->acked_to < t->sent_to ? t->acked_to : UINT64_MAX;
}

/* Waits up to flush_ms for what is on its way, then lets go; NULL is fine. */
void kp_ltopic_close(struct kp_ltopic *t, int flush_ms)
{
	if (t == NULL)
		return;
	if (t->prod) {
		rd_kafka_flush(t->prod, flush_ms);
		rd_kafka_purge(t->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(t->prod, 0); /* the purged come back: crash records are freed */
	}
	for (struct pending *p = t->resend, *next; p; p = next) {
		next = p->next;
		free(p);
	}
	if (t->cq)
		rd_kafka_queue_destroy(t->cq);
	if (t->cons) {
		rd_kafka_assign(t->cons, NULL);
		rd_kafka_destroy(t->cons);
	}
	if (t->prod)
		rd_kafka_destroy(t->prod);
	free(t->pos);
	free(t->slot);
	free(t->bootstrap);
	free(t);
}
