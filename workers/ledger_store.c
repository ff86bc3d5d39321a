/*
 * ledger_store.c - a binding's durable ledger, state_dir/NAME.db (SQLite,
 * WAL, synchronous=NORMAL), written by its ledger process only and read by
 * its workers when the filter in memory says an id may be there.
 *
 * Finished ids live in generation tables, ids_G_I: generation I of length G
 * ms (idempotency_ttl / 8, at least a second) holds the ids that finished in
 * [I*G, (I+1)*G).  A row is the id's key (the first 16 bytes of its
 * SHA-256, as two integers; the first is the rowid, so a table is one
 * integer-keyed B-tree) and finished-at ms * 2 + (1 if dead-lettered):
 * about 30 bytes an id on disk.  Two ids whose keys share the first 64 bits
 * (for 100 million ids, a chance of 1 in 3,700) cannot both be kept: the
 * second is then not remembered, and a copy of it would be handled again.  Forgetting after
 * idempotency_ttl drops whole tables, so no row carries an index for its age and the write path
 * pays nothing for it. The view ids joins the generations; the view processed shows them as
 * (outcome, processed_at) for people and scripts.  crashes counts the
 * processes each job killed.
 */
#include "config.h"

#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kpoold.h"
#include "ledger.h"

#define BUSY_TIMEOUT_MS 10000
#define GENS_PER_TTL	8
#define GEN_MIN_MS	1000
#define GENS_MAX	64    /* generation tables kept at once (a ttl change adds some) */
#define STORE_CACHE_KIB 32768 /* the ledger process's page cache */
#define STORE_WAL_PAGES 8192  /* a checkpoint once the WAL holds this many pages (32 MiB) */
#define KP_STR_(x)	#x
#define KP_STR(x)	KP_STR_(x)

struct gen {
	int64_t len_ms, index;
	sqlite3_stmt *insert; /* prepared on first use */
};

struct kp_lstore {
	sqlite3 *db;
	char *path;
	int64_t ttl_ms, gen_ms;
	bool readonly;
	sqlite3_stmt *lookup, *crash_put;
	struct gen gens[GENS_MAX];
	int n_gens;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS crashes (\n"
    "  k BLOB PRIMARY KEY, event_id TEXT NOT NULL,\n"
    "  count INTEGER NOT NULL, last_signal TEXT NOT NULL) WITHOUT ROWID;\n";

static int exec(struct kp_lstore *st, const char *sql)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		kp_log(KP_ERROR, "%s: %s", st->path, sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* Reads the generation tables there are from the schema. */
static int gens_load(struct kp_lstore *st)
{
	sqlite3_stmt *q;

	if (sqlite3_prepare_v2(st->db,
			       "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB "
			       "'ids_[0-9]*_[0-9]*' ORDER BY name",
			       -1, &q, NULL) != SQLITE_OK)
		return -1;
	st->n_gens = 0;
	while (sqlite3_step(q) == SQLITE_ROW && st->n_gens < GENS_MAX) {
		long long len, index;
		if (sscanf((const char *)sqlite3_column_text(q, 0), "ids_%lld_%lld", &len,
			   &index) == 2)
			st->gens[st->n_gens++] = (struct gen){.len_ms = len, .index = index};
	}
	sqlite3_finalize(q);
	return 0;
}

/* Makes the views ids and processed over the generation tables there are. */
static int views_make(struct kp_lstore *st)
{
	char *sql = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sql, &len);
	int rc;

	sqlite3_stmt *q;
	bool old_table = false; /* the previous version's, until migrate() drops it */

	if (f == NULL)
		return -1;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
			       "'processed'",
			       -1, &q, NULL) == SQLITE_OK) {
		old_table = sqlite3_step(q) == SQLITE_ROW;
		sqlite3_finalize(q);
	}
	if (!old_table)
		fputs("DROP VIEW IF EXISTS processed; ", f);
	fputs("DROP VIEW IF EXISTS ids; CREATE VIEW ids AS ", f);
	if (st->n_gens == 0)
		fputs("SELECT NULL AS k, NULL AS k2, NULL AS v WHERE 0", f);
	for (int i = 0; i < st->n_gens; i++)
		fprintf(f, "%sSELECT k, k2, v FROM ids_%" PRId64 "_%" PRId64,
			i ? " UNION ALL " : "", st->gens[i].len_ms, st->gens[i].index);
	fputs(";", f);
	if (!old_table)
		fputs("CREATE VIEW processed AS SELECT CASE v & 1 WHEN 0 THEN 'done' ELSE "
		      "'dead-lettered' END AS outcome, v >> 1 AS processed_at FROM ids;",
		      f);
	fclose(f);
	rc = exec(st, sql);
	free(sql);
	return rc;
}

/* The generation table a finish time goes in, made if needed; NULL on error. */
static struct gen *gen_for(struct kp_lstore *st, int64_t at_ms)
{
	int64_t index = at_ms / st->gen_ms;
	char sql[256];

	for (int i = 0; i < st->n_gens; i++)
		if (st->gens[i].len_ms == st->gen_ms && st->gens[i].index == index)
			return &st->gens[i];
	if (st->n_gens == GENS_MAX) { /* only after many ttl changes: put it in the newest */
		kp_log(KP_WARNING, "%s: %d generation tables; adding to the newest", st->path,
		       GENS_MAX);
		return &st->gens[st->n_gens - 1];
	}
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE IF NOT EXISTS ids_%" PRId64 "_%" PRId64
		 " (k INTEGER PRIMARY KEY, k2 INTEGER NOT NULL, v INTEGER NOT NULL)",
		 st->gen_ms, index);
	if (exec(st, sql) < 0)
		return NULL;
	st->gens[st->n_gens++] = (struct gen){.len_ms = st->gen_ms, .index = index};
	if (views_make(st) < 0)
		return NULL;
	return &st->gens[st->n_gens - 1];
}

static int signal_number(const char *name)
{
	char buf[32];

	for (int s = 1; s < NSIG; s++)
		if (strcmp(kp_signame(s, buf, sizeof(buf)), name) == 0)
			return s;
	return 0;
}

/*
 * The ledger of kpool 0.x kept event ids as text in a table processed and
 * crashes by offset: its rows move into the generation tables, keyed as
 * today, so an upgrade forgets nothing.
 */
static int migrate(struct kp_lstore *st)
{
	sqlite3_stmt *q = NULL;
	struct kp_lrec rec = {0};
	int rc = 0;

	if (sqlite3_prepare_v2(st->db, "SELECT event_id, outcome, processed_at FROM processed", -1,
			       &q, NULL) != SQLITE_OK)
		return 0; /* no old table */
	while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
		struct gen *g;
		kp_ledger_id((const char *)sqlite3_column_text(q, 0), &rec.id);
		rec.at_ms = sqlite3_column_int64(q, 2);
		rec.outcome = strcmp((const char *)sqlite3_column_text(q, 1), "done") == 0
				  ? KP_L_DONE
				  : KP_L_DEAD;
		if ((g = gen_for(st, rec.at_ms)) == NULL)
			rc = -1;
		if (rc == 0) {
			char sql[160];
			sqlite3_stmt *ins;
			snprintf(sql, sizeof(sql),
				 "INSERT OR IGNORE INTO ids_%" PRId64 "_%" PRId64
				 " VALUES (?1, ?3, ?2)",
				 g->len_ms, g->index);
			if (sqlite3_prepare_v2(st->db, sql, -1, &ins, NULL) != SQLITE_OK) {
				rc = -1;
				break;
			}
			sqlite3_bind_int64(ins, 1, (int64_t)rec.id.h[0]);
			sqlite3_bind_int64(ins, 3, (int64_t)rec.id.h[1]);
			sqlite3_bind_int64(ins, 2, rec.at_ms * 2 + (rec.outcome == KP_L_DEAD));
			if (sqlite3_step(ins) != SQLITE_DONE)
				rc = -1;
			sqlite3_finalize(ins);
		}
	}
	sqlite3_finalize(q);
	if (rc == 0)
		rc = exec(st, "DROP TABLE processed");
	if (rc == 0)
		rc = views_make(st);
	/* crashes by topic/partition/offset: keyed by event id now */
	if (rc == 0 &&
	    sqlite3_prepare_v2(st->db, "SELECT event_id, count, last_signal FROM old_crashes", -1,
			       &q, NULL) == SQLITE_OK) {
		while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
			struct kp_lcrash c = {0};
			snprintf(c.event_id, sizeof(c.event_id), "%s",
				 (const char *)sqlite3_column_text(q, 0) ?: "");
			kp_ledger_id(c.event_id, &c.id);
			c.count = sqlite3_column_int(q, 1);
			c.signal = signal_number((const char *)sqlite3_column_text(q, 2) ?: "");
			rc = kp_lstore_crash(st, &c);
		}
		sqlite3_finalize(q);
		if (rc == 0)
			rc = exec(st, "DROP TABLE old_crashes");
	}
	if (rc == 0)
		kp_log(KP_NOTICE, "%s: moved the ledger to this version's tables", st->path);
	return rc;
}

/*
 * WAL mode, the tables, and an old ledger's rows.  The processes of a binding
 * open its file at the same moment when they start; switching a new file to
 * WAL answers BUSY at once, without the busy handler, so that step is tried
 * again for a while.
 */
static int setup(struct kp_lstore *st)
{
	int rc = SQLITE_BUSY;

	for (int64_t until = kp_mono_ms() + BUSY_TIMEOUT_MS;
	     (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && kp_mono_ms() < until;) {
		rc = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
				  NULL, NULL, NULL);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(20);
	}
	/* A bigger page cache than SQLite's 2 MB: the ids of a generation are
	 * keyed by hash, so every insert lands on a random page. */
	/* ... and checkpoints (each of which waits for the disk twice) once the WAL
	 * holds STORE_WAL_PAGES, not SQLite's 1,000: a transaction of ids dirties
	 * hundreds of pages, which would make every one a checkpoint. */
	if (rc != SQLITE_OK || exec(st, "PRAGMA cache_size = -" KP_STR(STORE_CACHE_KIB)) < 0 ||
	    exec(st, "PRAGMA wal_autocheckpoint = " KP_STR(STORE_WAL_PAGES)) < 0 ||
	    exec(st, "BEGIN IMMEDIATE") < 0)
		return -1;
	/* an old crashes table (topic, partition, offset, ...) makes way */
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(st->db, "SELECT topic FROM crashes", -1, &q, NULL) == SQLITE_OK) {
		sqlite3_finalize(q);
		if (exec(st, "ALTER TABLE crashes RENAME TO old_crashes") < 0)
			goto fail;
	}
	if (exec(st, schema) < 0 || gens_load(st) < 0)
		goto fail;
	if (sqlite3_prepare_v3(st->db,
			       "INSERT INTO crashes VALUES (?1, ?2, ?3, ?4) ON CONFLICT (k) DO "
			       "UPDATE SET count = max(count, ?3), last_signal = ?4",
			       -1, SQLITE_PREPARE_PERSISTENT, &st->crash_put, NULL) != SQLITE_OK)
		goto fail;
	if (migrate(st) < 0 || views_make(st) < 0 || exec(st, "COMMIT") < 0)
		goto fail;
	return 0;
fail:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/*
 * Opens a binding's store: readonly for a worker's lookups (the file must
 * exist), else for its ledger process, creating and migrating it.  NULL with
 * err on failure.
 */
struct kp_lstore *kp_lstore_open(const char *path, bool readonly, int64_t ttl_ms, char *err,
				 size_t len)
{
	struct kp_lstore *st = calloc(1, sizeof(*st));
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

	if (st == NULL || (st->path = strdup(path)) == NULL) {
		free(st);
		snprintf(err, len, "out of memory");
		return NULL;
	}
	st->readonly = readonly;
	st->ttl_ms = ttl_ms;
	st->gen_ms = ttl_ms / GENS_PER_TTL > GEN_MIN_MS ? ttl_ms / GENS_PER_TTL : GEN_MIN_MS;
	if (sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	if (!readonly && setup(st) < 0)
		goto fail;
	if (sqlite3_prepare_v3(st->db, "SELECT v FROM ids WHERE k = ?1 AND k2 = ?2 AND v >= ?3", -1,
			       SQLITE_PREPARE_PERSISTENT, &st->lookup, NULL) != SQLITE_OK)
		goto fail;
	return st;
fail:
	snprintf(err, len, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : "cannot open");
	kp_lstore_close(st);
	return NULL;
}

static void gens_finalize(struct kp_lstore *st)
{
	for (int i = 0; i < st->n_gens; i++) {
		sqlite3_finalize(st->gens[i].insert);
		st->gens[i].insert = NULL;
	}
}

/* Closes a store; NULL is fine. */
void kp_lstore_close(struct kp_lstore *st)
{
	if (st == NULL)
		return;
	gens_finalize(st);
	sqlite3_finalize(st->lookup);
	sqlite3_finalize(st->crash_put);
	sqlite3_close(st->db);
	free(st->path);
	free(st);
}

static int by_key_cmp(const void *a, const void *b)
{
	int64_t x = (int64_t)(*(const struct kp_lrec *const *)a)->id.h[0];
	int64_t y = (int64_t)(*(const struct kp_lrec *const *)b)->id.h[0];

	return (x > y) - (x < y);
}

static int insert_one(struct kp_lstore *st, const struct kp_lrec *r)
{
	struct gen *g = gen_for(st, r->at_ms);
	char sql[256];
	int rc;

	if (g == NULL)
		return -1;
	if (g->insert == NULL) {
		/* A row stays as it is, unless a replayed job now succeeded where it
		 * was dead-lettered. */
		snprintf(sql, sizeof(sql),
			 "INSERT INTO ids_%" PRId64 "_%" PRId64
			 " VALUES (?1, ?3, ?2) ON CONFLICT (k) DO UPDATE SET v = ?2 "
			 "WHERE k2 = ?3 AND v & 1 = 1 AND ?2 & 1 = 0",
			 g->len_ms, g->index);
		if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &g->insert,
				       NULL) != SQLITE_OK)
			return -1;
	}
	sqlite3_bind_int64(g->insert, 1, (int64_t)r->id.h[0]);
	sqlite3_bind_int64(g->insert, 3, (int64_t)r->id.h[1]);
	sqlite3_bind_int64(g->insert, 2, r->at_ms * 2 + (r->outcome == KP_L_DEAD));
	rc = sqlite3_step(g->insert);
	sqlite3_reset(g->insert);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Writes n finished ids in one transaction.  0 when committed; -1 on error,
 * and then nothing was written.
 */
int kp_lstore_write(struct kp_lstore *st, const struct kp_lrec *recs, size_t n)
{
	const struct kp_lrec **by_key = malloc(n * sizeof(*by_key));

	if (by_key == NULL)
		return -1;
	/* In key order, each insert lands next to the one before.  The order of
	 * two outcomes of one id does not matter: done is never undone. */
	for (size_t i = 0; i < n; i++)
		by_key[i] = &recs[i];
	qsort(by_key, n, sizeof(*by_key), by_key_cmp);
	if (exec(st, "BEGIN IMMEDIATE") < 0) {
		free(by_key);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (insert_one(st, by_key[i]) < 0) {
			free(by_key);
			kp_log(KP_ERROR, "%s: %s", st->path, sqlite3_errmsg(st->db));
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	free(by_key);
	if (exec(st, "COMMIT") < 0) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/*
 * What the store knows of id among ids that finished since since_ms:
 * KP_L_DONE (if any copy was done), KP_L_DEAD, 0 for nothing, -1 on error.
 */
int kp_lstore_lookup(struct kp_lstore *st, const struct kp_id *id, int64_t since_ms)
{
	int rc, found = 0;

	sqlite3_bind_int64(st->lookup, 1, (int64_t)id->h[0]);
	sqlite3_bind_int64(st->lookup, 2, (int64_t)id->h[1]);
	sqlite3_bind_int64(st->lookup, 3, since_ms * 2);
	while ((rc = sqlite3_step(st->lookup)) == SQLITE_ROW)
		if (found != KP_L_DONE)
			found = sqlite3_column_int64(st->lookup, 0) & 1 ? KP_L_DEAD : KP_L_DONE;
	sqlite3_reset(st->lookup);
	if (rc != SQLITE_DONE) {
		kp_log(KP_ERROR, "%s: %s", st->path, sqlite3_errmsg(st->db));
		return -1;
	}
	return found;
}

/* Counts a job's crashes (the count is the total so far); -1 on error. */
int kp_lstore_crash(struct kp_lstore *st, const struct kp_lcrash *c)
{
	char sig[32];
	int rc;

	sqlite3_bind_blob(st->crash_put, 1, c->id.h, sizeof(c->id.h), SQLITE_STATIC);
	sqlite3_bind_text(st->crash_put, 2, c->event_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st->crash_put, 3, c->count);
	sqlite3_bind_text(st->crash_put, 4, kp_signame(c->signal, sig, sizeof(sig)), -1,
			  SQLITE_TRANSIENT);
	rc = sqlite3_step(st->crash_put);
	sqlite3_reset(st->crash_put);
	if (rc != SQLITE_DONE) {
		kp_log(KP_ERROR, "%s: %s", st->path, sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* Calls fn for each job that killed processes; -1 on error. */
int kp_lstore_each_crash(struct kp_lstore *st,
			 void (*fn)(void *arg, const struct kp_id *id, int count, int signal),
			 void *arg)
{
	sqlite3_stmt *q;
	struct kp_id id;

	if (sqlite3_prepare_v2(st->db, "SELECT k, count, last_signal FROM crashes", -1, &q, NULL) !=
	    SQLITE_OK)
		return -1;
	while (sqlite3_step(q) == SQLITE_ROW) {
		if (sqlite3_column_bytes(q, 0) != sizeof(id.h))
			continue;
		memcpy(id.h, sqlite3_column_blob(q, 0), sizeof(id.h));
		fn(arg, &id, sqlite3_column_int(q, 1),
		   signal_number((const char *)sqlite3_column_text(q, 2) ?: ""));
	}
	sqlite3_finalize(q);
	return 0;
}

/* Calls fn for every id in the store; returns how many, or -1 on error. */
int64_t kp_lstore_each_id(struct kp_lstore *st, void (*fn)(void *arg, const struct kp_id *id),
			  void *arg)
{
	sqlite3_stmt *q;
	struct kp_id id;
	int64_t n = 0;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT k, k2 FROM ids", -1, &q, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		id.h[0] = (uint64_t)sqlite3_column_int64(q, 0);
		id.h[1] = (uint64_t)sqlite3_column_int64(q, 1);
		if (fn)
			fn(arg, &id);
		n++;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? n : -1;
}

/*
 * Drops the generations that ended idempotency_ttl before now_ms.  Returns
 * how many were dropped, or -1 on error.
 */
int kp_lstore_prune(struct kp_lstore *st, int64_t now_ms)
{
	char sql[128];
	int dropped = 0;

	for (int i = 0; i < st->n_gens;) {
		struct gen *g = &st->gens[i];
		if ((g->index + 1) * g->len_ms > now_ms - st->ttl_ms) {
			i++;
			continue;
		}
		sqlite3_finalize(g->insert);
		snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS ids_%" PRId64 "_%" PRId64,
			 g->len_ms, g->index);
		if (exec(st, sql) < 0)
			return -1;
		memmove(g, g + 1, (size_t)(st->n_gens - i - 1) * sizeof(*g));
		st->n_gens--;
		dropped++;
	}
	if (dropped && views_make(st) < 0)
		return -1;
	return dropped;
}

/* The store's size on disk (the file and its WAL), in bytes. */
int64_t kp_lstore_bytes(struct kp_lstore *st)
{
	char wal[4096 + 8];
	struct stat sb;
	int64_t n = 0;

	if (stat(st->path, &sb) == 0)
		n += sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", st->path);
	if (stat(wal, &sb) == 0)
		n += sb.st_size;
	return n;
}
