/*
 * rate.c - a binding's rate limit (rate = N/s, N/m or N/h): at most N
 * handler calls per period for the whole binding, with no coordinator.
 *
 * On one host the binding's processes share one bucket, in the binding's
 * shared memory (struct kp_rate_shm, inside the ledger's).  It is a GCRA
 * ("generic cell rate algorithm", a token bucket kept as one time): tat is
 * when the bucket will next be empty; a call takes one emission interval T
 * from it, and is allowed while tat stays within burst * T of now.  One
 * compare-and-swap per take, no lock, no process of its own.
 *
 * Across hosts each host takes the share of N that its processes' share of
 * the binding's partitions gives it: the workers say in their slots how many
 * partitions they hold and how many the topics have, and the supervisor sums
 * them into the shared memory four times a second (kp_rate_share).  So N
 * hosts keep N together with no traffic between them, as long as the
 * partitions are evenly loaded; a host whose partitions are busier than its
 * share waits while another's bucket goes unused (the limit is never
 * exceeded, but may not be reached).
 *
 * The bucket's burst is max(1, a hundredth of the host's per-second rate):
 * a window of one period sees at most N + burst - 1 calls on a host, and a
 * rate of 50/s on one host has a burst of 1, so never more than 50 calls in
 * any second.
 */
#include "config.h"

#include <math.h>
#include <time.h>

#include "supervisor.h"

#define UNKNOWN_WAIT_MS 100 /* the binding's partitions are not known yet: look again */

/* Monotonic nanoseconds, precise: T may be well under a coarse clock's tick. */
static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Takes up to want calls of b's rate from the host's bucket r, for a process
 * holding own_parts of the binding's own_total partitions (its slot's view,
 * used until the supervisor's sums are in).  Returns how many it took; 0
 * with *wait_ms set when none is there: the time until one is.
 */
int kp_rate_take(struct kp_rate_shm *r, const struct kp_binding *b, int want, int own_parts,
		 int own_total, int64_t *wait_ms)
{
	int parts = __atomic_load_n(&r->host_parts, __ATOMIC_RELAXED);
	int total = __atomic_load_n(&r->total, __ATOMIC_RELAXED);
	double t, per_s, burst;
	int64_t now, tat, base, next;

	if (parts < own_parts)
		parts = own_parts;
	if (total <= 0)
		total = own_total;
	if (total <= 0 || parts <= 0) { /* not known yet, or nothing here to limit */
		*wait_ms = UNKNOWN_WAIT_MS;
		return 0;
	}
	if (parts > total)
		parts = total;
	/* The host's share: N * parts / total calls per period. */
	per_s = (double)b->rate_n * parts / total * 1000.0 / (double)b->rate_period_ms;
	t = 1e9 / per_s;
	burst = fmax(1, floor(per_s / 100));
	now = mono_ns();
	tat = __atomic_load_n(&r->tat_ns, __ATOMIC_ACQUIRE);
	for (;;) {
		base = tat > now ? tat : now;
		double avail = (double)(now - base) / t + burst; /* whole calls: below */
		if (avail < 1) {
			double wait = (double)(base - now) + t - burst * t;
			*wait_ms = (int64_t)ceil(wait / 1e6);
			if (*wait_ms < 1)
				*wait_ms = 1;
			return 0;
		}
		int take = avail < want ? (int)avail : want;
		next = base + (int64_t)(take * t + 0.5);
		if (__atomic_compare_exchange_n(&r->tat_ns, &tat, next, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return take;
		/* another process took some: tat holds its value now */
	}
}

/*
 * The supervisor's part, every CONTROL_MS: for each binding's shared memory,
 * the partitions its processes on this host hold and the partitions of its
 * topics, summed from their slots (a process gone no longer counts).
 */
void kp_rate_share(struct kp_supervisor *sv)
{
	for (size_t i = 0; i < sv->n_ledgers; i++) {
		struct kp_ledger_proc *lp = sv->ledgers[i];
		int parts = 0, total = 0;

		if (lp->refs <= 0)
			continue;
		for (size_t j = 0; j < sv->n_bs; j++) {
			const struct kp_binding_state *bs = sv->bs[j];
			if (bs->lp != lp || bs->b->rate_period_ms == 0)
				continue;
			for (int k = 0; k < bs->b->processes; k++) {
				const struct kp_slot *s = bs->slots[k];
				if (s->pid <= 0 || s->state != KP_SLOT_RUNNING)
					continue;
				parts += s->rate_parts;
				if (s->rate_total > total)
					total = s->rate_total;
			}
		}
		__atomic_store_n(&lp->shm->rate.host_parts, parts, __ATOMIC_RELAXED);
		__atomic_store_n(&lp->shm->rate.total, total, __ATOMIC_RELAXED);
	}
}
