/*
 * mime.c - see mime.h.
 */
#include "config.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/*
 * RFC 2047 encoded words: s as UTF-8 "B" words, separated by single spaces
 * (a reader drops the space between two encoded words), never splitting a
 * UTF-8 sequence.  WORD_BYTES bytes make a word of 68 characters, which fits
 * on a line of MIME_LINE_SOFT after "Reply-To: ", the longest header name
 * that holds one.
 */
#define WORD_BYTES 42

static void encode_words(struct buf *out, const char *s)
{
	size_t n = strlen(s), i = 0;
	unsigned char b64[4 * ((WORD_BYTES + 2) / 3) + 1];

	while (i < n) {
		size_t k = n - i > WORD_BYTES ? WORD_BYTES : n - i;
		while (i + k < n && k > 0 && ((unsigned char)s[i + k] & 0xc0) == 0x80)
			k--; /* never split a UTF-8 sequence */
		if (k == 0)
			k = n - i > WORD_BYTES ? WORD_BYTES : n - i;
		EVP_EncodeBlock(b64, (const unsigned char *)s + i, (int)k);
		if (i > 0)
			buf_str(out, " ");
		buf_str(out, "=?UTF-8?B?");
		buf_str(out, (const char *)b64);
		buf_str(out, "?=");
		i += k;
	}
}

/* Printable ASCII as it is, anything else as encoded words (see encode_words). */
void mime_encode_words(struct buf *out, const char *s)
{
	if (mime_ascii(s))
		buf_str(out, s);
	else
		encode_words(out, s);
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
	if (*addr == NULL) {
		snprintf(reason, KPOOL_REASON_MAX, "out of memory");
		return false;
	}
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
	return true;
}

/* ---- headers ---------------------------------------------------------- */

/*
 * A header is folded (RFC 5322 2.2.3) by a CRLF put before one of its
 * spaces, so that unfolding, which takes the CRLFs out, gives the value
 * back byte for byte.  A fold goes only before a space that a non-space
 * follows, so that no line is blank.
 */
static bool fold_point(const char *s, size_t i)
{
	return s[i] == ' ' && s[i + 1] != ' ' && s[i + 1] != '\0';
}

/* Starts the header "name: " in out. */
void mime_hdr_start(struct mime_hdr *h, struct buf *out, const char *name)
{
	h->out = out;
	buf_str(out, name);
	buf_str(out, ": ");
	h->col = strlen(name) + 2;
}

/*
 * Adds s to the header: on the current line if it fits; else on a line of
 * its own if it begins with a space and fits there; else folded at its own
 * spaces, each line as full as MIME_LINE_SOFT allows.  A word longer than a
 * line stays whole: the callers keep words under MIME_LINE_MAX.
 */
void mime_hdr_add(struct mime_hdr *h, const char *s)
{
	size_t n = strlen(s), i = 0;

	if (h->col + n > MIME_LINE_SOFT && n <= MIME_LINE_SOFT && fold_point(s, 0)) {
		buf_str(h->out, "\r\n");
		h->col = 0;
	}
	while (i < n) {
		size_t j = i + 1;
		while (j < n && !fold_point(s, j))
			j++;
		if (h->col > 0 && h->col + (j - i) > MIME_LINE_SOFT && fold_point(s, i)) {
			buf_str(h->out, "\r\n");
			h->col = 0;
		}
		buf_add(h->out, s + i, j - i);
		h->col += j - i;
		i = j;
	}
}

/* Whether s, printable ASCII, folds at its spaces into lines of MIME_LINE_SOFT from column col. */
static bool folds_plain(const char *s, size_t col)
{
	size_t n = strlen(s), i = 0;

	/* A word that looks like an encoded word would be read as one. */
	if (!mime_ascii(s) || strstr(s, "=?") != NULL)
		return false;
	while (i < n) {
		size_t j = i + 1;
		while (j < n && !fold_point(s, j))
			j++;
		if ((i == 0 ? col : 0) + (j - i) > MIME_LINE_SOFT)
			return false;
		i = j;
	}
	return true;
}

/*
 * Adds unstructured text (a Subject) to the header: as it is when it is
 * printable ASCII whose words fit on folded lines, else as encoded words, so
 * that a long word, or a long line of non-ASCII text, is never one long line.
 */
void mime_hdr_text(struct mime_hdr *h, const char *s)
{
	struct buf words = {0};

	if (folds_plain(s, h->col)) {
		mime_hdr_add(h, s);
		return;
	}
	encode_words(&words, s);
	if (words.oom)
		h->out->oom = true;
	else if (words.p)
		mime_hdr_add(h, words.p);
	free(words.p);
}

/* Ends the header with its CRLF. */
void mime_hdr_end(struct mime_hdr *h)
{
	buf_str(h->out, "\r\n");
}

/* ---- the message of a job ---------------------------------------------- */

static const char *str_field(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/*
 * The addresses of a job's field (a string or an array of them): in the
 * header hname when header is set, and in the envelope when envelope is
 * set.  false with reason if one is not an address or there are too many.
 */
static bool addresses(struct mime_msg *m, const char *hname, json_t *v, bool header, bool envelope,
		      char *reason)
{
	size_t n = json_is_array(v) ? json_array_size(v) : 1;
	struct buf line = {0}, one = {0};
	struct mime_hdr h;
	bool ok = true;

	if (v == NULL || json_is_null(v) || n == 0)
		return true;
	if (!json_is_string(v) && !json_is_array(v)) {
		snprintf(reason, KPOOL_REASON_MAX, "%s: not a string or an array", hname);
		return false;
	}
	mime_hdr_start(&h, &line, hname);
	for (size_t i = 0; i < n && ok; i++) {
		json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
		char *addr = NULL;
		if (!json_is_string(x)) {
			snprintf(reason, KPOOL_REASON_MAX, "%s: not a string", hname);
			ok = false;
			break;
		}
		one.len = 0;
		buf_str(&one, i > 0 ? " " : "");
		ok = mime_address(hname, json_string_value(x), &one, &addr, reason);
		if (ok && envelope && m->n_rcpt == MIME_MAX_RCPT) {
			snprintf(reason, KPOOL_REASON_MAX, "more than %d recipients",
				 MIME_MAX_RCPT);
			ok = false;
		}
		if (ok && envelope)
			m->rcpt[m->n_rcpt++] = addr;
		else
			free(addr);
		if (ok && i + 1 < n)
			buf_str(&one, ",");
		if (ok && one.oom) {
			snprintf(reason, KPOOL_REASON_MAX, "out of memory");
			ok = false;
		}
		if (ok)
			mime_hdr_add(&h, one.p);
	}
	mime_hdr_end(&h);
	if (ok && header)
		buf_add(&m->text, line.p, line.len);
	free(line.p);
	free(one.p);
	return ok;
}

/* The body: one part, or multipart/alternative with the text first. */
static void body(struct mime_msg *m, const struct mime_content *c)
{
	struct mime_hdr h;
	char boundary[80];

	snprintf(boundary, sizeof(boundary), " boundary=\"=_kpool_%s\"", c->id);
	if (c->text && c->html) {
		mime_hdr_start(&h, &m->text, "Content-Type");
		mime_hdr_add(&h, "multipart/alternative;");
		mime_hdr_add(&h, boundary);
		mime_hdr_end(&h);
		buf_printf(&m->text, "\r\nThis is a MIME message.\r\n\r\n--=_kpool_%s\r\n", c->id);
	}
	if (c->text) {
		buf_str(&m->text, "Content-Type: text/plain; charset=UTF-8\r\n"
				  "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
		mime_encode_qp(&m->text, c->text);
	}
	if (c->text && c->html)
		buf_printf(&m->text, "\r\n--=_kpool_%s\r\n", c->id);
	if (c->html) {
		buf_str(&m->text, "Content-Type: text/html; charset=UTF-8\r\n"
				  "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
		mime_encode_qp(&m->text, c->html);
	}
	if (c->text && c->html)
		buf_printf(&m->text, "\r\n--=_kpool_%s--\r\n", c->id);
}

/*
 * Builds the message of a job (its fields "from", "to", "cc", "bcc",
 * "replyTo") saying c, and its envelope.  Each header value is checked or
 * encoded, none comes from the job as it is, and each is folded into lines
 * of MIME_LINE_SOFT where it has spaces, never past MIME_LINE_MAX.  false
 * with reason if the job cannot be a message; m is then to be freed.
 */
bool mime_message(struct mime_msg *m, json_t *job, const struct mime_content *c, char *reason)
{
	const char *from = str_field(job, "from") ? str_field(job, "from") : c->default_from;
	struct buf one = {0};
	struct mime_hdr h;
	bool ok = false;

	if (c->subject == NULL) {
		snprintf(reason, KPOOL_REASON_MAX, "no subject");
		goto out;
	}
	if (mime_has_crlf(c->subject)) {
		snprintf(reason, KPOOL_REASON_MAX,
			 "subject: CR or LF in a header value (header injection)");
		goto out;
	}
	if (from == NULL) {
		snprintf(reason, KPOOL_REASON_MAX, "no from (and no 'from' option)");
		goto out;
	}
	if (!mime_address("from", from, &one, &m->from, reason))
		goto out;
	if (one.oom) {
		snprintf(reason, KPOOL_REASON_MAX, "out of memory");
		goto out;
	}
	mime_hdr_start(&h, &m->text, "From");
	mime_hdr_add(&h, one.p);
	mime_hdr_end(&h);
	if (!addresses(m, "To", json_object_get(job, "to"), true, true, reason) ||
	    !addresses(m, "Cc", json_object_get(job, "cc"), true, true, reason) ||
	    !addresses(m, "Bcc", json_object_get(job, "bcc"), false, true, reason))
		goto out;
	if (m->n_rcpt == 0) {
		snprintf(reason, KPOOL_REASON_MAX, "no recipient (to, cc or bcc)");
		goto out;
	}
	/* A reply address is not a recipient. */
	if (!addresses(m, "Reply-To", json_object_get(job, "replyTo"), true, false, reason))
		goto out;
	mime_hdr_start(&h, &m->text, "Subject");
	mime_hdr_text(&h, c->subject);
	mime_hdr_end(&h);

	char date[64];
	struct tm tm;
	gmtime_r(&c->date, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_printf(&m->text, "Date: %s\r\nMessage-ID: <%s.kpool@%s>\r\nMIME-Version: 1.0\r\n", date,
		   c->id, strchr(m->from, '@') + 1);
	body(m, c);
	if (m->text.oom) {
		snprintf(reason, KPOOL_REASON_MAX, "out of memory");
		goto out;
	}
	ok = true;
out:
	free(one.p);
	return ok;
}

/* Frees what a message holds and empties it. */
void mime_msg_free(struct mime_msg *m)
{
	free(m->text.p);
	free(m->from);
	for (size_t i = 0; i < m->n_rcpt; i++)
		free(m->rcpt[i]);
	memset(m, 0, sizeof(*m));
}
