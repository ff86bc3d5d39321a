/*
 * ledgerd.c - a binding's ledger process: makes what its workers finished
 * durable, off their path and on another core.  It drains the ring of the
 * shared ledger (ledger.c) into the store (ledger_store.c) in transactions
 * of up to KP_LEDGER_WRITE_MAX ids, adds them to the filter, marks their
 * entries durable and moves the ring's tail, which lets the workers commit
 * the offsets behind them.  It also writes the crashes the supervisor noted,
 * drops generations past idempotency_ttl, and keeps the filter sized to the
 * store.  A child of the supervisor, like the workers; restarted if it dies,
 * when it picks up the ring where its predecessor left it.
 */
#include "config.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "kpoold.h"
#include "ledger.h"

#define STATS_EVERY_MS 1000
#define STOP_WAIT_MS   5000 /* how long a stop waits for Kafka to take the ids on their way */

static volatile sig_atomic_t stopping;

/* SIGTERM, SIGINT: the ledger process writes what is left and exits. */
static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

struct ledgerd {
	struct kp_ledger_shm *shm;
	struct kp_lstore *st;
	struct kp_ltopic *lt; /* the ledger topic, when the hosts share the ledger */
	uint64_t written;     /* the ring up to here is in the store ... */
	uint64_t sent;	      /* ... and up to here handed to the ledger topic */
	int64_t gen_check_ms, stats_ms;
	int64_t waiting_since; /* when the ring's oldest unwritten id was first seen */
	/* The ring below here was in it when this process started: a process
	 * before it may have written some of it (with a ledger topic, the tail
	 * waits for Kafka too), so those ids are looked up before they are
	 * written and counted again. */
	uint64_t recheck_to;
	struct kp_lrec batch[KP_LEDGER_WRITE_MAX];
	struct kp_lrec fresh[KP_LEDGER_WRITE_MAX]; /* of a batch, those not in the store */
};

struct fill {
	uint64_t *filter, blocks;
};

/* Adds one of the store's ids to the filter being built. */
static void fill_one(void *arg, const struct kp_id *id)
{
	struct fill *f = arg;

	kp_ledger_filter_add(f->filter, f->blocks, id);
}

/*
 * Builds a filter of everything in the store in the buffer not in use, sized
 * for twice as many ids, then puts it in use.  -1 on a store error (the old
 * filter stays).
 */
static int filter_build(struct ledgerd *d)
{
	struct kp_ledger_shm *shm = d->shm;
	uint32_t other = shm->filter_buf ^ 1;
	int64_t n = kp_lstore_each_id(d->st, NULL, NULL);
	uint64_t blocks = KP_LEDGER_FILTER_MIN / 64, old_blocks = shm->filter_blocks;
	struct fill f;

	if (n < 0)
		return -1;
	while (blocks * 512 < (uint64_t)(2 * n + 1) * KP_LEDGER_FILTER_BITS_PER_ID &&
	       blocks * 64 < KP_LEDGER_FILTER_MAX)
		blocks *= 2;
	f.filter = kp_ledger_filter(shm, other);
	f.blocks = blocks;
	memset(f.filter, 0, blocks * 64);
	if ((n = kp_lstore_each_id(d->st, fill_one, &f)) < 0)
		return -1;
	kp_ledger_lock(shm);
	shm->filter_buf = other;
	shm->filter_blocks = blocks;
	shm->filter_ids = (uint64_t)n;
	kp_ledger_unlock(shm);
	/* Nobody reads the old buffer now (the workers look under the lock). */
	if (old_blocks)
		madvise(kp_ledger_filter(shm, other ^ 1), old_blocks * 64, MADV_REMOVE);
	shm->disk_ids = n;
	kp_log(KP_DEBUG, "filter of %" PRId64 " ids in %llu KiB", n,
	       (unsigned long long)(blocks * 64 / 1024));
	return 0;
}

/* A crash count from the store, into the shared memory. */
static void load_crash(void *arg, const struct kp_id *id, int count, int signal)
{
	kp_ledger_crash_load(arg, id, count, signal);
}

/* Writes the crashes the supervisor noted. */
static void write_crashes(struct ledgerd *d)
{
	struct kp_lcrash c[KP_LEDGER_CRASH_MAX];
	uint32_t n;

	kp_ledger_lock(d->shm);
	n = d->shm->n_crash;
	memcpy(c, d->shm->crash, n * sizeof(*c));
	d->shm->n_crash = 0;
	kp_ledger_unlock(d->shm);
	for (uint32_t i = 0; i < n; i++) {
		kp_log(KP_NOTICE, "event=%s killed %d worker%s", c[i].event_id, c[i].count,
		       c[i].count == 1 ? "" : "s");
		if (kp_lstore_crash(d->st, &c[i]) < 0)
			kp_log(KP_ERROR, "event=%s: its crash count is not on disk", c[i].event_id);
		if (d->lt)
			kp_ltopic_crash(d->lt, &c[i]);
	}
}

/* Where the ring's tail may be: written, and, with a ledger topic, acknowledged by Kafka. */
static uint64_t safe_to(const struct ledgerd *d)
{
	uint64_t acked = d->lt ? kp_ltopic_acked(d->lt) : UINT64_MAX;

	return acked < d->written ? acked : d->written;
}

/*
 * Hands every finished id of the ring to the ledger topic at once (another
 * host learns of it the sooner), and writes up to KP_LEDGER_WRITE_MAX of
 * them to the store: once there are KP_LEDGER_WRITE_MIN, or the oldest has
 * waited KP_LEDGER_WRITE_WAIT_MS, or when stopping (a transaction's cost is
 * mostly the pages it dirties, and ids keyed by hash dirty a page each: the
 * more ids a transaction holds, the more of them share pages).  Returns how
 * many were written, or -1 when the store refused them (they stay in the
 * ring).
 */
static int drain(struct ledgerd *d)
{
	struct kp_ledger_shm *shm = d->shm;
	uint64_t head = __atomic_load_n(&shm->head, __ATOMIC_ACQUIRE), tail = d->written;
	size_t n = head - tail > KP_LEDGER_WRITE_MAX ? KP_LEDGER_WRITE_MAX : (size_t)(head - tail);
	uint64_t *filter;
	int64_t now = kp_mono_ms();

	if (d->lt && d->sent < head) {
		kp_ltopic_send(d->lt, d->sent, (size_t)(head - d->sent));
		d->sent = head;
	}

	if (n == 0) {
		d->waiting_since = 0;
		return 0;
	}
	if (d->waiting_since == 0)
		d->waiting_since = now;
	if (n < KP_LEDGER_WRITE_MIN && now - d->waiting_since < KP_LEDGER_WRITE_WAIT_MS &&
	    !stopping)
		return 0;
	d->waiting_since = 0;
	/* Workers write only at the head, and never past the tail: this part stays. */
	for (size_t i = 0; i < n; i++)
		d->batch[i] = shm->ring[(tail + i) % KP_LEDGER_RING];
	size_t m = n; /* new to the store */
	if (tail < d->recheck_to) {
		m = 0;
		for (size_t i = 0; i < n; i++) {
			int f = tail + i < d->recheck_to
				    ? kp_lstore_lookup(d->st, &d->batch[i].id, 0)
				    : 0;
			if (f < 0)
				return -1;
			if (f != d->batch[i].outcome && f != KP_L_DONE)
				d->fresh[m++] = d->batch[i];
		}
		if (m < n)
			kp_log(KP_INFO, "%zu of %zu ids were written before this process started",
			       n - m, n);
		if (m > 0 && kp_lstore_write(d->st, d->fresh, m) < 0)
			return -1;
	} else if (kp_lstore_write(d->st, d->batch, n) < 0) {
		return -1;
	}
	filter = kp_ledger_filter(shm, shm->filter_buf);
	for (size_t i = 0; i < n; i++)
		kp_ledger_filter_add(filter, shm->filter_blocks, &d->batch[i].id);
	d->written = tail + n;
	kp_ledger_made_durable(shm, d->batch, n, safe_to(d));
	shm->disk_ids += (int64_t)m;
	return (int)n;
}

/* Hourly chores, done when due: forgetting, the filter's size, the figures. */
static void chores(struct ledgerd *d, int64_t now)
{
	struct kp_ledger_shm *shm = d->shm;
	bool rebuild = shm->filter_ids * KP_LEDGER_FILTER_BITS_PER_ID > shm->filter_blocks * 512 &&
		       shm->filter_blocks * 64 < KP_LEDGER_FILTER_MAX;

	if (now >= d->gen_check_ms) {
		int n = kp_lstore_prune(d->st, kp_now_ms());
		if (n > 0) {
			kp_log(KP_INFO,
			       "forgot %d generation%s of ids older than the "
			       "idempotency_ttl",
			       n, n == 1 ? "" : "s");
			rebuild = true;
		}
		d->gen_check_ms = now + (shm->ttl_ms / 8 > 1000 ? shm->ttl_ms / 8 : 1000) / 4;
	}
	if (rebuild && filter_build(d) < 0)
		kp_log(KP_ERROR, "the filter could not be rebuilt; keeping the old one");
	if (now >= d->stats_ms) {
		shm->disk_bytes = kp_lstore_bytes(d->st);
		d->stats_ms = now + STATS_EVERY_MS;
	}
}

/*
 * The ledger process, run in the supervisor's new child: returns the status
 * the child exits with: 0 after a graceful stop (once the ring is written),
 * KP_EXIT_CONFIG when the store cannot be opened.
 */
int kp_ledger_run(const struct kp_conf *conf, const struct kp_binding *b, struct kp_ledger_shm *shm)
{
	struct sigaction sa = {.sa_handler = on_stop};
	struct ledgerd *d = calloc(1, sizeof(*d));
	char path[4096], err[512];
	int rc = KP_EXIT_CONFIG;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	kp_log_who("ledger=%s", b->name);
	kp_proctitle("kpoold: ledger %s", b->name);
	if (d == NULL)
		return rc;
	d->shm = shm;
	snprintf(path, sizeof(path), "%s/%s.db", conf->state_dir, b->name);
	d->st = kp_lstore_open(path, false, shm->ttl_ms, err, sizeof(err));
	if (d->st == NULL) {
		kp_log(KP_ERROR, "%s", err);
		goto out;
	}
	kp_ledger_lock(shm);
	kp_lstore_each_crash(d->st, load_crash, shm);
	kp_ledger_unlock(shm);
	if (filter_build(d) < 0) {
		kp_log(KP_ERROR, "%s: cannot read the ledger", path);
		goto out;
	}
	d->written = d->sent = shm->tail;
	d->recheck_to = shm->head;
	if (b->ledger_kafka &&
	    (d->lt = kp_ltopic_new(conf, b, shm, d->st, &stopping, err, sizeof(err))) == NULL) {
		kp_log(KP_ERROR, "ledger topic %s: %s", b->ledger_topic, err);
		goto out;
	}
	shm->shared_to = shm->tail;
	shm->share_ms = KP_LEDGER_SHARE_MS;
	shm->sharing = d->lt != NULL;
	shm->pid = getpid();
	kp_log(KP_INFO, "started ids=%" PRId64 " ring=%llu ledger=%s pid=%d", shm->disk_ids,
	       (unsigned long long)(shm->head - shm->tail),
	       b->ledger_kafka ? b->ledger_topic : "local", (int)getpid());
	for (int64_t stop_by = 0;;) {
		int64_t now = kp_mono_ms();
		int n = drain(d);

		if (shm->n_crash)
			write_crashes(d);
		if (d->lt) {
			uint64_t acked;
			kp_ltopic_step(d->lt, stopping);
			acked = kp_ltopic_acked(d->lt);
			__atomic_store_n(&shm->shared_to, acked < d->sent ? acked : d->sent,
					 __ATOMIC_RELEASE);
			if (safe_to(d) > shm->tail)
				kp_ledger_made_durable(shm, NULL, 0, safe_to(d));
		}
		chores(d, now);
		if (n < 0 && stopping)
			break; /* what is left is redelivered: its offsets were not committed */
		if (n < 0) {
			usleep(100 * 1000); /* the store refused: the ring waits */
			continue;
		}
		if (stopping && stop_by == 0)
			stop_by = now + STOP_WAIT_MS;
		/* Stopping: once the store has everything, and Kafka too (or it is
		 * not there, or does not answer within STOP_WAIT_MS: those ids'
		 * jobs were not committed, and are redelivered). */
		if (n == 0 && stopping && shm->head == d->written &&
		    (safe_to(d) >= d->written ||
		     __atomic_load_n(&shm->topic_state, __ATOMIC_ACQUIRE) != KP_LT_READY ||
		     now >= stop_by))
			break;
		if (n == 0 && d->lt) /* what another host learns waits on this: woken */
			kp_ledger_idle(shm, d->sent, 1);
		else if (n == 0)
			usleep(KP_LEDGER_IDLE_MS * 1000);
	}
	rc = 0;
	kp_log(KP_INFO, "stopped");
out:
	shm->sharing = 0; /* nobody to share them: claims do not wait for it */
	shm->pid = 0;
	kp_ltopic_close(d->lt, 1000);
	kp_lstore_close(d->st);
	free(d);
	return rc;
}
