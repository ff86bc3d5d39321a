/*
 * kpoold.h - what the parts of the daemon share: its limits, the shared
 * stats slots, and each module's entry points.  The supervisor's own tables
 * are in supervisor.h; what the kpool command shares with the daemon is in
 * kpcore/core.h.
 */
#ifndef KPOOLD_H
#define KPOOLD_H

#include "core.h"
#include "ledger.h"

/* Limits and defaults of the daemon, named once. */
#define KP_LAG_MAX	     64	   /* partitions whose lag a slot reports */
#define KP_HIST_BUCKETS	     9	   /* kpool_job_seconds buckets, +Inf excluded */
#define KP_SLOTS_MAX	     256   /* worker processes per kpoold */
#define KP_ERROR_MAX	     256   /* one-line errors kept in shared memory */
#define KP_RESTART_MIN_MS    1000  /* restart back-off starts here ... */
#define KP_RESTART_MAX_MS    60000 /* ... doubles up to here ... */
#define KP_HEALTHY_MS	     60000 /* ... and resets after this long up */
#define KP_BOOTSTRAP_WAIT_MS 15000 /* how long the embedded broker may take to start */
#define KP_EXIT_CONFIG	     78	   /* a worker that cannot start (EX_CONFIG) */

/* proctitle.c */
extern char **kp_moved_environ;
void kp_proctitle_init(int argc, char **argv);
void kp_proctitle(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* stats.c - one slot per worker process, in memory shared with the supervisor. */
enum kp_result {
	KP_R_DONE,
	KP_R_RETRIED,
	KP_R_FAILED,
	KP_R_DEAD,
	KP_R_DUPLICATE,
	KP_R_EXPIRED, /* found past its deadline: then dead-lettered, or dropped */
	KP_R_MAX
};
enum kp_slot_state { KP_SLOT_EMPTY, KP_SLOT_STARTING, KP_SLOT_RUNNING, KP_SLOT_STOPPING };
#define KP_SLOT_STATES 4
enum kp_kafka_state { KP_KAFKA_UNKNOWN, KP_KAFKA_UP, KP_KAFKA_DOWN };
enum kp_outcome { KP_OUT_DONE, KP_OUT_DEAD, KP_OUT_SKIP };

struct kp_lag {
	int16_t topic;
	int32_t partition;
	int64_t lag;
};

struct kp_slot {
	char binding[KP_NAME_MAX];		  /* whose slot this is */
	char topics[KP_TOPICS_MAX][KP_TOPIC_MAX]; /* what hand and lag topic indices mean */
	int n_topics;
	int index;
	volatile pid_t pid;
	volatile int state;
	uint64_t results[KP_R_MAX];
	uint64_t dead[KP_CLASS_MAX]; /* dead-lettered jobs, by error class */
	uint64_t hist[KP_HIST_BUCKETS + 1];
	uint64_t hist_sum_us;
	uint64_t started_ms; /* when the current process started */
	uint64_t restarts;
	/* The job in hand while the handler runs, for the crash guard. */
	volatile int in_hand;
	int16_t hand_topic;
	int32_t hand_partition;
	int64_t hand_offset;
	char hand_event_id[KP_EVENT_ID_MAX];
	struct kp_id hand_id;
	volatile int died_signal; /* set by the supervisor when a process here was killed */
	/* Pausing a binding (kpool pause): the supervisor asks, the worker says it has. */
	volatile int pause_want;  /* the binding is paused: fetch nothing */
	volatile int paused;	  /* the worker's partitions are paused */
	volatile int restart_req; /* the console asks the supervisor to restart this process */
	volatile int owned;	  /* a binding of the running conf has it (supervisor's owner[]) */
	volatile int throttled;	  /* its binding's restarts back off (the supervisor's throttle) */
	/* The binding's rate (rate.c): what this process holds of it, and its waits. */
	volatile int32_t rate_parts;	  /* partitions assigned to it */
	volatile int32_t rate_total;	  /* partitions of the binding's topics, 0 unknown */
	volatile uint64_t rate_waited_us; /* time a job of it waited for the rate */
	volatile int rate_waiting;	  /* a job of it waits for the rate now */
	/* What the worker knows of Kafka, for /healthz. */
	volatile int kafka_state;
	char kafka_error[KP_ERROR_MAX];
	int n_lag;
	struct kp_lag lag[KP_LAG_MAX];
};

extern const double kp_hist_bounds[KP_HIST_BUCKETS];
struct kp_slot *kp_stats_map(size_t n);
void kp_stats_unmap(struct kp_slot *slots, size_t n);
void kp_stats_observe(struct kp_slot *s, int64_t us);
static inline void kp_stats_add(struct kp_slot *s, enum kp_result r)
{
	__atomic_add_fetch(&s->results[r], 1, __ATOMIC_RELAXED);
}
/* A dead-lettered job: counted as a result and under its error class. */
static inline void kp_stats_dead(struct kp_slot *s, enum kp_class c)
{
	__atomic_add_fetch(&s->results[KP_R_DEAD], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->dead[c], 1, __ATOMIC_RELAXED);
}

/* plugin.c */
struct kp_plugin {
	void *dl;
	char path[4096];
	struct kpool_plugin p; /* fields past the plugin's struct_size are NULL */
	void *state;
};
int kp_plugin_path(const struct kp_conf *conf, const char *handler, char *path, size_t len);
int kp_plugin_open(struct kp_plugin *pl, const char *path, char *err, size_t len);
int kp_plugin_safe_open(const char *path, char *err, size_t len);
void kp_plugin_host(struct kpool_host *host, const struct kp_conf *conf, const struct kp_binding *b,
		    int index);
int kp_plugin_init(struct kp_plugin *pl, const struct kpool_host *host, const struct kp_conf *conf,
		   const struct kp_binding *b, char *err, size_t len);
void kp_plugin_close(struct kp_plugin *pl);
int kp_plugin_check(const struct kp_conf *conf, const struct kp_binding *b, char *err, size_t len);

/* options.c */
int kp_options_table_check(const struct kpool_plugin *p, const char *path, char *err, size_t len);
int kp_plugin_options(const struct kp_plugin *pl, const struct kp_conf *conf,
		      const struct kp_binding *b, struct kpool_option **out, size_t *n_out,
		      char *err, size_t len);
void kp_plugin_options_free(struct kpool_option *o, size_t n);
int kp_plugin_print_options(const char *plugin_dir, const char *handler, bool man);

/* privileges.c */
int kp_state_dir_make(const char *dir);
int kp_become_user(const struct kp_conf *conf, bool give_state_dir, char *err, size_t len);

/* jobpath.c: offered to plugins as host->retry_after, and as kpool_retry_after()
 * to those built against ABI 1's first header, which found it as a weak symbol. */
void kp_job_retry_after(const struct kpool_job *job, int64_t ms);
void kpool_retry_after(const struct kpool_job *job, int64_t ms);

/* deadletter.c */
struct kp_dlq;
struct kp_dlq_info {
	enum kp_class class;
	const char *reason;
	const char *event_id;
	int attempts;
};
/* A copy's outcome: err 0 when Kafka acknowledged it, else why not in errstr. */
typedef void kp_dlq_done_fn(void *ctx, void *opaque, int err, const char *errstr);
struct kp_dlq *kp_dlq_open(const struct kp_conf *conf, const struct kp_binding *b,
			   const char *bootstrap, kp_dlq_done_fn *done, void *ctx, char *err,
			   size_t len);
void kp_dlq_close(struct kp_dlq *q);
int kp_dlq_send(struct kp_dlq *q, const rd_kafka_message_t *m, const struct kp_dlq_info *info,
		void *opaque, char *err, size_t len);
void kp_dlq_poll(struct kp_dlq *q, int ms);

/* deadline.c */
extern const char *const kp_deadline_names[KP_DEADLINE_N];
int kp_job_deadline(const struct kp_found *f, int64_t *ms, int *which);

/* rate.c */
struct kp_rate_shm;
int kp_rate_take(struct kp_rate_shm *r, const struct kp_binding *b, int want, int own_parts,
		 int own_total, int64_t *wait_ms);

/* consumer.c */
int kp_worker_run(const struct kp_conf *conf, const struct kp_binding *b, struct kp_slot *slot,
		  struct kp_ledger_shm *ledger);

/* embedded.c */
int kp_embedded_run(const struct kp_conf *conf);

/* metrics.c */
struct kp_metrics;
struct kp_supervisor;
struct kp_metrics *kp_metrics_start(const char *listen, const char *state_dir,
				    const struct kp_supervisor *sv, char *err, size_t len);
int kp_metrics_fd(const struct kp_metrics *m);
int kp_metrics_timeout_ms(struct kp_metrics *m);
void kp_metrics_run(struct kp_metrics *m);
void kp_metrics_close_in_child(struct kp_metrics *m);
void kp_metrics_stop(struct kp_metrics *m);

/* supervisor.c */
int kp_supervisor_run(struct kp_conf *conf);

#endif /* KPOOLD_H */
