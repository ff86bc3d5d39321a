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

/* One row's share of a batch: events counted, and the hashes of their users. */
struct agg {
	int gran;
	int64_t bucket;
	uint64_t event_hash;
	char *event;
	int64_t count;
	uint64_t *users;
	size_t n_users, cap_users;
};

struct analytics {
	const struct kpool_host *host;
	char *path;
	sqlite3 *db;
	sqlite3_stmt *get, *insert, *update;
	struct agg *aggs; /* the batch being folded; kept for the next */
	size_t n_aggs, cap_aggs;
	unsigned char blob[2 + HLL_M];
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
		snprintf(reason, KPOOL_REASON_MAX, "event name is longer than %d bytes",
			 EVENT_MAX);
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
		if ((e->at_ms = util_time_ms(v)) < 0) {
			char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			snprintf(reason, KPOOL_REASON_MAX,
				 "timestamp %.64s is not a time (ISO 8601, or seconds or "
				 "milliseconds since the epoch)",
				 text ? text : "?");
			free(text);
			return false;
		}
	}
	return true;
}

static void aggs_clear(struct analytics *a)
{
	for (size_t i = 0; i < a->n_aggs; i++)
		free(a->aggs[i].event);
	a->n_aggs = 0;
}

/* Counts an event into its row of granularity g; -1 if memory runs out. */
static int fold(struct analytics *a, int g, const struct event *e, uint64_t event_hash)
{
	int64_t width = rollup_grans[g].width, s = e->at_ms / 1000;
	int64_t bucket = (s - (s % width + width) % width);
	struct agg *x = NULL;

	for (size_t i = 0; i < a->n_aggs && x == NULL; i++)
		if (a->aggs[i].gran == g && a->aggs[i].bucket == bucket &&
		    a->aggs[i].event_hash == event_hash && strcmp(a->aggs[i].event, e->name) == 0)
			x = &a->aggs[i];
	if (x == NULL) {
		if (a->n_aggs == a->cap_aggs) {
			size_t cap = a->cap_aggs ? a->cap_aggs * 2 : 32;
			struct agg *p = realloc(a->aggs, cap * sizeof(*p));
			if (p == NULL)
				return -1;
			memset(p + a->cap_aggs, 0, (cap - a->cap_aggs) * sizeof(*p));
			a->aggs = p;
			a->cap_aggs = cap;
		}
		x = &a->aggs[a->n_aggs];
		if ((x->event = strdup(e->name)) == NULL)
			return -1;
		a->n_aggs++;
		x->gran = g;
		x->bucket = bucket;
		x->event_hash = event_hash;
		x->count = 0;
		x->n_users = 0;
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

/* Merges one row's share into the table; false with why if it could not. */
static bool write_row(struct analytics *a, struct agg *x, char *why, size_t len)
{
	const char *gran = rollup_grans[x->gran].name;
	struct hll h = {0};
	int64_t count = x->count;
	bool exists = false;
	sqlite3_stmt *st;
	int rc;

	sqlite3_reset(a->get);
	sqlite3_bind_text(a->get, 1, gran, -1, SQLITE_STATIC);
	sqlite3_bind_int64(a->get, 2, x->bucket);
	sqlite3_bind_text(a->get, 3, x->event, -1, SQLITE_STATIC);
	rc = sqlite3_step(a->get);
	if (rc == SQLITE_ROW) {
		exists = true;
		size_t size = (size_t)sqlite3_column_bytes(a->get, 1);
		count += sqlite3_column_int64(a->get, 0);
		if (size > sizeof(a->blob))
			size = 0; /* no sketch */
		if (size > 0)
			memcpy(a->blob, sqlite3_column_blob(a->get, 1), size);
		if (hll_wrap(&h, a->blob, size) < 0) {
			snprintf(why, len, "%s: row (%s, %lld, %s): users is not a sketch", a->path,
				 gran, (long long)x->bucket, x->event);
			sqlite3_reset(a->get);
			return false;
		}
	} else if (rc != SQLITE_DONE) {
		snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
		sqlite3_reset(a->get);
		return false;
	}
	sqlite3_reset(a->get);
	if (hll_add(&h, x->users, x->n_users) < 0) {
		hll_free(&h);
		snprintf(why, len, "out of memory");
		return false;
	}
	hll_blob(&h, a->blob);
	st = exists ? a->update : a->insert;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, count);
	sqlite3_bind_blob(st, 2, a->blob, (int)hll_blob_size(&h), SQLITE_STATIC);
	sqlite3_bind_text(st, 3, gran, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, x->bucket);
	sqlite3_bind_text(st, 5, x->event, -1, SQLITE_STATIC);
	hll_free(&h);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
		return false;
	}
	return true;
}

/* Writes the folded batch in one transaction; false with why if nothing of it was. */
static bool flush(struct analytics *a, char *why, size_t len)
{
	if (sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
		return false;
	}
	for (size_t i = 0; i < a->n_aggs; i++)
		if (!write_row(a, &a->aggs[i], why, len))
			goto rollback;
	if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return true;
	snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
rollback:
	sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
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
	aggs_clear(a);
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
	if (ok && a->n_aggs > 0)
		ok = flush(a, why, sizeof(why));
	aggs_clear(a);
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
	sqlite3_close(a->db);
	a->get = a->insert = a->update = NULL;
	a->db = NULL;
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
			       -1, &a->update, NULL) != SQLITE_OK) {
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
	aggs_clear(a);
	for (size_t i = 0; i < a->cap_aggs; i++)
		free(a->aggs[i].users);
	free(a->aggs);
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
	a->host = host;
	for (size_t i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "db") == 0) {
			free(a->path);
			a->path = strdup(opts[i].value);
		} else {
			snprintf(err, len, "unknown option '%s' (db)", opts[i].key);
			goto fail;
		}
	}
	if (a->path == NULL &&
	    asprintf(&a->path, "%s/analytics-%s.db", host->state_dir, host->worker) < 0)
		a->path = NULL;
	if (a->path == NULL) {
		snprintf(err, len, "out of memory");
		goto fail;
	}
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

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER, .name = "analytics", .version = PACKAGE_VERSION, .init = init,
    .handle = handle,	 .fini = fini,	      .handle_batch = handle_batch,
};
