/*
 * dlpages.c - the console's dead letters: the dead-letter topics of the
 * conf's bindings, a page of a topic's records newest first (filtered by
 * class, time and text), one record with its headers and job, and replay
 * (one record, or all that match a filter after a dry run has counted them),
 * run as `kpool dlq replay` runs it.
 *
 * A page never reads a topic whole: each partition is read backwards from
 * the page's cursor in windows that grow until the page has its records or
 * a budget of records is read, so the first page of a topic of millions
 * costs a few hundred records.  A time bound is turned into offsets by the
 * broker (ListOffsets by timestamp) where it can.
 */
#include "config.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console_int.h"
#include "kpool_cmd.h"

#define PAGE_SIZE     50
#define READ_BUDGET   20000 /* records a page may read before it shows what it has */
#define WINDOW_FIRST  64
#define WINDOW_MAX    16384
#define SEEK_SLACK_MS 60000 /* a record's timestamp may follow its failure time by this much */

/* ---- which topics, which records ------------------------------------------------- */

/* Whether binding b sends the failed jobs of one of its topics to dead-letter topic dlq. */
static bool writes_to(const struct kp_binding *b, const char *dlq)
{
	char t[KP_TOPIC_MAX + 8];

	for (int k = 0; k < b->n_topics; k++) {
		kp_dlq_topic(b, b->topics[k], t, sizeof(t));
		if (strcmp(t, dlq) == 0)
			return true;
	}
	return false;
}

/* Whether topic is the dead-letter topic of one of the conf's bindings. */
static bool dlq_known(const char *topic)
{
	const struct kp_conf *conf = kp_cons->conf;

	for (size_t i = 0; i < conf->n_bindings; i++)
		if (writes_to(&conf->bindings[i], topic))
			return true;
	return false;
}

/* The filter of a list page's query, or of a replay form; -1 with a message for people. */
static int filter_read(const struct kp_req *r, bool form, struct kp_dlq_filter *f, char *why,
		       size_t len)
{
	const char *(*get)(const struct kp_req *, const char *) = form ? kp_form_get : kp_query_get;
	const char *since = get(r, "since"), *until = get(r, "until"), *text = get(r, "q");
	const char *class = get(r, "class"), *w = NULL;

	*f = KP_DLQ_FILTER_ALL;
	f->class = class && *class ? class : NULL;
	f->text = text && *text ? text : NULL;
	if (since && *since && kp_cmd_since_parse(since, kp_now_ms(), &f->since, &w) < 0) {
		snprintf(why, len, "since: '%s' is not a time (%s)", since,
			 w ? w : "2026-01-15T10:00:00Z, 1705312800, or an age: 90m, 24h, 7d");
		return -1;
	}
	if (until && *until && kp_cmd_since_parse(until, kp_now_ms(), &f->until, &w) < 0) {
		snprintf(why, len, "until: '%s' is not a time (%s)", until,
			 w ? w : "2026-01-15T10:00:00Z, 1705312800, or an age: 90m, 24h, 7d");
		return -1;
	}
	/* A confirmation carries the bounds its dry run used, to the millisecond. */
	if (form && kp_form_get(r, "since_ms"))
		f->since = strtoll(kp_form_get(r, "since_ms"), NULL, 10);
	if (form && kp_form_get(r, "until_ms"))
		f->until = strtoll(kp_form_get(r, "until_ms"), NULL, 10);
	return 0;
}

/* The filter's fields as a query string (for links) or hidden fields (for
 * forms); whether there was any. */
static bool filter_put(struct kp_buf *b, const struct kp_req *r, bool hidden)
{
	static const char *const names[] = {"class", "since", "until", "q"};
	bool first = true;

	for (size_t i = 0; i < 4; i++) {
		const char *v = kp_query_get(r, names[i]);
		if (v == NULL)
			continue;
		if (hidden) {
			kp_buf_printf(b, "<input type=\"hidden\" name=\"%s\" value=\"", names[i]);
			kp_buf_htmls(b, v);
			kp_buf_printf(b, "\">");
		} else {
			kp_buf_printf(b, "%s%s=", first ? "" : "&amp;", names[i]);
			kp_buf_url(b, v);
		}
		first = false;
	}
	return !first;
}

/* ---- the topics ---------------------------------------------------------------- */

/* GET /dlq: the dead-letter topics, each with its records and the bindings that write it. */
void kp_page_dlq_topics(const struct kp_req *r, struct kp_resp *resp)
{
	const struct kp_conf *conf = kp_cons->conf;
	struct kp_buf *b = &resp->body;
	char(*seen)[KP_TOPIC_MAX + 8] = NULL;
	size_t n_seen = 0;

	kp_page_begin(b, r, "Dead letters", "dead letters");
	kp_buf_printf(b, "<table id=\"topics\"><thead><tr><th>dead-letter topic</th>"
			 "<th>records</th><th>written by</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < conf->n_bindings; i++) {
		const struct kp_binding *bd = &conf->bindings[i];
		for (int k = 0; k < bd->n_topics; k++) {
			char t[KP_TOPIC_MAX + 8];
			struct kp_scan sc;
			bool dup = false;
			kp_dlq_topic(bd, bd->topics[k], t, sizeof(t));
			for (size_t j = 0; j < n_seen; j++)
				dup = dup || strcmp(seen[j], t) == 0;
			if (dup)
				continue;
			void *x = realloc(seen, (n_seen + 1) * sizeof(*seen));
			if (x == NULL)
				abort();
			seen = x;
			snprintf(seen[n_seen++], sizeof(*seen), "%s", t);
			kp_buf_printf(b, "<tr><td><a href=\"/dlq/");
			kp_buf_url(b, t);
			kp_buf_printf(b, "\">");
			kp_buf_htmls(b, t);
			kp_buf_printf(b, "</a></td><td class=\"num\">");
			if (kp_scan_open(&sc, conf, t, NULL) == 0) {
				int64_t n = 0;
				for (int p = 0; p < sc.n; p++)
					n += sc.parts[p].hi - sc.parts[p].lo;
				kp_buf_printf(b, "%" PRId64, n);
			} else {
				kp_buf_printf(b, "<span class=\"muted\">none yet</span>");
			}
			kp_scan_close(&sc);
			kp_buf_printf(b, "</td><td>");
			for (size_t j = 0; j < conf->n_bindings; j++)
				if (writes_to(&conf->bindings[j], t)) {
					kp_buf_htmls(b, conf->bindings[j].name);
					kp_buf_printf(b, " ");
				}
			kp_buf_printf(b, "</td></tr>\n");
		}
	}
	kp_buf_printf(b, "</tbody></table>\n");
	free(seen);
	kp_page_end(b);
}

/* ---- a page of records ------------------------------------------------------------ */

/* By partition, and newest offset first within one. */
static int by_partition(const void *a, const void *b)
{
	const struct dlrec *x = a, *y = b;

	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	return x->offset > y->offset ? -1 : x->offset < y->offset;
}

/*
 * The page's records, newest first: got (sorted by_partition) merged across
 * partitions, each taken newest offset first, the latest failure time among
 * the partitions' next records going first. A partition's records on a page
 * are so always its newest unshown ones, even when its failure times are out
 * of offset order (several processes dead-lettering into one partition), and
 * the next page's cursor, per partition, is exact. Up to max indexes into got
 * go to order; returns how many, and sets next[i] to partition i's cursor.
 */
static size_t page_merge(const struct dlrec *got, size_t n_got, size_t *order, size_t max, int n,
			 const int64_t *start, const int64_t *cur, int64_t *next)
{
	size_t *first = calloc(2 * (size_t)n + 1, sizeof(*first)), *head = first + n + 1, k = 0;
	size_t shown = 0;

	if (first == NULL)
		abort();
	/* first[i] .. first[i + 1]: partition i's records in got; head[i]: its next one */
	for (int i = 0; i <= n; i++) {
		while (k < n_got && got[k].partition < i)
			k++;
		first[i] = k;
	}
	for (int i = 0; i < n; i++)
		head[i] = first[i];
	while (shown < max) {
		int best = -1;
		for (int i = 0; i < n; i++)
			if (head[i] < first[i + 1] &&
			    (best < 0 || got[head[i]].failed_ms >= got[head[best]].failed_ms))
				best = i;
		if (best < 0)
			break;
		order[shown++] = head[best]++;
	}
	for (int i = 0; i < n; i++) {
		if (head[i] ==
		    first[i + 1]) /* all its matches shown: on from where reading stopped */
			next[i] = cur[i];
		else /* some not: the next page starts at them */
			next[i] = head[i] > first[i] ? got[head[i] - 1].offset : start[i];
	}
	free(first);
	return shown;
}

/*
 * For each partition of sc, the first offset whose timestamp is at or after
 * ms (the end when none is); -1 when the broker cannot tell.
 */
static int offsets_at(struct kp_scan *sc, int64_t ms, int64_t *out)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(sc->n);
	rd_kafka_resp_err_t e;
	int rc = 0;

	for (int i = 0; i < sc->n; i++)
		rd_kafka_topic_partition_list_add(l, sc->topic, i)->offset = ms;
	e = rd_kafka_offsets_for_times(sc->rk, l, KP_DLQ_TIMEOUT_MS);
	for (int i = 0; i < l->cnt && !e; i++) {
		const rd_kafka_topic_partition_t *p = &l->elems[i];
		if (p->err || p->partition < 0 || p->partition >= sc->n) {
			rc = -1;
			break;
		}
		out[p->partition] =
		    p->offset < 0 ? sc->parts[p->partition].hi : p->offset; /* -1: none that late */
	}
	rd_kafka_topic_partition_list_destroy(l);
	return e ? -1 : rc;
}

/* One row of the records table. */
static void record_row(struct kp_buf *b, const char *topic, const struct dlrec *r)
{
	char from[KP_DLREC_FROM_MAX], at[48];

	kp_dlrec_from(r, from, sizeof(from));
	snprintf(at, sizeof(at), "%d:%" PRId64, (int)r->partition, r->offset);
	kp_buf_printf(b, "<tr id=\"r-%s\"><td><a href=\"/dlq/", at);
	kp_buf_url(b, topic);
	kp_buf_printf(b, "/%s\">%s</a></td><td class=\"time\">", at, at);
	kp_buf_htmls(b, r->failed_at);
	kp_buf_printf(b, "</td><td>");
	kp_buf_htmls(b, from);
	kp_buf_printf(b, "</td><td><span class=\"class\">");
	kp_buf_htmls(b, r->class);
	kp_buf_printf(b, "</span></td><td class=\"num\">");
	if (r->attempts >= 0)
		kp_buf_printf(b, "%d", r->attempts);
	else
		kp_buf_printf(b, "-");
	kp_buf_printf(b, "</td><td class=\"reason\">");
	if (r->reason && strlen(r->reason) > 240) {
		kp_buf_html(b, r->reason, 240);
		kp_buf_printf(b, "&hellip;");
	} else {
		kp_buf_htmls(b, r->reason ? r->reason : "-");
	}
	kp_buf_printf(b, "</td><td class=\"id\">");
	kp_buf_htmls(b, r->event_id ? r->event_id : "-");
	kp_buf_printf(b, "</td></tr>\n");
}

/* The filter form, and the replay-all form for what it matches. */
static void filter_forms(struct kp_buf *b, const struct kp_req *r, const char *topic)
{
	const char *class = kp_query_get(r, "class");

	kp_buf_printf(b, "<form method=\"get\" class=\"filter\" id=\"filter\" action=\"/dlq/");
	kp_buf_url(b, topic);
	kp_buf_printf(b, "\"><label>class <select name=\"class\"><option value=\"\">any</option>");
	for (int c = KP_CLASS_NONE + 1; c < KP_CLASS_MAX; c++)
		kp_buf_printf(b, "<option%s>%s</option>",
			      class && strcmp(class, kp_class_name(c)) == 0 ? " selected" : "",
			      kp_class_name(c));
	kp_buf_printf(b, "</select></label>");
	static const char *const texts[][3] = {{"since", "since", "24h, or 2026-11-30T10:00:00Z"},
					       {"until", "until", "1h, or a time"},
					       {"q", "text", "in reason, event id or job"}};
	for (size_t i = 0; i < 3; i++) {
		const char *v = kp_query_get(r, texts[i][0]);
		kp_buf_printf(
		    b, "<label>%s <input type=\"text\" name=\"%s\" placeholder=\"%s\" value=\"",
		    texts[i][1], texts[i][0], texts[i][2]);
		kp_buf_htmls(b, v ? v : "");
		kp_buf_printf(b, "\"></label>");
	}
	kp_buf_printf(b, "<button type=\"submit\">filter</button></form>\n");
	if (!r->can_act)
		return;
	kp_buf_printf(
	    b, "<form method=\"post\" class=\"replay-all\" id=\"replay-all\" action=\"/dlq/");
	kp_buf_url(b, topic);
	kp_buf_printf(b, "/replay\">");
	kp_page_csrf(b, r);
	filter_put(b, r, true);
	kp_buf_printf(b, "<button type=\"submit\">replay all that match&hellip;</button>"
			 "<span class=\"hint\">counts them first, then asks</span></form>\n");
}

/* GET /dlq/TOPIC: a page of its records, newest first, that match the query's filter. */
void kp_page_dlq_list(const struct kp_req *r, struct kp_resp *resp, const char *topic)
{
	const struct kp_conf *conf = kp_cons->conf;
	struct kp_buf *b = &resp->body;
	struct kp_dlq_filter f;
	struct kp_scan sc;
	struct dlrec *got = NULL;
	int64_t *cur = NULL, *start = NULL, *floor = NULL, *next = NULL, *at = NULL;
	size_t n_got = 0, cap = 0, shown, order[PAGE_SIZE];
	long read = 0;
	int64_t window = WINDOW_FIRST;
	char why[512], title[KP_TOPIC_MAX + 16];
	bool more = false, budget_hit = false, failed = false;

	if (!dlq_known(topic)) {
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND,
			      "%s is not the dead-letter topic of a binding in %s.", topic,
			      conf->path);
		return;
	}
	if (filter_read(r, false, &f, why, sizeof(why)) < 0) {
		kp_page_error(resp, r, MHD_HTTP_BAD_REQUEST, "%s", why);
		return;
	}
	if (kp_scan_open(&sc, conf, topic, NULL) < 0) {
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND,
			      "%s cannot be read (no record was ever dead-lettered there, or Kafka "
			      "is not reachable: see kpoold's log).",
			      topic);
		kp_scan_close(&sc);
		return;
	}
	cur = calloc((size_t)sc.n, sizeof(*cur));
	start = calloc((size_t)sc.n, sizeof(*start));
	floor = calloc((size_t)sc.n, sizeof(*floor));
	next = calloc((size_t)sc.n, sizeof(*next));
	at = calloc((size_t)sc.n, sizeof(*at));
	if (!cur || !start || !floor || !next || !at)
		abort();
	for (int i = 0; i < sc.n; i++) {
		cur[i] = sc.parts[i].hi;
		floor[i] = sc.parts[i].lo;
	}
	if (f.until >= 0 && offsets_at(&sc, f.until + SEEK_SLACK_MS, at) == 0)
		for (int i = 0; i < sc.n; i++)
			cur[i] = at[i] < cur[i] ? at[i] : cur[i];
	if (f.since >= 0 && offsets_at(&sc, f.since, at) == 0)
		for (int i = 0; i < sc.n; i++)
			floor[i] = at[i] > floor[i] ? at[i] : floor[i];
	kp_cursor_read(kp_query_get(r, "before"), cur, sc.n);
	for (int i = 0; i < sc.n; i++) {
		cur[i] = cur[i] < floor[i] ? floor[i] : cur[i];
		start[i] = cur[i];
	}
	/* Backwards, a window per partition at a time, until the page is full (and one more). */
	while (n_got <= PAGE_SIZE && !budget_hit) {
		bool any = false;
		int rc;
		rd_kafka_message_t *m;

		int active = 0;
		for (int i = 0; i < sc.n; i++)
			active += cur[i] > floor[i];
		if (active && window > (READ_BUDGET - read) / active) /* the budget is a bound */
			window = (READ_BUDGET - read) / active;
		for (int i = 0; i < sc.n; i++) {
			struct kp_scan_part *p = &sc.parts[i];
			p->start = cur[i] - window > floor[i] ? cur[i] - window : floor[i];
			p->hi = cur[i];
			any = any || p->start < p->hi;
		}
		if (!any || window <= 0 || kp_scan_start(&sc) < 0)
			break;
		while ((m = kp_scan_next(&sc, &rc)) != NULL) {
			struct dlrec d;
			read++;
			kp_scan_record(m, &d);
			if (kp_dlq_filter_match(&f, &d, m->payload, m->len)) {
				if (n_got == cap) {
					void *x = realloc(got, (cap = cap ? 2 * cap : 128) *
								   sizeof(*got));
					if (x == NULL)
						abort();
					got = x;
				}
				got[n_got++] = d;
			} else {
				kp_dlrec_free(&d);
			}
			rd_kafka_message_destroy(m);
		}
		if (rc < 0) { /* a window half read cannot be paged from: say so, show nothing */
			failed = true;
			break;
		}
		for (int i = 0; i < sc.n; i++)
			cur[i] = sc.parts[i].start;
		window = window * 4 > WINDOW_MAX ? WINDOW_MAX : window * 4;
		budget_hit = read >= READ_BUDGET - sc.n;
	}
	if (failed) {
		kp_page_error(resp, r, MHD_HTTP_BAD_GATEWAY,
			      "Reading %s stopped: Kafka did not answer (see kpoold's log). Try "
			      "again.",
			      topic);
		goto out;
	}
	if (n_got > 1)
		qsort(got, n_got, sizeof(*got), by_partition);
	shown = page_merge(got, n_got, order, PAGE_SIZE, sc.n, start, cur, next);
	for (int i = 0; i < sc.n; i++)
		more = more || next[i] > floor[i];
	snprintf(resp->records_read, sizeof(resp->records_read), "%ld", read);
	snprintf(title, sizeof(title), "%s", topic);
	kp_page_begin(b, r, title, "dead letters");
	filter_forms(b, r, topic);
	kp_buf_printf(b, "<table id=\"records\" class=\"records\"><thead><tr><th>record</th>"
			 "<th>failed at</th><th>from</th><th>class</th><th>attempts</th>"
			 "<th>reason</th><th>event id</th></tr></thead><tbody>\n");
	for (size_t k = 0; k < shown; k++)
		record_row(b, topic, &got[order[k]]);
	kp_buf_printf(b, "</tbody></table>\n");
	if (shown == 0)
		kp_buf_printf(b, "<p class=\"empty\" id=\"empty\">No record here matches.</p>");
	kp_buf_printf(b, "<p class=\"pager\">");
	if (kp_query_get(r, "before")) {
		kp_buf_printf(b, "<a href=\"/dlq/");
		kp_buf_url(b, topic);
		kp_buf_printf(b, "?");
		filter_put(b, r, false);
		kp_buf_printf(b, "\">&laquo; newest</a> ");
	}
	if (more) {
		kp_buf_printf(b, "<a id=\"older\" href=\"/dlq/");
		kp_buf_url(b, topic);
		kp_buf_printf(b, "?");
		kp_buf_printf(b, filter_put(b, r, false) ? "&amp;before=" : "before=");
		for (int i = 0; i < sc.n; i++)
			kp_buf_printf(b, "%s%d%%3A%" PRId64, i ? "%2C" : "", i, next[i]);
		kp_buf_printf(b, "\">older &raquo;</a>");
	}
	kp_buf_printf(b, "<span class=\"muted\"> %zu shown; %ld record%s read%s</span></p>\n",
		      shown, read, read == 1 ? "" : "s",
		      budget_hit ? " (the most a page reads: older ones are on the next page)"
				 : "");
	kp_page_end(b);
out:
	for (size_t k = 0; k < n_got; k++)
		kp_dlrec_free(&got[k]);
	free(got);
	free(cur);
	free(start);
	free(floor);
	free(next);
	free(at);
	kp_scan_close(&sc);
}

/* ---- one record ----------------------------------------------------------------------- */

/* A definition list entry: name, then text from outside (escaped). */
static void dd(struct kp_buf *b, const char *name, const char *id, const char *text)
{
	kp_buf_printf(b, "<dt>%s</dt><dd id=\"%s\">", name, id);
	kp_buf_htmls(b, text ? text : "-");
	kp_buf_printf(b, "</dd>");
}

/* GET /dlq/TOPIC/P:O: one record, its headers, key and job, and a replay button. */
void kp_page_dlq_record(const struct kp_req *r, struct kp_resp *resp, const char *topic,
			const char *at)
{
	const struct kp_conf *conf = kp_cons->conf;
	struct kp_buf *b = &resp->body;
	rd_kafka_headers_t *h = NULL;
	rd_kafka_message_t *m = NULL;
	rd_kafka_timestamp_type_t tstype;
	struct kp_scan sc = {0};
	struct dlrec d;
	int32_t part;
	int64_t offset;
	char title[KP_TOPIC_MAX + 48], buf[KP_DLREC_FROM_MAX + 64], action[KP_TOPIC_MAX * 3 + 64];
	json_t *job = NULL;

	if (!dlq_known(topic)) {
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND,
			      "%s is not the dead-letter topic of a binding in %s.", topic,
			      conf->path);
		return;
	}
	if (kp_dlq_at_parse(at, &part, &offset) < 0) {
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND, "'%s' is not PARTITION:OFFSET.", at);
		return;
	}
	if (kp_scan_open(&sc, conf, topic, NULL) < 0 ||
	    (m = kp_scan_one(&sc, part, offset)) == NULL) {
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND, "%s has no record at %s.", topic, at);
		kp_scan_close(&sc);
		return;
	}
	snprintf(resp->records_read, sizeof(resp->records_read), "1");
	kp_scan_record(m, &d);
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	snprintf(title, sizeof(title), "%s %s", topic, at);
	kp_page_begin(b, r, title, "dead letters");
	kp_buf_printf(b, "<p class=\"sub\"><a href=\"/dlq/");
	kp_buf_url(b, topic);
	kp_buf_printf(b, "\">&laquo; ");
	kp_buf_htmls(b, topic);
	kp_buf_printf(b, "</a></p>");
	if (r->can_act && !d.omitted) {
		snprintf(action, sizeof(action), "/dlq/%s/%s/replay", topic, at);
		kp_page_button(b, r, action, "replay this job", "replay");
	}
	kp_buf_printf(b, "<dl class=\"record\" id=\"record\">");
	dd(b, "failed at", "failed-at", d.failed_at);
	dd(b, "class", "class", d.class);
	dd(b, "reason", "reason", d.reason);
	dd(b, "event id", "event-id", d.event_id);
	if (d.attempts >= 0)
		snprintf(buf, sizeof(buf), "%d", d.attempts);
	dd(b, "attempts", "attempts", d.attempts >= 0 ? buf : NULL);
	kp_dlrec_from(&d, buf, sizeof(buf));
	dd(b, "from", "from", buf);
	dd(b, "written by", "writer", d.writer);
	if (m->key) {
		char *k = kp_dlrec_header_value("", m->key, m->key_len);
		dd(b, "key", "key", k);
		free(k);
	} else {
		dd(b, "key", "key", "(none)");
	}
	if (d.omitted)
		dd(b, "job", "omitted", "not kept: it was too large for the dead-letter topic");
	kp_buf_printf(b, "</dl>\n<h2>Headers</h2><table id=\"headers\"><tbody>\n");
	{
		const char *name;
		const void *v;
		size_t len;
		for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++) {
			char *val = kp_dlrec_header_value(name, v, len);
			kp_buf_printf(b, "<tr><th>");
			kp_buf_htmls(b, name);
			kp_buf_printf(b, "</th><td>");
			kp_buf_htmls(b, val ? val : "?");
			kp_buf_printf(b, "</td></tr>\n");
			free(val);
		}
	}
	kp_buf_printf(b, "</tbody></table>\n<h2>Job <span class=\"muted\">%zu bytes</span></h2>",
		      m->len);
	if (kp_dlrec_printable(m->payload, m->len))
		job = json_loadb(m->payload, m->len, JSON_DECODE_ANY, NULL);
	if (job) {
		char *s = json_dumps(job, JSON_INDENT(2) | JSON_ENCODE_ANY);
		kp_buf_printf(b, "<pre id=\"job\" class=\"json\">");
		kp_buf_htmls(b, s);
		kp_buf_printf(b, "</pre>");
		free(s);
		json_decref(job);
	} else if (kp_dlrec_printable(m->payload, m->len)) {
		kp_buf_printf(b, "<p class=\"muted\">not JSON</p><pre id=\"job\">");
		kp_buf_html(b, m->payload, m->len);
		kp_buf_printf(b, "</pre>");
	} else {
		char *dump = NULL;
		size_t n = 0;
		FILE *mf = open_memstream(&dump, &n);
		if (mf == NULL)
			abort();
		kp_hexdump(mf, m->payload, m->len);
		fclose(mf);
		kp_buf_printf(b, "<p class=\"muted\">not UTF-8: shown as hex</p><pre id=\"job\" "
				 "class=\"hex\">");
		kp_buf_html(b, dump, n);
		kp_buf_printf(b, "</pre>");
		free(dump);
	}
	kp_page_end(b);
	(void)tstype;
	kp_dlrec_free(&d);
	rd_kafka_message_destroy(m);
	kp_scan_close(&sc);
}

/* ---- replay ------------------------------------------------------------------------ */

/*
 * POST /dlq/TOPIC/P:O/replay (one record) or /dlq/TOPIC/replay (those the
 * form's filter matches: a dry run that counts them unless confirm=yes).
 * The replay runs apart; the answer is its page.
 */
void kp_act_replay(const struct kp_req *r, struct kp_resp *resp, const char *topic, const char *at)
{
	struct kp_dlq_filter f;
	char why[512], id[64];
	json_t *req;

	if (!dlq_known(topic)) {
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND,
			      "%s is not the dead-letter topic of a binding in %s.", topic,
			      kp_cons->conf->path);
		return;
	}
	req = json_pack("{s:s}", "topic", topic);
	if (at) {
		int32_t part;
		int64_t offset;
		if (kp_dlq_at_parse(at, &part, &offset) < 0) {
			json_decref(req);
			kp_page_error(resp, r, MHD_HTTP_NOT_FOUND, "'%s' is not PARTITION:OFFSET.",
				      at);
			return;
		}
		json_object_set_new(req, "part", json_integer(part));
		json_object_set_new(req, "offset", json_integer(offset));
	} else {
		const char *confirm = kp_form_get(r, "confirm");
		if (filter_read(r, true, &f, why, sizeof(why)) < 0) {
			json_decref(req);
			kp_page_error(resp, r, MHD_HTTP_BAD_REQUEST, "%s", why);
			return;
		}
		if (f.class)
			json_object_set_new(req, "class", json_string(f.class));
		if (f.text)
			json_object_set_new(req, "text", kp_json_text(f.text, strlen(f.text)));
		if (f.since >= 0)
			json_object_set_new(req, "since", json_integer(f.since));
		if (f.until >= 0)
			json_object_set_new(req, "until", json_integer(f.until));
		json_object_set_new(req, "dry_run",
				    json_boolean(confirm == NULL || strcmp(confirm, "yes") != 0));
	}
	if (kp_runner_start(req, id, sizeof(id), why, sizeof(why)) < 0) {
		json_decref(req);
		kp_page_error(resp, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", why);
		return;
	}
	kp_log(KP_NOTICE, "console: replay %s of %s%s%s asked", id, topic, at ? " " : "",
	       at ? at : "");
	json_decref(req);
	snprintf(resp->location, sizeof(resp->location), "/replays/%s", id);
}

/* GET /replays/ID: what a replay was asked to do, what it printed, how it ended. */
void kp_page_replay(const struct kp_req *r, struct kp_resp *resp, const char *id)
{
	struct kp_buf *b = &resp->body, log = {0};
	char path[4200], title[96];
	int status;
	json_t *req;
	const char *topic;
	bool dry;

	snprintf(path, sizeof(path), "%s/console/%s.req", kp_cons->conf->state_dir, id);
	if (kp_runner_status(id, &log, &status) < 0 ||
	    (req = json_load_file(path, 0, NULL)) == NULL) {
		kp_buf_free(&log);
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND, "There is no replay %s.", id);
		return;
	}
	topic = json_string_value(json_object_get(req, "topic"));
	dry = json_is_true(json_object_get(req, "dry_run"));
	snprintf(title, sizeof(title), "%s %s", dry ? "Counting for a replay" : "Replay", id);
	kp_page_begin(b, r, title, "dead letters");
	kp_buf_printf(b, "<dl class=\"record\"><dt>topic</dt><dd><a href=\"/dlq/");
	kp_buf_url(b, topic ? topic : "");
	kp_buf_printf(b, "\">");
	kp_buf_htmls(b, topic);
	kp_buf_printf(b, "</a></dd>");
	if (json_object_get(req, "part"))
		kp_buf_printf(b, "<dt>record</dt><dd>%d:%" PRId64 "</dd>",
			      (int)json_integer_value(json_object_get(req, "part")),
			      (int64_t)json_integer_value(json_object_get(req, "offset")));
	else {
		const char *cl = json_string_value(json_object_get(req, "class"));
		const char *tx = json_string_value(json_object_get(req, "text"));
		char t1[48], t2[48];
		kp_fmt_time(json_object_get(req, "since")
				? (int64_t)json_integer_value(json_object_get(req, "since"))
				: -1,
			    t1, sizeof(t1));
		kp_fmt_time(json_object_get(req, "until")
				? (int64_t)json_integer_value(json_object_get(req, "until"))
				: -1,
			    t2, sizeof(t2));
		kp_buf_printf(b, "<dt>records</dt><dd>class ");
		kp_buf_htmls(b, cl ? cl : "any");
		kp_buf_printf(b, ", failed from %s until %s, text ", t1, t2);
		kp_buf_htmls(b, tx ? tx : "any");
		kp_buf_printf(b, "</dd>");
	}
	kp_buf_printf(b, "<dt>state</dt><dd id=\"replay-state\"%s>",
		      status == -1 ? " data-running=\"1\"" : "");
	if (status == -1)
		kp_buf_printf(b, "running&hellip;");
	else if (status == 0)
		kp_buf_printf(b, "finished");
	else if (status == -2)
		kp_buf_printf(b, "killed");
	else
		kp_buf_printf(b, "finished with errors (exit status %d)", status);
	kp_buf_printf(b, "</dd></dl>\n<h2>Output <span class=\"muted\">as kpool dlq replay prints "
			 "it</span></h2><pre id=\"replay-log\">");
	kp_buf_html(b, log.s ? log.s : "", log.n);
	kp_buf_printf(b, "</pre>\n");
	if (dry && status == 0 && r->can_act) {
		long n = kp_dry_run_count(log.s ? log.s : "");
		if (n > 0) {
			kp_buf_printf(b, "<form method=\"post\" id=\"confirm\" action=\"/dlq/");
			kp_buf_url(b, topic);
			kp_buf_printf(b, "/replay\">");
			kp_page_csrf(b, r);
			static const char *const keys[][2] = {{"class", "class"}, {"text", "q"}};
			for (size_t i = 0; i < 2; i++) {
				const char *v = json_string_value(json_object_get(req, keys[i][0]));
				if (v == NULL)
					continue;
				kp_buf_printf(b, "<input type=\"hidden\" name=\"%s\" value=\"",
					      keys[i][1]);
				kp_buf_htmls(b, v);
				kp_buf_printf(b, "\">");
			}
			if (json_object_get(req, "since"))
				kp_buf_printf(
				    b,
				    "<input type=\"hidden\" name=\"since_ms\" value=\"%" PRId64
				    "\">",
				    (int64_t)json_integer_value(json_object_get(req, "since")));
			if (json_object_get(req, "until"))
				kp_buf_printf(
				    b,
				    "<input type=\"hidden\" name=\"until_ms\" value=\"%" PRId64
				    "\">",
				    (int64_t)json_integer_value(json_object_get(req, "until")));
			kp_buf_printf(b,
				      "<input type=\"hidden\" name=\"confirm\" value=\"yes\">"
				      "<p>%ld record%s match. Replaying sends each back to its "
				      "topic, once: records replayed before are skipped, as by "
				      "<code>kpool dlq replay</code>.</p>"
				      "<button type=\"submit\" class=\"danger\">replay %ld record%s"
				      "</button></form>\n",
				      n, n == 1 ? "" : "s", n, n == 1 ? "" : "s");
		} else if (n == 0) {
			kp_buf_printf(b, "<p id=\"nothing\">Nothing to replay.</p>");
		}
	}
	kp_page_end(b);
	kp_buf_free(&log);
	json_decref(req);
}
