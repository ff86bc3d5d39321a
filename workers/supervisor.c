/*
 * supervisor.c - kpoold's main process: forks the embedded broker and the
 * workers, reaps and restarts them with back-off, serves /metrics and
 * /healthz, and stops everything gracefully on TERM/INT.
 *
 * It stays single-threaded and never opens Kafka or SQLite; signal handlers
 * only write to a self-pipe and the poll loop acts.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "kpoold.h"

#define LOOP_MS 1000

static int sigpipe[2] = { -1, -1 };
static volatile sig_atomic_t got_chld, got_stop, got_hup;
static struct kp_metrics *metrics;

static void on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGCHLD)
		got_chld = 1;
	else if (sig == SIGHUP)
		got_hup = 1;
	else
		got_stop = 1;
	(void)!write(sigpipe[1], "", 1);
	errno = saved;
}

static int signals_install(void)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };

	if (pipe2(sigpipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* In a new child: drop what belongs to the supervisor and restore default signals. */
static void child_setup(void)
{
	int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	close(sigpipe[0]);
	close(sigpipe[1]);
	kp_metrics_close_in_child(metrics);
}

/* Forks the worker of one slot; on fork failure it is tried again after back-off. */
static void spawn(struct kp_supervisor *sv, struct kp_binding_state *bs, int i)
{
	struct kp_slot *s = &bs->slots[i];
	pid_t pid;

	snprintf(s->binding, sizeof(s->binding), "%s", bs->b->name);
	s->index = i;
	s->state = KP_SLOT_STARTING;
	s->kafka_state = KP_KAFKA_UNKNOWN;
	s->n_lag = 0;
	bs->due_ms[i] = 0;
	pid = fork();
	if (pid < 0) {
		kp_log(KP_ERROR, "fork: %s", strerror(errno));
		s->state = KP_SLOT_EMPTY;
		bs->due_ms[i] = kp_mono_ms() + KP_RESTART_MIN_MS;
		return;
	}
	if (pid == 0) {
		child_setup();
		_exit(kp_worker_run(sv->conf, bs->b, s));
	}
	s->pid = pid;
	bs->spawned_ms[i] = kp_mono_ms();
	kp_log(KP_DEBUG, "started worker=%s#%d pid=%d", bs->b->name, i, (int)pid);
}

static pid_t spawn_broker(struct kp_supervisor *sv)
{
	pid_t pid = fork();

	if (pid == 0) {
		child_setup();
		_exit(kp_embedded_run(sv->conf));
	}
	if (pid < 0)
		kp_log(KP_ERROR, "fork: %s", strerror(errno));
	return pid;
}

/* Waits for the embedded broker to write its address; -1 if it died or took too long. */
static int broker_wait(struct kp_supervisor *sv)
{
	char path[PATH_MAX];
	int64_t deadline = kp_mono_ms() + KP_BOOTSTRAP_WAIT_MS;
	int status;

	snprintf(path, sizeof(path), "%s/%s", sv->conf->state_dir, KP_EMBEDDED_FILE);
	while (kp_mono_ms() < deadline) {
		if (access(path, R_OK) == 0)
			return 0;
		if (waitpid(sv->broker_pid, &status, WNOHANG) == sv->broker_pid) {
			sv->broker_pid = 0;
			return -1;
		}
		poll(NULL, 0, 20);
	}
	return -1;
}

static struct kp_binding_state *find_slot(struct kp_supervisor *sv, pid_t pid, int *idx)
{
	for (size_t i = 0; i < sv->n_bs; i++)
		for (int k = 0; k < sv->bs[i].b->processes; k++)
			if (sv->bs[i].slots[k].pid == pid) {
				*idx = k;
				return &sv->bs[i];
			}
	return NULL;
}

/* Collects dead children and schedules their restart with the binding's back-off. */
static void reap(struct kp_supervisor *sv, bool stopping)
{
	int status, k;
	pid_t pid;
	char sig[32];

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == sv->broker_pid) {
			sv->broker_pid = 0;
			if (!stopping) {
				kp_log(KP_ERROR, "embedded broker died (status %d); starting a new one, "
						 "and workers again",
				       status);
				sv->broker_pid = spawn_broker(sv);
				if (sv->broker_pid > 0 && broker_wait(sv) == 0)
					for (size_t i = 0; i < sv->n_bs; i++)
						for (int j = 0; j < sv->bs[i].b->processes; j++)
							if (sv->bs[i].slots[j].pid > 0)
								kill(sv->bs[i].slots[j].pid, SIGTERM);
			}
			continue;
		}
		struct kp_binding_state *bs = find_slot(sv, pid, &k);
		if (bs == NULL)
			continue; /* a plugin check child, or already forgotten */
		struct kp_slot *s = &bs->slots[k];
		int64_t now = kp_mono_ms(), ran = now - bs->spawned_ms[k];
		s->pid = 0;
		s->state = KP_SLOT_EMPTY;
		if (WIFSIGNALED(status)) {
			s->died_signal = WTERMSIG(status);
			if (s->in_hand)
				kp_log(KP_ERROR,
				       "worker=%s#%d pid=%d killed by %s with a job in hand: topic=%s "
				       "partition=%d offset=%lld event=%s",
				       bs->b->name, k, (int)pid, kp_signame(WTERMSIG(status), sig, sizeof(sig)),
				       s->hand_topic < bs->b->n_topics ? bs->b->topics[s->hand_topic] : "?",
				       s->hand_partition, (long long)s->hand_offset, s->hand_event_id);
			else
				kp_log(stopping ? KP_WARNING : KP_ERROR, "worker=%s#%d pid=%d killed by %s",
				       bs->b->name, k, (int)pid, kp_signame(WTERMSIG(status), sig, sizeof(sig)));
		} else if (WEXITSTATUS(status) != 0 || !stopping) {
			kp_log(KP_ERROR, "worker=%s#%d pid=%d exited with status %d%s", bs->b->name, k,
			       (int)pid, WEXITSTATUS(status),
			       WEXITSTATUS(status) == KP_EXIT_CONFIG ? " (could not start)" : "");
		}
		if (stopping)
			continue;
		if (ran >= KP_HEALTHY_MS)
			bs->backoff_ms = KP_RESTART_MIN_MS;
		bs->due_ms[k] = now + bs->backoff_ms;
		kp_log(KP_NOTICE, "worker=%s#%d restarting in %llds", bs->b->name, k,
		       (long long)(bs->backoff_ms / 1000));
		bs->backoff_ms = bs->backoff_ms * 2 > KP_RESTART_MAX_MS ? KP_RESTART_MAX_MS
									: bs->backoff_ms * 2;
		bs->restarts++;
		s->restarts++;
	}
}

/* Starts slots whose restart is due; returns ms until the next one, or LOOP_MS. */
static int64_t restart_due(struct kp_supervisor *sv)
{
	int64_t now = kp_mono_ms(), next = LOOP_MS;

	for (size_t i = 0; i < sv->n_bs; i++)
		for (int k = 0; k < sv->bs[i].b->processes; k++) {
			int64_t due = sv->bs[i].due_ms[k];
			if (due == 0)
				continue;
			if (due <= now)
				spawn(sv, &sv->bs[i], k);
			else if (due - now < next)
				next = due - now;
		}
	return next;
}

static int alive_workers(const struct kp_supervisor *sv)
{
	int n = 0;

	for (size_t i = 0; i < sv->n_slots; i++)
		n += sv->slots[i].pid > 0;
	return n;
}

/*
 * Whether every binding has its processes up and reaching Kafka; *json gets
 * the details (to free).  Returns 1 if healthy, 0 if not.
 */
int kp_health(const struct kp_supervisor *sv, char **json)
{
	json_t *root = json_object(), *workers = json_object();
	int healthy = 1;

	for (size_t i = 0; i < sv->n_bs; i++) {
		const struct kp_binding_state *bs = &sv->bs[i];
		json_t *w = json_object();
		const char *kafka = "up";
		int running = 0;

		for (int k = 0; k < bs->b->processes; k++) {
			const struct kp_slot *s = &bs->slots[k];
			if (s->state != KP_SLOT_RUNNING)
				continue;
			running++;
			if (s->kafka_state == KP_KAFKA_DOWN)
				kafka = s->kafka_error[0] ? s->kafka_error : "down";
			else if (s->kafka_state != KP_KAFKA_UP && strcmp(kafka, "up") == 0)
				kafka = "connecting";
		}
		if (running == 0)
			kafka = "no worker running";
		if (running < bs->b->processes || strcmp(kafka, "up") != 0)
			healthy = 0;
		json_object_set_new(w, "processes", json_integer(bs->b->processes));
		json_object_set_new(w, "running", json_integer(running));
		json_object_set_new(w, "restarts", json_integer((json_int_t)bs->restarts));
		json_object_set_new(w, "kafka", json_string(kafka));
		json_object_set_new(workers, bs->b->name, w);
	}
	if (sv->conf->embedded && sv->broker_pid <= 0)
		healthy = 0;
	json_object_set_new(root, "status", json_string(healthy ? "ok" : "unhealthy"));
	json_object_set_new(root, "workers", workers);
	*json = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (*json == NULL)
		*json = strdup("{}");
	return healthy;
}

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Runs the pool until it is told to stop; returns kpoold's exit status. */
int kp_supervisor_run(struct kp_conf *conf)
{
	struct kp_supervisor sv = { .conf = conf };
	char err[512], path[PATH_MAX];
	bool stopping = false;
	int64_t deadline = 0;
	int rc = 0;

	kp_log_who("supervisor");
	kp_proctitle("kpoold: supervisor");
	if (mkdir_p(conf->state_dir) < 0) {
		kp_log(KP_ERROR, "state_dir %s: %s", conf->state_dir, strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < conf->n_bindings; i++)
		sv.n_slots += (size_t)conf->bindings[i].processes;
	if (sv.n_slots > KP_SLOTS_MAX) {
		kp_log(KP_ERROR, "%zu worker processes in all; at most %d", sv.n_slots, KP_SLOTS_MAX);
		return 1;
	}
	sv.slots = kp_stats_map(sv.n_slots ? sv.n_slots : 1);
	sv.bs = calloc(conf->n_bindings + 1, sizeof(*sv.bs));
	if (sv.slots == NULL || sv.bs == NULL || signals_install() < 0) {
		kp_log(KP_ERROR, "cannot set up: %s", strerror(errno));
		return 1;
	}
	sv.n_bs = conf->n_bindings;
	for (size_t i = 0, at = 0; i < conf->n_bindings; i++) {
		struct kp_binding_state *bs = &sv.bs[i];
		bs->b = &conf->bindings[i];
		bs->slots = &sv.slots[at];
		bs->due_ms = calloc((size_t)bs->b->processes, sizeof(int64_t));
		bs->spawned_ms = calloc((size_t)bs->b->processes, sizeof(int64_t));
		bs->backoff_ms = KP_RESTART_MIN_MS;
		at += (size_t)bs->b->processes;
	}
	if (conf->metrics_listen[0] &&
	    (metrics = kp_metrics_start(conf->metrics_listen, conf->state_dir, &sv, err,
					sizeof(err))) == NULL) {
		kp_log(KP_ERROR, "%s", err);
		return 1;
	}
	if (conf->embedded) {
		snprintf(path, sizeof(path), "%s/%s", conf->state_dir, KP_EMBEDDED_FILE);
		unlink(path);
		sv.broker_pid = spawn_broker(&sv);
		if (sv.broker_pid <= 0 || broker_wait(&sv) < 0) {
			kp_log(KP_ERROR, "the embedded broker did not start");
			rc = 1;
			goto out;
		}
	}
	for (size_t i = 0; i < sv.n_bs; i++)
		for (int k = 0; k < sv.bs[i].b->processes; k++)
			spawn(&sv, &sv.bs[i], k);
	kp_log(KP_NOTICE, "started conf=%s workers=%zu pid=%d", conf->path, sv.n_slots,
	       (int)getpid());
	sd_notifyf(0, "READY=1\nSTATUS=running %zu worker processes\nMAINPID=%d", sv.n_slots,
		   (int)getpid());

	for (;;) {
		struct pollfd fds[2] = { { .fd = sigpipe[0], .events = POLLIN },
					 { .fd = metrics ? kp_metrics_fd(metrics) : -1,
					   .events = POLLIN } };
		int64_t timeout = stopping ? 100 : restart_due(&sv);
		char drain[64];

		if (metrics) {
			int mt = kp_metrics_timeout_ms(metrics);
			if (mt >= 0 && mt < timeout)
				timeout = mt;
		}
		poll(fds, 2, (int)timeout);
		while (read(sigpipe[0], drain, sizeof(drain)) > 0)
			;
		if (got_chld) {
			got_chld = 0;
			reap(&sv, stopping);
		}
		if (got_hup) {
			got_hup = 0;
			kp_log(KP_WARNING, "SIGHUP: reloading is not supported by this version; "
					   "restart kpoold to apply a changed conf");
		}
		if (got_stop && !stopping) {
			stopping = true;
			deadline = kp_mono_ms() + conf->shutdown_timeout_ms;
			sd_notify(0, "STOPPING=1\nSTATUS=stopping");
			kp_log(KP_NOTICE, "stopping %d workers (timeout %llds)", alive_workers(&sv),
			       (long long)(conf->shutdown_timeout_ms / 1000));
			for (size_t i = 0; i < sv.n_slots; i++)
				if (sv.slots[i].pid > 0)
					kill(sv.slots[i].pid, SIGTERM);
		}
		if (metrics)
			kp_metrics_run(metrics);
		if (!stopping)
			continue;
		if (alive_workers(&sv) > 0 && kp_mono_ms() >= deadline) {
			for (size_t i = 0; i < sv.n_bs; i++)
				for (int k = 0; k < sv.bs[i].b->processes; k++) {
					struct kp_slot *s = &sv.bs[i].slots[k];
					if (s->pid > 0) {
						kp_log(KP_ERROR,
						       "worker=%s#%d pid=%d did not stop within "
						       "shutdown_timeout; killing it",
						       sv.bs[i].b->name, k, (int)s->pid);
						kill(s->pid, SIGKILL);
					}
				}
			rc = 1;
			deadline = INT64_MAX;
		}
		if (alive_workers(&sv) == 0)
			break;
	}
out:
	if (sv.broker_pid > 0) {
		int status;
		kill(sv.broker_pid, SIGTERM);
		while (waitpid(sv.broker_pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	kp_metrics_stop(metrics);
	metrics = NULL;
	for (size_t i = 0; i < sv.n_bs; i++) {
		free(sv.bs[i].due_ms);
		free(sv.bs[i].spawned_ms);
	}
	free(sv.bs);
	kp_stats_unmap(sv.slots, sv.n_slots ? sv.n_slots : 1);
	kp_log(KP_NOTICE, "stopped%s", rc ? " (some workers had to be killed)" : "");
	return rc;
}
