/*
 * privileges.c - the state directory and [pool] user: the directory is made
 * private (0700, files 0600 by kpoold's umask), given with kpool's files in
 * it to the user before root is dropped, and plugin code never runs as root
 * when a user is set, not even in the start-up check.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kpoold.h"

/* Makes dir and its missing parents; dir itself 0700.  -1 with errno. */
int kp_state_dir_make(const char *dir)
{
	return kp_mkdirs(dir, 0700);
}

/*
 * The [pool] user's entry; NULL when there is none to switch to (no user, or
 * we already are it), or with err when it cannot be: no such user, or not
 * root.
 */
static struct passwd *pool_user(const struct kp_conf *conf, bool *fail, char *err, size_t len)
{
	struct passwd *pw;

	*fail = false;
	if (conf->user == NULL || conf->user[0] == '\0')
		return NULL;
	pw = getpwnam(conf->user);
	if (pw == NULL) {
		snprintf(err, len, "%s: [pool] user: no user '%s'", conf->path, conf->user);
		*fail = true;
		return NULL;
	}
	if (geteuid() == pw->pw_uid)
		return NULL;
	if (geteuid() != 0) {
		snprintf(err, len, "%s: [pool] user: switching to '%s' needs root", conf->path,
			 conf->user);
		*fail = true;
		return NULL;
	}
	return pw;
}

/*
 * Gives the user the entries of the state directory that root made (the
 * ledger's and the plugins' databases, from a run before user was set).
 * Only plain files with one link and directories, opened without following
 * a link, so that nothing planted there gives away a file elsewhere.
 */
static void give_state(const char *dir, const struct passwd *pw)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		int fd;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && st.st_uid == 0 &&
		    ((S_ISREG(st.st_mode) && st.st_nlink == 1) || S_ISDIR(st.st_mode)) &&
		    fchown(fd, pw->pw_uid, pw->pw_gid) < 0)
			kp_log(KP_WARNING, "state_dir %s: cannot give %s to %s: %s", dir, e->d_name,
			       pw->pw_name, strerror(errno));
		close(fd);
	}
	closedir(d);
}

/*
 * Becomes the [pool] user, if one is set and we are not it: with give_state,
 * the state directory and what root made in it are given to the user first.
 * 0 when done or nothing to do; -1 with err.
 */
int kp_become_user(const struct kp_conf *conf, bool give_state_dir, char *err, size_t len)
{
	bool fail;
	struct passwd *pw = pool_user(conf, &fail, err, len);

	if (pw == NULL)
		return fail ? -1 : 0;
	if (give_state_dir) {
		if (chown(conf->state_dir, pw->pw_uid, pw->pw_gid) < 0) {
			snprintf(err, len, "cannot give state_dir %s to %s: %s", conf->state_dir,
				 pw->pw_name, strerror(errno));
			return -1;
		}
		give_state(conf->state_dir, pw);
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		snprintf(err, len, "cannot become user %s: %s", conf->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) { /* must be impossible now */
		snprintf(err, len, "could regain root after dropping it");
		return -1;
	}
	return 0;
}
