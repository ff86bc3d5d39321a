/*
 * supervisor.c - kpoold's main process and its loop: signals, /metrics and
 * /healthz, systemd's notify and watchdog, dropping root, and the graceful
 * stop on TERM/INT.  Its children are spawn.c's (the console's process
 * spawn_console.c's), a reload is reload.c's, what the operator asks of the
 * bindings (pause, a worker's restart) control.c's.
 *
 * It stays single-threaded and never opens Kafka or SQLite; signal handlers
 * only write to a self-pipe, the poll loop acts, and nothing in the loop
 * waits for a child.
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
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "supervisor.h"

#define STOP_CHECK_MS 100 /* how often a stopping supervisor looks for the last child */

static int sigpipe[2] = {-1, -1};
static volatile sig_atomic_t got_chld, got_stop, got_hup;
static struct kp_metrics *metrics;

/* Notes a signal for the loop and wakes it through the self-pipe. */
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

/* The self-pipe and the handlers of CHLD, TERM, INT and HUP; -1 if the pipe cannot be made. */
static int signals_install(void)
{
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};

	if (pipe2(sigpipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* In a new child: drops what belongs to the supervisor and restores default signals. */
void kp_sv_child_setup(void)
{
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	close(sigpipe[0]);
	close(sigpipe[1]);
	kp_metrics_close_in_child(metrics);
}

/*
 * Whether every binding has its processes up and reaching Kafka; *json gets
 * the details (to free).  A paused binding is healthy all the same (its
 * workers stay in their group), and the console plays no part.  Returns 1
 * if healthy, 0 if not.
 */
int kp_health(const struct kp_supervisor *sv, char **json)
{
	json_t *root = json_object(), *workers = json_object();
	int healthy = 1;

	for (size_t i = 0; i < sv->n_bs; i++) {
		const struct kp_binding_state *bs = sv->bs[i];
		json_t *w = json_object();
		const char *kafka = "up";
		int running = 0;

		if (bs->draining)
			continue;
		for (int k = 0; k < bs->b->processes; k++) {
			const struct kp_slot *s = bs->slots[k];
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
		if (running < bs->b->processes || strcmp(kafka, "up") != 0 || bs->throttled ||
		    bs->lp == NULL || bs->lp->pid <= 0)
			healthy = 0;
		json_object_set_new(w, "ledger",
				    json_string(bs->lp && bs->lp->pid > 0 ? "up" : "down"));
		json_object_set_new(w, "processes", json_integer(bs->b->processes));
		json_object_set_new(w, "running", json_integer(running));
		json_object_set_new(w, "restarts", json_integer((json_int_t)bs->restarts));
		json_object_set_new(w, "throttled", json_boolean(bs->throttled));
		json_object_set_new(w, "paused", json_boolean(bs->paused));
		json_object_set_new(w, "kafka", json_string(kafka));
		json_object_set_new(workers, bs->b->name, w);
	}
	if (sv->conf->embedded) {
		json_object_set_new(root, "embedded_broker",
				    json_string(sv->broker.up ? "up" : "starting"));
		if (!sv->broker.up)
			healthy = 0;
	}
	json_object_set_new(root, "status", json_string(healthy ? "ok" : "unhealthy"));
	json_object_set_new(root, "workers", workers);
	*json = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (*json == NULL)
		*json = strdup("{}");
	return healthy;
}

/*
 * Drops root for [pool] user, after the metrics socket is open: the state
 * directory and what root made in it are given to that user first.  -1 with
 * a logged reason on failure.
 */
static int drop_privileges(const struct kp_conf *conf)
{
	char err[512];
	uid_t was = geteuid();

	if (kp_become_user(conf, true, err, sizeof(err)) < 0) {
		kp_log(KP_ERROR, "%s", err);
		return -1;
	}
	if (geteuid() != was)
		kp_log(KP_INFO, "running as user %s (uid %u)", conf->user, (unsigned)geteuid());
	return 0;
}

/* Tells systemd how many workers run, after extra ("READY=1\n", say). */
void kp_sv_notify(const struct kp_supervisor *sv, const char *extra)
{
	sd_notifyf(0, "%sSTATUS=%d worker processes running, %zu bindings", extra ? extra : "",
		   kp_spawn_workers_alive(sv), sv->n_bs);
}

/* Runs the pool until it is told to stop, and frees conf; returns kpoold's exit status. */
int kp_supervisor_run(struct kp_conf *conf)
{
	struct kp_supervisor sv = {.conf = conf};
	char err[512], path[PATH_MAX];
	bool stopping = false;
	int64_t deadline = 0, next_watchdog = 0;
	uint64_t watchdog_usec = 0;
	int rc = 0, killed = 0;

	kp_log_who("supervisor");
	kp_proctitle("kpoold: supervisor");
	kp_conf_hold(&sv, conf); /* held by sv.conf */
	/* The ledger and the plugins' databases hold whole jobs: only for us. */
	umask(077);
	if (kp_state_dir_make(conf->state_dir) < 0) {
		kp_log(KP_ERROR, "state_dir %s: %s", conf->state_dir, strerror(errno));
		return 1;
	}
	/* Where kpool pause leaves its files, made now so that it is the user's
	 * once root is dropped; a pause left there before is honoured. */
	snprintf(path, sizeof(path), "%s/%s", conf->state_dir, KP_PAUSE_DIR);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		kp_log(KP_ERROR, "state_dir %s: %s", path, strerror(errno));
		return 1;
	}
	sv.slots = kp_stats_map(KP_SLOTS_MAX);
	if (sv.slots == NULL || signals_install() < 0) {
		kp_log(KP_ERROR, "cannot set up: %s", strerror(errno));
		return 1;
	}
	if (conf->metrics_listen[0] &&
	    (metrics = kp_metrics_start(conf->metrics_listen, conf->state_dir, &sv, err,
					sizeof(err))) == NULL) {
		kp_log(KP_ERROR, "%s", err);
		return 1;
	}
	if (drop_privileges(conf) < 0) {
		kp_metrics_stop(metrics);
		return 1;
	}
	if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
		watchdog_usec = 0;
	if (conf->embedded) {
		/* A new embedded broker starts empty, its offsets from 0 again: event ids
		 * remembered from an earlier one would skip new jobs as duplicates. */
		for (size_t i = 0; i < conf->n_bindings; i++)
			for (const char *const *ext =
				 (const char *const[]){"db", "db-wal", "db-shm", NULL};
			     *ext; ext++) {
				snprintf(path, sizeof(path), "%s/%s.%s", conf->state_dir,
					 conf->bindings[i].name, *ext);
				unlink(path);
			}
		if (kp_spawn_broker_first(&sv) < 0) {
			kp_log(KP_ERROR, "the embedded broker did not start");
			rc = 1;
			goto out;
		}
	}
	for (size_t i = 0; i < conf->n_bindings; i++)
		if (kp_spawn_binding(&sv, conf, &conf->bindings[i],
				     kp_binding_sig(conf, &conf->bindings[i])) == NULL) {
			rc = 1;
			goto out;
		}
	kp_spawn_console_start(&sv);
	kp_log(KP_NOTICE, "started conf=%s bindings=%zu pid=%d", conf->path, sv.n_bs,
	       (int)getpid());
	kp_sv_notify(&sv, "READY=1\n");

	for (;;) {
		struct pollfd fds[2] = {
		    {.fd = sigpipe[0], .events = POLLIN},
		    {.fd = metrics ? kp_metrics_fd(metrics) : -1, .events = POLLIN}};
		int64_t timeout = stopping ? STOP_CHECK_MS : kp_spawn_due(&sv), bt, now;
		char drain[64];

		if (!stopping && (bt = kp_spawn_broker_poll(&sv)) < timeout)
			timeout = bt;
		if (!stopping && (bt = kp_control_poll(&sv)) < timeout)
			timeout = bt;
		if (metrics) {
			int mt = kp_metrics_timeout_ms(metrics);
			if (mt >= 0 && mt < timeout)
				timeout = mt;
		}
		if (watchdog_usec && timeout > (int64_t)(watchdog_usec / 2000))
			timeout = (int64_t)(watchdog_usec / 2000);
		poll(fds, 2, (int)timeout);
		while (read(sigpipe[0], drain, sizeof(drain)) > 0)
			;
		now = kp_mono_ms();
		if (watchdog_usec && now >= next_watchdog) {
			sd_notify(0, "WATCHDOG=1");
			next_watchdog = now + (int64_t)(watchdog_usec / 2000);
		}
		if (got_chld) {
			got_chld = 0;
			kp_spawn_reap(&sv, stopping);
			if (!stopping)
				kp_sv_notify(&sv, NULL);
		}
		if (got_hup) {
			got_hup = 0;
			if (!stopping)
				kp_reload(&sv);
		}
		if (got_stop && !stopping) {
			stopping = true;
			deadline = now + sv.conf->shutdown_timeout_ms;
			sd_notify(0, "STOPPING=1\nSTATUS=stopping");
			kp_log(KP_NOTICE, "stopping %d workers (timeout %llds)",
			       kp_spawn_workers_alive(&sv),
			       (long long)(sv.conf->shutdown_timeout_ms / 1000));
			kp_spawn_stop_all(&sv, deadline);
		}
		if (metrics)
			kp_metrics_run(metrics);
		kp_spawn_cleanup(&sv, &killed);
		if (stopping && kp_spawn_workers_alive(&sv) == 0 &&
		    kp_spawn_ledgers_alive(&sv) == 0 && sv.console.pid <= 0)
			break;
	}
	if (killed)
		rc = 1;
out:
	kp_metrics_stop(metrics);
	metrics = NULL;
	kp_spawn_kill_all(&sv);
	kp_stats_unmap(sv.slots, KP_SLOTS_MAX);
	kp_conf_release(&sv, sv.conf); /* the supervisor's own hold; bindings held theirs */
	kp_log(KP_NOTICE, "stopped%s", rc ? " (some workers had to be killed)" : "");
	return rc;
}
