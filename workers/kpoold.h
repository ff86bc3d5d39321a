/*
 * kpoold.h - what the parts of kpoold and kpool share: limits, the parsed
 * conf, the shared stats slots, and each module's entry points.
 */
#ifndef KPOOLD_H
#define KPOOLD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kpool_plugin.h"
#include "ledger.h"

/* Limits and defaults, named once. */
#define KP_NAME_MAX	     64	   /* binding names: [a-z0-9_-]+ */
#define KP_TOPICS_MAX	     16	   /* topics per binding */
#define KP_TOPIC_MAX	     250   /* Kafka's topic name limit + NUL */
#define KP_IDKEYS_MAX	     8	   /* idempotency_key sources */
#define KP_PATH_DEPTH	     8	   /* components of a json: key */
#define KP_EVENT_ID_MAX	     256   /* event id bytes + NUL */
#define KP_LAG_MAX	     64	   /* partitions whose lag a slot reports */
#define KP_HIST_BUCKETS	     9	   /* kpool_job_seconds buckets, +Inf excluded */
#define KP_SLOTS_MAX	     256   /* worker processes per kpoold */
#define KP_ERROR_MAX	     256   /* one-line errors kept in shared memory */
#define KP_RESTART_MIN_MS    1000  /* restart back-off starts here ... */
#define KP_RESTART_MAX_MS    60000 /* ... doubles up to here ... */
#define KP_HEALTHY_MS	     60000 /* ... and resets after this long up */
#define KP_BOOTSTRAP_WAIT_MS 15000 /* how long to wait for the embedded broker */
#define KP_EXIT_CONFIG	     78	   /* a worker that cannot start (EX_CONFIG) */
#define KP_EMBEDDED_FILE     "embedded.bootstrap"
#define KP_METRICS_FILE	     "metrics.address"

enum kp_level { KP_DEBUG, KP_INFO, KP_NOTICE, KP_WARNING, KP_ERROR };

/* log.c */
extern int kp_log_level;
extern char **kp_moved_environ;
void kp_log_who(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct rd_kafka_s;
void kp_rdkafka_log(const struct rd_kafka_s *rk, int syslog_level, const char *fac,
		    const char *buf);
void kp_vlog(int level, const char *fmt, va_list ap);
void kp_plugin_log(int syslog_level, const char *fmt, ...);
int kp_level_parse(const char *s);
const char *kp_level_name(int level);
const char *kp_signame(int sig, char *buf, size_t len);
int64_t kp_now_ms(void);
int64_t kp_mono_ms(void);
void kp_proctitle_init(int argc, char **argv);
void kp_proctitle(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* conf.c */
enum kp_idkey_kind { KP_IDKEY_HEADER, KP_IDKEY_JSON };

struct kp_idkey {
	enum kp_idkey_kind kind;
	char *name;		   /* header name, or the dotted path */
	char *path[KP_PATH_DEPTH]; /* json: path components */
	int depth;
};

struct kp_kv {
	char *key, *value;
	int line;
};

struct kp_binding {
	char *name;
	int line; /* of its section header */
	char *topics[KP_TOPICS_MAX];
	int n_topics;
	char *topic_list; /* as written */
	char *handler;
	int processes;
	char *group;
	char *dead_letter_topic;
	int max_attempts;
	int64_t retry_backoff_ms, retry_backoff_max_ms;
	int max_crashes;
	int64_t max_job_bytes;
	bool idempotency;
	char *idempotency_key;
	struct kp_idkey idkeys[KP_IDKEYS_MAX];
	int n_idkeys;
	int64_t idempotency_ttl_ms;
	char *ledger;	    /* "kafka" or "local" */
	bool ledger_kafka;  /* the hosts share it through ledger_topic */
	char *ledger_topic; /* default GROUP.ledger */
	struct kp_kv *opts; /* handler options, in conf order */
	size_t n_opts;
	int key_line[32]; /* where each of its own keys was set (by table index) */
};

struct kp_conf {
	char *path;
	struct kp_kv *kafka; /* [kafka], handed to librdkafka as is */
	size_t n_kafka;
	char *bootstrap; /* "embedded" or a broker list */
	bool embedded;
	char *plugin_dir, *state_dir, *metrics_listen;
	int64_t shutdown_timeout_ms;
	int log_level;
	char *user; /* drop root to this user after opening the metrics socket */
	int refs;   /* binding states of the supervisor that use this conf */
	struct kp_binding *bindings;
	size_t n_bindings;
};

int kp_parse_duration(const char *s, int64_t *ms);
int kp_parse_size(const char *s, int64_t *bytes);
int kp_parse_bool(const char *s, bool *b);
int kp_idkeys_parse(const char *s, struct kp_idkey *keys, int *n, char *err, size_t len);
void kp_idkeys_free(struct kp_idkey *keys, int n);
struct kp_conf *kp_conf_load(const char *path, char *err, size_t len);
void kp_conf_free(struct kp_conf *conf);
const struct kp_binding *kp_conf_binding(const struct kp_conf *conf, const char *name);
char *kp_conf_bootstrap(const struct kp_conf *conf, char *err, size_t len);
int kp_conf_kafka_apply(const struct kp_conf *conf, void *rd_conf, bool producer, char *err,
			size_t len);
bool kp_conf_kafka_other(const char *key, bool producer);
void kp_conf_print_options(void);

/* job.c */
enum kp_class {
	KP_CLASS_NONE,
	KP_CLASS_FAIL,
	KP_CLASS_RETRIES,
	KP_CLASS_CRASH,
	KP_CLASS_BAD_INPUT,
	KP_CLASS_UNAVAILABLE,
	KP_CLASS_MAX
};
const char *kp_class_name(enum kp_class c);
bool kp_utf8_valid(const void *buf, size_t len);
enum kp_found_kind { KP_FOUND_NONE, KP_FOUND_STR, KP_FOUND_ESC, KP_FOUND_INT };
struct kp_found { /* a json: idempotency key's value, as raw bytes of the job */
	const char *p;
	size_t n;
	enum kp_found_kind kind; /* ESC: a string holding escapes */
};
int kp_job_check(const void *buf, size_t len, int64_t max_bytes, const struct kp_idkey *keys,
		 int n_keys, struct kp_found *found, char *reason, size_t rlen);
int kp_json_unescape(const void *raw, size_t n, char *out, size_t outlen);
int kp_job_event_id(const struct kp_binding *b, const struct kpool_header *hdrs, size_t n_hdrs,
		    const struct kp_found *found, const char *topic, int32_t partition,
		    int64_t offset, char *id, size_t idlen);
int64_t kp_backoff_ms(int64_t base, int64_t max, int attempt, uint32_t rnd);

/* stats.c - one slot per worker process, in memory shared with the supervisor. */
enum kp_result { KP_R_DONE, KP_R_RETRIED, KP_R_FAILED, KP_R_DEAD, KP_R_DUPLICATE, KP_R_MAX };
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

/* privileges.c */
int kp_state_dir_make(const char *dir);
int kp_become_user(const struct kp_conf *conf, bool give_state_dir, char *err, size_t len);
int kp_plugin_init(struct kp_plugin *pl, const struct kpool_host *host, const struct kp_kv *opts,
		   size_t n_opts, char *err, size_t len);
void kp_plugin_close(struct kp_plugin *pl);
int kp_plugin_check(const struct kp_conf *conf, const struct kp_binding *b, char *err, size_t len);

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
void kp_dlq_topic(const struct kp_binding *b, const char *src, char *buf, size_t len);
struct rd_kafka_message_s;
int kp_dlq_send(struct kp_dlq *q, const struct rd_kafka_message_s *m,
		const struct kp_dlq_info *info, void *opaque, char *err, size_t len);
void kp_dlq_poll(struct kp_dlq *q, int ms);

/* topics.c */
int kp_topic_partitions(struct rd_kafka_s *rk, const char *topic, int timeout_ms, char *err,
			size_t len);
struct rd_kafka_topic_partition_list_s;
int kp_topic_lookup(struct rd_kafka_s *rk, char *const *topics, int n,
		    struct rd_kafka_topic_partition_list_s *out, int timeout_ms, char *err,
		    size_t len);
int kp_topic_watermarks(struct rd_kafka_s *rk, const struct rd_kafka_topic_partition_list_s *l,
			int64_t *lo, int64_t *hi, int timeout_ms, char *err, size_t len);
int kp_topic_create(struct rd_kafka_s *rk, const char *topic, int partitions,
		    const char *const *configs, int timeout_ms, bool (*stop)(void *), void *arg,
		    int *final, char *err, size_t len);

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
struct kp_binding_state;
struct kp_ledger_proc { /* a binding's ledger: its memory and its process */
	char name[KP_NAME_MAX];
	struct kp_ledger_shm *shm;
	struct kp_binding_state *bs; /* the newest binding state that uses it */
	int refs;		     /* binding states that use it */
	pid_t pid;
	int64_t due_ms; /* when to start its process (again), 0 if not waiting */
	int64_t backoff_ms;
	int64_t spawned_ms;
	int64_t kill_at_ms; /* stopping: SIGKILL after this */
};
struct kp_binding_state {
	struct kp_ledger_proc *lp;
	struct kp_conf *conf; /* the conf generation b belongs to */
	const struct kp_binding *b;
	char *sig;		 /* what makes it "the same binding" across a reload */
	struct kp_slot **slots;	 /* b->processes of them, in the shared pool */
	int64_t *due_ms;	 /* per slot: when to start it again, 0 if not waiting */
	int64_t *spawned_ms;	 /* per slot: when its process was started */
	uint64_t *jobs_at_spawn; /* per slot: results counted when it started */
	int64_t backoff_ms;
	int64_t drain_deadline; /* when draining: SIGKILL after this */
	uint64_t restarts;
	bool draining;	/* removed or replaced by a reload: stops, never restarts */
	bool throttled; /* a worker died before handling any job */
};
struct kp_supervisor {
	struct kp_conf *conf;	      /* the current generation */
	struct kp_binding_state **bs; /* current and draining bindings */
	size_t n_bs;
	struct kp_slot *slots;			      /* KP_SLOTS_MAX of them */
	struct kp_binding_state *owner[KP_SLOTS_MAX]; /* which binding a slot serves now */
	struct kp_ledger_proc **ledgers;
	size_t n_ledgers;
	pid_t broker_pid;
};
int kp_supervisor_run(struct kp_conf *conf);
int kp_health(const struct kp_supervisor *sv, char **json);

#endif /* KPOOLD_H */
