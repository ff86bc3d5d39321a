/*
 * auditlog.h - the audit handler's tamper-evident log, shared by the plugin
 * (appends) and `kpool audit` (verify, query): the table, the hash of a row
 * and the chain check.
 *
 * hash = SHA-256(prev_hash || row), where row is the fields in this order:
 * seq, event_id, at, user_id, action, resource, details, job; seq and at as
 * 8-byte big-endian integers, the others each as a 4-byte big-endian length
 * and its bytes (a NULL as length 0xffffffff and no bytes).  The first row's
 * prev_hash is 32 zero bytes.  Logs in use depend on this layout: it does not
 * change.  audit_encode() gives the row's bytes, audit_hash() their hash.
 */
#ifndef KPOOL_AUDITLOG_H
#define KPOOL_AUDITLOG_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_HASH_LEN 32

#define AUDIT_SCHEMA                                                                               \
	"CREATE TABLE IF NOT EXISTS audit_log (\n"                                                 \
	"  seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, at INTEGER NOT NULL,\n"         \
	"  user_id TEXT, action TEXT NOT NULL, resource TEXT, details TEXT, job TEXT NOT NULL,\n"  \
	"  prev_hash BLOB NOT NULL, hash BLOB NOT NULL);\n"                                        \
	"CREATE INDEX IF NOT EXISTS audit_log_user ON audit_log (user_id, at);\n"                  \
	"CREATE INDEX IF NOT EXISTS audit_log_action ON audit_log (action, at);\n"

struct audit_row {
	int64_t seq, at; /* at: milliseconds since the epoch */
	const char *event_id, *user_id, *action, *resource, *details, *job;
};

/* A text of the row is shorter than this: its length must fit in 4 bytes, and not be NULL's. */
#define AUDIT_TEXT_MAX 0xffffffffu

/* Where audit_encode() puts the row's bytes, piece by piece. */
typedef void (*audit_put_fn)(void *arg, const void *p, size_t n);

int audit_encode(const struct audit_row *r, audit_put_fn put, void *arg);
int audit_hash(const unsigned char prev[AUDIT_HASH_LEN], const struct audit_row *r,
	       unsigned char out[AUDIT_HASH_LEN]);
int audit_verify(sqlite3 *db, int64_t *entries, int64_t *bad_seq, char *why, size_t len);

#endif
