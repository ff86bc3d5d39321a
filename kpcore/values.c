/*
 * values.c - the grammar of a conf's values, one for kpoold's own keys and
 * the handlers' declared options: durations (250ms, 1.5s, 30, 5m, 2h, 7d),
 * sizes (512, 64KiB, 1MiB), booleans, and a handler's option in the normal
 * form its type hands init() (kp_opt_normalize).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core.h"

struct unit {
	const char *name;
	int64_t mul;
};

/* Decimal places of a duration read: beyond them, less than a millisecond of a day. */
#define FRACTION_SCALE_MAX 1000000000

/*
 * Parses a whole number, with a decimal fraction when frac, followed by one
 * of units, into *out (a fraction of the smallest step cut); -1 if it is
 * none or overflows.
 */
static int parse_scaled(const char *s, const struct unit *units, size_t n, bool frac, int64_t *out)
{
	int64_t whole = 0, part = 0, scale = 1;
	const char *p = s;

	if (*p == '+')
		p++;
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (whole > (INT64_MAX - 9) / 10)
			return -1;
		whole = whole * 10 + (*p - '0');
	}
	if (frac && *p == '.' && isdigit((unsigned char)p[1]))
		for (p++; isdigit((unsigned char)*p); p++)
			if (scale < FRACTION_SCALE_MAX) { /* digits past it are below any unit */
				part = part * 10 + (*p - '0');
				scale *= 10;
			}
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < n; i++)
		if (strcmp(p, units[i].name) == 0) {
			if (whole > INT64_MAX / units[i].mul ||
			    whole * units[i].mul > INT64_MAX - part * units[i].mul / scale)
				return -1;
			*out = whole * units[i].mul + part * units[i].mul / scale;
			return 0;
		}
	return -1;
}

/*
 * Parses "30s", "1.5s", "250ms", "5m", "2h", "7d", or a bare number of
 * seconds ("30", as systemd reads one), into milliseconds; -1 if it is none.
 * Every duration of the conf, kpool's own keys and the handlers', is read
 * with this one grammar.
 */
int kp_parse_duration(const char *s, int64_t *ms)
{
	static const struct unit units[] = {{"ms", 1},	    {"s", 1000},     {"m", 60000},
					    {"h", 3600000}, {"d", 86400000}, {"", 1000}};

	return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), true, ms);
}

/* Parses "512", "512B", "64KiB", "1MiB", "2GiB" into bytes; -1 if it is none. */
int kp_parse_size(const char *s, int64_t *bytes)
{
	static const struct unit units[] = {
	    {"", 1}, {"B", 1}, {"KiB", 1024}, {"MiB", 1048576}, {"GiB", 1073741824}};

	return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), false, bytes);
}

/*
 * Parses a rate, "N/s", "N/m" or "N/h" (also "N/sec", "N/min", "N/hour"),
 * N a whole number from 1 to 1e9: *n calls per *period_ms.  -1 if it is none.
 */
int kp_parse_rate(const char *s, int64_t *n, int64_t *period_ms)
{
	static const struct {
		const char *name;
		int64_t ms;
	} per[] = {{"s", 1000},	   {"sec", 1000},     {"second", 1000}, {"m", 60000},
		   {"min", 60000}, {"minute", 60000}, {"h", 3600000},	{"hour", 3600000}};
	char *end;
	long long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || v < 1 || v > 1000000000)
		return -1;
	while (*end == ' ')
		end++;
	if (*end++ != '/')
		return -1;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < sizeof(per) / sizeof(per[0]); i++)
		if (strcmp(end, per[i].name) == 0) {
			*n = v;
			*period_ms = per[i].ms;
			return 0;
		}
	return -1;
}

/* Parses on/off, yes/no, true/false, 1/0; -1 if it is none. */
int kp_parse_bool(const char *s, bool *b)
{
	static const char *const yes[] = {"on", "yes", "true", "1"};
	static const char *const no[] = {"off", "no", "false", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0)
			return *b = true, 0;
		if (strcmp(s, no[i]) == 0)
			return *b = false, 0;
	}
	return -1;
}

/* Whether choices ("a|b|c") holds value whole. */
static bool choice_of(const char *choices, const char *value)
{
	size_t n = strlen(value);

	if (n == 0 || strchr(value, '|'))
		return false;
	for (const char *p = choices; p; p = strchr(p, '|')) {
		if (*p == '|')
			p++;
		if (strncmp(p, value, n) == 0 && (p[n] == '|' || p[n] == '\0'))
			return true;
	}
	return false;
}

/* Writes choices ("a|b|c") as "a, b or c" into buf. */
static void choices_text(const char *choices, char *buf, size_t len)
{
	const char *last = strrchr(choices, '|');
	size_t n = 0;

	buf[0] = '\0';
	for (const char *p = choices; *p && n + 5 < len; p++) {
		if (*p != '|') {
			buf[n++] = *p;
			continue;
		}
		n += (size_t)snprintf(buf + n, len - n, p == last ? " or " : ", ");
		if (n >= len)
			n = len - 1;
	}
	buf[n] = '\0';
}

/* Checks a number against a spec's range (max 0: none); -1 with err if it is outside. */
static int in_range(const struct kpool_option_spec *spec, const char *value, int64_t v,
		    const char *unit, char *err, size_t len)
{
	if (v < spec->min) {
		snprintf(err, len, "'%s' is less than %" PRId64 "%s", value, spec->min, unit);
		return -1;
	}
	if (spec->max > 0 && v > spec->max) {
		snprintf(err, len, "'%s' is more than %" PRId64 "%s", value, spec->max, unit);
		return -1;
	}
	return 0;
}

/*
 * Checks one value of a handler's declared option with the conf's grammar
 * and sets *out to its normal form (kpool_plugin.h): milliseconds, bytes,
 * "true"/"false", an absolute path (a relative one taken from dir), the
 * number in decimal, or the text as written.  -1 with err, the message
 * after "KEY: ", and *out NULL, if the value does not fit.
 */
int kp_opt_normalize(const struct kpool_option_spec *spec, const char *value, const char *dir,
		     char **out, char *err, size_t len)
{
	char text[256];
	int64_t v;
	bool b;
	int n = 0;

	*out = NULL;
	switch (spec->type) {
	case KPOOL_OPT_STRING:
		*out = strdup(value);
		break;
	case KPOOL_OPT_INT: {
		char *end;
		long long l;

		errno = 0;
		l = strtoll(value, &end, 10);
		if (errno || end == value || *end || isspace((unsigned char)*value)) {
			snprintf(err, len, "'%s' is not a whole number", value);
			return -1;
		}
		if (spec->max > 0 && (l < spec->min || l > spec->max)) {
			snprintf(err, len,
				 "'%s' is not a whole number from %" PRId64 " to %" PRId64, value,
				 spec->min, spec->max);
			return -1;
		}
		if (in_range(spec, value, l, "", err, len) < 0)
			return -1;
		n = asprintf(out, "%lld", l);
		break;
	}
	case KPOOL_OPT_BOOL:
		if (kp_parse_bool(value, &b) < 0) {
			snprintf(err, len, "'%s' is not on or off", value);
			return -1;
		}
		*out = strdup(b ? "true" : "false");
		break;
	case KPOOL_OPT_DURATION:
		if (kp_parse_duration(value, &v) < 0) {
			snprintf(err, len, "bad duration '%s' (use a number with ms, s, m, h or d)",
				 value);
			return -1;
		}
		if (in_range(spec, value, v, "ms", err, len) < 0)
			return -1;
		n = asprintf(out, "%" PRId64, v);
		break;
	case KPOOL_OPT_SIZE:
		if (kp_parse_size(value, &v) < 0) {
			snprintf(err, len, "bad size '%s' (use a number with B, KiB, MiB or GiB)",
				 value);
			return -1;
		}
		if (in_range(spec, value, v, " bytes", err, len) < 0)
			return -1;
		n = asprintf(out, "%" PRId64, v);
		break;
	case KPOOL_OPT_PATH:
		if (*value == '\0') {
			snprintf(err, len, "empty (a file or directory)");
			return -1;
		}
		if (value[0] == '/' || dir == NULL)
			*out = strdup(value);
		else
			n = asprintf(out, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", value);
		break;
	case KPOOL_OPT_ENUM:
		if (spec->choices == NULL || !choice_of(spec->choices, value)) {
			choices_text(spec->choices ? spec->choices : "", text, sizeof(text));
			snprintf(err, len, "'%s' is not %s", value, text);
			return -1;
		}
		*out = strdup(value);
		break;
	default:
		snprintf(err, len, "the handler declares an unknown type %d", spec->type);
		return -1;
	}
	if (n < 0 || *out == NULL) {
		*out = NULL;
		snprintf(err, len, "out of memory");
		return -1;
	}
	return 0;
}
