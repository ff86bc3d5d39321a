/*
 * control.c - what the operator asks of running bindings, looked at from
 * the supervisor's loop a few times a second, never waited for: a binding
 * paused or resumed (state_dir/paused/NAME, which kpool pause and the web
 * console write through kpcore/pause.c), handed to its workers through
 * their slots' pause_want.  The worker does the pausing itself (consumer.c).
 */
#include "config.h"

#include <stdint.h>

#include "supervisor.h"

#define CONTROL_MS 250 /* how often pauses are looked at */

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

/* Looks at pauses when due (every CONTROL_MS); returns ms until it wants to look again. */
int64_t kp_control_poll(struct kp_supervisor *sv)
{
	int64_t now = kp_mono_ms();

	if (now < sv->control_due_ms)
		return sv->control_due_ms - now;
	sv->control_due_ms = now + CONTROL_MS;
	for (size_t i = 0; i < sv->n_bs; i++)
		pause_check(sv->bs[i]);
	return CONTROL_MS;
}
