/*
 * webhook.c - the notifications handler: each job goes to an HTTP endpoint
 * with libcurl, the way push gateways, Slack-style incoming webhooks and
 * in-house notification services take them.
 *
 * Every request carries Idempotency-Key: <event id>, and with secret_file
 * Kpool-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">.  2xx is
 * done; 408, 429, 5xx, connection errors and timeouts are retried, after
 * Retry-After if the server sent one; other answers fail the job with the
 * status and the start of the body.
 *
 * A job can put values into the URL ({{field}}), so it could point kpool at
 * loopback or a private network: the address each connection goes to is
 * checked, after name resolution, against allow_hosts (by default: public
 * addresses only), and a host name too long to be one is refused whole.
 * Redirects are not followed; only http and https are spoken.  The URL may
 * hold credentials (userinfo, tokens in its path): logs and reasons name it by
 * its origin, scheme://host[:port], at most.
 *
 * Connections are kept and reused by one curl multi handle; handle_batch sends
 * the jobs of a batch concurrently when their keys differ, in order when they
 * share one.
 */
#include "config.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "allow.h"
#include "kpool_plugin.h"
#include "opts.h"
#include "util.h"

#define MAX_BATCH	64
#define MAX_CONCURRENCY 64
#define BODY_KEEP	200 /* bytes of an answer's body kept for the reason */
#define LINE_MAX_	512 /* a header line kpool makes */
/* The longest Retry-After taken (seconds, an HTTP date as seconds from now),
 * before kpoold's own cap, retry_backoff_max: a larger one is a day. */
#define RETRY_AFTER_MAX_S 86400

static const struct kpool_option_spec webhook_options[] = {
    {.name = "url",
     .flags = KPOOL_OPT_REQUIRED,
     .desc = "http:// or https://, with {{field}} placeholders; credentials in it are used "
	     "and never logged (logs name the URL by its scheme and host)"},
    {.name = "method",
     .def = "POST",
     .desc = "the HTTP method, in capitals (POST, PUT, PATCH, GET)"},
    {.name = "header",
     .flags = KPOOL_OPT_MULTI,
     .desc = "a header sent with every request, as Name: value"},
    {.name = "body",
     .type = KPOOL_OPT_ENUM,
     .def = "job",
     .choices = "job|data",
     .desc = "what is sent: the job's bytes, or the envelope's data"},
    {.name = "content_type", .def = "application/json", .desc = "the body's Content-Type"},
    {.name = "secret_file",
     .type = KPOOL_OPT_PATH,
     .desc = "the HMAC-SHA256 key of the Kpool-Signature header: the file's first line"},
    {.name = "timeout",
     .type = KPOOL_OPT_DURATION,
     .def = "10s",
     .min = 1,
     .desc = "for the whole request"},
    {.name = "allow_hosts",
     .def = "public",
     .desc = "where requests may go: public (addresses), networks, addresses, host names "
	     "(*.internal), comma separated; a host name over 253 bytes, or with a label "
	     "over 63, is refused whole"},
    {.name = "tls_verify",
     .type = KPOOL_OPT_BOOL,
     .def = "on",
     .desc = "check the server's certificate"},
    {.name = "ca_file",
     .type = KPOOL_OPT_PATH,
     .desc = "CA certificates (PEM) instead of the system's"},
    {.name = "keepalive",
     .type = KPOOL_OPT_BOOL,
     .def = "on",
     .desc = "keep connections for the next requests; off: a new connection per job"},
    {.name = "concurrency",
     .type = KPOOL_OPT_INT,
     .def = "8",
     .min = 1,
     .max = MAX_CONCURRENCY,
     .desc = "requests of one batch in flight at once"},
    {.name = NULL},
};

struct hook {
	const struct kpool_host *host;
	char *url; /* may hold {{field}} */
	char *method;
	struct curl_slist *hdrs; /* the header options and Content-Type */
	bool body_data;		 /* body = data: the envelope's data, not the whole job */
	EVP_MAC_CTX *mac;	 /* HMAC-SHA256 keyed with secret_file; each request signs a copy */
	long timeout_ms;
	struct allow_list allow;
	bool tls_verify;
	char *ca_file;
	bool keepalive;
	int concurrency;
	CURLM *multi;
	struct req *reqs; /* concurrency of them, each with its easy handle */
};

/* One request in flight. */
struct req {
	struct hook *h;
	CURL *easy;
	size_t idx; /* the job's place in the batch */
	const struct kpool_job *job;
	json_t *root;
	char *url, *body;
	size_t body_len;
	bool body_owned;
	struct curl_slist *hdrs;
	char host[ALLOW_NAME_MAX + 1]; /* as the URL names it, for allow_hosts and reasons */
	bool host_named;	       /* allowed by name */
	char refused[160];
	char errbuf[CURL_ERROR_SIZE];
	char resp[BODY_KEEP + 1];
	size_t resp_len;
};

/* ---- the SSRF guard ----------------------------------------------------- */

/* curl asks for each socket it connects: here the resolved address is checked. */
static curl_socket_t on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *sa)
{
	struct req *r = arg;
	const unsigned char *a = NULL;
	char text[INET6_ADDRSTRLEN] = "?";

	(void)purpose;
	if (sa->family == AF_INET)
		a = (const unsigned char *)&((struct sockaddr_in *)&sa->addr)->sin_addr;
	else if (sa->family == AF_INET6)
		a = (const unsigned char *)&((struct sockaddr_in6 *)&sa->addr)->sin6_addr;
	if (!r->host_named && (a == NULL || !allow_addr(&r->h->allow, sa->family, a))) {
		if (a)
			inet_ntop(sa->family, a, text, sizeof(text));
		snprintf(r->refused, sizeof(r->refused),
			 "%s resolves to %s, which allow_hosts does not allow (%s)", r->host, text,
			 r->h->allow.n ? "see allow_hosts" : "public addresses only");
		return CURL_SOCKET_BAD;
	}
	return socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
}

/* ---- one request ---------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct req *r = arg;
	size_t len = size * n, take = BODY_KEEP - r->resp_len;

	if (take > len)
		take = len;
	memcpy(r->resp + r->resp_len, p, take);
	r->resp_len += take;
	r->resp[r->resp_len] = '\0';
	return len;
}

/* Kpool-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">. */
static int sign(const struct hook *h, const char *body, size_t len, char *out, size_t out_len)
{
	char t[24];
	unsigned char md[EVP_MAX_MD_SIZE];
	char mdhex[2 * EVP_MAX_MD_SIZE + 1];
	size_t mdlen = 0;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(h->mac);
	int rc = -1;

	snprintf(t, sizeof(t), "%lld", (long long)time(NULL));
	if (ctx && EVP_MAC_update(ctx, (const unsigned char *)t, strlen(t)) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)body, len) == 1 &&
	    EVP_MAC_final(ctx, md, &mdlen, sizeof(md)) == 1) {
		util_hex(md, mdlen, mdhex);
		snprintf(out, out_len, "Kpool-Signature: t=%s,v1=%s", t, mdhex);
		rc = 0;
	}
	EVP_MAC_CTX_free(ctx);
	return rc;
}

static void req_clear(struct req *r)
{
	if (r->body_owned)
		free(r->body);
	free(r->url);
	json_decref(r->root);
	curl_slist_free_all(r->hdrs);
	CURL *easy = r->easy;
	struct hook *h = r->h;
	memset(r, 0, sizeof(*r));
	r->easy = easy;
	r->h = h;
}

/* Makes the request for a job ready to go; false with reason if the job cannot be sent. */
static bool req_prepare(struct req *r, const struct kpool_job *job, char *reason)
{
	struct hook *h = r->h;
	json_error_t jerr;
	char line[LINE_MAX_];
	json_t *body;

	r->job = job;
	r->root = json_loadb(job->value, job->value_len, 0, &jerr);
	if (!json_is_object(r->root)) {
		snprintf(reason, KPOOL_REASON_MAX, "job is not a JSON object");
		return false;
	}
	body = util_job_body(r->root);
	if (strcmp(h->method, "GET") == 0) { /* no body: the signature covers none */
		r->body = (char *)"";
		r->body_len = 0;
	} else if (h->body_data && body != r->root) {
		r->body = json_dumps(body, JSON_COMPACT);
		r->body_owned = true;
		r->body_len = r->body ? strlen(r->body) : 0;
	} else {
		r->body = (char *)job->value; /* the job's bytes as they came, signed as sent */
		r->body_len = job->value_len;
	}
	if (r->body == NULL) {
		snprintf(reason, KPOOL_REASON_MAX, "out of memory");
		return false;
	}
	if ((r->url = allow_url_fill(h->url, body, r->root, reason, KPOOL_REASON_MAX)) == NULL ||
	    allow_url_host(r->url, r->host, sizeof(r->host), reason, KPOOL_REASON_MAX) < 0)
		return false;
	r->host_named = allow_name(&h->allow, r->host);

	for (struct curl_slist *s = h->hdrs; s; s = s->next)
		r->hdrs = curl_slist_append(r->hdrs, s->data);
	snprintf(line, sizeof(line), "Idempotency-Key: %s", job->event_id);
	r->hdrs = curl_slist_append(r->hdrs, line);
	snprintf(line, sizeof(line), "Kpool-Attempt: %d", job->attempt);
	r->hdrs = curl_slist_append(r->hdrs, line);
	if (h->mac) {
		if (sign(h, r->body, r->body_len, line, sizeof(line)) < 0) {
			snprintf(reason, KPOOL_REASON_MAX, "cannot compute the signature");
			return false;
		}
		r->hdrs = curl_slist_append(r->hdrs, line);
	}
	r->hdrs = curl_slist_append(r->hdrs, "Expect:"); /* no 100-continue round trip */

	CURL *e = r->easy;
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* the address checked is the one called */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "kpool/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, h->tls_verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, h->tls_verify ? 2L : 0L);
	if (h->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
	if (!h->keepalive) {
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
	if (strcmp(h->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		if (strcmp(h->method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, h->method);
	}
	return true;
}

/* Printable text of an answer's body: control characters become spaces, and
 * a UTF-8 character cut at the end goes. */
static void printable(char *s, size_t len)
{
	size_t lead = len;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = ' ';
	while (lead > 0 && len - lead < 4 && ((unsigned char)s[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (lead > 0 && ((unsigned char)s[lead - 1] & 0xc0) == 0xc0) {
		unsigned char c = (unsigned char)s[lead - 1];
		size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		if (len - (lead - 1) < need)
			s[lead - 1] = '\0';
	}
}

/* What became of a request; asks kpoold to wait as the server said, if it said so. */
static kpool_status req_outcome(struct req *r, CURLcode cc, char *reason)
{
	long code = 0;
	curl_off_t after = 0;

	if (cc != CURLE_OK) {
		if (r->refused[0]) {
			snprintf(reason, KPOOL_REASON_MAX, "refused: %s", r->refused);
			return KPOOL_FAIL;
		}
		snprintf(reason, KPOOL_REASON_MAX, "%s: %s", r->host,
			 r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
		reason[strcspn(reason, "\r\n")] = '\0';
		return cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL ? KPOOL_FAIL
										     : KPOOL_RETRY;
	}
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 200 && code < 300)
		return KPOOL_DONE;
	printable(r->resp, r->resp_len);
	snprintf(reason, KPOOL_REASON_MAX, "HTTP %ld%s%s", code, r->resp_len ? ": " : "", r->resp);
	if (code == 408 || code == 429 || code >= 500) {
		if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK &&
		    after > 0) {
			if (after > RETRY_AFTER_MAX_S) /* in milliseconds it might not fit */
				after = RETRY_AFTER_MAX_S;
			r->h->host->retry_after(r->job, (int64_t)after * 1000);
		}
		return KPOOL_RETRY;
	}
	return KPOOL_FAIL;
}

/* ---- the batch ------------------------------------------------------------ */

static bool same_key(const struct kpool_job *a, const struct kpool_job *b)
{
	return a->key_len > 0 && a->key_len == b->key_len &&
	       memcmp(a->key, b->key, a->key_len) == 0;
}

/*
 * Sends the jobs, up to concurrency at a time; jobs that share a key one
 * after another, in their order.  When one of those is to be retried, the
 * jobs of its key behind it are retried too, so that they stay behind it.
 */
static void send_all(struct hook *h, const struct kpool_job *const *jobs, size_t n,
		     kpool_status *status, char (*reason)[KPOOL_REASON_MAX])
{
	size_t next[MAX_BATCH], ready[MAX_BATCH], n_ready = 0, r_head = 0;
	int in_flight = 0;

	/* next[i]: the job after i with the same key, or n; heads are ready at once. */
	for (size_t i = 0; i < n; i++) {
		bool head = true;
		next[i] = n;
		for (size_t k = i + 1; k < n; k++)
			if (same_key(jobs[i], jobs[k])) {
				next[i] = k;
				break;
			}
		for (size_t k = 0; k < i && head; k++)
			if (same_key(jobs[k], jobs[i]))
				head = false;
		if (head)
			ready[n_ready++] = i;
	}
	while (r_head < n_ready || in_flight > 0) {
		/* Start what may start. */
		while (r_head < n_ready && in_flight < h->concurrency) {
			size_t i = ready[r_head++];
			struct req *r = NULL;
			for (int k = 0; k < h->concurrency && r == NULL; k++)
				if (h->reqs[k].job == NULL)
					r = &h->reqs[k];
			r->idx = i;
			reason[i][0] = '\0';
			if (!req_prepare(r, jobs[i], reason[i])) {
				status[i] = KPOOL_FAIL;
				req_clear(r);
				if (next[i] < n)
					ready[n_ready++] = next[i];
				continue;
			}
			curl_multi_add_handle(h->multi, r->easy);
			in_flight++;
		}
		int running = 0;
		curl_multi_perform(h->multi, &running);
		CURLMsg *m;
		int left;
		bool finished = false;
		while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
			struct req *r = NULL;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
			CURLcode cc = m->data.result;
			size_t i = r->idx;
			curl_multi_remove_handle(h->multi, r->easy);
			in_flight--;
			finished = true;
			status[i] = req_outcome(r, cc, reason[i]);
			req_clear(r);
			for (size_t k = next[i]; k < n; k = next[k]) {
				if (status[i] != KPOOL_RETRY) {
					ready[n_ready++] = k;
					break;
				}
				status[k] = KPOOL_RETRY;
				snprintf(reason[k], KPOOL_REASON_MAX,
					 "waits for event %.100s of the same key",
					 jobs[i]->event_id);
			}
		}
		if (in_flight > 0 && !finished)
			curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
	}
}

static void handle_batch(void *state, const struct kpool_job *const *jobs, size_t n,
			 kpool_status *status, char (*reason)[KPOOL_REASON_MAX])
{
	for (size_t done = 0; done < n; done += MAX_BATCH)
		send_all(state, jobs + done, n - done < MAX_BATCH ? n - done : MAX_BATCH,
			 status + done, reason + done);
}

static kpool_status handle(void *state, const struct kpool_job *job, char reason[KPOOL_REASON_MAX])
{
	const struct kpool_job *const jobs[1] = {job};
	kpool_status st = KPOOL_FAIL;

	send_all(state, jobs, 1, &st, (char(*)[KPOOL_REASON_MAX])reason);
	return st;
}

/* ---- options ---------------------------------------------------------- */

static void hook_free(struct hook *h)
{
	if (h == NULL)
		return;
	for (int i = 0; h->reqs && i < h->concurrency; i++)
		if (h->reqs[i].easy)
			curl_easy_cleanup(h->reqs[i].easy);
	free(h->reqs);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	allow_free(&h->allow);
	free(h->url);
	free(h->method);
	curl_slist_free_all(h->hdrs);
	EVP_MAC_CTX_free(h->mac);
	free(h->ca_file);
	free(h);
	curl_global_cleanup();
}

/* header = Name: value; not kpool's own, nor one that frames the body. */
static int add_header(struct hook *h, const char *v, char *err, size_t len)
{
	static const char *const reserved[] = {"Idempotency-Key",   "Kpool-Signature",
					       "Kpool-Attempt",	    "Content-Length",
					       "Transfer-Encoding", "Host"};
	size_t n = strcspn(v, ":");

	if (v[n] != ':' || n == 0 || strpbrk(v, "\r\n")) {
		snprintf(err, len, "header: '%s' is not 'Name: value'", v);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] <= ' ' || strchr("()<>@,;:\\\"/[]?={}", v[i])) {
			snprintf(err, len, "header: '%.*s' is not a header name", (int)n, v);
			return -1;
		}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++)
		if (strlen(reserved[i]) == n && strncasecmp(v, reserved[i], n) == 0) {
			snprintf(err, len, "header: %s is kpool's to set", reserved[i]);
			return -1;
		}
	h->hdrs = curl_slist_append(h->hdrs, v);
	return 0;
}

/*
 * A literal address in a URL's fixed host must be one the guard lets through:
 * say so now.  Messages quote no more of the URL than its origin: the rest
 * may hold credentials.
 */
static int check_url(struct hook *h, char *err, size_t len)
{
	char host[ALLOW_NAME_MAX + 1], reason[KPOOL_REASON_MAX], origin[160];
	unsigned char a[16];
	int family, bits, rc;

	if (strncmp(h->url, "http://", 7) != 0 && strncmp(h->url, "https://", 8) != 0) {
		allow_url_origin(h->url, origin, sizeof(origin));
		snprintf(err, len, "url: %s is not an http:// or https:// URL", origin);
		return -1;
	}
	rc = allow_url_fixed_host(h->url, host, sizeof(host), reason, sizeof(reason));
	if (rc < 0) {
		snprintf(err, len, "%s", reason);
		return -1;
	}
	if (rc == 0) /* the job names the host: checked per request */
		return 0;
	if (allow_parse_addr(host, &family, a, &bits) == 0 && !allow_name(&h->allow, host) &&
	    !allow_addr(&h->allow, family, a)) {
		snprintf(err, len, "url: %s is not a public address; allow_hosts must allow it",
			 host);
		return -1;
	}
	return 0;
}

/*
 * A binding's endpoint: options as webhook_options declares them, checked
 * and normalized by kpoold.  NULL with err (and nothing kept) if a value
 * cannot be used: a URL, header, allow list, CA file or secret.
 */
static void *init(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
		  char *err, size_t len)
{
	struct hook *h = calloc(1, sizeof(*h));
	const char *content_type = opts_get(opts, n_opts, "content_type");
	const char *secret_file = opts_get(opts, n_opts, "secret_file");
	const char *method = opts_get(opts, n_opts, "method"), *v;
	char line[LINE_MAX_], origin[160];

	if (h == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		snprintf(err, len, "cannot set up libcurl");
		free(h);
		return NULL;
	}
	h->host = host;
	h->timeout_ms = (long)opts_int(opts, n_opts, "timeout");
	h->allow.public_ok = true;
	h->tls_verify = opts_bool(opts, n_opts, "tls_verify");
	h->keepalive = opts_bool(opts, n_opts, "keepalive");
	h->concurrency = (int)opts_int(opts, n_opts, "concurrency");
	v = opts_get(opts, n_opts, "body");
	h->body_data = v && strcmp(v, "data") == 0;
	if ((v = opts_get(opts, n_opts, "url")))
		h->url = strdup(v);
	if (method) {
		h->method = strdup(method);
		for (const char *c = method; *c; c++)
			if (*c < 'A' || *c > 'Z') {
				snprintf(err, len, "method: '%s' (e.g. POST, PUT, PATCH)", method);
				goto fail;
			}
	}
	for (size_t i = 0; i < n_opts; i++) /* header is repeatable: each one */
		if (strcmp(opts[i].key, "header") == 0 &&
		    add_header(h, opts[i].value, err, len) < 0)
			goto fail;
	if ((v = opts_get(opts, n_opts, "allow_hosts")) && allow_parse(&h->allow, v, err, len) < 0)
		goto fail;
	if ((v = opts_get(opts, n_opts, "ca_file"))) {
		h->ca_file = strdup(v);
		if (access(v, R_OK) < 0) {
			snprintf(err, len, "ca_file: %s: %s", v, strerror(errno));
			goto fail;
		}
	}
	if (h->concurrency < 1) /* kpoold keeps it within 1..MAX_CONCURRENCY */
		h->concurrency = 1;
	if (content_type == NULL)
		content_type = "application/json";
	if (h->url == NULL) {
		snprintf(err, len,
			 "url: missing (e.g. https://push.example.com/notify/{{userId}})");
		goto fail;
	}
	if (h->method == NULL)
		h->method = strdup("POST");
	if (check_url(h, err, len) < 0)
		goto fail;
	if (strpbrk(content_type, "\r\n")) {
		snprintf(err, len, "content_type: CR or LF in it");
		goto fail;
	}
	snprintf(line, sizeof(line), "Content-Type: %s", content_type);
	h->hdrs = curl_slist_append(h->hdrs, line);
	if (secret_file) {
		char why[300];
		char *s = util_read_file(secret_file, 4096, why, sizeof(why));
		if (s == NULL) {
			snprintf(err, len, "secret_file: %s", why);
			goto fail;
		}
		s[strcspn(s, "\r\n")] = '\0';
		size_t n = strlen(s);
		OSSL_PARAM params[] = {
		    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
		    OSSL_PARAM_construct_end(),
		};
		EVP_MAC *hmac = n ? EVP_MAC_fetch(NULL, "HMAC", NULL) : NULL;
		h->mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
		if (h->mac && EVP_MAC_init(h->mac, (unsigned char *)s, n, params) != 1) {
			EVP_MAC_CTX_free(h->mac);
			h->mac = NULL;
		}
		EVP_MAC_free(hmac); /* the context holds what it needs */
		explicit_bzero(s, n);
		free(s);
		if (h->mac == NULL) {
			snprintf(err, len, "secret_file: %s: %s", secret_file,
				 n ? "OpenSSL cannot make an HMAC-SHA256 with it" : "empty");
			goto fail;
		}
	}
	h->multi = curl_multi_init();
	h->reqs = calloc((size_t)h->concurrency, sizeof(*h->reqs));
	if (h->multi == NULL || h->reqs == NULL || h->hdrs == NULL || h->method == NULL) {
		snprintf(err, len, "out of memory");
		goto fail;
	}
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)h->concurrency);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->concurrency * 2);
	for (int i = 0; i < h->concurrency; i++) {
		h->reqs[i].h = h;
		if ((h->reqs[i].easy = curl_easy_init()) == NULL) {
			snprintf(err, len, "out of memory");
			goto fail;
		}
	}
	allow_url_origin(h->url, origin, sizeof(origin)); /* not its userinfo, path or query */
	host->log(LOG_INFO, "webhook: %s %s%s%s", h->method, origin, h->mac ? ", signed" : "",
		  h->keepalive ? "" : ", a new connection per job");
	return h;
fail:
	hook_free(h);
	return NULL;
}

static void fini(void *state)
{
	hook_free(state);
}

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER,
    .name = "webhook",
    .version = PACKAGE_VERSION,
    .init = init,
    .handle = handle,
    .fini = fini,
    .handle_batch = handle_batch,
    KPOOL_PLUGIN_OPTIONS(webhook_options),
};
