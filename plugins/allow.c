/*
 * allow.c - see allow.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "allow.h"
#include "util.h"

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

/*
 * Whether the n bytes at host may be a host name: at most ALLOW_NAME_MAX
 * bytes, no label over ALLOW_LABEL_MAX.  A longer one is no name to judge.
 */
bool allow_name_fits(const char *host, size_t n)
{
	size_t label = 0;

	if (n > ALLOW_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		label = host[i] == '.' ? 0 : label + 1;
		if (label > ALLOW_LABEL_MAX)
			return false;
	}
	return true;
}

/* Whether host is one of the names on the list; never a name too long to be one. */
bool allow_name(const struct allow_list *l, const char *host)
{
	size_t hl = strlen(host);

	if (hl == 0 || !allow_name_fits(host, hl))
		return false;
	for (size_t i = 0; i < l->n; i++) {
		const char *n = l->e[i].name;
		if (n == NULL)
			continue;
		if (strncmp(n, "*.", 2) == 0) {
			size_t nl = strlen(n + 1); /* ".example.com" */
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
	if (*s == '\0' || !allow_name_fits(s, strlen(s)))
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

/* ---- the URL a job fills in ------------------------------------------------ */

/*
 * The URL with its {{placeholders}} filled from the job: a dotted path into
 * body, else into root, its value URL-encoded (so that it stays within the
 * part of the URL it is put in).  NULL with reason if a value is missing or
 * memory runs out.
 */
char *allow_url_fill(const char *tmpl, json_t *body, json_t *root, char *reason, size_t len)
{
	struct buf out = {0};
	const char *s = tmpl, *a, *z;

	while ((a = strstr(s, "{{")) != NULL && (z = strstr(a + 2, "}}")) != NULL) {
		struct buf val = {0};
		buf_add(&out, s, (size_t)(a - s));
		a += 2;
		if (!util_lookup(body, a, (size_t)(z - a), &val) &&
		    (body == root || !util_lookup(root, a, (size_t)(z - a), &val))) {
			snprintf(reason, len, "url: no value for {{%.*s}} in the job",
				 (int)(z - a > 64 ? 64 : z - a), a);
			free(val.p);
			free(out.p);
			return NULL;
		}
		char *enc = val.len <= INT_MAX
				? curl_easy_escape(NULL, val.p ? val.p : "", (int)val.len)
				: NULL;
		if (enc == NULL)
			out.oom = true;
		else
			buf_str(&out, enc);
		curl_free(enc);
		free(val.p);
		s = z + 2;
	}
	buf_str(&out, s);
	if (out.oom) {
		free(out.p);
		snprintf(reason, len, "out of memory");
		return NULL;
	}
	return out.p;
}

/*
 * The host an http:// or https:// URL names, as curl reads it (an IPv6
 * literal without its brackets), into host, which holds len bytes (at least
 * ALLOW_NAME_MAX + 1).  -1 with reason if url is not such a URL or its host
 * cannot be a host name (too long, or a label too long): judged whole or not
 * at all.  The reason quotes no more of the URL than its scheme or host.
 */
int allow_url_host(const char *url, char *host, size_t len, char *reason, size_t rlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *hp = NULL;
	CURLUcode uc;
	int rc = -1;

	if (u == NULL) {
		snprintf(reason, rlen, "out of memory");
	} else if ((uc = curl_url_set(u, CURLUPART_URL, url, 0)) != CURLUE_OK) {
		snprintf(reason, rlen, "url: not a URL (%s)", curl_url_strerror(uc));
	} else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		   (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		snprintf(reason, rlen, "url: only http:// and https://, not %.32s://",
			 scheme ? scheme : "?");
	} else if (curl_url_get(u, CURLUPART_HOST, &hp, 0) != CURLUE_OK) {
		snprintf(reason, rlen, "url: no host in the URL");
	} else {
		const char *h = hp;
		size_t n = strlen(hp);
		if (hp[0] == '[' && n > 1 && hp[n - 1] == ']') { /* an IPv6 literal */
			h++;
			n -= 2;
		}
		if (n == 0) {
			snprintf(reason, rlen, "url: no host in the URL");
		} else if (n > ALLOW_NAME_MAX || n >= len) {
			snprintf(reason, rlen,
				 "url: a host name of %zu bytes (at most %d): %.40s...", n,
				 ALLOW_NAME_MAX, h);
		} else if (!allow_name_fits(h, n)) {
			snprintf(reason, rlen,
				 "url: a host name with a label over %d bytes: %.40s%s",
				 ALLOW_LABEL_MAX, h, n > 40 ? "..." : "");
		} else {
			memcpy(host, h, n);
			host[n] = '\0';
			rc = 0;
		}
	}
	curl_free(scheme);
	curl_free(hp);
	curl_url_cleanup(u);
	return rc;
}

/*
 * The host a URL template names when no placeholder is in its authority (from
 * "://" to the first '/', '?' or '#'), read from "scheme://authority/" alone,
 * so that no value of a job can change it: 1 with host set (len bytes, at
 * least ALLOW_NAME_MAX + 1); 0 if the job names the host (judged per
 * request); -1 with reason if the template is no http:// or https:// URL or
 * its fixed host is refused.
 */
int allow_url_fixed_host(const char *tmpl, char *host, size_t len, char *reason, size_t rlen)
{
	const char *auth = strstr(tmpl, "://");
	char *prefix = NULL;
	size_t alen;
	int rc;

	if (auth == NULL) {
		snprintf(reason, rlen, "url: not a URL (no scheme://)");
		return -1;
	}
	auth += 3;
	alen = strcspn(auth, "/?#");
	if (memmem(auth, alen, "{{", 2))
		return 0;
	if (asprintf(&prefix, "%.*s/", (int)(auth - tmpl + alen), tmpl) < 0) {
		snprintf(reason, rlen, "out of memory");
		return -1;
	}
	rc = allow_url_host(prefix, host, len, reason, rlen);
	free(prefix);
	return rc < 0 ? -1 : 1;
}

/*
 * What may be said of a URL: scheme://host[:port], without userinfo, path,
 * query or fragment, which may hold credentials.  A URL curl cannot read (a
 * template whose host is a placeholder, say) is cut by hand at its authority,
 * whose userinfo, up to its last '@', goes.
 */
void allow_url_origin(const char *url, char *out, size_t len)
{
	static const char scheme_chars[] = "abcdefghijklmnopqrstuvwxyz"
					   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-";
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	const char *sep = strstr(url, "://"), *auth, *at;
	size_t n;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
			snprintf(out, len, "%s://%s:%s", scheme, host, port);
		else
			snprintf(out, len, "%s://%s", scheme, host);
	} else if (sep == NULL || sep == url || strspn(url, scheme_chars) != (size_t)(sep - url)) {
		snprintf(out, len, "(not a URL)");
	} else {
		auth = sep + 3;
		n = strcspn(auth, "/?#");
		for (at = auth; memchr(at, '@', n - (size_t)(at - auth)) != NULL;)
			at = (const char *)memchr(at, '@', n - (size_t)(at - auth)) + 1;
		n -= (size_t)(at - auth);
		/* A "port" that is neither digits nor a placeholder may be a password
		 * whose '/' ended the authority early: it goes too. */
		const char *colon = memrchr(at, ':', n), *close = memrchr(at, ']', n);
		if (colon && (close == NULL || colon > close) &&
		    strspn(colon + 1, "0123456789") != n - (size_t)(colon + 1 - at) &&
		    strncmp(colon + 1, "{{", 2) != 0)
			n = (size_t)(colon - at);
		snprintf(out, len, "%.*s://%.*s", (int)(sep - url), url, (int)n, at);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}
