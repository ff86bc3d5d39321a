/*
 * pause.c - a binding paused by the operator (kpool pause, the web console):
 * one empty file per paused binding, state_dir/paused/NAME, whose time says
 * since when.  It is made under another name and linked into place, so
 * kpoold never sees half of it; removing it resumes the binding.  Being a
 * file, a pause outlives a reload and a restart of kpoold, and may be set
 * while kpoold is down.  kpoold looks for it four times a second and tells
 * the binding's workers (kpoold/control.c).
 *
 * kpool may run as root while kpoold runs as [pool] user: what root makes
 * here is given to state_dir's owner, and nothing in state_dir is followed
 * through a link, so that a link planted there gives nothing away.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

/* Makes dir's missing parents (0755) and dir itself (mode); -1 with errno. */
int kp_mkdirs(const char *dir, mode_t mode)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

/*
 * Opens state_dir/paused, made (with state_dir) when make and missing, and
 * given to state_dir's owner when we are root and it is not.  -1 with errno
 * (ENOENT when it is missing and not to be made).
 */
static int pause_dir(const struct kp_conf *conf, bool make)
{
	char path[PATH_MAX];
	struct stat sd, st;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", conf->state_dir, KP_PAUSE_DIR) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (make &&
	    (kp_mkdirs(conf->state_dir, 0700) < 0 || (mkdir(path, 0700) < 0 && errno != EEXIST)))
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (make && geteuid() == 0 && stat(conf->state_dir, &sd) == 0 && sd.st_uid != 0 &&
	    fstat(fd, &st) == 0 && st.st_uid == 0 && fchown(fd, sd.st_uid, sd.st_gid) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * Pauses binding (or resumes it: !paused) for kpoold to apply, now if it
 * runs, else when it starts.  Pausing a paused binding keeps the time it was
 * paused since; resuming one that is not paused does nothing.  0, or -1 with
 * a one-line err: no such binding in conf, or the file could not be made or
 * removed (nothing changed then).
 */
int kp_pause_set(const struct kp_conf *conf, const char *binding, bool paused, char *err,
		 size_t len)
{
	char tmp[KP_NAME_MAX + 32];
	struct stat sd, st;
	int dir, fd, rc = -1;

	if (kp_conf_binding(conf, binding) == NULL) {
		snprintf(err, len, "no binding '%s' in %s", binding, conf->path);
		return -1;
	}
	dir = pause_dir(conf, paused);
	if (dir < 0) {
		if (!paused && errno == ENOENT) /* nothing was ever paused */
			return 0;
		snprintf(err, len, "%s/%s: %s", conf->state_dir, KP_PAUSE_DIR, strerror(errno));
		return -1;
	}
	if (!paused) {
		if (unlinkat(dir, binding, 0) < 0 && errno != ENOENT)
			snprintf(err, len, "%s/%s/%s: %s", conf->state_dir, KP_PAUSE_DIR, binding,
				 strerror(errno));
		else
			rc = 0;
		goto out;
	}
	if (fstatat(dir, binding, &st, AT_SYMLINK_NOFOLLOW) == 0) { /* paused already */
		rc = 0;
		goto out;
	}
	/* Made under a name of its own, then linked into place: kpoold sees all
	 * of it or nothing, and two pauses at once keep the first one's time. */
	snprintf(tmp, sizeof(tmp), ".%s.%ld", binding, (long)getpid());
	fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, len, "%s/%s/%s: %s", conf->state_dir, KP_PAUSE_DIR, tmp,
			 strerror(errno));
		goto out;
	}
	if (geteuid() == 0 && stat(conf->state_dir, &sd) == 0 && sd.st_uid != 0 &&
	    fchown(fd, sd.st_uid, sd.st_gid) < 0) {
		snprintf(err, len, "%s/%s/%s: %s", conf->state_dir, KP_PAUSE_DIR, tmp,
			 strerror(errno));
		close(fd);
		unlinkat(dir, tmp, 0);
		goto out;
	}
	close(fd);
	if (linkat(dir, tmp, dir, binding, 0) < 0 && errno != EEXIST)
		snprintf(err, len, "%s/%s/%s: %s", conf->state_dir, KP_PAUSE_DIR, binding,
			 strerror(errno));
	else
		rc = 0;
	unlinkat(dir, tmp, 0);
out:
	close(dir);
	return rc;
}

/*
 * Whether binding is paused, and since when (epoch ms) in *since_ms when not
 * NULL.  A binding whose file cannot be looked at (state_dir unreadable to
 * us) counts as not paused.
 */
bool kp_pause_get(const struct kp_conf *conf, const char *binding, int64_t *since_ms)
{
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/%s/%s", conf->state_dir, KP_PAUSE_DIR, binding) >=
		(int)sizeof(path) ||
	    lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (since_ms)
		*since_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	return true;
}
