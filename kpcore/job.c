/*
 * job.c - what a job is: the checks that tell a job from bad input, the
 * event id that dedupe keys on, and the retry back-off.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static const char *const class_names[] = {
    [KP_CLASS_NONE] = "none",
    [KP_CLASS_FAIL] = "fail",
    [KP_CLASS_RETRIES] = "retries-exhausted",
    [KP_CLASS_CRASH] = "crash",
    [KP_CLASS_BAD_INPUT] = "bad-input",
    [KP_CLASS_UNAVAILABLE] = "handler-unavailable",
    [KP_CLASS_EXPIRED] = "expired",
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
		uint64_t w;

		/* Jobs are mostly ASCII: eight bytes at a time while they are. */
		while (end - s >= 8 && (memcpy(&w, s, 8), (w & 0x8080808080808080ull) == 0))
			s += 8;
		if (s == end)
			break;
		c = *s;
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
 * The validating scan.  The core needs two things from a job's bytes: whether
 * they are a JSON object (else the job is bad input), and the values of the
 * binding's json: idempotency keys.  Building a tree for that (jansson) was a
 * fifth of a worker's time, so one pass over the bytes does both, accepting
 * exactly what jansson's json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL) accepts:
 * RFC 8259, values nested at most 2048 deep, integers that fit in 64 bits,
 * reals that do not overflow, no NUL in keys.  One difference: jansson
 * skips a single NUL byte after a number or a literal (its push-back buffer
 * takes 0 for empty); the scan refuses any NUL byte outside a string, as
 * RFC 8259 does.  tests/fuzz/job_fuzz.c holds the two
 * to the same answers.  Plugins still parse the job as they like.
 */
#define SCAN_DEPTH_MAX 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

struct scan {
	const unsigned char *p, *end;
	const struct kp_idkey *keys;
	struct kp_found *found;
	int depth;
};

/* JSON whitespace. */
static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Moves s past whitespace. */
static void skip_ws(struct scan *s)
{
	while (s->p < s->end && is_ws(*s->p))
		s->p++;
}

/* The four hex digits of a \u escape at p, in *cp; -1 if they are not four hex digits. */
static int hex4(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
	*cp = 0;
	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned char c = p[i];
		uint32_t v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v = (c | 0x20) - 'a' + 10;
		else
			return -1;
		*cp = *cp << 4 | v;
	}
	return 0;
}

/*
 * A string at s->p (its opening quote): *start and *n get its raw bytes,
 * *esc whether they hold escapes.  -1 when it is not a valid string (or, for
 * a key, holds \u0000).
 */
static int scan_string(struct scan *s, const unsigned char **start, size_t *n, bool *esc, bool key)
{
	const unsigned char *p = s->p + 1, *end = s->end;
	uint32_t cp, lo;

	*esc = false;
	*start = p;
	for (;;) {
		while (p < end && *p != '"' && *p != '\\' && *p >= 0x20)
			p++;
		if (p >= end || *p < 0x20)
			return -1;
		if (*p == '"')
			break;
		*esc = true;
		if (++p >= end)
			return -1;
		if (strchr("\"\\/bfnrt", *p) && *p) {
			p++;
			continue;
		}
		if (*p != 'u' || hex4(p + 1, end, &cp) < 0)
			return -1;
		p += 5;
		if (cp == 0 && key)
			return -1;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return -1;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (end - p < 2 || p[0] != '\\' || p[1] != 'u' ||
			    hex4(p + 2, end, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
				return -1;
			p += 6;
		}
	}
	*n = (size_t)(p - *start);
	s->p = p + 1;
	return 0;
}

/* Whether digits (no sign) fit in a 64-bit integer, as strtoll sees them. */
static bool int_fits(const unsigned char *d, size_t n, bool neg)
{
	const char *max = neg ? "9223372036854775808" : "9223372036854775807";

	return n < 19 || (n == 19 && memcmp(d, max, 19) <= 0);
}

/*
 * A number at s->p.  *is_int tells an integer from a real.  -1 when it is
 * not a JSON number, or overflows as jansson finds (integers past 64 bits,
 * reals past DBL_MAX).
 */
static int scan_number(struct scan *s, bool *is_int)
{
	const unsigned char *p = s->p, *end = s->end, *digits;
	bool neg = false;
	long exp = 0, lead;

	if (*p == '-')
		neg = true, p++;
	digits = p;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	else
		return -1;
	if (p < end && *p >= '0' && *p <= '9') /* 01 */
		return -1;
	lead = p - digits;
	*is_int = p >= end || (*p != '.' && *p != 'e' && *p != 'E');
	if (*is_int) {
		s->p = p;
		return int_fits(digits, (size_t)lead, neg) ? 0 : -1;
	}
	if (*p == '.') {
		if (++p >= end || *p < '0' || *p > '9')
			return -1;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		bool eneg = false;
		if (++p < end && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		if (p >= end || *p < '0' || *p > '9')
			return -1;
		while (p < end && *p >= '0' && *p <= '9') {
			if (exp < 100000)
				exp = exp * 10 + (*p - '0');
			p++;
		}
		if (eneg)
			exp = -exp;
	}
	/* Only a value near or past 1e308 can overflow: leave those to strtod. */
	if (lead + exp > 300) {
		size_t n = (size_t)(p - s->p);
		char *tmp = malloc(n + 1);
		double v;
		if (tmp == NULL)
			return -1;
		memcpy(tmp, s->p, n);
		tmp[n] = '\0';
		errno = 0;
		v = strtod(tmp, NULL);
		free(tmp);
		if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
			return -1;
	}
	s->p = p;
	return 0;
}

/* Whether a raw key (escaped or not) equals name. */
static bool key_is(const unsigned char *k, size_t n, bool esc, const char *name)
{
	char buf[KP_EVENT_ID_MAX];

	if (!esc)
		return strlen(name) == n && memcmp(k, name, n) == 0;
	return kp_json_unescape(k, n, buf, sizeof(buf)) == 0 && strcmp(buf, name) == 0;
}

static int scan_value(struct scan *s, uint32_t want, int depth);

/* At an opening bracket: 0 when the container is empty (and passed), 1 when items follow. */
static int container_open(struct scan *s, unsigned char close)
{
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return 0;
	}
	return 1;
}

/* After a member or element: 1 past a comma, 0 past the closing bracket, -1 otherwise. */
static int item_next(struct scan *s, unsigned char close)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == ',') {
		s->p++;
		skip_ws(s);
		return 1;
	}
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return 0;
	}
	return -1;
}

/*
 * An object at s->p.  want holds the idempotency keys whose path matched up
 * to this object (depth components); a member completing one is kept in
 * found, a later member of the same name replacing it, as in jansson.
 */
static int scan_object(struct scan *s, uint32_t want, int depth)
{
	int next = container_open(s, '}');

	while (next == 1) {
		const unsigned char *k;
		size_t n;
		bool esc;
		uint32_t match = 0;

		if (s->p >= s->end || *s->p != '"' || scan_string(s, &k, &n, &esc, true) < 0)
			return -1;
		for (uint32_t m = want; m; m &= m - 1) {
			int i = __builtin_ctz(m);
			if (key_is(k, n, esc, s->keys[i].path[depth]))
				match |= 1u << i;
		}
		skip_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return -1;
		s->p++;
		skip_ws(s);
		if (s->p >= s->end)
			return -1;
		for (uint32_t m = match; m; m &= m - 1) /* this member replaces earlier ones */
			s->found[__builtin_ctz(m)].kind = KP_FOUND_NONE;
		if (scan_value(s, match, depth + 1) < 0)
			return -1;
		next = item_next(s, '}');
	}
	return next;
}

/* An array at s->p (its opening bracket): 0 once past its closing one, -1 when it is not valid. */
static int scan_array(struct scan *s)
{
	int next = container_open(s, ']');

	while (next == 1) {
		if (s->p >= s->end || scan_value(s, 0, 0) < 0)
			return -1;
		next = item_next(s, ']');
	}
	return next;
}

/* Moves s past word (true, false, null) if it is there; false, s unmoved, if not. */
static bool literal(struct scan *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return false;
	s->p += n;
	return true;
}

/*
 * A value at s->p (not whitespace).  want: the keys whose whole path ends at
 * this value (depth = their depth) or goes on inside it.
 */
static int scan_value(struct scan *s, uint32_t want, int depth)
{
	const unsigned char *start = s->p, *raw;
	uint32_t ends = 0, inside = 0;
	size_t n;
	bool esc, is_int;
	int rc;

	for (uint32_t m = want; m; m &= m - 1) {
		int i = __builtin_ctz(m);
		if (s->keys[i].depth == depth)
			ends |= 1u << i;
		else
			inside |= 1u << i;
	}
	if (s->depth + 1 > SCAN_DEPTH_MAX) /* jansson counts every value, scalars too */
		return -1;
	switch (*s->p) {
	case '{':
	case '[':
		s->depth++;
		rc = *s->p == '{' ? scan_object(s, inside, depth) : scan_array(s);
		s->depth--;
		return rc;
	case '"':
		if (scan_string(s, &raw, &n, &esc, false) < 0)
			return -1;
		for (uint32_t m = ends; m; m &= m - 1)
			s->found[__builtin_ctz(m)] =
			    (struct kp_found){.p = (const char *)raw,
					      .n = n,
					      .kind = esc ? KP_FOUND_ESC : KP_FOUND_STR};
		return 0;
	case 't':
		return literal(s, "true", 4) ? 0 : -1;
	case 'f':
		return literal(s, "false", 5) ? 0 : -1;
	case 'n':
		return literal(s, "null", 4) ? 0 : -1;
	default:
		if (scan_number(s, &is_int) < 0)
			return -1;
		for (uint32_t m = ends; m;
		     m &= m - 1) /* an id takes INT only; a deadline REAL too */
			s->found[__builtin_ctz(m)] =
			    (struct kp_found){.p = (const char *)start,
					      .n = (size_t)(s->p - start),
					      .kind = is_int ? KP_FOUND_INT : KP_FOUND_REAL};
		return 0;
	}
}

/*
 * Decodes a JSON string's raw contents (between the quotes, valid) into out
 * as UTF-8, NUL-terminated.  -1 when it does not fit or holds \u0000.
 */
int kp_json_unescape(const void *raw, size_t n, char *out, size_t outlen)
{
	const unsigned char *p = raw, *end = p + n;
	size_t o = 0;

	while (p < end) {
		uint32_t cp = *p++;
		if (cp >= 0x80) { /* already UTF-8 (the job was checked): as it is */
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)cp;
			continue;
		}
		if (cp == '\\') {
			char c = (char)*p++;
			const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
			if (c != 'u') {
				cp = (unsigned char)to[strchr(from, c) - from];
			} else {
				uint32_t lo;
				hex4(p, end, &cp);
				p += 4;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					hex4(p + 2, end, &lo);
					p += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				if (cp == 0)
					return -1;
			}
		}
		int len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		if (o + (size_t)len >= outlen)
			return -1;
		if (len == 1) {
			out[o++] = (char)cp;
		} else if (len == 2) {
			out[o++] = (char)(0xc0 | cp >> 6);
			out[o++] = (char)(0x80 | (cp & 0x3f));
		} else if (len == 3) {
			out[o++] = (char)(0xe0 | cp >> 12);
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (cp & 0x3f));
		} else {
			out[o++] = (char)(0xf0 | cp >> 18);
			out[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (cp & 0x3f));
		}
	}
	out[o] = '\0';
	return 0;
}

/* jansson's word on bad JSON, for the dead-letter reason. */
static void bad_json_reason(const void *buf, size_t len, char *reason, size_t rlen)
{
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);

	if (root && !json_is_object(root))
		snprintf(reason, rlen, "job is not a JSON object");
	else if (root)
		snprintf(reason, rlen, "job is not JSON"); /* the scan and jansson disagree */
	else
		snprintf(reason, rlen, "job is not JSON: %s at line %d column %d", jerr.text,
			 jerr.line, jerr.column);
	json_decref(root);
}

/*
 * Tells a job from input that cannot be one, and finds the values of the
 * json: idempotency keys (found[i] for keys[i]; others are left NONE).
 * Returns 0, or -1 with a one-line reason.
 */
int kp_job_check(const void *buf, size_t len, int64_t max_bytes, const struct kp_idkey *keys,
		 int n_keys, struct kp_found *found, char *reason, size_t rlen)
{
	struct scan s = {
	    .p = buf, .end = (const unsigned char *)buf + len, .keys = keys, .found = found};
	uint32_t want = 0;

	for (int i = 0; i < n_keys; i++) {
		found[i].kind = KP_FOUND_NONE;
		if (keys[i].kind == KP_IDKEY_JSON)
			want |= 1u << i;
	}
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
	const char *nul = memchr(buf, '\0', len);
	if (nul) {
		snprintf(reason, rlen, "job is not JSON: a NUL byte at offset %zu",
			 (size_t)(nul - (const char *)buf));
		return -1;
	}
	skip_ws(&s);
	if (s.p < s.end && *s.p == '{' && scan_value(&s, want, 0) == 0) {
		skip_ws(&s);
		if (s.p == s.end)
			return 0;
	}
	for (int i = 0; i < n_keys; i++)
		found[i].kind = KP_FOUND_NONE;
	bad_json_reason(buf, len, reason, rlen);
	return -1;
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

/* A json: source's value as an id: a string, or an integer as jansson prints it. */
static int found_id(const struct kp_found *f, char *id, size_t idlen)
{
	char buf[KP_EVENT_ID_MAX];

	switch (f->kind) {
	case KP_FOUND_STR:
		return id_copy(f->p, f->n, id, idlen);
	case KP_FOUND_ESC:
		if (kp_json_unescape(f->p, f->n, buf, sizeof(buf)) < 0)
			return -1;
		return id_copy(buf, strlen(buf), id, idlen);
	case KP_FOUND_INT:
		if (f->n >= sizeof(buf))
			return -1;
		memcpy(buf, f->p, f->n);
		buf[f->n] = '\0';
		snprintf(id, idlen, "%lld", strtoll(buf, NULL, 10)); /* -0 is 0 */
		return 0;
	default:
		return -1;
	}
}

/*
 * Finds a job's event id: the first of the binding's idempotency_key sources
 * that exists (a string, or a whole number, of at most KP_EVENT_ID_MAX - 1
 * bytes), else TOPIC/PARTITION/OFFSET.  found is what kp_job_check() found,
 * or NULL for bad input; then only headers count.  Returns 0 if a source
 * matched, 1 for the fallback.
 */
int kp_job_event_id(const struct kp_binding *b, const struct kpool_header *hdrs, size_t n_hdrs,
		    const struct kp_found *found, const char *topic, int32_t partition,
		    int64_t offset, char *id, size_t idlen)
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
		if (found && found_id(&found[k], id, idlen) == 0)
			return 0;
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
