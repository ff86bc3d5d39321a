/*
 * mime_fuzz.c - libFuzzer harness for the email handler's message (mime.c:
 * mime_render and mime_message, as email.c calls them): the bytes of a Kafka
 * record as an email job, made into a message, which must pass a header
 * oracle.  A job that is refused must say why, on one line.  A message:
 *
 * - has its headers and body apart (a blank line), CR and LF only as CRLF,
 *   no line over 998 characters (RFC 5322), no blank continuation line;
 * - has only the headers kpool writes (no Bcc, nothing the job names), each
 *   once, From, Subject, Date, Message-ID and MIME-Version always;
 * - unfolds back to what the job gave: the Subject (as it is, or in encoded
 *   words of at most 75 characters), each address of From, To, Cc and
 *   Reply-To with its display name (quoted, or encoded words);
 * - has the envelope the job gave (to, cc, bcc), and bodies whose
 *   quoted-printable decodes back to the text and html.
 *
 * A job with "template" is rendered from a fixed template with its "data".
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c (a
 * main() that feeds it the files of corpus/mime) by make check, so the
 * corpus is replayed by every test run.
 *
 * fuzz-sources: plugins/mime.c plugins/util.c
 */
#include "config.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

#define ID	    "0123456789abcdef0123456789abcdef"
#define MAX_HEADERS 16

/* Stops the run with what the oracle found; libFuzzer keeps the input. */
static void fail(const char *what, const char *detail)
{
	fprintf(stderr, "mime oracle: %s: %.300s\n", what, detail ? detail : "");
	abort();
}

/* A header as a reader unfolds it. */
struct header {
	char name[32];
	struct buf value;
};

/* The job's field k as addresses: a string or an array of strings (what
 * mime_message accepted). */
static size_t field_addresses(json_t *job, const char *k, const char **out, size_t max)
{
	json_t *v = json_object_get(job, k);
	size_t n = 0;

	if (json_is_string(v)) {
		out[n++] = json_string_value(v);
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v) && n < max; i++)
			out[n++] = json_string_value(json_array_get(v, i));
	}
	return n;
}

/* What the job gave as an address: "addr", or "Name <addr>": the name (from
 * *na to *ne) trimmed and one pair of quotes off, the address (alen bytes). */
static void expected(const char *in, const char **na, const char **ne, const char **addr,
		     size_t *alen)
{
	const char *lt = strchr(in, '<');

	*na = in;
	*ne = lt ? lt : in;
	while (*na < *ne && isspace((unsigned char)**na))
		(*na)++;
	while (*ne > *na && isspace((unsigned char)(*ne)[-1]))
		(*ne)--;
	if (*ne - *na >= 2 && **na == '"' && (*ne)[-1] == '"')
		(*na)++, (*ne)--;
	*addr = lt ? lt + 1 : in;
	*alen = lt ? strlen(*addr) - 1 : strlen(*addr);
}

/* Whether the envelope address e is the address of what the job gave. */
static bool same_address(const char *e, const char *in)
{
	const char *na, *ne, *addr;
	size_t alen;

	expected(in, &na, &ne, &addr, &alen);
	return strlen(e) == alen && memcmp(e, addr, alen) == 0;
}

/* "=?UTF-8?B?...?=" words separated by single spaces, decoded into out; false if s is not that. */
static bool decode_words(const char *s, size_t n, struct buf *out)
{
	const char *p = s, *end = s + n;

	while (p < end) {
		const char *z = p + 10;
		unsigned char dec[128];
		if (end - p < 12 || strncmp(p, "=?UTF-8?B?", 10) != 0)
			return false;
		while (z + 1 < end && !(z[0] == '?' && z[1] == '='))
			z++;
		if (z + 1 >= end || z + 2 - p > 75 || (z - p - 10) % 4 != 0 || z - p - 10 > 160)
			return false;
		int k = EVP_DecodeBlock(dec, (const unsigned char *)p + 10, (int)(z - p - 10));
		if (k < 0)
			return false;
		k -= (z[-1] == '=') + (z[-2] == '=');
		buf_add(out, (const char *)dec, (size_t)k);
		p = z + 2;
		if (p < end && (*p != ' ' || p + 1 == end))
			return false;
		if (p < end)
			p++;
	}
	return true;
}

/* A display name as written, in want (NUL-terminated); false if it is neither quoted nor encoded
 * words. */
static bool display_name(const char *s, size_t n, struct buf *want)
{
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		buf_add(want, s + 1, n - 2);
		return true;
	}
	return decode_words(s, n, want);
}

/* Checks an address header against what the job gave (ins, n of them). */
static void check_addresses(const char *hname, const struct buf *v, const char **ins, size_t n)
{
	const char *p = v ? v->p : "", *end = v ? v->p + v->len : "";
	size_t i = 0;

	if (v == NULL && n > 0)
		fail("addresses missing", hname);
	while (v && p < end) {
		const char *item = p, *q = p;
		bool quoted = false;
		while (q < end && (quoted || *q != ',')) {
			if (*q == '"')
				quoted = !quoted;
			q++;
		}
		if (i == n)
			fail("an address more than the job gave", hname);
		const char *in = ins[i], *na, *ne, *addr;
		size_t alen;
		expected(in, &na, &ne, &addr, &alen);
		/* What the header says. */
		size_t len = (size_t)(q - item);
		struct buf name = {0};
		if (ne > na) {
			const char *sp = item + len;
			while (sp > item && sp[-1] != '<')
				sp--;
			if (sp - item < 3 || sp[-2] != ' ' || item[len - 1] != '>')
				fail("a named address not as 'NAME <addr>'", item);
			if (!display_name(item, (size_t)(sp - 2 - item), &name))
				fail("a display name neither quoted nor encoded words", item);
			if (name.len != (size_t)(ne - na) || memcmp(name.p, na, name.len) != 0)
				fail("a display name does not read back", in);
			if ((size_t)(item + len - 1 - sp) != alen || memcmp(sp, addr, alen) != 0)
				fail("an address does not read back", in);
		} else if (len != alen || memcmp(item, addr, alen) != 0) {
			fail("an address does not read back", in);
		}
		free(name.p);
		i++;
		p = q;
		if (p < end && (p + 2 > end || p[1] != ' '))
			fail("addresses not separated by ', '", hname);
		if (p < end)
			p += 2;
	}
	if (i != n)
		fail("an address the job gave is missing", hname);
}

/* Quoted-printable decoded, lines checked; false if it is not quoted-printable as mime.c writes
 * it. */
static bool decode_qp(const char *s, size_t n, struct buf *out)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r') {
			if (i + 1 >= n || s[i + 1] != '\n')
				return false;
			buf_str(out, "\n");
			i++;
			col = 0;
			continue;
		}
		if (++col > 76)
			return false;
		if (s[i] != '=') {
			buf_add(out, s + i, 1);
			continue;
		}
		if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
			i += 2;
			col = 0;
			continue;
		}
		unsigned int c;
		if (i + 2 >= n || sscanf(s + i + 1, "%2X", &c) != 1)
			return false;
		char ch = (char)c;
		buf_add(out, &ch, 1);
		i += 2;
		col += 2;
	}
	return true;
}

/* Checks a body part: its quoted-printable decodes back to what was given
 * (CRLF read as LF, a last line ended).  The part's headers are looked for
 * after the boundary, which no quoted-printable text can hold (a '=' is
 * always =3D there), or among the message's headers. */
static void check_part(const char *msg, bool multipart, const char *type, const char *given)
{
	char head[200];
	const char *p, *end;
	struct buf got = {0}, want = {0};

	snprintf(head, sizeof(head),
		 "%sContent-Type: text/%s; charset=UTF-8\r\n"
		 "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
		 multipart ? "\r\n--=_kpool_" ID "\r\n" : "", type);
	if ((p = strstr(msg, head)) == NULL)
		fail("a body part is missing", type);
	p += strlen(head);
	end = strstr(p, "\r\n--=_kpool_" ID);
	end = end ? end : p + strlen(p); /* the CRLF before a boundary is the boundary's */
	if (!decode_qp(p, (size_t)(end - p), &got))
		fail("a body part is not quoted-printable of lines of 76", type);
	for (const char *g = given; *g; g++)
		if (!(g[0] == '\r' && g[1] == '\n'))
			buf_add(&want, g, 1);
	if (want.len > 0 && want.p[want.len - 1] != '\n')
		buf_str(&want, "\n");
	if (got.len != want.len || (got.len && memcmp(got.p, want.p, got.len) != 0))
		fail("a body part does not read back", type);
	free(got.p);
	free(want.p);
}

/* The headers of msg, unfolded; checks their lines on the way. */
static size_t unfold(const char *msg, const char *end, struct header *h)
{
	size_t n = 0;

	for (const char *p = msg; p < end;) {
		const char *eol = strstr(p, "\r\n");
		if (*p == ' ' || *p == '\t') {
			const char *q = p;
			while (q < eol && (*q == ' ' || *q == '\t'))
				q++;
			if (n == 0 || q == eol)
				fail("a continuation line first, or blank", p);
			buf_add(&h[n - 1].value, p, (size_t)(eol - p));
		} else {
			const char *colon = memchr(p, ':', (size_t)(eol - p));
			if (colon == NULL || colon[1] != ' ' || colon - p >= (long)sizeof(h->name))
				fail("a header line that is not 'Name: value'", p);
			if (n == MAX_HEADERS)
				fail("too many headers", p);
			memset(&h[n], 0, sizeof(h[n]));
			memcpy(h[n].name, p, (size_t)(colon - p));
			buf_add(&h[n].value, colon + 2, (size_t)(eol - colon - 2));
			n++;
		}
		p = eol + 2;
	}
	return n;
}

/* The oracle, on a message mime_message made of job with c. */
static void check(const struct mime_msg *m, json_t *job, const struct mime_content *c)
{
	static const char *const known[] = {
	    "From", "To",	  "Cc",		  "Reply-To",	  "Subject",
	    "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"};
	const char *msg = m->text.p, *sep = strstr(msg, "\r\n\r\n");
	struct header h[MAX_HEADERS];
	const struct buf *by[sizeof(known) / sizeof(known[0])] = {0};
	const char *ins[MIME_MAX_RCPT];
	size_t n, k, n_headers;

	if (strlen(msg) != m->text.len || sep == NULL)
		fail("no blank line after the headers, or a NUL", msg);
	for (const char *p = msg, *line = msg; *p; p++) {
		if ((*p == '\r' && p[1] != '\n') || (*p == '\n' && (p == msg || p[-1] != '\r')))
			fail("a bare CR or LF", p);
		if (*p == '\n') {
			if (p - line - 1 > MIME_LINE_MAX)
				fail("a line over 998 characters", line);
			line = p + 1;
		}
	}
	n_headers = unfold(msg, sep + 2, h);
	for (size_t i = 0; i < n_headers; i++) {
		for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (strcmp(h[i].name, known[k]) == 0)
				break;
		if (k == sizeof(known) / sizeof(known[0]) || by[k] != NULL)
			fail("a header not kpool's, or twice", h[i].name);
		if (h[i].value.p == NULL)
			buf_str(&h[i].value, "");
		by[k] = &h[i].value;
	}
	for (k = 0; k < 8; k++)
		if (k != 1 && k != 2 && k != 3 && by[k] == NULL)
			fail("a header is missing", known[k]);

	/* The Subject, as given. */
	struct buf subject = {0};
	if (strncmp(by[4]->p, "=?UTF-8?B?", 10) == 0) {
		if (!decode_words(by[4]->p, by[4]->len, &subject))
			fail("a Subject of bad encoded words", by[4]->p);
	} else {
		buf_add(&subject, by[4]->p, by[4]->len);
	}
	if (subject.len != strlen(c->subject) ||
	    (subject.len && memcmp(subject.p, c->subject, subject.len) != 0))
		fail("the Subject does not read back", c->subject);
	free(subject.p);

	/* The addresses, in their headers and in the envelope. */
	const char *from = json_string_value(json_object_get(job, "from"));
	from = from ? from : c->default_from;
	check_addresses("From", by[0], &from, 1);
	size_t n_to = field_addresses(job, "to", ins, MIME_MAX_RCPT);
	check_addresses("To", by[1], ins, n_to);
	size_t n_rcpt = n_to;
	if (!same_address(m->from, from))
		fail("the envelope's sender is not from", from);
	for (size_t i = 0; i < n_to; i++)
		if (!same_address(m->rcpt[i], ins[i]))
			fail("the envelope is not to", ins[i]);
	n = field_addresses(job, "cc", ins, MIME_MAX_RCPT);
	check_addresses("Cc", by[2], ins, n);
	for (size_t i = 0; i < n; i++, n_rcpt++)
		if (!same_address(m->rcpt[n_rcpt], ins[i]))
			fail("the envelope is not cc", ins[i]);
	n = field_addresses(job, "bcc", ins, MIME_MAX_RCPT);
	for (size_t i = 0; i < n; i++, n_rcpt++)
		if (n_rcpt >= m->n_rcpt || !same_address(m->rcpt[n_rcpt], ins[i]))
			fail("the envelope is not bcc", ins[i]);
	if (n_rcpt != m->n_rcpt)
		fail("the envelope is not to, cc and bcc", msg);
	n = field_addresses(job, "replyTo", ins, MIME_MAX_RCPT);
	check_addresses("Reply-To", by[3], ins, n);

	bool multipart = c->text && c->html;
	if (c->text)
		check_part(msg, multipart, "plain", c->text);
	if (c->html)
		check_part(msg, multipart, "html", c->html);
	static const char closing[] = "\r\n--=_kpool_" ID "--\r\n";
	if (multipart && (m->text.len < sizeof(closing) - 1 ||
			  strcmp(msg + m->text.len - (sizeof(closing) - 1), closing) != 0))
		fail("no closing boundary", msg);
	for (size_t i = 0; i < n_headers; i++)
		free(h[i].value.p);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, 0, NULL), *j, *d;
	char reason[KPOOL_REASON_MAX] = "", *text = NULL, *html = NULL, *subject = NULL;
	struct mime_content c = {.default_from = "App <app@example.com>", .id = ID, .date = 0};
	struct mime_msg m = {0};

	if (!json_is_object(root))
		goto out;
	j = util_job_body(root);
	d = json_object_get(j, "data");
	c.subject = json_string_value(json_object_get(j, "subject"));
	if (json_object_get(j, "template")) {
		text = mime_render("t", "txt", "Hi {{name}},\n{{a.b}}", d, false, reason);
		html = mime_render("t", "html", "<p>{{ name }}</p>", d, true, reason);
		if (c.subject == NULL)
			c.subject = subject =
			    mime_render("t", "txt", "Hello {{name}}!", d, false, reason);
		if (text == NULL || html == NULL || c.subject == NULL)
			goto out;
	} else {
		const char *t = json_string_value(json_object_get(j, "text"));
		const char *h = json_string_value(json_object_get(j, "html"));
		text = t ? strdup(t) : NULL;
		html = h ? strdup(h) : NULL;
		if (text == NULL && html == NULL)
			goto out;
	}
	c.text = text;
	c.html = html;
	if (!mime_message(&m, j, &c, reason)) {
		if (reason[0] == '\0' || strpbrk(reason, "\r\n"))
			fail("a refusal without a one-line reason", reason);
		goto out;
	}
	check(&m, j, &c);
out:
	mime_msg_free(&m);
	free(text);
	free(html);
	free(subject);
	json_decref(root);
	return 0;
}
