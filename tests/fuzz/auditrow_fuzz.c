/*
 * auditrow_fuzz.c - libFuzzer harness for the audit row's encoding
 * (auditlog.c: audit_encode, which audit_hash hashes): two rows made from the
 * input.  The encoding must be injective: it decodes, by the layout auditlog.h
 * states, to the very row it was made from, so two rows that differ never
 * encode the same (and never chain the same); rows that encode the same are
 * equal.
 *
 * Input: two rows, separated by the byte 0xfe; a row is seq and at (8 bytes
 * each, little-endian, as many as there are) then its six texts (event_id,
 * user_id, action, resource, details, job) separated by NUL bytes, a text that
 * is the single byte 0xff being NULL.
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.
 *
 * fuzz-sources: plugins/auditlog.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"

#define TEXTS 6

struct row_texts {
	struct audit_row r;
	char *t[TEXTS];
};

struct bytes {
	unsigned char *p;
	size_t len, cap;
};

static void put(void *arg, const void *p, size_t n)
{
	struct bytes *b = arg;

	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			abort();
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* A row from n bytes at p. */
static void row_make(struct row_texts *x, const unsigned char *p, size_t n)
{
	uint64_t v[2] = {0, 0};
	const char **texts[TEXTS] = {&x->r.event_id, &x->r.user_id, &x->r.action,
				     &x->r.resource, &x->r.details, &x->r.job};
	size_t k;

	memset(x, 0, sizeof(*x));
	for (int i = 0; i < 2; i++) {
		for (k = 0; k < 8 && k < n; k++)
			v[i] |= (uint64_t)p[k] << (8 * k);
		p += k;
		n -= k;
	}
	x->r.seq = (int64_t)v[0];
	x->r.at = (int64_t)v[1];
	for (int i = 0; i < TEXTS; i++) {
		const unsigned char *end = memchr(p, 0, n);
		size_t len = end ? (size_t)(end - p) : n;
		if (!(len == 1 && p[0] == 0xff)) {
			if ((x->t[i] = strndup((const char *)p, len)) == NULL)
				abort();
			*texts[i] = x->t[i];
		}
		p += len < n ? len + 1 : n;
		n -= len < n ? len + 1 : n;
	}
}

static void row_free(struct row_texts *x)
{
	for (int i = 0; i < TEXTS; i++)
		free(x->t[i]);
}

static uint64_t get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Reads a text of the encoding at *off: NULL, or its bytes, which must be want's. */
static void expect_text(const struct bytes *b, size_t *off, const char *want, const char *name)
{
	uint32_t len;

	if (*off + 4 > b->len) {
		fprintf(stderr, "%s: the encoding ends before its length\n", name);
		abort();
	}
	len = (uint32_t)get_be(b->p + *off, 4);
	*off += 4;
	if (len == 0xffffffffu) {
		if (want != NULL) {
			fprintf(stderr, "%s: encoded as NULL, but is '%s'\n", name, want);
			abort();
		}
		return;
	}
	if (want == NULL || len != strlen(want) || *off + len > b->len ||
	    memcmp(b->p + *off, want, len) != 0) {
		fprintf(stderr, "%s: the encoding does not decode to the row's text\n", name);
		abort();
	}
	*off += len;
}

/* The row the encoding b decodes to must be x's, to its last byte. */
static void decode_check(const struct bytes *b, const struct row_texts *x)
{
	size_t off = 0;

	if (b->len < 8 || (int64_t)get_be(b->p, 8) != x->r.seq) {
		fprintf(stderr, "seq: not the row's\n");
		abort();
	}
	off = 8;
	expect_text(b, &off, x->r.event_id, "event_id");
	if (off + 8 > b->len || (int64_t)get_be(b->p + off, 8) != x->r.at) {
		fprintf(stderr, "at: not the row's\n");
		abort();
	}
	off += 8;
	expect_text(b, &off, x->r.user_id, "user_id");
	expect_text(b, &off, x->r.action, "action");
	expect_text(b, &off, x->r.resource, "resource");
	expect_text(b, &off, x->r.details, "details");
	expect_text(b, &off, x->r.job, "job");
	if (off != b->len) {
		fprintf(stderr, "the encoding has %zu bytes past the row\n", b->len - off);
		abort();
	}
}

static int same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int same_row(const struct audit_row *a, const struct audit_row *b)
{
	return a->seq == b->seq && a->at == b->at && same_text(a->event_id, b->event_id) &&
	       same_text(a->user_id, b->user_id) && same_text(a->action, b->action) &&
	       same_text(a->resource, b->resource) && same_text(a->details, b->details) &&
	       same_text(a->job, b->job);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const unsigned char *sep = memchr(data, 0xfe, size);
	size_t n1 = sep ? (size_t)(sep - data) : size;
	struct row_texts x, y;
	struct bytes ex = {0}, ey = {0};
	unsigned char zero[AUDIT_HASH_LEN] = {0}, hx[AUDIT_HASH_LEN], hy[AUDIT_HASH_LEN];

	row_make(&x, data, n1);
	row_make(&y, sep ? sep + 1 : data + size, sep ? size - n1 - 1 : 0);
	if (audit_encode(&x.r, put, &ex) < 0 || audit_encode(&y.r, put, &ey) < 0) {
		fprintf(stderr, "a row of short texts was not encoded\n");
		abort();
	}
	decode_check(&ex, &x);
	decode_check(&ey, &y);
	if ((ex.len == ey.len && memcmp(ex.p, ey.p, ex.len) == 0) != same_row(&x.r, &y.r)) {
		fprintf(stderr, "two rows %s, their encodings %s\n",
			same_row(&x.r, &y.r) ? "equal" : "differ",
			ex.len == ey.len && memcmp(ex.p, ey.p, ex.len) == 0 ? "equal" : "differ");
		abort();
	}
	if (audit_hash(zero, &x.r, hx) < 0 || audit_hash(zero, &y.r, hy) < 0 ||
	    (memcmp(hx, hy, AUDIT_HASH_LEN) == 0) != same_row(&x.r, &y.r)) {
		fprintf(stderr, "the hashes of two rows do not follow their encodings\n");
		abort();
	}
	free(ex.p);
	free(ey.p);
	row_free(&x);
	row_free(&y);
	return 0;
}
