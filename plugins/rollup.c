/*
 * rollup.c - see rollup.h.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rollup.h"

const struct rollup_gran rollup_grans[ROLLUP_GRANS] = {
    {"minute", 60},
    {"hour", 3600},
    {"day", 86400},
};

int rollup_gran_find(const char *name)
{
	for (int i = 0; i < ROLLUP_GRANS; i++)
		if (strcmp(rollup_grans[i].name, name) == 0)
			return i;
	return -1;
}

/* FNV-1a over the bytes, then SplitMix64's finalizer so that every output bit depends on every
 * input bit. */
uint64_t hll_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static void reg_set(uint8_t *reg, uint64_t x)
{
	uint64_t w = x << HLL_P;
	uint8_t rank = w ? (uint8_t)(__builtin_clzll(w) + 1) : 64 - HLL_P + 1;
	uint32_t i = (uint32_t)(x >> (64 - HLL_P));

	if (reg[i] < rank)
		reg[i] = rank;
}

/* The sparse form becomes dense; -1 if memory runs out (h unchanged). */
static int densify(struct hll *h)
{
	uint8_t *reg = calloc(HLL_M, 1);

	if (reg == NULL)
		return -1;
	for (size_t i = 0; i < h->n; i++)
		reg_set(reg, h->hash[i]);
	free(h->hash);
	h->hash = NULL;
	h->n = h->cap = 0;
	h->reg = reg;
	return 0;
}

/* Adds n sorted distinct hashes; 0, or -1 if memory runs out (h is then still a valid sketch). */
static int add_sorted(struct hll *h, const uint64_t *s, size_t n)
{
	if (h->reg == NULL) {
		uint64_t *out;
		size_t i = 0, j = 0, k = 0, cap = h->n + n;

		if (n == 0)
			return 0;
		if ((out = malloc(cap * sizeof(*out))) == NULL)
			return -1;
		while (i < h->n || j < n) {
			if (j == n || (i < h->n && h->hash[i] < s[j]))
				out[k++] = h->hash[i++];
			else if (i == h->n || s[j] < h->hash[i])
				out[k++] = s[j++];
			else
				out[k++] = h->hash[i++], j++;
		}
		free(h->hash);
		h->hash = out;
		h->n = k;
		h->cap = cap;
		return h->n <= HLL_SPARSE_MAX ? 0 : densify(h);
	}
	for (size_t i = 0; i < n; i++)
		reg_set(h->reg, s[i]);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Adds n hashes, which it sorts in place; 0, or -1 if memory runs out. */
int hll_add(struct hll *h, uint64_t *hashes, size_t n)
{
	size_t k = 0;

	if (n == 0)
		return 0;
	if (h->reg) {
		for (size_t i = 0; i < n; i++)
			reg_set(h->reg, hashes[i]);
		return 0;
	}
	qsort(hashes, n, sizeof(*hashes), cmp_u64);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || hashes[i] != hashes[k - 1])
			hashes[k++] = hashes[i];
	return add_sorted(h, hashes, k);
}

/* h becomes the union of h and o; 0, or -1 if memory runs out. */
int hll_merge(struct hll *h, const struct hll *o)
{
	if (o->reg == NULL)
		return add_sorted(h, o->hash, o->n);
	if (h->reg == NULL && densify(h) < 0)
		return -1;
	for (uint32_t i = 0; i < HLL_M; i++)
		if (h->reg[i] < o->reg[i])
			h->reg[i] = o->reg[i];
	return 0;
}

/* Reads a blob into an empty h; -1 if it is not a sketch of this form or memory runs out. */
int hll_load(struct hll *h, const void *blob, size_t len)
{
	const unsigned char *b = blob;

	memset(h, 0, sizeof(*h));
	if (len < 2 || b[1] != HLL_P)
		return -1;
	if (b[0] == HLL_DENSE) {
		if (len != 2 + HLL_M || (h->reg = malloc(HLL_M)) == NULL)
			return -1;
		memcpy(h->reg, b + 2, HLL_M); /* hll_count() bounds what a register may hold */
		return 0;
	}
	if (b[0] != HLL_SPARSE || (len - 2) % 8 != 0)
		return -1;
	h->n = h->cap = (len - 2) / 8;
	if (h->n == 0)
		return 0;
	if ((h->hash = malloc(h->n * sizeof(*h->hash))) == NULL) {
		h->n = h->cap = 0;
		return -1;
	}
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(h->hash, b + 2, h->n * 8);
#else
	for (size_t i = 0; i < h->n; i++) {
		uint64_t v = 0;
		for (int j = 7; j >= 0; j--)
			v = v << 8 | b[2 + i * 8 + (size_t)j];
		h->hash[i] = v;
	}
#endif
	for (size_t i = 1; i < h->n; i++)
		if (h->hash[i] <= h->hash[i - 1]) { /* not sorted and distinct */
			hll_free(h);
			return -1;
		}
	return 0;
}

/*
 * Like hll_load, but a dense blob is used in place: h's registers are the
 * blob's, which must outlive h, and hll_blob() into the same blob is free.
 */
int hll_wrap(struct hll *h, unsigned char *blob, size_t len)
{
	if (len == 2 + HLL_M && blob[0] == HLL_DENSE && blob[1] == HLL_P) {
		memset(h, 0, sizeof(*h));
		h->reg = blob + 2;
		h->borrowed = true;
		return 0;
	}
	return hll_load(h, blob, len);
}

size_t hll_blob_size(const struct hll *h)
{
	return 2 + (h->reg ? HLL_M : h->n * 8);
}

/* Writes hll_blob_size(h) bytes to out. */
void hll_blob(const struct hll *h, unsigned char *out)
{
	out[0] = h->reg ? HLL_DENSE : HLL_SPARSE;
	out[1] = HLL_P;
	if (h->reg) {
		if (h->reg != out + 2)
			memcpy(out + 2, h->reg, HLL_M);
		return;
	}
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (h->n > 0)
		memcpy(out + 2, h->hash, h->n * 8);
#else
	for (size_t i = 0; i < h->n; i++)
		for (int j = 0; j < 8; j++)
			out[2 + i * 8 + (size_t)j] = (unsigned char)(h->hash[i] >> (8 * j));
#endif
}

bool hll_exact(const struct hll *h)
{
	return h->reg == NULL;
}

/* Ertl, "New cardinality estimation algorithms for HyperLogLog sketches" (2017), section 4. */
static double sigma(double x)
{
	double y = 1, z = x, z0;

	if (x == 1)
		return INFINITY;
	do {
		x *= x;
		z0 = z;
		z += x * y;
		y += y;
	} while (z != z0);
	return z;
}

static double tau(double x)
{
	double y = 1, z = 1 - x, z0;

	if (x == 0 || x == 1)
		return 0;
	do {
		x = sqrt(x);
		z0 = z;
		y *= 0.5;
		z -= (1 - x) * (1 - x) * y;
	} while (z != z0);
	return z / 3;
}

/* The number of distinct users: exact while sparse, else estimated (at most HLL_COUNT_MAX). */
double hll_count(const struct hll *h)
{
	enum { Q = 64 - HLL_P };
	double m = HLL_M, c[Q + 2] = {0}, z;

	if (h->reg == NULL)
		return (double)h->n;
	for (uint32_t i = 0; i < HLL_M; i++)
		c[h->reg[i] <= Q + 1 ? h->reg[i]
				     : Q + 1]++; /* a larger one is no rank: read as the largest */
	z = m * tau((m - c[Q + 1]) / m);
	for (int k = Q; k >= 1; k--)
		z = 0.5 * (z + c[k]);
	z += m * sigma(c[0] / m);
	/* z is 0 when every register holds the largest rank, as only a blob made
	 * so can: the estimate would be infinite, which no caller can print. */
	return z > 0 ? fmin(m * m / (2 * log(2)) / z, HLL_COUNT_MAX) : HLL_COUNT_MAX;
}

void hll_free(struct hll *h)
{
	free(h->hash);
	if (!h->borrowed)
		free(h->reg);
	memset(h, 0, sizeof(*h));
}
