/*
 * allow_fuzz.c - libFuzzer harness for the allow list (allow.c: allow_parse,
 * allow_name, allow_addr, allow_is_public, allow_parse_addr): an allow_hosts
 * value and host names and addresses to judge.  A list is parsed or refused
 * with a reason; a name is allowed exactly when a plain reading of the list
 * says so (an entry equal to it, or "*.d" and it ends in ".d", ignoring
 * case), never when it is longer than a host name may be or has a label over
 * 63 bytes, and the same whatever its case; an address inside IPv6
 * (::ffff:a.b.c.d) is public exactly when the IPv4 address is.
 *
 * Input: the allow_hosts value, then a line per host to judge.
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.
 *
 * fuzz-sources: plugins/allow.c plugins/util.c
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "allow.h"

/* Whether host may be a name: its length and its labels'. */
static bool fits(const char *host)
{
	size_t n = strlen(host), label = 0;

	if (n == 0 || n > 253)
		return false;
	for (const char *p = host; *p; p++) {
		label = *p == '.' ? 0 : label + 1;
		if (label > 63)
			return false;
	}
	return true;
}

/* The list, read plainly: whether host is one of its names. */
static bool named(const struct allow_list *l, const char *host)
{
	size_t hl = strlen(host);

	if (!fits(host))
		return false;
	for (size_t i = 0; i < l->n; i++) {
		const char *e = l->e[i].name;
		if (e == NULL)
			continue;
		if (e[0] == '*' && e[1] == '.') {
			size_t sl = strlen(e + 1);
			if (hl > sl && strcasecmp(host + hl - sl, e + 1) == 0)
				return true;
		} else if (strcasecmp(e, host) == 0) {
			return true;
		}
	}
	return false;
}

static void judge(const struct allow_list *l, const char *host)
{
	bool got = allow_name(l, host);
	char *upper = strdup(host);
	unsigned char a[16], m[16] = {0};
	int family, bits;

	if (upper == NULL)
		abort();
	if (got != named(l, host)) {
		fprintf(stderr, "allow_name says %d for '%.80s' (%zu bytes), the list %d\n", got,
			host, strlen(host), !got);
		abort();
	}
	for (char *p = upper; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	if (allow_name(l, upper) != got) {
		fprintf(stderr, "allow_name depends on the case of '%.80s'\n", host);
		abort();
	}
	free(upper);
	if (allow_parse_addr(host, &family, a, &bits) == 0) {
		if ((family != AF_INET && family != AF_INET6) || bits < 0 ||
		    bits > (family == AF_INET ? 32 : 128))
			abort();
		if (l->public_ok && allow_is_public(family, a) && !allow_addr(l, family, a)) {
			fprintf(stderr, "'%s' is public, the list allows public, yet not it\n",
				host);
			abort();
		}
		if (family == AF_INET) {
			m[10] = m[11] = 0xff;
			memcpy(m + 12, a, 4);
			if (allow_is_public(AF_INET6, m) != allow_is_public(AF_INET, a)) {
				fprintf(stderr, "'%s' and ::ffff:%s are judged apart\n", host,
					host);
				abort();
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *text = strndup((const char *)data, size), *save = NULL, *line;
	struct allow_list l = {0};
	char err[256] = "";

	if (text == NULL)
		abort();
	line = strtok_r(text, "\n", &save);
	if (line == NULL)
		goto done;
	if (allow_parse(&l, line, err, sizeof(err)) < 0) {
		if (err[0] == '\0') {
			fprintf(stderr, "a list refused without a reason\n");
			abort();
		}
		goto done;
	}
	for (size_t i = 0; i < l.n; i++)
		if (l.e[i].name && strlen(l.e[i].name) > 255) {
			fprintf(stderr, "a name longer than a host name is on the list\n");
			abort();
		}
	while ((line = strtok_r(NULL, "\n", &save)) != NULL)
		judge(&l, line);
done:
	allow_free(&l);
	free(text);
	return 0;
}
