/*
 * allow.c - see allow.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "allow.h"

/* Whether the first bits of a and net agree. */
static bool in_net(const unsigned char *a, const unsigned char *net, int bits)
{
	int bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, net, (size_t)bytes) != 0)
		return false;
	return rest == 0 || ((a[bytes] ^ net[bytes]) & (0xff << (8 - rest))) == 0;
}

/* Addresses that are not the public Internet's (IANA special-purpose registries). */
static const char *const special_v4[] = {
    "0.0.0.0/8",     "10.0.0.0/8",	"100.64.0.0/10",  "127.0.0.0/8",    "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24",	"192.0.2.0/24",	  "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",    "240.0.0.0/4",
};
static const char *const special_v6[] = {
    "::/127", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
};

/* "a.b.c.d", "a.b.c.d/n", "v6", "v6/n": 0, or -1 if s is none of these. */
int allow_parse_addr(const char *s, int *family, unsigned char addr[16], int *bits)
{
	char a[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	char *end;

	if (n >= sizeof(a))
		return -1;
	memcpy(a, s, n);
	a[n] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, a, addr) == 1) {
		*family = AF_INET;
		*bits = 32;
	} else if (inet_pton(AF_INET6, a, addr) == 1) {
		*family = AF_INET6;
		*bits = 128;
	} else {
		return -1;
	}
	if (slash) {
		long b = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || b < 0 || b > *bits)
			return -1;
		*bits = (int)b;
	}
	return 0;
}

static bool special(int family, const unsigned char *a)
{
	const char *const *list = family == AF_INET ? special_v4 : special_v6;
	size_t n = family == AF_INET ? sizeof(special_v4) / sizeof(*special_v4)
				     : sizeof(special_v6) / sizeof(*special_v6);
	unsigned char net[16];
	int f, bits;

	for (size_t i = 0; i < n; i++)
		if (allow_parse_addr(list[i], &f, net, &bits) == 0 && in_net(a, net, bits))
			return true;
	return false;
}

/* Whether an address is on the public Internet; IPv4 inside IPv6 is judged as IPv4. */
bool allow_is_public(int family, const unsigned char *a)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};

	if (family != AF_INET && family != AF_INET6)
		return false;
	if (family == AF_INET6 && (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0))
		return !special(AF_INET, a + 12); /* ::ffff:a.b.c.d, 64:ff9b::a.b.c.d */
	if (family == AF_INET6 && a[0] == 0x20 && a[1] == 0x02)
		return !special(AF_INET, a + 2); /* 6to4: 2002:AABB:CCDD:: */
	return !special(family, a);
}

/* Whether host is one of the names on the list. */
bool allow_name(const struct allow_list *l, const char *host)
{
	for (size_t i = 0; i < l->n; i++) {
		const char *n = l->e[i].name;
		if (n == NULL)
			continue;
		if (strncmp(n, "*.", 2) == 0) {
			size_t hl = strlen(host), nl = strlen(n + 1); /* ".example.com" */
			if (hl > nl && strcasecmp(host + hl - nl, n + 1) == 0)
				return true;
		} else if (strcasecmp(n, host) == 0) {
			return true;
		}
	}
	return false;
}

/* Whether an address is in one of the list's networks, or public where that is allowed. */
bool allow_addr(const struct allow_list *l, int family, const unsigned char *a)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].name == NULL && l->e[i].family == family &&
		    in_net(a, l->e[i].addr, l->e[i].bits))
			return true;
	return l->public_ok && allow_is_public(family, a);
}

static bool name_ok(const char *s)
{
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	if (*s == '\0' || strlen(s) > 253)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '-' && *s != '.' && *s != '_')
			return false;
	return true;
}

/* spec: "public, 10.1.0.0/16, notify.internal, *.example.com"; replaces the list. */
int allow_parse(struct allow_list *l, const char *spec, char *err, size_t len)
{
	char *copy = strdup(spec), *save = NULL;

	allow_free(l);
	if (copy == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
		struct allow_entry a = {0};
		if (strcmp(t, "public") == 0) {
			l->public_ok = true;
			continue;
		}
		if (allow_parse_addr(t, &a.family, a.addr, &a.bits) < 0) {
			if (strchr(t, '/') || !name_ok(t)) {
				snprintf(
				    err, len,
				    "allow_hosts: '%s' is neither a network (CIDR), an address "
				    "nor a host name",
				    t);
				free(copy);
				return -1;
			}
			a.name = strdup(t);
		}
		struct allow_entry *p = realloc(l->e, (l->n + 1) * sizeof(*p));
		if (p == NULL || (a.name == NULL && a.family == 0)) {
			free(a.name);
			free(copy);
			snprintf(err, len, "out of memory");
			return -1;
		}
		l->e = p;
		l->e[l->n++] = a;
	}
	free(copy);
	return 0;
}

void allow_free(struct allow_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
	memset(l, 0, sizeof(*l));
}
