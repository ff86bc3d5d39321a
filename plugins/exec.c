/*
 * exec.c - the exec handler: handlers written in any language.  Each job
 * runs `command` (no shell) with the job on its standard input and
 * KPOOL_EVENT_ID, KPOOL_TOPIC, KPOOL_PARTITION, KPOOL_OFFSET, KPOOL_ATTEMPT
 * in its environment, and no descriptor of the worker's besides standard
 * input, output and error.  Exit 0 is done, 75 (EX_TEMPFAIL) retry, anything
 * else fails the job with the last line of the command's standard error as
 * the reason.  The command's own exit status decides: once it has exited,
 * what it started and left running (in its process group or, through
 * setsid, outside it) is killed, and standard error is read no further even
 * if they still hold it.  A command still running after `timeout` is killed
 * the same way, and the job retried.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "kpool_plugin.h"
#include "opts.h"
#include "util.h"

#define MAX_ARGS 64

static const struct kpool_option_spec exec_options[] = {
    {.name = "command",
     .flags = KPOOL_OPT_REQUIRED,
     .desc = "/absolute/path args..., split like a shell's words but run without one: once "
	     "per job, with the job on standard input and no other descriptor of the "
	     "worker's; exit 0 done, 75 retry, anything else fails the job; once it exits, "
	     "what it left running (its process group, and what left it with setsid) is "
	     "killed"},
    {.name = "timeout",
     .type = KPOOL_OPT_DURATION,
     .def = "30s",
     .min = 1,
     .desc = "then the command and what it started are killed, and the job retried"},
    {.name = NULL},
};
#define STDERR_KEEP 4096 /* the tail of standard error kept (at least half), for the reason */
/* Once the command has exited, what its standard error still holds is read,
 * up to this much: something it left behind may write on. */
#define STDERR_DRAIN (64 * 1024)
/* Without a pidfd (kernels before 5.3), how often the command's exit is looked for. */
#define EXIT_POLL_MS 10
/* How long what the command left behind, killed, is waited for. */
#define LEFTOVER_WAIT_MS 2000

extern char **environ;

struct cmd {
	const struct kpool_host *host;
	char *argv[MAX_ARGS + 1];
	long timeout_ms;
};

/* Splits a command line into words: blanks separate, "..." and '...' quote. */
static int split(struct cmd *c, const char *line, char *err, size_t len)
{
	const char *p = line;
	int n = 0;

	while (*p) {
		struct buf w = {0};
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '"' || *p == '\'') {
				char q = *p++;
				const char *end = strchr(p, q);
				if (end == NULL) {
					snprintf(err, len, "command: unclosed %c", q);
					free(w.p);
					return -1;
				}
				buf_add(&w, p, (size_t)(end - p));
				p = end + 1;
			} else {
				buf_add(&w, p++, 1);
			}
		}
		if (n == MAX_ARGS) {
			snprintf(err, len, "command: more than %d words", MAX_ARGS);
			free(w.p);
			return -1;
		}
		c->argv[n++] = w.p ? w.p : strdup("");
	}
	if (n == 0) {
		snprintf(err, len, "command: empty");
		return -1;
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The environment of the command: kpoold's, and the job's KPOOL_* variables. */
static char **job_env(const struct kpool_job *job, char vars[5][320])
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 6, sizeof(*env));
	if (env == NULL)
		return NULL;
	snprintf(vars[0], 320, "KPOOL_EVENT_ID=%s", job->event_id);
	snprintf(vars[1], 320, "KPOOL_TOPIC=%s", job->topic);
	snprintf(vars[2], 320, "KPOOL_PARTITION=%d", (int)job->partition);
	snprintf(vars[3], 320, "KPOOL_OFFSET=%lld", (long long)job->offset);
	snprintf(vars[4], 320, "KPOOL_ATTEMPT=%d", job->attempt);
	for (int i = 0; i < 5; i++)
		env[k++] = vars[i];
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "KPOOL_", 6) != 0)
			env[k++] = environ[i];
	return env;
}

/* The last non-empty line of what the command wrote to standard error. */
static void last_line(const char *s, size_t n, char *out, size_t len)
{
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		n--;
	size_t start = n;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	snprintf(out, len, "%.*s", (int)(n - start), s + start);
	for (char *c = out; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
}

/* Whether the command has exited; it is left a zombie, so that its pid and
 * process group stay its own until it is reaped. */
static bool exited(pid_t pid)
{
	siginfo_t si = {0};

	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Sends SIGKILL to every child of this process, found in /proc; the number sent to. */
static int kill_children(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t self = getpid();
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[64], stat[512], *p;
		long ppid;
		FILE *f;
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((f = fopen(path, "re")) == NULL)
			continue;
		p = fgets(stat, sizeof(stat), f);
		fclose(f);
		/* "PID (COMM) STATE PPID ...": COMM may hold anything, ')' too. */
		if (p == NULL || (p = strrchr(stat, ')')) == NULL ||
		    sscanf(p + 1, " %*c %ld", &ppid) != 1 || ppid != self)
			continue;
		if (kill((pid_t)atol(de->d_name), SIGKILL) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * Kills and reaps whatever the command left running outside its process
 * group (a child that called setsid, a daemon): this process is their
 * subreaper (see init), so once their parents are gone they are its
 * children, and an exec worker has no others.  Their own children come to
 * it in turn as they die, so this goes on until none is left, or
 * LEFTOVER_WAIT_MS has passed (a process stuck in the kernel; the next job
 * looks again).
 */
static void kill_leftovers(const struct cmd *c)
{
	int64_t deadline = now_ms() + LEFTOVER_WAIT_MS;
	int status, killed = 0;
	pid_t r;

	for (;;) {
		while ((r = waitpid(-1, &status, WNOHANG)) > 0)
			;
		if (r < 0) /* ECHILD: none left */
			break;
		if (now_ms() >= deadline) {
			c->host->log(LOG_WARNING,
				     "exec: processes left by %s still run after SIGKILL",
				     c->argv[0]);
			break;
		}
		killed += kill_children();
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (killed > 0)
		c->host->log(LOG_INFO, "exec: killed %d processes %s left running", killed,
			     c->argv[0]);
}

/* Starts the command with the job's environment, the pipes as its standard
 * input and error, /dev/null as its output, and no other descriptor; in its
 * own process group.  Returns posix_spawn's error. */
static int spawn(const struct cmd *c, const struct kpool_job *job, int in, int err, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	char vars[5][320], **env = job_env(job, vars);
	int rc;

	if (env == NULL)
		return ENOMEM;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, err, 2);
	/* The worker's Kafka sockets, ledger and the like are not for the
	 * command: close_range(2) in the child, or a walk of /proc/self/fd. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setpgroup(&at, 0); /* its own group: a timeout kills all of it */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					  POSIX_SPAWN_SETPGROUP);
	rc = posix_spawn(pid, c->argv[0], &fa, &at, c->argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(env);
	return rc;
}

/* Reads what standard error holds into the tail; when it is full, its older half goes.
 * The bytes read, 0 at its end, -1 if nothing is there now. */
static ssize_t read_tail(int fd, char *tail, size_t *n_tail)
{
	if (*n_tail == STDERR_KEEP) {
		memmove(tail, tail + STDERR_KEEP / 2, STDERR_KEEP / 2);
		*n_tail = STDERR_KEEP / 2;
	}
	ssize_t r = read(fd, tail + *n_tail, STDERR_KEEP - *n_tail);
	if (r > 0)
		*n_tail += (size_t)r;
	return r;
}

static kpool_status handle(void *state, const struct kpool_job *job, char reason[KPOOL_REASON_MAX])
{
	struct cmd *c = state;
	int in[2] = {-1, -1}, errp[2] = {-1, -1}, status = 0, rc, pfd;
	char tail[STDERR_KEEP + 1];
	size_t n_tail = 0, written = 0;
	pid_t pid;
	bool timed_out = false;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		snprintf(reason, KPOOL_REASON_MAX, "exec: pipe: %s", strerror(errno));
		goto fail_fds;
	}
	rc = spawn(c, job, in[0], errp[1], &pid);
	close(in[0]);
	close(errp[1]);
	in[0] = errp[1] = -1;
	if (rc != 0) {
		snprintf(reason, KPOOL_REASON_MAX, "exec %s: %s", c->argv[0], strerror(rc));
		goto fail_fds;
	}

	/* Feed the job and read standard error until the command exits or the
	 * time is up: its exit, not the end of its standard error, which what it
	 * started may hold open, ends the wait. */
	pfd = pidfd_open(pid, 0);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	int64_t deadline = now_ms() + c->timeout_ms;
	while (!exited(pid)) {
		struct pollfd pf[3];
		nfds_t n = 0;
		int64_t left = deadline - now_ms(), wait = left > 1000 ? 1000 : left;
		if (left <= 0) {
			timed_out = true;
			break;
		}
		if (pfd < 0 && wait > EXIT_POLL_MS)
			wait = EXIT_POLL_MS;
		pf[n++] = (struct pollfd){.fd = pfd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = errp[0], .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
		if (poll(pf, n, (int)wait) < 0 && errno != EINTR)
			break;
		if (in[1] >= 0 && (pf[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(in[1], (const char *)job->value + written,
					  job->value_len - written);
			if (w > 0)
				written += (size_t)w;
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				written = job->value_len; /* it closed its input: fine */
			if (written >= job->value_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (errp[0] >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t r = read_tail(errp[0], tail, &n_tail);
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
				close(errp[0]); /* ended: poll ignores a negative fd */
				errp[0] = -1;
			}
		}
	}
	/* What is left of its process group goes (the command too, on a
	 * timeout); then what standard error holds is read, and no more. */
	kill(-pid, SIGKILL);
	if (timed_out)
		kill(pid, SIGKILL);
	for (size_t drained = 0; errp[0] >= 0 && drained < STDERR_DRAIN;) {
		ssize_t r = read_tail(errp[0], tail, &n_tail);
		if (r <= 0 && !(r < 0 && errno == EINTR))
			break;
		drained += r > 0 ? (size_t)r : 0;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (pfd >= 0)
		close(pfd);
	if (in[1] >= 0)
		close(in[1]);
	if (errp[0] >= 0)
		close(errp[0]);
	kill_leftovers(c);
	if (timed_out) {
		snprintf(reason, KPOOL_REASON_MAX, "%s: killed after timeout (%ld ms)", c->argv[0],
			 c->timeout_ms);
		return KPOOL_RETRY;
	}
	tail[n_tail] = '\0';
	char line[KPOOL_REASON_MAX];
	last_line(tail, n_tail, line, sizeof(line));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return KPOOL_DONE;
	if (WIFEXITED(status))
		snprintf(reason, KPOOL_REASON_MAX, "%s exited %d%s%s", c->argv[0],
			 WEXITSTATUS(status), line[0] ? ": " : "", line);
	else
		snprintf(reason, KPOOL_REASON_MAX, "%s killed by signal %d%s%s", c->argv[0],
			 WTERMSIG(status), line[0] ? ": " : "", line);
	return WIFEXITED(status) && WEXITSTATUS(status) == EX_TEMPFAIL ? KPOOL_RETRY : KPOOL_FAIL;

fail_fds:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return KPOOL_RETRY;
}

static void cmd_free(struct cmd *c)
{
	if (c == NULL)
		return;
	for (int i = 0; c->argv[i]; i++)
		free(c->argv[i]);
	free(c);
}

/*
 * A binding's command: options as exec_options declares them, checked and
 * normalized by kpoold.  NULL with err (and nothing kept) if the command
 * cannot be run: not split, not absolute, missing or not executable.
 */
static void *init(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
		  char *err, size_t len)
{
	struct cmd *c = calloc(1, sizeof(*c));
	const char *command = NULL;
	struct stat st;

	if (c == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	c->host = host;
	c->timeout_ms = (long)opts_int(opts, n_opts, "timeout");
	command = opts_get(opts, n_opts, "command");
	if (command == NULL) {
		snprintf(err, len,
			 "command: missing (e.g. command = /usr/local/bin/handle-job --fast)");
		goto fail;
	}
	if (split(c, command, err, len) < 0)
		goto fail;
	if (c->argv[0][0] != '/') {
		snprintf(err, len,
			 "command: %s: give the program's absolute path (no shell, no PATH)",
			 c->argv[0]);
		goto fail;
	}
	if (stat(c->argv[0], &st) < 0 || access(c->argv[0], X_OK) < 0) {
		snprintf(err, len, "command: %s: %s", c->argv[0], strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, len, "command: %s: not a file", c->argv[0]);
		goto fail;
	}
	/* What a command leaves running outside its process group (setsid)
	 * becomes this process's child when its parent dies, not init's, so
	 * that kill_leftovers finds it.  init runs in the worker (and in a
	 * child of kpoold that only checks the options), never in kpoold. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		snprintf(err, len, "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
		goto fail;
	}
	host->log(LOG_INFO, "exec: %s, timeout %ld ms", command, c->timeout_ms);
	return c;
fail:
	cmd_free(c);
	return NULL;
}

static void fini(void *state)
{
	cmd_free(state);
}

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER, .name = "exec", .version = PACKAGE_VERSION,	     .init = init,
    .handle = handle,	 .fini = fini,	 KPOOL_PLUGIN_OPTIONS(exec_options),
};
