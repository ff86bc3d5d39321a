/* dedupe_test.c - the processed and crashes tables on a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kpoold.h"

static char dir[] = "/tmp/kpool-dedupe-test.XXXXXX";
static char path[256];

static int setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/w.db", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void record_and_seen(void **state)
{
	char err[256];
	struct kp_dedupe *d = kp_dedupe_open(path, err, sizeof(err));

	(void)state;
	assert_non_null(d);
	assert_int_equal(kp_dedupe_seen(d, "a", false), 0);
	assert_int_equal(kp_dedupe_record(d, "a", "t", 0, 1, KP_OUT_DONE, 1000), 0);
	assert_int_equal(kp_dedupe_seen(d, "a", false),
			 1); /* visible inside the open transaction */
	assert_int_equal(kp_dedupe_record(d, "a", "t", 0, 9, KP_OUT_DONE, 1000), 0); /* ignored */
	assert_int_equal(kp_dedupe_record(d, "b", "t", 1, 2, KP_OUT_DEAD, 5000), 0);
	assert_int_equal(kp_dedupe_commit(d), 0);
	kp_dedupe_close(d);

	d = kp_dedupe_open(path, err, sizeof(err));
	assert_non_null(d);
	assert_int_equal(kp_dedupe_seen(d, "a", false), 1);
	assert_int_equal(kp_dedupe_seen(d, "b", false), 1);
	assert_int_equal(kp_dedupe_seen(d, "c", false), 0);
	assert_int_equal(kp_dedupe_count(d), 2);
	kp_dedupe_close(d);
}

/* A replayed job looks only for a done row; once done, its row says so for good. */
static void replayed_after_dead_letter(void **state)
{
	char err[256];
	struct kp_dedupe *d = kp_dedupe_open(path, err, sizeof(err));

	(void)state;
	assert_non_null(d);
	assert_int_equal(kp_dedupe_record(d, "r1", "t", 0, 5, KP_OUT_DEAD, 1000), 0);
	assert_int_equal(kp_dedupe_commit(d), 0);
	assert_int_equal(kp_dedupe_seen(d, "r1", false), 1); /* a redelivery: skipped */
	assert_int_equal(kp_dedupe_seen(d, "r1", true), 0);  /* a replay: handled */
	assert_int_equal(kp_dedupe_record(d, "r1", "t", 2, 70, KP_OUT_DONE, 2000), 0);
	assert_int_equal(kp_dedupe_commit(d), 0);
	assert_int_equal(kp_dedupe_seen(d, "r1", true), 1); /* a second replay: skipped */
	/* a done row is never turned back into a dead-lettered one */
	assert_int_equal(kp_dedupe_record(d, "r1", "t", 3, 80, KP_OUT_DEAD, 3000), 0);
	assert_int_equal(kp_dedupe_commit(d), 0);
	assert_int_equal(kp_dedupe_seen(d, "r1", true), 1);
	kp_dedupe_close(d);
}

static void uncommitted_rows_are_lost(void **state)
{
	char err[256];
	struct kp_dedupe *d = kp_dedupe_open(path, err, sizeof(err));
	pid_t pid;

	(void)state;
	/* A child that records and dies without committing leaves nothing: the reason
	 * the worker also keeps finished ids in shared memory. */
	pid = fork();
	if (pid == 0) {
		struct kp_dedupe *c = kp_dedupe_open(path, err, sizeof(err));
		kp_dedupe_record(c, "lost", "t", 0, 3, KP_OUT_DONE, 1000);
		_exit(0);
	}
	assert_true(pid > 0);
	waitpid(pid, NULL, 0);
	assert_int_equal(kp_dedupe_seen(d, "lost", false), 0);
	kp_dedupe_close(d);
}

static void crashes(void **state)
{
	char err[256], sig[32];
	struct kp_dedupe *d = kp_dedupe_open(path, err, sizeof(err));

	(void)state;
	assert_int_equal(kp_dedupe_crash_count(d, "t", 2, 7, sig, sizeof(sig)), 0);
	assert_int_equal(kp_dedupe_crash_add(d, "t", 2, 7, "ev", "SIGSEGV"), 0);
	assert_int_equal(kp_dedupe_crash_add(d, "t", 2, 7, "ev", "SIGABRT"), 0);
	assert_int_equal(kp_dedupe_crash_count(d, "t", 2, 7, sig, sizeof(sig)), 2);
	assert_string_equal(sig, "SIGABRT");
	assert_int_equal(kp_dedupe_crash_count(d, "t", 2, 8, sig, sizeof(sig)), 0);
	kp_dedupe_close(d);
	d = kp_dedupe_open(path, err, sizeof(err));
	assert_int_equal(kp_dedupe_crash_count(d, "t", 2, 7, sig, sizeof(sig)), 2);
	kp_dedupe_close(d);
}

static void prune(void **state)
{
	char err[256];
	struct kp_dedupe *d = kp_dedupe_open(path, err, sizeof(err));

	(void)state;
	assert_int_equal(kp_dedupe_record(d, "old", "t", 0, 1, KP_OUT_DONE, 100), 0);
	assert_int_equal(kp_dedupe_record(d, "new", "t", 0, 2, KP_OUT_DONE, 900000), 0);
	assert_true(kp_dedupe_prune(d, 1500) >= 1);
	assert_int_equal(kp_dedupe_seen(d, "old", false), 0);
	assert_int_equal(kp_dedupe_seen(d, "new", false), 1);
	kp_dedupe_close(d);
}

static void bad_path(void **state)
{
	char err[256];

	(void)state;
	assert_null(kp_dedupe_open("/nonexistent/dir/w.db", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/dir/w.db"));
}

/* The workers of a binding open its new file at the same moment: none may fail. */
static void concurrent_first_open(void **state)
{
	int failed = 0;

	(void)state;
	for (int round = 0; round < 40; round++) {
		char fresh[300];
		snprintf(fresh, sizeof(fresh), "%s/fresh-%d.db", dir, round);
		for (int i = 0; i < 6; i++) {
			if (fork() == 0) {
				char err[256];
				struct kp_dedupe *d = kp_dedupe_open(fresh, err, sizeof(err));
				if (d == NULL)
					fprintf(stderr, "%s\n", err);
				kp_dedupe_close(d);
				_exit(d ? 0 : 1);
			}
		}
		int st;
		while (wait(&st) > 0)
			failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	assert_int_equal(failed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(record_and_seen),
	    cmocka_unit_test(replayed_after_dead_letter),
	    cmocka_unit_test(uncommitted_rows_are_lost),
	    cmocka_unit_test(crashes),
	    cmocka_unit_test(prune),
	    cmocka_unit_test(bad_path),
	    cmocka_unit_test(concurrent_first_open),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
