/*
 * ledger.h - a binding's ledger of event ids: the memory its processes share
 * (ledger.c), its durable store (ledger_store.c) and the process that makes
 * the one durable in the other (ledgerd.c).  ledger.c states the promise.
 */
#ifndef KP_LEDGER_H
#define KP_LEDGER_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KP_LEDGER_WAYS		     8		 /* entries per bucket */
#define KP_LEDGER_BUCKETS	     (1u << 13)	 /* 65,536 entries of 32 bytes: 2 MiB */
#define KP_LEDGER_RING		     (1u << 15)	 /* finished ids not yet durable: 1 MiB */
#define KP_LEDGER_CRASH_MAX	     16		 /* crash notes waiting for the ledger process */
#define KP_LEDGER_FILTER_MIN	     (64u << 10) /* bytes of one filter, at least ... */
#define KP_LEDGER_FILTER_MAX	     (64u << 20) /* ... and at most (each of two buffers) */
#define KP_LEDGER_FILTER_BITS_PER_ID 16		 /* a filter grows past this many bits an id */
#define KP_LEDGER_HOLD_MS	     5		 /* a durable entry stays in memory this long */
#define KP_LEDGER_LOOKUP_MS	     2		 /* a store lookup older than this is done again */
#define KP_LEDGER_WRITE_MAX	     8192	 /* ids written in one transaction, at most ... */
#define KP_LEDGER_WRITE_MIN	     1024	 /* ... and at least, unless ... */
#define KP_LEDGER_WRITE_WAIT_MS	     10		 /* ... the oldest has waited this long */
#define KP_LEDGER_IDLE_MS	     2		 /* how often an idle ledger process looks */
#define KP_LEDGER_SHARE_MS	     5	   /* shared: no new claim while an id is unshared longer */
#define KP_LEDGER_SHARE_TIMES	     2	   /* ... or this many times the usual wait, when longer */
#define KP_LEDGER_HOSTS		     16	   /* other hosts whose ledger lag is shown ... */
#define KP_LEDGER_HOST_KEEP_MS	     30000 /* ... if heard from within this */

/* An event id, as the ledger knows it: the first 128 bits of its SHA-256. */
struct kp_id {
	uint64_t h[2];
};

enum kp_lstate { KP_L_FREE, KP_L_CLAIMED, KP_L_DONE, KP_L_DEAD, KP_L_CRASHED };
#define KP_L_DURABLE 0x80		/* flag on a state: the store has it */
static inline int kp_l_state(uint8_t s) /* the state without its flags */
{
	return s & 0x7f;
}

struct kp_lentry {
	struct kp_id id;
	int64_t at_ms; /* finished (durable: when it became so); claimed: when */
	int32_t pid;   /* claimed: by whom */
	uint8_t state;
	uint8_t crashes; /* processes it killed */
	uint8_t signal;	 /* the last signal that did */
	uint8_t pad;
};

/* A finished id on its way to the store. */
struct kp_lrec {
	struct kp_id id;
	int64_t at_ms;
	uint8_t outcome; /* KP_L_DONE or KP_L_DEAD */
	uint8_t pad[7];
};

/* A job that killed a process, on its way to the store's crashes table. */
struct kp_lcrash {
	struct kp_id id;
	char event_id[256];
	int count, signal;
};

/* A host that shares the binding's ledger topic, as it last said. */
struct kp_lhost {
	uint64_t origin;
	int64_t lag;   /* records its tail had still to read */
	int64_t at_ms; /* when it said so */
	char name[64];
};

/* Where the ledger topic stands (ledger = kafka). */
enum kp_ltstate { KP_LT_OFF, KP_LT_STARTING, KP_LT_READY, KP_LT_FAILING };

/* A binding's rate on this host (rate.c): its shared bucket and share. */
struct kp_rate_shm {
	int64_t tat_ns;		     /* when the bucket is next empty (CLOCK_MONOTONIC) */
	volatile int32_t host_parts; /* partitions this host's processes hold ... */
	volatile int32_t total;	     /* ... of this many (0: not known yet) */
};

struct kp_ledger_shm {
	pthread_mutex_t lock; /* robust and shared: a process may die holding it */
	int64_t ttl_ms;
	volatile pid_t pid;	/* the ledger process, 0 while there is none */
	uint64_t head;		/* ring: next sequence number to write */
	volatile uint64_t tail; /* ring: everything before it is durable */
	uint32_t filter_buf;	/* which filter buffer is in use */
	uint64_t filter_blocks; /* its 64-byte blocks (a power of 2), 0 while being built */
	uint64_t filter_ids;	/* ids added to it */
	uint32_t n_crash;	/* crash notes waiting */
	uint32_t n_crashed;	/* entries holding crash counts: the crash guard looks only then */
	volatile int64_t disk_ids;    /* rows in the store, per the ledger process */
	volatile int64_t disk_bytes;  /* the store's files */
	volatile uint64_t lookups;    /* store lookups (a filter said maybe) */
	volatile uint64_t waits;      /* claims that found no room and waited */
	volatile uint64_t ring_waits; /* outcomes that found the ring full and waited */
	struct kp_lcrash crash[KP_LEDGER_CRASH_MAX];
	/* The ledger topic (ledgertopic.c), when the binding shares its ledger: */
	volatile uint64_t catchup_asked; /* tickets handed to workers at an assignment */
	volatile uint64_t catchup_done; /* the tail has read what was there at every one up to it */
	volatile int topic_state;	/* enum kp_ltstate */
	char topic_error[256];		/* why it is failing */
	volatile uint64_t produced, consumed, imported; /* records */
	volatile int64_t topic_lag;			/* records the tail has still to read */
	uint64_t origin;				/* this host's store, as its records say */
	volatile uint32_t sharing;     /* the ledger process shares the ledger: ... */
	volatile uint64_t shared_to;   /* ... Kafka has every id of the ring before this */
	volatile uint64_t share_waits; /* claims that waited for it */
	volatile int32_t share_ms;     /* how long an id may wait for it (>= KP_LEDGER_SHARE_MS) */
	uint32_t wake;		       /* futex: bumped to wake the ledger process ... */
	volatile uint32_t sleeping;    /* ... when it sleeps on it (a shared ledger) */
	uint32_t n_hosts;
	struct kp_lhost hosts[KP_LEDGER_HOSTS];
	struct kp_rate_shm rate; /* not the ledger's: the binding's memory on the host holds it */
	struct kp_lentry table[KP_LEDGER_BUCKETS * KP_LEDGER_WAYS];
	struct kp_lrec ring[KP_LEDGER_RING];
	/* then two filter buffers of KP_LEDGER_FILTER_MAX bytes each */
};

/* ledger.c: the shared memory, used by the supervisor, the workers and the ledger process. */
struct kp_ledger_shm *kp_ledger_map(int64_t ttl_ms);
void kp_ledger_unmap(struct kp_ledger_shm *l);
size_t kp_ledger_map_size(void);
void kp_ledger_id(const char *event_id, struct kp_id *id);
void kp_ledger_place_id(const char *where, struct kp_id *id);
void kp_ledger_lock(struct kp_ledger_shm *l);
void kp_ledger_unlock(struct kp_ledger_shm *l);
uint64_t *kp_ledger_filter(struct kp_ledger_shm *l, uint32_t buf);
void kp_ledger_filter_add(uint64_t *filter, uint64_t blocks, const struct kp_id *id);
void kp_ledger_made_durable(struct kp_ledger_shm *l, const struct kp_lrec *recs, size_t n,
			    uint64_t tail);
void kp_ledger_crash_load(struct kp_ledger_shm *l, const struct kp_id *id, int count, int signal);
void kp_ledger_reap(struct kp_ledger_shm *l, pid_t pid, const struct kp_id *hand,
		    const char *hand_event_id, int signal);
struct kp_ledger_counts {
	uint64_t claimed, pending, durable, crashed, capacity, memory_bytes, filter_bytes;
};
void kp_ledger_counts(const struct kp_ledger_shm *l, struct kp_ledger_counts *c);

/* What a claim found. */
enum kp_claim {
	KP_CLAIM_NEW,	/* claimed: call the handler */
	KP_CLAIM_DUP,	/* handled before: skip it */
	KP_CLAIM_BUSY,	/* in another call's hands: wait for its outcome */
	KP_CLAIM_FULL,	/* no room, or the store not ready: try again soon */
	KP_CLAIM_ERROR, /* the store could not be read: try again later */
};

/* A worker's handle on its binding's ledger. */
struct kp_ledger;
struct kp_ledger *kp_ledger_open(struct kp_ledger_shm *shm, const char *db_path);
void kp_ledger_close(struct kp_ledger *l);
enum kp_claim kp_ledger_claim(struct kp_ledger *l, const struct kp_id *id, bool replay,
			      bool idempotency, int *crashes, int *signal);
int kp_ledger_settle(struct kp_ledger *l, const struct kp_id *id, bool dead, uint64_t *seq);
void kp_ledger_release(struct kp_ledger *l, const struct kp_id *id);
uint64_t kp_ledger_durable(const struct kp_ledger *l);
uint64_t kp_ledger_catchup_ask(struct kp_ledger *l);
bool kp_ledger_caught_up(const struct kp_ledger *l, uint64_t ticket);
void kp_ledger_import(struct kp_ledger_shm *l, const struct kp_lrec *recs, size_t n);
void kp_ledger_idle(struct kp_ledger_shm *l, uint64_t seen, int ms);

/* ledger_store.c: the durable ledger, state_dir/NAME.db. */
struct kp_lstore;
struct kp_lstore *kp_lstore_open(const char *path, bool readonly, int64_t ttl_ms, char *err,
				 size_t len);
void kp_lstore_close(struct kp_lstore *st);
int kp_lstore_write(struct kp_lstore *st, const struct kp_lrec *recs, size_t n);
int kp_lstore_lookup(struct kp_lstore *st, const struct kp_id *id, int64_t since_ms);
int kp_lstore_crash(struct kp_lstore *st, const struct kp_lcrash *c);
int kp_lstore_each_crash(struct kp_lstore *st,
			 void (*fn)(void *arg, const struct kp_id *id, int count, int signal),
			 void *arg);
int64_t kp_lstore_each_id(struct kp_lstore *st, void (*fn)(void *arg, const struct kp_id *id),
			  void *arg);
int kp_lstore_prune(struct kp_lstore *st, int64_t now_ms);
int kp_lstore_begin(struct kp_lstore *st);
int kp_lstore_commit(struct kp_lstore *st);
int kp_lstore_meta_put(struct kp_lstore *st, const char *key, const char *value);
int kp_lstore_meta_get(struct kp_lstore *st, const char *key, char *value, size_t len);
int64_t kp_lstore_bytes(struct kp_lstore *st);

/* ledgerd.c: the ledger process of one binding. */
struct kp_conf;
struct kp_binding;
int kp_ledger_run(const struct kp_conf *conf, const struct kp_binding *b,
		  struct kp_ledger_shm *shm);

/* ledgerrec.c: the records of the ledger topic. */
#define KP_LREC_VERSION 1
#define KP_LREC_HEAD	18 /* version, kind, origin, ms */
#define KP_LREC_ID_BYTES                                                                           \
	(16 + 1 + 8) /* an id of an ids record: its key, outcome, finished-at ms                   \
		      */
enum kp_lkind { KP_LK_NONE = 0, KP_LK_IDS = 1, KP_LK_CRASH = 3, KP_LK_MARKER = 4, KP_LK_HOST = 5 };
struct kp_lmsg { /* a record, read */
	enum kp_lkind kind;
	uint64_t origin;
	int64_t at_ms;
	const unsigned char *ids; /* KP_LK_IDS: n_ids of KP_LREC_ID_BYTES, in the record */
	size_t n_ids;
	struct kp_lcrash crash; /* KP_LK_CRASH */
	uint64_t round;		/* KP_LK_MARKER */
	int64_t lag;		/* KP_LK_HOST */
	char host[64];
};
size_t kp_lrec_head(unsigned char *v, enum kp_lkind kind, uint64_t origin, int64_t ms);
void kp_lrec_put_id(unsigned char *p, const struct kp_lrec *r);
void kp_lrec_put64(unsigned char *p, uint64_t v);
void kp_lrec_parse(const void *key, size_t klen, const void *value, size_t len, struct kp_lmsg *m);
bool kp_lrec_id(const struct kp_lmsg *m, size_t i, struct kp_lrec *r);

/* ledgertopic.c: the ledger topic that the hosts of a binding share (ledger = kafka). */
struct kp_ltopic;
struct kp_ltopic *kp_ltopic_new(const struct kp_conf *conf, const struct kp_binding *b,
				struct kp_ledger_shm *shm, struct kp_lstore *st,
				volatile sig_atomic_t *stopping, char *err, size_t len);
void kp_ltopic_step(struct kp_ltopic *t, bool stopping);
void kp_ltopic_send(struct kp_ltopic *t, uint64_t first, size_t n);
void kp_ltopic_crash(struct kp_ltopic *t, const struct kp_lcrash *c);
uint64_t kp_ltopic_acked(const struct kp_ltopic *t);
void kp_ltopic_close(struct kp_ltopic *t, int flush_ms);

#endif /* KP_LEDGER_H */
