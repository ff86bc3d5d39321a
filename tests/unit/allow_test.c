/*
 * allow_test.c - the webhook handler's SSRF guard: which addresses are
 * public, networks and names on an allow list, and what the list refuses.
 */
#include "config.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(public_v4),
	    cmocka_unit_test(public_v6),
	    cmocka_unit_test(lists),
	    cmocka_unit_test(refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
