/*
 * kpool_audit.c - `kpool audit verify DB` and `kpool audit query DB`: the
 * audit handler's log checked link by link, and read.
 */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"
#include "kpool_cmd.h"

/* kpool audit verify DB: 0 if the chain holds, 1 at its first bad entry, 2 having said why. */
static int verify(const char *path)
{
	sqlite3 *db = kp_cmd_open_ro(path);
	int64_t n = 0, bad = 0;
	char why[256];
	int rc;

	if (db == NULL)
		return 2;
	rc = audit_verify(db, &n, &bad, why, sizeof(why));
	sqlite3_close(db);
	if (rc == 0) {
		printf("ok %lld entries\n", (long long)n);
		return 0;
	}
	if (rc > 0) {
		printf("bad seq %lld: %s (%lld entries before it hold)\n", (long long)bad, why,
		       (long long)n);
		return 1;
	}
	fprintf(stderr, "kpool: %s: %s\n", path, why);
	return 2;
}

/* Column i's text, "" for NULL. */
static const char *txt(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

/*
 * Column i as JSON: null, or its text as valid UTF-8 (a byte that is not
 * part of it becomes U+FFFD), so that no entry is dropped for its bytes.
 */
static json_t *column_json(sqlite3_stmt *st, int i)
{
	const void *s = sqlite3_column_text(st, i);

	return s ? kp_json_text(s, (size_t)sqlite3_column_bytes(st, i)) : json_null();
}

/*
 * kpool audit query DB: the entries that match, as a table or --json; 0,
 * or 2 having said why.  A read error part way ends the list there, unsaid.
 */
static int query(const char *path, int argc, char **argv)
{
	static const struct option longopts[] = {{"user", required_argument, NULL, 'u'},
						 {"action", required_argument, NULL, 'a'},
						 {"since", required_argument, NULL, 's'},
						 {"json", no_argument, NULL, 'j'},
						 {NULL, 0, NULL, 0}};
	const char *user = NULL, *action = NULL;
	int64_t since = -1;
	int json = 0, c;
	sqlite3 *db;
	sqlite3_stmt *st = NULL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			user = optarg;
			break;
		case 'a':
			action = optarg;
			break;
		case 's':
			if ((since = kp_cmd_since_arg("--since", optarg)) < 0)
				return 2;
			break;
		case 'j':
			json = 1;
			break;
		default:
			return 2;
		}
	}
	if ((db = kp_cmd_open_ro(path)) == NULL)
		return 2;
	if ((st =
		 kp_cmd_prepare(db, path,
				"SELECT seq, at, user_id, action, resource, details, event_id FROM "
				"audit_log WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR "
				"action = ?2) AND at >= ?3 ORDER BY seq")) == NULL) {
		sqlite3_close(db);
		return 2;
	}
	if (user)
		sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	if (action)
		sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, since < 0 ? 0 : since);

	struct kp_table t;
	json_t *arr = json_array();
	kp_table_init(&t, 7, "SEQ", "AT", "USER", "ACTION", "RESOURCE", "EVENT ID", "DETAILS");
	while (sqlite3_step(st) == SQLITE_ROW) {
		char seq[24], at[32];
		snprintf(seq, sizeof(seq), "%lld", (long long)sqlite3_column_int64(st, 0));
		kp_cmd_iso(sqlite3_column_int64(st, 1), at, sizeof(at));
		if (json) {
			json_error_t e;
			const char *d = (const char *)sqlite3_column_text(st, 5);
			json_t *details = d ? json_loads(d, JSON_DECODE_ANY, &e) : json_null();
			if (details == NULL) /* text that is not JSON, as a string */
				details = column_json(st, 5);
			json_array_append_new(
			    arr, json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o}", "seq",
					   (json_int_t)sqlite3_column_int64(st, 0), "at", at,
					   "user_id", column_json(st, 2), "action",
					   column_json(st, 3), "resource", column_json(st, 4),
					   "details", details, "event_id", column_json(st, 6)));
		} else {
			kp_table_row(&t, seq, at, txt(st, 2), txt(st, 3), txt(st, 4), txt(st, 6),
				     txt(st, 5));
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (json) {
		kp_json_print(arr, stdout, JSON_INDENT(2));
	} else {
		kp_table_print(&t, stdout);
		printf("%zu entries\n", t.n_rows);
	}
	json_decref(arr);
	kp_table_free(&t);
	return 0;
}

/* kpool audit: what verify or query returns, or the usage on standard error and 2. */
int kp_cmd_audit(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "verify") == 0)
		return verify(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "query") == 0)
		return query(argv[2], argc - 2, argv + 2);
	fprintf(stderr,
		"usage: kpool audit verify DB\n"
		"       kpool audit query DB [--user U] [--action A] [--since T] [--json]\n");
	return 2;
}
