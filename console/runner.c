/*
 * runner.c - the console's replays: a process forked before the console
 * starts any thread (so that it may fork safely) runs each replay asked of
 * it in a child of its own, as `kpool dlq replay` runs it (kp_replay, the
 * same code), with its output in state_dir/console/ID.log and its exit
 * status in ID.status; the request is kept as ID.req.  The last RUNS_KEPT
 * are kept.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "console_int.h"
#include "kpool_cmd.h"

#define RUNS_KEPT 50 /* replay logs kept in state_dir/console */

static char run_dir[4096]; /* state_dir/console: replay logs */

/*
 * The runner: a process forked before the console starts any thread, so
 * that it may fork safely.  Each request (a JSON object on the socket) is
 * run by a child of its own: kp_replay(), as `kpool dlq replay` runs it,
 * with its output in run_dir/ID.log; the exit status goes to ID.status.
 */
static void runner_child(json_t *req, const char *id)
{
	struct kp_replay_opts o = {
	    .only_part = -1, .upto = INT64_MAX, .limit = -1, .filter = KP_DLQ_FILTER_ALL};
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/%s.log", run_dir, id);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		_exit(1);
	dup2(fd, 1);
	dup2(fd, 2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	o.filter.class = json_string_value(json_object_get(req, "class"));
	o.filter.text = json_string_value(json_object_get(req, "text"));
	o.filter.since = json_integer_value(json_object_get(req, "since")) ?: -1;
	o.filter.until = json_integer_value(json_object_get(req, "until")) ?: -1;
	if (json_object_get(req, "part")) {
		o.only_part = (int32_t)json_integer_value(json_object_get(req, "part"));
		o.from = o.upto = json_integer_value(json_object_get(req, "offset"));
	}
	o.dry_run = json_is_true(json_object_get(req, "dry_run"));
	o.progress = true;
	o.rows_max = 200;
	int rc = kp_replay(kp_cons->conf, json_string_value(json_object_get(req, "topic")), &o);
	json_decref(req); /* the filter's strings were its */
	fflush(stdout);
	_exit(rc);
}

/* Writes run_dir/ID.status: the exit status of the replay that ran as pid. */
static void runner_reaped(pid_t pid, int status, const pid_t *pids, char (*ids)[64], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (pids[i] != pid)
			continue;
		char path[4200];
		FILE *f;
		snprintf(path, sizeof(path), "%s/%s.status", run_dir, ids[i]);
		if ((f = fopen(path, "w"))) {
			if (WIFEXITED(status))
				fprintf(f, "%d\n", WEXITSTATUS(status));
			else
				fprintf(f, "killed by signal %d\n", WTERMSIG(status));
			fclose(f);
		}
	}
}

/* The runner's loop: until the console's end of the socket closes. */
static void runner_main(int fd)
{
	pid_t pids[64] = {0};
	char ids[64][64];
	size_t n = 0;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGTERM, SIG_DFL);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int status;
		pid_t pid;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			runner_reaped(pid, status, pids, ids, n);
		if (poll(&p, 1, 200) <= 0)
			continue;
		char msg[8192];
		ssize_t got = recv(fd, msg, sizeof(msg) - 1, 0);
		if (got <= 0)
			break;
		msg[got] = '\0';
		json_t *req = json_loads(msg, 0, NULL);
		const char *id = json_string_value(json_object_get(req, "id"));
		if (id == NULL || strlen(id) >= sizeof(ids[0])) {
			json_decref(req);
			continue;
		}
		size_t slot = n < 64 ? n++ : (size_t)(random() % 64);
		snprintf(ids[slot], sizeof(ids[slot]), "%s", id);
		pids[slot] = fork();
		if (pids[slot] == 0) {
			close(fd);
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			runner_child(req, id);
		}
		json_decref(req);
	}
	_exit(0); /* replays still running end too (their parent-death signal) */
}

/* Starts the runner, its logs in dir; -1 having logged why. */
int kp_runner_run(const char *dir)
{
	int sv[2];
	pid_t pid;

	snprintf(run_dir, sizeof(run_dir), "%s", dir);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 || (pid = fork()) < 0) {
		kp_log(KP_ERROR, "console: cannot start the replay runner: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		runner_main(sv[1]);
	}
	close(sv[1]);
	kp_cons->runner_fd = sv[0];
	return 0;
}

/* Removes the oldest replay logs beyond RUNS_KEPT. */
static void runs_prune(void)
{
	/* The ids begin with their start time in ms, so the oldest sort first. */
	struct dirent **names;
	int n = scandir(run_dir, &names, NULL, alphasort), logs = 0;

	for (int i = 0; i < n; i++)
		logs += strstr(names[i]->d_name, ".req") != NULL;
	for (int i = 0; i < n; i++) {
		char *dot = strstr(names[i]->d_name, ".req");
		if (dot && logs > RUNS_KEPT) {
			char path[4400];
			static const char *const ext[] = {".req", ".log", ".status"};
			for (size_t e = 0; e < 3; e++) {
				snprintf(path, sizeof(path), "%s/%.*s%s", run_dir,
					 (int)(dot - names[i]->d_name), names[i]->d_name, ext[e]);
				unlink(path);
			}
			logs--;
		}
		free(names[i]);
	}
	free(names);
}

/*
 * Asks the runner to run a replay (req: topic, and filter or part and
 * offset, dry_run); id gets its name.  req is kept as run_dir/ID.req.  0,
 * or -1 with err.
 */
int kp_runner_start(json_t *req, char *id, size_t len, char *err, size_t errlen)
{
	static unsigned seq;
	char path[4200], *msg;
	int rc = -1;

	pthread_mutex_lock(&kp_cons->runner_lock);
	snprintf(id, len, "%013" PRId64 "-%u", kp_now_ms(), seq++);
	json_object_set_new(req, "id", json_string(id));
	snprintf(path, sizeof(path), "%s/%s.req", run_dir, id);
	msg = json_dumps(req, JSON_COMPACT);
	if (msg == NULL || json_dump_file(req, path, JSON_COMPACT) < 0)
		snprintf(err, errlen, "cannot write %s", path);
	else if (send(kp_cons->runner_fd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
		snprintf(err, errlen, "the replay runner is gone: %s", strerror(errno));
	else
		rc = 0;
	free(msg);
	runs_prune();
	pthread_mutex_unlock(&kp_cons->runner_lock);
	return rc;
}

/*
 * What replay id has written so far (its last 64 KiB), and its exit status
 * (-1 while it runs, -2 when killed).  -1 if there is no such replay.
 */
int kp_runner_status(const char *id, struct kp_buf *log, int *exit_status)
{
	char path[4200], buf[65536];
	FILE *f;
	size_t n;

	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '-'))
			return -1;
	snprintf(path, sizeof(path), "%s/%s.log", run_dir, id);
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(path, sizeof(path), "%s/%s.req", run_dir, id);
		if (access(path, F_OK) < 0)
			return -1;
		*exit_status = -1; /* asked, not started yet */
		return 0;
	}
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)sizeof(buf))
		fseek(f, -(long)sizeof(buf), SEEK_END);
	else
		fseek(f, 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	kp_buf_put(log, buf, n);
	*exit_status = -1;
	snprintf(path, sizeof(path), "%s/%s.status", run_dir, id);
	if ((f = fopen(path, "r"))) {
		int st;
		*exit_status = fscanf(f, "%d", &st) == 1 ? st : -2;
		fclose(f);
	}
	return 0;
}
