/*
 * mime.h - the email handler's text work, apart from any transport:
 * {{placeholder}} templates, RFC 2047 encoded words,
 * quoted-printable bodies and address checks.  Unit-tested on its own.
 */
#ifndef KPOOL_MIME_H
#define KPOOL_MIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "kpool_plugin.h"
#include "util.h"

char *mime_render(const char *tname, const char *ext, const char *src, json_t *data, bool html,
		  char *reason);
bool mime_has_crlf(const char *s);
bool mime_ascii(const char *s);
void mime_encode_words(struct buf *out, const char *s);
void mime_encode_qp(struct buf *out, const char *s);
bool mime_address(const char *field, const char *in, struct buf *out, char **addr, char *reason);

#endif
