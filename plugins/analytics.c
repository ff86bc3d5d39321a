/*
 * analytics.c - the analytics handler: events counted per minute, hour and
 * day in a SQLite rollup (rollup.h), with a HyperLogLog sketch of the
 * distinct users of each bucket.  Jobs are {"userId","event","properties"},
 * {"eventType","data"} or the {"type","data","metadata"} envelope; an event
 * falls in the buckets of its own timestamp when it has one, else of its
 * Kafka timestamp.  handle_batch folds a batch in memory first, then reads,
 * merges and writes each of its rows in one transaction, which the workers of
 * a binding take in turn on their shared file.
 */
#include "config.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "dbopen.h"
#include "kpool_plugin.h"
#include "rollup.h"
#include "util.h"

#define EVENT_MAX 200 /* bytes of an event name */

/*
 * A row of the rollup as this process knows it: the share of the batch being
 * folded (count, users), and, while known, what the table holds (stored,
 * blob).  Rows stay known from batch to batch as long as no other process
 * wrote the file (PRAGMA data_version), so that a batch need not read back
 * the 16 KiB sketches it wrote a moment ago.
 */
struct row {
	int gran;
	int64_t bucket;
	uint64_t key_hash;
	char *event;
	int64_t count; /* this batch's */
	uint64_t *users;
	size_t n_users, cap_users;
	uint64_t batch; /* the last batch that touched it */
	bool known, exists;
	int64_t stored;
	unsigned char *blob;
	size_t size, cap;
};

#define ROWS_KEPT 256 /* rows known between batches, at most (16 KiB each, at most) */

struct analytics {
	char *path;
	sqlite3 *db;
	sqlite3_stmt *get, *insert, *update, *version;
	int64_t data_version;
	struct row *rows;
	size_t n_rows, cap_rows;
	uint32_t *slots; /* open addressing over rows: index + 1, 0 empty */
	size_t n_slots;
	size_t *touched; /* rows of the batch being folded */
	size_t n_touched;
	uint64_t batch;
};

/* One job, read. */
struct event {
	const char *name;
	bool has_user;
	uint64_t user;
	int64_t at_ms;
};

/* The first of the fields that is present (not absent, not null), or NULL. */
static json_t *first_of(json_t *const *objs, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(objs[i], key);
		if (v && !json_is_null(v))
			return v;
	}
	return NULL;
}

/* Reads a job; false with the reason if it is no event.  e->name lives in *root. */
static bool event_read(const struct kpool_job *job, json_t **root, struct event *e, char *reason)
{
	json_error_t jerr;
	json_t *objs[3], *v;

	*root = json_loadb(job->value, job->value_len, 0, &jerr);
	if (!json_is_object(*root)) {
		snprintf(reason, KPOOL_REASON_MAX, "job is not a JSON object");
		return false;
	}
	objs[0] = util_job_body(*root);
	objs[1] = *root;
	objs[2] = json_object_get(*root, "metadata");

	v = json_object_get(objs[0], "event");
	if (!json_is_string(v))
		v = json_object_get(*root, "eventType");
	if (!json_is_string(v))
		v = json_object_get(*root, "type");
	if (!json_is_string(v) || json_string_length(v) == 0) {
		snprintf(reason, KPOOL_REASON_MAX,
			 "no event: the job has neither \"event\", \"eventType\" nor \"type\"");
		return false;
	}
	if (json_string_length(v) > EVENT_MAX) {
		snprintf(reason, KPOOL_REASON_MAX, "event name is longer than %d bytes", EVENT_MAX);
		return false;
	}
	e->name = json_string_value(v);

	if ((v = first_of(objs, 3, "userId")) == NULL)
		v = first_of(objs, 3, "anonymousId");
	e->has_user = v != NULL;
	if (json_is_string(v)) {
		e->user = hll_hash(json_string_value(v), json_string_length(v));
	} else if (json_is_integer(v)) {
		char digits[24];
		int n = snprintf(digits, sizeof(digits), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(v));
		e->user = hll_hash(digits, (size_t)n);
	} else if (v) {
		snprintf(reason, KPOOL_REASON_MAX, "userId is neither a string nor an integer");
		return false;
	}

	e->at_ms = job->timestamp_ms > 0 ? job->timestamp_ms : (int64_t)time(NULL) * 1000;
	if ((v = first_of(objs, 3, "timestamp")) != NULL) {
		/* A number past the year 9999 is no time, as text that is none is: the
		 * job goes to the dead-letter topic rather than to a bucket of now. */
		if ((e->at_ms = util_time_ms(v)) < 0) {
			char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			snprintf(reason, KPOOL_REASON_MAX,
				 json_is_number(v) ? "timestamp %.64s is not a time (seconds or "
						     "milliseconds since the epoch, up to the year "
						     "9999)"
						   : "timestamp %.64s is not a time (ISO 8601, or "
						     "seconds or milliseconds since the epoch)",
				 text ? text : "?");
			free(text);
			return false;
		}
	}
	return true;
}

static uint64_t key_hash(int g, int64_t bucket, uint64_t event_hash)
{
	uint64_t h = event_hash ^ ((uint64_t)bucket * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)g;
	return h ^ (h >> 29);
}

static void row_free(struct row *r)
{
	free(r->event);
	free(r->users);
	free(r->blob);
}

/* Rebuilds the index over rows, 4 slots a row; -1 if memory runs out. */
static int reindex(struct analytics *a)
{
	size_t n = 64;

	while (n < 4 * a->cap_rows)
		n *= 2;
	if (n != a->n_slots) {
		uint32_t *p = realloc(a->slots, n * sizeof(*p));
		if (p == NULL)
			return -1;
		a->slots = p;
		a->n_slots = n;
	}
	memset(a->slots, 0, a->n_slots * sizeof(*a->slots));
	for (size_t i = 0; i < a->n_rows; i++) {
		size_t j = a->rows[i].key_hash & (a->n_slots - 1);
		while (a->slots[j])
			j = (j + 1) & (a->n_slots - 1);
		a->slots[j] = (uint32_t)i + 1;
	}
	return 0;
}

/* Forgets the rows the last batches did not touch, when there are too many. */
static void rows_trim(struct analytics *a)
{
	size_t k = 0;

	if (a->n_rows <= ROWS_KEPT)
		return;
	for (size_t i = 0; i < a->n_rows; i++) {
		if (a->rows[i].batch == a->batch)
			a->rows[k++] = a->rows[i];
		else
			row_free(&a->rows[i]);
	}
	a->n_rows = k;
	if (reindex(a) < 0) { /* no index, no rows */
		for (size_t i = 0; i < a->n_rows; i++)
			row_free(&a->rows[i]);
		a->n_rows = 0;
		memset(a->slots, 0, a->n_slots * sizeof(*a->slots));
	}
}

/* Counts an event into its row of granularity g; -1 if memory runs out. */
static int fold(struct analytics *a, int g, const struct event *e, uint64_t event_hash)
{
	int64_t width = rollup_grans[g].width, s = e->at_ms / 1000;
	int64_t bucket = (s - (s % width + width) % width);
	uint64_t h = key_hash(g, bucket, event_hash);
	struct row *x = NULL;
	size_t j = a->n_slots ? h & (a->n_slots - 1) : 0;

	for (; a->n_slots && a->slots[j]; j = (j + 1) & (a->n_slots - 1)) {
		struct row *r = &a->rows[a->slots[j] - 1];
		if (r->key_hash == h && r->gran == g && r->bucket == bucket &&
		    strcmp(r->event, e->name) == 0) {
			x = r;
			break;
		}
	}
	if (x == NULL) {
		if (a->n_rows == a->cap_rows) {
			size_t cap = a->cap_rows ? a->cap_rows * 2 : 64;
			struct row *p = realloc(a->rows, cap * sizeof(*p));
			if (p == NULL)
				return -1;
			a->rows = p;
			a->cap_rows = cap;
			size_t *t = realloc(a->touched, cap * sizeof(*t));
			if (t == NULL)
				return -1;
			a->touched = t;
		}
		x = &a->rows[a->n_rows];
		*x = (struct row){.gran = g, .bucket = bucket, .key_hash = h};
		if ((x->event = strdup(e->name)) == NULL)
			return -1;
		a->n_rows++;
		if (4 * a->n_rows > a->n_slots) {
			if (reindex(a) < 0)
				return -1;
		} else {
			j = h & (a->n_slots - 1);
			while (a->slots[j])
				j = (j + 1) & (a->n_slots - 1);
			a->slots[j] = (uint32_t)a->n_rows;
		}
	}
	if (x->batch != a->batch) {
		x->batch = a->batch;
		x->count = 0;
		x->n_users = 0;
		a->touched[a->n_touched++] = (size_t)(x - a->rows);
	}
	x->count++;
	if (!e->has_user)
		return 0;
	if (x->n_users == x->cap_users) {
		size_t cap = x->cap_users ? x->cap_users * 2 : 16;
		uint64_t *p = realloc(x->users, cap * sizeof(*p));
		if (p == NULL)
			return -1;
		x->users = p;
		x->cap_users = cap;
	}
	x->users[x->n_users++] = e->user;
	return 0;
}

/* Keeps size bytes as the row's blob (p NULL: room for them); -1 if memory runs out. */
static int row_blob(struct row *x, const void *p, size_t size)
{
	if (size > x->cap) {
		unsigned char *b = realloc(x->blob, size);
		if (b == NULL)
			return -1;
		x->blob = b;
		x->cap = size;
	}
	if (size > 0 && p != NULL)
		memcpy(x->blob, p, size);
	x->size = size;
	return 0;
}

/* Reads what the table holds for a row; false with why if it cannot. */
static bool row_read(struct analytics *a, struct row *x, char *why, size_t len)
{
	int rc;

	sqlite3_reset(a->get);
	sqlite3_bind_text(a->get, 1, rollup_grans[x->gran].name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(a->get, 2, x->bucket);
	sqlite3_bind_text(a->get, 3, x->event, -1, SQLITE_STATIC);
	rc = sqlite3_step(a->get);
	x->exists = rc == SQLITE_ROW;
	x->stored = x->exists ? sqlite3_column_int64(a->get, 0) : 0;
	if (rc == SQLITE_ROW) {
		rc = row_blob(x, sqlite3_column_blob(a->get, 1),
			      (size_t)sqlite3_column_bytes(a->get, 1));
		if (rc < 0)
			snprintf(why, len, "out of memory");
	} else if (rc == SQLITE_DONE) {
		rc = row_blob(x, (const unsigned char[]){HLL_SPARSE, HLL_P}, 2);
		if (rc < 0)
			snprintf(why, len, "out of memory");
	} else {
		snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
		rc = -1;
	}
	sqlite3_reset(a->get);
	return rc == 0;
}

/* Merges one row's share of the batch into the table; false with why if it could not. */
static bool row_write(struct analytics *a, struct row *x, char *why, size_t len)
{
	const char *gran = rollup_grans[x->gran].name;
	struct hll h;
	sqlite3_stmt *st;
	int rc;

	if (!x->known && !row_read(a, x, why, len))
		return false;
	x->known = false; /* until the transaction commits */
	if (hll_wrap(&h, x->blob, x->size) < 0) {
		snprintf(why, len, "%s: row (%s, %lld, %s): users is not a sketch", a->path, gran,
			 (long long)x->bucket, x->event);
		return false;
	}
	rc = hll_add(&h, x->users, x->n_users);
	if (rc == 0 && !h.borrowed) { /* the dense form is changed in place, others anew */
		rc = row_blob(x, NULL, hll_blob_size(&h));
		if (rc == 0)
			hll_blob(&h, x->blob);
	}
	hll_free(&h);
	if (rc < 0) {
		snprintf(why, len, "out of memory");
		return false;
	}
	st = x->exists ? a->update : a->insert;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, x->stored + x->count);
	sqlite3_bind_blob(st, 2, x->blob, (int)x->size, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, gran, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, x->bucket);
	sqlite3_bind_text(st, 5, x->event, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
		return false;
	}
	return true;
}

/* Whether another process wrote the file since this one last did. */
static bool others_wrote(struct analytics *a)
{
	int64_t v = -1;

	if (sqlite3_step(a->version) == SQLITE_ROW)
		v = sqlite3_column_int64(a->version, 0);
	sqlite3_reset(a->version);
	if (v == a->data_version && v >= 0)
		return false;
	a->data_version = v;
	return true;
}

/* Writes the folded batch in one transaction; false with why if nothing of it was. */
static bool flush(struct analytics *a, char *why, size_t len)
{
	if (sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
		return false;
	}
	if (others_wrote(a))
		for (size_t i = 0; i < a->n_rows; i++)
			a->rows[i].known = false;
	for (size_t i = 0; i < a->n_touched; i++)
		if (!row_write(a, &a->rows[a->touched[i]], why, len))
			goto rollback;
	if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
		goto rollback;
	}
	for (size_t i = 0; i < a->n_touched; i++) {
		struct row *x = &a->rows[a->touched[i]];
		x->stored += x->count;
		x->exists = x->known = true;
	}
	return true;
rollback:
	sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = 0; i < a->n_rows; i++) /* some were changed in place */
		a->rows[i].known = false;
	return false;
}

static int open_rollup(struct analytics *a, char *err, size_t len);
static void close_rollup(struct analytics *a);

static void handle_batch(void *state, const struct kpool_job *const *jobs, size_t n,
			 kpool_status *status, char (*reason)[KPOOL_REASON_MAX])
{
	struct analytics *a = state;
	char why[KPOOL_REASON_MAX] = "out of memory";
	bool ok = true;

	for (size_t i = 0; i < n; i++) {
		status[i] = KPOOL_RETRY;
		reason[i][0] = '\0';
	}
	if (a->db == NULL && open_rollup(a, why, sizeof(why)) < 0) {
		close_rollup(a);
		ok = false;
	}
	a->batch++;
	a->n_touched = 0;
	for (size_t i = 0; i < n && ok; i++) {
		json_t *root = NULL;
		struct event e = {0};

		if (!event_read(jobs[i], &root, &e, reason[i])) {
			status[i] = KPOOL_FAIL;
		} else {
			uint64_t eh = hll_hash(e.name, strlen(e.name));
			status[i] = KPOOL_DONE;
			for (int g = 0; g < ROLLUP_GRANS && ok; g++)
				ok = fold(a, g, &e, eh) == 0;
		}
		json_decref(root);
	}
	if (ok && a->n_touched > 0)
		ok = flush(a, why, sizeof(why));
	rows_trim(a);
	if (ok)
		return;
	for (size_t i = 0; i < n; i++) /* nothing of the batch was written */
		if (status[i] != KPOOL_FAIL) {
			status[i] = KPOOL_RETRY;
			snprintf(reason[i], KPOOL_REASON_MAX, "%s", why);
		}
}

static kpool_status handle(void *state, const struct kpool_job *job, char reason[KPOOL_REASON_MAX])
{
	const struct kpool_job *const jobs[1] = {job};
	kpool_status st = KPOOL_FAIL;

	handle_batch(state, jobs, 1, &st, (char(*)[KPOOL_REASON_MAX])reason);
	return st;
}

static void close_rollup(struct analytics *a)
{
	sqlite3_finalize(a->get);
	sqlite3_finalize(a->insert);
	sqlite3_finalize(a->update);
	sqlite3_finalize(a->version);
	sqlite3_close(a->db);
	a->get = a->insert = a->update = a->version = NULL;
	a->db = NULL;
	for (size_t i = 0; i < a->n_rows; i++)
		a->rows[i].known = false;
}

/* Opens the rollup; the workers of a binding may do so at the same moment. */
static int open_rollup(struct analytics *a, char *err, size_t len)
{
	static const char *const setup[] = {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
					    ROLLUP_SCHEMA};

	if ((a->db = db_open(a->path, setup, sizeof(setup) / sizeof(*setup), err, len)) == NULL)
		return -1;
	if (sqlite3_prepare_v2(a->db,
			       "SELECT count, users FROM rollup WHERE granularity = ? AND "
			       "bucket = ? AND event = ?",
			       -1, &a->get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(a->db,
			       "INSERT INTO rollup (count, users, granularity, bucket, event) "
			       "VALUES (?, ?, ?, ?, ?)",
			       -1, &a->insert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(a->db,
			       "UPDATE rollup SET count = ?, users = ? WHERE granularity = ? AND "
			       "bucket = ? AND event = ?",
			       -1, &a->update, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(a->db, "PRAGMA data_version", -1, &a->version, NULL) != SQLITE_OK) {
		snprintf(err, len, "db: %s: %s", a->path, sqlite3_errmsg(a->db));
		return -1;
	}
	return 0;
}

static void analytics_free(struct analytics *a)
{
	if (a == NULL)
		return;
	close_rollup(a);
	for (size_t i = 0; i < a->n_rows; i++)
		row_free(&a->rows[i]);
	free(a->rows);
	free(a->slots);
	free(a->touched);
	free(a->path);
	free(a);
}

static void *init(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
		  char *err, size_t len)
{
	struct analytics *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	a->data_version = -1;
	if ((a->path = db_path(host, opts, n_opts, "analytics", err, len)) == NULL)
		goto fail;
	/* The file is opened at the first job: kpoold -t creates nothing. */
	host->log(LOG_INFO, "analytics: %s", a->path);
	return a;
fail:
	analytics_free(a);
	return NULL;
}

static void fini(void *state)
{
	analytics_free(state);
}

static const struct kpool_option_spec analytics_options[] = {
    DB_OPTION("analytics"),
    {.name = NULL},
};

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER,
    .name = "analytics",
    .version = PACKAGE_VERSION,
    .init = init,
    .handle = handle,
    .fini = fini,
    .handle_batch = handle_batch,
    KPOOL_PLUGIN_OPTIONS(analytics_options),
};
