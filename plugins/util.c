/*
 * util.c - see util.h.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Formats straight into the buffer, whatever the length (never cut). */
void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap, again;
	int n;

	va_start(ap, fmt);
	va_copy(again, ap);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
	} else if ((size_t)n < sizeof(tmp)) {
		buf_add(b, tmp, (size_t)n);
	} else {
		char *big = malloc((size_t)n + 1);
		if (big == NULL)
			b->oom = true;
		else if (vsnprintf(big, (size_t)n + 1, fmt, again) == n)
			buf_add(b, big, (size_t)n);
		else
			b->oom = true;
		free(big);
	}
	va_end(again);
}

/* The value at a dotted path of data, as text; false if there is none. */
bool util_lookup(json_t *data, const char *path, size_t n, struct buf *out)
{
	char key[256];
	json_t *v = data;

	while (n > 0 && v) {
		size_t k = 0;
		while (k < n && path[k] != '.')
			k++;
		if (k == 0 || k >= sizeof(key))
			return false;
		memcpy(key, path, k);
		key[k] = '\0';
		v = json_is_object(v) ? json_object_get(v, key) : NULL;
		path += k;
		n -= k;
		if (n > 0) {
			path++;
			n--;
		}
	}
	if (json_is_string(v))
		buf_add(out, json_string_value(v), json_string_length(v));
	else if (json_is_integer(v))
		buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		buf_printf(out, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		buf_str(out, json_is_true(v) ? "true" : "false");
	else
		return false;
	return true;
}

/* A whole file, up to max bytes, as a string; NULL with err if it cannot be read. */
char *util_read_file(const char *path, size_t max, char *err, size_t len)
{
	FILE *f = fopen(path, "r");
	struct buf b = {0};
	char chunk[4096];
	size_t n;

	if (f == NULL) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len <= max)
		buf_add(&b, chunk, n);
	fclose(f);
	if (b.len > max || b.oom) {
		snprintf(err, len, "%s: larger than %zu bytes", path, max);
		free(b.p);
		return NULL;
	}
	if (b.p == NULL)
		b.p = strdup("");
	return b.p;
}

/* The job itself, or the "data" of a {"type"|"eventType"|"metadata", "data"} envelope. */
json_t *util_job_body(json_t *root)
{
	json_t *data = json_object_get(root, "data");

	if (json_is_object(data) &&
	    (json_object_get(root, "type") || json_object_get(root, "eventType") ||
	     json_object_get(root, "metadata")))
		return data;
	return root;
}

/* n bytes of text for HTML or XML: markup characters as entities. */
void util_xml_escape(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '&':
			buf_str(out, "&amp;");
			break;
		case '<':
			buf_str(out, "&lt;");
			break;
		case '>':
			buf_str(out, "&gt;");
			break;
		case '"':
			buf_str(out, "&quot;");
			break;
		case '\'':
			buf_str(out, "&#39;");
			break;
		default: /* other control characters are not allowed in XML */
			if ((unsigned char)s[i] >= 0x20 || s[i] == '\t' || s[i] == '\n' ||
			    s[i] == '\r')
				buf_add(out, &s[i], 1);
		}
	}
}

/* n bytes as 2n lower-case hex digits and a NUL. */
void util_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/*
 * A time a job gives: milliseconds or seconds since the epoch (a number; up
 * to 1e11 counts as seconds), or an ISO 8601 / RFC 3339 string such as
 * 2024-01-15T10:30:00Z, 2024-01-15T10:30:00.250+02:00 or 2024-01-15.
 * -1 if there is none, or it is none of these.
 */
int64_t util_time_ms(json_t *v)
{
	if (json_is_integer(v) || json_is_real(v)) {
		double d = json_number_value(v);
		/* Past the year 9999 (or not a number at all) is no time. */
		if (!(d > 0 && d < UTIL_TIME_MAX_MS))
			return -1;
		return d < 1e11 ? (int64_t)(d * 1000) : (int64_t)d;
	}
	return json_is_string(v) ? util_time_text_ms(json_string_value(v)) : -1;
}

/* Two decimal digits at p (which may end first). */
static bool digit2(const char *p)
{
	return p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9';
}

/* An ISO 8601 / RFC 3339 time in milliseconds since the epoch; -1 if s is none. */
int64_t util_time_text_ms(const char *s)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	int64_t ms = 0;
	long off = 0;

	if (p == NULL)
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p = strptime(p + 1, "%H:%M:%S", &tm);
		if (p == NULL)
			return -1;
		if (*p == '.') {
			int digits = 0;
			for (p++; *p >= '0' && *p <= '9'; p++, digits++)
				if (digits < 3)
					ms = ms * 10 + (*p - '0');
			for (; digits < 3; digits++)
				ms *= 10;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			/* Exactly +HH:MM or +HHMM, nothing shorter. */
			const char *z = p + 1;
			bool colon = z[0] && z[1] && z[2] == ':';
			const char *m = colon ? z + 3 : z + 2;
			if (!digit2(z) || !digit2(m))
				return -1;
			int hh = (z[0] - '0') * 10 + (z[1] - '0');
			int mm = (m[0] - '0') * 10 + (m[1] - '0');
			if (hh > 23 || mm > 59)
				return -1;
			off = (hh * 60L + mm) * 60 * (*p == '-' ? -1 : 1);
			p = m + 2;
		}
	}
	/* Years 1-9999 only: a time_t past them is of no use and may overflow. */
	if (*p != '\0' || tm.tm_year < 1 - 1900 || tm.tm_year > 9999 - 1900)
		return -1;
	return ((int64_t)timegm(&tm) - off) * 1000 + ms;
}
