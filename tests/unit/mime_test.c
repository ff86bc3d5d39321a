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
	/* 60 two-byte characters: more than one encoded word. */
	char in[256] = "";
	for (int i = 0; i < 60; i++)
		strcat(in, "é");
	char *w = words(in);
	assert_non_null(strstr(w, "\r\n =?UTF-8?B?")); /* folded */
	for (char *line = w, *end; line; line = end ? end + 2 : NULL) {
		end = strstr(line, "\r\n");
		size_t n = end ? (size_t)(end - line) : strlen(line);
		if (*line == ' ')
			line++, n--;
		assert_true(n <= 75); /* RFC 2047: an encoded word is at most 75 chars */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_words_ascii_as_is),
	    cmocka_unit_test(test_words_round_trip_and_limits),
	    cmocka_unit_test(test_qp),
	    cmocka_unit_test(test_address),
	    cmocka_unit_test(test_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
