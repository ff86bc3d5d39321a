/*
 * mime.h - the email handler's text work, apart from any transport:
 * {{placeholder}} templates, RFC 2047 encoded words, headers folded as
 * RFC 5322 asks, quoted-printable bodies, address checks, and the whole
 * message of a job.  Unit-tested and fuzzed on its own.
 */
#ifndef KPOOL_MIME_H
#define KPOOL_MIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "kpool_plugin.h"
#include "util.h"

/* RFC 5322 2.1.1: a line SHOULD be at most 78 characters and MUST be at
 * most 998, without its CRLF. */
#define MIME_LINE_SOFT 78
#define MIME_LINE_MAX  998
/* Recipients of one message: to, cc and bcc together. */
#define MIME_MAX_RCPT 100

/* A header being written: each line as long as MIME_LINE_SOFT allows. */
struct mime_hdr {
	struct buf *out;
	size_t col; /* characters on the current line */
};

/* One message: its text and its envelope. */
struct mime_msg {
	struct buf text;
	char *from;		   /* envelope sender */
	char *rcpt[MIME_MAX_RCPT]; /* envelope recipients: to, cc, bcc */
	size_t n_rcpt;
};

/* What a message says besides its addresses: the job's template rendered. */
struct mime_content {
	const char *subject;
	const char *text, *html;  /* either may be NULL, not both */
	const char *default_from; /* the sender when the job names none, or NULL */
	const char *id;		  /* the Message-ID's left part */
	time_t date;
};

char *mime_render(const char *tname, const char *ext, const char *src, json_t *data, bool html,
		  char *reason);
bool mime_has_crlf(const char *s);
bool mime_ascii(const char *s);
void mime_encode_words(struct buf *out, const char *s);
void mime_encode_qp(struct buf *out, const char *s);
bool mime_address(const char *field, const char *in, struct buf *out, char **addr, char *reason);

void mime_hdr_start(struct mime_hdr *h, struct buf *out, const char *name);
void mime_hdr_add(struct mime_hdr *h, const char *s);
void mime_hdr_text(struct mime_hdr *h, const char *s);
void mime_hdr_end(struct mime_hdr *h);

bool mime_message(struct mime_msg *m, json_t *job, const struct mime_content *c, char *reason);
void mime_msg_free(struct mime_msg *m);

#endif
