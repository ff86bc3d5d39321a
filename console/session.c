/*
 * session.c - the console's sessions, without state: a session cookie is
 * its expiry and an HMAC-SHA256 of it under a key derived from the token,
 * so any console process of the conf (one restarted by a reload too) takes
 * it, and a new token ends every session.  A session's CSRF token is an
 * HMAC of the cookie.  Comparisons are in constant time (CRYPTO_memcmp).
 */
#include "config.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console_int.h"

#define KEY_LABEL  "kpool console session key"
#define EXPIRY_MAX 1099511627775LL /* 2^40 - 1 seconds: no cookie's time overflows */

static unsigned char skey[32]; /* sessions and CSRF tokens are signed with it */

/* The key of token: HMAC-SHA256(token, KEY_LABEL), into k. */
static void derive(const char *token, unsigned char k[32])
{
	unsigned int len = 0;

	HMAC(EVP_sha256(), token, (int)strlen(token), (const unsigned char *)KEY_LABEL,
	     strlen(KEY_LABEL), k, &len);
}

/* Sets the key sessions are signed with, from the conf's token. */
void kp_session_key(const char *token)
{
	derive(token, skey);
}

/* hex of HMAC-SHA256(k, what), n hex digits at most (out has n + 1 bytes). */
static void sign_with(const unsigned char k[32], const char *what, char *out, size_t n)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	HMAC(EVP_sha256(), k, 32, (const unsigned char *)what, strlen(what), mac, &len);
	for (unsigned i = 0; i < len && 2 * i + 2 <= n; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	out[n < 2 * (size_t)len ? n : 2 * (size_t)len] = '\0';
}

/* A new session cookie's value, good for lifetime_ms: "EXPIRY.HMAC". */
void kp_session_new(int64_t lifetime_ms, char *out, size_t len)
{
	char what[64], mac[65];

	snprintf(what, sizeof(what), "session:%" PRId64, (kp_now_ms() + lifetime_ms) / 1000);
	sign_with(skey, what, mac, 64);
	snprintf(out, len, "%s.%s", what + 8, mac);
}

/* Whether the cookie value v is a session signed with the key and not expired. */
bool kp_session_ok(const char *v)
{
	char what[64], mac[65];
	const char *dot = v ? strchr(v, '.') : NULL;
	char *end;
	long long exp;

	if (dot == NULL || dot == v || dot - v > 13 || strlen(dot + 1) != 64)
		return false;
	for (const char *p = v; p < dot; p++)
		if (*p < '0' || *p > '9')
			return false;
	exp = strtoll(v, &end, 10);
	if (end != dot || exp > EXPIRY_MAX || exp * 1000 < kp_now_ms())
		return false;
	snprintf(what, sizeof(what), "session:%lld", exp);
	sign_with(skey, what, mac, 64);
	return CRYPTO_memcmp(mac, dot + 1, 64) == 0;
}

/* The CSRF token of a session (32 hex digits; out has 33 bytes at least). */
void kp_session_csrf(const char *session, char *out, size_t len)
{
	char what[128];

	snprintf(what, sizeof(what), "csrf:%s", session);
	sign_with(skey, what, out, len - 1 < 32 ? len - 1 : 32);
}

/*
 * Whether token (from the login form) is the conf's token: both are turned
 * into keys and a fixed text signed with each is compared, so the time
 * taken says nothing about how much of it was right.
 */
bool kp_session_token_ok(const char *token)
{
	unsigned char k[32];
	char mine[65], theirs[65];

	derive(token, k);
	sign_with(skey, "login", mine, 64);
	sign_with(k, "login", theirs, 64);
	OPENSSL_cleanse(k, sizeof(k));
	return CRYPTO_memcmp(mine, theirs, 64) == 0;
}
