/*
 * exec.c - the exec handler: handlers written in any language.  Each job
 * runs `command` (no shell) with the job on its standard input and
 * KPOOL_EVENT_ID, KPOOL_TOPIC, KPOOL_PARTITION, KPOOL_OFFSET, KPOOL_ATTEMPT
 * in its environment.  Exit 0 is done, 75 (EX_TEMPFAIL) retry, anything else
 * fails the job with the last line of the command's standard error as the
 * reason.  A command still running after `timeout` is killed with its process
 * group, and the job retried.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "kpool_plugin.h"
#include "util.h"

#define MAX_ARGS    64
#define STDERR_KEEP 4096 /* the tail of standard error kept (at least half), for the reason */

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

static kpool_status handle(void *state, const struct kpool_job *job, char reason[KPOOL_REASON_MAX])
{
	struct cmd *c = state;
	int in[2] = {-1, -1}, errp[2] = {-1, -1}, status = 0, rc;
	char vars[5][320], tail[STDERR_KEEP + 1];
	size_t n_tail = 0, written = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	pid_t pid;
	char **env;
	bool timed_out = false;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		snprintf(reason, KPOOL_REASON_MAX, "exec: pipe: %s", strerror(errno));
		goto fail_fds;
	}
	env = job_env(job, vars);
	if (env == NULL) {
		snprintf(reason, KPOOL_REASON_MAX, "out of memory");
		goto fail_fds;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setpgroup(&at, 0); /* its own group: a timeout kills all of it */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					  POSIX_SPAWN_SETPGROUP);
	rc = posix_spawn(&pid, c->argv[0], &fa, &at, c->argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(env);
	close(in[0]);
	close(errp[1]);
	in[0] = errp[1] = -1;
	if (rc != 0) {
		snprintf(reason, KPOOL_REASON_MAX, "exec %s: %s", c->argv[0], strerror(rc));
		goto fail_fds;
	}

	/* Feed the job, read standard error, until it ends or the time is up. */
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	int64_t deadline = now_ms() + c->timeout_ms;
	bool err_open = true;
	while (err_open) {
		struct pollfd pf[2] = {{.fd = errp[0], .events = POLLIN},
				       {.fd = in[1], .events = POLLOUT}};
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		if (poll(pf, in[1] >= 0 ? 2 : 1, (int)(left > 1000 ? 1000 : left)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (in[1] >= 0 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
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
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			/* Read into the tail; when it is full, its older half goes. */
			if (n_tail == STDERR_KEEP) {
				memmove(tail, tail + STDERR_KEEP / 2, STDERR_KEEP / 2);
				n_tail = STDERR_KEEP / 2;
			}
			ssize_t r = read(errp[0], tail + n_tail, STDERR_KEEP - n_tail);
			if (r > 0)
				n_tail += (size_t)r;
			else
				err_open = r < 0 && (errno == EINTR || errno == EAGAIN);
		}
	}
	if (in[1] >= 0)
		close(in[1]);
	close(errp[0]);
	in[1] = errp[0] = -1;
	if (timed_out) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	/* Standard error closed: the command is ending (or something it left
	 * behind holds the pipe: then the deadline still applies). */
	while (waitpid(pid, &status, timed_out ? 0 : WNOHANG) == 0) {
		if (now_ms() >= deadline) {
			timed_out = true;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			continue;
		}
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
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
	c->timeout_ms = 30000;
	for (size_t i = 0; i < n_opts; i++) {
		const char *k = opts[i].key, *v = opts[i].value;
		if (strcmp(k, "command") == 0) {
			command = v;
		} else if (strcmp(k, "timeout") == 0) {
			if ((c->timeout_ms = util_duration_ms(v)) <= 0) {
				snprintf(err, len, "timeout: bad duration '%s' (ms, s or m)", v);
				goto fail;
			}
		} else {
			snprintf(err, len, "unknown option '%s' (command, timeout)", k);
			goto fail;
		}
	}
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
    KPOOL_PLUGIN_HEADER, .name = "exec",   .version = PACKAGE_VERSION,
    .init = init,	 .handle = handle, .fini = fini,
};
