/*
 * ledger.c - the ledger of a binding's event ids, in memory its processes
 * share.  The promise kept here:
 *
 *   On one host, a job's event id is handled at most once, however many
 *   copies of it arrive, on whatever partitions and however close together,
 *   unless the process handling it is killed while the job (or its batch) is
 *   in hand; then that job is handled again, once, by the process that takes
 *   it over.  Ids are forgotten idempotency_ttl after they finished.
 *
 * How: before its handler is called, a job's id is claimed in a table in
 * memory that the supervisor mapped before forking and that so outlives
 * every worker.  A sibling meeting a claimed id waits for its outcome; one
 * meeting a finished id skips the job as a duplicate.  A finished id goes into
 * a ring that the binding's ledger process (ledgerd.c) writes to SQLite
 * (ledger_store.c); its offset is committed only once the ring has passed it
 * (kp_ledger_durable()), so nothing committed is ever unknown to the store.
 * A process that dies leaves its claims to the supervisor, which releases
 * them and counts a crash against the job that was in hand (kp_ledger_reap()).
 *
 * The table is 2^14 buckets of 8 entries: an id lives in the bucket its hash
 * names, so a lookup reads one bucket and nothing is ever moved.  An entry
 * that is durable (and has been for KP_LEDGER_HOLD_MS) may make room for a
 * new one; an id not in the table is looked for in a blocked Bloom filter of
 * everything in the store, and only when the filter says maybe is the store
 * read.  So a new id costs one hash, one bucket and one cache line of filter,
 * under one lock, and no disk at all.
 */
#include "config.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kpoold.h"
#include "ledger.h"

#define FILTER_PROBES 6	  /* bits set per id, in one 512-bit block */
#define MARK_CHUNK    256 /* entries marked durable under one hold of the lock */

/* The shared memory's header, rounded up to whole pages. */
static size_t head_size(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (sizeof(struct kp_ledger_shm) + page - 1) / page * page;
}

/* Bytes of address space one ledger takes (most of it never touched). */
size_t kp_ledger_map_size(void)
{
	return head_size() + 2 * (size_t)KP_LEDGER_FILTER_MAX;
}

/*
 * Maps a new, empty ledger shared with children forked after; NULL on
 * failure.  Pages are taken only as they are touched.
 */
struct kp_ledger_shm *kp_ledger_map(int64_t ttl_ms)
{
	pthread_mutexattr_t a;
	struct kp_ledger_shm *l = mmap(NULL, kp_ledger_map_size(), PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (l == MAP_FAILED)
		return NULL;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (pthread_mutex_init(&l->lock, &a) != 0) {
		pthread_mutexattr_destroy(&a);
		munmap(l, kp_ledger_map_size());
		return NULL;
	}
	pthread_mutexattr_destroy(&a);
	l->ttl_ms = ttl_ms;
	return l;
}

/* Unmaps a ledger from kp_ledger_map(); NULL is fine. */
void kp_ledger_unmap(struct kp_ledger_shm *l)
{
	if (l)
		munmap(l, kp_ledger_map_size());
}

/* The filter buffer buf (0 or 1). */
uint64_t *kp_ledger_filter(struct kp_ledger_shm *l, uint32_t buf)
{
	return (uint64_t *)((char *)l + head_size() + (size_t)buf * KP_LEDGER_FILTER_MAX);
}

/*
 * Takes the ledger's lock.  A process that died holding it left the table
 * as its last store did: every change made under the lock is one that a
 * reader can meet half done without harm (a claim, a state), so the lock is
 * simply made consistent again.
 */
void kp_ledger_lock(struct kp_ledger_shm *l)
{
	if (pthread_mutex_lock(&l->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&l->lock);
}

/* Releases the lock kp_ledger_lock() took. */
void kp_ledger_unlock(struct kp_ledger_shm *l)
{
	pthread_mutex_unlock(&l->lock);
}

/* The first 128 bits of SHA-256(prefix || s), n bytes of prefix. */
static void digest(const char *prefix, size_t n, const char *s, struct kp_id *id)
{
	static EVP_MD_CTX *ctx;
	static EVP_MD *sha256; /* fetched once: a fetch per digest costs more than the digest */
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (ctx == NULL)
		ctx = EVP_MD_CTX_new();
	if (sha256 == NULL)
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (ctx == NULL || sha256 == NULL || !EVP_DigestInit_ex2(ctx, sha256, NULL) ||
	    (n > 0 && !EVP_DigestUpdate(ctx, prefix, n)) || !EVP_DigestUpdate(ctx, s, strlen(s)) ||
	    !EVP_DigestFinal_ex(ctx, md, &len) || len < 16) {
		/* Out of memory in OpenSSL: still a key, if a weaker one. */
		uint64_t h = 1469598103934665603ull;
		for (size_t i = 0; i < n; i++)
			h = (h ^ (unsigned char)prefix[i]) * 1099511628211ull;
		for (const char *p = s; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		id->h[0] = h;
		id->h[1] = ~h;
		return;
	}
	memcpy(id->h, md, sizeof(id->h));
}

/*
 * The ledger's key for an event id: the first 128 bits of its SHA-256, the
 * same on every host and for every version, and for which two ids of one
 * ledger colliding is not a risk worth a thought (2^-128 per pair).
 */
void kp_ledger_id(const char *event_id, struct kp_id *id)
{
	digest(NULL, 0, event_id, id);
}

/*
 * The key of a job that carries no event id, from where it is
 * ("topic/partition/offset"): hashed after a prefix that begins with a NUL
 * byte, which no event id has, so that no job can name another's place as
 * its id and have it taken for a duplicate.
 */
void kp_ledger_place_id(const char *where, struct kp_id *id)
{
	static const char prefix[] = "\0kpool.place\0";

	digest(prefix, sizeof(prefix) - 1, where, id);
}

/* Whether two ids are the same. */
static bool id_eq(const struct kp_id *a, const struct kp_id *b)
{
	return a->h[0] == b->h[0] && a->h[1] == b->h[1];
}

/* The first way of id's bucket in the table. */
static struct kp_lentry *bucket(struct kp_ledger_shm *l, const struct kp_id *id)
{
	return &l->table[(id->h[0] & (KP_LEDGER_BUCKETS - 1)) * KP_LEDGER_WAYS];
}

/* An entry that finished longer than idempotency_ttl ago counts as absent. */
static bool expired(const struct kp_ledger_shm *l, const struct kp_lentry *e, int64_t now)
{
	int s = kp_l_state(e->state);

	return (s == KP_L_DONE || s == KP_L_DEAD || s == KP_L_CRASHED) &&
	       e->at_ms < now - l->ttl_ms;
}

/* The live entry of id, or NULL; an expired one is freed on the way. */
static struct kp_lentry *find(struct kp_ledger_shm *l, const struct kp_id *id, int64_t now)
{
	struct kp_lentry *b = bucket(l, id);

	for (int i = 0; i < KP_LEDGER_WAYS; i++) {
		if (b[i].state == KP_L_FREE || !id_eq(&b[i].id, id))
			continue;
		if (expired(l, &b[i], now)) {
			b[i].state = KP_L_FREE;
			return NULL;
		}
		return &b[i];
	}
	return NULL;
}

/*
 * A free entry in id's bucket: a free one, else one that may go (expired,
 * or durable for KP_LEDGER_HOLD_MS, the oldest first).  NULL when every
 * entry is in use; the caller waits for the ledger process.
 */
static struct kp_lentry *make_room(struct kp_ledger_shm *l, const struct kp_id *id, int64_t now)
{
	struct kp_lentry *b = bucket(l, id), *victim = NULL;

	for (int i = 0; i < KP_LEDGER_WAYS; i++) {
		struct kp_lentry *e = &b[i];
		int s = kp_l_state(e->state);

		if (e->state == KP_L_FREE || expired(l, e, now))
			return e;
		if (!(e->state & KP_L_DURABLE) || s == KP_L_CRASHED ||
		    e->at_ms >= now - KP_LEDGER_HOLD_MS)
			continue;
		if (victim == NULL || e->at_ms < victim->at_ms)
			victim = e;
	}
	return victim;
}

/* Sets the FILTER_PROBES bits of id in its block. */
void kp_ledger_filter_add(uint64_t *filter, uint64_t blocks, const struct kp_id *id)
{
	uint64_t *blk = filter + (id->h[1] & (blocks - 1)) * 8;

	for (int k = 0; k < FILTER_PROBES; k++) {
		unsigned bit = (unsigned)(id->h[0] >> (9 * k + 10)) & 511;
		__atomic_fetch_or(&blk[bit >> 6], 1ull << (bit & 63), __ATOMIC_RELAXED);
	}
}

/* Whether the store may hold id. */
static bool filter_maybe(struct kp_ledger_shm *l, const struct kp_id *id)
{
	uint64_t blocks = l->filter_blocks;
	const uint64_t *blk = kp_ledger_filter(l, l->filter_buf) + (id->h[1] & (blocks - 1)) * 8;
	for (int k = 0; k < FILTER_PROBES; k++) {
		unsigned bit = (unsigned)(id->h[0] >> (9 * k + 10)) & 511;
		if (!(__atomic_load_n(&blk[bit >> 6], __ATOMIC_RELAXED) & (1ull << (bit & 63))))
			return false;
	}
	return true;
}

/*
 * The supervisor, when process pid has ended: its claims are released, and
 * if hand (the job in hand) is given, a crash is counted against it and
 * noted for the store, with the signal that killed the process (0 when it
 * exited: a handler that calls exit() is as fatal as one that faults).  Never fails; a crash that
 * finds no room in memory is logged.
 */
void kp_ledger_reap(struct kp_ledger_shm *l, pid_t pid, const struct kp_id *hand,
		    const char *hand_event_id, int signal)
{
	int64_t now = kp_now_ms();
	struct kp_lentry *e;

	kp_ledger_lock(l);
	for (size_t i = 0; i < KP_LEDGER_BUCKETS * KP_LEDGER_WAYS; i++) {
		e = &l->table[i];
		if (kp_l_state(e->state) == KP_L_CLAIMED && e->pid == pid) {
			e->state = e->crashes ? KP_L_CRASHED : KP_L_FREE;
			e->pid = 0;
			e->at_ms = now;
		}
	}
	if (hand) {
		e = find(l, hand, now);
		if (e == NULL && (e = make_room(l, hand, now)) != NULL)
			*e = (struct kp_lentry){.id = *hand};
		if (e == NULL) {
			kp_log(KP_ERROR, "ledger full: the crash of event=%s is not counted",
			       hand_event_id);
		} else {
			if (e->crashes < UINT8_MAX)
				e->crashes++;
			e->signal = (uint8_t)signal;
			e->state = KP_L_CRASHED;
			e->at_ms = now;
			l->n_crashed++;
			if (l->n_crash < KP_LEDGER_CRASH_MAX) {
				struct kp_lcrash *c = &l->crash[l->n_crash++];
				c->id = *hand;
				snprintf(c->event_id, sizeof(c->event_id), "%s", hand_event_id);
				c->count = e->crashes;
				c->signal = signal;
			}
		}
	}
	kp_ledger_unlock(l);
}

/*
 * Calls fn on the entry of each of recs that the table holds, under the
 * lock, let go every MARK_CHUNK entries for the workers in between.
 */
static void each_entry(struct kp_ledger_shm *l, const struct kp_lrec *recs, size_t n,
		       void (*fn)(struct kp_lentry *e, const struct kp_lrec *r, int64_t now))
{
	int64_t now = kp_now_ms();

	for (size_t i = 0; i < n; i++) {
		struct kp_lentry *e;
		if (i % MARK_CHUNK == 0) {
			if (i > 0)
				kp_ledger_unlock(l);
			kp_ledger_lock(l);
		}
		if ((e = find(l, &recs[i].id, now)) != NULL)
			fn(e, &recs[i], now);
	}
	if (n > 0)
		kp_ledger_unlock(l);
}

/* Marks e durable when what was written is still its outcome (a later one waits its turn). */
static void mark_durable(struct kp_lentry *e, const struct kp_lrec *r, int64_t now)
{
	if (e->state == r->outcome) {
		e->state |= KP_L_DURABLE;
		e->at_ms = now;
	}
}

/*
 * The ledger process, once the store has recs: their entries become durable
 * (evictable after KP_LEDGER_HOLD_MS) and the ring's tail moves to tail,
 * which lets the workers commit the offsets behind them.
 */
void kp_ledger_made_durable(struct kp_ledger_shm *l, const struct kp_lrec *recs, size_t n,
			    uint64_t tail)
{
	each_entry(l, recs, n, mark_durable);
	kp_ledger_lock(l);
	l->filter_ids += n;
	__atomic_store_n(&l->tail, tail, __ATOMIC_RELEASE);
	kp_ledger_unlock(l);
}

/*
 * The ledger process, at start: a job's crash count as the store has it
 * (the caller holds the lock).  No room: the count is left to the store.
 */
void kp_ledger_crash_load(struct kp_ledger_shm *l, const struct kp_id *id, int count, int signal)
{
	int64_t now = kp_now_ms();
	struct kp_lentry *e = find(l, id, now);

	if (e == NULL && (e = make_room(l, id, now)) != NULL) {
		*e = (struct kp_lentry){
		    .id = *id, .at_ms = now, .state = KP_L_CRASHED | KP_L_DURABLE};
		l->n_crashed++;
	}
	if (e && e->crashes < count) {
		e->crashes = (uint8_t)(count > UINT8_MAX ? UINT8_MAX : count);
		e->signal = (uint8_t)signal;
	}
}

/* What the table holds now, for /metrics; read without the lock. */
void kp_ledger_counts(const struct kp_ledger_shm *l, struct kp_ledger_counts *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < KP_LEDGER_BUCKETS * KP_LEDGER_WAYS; i++) {
		uint8_t st = l->table[i].state;
		switch (kp_l_state(st)) {
		case KP_L_CLAIMED:
			c->claimed++;
			break;
		case KP_L_DONE:
		case KP_L_DEAD:
			if (st & KP_L_DURABLE)
				c->durable++;
			else
				c->pending++;
			break;
		case KP_L_CRASHED:
			c->crashed++;
			break;
		}
	}
	c->capacity = KP_LEDGER_BUCKETS * KP_LEDGER_WAYS;
	c->filter_bytes = l->filter_blocks * 64;
	c->memory_bytes = sizeof(*l) + c->filter_bytes;
}

/* A worker's handle: the shared ledger, and the store for the filter's maybes. */
struct kp_ledger {
	struct kp_ledger_shm *shm;
	char *db_path;
	struct kp_lstore *store; /* opened at the first maybe */
	pid_t pid;
};

/* A worker's handle on its binding's ledger; NULL if out of memory. */
struct kp_ledger *kp_ledger_open(struct kp_ledger_shm *shm, const char *db_path)
{
	struct kp_ledger *l = calloc(1, sizeof(*l));

	if (l == NULL || (l->db_path = strdup(db_path)) == NULL) {
		free(l);
		return NULL;
	}
	l->shm = shm;
	l->pid = getpid();
	return l;
}

/* A worker's handle on the ledger goes; the shared memory stays the supervisor's. NULL is fine. */
void kp_ledger_close(struct kp_ledger *l)
{
	if (l == NULL)
		return;
	kp_lstore_close(l->store);
	free(l->db_path);
	free(l);
}

/*
 * What the store says of id: KP_L_DONE, KP_L_DEAD, 0 (nothing), or -1 when
 * it cannot be read (not made yet by the ledger process, or an error).
 */
static int store_lookup(struct kp_ledger *l, const struct kp_id *id, int64_t now)
{
	char err[512];

	if (l->store == NULL) {
		l->store = kp_lstore_open(l->db_path, true, l->shm->ttl_ms, err, sizeof(err));
		if (l->store == NULL)
			return -1;
	}
	__atomic_add_fetch(&l->shm->lookups, 1, __ATOMIC_RELAXED);
	return kp_lstore_lookup(l->store, id, now - l->shm->ttl_ms);
}

/* Now, to the millisecond (kp_now_ms() is the coarse clock: 4 ms steps). */
static int64_t now_fine_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Whether the oldest finished id that Kafka does not have yet (the ledger
 * being shared) finished more than share_ms ago: KP_LEDGER_SHARE_MS, or
 * KP_LEDGER_SHARE_TIMES the usual wait for Kafka when that is longer (the
 * ledger process measures it).  Then no new job is claimed until Kafka has
 * it: what a host's death repeats on the others stays a few milliseconds of
 * work, even when the broker stops answering for a while (a pause of its JVM).
 */
static bool unshared_too_long(const struct kp_ledger_shm *l)
{
	uint64_t to, head;

	if (!__atomic_load_n(&l->sharing, __ATOMIC_RELAXED))
		return false;
	to = __atomic_load_n(&l->shared_to, __ATOMIC_ACQUIRE);
	head = __atomic_load_n(&l->head, __ATOMIC_ACQUIRE);
	/* the ring keeps an entry until the tail, never past shared_to, has passed it */
	return to < head && l->ring[to % KP_LEDGER_RING].at_ms < now_fine_ms() - l->share_ms;
}

/*
 * Claims id for a handler call.  replay: the job is a replay from the
 * dead-letter topic, which a dead-lettered id does not stop.  Without
 * idempotency nothing is claimed; only the crash count is looked up.
 * *crashes and *signal get the processes this id killed and how.
 */
enum kp_claim kp_ledger_claim(struct kp_ledger *l, const struct kp_id *id, bool replay,
			      bool idempotency, int *crashes, int *signal)
{
	struct kp_ledger_shm *shm = l->shm;
	struct kp_lentry *e;
	int64_t now = kp_now_ms(), looked_at = 0;
	int stored = 0;

	*crashes = *signal = 0;
	if (!idempotency && __atomic_load_n(&shm->n_crashed, __ATOMIC_RELAXED) == 0)
		return KP_CLAIM_NEW;
	if (idempotency && unshared_too_long(shm)) {
		__atomic_add_fetch(&shm->share_waits, 1, __ATOMIC_RELAXED);
		return KP_CLAIM_FULL;
	}
	kp_ledger_lock(shm);
	for (;;) {
		e = find(shm, id, now);
		if (!idempotency) {
			if (e) {
				*crashes = e->crashes;
				*signal = e->signal;
			}
			kp_ledger_unlock(shm);
			return KP_CLAIM_NEW;
		}
		if (e)
			break;
		/* Not in memory: the store has it only if the filter says maybe.
		 * The store is read outside the lock; a store answer older than
		 * KP_LEDGER_LOOKUP_MS could have missed an entry evicted meanwhile
		 * (entries stay KP_LEDGER_HOLD_MS after they became durable). */
		if (looked_at && now - looked_at < KP_LEDGER_LOOKUP_MS)
			break;
		if (shm->filter_blocks == 0) { /* the ledger process is not ready yet */
			kp_ledger_unlock(shm);
			return KP_CLAIM_FULL;
		}
		if (!filter_maybe(shm, id)) {
			stored = 0;
			break;
		}
		kp_ledger_unlock(shm);
		looked_at = kp_now_ms();
		stored = store_lookup(l, id, looked_at);
		if (stored < 0)
			return KP_CLAIM_ERROR;
		now = kp_now_ms();
		kp_ledger_lock(shm);
	}
	if (e) {
		switch (kp_l_state(e->state)) {
		case KP_L_CLAIMED:
			kp_ledger_unlock(shm);
			return KP_CLAIM_BUSY;
		case KP_L_DONE:
			kp_ledger_unlock(shm);
			return KP_CLAIM_DUP;
		case KP_L_DEAD:
			if (!replay) {
				kp_ledger_unlock(shm);
				return KP_CLAIM_DUP;
			}
			break;
		}
		*crashes = e->crashes;
		*signal = e->signal;
	} else if (stored == KP_L_DONE || (stored == KP_L_DEAD && !replay)) {
		/* Keep what the store said where it costs nothing. */
		e = make_room(shm, id, now);
		if (e && e->state == KP_L_FREE)
			*e = (struct kp_lentry){
			    .id = *id, .at_ms = now, .state = (uint8_t)(stored | KP_L_DURABLE)};
		kp_ledger_unlock(shm);
		return KP_CLAIM_DUP;
	} else if ((e = make_room(shm, id, now)) == NULL) {
		__atomic_add_fetch(&shm->waits, 1, __ATOMIC_RELAXED);
		kp_ledger_unlock(shm);
		return KP_CLAIM_FULL;
	} else {
		*e = (struct kp_lentry){.id = *id};
	}
	e->state = KP_L_CLAIMED;
	e->pid = l->pid;
	e->at_ms = now;
	kp_ledger_unlock(shm);
	return KP_CLAIM_NEW;
}

/*
 * Records the outcome of a claimed id: done, or dead-lettered.  *seq gets
 * the ring position that kp_ledger_durable() must pass before the job's
 * offset may be committed.  -1 when the ring is full (the ledger process is
 * behind): nothing was recorded, the caller tries again.
 */
int kp_ledger_settle(struct kp_ledger *l, const struct kp_id *id, bool dead, uint64_t *seq)
{
	struct kp_ledger_shm *shm = l->shm;
	int64_t now = shm->sharing ? now_fine_ms() : kp_now_ms();
	uint8_t outcome = dead ? KP_L_DEAD : KP_L_DONE;
	struct kp_lentry *e;

	kp_ledger_lock(shm);
	if (shm->head - shm->tail >= KP_LEDGER_RING) {
		shm->ring_waits++;
		kp_ledger_unlock(shm);
		return -1;
	}
	shm->ring[shm->head % KP_LEDGER_RING] =
	    (struct kp_lrec){.id = *id, .at_ms = now, .outcome = outcome};
	__atomic_store_n(&shm->head, shm->head + 1, __ATOMIC_RELEASE);
	*seq = shm->head;
	e = find(shm, id, now);
	if (e == NULL && (e = make_room(shm, id, now)) != NULL)
		*e = (struct kp_lentry){.id = *id}; /* without room, the store answers for it */
	if (e) {
		e->state = outcome;
		e->at_ms = now;
		e->pid = 0;
	}
	kp_ledger_unlock(shm);
	/* A ledger process that shares the ledger sleeps on wake when idle: the
	 * sooner it sends the id, the less a host's death repeats. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&shm->sleeping, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&shm->wake, 1, __ATOMIC_RELEASE);
		syscall(SYS_futex, &shm->wake, FUTEX_WAKE, 1, NULL, NULL, 0);
	}
	return 0;
}

/*
 * The ledger process, with nothing to do: sleeps up to ms, or until a worker
 * finishes a job (head is no longer seen).
 */
void kp_ledger_idle(struct kp_ledger_shm *l, uint64_t seen, int ms)
{
	uint32_t seq = __atomic_load_n(&l->wake, __ATOMIC_ACQUIRE);
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	__atomic_store_n(&l->sleeping, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&l->head, __ATOMIC_SEQ_CST) == seen)
		syscall(SYS_futex, &l->wake, FUTEX_WAIT, seq, &ts, NULL, 0);
	__atomic_store_n(&l->sleeping, 0, __ATOMIC_RELAXED);
}

/* Gives up a claim without an outcome (the job will come again). */
void kp_ledger_release(struct kp_ledger *l, const struct kp_id *id)
{
	struct kp_lentry *e;

	kp_ledger_lock(l->shm);
	e = find(l->shm, id, kp_now_ms());
	if (e && kp_l_state(e->state) == KP_L_CLAIMED && e->pid == l->pid)
		e->state = e->crashes ? KP_L_CRASHED : KP_L_FREE;
	kp_ledger_unlock(l->shm);
}

/* The ring position up to which every outcome is in the store. */
uint64_t kp_ledger_durable(const struct kp_ledger *l)
{
	return __atomic_load_n(&l->shm->tail, __ATOMIC_ACQUIRE);
}

/*
 * A worker given partitions, when the binding's hosts share the ledger: a
 * ticket that kp_ledger_caught_up() honours once the ledger process has read
 * the ledger topic up to where it ended after this call.
 */
uint64_t kp_ledger_catchup_ask(struct kp_ledger *l)
{
	return __atomic_add_fetch(&l->shm->catchup_asked, 1, __ATOMIC_ACQ_REL);
}

/* Whether the ledger process has read the ledger topic up to where ticket asked. */
bool kp_ledger_caught_up(const struct kp_ledger *l, uint64_t ticket)
{
	return __atomic_load_n(&l->shm->catchup_done, __ATOMIC_ACQUIRE) >= ticket;
}

/*
 * An id another host finished, into entry e: done wins over dead; an id in
 * hand here is left alone.
 */
static void mark_imported(struct kp_lentry *e, const struct kp_lrec *r, int64_t now)
{
	int st = kp_l_state(e->state);

	if (st == KP_L_CLAIMED || st == KP_L_DONE || (st == KP_L_DEAD && r->outcome == KP_L_DEAD))
		return;
	e->state = (uint8_t)(r->outcome | KP_L_DURABLE);
	e->at_ms = now;
}

/*
 * The ledger process, once ids another host finished are in the store (and
 * the filter): an entry this host holds of one of them in memory learns its
 * outcome too, unless it is in hand here (both hosts handle it: the copies
 * came within the propagation delay).  A done outcome wins over a dead one.
 */
void kp_ledger_import(struct kp_ledger_shm *l, const struct kp_lrec *recs, size_t n)
{
	each_entry(l, recs, n, mark_imported);
	kp_ledger_lock(l);
	l->filter_ids += n;
	kp_ledger_unlock(l);
}
