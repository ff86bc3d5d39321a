/*
 * kpool_time.c - the times the kpool command's options take (--since) and
 * its output shows.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpool_cmd.h"
#include "util.h"

/* The characters a number of --since may be written with (no sign, no hex, no "inf"). */
#define SINCE_NUMBER "0123456789.eE+-"

/*
 * --since at the time now_ms: an ISO 8601 time, seconds since the epoch, or
 * an age such as 90m, 24h, 7d.  Returns 0 and the time in *ms (milliseconds
 * since the epoch, from 1970 to the end of 9999), or -1 with *why NULL if s
 * is no time, or a reason (it is out of that range) in *why.
 */
int kp_cmd_since_parse(const char *s, int64_t now_ms, int64_t *ms, const char **why)
{
	size_t span = strspn(s, SINCE_NUMBER);
	char *end;
	double v;

	*why = NULL;
	if (s[0] >= '0' && s[0] <= '9') {
		v = strtod(s, &end);
		if ((size_t)(end - s) != span)
			end = NULL; /* a number strtod reads otherwise than written (hex, ...) */
	} else {
		end = NULL;
		v = 0;
	}
	if (end && *end && strchr("smhd", *end) && end[1] == '\0') {
		double mult = *end == 's'   ? 1e3
			      : *end == 'm' ? 60e3
			      : *end == 'h' ? 3600e3
					    : 86400e3;
		/* v >= 0 and not NaN: it starts with a digit; an age past 1970 is none */
		if (!(v * mult <= (double)now_ms)) {
			*why = "an age reaching back before 1970";
			return -1;
		}
		*ms = now_ms - (int64_t)(v * mult);
		return 0;
	}
	if (end && *end == '\0') {
		if (!(v * 1e3 < (double)UTIL_TIME_MAX_MS)) {
			*why = "seconds since the epoch past the year 9999";
			return -1;
		}
		*ms = (int64_t)(v * 1e3);
		return 0;
	}
	if (s[0] == '-' && s[1] >= '0' && s[1] <= '9') {
		*why = "a negative number is no time nor age";
		return -1;
	}
	*ms = util_time_text_ms(s);
	if (*ms < -1)
		*why = "a time before 1970";
	return *ms < 0 ? -1 : 0;
}

/* A time option's value (opt: its name, for the message) in milliseconds since the
 * epoch; -1, having said why, if it is no time. */
int64_t kp_cmd_since_arg(const char *opt, const char *s)
{
	struct timespec now;
	const char *why;
	int64_t ms;

	clock_gettime(CLOCK_REALTIME, &now);
	if (kp_cmd_since_parse(s, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, &ms, &why) ==
	    0)
		return ms;
	fprintf(stderr, "kpool: %s ", opt);
	kp_text_put(stderr, s, strlen(s), 0);
	fprintf(stderr, ": %s\n",
		why ? why
		    : "not a time (2024-01-15T10:00:00Z, 1705312800, or an age: 90m, 24h, 7d)");
	return -1;
}

/* ms since the epoch as 2024-01-15T10:00:00Z; "-" for a time gmtime cannot give. */
void kp_cmd_iso(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000 - (ms % 1000 < 0));
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "-");
}
