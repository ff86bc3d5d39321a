/*
 * dedupe.c - the processed and crashes tables of one binding, in
 * state_dir/WORKER.db (SQLite, WAL mode, synchronous=NORMAL).
 *
 * Rows are written inside one open transaction that kp_dedupe_commit() ends;
 * the worker keeps the same rows in its shared-memory ring until then, so a
 * killed worker loses nothing its successor cannot write again.
 */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpoold.h"

#define BUSY_TIMEOUT_MS 10000

struct kp_dedupe {
	sqlite3 *db;
	sqlite3_stmt *seen, *insert, *crash_get, *crash_add, *prune, *begin, *begin_read, *commit;
	bool in_tx;	/* a read or write transaction is open */
	bool any_crash; /* skips the crash lookup while the table is empty */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS processed (\n"
    "  event_id     TEXT PRIMARY KEY,\n"
    "  topic        TEXT NOT NULL, partition INTEGER NOT NULL, \"offset\" INTEGER NOT NULL,\n"
    "  outcome      TEXT NOT NULL,\n"
    "  processed_at INTEGER NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS crashes (\n"
    "  topic TEXT, partition INTEGER, \"offset\" INTEGER, event_id TEXT,\n"
    "  count INTEGER NOT NULL, last_signal TEXT, PRIMARY KEY (topic, partition, \"offset\"));\n"
    "CREATE INDEX IF NOT EXISTS processed_at ON processed (processed_at);\n";

/*
 * WAL mode and the tables.  The workers of a binding open its file at the
 * same moment when they start; switching a new file to WAL answers BUSY at
 * once, without the busy handler, so that step is tried again for a while.
 */
static int setup(sqlite3 *db)
{
	int rc = SQLITE_BUSY;

	for (int64_t until = kp_mono_ms() + BUSY_TIMEOUT_MS;
	     (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && kp_mono_ms() < until;) {
		rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL,
				  NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, schema, NULL, NULL, NULL);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(20);
	}
	return rc;
}

/* Opens (creating if needed) a binding's database; NULL with err on failure. */
struct kp_dedupe *kp_dedupe_open(const char *path, char *err, size_t len)
{
	struct kp_dedupe *d = calloc(1, sizeof(*d));
	sqlite3_stmt *st;

	if (d == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(d->db, BUSY_TIMEOUT_MS);
	if (setup(d->db) != SQLITE_OK)
		goto fail;
#define PREP(s, sql)                                                                               \
	if (sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &d->s, NULL) !=          \
	    SQLITE_OK)                                                                             \
		goto fail;
	PREP(seen, "SELECT outcome = 'done' FROM processed WHERE event_id = ?1");
	/* A row is kept, unless a replayed job now succeeded where it was dead-lettered. */
	PREP(insert, "INSERT INTO processed VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_id) "
		     "DO UPDATE SET topic = ?2, partition = ?3, \"offset\" = ?4, outcome = ?5, "
		     "processed_at = ?6 WHERE outcome <> 'done' AND ?5 = 'done'");
	PREP(crash_get, "SELECT count, last_signal FROM crashes WHERE topic = ?1 AND partition = "
			"?2 AND \"offset\" = ?3");
	PREP(crash_add, "INSERT INTO crashes VALUES (?1, ?2, ?3, ?4, 1, ?5) "
			"ON CONFLICT DO UPDATE SET count = count + 1, last_signal = ?5");
	PREP(prune, "DELETE FROM processed WHERE processed_at < ?1");
	PREP(begin, "BEGIN IMMEDIATE"); /* take the write lock now: no upgrade deadlock */
	PREP(begin_read, "BEGIN");
	PREP(commit, "COMMIT");
#undef PREP
	if (sqlite3_prepare_v2(d->db, "SELECT EXISTS (SELECT 1 FROM crashes)", -1, &st, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			d->any_crash = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	return d;
fail:
	snprintf(err, len, "%s: %s", path, d->db ? sqlite3_errmsg(d->db) : "cannot open");
	kp_dedupe_close(d);
	return NULL;
}

/* Commits what is pending and closes the database; NULL is fine. */
void kp_dedupe_close(struct kp_dedupe *d)
{
	if (d == NULL)
		return;
	kp_dedupe_commit(d);
	sqlite3_finalize(d->seen);
	sqlite3_finalize(d->insert);
	sqlite3_finalize(d->crash_get);
	sqlite3_finalize(d->crash_add);
	sqlite3_finalize(d->prune);
	sqlite3_finalize(d->begin);
	sqlite3_finalize(d->begin_read);
	sqlite3_finalize(d->commit);
	sqlite3_close(d->db);
	free(d);
}

static int step_done(struct kp_dedupe *d, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		kp_log(KP_ERROR, "sqlite: %s", sqlite3_errmsg(d->db));
		return -1;
	}
	return 0;
}

static int tx_begin(struct kp_dedupe *d)
{
	if (d->in_tx)
		return 0;
	if (step_done(d, d->begin) < 0)
		return -1;
	d->in_tx = true;
	return 0;
}

/*
 * Lookups share one read transaction, which kp_dedupe_commit() ends: starting
 * one per lookup would take and drop the WAL read lock every time.  The
 * snapshot is as old as the last commit (at most KP_FLUSH_MS).
 */
static int read_begin(struct kp_dedupe *d)
{
	if (d->in_tx)
		return 0;
	if (step_done(d, d->begin_read) < 0)
		return -1;
	d->in_tx = true;
	return 0;
}

/*
 * 1 if the event id was handled before (in this transaction or earlier), 0 if
 * not, -1 on error.  done_only (a replayed job) counts only jobs that were done:
 * the dead-lettered copy of a job is what a replay means to run again.
 */
int kp_dedupe_seen(struct kp_dedupe *d, const char *event_id, bool done_only)
{
	int rc, done = 0;

	if (read_begin(d) < 0)
		return -1;

	sqlite3_bind_text(d->seen, 1, event_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(d->seen);
	if (rc == SQLITE_ROW)
		done = sqlite3_column_int(d->seen, 0);
	sqlite3_reset(d->seen);
	if (rc == SQLITE_ROW)
		return done || !done_only;
	if (rc == SQLITE_DONE)
		return 0;
	kp_log(KP_ERROR, "sqlite: %s", sqlite3_errmsg(d->db));
	return -1;
}

/* Adds a processed row to the open transaction (opening one); -1 on error. */
int kp_dedupe_record(struct kp_dedupe *d, const char *event_id, const char *topic,
		     int32_t partition, int64_t offset, enum kp_outcome outcome, int64_t at_ms)
{
	if (tx_begin(d) < 0)
		return -1;
	sqlite3_bind_text(d->insert, 1, event_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(d->insert, 2, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(d->insert, 3, partition);
	sqlite3_bind_int64(d->insert, 4, offset);
	sqlite3_bind_text(d->insert, 5, outcome == KP_OUT_DEAD ? "dead-lettered" : "done", -1,
			  SQLITE_STATIC);
	sqlite3_bind_int64(d->insert, 6, at_ms);
	return step_done(d, d->insert);
}

/*
 * Writes the finished jobs of a ring in one transaction (rows already there
 * are kept).  Returns 0 when committed; -1 on error, and then nothing was written.
 */
int kp_dedupe_record_ring(struct kp_dedupe *d, const struct kp_done *ring, uint32_t n,
			  const char (*topics)[KP_TOPIC_MAX], int n_topics)
{
	if (kp_dedupe_commit(d) < 0) /* a read transaction cannot become a write one */
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const struct kp_done *r = &ring[i];

		if (r->outcome == KP_OUT_SKIP || r->topic < 0 || r->topic >= n_topics)
			continue;
		if (kp_dedupe_record(d, r->event_id, topics[r->topic], r->partition, r->offset,
				     (enum kp_outcome)r->outcome, r->at_ms) < 0) {
			if (d->in_tx) {
				sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
				d->in_tx = false;
			}
			return -1;
		}
	}
	return kp_dedupe_commit(d);
}

/* Ends the open transaction, if any; -1 on error (the rows are then rolled back). */
int kp_dedupe_commit(struct kp_dedupe *d)
{
	if (!d->in_tx)
		return 0;
	d->in_tx = false;
	if (step_done(d, d->commit) < 0) {
		sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* How many workers this message has killed (0 if none), the last signal in sig; -1 on error. */
int kp_dedupe_crash_count(struct kp_dedupe *d, const char *topic, int32_t partition, int64_t offset,
			  char *sig, size_t siglen)
{
	int rc, n = 0;

	sig[0] = '\0';
	if (!d->any_crash)
		return 0;
	if (read_begin(d) < 0)
		return -1;
	sqlite3_bind_text(d->crash_get, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(d->crash_get, 2, partition);
	sqlite3_bind_int64(d->crash_get, 3, offset);
	rc = sqlite3_step(d->crash_get);
	if (rc == SQLITE_ROW) {
		n = sqlite3_column_int(d->crash_get, 0);
		snprintf(sig, siglen, "%s",
			 (const char *)sqlite3_column_text(d->crash_get, 1) ?: "");
	}
	sqlite3_reset(d->crash_get);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		kp_log(KP_ERROR, "sqlite: %s", sqlite3_errmsg(d->db));
		return -1;
	}
	return n;
}

/* Counts one more worker death on a message, committed at once; -1 on error. */
int kp_dedupe_crash_add(struct kp_dedupe *d, const char *topic, int32_t partition, int64_t offset,
			const char *event_id, const char *signal)
{
	if (kp_dedupe_commit(d) < 0)
		return -1;
	sqlite3_bind_text(d->crash_add, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(d->crash_add, 2, partition);
	sqlite3_bind_int64(d->crash_add, 3, offset);
	sqlite3_bind_text(d->crash_add, 4, event_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(d->crash_add, 5, signal, -1, SQLITE_STATIC);
	if (step_done(d, d->crash_add) < 0)
		return -1;
	d->any_crash = true;
	return 0;
}

/* Deletes processed rows older than before_ms, committing first; returns rows deleted or -1. */
int kp_dedupe_prune(struct kp_dedupe *d, int64_t before_ms)
{
	if (kp_dedupe_commit(d) < 0)
		return -1;
	sqlite3_bind_int64(d->prune, 1, before_ms);
	if (step_done(d, d->prune) < 0)
		return -1;
	return sqlite3_changes(d->db);
}

/* Rows in the processed table, or -1 on error. */
int64_t kp_dedupe_count(struct kp_dedupe *d)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	if (sqlite3_prepare_v2(d->db, "SELECT count(*) FROM processed", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}
