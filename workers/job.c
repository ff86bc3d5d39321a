/*
 * job.c - what a job is: the checks that tell a job from bad input, the
 * event id that dedupe keys on, and the retry back-off.
 */
#include "config.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "kpoold.h"

static const char *const class_names[] = {
    [KP_CLASS_NONE] = "none",
    [KP_CLASS_FAIL] = "fail",
    [KP_CLASS_RETRIES] = "retries-exhausted",
    [KP_CLASS_CRASH] = "crash",
    [KP_CLASS_BAD_INPUT] = "bad-input",
    [KP_CLASS_UNAVAILABLE] = "handler-unavailable",
};

/* Names a dead-letter error class as the kpool.error.class header carries it. */
const char *kp_class_name(enum kp_class c)
{
	return class_names[c];
}

/* True when buf is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool kp_utf8_valid(const void *buf, size_t len)
{
	const unsigned char *s = buf, *end = s + len;

	while (s < end) {
		unsigned char c = *s;

		if (c < 0x80) {
			s++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		if ((size_t)(end - s) <= n)
			return false;
		for (size_t i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		s += n + 1;
	}
	return true;
}

/*
 * Tells a job from input that cannot be one.  Returns 0 with *root set to the
 * parsed object (the caller owns it), or -1 with a one-line reason and *root NULL.
 */
int kp_job_check(const void *buf, size_t len, int64_t max_bytes, json_t **root, char *reason,
		 size_t rlen)
{
	json_error_t jerr;

	*root = NULL;
	if (len == 0) {
		snprintf(reason, rlen, "empty job");
		return -1;
	}
	if ((int64_t)len > max_bytes) {
		snprintf(reason, rlen, "job is %zu bytes, over max_job_bytes (%" PRId64 ")", len,
			 max_bytes);
		return -1;
	}
	if (!kp_utf8_valid(buf, len)) {
		snprintf(reason, rlen, "job is not UTF-8");
		return -1;
	}
	*root = json_loadb(buf, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
	if (*root == NULL) {
		snprintf(reason, rlen, "job is not JSON: %s at line %d column %d", jerr.text,
			 jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_object(*root)) {
		snprintf(reason, rlen, "job is not a JSON object");
		json_decref(*root);
		*root = NULL;
		return -1;
	}
	return 0;
}

/* Copies an id into out if it fits and holds no control characters; -1 otherwise. */
static int id_copy(const char *s, size_t n, char *out, size_t outlen)
{
	if (n == 0 || n >= outlen)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20)
			return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

/*
 * Finds a job's event id: the first of the binding's idempotency_key sources
 * that exists (a string, or a whole number, of at most KP_EVENT_ID_MAX - 1
 * bytes), else TOPIC/PARTITION/OFFSET.  root may be NULL (bad input); then
 * only headers count.  Returns 0 if a source matched, 1 for the fallback.
 */
int kp_job_event_id(const struct kp_binding *b, const struct kpool_header *hdrs, size_t n_hdrs,
		    json_t *root, const char *topic, int32_t partition, int64_t offset, char *id,
		    size_t idlen)
{
	for (int k = 0; k < b->n_idkeys; k++) {
		const struct kp_idkey *key = &b->idkeys[k];

		if (key->kind == KP_IDKEY_HEADER) {
			for (size_t i = n_hdrs; i-- > 0;) /* the last of a repeated header wins */
				if (hdrs[i].value && strcmp(hdrs[i].name, key->name) == 0 &&
				    id_copy(hdrs[i].value, hdrs[i].len, id, idlen) == 0)
					return 0;
			continue;
		}
		json_t *v = root;
		for (int d = 0; v && d < key->depth; d++)
			v = json_is_object(v) ? json_object_get(v, key->path[d]) : NULL;
		if (json_is_string(v) &&
		    id_copy(json_string_value(v), json_string_length(v), id, idlen) == 0)
			return 0;
		if (json_is_integer(v)) {
			snprintf(id, idlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			return 0;
		}
	}
	snprintf(id, idlen, "%s/%" PRId32 "/%" PRId64, topic, partition, offset);
	return 1;
}

/*
 * The delay before retry number `attempt` (1 = the first retry): base doubled
 * per attempt, capped at max, then "equal jitter" -- half fixed, half drawn
 * from rnd -- so retries of many jobs do not arrive together.
 */
int64_t kp_backoff_ms(int64_t base, int64_t max, int attempt, uint32_t rnd)
{
	int64_t d = base;

	for (int i = 1; i < attempt && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	if (d < 2)
		return d;
	return d / 2 + (int64_t)(rnd % (uint64_t)(d / 2 + 1));
}
