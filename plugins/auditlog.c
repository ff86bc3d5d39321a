/*
 * auditlog.c - see auditlog.h.
 */
#include "config.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"

static void put64(EVP_MD_CTX *c, int64_t v)
{
	unsigned char b[8];
	for (int i = 7; i >= 0; i--, v = (int64_t)((uint64_t)v >> 8))
		b[i] = (unsigned char)(v & 0xff);
	EVP_DigestUpdate(c, b, 8);
}

static void putstr(EVP_MD_CTX *c, const char *s)
{
	uint32_t n = s ? (uint32_t)strlen(s) : 0xffffffffu;
	unsigned char b[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
			      (unsigned char)(n >> 8), (unsigned char)n};
	EVP_DigestUpdate(c, b, 4);
	if (s)
		EVP_DigestUpdate(c, s, strlen(s));
}

void audit_hash(const unsigned char prev[AUDIT_HASH_LEN], const struct audit_row *r,
		unsigned char out[AUDIT_HASH_LEN])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 0;

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, prev, AUDIT_HASH_LEN);
	put64(c, r->seq);
	putstr(c, r->event_id);
	put64(c, r->at);
	putstr(c, r->user_id);
	putstr(c, r->action);
	putstr(c, r->resource);
	putstr(c, r->details);
	putstr(c, r->job);
	EVP_DigestFinal_ex(c, out, &n);
	EVP_MD_CTX_free(c);
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
		audit_hash(prev, &r, h);
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
