/*
 * mime.c - see mime.h.
 */
#include "config.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

/* Fills {{path}} placeholders; values HTML-escaped when html.  NULL + reason on a missing value. */
char *mime_render(const char *tname, const char *ext, const char *src, json_t *data, bool html,
		  char *reason)
{
	struct buf out = {0}, val = {0};
	const char *p = src, *open;

	while ((open = strstr(p, "{{")) != NULL) {
		const char *close = strstr(open + 2, "}}"), *a = open + 2, *z;
		buf_add(&out, p, (size_t)(open - p));
		if (close == NULL) {
			snprintf(reason, KPOOL_REASON_MAX, "template %s.%s: '{{' without '}}'",
				 tname, ext);
			goto fail;
		}
		z = close;
		while (a < z && isspace((unsigned char)*a))
			a++;
		while (z > a && isspace((unsigned char)z[-1]))
			z--;
		val.len = 0;
		if (!util_lookup(data, a, (size_t)(z - a), &val)) {
			snprintf(reason, KPOOL_REASON_MAX, "template %s.%s: no value for {{%.*s}}",
				 tname, ext, (int)(z - a), a);
			goto fail;
		}
		if (html)
			util_xml_escape(&out, val.p ? val.p : "", val.len);
		else
			buf_add(&out, val.p ? val.p : "", val.len);
		p = close + 2;
	}
	buf_str(&out, p);
	free(val.p);
	if (out.oom) {
		snprintf(reason, KPOOL_REASON_MAX, "out of memory");
		free(out.p);
		return NULL;
	}
	return out.p ? out.p : strdup("");
fail:
	free(val.p);
	free(out.p);
	return NULL;
}

/* ---- MIME ----------------------------------------------------------- */

bool mime_has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

bool mime_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* RFC 2047: non-ASCII text as UTF-8 "B" encoded words of at most 75 chars, folded. */
void mime_encode_words(struct buf *out, const char *s)
{
	size_t n = strlen(s), i = 0;
	unsigned char b64[128];

	if (mime_ascii(s)) {
		buf_str(out, s);
		return;
	}
	while (i < n) {
		size_t k = n - i > 45 ? 45 : n - i;
		while (i + k < n && k > 0 && ((unsigned char)s[i + k] & 0xc0) == 0x80)
			k--; /* never split a UTF-8 sequence */
		if (k == 0)
			k = n - i > 45 ? 45 : n - i;
		EVP_EncodeBlock(b64, (const unsigned char *)s + i, (int)k);
		if (i > 0)
			buf_str(out, "\r\n ");
		buf_printf(out, "=?UTF-8?B?%s?=", b64);
		i += k;
	}
}

/* Quoted-printable (RFC 2045) of UTF-8 text, lines ending CRLF, none over 76. */
void mime_encode_qp(struct buf *out, const char *s)
{
	int col = 0;

	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		char enc[4];
		int w;

		if (c == '\r' && p[1] == '\n')
			continue;
		if (c == '\n') {
			buf_str(out, "\r\n");
			col = 0;
			continue;
		}
		bool at_eol = p[1] == '\0' || p[1] == '\n' || (p[1] == '\r' && p[2] == '\n');
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol) ||
		    (c == '.' && col > 0)) {
			enc[0] = (char)c;
			enc[1] = '\0';
			w = 1;
		} else {
			snprintf(enc, sizeof(enc), "=%02X", c);
			w = 3;
		}
		if (col + w > 75) {
			buf_str(out, "=\r\n");
			col = 0;
		}
		buf_add(out, enc, (size_t)w);
		col += w;
	}
	if (col > 0)
		buf_str(out, "\r\n");
}

/*
 * Checks one address, "user@example.com" or "Name <user@example.com>", and
 * writes it for a header to out and its bare address to *addr.  false with
 * reason if it is not one.
 */
bool mime_address(const char *field, const char *in, struct buf *out, char **addr, char *reason)
{
	const char *lt = strchr(in, '<'), *a = in, *z;
	char name[512] = "";

	if (mime_has_crlf(in)) {
		snprintf(reason, KPOOL_REASON_MAX, "%s: CR or LF in an address (header injection)",
			 field);
		return false;
	}
	if (lt) {
		const char *n = in, *ne = lt;
		while (n < ne && isspace((unsigned char)*n))
			n++;
		while (ne > n && isspace((unsigned char)ne[-1]))
			ne--;
		if (ne - n >= 2 && *n == '"' && ne[-1] == '"') /* "Name" <addr> */
			n++, ne--;
		if (ne - n >= (long)sizeof(name) || memchr(n, '"', (size_t)(ne - n)) ||
		    memchr(n, '\\', (size_t)(ne - n))) {
			snprintf(reason, KPOOL_REASON_MAX, "%s: bad display name", field);
			return false;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(ne - n), n);
		a = lt + 1;
		z = strchr(a, '>');
		if (z == NULL || z[1] != '\0') {
			snprintf(reason, KPOOL_REASON_MAX, "%s: invalid address '%.100s'", field,
				 in);
			return false;
		}
	} else {
		z = a + strlen(a);
	}
	const char *at = memchr(a, '@', (size_t)(z - a));
	bool ok = at && at > a && z - at > 1 && z - a <= 254;
	for (const char *p = a; ok && p < z; p++) {
		unsigned char c = (unsigned char)*p;
		if (p < at)
			ok = isalnum(c) || strchr(".!#$%&'*+/=?^_`{|}~-", c);
		else if (p > at)
			ok = isalnum(c) || c == '.' || c == '-';
	}
	if (ok)
		ok = a[0] != '.' && at[-1] != '.' && at[1] != '.' && z[-1] != '.' &&
		     !strstr(at, "..");
	if (!ok) {
		snprintf(reason, KPOOL_REASON_MAX, "%s: invalid address '%.100s'", field, in);
		return false;
	}
	*addr = strndup(a, (size_t)(z - a));
	if (*name) {
		if (mime_ascii(name)) {
			buf_str(out, "\"");
			buf_str(out, name);
			buf_str(out, "\"");
		} else {
			mime_encode_words(out, name);
		}
		buf_str(out, " <");
		buf_str(out, *addr);
		buf_str(out, ">");
	} else {
		buf_str(out, *addr);
	}
	return *addr != NULL;
}
