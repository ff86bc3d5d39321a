/*
 * console.c - the web console's process: its listening socket (HTTP, or
 * HTTPS with cert_file and key_file), logins turned into signed session
 * cookies (session.c), CSRF tokens on every action, requests routed to
 * pages, and the sampler behind the overview's chart; replays are run by
 * runner.c.
 *
 * Security, in short: without [console] token_file the console is read-only
 * (conf.c allows it on a loopback address only) and refuses every POST.
 * With it, a login page turns the token into a cookie (HttpOnly,
 * SameSite=Strict, Secure under HTTPS) holding its expiry and an HMAC of it
 * under a key derived from the token, so a console restarted by a reload
 * keeps its sessions and a new token ends them all.  Every action is a POST
 * whose form carries a CSRF token, an HMAC of the session.  Every response
 * carries a Content-Security-Policy without inline script.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "console_int.h"
#include "kpool_cmd.h"

#define FORM_MAX    16384 /* bytes of a POST's fields */
#define LOGIN_FAILS 10	  /* wrong tokens within a minute before logins wait */
#define COOKIE	    "kpool_session"
#define CSP                                                                                        \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                \
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

struct kp_console *kp_cons;

static volatile sig_atomic_t stop;
static int wake[2] = {-1, -1};
static bool have_token;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t fails[LOGIN_FAILS];

extern const unsigned char kp_asset_css[], kp_asset_js[];
extern const size_t kp_asset_css_len, kp_asset_js_len;

/* ---- logins ---------------------------------------------------------------------- */

/* Whether logins must wait: too many wrong tokens within the last minute. */
static bool login_throttled(bool failed_now)
{
	int64_t now = kp_mono_ms();
	int recent = 0;

	pthread_mutex_lock(&fail_lock);
	if (failed_now) {
		int oldest = 0;
		for (int i = 1; i < LOGIN_FAILS; i++)
			if (fails[i] < fails[oldest])
				oldest = i;
		fails[oldest] = now;
	}
	for (int i = 0; i < LOGIN_FAILS; i++)
		recent += fails[i] && now - fails[i] < 60000;
	pthread_mutex_unlock(&fail_lock);
	return recent >= LOGIN_FAILS;
}

/* ---- requests ------------------------------------------------------------------- */

/* What one connection's request gathers before it is answered. */
struct ctx {
	struct MHD_PostProcessor *pp;
	struct kp_kv *form;
	size_t n_form, bytes;
	bool too_big;
};

/* MHD's post processor hands the fields over in pieces; they are joined here. */
static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key,
				const char *filename, const char *type, const char *enc,
				const char *data, uint64_t off, size_t size)
{
	struct ctx *x = cls;
	struct kp_kv *kv = NULL;

	(void)kind, (void)filename, (void)type, (void)enc;
	x->bytes += size + strlen(key);
	if (x->bytes > FORM_MAX) {
		x->too_big = true;
		return MHD_NO;
	}
	if (off > 0 && x->n_form && strcmp(x->form[x->n_form - 1].key, key) == 0) {
		kv = &x->form[x->n_form - 1];
	} else {
		struct kp_kv *f = realloc(x->form, (x->n_form + 1) * sizeof(*f));
		if (f == NULL)
			return MHD_NO;
		x->form = f;
		kv = &f[x->n_form++];
		memset(kv, 0, sizeof(*kv));
		kv->key = strdup(key);
		kv->value = strdup("");
		if (kv->key == NULL || kv->value == NULL)
			return MHD_NO;
	}
	size_t had = strlen(kv->value);
	char *v = realloc(kv->value, had + size + 1);
	if (v == NULL)
		return MHD_NO;
	memcpy(v + had, data, size);
	v[had + size] = '\0';
	kv->value = v;
	return MHD_YES;
}

/* Frees a request's context at its end. */
static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct ctx *x = *con_cls;

	(void)cls, (void)c, (void)toe;
	if (x == NULL)
		return;
	if (x->pp)
		MHD_destroy_post_processor(x->pp);
	for (size_t i = 0; i < x->n_form; i++) {
		free(x->form[i].key);
		free(x->form[i].value);
	}
	free(x->form);
	free(x);
	*con_cls = NULL;
}

/* Sends resp with the headers every answer has; cookie, if not NULL, is set. */
static enum MHD_Result send_resp(struct MHD_Connection *c, struct kp_resp *resp, const char *cookie)
{
	struct MHD_Response *r;
	enum MHD_Result ok;

	if (resp->location[0] && resp->status == 0)
		resp->status = MHD_HTTP_SEE_OTHER;
	if (resp->status == 0)
		resp->status = MHD_HTTP_OK;
	r = MHD_create_response_from_buffer(resp->body.n, resp->body.s ? resp->body.s : "",
					    resp->body.s ? MHD_RESPMEM_MUST_FREE
							 : MHD_RESPMEM_PERSISTENT);
	resp->body.s = NULL;
	MHD_add_response_header(r, "Content-Type",
				resp->type ? resp->type : "text/html; charset=utf-8");
	MHD_add_response_header(r, "Content-Security-Policy", CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (resp->location[0])
		MHD_add_response_header(r, "Location", resp->location);
	if (resp->records_read[0])
		MHD_add_response_header(r, "X-Kpool-Records-Read", resp->records_read);
	if (cookie)
		MHD_add_response_header(r, "Set-Cookie", cookie);
	ok = MHD_queue_response(c, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	return ok;
}

/* The login page; wrong says the last token was wrong. */
static void login_page(const struct kp_req *r, struct kp_resp *resp, const char *why)
{
	struct kp_buf *b = &resp->body;

	resp->status = why ? MHD_HTTP_FORBIDDEN : MHD_HTTP_OK;
	kp_buf_printf(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			 "<title>Log in - kpool</title>"
			 "<link rel=\"stylesheet\" href=\"/static/console.css\"></head>"
			 "<body class=\"login\"><main><h1>kpool</h1>");
	if (why) {
		kp_buf_printf(b, "<p class=\"error\" id=\"error\">");
		kp_buf_htmls(b, why);
		kp_buf_printf(b, "</p>");
	}
	kp_buf_printf(b,
		      "<form method=\"post\" action=\"/login\" id=\"login\">"
		      "<label for=\"token\">Token</label>"
		      "<input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"off\" "
		      "autofocus required>"
		      "<p class=\"hint\">the first line of kpoold's [console] token_file</p>"
		      "<button type=\"submit\">Log in</button></form></main></body></html>\n");
	(void)r;
}

/* The client's address, numeric, for the log ("?" when it cannot be told). */
static const char *client_of(struct MHD_Connection *c)
{
	static __thread char host[NI_MAXHOST];
	const union MHD_ConnectionInfo *i =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = i ? i->client_addr : NULL;
	socklen_t len = sa && sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							: sizeof(struct sockaddr_in);

	if (sa == NULL || getnameinfo(sa, len, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
		return "?";
	return host;
}

/* Splits path's segments after prefix: "/dlq/T/0:5/replay" → T, 0:5, replay. */
static int segments(const char *path, char seg[][256], int max)
{
	int n = 0;

	while (*path == '/' && n < max) {
		const char *end = path + 1 + strcspn(path + 1, "/");
		size_t len = (size_t)(end - path - 1);
		if (len == 0 || len >= 256)
			return -1;
		memcpy(seg[n], path + 1, len);
		seg[n][len] = '\0';
		n++;
		path = end;
	}
	return *path ? -1 : n;
}

/* Routes a request that passed the login and CSRF checks to its page. */
static void route(struct kp_req *r, struct kp_resp *resp)
{
	char seg[5][256];
	int n = segments(r->path, seg, 5);
	bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;

	if (strcmp(r->path, "/") == 0 && get) {
		kp_page_overview(r, resp);
		return;
	}
	if (n == 2 && strcmp(seg[0], "api") == 0 && strcmp(seg[1], "overview") == 0 && get) {
		kp_api_overview(r, resp);
		return;
	}
	if (n == 1 && strcmp(seg[0], "chart.svg") == 0 && get) {
		kp_chart_svg(r, resp);
		return;
	}
	if (n == 1 && strcmp(seg[0], "processes") == 0 && get) {
		kp_page_processes(r, resp);
		return;
	}
	if (n == 3 && strcmp(seg[0], "processes") == 0 && strcmp(seg[2], "restart") == 0 && !get) {
		kp_act_restart(r, resp, seg[1]);
		return;
	}
	if (n == 3 && strcmp(seg[0], "bindings") == 0 && !get &&
	    (strcmp(seg[2], "pause") == 0 || strcmp(seg[2], "resume") == 0)) {
		kp_act_pause(r, resp, seg[1], strcmp(seg[2], "pause") == 0);
		return;
	}
	if (n == 1 && strcmp(seg[0], "dlq") == 0 && get) {
		kp_page_dlq_topics(r, resp);
		return;
	}
	if (n == 2 && strcmp(seg[0], "dlq") == 0 && get) {
		kp_page_dlq_list(r, resp, seg[1]);
		return;
	}
	if (n == 3 && strcmp(seg[0], "dlq") == 0 && strcmp(seg[2], "replay") == 0 && !get) {
		kp_act_replay(r, resp, seg[1], NULL);
		return;
	}
	if (n == 3 && strcmp(seg[0], "dlq") == 0 && get) {
		kp_page_dlq_record(r, resp, seg[1], seg[2]);
		return;
	}
	if (n == 4 && strcmp(seg[0], "dlq") == 0 && strcmp(seg[3], "replay") == 0 && !get) {
		kp_act_replay(r, resp, seg[1], seg[2]);
		return;
	}
	if (n == 2 && strcmp(seg[0], "replays") == 0 && get) {
		kp_page_replay(r, resp, seg[1]);
		return;
	}
	if (get)
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND, "There is no page %s here.", r->path);
	else
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND, "There is no action %s here.", r->path);
}

/* Every request: static files, the login, the session and CSRF checks, then route(). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct ctx *x = *con_cls;
	struct kp_resp resp = {0};
	struct kp_req r = {.c = c, .method = method, .path = url, .csrf = ""};
	const char *session = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, COOKIE);
	char csrf[33] = "", cookie[256] = "", *set_cookie = NULL;
	bool post = strcmp(method, "POST") == 0;

	(void)cls, (void)version;
	if (x == NULL) { /* the first call: headers only */
		if ((x = calloc(1, sizeof(*x))) == NULL)
			return MHD_NO;
		*con_cls = x;
		if (post)
			x->pp = MHD_create_post_processor(c, 4096, on_field, x);
		return MHD_YES;
	}
	if (*upload_size) {
		if (x->pp && !x->too_big)
			MHD_post_process(x->pp, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	r.form = x->form;
	r.n_form = x->n_form;
	if (!post && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		kp_page_error(&resp, &r, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not a method here.",
			      method);
		return send_resp(c, &resp, NULL);
	}
	if (strcmp(url, "/favicon.ico") == 0) { /* none: browsers ask all the same */
		resp.status = MHD_HTTP_NO_CONTENT;
		return send_resp(c, &resp, NULL);
	}
	if (strcmp(url, "/static/console.css") == 0 || strcmp(url, "/static/console.js") == 0) {
		bool css = url[16] == 'c';
		resp.type = css ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
		kp_buf_put(&resp.body, css ? kp_asset_css : kp_asset_js,
			   css ? kp_asset_css_len : kp_asset_js_len);
		return send_resp(c, &resp, NULL);
	}
	if (!have_token) { /* read-only: nothing to log in to, and no action */
		if (post) {
			kp_page_error(&resp, &r, MHD_HTTP_FORBIDDEN,
				      "This console is read-only: [console] token_file is not set "
				      "in %s.",
				      kp_cons->conf->path);
			return send_resp(c, &resp, NULL);
		}
		if (strcmp(url, "/login") == 0) {
			snprintf(resp.location, sizeof(resp.location), "/");
			return send_resp(c, &resp, NULL);
		}
		route(&r, &resp);
		return send_resp(c, &resp, NULL);
	}
	if (post && (x->too_big || x->pp == NULL)) {
		kp_page_error(
		    &resp, &r, MHD_HTTP_BAD_REQUEST,
		    "The form is not one this console sends (url-encoded, %d bytes at most).",
		    FORM_MAX);
		return send_resp(c, &resp, NULL);
	}
	if (strcmp(url, "/login") == 0) {
		const char *token = post ? kp_form_get(&r, "token") : NULL;
		if (!post) {
			login_page(&r, &resp, NULL);
		} else if (login_throttled(false)) {
			login_page(&r, &resp, "Too many wrong tokens: wait a minute.");
			resp.status = MHD_HTTP_TOO_MANY_REQUESTS;
		} else if (token == NULL || !kp_session_token_ok(token)) {
			login_throttled(true);
			kp_log(KP_NOTICE, "console: a wrong token from %s", client_of(c));
			login_page(&r, &resp, "That is not the token.");
		} else {
			char value[128];
			kp_session_new(kp_cons->conf->console_session_ms, value, sizeof(value));
			snprintf(cookie, sizeof(cookie),
				 COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%" PRId64
					"%s",
				 value, kp_cons->conf->console_session_ms / 1000,
				 kp_cons->tls ? "; Secure" : "");
			set_cookie = cookie;
			snprintf(resp.location, sizeof(resp.location), "/");
		}
		return send_resp(c, &resp, set_cookie);
	}
	if (!kp_session_ok(session)) {
		if (post) {
			kp_page_error(&resp, &r, MHD_HTTP_FORBIDDEN, "Log in first.");
		} else {
			snprintf(resp.location, sizeof(resp.location), "/login");
		}
		return send_resp(c, &resp, NULL);
	}
	kp_session_csrf(session, csrf, sizeof(csrf));
	r.csrf = csrf;
	r.can_act = true;
	if (post) {
		const char *theirs = kp_form_get(&r, "csrf");
		if (theirs == NULL || strlen(theirs) != strlen(csrf) ||
		    CRYPTO_memcmp(theirs, csrf, strlen(csrf)) != 0) {
			kp_page_error(&resp, &r, MHD_HTTP_FORBIDDEN,
				      "This form has no valid CSRF token: reload the page and try "
				      "again.");
			return send_resp(c, &resp, NULL);
		}
		if (strcmp(url, "/logout") == 0) {
			snprintf(cookie, sizeof(cookie),
				 COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
				 kp_cons->tls ? "; Secure" : "");
			snprintf(resp.location, sizeof(resp.location), "/login");
			return send_resp(c, &resp, cookie);
		}
	}
	route(&r, &resp);
	return send_resp(c, &resp, NULL);
}

/* ---- the process ------------------------------------------------------------------- */

/* SIGTERM and SIGINT: the loop stops. */
static void on_signal(int sig)
{
	int e = errno;

	(void)sig;
	stop = 1;
	if (write(wake[1], "", 1) < 0) {
		/* the flag is enough: the loop wakes within a sample anyway */
	}
	errno = e;
}

/* Reads a whole small file (a PEM) into a string; NULL with err. */
static char *slurp(const char *path, char *err, size_t len)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0;

	if (f == NULL) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (getdelim(&s, &n, '\0', f) < 0) {
		free(s);
		s = NULL;
		snprintf(err, len, "%s: empty or unreadable", path);
	}
	fclose(f);
	return s;
}

/*
 * Reads [console] token_file: its first line is the token.  A file others
 * may change is refused; one anyone may read is used, with a warning (the
 * demo's token comes from a checkout).  0, or -1 with err.
 */
static int token_read(const struct kp_conf *conf, char *err, size_t len)
{
	const char *path = conf->console_token_file;
	int at = conf->console_lines[0];
	struct stat st = {0};
	char *line = NULL;
	size_t n = 0;
	FILE *f = fopen(path, "r");
	int rc = -1;

	if (f == NULL) {
		snprintf(err, len, "%s:%d: [console] token_file: %s: %s", conf->path, at, path,
			 strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, len,
			 "%s:%d: [console] token_file: %s: others may change it (mode %03o): chmod "
			 "go-w it",
			 conf->path, at, path, (unsigned)(st.st_mode & 0777));
	} else if (getline(&line, &n, f) < 0 || (line[strcspn(line, "\r\n")] = '\0') ||
		   strlen(line) < 16) {
		snprintf(err, len,
			 "%s:%d: [console] token_file: %s: its first line must be a token of 16 "
			 "characters at least",
			 conf->path, at, path);
	} else {
		if (st.st_mode & S_IROTH)
			kp_log(KP_WARNING,
			       "%s:%d: [console] token_file: %s: anyone on this host may read "
			       "the token (mode %03o): chmod o-r it",
			       conf->path, at, path, (unsigned)(st.st_mode & 0777));
		kp_session_key(line);
		rc = 0;
	}
	if (line)
		OPENSSL_cleanse(line, strlen(line));
	free(line);
	fclose(f);
	return rc;
}

/* Checks what the console needs from the conf (token, certificate), for kpoold -t too. */
int kp_console_check(const struct kp_conf *conf, char *err, size_t len)
{
	char *cert, *pkey;

	if (conf->console_listen == NULL)
		return 0;
	if (conf->console_token_file && token_read(conf, err, len) < 0)
		return -1;
	if (conf->console_cert_file) {
		char why[512];
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			snprintf(err, len,
				 "%s:%d: [console] cert_file: this libmicrohttpd has no TLS",
				 conf->path, conf->console_lines[1]);
			return -1;
		}
		if ((cert = slurp(conf->console_cert_file, why, sizeof(why))) == NULL) {
			snprintf(err, len, "%s:%d: [console] cert_file: %s", conf->path,
				 conf->console_lines[1], why);
			return -1;
		}
		free(cert);
		if ((pkey = slurp(conf->console_key_file, why, sizeof(why))) == NULL) {
			snprintf(err, len, "%s:%d: [console] key_file: %s", conf->path,
				 conf->console_lines[2], why);
			return -1;
		}
		OPENSSL_cleanse(pkey, strlen(pkey));
		free(pkey);
	}
	return 0;
}

/* Serves the console until SIGTERM; returns the process's exit status. */
int kp_console_run(const struct kp_conf *conf, struct kp_slot *slots)
{
	static struct kp_console cs;
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV},
			*ai = NULL;
	char host[256], port[16], err[1024], path[4200], *cert = NULL, *pkey = NULL;
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d = NULL;
	unsigned flags;
	FILE *f;
	int p, rc = KP_EXIT_CONFIG;

	kp_cons = &cs;
	cs.conf = conf;
	cs.slots = slots;
	pthread_mutex_init(&cs.lock, NULL);
	pthread_mutex_init(&cs.runner_lock, NULL);
	cs.samples = calloc(conf->n_bindings ? conf->n_bindings : 1, sizeof(*cs.samples));
	if (cs.samples == NULL || pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0)
		return 1;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	have_token = conf->console_token_file != NULL;
	if (kp_console_check(conf, err, sizeof(err)) < 0) {
		kp_log(KP_ERROR, "console: %s", err);
		return KP_EXIT_CONFIG;
	}
	if (have_token && token_read(conf, err, sizeof(err)) < 0)
		return KP_EXIT_CONFIG;
	snprintf(path, sizeof(path), "%s/console", conf->state_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		kp_log(KP_ERROR, "console: %s: %s", path, strerror(errno));
		return 1;
	}
	if (kp_runner_run(path) < 0) /* before any thread, so it may fork */
		return 1;
	if (kp_hostport(conf->console_listen, host, sizeof(host), &p) < 0)
		goto out;
	snprintf(port, sizeof(port), "%d", p);
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
		kp_log(KP_ERROR, "console: listen %s: %s", conf->console_listen, gai_strerror(rc));
		rc = KP_EXIT_CONFIG;
		goto out;
	}
	rc = KP_EXIT_CONFIG;
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		(ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	if (conf->console_cert_file) {
		cert = slurp(conf->console_cert_file, err, sizeof(err));
		pkey = slurp(conf->console_key_file, err, sizeof(err));
		if (cert == NULL || pkey == NULL) {
			kp_log(KP_ERROR, "console: %s", err);
			goto out;
		}
		flags |= MHD_USE_TLS;
		cs.tls = true;
	}
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
			     ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_NOTIFY_COMPLETED,
			     on_done, NULL, cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
			     MHD_OPTION_HTTPS_MEM_KEY, pkey, MHD_OPTION_END);
	if (d == NULL) {
		kp_log(KP_ERROR, "console: cannot listen on %s (%s)", conf->console_listen,
		       errno ? strerror(errno) : "TLS setup failed?");
		goto out;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(path, sizeof(path), "%s/%s", conf->state_dir, KP_CONSOLE_FILE);
	if ((f = fopen(path, "w"))) {
		fprintf(f, "%s://%s%s%s:%u/\n", cs.tls ? "https" : "http",
			strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
			info ? info->port : 0);
		fclose(f);
	}
	kp_log(KP_INFO, "console on %s://%s:%u/ (%s)", cs.tls ? "https" : "http", host,
	       info ? info->port : 0, have_token ? "login with the token" : "read-only");
	while (!stop) {
		struct pollfd pw = {.fd = wake[0], .events = POLLIN};
		kp_overview_sample(&cs);
		poll(&pw, 1, KP_SAMPLE_MS);
	}
	rc = 0;
out:
	if (d)
		MHD_stop_daemon(d);
	if (ai)
		freeaddrinfo(ai);
	if (pkey)
		OPENSSL_cleanse(pkey, strlen(pkey));
	free(cert);
	free(pkey);
	close(cs.runner_fd); /* the runner ends when its replays have */
	return rc;
}
