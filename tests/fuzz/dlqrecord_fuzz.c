/*
 * dlqrecord_fuzz.c - libFuzzer harness for the dead-letter record reader
 * (kpool_dlqrec.c) and what `kpool dlq list` and `dlq show` print of it
 * (kpool_table.c, kpool_text.c): the bytes are a record's headers.
 *
 * The input is split at its NUL bytes into headers; the first byte of each
 * picks its name from the list below (modulo its length; with the high bit
 * set, the header has no value), the rest is its value; the name "" takes
 * its name from the value, up to a '='.  What is read must print for people
 * as valid UTF-8 without a control character but the newlines ending the
 * table's lines, and as JSON that is valid, escapes every control character
 * (no raw C0, DEL or C1 byte in the text) and keeps the class, reason and
 * origin (none dropped for its bytes).
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.  scripts/fuzz
 * reads the sources it links with from one line, kept whole below.
 */
/* clang-format off */
/*
 * fuzz-sources: kpool/kpool_dlqrec.c kpool/kpool_text.c kpool/kpool_time.c kpool/kpool_table.c kpool/kpool_progress.c plugins/util.c kpcore/dlqrec.c
 */
/* clang-format on */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpool_cmd.h"

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, __VA_ARGS__);                                                      \
		abort();                                                                           \
	} while (0)

static const char *const names[] = {
    "kpool.original.topic",
    "kpool.original.partition",
    "kpool.original.offset",
    "kpool.original.timestamp",
    "kpool.event-id",
    "kpool.worker",
    "kpool.handler",
    "kpool.error.class",
    "kpool.error",
    "kpool.attempts",
    "kpool.host",
    "kpool.pid",
    "kafka_dlt-original-topic",
    "kafka_dlt-original-partition",
    "kafka_dlt-original-offset",
    "kafka_dlt-exception-fqcn",
    "kafka_dlt-exception-message",
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
    "kpool.replayed-from",
    "event-src",
    "kpool.failed-at", /* 24: the crash of the time parser (corpus: find-zone-overread) */
    "",		       /* the name from the value */
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

/* Text for people: valid UTF-8, no C0 control but newline, no DEL, no C1. */
static void check_people(const char *what, const char *s, size_t n)
{
	uint32_t cp;
	size_t k;

	for (size_t i = 0; i < n; i += k) {
		if ((k = kp_utf8_next((const unsigned char *)s + i, n - i, &cp)) == 0)
			FAIL("%s: not UTF-8 at byte %zu\n", what, i);
		if ((cp < 0x20 && cp != '\n') || (cp >= 0x7f && cp <= 0x9f))
			FAIL("%s: control character U+%04X at byte %zu\n", what, (unsigned)cp, i);
	}
}

/* JSON text: the same, and it reads back. */
static json_t *check_json(const char *what, const char *s, size_t n)
{
	json_error_t e;
	json_t *doc;

	check_people(what, s, n);
	if ((doc = json_loadb(s, n, 0, &e)) == NULL)
		FAIL("%s: not JSON: %s\n", what, e.text);
	return doc;
}

/* f's text so far, and f closed. */
static char *text_of(FILE *f, char **buf, size_t *len)
{
	fclose(f);
	return *buf;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(8);
	struct kp_table t;
	struct dlrec r;
	json_t *doc, *back;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	for (size_t i = 0; i < size;) {
		const unsigned char *end = memchr(data + i, 0, size - i);
		size_t n = end ? (size_t)(end - (data + i)) : size - i;
		if (n > 0) {
			const char *name = names[(data[i] & 0x7f) % N_NAMES];
			const char *v = (const char *)data + i + 1;
			size_t vlen = n - 1;
			char custom[256];
			if (name[0] == '\0') { /* NAME=VALUE */
				const char *eq = memchr(v, '=', vlen);
				size_t k = eq ? (size_t)(eq - v) : vlen;
				snprintf(custom, sizeof(custom), "%.*s", (int)(k < 255 ? k : 255),
					 v);
				name = custom;
				v = eq ? eq + 1 : v + vlen;
				vlen -= eq ? k + 1 : k;
			}
			rd_kafka_header_add(h, name, -1, data[i] & 0x80 ? NULL : v,
					    data[i] & 0x80 ? 0 : (ssize_t)vlen);
		}
		i += n + 1;
	}
	kp_dlrec_read(&r, h, 3, 42, 1700000000000LL);
	if (r.class == NULL || r.reason == NULL || r.writer == NULL)
		FAIL("no class, reason or writer\n");

	/* dlq list and dlq show, for people */
	f = open_memstream(&buf, &len);
	kp_table_init(&t, 6, "RECORD", "FAILED AT", "FROM", "CLASS", "ATTEMPTS", "REASON");
	kp_dlrec_row(&r, &t);
	kp_table_print(&t, f);
	kp_table_free(&t);
	kp_table_init(&t, 2, "  NAME", "VALUE");
	kp_dlrec_headers_table(h, &t);
	kp_table_print(&t, f);
	kp_table_free(&t);
	kp_text_put(f, r.class, strlen(r.class), 0);
	text_of(f, &buf, &len);
	check_people("the table", buf, len);
	free(buf);

	/* dlq list --json and dlq show --json */
	doc = kp_dlrec_json(&r);
	json_object_set_new(doc, "headers", kp_dlrec_headers_json(h));
	buf = NULL;
	f = open_memstream(&buf, &len);
	if (kp_json_print(doc, f, JSON_INDENT(2)) < 0)
		FAIL("the document is not printed\n");
	text_of(f, &buf, &len);
	back = check_json("the JSON", buf, len);
	if (!json_is_string(json_object_get(back, "class")) ||
	    strcmp(json_string_value(json_object_get(back, "class")), r.class) != 0 ||
	    !json_is_string(json_object_get(back, "reason")) ||
	    strcmp(json_string_value(json_object_get(back, "reason")), r.reason) != 0)
		FAIL("the JSON lost the class or the reason\n");
	if (r.orig_topic &&
	    (!json_is_string(json_object_get(json_object_get(back, "original"), "topic"))))
		FAIL("the JSON lost where the job came from\n");
	if (json_array_size(json_object_get(back, "headers")) !=
	    json_array_size(json_object_get(doc, "headers")))
		FAIL("the JSON lost headers\n");
	json_decref(back);
	json_decref(doc);
	free(buf);
	kp_dlrec_free(&r);
	rd_kafka_headers_destroy(h);
	return 0;
}
