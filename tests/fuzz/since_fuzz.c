/*
 * since_fuzz.c - libFuzzer harness for the --since parser (kpool_time.c:
 * kp_cmd_since_parse): any text, up to its first NUL byte.  It is refused,
 * or it is a time from 1970 to the end of 9999 in milliseconds; an age
 * (a number and s, m, h or d) is never later than now.
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.
 *
 * fuzz-sources: kpool/kpool_time.c kpool/kpool_text.c plugins/util.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpool_cmd.h"
#include "util.h"

#define NOW_MS 1764500000000LL /* 2025-11-30T10:53:20Z: a fixed now, for replays */

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *s = strndup((const char *)data, size);
	const char *why;
	size_t n;
	int64_t ms = -2;
	int rc;

	if (s == NULL)
		return 0;
	n = strlen(s);
	rc = kp_cmd_since_parse(s, NOW_MS, &ms, &why);
	if (rc == 0 && (ms < 0 || ms > UTIL_TIME_MAX_MS)) {
		fprintf(stderr, "--since '%s': %lld ms, not a time from 1970 to 9999\n", s,
			(long long)ms);
		abort();
	}
	if (rc == 0 && n > 0 && strchr("smhd", s[n - 1]) && ms > NOW_MS) {
		fprintf(stderr, "--since '%s': an age in the future (%lld ms)\n", s, (long long)ms);
		abort();
	}
	if (rc != 0 && rc != -1)
		abort();
	free(s);
	return 0;
}
