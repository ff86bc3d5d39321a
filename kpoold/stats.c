/*
 * stats.c - per-process counters in memory shared between the supervisor and
 * its workers.  The mapping is made before any fork and outlives every worker,
 * which is what lets a worker's successor finish what it left behind (the
 * finished-jobs ring) and the supervisor tell which job was in hand at a crash.
 */
#include "config.h"

#include <string.h>
#include <sys/mman.h>

#include "kpoold.h"

/* Upper bounds, in seconds, of the kpool_job_seconds buckets. */
const double kp_hist_bounds[KP_HIST_BUCKETS] = {0.0001, 0.0005, 0.001, 0.005, 0.01,
						0.05,	0.1,	1,     10};

/* Maps n zeroed slots shared with future children; NULL on failure. */
struct kp_slot *kp_stats_map(size_t n)
{
	void *p = mmap(NULL, n * sizeof(struct kp_slot), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Unmaps slots from kp_stats_map(). */
void kp_stats_unmap(struct kp_slot *slots, size_t n)
{
	if (slots)
		munmap(slots, n * sizeof(struct kp_slot));
}

/* Counts one handler call of `us` microseconds in the latency histogram. */
void kp_stats_observe(struct kp_slot *s, int64_t us)
{
	int i = 0;

	while (i < KP_HIST_BUCKETS && (double)us / 1e6 > kp_hist_bounds[i])
		i++;
	__atomic_add_fetch(&s->hist[i], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->hist_sum_us, (uint64_t)us, __ATOMIC_RELAXED);
}
