/*
 * progress_test.c - what `kpool dlq replay` remembers of a partition
 * (kpool_progress.c): offsets kept as ranges, the commit metadata
 * "replayed:A-B,C" printed within its cap, and read back from Kafka as
 * outside input.  The promise under test: a replay never skips a record it
 * did not send; what does not fit is sent again, never claimed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpool_cmd.h"

#define SPAN 400 /* offsets 0..SPAN-1 in the tests that keep a plain set beside the ranges */

/* Ranges ascending, apart (neither overlapping nor touching), each a <= b. */
static void assert_shape(const struct kp_ranges *s)
{
	for (size_t i = 0; i < s->n; i++) {
		assert_true(s->r[i].a <= s->r[i].b);
		if (i)
			assert_true(s->r[i - 1].b + 1 < s->r[i].a);
	}
}

/* s holds exactly the offsets of set below SPAN, and none at or above it. */
static void assert_same_set(const struct kp_ranges *s, const bool *set)
{
	size_t runs = 0;

	for (int64_t off = 0; off < SPAN; off++) {
		if (kp_ranges_has(s, off) != set[off])
			fail_msg("offset %lld: held %d, added %d", (long long)off,
				 kp_ranges_has(s, off), set[off]);
		runs += set[off] && (off == 0 || !set[off - 1]);
	}
	assert_false(kp_ranges_has(s, SPAN));
	assert_false(kp_ranges_has(s, -1));
	assert_int_equal(s->n, runs); /* one range per run of offsets: joined where they touch */
}

static void ranges_merge_and_touch(void **state)
{
	struct kp_ranges s = {0};

	(void)state;
	assert_int_equal(kp_ranges_add(&s, 5), 0);
	assert_int_equal(kp_ranges_add(&s, 6), 0);
	assert_int_equal(kp_ranges_add(&s, 7), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].a, 5);
	assert_int_equal(s.r[0].b, 7);
	assert_int_equal(kp_ranges_add(&s, 10), 0); /* a gap: a range of its own */
	assert_int_equal(s.n, 2);
	assert_int_equal(kp_ranges_add(&s, 9), 0); /* touches 10 from below */
	assert_int_equal(s.n, 2);
	assert_int_equal(s.r[1].a, 9);
	assert_int_equal(kp_ranges_add(&s, 8), 0); /* closes the gap: one range */
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].a, 5);
	assert_int_equal(s.r[0].b, 10);
	assert_int_equal(kp_ranges_add(&s, 7), 0); /* already in: nothing changes */
	assert_int_equal(s.n, 1);
	assert_int_equal(kp_ranges_add(&s, 4), 0); /* touches from below */
	assert_int_equal(s.r[0].a, 4);
	assert_int_equal(kp_ranges_add(&s, 2), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.r[0].a, 2);
	assert_int_equal(s.r[0].b, 2);
	assert_int_equal(kp_ranges_add(&s, -1), -1); /* refused, nothing changed */
	assert_int_equal(s.n, 2);
	assert_false(kp_ranges_has(&s, 1));
	assert_true(kp_ranges_has(&s, 2));
	assert_false(kp_ranges_has(&s, 3));
	assert_true(kp_ranges_has(&s, 4));
	assert_true(kp_ranges_has(&s, 10));
	assert_false(kp_ranges_has(&s, 11));
	assert_shape(&s);
	kp_ranges_free(&s);
	assert_int_equal(s.n, 0);
	assert_null(s.r);

	/* The ends of the offsets: 0, and 2^63-1 touching 2^63-2. */
	assert_int_equal(kp_ranges_add(&s, INT64_MAX), 0);
	assert_int_equal(kp_ranges_add(&s, 0), 0);
	assert_int_equal(kp_ranges_add(&s, INT64_MAX - 1), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.r[1].a, INT64_MAX - 1);
	assert_int_equal(s.r[1].b, INT64_MAX);
	assert_true(kp_ranges_has(&s, INT64_MAX));
	assert_false(kp_ranges_has(&s, INT64_MAX - 2));
	kp_ranges_free(&s);
}

/* Offsets added out of order, against a plain set of them. */
static void ranges_out_of_order(void **state)
{
	bool set[SPAN] = {false};
	struct kp_ranges s = {0};

	(void)state;
	/* 211 is prime to SPAN: every offset once, in a scattered order; a few left out. */
	for (int64_t i = 0; i < SPAN; i++) {
		int64_t off = (i * 211 + 17) % SPAN;
		if (off % 7 == 3 || off % 13 == 0)
			continue;
		assert_int_equal(kp_ranges_add(&s, off), 0);
		set[off] = true;
		assert_shape(&s);
	}
	assert_same_set(&s, set);
	/* Descending, then filling the gaps: one range at the end. */
	kp_ranges_free(&s);
	memset(set, 0, sizeof(set));
	for (int64_t off = SPAN - 1; off >= 0; off -= 2) {
		assert_int_equal(kp_ranges_add(&s, off), 0);
		set[off] = true;
	}
	assert_same_set(&s, set);
	assert_int_equal(s.n, SPAN / 2);
	for (int64_t off = 0; off < SPAN; off += 2) {
		assert_int_equal(kp_ranges_add(&s, off), 0);
		set[off] = true;
	}
	assert_same_set(&s, set);
	assert_int_equal(s.n, 1);
	kp_ranges_free(&s);
}

/* Ranges of offsets given as pairs, added one offset at a time. */
static void ranges_of(struct kp_ranges *s, const int64_t (*pairs)[2], size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int64_t off = pairs[i][0]; off <= pairs[i][1]; off++)
			assert_int_equal(kp_ranges_add(s, off), 0);
}

static void meta_print(void **state)
{
	static const int64_t pairs[][2] = {{3, 5}, {8, 8}, {10, 12}};
	struct kp_ranges s = {0};
	char out[128];

	(void)state;
	ranges_of(&s, pairs, 3);
	assert_int_equal(kp_replay_meta_print(&s, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "replayed:3-5,8,10-12");
	/* From the committed offset up: a range it cuts starts there. */
	assert_int_equal(kp_replay_meta_print(&s, 4, out, sizeof(out)), 0);
	assert_string_equal(out, "replayed:4-5,8,10-12");
	assert_int_equal(kp_replay_meta_print(&s, 5, out, sizeof(out)), 0);
	assert_string_equal(out, "replayed:5,8,10-12");
	assert_int_equal(kp_replay_meta_print(&s, 9, out, sizeof(out)), 0);
	assert_string_equal(out, "replayed:10-12");
	assert_int_equal(kp_replay_meta_print(&s, 13, out, sizeof(out)), 0);
	assert_string_equal(out, ""); /* nothing above the committed offset */
	kp_ranges_free(&s);
	assert_int_equal(kp_replay_meta_print(&s, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
}

/*
 * The next replay of a partition after a commit of offset committed with
 * metadata meta: it sends each offset from committed up that meta does not
 * claim.  Asserts that every offset it would skip is one of sent.
 */
static void assert_skips_only_sent(const struct kp_ranges *sent, int64_t committed,
				   const char *meta, int64_t upto)
{
	struct kp_ranges claimed = {0};
	char why[160];

	assert_int_equal(
	    kp_replay_meta_parse(&claimed, meta, strlen(meta), committed, why, sizeof(why)), 0);
	for (int64_t off = committed; off <= upto; off++)
		if (kp_ranges_has(&claimed, off) && !kp_ranges_has(sent, off))
			fail_msg("'%s' makes the next replay skip %lld, never sent", meta,
				 (long long)off);
	kp_ranges_free(&claimed);
}

/* Printed into too little room: whole ranges in order, the rest left out and counted. */
static void meta_print_cap(void **state)
{
	static const int64_t pairs[][2] = {{3, 5}, {8, 8}, {10, 12}, {100, 250}};
	struct kp_ranges s = {0}, back = {0};
	char full[128], out[128], why[160];
	size_t full_len;

	(void)state;
	ranges_of(&s, pairs, 4);
	assert_int_equal(kp_replay_meta_print(&s, 0, full, sizeof(full)), 0);
	full_len = strlen(full);
	for (size_t len = 0; len <= full_len + 1; len++) {
		size_t left;

		memset(out, 'x', sizeof(out));
		left = kp_replay_meta_print(&s, 0, out, len);
		if (len == 0) {
			assert_int_equal(left, s.n); /* no room even for "": out untouched */
			assert_int_equal(out[0], 'x');
			continue;
		}
		assert_true(strlen(out) < len);
		/* A prefix of the full text that ends where a range does. */
		assert_memory_equal(out, full, strlen(out));
		assert_true(full[strlen(out)] == ',' || full[strlen(out)] == '\0' ||
			    out[0] == '\0');
		assert_int_equal(kp_replay_meta_parse(&back, out, strlen(out), 0, why, sizeof(why)),
				 0);
		assert_int_equal(back.n + left, s.n);
		for (size_t i = 0; i < back.n; i++) { /* whole ranges, never one cut */
			assert_int_equal(back.r[i].a, s.r[i].a);
			assert_int_equal(back.r[i].b, s.r[i].b);
		}
		assert_skips_only_sent(&s, 0, out, 300);
		kp_ranges_free(&back);
	}
	kp_ranges_free(&s);
}

/*
 * The replay's own cap (KP_REPLAY_META_MAX): scattered offsets past 2^62
 * that would take several times the room.  What is printed fits, claims
 * only what was sent, and the ranges left out are sent again.
 */
static void meta_print_replay_cap(void **state)
{
	struct kp_ranges s = {0}, back = {0};
	const int64_t base = INT64_C(1) << 62, committed = base - 5;
	char *out = malloc(KP_REPLAY_META_MAX), why[160];
	size_t left, n = 4 * KP_REPLAY_META_MAX / 20;
	int next;

	(void)state;
	assert_non_null(out);
	for (size_t i = 0; i < n; i++) { /* pairs 3 apart: a range each */
		assert_int_equal(kp_ranges_add(&s, base + 3 * (int64_t)i), 0);
		assert_int_equal(kp_ranges_add(&s, base + 3 * (int64_t)i + 1), 0);
	}
	assert_int_equal(s.n, n);
	left = kp_replay_meta_print(&s, committed, out, KP_REPLAY_META_MAX);
	assert_true(left > 0);
	assert_true(left < n);
	assert_true(strlen(out) < KP_REPLAY_META_MAX);
	assert_int_equal(kp_replay_meta_parse(&back, out, strlen(out), committed, why, sizeof(why)),
			 0);
	assert_int_equal(back.n, n - left);
	next = snprintf(NULL, 0, ",%lld-%lld", (long long)s.r[back.n].a, (long long)s.r[back.n].b);
	assert_true(strlen(out) + (size_t)next + 1 > KP_REPLAY_META_MAX); /* no room for one more */
	assert_int_equal(back.r[back.n - 1].b, s.r[back.n - 1].b);
	assert_false(kp_ranges_has(&back, s.r[back.n].a)); /* the first left out: sent again */
	assert_skips_only_sent(&s, committed, out, base + 3 * (int64_t)n);
	kp_ranges_free(&back);
	kp_ranges_free(&s);
	free(out);
}

/* Round trip: what a replay sent prints and reads back to the same ranges. */
static void meta_round_trip(void **state)
{
	bool set[SPAN] = {false};
	struct kp_ranges s = {0}, back = {0};
	char out[4096], why[160];

	(void)state;
	for (int64_t i = 0; i < SPAN; i++) {
		int64_t off = (i * 37 + 5) % SPAN;
		if ((off / 3) % 4 == 1 || off % 11 == 0)
			continue;
		assert_int_equal(kp_ranges_add(&s, off), 0);
		set[off] = true;
	}
	assert_int_equal(kp_replay_meta_print(&s, 0, out, sizeof(out)), 0);
	assert_int_equal(kp_replay_meta_parse(&back, out, strlen(out), 0, why, sizeof(why)), 0);
	assert_int_equal(back.n, s.n);
	assert_memory_equal(back.r, s.r, s.n * sizeof(*s.r));
	assert_same_set(&back, set);
	kp_ranges_free(&back);
	kp_ranges_free(&s);
}

/* A partition with gaps, read from several floors (the committed offset). */
static void meta_parse_gaps_and_floor(void **state)
{
	static const char meta[] = "replayed:100-104,110,120-121";
	struct kp_ranges s = {0};
	char why[160];

	(void)state;
	assert_int_equal(kp_replay_meta_parse(&s, meta, strlen(meta), 0, why, sizeof(why)), 0);
	assert_int_equal(s.n, 3);
	for (int64_t off = 95; off < 125; off++)
		assert_int_equal(kp_ranges_has(&s, off), (off >= 100 && off <= 104) || off == 110 ||
							     off == 120 || off == 121);
	assert_int_equal(kp_replay_meta_parse(&s, meta, strlen(meta), 102, why, sizeof(why)), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.r[0].a, 102); /* the range cut at the floor */
	assert_false(kp_ranges_has(&s, 101));
	assert_true(kp_ranges_has(&s, 102));
	assert_int_equal(kp_replay_meta_parse(&s, meta, strlen(meta), 111, why, sizeof(why)), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].a, 120);
	assert_int_equal(kp_replay_meta_parse(&s, meta, strlen(meta), 122, why, sizeof(why)), 0);
	assert_int_equal(s.n, 0);
	/* Ranges out of order and overlapping, as no replay writes them: joined. */
	assert_int_equal(
	    kp_replay_meta_parse(&s, "replayed:10-12,3,11-15,4,16", 27, 0, why, sizeof(why)), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.r[0].a, 3);
	assert_int_equal(s.r[0].b, 4);
	assert_int_equal(s.r[1].a, 10);
	assert_int_equal(s.r[1].b, 16);
	/* Only len bytes are read: the metadata is not a C string. */
	assert_int_equal(kp_replay_meta_parse(&s, "replayed:12345", 11, 0, why, sizeof(why)), 0);
	assert_int_equal(s.n, 1);
	assert_true(kp_ranges_has(&s, 12));
	assert_false(kp_ranges_has(&s, 12345));
	/* Empty metadata and the bare prefix hold nothing, and are no error. */
	assert_int_equal(kp_replay_meta_parse(&s, "", 0, 0, why, sizeof(why)), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(kp_replay_meta_parse(&s, "replayed:", 9, 0, why, sizeof(why)), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(
	    kp_replay_meta_parse(&s, "replayed:9223372036854775807", 28, 0, why, sizeof(why)), 0);
	assert_true(kp_ranges_has(&s, INT64_MAX));
	kp_ranges_free(&s);
}

/* Metadata that replay does not write: refused whole, s left empty, why saying what. */
static void assert_refused(const char *meta, const char *want)
{
	struct kp_ranges s = {0};
	char why[160] = "";

	assert_int_equal(kp_ranges_add(&s, 7), 0); /* what s held before goes too */
	if (kp_replay_meta_parse(&s, meta, strlen(meta), 0, why, sizeof(why)) != -1)
		fail_msg("'%s' was read", meta);
	assert_int_equal(s.n, 0);
	assert_null(s.r);
	if (strstr(why, want) == NULL)
		fail_msg("'%s': wanted '%s' in '%s'", meta, want, why);
}

static void meta_parse_malformed(void **state)
{
	(void)state;
	assert_refused("played:1-2", "does not start with \"replayed:\"");
	assert_refused("replay", "does not start with");
	assert_refused("Replayed:1", "does not start with");
	assert_refused("replayed:5-3", "runs backwards");
	assert_refused("replayed:1,,2", "item 2 (at byte 11)");
	assert_refused("replayed:1,2,", "item 3 (at byte 13)");
	assert_refused("replayed:,1", "item 1 (at byte 9)");
	assert_refused("replayed:-1", "item 1");
	assert_refused("replayed:1-", "item 1");
	assert_refused("replayed:1-2-3", "item 1");
	assert_refused("replayed: 1", "item 1");
	assert_refused("replayed:+1", "item 1");
	assert_refused("replayed:0x10", "item 1");
	assert_refused("replayed:9223372036854775808", "up to 2^63-1");
	assert_refused("replayed:1-99999999999999999999", "item 1");
	assert_refused("replayed:4,5;6", "item 2");
}

static void decimal(void **state)
{
	int64_t v = -1;

	(void)state;
	assert_int_equal(kp_cmd_decimal("0", 1, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(kp_cmd_decimal("10", 2, 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(kp_cmd_decimal("11", 2, 10, &v), -1);
	assert_int_equal(v, 10); /* untouched on failure */
	assert_int_equal(kp_cmd_decimal("", 0, 10, &v), -1);
	assert_int_equal(kp_cmd_decimal("1a", 2, 100, &v), -1);
	assert_int_equal(kp_cmd_decimal("9223372036854775807", 19, INT64_MAX, &v), 0);
	assert_int_equal(v, INT64_MAX);
	assert_int_equal(kp_cmd_decimal("9223372036854775808", 19, INT64_MAX, &v), -1);
	assert_int_equal(kp_cmd_decimal("2147483648", 10, INT32_MAX, &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ranges_merge_and_touch),
	    cmocka_unit_test(ranges_out_of_order),
	    cmocka_unit_test(meta_print),
	    cmocka_unit_test(meta_print_cap),
	    cmocka_unit_test(meta_print_replay_cap),
	    cmocka_unit_test(meta_round_trip),
	    cmocka_unit_test(meta_parse_gaps_and_floor),
	    cmocka_unit_test(meta_parse_malformed),
	    cmocka_unit_test(decimal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
