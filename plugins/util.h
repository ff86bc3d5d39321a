/*
 * util.h - what the shipped plugins share: a growing string, values at a
 * dotted path of a JSON job, the envelope's data, files and the times jobs
 * give.
 */
#ifndef KPOOL_UTIL_H
#define KPOOL_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing string; oom is set, and further adds ignored, if memory runs out. */
struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void buf_add(struct buf *b, const char *s, size_t n);
void buf_str(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

bool util_lookup(json_t *data, const char *path, size_t n, struct buf *out);
json_t *util_job_body(json_t *root);
char *util_read_file(const char *path, size_t max, char *err, size_t len);
void util_xml_escape(struct buf *out, const char *s, size_t n);
void util_hex(const unsigned char *p, size_t n, char *out);
/* 10000-01-01T00:00:00Z: times are before it. */
#define UTIL_TIME_MAX_MS 253402300800000LL
int64_t util_time_ms(json_t *v);
int64_t util_time_text_ms(const char *s);

#endif
