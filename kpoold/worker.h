/*
 * worker.h - what a worker process's two halves share: the consumer
 * (consumer.c: the loop, librdkafka's callbacks, topics, offsets) and the
 * job path (jobpath.c: check, claim, call the handler, settle).
 */
#ifndef KP_WORKER_H
#define KP_WORKER_H

#include <librdkafka/rdkafka.h>
#include <signal.h>

#include "kpoold.h"

#define MAX_HEADERS 64
#define BATCH_MAX   256 /* jobs of one partition handed to handle_batch at once */

extern volatile sig_atomic_t kp_stopping;

/* Where a job is in its life; a parked job resumes at its stage. */
enum job_stage {
	JOB_CLAIM,   /* its id is to be claimed in the ledger */
	JOB_HANDLE,  /* claimed: the handler is to be called (again) */
	JOB_SENDING, /* its dead-letter copy is on its way, or waits to be sent again */
};

/* A job taken from Kafka and not finished yet. */
struct job {
	rd_kafka_message_t *m;
	bool heap;   /* parked jobs live on the heap, the others in the worker's scratch */
	bool bad;    /* not a job: dead-lettered as bad-input once claimed */
	bool replay; /* it carries kpool.replayed-from */
	enum job_stage stage;
	struct kpool_header hdrs[MAX_HEADERS]; /* point into m */
	size_t n_hdrs;
	char event_id[KP_EVENT_ID_MAX];
	struct kp_id id;     /* the ledger's key for event_id */
	int attempts;	     /* handler calls so far */
	enum kp_class class; /* set once it is to be dead-lettered */
	char reason[KPOOL_REASON_MAX];
	int64_t due_ms;		/* when parked: when to try again */
	int64_t retry_after_ms; /* the handler's wish for the next retry (kpool_retry_after) */
	int64_t deadline_ms;	/* wall clock: past it the job expires; 0 for none */
	int8_t deadline_from;	/* its source: a kp_deadline_names index, or -1 for max_age */
	bool rate_wait;		/* parked until the binding's rate has room for it */
	/* While its dead-letter copy is on its way: */
	int16_t topic;		  /* its partition, by binding topic index ... */
	uint64_t gen;		  /* ... and the assignment it was taken in */
	bool in_flight;		  /* the producer has it; else it waits for resend_ms */
	int64_t resend_ms;	  /* when to send it again after Kafka did not take it */
	struct job *next, **prev; /* in w->sending */
};

/* One partition this worker was assigned (kept, unassigned, once revoked). */
struct part {
	int16_t topic;
	int32_t partition;
	int64_t last_seen; /* highest offset taken from Kafka, to drop refetched ones */
	int64_t fin_next;  /* one past the highest offset finished, or -1 */
	uint64_t fin_seq;  /* the ledger ring position all those finishes need */
	int64_t cand_next; /* an offset to store once the ledger passes cand_seq */
	uint64_t cand_seq;
	int64_t stored;		      /* the last offset stored for commit */
	struct job *parked;	      /* head job waiting; the partition is paused */
	rd_kafka_message_t **backlog; /* arrived behind the parked job, in order */
	size_t n_backlog, cap_backlog;
	rd_kafka_message_t *batch[BATCH_MAX]; /* taken, for handle_batch, not started yet */
	size_t n_batch;
	uint64_t gen;	  /* counts assignments: a copy sent in an earlier one is not ours */
	int n_sending;	  /* its jobs whose dead-letter copies are on their way */
	bool paused;	  /* fetching is paused (a parked job, or too many copies on their way) */
	uint64_t catchup; /* assigned: waits until the shared ledger honours this ticket, or 0 */
	bool fetched;	  /* a message came since it was assigned: it may be paused (#5591) */
	bool assigned;	  /* in the assignment now: revoked, it is neither paused nor counted */
};

struct worker {
	const struct kp_conf *conf;
	const struct kp_binding *b;
	struct kp_slot *slot;
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue; /* the consumer's queue, taken from in batches */
	struct kp_dlq *dlq;
	struct kp_ledger *ledger;
	struct kp_plugin pl;
	struct kpool_host host;
	struct part *parts;
	size_t n_parts;
	int64_t store_due;   /* when to store the offsets the ledger made safe */
	struct job *sending; /* jobs whose dead-letter copies are on their way */
	size_t n_in_flight;  /* ... and of those, the ones the producer has */
	unsigned rnd;
	struct job scratch; /* the job in hand, unless it had to be parked */
	struct job *bjobs;  /* BATCH_MAX of them, when the plugin has handle_batch */
	char (*breasons)[KPOOL_REASON_MAX]; /* and their reasons */
	struct kp_watch *watch;		    /* the thread that asks Kafka what takes a round trip */
	bool topic_there[KP_TOPICS_MAX];    /* subscribed: the topic exists */
	uint64_t catchup;		    /* the ticket partitions wait on, 0 when none does */
	int64_t catchup_ms;		    /* since when */
	int n_subscribed;
	bool held; /* the operator paused the binding (slot->pause_want): nothing is handled */
	struct kp_rate_shm *rate; /* the binding's rate on this host (rate.c), NULL for none */
	int rate_waiting;	  /* parked jobs waiting for it */
	int64_t rate_mark_ms;	  /* since when their wait is counted in the slot */
	uint64_t rate_grants;	  /* calls it allowed: run_due's round robin follows them */
	size_t rr;		  /* run_due's first partition */
};

/* jobpath.c */
void kp_job_start(struct worker *w, struct part *p, rd_kafka_message_t *m);
int64_t kp_job_run_due(struct worker *w);
void kp_job_run_batch(struct worker *w, struct part *p);
void kp_job_drop(struct worker *w, struct part *p);
void kp_job_backlog(struct part *p, rd_kafka_message_t *m);
void kp_job_resume(struct worker *w, struct part *p);
void kp_job_pause(struct worker *w, struct part *p);
void kp_job_dead_lettered(void *ctx, void *opaque, int err, const char *errstr);
int64_t kp_job_min_sending(const struct worker *w, const struct part *p);
void kp_job_abandon(struct worker *w);

/* watch.c */
struct kp_watch *kp_watch_start(const struct kp_conf *conf, const struct kp_binding *b,
				const char *bootstrap, bool topics_exist, char *err, size_t len);
bool kp_watch_topics(struct kp_watch *wt, bool there[KP_TOPICS_MAX]);
int64_t kp_watch_high(struct kp_watch *wt, int16_t topic, int32_t partition);
void kp_watch_stop(struct kp_watch *wt);

/* consumer.c */
struct part *kp_part_get(struct worker *w, int16_t topic, int32_t partition, bool create);

#endif /* KP_WORKER_H */
