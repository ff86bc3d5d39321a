/*
 * kpool_table.c - aligned tables for the kpool command's human output, and
 * the read-only databases some of it comes from.
 */
#include "config.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kpool_cmd.h"

/*
 * Appends a row of t->cols cells: row 0 is the header, then the data rows.
 * Each cell is kept as kp_text_clean() shows it, so no control character in
 * a cell reaches the terminal.
 */
static void add(struct kp_table *t, size_t row, va_list ap)
{
	if ((row + 1) * (size_t)t->cols > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64 * (size_t)t->cols;
		char **c = realloc(t->cells, cap * sizeof(*c));
		if (c == NULL)
			abort(); /* a table for a terminal: no memory is no way on */
		t->cells = c;
		t->cap = cap;
	}
	for (int i = 0; i < t->cols; i++) {
		const char *s = va_arg(ap, const char *);
		t->cells[row * (size_t)t->cols + (size_t)i] =
		    kp_text_clean(s ? s : "", s ? strlen(s) : 0, 0);
	}
}

/* Starts t: cols columns (at most KP_TABLE_COLS) and its header cells; aborts when memory runs out.
 */
void kp_table_init(struct kp_table *t, int cols, ...)
{
	va_list ap;

	memset(t, 0, sizeof(*t));
	t->cols = cols < KP_TABLE_COLS ? cols : KP_TABLE_COLS;
	va_start(ap, cols);
	add(t, 0, ap);
	va_end(ap);
}

/* Adds a row of t->cols cells (NULL shown empty); aborts when memory runs out. */
void kp_table_row(struct kp_table *t, ...)
{
	va_list ap;

	va_start(ap, t);
	add(t, t->n_rows + 1, ap);
	va_end(ap);
	t->n_rows++;
}

/* Display width of UTF-8 text: one column per character. */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* Prints t to f, columns aligned, the last cut with ~ at the width of a terminal f. */
void kp_table_print(const struct kp_table *t, FILE *f)
{
	size_t w[KP_TABLE_COLS] = {0}, total = 0, term = 0;
	struct winsize ws;

	if (isatty(fileno(f)) && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		term = ws.ws_col;
	for (size_t r = 0; r <= t->n_rows; r++)
		for (int c = 0; c < t->cols; c++) {
			size_t x = width(t->cells[r * (size_t)t->cols + (size_t)c]);
			if (x > w[c])
				w[c] = x;
		}
	for (int c = 0; c < t->cols - 1; c++)
		total += w[c] + 2;
	for (size_t r = 0; r <= t->n_rows; r++) {
		for (int c = 0; c < t->cols; c++) {
			const char *s = t->cells[r * (size_t)t->cols + (size_t)c];
			if (c < t->cols - 1) {
				fputs(s, f);
				for (size_t pad = width(s); pad < w[c] + 2; pad++)
					fputc(' ', f);
			} else if (term > total + 1 && width(s) > term - total - 1) {
				size_t room = term - total - 2, i = 0, n = 0;
				while (s[i] && n < room) /* whole UTF-8 characters */
					if (((unsigned char)s[++i] & 0xc0) != 0x80)
						n++;
				fprintf(f, "%.*s~", (int)i, s);
			} else {
				fputs(s, f);
			}
		}
		fputc('\n', f);
	}
}

/* Frees t's cells; t is zeroed. */
void kp_table_free(struct kp_table *t)
{
	for (size_t i = 0; i < (t->n_rows + 1) * (size_t)t->cols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* Opens a database to read; NULL, having said why, if it cannot. */
sqlite3 *kp_cmd_open_ro(const char *path)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "kpool: %s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	return db;
}

/* A statement on a database kp_cmd_open_ro() opened; NULL, having said why, if it cannot be. */
sqlite3_stmt *kp_cmd_prepare(sqlite3 *db, const char *path, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fprintf(stderr, "kpool: %s: %s\n", path, sqlite3_errmsg(db));
	return st;
}
