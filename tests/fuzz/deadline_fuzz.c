/*
 * deadline_fuzz.c - libFuzzer harness for a job's own deadline: the job
 * scan (job.c: kp_job_check with the deadline keys, KP_DEADLINE_KEYS) and
 * its reading (deadline.c: kp_job_deadline), on the bytes of a Kafka
 * record.  For every job jansson takes as an object, the deadline must be
 * what util_time_ms() reads from jansson's tree: expiresAt, else
 * metadata.expiresAt, whichever is first a string or a number; a string
 * holding \u0000 is no time.  A deadline found is a time from 1970 to 9999.
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.
 */
/* clang-format off */
/*
 * fuzz-sources: kpoold/deadline.c kpcore/job.c kpcore/conf.c kpcore/values.c kpcore/log.c kpcore/topics.c kpcore/dlqrec.c kpcore/pause.c plugins/util.c
 */
/* clang-format on */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpoold.h"
#include "util.h"

/* The deadline as jansson's tree has it: 1 with *ms, 0 for none, -1 for no time. */
static int tree_deadline(json_t *root, int64_t *ms)
{
	json_t *v[KP_DEADLINE_N] = {
	    json_object_get(root, "expiresAt"),
	    json_object_get(json_object_get(root, "metadata"), "expiresAt")};

	for (int i = 0; i < KP_DEADLINE_N; i++) {
		if (!json_is_string(v[i]) && !json_is_number(v[i]))
			continue;
		if (json_is_string(v[i]) &&
		    strlen(json_string_value(v[i])) != json_string_length(v[i]))
			return -1;
		*ms = util_time_ms(v[i]);
		return *ms < 0 ? -1 : 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct kp_idkey keys[KP_DEADLINE_N];
	static int n_keys;
	struct kp_found found[KP_DEADLINE_N];
	char reason[256], err[128];
	int64_t got_ms = -2, want_ms = -2;
	int which = -1, got, want;
	json_t *root;

	if (n_keys == 0 &&
	    (kp_idkeys_parse(KP_DEADLINE_KEYS, keys, &n_keys, err, sizeof(err)) < 0 ||
	     n_keys != KP_DEADLINE_N))
		abort();
	if (kp_job_check(data, size, 1 << 20, keys, n_keys, found, reason, sizeof(reason)) < 0)
		return 0; /* not a job: job_fuzz.c holds the scan to jansson there */
	root = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (!json_is_object(root))
		abort();
	got = kp_job_deadline(found, &got_ms, &which);
	want = tree_deadline(root, &want_ms);
	if (got != want || (got == 1 && got_ms != want_ms)) {
		fprintf(stderr, "deadline: scan %d (%lld ms, key %d), jansson %d (%lld ms)\n", got,
			(long long)got_ms, which, want, (long long)want_ms);
		abort();
	}
	if (got == 1 &&
	    (got_ms < 0 || got_ms > UTIL_TIME_MAX_MS || which < 0 || which >= KP_DEADLINE_N))
		abort();
	json_decref(root);
	return 0;
}
