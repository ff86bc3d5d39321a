/*
 * dbopen.h - opening a plugin's own SQLite file, which the workers of a
 * binding may all do at the same moment.
 */
#ifndef KPOOL_DBOPEN_H
#define KPOOL_DBOPEN_H

#include <sqlite3.h>
#include <stddef.h>

sqlite3 *db_open(const char *path, const char *const *setup, size_t n_setup, char *err, size_t len);

#endif
