/* job_test.c - bad-input checks, the event id chain and the retry back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "kpoold.h"

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
	json_t *root;
	char reason[256];

	assert_int_equal(kp_job_check(buf, len, max, &root, reason, sizeof(reason)), -1);
	assert_null(root);
	if (strstr(reason, want) == NULL)
		fail_msg("wanted '%s' in '%s'", want, reason);
}

static void job_checks(void **state)
{
	json_t *root;
	char reason[256];

	(void)state;
	assert_int_equal(kp_job_check("{\"a\":1}", 7, 100, &root, reason, sizeof(reason)), 0);
	assert_true(json_is_object(root));
	json_decref(root);
	check_reason("", 0, 100, "empty job");
	check_reason("{\"a\":1}", 7, 6, "job is 7 bytes, over max_job_bytes (6)");
	check_reason("{\"a\":\"\xff\"}", 9, 100, "job is not UTF-8");
	check_reason("nope", 4, 100, "job is not JSON");
	check_reason("[1]", 3, 100, "job is not a JSON object");
	check_reason("\"s\"", 3, 100, "job is not a JSON object");
	check_reason("{\"a\":1} trailing", 16, 100, "job is not JSON");
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
	json_t *root = json ? json_loads(json, 0, NULL) : NULL;

	kp_job_event_id(b, h, nh, root, "topic", 3, 42, id, sizeof(id));
	json_decref(root);
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
	    cmocka_unit_test(event_ids),
	    cmocka_unit_test(backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
