/*
 * parse.c - what the console reads from text others wrote: a page's cursor
 * (from a URL) and a dry run's count (from its output).  Fuzzed by
 * tests/fuzz/console_fuzz.c.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "console_int.h"
#include "kpool_cmd.h"

/*
 * Reads a page cursor "P:OFFSET,P:OFFSET,..." into cur[0..n): an offset
 * lowers its partition's cursor; anything else (a partition the topic does
 * not have, an offset not below the cursor, a part that is not P:OFFSET)
 * is passed over, so a cursor can only move a page further back.
 */
void kp_cursor_read(const char *s, int64_t *cur, int n)
{
	while (s && *s) {
		size_t k = strcspn(s, ",");
		char one[64];
		int32_t part;
		int64_t off;

		if (k < sizeof(one)) {
			memcpy(one, s, k);
			one[k] = '\0';
			if (kp_dlq_at_parse(one, &part, &off) == 0 && part < n && off < cur[part])
				cur[part] = off;
		}
		s += k + (s[k] == ',');
	}
}

/* The count a finished dry run printed last ("would replay N records ..."), -1 if none. */
long kp_dry_run_count(const char *log)
{
	const char *at = log, *last = NULL;
	long n;

	while ((at = strstr(at, "would replay ")) != NULL)
		last = at++;
	return last && sscanf(last, "would replay %ld", &n) == 1 && n >= 0 ? n : -1;
}
