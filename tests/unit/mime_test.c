/*
 * mime_test.c - the email handler's text work: templates, RFC 2047 words,
 * quoted-printable, address checks.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "mime.h"

static char *words(const char *s)
{
	struct buf b = {0};
	mime_encode_words(&b, s);
	return b.p;
}

static char *qp(const char *s)
{
	struct buf b = {0};
	mime_encode_qp(&b, s);
	return b.p;
}

/* Decodes "=?UTF-8?B?...?=" words separated by CRLF SP, as a reader would,
 * each word on its own: none may begin inside a UTF-8 sequence. */
static char *unwords(const char *s)
{
	struct buf out = {0};
	const char *p = s;

	while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
		const char *a = p + 10, *z = strstr(a, "?=");
		unsigned char dec[128];
		int n = EVP_DecodeBlock(dec, (const unsigned char *)a, (int)(z - a));
		n -= (z[-1] == '=') + (z[-2] == '='); /* DecodeBlock counts the padding */
		assert_true(n > 0 && (dec[0] & 0xc0) != 0x80);
		buf_add(&out, (const char *)dec, (size_t)n);
		p = strstr(p, "?=") + 2;
	}
	return out.p;
}

/* The value of msg's header name, unfolded (the CRLFs before a space taken
 * out, nothing else); NULL if msg has none. */
static char *header(const char *msg, const char *name)
{
	const char *end = strstr(msg, "\r\n\r\n"), *p = msg;
	size_t n = strlen(name);
	struct buf out = {0};

	assert_non_null(end);
	while (p < end) {
		const char *eol = strstr(p, "\r\n");
		if (strncmp(p, name, n) == 0 && p[n] == ':' && p[n + 1] == ' ') {
			buf_add(&out, p + n + 2, (size_t)(eol - p - n - 2));
			for (p = eol + 2; p < end && *p == ' '; p = eol + 2) {
				eol = strstr(p, "\r\n");
				buf_add(&out, p, (size_t)(eol - p));
			}
			return out.p ? out.p : strdup("");
		}
		p = eol + 2;
	}
	return NULL;
}

/* The length of the longest line of msg's headers, without its CRLF. */
static size_t longest_header_line(const char *msg)
{
	const char *end = strstr(msg, "\r\n\r\n"), *p = msg;
	size_t longest = 0;

	assert_non_null(end);
	while (p <= end) {
		const char *eol = strstr(p, "\r\n");
		if ((size_t)(eol - p) > longest)
			longest = (size_t)(eol - p);
		p = eol + 2;
	}
	return longest;
}

/* The message of a job given as JSON, with subject and text; NULL and reason if there is none. */
static char *message(const char *job, const char *subject, struct mime_msg *m, char *reason)
{
	json_t *j = json_loads(job, 0, NULL);
	struct mime_content c = {.subject = subject,
				 .text = "Hello",
				 .default_from = "App <app@example.com>",
				 .id = "0123456789abcdef0123456789abcdef",
				 .date = 1700000000};

	assert_non_null(j);
	memset(m, 0, sizeof(*m));
	bool ok = mime_message(m, j, &c, reason);
	json_decref(j);
	return ok ? m->text.p : NULL;
}

static void test_words_ascii_as_is(void **state)
{
	(void)state;
	char *w = words("Welcome, John!");
	assert_string_equal(w, "Welcome, John!");
	free(w);
}

static void test_words_round_trip_and_limits(void **state)
{
	(void)state;
	/* 60 two-byte characters: more than one encoded word, folded in a header. */
	char in[256] = "";
	for (int i = 0; i < 60; i++)
		strcat(in, "é");
	struct buf b = {0};
	struct mime_hdr h;
	mime_hdr_start(&h, &b, "Subject");
	mime_hdr_text(&h, in);
	mime_hdr_end(&h);
	char *w = b.p;
	assert_non_null(strstr(w, "\r\n =?UTF-8?B?")); /* folded */
	for (char *line = w, *end; *line; line = end + 2) {
		end = strstr(line, "\r\n");
		assert_non_null(end);
		assert_true(end - line <= MIME_LINE_SOFT);
		for (char *word = strstr(line, "=?"); word && word < end;
		     word = strstr(word + 2, "=?"))
			assert_true(strstr(word, "?=") + 2 - word <= 75); /* RFC 2047 */
	}
	char *back = unwords(w);
	assert_string_equal(back, in); /* no word splits a UTF-8 sequence */
	free(back);
	free(w);
}

static void test_qp(void **state)
{
	(void)state;
	char *q = qp("Grüße = 100%\ntrailing space \nplain");
	assert_string_equal(q, "Gr=C3=BC=C3=9Fe =3D 100%\r\ntrailing space=20\r\nplain\r\n");
	free(q);

	char longline[300];
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	q = qp(longline);
	size_t total = 0;
	for (char *line = q, *end; *line; line = end + 2) {
		end = strstr(line, "\r\n");
		assert_non_null(end);
		assert_true(end - line <= 76);
		total += (size_t)(end - line) - (end[-1] == '=' ? 1 : 0);
	}
	assert_int_equal(total, sizeof(longline) - 1); /* soft breaks lose nothing */
	free(q);
}

static void test_address(void **state)
{
	char reason[KPOOL_REASON_MAX], *addr;
	struct buf b = {0};
	(void)state;

	assert_true(mime_address("to", "user@example.com", &b, &addr, reason));
	assert_string_equal(addr, "user@example.com");
	assert_string_equal(b.p, "user@example.com");
	free(addr);
	b.len = 0;
	assert_true(mime_address("to", "\"Ana Lima\" <ana@example.com>", &b, &addr, reason));
	assert_string_equal(b.p, "\"Ana Lima\" <ana@example.com>");
	free(addr);
	b.len = 0;
	assert_true(mime_address("to", "Zoë <z@example.com>", &b, &addr, reason));
	assert_string_equal(b.p, "=?UTF-8?B?Wm/Dqw==?= <z@example.com>");
	free(addr);

	static const char *const bad[] = {
	    "not an address",
	    "@example.com",
	    "user@",
	    "user@@example.com",
	    "us er@example.com",
	    "user@exa mple.com",
	    ".user@example.com",
	    "user.@example.com",
	    "user@example..com",
	    "Name <user@example.com",
	    "Name <user@example.com> x",
	    "a\"b <user@example.com>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		addr = NULL;
		assert_false(mime_address("to", bad[i], &b, &addr, reason));
		assert_non_null(strstr(reason, "to: "));
		assert_null(addr);
	}
	assert_false(
	    mime_address("to", "x@example.com\r\nBcc: evil@example.com", &b, &addr, reason));
	assert_string_equal(reason, "to: CR or LF in an address (header injection)");
	assert_false(mime_address("to", "Evil\n <x@example.com>", &b, &addr, reason));
	free(b.p);
}

static void test_render(void **state)
{
	char reason[KPOOL_REASON_MAX];
	json_t *data = json_pack("{s:s, s:{s:s, s:i}, s:b}", "name", "Zoë <b>", "user", "plan",
				 "Pro", "seats", 3, "vip", 1);
	(void)state;

	char *out = mime_render("t", "txt", "Hi {{name}}, {{ user.plan }} x{{user.seats}} {{vip}}",
				data, false, reason);
	assert_string_equal(out, "Hi Zoë <b>, Pro x3 true");
	free(out);
	out = mime_render("t", "html", "<p>{{name}}</p>", data, true, reason);
	assert_string_equal(out, "<p>Zoë &lt;b&gt;</p>");
	free(out);
	assert_null(mime_render("welcome", "txt", "Hi {{user.missing}}", data, false, reason));
	assert_string_equal(reason, "template welcome.txt: no value for {{user.missing}}");
	assert_null(
	    mime_render("welcome", "txt", "Hi {{user}}", data, false, reason)); /* an object */
	assert_null(mime_render("welcome", "html", "Hi {{name", data, true, reason));
	assert_string_equal(reason, "template welcome.html: '{{' without '}}'");
	json_decref(data);
}

/* Ten recipients with long names: all in To and in the envelope, folded
 * between addresses, and the Subject on a line of its own. */
static void test_long_recipient_list(void **state)
{
	char reason[KPOOL_REASON_MAX], job[4096], want[128];
	struct mime_msg m;
	(void)state;

	strcpy(job, "{\"to\":[");
	for (int i = 1; i <= 10; i++)
		snprintf(job + strlen(job), sizeof(job) - strlen(job),
			 "%s\"Recipient Number %d With A Long Display Name <r%d@example.com>\"",
			 i > 1 ? "," : "", i, i);
	strcat(job,
	       "],\"cc\":\"c@example.com\",\"replyTo\":[\"a@example.com\",\"b@example.com\"]}");
	char *msg = message(job, "Your order", &m, reason);
	assert_non_null(msg);
	char *to = header(msg, "To");
	assert_non_null(to);
	for (int i = 1; i <= 10; i++) {
		snprintf(want, sizeof(want),
			 "\"Recipient Number %d With A Long Display Name\" <r%d@example.com>%s", i,
			 i, i < 10 ? ", " : "");
		assert_non_null(strstr(to, want));
		snprintf(want, sizeof(want), "r%d@example.com", i);
		assert_string_equal(m.rcpt[i - 1], want);
	}
	assert_int_equal(m.n_rcpt, 11); /* and cc; a reply address is no recipient */
	assert_string_equal(m.rcpt[10], "c@example.com");
	/* Each address whole on its line: folded between them, not inside a name. */
	assert_non_null(strstr(msg, "<r1@example.com>,\r\n \"Recipient Number 2 With"));
	assert_non_null(strstr(msg, "\r\nSubject: Your order\r\n"));
	assert_non_null(strstr(msg, "\r\nReply-To: a@example.com, b@example.com\r\n"));
	assert_true(longest_header_line(msg) <= MIME_LINE_SOFT);
	free(to);
	mime_msg_free(&m);
}

/* A display name longer than a line is folded at its spaces (inside the
 * quotes, where RFC 5322 allows it) and unfolds back to itself. */
static void test_long_display_name(void **state)
{
	char reason[KPOOL_REASON_MAX], job[2048], name[512] = "";
	struct mime_msg m;
	(void)state;

	for (int i = 0; i < 40; i++)
		strcat(name, i ? " Longname" : "Longname");
	snprintf(job, sizeof(job),
		 "{\"to\":\"%s <x@example.com>\",\"from\":\"%s <f@example.com>\"}", name, name);
	char *msg = message(job, "Hi", &m, reason);
	assert_non_null(msg);
	assert_true(longest_header_line(msg) <= MIME_LINE_SOFT);
	char want[600], *to = header(msg, "To"), *from = header(msg, "From");
	snprintf(want, sizeof(want), "\"%s\" <x@example.com>", name);
	assert_string_equal(to, want);
	snprintf(want, sizeof(want), "\"%s\" <f@example.com>", name);
	assert_string_equal(from, want);
	free(to);
	free(from);
	mime_msg_free(&m);
}

/* A 2,000-character subject: folded at its spaces when it has them, encoded
 * words when it is one long word; never a line over MIME_LINE_SOFT, and
 * read back as it was given. */
static void test_long_subject(void **state)
{
	char reason[KPOOL_REASON_MAX], subject[2001];
	struct mime_msg m;
	(void)state;

	for (int i = 0; i < 2000; i++)
		subject[i] = i % 10 == 9 ? ' ' : (char)('a' + i % 26);
	subject[1999] = 'z';
	subject[2000] = '\0';
	char *msg = message("{\"to\":\"x@example.com\"}", subject, &m, reason);
	assert_non_null(msg);
	assert_true(longest_header_line(msg) <= MIME_LINE_SOFT);
	char *got = header(msg, "Subject");
	assert_string_equal(got, subject); /* plain text, only folded */
	free(got);
	assert_non_null(strstr(msg, "\r\nDate: ")); /* the next header on a line of its own */
	mime_msg_free(&m);

	memset(subject, 'x', 2000);
	msg = message("{\"to\":\"x@example.com\"}", subject, &m, reason);
	assert_non_null(msg);
	assert_true(longest_header_line(msg) <= MIME_LINE_SOFT);
	got = unwords(strstr(msg, "\r\nSubject: "));
	assert_non_null(strstr(msg, "\r\nSubject: =?UTF-8?B?"));
	assert_string_equal(got, subject);
	free(got);
	mime_msg_free(&m);
}

/* Text that a reader would take for encoded words is encoded itself; spaces
 * are kept as they are. */
static void test_subject_as_given(void **state)
{
	char reason[KPOOL_REASON_MAX];
	struct mime_msg m;
	(void)state;

	char *msg = message("{\"to\":\"x@example.com\"}", "=?UTF-8?B?SGk=?=", &m, reason);
	assert_non_null(msg);
	char *got = unwords(strstr(msg, "\r\nSubject: "));
	assert_string_equal(got, "=?UTF-8?B?SGk=?=");
	free(got);
	mime_msg_free(&m);
	msg = message("{\"to\":\"x@example.com\"}", "  two  spaces ", &m, reason);
	got = header(msg, "Subject");
	assert_string_equal(got, "  two  spaces ");
	free(got);
	mime_msg_free(&m);
}

/* What cannot be a message says why. */
static void test_message_refused(void **state)
{
	char reason[KPOOL_REASON_MAX];
	struct mime_msg m;
	(void)state;

	assert_null(
	    message("{\"to\":\"x@example.com\"}", "a\r\nBcc: evil@example.com", &m, reason));
	assert_string_equal(reason, "subject: CR or LF in a header value (header injection)");
	mime_msg_free(&m);
	assert_null(message("{\"subject\":\"x\"}", "Hi", &m, reason));
	assert_string_equal(reason, "no recipient (to, cc or bcc)");
	mime_msg_free(&m);
	assert_null(message("{\"to\":\"x@example.com\",\"cc\":7}", "Hi", &m, reason));
	assert_string_equal(reason, "Cc: not a string or an array");
	mime_msg_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_words_ascii_as_is),
	    cmocka_unit_test(test_words_round_trip_and_limits),
	    cmocka_unit_test(test_qp),
	    cmocka_unit_test(test_address),
	    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_long_recipient_list),
	    cmocka_unit_test(test_long_display_name),
	    cmocka_unit_test(test_long_subject),
	    cmocka_unit_test(test_subject_as_given),
	    cmocka_unit_test(test_message_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
