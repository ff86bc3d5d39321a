/*
 * spawn.c - the supervisor's children: forking workers, ledger processes
 * and the embedded broker, reaping them by kind (the console's process too,
 * which spawn_console.c runs), and restarting them with a throttle.  Nothing
 * here waits: a broker that is starting is looked at again on the loop's
 * next turn, and the workers start once it is up.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor.h"

#define LOOP_MS		1000 /* the loop's longest sleep */
#define BROKER_CHECK_MS 20   /* how often a starting broker is looked at */

/* Notes a new child in the table.  The table holds every child there can be. */
void kp_child_add(struct kp_supervisor *sv, const struct kp_child *c)
{
	if (sv->n_children < KP_CHILDREN_MAX)
		sv->children[sv->n_children++] = *c;
	else
		kp_log(KP_ERROR, "pid=%d: more children than the table holds", (int)c->pid);
}

/* Takes pid's entry out of the table into *c; -1 if pid is not one of ours. */
static int child_take(struct kp_supervisor *sv, pid_t pid, struct kp_child *c)
{
	for (size_t i = 0; i < sv->n_children; i++)
		if (sv->children[i].pid == pid) {
			*c = sv->children[i];
			sv->children[i] = sv->children[--sv->n_children];
			return 0;
		}
	return -1;
}

/* Whether workers may start: there is no embedded broker, or it is up. */
static bool broker_ready(const struct kp_supervisor *sv)
{
	return !sv->conf->embedded || sv->broker.up;
}

/* The file the embedded broker writes its address to, in buf. */
static const char *broker_file(const struct kp_supervisor *sv, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", sv->conf->state_dir, KP_EMBEDDED_FILE);
	return buf;
}

/* Forks the embedded broker; on failure it is tried again after its back-off. */
static void broker_spawn(struct kp_supervisor *sv)
{
	struct kp_broker *br = &sv->broker;
	char path[PATH_MAX];
	pid_t pid;

	br->due_ms = 0;
	br->up = false;
	unlink(broker_file(sv, path, sizeof(path))); /* an old broker's address is no use */
	pid = fork();
	if (pid < 0) {
		kp_log(KP_ERROR, "fork: %s", strerror(errno));
		br->due_ms = kp_mono_ms() + br->backoff_ms;
		return;
	}
	if (pid == 0) {
		kp_sv_child_setup();
		_exit(kp_embedded_run(sv->conf));
	}
	kp_child_add(sv, &(struct kp_child){.pid = pid, .kind = KP_CHILD_BROKER});
	br->pid = pid;
	br->ready_by_ms = kp_mono_ms() + KP_BOOTSTRAP_WAIT_MS;
}

/*
 * The embedded broker ended.  Unless kpoold is stopping, a new one starts:
 * at once if this one had been up, else after a back-off (1 s doubling to
 * 60 s), so a broker that cannot start does not spin.
 */
static void broker_died(struct kp_supervisor *sv, int status, bool stopping)
{
	struct kp_broker *br = &sv->broker;
	bool was_up = br->up;

	br->pid = 0;
	br->up = false;
	if (stopping)
		return;
	if (was_up)
		br->backoff_ms = KP_RESTART_MIN_MS;
	br->due_ms = kp_mono_ms() + (was_up ? 0 : br->backoff_ms);
	if (was_up)
		kp_log(KP_ERROR,
		       "embedded broker died (status %d); starting a new one, then the workers "
		       "again",
		       status);
	else
		kp_log(KP_ERROR, "embedded broker did not start (status %d); trying again in %llds",
		       status, (long long)(br->backoff_ms / 1000));
	if (!was_up)
		br->backoff_ms =
		    br->backoff_ms * 2 > KP_RESTART_MAX_MS ? KP_RESTART_MAX_MS : br->backoff_ms * 2;
}

/*
 * Starts the embedded broker when due and watches one that is starting:
 * once it has written its address, the workers and ledger processes that
 * knew the old one are told to stop and start again.  One that takes
 * longer than KP_BOOTSTRAP_WAIT_MS is killed (and so started again).
 * Returns ms until it wants to look again, at most LOOP_MS.
 */
int64_t kp_spawn_broker_poll(struct kp_supervisor *sv)
{
	struct kp_broker *br = &sv->broker;
	int64_t now = kp_mono_ms();
	char path[PATH_MAX];

	if (!sv->conf->embedded)
		return LOOP_MS;
	if (br->pid <= 0 && br->due_ms && now >= br->due_ms)
		broker_spawn(sv);
	if (br->pid > 0 && !br->up) {
		if (access(broker_file(sv, path, sizeof(path)), R_OK) == 0) {
			br->up = true;
			if (br->starts++ == 0)
				return LOOP_MS; /* the first start: nothing runs yet */
			kp_log(KP_NOTICE, "embedded broker up again; restarting the workers");
			for (size_t i = 0; i < sv->n_bs; i++)
				for (int k = 0; k < sv->bs[i]->b->processes; k++)
					if (sv->bs[i]->slots[k]->pid > 0)
						kill(sv->bs[i]->slots[k]->pid, SIGTERM);
			for (size_t i = 0; i < sv->n_ledgers; i++)
				if (sv->ledgers[i]->pid > 0)
					kill(sv->ledgers[i]->pid, SIGTERM);
			return LOOP_MS;
		}
		if (now >= br->ready_by_ms) {
			kp_log(KP_ERROR,
			       "embedded broker pid=%d did not start within %ds; killing it",
			       (int)br->pid, KP_BOOTSTRAP_WAIT_MS / 1000);
			kill(br->pid, SIGKILL);
			br->ready_by_ms = INT64_MAX;
		}
		return BROKER_CHECK_MS;
	}
	if (br->pid <= 0 && br->due_ms)
		return br->due_ms - now < LOOP_MS ? br->due_ms - now : LOOP_MS;
	return LOOP_MS;
}

/*
 * Starts the embedded broker before anything else runs and waits for its
 * address: the one wait of the supervisor, before its loop.  -1 if it died
 * or took longer than KP_BOOTSTRAP_WAIT_MS.
 */
int kp_spawn_broker_first(struct kp_supervisor *sv)
{
	sv->broker.backoff_ms = KP_RESTART_MIN_MS;
	broker_spawn(sv);
	while (sv->broker.pid > 0 && !sv->broker.up) {
		int status;

		if (waitpid(sv->broker.pid, &status, WNOHANG) == sv->broker.pid) {
			struct kp_child c;
			child_take(sv, sv->broker.pid, &c);
			sv->broker.pid = 0;
			return -1;
		}
		if (kp_mono_ms() >= sv->broker.ready_by_ms)
			return -1;
		kp_spawn_broker_poll(sv);
		if (!sv->broker.up)
			poll(NULL, 0, BROKER_CHECK_MS);
	}
	return sv->broker.up ? 0 : -1;
}

/* The jobs a slot has counted, of every result. */
static uint64_t jobs_of(const struct kp_slot *s)
{
	uint64_t n = 0;

	for (int r = 0; r < KP_R_MAX; r++)
		n += s->results[r];
	return n;
}

/*
 * Forks the worker of one slot, paused from the start when its binding is;
 * on fork failure it is tried again after back-off.
 */
static void spawn(struct kp_supervisor *sv, struct kp_binding_state *bs, int i)
{
	struct kp_slot *s = bs->slots[i];
	pid_t pid;

	s->index = i;
	s->state = KP_SLOT_STARTING;
	s->kafka_state = KP_KAFKA_UNKNOWN;
	s->n_lag = 0;
	s->pause_want = bs->paused;
	s->paused = 0;
	s->restart_req = 0; /* a new process: nothing to restart */
	bs->due_ms[i] = 0;
	bs->restart_by[i] = 0;
	bs->jobs_at_spawn[i] = jobs_of(s);
	pid = fork();
	if (pid < 0) {
		kp_log(KP_ERROR, "fork: %s", strerror(errno));
		s->state = KP_SLOT_EMPTY;
		bs->due_ms[i] = kp_mono_ms() + KP_RESTART_MIN_MS;
		return;
	}
	if (pid == 0) {
		kp_sv_child_setup();
		_exit(kp_worker_run(bs->conf, bs->b, s, bs->lp->shm));
	}
	kp_child_add(sv, &(struct kp_child){.pid = pid, .kind = KP_CHILD_WORKER, .bs = bs, .k = i});
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
	s->owned = 1;
	s->throttled = bs->throttled;
	return take;
}

/* Starts the ledger process of lp; on fork failure it is tried again after a while. */
static void ledger_spawn(struct kp_supervisor *sv, struct kp_ledger_proc *lp)
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
		kp_sv_child_setup();
		_exit(kp_ledger_run(lp->bs->conf, lp->bs->b, lp->shm));
	}
	kp_child_add(sv, &(struct kp_child){.pid = pid, .kind = KP_CHILD_LEDGER, .lp = lp});
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
	ledger_spawn(sv, lp);
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
static void ledgers_free(struct kp_supervisor *sv)
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

/* A ledger process ended: notes it, and schedules its restart if its ledger is still used. */
static void ledger_died(struct kp_ledger_proc *lp, pid_t pid, int status)
{
	lp->pid = 0;
	if (lp->refs == 0)
		return;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		lp->due_ms = kp_mono_ms(); /* asked to start anew (a new ttl, a new broker) */
		kp_log(KP_NOTICE, "ledger=%s starting anew", lp->name);
		return;
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
}

/* Ledger processes running. */
int kp_spawn_ledgers_alive(const struct kp_supervisor *sv)
{
	int n = 0;

	for (size_t i = 0; i < sv->n_ledgers; i++)
		n += sv->ledgers[i]->pid > 0;
	return n;
}

/* Adds a binding state for b and starts its workers; NULL if there are no slots left. */
struct kp_binding_state *kp_spawn_binding(struct kp_supervisor *sv, struct kp_conf *conf,
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
	bs->restart_by = calloc((size_t)n, sizeof(*bs->restart_by));
	bs->backoff_ms = KP_RESTART_MIN_MS;
	if (!bs->slots || !bs->due_ms || !bs->spawned_ms || !bs->jobs_at_spawn || !bs->restart_by)
		goto fail;
	/* Its workers start paused if the operator paused it (before a reload,
	 * a restart, or while kpoold was down). */
	if ((bs->paused = kp_pause_get(conf, b->name, NULL)))
		kp_log(KP_NOTICE,
		       "worker=%s is paused: its workers fetch nothing until kpool resume",
		       b->name);
	for (int k = 0; k < n; k++) {
		int i = slot_take(sv, bs);
		if (i < 0) {
			kp_log(KP_ERROR, "worker=%s: more than %d worker processes in all", b->name,
			       KP_SLOTS_MAX);
			for (int j = 0; j < k; j++) {
				sv->owner[bs->slots[j] - sv->slots] = NULL;
				bs->slots[j]->owned = 0;
			}
			goto fail;
		}
		bs->slots[k] = &sv->slots[i];
	}
	kp_conf_hold(sv, conf);
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
		free(bs->restart_by);
	}
	free(bs);
	free(sig);
	return NULL;
}

/* Asks a binding's workers to finish and stop; they are not restarted. */
void kp_spawn_drain(struct kp_binding_state *bs, const char *why)
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

/* bs's worker processes running. */
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
		for (int k = 0; k < bs->b->processes; k++) {
			sv->owner[bs->slots[k] - sv->slots] = NULL;
			bs->slots[k]->owned = 0;
		}
		ledger_put(sv, bs);
		free(bs->slots);
		free(bs->due_ms);
		free(bs->spawned_ms);
		free(bs->jobs_at_spawn);
		free(bs->restart_by);
		free(bs->sig);
		kp_conf_release(sv, bs->conf);
		free(bs);
		memmove(&sv->bs[i], &sv->bs[i + 1], (sv->n_bs - i - 1) * sizeof(*sv->bs));
		sv->n_bs--;
	}
}

/* Throttles a binding or ends its throttle; its slots say so to the console. */
static void set_throttled(struct kp_binding_state *bs, bool on)
{
	bs->throttled = on;
	for (int k = 0; k < bs->b->processes; k++)
		bs->slots[k]->throttled = on;
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
		set_throttled(bs, false);
	} else if (!bs->throttled) {
		set_throttled(bs, true);
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

/*
 * A worker stopped because a restart was asked for (control.c): it starts
 * again at once, counted in its slot's restarts, neither as a crash nor
 * throttling its binding.
 */
static void restart_now(struct kp_binding_state *bs, int k)
{
	bs->restart_by[k] = 0;
	bs->due_ms[k] = kp_mono_ms();
	bs->slots[k]->restarts++;
	bs->slots[k]->restart_req = 0;
	kp_log(KP_NOTICE, "worker=%s#%d restarted on request", bs->b->name, k);
}

/*
 * Notes that worker k of bs ended with status; schedules its restart unless
 * it was told to stop, at once if it was stopped to be restarted.
 */
static void worker_died(struct kp_binding_state *bs, int k, pid_t pid, int status, bool stopping)
{
	char sig[32];

	struct kp_slot *s = bs->slots[k];
	bool told = stopping || bs->draining || bs->restart_by[k]; /* to stop: no error then */
	/* Its claims go back to the ledger, and the job in hand is charged. */
	if (bs->lp)
		kp_ledger_reap(bs->lp->shm, pid, s->in_hand ? &s->hand_id : NULL, s->hand_event_id,
			       WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	int64_t ran = kp_mono_ms() - bs->spawned_ms[k];
	bool did_work = jobs_of(s) > bs->jobs_at_spawn[k];
	s->pid = 0;
	s->state = KP_SLOT_EMPTY;
	if (WIFSIGNALED(status)) {
		s->died_signal = WTERMSIG(status);
		kp_signame(WTERMSIG(status), sig, sizeof(sig));
		if (s->in_hand)
			kp_log(KP_ERROR,
			       "worker=%s#%d pid=%d killed by %s with a job in hand: topic=%s "
			       "partition=%d offset=%lld event=%s",
			       bs->b->name, k, (int)pid, sig,
			       s->hand_topic < s->n_topics ? s->topics[s->hand_topic] : "?",
			       s->hand_partition, (long long)s->hand_offset, s->hand_event_id);
		else
			kp_log(told ? KP_WARNING : KP_ERROR, "worker=%s#%d pid=%d killed by %s",
			       bs->b->name, k, (int)pid, sig);
	} else if (s->in_hand) {
		kp_log(KP_ERROR,
		       "worker=%s#%d pid=%d exited with status %d with a job in hand: "
		       "topic=%s partition=%d offset=%lld event=%s",
		       bs->b->name, k, (int)pid, WEXITSTATUS(status),
		       s->hand_topic < s->n_topics ? s->topics[s->hand_topic] : "?",
		       s->hand_partition, (long long)s->hand_offset, s->hand_event_id);
	} else if (WEXITSTATUS(status) != 0 || !told) {
		kp_log(KP_ERROR, "worker=%s#%d pid=%d exited with status %d%s", bs->b->name, k,
		       (int)pid, WEXITSTATUS(status),
		       WEXITSTATUS(status) == KP_EXIT_CONFIG ? " (could not start)" : "");
	}
	if (stopping || bs->draining)
		return;
	if (bs->restart_by[k])
		restart_now(bs, k);
	else
		schedule_restart(bs, k, did_work && WEXITSTATUS(status) != KP_EXIT_CONFIG, ran);
}

/*
 * Collects dead children, each by its kind: a worker or ledger process is
 * scheduled to start again, the embedded broker too.  A pid not in the
 * table is a plugin check's child, already done with.
 */
void kp_spawn_reap(struct kp_supervisor *sv, bool stopping)
{
	struct kp_child c;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (child_take(sv, pid, &c) < 0)
			continue;
		switch (c.kind) {
		case KP_CHILD_BROKER:
			broker_died(sv, status, stopping);
			break;
		case KP_CHILD_LEDGER:
			ledger_died(c.lp, pid, status);
			break;
		case KP_CHILD_WORKER:
			worker_died(c.bs, c.k, pid, status, stopping);
			break;
		case KP_CHILD_CONSOLE:
			kp_spawn_console_died(sv, status, stopping);
			break;
		}
	}
}

/*
 * Starts ledger processes, workers and the console whose (re)start is due;
 * ledger processes and workers wait while the embedded broker is not up.
 * Returns ms until the next one is due, at most LOOP_MS.
 */
int64_t kp_spawn_due(struct kp_supervisor *sv)
{
	int64_t now = kp_mono_ms(), next = kp_spawn_console_due(sv, LOOP_MS);

	for (size_t i = 0; i < sv->n_ledgers; i++) {
		struct kp_ledger_proc *lp = sv->ledgers[i];
		if (lp->due_ms == 0 || lp->refs == 0 || !broker_ready(sv))
			continue;
		if (lp->due_ms <= now)
			ledger_spawn(sv, lp);
		else if (lp->due_ms - now < next)
			next = lp->due_ms - now;
	}
	for (size_t i = 0; i < sv->n_bs; i++) {
		struct kp_binding_state *bs = sv->bs[i];

		for (int k = 0; k < bs->b->processes; k++) {
			int64_t due = bs->due_ms[k];
			if (due == 0 || bs->draining || !broker_ready(sv))
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
					set_throttled(bs, false);
					bs->backoff_ms = KP_RESTART_MIN_MS;
					kp_log(KP_NOTICE, "worker=%s is no longer throttled",
					       bs->b->name);
					break;
				}
	}
	return next;
}

/* Worker processes running. */
int kp_spawn_workers_alive(const struct kp_supervisor *sv)
{
	int n = 0;

	for (size_t i = 0; i < sv->n_bs; i++)
		n += alive(sv->bs[i]);
	return n;
}

/* Stopping: every binding drains, its workers told to finish by deadline; the console stops. */
void kp_spawn_stop_all(struct kp_supervisor *sv, int64_t deadline)
{
	kp_spawn_console_stop(sv, deadline);
	for (size_t i = 0; i < sv->n_bs; i++) {
		sv->bs[i]->draining = true;
		sv->bs[i]->drain_deadline = deadline;
		for (int k = 0; k < sv->bs[i]->b->processes; k++)
			if (sv->bs[i]->slots[k]->pid > 0)
				kill(sv->bs[i]->slots[k]->pid, SIGTERM);
	}
}

/*
 * Frees drained bindings and unused ledgers whose processes are gone; kills
 * late ones, and a console late to stop.
 */
void kp_spawn_cleanup(struct kp_supervisor *sv, int *killed)
{
	binding_reap(sv, killed);
	ledgers_free(sv);
	kp_spawn_console_cleanup(sv);
}

/*
 * The end, or a failed start: the broker is asked to stop and waited for;
 * workers, ledger processes and the console still running are killed and
 * waited for, and every table freed.
 */
void kp_spawn_kill_all(struct kp_supervisor *sv)
{
	int killed = 0;

	kp_spawn_console_kill(sv);
	if (sv->broker.pid > 0) {
		int status;
		kill(sv->broker.pid, SIGTERM);
		while (waitpid(sv->broker.pid, &status, 0) < 0 && errno == EINTR)
			;
		sv->broker.pid = 0;
	}
	for (size_t i = 0; i < sv->n_bs; i++) { /* only after a failed start */
		sv->bs[i]->draining = true;
		for (int k = 0; k < sv->bs[i]->b->processes; k++)
			if (sv->bs[i]->slots[k]->pid > 0) {
				kill(sv->bs[i]->slots[k]->pid, SIGKILL);
				waitpid(sv->bs[i]->slots[k]->pid, NULL, 0);
				sv->bs[i]->slots[k]->pid = 0;
			}
	}
	binding_reap(sv, &killed);
	for (size_t i = 0; i < sv->n_ledgers; i++)
		if (sv->ledgers[i]->pid > 0) {
			kill(sv->ledgers[i]->pid, SIGKILL);
			waitpid(sv->ledgers[i]->pid, NULL, 0);
			sv->ledgers[i]->pid = 0;
		}
	ledgers_free(sv);
	free(sv->ledgers);
	free(sv->bs);
	sv->ledgers = NULL;
	sv->bs = NULL;
	sv->n_children = 0;
}
