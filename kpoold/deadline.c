/*
 * deadline.c - a job's own deadline, as the publishing app wrote it:
 * expiresAt, or metadata.expiresAt (an envelope's), found by the job scan
 * (kp_job_check() with the binding's idkeys, KP_DEADLINE_KEYS last).  It
 * is read as util_time_ms() reads a time in a job: a number is milliseconds
 * since the epoch (seconds below 1e11, so time.time() + 900 works too), a
 * string an ISO 8601 / RFC 3339 time.  tests/fuzz/deadline_fuzz.c holds
 * the scan and this to util_time_ms() on jansson's tree.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "kpoold.h"
#include "util.h"

const char *const kp_deadline_names[KP_DEADLINE_N] = {"expiresAt", "metadata.expiresAt"};

/*
 * The deadline in f[0..KP_DEADLINE_N) (the scan's finds for the deadline
 * keys): the first key present wins.  Returns 1 with *ms and *which (its
 * index) set, 0 when the job has none, -1 when it has one that is no time
 * (then *which says which).
 */
int kp_job_deadline(const struct kp_found *f, int64_t *ms, int *which)
{
	for (int i = 0; i < KP_DEADLINE_N; i++) {
		char small[64], *buf = small;
		double d;

		if (f[i].kind == KP_FOUND_NONE)
			continue;
		*which = i;
		/* Its text, unescaped (never longer than the raw bytes). */
		if (f[i].n >= sizeof(small) && (buf = malloc(f[i].n + 1)) == NULL)
			return -1;
		if (f[i].kind == KP_FOUND_ESC) {
			if (kp_json_unescape(f[i].p, f[i].n, buf, f[i].n + 1) < 0)
				buf[0] = '\0'; /* holds \u0000: no time */
		} else {
			memcpy(buf, f[i].p, f[i].n);
			buf[f[i].n] = '\0';
		}
		if (f[i].kind == KP_FOUND_STR || f[i].kind == KP_FOUND_ESC) {
			*ms = util_time_text_ms(buf);
		} else {
			d = strtod(buf,
				   NULL); /* as jansson reads it: the scan checked the number */
			*ms = !(d > 0 && d < UTIL_TIME_MAX_MS) ? -1
			      : d < 1e11		       ? (int64_t)(d * 1000)
							       : (int64_t)d;
		}
		if (buf != small)
			free(buf);
		return *ms < 0 ? -1 : 1;
	}
	return 0;
}
