/*
 * sketch_fuzz.c - libFuzzer harness for the analytics sketch blobs
 * (rollup.c: hll_load, hll_wrap, hll_merge, hll_add, hll_count, hll_blob):
 * the users blob as read back from a rollup file, which may hold any bytes.
 * A blob is refused, or read as written: it writes back the same bytes,
 * hll_wrap reads it as hll_load does, and its count is a finite number (the
 * exact one while sparse).  Two blobs merge the same either way round, into
 * a sketch that counts at least what each did when both are exact, and
 * hashes added count as a merge of them does.
 *
 * Input: a byte that says how to read the rest, then two blobs, the first
 * one's length in two bytes (little-endian).  Mode bit 0: a blob's bytes
 * after its header fill the 2^14 registers of a dense form, repeated (the
 * fuzzer's inputs are shorter than a dense blob).
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.
 *
 * fuzz-sources: plugins/rollup.c
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollup.h"

/* The blob to read: the bytes as they are, or a dense form filled from them. */
static unsigned char *blob_of(const unsigned char *p, size_t n, int dense, size_t *len)
{
	unsigned char *b;

	if (!dense || n == 0) {
		b = malloc(n ? n : 1);
		if (b && n)
			memcpy(b, p, n);
		*len = n;
		return b;
	}
	*len = 2 + HLL_M;
	if ((b = malloc(*len)) == NULL)
		return NULL;
	b[0] = HLL_DENSE;
	b[1] = HLL_P;
	for (size_t i = 0; i < HLL_M; i++)
		b[2 + i] = p[i % n];
	return b;
}

/* A count must be a number, not below 0, and exact while the sketch is. */
static void check_count(const struct hll *h, const char *what)
{
	double c = hll_count(h);

	if (!isfinite(c) || c < 0 || c > HLL_COUNT_MAX || (hll_exact(h) && c != (double)h->n)) {
		fprintf(stderr, "%s: count %g (exact %d, n %zu)\n", what, c, hll_exact(h), h->n);
		abort();
	}
}

/* The blob h writes, which must read back as h. */
static unsigned char *written(const struct hll *h, size_t *len)
{
	unsigned char *b;
	struct hll back;

	*len = hll_blob_size(h);
	if ((b = malloc(*len)) == NULL)
		abort();
	hll_blob(h, b);
	if (hll_load(&back, b, *len) < 0 || hll_count(&back) != hll_count(h) ||
	    hll_exact(&back) != hll_exact(h)) {
		fprintf(stderr, "a sketch's blob does not read back as the sketch\n");
		abort();
	}
	hll_free(&back);
	return b;
}

/* Reads a blob both ways; 0 with h loaded, or -1 if refused (both ways). */
static int read_blob(struct hll *h, const unsigned char *b, size_t len, const char *what)
{
	unsigned char *copy = malloc(len ? len : 1), *w;
	struct hll wrapped;
	int rc = hll_load(h, b, len), rw;
	size_t wlen;

	if (copy == NULL)
		abort();
	if (len)
		memcpy(copy, b, len);
	rw = hll_wrap(&wrapped, copy, len);
	if (rc != rw) {
		fprintf(stderr, "%s: hll_load says %d, hll_wrap %d\n", what, rc, rw);
		abort();
	}
	if (rc == 0) {
		check_count(h, what);
		check_count(&wrapped, what);
		if (hll_count(h) != hll_count(&wrapped)) {
			fprintf(stderr, "%s: hll_load and hll_wrap count differently\n", what);
			abort();
		}
		w = written(h, &wlen);
		if (wlen != len || memcmp(w, b, len) != 0) {
			fprintf(stderr, "%s: read, it writes back other bytes\n", what);
			abort();
		}
		free(w);
	}
	hll_free(&wrapped);
	free(copy);
	return rc;
}

/* A copy of a loaded sketch, through its blob. */
static void copy_of(struct hll *to, const struct hll *from)
{
	size_t len;
	unsigned char *b = written(from, &len);

	if (hll_load(to, b, len) < 0)
		abort();
	free(b);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct hll a, b, ab, ba;
	unsigned char *ba_blob, *ab_blob, *blob_a, *blob_b;
	size_t la, lb, n1, len_ab, len_ba;
	int mode, ra, rb;

	if (size < 3)
		return 0;
	mode = data[0];
	n1 = (size_t)data[1] | (size_t)data[2] << 8;
	data += 3;
	size -= 3;
	if (n1 > size)
		n1 = size;
	blob_a = blob_of(data, n1, mode & 1, &la);
	blob_b = blob_of(data + n1, size - n1, mode & 2, &lb);
	if (blob_a == NULL || blob_b == NULL)
		abort();
	ra = read_blob(&a, blob_a, la, "first blob");
	rb = read_blob(&b, blob_b, lb, "second blob");
	if (ra == 0 && rb == 0) {
		copy_of(&ab, &a);
		copy_of(&ba, &b);
		if (hll_merge(&ab, &b) < 0 || hll_merge(&ba, &a) < 0)
			abort();
		check_count(&ab, "a merge");
		ab_blob = written(&ab, &len_ab);
		ba_blob = written(&ba, &len_ba);
		if (len_ab != len_ba || memcmp(ab_blob, ba_blob, len_ab) != 0) {
			fprintf(stderr, "a merge of two sketches depends on their order\n");
			abort();
		}
		if (hll_exact(&a) && hll_exact(&b) && hll_exact(&ab) &&
		    (hll_count(&ab) < hll_count(&a) || hll_count(&ab) < hll_count(&b) ||
		     hll_count(&ab) > hll_count(&a) + hll_count(&b))) {
			fprintf(stderr, "an exact merge counts %g of %g and %g\n", hll_count(&ab),
				hll_count(&a), hll_count(&b));
			abort();
		}
		free(ab_blob);
		free(ba_blob);
		hll_free(&ab);
		hll_free(&ba);
	}
	if (ra == 0) {
		/* The second blob's bytes as hashes, added: as a merge of them. */
		size_t n = lb / 8;
		uint64_t *hs = malloc((n ? n : 1) * sizeof(*hs));
		struct hll added, merged, set = {0};
		if (hs == NULL)
			abort();
		for (size_t i = 0; i < n; i++)
			memcpy(&hs[i], blob_b + 8 * i, 8);
		copy_of(&added, &a);
		copy_of(&merged, &a);
		if (hll_add(&set, hs, n) < 0 || hll_add(&added, hs, n) < 0 ||
		    hll_merge(&merged, &set) < 0)
			abort();
		check_count(&added, "hashes added");
		if (hll_count(&added) != hll_count(&merged)) {
			fprintf(stderr, "hashes added count %g, merged %g\n", hll_count(&added),
				hll_count(&merged));
			abort();
		}
		free(hs);
		hll_free(&set);
		hll_free(&added);
		hll_free(&merged);
	}
	if (ra == 0)
		hll_free(&a);
	if (rb == 0)
		hll_free(&b);
	free(blob_a);
	free(blob_b);
	return 0;
}
