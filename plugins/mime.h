/*
 * mime.h - the email handler's text work, apart from any transport: a
 * growing string, {{placeholder}} templates, RFC 2047 encoded words,
 * quoted-printable bodies and address checks.  Unit-tested on its own.
 */
#ifndef KPOOL_MIME_H
#define KPOOL_MIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "kpool_plugin.h"

/* A growing string. */
struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void buf_add(struct buf *b, const char *s, size_t n);
void buf_str(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

bool mime_lookup(json_t *data, const char *path, size_t n, struct buf *out);
void mime_html_escape(struct buf *out, const char *s, size_t n);
char *mime_render(const char *tname, const char *ext, const char *src, json_t *data, bool html,
		  char *reason);
bool mime_has_crlf(const char *s);
bool mime_ascii(const char *s);
void mime_encode_words(struct buf *out, const char *s);
void mime_encode_qp(struct buf *out, const char *s);
bool mime_address(const char *field, const char *in, struct buf *out, char **addr, char *reason);

#endif
