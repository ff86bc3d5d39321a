/*
 * job_fuzz.c - libFuzzer harness for the job scan (job.c: kp_job_check and
 * kp_job_event_id): the bytes of a Kafka record, as a job.  The scan must
 * accept exactly what jansson's json_loadb accepts as an object (but a NUL
 * byte, which it refuses, see job.c), and find
 * the same event id as a walk of jansson's tree, for the default sources.
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c
 * (a main() that feeds it the files of corpus/job) by make check, so the
 * corpus is replayed by every test run.
 *
 * fuzz-sources: kpcore/job.c kpcore/conf.c kpcore/values.c kpcore/log.c
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* The event id as kpool found it with jansson before the scan. */
static int tree_id(const struct kp_binding *b, json_t *root, char *id, size_t idlen)
{
	for (int k = 0; k < b->n_idkeys; k++) {
		json_t *v = root;
		for (int d = 0; v && d < b->idkeys[k].depth; d++)
			v = json_is_object(v) ? json_object_get(v, b->idkeys[k].path[d]) : NULL;
		if (json_is_string(v) && json_string_length(v) > 0 &&
		    json_string_length(v) < idlen) {
			const char *s = json_string_value(v);
			size_t n = json_string_length(v), i;
			for (i = 0; i < n && (unsigned char)s[i] >= 0x20; i++)
				;
			if (i == n) {
				memcpy(id, s, n);
				id[n] = '\0';
				return 0;
			}
		}
		if (json_is_integer(v)) {
			snprintf(id, idlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			return 0;
		}
	}
	snprintf(id, idlen, "t/0/0");
	return 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct kp_binding b;
	struct kp_found found[KP_IDKEYS_MAX];
	char reason[256], id[KP_EVENT_ID_MAX], want[KP_EVENT_ID_MAX], err[128];
	json_error_t e;
	json_t *root;
	int got;

	if (b.n_idkeys == 0 &&
	    kp_idkeys_parse("json:metadata.eventId, json:eventId, json:id, json:a.b.c", b.idkeys,
			    &b.n_idkeys, err, sizeof(err)) < 0)
		abort();
	got =
	    kp_job_check(data, size, 1 << 20, b.idkeys, b.n_idkeys, found, reason, sizeof(reason));
	/* A NUL byte: refused by the scan; jansson skips one after a number or
	 * a literal (job.c says why the scan does not follow). */
	if (size == 0 || !kp_utf8_valid(data, size) || memchr(data, 0, size)) {
		if (got != -1)
			abort();
		return 0;
	}
	root = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if ((got == 0) != (root != NULL && json_is_object(root))) {
		fprintf(stderr, "scan says %d, jansson %s: %s\n", got,
			root ? "an object or value" : "bad", root ? "" : e.text);
		abort();
	}
	if (got == 0) {
		int a = kp_job_event_id(&b, NULL, 0, found, "t", 0, 0, id, sizeof(id));
		int t = tree_id(&b, root, want, sizeof(want));
		if (a != t || strcmp(id, want) != 0) {
			fprintf(stderr, "event id: scan '%s', jansson '%s'\n", id, want);
			abort();
		}
	}
	json_decref(root);
	return 0;
}
