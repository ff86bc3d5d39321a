/*
 * ledger_store.c - a binding's durable ledger, state_dir/NAME.db (SQLite,
 * WAL, synchronous=NORMAL), written by its ledger process only and read by
 * its workers when the filter in memory says an id may be there.
 *
 * Ids are written many at a time and read rarely, so they are kept as sorted
 * runs rather than a row each (a B-tree keyed by a hash dirties a page per
 * id, and its writes could not keep up with one worker).  Finished ids live
 * in generation tables, ids_G_I: generation I of length G ms
 * (idempotency_ttl / 8, at least a second) holds the ids that finished in
 * [I*G, (I+1)*G).  An id's key (the first 16 bytes of its SHA-256) names one
 * of SHARDS shards by its top bits; a row of a generation holds one run: n
 * ids of one shard, sorted, 24 bytes each (the key as two little-endian
 * 64-bit numbers, then finished-at ms * 2 + 1 if dead-lettered).  A write
 * adds a run per shard it touches; when a shard has RUNS_PER_TIER runs of
 * about one size, they are merged into one (size-tiered: an id is rewritten
 * about log4 of its shard's size times).  A lookup reads the runs of the
 * id's shard, a binary search in each.  Forgetting after idempotency_ttl
 * drops whole tables.  The table counts keeps how many ids each generation
 * holds per outcome, and the view processed_counts sums them for people and
 * scripts.  crashes counts the processes each job killed.
 */
#include "config.h"

#include <endian.h>
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
#define GENS_MAX	64 /* generation tables kept at once (a ttl change adds some) */
#define SHARD_BITS	6  /* 64 shards */
#define ENTRY_BYTES	24
#define RUNS_PER_TIER	4    /* this many runs of a size are merged into one */
#define RUNS_MAX	12   /* a shard's runs in a generation, at most */
#define STORE_CACHE_KIB 8192 /* the ledger process's page cache */
#define STORE_WAL_PAGES 8192 /* a checkpoint once the WAL holds this many pages (32 MiB) */
#define KP_STR_(x)	#x
#define KP_STR(x)	KP_STR_(x)

struct gen {
	int64_t len_ms, index;
	sqlite3_stmt *insert, *runs; /* prepared on first use */
};

struct kp_lstore {
	sqlite3 *db;
	char *path;
	int64_t ttl_ms, gen_ms;
	sqlite3_stmt *lookup, *crash_put, *count_put;
	sqlite3_blob *blob; /* during a lookup: moved from run to run with sqlite3_blob_reopen */
	char blob_table[64];
	struct gen gens[GENS_MAX];
	int n_gens;
};

/* One entry of a run, decoded. */
struct entry {
	uint64_t h0, h1;
	int64_t v;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS crashes (\n"
    "  k BLOB PRIMARY KEY, event_id TEXT NOT NULL,\n"
    "  count INTEGER NOT NULL, last_signal TEXT NOT NULL) WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS counts (\n"
    "  gen TEXT, outcome TEXT, n INTEGER NOT NULL, first_ms INTEGER, last_ms INTEGER,\n"
    "  PRIMARY KEY (gen, outcome)) WITHOUT ROWID;\n"
    "CREATE VIEW IF NOT EXISTS processed_counts AS SELECT outcome, sum(n) AS n,\n"
    "  min(first_ms) AS first_ms, max(last_ms) AS last_ms FROM counts GROUP BY outcome;\n"
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;\n";

/* Runs sql; -1, logged with the file name, on failure. */
static int exec(struct kp_lstore *st, const char *sql)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		kp_log(KP_ERROR, "%s: %s", st->path, sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* The shard an id falls in, from its first 64 bits. */
static unsigned shard_of(uint64_t h0)
{
	return (unsigned)(h0 >> (64 - SHARD_BITS));
}

/* An entry as it is stored: id and value, little-endian. */
static void entry_put(unsigned char *p, const struct entry *e)
{
	uint64_t x[3] = {htole64(e->h0), htole64(e->h1), htole64((uint64_t)e->v)};

	memcpy(p, x, ENTRY_BYTES);
}

/* An entry as entry_put() stored it. */
static void entry_get(const unsigned char *p, struct entry *e)
{
	uint64_t x[3];

	memcpy(x, p, ENTRY_BYTES);
	e->h0 = le64toh(x[0]);
	e->h1 = le64toh(x[1]);
	e->v = (int64_t)le64toh(x[2]);
}

/* Orders two ids as the shards keep them. */
static int key_cmp(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
	if (a0 != b0)
		return a0 < b0 ? -1 : 1;
	return (a1 > b1) - (a1 < b1);
}

/* qsort order of entries: by id. */
static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return key_cmp(x->h0, x->h1, y->h0, y->h1);
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

/* Makes the view runs (table, rowid, shard, n of every run) over the generations there are. */
static int views_make(struct kp_lstore *st)
{
	char *sql = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sql, &len);
	int rc;

	if (f == NULL)
		return -1;
	fputs("DROP VIEW IF EXISTS runs; CREATE VIEW runs AS ", f);
	if (st->n_gens == 0)
		fputs("SELECT NULL AS t, NULL AS r, NULL AS shard, NULL AS n WHERE 0", f);
	for (int i = 0; i < st->n_gens; i++)
		fprintf(f,
			"%sSELECT 'ids_%" PRId64 "_%" PRId64 "' AS t, rowid AS r, shard, n FROM "
			"ids_%" PRId64 "_%" PRId64,
			i ? " UNION ALL " : "", st->gens[i].len_ms, st->gens[i].index,
			st->gens[i].len_ms, st->gens[i].index);
	fputs(";", f);
	fclose(f);
	rc = exec(st, sql);
	free(sql);
	return rc;
}

/* The generation table a finish time goes in, made if needed; NULL on error. */
static struct gen *gen_for(struct kp_lstore *st, int64_t at_ms)
{
	int64_t index = at_ms / st->gen_ms;
	char sql[320];

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
		 " (shard INTEGER NOT NULL, n INTEGER NOT NULL, keys BLOB NOT NULL);"
		 "CREATE INDEX IF NOT EXISTS ids_%" PRId64 "_%" PRId64 "_shard ON ids_%" PRId64
		 "_%" PRId64 " (shard)",
		 st->gen_ms, index, st->gen_ms, index, st->gen_ms, index);
	if (exec(st, sql) < 0)
		return NULL;
	st->gens[st->n_gens++] = (struct gen){.len_ms = st->gen_ms, .index = index};
	if (views_make(st) < 0)
		return NULL;
	return &st->gens[st->n_gens - 1];
}

/* The number of a signal named as kp_signame() names it ("SIGSEGV"); 0 if none is. */
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
 * crashes by offset, and then for a while a row per id: their rows move into
 * runs, keyed as today, so an upgrade forgets nothing.
 */
static int migrate(struct kp_lstore *st)
{
	sqlite3_stmt *q = NULL;
	struct kp_lrec *recs = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (sqlite3_prepare_v2(st->db, "SELECT event_id, outcome, processed_at FROM processed", -1,
			       &q, NULL) != SQLITE_OK)
		return 0; /* no old table */
	while (sqlite3_step(q) == SQLITE_ROW) {
		if (n == cap) {
			void *g = realloc(recs, (cap = cap ? 2 * cap : 1024) * sizeof(*recs));
			if (g == NULL) {
				rc = -1;
				break;
			}
			recs = g;
		}
		kp_ledger_id((const char *)sqlite3_column_text(q, 0), &recs[n].id);
		recs[n].at_ms = sqlite3_column_int64(q, 2);
		recs[n].outcome = strcmp((const char *)sqlite3_column_text(q, 1), "done") == 0
				      ? KP_L_DONE
				      : KP_L_DEAD;
		n++;
	}
	sqlite3_finalize(q);
	if (rc == 0 && n > 0)
		rc = kp_lstore_write(st, recs, n);
	free(recs);
	if (rc == 0)
		rc = exec(st, "DROP TABLE processed");
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
	sqlite3_stmt *q;

	for (int64_t until = kp_mono_ms() + BUSY_TIMEOUT_MS;
	     (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && kp_mono_ms() < until;) {
		rc = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
				  NULL, NULL, NULL);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(20);
	}
	/* Checkpoints (each of which waits for the disk twice) once the WAL holds
	 * STORE_WAL_PAGES, not SQLite's 1,000. */
	if (rc != SQLITE_OK || exec(st, "PRAGMA cache_size = -" KP_STR(STORE_CACHE_KIB)) < 0 ||
	    exec(st, "PRAGMA wal_autocheckpoint = " KP_STR(STORE_WAL_PAGES)) < 0 ||
	    exec(st, "BEGIN IMMEDIATE") < 0)
		return -1;
	/* an old crashes table (topic, partition, offset, ...) makes way */
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
			       -1, SQLITE_PREPARE_PERSISTENT, &st->crash_put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(
		st->db,
		"INSERT INTO counts VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE "
		"SET n = n + ?3, first_ms = min(first_ms, ?4), last_ms = max(last_ms, "
		"?5)",
		-1, SQLITE_PREPARE_PERSISTENT, &st->count_put, NULL) != SQLITE_OK)
		goto fail;
	if (views_make(st) < 0 || migrate(st) < 0 || exec(st, "COMMIT") < 0)
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
	st->ttl_ms = ttl_ms;
	st->gen_ms = ttl_ms / GENS_PER_TTL > GEN_MIN_MS ? ttl_ms / GENS_PER_TTL : GEN_MIN_MS;
	if (sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	if (readonly ? gens_load(st) < 0 : setup(st) < 0)
		goto fail;
	if (sqlite3_prepare_v3(st->db, "SELECT t, r, n FROM runs WHERE shard = ?1", -1,
			       SQLITE_PREPARE_PERSISTENT, &st->lookup, NULL) != SQLITE_OK)
		goto fail;
	return st;
fail:
	snprintf(err, len, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : "cannot open");
	kp_lstore_close(st);
	return NULL;
}

/* Closes a store; NULL is fine. */
void kp_lstore_close(struct kp_lstore *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < st->n_gens; i++) {
		sqlite3_finalize(st->gens[i].insert);
		sqlite3_finalize(st->gens[i].runs);
	}
	sqlite3_blob_close(st->blob);
	sqlite3_finalize(st->lookup);
	sqlite3_finalize(st->crash_put);
	sqlite3_finalize(st->count_put);
	sqlite3_close(st->db);
	free(st->path);
	free(st);
}

/*
 * The statement fmt makes for generation g, prepared once into *s; NULL,
 * logged, if it cannot be.
 */
static sqlite3_stmt *gen_stmt(struct kp_lstore *st, struct gen *g, sqlite3_stmt **s,
			      const char *fmt)
{
	char sql[256];

	if (*s == NULL) {
		snprintf(sql, sizeof(sql), fmt, g->len_ms, g->index);
		if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, s, NULL) !=
		    SQLITE_OK) {
			kp_log(KP_ERROR, "%s: %s", st->path, sqlite3_errmsg(st->db));
			return NULL;
		}
	}
	return *s;
}

/* Adds a run of n sorted entries to shard of generation g; -1 on error. */
static int run_put(struct kp_lstore *st, struct gen *g, unsigned shard, const struct entry *e,
		   size_t n)
{
	sqlite3_stmt *ins = gen_stmt(st, g, &g->insert,
				     "INSERT INTO ids_%" PRId64 "_%" PRId64
				     " (shard, n, keys) VALUES (?1, ?2, ?3)");
	unsigned char *blob = malloc(n * ENTRY_BYTES);
	int rc;

	if (ins == NULL || blob == NULL) {
		free(blob);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		entry_put(blob + i * ENTRY_BYTES, &e[i]);
	sqlite3_bind_int(ins, 1, (int)shard);
	sqlite3_bind_int64(ins, 2, (int64_t)n);
	sqlite3_bind_blob(ins, 3, blob, (int)(n * ENTRY_BYTES), free);
	rc = sqlite3_step(ins);
	sqlite3_reset(ins);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Keeps one entry per key, in place: a done outcome over a dead-lettered one
 * (a replay that succeeded), else the first.  Returns how many are left.
 */
static size_t dedupe(struct entry *e, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (o > 0 && e[o - 1].h0 == e[i].h0 && e[o - 1].h1 == e[i].h1) {
			if ((e[o - 1].v & 1) && !(e[i].v & 1))
				e[o - 1] = e[i];
			continue;
		}
		e[o++] = e[i];
	}
	return o;
}

struct run {
	int64_t rowid, n;
};

/* qsort order of runs: the smallest first. */
static int run_size_cmp(const void *a, const void *b)
{
	const struct run *x = a, *y = b;

	return (x->n > y->n) - (x->n < y->n);
}

/*
 * Size-tiered merging of one shard of g: while RUNS_PER_TIER runs are no
 * bigger than four times the smallest, they become one (and while there are
 * more than RUNS_MAX runs, the smaller half does).  Returns 1 when it merged,
 * 0 when there was nothing to merge, -1 on error.
 */
static int shard_merge_once(struct kp_lstore *st, struct gen *g, unsigned shard)
{
	sqlite3_stmt *q = gen_stmt(st, g, &g->runs,
				   "SELECT rowid, n FROM ids_%" PRId64 "_%" PRId64
				   " WHERE shard = ?1 ORDER BY n LIMIT 64");
	struct run runs[64];
	size_t nr = 0, take, total = 0;

	if (q == NULL)
		return -1;
	sqlite3_bind_int(q, 1, (int)shard);
	while (sqlite3_step(q) == SQLITE_ROW && nr < 64)
		runs[nr++] = (struct run){sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1)};
	sqlite3_reset(q);
	qsort(runs, nr, sizeof(*runs), run_size_cmp);
	for (take = 0; take < nr && runs[take].n <= 4 * runs[0].n; take++)
		total += (size_t)runs[take].n;
	if (take < RUNS_PER_TIER && nr <= RUNS_MAX)
		return 0;
	if (take < RUNS_PER_TIER) /* too many tiers: merge the smaller half */
		for (total = 0, take = 0; take < (nr + 1) / 2; take++)
			total += (size_t)runs[take].n;

	struct entry *e = malloc(total * sizeof(*e));
	char sql[160];
	size_t n = 0;
	int rc = 0;

	if (e == NULL)
		return -1;
	for (size_t i = 0; i < take && rc == 0; i++) {
		sqlite3_stmt *r;
		snprintf(sql, sizeof(sql),
			 "SELECT keys FROM ids_%" PRId64 "_%" PRId64 " WHERE rowid = ?1", g->len_ms,
			 g->index);
		if (sqlite3_prepare_v2(st->db, sql, -1, &r, NULL) != SQLITE_OK) {
			rc = -1;
			break;
		}
		sqlite3_bind_int64(r, 1, runs[i].rowid);
		if (sqlite3_step(r) == SQLITE_ROW) {
			const unsigned char *b = sqlite3_column_blob(r, 0);
			size_t m = (size_t)sqlite3_column_bytes(r, 0) / ENTRY_BYTES;
			for (size_t k = 0; k < m && n < total; k++)
				entry_get(b + k * ENTRY_BYTES, &e[n++]);
		}
		sqlite3_finalize(r);
		snprintf(sql, sizeof(sql),
			 "DELETE FROM ids_%" PRId64 "_%" PRId64 " WHERE rowid = %" PRId64,
			 g->len_ms, g->index, runs[i].rowid);
		if (rc == 0 && exec(st, sql) < 0)
			rc = -1;
	}
	if (rc == 0) {
		qsort(e, n, sizeof(*e), entry_cmp);
		rc = run_put(st, g, shard, e, dedupe(e, n));
	}
	free(e);
	return rc < 0 ? -1 : 1;
}

/* Merges a shard's runs until one is left or merging no longer pays; -1 on error. */
static int shard_merge(struct kp_lstore *st, struct gen *g, unsigned shard)
{
	int rc;

	while ((rc = shard_merge_once(st, g, shard)) == 1)
		;
	return rc;
}

/* qsort order of records: by id. */
static int rec_cmp(const void *a, const void *b)
{
	const struct kp_lrec *x = a, *y = b;

	return key_cmp(x->id.h[0], x->id.h[1], y->id.h[0], y->id.h[1]);
}

/* Adds how many ids of an outcome a generation received; -1 on error. */
static int count_add(struct kp_lstore *st, const struct gen *g, const char *outcome, int64_t n,
		     int64_t first, int64_t last)
{
	char name[64];
	int rc;

	if (n == 0)
		return 0;
	snprintf(name, sizeof(name), "ids_%" PRId64 "_%" PRId64, g->len_ms, g->index);
	sqlite3_bind_text(st->count_put, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st->count_put, 2, outcome, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st->count_put, 3, n);
	sqlite3_bind_int64(st->count_put, 4, first);
	sqlite3_bind_int64(st->count_put, 5, last);
	rc = sqlite3_step(st->count_put);
	sqlite3_reset(st->count_put);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Writes the ids of one generation (recs sorted by key), a run per shard,
 * merging what grew; -1 on error.
 */
static int write_gen(struct kp_lstore *st, struct gen *g, const struct kp_lrec *recs, size_t n,
		     struct entry *e)
{
	int64_t cnt[2] = {0, 0}, first[2] = {INT64_MAX, INT64_MAX}, last[2] = {0, 0};

	for (size_t i = 0; i < n;) {
		unsigned shard = shard_of(recs[i].id.h[0]);
		size_t m = 0;
		for (; i < n && shard_of(recs[i].id.h[0]) == shard; i++) {
			const struct kp_lrec *r = &recs[i];
			int dead = r->outcome == KP_L_DEAD;
			e[m++] = (struct entry){r->id.h[0], r->id.h[1], r->at_ms * 2 + dead};
			cnt[dead]++;
			if (r->at_ms < first[dead])
				first[dead] = r->at_ms;
			if (r->at_ms > last[dead])
				last[dead] = r->at_ms;
		}
		if (run_put(st, g, shard, e, dedupe(e, m)) < 0 || shard_merge(st, g, shard) < 0)
			return -1;
	}
	if (count_add(st, g, "done", cnt[0], first[0], last[0]) < 0 ||
	    count_add(st, g, "dead-lettered", cnt[1], first[1], last[1]) < 0)
		return -1;
	return 0;
}

/* qsort order of records: by generation (gen_ms wide), then by id. */
static int rec_gen_cmp(const void *a, const void *b, void *gen_ms)
{
	const struct kp_lrec *x = a, *y = b;
	int64_t gx = x->at_ms / *(int64_t *)gen_ms, gy = y->at_ms / *(int64_t *)gen_ms;

	if (gx != gy)
		return (gx > gy) - (gx < gy);
	return rec_cmp(a, b);
}

/*
 * Writes n finished ids in one transaction.  0 when committed; -1 on error,
 * and then nothing was written.
 */
int kp_lstore_write(struct kp_lstore *st, const struct kp_lrec *recs, size_t n)
{
	struct kp_lrec *sorted = malloc(n * sizeof(*sorted));
	struct entry *e = malloc(n * sizeof(*e));
	bool own = sqlite3_get_autocommit(st->db); /* else within the caller's transaction */
	int rc = 0;

	if (sorted == NULL || e == NULL || (own && exec(st, "BEGIN IMMEDIATE") < 0)) {
		free(sorted);
		free(e);
		return -1;
	}
	memcpy(sorted, recs, n * sizeof(*sorted));
	qsort_r(sorted, n, sizeof(*sorted), rec_gen_cmp, &st->gen_ms);
	for (size_t i = 0; i < n && rc == 0;) {
		struct gen *g = gen_for(st, sorted[i].at_ms);
		int64_t index = sorted[i].at_ms / st->gen_ms;
		size_t j = i;
		while (j < n && sorted[j].at_ms / st->gen_ms == index)
			j++;
		rc = g ? write_gen(st, g, sorted + i, j - i, e) : -1;
		i = j;
	}
	free(sorted);
	free(e);
	if (!own)
		return rc;
	if (rc < 0 || exec(st, "COMMIT") < 0) {
		kp_log(KP_ERROR, "%s: %s", st->path, sqlite3_errmsg(st->db));
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* Looks for a key in one run (a blob of n entries), by binary search; 1 found (*v), 0 not, -1
 * error. */
static int run_find(struct kp_lstore *st, const char *table, int64_t rowid, int64_t n,
		    const struct kp_id *id, int64_t *v)
{
	unsigned char buf[ENTRY_BYTES];
	struct entry e;
	int64_t lo = 0, hi = n - 1;

	if (st->blob && strcmp(st->blob_table, table) != 0) {
		sqlite3_blob_close(st->blob);
		st->blob = NULL;
	}
	if (st->blob == NULL) {
		if (sqlite3_blob_open(st->db, "main", table, "keys", rowid, 0, &st->blob) !=
		    SQLITE_OK)
			return -1;
		snprintf(st->blob_table, sizeof(st->blob_table), "%s", table);
	} else if (sqlite3_blob_reopen(st->blob, rowid) != SQLITE_OK) {
		sqlite3_blob_close(st->blob);
		st->blob = NULL;
		return -1;
	}
	while (lo <= hi) {
		int64_t mid = lo + (hi - lo) / 2;
		int c;
		if (sqlite3_blob_read(st->blob, buf, ENTRY_BYTES, (int)(mid * ENTRY_BYTES)) !=
		    SQLITE_OK)
			return -1;
		entry_get(buf, &e);
		c = key_cmp(id->h[0], id->h[1], e.h0, e.h1);
		if (c == 0) {
			*v = e.v;
			return 1;
		}
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return 0;
}

/*
 * What the store knows of id among ids that finished since since_ms:
 * KP_L_DONE (if any copy was done), KP_L_DEAD, 0 for nothing, -1 on error.
 */
int kp_lstore_lookup(struct kp_lstore *st, const struct kp_id *id, int64_t since_ms)
{
	int rc, found = 0, f = 0;

	/* The runs and their blobs are read in one snapshot (the statement's read
	 * transaction); the blob is closed after, so the next lookup sees what
	 * the ledger process wrote since. */
	sqlite3_bind_int(st->lookup, 1, (int)shard_of(id->h[0]));
	while ((rc = sqlite3_step(st->lookup)) == SQLITE_ROW) {
		int64_t v;
		f = run_find(st, (const char *)sqlite3_column_text(st->lookup, 0),
			     sqlite3_column_int64(st->lookup, 1),
			     sqlite3_column_int64(st->lookup, 2), id, &v);
		if (f < 0)
			break;
		if (f && v >= since_ms * 2 && found != KP_L_DONE)
			found = v & 1 ? KP_L_DEAD : KP_L_DONE;
	}
	sqlite3_reset(st->lookup);
	sqlite3_blob_close(st->blob);
	st->blob = NULL;
	if (f < 0 || rc != SQLITE_DONE) {
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
	sqlite3_bind_text(st->crash_put, 4,
			  c->signal ? kp_signame(c->signal, sig, sizeof(sig)) : "exit", -1,
			  SQLITE_TRANSIENT);
	rc = sqlite3_step(st->crash_put);
	sqlite3_reset(st->crash_put);
	if (rc != SQLITE_DONE) {
		kp_log(KP_ERROR, "%s: %s", st->path, sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* Opens a transaction that kp_lstore_write() and kp_lstore_meta_put() join; -1 on error. */
int kp_lstore_begin(struct kp_lstore *st)
{
	return exec(st, "BEGIN IMMEDIATE");
}

/* Commits it; -1 on error, and then none of it was written. */
int kp_lstore_commit(struct kp_lstore *st)
{
	if (exec(st, "COMMIT") < 0) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* Sets a value of the table meta (where the ledger topic was read up to, ...); -1 on error. */
int kp_lstore_meta_put(struct kp_lstore *st, const char *key, const char *value)
{
	sqlite3_stmt *q;
	int rc;

	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO meta VALUES (?1, ?2)", -1, &q,
			       NULL) != SQLITE_OK) {
		kp_log(KP_ERROR, "%s: %s", st->path, sqlite3_errmsg(st->db));
		return -1;
	}
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* A value of the table meta into value: 1 when there is one, 0 when not, -1 on error. */
int kp_lstore_meta_get(struct kp_lstore *st, const char *key, char *value, size_t len)
{
	sqlite3_stmt *q;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT v FROM meta WHERE k = ?1", -1, &q, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		snprintf(value, len, "%s", (const char *)sqlite3_column_text(q, 0) ?: "");
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
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

/* Calls fn (if not NULL) for every id in the store; returns how many, or -1 on error. */
int64_t kp_lstore_each_id(struct kp_lstore *st, void (*fn)(void *arg, const struct kp_id *id),
			  void *arg)
{
	int64_t n = 0;

	for (int i = 0; i < st->n_gens; i++) {
		sqlite3_stmt *q;
		char sql[160];
		int rc;

		snprintf(sql, sizeof(sql),
			 fn ? "SELECT keys FROM ids_%" PRId64 "_%" PRId64
			    : "SELECT sum(n) FROM ids_%" PRId64 "_%" PRId64,
			 st->gens[i].len_ms, st->gens[i].index);
		if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK)
			return -1;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			const unsigned char *b = sqlite3_column_blob(q, 0);
			size_t m = (size_t)sqlite3_column_bytes(q, 0) / ENTRY_BYTES;
			if (fn == NULL) {
				n += sqlite3_column_int64(q, 0);
				continue;
			}
			for (size_t k = 0; k < m; k++) {
				struct entry e;
				entry_get(b + k * ENTRY_BYTES, &e);
				fn(arg, &(struct kp_id){{e.h0, e.h1}});
			}
			n += (int64_t)m;
		}
		sqlite3_finalize(q);
		if (rc != SQLITE_DONE)
			return -1;
	}
	return n;
}

/*
 * Drops the generations that ended idempotency_ttl before now_ms.  Returns
 * how many were dropped, or -1 on error.
 */
int kp_lstore_prune(struct kp_lstore *st, int64_t now_ms)
{
	char sql[256];
	int dropped = 0;

	for (int i = 0; i < st->n_gens;) {
		struct gen *g = &st->gens[i];
		if ((g->index + 1) * g->len_ms > now_ms - st->ttl_ms) {
			i++;
			continue;
		}
		sqlite3_finalize(g->insert);
		sqlite3_finalize(g->runs);
		snprintf(sql, sizeof(sql),
			 "DROP TABLE IF EXISTS ids_%" PRId64 "_%" PRId64 ";"
			 "DELETE FROM counts WHERE gen = 'ids_%" PRId64 "_%" PRId64 "'",
			 g->len_ms, g->index, g->len_ms, g->index);
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
