/*
 * kpool_dlq.c - `kpool dlq list|show|replay`: its options, the dead-letter
 * topics read, listed and shown.  A topic is read from its first offset to
 * the high watermark taken at the start (a consumer that assigns, never
 * joins a group); replay, which reads it the same way, is in
 * kpool_replay.c.
 *
 * Besides kpool's own records, it reads those of Spring Kafka
 * (kafka_dlt-original-topic, ...; partition and offset as big-endian
 * integers) and Kafka Connect (__connect.errors.topic, ...): see
 * kpool_dlqrec.c.
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

#define DLQ_IDLE_MS 30000 /* reading: give up after this long without a record */

/* Prints dlq's usage to f. */
static void usage_dlq(FILE *f)
{
	fprintf(f,
		"usage: kpool -c CONF dlq list TOPIC [--limit N] [FILTER] [--json]\n"
		"       kpool -c CONF dlq show TOPIC PARTITION:OFFSET [--json]\n"
		"       kpool -c CONF dlq replay TOPIC [--to TOPIC] [FILTER] [--offsets [P:]A..B]\n"
		"                 [--limit N] [--dry-run] [--from-start] [--json]\n"
		"FILTER: [--error-class C] [--since T] [--until T] [--grep TEXT]\n");
}

/*
 * Reads what a dead-letter record m says about the job and why it is there.
 * Never fails (aborts when memory runs out); kp_dlrec_free() frees r.
 */
void kp_scan_record(const rd_kafka_message_t *m, struct dlrec *r)
{
	rd_kafka_headers_t *h = NULL;
	rd_kafka_timestamp_type_t tstype;

	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	kp_dlrec_read(r, h, m->partition, m->offset, rd_kafka_message_timestamp(m, &tstype));
}

/* ---- reading a topic ------------------------------------------------------- */

/*
 * Closes sc's consumer and frees its partitions and their replay progress;
 * sc is zeroed, and closing a zeroed scan does nothing.
 */
void kp_scan_close(struct kp_scan *sc)
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
 * Returns 0, or -1 having said why; either way kp_scan_close() frees sc.
 */
int kp_scan_open(struct kp_scan *sc, const struct kp_conf *conf, const char *topic,
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
	n = kp_topic_lookup(sc->rk, (char *const *)&topic, 1, l, KP_DLQ_TIMEOUT_MS, err,
			    sizeof(err));
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
	if (kp_topic_watermarks(sc->rk, l, lo, hi, KP_DLQ_TIMEOUT_MS, err, sizeof(err)) < 0)
		goto out;
	for (int i = 0; i < sc->n; i++) { /* the list is in partition order, from 0 */
		struct kp_scan_part *p = &sc->parts[i];
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

/* Starts reading every partition from its start offset (again: a scan may be
 * started more than once); -1 having said why. */
int kp_scan_start(struct kp_scan *sc)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(sc->n);
	rd_kafka_resp_err_t e;

	for (int i = 0; i < sc->n; i++) {
		struct kp_scan_part *p = &sc->parts[i];
		if (p->start < p->lo)
			p->start = p->lo;
		p->next = p->start;
		p->done = p->start >= p->hi;
		if (!p->done)
			rd_kafka_topic_partition_list_add(l, sc->topic, p->id)->offset = p->start;
	}
	e = rd_kafka_assign(sc->rk, l);
	/* A partition stopped by an earlier read stays paused through a new assign. */
	if (!e)
		e = rd_kafka_resume_partitions(sc->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		fprintf(stderr, "kpool: %s: %s\n", sc->topic, rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

/* Stops reading a partition (the rest of it is not looked at). */
static void scan_stop(struct kp_scan *sc, struct kp_scan_part *p)
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
rd_kafka_message_t *kp_scan_next(struct kp_scan *sc, int *rc)
{
	int64_t idle_since = kp_mono_ms();

	*rc = 0;
	for (;;) {
		rd_kafka_message_t *m;
		struct kp_scan_part *p;
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

/* qsort's order for dlq list: failure time, then partition, then offset. */
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

/* Counts one more record of class in *cc (*n classes); aborts when memory runs out. */
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

/*
 * kpool dlq list: the records that match, oldest first, and a count per
 * class; 0, or 1 having said why.
 */
static int dlq_list(const struct kp_conf *conf, const char *topic, long limit,
		    const struct kp_dlq_filter *f, bool json)
{
	struct dlrec *recs = NULL;
	struct class_count *cc = NULL;
	size_t n = 0, cap = 0, n_cc = 0;
	struct kp_scan sc;
	rd_kafka_message_t *m;
	int rc = 1;

	if (kp_scan_open(&sc, conf, topic, NULL) < 0 || kp_scan_start(&sc) < 0)
		goto out;
	while ((m = kp_scan_next(&sc, &rc)) != NULL) {
		struct dlrec r;

		kp_scan_record(m, &r);
		bool match = kp_dlq_filter_match(f, &r, m->payload, m->len);
		rd_kafka_message_destroy(m);
		if (!match) {
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
		kp_json_out(doc);
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
	kp_scan_close(&sc);
	return rc;
}

/* ---- dlq show ---------------------------------------------------------------- */

/* Reads the one record at partition:offset of an opened scan; NULL having said why. */
rd_kafka_message_t *kp_scan_one(struct kp_scan *sc, int32_t part, int64_t offset)
{
	rd_kafka_message_t *m;
	struct kp_scan_part *p;
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
	if (kp_scan_start(sc) < 0)
		return NULL;
	m = kp_scan_next(sc, &rc);
	if (m == NULL && rc == 0)
		fprintf(stderr, "kpool: %s: no record at %d:%" PRId64 "\n", sc->topic, (int)part,
			offset);
	return m;
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
	kp_json_out(doc);
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
		kp_hexdump(stdout, m->payload, m->len);
	}
}

/*
 * kpool dlq show: one record, its headers, key and job; 0, 2 for a bad
 * PARTITION:OFFSET, or 1 having said why.
 */
static int dlq_show(const struct kp_conf *conf, const char *topic, const char *at, bool json)
{
	rd_kafka_headers_t *h = NULL;
	rd_kafka_message_t *m = NULL;
	rd_kafka_timestamp_type_t tstype;
	json_t *job = NULL;
	struct kp_scan sc;
	struct dlrec r;
	int32_t part;
	int64_t offset, ts;

	if (kp_dlq_at_parse(at, &part, &offset) < 0) {
		fprintf(stderr, "kpool: '");
		kp_text_put(stderr, at, strlen(at), 0);
		fprintf(stderr, "' is not PARTITION:OFFSET (e.g. 0:42)\n");
		return 2;
	}
	if (kp_scan_open(&sc, conf, topic, NULL) < 0 ||
	    (m = kp_scan_one(&sc, part, offset)) == NULL) {
		kp_scan_close(&sc);
		return 1;
	}
	kp_scan_record(m, &r);
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
	kp_scan_close(&sc);
	return 0;
}

/* ---- kpool dlq ... ------------------------------------------------------------- */

/* kpool dlq list|show|replay: what the subcommand returns, or the usage on standard error and 2. */
int kp_cmd_dlq(const struct kp_conf *conf, int argc, char **argv)
{
	static const struct option longopts[] = {{"limit", required_argument, NULL, 'n'},
						 {"error-class", required_argument, NULL, 'C'},
						 {"since", required_argument, NULL, 's'},
						 {"until", required_argument, NULL, 'u'},
						 {"grep", required_argument, NULL, 'g'},
						 {"json", no_argument, NULL, 'j'},
						 {"to", required_argument, NULL, 't'},
						 {"offsets", required_argument, NULL, 'o'},
						 {"dry-run", no_argument, NULL, 'd'},
						 {"from-start", no_argument, NULL, 'F'},
						 {NULL, 0, NULL, 0}};
	struct kp_replay_opts o = {
	    .only_part = -1, .upto = INT64_MAX, .limit = -1, .filter = KP_DLQ_FILTER_ALL};
	const char *sub = argc > 1 ? argv[1] : "";
	int64_t n;
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
			o.filter.class = optarg;
			break;
		case 's':
			if ((o.filter.since = kp_cmd_since_arg("--since", optarg)) < 0)
				return 2;
			break;
		case 'u':
			if ((o.filter.until = kp_cmd_since_arg("--until", optarg)) < 0)
				return 2;
			break;
		case 'g':
			o.filter.text = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 't':
			o.to = optarg;
			break;
		case 'o':
			if (kp_replay_offsets_parse(optarg, &o) < 0) {
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
		return dlq_list(conf, argv[optind], o.limit, &o.filter, o.json);
	if (strcmp(sub, "show") == 0 && optind + 2 == argc && !o.filter.class &&
	    o.filter.since < 0 && o.filter.until < 0 && !o.filter.text && o.limit < 0 && !o.to)
		return dlq_show(conf, argv[optind], argv[optind + 1], o.json);
	if (strcmp(sub, "replay") == 0 && optind + 1 == argc)
		return kp_replay(conf, argv[optind], &o);
	usage_dlq(stderr);
	return 2;
}
