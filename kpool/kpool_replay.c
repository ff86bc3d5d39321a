/*
 * kpool_replay.c - `kpool dlq replay`: a dead-letter topic's records sent
 * back to where they came from, and what was sent remembered.  The topic is
 * read as kpool_dlq.c reads it; each record goes to the topic it names only
 * when a binding of the conf sends that topic's failed jobs to this
 * dead-letter topic, anywhere else only with --to.  Records are produced in
 * chunks (acks=all, idempotent), and after each chunk's acknowledgements the
 * progress is committed to the consumer group kpool-replay-DLQTOPIC, its
 * offsets kept as kpool_progress.c writes them.
 */
#include "config.h"

#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "kpool_cmd.h"

#define REPLAY_CHUNK 500 /* records produced, then acknowledged, then committed */

/* ---- options ----------------------------------------------------------------- */

/*
 * --offsets [P:]A..B (either end may be left out): a partition up to
 * 2^31-1, offsets up to 2^63-1, decimal, A <= B; -1 if s is not that.
 */
int kp_replay_offsets_parse(const char *s, struct kp_replay_opts *o)
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

/* ---- progress ---------------------------------------------------------------- */

/*
 * Progress lives in the group kpool-replay-DLQTOPIC: per partition, every
 * record below the committed offset was replayed (or is gone), and the
 * commit's metadata lists, as "replayed:A-B,C", the offsets above it that
 * were replayed too (a filtered replay leaves gaps).
 */

/* Notes off as replayed in p, and what it adds to the metadata; aborts when memory runs out. */
static void replayed_add(struct kp_scan_part *p, int64_t off)
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
static void meta_parse(const char *topic, const char *group, struct kp_scan_part *p, const char *s,
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

/*
 * Reads where earlier replays got to: each partition's committed offset,
 * where reading it starts, and the offsets above it its metadata says were
 * replayed (the caller skips this for --from-start).  -1 having said why,
 * with no partition's progress known.
 */
static int replay_progress(struct kp_scan *sc, const char *group)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(sc->n);
	rd_kafka_resp_err_t e;

	for (int i = 0; i < sc->n; i++)
		rd_kafka_topic_partition_list_add(l, sc->topic, i);
	e = rd_kafka_committed(sc->rk, l, KP_DLQ_TIMEOUT_MS);
	for (int i = 0; !e && i < l->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &l->elems[i];
		struct kp_scan_part *p;
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

/* The offset to commit: below it everything was replayed; *meta the ones above. */
static int64_t progress(const struct kp_scan_part *p, char *meta, size_t len)
{
	int64_t upto = p->first_left >= 0 ? p->first_left : p->next;

	kp_replay_meta_print(&p->replayed, upto, meta, len);
	return upto;
}

/*
 * Commits each replayed partition's progress (offset and metadata) to the
 * replay group; -1 having said why, when a partition may keep its earlier
 * progress (its records since are then sent again).
 */
static int replay_commit(struct kp_scan *sc)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(sc->n);
	rd_kafka_resp_err_t e;
	char meta[KP_REPLAY_META_MAX + 64];

	for (int i = 0; i < sc->n; i++) {
		struct kp_scan_part *p = &sc->parts[i];
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

/* ---- destinations ------------------------------------------------------------ */

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

/* ---- sending ----------------------------------------------------------------- */

/* One record sent, waiting for its acknowledgement. */
struct sent {
	struct dlrec r;
	struct dest *to;
	rd_kafka_resp_err_t err;
	int32_t to_partition;
	int64_t to_offset;
	bool acked;
};

/* Delivery report of a replayed record: its result, and where it went, in its struct sent. */
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

/* The producer replay sends with (acks=all, idempotent); NULL having said why. */
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

/*
 * Queues dead-letter record m for s->to, keeping its key, value and
 * headers and setting kpool.replayed-from; waits while the queue is full.
 * Returns the error, the headers freed, if it cannot be queued.
 */
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
 * Waits for the chunk's acknowledgements (a minute at most), marks what was
 * acknowledged as replayed and shows it (a row of t, or an object of out);
 * a dry run only shows.  Returns the number that failed, each said, their
 * partition's committed offset kept below the first.
 */
static int settle_chunk(struct kp_scan *sc, rd_kafka_t *pk, struct sent *chunk, size_t n,
			json_t *out, struct kp_table *t, bool dry_run, size_t rows_max, long *ok)
{
	int failed = 0;

	if (pk)
		rd_kafka_flush(pk, 60000);
	for (size_t i = 0; i < n; i++) {
		struct sent *s = &chunk[i];
		struct kp_scan_part *p = &sc->parts[s->r.partition];
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
		} else if (rows_max == 0 || t->n_rows < rows_max) {
			kp_table_row(t, at, s->r.class, s->r.failed_at, dest);
		}
	}
	return failed;
}

/* Settles a chunk, frees it and commits the progress; -1 if the commit failed. */
static int chunk_done(struct kp_scan *sc, rd_kafka_t *pk, struct sent *chunk, size_t *n,
		      json_t *out, struct kp_table *t, const struct kp_replay_opts *o, long *ok,
		      long *failed)
{
	*failed += settle_chunk(sc, pk, chunk, *n, out, t, o->dry_run, o->rows_max, ok);
	for (size_t i = 0; i < *n; i++)
		kp_dlrec_free(&chunk[i].r);
	if (o->progress && *n)
		fprintf(stderr, "kpool: %s: %ld %s so far, %ld failed\n", sc->topic, *ok,
			o->dry_run ? "would be replayed" : "replayed", *failed);
	*n = 0;
	return o->dry_run ? 0 : replay_commit(sc);
}

/* ---- kpool dlq replay -------------------------------------------------------- */

/*
 * kpool dlq replay: sends the records that match and commits the progress
 * after each chunk; 0, or 1 when a record was refused or failed or the
 * topic could not be read (each said).
 */
int kp_replay(const struct kp_conf *conf, const char *topic, const struct kp_replay_opts *o)
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
	struct kp_scan sc = {0}; /* closed at out, even when never opened */
	int rc = 1, scan_rc = 0;
	bool stopped = o->limit == 0;

	kp_table_init(&t, 4, "RECORD", "CLASS", "FAILED AT",
		      o->dry_run ? "WOULD GO TO" : "SENT TO");
	dests_find(conf, topic, o->to, &ds);
	snprintf(group, sizeof(group), "kpool-replay-%s", topic);
	if (chunk == NULL || kp_scan_open(&sc, conf, topic, group) < 0)
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
		struct kp_scan_part *p = &sc.parts[i];
		if (o->only_part >= 0 && p->id != o->only_part) {
			p->start = p->hi; /* not this one */
			p->out = true;
		}
	}
	if (kp_scan_start(&sc) < 0)
		goto out;
	while (!stopped && (m = kp_scan_next(&sc, &scan_rc)) != NULL) {
		struct kp_scan_part *p = &sc.parts[m->partition];
		struct sent *s = &chunk[n_chunk];
		bool wanted;
		rd_kafka_resp_err_t e;

		if (kp_ranges_has(&p->replayed, m->offset)) {
			before++;
			rd_kafka_message_destroy(m);
			continue;
		}
		kp_scan_record(m, &s->r);
		s->to = dest_of(&ds, o->to, s->r.orig_topic);
		wanted = kp_dlq_filter_match(&o->filter, &s->r, m->payload, m->len) &&
			 m->offset >= o->from && m->offset <= o->upto;
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
		if (p->first_left >= 0 && p->meta_bytes + 48 > KP_REPLAY_META_MAX)
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
		kp_json_out(doc);
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
	kp_scan_close(&sc);
	return rc;
}
