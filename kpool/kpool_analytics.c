/*
 * kpool_analytics.c - `kpool analytics report DB`: the analytics handler's
 * rollup as counts and distinct users per bucket, as a table, JSON, or an
 * SVG bar chart.
 */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpool_cmd.h"
#include "rollup.h"
#include "util.h"

struct row {
	int64_t bucket, count;
	size_t event; /* index into the report's events */
	double users;
	bool exact;
};

struct event {
	char *name;
	int64_t count;
	struct hll users; /* the union of its buckets' */
};

struct report {
	int gran;
	int64_t since_ms;
	struct row *rows;
	size_t n_rows;
	struct event *events;
	size_t n_events;
};

/*
 * Room for element n of an array grown one by one: it doubles when n is a
 * power of two.  Aborts when memory runs out.
 */
static void *grow(void *p, size_t n, size_t size)
{
	if (n & (n - 1))
		return p;
	p = realloc(p, (n ? 2 * n : 1) * size);
	if (p == NULL)
		abort(); /* a report for a terminal: no memory is no way on */
	return p;
}

/*
 * Column i's text as valid UTF-8 (a byte that is not part of it becomes
 * U+FFFD; NULL is ""), so that JSON drops no event for its bytes; control
 * characters stay, for the table and kp_json_print() to escape.
 */
static char *column_text(sqlite3_stmt *st, int i)
{
	const void *s = sqlite3_column_text(st, i);

	return kp_text_utf8(s ? s : "", s ? (size_t)sqlite3_column_bytes(st, i) : 0);
}

/* The index of event name in r, added if new; aborts when memory runs out. */
static size_t event_index(struct report *r, const char *name)
{
	for (size_t i = 0; i < r->n_events; i++)
		if (strcmp(r->events[i].name, name) == 0)
			return i;
	r->events = grow(r->events, r->n_events, sizeof(*r->events));
	r->events[r->n_events] = (struct event){.name = strdup(name)};
	if (r->events[r->n_events].name == NULL)
		abort(); /* a report for a terminal: no memory is no way on */
	return r->n_events++;
}

/* Reads the rows of the report; 0, or 2 having said why. */
static int load(struct report *r, const char *path, const char *event)
{
	const struct rollup_gran *g = &rollup_grans[r->gran];
	sqlite3 *db = kp_cmd_open_ro(path);
	sqlite3_stmt *st = NULL;
	int rc;

	if (db == NULL)
		return 2;
	if ((st = kp_cmd_prepare(
		 db, path,
		 "SELECT bucket, event, count, users FROM rollup WHERE granularity = "
		 "?1 AND bucket + ?2 > ?3 AND (?4 IS NULL OR event = ?4) "
		 "ORDER BY bucket, event")) == NULL) {
		sqlite3_close(db);
		return 2;
	}
	sqlite3_bind_text(st, 1, g->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, g->width);
	sqlite3_bind_int64(st, 3, r->since_ms < 0 ? INT64_MIN / 2 : r->since_ms / 1000);
	if (event)
		sqlite3_bind_text(st, 4, event, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct hll h;
		struct row *x;
		char *name = column_text(st, 1);
		size_t e = event_index(r, name);

		if (hll_load(&h, sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3)) <
		    0) {
			fprintf(stderr, "kpool: %s: row (%s, %lld, ", path, g->name,
				(long long)sqlite3_column_int64(st, 0));
			kp_text_put(stderr, name, strlen(name), 0);
			fprintf(stderr, "): users is not a sketch\n");
			free(name);
			rc = SQLITE_ERROR;
			break;
		}
		free(name);
		r->rows = grow(r->rows, r->n_rows, sizeof(*r->rows));
		x = &r->rows[r->n_rows++];
		x->bucket = sqlite3_column_int64(st, 0);
		x->event = e;
		x->count = sqlite3_column_int64(st, 2);
		x->users = hll_count(&h);
		x->exact = hll_exact(&h);
		r->events[e].count += x->count;
		if (hll_merge(&r->events[e].users, &h) < 0)
			abort();
		hll_free(&h);
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ERROR)
		fprintf(stderr, "kpool: %s: %s\n", path, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc == SQLITE_DONE ? 0 : 2;
}

/* Frees what load() read into r (r itself is the caller's). */
static void report_free(struct report *r)
{
	for (size_t i = 0; i < r->n_events; i++) {
		free(r->events[i].name);
		hll_free(&r->events[i].users);
	}
	free(r->events);
	free(r->rows);
}

/* Distinct users as shown: the count, with ~ when it is an estimate. */
static void users_text(double users, bool exact, char *out, size_t len)
{
	snprintf(out, len, "%s%.0f", exact ? "" : "~", users);
}

/* Prints the report as two tables: per bucket and event, then per event. */
static void print_table(const struct report *r)
{
	struct kp_table t;
	char bucket[32], count[24], users[24];

	kp_table_init(&t, 4, "BUCKET", "EVENT", "COUNT", "USERS");
	for (size_t i = 0; i < r->n_rows; i++) {
		const struct row *x = &r->rows[i];
		kp_cmd_iso(x->bucket * 1000, bucket, sizeof(bucket));
		snprintf(count, sizeof(count), "%lld", (long long)x->count);
		users_text(x->users, x->exact, users, sizeof(users));
		kp_table_row(&t, bucket, r->events[x->event].name, count, users);
	}
	kp_table_print(&t, stdout);
	kp_table_free(&t);
	printf("%zu %s buckets\n\n", r->n_rows, rollup_grans[r->gran].name);

	kp_table_init(&t, 3, "EVENT", "COUNT", "USERS");
	for (size_t i = 0; i < r->n_events; i++) {
		const struct event *e = &r->events[i];
		snprintf(count, sizeof(count), "%lld", (long long)e->count);
		users_text(hll_count(&e->users), hll_exact(&e->users), users, sizeof(users));
		kp_table_row(&t, e->name, count, users);
	}
	kp_table_print(&t, stdout);
	kp_table_free(&t);
	printf("users: distinct userIds, ~ where estimated (HyperLogLog, standard error 0.8%%)\n");
}

/* Prints the report as the document of --json. */
static void print_json(const struct report *r)
{
	json_t *series = json_array(), *totals = json_array(), *doc;
	char at[32];

	for (size_t i = 0; i < r->n_rows; i++) {
		const struct row *x = &r->rows[i];
		kp_cmd_iso(x->bucket * 1000, at, sizeof(at));
		json_array_append_new(
		    series, json_pack("{s:s, s:I, s:s, s:I, s:I, s:b}", "bucket", at, "bucket_s",
				      (json_int_t)x->bucket, "event", r->events[x->event].name,
				      "count", (json_int_t)x->count, "users",
				      (json_int_t)llround(x->users), "users_exact", x->exact));
	}
	for (size_t i = 0; i < r->n_events; i++) {
		const struct event *e = &r->events[i];
		json_array_append_new(totals, json_pack("{s:s, s:I, s:I, s:b}", "event", e->name,
							"count", (json_int_t)e->count, "users",
							(json_int_t)llround(hll_count(&e->users)),
							"users_exact", hll_exact(&e->users)));
	}
	doc = json_pack("{s:s, s:o, s:o}", "by", rollup_grans[r->gran].name, "series", series,
			"totals", totals);
	if (r->since_ms >= 0) {
		kp_cmd_iso(r->since_ms, at, sizeof(at));
		json_object_set_new(doc, "since", json_string(at));
	}
	kp_json_print(doc, stdout, JSON_INDENT(2));
	json_decref(doc);
}

/* Writes s to f escaped as XML text; nothing when memory runs out. */
static void xml_text(FILE *f, const char *s)
{
	struct buf b = {0};

	util_xml_escape(&b, s, strlen(s));
	if (b.p)
		fputs(b.p, f);
	free(b.p);
}

/* A step of 1, 2 or 5 times a power of ten that cuts 0..max into at most 5 parts. */
static double nice_step(double max)
{
	double raw = max / 5, p = pow(10, floor(log10(raw)));

	return raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
}

/* A bucket's label on the x axis (UTC), as short as its granularity allows. */
static void bucket_label(int gran, int64_t bucket, char *out, size_t len)
{
	static const char *const fmt[ROLLUP_GRANS] = {"%H:%M", "%m-%d %H:00", "%Y-%m-%d"};
	time_t t = (time_t)bucket;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, fmt[gran], &tm);
}

#define SVG_MAX_BUCKETS 2000

/*
 * The series as stacked bars, one bar per bucket from the first to the last
 * (empty ones too, so that time runs evenly), one colour per event, with a
 * tooltip per bar.  0, or 2 having said why (a file that could not be
 * written whole may be left).
 */
static int write_svg(const struct report *r, const char *path)
{
	static const char *const colours[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
					      "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
					      "#9c755f", "#bab0ac"};
	const int W = 760, H = 360, left = 64, right = 170, top = 40, bottom = 48;
	int64_t width = rollup_grans[r->gran].width, first = 0, n = 0, peak = 0;
	int64_t *stack = NULL;
	FILE *f = fopen(path, "w");
	char label[32], since[32];

	if (f == NULL) {
		perror(path);
		return 2;
	}
	if (r->n_rows > 0) {
		first = r->rows[0].bucket;
		n = (r->rows[r->n_rows - 1].bucket - first) / width + 1;
	}
	if (n > SVG_MAX_BUCKETS) {
		fprintf(stderr,
			"kpool: --svg: %lld %s buckets are too many bars (at most %d); use --since "
			"or a coarser --by\n",
			(long long)n, rollup_grans[r->gran].name, SVG_MAX_BUCKETS);
		fclose(f);
		remove(path);
		return 2;
	}
	stack = calloc((size_t)(n ? n : 1), sizeof(*stack));
	if (stack == NULL)
		abort();
	for (size_t i = 0; i < r->n_rows; i++) {
		int64_t k = (r->rows[i].bucket - first) / width;
		stack[k] += r->rows[i].count;
		if (stack[k] > peak)
			peak = stack[k];
	}
	double step = nice_step(peak > 0 ? (double)peak : 1),
	       ymax = ceil((peak ? peak : 1) / step) * step;
	double plot_w = W - left - right, plot_h = H - top - bottom;
	double bw = n ? plot_w / (double)n : plot_w;

	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
		W, H, W, H);
	fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"14\" font-weight=\"bold\">Events per %s",
		left, rollup_grans[r->gran].name);
	if (r->since_ms >= 0) {
		kp_cmd_iso(r->since_ms, since, sizeof(since));
		fprintf(f, " since %s", since);
	}
	fputs(" (UTC)</text>\n", f);
	for (double y = 0; y <= ymax + step / 2; y += step) { /* the y axis and its grid */
		double py = top + plot_h - y / ymax * plot_h;
		fprintf(f,
			"<line x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
			"<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n",
			left, left + plot_w, py, py, left - 6, py + 4, y);
	}
	memset(stack, 0, (size_t)(n ? n : 1) * sizeof(*stack));
	for (size_t i = 0; i < r->n_rows; i++) { /* the bars, stacked in event order */
		const struct row *x = &r->rows[i];
		int64_t k = (x->bucket - first) / width;
		double y0 = (double)stack[k] / ymax * plot_h, h = (double)x->count / ymax * plot_h;
		char users[24], at[32];

		stack[k] += x->count;
		kp_cmd_iso(x->bucket * 1000, at, sizeof(at));
		users_text(x->users, x->exact, users, sizeof(users));
		fprintf(f,
			"<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\">"
			"<title>%s ",
			left + (double)k * bw + (bw > 4 ? 1 : 0), top + plot_h - y0 - h,
			bw > 4 ? bw - 2 : bw, h,
			colours[x->event % (sizeof(colours) / sizeof(*colours))], at);
		xml_text(f, r->events[x->event].name);
		fprintf(f, ": %lld events, %s users</title></rect>\n", (long long)x->count, users);
	}
	for (int64_t k = 0, every = n / 8 + 1; k < n; k += every) { /* the x axis */
		bucket_label(r->gran, first + k * width, label, sizeof(label));
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
			left + ((double)k + 0.5) * bw, top + plot_h + 16, label);
	}
	fprintf(f, "<line x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", left,
		left + plot_w, top + plot_h, top + plot_h);
	for (size_t i = 0; i < r->n_events; i++) { /* the legend */
		double y = top + 14.0 * (double)i;
		fprintf(f,
			"<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
			"<text x=\"%.1f\" y=\"%.1f\">",
			W - right + 16.0, y, colours[i % (sizeof(colours) / sizeof(*colours))],
			W - right + 32.0, y + 9);
		xml_text(f, r->events[i].name);
		fprintf(f, " (%lld)</text>\n", (long long)r->events[i].count);
	}
	if (r->n_rows == 0)
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no events</text>\n",
			left + plot_w / 2, top + plot_h / 2);
	fputs("</svg>\n", f);
	free(stack);
	if (fclose(f) != 0) {
		perror(path);
		return 2;
	}
	return 0;
}

/* kpool analytics report DB: 0, or 2 having said why (an option, the database, the SVG). */
static int report(const char *path, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"since", required_argument, NULL, 's'}, {"by", required_argument, NULL, 'b'},
	    {"event", required_argument, NULL, 'e'}, {"json", no_argument, NULL, 'j'},
	    {"svg", required_argument, NULL, 'g'},   {NULL, 0, NULL, 0}};
	struct report r = {.gran = 1, .since_ms = -1};
	const char *event = NULL, *svg = NULL;
	int json = 0, c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((r.since_ms = kp_cmd_since_arg("--since", optarg)) < 0)
				return 2;
			break;
		case 'b':
			if ((r.gran = rollup_gran_find(optarg)) < 0) {
				fprintf(stderr, "kpool: --by %s: minute, hour or day\n", optarg);
				return 2;
			}
			break;
		case 'e':
			event = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'g':
			svg = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kpool: analytics report: unexpected '%s'\n", argv[optind]);
		return 2;
	}
	rc = load(&r, path, event);
	if (rc == 0 && svg)
		rc = write_svg(&r, svg);
	if (rc == 0 && json)
		print_json(&r);
	else if (rc == 0)
		print_table(&r);
	report_free(&r);
	return rc;
}

/* kpool analytics: what report returns, or the usage on standard error and 2. */
int kp_cmd_analytics(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "report") == 0)
		return report(argv[2], argc - 2, argv + 2);
	fprintf(stderr, "usage: kpool analytics report DB [--since T] [--by minute|hour|day] "
			"[--event E] [--json] [--svg FILE]\n");
	return 2;
}
