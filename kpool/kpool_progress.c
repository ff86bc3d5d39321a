/*
 * kpool_progress.c - what `kpool dlq replay` remembers of a partition: the
 * offsets it replayed, as ranges, and the text of them it keeps in a
 * commit's metadata ("replayed:A-B,C").  The metadata comes back from Kafka
 * as whatever was committed, so it is read as outside input: numbers are
 * checked for overflow, anything else refused whole, and the work is in the
 * number of ranges written, never in how many offsets they span.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpool_cmd.h"

#define META_PREFIX "replayed:"

/*
 * n bytes at s as a decimal number: one or more digits, nothing else (no
 * sign, no space), at most max.  Returns 0 and the number in *out, or -1.
 */
int kp_cmd_decimal(const char *s, size_t n, int64_t max, int64_t *out)
{
	int64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int d = s[i] - '0';
		if (d < 0 || d > 9 || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Frees s's ranges; s is left empty, ready to be used again. */
void kp_ranges_free(struct kp_ranges *s)
{
	free(s->r);
	memset(s, 0, sizeof(*s));
}

/* The index of the first range that ends at or after off (s->n if none). */
static size_t first_ending(const struct kp_ranges *s, int64_t off)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->r[mid].b < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Adds offset off (>= 0); ranges that touch are joined.  Adding above the
 * last range, as replay does, is O(1); below it O(log n) plus a move.
 * Returns 0, or -1 (nothing changed) for a negative offset or when memory
 * runs out.
 */
int kp_ranges_add(struct kp_ranges *s, int64_t off)
{
	size_t i;

	if (off < 0)
		return -1;
	if (s->n && s->r[s->n - 1].b < off - 1) {
		i = s->n;
	} else {
		i = first_ending(s, off - 1); /* the first range off is in or touches, if any */
		if (i < s->n && s->r[i].a - 1 <= off) {
			if (off < s->r[i].a)
				s->r[i].a = off;
			if (off > s->r[i].b) {
				s->r[i].b = off;
				if (i + 1 < s->n &&
				    s->r[i + 1].a - 1 == off) { /* it closes a gap */
					s->r[i].b = s->r[i + 1].b;
					memmove(&s->r[i + 1], &s->r[i + 2],
						(s->n - i - 2) * sizeof(*s->r));
					s->n--;
				}
			}
			return 0;
		}
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct kp_range *x = realloc(s->r, cap * sizeof(*x));
		if (x == NULL)
			return -1;
		s->r = x;
		s->cap = cap;
	}
	memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(*s->r));
	s->r[i].a = s->r[i].b = off;
	s->n++;
	return 0;
}

/* Whether off is in one of s's ranges; O(log n). */
bool kp_ranges_has(const struct kp_ranges *s, int64_t off)
{
	size_t i = first_ending(s, off);

	return i < s->n && s->r[i].a <= off;
}

/* qsort's order for ranges: by their first offset. */
static int by_start(const void *x, const void *y)
{
	const struct kp_range *a = x, *b = y;

	return a->a < b->a ? -1 : a->a > b->a;
}

/*
 * Reads a commit's metadata, "replayed:A-B,C,...", into s (what s held is
 * freed first), keeping only offsets >= floor.  Returns 0, or -1 with s empty and why
 * says what is wrong (s holds no half-read metadata); -1 also when memory
 * runs out.  Empty metadata holds no offsets.  O(n log n) in the number of
 * ranges written.
 */
int kp_replay_meta_parse(struct kp_ranges *s, const char *meta, size_t len, int64_t floor,
			 char *why, size_t why_len)
{
	const size_t plen = sizeof(META_PREFIX) - 1;
	const char *p, *end = meta + len;
	struct kp_range *r;
	size_t n = 1, k = 0;

	kp_ranges_free(s);
	if (len == 0)
		return 0;
	if (len < plen || memcmp(meta, META_PREFIX, plen) != 0) {
		snprintf(why, why_len, "it does not start with \"" META_PREFIX "\"");
		return -1;
	}
	if (len == plen)
		return 0;
	for (p = meta + plen; p < end; p++)
		n += *p == ',';
	if ((r = malloc(n * sizeof(*r))) == NULL) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	for (p = meta + plen;; p++, k++) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *tok_end = comma ? comma : end;
		const char *dash = memchr(p, '-', (size_t)(tok_end - p));
		const char *a_end = dash ? dash : tok_end;

		if (kp_cmd_decimal(p, (size_t)(a_end - p), INT64_MAX, &r[k].a) < 0 ||
		    (dash && kp_cmd_decimal(dash + 1, (size_t)(tok_end - dash - 1), INT64_MAX,
					    &r[k].b) < 0)) {
			snprintf(why, why_len,
				 "its item %zu (at byte %zu) is not an offset N or a range A-B of "
				 "offsets up to 2^63-1",
				 k + 1, (size_t)(p - meta));
			goto bad;
		}
		if (!dash)
			r[k].b = r[k].a;
		if (r[k].b < r[k].a) {
			snprintf(why, why_len, "its range %" PRId64 "-%" PRId64 " runs backwards",
				 r[k].a, r[k].b);
			goto bad;
		}
		if (comma == NULL)
			break;
		p = comma;
	}
	qsort(r, n, sizeof(*r), by_start);
	for (size_t i = 0; i < n; i++) { /* join what overlaps or touches, from floor up */
		if (r[i].b < floor)
			continue;
		if (r[i].a < floor)
			r[i].a = floor;
		if (s->n && r[i].a - 1 <= r[s->n - 1].b) {
			if (r[i].b > r[s->n - 1].b)
				r[s->n - 1].b = r[i].b;
		} else {
			r[s->n++] = r[i];
		}
	}
	s->r = r;
	s->cap = n;
	return 0;
bad:
	free(r);
	return -1;
}

/*
 * The metadata of s's offsets >= from, "replayed:A-B,C", in out (len
 * bytes); "" when there are none.  Only whole ranges are written: the
 * first that does not fit and all after it are left out (and would be
 * replayed again), never cut, so the text never claims an offset that was
 * not replayed.  Returns the number of ranges left out (with len 0, out is
 * not written).
 */
size_t kp_replay_meta_print(const struct kp_ranges *s, int64_t from, char *out, size_t len)
{
	size_t used = 0, left = 0, i = first_ending(s, from);
	char tok[sizeof(META_PREFIX) + 2 * 20 + 2]; /* "replayed:A-B" or ",A-B", 19 digits each */

	if (len == 0)
		return s->n - i;
	out[0] = '\0';
	for (; i < s->n; i++) {
		int64_t a = s->r[i].a < from ? from : s->r[i].a, b = s->r[i].b;
		int n = b > a
			    ? snprintf(tok, sizeof(tok), "%s%" PRId64 "-%" PRId64,
				       used ? "," : META_PREFIX, a, b)
			    : snprintf(tok, sizeof(tok), "%s%" PRId64, used ? "," : META_PREFIX, a);
		if (n < 0 || (size_t)n >= sizeof(tok) || used + (size_t)n + 1 > len) {
			left = s->n - i;
			break;
		}
		memcpy(out + used, tok, (size_t)n + 1);
		used += (size_t)n;
	}
	return left;
}

/* PARTITION:OFFSET, each a decimal number in its range; -1 if s is not that. */
int kp_dlq_at_parse(const char *s, int32_t *part, int64_t *offset)
{
	const char *colon = strchr(s, ':');
	int64_t p;

	if (colon == NULL || kp_cmd_decimal(s, (size_t)(colon - s), INT32_MAX, &p) < 0 ||
	    kp_cmd_decimal(colon + 1, strlen(colon + 1), INT64_MAX, offset) < 0)
		return -1;
	*part = (int32_t)p;
	return 0;
}
