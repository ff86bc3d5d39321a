/*
 * plugin.c - loading handler plugins: dlopen, the ABI and struct_size checks,
 * the host a plugin is offered, its init() and fini().  The options it
 * declares are options.c's.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kpoold.h"

/* The smallest plugin struct we accept: one that has every field up to fini. */
#define MIN_STRUCT_SIZE (offsetof(struct kpool_plugin, fini) + sizeof(void (*)(void *)))
/* Writes plugin_dir/HANDLER.so into path; -1 if it does not fit. */
int kp_plugin_path(const struct kp_conf *conf, const char *handler, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/%s.so", conf->plugin_dir, handler);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Refuses what others than root and us could have written (st: path's); -1 with err. */
static int owned_safely(const struct stat *st, const char *path, const char *what, char *err,
			size_t len)
{
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, len, "%s: %s is writable by %s; refusing to load code from it", path,
			 what, st->st_mode & S_IWOTH ? "others" : "its group");
		return -1;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(
		    err, len,
		    "%s: %s is owned by uid %u, neither root nor us; refusing to load code from it",
		    path, what, (unsigned)st->st_uid);
		return -1;
	}
	return 0;
}

/* The directory of path, checked like the file; -1 with err naming it. */
static int dir_safe(const char *path, char *err, size_t len)
{
	char dir[4096], *slash;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) < 0) {
		snprintf(err, len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	return owned_safely(&st, dir, "its directory", err, len);
}

/*
 * Opens a plugin file for loading, once: the directory it is named in, the
 * file opened (whatever links led to it: checked through the descriptor)
 * and the directory it really is in must be such that no one but root or
 * the user kpoold runs as could have changed them.  Loading then goes
 * through the descriptor (/proc/self/fd/N), so the code checked is the code
 * run, even if a link is switched meanwhile.  Returns the descriptor, or -1
 * with err naming the path.
 */
int kp_plugin_safe_open(const char *path, char *err, size_t len)
{
	char link[64], real[4096];
	struct stat st;
	ssize_t n;
	int fd;

	if (dir_safe(path, err, len) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, len, "%s: %s", path,
			 S_ISREG(st.st_mode) ? strerror(errno) : "not a file");
		goto fail;
	}
	if (owned_safely(&st, path, "the plugin", err, len) < 0)
		goto fail;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, real, sizeof(real) - 1);
	if (n <= 0) {
		snprintf(err, len, "%s: cannot tell where it is (%s: %s)", path, link,
			 n < 0 ? strerror(errno) : "empty");
		goto fail;
	}
	real[n] = '\0';
	if (strcmp(real, path) != 0 && dir_safe(real, err, len) < 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/*
 * Loads a plugin and checks that it speaks our ABI.  On failure returns -1
 * with err naming the file, and nothing stays loaded.
 */
int kp_plugin_open(struct kp_plugin *pl, const char *path, char *err, size_t len)
{
	const struct kpool_plugin *sym;
	char fdpath[64];
	int fd;

	memset(pl, 0, sizeof(*pl));
	snprintf(pl->path, sizeof(pl->path), "%s", path);
	fd = kp_plugin_safe_open(path, err, len); /* also says when it is missing */
	if (fd < 0)
		return -1;
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	pl->dl = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL);
	close(fd); /* the mapping stays */
	if (pl->dl == NULL) {
		const char *why = dlerror();
		/* dlerror() names the descriptor: name the file instead. */
		if (why && strncmp(why, fdpath, strlen(fdpath)) == 0 && why[strlen(fdpath)] == ':')
			why += strlen(fdpath) + 1;
		snprintf(err, len, "%s: %s", path, why ? why : "cannot load");
		return -1;
	}
	sym = dlsym(pl->dl, "kpool_plugin");
	if (sym == NULL) {
		snprintf(err, len, "%s: not a kpool plugin (no kpool_plugin symbol)", path);
		goto fail;
	}
	if (sym->abi_version != KPOOL_PLUGIN_ABI_VERSION) {
		snprintf(err, len,
			 "%s: is not binary compatible (plugin ABI version %d, kpoold speaks %d)",
			 path, sym->abi_version, KPOOL_PLUGIN_ABI_VERSION);
		goto fail;
	}
	if (sym->struct_size < MIN_STRUCT_SIZE) {
		snprintf(err, len, "%s: is not binary compatible (struct_size %zu, at least %zu)",
			 path, sym->struct_size, (size_t)MIN_STRUCT_SIZE);
		goto fail;
	}
	/* Fields past the plugin's struct_size were not there when it was built. */
	memcpy(&pl->p, sym, sym->struct_size < sizeof(pl->p) ? sym->struct_size : sizeof(pl->p));
	if (pl->p.name == NULL || pl->p.handle == NULL) {
		snprintf(err, len, "%s: kpool_plugin has no %s", path,
			 pl->p.name == NULL ? "name" : "handle function");
		goto fail;
	}
	if (pl->p.options && kp_options_table_check(&pl->p, path, err, len) < 0)
		goto fail;
	return 0;
fail:
	dlclose(pl->dl);
	pl->dl = NULL;
	return -1;
}

/* Fills the host a plugin of binding b is offered, in worker index (-1: the check). */
void kp_plugin_host(struct kpool_host *host, const struct kp_conf *conf, const struct kp_binding *b,
		    int index)
{
	*host = (struct kpool_host){.worker = b->name,
				    .index = index,
				    .state_dir = conf->state_dir,
				    .log = kp_log_syslog,
				    .struct_size = sizeof(*host),
				    .retry_after = kp_job_retry_after,
				    .conf_dir = conf->dir};
}

/*
 * Calls the plugin's init() with binding b's options (kp_plugin_options());
 * -1 with err if they do not fit its table ("FILE:LINE: [worker:NAME] KEY:
 * message") or with the plugin's err if it refuses.  Nothing of the options
 * is kept after init() returns.
 */
int kp_plugin_init(struct kp_plugin *pl, const struct kpool_host *host, const struct kp_conf *conf,
		   const struct kp_binding *b, char *err, size_t len)
{
	static const struct kpool_option none[1]; /* init() never gets NULL */
	struct kpool_option *o;
	size_t n;

	if (kp_plugin_options(pl, conf, b, &o, &n, err, len) < 0)
		return -1;
	err[0] = '\0';
	pl->state = pl->p.init ? pl->p.init(host, o ? o : none, n, err, len) : (void *)pl;
	kp_plugin_options_free(o, n);
	if (pl->state == NULL) {
		if (err[0] == '\0')
			snprintf(err, len, "init failed");
		return -1;
	}
	return 0;
}

/* Calls fini() if init() succeeded, and unloads the plugin. */
void kp_plugin_close(struct kp_plugin *pl)
{
	if (pl->state && pl->p.init && pl->p.fini)
		pl->p.fini(pl->state);
	pl->state = NULL;
	if (pl->dl)
		dlclose(pl->dl);
	pl->dl = NULL;
}

/*
 * Loads and inits a binding's plugin in a child process, so that the caller
 * never runs plugin code or opens what init() opens.  Returns 0 if the plugin
 * accepted the binding's options, -1 with err as "FILE:LINE: [worker:NAME]
 * KEY: message" otherwise.
 */
int kp_plugin_check(const struct kp_conf *conf, const struct kp_binding *b, char *err, size_t len)
{
	char path[4096], msg[512] = "";
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	if (kp_plugin_path(conf, b->handler, path, sizeof(path)) < 0) {
		snprintf(err, len, "%s:%d: [worker:%s] handler: path too long", conf->path, b->line,
			 b->name);
		return -1;
	}
	if (pipe(fds) < 0 || (pid = fork()) < 0) {
		snprintf(err, len, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		struct kp_plugin pl;
		struct kpool_host host;
		struct kpool_option *o;
		size_t n_o;
		int rc = 1;

		close(fds[0]);
		/* Plugin code runs as the [pool] user, here too. */
		if (kp_become_user(conf, false, msg, sizeof(msg)) < 0)
			rc = 3;
		else if (kp_plugin_open(&pl, path, msg, sizeof(msg)) == 0) {
			kp_plugin_host(&host, conf, b, -1);
			if (kp_plugin_options(&pl, conf, b, &o, &n_o, msg, sizeof(msg)) < 0) {
				rc = 3; /* msg names file, line and key */
			} else {
				kp_plugin_options_free(o, n_o);
				rc = kp_plugin_init(&pl, &host, conf, b, msg, sizeof(msg)) == 0 ? 0
												: 2;
			}
			kp_plugin_close(&pl);
		}
		(void)!write(fds[1], msg, strlen(msg));
		_exit(rc);
	}
	close(fds[1]);
	n = read(fds[0], msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3) { /* no user, or a bad option */
		snprintf(err, len, "%s", msg);
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 1) { /* could not load */
		snprintf(err, len, "%s:%d: [worker:%s] handler: %s", conf->path, b->line, b->name,
			 msg);
		return -1;
	}
	if (!WIFEXITED(status)) {
		snprintf(err, len, "%s:%d: [worker:%s] handler: %s crashed in init (signal %d)",
			 conf->path, b->line, b->name, path, WTERMSIG(status));
		return -1;
	}
	/* The plugin refused: name the option it speaks of, if it names one. */
	int line = b->line;
	const char *key = "handler";
	for (size_t i = 0; i < b->n_opts; i++)
		if (strstr(msg, b->opts[i].key)) {
			line = b->opts[i].line;
			key = b->opts[i].key;
			break;
		}
	snprintf(err, len, "%s:%d: [worker:%s] %s: %s refused: %s", conf->path, line, b->name, key,
		 b->handler, msg);
	return -1;
}
