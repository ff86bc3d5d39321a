/*
 * allow.h - which addresses a handler may call: the webhook handler's SSRF
 * guard.  An allow list holds networks (CIDR or single addresses), host
 * names ("*.example.com" for the names below example.com), and "public", the
 * addresses of the public Internet (not loopback, private, link-local,
 * shared, documentation, multicast or reserved ranges).  Unit-tested on its own.
 */
#ifndef KPOOL_ALLOW_H
#define KPOOL_ALLOW_H

#include <stdbool.h>
#include <stddef.h>

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
bool allow_addr(const struct allow_list *l, int family, const unsigned char *addr);
bool allow_is_public(int family, const unsigned char *addr);
int allow_parse_addr(const char *s, int *family, unsigned char addr[16], int *bits);

#endif
