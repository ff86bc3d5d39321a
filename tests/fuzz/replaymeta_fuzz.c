/*
 * replaymeta_fuzz.c - libFuzzer harness for the replay progress metadata
 * (kpool_progress.c): the bytes a group's commit may hold, as
 * "replayed:A-B,C".  Reading them takes time in the number of ranges
 * written, never in how many offsets they span (libFuzzer's -timeout is the
 * oracle); what is read prints back to text that reads back to the same
 * ranges; printed into too little room, the text claims no offset that was
 * not in them; read from a floor up, it holds exactly the offsets from
 * there; and adding offsets next to the ranges keeps them ascending, apart
 * and joined where they touch.
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.
 *
 * fuzz-sources: kpool/kpool_progress.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpool_cmd.h"

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, __VA_ARGS__);                                                      \
		abort();                                                                           \
	} while (0)

/* Ranges ascending, apart (not touching), each a <= b, all >= 0. */
static void check_shape(const struct kp_ranges *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->r[i].a < 0 || s->r[i].b < s->r[i].a)
			FAIL("range %zu: %lld-%lld\n", i, (long long)s->r[i].a,
			     (long long)s->r[i].b);
		if (i && s->r[i].a - 1 <= s->r[i - 1].b)
			FAIL("ranges %zu and %zu overlap or touch\n", i - 1, i);
	}
}

static bool same(const struct kp_ranges *x, const struct kp_ranges *y)
{
	return x->n == y->n && (x->n == 0 || memcmp(x->r, y->r, x->n * sizeof(*x->r)) == 0);
}

/* The index of the range of s that holds off, or s->n. */
static size_t range_of(const struct kp_ranges *s, int64_t off)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->r[mid].b < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->r[lo].a <= off ? lo : s->n;
}

/* Every offset of sub is in s. */
static bool within(const struct kp_ranges *sub, const struct kp_ranges *s)
{
	for (size_t i = 0; i < sub->n; i++) {
		size_t k = range_of(s, sub->r[i].a);
		if (k == s->n || s->r[k].b < sub->r[i].b)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct kp_ranges s = {0}, again = {0}, part = {0}, high = {0};
	size_t len = 2 * size + 64, left;
	char *text = malloc(len), *text2 = malloc(len), why[160];
	int64_t floor;

	if (text == NULL || text2 == NULL)
		abort();
	if (kp_replay_meta_parse(&s, (const char *)data, size, 0, why, sizeof(why)) < 0) {
		if (s.n != 0)
			FAIL("refused (%s) but holds %zu ranges\n", why, s.n);
		goto out;
	}
	check_shape(&s);
	/* print, read, print: the same */
	if ((left = kp_replay_meta_print(&s, 0, text, len)) != 0)
		FAIL("%zu ranges left out of %zu bytes\n", left, len);
	if (kp_replay_meta_parse(&again, text, strlen(text), 0, why, sizeof(why)) < 0)
		FAIL("its own text '%s' is refused: %s\n", text, why);
	if (!same(&s, &again))
		FAIL("'%s' reads back to other ranges\n", text);
	kp_replay_meta_print(&again, 0, text2, len);
	if (strcmp(text, text2) != 0)
		FAIL("'%s' prints back as '%s'\n", text, text2);
	/* too little room: whole ranges only, none claimed that is not there */
	kp_replay_meta_print(&s, 0, text2, strlen(text) / 2 + 1);
	if (kp_replay_meta_parse(&part, text2, strlen(text2), 0, why, sizeof(why)) < 0 ||
	    !within(&part, &s))
		FAIL("cut short, '%s' claims what '%s' does not\n", text2, text);
	/* from a floor inside the first range (or past it) */
	floor = s.n ? s.r[0].a + (s.r[0].b - s.r[0].a) / 2 : 0;
	if (kp_replay_meta_parse(&high, (const char *)data, size, floor, why, sizeof(why)) < 0)
		FAIL("refused from a floor, not from 0\n");
	check_shape(&high);
	for (size_t i = 0; i < s.n; i++) {
		int64_t a = s.r[i].a < floor ? floor : s.r[i].a;
		if (s.r[i].b >= floor &&
		    (!kp_ranges_has(&high, a) || !kp_ranges_has(&high, s.r[i].b)))
			FAIL("from %lld, range %zu is lost\n", (long long)floor, i);
	}
	if (high.n && high.r[0].a < floor)
		FAIL("from %lld, %lld is kept\n", (long long)floor, (long long)high.r[0].a);
	/* add next to each range: still well shaped, and holding what was added */
	for (size_t i = 0; i < s.n && i < 64; i++) {
		int64_t a = again.r[i < again.n ? i : again.n - 1].a,
			b = again.r[i < again.n ? i : again.n - 1].b;
		if (a > 0 && kp_ranges_add(&again, a - 1) == 0 && !kp_ranges_has(&again, a - 1))
			FAIL("%lld added, not held\n", (long long)(a - 1));
		if (b < INT64_MAX && kp_ranges_add(&again, b + 1) == 0 &&
		    !kp_ranges_has(&again, b + 1))
			FAIL("%lld added, not held\n", (long long)(b + 1));
		check_shape(&again);
	}
out:
	kp_ranges_free(&s);
	kp_ranges_free(&again);
	kp_ranges_free(&part);
	kp_ranges_free(&high);
	free(text);
	free(text2);
	return 0;
}
