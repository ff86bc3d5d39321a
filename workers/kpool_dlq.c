/*
 * kpool_dlq.c - `kpool dlq list|show|replay`: the dead-letter topics read
 * and replayed.  A topic is read from its first offset to the high watermark
 * taken at the start (a consumer that assigns, never joins a group); replay
 * keeps its progress in the consumer group kpool-replay-DLQTOPIC.
 *
 * Besides kpool's own records, it reads those of Spring Kafka
 * (kafka_dlt-original-topic, ...; partition and offset as big-endian
 * integers) and Kafka Connect (__connect.errors.topic, ...).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpool_cmd.h"
#include "kpoold.h"
#include "util.h"

#define DLQ_TIMEOUT_MS 10000 /* metadata, watermarks, commits */
#define DLQ_IDLE_MS    30000 /* reading: give up after this long without a record */
#define REPLAY_CHUNK   500   /* records produced, then acknowledged, then committed */
#define REPLAY_META    3000  /* bytes of replayed offsets kept in a commit's metadata */
#define REPLAYED_FROM  "kpool.replayed-from"

/* What a dead-letter record says about itself, whoever wrote it. */
struct dlrec {
	int32_t partition;
	int64_t offset;
	int64_t failed_ms;
	char failed_at[40];
	char *orig_topic; /* NULL if the record does not say */
	int32_t orig_partition;
	int64_t orig_offset;
	char *class;
	char *reason;
	char *event_id;
	int attempts;	    /* -1 if unknown */
	const char *writer; /* kpool, spring, connect, unknown */
};

/* One partition of the topic being read. */
struct part {
	int32_t id;
	int64_t lo, hi; /* watermarks at the start */
	int64_t start;	/* first offset to read */
	int64_t next;	/* first offset not looked at yet */
	bool done;
	/* replay */
	int64_t committed; /* the group's offset at the start, -1 if none */
	int64_t *replayed; /* offsets >= next_commit replayed before or now, ascending */
	size_t n_replayed, cap_replayed;
	int64_t first_left; /* first offset looked at and not replayed, -1 if none */
	int64_t last_added; /* the last offset replayed, to tell a new range from a longer one */
	size_t meta_bytes;  /* about what the replayed offsets take in the metadata */
	bool full;	    /* the metadata has no room for more scattered offsets */
	bool out;	    /* not to be replayed (--offsets P:...): its progress is left alone */
};

struct scan {
	rd_kafka_t *rk;
	const char *topic;
	struct part *parts;
	int n;
};

static void usage_dlq(FILE *f)
{
	fprintf(f, "usage: kpool -c CONF dlq list TOPIC [--limit N] [--error-class C] [--since T] "
		   "[--json]\n"
		   "       kpool -c CONF dlq show TOPIC PARTITION:OFFSET [--json]\n"
		   "       kpool -c CONF dlq replay TOPIC [--to TOPIC] [--error-class C]\n"
		   "                 [--offsets [P:]A..B] [--limit N] [--dry-run] [--from-start] "
		   "[--json]\n");
}

/* ---- reading headers ------------------------------------------------------- */

static bool hdr(rd_kafka_headers_t *h, const char *name, const void **v, size_t *len)
{
	return h && rd_kafka_header_get_last(h, name, v, len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	       *v != NULL;
}

/* A header's value as text (NULL if absent), control characters made spaces. */
static char *hdr_text(rd_kafka_headers_t *h, const char *name)
{
	const void *v;
	size_t len;
	char *s;

	if (!hdr(h, name, &v, &len) || (s = strndup(v, len)) == NULL)
		return NULL;
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return s;
}

/* A number written as text (kpool, Connect) or big-endian bytes (Spring). */
/* A big-endian int32 or int64 (Spring Kafka's numbers); false for other lengths. */
static bool be_int(const unsigned char *v, size_t len, int64_t *out)
{
	uint64_t u = 0;

	if (len != 4 && len != 8)
		return false;
	for (size_t i = 0; i < len; i++)
		u = u << 8 | v[i];
	*out = len == 4 ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
	return true;
}

static bool hdr_int(rd_kafka_headers_t *h, const char *name, int64_t *out)
{
	const unsigned char *v;
	size_t len, i = 0;
	char buf[32];

	if (!hdr(h, name, (const void **)&v, &len) || len == 0)
		return false;
	if (v[0] == '-')
		i++;
	while (i < len && isdigit(v[i]))
		i++;
	if (i == len && len < sizeof(buf) && !(len == 1 && v[0] == '-')) {
		memcpy(buf, v, len);
		buf[len] = '\0';
		*out = strtoll(buf, NULL, 10);
		return true;
	}
	return be_int(v, len, out);
}

static void dlrec_free(struct dlrec *r)
{
	free(r->orig_topic);
	free(r->class);
	free(r->reason);
	free(r->event_id);
}

/* The headers in which each tool says where a job came from and why it failed. */
static const struct writer {
	const char *name, *topic, *partition, *offset, *class, *reason, *event_id, *attempts;
} writers[] = {
    {"kpool", "kpool.original.topic", "kpool.original.partition", "kpool.original.offset",
     "kpool.error.class", "kpool.error", "kpool.event-id", "kpool.attempts"},
    {"spring", "kafka_dlt-original-topic", "kafka_dlt-original-partition",
     "kafka_dlt-original-offset", "kafka_dlt-exception-fqcn", "kafka_dlt-exception-message", NULL,
     NULL},
    {"connect", "__connect.errors.topic", "__connect.errors.partition", "__connect.errors.offset",
     "__connect.errors.exception.class.name", "__connect.errors.exception.message", NULL, NULL},
};

/* Reads what a dead-letter record says about the job and why it is there. */
static void dlrec_read(const rd_kafka_message_t *m, struct dlrec *r)
{
	rd_kafka_headers_t *h = NULL;
	rd_kafka_timestamp_type_t tstype;
	int64_t v;

	memset(r, 0, sizeof(*r));
	r->partition = m->partition;
	r->offset = m->offset;
	r->orig_partition = -1;
	r->orig_offset = -1;
	r->attempts = -1;
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	r->writer = "unknown";
	for (size_t i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
		const struct writer *w = &writers[i];
		if ((r->orig_topic = hdr_text(h, w->topic)) == NULL)
			continue;
		r->writer = w->name;
		if (hdr_int(h, w->partition, &v))
			r->orig_partition = (int32_t)v;
		if (hdr_int(h, w->offset, &v))
			r->orig_offset = v;
		r->class = hdr_text(h, w->class);
		r->reason = hdr_text(h, w->reason);
		if (w->event_id)
			r->event_id = hdr_text(h, w->event_id);
		if (w->attempts && hdr_int(h, w->attempts, &v))
			r->attempts = (int)v;
		break;
	}
	if (r->class == NULL)
		r->class = strdup("unknown");
	if (r->reason == NULL)
		r->reason = strdup("");
	r->failed_ms = rd_kafka_message_timestamp(m, &tstype);
	{
		char *at = hdr_text(h, "kpool.failed-at");
		int64_t ms = at ? util_time_text_ms(at) : -1;
		if (ms >= 0)
			r->failed_ms = ms;
		free(at);
	}
	if (r->failed_ms >= 0)
		kp_cmd_iso(r->failed_ms, r->failed_at, sizeof(r->failed_at));
	else
		snprintf(r->failed_at, sizeof(r->failed_at), "-");
}

/* --error-class C: the class itself, or (Java exceptions) its simple name. */
static bool class_matches(const char *class, const char *want)
{
	const char *dot = strrchr(class, '.');
	return want == NULL || strcmp(class, want) == 0 || (dot && strcmp(dot + 1, want) == 0);
}

/* ---- reading a topic ------------------------------------------------------- */

static void scan_close(struct scan *sc)
{
	if (sc->rk) {
		rd_kafka_assign(sc->rk, NULL);
		rd_kafka_consumer_close(sc->rk);
		rd_kafka_destroy(sc->rk);
	}
	for (int i = 0; i < sc->n; i++)
		free(sc->parts[i].replayed);
	free(sc->parts);
	memset(sc, 0, sizeof(*sc));
}

/*
 * A consumer for topic (in group, for committing, if not NULL), its
 * partitions and their watermarks; each partition is to be read from lo.
 * Returns 0, or -1 having said why.
 */
static int scan_open(struct scan *sc, const struct kp_conf *conf, const char *topic,
		     const char *group)
{
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *l;
	int64_t *lo = NULL, *hi = NULL;
	char err[512];
	int n, rc = -1;

	memset(sc, 0, sizeof(*sc));
	sc->topic = topic;
	if (kp_conf_kafka_apply(conf, kc, err, sizeof(err)) < 0 ||
	    /* a group only for replay's commits: reading assigns, never joins */
	    rd_kafka_conf_set(kc, "group.id", group ? group : "kpool-dlq-reader", err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err)) ||
	    rd_kafka_conf_set(kc, "enable.auto.offset.store", "false", err, sizeof(err)) ||
	    rd_kafka_conf_set(kc, "enable.partition.eof", "true", err, sizeof(err))) {
		rd_kafka_conf_destroy(kc);
		fprintf(stderr, "kpool: %s\n", err);
		return -1;
	}
	rd_kafka_conf_set_log_cb(kc, kp_rdkafka_log);
	sc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
	if (sc->rk == NULL) {
		rd_kafka_conf_destroy(kc);
		fprintf(stderr, "kpool: %s\n", err);
		return -1;
	}
	l = rd_kafka_topic_partition_list_new(16);
	n = kp_topic_lookup(sc->rk, (char *const *)&topic, 1, l, DLQ_TIMEOUT_MS, err, sizeof(err));
	if (n == 0)
		fprintf(stderr, "kpool: %s: no such topic\n", topic);
	if (n <= 0)
		goto out;
	sc->n = l->cnt;
	sc->parts = calloc((size_t)sc->n, sizeof(*sc->parts));
	lo = calloc((size_t)sc->n, sizeof(*lo));
	hi = calloc((size_t)sc->n, sizeof(*hi));
	if (sc->parts == NULL || lo == NULL || hi == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	if (kp_topic_watermarks(sc->rk, l, lo, hi, DLQ_TIMEOUT_MS, err, sizeof(err)) < 0)
		goto out;
	for (int i = 0; i < sc->n; i++) { /* the list is in partition order, from 0 */
		struct part *p = &sc->parts[i];
		p->id = i;
		p->lo = lo[i];
		p->hi = hi[i];
		p->start = p->next = p->lo;
		p->committed = -1;
		p->first_left = -1;
		p->last_added = -2;
	}
	rc = 0;
out:
	if (rc < 0 && n != 0)
		fprintf(stderr, "kpool: %s: %s\n", topic, err);
	free(lo);
	free(hi);
	rd_kafka_topic_partition_list_destroy(l);
	return rc;
}

/* Starts reading every partition from its start offset; -1 having said why. */
static int scan_start(struct scan *sc)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(sc->n);
	rd_kafka_resp_err_t e;

	for (int i = 0; i < sc->n; i++) {
		struct part *p = &sc->parts[i];
		if (p->start < p->lo)
			p->start = p->lo;
		p->next = p->start;
		p->done = p->start >= p->hi;
		if (!p->done)
			rd_kafka_topic_partition_list_add(l, sc->topic, p->id)->offset = p->start;
	}
	e = rd_kafka_assign(sc->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		fprintf(stderr, "kpool: %s: %s\n", sc->topic, rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

/* Stops reading a partition (the rest of it is not looked at). */
static void scan_stop(struct scan *sc, struct part *p)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

	p->done = true;
	rd_kafka_topic_partition_list_add(l, sc->topic, p->id);
	rd_kafka_pause_partitions(sc->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
}

/*
 * The next record below the high watermarks, partitions interleaved, each in
 * order; NULL when every partition is read (*rc 0) or on error (*rc -1,
 * having said why).
 */
static rd_kafka_message_t *scan_next(struct scan *sc, int *rc)
{
	int64_t idle_since = kp_mono_ms();

	*rc = 0;
	for (;;) {
		rd_kafka_message_t *m;
		struct part *p;
		bool all = true;

		for (int i = 0; i < sc->n; i++)
			all = all && sc->parts[i].done;
		if (all)
			return NULL;
		m = rd_kafka_consumer_poll(sc->rk, 200);
		if (m == NULL) {
			if (kp_mono_ms() - idle_since < DLQ_IDLE_MS)
				continue;
			for (int i = 0; i < sc->n; i++)
				if (!sc->parts[i].done)
					fprintf(stderr,
						"kpool: %s [%d]: nothing read for %ds at offset "
						"%" PRId64 " (end %" PRId64 ")\n",
						sc->topic, i, DLQ_IDLE_MS / 1000, sc->parts[i].next,
						sc->parts[i].hi);
			*rc = -1;
			return NULL;
		}
		idle_since = kp_mono_ms();
		p = m->partition >= 0 && m->partition < sc->n ? &sc->parts[m->partition] : NULL;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (p && !p->done) {
				p->next = p->hi;
				scan_stop(sc, p);
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err) {
			fprintf(stderr, "kpool: %s: %s\n", sc->topic, rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			*rc = -1;
			return NULL;
		}
		if (p == NULL || p->done || m->offset < p->next || m->offset >= p->hi) {
			if (p && !p->done && m->offset >= p->hi) {
				p->next = p->hi;
				scan_stop(sc, p);
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		p->next = m->offset + 1;
		if (p->next >= p->hi)
			scan_stop(sc, p);
		return m;
	}
}

/* ---- dlq list ---------------------------------------------------------------- */

static int by_time(const void *a, const void *b)
{
	const struct dlrec *x = a, *y = b;

	if (x->failed_ms != y->failed_ms)
		return x->failed_ms < y->failed_ms ? -1 : 1;
	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

struct class_count {
	char *class;
	long n;
};

static void count_class(struct class_count **cc, size_t *n, const char *class)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*cc)[i].class, class) == 0) {
			(*cc)[i].n++;
			return;
		}
	struct class_count *x = realloc(*cc, (*n + 1) * sizeof(**cc));
	if (x == NULL)
		return;
	*cc = x;
	x[*n].class = strdup(class);
	x[*n].n = 1;
	(*n)++;
}

static void from_text(const struct dlrec *r, char *buf, size_t len)
{
	if (r->orig_topic == NULL)
		snprintf(buf, len, "-");
	else if (r->orig_offset >= 0)
		snprintf(buf, len, "%s/%d/%" PRId64, r->orig_topic, (int)r->orig_partition,
			 r->orig_offset);
	else
		snprintf(buf, len, "%s", r->orig_topic);
}

static json_t *dlrec_json(const struct dlrec *r)
{
	json_t *o = json_object();

	json_object_set_new(o, "partition", json_integer(r->partition));
	json_object_set_new(o, "offset", json_integer(r->offset));
	json_object_set_new(o, "failed_at",
			    r->failed_ms >= 0 ? json_string(r->failed_at) : json_null());
	json_object_set_new(
	    o, "original",
	    json_pack("{s:o,s:o,s:o}", "topic",
		      r->orig_topic ? json_string(r->orig_topic) : json_null(), "partition",
		      r->orig_partition >= 0 ? json_integer(r->orig_partition) : json_null(),
		      "offset", r->orig_offset >= 0 ? json_integer(r->orig_offset) : json_null()));
	json_object_set_new(o, "class", json_string(r->class));
	json_object_set_new(o, "attempts",
			    r->attempts >= 0 ? json_integer(r->attempts) : json_null());
	json_object_set_new(o, "reason", json_string(r->reason));
	json_object_set_new(o, "event_id", r->event_id ? json_string(r->event_id) : json_null());
	json_object_set_new(o, "writer", json_string(r->writer));
	return o;
}

static void json_print(json_t *doc)
{
	json_dumpf(doc, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(doc);
}

static int dlq_list(const struct kp_conf *conf, const char *topic, long limit, const char *class,
		    int64_t since, bool json)
{
	struct dlrec *recs = NULL;
	struct class_count *cc = NULL;
	size_t n = 0, cap = 0, n_cc = 0;
	struct scan sc;
	rd_kafka_message_t *m;
	int rc = 1;

	if (scan_open(&sc, conf, topic, NULL) < 0 || scan_start(&sc) < 0)
		goto out;
	while ((m = scan_next(&sc, &rc)) != NULL) {
		struct dlrec r;

		dlrec_read(m, &r);
		rd_kafka_message_destroy(m);
		if (!class_matches(r.class, class) || (since >= 0 && r.failed_ms < since)) {
			dlrec_free(&r);
			continue;
		}
		if (n == cap) {
			struct dlrec *x = realloc(recs, (cap = cap ? cap * 2 : 256) * sizeof(*x));
			if (x == NULL) {
				dlrec_free(&r);
				fprintf(stderr, "kpool: out of memory\n");
				goto out;
			}
			recs = x;
		}
		recs[n++] = r;
	}
	if (rc < 0)
		goto out;
	if (n > 1) /* qsort must not be given NULL, not even for nothing */
		qsort(recs, n, sizeof(*recs), by_time);
	for (size_t i = 0; i < n; i++)
		count_class(&cc, &n_cc, recs[i].class);
	size_t shown = limit >= 0 && (size_t)limit < n ? (size_t)limit : n;
	if (json) {
		json_t *doc = json_object(), *arr = json_array(), *classes = json_object();
		for (size_t i = 0; i < shown; i++)
			json_array_append_new(arr, dlrec_json(&recs[i]));
		for (size_t i = 0; i < n_cc; i++)
			json_object_set_new(classes, cc[i].class, json_integer(cc[i].n));
		json_object_set_new(doc, "topic", json_string(topic));
		json_object_set_new(doc, "total", json_integer((json_int_t)n));
		json_object_set_new(doc, "shown", json_integer((json_int_t)shown));
		json_object_set_new(doc, "classes", classes);
		json_object_set_new(doc, "records", arr);
		json_print(doc);
	} else {
		struct kp_table t;
		kp_table_init(&t, 6, "RECORD", "FAILED AT", "FROM", "CLASS", "ATTEMPTS", "REASON");
		for (size_t i = 0; i < shown; i++) {
			const struct dlrec *r = &recs[i];
			char at[48], from[KP_TOPIC_MAX + 48], attempts[16];
			snprintf(at, sizeof(at), "%d:%" PRId64, (int)r->partition, r->offset);
			from_text(r, from, sizeof(from));
			if (r->attempts >= 0)
				snprintf(attempts, sizeof(attempts), "%d", r->attempts);
			else
				snprintf(attempts, sizeof(attempts), "-");
			kp_table_row(&t, at, r->failed_at, from, r->class, attempts, r->reason);
		}
		if (shown)
			kp_table_print(&t, stdout);
		kp_table_free(&t);
		if (shown < n)
			printf("%zu of %zu records shown", shown, n);
		else
			printf("%zu record%s", n, n == 1 ? "" : "s");
		for (size_t i = 0; i < n_cc; i++)
			printf("%s %s %ld", i ? "," : ":", cc[i].class, cc[i].n);
		printf("\n");
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		dlrec_free(&recs[i]);
	free(recs);
	for (size_t i = 0; i < n_cc; i++)
		free(cc[i].class);
	free(cc);
	scan_close(&sc);
	return rc;
}

/* ---- dlq show ---------------------------------------------------------------- */

/* Text that prints as it is: UTF-8 without control characters other than tab/newline. */
static bool printable(const void *v, size_t len)
{
	const unsigned char *s = v;

	if (!kp_utf8_valid(v, len))
		return false;
	for (size_t i = 0; i < len; i++)
		if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') || s[i] == 0x7f)
			return false;
	return true;
}

static char *hex(const void *v, size_t len)
{
	const unsigned char *s = v;
	char *out = malloc(len * 3 + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		p += sprintf(p, i ? " %02x" : "%02x", s[i]);
	*p = '\0';
	return out;
}

/* A header value for people: text, a Spring number, or hex. */
static char *header_value(const char *name, const void *v, size_t len)
{
	char *h, *out = NULL;
	int64_t x;
	int rc;

	if (v == NULL)
		return strdup("(null)");
	if (printable(v, len))
		return strndup(v, len);
	if ((h = hex(v, len)) == NULL)
		return NULL;
	if (strncmp(name, "kafka_dlt-", 10) == 0 && be_int(v, len, &x))
		rc = asprintf(&out, "%" PRId64 " (%s)", x, h);
	else
		rc = asprintf(&out, "hex: %s", h);
	free(h);
	return rc < 0 ? NULL : out;
}

/* Prints bytes as an xxd-style dump. */
static void hexdump(const unsigned char *s, size_t len)
{
	for (size_t o = 0; o < len; o += 16) {
		printf("%08zx ", o);
		for (size_t i = o; i < o + 16; i++)
			printf(i < len ? " %02x" : "   ", i < len ? s[i] : 0);
		printf("  ");
		for (size_t i = o; i < o + 16 && i < len; i++)
			putchar(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '.');
		putchar('\n');
	}
}

/* Reads the one record at partition:offset; NULL having said why. */
static rd_kafka_message_t *read_one(struct scan *sc, int32_t part, int64_t offset)
{
	rd_kafka_message_t *m;
	struct part *p;
	int rc;

	if (part < 0 || part >= sc->n) {
		fprintf(stderr, "kpool: %s has no partition %d (it has %d)\n", sc->topic, (int)part,
			sc->n);
		return NULL;
	}
	p = &sc->parts[part];
	if (offset < p->lo || offset >= p->hi) {
		if (p->lo < p->hi)
			fprintf(stderr,
				"kpool: %s: no record at %d:%" PRId64
				" (partition %d holds offsets "
				"%" PRId64 "..%" PRId64 ")\n",
				sc->topic, (int)part, offset, (int)part, p->lo, p->hi - 1);
		else
			fprintf(stderr,
				"kpool: %s: no record at %d:%" PRId64 " (partition %d is empty)\n",
				sc->topic, (int)part, offset, (int)part);
		return NULL;
	}
	for (int i = 0; i < sc->n; i++) /* read nothing ... */
		sc->parts[i].start = sc->parts[i].hi;
	p->start = offset; /* ... but this one record */
	p->hi = offset + 1;
	if (scan_start(sc) < 0)
		return NULL;
	m = scan_next(sc, &rc);
	if (m == NULL && rc == 0)
		fprintf(stderr, "kpool: %s: no record at %d:%" PRId64 "\n", sc->topic, (int)part,
			offset);
	return m;
}

static int parse_at(const char *s, int32_t *part, int64_t *offset)
{
	char *end;
	long p = strtol(s, &end, 10);

	if (end == s || *end != ':' || p < 0 || p > INT32_MAX)
		return -1;
	s = end + 1;
	errno = 0;
	*offset = strtoll(s, &end, 10);
	if (end == s || *end || errno || *offset < 0)
		return -1;
	*part = (int32_t)p;
	return 0;
}

static int dlq_show(const struct kp_conf *conf, const char *topic, const char *at, bool json)
{
	rd_kafka_headers_t *h = NULL;
	rd_kafka_message_t *m = NULL;
	rd_kafka_timestamp_type_t tstype;
	json_t *job = NULL;
	struct scan sc;
	struct dlrec r;
	int32_t part;
	int64_t offset, ts;
	const char *name;
	const void *v;
	size_t len;
	int rc = 1;

	if (parse_at(at, &part, &offset) < 0) {
		fprintf(stderr, "kpool: '%s' is not PARTITION:OFFSET (e.g. 0:42)\n", at);
		return 2;
	}
	if (scan_open(&sc, conf, topic, NULL) < 0 || (m = read_one(&sc, part, offset)) == NULL)
		goto out;
	dlrec_read(m, &r);
	ts = rd_kafka_message_timestamp(m, &tstype);
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	if (printable(m->payload, m->len))
		job = json_loadb(m->payload, m->len, JSON_DECODE_ANY, NULL);
	if (json) {
		json_t *doc = dlrec_json(&r), *hs = json_array();
		char *x;
		for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++) {
			if (v && printable(v, len))
				json_array_append_new(hs, json_pack("{s:s,s:s%}", "name", name,
								    "value", (const char *)v, len));
			else if (v && (x = hex(v, len))) {
				json_array_append_new(
				    hs, json_pack("{s:s,s:s}", "name", name, "hex", x));
				free(x);
			} else {
				json_array_append_new(
				    hs, json_pack("{s:s,s:n}", "name", name, "value"));
			}
		}
		json_object_set_new(doc, "topic", json_string(topic));
		json_object_set_new(doc, "timestamp_ms", ts >= 0 ? json_integer(ts) : json_null());
		if (m->key && printable(m->key, m->key_len))
			json_object_set_new(doc, "key", json_stringn(m->key, m->key_len));
		else if (m->key && (x = hex(m->key, m->key_len))) {
			json_object_set_new(doc, "key", json_null());
			json_object_set_new(doc, "key_hex", json_string(x));
			free(x);
		} else {
			json_object_set_new(doc, "key", json_null());
		}
		json_object_set_new(doc, "headers", hs);
		if (job)
			json_object_set(doc, "job", job);
		else if (printable(m->payload, m->len))
			json_object_set_new(doc, "value_text", json_stringn(m->payload, m->len));
		else if ((x = hex(m->payload, m->len))) {
			json_object_set_new(doc, "value_hex", json_string(x));
			free(x);
		}
		json_print(doc);
	} else {
		struct kp_table t;
		char tsbuf[40], *key;
		if (ts >= 0)
			kp_cmd_iso(ts, tsbuf, sizeof(tsbuf));
		printf("record     %s %d:%" PRId64 "\n", topic, (int)part, offset);
		printf("timestamp  %s\n", ts >= 0 ? tsbuf : "-");
		key = m->key ? header_value("", m->key, m->key_len) : NULL;
		printf("key        %s\n", key ? key : "(none)");
		free(key);
		printf("\nheaders\n");
		kp_table_init(&t, 2, "  NAME", "VALUE");
		for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++) {
			char *val = header_value(name, v, len), ind[300];
			snprintf(ind, sizeof(ind), "  %s", name);
			kp_table_row(&t, ind, val ? val : "?");
			free(val);
		}
		if (t.n_rows)
			kp_table_print(&t, stdout);
		else
			printf("  (none)\n");
		kp_table_free(&t);
		printf("\njob (%zu bytes)\n", m->len);
		if (job) {
			json_dumpf(job, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
			putchar('\n');
		} else if (printable(m->payload, m->len)) {
			printf("%.*s\n(not JSON)\n", (int)m->len, (const char *)m->payload);
		} else {
			printf("(not UTF-8; shown as hex)\n");
			hexdump(m->payload, m->len);
		}
	}
	json_decref(job);
	dlrec_free(&r);
	rc = 0;
out:
	if (m)
		rd_kafka_message_destroy(m);
	scan_close(&sc);
	return rc;
}

/* ---- dlq replay -------------------------------------------------------------- */

/*
 * Progress lives in the group kpool-replay-DLQTOPIC: per partition, the
 * committed offset is the first record neither replayed nor left behind
 * by a filter... precisely: every record below it was replayed (or is gone);
 * the commit's metadata lists, as "replayed:A-B,C", the offsets above it
 * that were replayed too (a filtered replay leaves gaps).
 */
static void replayed_add(struct part *p, int64_t off)
{
	if (p->n_replayed == p->cap_replayed) {
		size_t cap = p->cap_replayed ? p->cap_replayed * 2 : 64;
		int64_t *x = realloc(p->replayed, cap * sizeof(*x));
		if (x == NULL)
			abort(); /* an admin command: no memory is no way on */
		p->replayed = x;
		p->cap_replayed = cap;
	}
	size_t i = p->n_replayed;
	while (i > 0 && p->replayed[i - 1] > off) { /* keep them sorted */
		p->replayed[i] = p->replayed[i - 1];
		i--;
	}
	p->replayed[i] = off;
	p->n_replayed++;
	if (off != p->last_added + 1) /* a new range: "A-B," at most */
		p->meta_bytes += 2 * (size_t)snprintf(NULL, 0, "%" PRId64, off) + 2;
	p->last_added = off;
}

static bool replayed_has(const struct part *p, int64_t off)
{
	size_t lo = 0, hi = p->n_replayed;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (p->replayed[mid] == off)
			return true;
		if (p->replayed[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void meta_parse(struct part *p, const char *s, size_t len)
{
	char *buf = strndup(s, len), *tok, *save = NULL;

	if (buf == NULL || strncmp(buf, "replayed:", 9) != 0) {
		free(buf);
		return;
	}
	for (tok = strtok_r(buf + 9, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		long long a = strtoll(tok, &end, 10), b = a;
		if (*end == '-')
			b = strtoll(end + 1, &end, 10);
		for (long long o = a; o <= b && b - a < 10000000; o++)
			if (o >= p->committed)
				replayed_add(p, o);
	}
	p->meta_bytes += len;
	free(buf);
}

/* The offset to commit: below it everything was replayed; *meta the ones above. */
static int64_t progress(const struct part *p, char *meta, size_t len)
{
	int64_t upto = p->first_left >= 0 ? p->first_left : p->next;
	size_t used = (size_t)snprintf(meta, len, "replayed:");
	bool any = false;

	for (size_t i = 0; i < p->n_replayed; i++) {
		int64_t a = p->replayed[i], b = a;
		if (a < upto)
			continue;
		while (i + 1 < p->n_replayed && p->replayed[i + 1] == b + 1)
			b = p->replayed[++i];
		if (used < len)
			used += (size_t)snprintf(meta + used, len - used,
						 b > a ? "%s%" PRId64 "-%" PRId64 : "%s%" PRId64,
						 any ? "," : "", a, b);
		any = true;
	}
	if (!any)
		meta[0] = '\0';
	return upto;
}

static int replay_commit(struct scan *sc)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(sc->n);
	rd_kafka_resp_err_t e;
	char meta[REPLAY_META + 64];

	for (int i = 0; i < sc->n; i++) {
		struct part *p = &sc->parts[i];
		int64_t upto = progress(p, meta, sizeof(meta));
		rd_kafka_topic_partition_t *tp;
		if (p->out || (upto <= p->committed && !p->n_replayed))
			continue;
		tp = rd_kafka_topic_partition_list_add(l, sc->topic, p->id);
		tp->offset = upto;
		if (meta[0]) {
			tp->metadata = strdup(meta);
			tp->metadata_size = strlen(meta);
		}
	}
	e = l->cnt ? rd_kafka_commit(sc->rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int i = 0; !e && i < l->cnt; i++)
		e = l->elems[i].err;
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		fprintf(stderr, "kpool: %s: committing replay progress: %s\n", sc->topic,
			rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

/* One record sent, waiting for its acknowledgement. */
struct sent {
	struct dlrec r;
	char *to;
	rd_kafka_resp_err_t err;
	int32_t to_partition;
	int64_t to_offset;
	bool acked;
};

static void on_replayed(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct sent *s = m->_private;

	(void)rk;
	(void)opaque;
	s->err = m->err;
	s->to_partition = m->partition;
	s->to_offset = m->offset;
	s->acked = true;
}

struct replay_opts {
	const char *to, *class;
	int32_t only_part; /* --offsets P:A..B, else -1 */
	int64_t from, upto;
	long limit;
	bool dry_run, from_start, json;
};

static int parse_range(const char *s, struct replay_opts *o)
{
	const char *dots = strstr(s, ".."), *colon = strchr(s, ':');
	char *end;

	o->only_part = -1;
	o->from = 0;
	o->upto = INT64_MAX;
	if (dots == NULL)
		return -1;
	if (colon && colon < dots) {
		long p = strtol(s, &end, 10);
		if (end != colon || p < 0)
			return -1;
		o->only_part = (int32_t)p;
		s = colon + 1;
	}
	if (s < dots) {
		o->from = strtoll(s, &end, 10);
		if (end != dots || o->from < 0)
			return -1;
	}
	if (dots[2]) {
		o->upto = strtoll(dots + 2, &end, 10);
		if (*end || o->upto < o->from)
			return -1;
	}
	return 0;
}

static rd_kafka_t *replay_producer(const struct kp_conf *conf)
{
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	char err[512];
	rd_kafka_t *rk;

	if (kp_conf_kafka_apply(conf, rc, err, sizeof(err)) < 0 ||
	    rd_kafka_conf_set(rc, "acks", "all", err, sizeof(err)) ||
	    rd_kafka_conf_set(rc, "enable.idempotence", "true", err, sizeof(err)) ||
	    rd_kafka_conf_set(rc, "message.timeout.ms", "30000", err, sizeof(err)) ||
	    rd_kafka_conf_set(rc, "linger.ms", "5", err, sizeof(err))) {
		rd_kafka_conf_destroy(rc);
		fprintf(stderr, "kpool: %s\n", err);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(rc, on_replayed);
	rd_kafka_conf_set_log_cb(rc, kp_rdkafka_log);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof(err));
	if (rk == NULL) {
		rd_kafka_conf_destroy(rc);
		fprintf(stderr, "kpool: %s\n", err);
	}
	return rk;
}

/* Re-produces a dead-letter record to `to`, keeping key, value and headers. */
static rd_kafka_resp_err_t reproduce(rd_kafka_t *pk, const char *dlq, const rd_kafka_message_t *m,
				     struct sent *s)
{
	rd_kafka_headers_t *orig = NULL, *h;
	rd_kafka_resp_err_t e;
	char from[KP_TOPIC_MAX + 48];

	h = rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR
		? rd_kafka_headers_copy(orig)
		: rd_kafka_headers_new(1);
	snprintf(from, sizeof(from), "%s/%d/%" PRId64, dlq, (int)m->partition, m->offset);
	rd_kafka_header_remove(h, REPLAYED_FROM);
	rd_kafka_header_add(h, REPLAYED_FROM, -1, from, -1);
	for (;;) {
		e = rd_kafka_producev(
		    pk, RD_KAFKA_V_TOPIC(s->to), RD_KAFKA_V_KEY(m->key, m->key_len),
		    RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(s), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(pk, 100);
	}
	if (e)
		rd_kafka_headers_destroy(h);
	return e;
}

/*
 * Waits for the chunk's acknowledgements and marks what was acknowledged as
 * replayed; returns the number that failed (each said).
 */
static int settle_chunk(struct scan *sc, rd_kafka_t *pk, struct sent *chunk, size_t n, json_t *out,
			struct kp_table *t, bool dry_run, long *ok)
{
	int failed = 0;

	if (pk)
		rd_kafka_flush(pk, 60000);
	for (size_t i = 0; i < n; i++) {
		struct sent *s = &chunk[i];
		struct part *p = &sc->parts[s->r.partition];
		char at[48], dest[KP_TOPIC_MAX + 48];

		if (!dry_run && (!s->acked || s->err)) {
			fprintf(stderr, "kpool: %s %d:%" PRId64 " -> %s: %s\n", sc->topic,
				(int)s->r.partition, s->r.offset, s->to,
				rd_kafka_err2str(s->acked ? s->err : RD_KAFKA_RESP_ERR__TIMED_OUT));
			if (p->first_left < 0 || s->r.offset < p->first_left)
				p->first_left = s->r.offset;
			failed++;
			continue;
		}
		if (!dry_run)
			replayed_add(p, s->r.offset);
		(*ok)++;
		snprintf(at, sizeof(at), "%d:%" PRId64, (int)s->r.partition, s->r.offset);
		if (dry_run)
			snprintf(dest, sizeof(dest), "%s", s->to);
		else
			snprintf(dest, sizeof(dest), "%s %d:%" PRId64, s->to, (int)s->to_partition,
				 s->to_offset);
		if (out) {
			json_t *o = dlrec_json(&s->r);
			json_object_set_new(o, "to", json_string(s->to));
			json_object_set_new(o, "to_partition",
					    dry_run ? json_null() : json_integer(s->to_partition));
			json_object_set_new(o, "to_offset",
					    dry_run ? json_null() : json_integer(s->to_offset));
			json_array_append_new(out, o);
		} else {
			kp_table_row(t, at, s->r.class, s->r.failed_at, dest);
		}
	}
	return failed;
}

/* Settles a chunk, frees it and commits the progress; -1 if the commit failed. */
static int chunk_done(struct scan *sc, rd_kafka_t *pk, struct sent *chunk, size_t *n, json_t *out,
		      struct kp_table *t, const struct replay_opts *o, long *ok, long *failed)
{
	*failed += settle_chunk(sc, pk, chunk, *n, out, t, o->dry_run, ok);
	for (size_t i = 0; i < *n; i++) {
		dlrec_free(&chunk[i].r);
		free(chunk[i].to);
	}
	*n = 0;
	return o->dry_run ? 0 : replay_commit(sc);
}

static int dlq_replay(const struct kp_conf *conf, const char *topic, const struct replay_opts *o)
{
	char group[KP_TOPIC_MAX + 16];
	struct sent *chunk = calloc(REPLAY_CHUNK, sizeof(*chunk));
	size_t n_chunk = 0;
	long queued = 0, replayed = 0, before = 0, left = 0, unroutable = 0, failed = 0;
	rd_kafka_t *pk = NULL;
	rd_kafka_message_t *m;
	json_t *out = o->json ? json_array() : NULL;
	struct kp_table t;
	struct scan sc;
	int rc = 1, scan_rc = 0;
	bool stopped = o->limit == 0;

	kp_table_init(&t, 4, "RECORD", "CLASS", "FAILED AT",
		      o->dry_run ? "WOULD GO TO" : "SENT TO");
	snprintf(group, sizeof(group), "kpool-replay-%s", topic);
	if (chunk == NULL || scan_open(&sc, conf, topic, group) < 0)
		goto out;
	if (!o->dry_run && (pk = replay_producer(conf)) == NULL)
		goto out;
	if (!o->from_start) { /* where earlier replays got to */
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(sc.n);
		rd_kafka_resp_err_t e;
		for (int i = 0; i < sc.n; i++)
			rd_kafka_topic_partition_list_add(l, topic, i);
		e = rd_kafka_committed(sc.rk, l, DLQ_TIMEOUT_MS);
		for (int i = 0; !e && i < l->cnt; i++) {
			const rd_kafka_topic_partition_t *tp = &l->elems[i];
			struct part *p = &sc.parts[tp->partition];
			if (tp->err || tp->offset < 0)
				continue;
			p->committed = tp->offset;
			p->start = tp->offset;
			if (tp->metadata)
				meta_parse(p, tp->metadata, tp->metadata_size);
		}
		rd_kafka_topic_partition_list_destroy(l);
		if (e) {
			fprintf(stderr, "kpool: %s: replay progress of group %s: %s\n", topic,
				group, rd_kafka_err2str(e));
			goto out;
		}
	}
	for (int i = 0; i < sc.n; i++) {
		struct part *p = &sc.parts[i];
		if (o->only_part >= 0 && p->id != o->only_part) {
			p->start = p->hi; /* not this one */
			p->out = true;
		}
	}
	if (scan_start(&sc) < 0)
		goto out;
	while (!stopped && (m = scan_next(&sc, &scan_rc)) != NULL) {
		struct part *p = &sc.parts[m->partition];
		struct sent *s = &chunk[n_chunk];
		rd_kafka_resp_err_t e;

		if (replayed_has(p, m->offset)) {
			before++;
			rd_kafka_message_destroy(m);
			continue;
		}
		dlrec_read(m, &s->r);
		s->to = (char *)(o->to ? o->to : s->r.orig_topic);
		if (!class_matches(s->r.class, o->class) || m->offset < o->from ||
		    m->offset > o->upto || s->to == NULL || (p->full && p->first_left >= 0)) {
			if (s->to == NULL && class_matches(s->r.class, o->class))
				unroutable++;
			else
				left++;
			if (p->first_left < 0)
				p->first_left = m->offset;
			dlrec_free(&s->r);
			rd_kafka_message_destroy(m);
			continue;
		}
		s->acked = false;
		s->err = 0;
		if (!o->dry_run && (e = reproduce(pk, topic, m, s))) {
			fprintf(stderr, "kpool: %s %d:%" PRId64 " -> %s: %s\n", topic,
				(int)m->partition, m->offset, s->to, rd_kafka_err2str(e));
			failed++;
			if (p->first_left < 0)
				p->first_left = m->offset;
			dlrec_free(&s->r);
			rd_kafka_message_destroy(m);
			continue;
		}
		s->to = strdup(s->to);
		n_chunk++;
		queued++;
		rd_kafka_message_destroy(m);
		if (pk)
			rd_kafka_poll(pk, 0);
		if (p->first_left >= 0 && p->meta_bytes + 48 > REPLAY_META)
			p->full = true; /* scattered offsets: the metadata has no room for more */
		if (o->limit >= 0 && queued >= o->limit)
			stopped = true;
		if ((n_chunk == REPLAY_CHUNK || stopped) &&
		    chunk_done(&sc, pk, chunk, &n_chunk, out, &t, o, &replayed, &failed) < 0)
			goto out;
	}
	if (chunk_done(&sc, pk, chunk, &n_chunk, out, &t, o, &replayed, &failed) < 0)
		goto out;
	if (out) {
		json_t *doc = json_object();
		json_object_set_new(doc, "topic", json_string(topic));
		json_object_set_new(doc, "group", json_string(group));
		json_object_set_new(doc, "dry_run", json_boolean(o->dry_run));
		json_object_set_new(doc, o->dry_run ? "would_replay" : "replayed", out);
		json_object_set_new(doc, "already_replayed", json_integer(before));
		json_object_set_new(doc, "left", json_integer(left));
		json_object_set_new(doc, "no_destination", json_integer(unroutable));
		json_object_set_new(doc, "failed", json_integer(failed));
		out = NULL;
		json_print(doc);
	} else {
		if (t.n_rows)
			kp_table_print(&t, stdout);
		printf("%s %ld record%s from %s", o->dry_run ? "would replay" : "replayed",
		       replayed, replayed == 1 ? "" : "s", topic);
		if (before)
			printf("; %ld replayed before (--from-start sends them again)", before);
		if (left)
			printf("; %ld left as they are", left);
		if (unroutable)
			printf("; %ld without an original topic (use --to)", unroutable);
		if (failed)
			printf("; %ld FAILED", failed);
		printf("\n");
	}
	rc = failed || scan_rc < 0 ? 1 : 0;
out:
	for (size_t i = 0; chunk && i < n_chunk; i++) {
		dlrec_free(&chunk[i].r);
		free(chunk[i].to);
	}
	free(chunk);
	json_decref(out);
	kp_table_free(&t);
	if (pk) {
		rd_kafka_flush(pk, 10000);
		rd_kafka_destroy(pk);
	}
	scan_close(&sc);
	return rc;
}

/* ---- kpool dlq ... ------------------------------------------------------------- */

int kp_cmd_dlq(const struct kp_conf *conf, int argc, char **argv)
{
	static const struct option longopts[] = {{"limit", required_argument, NULL, 'n'},
						 {"error-class", required_argument, NULL, 'C'},
						 {"since", required_argument, NULL, 's'},
						 {"json", no_argument, NULL, 'j'},
						 {"to", required_argument, NULL, 't'},
						 {"offsets", required_argument, NULL, 'o'},
						 {"dry-run", no_argument, NULL, 'd'},
						 {"from-start", no_argument, NULL, 'F'},
						 {NULL, 0, NULL, 0}};
	struct replay_opts o = {.only_part = -1, .upto = INT64_MAX, .limit = -1};
	const char *sub = argc > 1 ? argv[1] : "";
	int64_t since = -1;
	char *end;
	int c;

	if (argc < 2) {
		usage_dlq(stderr);
		return 2;
	}
	argc--; /* argv[0] is now the subcommand; options and operands follow */
	argv++;
	optind = 0; /* a fresh scan: main() parsed its own options with "+" */
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.limit = strtol(optarg, &end, 10);
			if (*end || end == optarg || o.limit < 0) {
				fprintf(stderr, "kpool: --limit wants a count, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'C':
			o.class = optarg;
			break;
		case 's':
			if ((since = kp_cmd_since_arg(optarg)) < 0)
				return 2;
			break;
		case 'j':
			o.json = true;
			break;
		case 't':
			o.to = optarg;
			break;
		case 'o':
			if (parse_range(optarg, &o) < 0) {
				fprintf(stderr,
					"kpool: --offsets wants A..B or PARTITION:A..B (either end "
					"may be left out), not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'd':
			o.dry_run = true;
			break;
		case 'F':
			o.from_start = true;
			break;
		default:
			usage_dlq(stderr);
			return 2;
		}
	}
	if (strcmp(sub, "list") == 0 && optind + 1 == argc && !o.to && !o.dry_run &&
	    !o.from_start && o.only_part < 0 && o.upto == INT64_MAX)
		return dlq_list(conf, argv[optind], o.limit, o.class, since, o.json);
	if (strcmp(sub, "show") == 0 && optind + 2 == argc && !o.class && o.limit < 0 && !o.to)
		return dlq_show(conf, argv[optind], argv[optind + 1], o.json);
	if (strcmp(sub, "replay") == 0 && optind + 1 == argc && since < 0)
		return dlq_replay(conf, argv[optind], &o);
	usage_dlq(stderr);
	return 2;
}
