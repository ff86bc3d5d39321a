/*
 * allow_test.c - the webhook handler's SSRF guard: which addresses are
 * public, networks and names on an allow list, what the list refuses, and
 * the URL a job fills in: its host (judged whole, never a part of it), its
 * origin (without credentials) and its placeholders.
 */
#include "config.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "allow.h"

/* Whether the address in text is public. */
static bool public(const char *text)
{
	unsigned char a[16];
	int family, bits;

	assert_int_equal(allow_parse_addr(text, &family, a, &bits), 0);
	return allow_is_public(family, a);
}

static bool allowed(const struct allow_list *l, const char *text)
{
	unsigned char a[16];
	int family, bits;

	assert_int_equal(allow_parse_addr(text, &family, a, &bits), 0);
	return allow_addr(l, family, a);
}

static void public_v4(void **state)
{
	(void)state;
	assert_true(public("8.8.8.8"));
	assert_true(public("93.184.216.34"));
	assert_true(public("172.32.0.1"));  /* just past 172.16.0.0/12 */
	assert_true(public("100.128.0.1")); /* just past 100.64.0.0/10 */
	assert_true(public("11.0.0.1"));
	assert_false(public("127.0.0.1"));
	assert_false(public("127.255.255.254"));
	assert_false(public("10.1.2.3"));
	assert_false(public("172.16.0.1"));
	assert_false(public("172.31.255.255"));
	assert_false(public("192.168.1.1"));
	assert_false(public("169.254.169.254")); /* cloud metadata */
	assert_false(public("100.64.0.1"));
	assert_false(public("0.0.0.0"));
	assert_false(public("224.0.0.1"));
	assert_false(public("255.255.255.255"));
	assert_false(public("198.18.0.1"));
	assert_false(public("192.0.2.10"));
}

static void public_v6(void **state)
{
	(void)state;
	assert_true(public("2606:4700:4700::1111"));
	assert_false(public("::1"));
	assert_false(public("::"));
	assert_false(public("fe80::1"));
	assert_false(public("fd00::1"));
	assert_false(public("ff02::1"));
	assert_false(public("2001:db8::1"));
	/* IPv4 inside IPv6 is judged as the IPv4 address it carries */
	assert_false(public("::ffff:127.0.0.1"));
	assert_false(public("::ffff:10.0.0.1"));
	assert_true(public("::ffff:8.8.8.8"));
	assert_false(public("64:ff9b::192.168.0.1"));
	assert_false(public("2002:7f00:1::")); /* 6to4 of 127.0.0.1 */
	assert_true(public("2002:0808:0808::"));
}

static void lists(void **state)
{
	struct allow_list l = {.public_ok = true};
	char err[256];

	(void)state;
	/* the default: public addresses only */
	assert_true(allowed(&l, "8.8.8.8"));
	assert_false(allowed(&l, "127.0.0.1"));

	assert_int_equal(allow_parse(&l, "127.0.0.1, 10.1.0.0/16 fd00::/8", err, sizeof(err)), 0);
	assert_false(l.public_ok); /* not unless the list says "public" */
	assert_true(allowed(&l, "127.0.0.1"));
	assert_false(allowed(&l, "127.0.0.2"));
	assert_true(allowed(&l, "10.1.255.1"));
	assert_false(allowed(&l, "10.2.0.1"));
	assert_true(allowed(&l, "fd12::1"));
	assert_false(allowed(&l, "8.8.8.8"));

	assert_int_equal(
	    allow_parse(&l, "public, notify.internal, *.example.com", err, sizeof(err)), 0);
	assert_true(l.public_ok);
	assert_true(allowed(&l, "8.8.8.8"));
	assert_false(allowed(&l, "192.168.0.1"));
	assert_true(allow_name(&l, "notify.internal"));
	assert_true(allow_name(&l, "NOTIFY.internal"));
	assert_false(allow_name(&l, "notify.internal.evil.com"));
	assert_true(allow_name(&l, "hooks.example.com"));
	assert_true(allow_name(&l, "a.b.example.com"));
	assert_false(allow_name(&l, "example.com"));
	assert_false(allow_name(&l, "badexample.com"));
	allow_free(&l);
}

static void refused(void **state)
{
	struct allow_list l = {0};
	char err[256];

	(void)state;
	assert_int_equal(allow_parse(&l, "10.0.0.0/33", err, sizeof(err)), -1);
	assert_string_equal(
	    err, "allow_hosts: '10.0.0.0/33' is neither a network (CIDR), an address nor a "
		 "host name");
	assert_int_equal(allow_parse(&l, "bad host!", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'host!'"));
	assert_int_equal(allow_parse(&l, "::1/129", err, sizeof(err)), -1);
	allow_free(&l);
}

/* A name of n bytes: labels of label bytes of 'a' (the last one shorter), then suffix. */
static char *long_name(size_t n, size_t label, const char *suffix)
{
	size_t sl = strlen(suffix), m = n - sl;
	char *s = malloc(n + 1);

	assert_non_null(s);
	for (size_t i = 0; i < m; i++)
		s[i] = (i + 1) % (label + 1) == 0 ? '.' : 'a';
	assert_true(s[m - 1] != '.'); /* no empty label before the suffix */
	memcpy(s + m, suffix, sl + 1);
	return s;
}

/* Names are judged whole: one too long to be a host name matches nothing. */
static void long_names(void **state)
{
	struct allow_list l = {0};
	char err[256];
	char *at_most = long_name(ALLOW_NAME_MAX, 60, ".example.com");
	char *over = long_name(ALLOW_NAME_MAX + 1, 60, ".example.com");
	char *far_over = long_name(1000, 60, ".example.com");
	char *big_label = long_name(100, 64, ".example.com");
	char *label_63 = long_name(100, 63, ".example.com");

	(void)state;
	assert_int_equal(allow_parse(&l, "public, *.example.com", err, sizeof(err)), 0);
	assert_true(allow_name(&l, at_most));
	assert_false(allow_name(&l, over));
	assert_false(allow_name(&l, far_over));
	assert_false(allow_name(&l, big_label));
	assert_true(allow_name(&l, label_63));
	assert_true(allow_name_fits(at_most, strlen(at_most)));
	assert_false(allow_name_fits(over, strlen(over)));
	assert_false(allow_name_fits(big_label, strlen(big_label)));
	assert_false(allow_name(&l, ""));
	/* a list entry too long to be a name is refused */
	char spec[600];
	snprintf(spec, sizeof(spec), "public, %s", over);
	assert_int_equal(allow_parse(&l, spec, err, sizeof(err)), -1);
	snprintf(spec, sizeof(spec), "*.%s", big_label);
	assert_int_equal(allow_parse(&l, spec, err, sizeof(err)), -1);
	allow_free(&l);
	free(at_most);
	free(over);
	free(far_over);
	free(big_label);
	free(label_63);
}

/* The host of a URL, as the guard judges it: whole, or the URL is refused. */
static void url_hosts(void **state)
{
	char host[ALLOW_NAME_MAX + 1], reason[256], url[1200];
	/* 269 bytes, the first 255 of them ending in .example.com */
	char *first = long_name(255, 60, ".example.com");
	char *name = malloc(300);

	(void)state;
	assert_non_null(name);
	snprintf(name, 300, "%s.attacker.test", first);
	assert_int_equal(strlen(name), 269);

	assert_int_equal(allow_url_host("https://hooks.example.com:8443/a?b", host, sizeof(host),
					reason, sizeof(reason)),
			 0);
	assert_string_equal(host, "hooks.example.com");
	assert_int_equal(
	    allow_url_host("http://[::1]:80/x", host, sizeof(host), reason, sizeof(reason)), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(
	    allow_url_host("http://user:pw@10.0.0.1/", host, sizeof(host), reason, sizeof(reason)),
	    0);
	assert_string_equal(host, "10.0.0.1");

	snprintf(url, sizeof(url), "http://%s:8080/hook", name);
	assert_int_equal(allow_url_host(url, host, sizeof(host), reason, sizeof(reason)), -1);
	assert_string_equal(reason,
			    "url: a host name of 269 bytes (at most 253): aaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaaaaaaaaaaa...");
	char *big_label = long_name(100, 64, ".example.com");
	snprintf(url, sizeof(url), "http://%s/", big_label);
	assert_int_equal(allow_url_host(url, host, sizeof(host), reason, sizeof(reason)), -1);
	assert_non_null(strstr(reason, "a label over 63 bytes"));
	/* a host that fits, but not in the caller's buffer: refused, not cut */
	assert_int_equal(
	    allow_url_host("http://abcdefgh.example/", host, 8, reason, sizeof(reason)), -1);

	assert_int_equal(allow_url_host("ftp://user:secret@example.com/x", host, sizeof(host),
					reason, sizeof(reason)),
			 -1);
	assert_string_equal(reason, "url: only http:// and https://, not ftp://");
	assert_int_equal(allow_url_host("http://user:secret@bad%20host/tok", host, sizeof(host),
					reason, sizeof(reason)),
			 -1);
	assert_null(strstr(reason, "secret"));
	assert_null(strstr(reason, "tok"));
	free(first);
	free(name);
	free(big_label);
}

/* A template's fixed host is read from its scheme and authority alone. */
static void url_fixed_hosts(void **state)
{
	char host[ALLOW_NAME_MAX + 1], reason[256];

	(void)state;
	assert_int_equal(allow_url_fixed_host("http://u:p@10.0.0.1:8080/{{id}}?a={{b}}", host,
					      sizeof(host), reason, sizeof(reason)),
			 1);
	assert_string_equal(host, "10.0.0.1");
	assert_int_equal(
	    allow_url_fixed_host("https://{{host}}/x", host, sizeof(host), reason, sizeof(reason)),
	    0);
	assert_int_equal(allow_url_fixed_host("http://u@{{host}}:{{port}}/x", host, sizeof(host),
					      reason, sizeof(reason)),
			 0);
	/* no authority before the first slash: curl would read the host from what
	 * follows, which a job fills in; refused */
	assert_int_equal(
	    allow_url_fixed_host("http:///kp@{{a}}:9/", host, sizeof(host), reason, sizeof(reason)),
	    -1);
	assert_int_equal(
	    allow_url_fixed_host("notaurl", host, sizeof(host), reason, sizeof(reason)), -1);
}

/* What is logged of a URL: scheme, host and port, never userinfo, path or query. */
static void url_origins(void **state)
{
	char out[160];

	(void)state;
	allow_url_origin("https://user:pass@push.example.com:8443/t/SECRET?k=v#f", out,
			 sizeof(out));
	assert_string_equal(out, "https://push.example.com:8443");
	allow_url_origin("http://push.example.com/SECRET", out, sizeof(out));
	assert_string_equal(out, "http://push.example.com");
	allow_url_origin("http://[::1]:9/x", out, sizeof(out));
	assert_string_equal(out, "http://[::1]:9");
	/* a template curl cannot read: cut by hand, userinfo up to its last '@' gone */
	allow_url_origin("http://us@r:p@ss@{{host}}:8080/x/{{id}}?tok=SECRET", out, sizeof(out));
	assert_string_equal(out, "http://{{host}}:8080");
	allow_url_origin("https://{{u}}:{{p}}@{{host}}", out, sizeof(out));
	assert_string_equal(out, "https://{{host}}");
	/* a '/' in a password ends the authority early: what looks like a port goes */
	allow_url_origin("gopher://user:pa/ss@{{host}}/", out, sizeof(out));
	assert_string_equal(out, "gopher://user");
	allow_url_origin("http://{{host}}:{{port}}/x", out, sizeof(out));
	assert_string_equal(out, "http://{{host}}:{{port}}");
	allow_url_origin("user:pass@host/x", out, sizeof(out));
	assert_string_equal(out, "(not a URL)");
}

/* Placeholders filled from the job, URL-encoded, from data before the job. */
static void url_fill(void **state)
{
	json_t *root = json_loads("{\"id\":\"a b/@c\",\"n\":7,\"data\":{\"host\":\"h.example\"},"
				  "\"type\":\"t\"}",
				  0, NULL);
	json_t *body = json_object_get(root, "data");
	char reason[256], *url;

	(void)state;
	assert_non_null(root);
	url =
	    allow_url_fill("http://{{host}}/x/{{id}}?n={{n}}", body, root, reason, sizeof(reason));
	assert_non_null(url);
	assert_string_equal(url, "http://h.example/x/a%20b%2F%40c?n=7");
	free(url);
	assert_null(allow_url_fill("http://{{missing}}/", body, root, reason, sizeof(reason)));
	assert_string_equal(reason, "url: no value for {{missing}} in the job");
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(public_v4),       cmocka_unit_test(public_v6),
	    cmocka_unit_test(lists),	       cmocka_unit_test(refused),
	    cmocka_unit_test(long_names),      cmocka_unit_test(url_hosts),
	    cmocka_unit_test(url_fixed_hosts), cmocka_unit_test(url_origins),
	    cmocka_unit_test(url_fill),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
