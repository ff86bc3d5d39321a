/*
 * kpool_cmd.h - what the kpool command's subcommands share: aligned tables,
 * text from outside made safe to show, times, read-only databases, the
 * dead-letter record, a dead-letter topic being read, replay and its
 * progress, and the subcommands themselves.
 */
#ifndef KPOOL_CMD_H
#define KPOOL_CMD_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KP_TABLE_COLS 14

/* Rows of text printed as aligned columns; the last column is cut to the terminal. */
struct kp_table {
	int cols;
	char **cells;  /* the header, then n_rows rows, of cols cells each */
	size_t n_rows; /* rows below the header */
	size_t cap;
};

void kp_table_init(struct kp_table *t, int cols, ...);
void kp_table_row(struct kp_table *t, ...);
void kp_table_print(const struct kp_table *t, FILE *f);
void kp_table_free(struct kp_table *t);

/* kpool_text.c: outside bytes shown to people (escaped) and to programs (JSON). */
#define KP_TEXT_LINES 1 /* kp_text_clean: newlines and tabs stay */
size_t kp_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
char *kp_text_utf8(const void *s, size_t n);
char *kp_text_clean(const void *s, size_t n, unsigned flags);
void kp_text_put(FILE *f, const void *s, size_t n, unsigned flags);
void kp_hexdump(FILE *f, const unsigned char *s, size_t len);
json_t *kp_json_text(const void *s, size_t n);
int kp_json_print(const json_t *doc, FILE *f, size_t flags);
void kp_json_out(json_t *doc);

/* kpool_time.c */
int kp_cmd_since_parse(const char *s, int64_t now_ms, int64_t *ms, const char **why);
int64_t kp_cmd_since_arg(const char *opt, const char *s);
void kp_cmd_iso(int64_t ms, char *out, size_t len);

sqlite3 *kp_cmd_open_ro(const char *path);
sqlite3_stmt *kp_cmd_prepare(sqlite3 *db, const char *path, const char *sql);

/* kpool_dlqrec.c: what a dead-letter record says about itself, whoever wrote it. */
struct dlrec {
	int32_t partition;
	int64_t offset;
	int64_t failed_ms; /* -1 if unknown */
	char failed_at[40];
	/* Text from the headers, as kp_text_utf8() makes it valid UTF-8. */
	char *orig_topic; /* NULL if the record does not say */
	int32_t orig_partition;
	int64_t orig_offset;
	char *class;
	char *reason;
	char *event_id;
	int attempts;	    /* -1 if unknown */
	const char *writer; /* kpool, spring, connect, unknown */
	bool omitted;	    /* a copy without the job's value (kpool.omitted) */
};

#define KP_DLREC_FROM_MAX 320 /* TOPIC/PARTITION/OFFSET */

void kp_dlrec_read(struct dlrec *r, rd_kafka_headers_t *h, int32_t partition, int64_t offset,
		   int64_t timestamp_ms);
void kp_dlrec_free(struct dlrec *r);
json_t *kp_dlrec_json(const struct dlrec *r);
void kp_dlrec_from(const struct dlrec *r, char *buf, size_t len);
bool kp_dlrec_class_matches(const char *class, const char *want);
bool kp_dlrec_printable(const void *v, size_t len);
char *kp_dlrec_hex(const void *v, size_t len);
char *kp_dlrec_header_value(const char *name, const void *v, size_t len);
void kp_dlrec_row(const struct dlrec *r, struct kp_table *t);
void kp_dlrec_headers_table(rd_kafka_headers_t *h, struct kp_table *t);
json_t *kp_dlrec_headers_json(rd_kafka_headers_t *h);

/* Which dead-letter records a listing or a replay takes (dlq list, replay, the console). */
struct kp_dlq_filter {
	const char *class;    /* its error class (or the part after the last dot); NULL: any */
	int64_t since, until; /* failed at since <= t < until, epoch ms; -1: no bound */
	const char *text;     /* in the reason, event id or job, in any case; NULL: any */
};
#define KP_DLQ_FILTER_ALL ((struct kp_dlq_filter){NULL, -1, -1, NULL})
bool kp_dlq_filter_match(const struct kp_dlq_filter *f, const struct dlrec *r, const void *job,
			 size_t len);

/* kpool_progress.c: the offsets a replay sent, and its commit metadata. */
#define KP_REPLAY_META_MAX 3000 /* bytes of replayed offsets kept in a commit's metadata */
struct kp_range {
	int64_t a, b; /* a..b, both in */
};
struct kp_ranges { /* ascending, neither overlapping nor touching */
	struct kp_range *r;
	size_t n, cap;
};
int kp_cmd_decimal(const char *s, size_t n, int64_t max, int64_t *out);
int kp_ranges_add(struct kp_ranges *s, int64_t off);
bool kp_ranges_has(const struct kp_ranges *s, int64_t off);
void kp_ranges_free(struct kp_ranges *s);
int kp_replay_meta_parse(struct kp_ranges *s, const char *meta, size_t len, int64_t floor,
			 char *why, size_t why_len);
size_t kp_replay_meta_print(const struct kp_ranges *s, int64_t from, char *out, size_t len);

struct kp_conf;

/* kpool_dlq.c: a dead-letter topic read from its start to the end it had at the start. */
#define KP_DLQ_TIMEOUT_MS 10000 /* metadata, watermarks, commits */

/* One partition of the topic being read. */
struct kp_scan_part {
	int32_t id;
	int64_t lo, hi; /* watermarks at the start */
	int64_t start;	/* first offset to read */
	int64_t next;	/* first offset not looked at yet */
	bool done;
	/* replay (kpool_replay.c) */
	int64_t committed;	   /* the group's offset at the start, -1 if none */
	struct kp_ranges replayed; /* offsets replayed before or now (above committed) */
	int64_t first_left;	   /* first offset looked at and not replayed, -1 if none */
	int64_t last_added; /* the last offset replayed, to tell a new range from a longer one */
	size_t meta_bytes;  /* about what the replayed offsets take in the metadata */
	bool full;	    /* the metadata has no room for more scattered offsets */
	bool out;	    /* not to be replayed (--offsets P:...): its progress is left alone */
};

/* A consumer that assigns the topic's partitions (it never joins its group). */
struct kp_scan {
	rd_kafka_t *rk;
	const char *topic;
	struct kp_scan_part *parts;
	int n;
};

int kp_scan_open(struct kp_scan *sc, const struct kp_conf *conf, const char *topic,
		 const char *group);
int kp_scan_start(struct kp_scan *sc);
rd_kafka_message_t *kp_scan_next(struct kp_scan *sc, int *rc);
void kp_scan_close(struct kp_scan *sc);
void kp_scan_record(const rd_kafka_message_t *m, struct dlrec *r);
rd_kafka_message_t *kp_scan_one(struct kp_scan *sc, int32_t part, int64_t offset);
int kp_dlq_at_parse(const char *s, int32_t *part, int64_t *offset);

/* kpool_replay.c: dlq replay, its destinations and its progress in a group. */
struct kp_replay_opts {
	const char *to;
	struct kp_dlq_filter filter;
	int32_t only_part; /* --offsets P:A..B, else -1 */
	int64_t from, upto;
	long limit;
	bool dry_run, from_start, json;
	bool progress;	 /* a line on standard error after each chunk sent */
	size_t rows_max; /* records listed at most (the summary counts them all); 0: all */
};

int kp_replay_offsets_parse(const char *s, struct kp_replay_opts *o);
int kp_replay(const struct kp_conf *conf, const char *topic, const struct kp_replay_opts *o);

int kp_cmd_audit(int argc, char **argv);
int kp_cmd_dlq(const struct kp_conf *conf, int argc, char **argv);
int kp_cmd_status(const struct kp_conf *conf, int argc, char **argv);
int kp_cmd_pause(const struct kp_conf *conf, int argc, char **argv);
int kp_cmd_analytics(int argc, char **argv);

#endif
