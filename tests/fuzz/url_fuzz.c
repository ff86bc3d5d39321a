/*
 * url_fuzz.c - libFuzzer harness for the webhook's URL (allow.c:
 * allow_url_fill, allow_url_host, allow_url_origin): a template filled from a
 * job, as the webhook does it, then judged.  Oracles:
 *   - the values cannot inject: the filled URL has no space, CR, LF or other
 *     control byte that its template did not have;
 *   - the host judged is the host curl connects to, whole (curl's own reading
 *     of the URL, as the easy handle reads it), and a name allowed by
 *     "*.example.com, notify.internal" is one of those;
 *   - the values cannot move the host: where the template's authority has no
 *     placeholder, the host is the one allow_url_fixed_host read from the
 *     template (the one the webhook judges at start);
 *   - a password in the URL is in neither the reason for refusing it nor the
 *     origin that is logged.
 *
 * Input: the template, then a line per value, the values of {{a}}, {{b}},
 * ... (and of {{data.a}}, ... in an envelope when the input's first byte is
 * odd).
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.
 *
 * fuzz-sources: plugins/allow.c plugins/util.c
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "allow.h"

#define VALUES 8

/* Bytes of s that a URL must not gain from a value: space and control bytes. */
static size_t unsafe(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += (unsigned char)*s <= ' ' || *s == 0x7f;
	return n;
}

/* The host curl's easy handle would connect to (its flags, url.c), brackets gone. */
static char *curl_host(const char *url, char **password)
{
	CURLU *u = curl_url();
	char *h = NULL, *out = NULL;

	*password = NULL;
	if (u &&
	    curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) ==
		CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
		size_t n = strlen(h);
		if (n > 1 && h[0] == '[' && h[n - 1] == ']')
			out = strndup(h + 1, n - 2);
		else
			out = strdup(h);
		char *pw = NULL;
		if (curl_url_get(u, CURLUPART_PASSWORD, &pw, 0) == CURLUE_OK && pw)
			*password = strdup(pw);
		curl_free(pw);
	}
	curl_free(h);
	curl_url_cleanup(u);
	return out;
}

/* A password worth looking for: long enough not to be in a host by chance. */
static bool secret_in(const char *password, const char *text, const char *host)
{
	return password && strlen(password) >= 6 && (host == NULL || !strstr(host, password)) &&
	       strstr(text, password) != NULL;
}

static void check(const char *tmpl, json_t *body, json_t *root)
{
	struct allow_list l = {0};
	char reason[256], host[ALLOW_NAME_MAX + 1], host0[ALLOW_NAME_MAX + 1], origin[160];
	char *url, *seen, *password = NULL;
	int rc;

	if ((url = allow_url_fill(tmpl, body, root, reason, sizeof(reason))) == NULL)
		return;
	if (unsafe(url) > unsafe(tmpl)) {
		fprintf(stderr, "a value put a space or control byte into '%s'\n", url);
		abort();
	}
	rc = allow_url_host(url, host, sizeof(host), reason, sizeof(reason));
	seen = curl_host(url, &password);
	if (rc == 0) {
		if (seen == NULL || strcmp(seen, host) != 0) {
			fprintf(stderr, "judged host '%s', curl connects to '%s'\n", host,
				seen ? seen : "(none)");
			abort();
		}
		if (allow_parse(&l, "*.example.com, notify.internal", reason, sizeof(reason)) < 0)
			abort();
		size_t n = strlen(seen);
		if (allow_name(&l, host) &&
		    !(strcasecmp(seen, "notify.internal") == 0 ||
		      (n > 12 && strcasecmp(seen + n - 12, ".example.com") == 0))) {
			fprintf(stderr, "'%s' is allowed by name, curl connects to '%s'\n", host,
				seen);
			abort();
		}
		allow_free(&l);
		if (allow_url_fixed_host(tmpl, host0, sizeof(host0), reason, sizeof(reason)) == 1 &&
		    strcmp(host0, host) != 0) {
			fprintf(stderr, "a value moved the fixed host '%s' to '%s'\n", host0, host);
			abort();
		}
	} else if (secret_in(password, reason, seen)) {
		fprintf(stderr, "the reason '%s' carries the URL's password\n", reason);
		abort();
	}
	allow_url_origin(url, origin, sizeof(origin));
	if (secret_in(password, origin, seen)) {
		fprintf(stderr, "the origin '%s' carries the URL's password\n", origin);
		abort();
	}
	free(seen);
	free(password);
	free(url);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *text, *save = NULL, *tmpl, *line;
	json_t *root = json_object(), *data_obj = json_object();
	bool envelope = size > 0 && (data[0] & 1);

	if (size > 0) {
		data++;
		size--;
	}
	if ((text = strndup((const char *)data, size)) == NULL || !root || !data_obj)
		abort();
	tmpl = strtok_r(text, "\n", &save);
	for (int i = 0; tmpl && i < VALUES && (line = strtok_r(NULL, "\n", &save)); i++) {
		char key[2] = {(char)('a' + i), '\0'};
		json_t *v = json_string(line); /* NULL if not UTF-8: a job is */
		if (v == NULL)
			continue;
		json_object_set_new(envelope && i % 2 ? data_obj : root, key, v);
	}
	if (tmpl) {
		json_t *body = root;
		if (envelope) {
			json_object_set(root, "data", data_obj);
			json_object_set_new(root, "type", json_string("t"));
			body = data_obj;
		}
		check(tmpl, body, root);
	}
	json_decref(root);
	json_decref(data_obj);
	free(text);
	return 0;
}
