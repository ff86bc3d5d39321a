/*
 * ledger_test.c - the ledger: its durable store on a temporary file, and its
 * shared memory between forked processes (claims, siblings, a killed
 * claimer, the filter in front of the store), with a real ledger process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kpoold.h"

#define TTL_MS (7 * 86400000LL)

static char dir[] = "/tmp/kpool-ledger-test.XXXXXX";
static char path[256];
static int n_db;

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* Each test its own file. */
static int fresh(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "%s/w%d.db", dir, n_db++);
	return 0;
}

static struct kp_lrec rec(const char *event_id, int64_t at_ms, int outcome)
{
	struct kp_lrec r = {.at_ms = at_ms, .outcome = (uint8_t)outcome};

	kp_ledger_id(event_id, &r.id);
	return r;
}

static int lookup(struct kp_lstore *st, const char *event_id, int64_t since)
{
	struct kp_id id;

	kp_ledger_id(event_id, &id);
	return kp_lstore_lookup(st, &id, since);
}

static void store_write_and_lookup(void **state)
{
	char err[256];
	struct kp_lstore *st = kp_lstore_open(path, false, TTL_MS, err, sizeof(err));
	int64_t now = kp_now_ms();
	struct kp_lrec r[] = {rec("a", now, KP_L_DONE), rec("b", now, KP_L_DEAD),
			      rec("a", now + 1, KP_L_DEAD)};

	(void)state;
	assert_non_null(st);
	assert_int_equal(lookup(st, "a", 0), 0);
	assert_int_equal(kp_lstore_write(st, r, 3), 0);
	assert_int_equal(lookup(st, "a", 0), KP_L_DONE); /* a done row is never undone */
	assert_int_equal(lookup(st, "b", 0), KP_L_DEAD);
	assert_int_equal(lookup(st, "c", 0), 0);
	kp_lstore_close(st);

	/* A worker's read-only handle sees the same; the view shows outcomes. */
	st = kp_lstore_open(path, true, TTL_MS, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(lookup(st, "a", 0), KP_L_DONE);
	assert_int_equal(lookup(st, "b", now + 5), 0); /* finished before since: forgotten */
	assert_int_equal(kp_lstore_each_id(st, NULL, NULL), 2);
	kp_lstore_close(st);
}

/*
 * Many writes: runs of a shard are merged as they pile up, so a lookup reads
 * a few; every id is still found, with its outcome.
 */
static void store_runs_merge(void **state)
{
	char err[256], id[32], cmd[400];
	struct kp_lstore *st = kp_lstore_open(path, false, TTL_MS, err, sizeof(err));
	static struct kp_lrec r[1000];
	int64_t now = kp_now_ms();
	FILE *p;
	int most = 0;

	(void)state;
	for (int b = 0; b < 150; b++) {
		for (int i = 0; i < 1000; i++) {
			snprintf(id, sizeof(id), "m-%d-%d", b, i);
			r[i] = rec(id, now, i % 7 == 0 ? KP_L_DEAD : KP_L_DONE);
		}
		assert_int_equal(kp_lstore_write(st, r, 1000), 0);
	}
	assert_int_equal(kp_lstore_each_id(st, NULL, NULL), 150000);
	for (int b = 0; b < 150; b += 7)
		for (int i = 0; i < 1000; i += 13) {
			snprintf(id, sizeof(id), "m-%d-%d", b, i);
			assert_int_equal(lookup(st, id, 0), i % 7 == 0 ? KP_L_DEAD : KP_L_DONE);
		}
	assert_int_equal(lookup(st, "m-150-0", 0), 0);
	kp_lstore_close(st);
	snprintf(
	    cmd, sizeof(cmd),
	    "sqlite3 '%s' 'SELECT max(c) FROM (SELECT count(*) AS c FROM runs GROUP BY shard)'",
	    path);
	if ((p = popen(cmd, "r")) == NULL || fscanf(p, "%d", &most) != 1) {
		if (p)
			pclose(p);
		skip(); /* no sqlite3 command */
	}
	pclose(p);
	/* 150 writes, each a run in every shard: merged into a few tiers. */
	if (most > 16)
		fail_msg("%d runs in one shard", most);
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 '%s' \"SELECT group_concat(outcome || '=' || n, ' ') FROM "
		 "(SELECT * FROM processed_counts ORDER BY outcome)\"",
		 path);
	char line[128] = "";
	p = popen(cmd, "r");
	assert_non_null(fgets(line, sizeof(line), p));
	pclose(p);
	assert_string_equal(line, "dead-lettered=21450 done=128550\n");
}

/* A replayed job's success turns its dead-lettered row into a done one. */
static void store_replay_turns_dead_into_done(void **state)
{
	char err[256];
	struct kp_lstore *st = kp_lstore_open(path, false, TTL_MS, err, sizeof(err));
	int64_t now = kp_now_ms();
	struct kp_lrec dead = rec("r1", now, KP_L_DEAD), done = rec("r1", now + 1, KP_L_DONE);

	(void)state;
	assert_int_equal(kp_lstore_write(st, &dead, 1), 0);
	assert_int_equal(lookup(st, "r1", 0), KP_L_DEAD);
	assert_int_equal(kp_lstore_write(st, &done, 1), 0);
	assert_int_equal(lookup(st, "r1", 0), KP_L_DONE);
	kp_lstore_close(st);
}

/* Forgetting drops whole generations, those that ended a ttl ago. */
static void store_prune(void **state)
{
	char err[256];
	int64_t ttl = 8000, now = 1000000000;
	struct kp_lstore *st = kp_lstore_open(path, false, ttl, err, sizeof(err));
	struct kp_lrec r[] = {rec("old", now - ttl - 2000, KP_L_DONE),
			      rec("new", now - 10, KP_L_DONE)};

	(void)state;
	assert_int_equal(kp_lstore_write(st, r, 2), 0);
	assert_int_equal(kp_lstore_each_id(st, NULL, NULL), 2);
	assert_int_equal(kp_lstore_prune(st, now), 1);
	assert_int_equal(lookup(st, "old", 0), 0);
	assert_int_equal(lookup(st, "new", 0), KP_L_DONE);
	assert_int_equal(kp_lstore_prune(st, now), 0);
	kp_lstore_close(st);
}

static void count_crash(void *arg, const struct kp_id *id, int count, int signal)
{
	int *n = arg;

	(void)id;
	*n += count * 100 + signal;
}

static void store_crashes(void **state)
{
	char err[256];
	struct kp_lstore *st = kp_lstore_open(path, false, TTL_MS, err, sizeof(err));
	struct kp_lcrash c = {.event_id = "ev", .count = 2, .signal = SIGSEGV};
	int n = 0;

	(void)state;
	kp_ledger_id("ev", &c.id);
	assert_int_equal(kp_lstore_crash(st, &c), 0);
	c.count = 1; /* counts only grow */
	assert_int_equal(kp_lstore_crash(st, &c), 0);
	assert_int_equal(kp_lstore_each_crash(st, count_crash, &n), 0);
	assert_int_equal(n, 200 + SIGSEGV);
	kp_lstore_close(st);
}

/* A ledger file of the previous version (ids as text) keeps its ids. */
static void store_migrates_old_file(void **state)
{
	char err[256], cmd[1024];
	struct kp_lstore *st;
	int n = 0;

	(void)state;
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 '%s' \"CREATE TABLE processed (event_id TEXT PRIMARY KEY, topic TEXT, "
		 "partition INTEGER, offset INTEGER, outcome TEXT, processed_at INTEGER) WITHOUT "
		 "ROWID; CREATE TABLE crashes (topic TEXT, partition INTEGER, offset INTEGER, "
		 "event_id TEXT, count INTEGER, last_signal TEXT, PRIMARY KEY (topic, partition, "
		 "offset)); INSERT INTO processed VALUES ('old-1', 't', 0, 1, 'done', %lld), "
		 "('old-2', 't', 0, 2, 'dead-lettered', %lld); INSERT INTO crashes VALUES "
		 "('t', 0, 3, 'boom', 2, 'SIGSEGV');\"",
		 path, (long long)kp_now_ms(), (long long)kp_now_ms());
	if (system(cmd) != 0)
		skip(); /* no sqlite3 command */
	st = kp_lstore_open(path, false, TTL_MS, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(lookup(st, "old-1", 0), KP_L_DONE);
	assert_int_equal(lookup(st, "old-2", 0), KP_L_DEAD);
	assert_int_equal(kp_lstore_each_crash(st, count_crash, &n), 0);
	assert_int_equal(n, 200 + SIGSEGV);
	kp_lstore_close(st);
}

static void store_bad_path(void **state)
{
	char err[256];

	(void)state;
	assert_null(kp_lstore_open("/nonexistent/dir/w.db", false, TTL_MS, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/dir/w.db"));
}

/* Several processes opening a new file at the same moment: none may fail. */
static void store_concurrent_first_open(void **state)
{
	int failed = 0;

	(void)state;
	for (int round = 0; round < 20; round++) {
		char f[300];
		snprintf(f, sizeof(f), "%s/fresh-%d.db", dir, round);
		for (int i = 0; i < 4; i++) {
			if (fork() == 0) {
				char err[256];
				struct kp_lstore *st =
				    kp_lstore_open(f, false, TTL_MS, err, sizeof(err));
				if (st == NULL)
					fprintf(stderr, "%s\n", err);
				kp_lstore_close(st);
				_exit(st ? 0 : 1);
			}
		}
		int s;
		while (wait(&s) > 0)
			failed += !WIFEXITED(s) || WEXITSTATUS(s) != 0;
	}
	assert_int_equal(failed, 0);
}

static enum kp_claim claim(struct kp_ledger *l, const char *event_id, bool replay, int *crashes)
{
	struct kp_id id;
	int sig;

	kp_ledger_id(event_id, &id);
	return kp_ledger_claim(l, &id, replay, true, crashes, &sig);
}

static int settle(struct kp_ledger *l, const char *event_id, bool dead)
{
	struct kp_id id;
	uint64_t seq;

	kp_ledger_id(event_id, &id);
	return kp_ledger_settle(l, &id, dead, &seq);
}

/* One process: claim, settle, duplicates, a replay, a release. */
static void claims(void **state)
{
	struct kp_ledger_shm *shm = kp_ledger_map(TTL_MS);
	struct kp_ledger *l = kp_ledger_open(shm, path);
	int crashes;

	(void)state;
	shm->filter_blocks = 1; /* an empty filter: nothing is in the store */
	assert_int_equal(claim(l, "a", false, &crashes), KP_CLAIM_NEW);
	assert_int_equal(claim(l, "a", false, &crashes), KP_CLAIM_BUSY); /* the same batch */
	assert_int_equal(settle(l, "a", false), 0);
	assert_int_equal(claim(l, "a", false, &crashes), KP_CLAIM_DUP);
	assert_int_equal(claim(l, "a", true, &crashes), KP_CLAIM_DUP); /* a replay of a done job */
	assert_int_equal(claim(l, "d", false, &crashes), KP_CLAIM_NEW);
	assert_int_equal(settle(l, "d", true), 0);
	assert_int_equal(claim(l, "d", false, &crashes), KP_CLAIM_DUP);
	assert_int_equal(claim(l, "d", true, &crashes), KP_CLAIM_NEW); /* replaying a dead letter */
	struct kp_id id;
	kp_ledger_id("d", &id);
	kp_ledger_release(l, &id);
	assert_int_equal(claim(l, "d", true, &crashes), KP_CLAIM_NEW);
	assert_int_equal(shm->head, 2); /* two outcomes on their way to the store */
	kp_ledger_close(l);
	kp_ledger_unmap(shm);
}

/*
 * Siblings: a child claims an id and holds it; the parent finds it busy until
 * the child settles, then a duplicate.
 */
static void sibling_waits_for_outcome(void **state)
{
	struct kp_ledger_shm *shm = kp_ledger_map(TTL_MS);
	struct kp_ledger *l = kp_ledger_open(shm, path);
	int go[2], held[2], crashes;
	char c;
	pid_t pid;

	(void)state;
	shm->filter_blocks = 1;
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(held), 0);
	pid = fork();
	if (pid == 0) {
		struct kp_ledger *cl = kp_ledger_open(shm, path);
		int cr;
		if (claim(cl, "x", false, &cr) != KP_CLAIM_NEW)
			_exit(1);
		(void)!write(held[1], "h", 1);
		(void)!read(go[0], &c, 1);
		_exit(settle(cl, "x", false) == 0 ? 0 : 2);
	}
	assert_int_equal(read(held[0], &c, 1), 1);
	assert_int_equal(claim(l, "x", false, &crashes), KP_CLAIM_BUSY);
	assert_int_equal(write(go[1], "g", 1), 1);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(claim(l, "x", false, &crashes), KP_CLAIM_DUP);
	kp_ledger_close(l);
	kp_ledger_unmap(shm);
}

/* A claimer killed with a job in hand: its claims are released and a crash counted. */
static void killed_claimer(void **state)
{
	struct kp_ledger_shm *shm = kp_ledger_map(TTL_MS);
	struct kp_ledger *l = kp_ledger_open(shm, path);
	int held[2], crashes, st;
	struct kp_id hand;
	char c;
	pid_t pid;

	(void)state;
	shm->filter_blocks = 1;
	assert_int_equal(pipe(held), 0);
	pid = fork();
	if (pid == 0) {
		struct kp_ledger *cl = kp_ledger_open(shm, path);
		int cr;
		claim(cl, "hand", false, &cr);
		claim(cl, "other", false, &cr);
		(void)!write(held[1], "h", 1);
		pause();
		_exit(0);
	}
	assert_int_equal(read(held[0], &c, 1), 1);
	assert_int_equal(claim(l, "hand", false, &crashes), KP_CLAIM_BUSY);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	kp_ledger_id("hand", &hand);
	kp_ledger_reap(shm, pid, &hand, "hand", WTERMSIG(st)); /* what the supervisor does */
	assert_int_equal(claim(l, "other", false, &crashes), KP_CLAIM_NEW);
	assert_int_equal(crashes, 0);
	assert_int_equal(claim(l, "hand", false, &crashes), KP_CLAIM_NEW);
	assert_int_equal(crashes, 1);
	assert_int_equal(shm->n_crash, 1);
	assert_string_equal(shm->crash[0].event_id, "hand");
	kp_ledger_close(l);
	kp_ledger_unmap(shm);
}

/* A ledger process for state_dir dir, binding name. */
static pid_t ledger_process(struct kp_ledger_shm *shm, const char *name)
{
	static struct kp_conf conf;
	static struct kp_binding b;
	pid_t pid = fork();

	if (pid == 0) {
		conf.state_dir = dir;
		b.name = (char *)name;
		_exit(kp_ledger_run(&conf, &b, shm));
	}
	return pid;
}

static bool wait_durable(struct kp_ledger *l, uint64_t seq)
{
	for (int i = 0; i < 5000; i++) {
		if (kp_ledger_durable(l) >= seq)
			return true;
		usleep(1000);
	}
	return false;
}

/*
 * The ledger process makes outcomes durable; after a restart (a new shared
 * memory, as after kpoold's), the filter and the store still know them, and
 * ids never seen cost no store read.
 */
static void durable_across_restart(void **state)
{
	char db[300];
	struct kp_ledger_shm *shm = kp_ledger_map(TTL_MS);
	pid_t lp = ledger_process(shm, "dur");
	struct kp_ledger *l;
	int crashes, st;
	char id[32];

	(void)state;
	snprintf(db, sizeof(db), "%s/dur.db", dir);
	l = kp_ledger_open(shm, db);
	for (int i = 0; i < 2000 && shm->filter_blocks == 0; i++)
		usleep(1000);
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "id-%d", i);
		assert_int_equal(claim(l, id, false, &crashes), KP_CLAIM_NEW);
		assert_int_equal(settle(l, id, i % 10 == 0), 0);
	}
	assert_true(wait_durable(l, 3000));
	kill(lp, SIGTERM);
	assert_int_equal(waitpid(lp, &st, 0), lp);
	assert_int_equal(WEXITSTATUS(st), 0);
	kp_ledger_close(l);
	kp_ledger_unmap(shm);

	shm = kp_ledger_map(TTL_MS);
	lp = ledger_process(shm, "dur");
	l = kp_ledger_open(shm, db);
	for (int i = 0; i < 2000 && shm->filter_blocks == 0; i++)
		usleep(1000);
	assert_true(shm->filter_blocks > 0);
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "id-%d", i);
		assert_int_equal(claim(l, id, false, &crashes), KP_CLAIM_DUP);
	}
	/* One read each (a read that took over KP_LEDGER_LOOKUP_MS is done again). */
	uint64_t reads = shm->lookups;
	assert_in_range(reads, 3000, 3300);
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "new-%d", i);
		assert_int_equal(claim(l, id, false, &crashes), KP_CLAIM_NEW);
	}
	/* A blocked Bloom filter of 16 bits an id: well under 5% false maybes. */
	assert_true(shm->lookups - reads < 150);
	kill(lp, SIGTERM);
	waitpid(lp, &st, 0);
	kp_ledger_close(l);
	kp_ledger_unmap(shm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(store_write_and_lookup, fresh),
	    cmocka_unit_test_setup(store_replay_turns_dead_into_done, fresh),
	    cmocka_unit_test_setup(store_runs_merge, fresh),
	    cmocka_unit_test_setup(store_prune, fresh),
	    cmocka_unit_test_setup(store_crashes, fresh),
	    cmocka_unit_test_setup(store_migrates_old_file, fresh),
	    cmocka_unit_test(store_bad_path),
	    cmocka_unit_test(store_concurrent_first_open),
	    cmocka_unit_test_setup(claims, fresh),
	    cmocka_unit_test_setup(sibling_waits_for_outcome, fresh),
	    cmocka_unit_test_setup(killed_claimer, fresh),
	    cmocka_unit_test(durable_across_restart),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
