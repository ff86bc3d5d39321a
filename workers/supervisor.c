/*
 * supervisor.c - kpoold's main process: forks the embedded broker and the
 * workers, reaps them and restarts them with a throttle, reloads the conf on
 * SIGHUP, serves /metrics and /healthz, talks to systemd, and stops
 * everything gracefully on TERM/INT.
 *
 * It stays single-threaded and never opens Kafka or SQLite; signal handlers
 * only write to a self-pipe and the poll loop acts.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
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

static int sigpipe[2] = {-1, -1};
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

/* In a new child: drop what belongs to the supervisor and restore default signals. */
static void child_setup(void)
{
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	close(sigpipe[0]);
	close(sigpipe[1]);
	kp_metrics_close_in_child(metrics);
}

static uint64_t jobs_of(const struct kp_slot *s)
{
	uint64_t n = 0;

	for (int r = 0; r < KP_R_MAX; r++)
		n += s->results[r];
	return n;
}

/* Forks the worker of one slot; on fork failure it is tried again after back-off. */
static void spawn(struct kp_supervisor *sv, struct kp_binding_state *bs, int i)
{
	struct kp_slot *s = bs->slots[i];
	pid_t pid;

	s->index = i;
	s->state = KP_SLOT_STARTING;
	s->kafka_state = KP_KAFKA_UNKNOWN;
	s->n_lag = 0;
	bs->due_ms[i] = 0;
	bs->jobs_at_spawn[i] = jobs_of(s);
	pid = fork();
	if (pid < 0) {
		kp_log(KP_ERROR, "fork: %s", strerror(errno));
		s->state = KP_SLOT_EMPTY;
		bs->due_ms[i] = kp_mono_ms() + KP_RESTART_MIN_MS;
		return;
	}
	if (pid == 0) {
		child_setup();
		_exit(kp_worker_run(bs->conf, bs->b, s, bs->lp->shm));
	}
	s->pid = pid;
	s->started_ms = (uint64_t)kp_now_ms();
	bs->spawned_ms[i] = kp_mono_ms();
	kp_log(KP_DEBUG, "started worker=%s#%d pid=%d", bs->b->name, i, (int)pid);
}

/*
 * Finds a free slot for a new worker of binding bs; a slot of the same
 * binding keeps its counters.  Returns the slot index or -1.
 */
static int slot_take(struct kp_supervisor *sv, struct kp_binding_state *bs)
{
	int take = -1;

	for (int i = 0; i < KP_SLOTS_MAX; i++) {
		struct kp_slot *s = &sv->slots[i];
		if (sv->owner[i] || s->pid > 0)
			continue;
		if (strcmp(s->binding, bs->b->name) == 0) {
			take = i;
			break;
		}
		if (take < 0)
			take = i;
	}
	if (take < 0)
		return -1;
	struct kp_slot *s = &sv->slots[take];
	if (strcmp(s->binding, bs->b->name) != 0) { /* another binding's counters: start afresh */
		memset(s, 0, sizeof(*s));
		snprintf(s->binding, sizeof(s->binding), "%s", bs->b->name);
	}
	sv->owner[take] = bs;
	return take;
}

/* Starts the ledger process of lp; on fork failure it is tried again after a while. */
static void ledger_spawn(struct kp_ledger_proc *lp)
{
	pid_t pid;

	lp->due_ms = 0;
	pid = fork();
	if (pid < 0) {
		kp_log(KP_ERROR, "fork: %s", strerror(errno));
		lp->due_ms = kp_mono_ms() + KP_RESTART_MIN_MS;
		return;
	}
	if (pid == 0) {
		child_setup();
		_exit(kp_ledger_run(lp->bs->conf, lp->bs->b, lp->shm));
	}
	lp->pid = pid;
	lp->spawned_ms = kp_mono_ms();
	kp_log(KP_DEBUG, "started ledger=%s pid=%d", lp->name, (int)pid);
}

/*
 * The ledger of bs's binding: the one a binding of that name already has (a
 * reload keeps it, so old and new workers share it), else a new one with its
 * process.  NULL when out of memory.
 */
static struct kp_ledger_proc *ledger_get(struct kp_supervisor *sv, struct kp_binding_state *bs)
{
	struct kp_ledger_proc *lp = NULL, **grown;

	for (size_t i = 0; i < sv->n_ledgers; i++)
		if (strcmp(sv->ledgers[i]->name, bs->b->name) == 0 && sv->ledgers[i]->refs > 0)
			lp = sv->ledgers[i];
	if (lp) {
		lp->refs++;
		lp->bs = bs;
		if (lp->shm->ttl_ms != bs->b->idempotency_ttl_ms) { /* its process starts anew */
			kp_ledger_lock(lp->shm);
			lp->shm->ttl_ms = bs->b->idempotency_ttl_ms;
			kp_ledger_unlock(lp->shm);
			if (lp->pid > 0)
				kill(lp->pid, SIGTERM);
		}
		return lp;
	}
	grown = realloc(sv->ledgers, (sv->n_ledgers + 1) * sizeof(*sv->ledgers));
	if (grown == NULL || (lp = calloc(1, sizeof(*lp))) == NULL)
		return NULL;
	sv->ledgers = grown;
	if ((lp->shm = kp_ledger_map(bs->b->idempotency_ttl_ms)) == NULL) {
		kp_log(KP_ERROR, "worker=%s: cannot map its ledger: %s", bs->b->name,
		       strerror(errno));
		free(lp);
		return NULL;
	}
	snprintf(lp->name, sizeof(lp->name), "%s", bs->b->name);
	lp->refs = 1;
	lp->bs = bs;
	lp->backoff_ms = KP_RESTART_MIN_MS;
	sv->ledgers[sv->n_ledgers++] = lp;
	ledger_spawn(lp);
	return lp;
}

/* A binding state lets go of its ledger; the last one stops its process. */
static void ledger_put(struct kp_supervisor *sv, struct kp_binding_state *bs)
{
	struct kp_ledger_proc *lp = bs->lp;

	if (lp == NULL || --lp->refs > 0) {
		if (lp && lp->bs == bs) /* another state of that binding goes on with it */
			for (size_t i = 0; i < sv->n_bs; i++)
				if (sv->bs[i] != bs && sv->bs[i]->lp == lp)
					lp->bs = sv->bs[i];
		return;
	}
	lp->due_ms = 0;
	lp->kill_at_ms = kp_mono_ms() + bs->conf->shutdown_timeout_ms;
	if (lp->pid > 0)
		kill(lp->pid, SIGTERM); /* it writes what is left, then exits */
}

/* Frees ledgers nobody uses whose process is gone; SIGKILLs a late one. */
static void ledger_reap(struct kp_supervisor *sv)
{
	int64_t now = kp_mono_ms();

	for (size_t i = 0; i < sv->n_ledgers;) {
		struct kp_ledger_proc *lp = sv->ledgers[i];
		if (lp->refs > 0) {
			i++;
			continue;
		}
		if (lp->pid > 0) {
			if (now >= lp->kill_at_ms) {
				kp_log(KP_ERROR, "ledger=%s pid=%d did not stop; killing it",
				       lp->name, (int)lp->pid);
				kill(lp->pid, SIGKILL);
				lp->kill_at_ms = INT64_MAX;
			}
			i++;
			continue;
		}
		kp_ledger_unmap(lp->shm);
		free(lp);
		memmove(&sv->ledgers[i], &sv->ledgers[i + 1],
			(sv->n_ledgers - i - 1) * sizeof(*sv->ledgers));
		sv->n_ledgers--;
	}
}

/* If pid was a ledger process: notes its end, schedules its restart if still used. */
static bool ledger_died(struct kp_supervisor *sv, pid_t pid, int status)
{
	for (size_t i = 0; i < sv->n_ledgers; i++) {
		struct kp_ledger_proc *lp = sv->ledgers[i];
		if (lp->pid != pid)
			continue;
		lp->pid = 0;
		if (lp->refs == 0)
			return true;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			lp->due_ms = kp_mono_ms(); /* asked to start anew (a new ttl) */
			kp_log(KP_NOTICE, "ledger=%s starting anew", lp->name);
			return true;
		}
		if (kp_mono_ms() - lp->spawned_ms >= KP_HEALTHY_MS)
			lp->backoff_ms = KP_RESTART_MIN_MS;
		kp_log(KP_ERROR,
		       "ledger=%s pid=%d ended (status %d); restarting in %llds; "
		       "offsets wait meanwhile",
		       lp->name, (int)pid, status, (long long)(lp->backoff_ms / 1000));
		lp->due_ms = kp_mono_ms() + lp->backoff_ms;
		lp->backoff_ms =
		    lp->backoff_ms * 2 > KP_RESTART_MAX_MS ? KP_RESTART_MAX_MS : lp->backoff_ms * 2;
		return true;
	}
	return false;
}

static int ledgers_alive(const struct kp_supervisor *sv)
{
	int n = 0;

	for (size_t i = 0; i < sv->n_ledgers; i++)
		n += sv->ledgers[i]->pid > 0;
	return n;
}

/* What makes two bindings the same across a reload: every key, and the plugin's bytes. */
static char *binding_sig(const struct kp_conf *conf, const struct kp_binding *b)
{
	char *buf = NULL, path[PATH_MAX];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len), *so;
	uint64_t h = 1469598103934665603ull; /* FNV-1a 64 of the plugin file */
	int c;

	if (f == NULL)
		return NULL;
	fprintf(f, "%s|%s|%s|%d|%s|%s|%d|%lld|%lld|%d|%lld|%d|%s|%lld|%s|%s", b->name,
		b->topic_list, b->handler, b->processes, b->group,
		b->dead_letter_topic ? b->dead_letter_topic : "", b->max_attempts,
		(long long)b->retry_backoff_ms, (long long)b->retry_backoff_max_ms, b->max_crashes,
		(long long)b->max_job_bytes, b->idempotency, b->idempotency_key,
		(long long)b->idempotency_ttl_ms, b->ledger, b->ledger_topic);
	for (size_t i = 0; i < b->n_opts; i++)
		fprintf(f, "|%s=%s", b->opts[i].key, b->opts[i].value);
	for (size_t i = 0; i < conf->n_kafka; i++)
		fprintf(f, "|kafka.%s=%s", conf->kafka[i].key, conf->kafka[i].value);
	fprintf(f, "|%s|%s|%d", conf->plugin_dir, conf->state_dir, conf->log_level);
	if (kp_plugin_path(conf, b->handler, path, sizeof(path)) == 0 && (so = fopen(path, "rb"))) {
		while ((c = getc(so)) != EOF)
			h = (h ^ (uint64_t)c) * 1099511628211ull;
		fclose(so);
	}
	fprintf(f, "|plugin=%016llx", (unsigned long long)h);
	fclose(f);
	return buf;
}

static void conf_unref(struct kp_conf *conf)
{
	if (conf && --conf->refs == 0)
		kp_conf_free(conf);
}

/* Adds a binding state for b and starts its workers; NULL if there are no slots left. */
static struct kp_binding_state *binding_start(struct kp_supervisor *sv, struct kp_conf *conf,
					      const struct kp_binding *b, char *sig)
{
	struct kp_binding_state *bs = calloc(1, sizeof(*bs)), **grown;
	int n = b->processes;

	grown = realloc(sv->bs, (sv->n_bs + 1) * sizeof(*sv->bs));
	if (bs == NULL || grown == NULL)
		goto fail;
	sv->bs = grown;
	bs->conf = conf;
	bs->b = b;
	bs->sig = sig;
	bs->slots = calloc((size_t)n, sizeof(*bs->slots));
	bs->due_ms = calloc((size_t)n, sizeof(*bs->due_ms));
	bs->spawned_ms = calloc((size_t)n, sizeof(*bs->spawned_ms));
	bs->jobs_at_spawn = calloc((size_t)n, sizeof(*bs->jobs_at_spawn));
	bs->backoff_ms = KP_RESTART_MIN_MS;
	if (!bs->slots || !bs->due_ms || !bs->spawned_ms || !bs->jobs_at_spawn)
		goto fail;
	for (int k = 0; k < n; k++) {
		int i = slot_take(sv, bs);
		if (i < 0) {
			kp_log(KP_ERROR, "worker=%s: more than %d worker processes in all", b->name,
			       KP_SLOTS_MAX);
			for (int j = 0; j < k; j++)
				sv->owner[bs->slots[j] - sv->slots] = NULL;
			goto fail;
		}
		bs->slots[k] = &sv->slots[i];
	}
	conf->refs++;
	sv->bs[sv->n_bs++] = bs;
	if ((bs->lp = ledger_get(sv, bs)) == NULL) {
		kp_log(KP_ERROR, "worker=%s: no ledger, so no workers", b->name);
		return bs;
	}
	for (int k = 0; k < n; k++)
		spawn(sv, bs, k);
	return bs;
fail:
	if (bs) {
		free(bs->slots);
		free(bs->due_ms);
		free(bs->spawned_ms);
		free(bs->jobs_at_spawn);
	}
	free(bs);
	free(sig);
	return NULL;
}

/* Asks a binding's workers to finish and stop; they are not restarted. */
static void binding_drain(struct kp_binding_state *bs, const char *why)
{
	bs->draining = true;
	bs->drain_deadline = kp_mono_ms() + bs->conf->shutdown_timeout_ms;
	kp_log(KP_NOTICE, "worker=%s draining (%s)", bs->b->name, why);
	for (int k = 0; k < bs->b->processes; k++) {
		bs->due_ms[k] = 0;
		if (bs->slots[k]->pid > 0)
			kill(bs->slots[k]->pid, SIGTERM);
	}
}

static int alive(const struct kp_binding_state *bs)
{
	int n = 0;

	for (int k = 0; k < bs->b->processes; k++)
		n += bs->slots[k]->pid > 0;
	return n;
}

/* Frees draining bindings whose workers are all gone; SIGKILLs the late ones. */
static void binding_reap(struct kp_supervisor *sv, int *killed)
{
	int64_t now = kp_mono_ms();

	for (size_t i = 0; i < sv->n_bs;) {
		struct kp_binding_state *bs = sv->bs[i];

		if (!bs->draining) {
			i++;
			continue;
		}
		if (alive(bs) > 0) {
			if (now >= bs->drain_deadline) {
				for (int k = 0; k < bs->b->processes; k++)
					if (bs->slots[k]->pid > 0) {
						kp_log(KP_ERROR,
						       "worker=%s#%d pid=%d did not stop within "
						       "shutdown_timeout; killing it",
						       bs->b->name, k, (int)bs->slots[k]->pid);
						kill(bs->slots[k]->pid, SIGKILL);
						(*killed)++;
					}
				bs->drain_deadline = INT64_MAX;
			}
			i++;
			continue;
		}
		for (int k = 0; k < bs->b->processes; k++)
			sv->owner[bs->slots[k] - sv->slots] = NULL;
		ledger_put(sv, bs);
		free(bs->slots);
		free(bs->due_ms);
		free(bs->spawned_ms);
		free(bs->jobs_at_spawn);
		free(bs->sig);
		conf_unref(bs->conf);
		free(bs);
		memmove(&sv->bs[i], &sv->bs[i + 1], (sv->n_bs - i - 1) * sizeof(*sv->bs));
		sv->n_bs--;
	}
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

static struct kp_binding_state *find_pid(struct kp_supervisor *sv, pid_t pid, int *idx)
{
	for (size_t i = 0; i < sv->n_bs; i++)
		for (int k = 0; k < sv->bs[i]->b->processes; k++)
			if (sv->bs[i]->slots[k]->pid == pid) {
				*idx = k;
				return sv->bs[i];
			}
	return NULL;
}

/*
 * Decides when a dead worker starts again.  Like postfix's master, a worker
 * that died before handling any job throttles its binding: 1 s doubling to
 * 60 s until one stays up 60 s or handles a job; the state change is logged
 * once.  A worker that did work restarts after the least delay.
 */
static void schedule_restart(struct kp_binding_state *bs, int k, bool did_work, int64_t ran)
{
	int64_t now = kp_mono_ms();

	if (did_work || ran >= KP_HEALTHY_MS) {
		bs->backoff_ms = KP_RESTART_MIN_MS;
		if (bs->throttled)
			kp_log(KP_NOTICE, "worker=%s is no longer throttled", bs->b->name);
		bs->throttled = false;
	} else if (!bs->throttled) {
		bs->throttled = true;
		kp_log(KP_WARNING,
		       "worker=%s throttled: a worker died before handling any job; restarts back "
		       "off from %llds to %llds",
		       bs->b->name, (long long)(bs->backoff_ms / 1000),
		       (long long)(KP_RESTART_MAX_MS / 1000));
	}
	bs->due_ms[k] = now + bs->backoff_ms;
	kp_log(KP_NOTICE, "worker=%s#%d restarting in %llds", bs->b->name, k,
	       (long long)(bs->backoff_ms / 1000));
	if (!did_work)
		bs->backoff_ms =
		    bs->backoff_ms * 2 > KP_RESTART_MAX_MS ? KP_RESTART_MAX_MS : bs->backoff_ms * 2;
	bs->restarts++;
	bs->slots[k]->restarts++;
}

/* Collects dead children and schedules their restart. */
static void reap(struct kp_supervisor *sv, bool stopping)
{
	int status, k;
	pid_t pid;
	char sig[32];

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == sv->broker_pid) {
			sv->broker_pid = 0;
			if (stopping)
				continue;
			kp_log(KP_ERROR,
			       "embedded broker died (status %d); starting a new one, and "
			       "the workers again",
			       status);
			sv->broker_pid = spawn_broker(sv);
			if (sv->broker_pid > 0 && broker_wait(sv) == 0)
				for (size_t i = 0; i < sv->n_bs; i++)
					for (int j = 0; j < sv->bs[i]->b->processes; j++)
						if (sv->bs[i]->slots[j]->pid > 0)
							kill(sv->bs[i]->slots[j]->pid, SIGTERM);
			continue;
		}
		if (ledger_died(sv, pid, status))
			continue;
		struct kp_binding_state *bs = find_pid(sv, pid, &k);
		if (bs == NULL)
			continue; /* a plugin check child */
		struct kp_slot *s = bs->slots[k];
		/* Its claims go back to the ledger, and the job in hand is charged. */
		if (bs->lp)
			kp_ledger_reap(bs->lp->shm, pid, s->in_hand ? &s->hand_id : NULL,
				       s->hand_event_id,
				       WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		int64_t ran = kp_mono_ms() - bs->spawned_ms[k];
		bool did_work = jobs_of(s) > bs->jobs_at_spawn[k];
		s->pid = 0;
		s->state = KP_SLOT_EMPTY;
		if (WIFSIGNALED(status)) {
			s->died_signal = WTERMSIG(status);
			kp_signame(WTERMSIG(status), sig, sizeof(sig));
			if (s->in_hand)
				kp_log(
				    KP_ERROR,
				    "worker=%s#%d pid=%d killed by %s with a job in hand: topic=%s "
				    "partition=%d offset=%lld event=%s",
				    bs->b->name, k, (int)pid, sig,
				    s->hand_topic < s->n_topics ? s->topics[s->hand_topic] : "?",
				    s->hand_partition, (long long)s->hand_offset, s->hand_event_id);
			else
				kp_log(stopping || bs->draining ? KP_WARNING : KP_ERROR,
				       "worker=%s#%d pid=%d killed by %s", bs->b->name, k, (int)pid,
				       sig);
		} else if (s->in_hand) {
			kp_log(KP_ERROR,
			       "worker=%s#%d pid=%d exited with status %d with a job in hand: "
			       "topic=%s partition=%d offset=%lld event=%s",
			       bs->b->name, k, (int)pid, WEXITSTATUS(status),
			       s->hand_topic < s->n_topics ? s->topics[s->hand_topic] : "?",
			       s->hand_partition, (long long)s->hand_offset, s->hand_event_id);
		} else if (WEXITSTATUS(status) != 0 || !(stopping || bs->draining)) {
			kp_log(KP_ERROR, "worker=%s#%d pid=%d exited with status %d%s", bs->b->name,
			       k, (int)pid, WEXITSTATUS(status),
			       WEXITSTATUS(status) == KP_EXIT_CONFIG ? " (could not start)" : "");
		}
		if (stopping || bs->draining)
			continue;
		schedule_restart(bs, k, did_work && WEXITSTATUS(status) != KP_EXIT_CONFIG, ran);
	}
}

/* Starts slots whose restart is due; returns ms until the next one, or LOOP_MS. */
static int64_t restart_due(struct kp_supervisor *sv)
{
	int64_t now = kp_mono_ms(), next = LOOP_MS;

	for (size_t i = 0; i < sv->n_ledgers; i++) {
		struct kp_ledger_proc *lp = sv->ledgers[i];
		if (lp->due_ms == 0 || lp->refs == 0)
			continue;
		if (lp->due_ms <= now)
			ledger_spawn(lp);
		else if (lp->due_ms - now < next)
			next = lp->due_ms - now;
	}
	for (size_t i = 0; i < sv->n_bs; i++) {
		struct kp_binding_state *bs = sv->bs[i];

		for (int k = 0; k < bs->b->processes; k++) {
			int64_t due = bs->due_ms[k];
			if (due == 0 || bs->draining)
				continue;
			if (due <= now)
				spawn(sv, bs, k);
			else if (due - now < next)
				next = due - now;
		}
		/* A worker that handles a job ends its binding's throttle. */
		if (bs->throttled)
			for (int k = 0; k < bs->b->processes; k++)
				if (jobs_of(bs->slots[k]) > bs->jobs_at_spawn[k] &&
				    bs->slots[k]->pid > 0) {
					bs->throttled = false;
					bs->backoff_ms = KP_RESTART_MIN_MS;
					kp_log(KP_NOTICE, "worker=%s is no longer throttled",
					       bs->b->name);
					break;
				}
	}
	return next;
}

static int alive_workers(const struct kp_supervisor *sv)
{
	int n = 0;

	for (size_t i = 0; i < sv->n_bs; i++)
		n += alive(sv->bs[i]);
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

static void notify_status(const struct kp_supervisor *sv, const char *extra)
{
	sd_notifyf(0, "%sSTATUS=%d worker processes running, %zu bindings", extra ? extra : "",
		   alive_workers(sv), sv->n_bs);
}

/*
 * SIGHUP, like nginx: a new conf that checks out replaces the old one.
 * Bindings that are new start; removed ones drain; changed ones (any key, or
 * their plugin's bytes) start new workers before the old ones drain; the
 * others keep their processes.  An invalid conf is logged and ignored.
 */
static void reload(struct kp_supervisor *sv)
{
	struct kp_conf *old = sv->conf, *conf;
	char err[1024];
	size_t n_old = sv->n_bs;

	sd_notify(0, "RELOADING=1\nSTATUS=reloading");
	kp_log(KP_NOTICE, "SIGHUP: reloading %s", old->path);
	conf = kp_conf_load(old->path, err, sizeof(err));
	for (size_t i = 0; conf && i < conf->n_bindings; i++)
		if (kp_plugin_check(conf, &conf->bindings[i], err, sizeof(err)) < 0) {
			kp_conf_free(conf);
			conf = NULL;
		}
	if (conf == NULL) {
		kp_log(KP_ERROR, "reload refused, keeping the running conf: %s", err);
		notify_status(sv, "READY=1\n");
		return;
	}
	if (strcmp(conf->state_dir, old->state_dir) != 0 ||
	    strcmp(conf->metrics_listen, old->metrics_listen) != 0 ||
	    conf->embedded != old->embedded ||
	    strcmp(conf->user ? conf->user : "", old->user ? old->user : "") != 0)
		kp_log(KP_WARNING, "reload: state_dir, metrics_listen, user and an embedded broker "
				   "change only with a restart; the running ones stay");
	kp_log_level = conf->log_level;
	conf->refs++; /* held by sv->conf */
	for (size_t i = 0; i < conf->n_bindings; i++) {
		const struct kp_binding *b = &conf->bindings[i];
		char *sig = binding_sig(conf, b);
		struct kp_binding_state *same = NULL;

		for (size_t j = 0; j < n_old; j++) {
			struct kp_binding_state *bs = sv->bs[j];
			if (!bs->draining && strcmp(bs->b->name, b->name) == 0) {
				same = bs;
				break;
			}
		}
		if (same && sig && strcmp(same->sig, sig) == 0) { /* untouched: keep it running */
			conf_unref(same->conf);
			same->conf = conf;
			same->b = b;
			conf->refs++;
			free(sig);
			/* and have its plugin read its files (templates, secrets) again */
			for (int k = 0; k < same->b->processes; k++)
				if (same->slots[k] && same->slots[k]->pid > 0)
					kill(same->slots[k]->pid, SIGHUP);
			continue;
		}
		kp_log(KP_NOTICE, "worker=%s %s", b->name,
		       same ? "changed: starting new workers" : "added");
		if (binding_start(sv, conf, b, sig) == NULL)
			continue;
		if (same)
			binding_drain(same, "replaced by a reload");
	}
	for (size_t j = 0; j < n_old; j++) {
		struct kp_binding_state *bs = sv->bs[j];
		if (!bs->draining && bs->conf != conf && !kp_conf_binding(conf, bs->b->name))
			binding_drain(bs, "removed from the conf");
	}
	sv->conf = conf;
	conf_unref(old);
	notify_status(sv, "READY=1\n");
	kp_log(KP_NOTICE, "reloaded: %zu bindings", conf->n_bindings);
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
	conf->refs = 1; /* held by sv.conf */
	/* The ledger and the plugins' databases hold whole jobs: only for us. */
	umask(077);
	if (kp_state_dir_make(conf->state_dir) < 0) {
		kp_log(KP_ERROR, "state_dir %s: %s", conf->state_dir, strerror(errno));
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
		snprintf(path, sizeof(path), "%s/%s", conf->state_dir, KP_EMBEDDED_FILE);
		unlink(path);
		sv.broker_pid = spawn_broker(&sv);
		if (sv.broker_pid <= 0 || broker_wait(&sv) < 0) {
			kp_log(KP_ERROR, "the embedded broker did not start");
			rc = 1;
			goto out;
		}
	}
	for (size_t i = 0; i < conf->n_bindings; i++)
		if (binding_start(&sv, conf, &conf->bindings[i],
				  binding_sig(conf, &conf->bindings[i])) == NULL) {
			rc = 1;
			goto out;
		}
	kp_log(KP_NOTICE, "started conf=%s bindings=%zu pid=%d", conf->path, sv.n_bs,
	       (int)getpid());
	notify_status(&sv, "READY=1\n");

	for (;;) {
		struct pollfd fds[2] = {
		    {.fd = sigpipe[0], .events = POLLIN},
		    {.fd = metrics ? kp_metrics_fd(metrics) : -1, .events = POLLIN}};
		int64_t timeout = stopping ? 100 : restart_due(&sv), now;
		char drain[64];

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
			reap(&sv, stopping);
			if (!stopping)
				notify_status(&sv, NULL);
		}
		if (got_hup) {
			got_hup = 0;
			if (!stopping)
				reload(&sv);
		}
		if (got_stop && !stopping) {
			stopping = true;
			deadline = now + sv.conf->shutdown_timeout_ms;
			sd_notify(0, "STOPPING=1\nSTATUS=stopping");
			kp_log(KP_NOTICE, "stopping %d workers (timeout %llds)", alive_workers(&sv),
			       (long long)(sv.conf->shutdown_timeout_ms / 1000));
			for (size_t i = 0; i < sv.n_bs; i++) {
				sv.bs[i]->draining = true;
				sv.bs[i]->drain_deadline = deadline;
				for (int k = 0; k < sv.bs[i]->b->processes; k++)
					if (sv.bs[i]->slots[k]->pid > 0)
						kill(sv.bs[i]->slots[k]->pid, SIGTERM);
			}
		}
		if (metrics)
			kp_metrics_run(metrics);
		binding_reap(&sv, &killed);
		ledger_reap(&sv);
		if (stopping && alive_workers(&sv) == 0 && ledgers_alive(&sv) == 0)
			break;
	}
	if (killed)
		rc = 1;
out:
	if (sv.broker_pid > 0) {
		int status;
		kill(sv.broker_pid, SIGTERM);
		while (waitpid(sv.broker_pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	kp_metrics_stop(metrics);
	metrics = NULL;
	for (size_t i = 0; i < sv.n_bs; i++) { /* only after a failed start */
		sv.bs[i]->draining = true;
		for (int k = 0; k < sv.bs[i]->b->processes; k++)
			if (sv.bs[i]->slots[k]->pid > 0) {
				kill(sv.bs[i]->slots[k]->pid, SIGKILL);
				waitpid(sv.bs[i]->slots[k]->pid, NULL, 0);
				sv.bs[i]->slots[k]->pid = 0;
			}
	}
	binding_reap(&sv, &killed);
	for (size_t i = 0; i < sv.n_ledgers; i++)
		if (sv.ledgers[i]->pid > 0) {
			kill(sv.ledgers[i]->pid, SIGKILL);
			waitpid(sv.ledgers[i]->pid, NULL, 0);
			sv.ledgers[i]->pid = 0;
		}
	ledger_reap(&sv);
	free(sv.ledgers);
	free(sv.bs);
	kp_stats_unmap(sv.slots, KP_SLOTS_MAX);
	conf_unref(sv.conf); /* the supervisor's own hold; bindings held theirs */
	kp_log(KP_NOTICE, "stopped%s", rc ? " (some workers had to be killed)" : "");
	return rc;
}
