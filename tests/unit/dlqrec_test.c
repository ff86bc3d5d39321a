/*
 * dlqrec_test.c - the dead-letter record's headers: what kpoold writes
 * (kp_dlh_write) reads back the same, both through the core's reader and
 * through the one `kpool dlq` shows records with (kp_dlrec_read).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "kpool_cmd.h"

/* A record's worth of header values, as deadletter.c fills them. */
static void values(const char *v[KP_DLH_MAX], bool omitted)
{
	static const char *const full[KP_DLH_MAX] = {
	    [KP_DLH_TOPIC] = "email-queue",
	    [KP_DLH_PARTITION] = "3",
	    [KP_DLH_OFFSET] = "9223372036854775806",
	    [KP_DLH_TIMESTAMP] = "1764547200000",
	    [KP_DLH_EVENT_ID] = "ev-\xc3\xa9t\xc3\xa9",
	    [KP_DLH_WORKER] = "email",
	    [KP_DLH_HANDLER] = "email",
	    [KP_DLH_CLASS] = "retries-exhausted",
	    [KP_DLH_ERROR] = "smtp: 451 try later",
	    [KP_DLH_ATTEMPTS] = "5",
	    [KP_DLH_FAILED_AT] = "2025-12-01T00:00:00.250Z",
	    [KP_DLH_HOST] = "mail-1",
	    [KP_DLH_PID] = "4242",
	    [KP_DLH_OMITTED] = "value",
	    [KP_DLH_VALUE_BYTES] = "2000000",
	};

	for (int i = 0; i < KP_DLH_MAX; i++)
		v[i] = full[i];
	if (!omitted)
		v[KP_DLH_OMITTED] = v[KP_DLH_VALUE_BYTES] = NULL;
}

/* kpool's headers of h, each one's last value as a C string (NULL where absent), to free. */
static void read_all(const rd_kafka_headers_t *h, char *values[KP_DLH_MAX])
{
	for (int i = 0; i < KP_DLH_MAX; i++) {
		const void *v;
		size_t len;

		values[i] = rd_kafka_header_get_last(h, kp_dlh_names[i], &v, &len) == 0 && v
				? strndup(v, len)
				: NULL;
	}
}

/* Every name is set, each is kpool's, and no two are the same. */
static void names(void **state)
{
	(void)state;
	for (int i = 0; i < KP_DLH_MAX; i++) {
		assert_non_null(kp_dlh_names[i]);
		assert_int_equal(strncmp(kp_dlh_names[i], "kpool.", 6), 0);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(kp_dlh_names[i], kp_dlh_names[j]);
	}
}

/* Written, then read by name: the same values, absent ones absent. */
static void round_trip(void **state)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	const char *v[KP_DLH_MAX];
	char *got[KP_DLH_MAX];

	(void)state;
	for (int omitted = 0; omitted <= 1; omitted++) {
		values(v, omitted);
		kp_dlh_write(h, v);
		read_all(h, got);
		for (int i = 0; i < KP_DLH_MAX; i++) {
			if (v[i] == NULL)
				assert_null(got[i]);
			else
				assert_string_equal(got[i], v[i]);
		}
		for (int i = 0; i < KP_DLH_MAX; i++)
			free(got[i]);
	}
	rd_kafka_headers_destroy(h);
}

/*
 * A job dead-lettered again (a replay that failed) keeps its own headers
 * and carries one of each of kpool's: the last round's are replaced, and
 * one the new round does not write is gone.
 */
static void written_again(void **state)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	const char *v[KP_DLH_MAX];
	const void *p;
	size_t len;
	int n;

	(void)state;
	rd_kafka_header_add(h, "traceparent", -1, "00-abc-01", -1);
	values(v, true);
	kp_dlh_write(h, v);
	rd_kafka_header_add(h, KP_REPLAYED_FROM, -1, "email-queue.dlq/0/7", -1);
	values(v, false);
	v[KP_DLH_ERROR] = "smtp: 550 no such user";
	kp_dlh_write(h, v);
	for (int i = 0; i < KP_DLH_MAX; i++) {
		n = 0;
		for (size_t idx = 0; rd_kafka_header_get(h, idx, kp_dlh_names[i], &p, &len) == 0;
		     idx++)
			n++;
		assert_int_equal(n, v[i] ? 1 : 0);
	}
	assert_int_equal(rd_kafka_header_get_last(h, kp_dlh_names[KP_DLH_ERROR], &p, &len), 0);
	assert_int_equal(len, strlen("smtp: 550 no such user"));
	assert_memory_equal(p, "smtp: 550 no such user", len);
	assert_int_equal(rd_kafka_header_get_last(h, "traceparent", &p, &len), 0);
	assert_int_equal(rd_kafka_header_get_last(h, KP_REPLAYED_FROM, &p, &len), 0);
	rd_kafka_headers_destroy(h);
}

/* What `kpool dlq` makes of a record kpoold wrote: every field it shows. */
static void command_reads(void **state)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	const char *v[KP_DLH_MAX];
	struct dlrec r;

	(void)state;
	values(v, true);
	kp_dlh_write(h, v);
	kp_dlrec_read(&r, h, 1, 17, 1);
	assert_string_equal(r.writer, "kpool");
	assert_string_equal(r.orig_topic, v[KP_DLH_TOPIC]);
	assert_int_equal(r.orig_partition, 3);
	assert_true(r.orig_offset == 9223372036854775806LL);
	assert_string_equal(r.class, v[KP_DLH_CLASS]);
	assert_string_equal(r.reason, v[KP_DLH_ERROR]);
	assert_string_equal(r.event_id, v[KP_DLH_EVENT_ID]);
	assert_int_equal(r.attempts, 5);
	assert_true(r.omitted);
	assert_true(r.failed_ms == 1764547200250LL); /* from kpool.failed-at, not the timestamp */
	assert_int_equal(r.partition, 1);
	assert_int_equal(r.offset, 17);
	kp_dlrec_free(&r);
	rd_kafka_headers_destroy(h);
}

/* A binding's dead-letter topic: its own, else SRC.dlq. */
static void topic_name(void **state)
{
	struct kp_binding b = {0};
	char buf[KP_TOPIC_MAX + 8];

	(void)state;
	kp_dlq_topic(&b, "audit", buf, sizeof(buf));
	assert_string_equal(buf, "audit.dlq");
	b.dead_letter_topic = "failed";
	kp_dlq_topic(&b, "audit", buf, sizeof(buf));
	assert_string_equal(buf, "failed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(names),	     cmocka_unit_test(round_trip),
	    cmocka_unit_test(written_again), cmocka_unit_test(command_reads),
	    cmocka_unit_test(topic_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
