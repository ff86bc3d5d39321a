/*
 * kpool_dlqrec.c - a dead-letter record as `kpool dlq` shows it: what its
 * headers say about the job and why it is there, whoever wrote it (kpool,
 * Spring Kafka, Kafka Connect), and its header values for people.
 *
 * Headers are outside input: their text is kept as valid UTF-8 (each byte
 * that is not part of it becomes U+FFFD, see kpool_text.c), so that JSON
 * never drops a value, and numbers are read with overflow checks.  Control
 * characters stay in the text; whatever prints it for people escapes them.
 */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "kpool_cmd.h"
#include "util.h"

/* The last value of header name in h (NULL: no headers) in *v, *len; false if none or null. */
static bool hdr(rd_kafka_headers_t *h, const char *name, const void **v, size_t *len)
{
	return h && rd_kafka_header_get_last(h, name, v, len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	       *v != NULL;
}

/* A header's value as valid UTF-8 (NULL if absent). */
static char *hdr_text(rd_kafka_headers_t *h, const char *name)
{
	const void *v;
	size_t len;

	return hdr(h, name, &v, &len) ? kp_text_utf8(v, len) : NULL;
}

/* A big-endian int32 or int64 (Spring Kafka's numbers); false for other lengths. */
static bool be_int(const unsigned char *v, size_t len, int64_t *out)
{
	uint64_t u = 0;

	if (len != 4 && len != 8)
		return false;
	for (size_t i = 0; i < len; i++)
		u = u << 8 | v[i];
	*out = len == 4 ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
	return true;
}

/* A number written as text (kpool, Connect) or big-endian bytes (Spring); false if neither. */
static bool hdr_int(rd_kafka_headers_t *h, const char *name, int64_t *out)
{
	const char *v;
	size_t len;

	if (!hdr(h, name, (const void **)&v, &len) || len == 0)
		return false;
	if (v[0] == '-' && kp_cmd_decimal(v + 1, len - 1, INT64_MAX, out) == 0) {
		*out = -*out;
		return true;
	}
	return kp_cmd_decimal(v, len, INT64_MAX, out) == 0 ||
	       be_int((const unsigned char *)v, len, out);
}

/* Frees what kp_dlrec_read() put in r; r is zeroed, so freeing it again is harmless. */
void kp_dlrec_free(struct dlrec *r)
{
	free(r->orig_topic);
	free(r->class);
	free(r->reason);
	free(r->event_id);
	memset(r, 0, sizeof(*r));
}

/* The headers in which each tool says where a job came from and why it failed. */
struct writer {
	const char *name, *topic, *partition, *offset, *class, *reason, *event_id, *attempts;
};

/*
 * Reads what a dead-letter record (its headers h, NULL for none, and where
 * it is) says about the job and why it is there.  When it failed: its
 * kpool.failed-at, else the record's timestamp; unknown (-1, shown "-")
 * when kpool.failed-at is there but no time.  Never fails (aborts when
 * memory runs out); kp_dlrec_free() frees it.
 */
void kp_dlrec_read(struct dlrec *r, rd_kafka_headers_t *h, int32_t partition, int64_t offset,
		   int64_t timestamp_ms)
{
	const struct writer writers[] = {
	    {"kpool", kp_dlh_names[KP_DLH_TOPIC], kp_dlh_names[KP_DLH_PARTITION],
	     kp_dlh_names[KP_DLH_OFFSET], kp_dlh_names[KP_DLH_CLASS], kp_dlh_names[KP_DLH_ERROR],
	     kp_dlh_names[KP_DLH_EVENT_ID], kp_dlh_names[KP_DLH_ATTEMPTS]},
	    {"spring", "kafka_dlt-original-topic", "kafka_dlt-original-partition",
	     "kafka_dlt-original-offset", "kafka_dlt-exception-fqcn", "kafka_dlt-exception-message",
	     NULL, NULL},
	    {"connect", "__connect.errors.topic", "__connect.errors.partition",
	     "__connect.errors.offset", "__connect.errors.exception.class.name",
	     "__connect.errors.exception.message", NULL, NULL},
	};
	const void *at;
	size_t at_len;
	int64_t v;

	memset(r, 0, sizeof(*r));
	r->partition = partition;
	r->offset = offset;
	r->orig_partition = -1;
	r->orig_offset = -1;
	r->attempts = -1;
	r->writer = "unknown";
	for (size_t i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
		const struct writer *w = &writers[i];
		if ((r->orig_topic = hdr_text(h, w->topic)) == NULL)
			continue;
		r->writer = w->name;
		if (hdr_int(h, w->partition, &v) && v >= 0 && v <= INT32_MAX)
			r->orig_partition = (int32_t)v;
		if (hdr_int(h, w->offset, &v) && v >= 0)
			r->orig_offset = v;
		r->class = hdr_text(h, w->class);
		r->reason = hdr_text(h, w->reason);
		if (w->event_id)
			r->event_id = hdr_text(h, w->event_id);
		if (w->attempts && hdr_int(h, w->attempts, &v) && v >= 0 && v <= INT32_MAX)
			r->attempts = (int)v;
		break;
	}
	r->omitted = hdr(h, kp_dlh_names[KP_DLH_OMITTED], &at, &at_len);
	if (r->class == NULL)
		r->class = kp_text_utf8("unknown", 7);
	if (r->reason == NULL)
		r->reason = kp_text_utf8("", 0);
	r->failed_ms = timestamp_ms >= 0 ? timestamp_ms : -1;
	if (hdr(h, kp_dlh_names[KP_DLH_FAILED_AT], &at, &at_len)) {
		/* util_time_text_ms wants a C string: one without a NUL in it */
		char *s = memchr(at, '\0', at_len) ? NULL : strndup(at, at_len);
		r->failed_ms = s ? util_time_text_ms(s) : -1;
		if (r->failed_ms < 0)
			r->failed_ms = -1;
		free(s);
	}
	if (r->failed_ms >= 0)
		kp_cmd_iso(r->failed_ms, r->failed_at, sizeof(r->failed_at));
	else
		snprintf(r->failed_at, sizeof(r->failed_at), "-");
}

/* --error-class C: the class itself, or (Java exceptions) its simple name. */
bool kp_dlrec_class_matches(const char *class, const char *want)
{
	const char *dot = strrchr(class, '.');
	return want == NULL || strcmp(class, want) == 0 || (dot && strcmp(dot + 1, want) == 0);
}

/* Whether needle (lower case ASCII is enough: it is folded) is in the n bytes at hay, in any case.
 */
static bool has_text(const void *hay, size_t n, const char *needle)
{
	const unsigned char *h = hay;
	size_t k = strlen(needle);

	if (h == NULL || k > n)
		return false;
	for (size_t i = 0; i + k <= n; i++) {
		size_t j = 0;
		while (j < k && tolower(h[i + j]) == tolower((unsigned char)needle[j]))
			j++;
		if (j == k)
			return true;
	}
	return false;
}

/*
 * Whether a dead-letter record r with the job of len bytes at job is one f
 * takes: its class, its failure time (the record's own when the headers
 * do not say), and the text in its reason, event id or job.
 */
bool kp_dlq_filter_match(const struct kp_dlq_filter *f, const struct dlrec *r, const void *job,
			 size_t len)
{
	if (!kp_dlrec_class_matches(r->class, f->class))
		return false;
	if ((f->since >= 0 && r->failed_ms < f->since) ||
	    (f->until >= 0 && r->failed_ms >= f->until))
		return false;
	if (f->text && *f->text)
		return (r->reason && has_text(r->reason, strlen(r->reason), f->text)) ||
		       (r->event_id && has_text(r->event_id, strlen(r->event_id), f->text)) ||
		       has_text(job, len, f->text);
	return true;
}

/* Where the job came from, TOPIC/PARTITION/OFFSET, as far as the record says. */
void kp_dlrec_from(const struct dlrec *r, char *buf, size_t len)
{
	if (r->orig_topic == NULL)
		snprintf(buf, len, "-");
	else if (r->orig_offset >= 0 && r->orig_partition >= 0)
		snprintf(buf, len, "%s/%d/%" PRId64, r->orig_topic, (int)r->orig_partition,
			 r->orig_offset);
	else
		snprintf(buf, len, "%s", r->orig_topic);
}

/* The record as an object of dlq list --json and replay --json; never NULL. */
json_t *kp_dlrec_json(const struct dlrec *r)
{
	json_t *o = json_object();

	json_object_set_new(o, "partition", json_integer(r->partition));
	json_object_set_new(o, "offset", json_integer(r->offset));
	json_object_set_new(o, "failed_at",
			    r->failed_ms >= 0 ? json_string(r->failed_at) : json_null());
	json_object_set_new(
	    o, "original",
	    json_pack("{s:o,s:o,s:o}", "topic",
		      r->orig_topic ? json_string(r->orig_topic) : json_null(), "partition",
		      r->orig_partition >= 0 ? json_integer(r->orig_partition) : json_null(),
		      "offset", r->orig_offset >= 0 ? json_integer(r->orig_offset) : json_null()));
	json_object_set_new(o, "class", json_string(r->class));
	json_object_set_new(o, "attempts",
			    r->attempts >= 0 ? json_integer(r->attempts) : json_null());
	json_object_set_new(o, "reason", json_string(r->reason));
	json_object_set_new(o, "event_id", r->event_id ? json_string(r->event_id) : json_null());
	json_object_set_new(o, "writer", json_string(r->writer));
	return o;
}

/* Text that is shown as text: UTF-8 without control characters other than tab, newline, CR. */
bool kp_dlrec_printable(const void *v, size_t len)
{
	const unsigned char *s = v;
	size_t k;
	uint32_t cp;

	for (size_t i = 0; i < len; i += k) {
		if ((k = kp_utf8_next(s + i, len - i, &cp)) == 0)
			return false;
		if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f)
			return false;
	}
	return true;
}

/* Bytes as "ff fe 62"; NULL when memory runs out. */
char *kp_dlrec_hex(const void *v, size_t len)
{
	const unsigned char *s = v;
	char *out = malloc(len * 3 + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		p += sprintf(p, i ? " %02x" : "%02x", s[i]);
	*p = '\0';
	return out;
}

/*
 * A header value for people: its text (tab, newline, CR and C1 controls
 * left for the table to escape), a Spring number, or hex; NULL when memory
 * runs out.
 */
char *kp_dlrec_header_value(const char *name, const void *v, size_t len)
{
	char *h, *out = NULL;
	int64_t x;
	int rc;

	if (v == NULL)
		return strdup("(null)");
	if (kp_dlrec_printable(v, len))
		return strndup(v, len);
	if ((h = kp_dlrec_hex(v, len)) == NULL)
		return NULL;
	if (strncmp(name, "kafka_dlt-", 10) == 0 && be_int(v, len, &x))
		rc = asprintf(&out, "%" PRId64 " (%s)", x, h);
	else
		rc = asprintf(&out, "hex: %s", h);
	free(h);
	return rc < 0 ? NULL : out;
}

/* Adds the row of dlq list for r to t (RECORD, FAILED AT, FROM, CLASS, ATTEMPTS, REASON). */
void kp_dlrec_row(const struct dlrec *r, struct kp_table *t)
{
	char at[48], from[KP_DLREC_FROM_MAX], attempts[16];

	snprintf(at, sizeof(at), "%d:%" PRId64, (int)r->partition, r->offset);
	kp_dlrec_from(r, from, sizeof(from));
	if (r->attempts >= 0)
		snprintf(attempts, sizeof(attempts), "%d", r->attempts);
	else
		snprintf(attempts, sizeof(attempts), "-");
	kp_table_row(t, at, r->failed_at, from, r->class, attempts, r->reason);
}

/* Adds a row per header of h to t (NAME, indented, and VALUE, as dlq show prints them). */
void kp_dlrec_headers_table(rd_kafka_headers_t *h, struct kp_table *t)
{
	const char *name;
	const void *v;
	size_t len;

	for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++) {
		char *val = kp_dlrec_header_value(name, v, len), *ind = NULL;
		if (asprintf(&ind, "  %s", name) < 0)
			abort(); /* a table for a terminal: no memory is no way on */
		kp_table_row(t, ind, val ? val : "?");
		free(ind);
		free(val);
	}
}

/* The headers of h as dlq show --json has them: name and value, or name and hex. */
json_t *kp_dlrec_headers_json(rd_kafka_headers_t *h)
{
	json_t *hs = json_array();
	const char *name;
	const void *v;
	size_t len;
	char *x;

	for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++) {
		json_t *o = json_pack("{s:o}", "name", kp_json_text(name, strlen(name)));
		if (v && kp_dlrec_printable(v, len)) {
			json_object_set_new(o, "value", kp_json_text(v, len));
		} else if (v && (x = kp_dlrec_hex(v, len))) {
			json_object_set_new(o, "hex", json_string(x));
			free(x);
		} else {
			json_object_set_new(o, "value", json_null());
		}
		json_array_append_new(hs, o);
	}
	return hs;
}
