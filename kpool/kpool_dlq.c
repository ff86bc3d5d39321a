/*
 * kpool_dlq.c - `kpool dlq list|show|replay`: the dead-letter topics read
 * and replayed.  A topic is read from its first offset to the high watermark
 * taken at the start (a consumer that assigns, never joins a group); replay
 * keeps its progress in the consumer group kpool-replay-DLQTOPIC.
 *
 * Besides kpool's own records, it reads those of Spring Kafka
 * (kafka_dlt-original-topic, ...; partition and offset as big-endian
 * integers) and Kafka Connect (__connect.errors.topic, ...): see
 * kpool_dlqrec.c.  A record is replayed to the topic it names only when a
 * binding of the conf sends that topic's failed jobs to this dead-letter
 * topic; anywhere else only with --to.
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "kpool_cmd.h"

#define DLQ_TIMEOUT_MS 10000 /* metadata, watermarks, commits */
#define DLQ_IDLE_MS    30000 /* reading: give up after this long without a record */
#define REPLAY_CHUNK   500   /* records produced, then acknowledged, then committed */
#define REPLAY_META    3000  /* bytes of replayed offsets kept in a commit's metadata */

/* One partition of the topic being read. */
struct part {
	int32_t id;
	int64_t lo, hi; /* watermarks at the start */
	int64_t start;	/* first offset to read */
	int64_t next;	/* first offset not looked at yet */
	bool done;
	/* replay */
	int64_t committed;	   /* the group's offset at the start, -1 if none */
	struct kp_ranges replayed; /* offsets replayed before or now (above committed) */
	int64_t first_left;	   /* first offset looked at and not replayed, -1 if none */
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

/* Reads what a dead-letter record says about the job and why it is there. */
static void dlrec_read(const rd_kafka_message_t *m, struct dlrec *r)
{
	rd_kafka_headers_t *h = NULL;
	rd_kafka_timestamp_type_t tstype;

	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	kp_dlrec_read(r, h, m->partition, m->offset, rd_kafka_message_timestamp(m, &tstype));
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
		kp_ranges_free(&sc->parts[i].replayed);
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
	if (kp_conf_kafka_apply(conf, kc, false, err, sizeof(err)) < 0 ||
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
	if (x == NULL || (x[*n].class = strdup(class)) == NULL)
		abort(); /* a count for a terminal: no memory is no way on */
	*cc = x;
	x[*n].n = 1;
	(*n)++;
}

/* Prints a document of --json. */
static void json_print(json_t *doc)
{
	kp_json_print(doc, stdout, JSON_INDENT(2));
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
		if (!kp_dlrec_class_matches(r.class, class) ||
		    (since >= 0 && r.failed_ms < since)) {
			kp_dlrec_free(&r);
			continue;
		}
		if (n == cap) {
			struct dlrec *x = realloc(recs, (cap = cap ? cap * 2 : 256) * sizeof(*x));
			if (x == NULL) {
				kp_dlrec_free(&r);
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
			json_array_append_new(arr, kp_dlrec_json(&recs[i]));
		for (size_t i = 0; i < n_cc; i++) /* classes are valid UTF-8, and distinct */
			json_object_set_new(classes, cc[i].class, json_integer(cc[i].n));
		json_object_set_new(doc, "topic", kp_json_text(topic, strlen(topic)));
		json_object_set_new(doc, "total", json_integer((json_int_t)n));
		json_object_set_new(doc, "shown", json_integer((json_int_t)shown));
		json_object_set_new(doc, "classes", classes);
		json_object_set_new(doc, "records", arr);
		json_print(doc);
	} else {
		struct kp_table t;
		kp_table_init(&t, 6, "RECORD", "FAILED AT", "FROM", "CLASS", "ATTEMPTS", "REASON");
		for (size_t i = 0; i < shown; i++)
			kp_dlrec_row(&recs[i], &t);
		if (shown)
			kp_table_print(&t, stdout);
		kp_table_free(&t);
		if (shown < n)
			printf("%zu of %zu records shown", shown, n);
		else
			printf("%zu record%s", n, n == 1 ? "" : "s");
		for (size_t i = 0; i < n_cc; i++) {
			printf("%s ", i ? "," : ":");
			kp_text_put(stdout, cc[i].class, strlen(cc[i].class), 0);
			printf(" %ld", cc[i].n);
		}
		printf("\n");
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		kp_dlrec_free(&recs[i]);
	free(recs);
	for (size_t i = 0; i < n_cc; i++)
		free(cc[i].class);
	free(cc);
	scan_close(&sc);
	return rc;
}

/* ---- dlq show ---------------------------------------------------------------- */

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

/* PARTITION:OFFSET, each a decimal number in its range; -1 if s is not that. */
static int parse_at(const char *s, int32_t *part, int64_t *offset)
{
	const char *colon = strchr(s, ':');
	int64_t p;

	if (colon == NULL || kp_cmd_decimal(s, (size_t)(colon - s), INT32_MAX, &p) < 0 ||
	    kp_cmd_decimal(colon + 1, strlen(colon + 1), INT64_MAX, offset) < 0)
		return -1;
	*part = (int32_t)p;
	return 0;
}

/* dlq show --json: the record, its headers (text, or hex), key and job. */
static void show_json(const char *topic, const rd_kafka_message_t *m, rd_kafka_headers_t *h,
		      const struct dlrec *r, int64_t ts, json_t *job)
{
	json_t *doc = kp_dlrec_json(r);
	char *x;

	json_object_set_new(doc, "topic", kp_json_text(topic, strlen(topic)));
	json_object_set_new(doc, "timestamp_ms", ts >= 0 ? json_integer(ts) : json_null());
	if (m->key && kp_dlrec_printable(m->key, m->key_len))
		json_object_set_new(doc, "key", kp_json_text(m->key, m->key_len));
	else if (m->key && (x = kp_dlrec_hex(m->key, m->key_len))) {
		json_object_set_new(doc, "key", json_null());
		json_object_set_new(doc, "key_hex", json_string(x));
		free(x);
	} else {
		json_object_set_new(doc, "key", json_null());
	}
	json_object_set_new(doc, "headers", kp_dlrec_headers_json(h));
	if (job)
		json_object_set(doc, "job", job);
	else if (kp_dlrec_printable(m->payload, m->len))
		json_object_set_new(doc, "value_text", kp_json_text(m->payload, m->len));
	else if ((x = kp_dlrec_hex(m->payload, m->len))) {
		json_object_set_new(doc, "value_hex", json_string(x));
		free(x);
	}
	json_print(doc);
}

/* dlq show: the record, its headers, key and job, for people. */
static void show_text(const char *topic, const rd_kafka_message_t *m, rd_kafka_headers_t *h,
		      int64_t ts, json_t *job)
{
	struct kp_table t;
	char tsbuf[40], *key;

	if (ts >= 0)
		kp_cmd_iso(ts, tsbuf, sizeof(tsbuf));
	printf("record     ");
	kp_text_put(stdout, topic, strlen(topic), 0);
	printf(" %d:%" PRId64 "\n", (int)m->partition, m->offset);
	printf("timestamp  %s\n", ts >= 0 ? tsbuf : "-");
	key = m->key ? kp_dlrec_header_value("", m->key, m->key_len) : NULL;
	printf("key        ");
	kp_text_put(stdout, key ? key : "(none)", strlen(key ? key : "(none)"), 0);
	printf("\n");
	free(key);
	printf("\nheaders\n");
	kp_table_init(&t, 2, "  NAME", "VALUE");
	kp_dlrec_headers_table(h, &t);
	if (t.n_rows)
		kp_table_print(&t, stdout);
	else
		printf("  (none)\n");
	kp_table_free(&t);
	printf("\njob (%zu bytes)\n", m->len);
	if (job) {
		kp_json_print(job, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	} else if (kp_dlrec_printable(m->payload, m->len)) {
		kp_text_put(stdout, m->payload, m->len, KP_TEXT_LINES);
		printf("\n(not JSON)\n");
	} else {
		printf("(not UTF-8; shown as hex)\n");
		hexdump(m->payload, m->len);
	}
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

	if (parse_at(at, &part, &offset) < 0) {
		fprintf(stderr, "kpool: '");
		kp_text_put(stderr, at, strlen(at), 0);
		fprintf(stderr, "' is not PARTITION:OFFSET (e.g. 0:42)\n");
		return 2;
	}
	if (scan_open(&sc, conf, topic, NULL) < 0 || (m = read_one(&sc, part, offset)) == NULL) {
		scan_close(&sc);
		return 1;
	}
	dlrec_read(m, &r);
	ts = rd_kafka_message_timestamp(m, &tstype);
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	if (kp_dlrec_printable(m->payload, m->len))
		job = json_loadb(m->payload, m->len, JSON_DECODE_ANY, NULL);
	if (json)
		show_json(topic, m, h, &r, ts, job);
	else
		show_text(topic, m, h, ts, job);
	json_decref(job);
	kp_dlrec_free(&r);
	rd_kafka_message_destroy(m);
	scan_close(&sc);
	return 0;
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
	if (kp_ranges_add(&p->replayed, off) < 0)
		abort();	      /* an admin command: no memory is no way on */
	if (off != p->last_added + 1) /* a new range: "A-B," at most */
		p->meta_bytes += 2 * (size_t)snprintf(NULL, 0, "%" PRId64, off) + 2;
	p->last_added = off;
}

/*
 * Reads the replayed offsets of a commit's metadata (those from the
 * committed offset up).  Metadata that is not what replay writes is
 * ignored, saying so: the records it would name are replayed again, and
 * the pool skips those already done.
 */
static void meta_parse(const char *topic, const char *group, struct part *p, const char *s,
		       size_t len)
{
	char why[160];

	if (kp_replay_meta_parse(&p->replayed, s, len, p->committed, why, sizeof(why)) < 0) {
		fprintf(stderr,
			"kpool: %s [%d]: the replay progress of group %s has metadata that is not "
			"\"replayed:A-B,C\" (%s); it is ignored, so records from offset %" PRId64
			" on may be sent again\n",
			topic, (int)p->id, group, why, p->committed);
		return;
	}
	p->meta_bytes += len;
}

/* The offset to commit: below it everything was replayed; *meta the ones above. */
static int64_t progress(const struct part *p, char *meta, size_t len)
{
	int64_t upto = p->first_left >= 0 ? p->first_left : p->next;

	kp_replay_meta_print(&p->replayed, upto, meta, len);
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
		if (p->out || (upto <= p->committed && !p->replayed.n))
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

/*
 * Where records may go: without --to, the topics whose failed jobs a
 * binding of the conf sends to the dead-letter topic (a record naming any
 * other is refused); with it, that topic alone.
 */
struct dest {
	const char *topic;
	const char *binding; /* NULL for --to */
	long n;		     /* records sent (or that would be) */
};

struct dests {
	struct dest *d;
	size_t n;
};

/* One record sent, waiting for its acknowledgement. */
struct sent {
	struct dlrec r;
	struct dest *to;
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

/*
 * --offsets [P:]A..B (either end may be left out): a partition up to
 * 2^31-1, offsets up to 2^63-1, decimal, A <= B; -1 if s is not that.
 */
static int parse_range(const char *s, struct replay_opts *o)
{
	const char *dots = strstr(s, ".."), *colon = strchr(s, ':');
	int64_t p;

	o->only_part = -1;
	o->from = 0;
	o->upto = INT64_MAX;
	if (dots == NULL)
		return -1;
	if (colon && colon < dots) {
		if (kp_cmd_decimal(s, (size_t)(colon - s), INT32_MAX, &p) < 0)
			return -1;
		o->only_part = (int32_t)p;
		s = colon + 1;
	}
	if (s < dots && kp_cmd_decimal(s, (size_t)(dots - s), INT64_MAX, &o->from) < 0)
		return -1;
	if (dots[2] && kp_cmd_decimal(dots + 2, strlen(dots + 2), INT64_MAX, &o->upto) < 0)
		return -1;
	return o->upto < o->from ? -1 : 0;
}

static rd_kafka_t *replay_producer(const struct kp_conf *conf)
{
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	char err[512];
	rd_kafka_t *rk;

	if (kp_conf_kafka_apply(conf, rc, true, err, sizeof(err)) < 0 ||
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
	rd_kafka_header_remove(h, KP_REPLAYED_FROM);
	rd_kafka_header_add(h, KP_REPLAYED_FROM, -1, from, -1);
	for (;;) {
		e = rd_kafka_producev(
		    pk, RD_KAFKA_V_TOPIC(s->to->topic), RD_KAFKA_V_KEY(m->key, m->key_len),
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
			fprintf(stderr, "kpool: %s %d:%" PRId64 " -> ", sc->topic,
				(int)s->r.partition, s->r.offset);
			kp_text_put(stderr, s->to->topic, strlen(s->to->topic), 0);
			fprintf(stderr, ": %s\n",
				rd_kafka_err2str(s->acked ? s->err : RD_KAFKA_RESP_ERR__TIMED_OUT));
			if (p->first_left < 0 || s->r.offset < p->first_left)
				p->first_left = s->r.offset;
			failed++;
			continue;
		}
		if (!dry_run)
			replayed_add(p, s->r.offset);
		(*ok)++;
		s->to->n++;
		snprintf(at, sizeof(at), "%d:%" PRId64, (int)s->r.partition, s->r.offset);
		if (dry_run)
			snprintf(dest, sizeof(dest), "%s", s->to->topic);
		else
			snprintf(dest, sizeof(dest), "%s %d:%" PRId64, s->to->topic,
				 (int)s->to_partition, s->to_offset);
		if (out) {
			json_t *o = kp_dlrec_json(&s->r);
			json_object_set_new(o, "to",
					    kp_json_text(s->to->topic, strlen(s->to->topic)));
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
	for (size_t i = 0; i < *n; i++)
		kp_dlrec_free(&chunk[i].r);
	*n = 0;
	return o->dry_run ? 0 : replay_commit(sc);
}

/*
 * The destinations records of dlq may have: --to, or the topics that the
 * bindings of conf dead-letter to dlq.  Aborts when memory runs out.
 */
static void dests_find(const struct kp_conf *conf, const char *dlq, const char *to,
		       struct dests *ds)
{
	size_t cap = 1;

	for (size_t i = 0; i < conf->n_bindings; i++)
		cap += (size_t)conf->bindings[i].n_topics;
	ds->n = 0;
	if ((ds->d = calloc(cap, sizeof(*ds->d))) == NULL)
		abort(); /* an admin command: no memory is no way on */
	if (to) {
		ds->d[ds->n++] = (struct dest){.topic = to};
		return;
	}
	for (size_t i = 0; i < conf->n_bindings; i++) {
		const struct kp_binding *b = &conf->bindings[i];
		for (int k = 0; k < b->n_topics; k++) {
			char name[KP_TOPIC_MAX + 8];
			size_t j;
			kp_dlq_topic(b, b->topics[k], name, sizeof(name));
			for (j = 0; j < ds->n && strcmp(ds->d[j].topic, b->topics[k]) != 0; j++)
				;
			if (strcmp(name, dlq) == 0 && j == ds->n)
				ds->d[ds->n++] =
				    (struct dest){.topic = b->topics[k], .binding = b->name};
		}
	}
}

/* Where a record goes: --to, else its own topic if the conf sends that topic's failures here. */
static struct dest *dest_of(struct dests *ds, const char *to, const char *orig_topic)
{
	if (to)
		return &ds->d[0];
	for (size_t i = 0; orig_topic && i < ds->n; i++)
		if (strcmp(ds->d[i].topic, orig_topic) == 0)
			return &ds->d[i];
	return NULL;
}

#define REFUSED_SAID 10 /* refused records named one by one; the rest are counted */

/* Says that a record naming a topic outside ds is not replayed; the first few by name. */
static void refuse(const struct kp_conf *conf, const char *dlq, const struct dests *ds,
		   const struct dlrec *r, long n_refused)
{
	if (n_refused > REFUSED_SAID)
		return;
	fprintf(stderr, "kpool: %s %d:%" PRId64 ": not replayed to ", dlq, (int)r->partition,
		r->offset);
	kp_text_put(stderr, r->orig_topic, strlen(r->orig_topic), 0);
	fprintf(stderr, ": no binding of %s sends that topic's failed jobs to %s", conf->path, dlq);
	if (ds->n) {
		fprintf(stderr, " (those that do: ");
		for (size_t i = 0; i < ds->n; i++)
			fprintf(stderr, "%s%s", i ? ", " : "", ds->d[i].topic);
		fprintf(stderr, ")");
	}
	fprintf(stderr, "; --to TOPIC sends it there\n");
	if (n_refused == REFUSED_SAID)
		fprintf(stderr, "kpool: %s: further records refused are counted, not named\n", dlq);
}

/* Says that a copy without its job's value is not replayed (it would send an empty job). */
static void refuse_omitted(const char *dlq, const struct dlrec *r, long n_refused)
{
	if (n_refused > REFUSED_SAID)
		return;
	fprintf(stderr,
		"kpool: %s %d:%" PRId64 ": not replayed: this copy is without the job's value "
		"(kpool.omitted, it was too large for %s); the job is at ",
		dlq, (int)r->partition, r->offset, dlq);
	kp_text_put(stderr, r->orig_topic ? r->orig_topic : "?",
		    r->orig_topic ? strlen(r->orig_topic) : 1, 0);
	fprintf(stderr, "/%d/%" PRId64 " until that topic's retention ends\n",
		(int)r->orig_partition, r->orig_offset);
	if (n_refused == REFUSED_SAID)
		fprintf(stderr, "kpool: %s: further records refused are counted, not named\n", dlq);
}

/* " to T" (one destination) or " to T1 (n1), T2 (n2)": where the records went. */
static void print_dests(const struct dests *ds)
{
	size_t used = 0;

	for (size_t i = 0; i < ds->n; i++)
		used += ds->d[i].n > 0;
	for (size_t i = 0, k = 0; i < ds->n; i++) {
		if (ds->d[i].n == 0)
			continue;
		printf("%s", k++ ? ", " : " to ");
		kp_text_put(stdout, ds->d[i].topic, strlen(ds->d[i].topic), 0);
		if (used > 1)
			printf(" (%ld)", ds->d[i].n);
	}
}

/* Reads where earlier replays got to (unless --from-start); -1 having said why. */
static int replay_progress(struct scan *sc, const char *group)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(sc->n);
	rd_kafka_resp_err_t e;

	for (int i = 0; i < sc->n; i++)
		rd_kafka_topic_partition_list_add(l, sc->topic, i);
	e = rd_kafka_committed(sc->rk, l, DLQ_TIMEOUT_MS);
	for (int i = 0; !e && i < l->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &l->elems[i];
		struct part *p;
		if (tp->err || tp->offset < 0 || tp->partition < 0 || tp->partition >= sc->n)
			continue;
		p = &sc->parts[tp->partition];
		p->committed = tp->offset;
		p->start = tp->offset;
		if (tp->metadata)
			meta_parse(sc->topic, group, p, tp->metadata, tp->metadata_size);
	}
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		fprintf(stderr, "kpool: %s: replay progress of group %s: %s\n", sc->topic, group,
			rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

static int dlq_replay(const struct kp_conf *conf, const char *topic, const struct replay_opts *o)
{
	char group[KP_TOPIC_MAX + 16];
	struct sent *chunk = calloc(REPLAY_CHUNK, sizeof(*chunk));
	size_t n_chunk = 0;
	long queued = 0, replayed = 0, before = 0, left = 0, unroutable = 0, failed = 0;
	long n_refused = 0;
	rd_kafka_t *pk = NULL;
	rd_kafka_message_t *m;
	json_t *out = o->json ? json_array() : NULL, *refused = json_array();
	struct kp_table t;
	struct dests ds;
	struct scan sc;
	int rc = 1, scan_rc = 0;
	bool stopped = o->limit == 0;

	kp_table_init(&t, 4, "RECORD", "CLASS", "FAILED AT",
		      o->dry_run ? "WOULD GO TO" : "SENT TO");
	dests_find(conf, topic, o->to, &ds);
	snprintf(group, sizeof(group), "kpool-replay-%s", topic);
	if (chunk == NULL || scan_open(&sc, conf, topic, group) < 0)
		goto out;
	if (o->only_part >= sc.n) {
		fprintf(stderr, "kpool: %s has no partition %d (it has %d)\n", topic,
			(int)o->only_part, sc.n);
		goto out;
	}
	if (!o->dry_run && (pk = replay_producer(conf)) == NULL)
		goto out;
	if (!o->from_start && replay_progress(&sc, group) < 0)
		goto out;
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
		bool wanted;
		rd_kafka_resp_err_t e;

		if (kp_ranges_has(&p->replayed, m->offset)) {
			before++;
			rd_kafka_message_destroy(m);
			continue;
		}
		dlrec_read(m, &s->r);
		s->to = dest_of(&ds, o->to, s->r.orig_topic);
		wanted = kp_dlrec_class_matches(s->r.class, o->class) && m->offset >= o->from &&
			 m->offset <= o->upto;
		if (!wanted || s->to == NULL || s->r.omitted || (p->full && p->first_left >= 0)) {
			if (wanted && s->r.omitted) {
				refuse_omitted(topic, &s->r, ++n_refused);
				json_array_append_new(refused,
						      json_pack("{s:i,s:I,s:o,s:s}", "partition",
								(int)m->partition, "offset",
								(json_int_t)m->offset, "topic",
								json_string(s->r.orig_topic), "why",
								"value omitted"));
			} else if (wanted && s->r.orig_topic == NULL) {
				unroutable++;
			} else if (wanted && s->to == NULL) {
				refuse(conf, topic, &ds, &s->r, ++n_refused);
				json_array_append_new(refused,
						      json_pack("{s:i,s:I,s:o}", "partition",
								(int)m->partition, "offset",
								(json_int_t)m->offset, "topic",
								json_string(s->r.orig_topic)));
			} else {
				left++;
			}
			if (p->first_left < 0)
				p->first_left = m->offset;
			kp_dlrec_free(&s->r);
			rd_kafka_message_destroy(m);
			continue;
		}
		s->acked = false;
		s->err = 0;
		if (!o->dry_run && (e = reproduce(pk, topic, m, s))) {
			fprintf(stderr, "kpool: %s %d:%" PRId64 " -> ", topic, (int)m->partition,
				m->offset);
			kp_text_put(stderr, s->to->topic, strlen(s->to->topic), 0);
			fprintf(stderr, ": %s\n", rd_kafka_err2str(e));
			failed++;
			if (p->first_left < 0)
				p->first_left = m->offset;
			kp_dlrec_free(&s->r);
			rd_kafka_message_destroy(m);
			continue;
		}
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
		json_t *doc = json_object(), *to = json_object();
		for (size_t i = 0; i < ds.n; i++) {
			char *name = kp_text_utf8(ds.d[i].topic, strlen(ds.d[i].topic));
			if (ds.d[i].n)
				json_object_set_new(to, name, json_integer(ds.d[i].n));
			free(name);
		}
		json_object_set_new(doc, "topic", kp_json_text(topic, strlen(topic)));
		json_object_set_new(doc, "group", kp_json_text(group, strlen(group)));
		json_object_set_new(doc, "dry_run", json_boolean(o->dry_run));
		json_object_set_new(doc, o->dry_run ? "would_replay" : "replayed", out);
		json_object_set_new(doc, "destinations", to);
		json_object_set_new(doc, "already_replayed", json_integer(before));
		json_object_set_new(doc, "left", json_integer(left));
		json_object_set_new(doc, "no_destination", json_integer(unroutable));
		json_object_set_new(doc, "refused", refused);
		json_object_set_new(doc, "failed", json_integer(failed));
		out = refused = NULL;
		json_print(doc);
	} else {
		if (t.n_rows)
			kp_table_print(&t, stdout);
		printf("%s %ld record%s from %s", o->dry_run ? "would replay" : "replayed",
		       replayed, replayed == 1 ? "" : "s", topic);
		print_dests(&ds);
		if (before)
			printf("; %ld replayed before (--from-start sends them again)", before);
		if (left)
			printf("; %ld left as they are", left);
		if (unroutable)
			printf("; %ld without an original topic (use --to)", unroutable);
		if (n_refused)
			printf("; %ld REFUSED: their topic is not one whose failed jobs go to %s "
			       "(use --to)",
			       n_refused, topic);
		if (failed)
			printf("; %ld FAILED", failed);
		printf("\n");
	}
	rc = failed || n_refused || scan_rc < 0 ? 1 : 0;
out:
	for (size_t i = 0; chunk && i < n_chunk; i++)
		kp_dlrec_free(&chunk[i].r);
	free(chunk);
	free(ds.d);
	json_decref(out);
	json_decref(refused);
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
	int64_t since = -1, n;
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
			if (kp_cmd_decimal(optarg, strlen(optarg), LONG_MAX, &n) < 0) {
				fprintf(stderr, "kpool: --limit wants a count, not '");
				kp_text_put(stderr, optarg, strlen(optarg), 0);
				fprintf(stderr, "'\n");
				return 2;
			}
			o.limit = (long)n;
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
					"may be left out; A <= B; a partition below 2^31), not '");
				kp_text_put(stderr, optarg, strlen(optarg), 0);
				fprintf(stderr, "'\n");
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
