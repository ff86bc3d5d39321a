/*
 * rate_test.c - a binding's rate bucket (rate.c: kp_rate_take): the host's
 * share of the partitions sets its rate, the burst is one call up to 100/s,
 * a call that must wait is told for how long, and processes forked off one
 * bucket in shared memory never take more than it holds together.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kpoold.h"

static struct kp_binding rated(int64_t n, int64_t period_ms)
{
	struct kp_binding b;

	memset(&b, 0, sizeof(b));
	b.rate_n = n;
	b.rate_period_ms = period_ms;
	return b;
}

/* 40/s, this host holding 4 of 8 partitions: 20/s here, one call every 50 ms. */
static void share_of_partitions(void **state)
{
	struct kp_rate_shm r = {.host_parts = 4, .total = 8};
	struct kp_binding b = rated(40, 1000);
	int64_t wait = -1;

	(void)state;
	assert_int_equal(kp_rate_take(&r, &b, 10, 0, 0, &wait), 1); /* a burst of 1 */
	assert_int_equal(kp_rate_take(&r, &b, 1, 0, 0, &wait), 0);
	assert_in_range(wait, 45, 50);
	/* All 8 here: one every 25 ms. */
	r.host_parts = 8;
	memset(&r.tat_ns, 0, sizeof(r.tat_ns));
	assert_int_equal(kp_rate_take(&r, &b, 1, 0, 0, &wait), 1);
	assert_int_equal(kp_rate_take(&r, &b, 1, 0, 0, &wait), 0);
	assert_in_range(wait, 20, 25);
}

/* Until the supervisor's sums are in, the process's own view counts; unknown, it waits. */
static void own_view_and_unknown(void **state)
{
	struct kp_rate_shm r = {0};
	struct kp_binding b = rated(50, 1000);
	int64_t wait = -1;

	(void)state;
	assert_int_equal(kp_rate_take(&r, &b, 1, 2, 0, &wait), 0);
	assert_int_equal(wait, 100);
	assert_int_equal(kp_rate_take(&r, &b, 1, 0, 4, &wait), 0); /* holds none */
	assert_int_equal(kp_rate_take(&r, &b, 1, 4, 4, &wait), 1);
	/* More partitions held than there are (a stale count) is all of them. */
	struct kp_rate_shm r2 = {.host_parts = 12, .total = 4};
	assert_int_equal(kp_rate_take(&r2, &b, 1, 0, 0, &wait), 1);
	assert_int_equal(kp_rate_take(&r2, &b, 1, 0, 0, &wait), 0);
	assert_in_range(wait, 15, 20);
}

/* A high rate has a burst of a hundredth of a second's calls; /m and /h are slow. */
static void bursts_and_periods(void **state)
{
	struct kp_rate_shm r = {.host_parts = 1, .total = 1};
	struct kp_binding b = rated(100000, 1000);
	int64_t wait = -1;

	(void)state;
	assert_int_equal(kp_rate_take(&r, &b, 5000, 0, 0, &wait), 1000);
	struct kp_rate_shm m = {.host_parts = 1, .total = 1};
	b = rated(100, 60000); /* one every 600 ms */
	assert_int_equal(kp_rate_take(&m, &b, 3, 0, 0, &wait), 1);
	assert_int_equal(kp_rate_take(&m, &b, 1, 0, 0, &wait), 0);
	assert_in_range(wait, 590, 600);
	struct kp_rate_shm h = {.host_parts = 1, .total = 1};
	b = rated(2, 3600000); /* one every 30 minutes */
	assert_int_equal(kp_rate_take(&h, &b, 1, 0, 0, &wait), 1);
	assert_int_equal(kp_rate_take(&h, &b, 1, 0, 0, &wait), 0);
	assert_in_range(wait, 1799000, 1800000);
}
static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Four processes take from one bucket in shared memory as fast as they can
 * for 300 ms at 1000/s (a burst of 10): together never more than the burst
 * and a call a millisecond, counted to the last call taken (a process
 * preempted between its clock check and its take takes later than 300 ms);
 * fewer when the machine is busy: calls not taken in time are not kept.
 */
static void processes_share_one_bucket(void **state)
{
	struct kp_rate_shm *r =
	    mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int64_t *seen = mmap(NULL, 8 * sizeof(int64_t), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0); /* per process: calls, last take */
	struct kp_binding b = rated(1000, 1000);
	int64_t total = 0, last = 0;

	(void)state;
	assert_true(r != MAP_FAILED && seen != MAP_FAILED);
	r->host_parts = r->total = 1;
	int64_t start = mono_us();
	for (int k = 0; k < 4; k++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int64_t wait;
			while (mono_us() - start < 300000) {
				int n = kp_rate_take(r, &b, 3, 0, 0, &wait);
				if (n > 0) {
					seen[2 * k] += n;
					seen[2 * k + 1] = mono_us();
				}
			}
			_exit(0);
		}
	}
	for (int k = 0; k < 4; k++)
		wait(NULL);
	for (int k = 0; k < 4; k++) {
		total += seen[2 * k];
		if (seen[2 * k + 1] > last)
			last = seen[2 * k + 1];
	}
	/* the burst of 10, and one call per whole millisecond to the last call */
	assert_in_range(total, 100, 10 + (last - start) / 1000);
	munmap(r, sizeof(*r));
	munmap(seen, 8 * sizeof(int64_t));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(share_of_partitions),
	    cmocka_unit_test(own_view_and_unknown),
	    cmocka_unit_test(bursts_and_periods),
	    cmocka_unit_test(processes_share_one_bucket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
