/*
 * control.c - what the operator asks of running bindings, looked at from
 * the supervisor's loop a few times a second, never waited for: a binding
 * paused or resumed (state_dir/paused/NAME, which kpool pause and the web
 * console write through kpcore/pause.c), handed to its workers through
 * their slots' pause_want; a worker's restart, which the console asks for
 * through its slot's restart_req; and each rate-limited binding's share on
 * this host (rate.c).  The worker does the pausing itself
 * (consumer.c); spawn.c starts a worker stopped for a restart again at once.
 */
#include "config.h"

#include <signal.h>
#include <stdint.h>

#include "supervisor.h"

#define CONTROL_MS 250 /* how often pauses and restart requests are looked at */

/*
 * Pauses or resumes bs as state_dir says, and tells its workers through
 * their slots (a worker started later reads it at its start, spawn.c).
 * The change is logged once, by the binding's current state.
 */
static void pause_check(struct kp_binding_state *bs)
{
	bool paused = kp_pause_get(bs->conf, bs->b->name, NULL);

	if (paused == bs->paused)
		return;
	bs->paused = paused;
	for (int k = 0; k < bs->b->processes; k++)
		__atomic_store_n(&bs->slots[k]->pause_want, paused, __ATOMIC_RELEASE);
	if (!bs->draining)
		kp_log(KP_NOTICE, "worker=%s %s", bs->b->name,
		       paused ? "paused: its jobs wait in Kafka until kpool resume" : "resumed");
}

/*
 * Acts on worker k's restart request: a running worker is asked to stop
 * (SIGTERM, as at a stop) and, once gone, spawn.c starts it again at once;
 * one still running shutdown_timeout later is killed.  A worker waiting for
 * its back-off starts now.
 */
static void restart_check(struct kp_binding_state *bs, int k, int64_t now)
{
	struct kp_slot *s = bs->slots[k];

	if (bs->restart_by[k]) { /* stopping for its restart */
		if (s->pid > 0 && now >= bs->restart_by[k]) {
			kp_log(KP_ERROR,
			       "worker=%s#%d pid=%d did not stop within shutdown_timeout for its "
			       "restart; killing it",
			       bs->b->name, k, (int)s->pid);
			kill(s->pid, SIGKILL);
			bs->restart_by[k] = INT64_MAX;
		}
		return;
	}
	if (!__atomic_load_n(&s->restart_req, __ATOMIC_ACQUIRE))
		return;
	if (s->pid > 0) {
		bs->restart_by[k] = now + bs->conf->shutdown_timeout_ms;
		kill(s->pid, SIGTERM);
		kp_log(KP_NOTICE, "worker=%s#%d pid=%d stopping: a restart was asked for",
		       bs->b->name, k, (int)s->pid);
		return;
	}
	s->restart_req = 0;
	if (bs->due_ms[k]) {
		bs->due_ms[k] = now;
		kp_log(KP_NOTICE, "worker=%s#%d starting now: a restart was asked for", bs->b->name,
		       k);
	}
}

/*
 * Looks at pauses and restart requests when due (every CONTROL_MS); returns
 * ms until it wants to look again.
 */
int64_t kp_control_poll(struct kp_supervisor *sv)
{
	int64_t now = kp_mono_ms();

	if (now < sv->control_due_ms)
		return sv->control_due_ms - now;
	sv->control_due_ms = now + CONTROL_MS;
	kp_rate_share(sv);
	for (size_t i = 0; i < sv->n_bs; i++) {
		struct kp_binding_state *bs = sv->bs[i];

		pause_check(bs);
		for (int k = 0; !bs->draining && k < bs->b->processes; k++)
			restart_check(bs, k, now);
	}
	return CONTROL_MS;
}
