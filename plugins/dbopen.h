/*
 * dbopen.h - a plugin's own SQLite file: where it is (option db), and
 * opening it, which the workers of a binding may all do at the same moment.
 * A new file is made readable by its owner only (DB_FILE_MODE): it holds
 * what the jobs carried.
 */
#ifndef KPOOL_DBOPEN_H
#define KPOOL_DBOPEN_H

#include <sqlite3.h>
#include <stddef.h>

#include "kpool_plugin.h"

#define DB_FILE_MODE 0600

/* The option table of a plugin whose only option is db. */
#define DB_OPTION(what)                                                                            \
	{                                                                                          \
		.name = "db", .desc = "the SQLite file; a relative path is taken from the conf "   \
				      "file's directory; by "                                      \
				      "default state_dir/" what                                    \
				      "-NAME.db; a new file is made readable and writable "        \
				      "by its owner only (0600)"                                   \
	}

char *db_path(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
	      const char *name, char *err, size_t len);
sqlite3 *db_open(const char *path, const char *const *setup, size_t n_setup, char *err, size_t len);

#endif
