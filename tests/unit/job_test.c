/* job_test.c - bad-input checks, the event id chain and the retry back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static void utf8(void **state)
{
	(void)state;
	assert_true(kp_utf8_valid("plain", 5));
	assert_true(kp_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
	assert_false(kp_utf8_valid("\xff", 1));
	assert_false(kp_utf8_valid("\xc3", 1));		    /* truncated */
	assert_false(kp_utf8_valid("\xc0\xaf", 2));	    /* overlong */
	assert_false(kp_utf8_valid("\xed\xa0\x80", 3));	    /* surrogate */
	assert_false(kp_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
}

static void check_reason(const char *buf, size_t len, int64_t max, const char *want)
{
	struct kp_found found[1];
	char reason[256];

	assert_int_equal(kp_job_check(buf, len, max, NULL, 0, found, reason, sizeof(reason)), -1);
	if (strstr(reason, want) == NULL)
		fail_msg("wanted '%s' in '%s'", want, reason);
}

static void job_checks(void **state)
{
	struct kp_found found[1];
	char reason[256];

	(void)state;
	assert_int_equal(kp_job_check("{\"a\":1}", 7, 100, NULL, 0, found, reason, sizeof(reason)),
			 0);
	check_reason("", 0, 100, "empty job");
	check_reason("{\"a\":1}", 7, 6, "job is 7 bytes, over max_job_bytes (6)");
	check_reason("{\"a\":\"\xff\"}", 9, 100, "job is not UTF-8");
	check_reason("nope", 4, 100, "job is not JSON");
	check_reason("[1]", 3, 100, "job is not a JSON object");
	check_reason("\"s\"", 3, 100, "job is not a JSON object");
	check_reason("{\"a\":1} trailing", 16, 100, "job is not JSON");
}

/* The validating scan accepts what jansson accepts, and nothing else. */
static void scan_agrees_with_jansson(void **state)
{
	static const char *const cases[] = {
	    "{}",
	    " {\"a\" : [1, 2.5e3, -0, true, false, null, {\"b\":\"c\"}]} ",
	    "{\"a\":\"\\u0000\"}",
	    "{\"a\\u0000\":1}",
	    "{\"a\":\"\\ud800\"}",
	    "{\"a\":\"\\ud83d\\ude00\"}",
	    "{\"a\":\"\\udc00\"}",
	    "{\"a\":1e400}",
	    "{\"a\":1e-400}",
	    "{\"a\":99999999999999999999}",
	    "{\"a\":-9223372036854775808}",
	    "{\"a\":9223372036854775808}",
	    "{\"a\":1.}",
	    "{\"a\":01}",
	    "{\"a\":-}",
	    "{\"a\":.5}",
	    "{\"a\":1,}",
	    "{,}",
	    "{\"a\"}",
	    "{\"a\":tru}",
	    "{\"a\":truex}",
	    "{\"a\":\"\\x\"}",
	    "{\"a\":\"\t\"}",
	    "{\"a\":[1,]}",
	    "{\"a\":[}",
	    "{\"a\":\"\\u12\"}",
	    "{} {}",
	    "{\"a\":1}\n",
	    "{\"a\":\"x\"",
	    "{\"a\":nul}",
	    "{\"a\":1E+2}",
	    "{\"a\":1e}",
	    "{\"a\":[[[[]]]]}",
	    "\t{\"a\":{}}\r\n",
	};
	struct kp_found found[1];
	char reason[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t e;
		json_t *r = json_loads(cases[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
		int want = r && json_is_object(r) ? 0 : -1;
		int got = kp_job_check(cases[i], strlen(cases[i]), 1000, NULL, 0, found, reason,
				       sizeof(reason));
		if (got != want)
			fail_msg("'%s': scan says %d, jansson %d", cases[i], got, want);
		json_decref(r);
	}
	/* A NUL byte outside a string: not JSON, whatever jansson makes of it. */
	assert_int_equal(
	    kp_job_check("{\"a\":1\0}", 8, 100, NULL, 0, found, reason, sizeof(reason)), -1);
	assert_non_null(strstr(reason, "NUL byte at offset 6"));
	/* Depth counts every value: a number inside 2047 containers is fine,
	 * inside 2048 it is not (as in jansson). */
	for (int depth = 2047; depth <= 2048; depth++) {
		char *buf = malloc(2 * (size_t)depth + 16);
		size_t n = 0;
		buf[n++] = '{';
		memcpy(buf + n, "\"a\":", 4);
		n += 4;
		for (int i = 1; i < depth; i++)
			buf[n++] = '[';
		buf[n++] = '0';
		for (int i = 1; i < depth; i++)
			buf[n++] = ']';
		buf[n++] = '}';
		json_error_t e;
		json_t *r = json_loadb(buf, n, JSON_DECODE_ANY, &e);
		assert_int_equal(
		    kp_job_check(buf, n, 1 << 20, NULL, 0, found, reason, sizeof(reason)),
		    r ? 0 : -1);
		assert_int_equal(r != NULL, depth == 2047);
		json_decref(r);
		free(buf);
	}
	/* Depth: 2048 containers are fine, 2049 are not. */
	for (int depth = 2047; depth <= 2049; depth++) {
		char *buf = malloc(2 * (size_t)depth + 16);
		size_t n = 0;
		memcpy(buf, "{\"a\":", 5);
		n = 5;
		for (int i = 1; i < depth; i++)
			buf[n++] = '[';
		for (int i = 1; i < depth; i++)
			buf[n++] = ']';
		buf[n++] = '}';
		assert_int_equal(
		    kp_job_check(buf, n, 1 << 20, NULL, 0, found, reason, sizeof(reason)),
		    depth <= 2048 ? 0 : -1);
		free(buf);
	}
}

static struct kp_binding binding(const char *keys)
{
	struct kp_binding b = {0};
	char err[128];

	assert_int_equal(kp_idkeys_parse(keys, b.idkeys, &b.n_idkeys, err, sizeof(err)), 0);
	return b;
}

static const char *id_of(const struct kp_binding *b, const struct kpool_header *h, size_t nh,
			 const char *json)
{
	static char id[KP_EVENT_ID_MAX];
	struct kp_found found[KP_IDKEYS_MAX];
	char reason[256];
	bool ok = json && kp_job_check(json, strlen(json), 1 << 20, b->idkeys, b->n_idkeys, found,
				       reason, sizeof(reason)) == 0;

	kp_job_event_id(b, h, nh, ok ? found : NULL, "topic", 3, 42, id, sizeof(id));
	return id;
}

static void event_ids(void **state)
{
	struct kp_binding b =
	    binding("header:event-id, json:metadata.eventId, json:eventId, json:id");
	struct kpool_header h[] = {{"trace", "t", 1}, {"event-id", "from-header", 11}};
	char long_id[400];

	(void)state;
	assert_string_equal(id_of(&b, h, 2, "{\"eventId\":\"x\"}"), "from-header");
	assert_string_equal(id_of(&b, h, 1, "{\"eventId\":\"x\",\"metadata\":{\"eventId\":\"m\"}}"),
			    "m");
	assert_string_equal(id_of(&b, NULL, 0, "{\"eventId\":\"e\",\"id\":\"i\"}"), "e");
	assert_string_equal(id_of(&b, NULL, 0, "{\"id\":12345}"), "12345");
	assert_string_equal(id_of(&b, NULL, 0, "{\"metadata\":\"flat\",\"id\":\"i\"}"), "i");
	assert_string_equal(id_of(&b, NULL, 0, "{\"other\":1}"), "topic/3/42");
	assert_string_equal(id_of(&b, h, 2, NULL), "from-header"); /* bad input: headers only */
	assert_string_equal(id_of(&b, NULL, 0, NULL), "topic/3/42");
	assert_string_equal(id_of(&b, NULL, 0, "{\"eventId\":\"\"}"), "topic/3/42");
	/* As jansson reads them: escapes decoded, the last of a repeated member wins
	 * (whole, with what it holds), integers as printed. */
	assert_string_equal(id_of(&b, NULL, 0, "{\"eventId\":\"caf\\u00e9\\ud83d\\ude00\\n\"}"),
			    "topic/3/42"); /* a control character: not an id */
	assert_string_equal(id_of(&b, NULL, 0, "{\"eventId\":\"caf\\u00e9\\/x\"}"),
			    "caf\xc3\xa9/x");
	assert_string_equal(id_of(&b, NULL, 0, "{\"e\\u0076entId\":\"esc-key\"}"), "esc-key");
	assert_string_equal(id_of(&b, NULL, 0, "{\"id\":\"\xc3\xa9\\/\"}"),
			    "\xc3\xa9/"); /* raw UTF-8 */
	assert_string_equal(id_of(&b, NULL, 0, "{\"eventId\":\"a\",\"eventId\":\"b\"}"), "b");
	assert_string_equal(
	    id_of(&b, NULL, 0, "{\"metadata\":{\"eventId\":\"m\"},\"metadata\":{},\"id\":5}"), "5");
	assert_string_equal(id_of(&b, NULL, 0, "{\"id\":-0}"), "0");
	assert_string_equal(id_of(&b, NULL, 0, "{\"id\":1.5,\"x\":{\"id\":\"deep\"}}"),
			    "topic/3/42");
	assert_string_equal(id_of(&b, NULL, 0, "{\"list\":[{\"eventId\":\"no\"}],\"id\":\"i\"}"),
			    "i");
	memset(long_id, 'x', sizeof(long_id));
	struct kpool_header lh = {"event-id", long_id, sizeof(long_id)};
	assert_string_equal(id_of(&b, &lh, 1, "{\"id\":7}"), "7"); /* too long: next source */
	kp_idkeys_free(b.idkeys, b.n_idkeys);
}

static void backoff(void **state)
{
	(void)state;
	/* Equal jitter: between half and all of base * 2^(attempt-1), capped. */
	assert_int_equal(kp_backoff_ms(1000, 300000, 1, 0), 500);
	assert_int_equal(kp_backoff_ms(1000, 300000, 1, 500), 1000);
	assert_int_equal(kp_backoff_ms(1000, 300000, 3, 0), 2000);
	assert_int_equal(kp_backoff_ms(1000, 300000, 3, 2000), 4000);
	assert_int_equal(kp_backoff_ms(1000, 5000, 10, 0), 2500);
	assert_int_equal(kp_backoff_ms(1000, 5000, 10, 2500), 5000);
	for (uint32_t r = 0; r < 5000; r += 7) {
		int64_t d = kp_backoff_ms(1000, 300000, 2, r);
		assert_in_range(d, 1000, 2000);
	}
	assert_int_equal(kp_backoff_ms(0, 0, 5, 123), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(utf8),
	    cmocka_unit_test(job_checks),
	    cmocka_unit_test(scan_agrees_with_jansson),
	    cmocka_unit_test(event_ids),
	    cmocka_unit_test(backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
