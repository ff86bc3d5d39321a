/*
 * allow.h - which addresses a handler may call: the webhook handler's SSRF
 * guard.  An allow list holds networks (CIDR or single addresses), host
 * names ("*.example.com" for the names below example.com), and "public", the
 * addresses of the public Internet (not loopback, private, link-local,
 * shared, documentation, multicast or reserved ranges).
 *
 * The URL a job fills in is judged here too: its placeholders filled from the
 * job (URL-encoded, so a value cannot move the host), the host it names, and
 * its origin (scheme://host[:port], what may be logged of it: never the
 * userinfo, path or query, which may hold credentials).  A host name longer
 * than a name may be (ALLOW_NAME_MAX bytes, ALLOW_LABEL_MAX a label) is
 * refused whole: a name is never judged by a part of it.  Unit-tested on its
 * own; tests/fuzz/allow_fuzz.c and url_fuzz.c fuzz it.
 */
#ifndef KPOOL_ALLOW_H
#define KPOOL_ALLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define ALLOW_NAME_MAX	253 /* bytes of a host name (RFC 1035: 255 on the wire) */
#define ALLOW_LABEL_MAX 63  /* bytes of one of its labels */

struct allow_entry {
	char *name; /* NULL for a network */
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};

struct allow_list {
	struct allow_entry *e;
	size_t n;
	bool public_ok;
};

int allow_parse(struct allow_list *l, const char *spec, char *err, size_t len);
void allow_free(struct allow_list *l);
bool allow_name(const struct allow_list *l, const char *host);
bool allow_name_fits(const char *host, size_t n);
bool allow_addr(const struct allow_list *l, int family, const unsigned char *addr);
bool allow_is_public(int family, const unsigned char *addr);
int allow_parse_addr(const char *s, int *family, unsigned char addr[16], int *bits);

char *allow_url_fill(const char *tmpl, json_t *body, json_t *root, char *reason, size_t len);
int allow_url_host(const char *url, char *host, size_t len, char *reason, size_t rlen);
int allow_url_fixed_host(const char *tmpl, char *host, size_t len, char *reason, size_t rlen);
void allow_url_origin(const char *url, char *out, size_t len);

#endif
