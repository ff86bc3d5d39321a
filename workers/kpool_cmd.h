/*
 * kpool_cmd.h - what the kpool command's subcommands share: aligned tables,
 * times, read-only databases, and the subcommands themselves.
 */
#ifndef KPOOL_CMD_H
#define KPOOL_CMD_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KP_TABLE_COLS 10

/* Rows of text printed as aligned columns; the last column is cut to the terminal. */
struct kp_table {
	int cols;
	char **cells;  /* the header, then n_rows rows, of cols cells each */
	size_t n_rows; /* rows below the header */
	size_t cap;
};

void kp_table_init(struct kp_table *t, int cols, ...);
void kp_table_row(struct kp_table *t, ...);
void kp_table_print(const struct kp_table *t, FILE *f);
void kp_table_free(struct kp_table *t);

int64_t kp_cmd_since_ms(const char *s);
int64_t kp_cmd_since_arg(const char *s);
sqlite3 *kp_cmd_open_ro(const char *path);
sqlite3_stmt *kp_cmd_prepare(sqlite3 *db, const char *path, const char *sql);
void kp_cmd_iso(int64_t ms, char *out, size_t len);

struct kp_conf;
int kp_cmd_audit(int argc, char **argv);
int kp_cmd_dlq(const struct kp_conf *conf, int argc, char **argv);
int kp_cmd_status(const struct kp_conf *conf, int argc, char **argv);
int kp_cmd_analytics(int argc, char **argv);

#endif
