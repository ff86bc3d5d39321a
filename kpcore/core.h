/*
 * core.h - what kpoold and kpool both use: limits, logging and clocks, the
 * parsed conf, a job's checks and event id, topic lookups, the dead-letter
 * record's format, and a binding paused by the operator.  Nothing here
 * forks, serves or loads a plugin.  The daemon's own parts are declared in
 * kpoold/kpoold.h, the command's in kpool/kpool_cmd.h, and neither
 * directory sees the other.
 */
#ifndef KP_CORE_H
#define KP_CORE_H

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kpool_plugin.h"

/* Limits and defaults, named once. */
#define KP_NAME_MAX	 64  /* binding names: [a-z0-9_-]+ */
#define KP_TOPICS_MAX	 16  /* topics per binding */
#define KP_TOPIC_MAX	 250 /* Kafka's topic name limit + NUL */
#define KP_IDKEYS_MAX	 8   /* idempotency_key sources */
#define KP_PATH_DEPTH	 8   /* components of a json: key */
#define KP_EVENT_ID_MAX	 256 /* event id bytes + NUL */
#define KP_DEADLINE_KEYS "json:expiresAt, json:metadata.expiresAt" /* a job's own deadline */
#define KP_DEADLINE_N	 2		      /* the keys of KP_DEADLINE_KEYS */
#define KP_EMBEDDED_FILE "embedded.bootstrap" /* in state_dir: the embedded broker's address */
#define KP_METRICS_FILE	 "metrics.address"    /* in state_dir: where /metrics listens */
#define KP_PAUSE_DIR	 "paused"	      /* in state_dir: a file per paused binding */
#define KP_CONSOLE_FILE	 "console.url"	      /* in state_dir: the console's address */

enum kp_level { KP_DEBUG, KP_INFO, KP_NOTICE, KP_WARNING, KP_ERROR };

/* log.c */
extern int kp_log_level;
void kp_log_who(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kp_log_syslog(int syslog_level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kp_rdkafka_log(const rd_kafka_t *rk, int syslog_level, const char *fac, const char *buf);
void kp_vlog(int level, const char *fmt, va_list ap);
int kp_level_parse(const char *s);
const char *kp_level_name(int level);
const char *kp_signame(int sig, char *buf, size_t len);
int64_t kp_now_ms(void);
int64_t kp_mono_ms(void);
void kp_rfc3339(int64_t ms, char *buf, size_t len);

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
	/* The idempotency_key sources, n_idkeys of them, then the job's own
	 * deadline's (KP_DEADLINE_KEYS): kp_job_check() looks for all of them. */
	struct kp_idkey idkeys[KP_IDKEYS_MAX + KP_DEADLINE_N];
	int n_idkeys;
	int64_t idempotency_ttl_ms;
	char *ledger;		/* "kafka" or "local" */
	bool ledger_kafka;	/* the hosts share it through ledger_topic */
	char *ledger_topic;	/* default GROUP.ledger */
	char *rate;		/* as written: N/s, N/m or N/h; NULL: no limit */
	int64_t rate_n;		/* handler calls ... */
	int64_t rate_period_ms; /* ... per this long, for the whole binding; 0: no limit */
	int64_t max_age_ms;	/* a job older than this (its Kafka timestamp) expires; 0: never */
	char *expired;		/* "dead-letter" or "drop" */
	bool expired_drop;	/* an expired job is counted and skipped, not dead-lettered */
	struct kp_kv *opts;	/* handler options, in conf order */
	size_t n_opts;
	int key_line[32]; /* where each of its own keys was set (by table index) */
};

struct kp_conf {
	char *path;
	char *dir;	     /* the conf file's directory, absolute */
	struct kp_kv *kafka; /* [kafka], handed to librdkafka as is */
	size_t n_kafka;
	char *bootstrap; /* "embedded" or a broker list */
	bool embedded;
	char *plugin_dir, *state_dir, *metrics_listen;
	int64_t shutdown_timeout_ms;
	int log_level;
	char *user; /* drop root to this user after opening the metrics socket */
	/* [console]: the web console, off when console_listen is NULL */
	char *console_listen, *console_token_file, *console_cert_file, *console_key_file;
	int64_t console_session_ms;
	int console_lines[3]; /* where token_file, cert_file and key_file were set */
	struct kp_binding *bindings;
	size_t n_bindings;
};

/* values.c */
int kp_parse_duration(const char *s, int64_t *ms);
int kp_parse_size(const char *s, int64_t *bytes);
int kp_parse_bool(const char *s, bool *b);
int kp_parse_rate(const char *s, int64_t *n, int64_t *period_ms);
int kp_opt_normalize(const struct kpool_option_spec *spec, const char *value, const char *dir,
		     char **out, char *err, size_t len);

/* conf.c */
char *kp_conf_default_plugin_dir(void);
int kp_hostport(const char *s, char *host, size_t len, int *port);
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
void kp_conf_print_option(const char *key, const char *def, const char *desc);

/* job.c */
enum kp_class {
	KP_CLASS_NONE,
	KP_CLASS_FAIL,
	KP_CLASS_RETRIES,
	KP_CLASS_CRASH,
	KP_CLASS_BAD_INPUT,
	KP_CLASS_UNAVAILABLE,
	KP_CLASS_EXPIRED, /* past its deadline (expiresAt, max_age) when its turn came */
	KP_CLASS_MAX
};
const char *kp_class_name(enum kp_class c);
bool kp_utf8_valid(const void *buf, size_t len);
enum kp_found_kind { KP_FOUND_NONE, KP_FOUND_STR, KP_FOUND_ESC, KP_FOUND_INT, KP_FOUND_REAL };
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

/* pause.c - a binding paused by the operator, until resumed (state_dir/paused/NAME). */
int kp_mkdirs(const char *dir, mode_t mode);
int kp_pause_set(const struct kp_conf *conf, const char *binding, bool paused, char *err,
		 size_t len);
bool kp_pause_get(const struct kp_conf *conf, const char *binding, int64_t *since_ms);

/* topics.c */
int kp_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t len);
int kp_topic_lookup(rd_kafka_t *rk, char *const *topics, int n,
		    rd_kafka_topic_partition_list_t *out, int timeout_ms, char *err, size_t len);
int kp_topic_watermarks(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l, int64_t *lo,
			int64_t *hi, int timeout_ms, char *err, size_t len);
int kp_topic_create(rd_kafka_t *rk, const char *topic, int partitions, const char *const *configs,
		    int timeout_ms, bool (*stop)(void *), void *arg, int *final, char *err,
		    size_t len);

/*
 * dlqrec.c - the dead-letter record's format: the headers kpool adds to a
 * job's copy, written by kpoold (deadletter.c) and read by kpool dlq, both
 * from this one table of names.
 */
enum kp_dlh {
	KP_DLH_TOPIC,	    /* kpool.original.topic */
	KP_DLH_PARTITION,   /* kpool.original.partition */
	KP_DLH_OFFSET,	    /* kpool.original.offset */
	KP_DLH_TIMESTAMP,   /* kpool.original.timestamp */
	KP_DLH_EVENT_ID,    /* kpool.event-id */
	KP_DLH_WORKER,	    /* kpool.worker */
	KP_DLH_HANDLER,	    /* kpool.handler */
	KP_DLH_CLASS,	    /* kpool.error.class */
	KP_DLH_ERROR,	    /* kpool.error */
	KP_DLH_ATTEMPTS,    /* kpool.attempts */
	KP_DLH_FAILED_AT,   /* kpool.failed-at */
	KP_DLH_HOST,	    /* kpool.host */
	KP_DLH_PID,	    /* kpool.pid */
	KP_DLH_OMITTED,	    /* kpool.omitted */
	KP_DLH_VALUE_BYTES, /* kpool.original.value-bytes */
	KP_DLH_MAX
};
#define KP_REPLAYED_FROM "kpool.replayed-from" /* on a replayed job: the record it came from */

extern const char *const kp_dlh_names[KP_DLH_MAX];
void kp_dlq_topic(const struct kp_binding *b, const char *src, char *buf, size_t len);
void kp_dlh_write(rd_kafka_headers_t *h, const char *const values[KP_DLH_MAX]);

#endif /* KP_CORE_H */
