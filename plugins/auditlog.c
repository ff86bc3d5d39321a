/*
 * auditlog.c - see auditlog.h.
 */
#include "config.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"

/* v as 8 bytes, big-endian (two's complement). */
static void put64(audit_put_fn put, void *arg, int64_t v)
{
	unsigned char b[8];

	for (int i = 7; i >= 0; i--, v = (int64_t)((uint64_t)v >> 8))
		b[i] = (unsigned char)(v & 0xff);
	put(arg, b, 8);
}

/* s as a 4-byte big-endian length and its bytes; NULL as length 0xffffffff. */
static void putstr(audit_put_fn put, void *arg, const char *s, size_t n)
{
	uint32_t len = s ? (uint32_t)n : 0xffffffffu;
	unsigned char b[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
			      (unsigned char)(len >> 8), (unsigned char)len};

	put(arg, b, 4);
	if (s && n > 0)
		put(arg, s, n);
}

/*
 * Puts the bytes of a row, as the chain hashes them (auditlog.h), through
 * put.  -1, having put nothing, if a text is AUDIT_TEXT_MAX bytes or longer
 * (its length would not fit).
 */
int audit_encode(const struct audit_row *r, audit_put_fn put, void *arg)
{
	const char *texts[] = {r->event_id, r->user_id, r->action, r->resource, r->details, r->job};
	size_t len[sizeof(texts) / sizeof(*texts)];

	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
		len[i] = texts[i] ? strlen(texts[i]) : 0;
		if (len[i] >= AUDIT_TEXT_MAX)
			return -1;
	}
	put64(put, arg, r->seq);
	putstr(put, arg, r->event_id, len[0]);
	put64(put, arg, r->at);
	for (size_t i = 1; i < sizeof(texts) / sizeof(*texts); i++)
		putstr(put, arg, texts[i], len[i]);
	return 0;
}

struct digest {
	EVP_MD_CTX *c;
	bool ok;
};

static void digest_put(void *arg, const void *p, size_t n)
{
	struct digest *d = arg;

	if (d->ok && EVP_DigestUpdate(d->c, p, n) != 1)
		d->ok = false;
}

/* SHA-256 of prev and the row's bytes into out; -1 if the row cannot be encoded or hashed. */
int audit_hash(const unsigned char prev[AUDIT_HASH_LEN], const struct audit_row *r,
	       unsigned char out[AUDIT_HASH_LEN])
{
	struct digest d = {EVP_MD_CTX_new(), true};
	unsigned int n = 0;
	int rc = -1;

	if (d.c && EVP_DigestInit_ex(d.c, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(d.c, prev, AUDIT_HASH_LEN) == 1 &&
	    audit_encode(r, digest_put, &d) == 0 && d.ok && EVP_DigestFinal_ex(d.c, out, &n) == 1 &&
	    n == AUDIT_HASH_LEN)
		rc = 0;
	EVP_MD_CTX_free(d.c);
	return rc;
}

static const char *col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/*
 * Walks the chain in seq order: each row's prev_hash must be the hash of the
 * row before it, and its hash that of its own contents.  0 when every row
 * holds (entries set); 1 with bad_seq and why at the first that does not;
 * -1 with why when the table cannot be read.
 */
int audit_verify(sqlite3 *db, int64_t *entries, int64_t *bad_seq, char *why, size_t len)
{
	sqlite3_stmt *st = NULL;
	unsigned char prev[AUDIT_HASH_LEN] = {0}, h[AUDIT_HASH_LEN];
	int rc;

	*entries = 0;
	if (sqlite3_prepare_v2(db,
			       "SELECT seq, at, event_id, user_id, action, resource, details, job, "
			       "prev_hash, hash FROM audit_log ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK) {
		snprintf(why, len, "%s", sqlite3_errmsg(db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct audit_row r = {
		    .seq = sqlite3_column_int64(st, 0),
		    .at = sqlite3_column_int64(st, 1),
		    .event_id = col(st, 2),
		    .user_id = col(st, 3),
		    .action = col(st, 4),
		    .resource = col(st, 5),
		    .details = col(st, 6),
		    .job = col(st, 7),
		};
		const void *ph = sqlite3_column_blob(st, 8), *hh = sqlite3_column_blob(st, 9);
		*bad_seq = r.seq;
		if (sqlite3_column_bytes(st, 8) != AUDIT_HASH_LEN ||
		    memcmp(ph, prev, AUDIT_HASH_LEN) != 0) {
			snprintf(why, len, "prev_hash is not the hash of the entry before it%s",
				 *entries == 0 ? " (the first entry's is 32 zero bytes)" : "");
			sqlite3_finalize(st);
			return 1;
		}
		if (audit_hash(prev, &r, h) < 0) {
			snprintf(why, len, "its hash cannot be computed");
			sqlite3_finalize(st);
			return 1;
		}
		if (sqlite3_column_bytes(st, 9) != AUDIT_HASH_LEN ||
		    memcmp(hh, h, AUDIT_HASH_LEN) != 0) {
			snprintf(why, len, "its hash does not match its contents");
			sqlite3_finalize(st);
			return 1;
		}
		memcpy(prev, h, AUDIT_HASH_LEN);
		(*entries)++;
	}
	if (rc != SQLITE_DONE) {
		snprintf(why, len, "%s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}
