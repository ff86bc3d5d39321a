/*
 * auditlog.h - the audit handler's tamper-evident log, shared by the plugin
 * (appends) and `kpool audit` (verify, query): the table, the hash of a row
 * and the chain check.
 *
 * hash = SHA-256(prev_hash || row), where row is seq and at as 8-byte
 * big-endian integers and event_id, user_id, action, resource, details, job
 * each as a 4-byte big-endian length and its bytes (a NULL as length
 * 0xffffffff and no bytes).  The first row's prev_hash is 32 zero bytes.
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

void audit_hash(const unsigned char prev[AUDIT_HASH_LEN], const struct audit_row *r,
		unsigned char out[AUDIT_HASH_LEN]);
int audit_verify(sqlite3 *db, int64_t *entries, int64_t *bad_seq, char *why, size_t len);

#endif
