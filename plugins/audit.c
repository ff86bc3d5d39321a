/*
 * audit.c - the audit handler: each job becomes an entry of a tamper-evident
 * SQLite log (auditlog.h): {"userId","action","resource","details"}, or the
 * {"type","data","metadata"} envelope, where action defaults to type.  The
 * file is written with synchronous=FULL: an entry the handler answered for
 * survives a power loss.  The workers of a binding share the file; each
 * batch is one transaction that takes the chain's end and extends it.
 * An event id already in the log is a duplicate and adds nothing.
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

#include "auditlog.h"
#include "dbopen.h"
#include "kpool_plugin.h"
#include "util.h"

#define MAX_BATCH 64

struct audit {
	char *path;
	sqlite3 *db;
	sqlite3_stmt *last, *insert;
};

/* One job as an entry; its strings belong to it. */
struct entry {
	struct audit_row r;
	char *user_id, *action, *resource, *details, *job;
};

static void entry_free(struct entry *e)
{
	free(e->user_id);
	free(e->action);
	free(e->resource);
	free(e->details);
	free(e->job);
	memset(e, 0, sizeof(*e));
}

/* A field as text: a string as it is, a number as digits, anything else as compact JSON. */
static char *text_of(json_t *v)
{
	if (v == NULL || json_is_null(v))
		return NULL;
	if (json_is_string(v))
		return strdup(json_string_value(v));
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static bool entry_make(const struct kpool_job *job, struct entry *e, char *reason)
{
	json_error_t jerr;
	json_t *root = json_loadb(job->value, job->value_len, 0, &jerr), *body, *meta, *action;
	int64_t at = -1;

	memset(e, 0, sizeof(*e));
	if (job->value_len >= AUDIT_TEXT_MAX) { /* the chain's lengths are 4 bytes */
		snprintf(reason, KPOOL_REASON_MAX, "job is too long for the audit log");
		json_decref(root);
		return false;
	}
	if (!json_is_object(root)) {
		snprintf(reason, KPOOL_REASON_MAX, "job is not a JSON object");
		json_decref(root);
		return false;
	}
	body = util_job_body(root);
	meta = json_object_get(root, "metadata");
	action = json_object_get(body, "action");
	if (!json_is_string(action))
		action = json_object_get(root, "type");
	if (!json_is_string(action))
		action = json_object_get(root, "eventType");
	if (!json_is_string(action) || json_string_length(action) == 0) {
		snprintf(reason, KPOOL_REASON_MAX,
			 "no action: the job has neither \"action\" nor \"type\"");
		json_decref(root);
		return false;
	}
	e->action = strdup(json_string_value(action));
	e->user_id = text_of(json_object_get(body, "userId"));
	e->resource = text_of(json_object_get(body, "resource"));
	e->details = text_of(json_object_get(body, "details"));
	e->job = strndup(job->value, job->value_len);
	at = util_time_ms(json_object_get(meta, "timestamp"));
	if (at < 0)
		at = util_time_ms(json_object_get(body, "timestamp"));
	if (at < 0)
		at = job->timestamp_ms > 0 ? job->timestamp_ms : (int64_t)time(NULL) * 1000;
	json_decref(root);
	e->r = (struct audit_row){.at = at,
				  .event_id = job->event_id,
				  .user_id = e->user_id,
				  .action = e->action,
				  .resource = e->resource,
				  .details = e->details,
				  .job = e->job};
	if (e->action == NULL || e->job == NULL) {
		snprintf(reason, KPOOL_REASON_MAX, "out of memory");
		entry_free(e);
		return false;
	}
	return true;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Appends the entries of a batch in one transaction; false with why if it failed. */
static bool append(struct audit *a, struct entry *e, bool *ok, size_t n, kpool_status *status,
		   char *why, size_t len)
{
	unsigned char prev[AUDIT_HASH_LEN] = {0}, h[AUDIT_HASH_LEN];
	int64_t seq = 0;
	int rc;

	if (sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_reset(a->last);
	rc = sqlite3_step(a->last);
	if (rc == SQLITE_ROW) {
		seq = sqlite3_column_int64(a->last, 0);
		if (sqlite3_column_bytes(a->last, 1) == AUDIT_HASH_LEN)
			memcpy(prev, sqlite3_column_blob(a->last, 1), AUDIT_HASH_LEN);
	} else if (rc != SQLITE_DONE) {
		goto fail_tx;
	}
	sqlite3_reset(a->last);
	for (size_t i = 0; i < n; i++) {
		if (!ok[i])
			continue;
		e[i].r.seq = seq + 1;
		if (audit_hash(prev, &e[i].r, h) < 0) {
			snprintf(why, len, "%s: cannot compute the hash of an entry", a->path);
			sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
			return false;
		}
		sqlite3_reset(a->insert);
		sqlite3_bind_int64(a->insert, 1, e[i].r.seq);
		sqlite3_bind_text(a->insert, 2, e[i].r.event_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(a->insert, 3, e[i].r.at);
		bind_text(a->insert, 4, e[i].r.user_id);
		bind_text(a->insert, 5, e[i].r.action);
		bind_text(a->insert, 6, e[i].r.resource);
		bind_text(a->insert, 7, e[i].r.details);
		bind_text(a->insert, 8, e[i].r.job);
		sqlite3_bind_blob(a->insert, 9, prev, AUDIT_HASH_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(a->insert, 10, h, AUDIT_HASH_LEN, SQLITE_STATIC);
		rc = sqlite3_step(a->insert);
		sqlite3_reset(a->insert);
		if (rc != SQLITE_DONE)
			goto fail_tx;
		status[i] = KPOOL_DONE;
		if (sqlite3_changes(a->db) == 0)
			continue; /* the event id is in the log already: a redelivery */
		seq++;
		memcpy(prev, h, AUDIT_HASH_LEN);
	}
	if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail_tx;
	return true;
fail_tx:
	snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
	sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
	return false;
fail:
	snprintf(why, len, "%s: %s", a->path, sqlite3_errmsg(a->db));
	return false;
}

static void close_log(struct audit *a);
static int open_log(struct audit *a, char *err, size_t len);

static void handle_batch(void *state, const struct kpool_job *const *jobs, size_t n,
			 kpool_status *status, char (*reason)[KPOOL_REASON_MAX])
{
	struct audit *a = state;
	struct entry e[MAX_BATCH];
	bool ok[MAX_BATCH];
	char why[KPOOL_REASON_MAX];

	if (a->db == NULL && open_log(a, why, sizeof(why)) < 0) {
		close_log(a);
		for (size_t i = 0; i < n; i++) {
			status[i] = KPOOL_RETRY;
			snprintf(reason[i], KPOOL_REASON_MAX, "%s", why);
		}
		return;
	}
	for (size_t done = 0; done < n; done += MAX_BATCH) {
		size_t m = n - done < MAX_BATCH ? n - done : MAX_BATCH;
		for (size_t i = 0; i < m; i++) {
			reason[done + i][0] = '\0';
			ok[i] = entry_make(jobs[done + i], &e[i], reason[done + i]);
			status[done + i] = ok[i] ? KPOOL_RETRY : KPOOL_FAIL;
		}
		if (!append(a, e, ok, m, status + done, why, sizeof(why)))
			for (size_t i = 0; i < m; i++)
				if (ok[i]) { /* nothing of the batch was written */
					status[done + i] = KPOOL_RETRY;
					snprintf(reason[done + i], KPOOL_REASON_MAX, "%s", why);
				}
		for (size_t i = 0; i < m; i++)
			if (ok[i])
				entry_free(&e[i]);
	}
}

static kpool_status handle(void *state, const struct kpool_job *job, char reason[KPOOL_REASON_MAX])
{
	const struct kpool_job *const jobs[1] = {job};
	kpool_status st = KPOOL_FAIL;

	handle_batch(state, jobs, 1, &st, (char(*)[KPOOL_REASON_MAX])reason);
	return st;
}

static void close_log(struct audit *a)
{
	sqlite3_finalize(a->last);
	sqlite3_finalize(a->insert);
	sqlite3_close(a->db);
	a->last = a->insert = NULL;
	a->db = NULL;
}

static void audit_free(struct audit *a)
{
	if (a == NULL)
		return;
	close_log(a);
	free(a->path);
	free(a);
}

/* Opens the log; the workers of a binding may do so at the same moment. */
static int open_log(struct audit *a, char *err, size_t len)
{
	static const char *const setup[] = {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
					    AUDIT_SCHEMA};

	if ((a->db = db_open(a->path, setup, sizeof(setup) / sizeof(*setup), err, len)) == NULL)
		return -1;
	if (sqlite3_prepare_v2(a->db, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
			       -1, &a->last, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
		a->db,
		"INSERT INTO audit_log (seq, event_id, at, user_id, action, resource, "
		"details, job, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?) "
		"ON CONFLICT (event_id) DO NOTHING",
		-1, &a->insert, NULL) != SQLITE_OK) {
		snprintf(err, len, "db: %s: %s", a->path, sqlite3_errmsg(a->db));
		return -1;
	}
	return 0;
}

static void *init(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
		  char *err, size_t len)
{
	struct audit *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	if ((a->path = db_path(host, opts, n_opts, "audit", err, len)) == NULL)
		goto fail;
	/* The file is opened at the first job: kpoold -t creates nothing. */
	host->log(LOG_INFO, "audit: %s", a->path);
	return a;
fail:
	audit_free(a);
	return NULL;
}

static void fini(void *state)
{
	audit_free(state);
}

static const struct kpool_option_spec audit_options[] = {
    DB_OPTION("audit"),
    {.name = NULL},
};

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER,
    .name = "audit",
    .version = PACKAGE_VERSION,
    .init = init,
    .handle = handle,
    .fini = fini,
    .handle_batch = handle_batch,
    KPOOL_PLUGIN_OPTIONS(audit_options),
};
