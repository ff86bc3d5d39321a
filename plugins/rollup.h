/*
 * rollup.h - the analytics handler's rollup, shared by the plugin (folds
 * events in) and `kpool analytics` (reports): the table, the granularities,
 * and the HyperLogLog sketch of distinct users kept in each row.
 *
 * A row counts the events of one name in one bucket: bucket is the start of
 * the minute, hour or day (UTC) in seconds since the epoch.
 *
 * The users blob is a sketch of the userIds seen, each as hll_hash() of its
 * bytes (a number as its decimal digits).  Its first byte says which form:
 *   1  sparse: then p (14), then the distinct hashes, sorted, each 8 bytes
 *      little-endian; the count of distinct users is exact.  Used up to
 *      HLL_SPARSE_MAX hashes, the size of the dense form.
 *   2  dense: then p (14), then 2^p one-byte HyperLogLog registers; register
 *      i holds the largest rank seen among the hashes whose top p bits are
 *      i, the rank being 1 + the leading zero bits of the other 64 - p bits.
 *      Estimated with Ertl's improved raw estimator (standard error
 *      1.04 / sqrt(2^p) = 0.8%, no bias at small or large counts).
 * Two sketches merge exactly: the union of the hashes, the larger register.
 */
#ifndef KPOOL_ROLLUP_H
#define KPOOL_ROLLUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROLLUP_SCHEMA                                                                              \
	"CREATE TABLE IF NOT EXISTS rollup (granularity TEXT, bucket INTEGER, event TEXT,\n"       \
	"  count INTEGER NOT NULL, users BLOB NOT NULL,\n"                                         \
	"  PRIMARY KEY (granularity, bucket, event)) WITHOUT ROWID;\n"

#define ROLLUP_GRANS 3
struct rollup_gran {
	const char *name; /* minute, hour, day */
	int64_t width;	  /* seconds */
};
extern const struct rollup_gran rollup_grans[ROLLUP_GRANS];

int rollup_gran_find(const char *name); /* its index, or -1 */

#define HLL_P	       14
#define HLL_M	       (1u << HLL_P)
#define HLL_SPARSE_MAX (HLL_M / 8)
#define HLL_SPARSE     1
#define HLL_DENSE      2
/* The largest count an estimate gives (2^53, a double's last exact integer):
 * registers all at the largest rank, which no real set of users reaches, would
 * estimate infinity. */
#define HLL_COUNT_MAX 9007199254740992.0

struct hll {
	uint64_t *hash; /* sparse: n sorted distinct hashes (cap allocated) */
	size_t n, cap;
	uint8_t *reg;  /* dense: HLL_M registers; hash is then unused */
	bool borrowed; /* reg is the caller's (hll_wrap), not freed */
};

uint64_t hll_hash(const void *p, size_t n);
int hll_add(struct hll *h, uint64_t *hashes, size_t n);
int hll_merge(struct hll *h, const struct hll *o);
int hll_load(struct hll *h, const void *blob, size_t len);
int hll_wrap(struct hll *h, unsigned char *blob, size_t len);
size_t hll_blob_size(const struct hll *h);
void hll_blob(const struct hll *h, unsigned char *out);
double hll_count(const struct hll *h);
bool hll_exact(const struct hll *h);
void hll_free(struct hll *h);

#endif
