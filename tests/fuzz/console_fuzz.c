/*
 * console_fuzz.c - libFuzzer harness for what the web console reads from
 * outside and what it writes into pages.  The first byte picks:
 *   0  kp_buf_html(): the escaped text is valid UTF-8 with no < > " ' and
 *      every & begins one of the five entities it writes;
 *   1  kp_cursor_read(): a page cursor only ever lowers a partition's
 *      cursor, and never below 0;
 *   2  kp_session_ok(): a cookie is refused unless it is one
 *      kp_session_new() made (checked on a fresh one too), and
 *      kp_session_csrf() gives 32 hex digits for any cookie;
 *   3  kp_dry_run_count(): any output, a count or -1.
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.
 */
/* clang-format off */
/*
 * fuzz-sources: console/html.c console/parse.c console/session.c kpool/kpool_text.c kpool/kpool_progress.c kpcore/log.c
 */
/* clang-format on */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console_int.h"
#include "kpool_cmd.h"

struct kp_console *kp_cons; /* html.c's pages read it; the harness writes none */

/* Whether the n bytes at s are valid UTF-8 (as kp_utf8_next reads it). */
static int utf8_ok(const char *s, size_t n)
{
	uint32_t cp;

	for (size_t i = 0, k; i < n; i += k)
		if ((k = kp_utf8_next((const unsigned char *)s + i, n - i, &cp)) == 0)
			return 0;
	return 1;
}

/* kp_buf_html's promise. */
static void html(const unsigned char *data, size_t size)
{
	static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
	struct kp_buf b = {0};

	kp_buf_html(&b, data, size);
	if (b.n && !utf8_ok(b.s, b.n))
		abort();
	for (size_t i = 0; i < b.n; i++) {
		int ok = 0;
		if (strchr("<>\"'", b.s[i]) && b.s[i])
			abort();
		if (b.s[i] != '&')
			continue;
		for (size_t e = 0; e < 5; e++)
			ok |= strncmp(b.s + i, ents[e], strlen(ents[e])) == 0;
		if (!ok)
			abort();
	}
	kp_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *s;

	if (size == 0)
		return 0;
	s = strndup((const char *)data + 1, size - 1);
	if (s == NULL)
		return 0;
	switch (data[0] % 4) {
	case 0:
		html(data + 1, size - 1);
		break;
	case 1: {
		int64_t cur[4] = {100, 100, 0, 1};
		kp_cursor_read(s, cur, 4);
		if (cur[0] > 100 || cur[1] > 100 || cur[2] != 0 || cur[3] > 1 || cur[0] < 0 ||
		    cur[1] < 0 || cur[3] < 0)
			abort();
		break;
	}
	case 2: {
		char fresh[128], csrf[33];
		kp_session_key("a token for the harness, 32 chars");
		if (kp_session_ok(s) && strlen(s) != 77 && strlen(s) != 78)
			abort(); /* a session is EXPIRY (10 or 11 digits) . 64 hex digits */
		kp_session_new(3600000, fresh, sizeof(fresh));
		if (!kp_session_ok(fresh))
			abort();
		kp_session_csrf(s, csrf, sizeof(csrf));
		if (strlen(csrf) != 32 || strspn(csrf, "0123456789abcdef") != 32)
			abort();
		break;
	}
	default: {
		long n = kp_dry_run_count(s);
		if (n < -1)
			abort();
	}
	}
	free(s);
	return 0;
}
