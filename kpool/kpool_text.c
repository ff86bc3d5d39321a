/*
 * kpool_text.c - the kpool command's text from outside: what records,
 * headers and databases hold is shown to people and handed to programs
 * without letting it act on a terminal.
 *
 * For people (tables, summaries, dlq show): text as UTF-8 in which every
 * control character is shown as an escape, never sent as it is: C0 controls
 * and DEL as \xHH (tab, newline and carriage return as \t, \n, \r), the C1
 * controls U+0080-U+009F as \u0080-\u009f, and each byte that is not part of
 * valid UTF-8 as U+FFFD.  Multi-line text (a job shown by dlq show) keeps its
 * newlines and tabs.
 *
 * For programs (--json): strings are valid UTF-8 (a byte that is not part of
 * valid UTF-8 becomes U+FFFD, so no value is dropped), and the document is
 * printed with every control character escaped: jansson escapes C0, this
 * file DEL and C1, so the JSON text itself is safe on a terminal.
 */
#include "config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpool_cmd.h"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD in UTF-8 */

/*
 * The length of the UTF-8 sequence at s (at most n bytes) and its code point
 * in *cp; 0 if s does not start one (a stray continuation byte, an overlong
 * form, a surrogate, past U+10FFFF, or cut short).
 */
size_t kp_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2, c = s[0] & 0x1f, min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3, c = s[0] & 0x0f, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Room for n more bytes in a string being built; aborts when memory runs out. */
static void reserve(char **p, size_t *cap, size_t used, size_t n)
{
	if (used + n + 1 <= *cap)
		return;
	while (used + n + 1 > *cap)
		*cap = *cap ? *cap * 2 : 64;
	if ((*p = realloc(*p, *cap)) == NULL)
		abort(); /* text for a terminal: no memory is no way on */
}

/* Appends n bytes at s to the string being built, NUL-terminated; aborts when memory runs out. */
static void put(char **p, size_t *cap, size_t *used, const char *s, size_t n)
{
	reserve(p, cap, *used, n);
	memcpy(*p + *used, s, n);
	*used += n;
	(*p)[*used] = '\0';
}

/*
 * n bytes at s as valid UTF-8 without NUL: each byte that is not part of a
 * valid sequence, and NUL, becomes U+FFFD; control characters stay.  Never
 * NULL (aborts when memory runs out).
 */
char *kp_text_utf8(const void *s, size_t n)
{
	const unsigned char *b = s;
	char *out = NULL;
	size_t cap = 0, used = 0, k;
	uint32_t cp;

	reserve(&out, &cap, 0, n);
	out[0] = '\0';
	for (size_t i = 0; i < n; i += k) {
		k = kp_utf8_next(b + i, n - i, &cp);
		if (k == 0 || cp == 0) {
			put(&out, &cap, &used, REPLACEMENT, 3);
			k = 1;
		} else {
			put(&out, &cap, &used, (const char *)b + i, k);
		}
	}
	return out;
}

/*
 * n bytes at s as text for people (see the top of the file); with
 * KP_TEXT_LINES, newlines and tabs stay.  Never NULL (aborts when memory
 * runs out).
 */
char *kp_text_clean(const void *s, size_t n, unsigned flags)
{
	const unsigned char *b = s;
	char *out = NULL, esc[8];
	size_t cap = 0, used = 0, k;
	uint32_t cp;

	reserve(&out, &cap, 0, n);
	out[0] = '\0';
	for (size_t i = 0; i < n; i += k) {
		k = kp_utf8_next(b + i, n - i, &cp);
		if (k == 0) {
			put(&out, &cap, &used, REPLACEMENT, 3);
			k = 1;
		} else if ((cp == '\n' || cp == '\t') && (flags & KP_TEXT_LINES)) {
			put(&out, &cap, &used, (const char *)b + i, 1);
		} else if (cp == '\n' || cp == '\t' || cp == '\r') {
			put(&out, &cap, &used, cp == '\n' ? "\\n" : cp == '\t' ? "\\t" : "\\r", 2);
		} else if (cp < 0x20 || cp == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
			put(&out, &cap, &used, esc, 4);
		} else if (cp >= 0x80 && cp <= 0x9f) {
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
			put(&out, &cap, &used, esc, 6);
		} else {
			put(&out, &cap, &used, (const char *)b + i, k);
		}
	}
	return out;
}

/* Writes n bytes at s to f as kp_text_clean() shows them. */
void kp_text_put(FILE *f, const void *s, size_t n, unsigned flags)
{
	char *t = kp_text_clean(s, n, flags);

	fputs(t, f);
	free(t);
}

/* A JSON string of n bytes at s, as kp_text_utf8() makes them valid; never NULL. */
json_t *kp_json_text(const void *s, size_t n)
{
	char *t = kp_text_utf8(s, n);
	json_t *j = json_string(t);

	free(t);
	if (j == NULL)
		abort(); /* valid UTF-8 without NUL: only memory can be missing */
	return j;
}

/*
 * Prints doc (jansson's flags, e.g. JSON_INDENT(2)) and a newline to f,
 * DEL and the C1 controls escaped as \u007f and \u0080-\u009f: jansson
 * writes them as they are.  In valid UTF-8, 0xc2 always starts a character,
 * so 0xc2 0x80-0x9f is one of them, and in the document it can only be in a
 * string.  Returns 0, or -1 if doc could not be written.
 */
int kp_json_print(const json_t *doc, FILE *f, size_t flags)
{
	char *s = json_dumps(doc, flags);

	if (s == NULL)
		return -1;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == 0x7f) {
			fputs("\\u007f", f);
		} else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			fprintf(f, "\\u%04x", (unsigned)p[1]);
			p++;
		} else {
			fputc(*p, f);
		}
	}
	fputc('\n', f);
	free(s);
	return 0;
}

/* Prints doc, a --json document, to standard output as kp_json_print() does, and frees it. */
void kp_json_out(json_t *doc)
{
	kp_json_print(doc, stdout, JSON_INDENT(2));
	json_decref(doc);
}

/* Writes len bytes at s to f as an xxd-style dump (dlq show, the console). */
void kp_hexdump(FILE *f, const unsigned char *s, size_t len)
{
	for (size_t o = 0; o < len; o += 16) {
		fprintf(f, "%08zx ", o);
		for (size_t i = o; i < o + 16; i++)
			fprintf(f, i < len ? " %02x" : "   ", i < len ? s[i] : 0);
		fprintf(f, "  ");
		for (size_t i = o; i < o + 16 && i < len; i++)
			fputc(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '.', f);
		fputc('\n', f);
	}
}
