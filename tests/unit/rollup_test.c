/*
 * rollup_test.c - the analytics handler's sketch of distinct users: exact
 * while sparse, within its standard error once dense, merges that equal adding everything,
 * blobs that read back as written (and malformed ones refused), and a count that stays a
 * number whatever the registers of a blob hold.
 */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rollup.h"

/* Adds users "PREFIX-i" for i in [from, to), in chunks as a batch would. */
static void add_users(struct hll *h, const char *prefix, long from, long to)
{
	uint64_t chunk[64];
	size_t n = 0;
	char id[64];

	for (long i = from; i < to; i++) {
		int len = snprintf(id, sizeof(id), "%s-%ld", prefix, i);
		chunk[n++] = hll_hash(id, (size_t)len);
		if (n == 64 || i == to - 1) {
			assert_int_equal(hll_add(h, chunk, n), 0);
			n = 0;
		}
	}
}

static void sparse_is_exact(void **state)
{
	struct hll h = {0};
	uint64_t dup[3];

	(void)state;
	assert_true(hll_count(&h) == 0);
	assert_int_equal(hll_add(&h, NULL, 0), 0); /* a row of events without a user */
	assert_true(hll_count(&h) == 0);
	add_users(&h, "u", 0, 1000);
	add_users(&h, "u", 500, 1500); /* half of them again */
	assert_true(hll_exact(&h));
	assert_true(hll_count(&h) == 1500);
	dup[0] = dup[1] = dup[2] = hll_hash("u-7", 3);
	assert_int_equal(hll_add(&h, dup, 3), 0);
	assert_true(hll_count(&h) == 1500);
	add_users(&h, "u", 1500, HLL_SPARSE_MAX);
	assert_true(hll_exact(&h));
	assert_true(hll_count(&h) == HLL_SPARSE_MAX);
	add_users(&h, "u", HLL_SPARSE_MAX, HLL_SPARSE_MAX + 1);
	assert_false(hll_exact(&h)); /* one more and it is dense */
	hll_free(&h);
}

/*
 * The standard error of a dense sketch is 1.04 / sqrt(2^14) = 0.81%: over 40
 * estimates (4 sets of users, 10 sizes each) the root mean square error must
 * be at most 1%, and no estimate off by more than 3% (3.7 standard errors).
 */
static void dense_error(void **state)
{
	static const long sizes[] = {2049,  3000,  5000,   10000,  20000,
				     40000, 70000, 100000, 300000, 1000000};
	struct hll h = {0};
	char prefix[16];
	double worst = 0, sum_sq = 0;
	int n = 0;

	(void)state;
	for (int run = 0; run < 4; run++) {
		long had = 0;
		snprintf(prefix, sizeof(prefix), "run%d", run);
		for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
			add_users(&h, prefix, had, sizes[i]);
			had = sizes[i];
			double est = hll_count(&h), err = (est - (double)had) / (double)had;
			print_message("%s: %ld users, estimated %.0f (%+.2f%%)\n", prefix, had, est,
				      100 * err);
			assert_false(hll_exact(&h));
			assert_true(fabs(err) <= 0.03);
			worst = fabs(err) > worst ? fabs(err) : worst;
			sum_sq += err * err;
			n++;
		}
		hll_free(&h);
	}
	print_message("root mean square error %.2f%%, worst %.2f%%\n", 100 * sqrt(sum_sq / n),
		      100 * worst);
	assert_true(sqrt(sum_sq / n) <= 0.01);
}

static void merge_equals_adding_all(void **state)
{
	struct hll all = {0}, a = {0}, b = {0}, small = {0};

	(void)state;
	add_users(&all, "m", 0, 9000);
	add_users(&a, "m", 0, 5000);
	add_users(&b, "m", 4000, 9000);
	assert_int_equal(hll_merge(&a, &b), 0);
	assert_memory_equal(a.reg, all.reg, HLL_M);

	add_users(&small, "m", 0, 100); /* sparse into dense */
	assert_int_equal(hll_merge(&a, &small), 0);
	assert_memory_equal(a.reg, all.reg, HLL_M);

	hll_free(&a);
	add_users(&a, "m", 8900, 9000); /* dense into sparse */
	assert_int_equal(hll_merge(&a, &all), 0);
	assert_false(hll_exact(&a));
	assert_memory_equal(a.reg, all.reg, HLL_M);

	hll_free(&a);
	hll_free(&b);
	add_users(&a, "s", 0, 600); /* sparse with sparse stays exact */
	add_users(&b, "s", 300, 900);
	assert_int_equal(hll_merge(&a, &b), 0);
	assert_true(hll_exact(&a));
	assert_true(hll_count(&a) == 900);
	hll_free(&a);
	hll_free(&b);
	hll_free(&all);
	hll_free(&small);
}

static void round_trip(struct hll *h)
{
	size_t n = hll_blob_size(h);
	unsigned char *b = malloc(n);
	struct hll back;

	assert_non_null(b);
	hll_blob(h, b);
	assert_int_equal(hll_load(&back, b, n), 0);
	assert_true(hll_exact(&back) == hll_exact(h));
	assert_true(hll_count(&back) == hll_count(h));
	free(b);
	hll_free(&back);
}

static void blobs(void **state)
{
	struct hll h = {0}, x;
	unsigned char empty[2] = {HLL_SPARSE, HLL_P}, b[2 + 16];

	(void)state;
	assert_int_equal(hll_load(&x, empty, 2), 0);
	assert_true(hll_count(&x) == 0);
	round_trip(&h);
	add_users(&h, "b", 0, 300);
	assert_int_equal(hll_blob_size(&h), 2 + 300 * 8);
	round_trip(&h);
	add_users(&h, "b", 300, 5000);
	assert_int_equal(hll_blob_size(&h), 2 + HLL_M);
	round_trip(&h);

	/* malformed: no header, another p, a torn hash, hashes out of order, a torn dense form */
	assert_int_equal(hll_load(&x, "", 0), -1);
	assert_int_equal(hll_load(&x, (unsigned char[]){HLL_SPARSE, 12}, 2), -1);
	assert_int_equal(hll_load(&x, (unsigned char[]){HLL_SPARSE, HLL_P, 1, 2, 3}, 5), -1);
	memset(b, 0, sizeof(b));
	b[0] = HLL_SPARSE;
	b[1] = HLL_P;
	b[2] = 9; /* 9, then 0: not ascending */
	assert_int_equal(hll_load(&x, b, sizeof(b)), -1);
	b[0] = HLL_DENSE;
	assert_int_equal(hll_load(&x, b, sizeof(b)), -1);
	b[0] = 7;
	assert_int_equal(hll_load(&x, b, sizeof(b)), -1);
	hll_free(&h);
}

/* A blob read back from a file may hold any registers: the count stays a number. */
static void registers_at_their_largest(void **state)
{
	unsigned char *b = malloc(2 + HLL_M);
	struct hll h;

	(void)state;
	assert_non_null(b);
	b[0] = HLL_DENSE;
	b[1] = HLL_P;
	memset(b + 2, 64 - HLL_P + 1, HLL_M); /* every register at the largest rank */
	assert_int_equal(hll_load(&h, b, 2 + HLL_M), 0);
	assert_true(isfinite(hll_count(&h)));
	assert_true(hll_count(&h) == HLL_COUNT_MAX);
	hll_free(&h);
	memset(b + 2, 0xff, HLL_M); /* past it: read as the largest */
	assert_int_equal(hll_wrap(&h, b, 2 + HLL_M), 0);
	assert_true(hll_count(&h) == HLL_COUNT_MAX);
	hll_free(&h);
	b[2] = 1; /* one register lower: a count below the cap */
	assert_int_equal(hll_load(&h, b, 2 + HLL_M), 0);
	assert_true(hll_count(&h) > 0 && hll_count(&h) < HLL_COUNT_MAX);
	hll_free(&h);
	free(b);
}

static void granularities(void **state)
{
	(void)state;
	assert_int_equal(rollup_gran_find("minute"), 0);
	assert_int_equal(rollup_gran_find("hour"), 1);
	assert_int_equal(rollup_gran_find("day"), 2);
	assert_int_equal(rollup_gran_find("week"), -1);
	assert_int_equal(rollup_grans[2].width, 86400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sparse_is_exact),
	    cmocka_unit_test(dense_error),
	    cmocka_unit_test(merge_equals_adding_all),
	    cmocka_unit_test(blobs),
	    cmocka_unit_test(registers_at_their_largest),
	    cmocka_unit_test(granularities),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
