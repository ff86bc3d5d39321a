/*
 * dbopen.c - see dbopen.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dbopen.h"

/*
 * The file of a plugin whose only option is db (DB_OPTION): its value, a
 * relative one taken from the conf file's directory, else
 * state_dir/NAME-WORKER.db.  SQLite's own names, ":memory:" and "", are
 * kept as they are.  NULL with err if memory runs out.
 */
char *db_path(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
	      const char *name, char *err, size_t len)
{
	const char *db = NULL;
	char *path = NULL;
	int n;

	for (size_t i = 0; i < n_opts; i++)
		if (strcmp(opts[i].key, "db") == 0)
			db = opts[i].value;
	if (db == NULL)
		n = asprintf(&path, "%s/%s-%s.db", host->state_dir, name, host->worker);
	else if (db[0] == '/' || db[0] == '\0' || strcmp(db, ":memory:") == 0)
		n = (path = strdup(db)) ? 0 : -1;
	else
		n = asprintf(&path, "%s/%s", host->conf_dir, db);
	if (n < 0) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	return path;
}

/*
 * Creates path, if it is missing, readable and writable by its owner only:
 * the files hold whole jobs.  SQLite gives its -wal and -shm files the mode
 * of the database.  An existing file keeps its mode (the operator's to
 * choose).  -1 with err if the file cannot be made.
 */
static int db_create(const char *path, char *err, size_t len)
{
	int fd;

	if (strcmp(path, ":memory:") == 0 || path[0] == '\0') /* SQLite's, not files */
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, DB_FILE_MODE);
	if (fd < 0) {
		snprintf(err, len, "db: %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Opens (creating, mode DB_FILE_MODE) path and runs the setup statements
 * (pragmas, schema), waiting up to 10 s for the other workers.  NULL with err
 * "db: PATH: why" if it cannot.
 */
sqlite3 *db_open(const char *path, const char *const *setup, size_t n_setup, char *err, size_t len)
{
	sqlite3 *db = NULL;
	int rc;

	if (db_create(path, err, len) < 0)
		return NULL;
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(db, 10000);
	for (size_t i = 0; i < n_setup; i++) {
		/* switching a new file to WAL answers BUSY at once, without the busy handler */
		for (int tries = 0;
		     (rc = sqlite3_exec(db, setup[i], NULL, NULL, NULL)) == SQLITE_BUSY &&
		     tries < 1000;
		     tries++) {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (rc != SQLITE_OK)
			goto fail;
	}
	return db;
fail:
	snprintf(err, len, "db: %s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
	sqlite3_close(db);
	return NULL;
}
