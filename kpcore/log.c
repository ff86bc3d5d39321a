/*
 * log.c - one line per event on stderr, "LEVEL WHO msg key=value ...",
 * and the clocks deadlines and timestamps are read from.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

int kp_log_level = KP_INFO;
static char who[128] = "kpoold";

static const char *const level_names[] = {"debug", "info", "notice", "warning", "error"};

/* Parses a log_level value; returns the level or -1 if it is not one. */
int kp_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

/* Names a level, for log lines. */
const char *kp_level_name(int level)
{
	if (level < KP_DEBUG || level > KP_ERROR)
		level = KP_ERROR;
	return level_names[level];
}

/* Sets who this process is in its log lines, e.g. "worker=email#1". */
void kp_log_who(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(who, sizeof(who), fmt, ap);
	va_end(ap);
}

/* Writes one log line with a single write(2), so lines of several processes never mix. */
void kp_vlog(int level, const char *fmt, va_list ap)
{
	char line[2048];
	int n, m;

	if (level < kp_log_level)
		return;
	n = snprintf(line, sizeof(line), "%s %s ", kp_level_name(level), who);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	for (int i = 0; i < n; i++) /* keep it one line whatever a message holds */
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

/* Logs at one of kpool's levels. */
void kp_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kp_vlog(level, fmt, ap);
	va_end(ap);
}

/* Logs at a syslog level, as plugins and librdkafka speak them. */
void kp_log_syslog(int syslog_level, const char *fmt, ...)
{
	int level;
	va_list ap;

	if (syslog_level <= LOG_ERR)
		level = KP_ERROR;
	else if (syslog_level == LOG_WARNING)
		level = KP_WARNING;
	else if (syslog_level == LOG_NOTICE)
		level = KP_NOTICE;
	else if (syslog_level == LOG_INFO)
		level = KP_INFO;
	else
		level = KP_DEBUG;
	va_start(ap, fmt);
	kp_vlog(level, fmt, ap);
	va_end(ap);
}

/*
 * librdkafka's own log lines (syslog levels), as kpool's: "kafka FACILITY:
 * message".  FAIL lines are left out: the same failure comes as an error too.
 */
void kp_rdkafka_log(const struct rd_kafka_s *rk, int syslog_level, const char *fac, const char *buf)
{
	(void)rk;
	if (strcmp(fac, "FAIL") == 0)
		return;
	kp_log_syslog(syslog_level, "kafka %s: %s", fac, buf);
}

/* Names a signal as "SIGSEGV"; buf holds the name. */
const char *kp_signame(int sig, char *buf, size_t len)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "signal %d", sig);
	return buf;
}

/*
 * Wall-clock time in unix milliseconds.  The coarse clocks (a few ms of
 * resolution) are a fraction of the cost of the precise ones and are all that
 * timestamps and deadlines need; the per-job path reads them several times.
 */
int64_t kp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A wall-clock time in ms as RFC 3339 UTC to the millisecond: "2025-12-01T08:00:00.250Z". */
void kp_rfc3339(int64_t ms, char *buf, size_t len)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	char date[32];

	gmtime_r(&sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", date, (int)(ms % 1000));
}

/* Monotonic milliseconds, for deadlines (coarse, as above). */
int64_t kp_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
