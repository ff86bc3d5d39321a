/*
 * email.c - the email handler: a job {"to","subject","template","data"}
 * (bare, or as the "data" of a {"type","data","metadata"} envelope) becomes
 * a MIME message, rendered from template_dir/NAME.txt and/or NAME.html, and
 * goes out over SMTP with libesmtp, or into a directory as NAME.eml files.
 *
 * Everything a job says is checked before any connection: an address or a
 * header value with CR or LF, an invalid address, no recipient, a missing
 * template or value fail the job.  Nothing a job contains can add a header.
 * The Message-ID is derived from the event id, so a redelivered job produces
 * the same Message-ID and the receiving side can drop it.
 *
 * handle_batch sends the jobs of one batch in one SMTP session.
 */
#include "config.h"

/* before libesmtp.h, which declares what needs them only when they are there */
#include <auth-client.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libesmtp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "kpool_plugin.h"
#include "mime.h"
#include "opts.h"

#define MAX_TEMPLATE (1024 * 1024)
#define MAX_BATCH    64

static const struct kpool_option_spec email_options[] = {
    {.name = "smtp_url",
     .flags = KPOOL_OPT_REQUIRED,
     .desc = "smtp://HOST[:PORT], or file:///DIR to write each message as a .eml file there "
	     "instead (file://DIR: under state_dir)"},
    {.name = "starttls",
     .type = KPOOL_OPT_ENUM,
     .def = "if-available",
     .choices = "required|if-available|never",
     .desc = "TLS on the SMTP session; with TLS the server's certificate must verify and "
	     "name the server's host or address"},
    {.name = "ca_file",
     .type = KPOOL_OPT_PATH,
     .desc = "CA certificates (PEM) to trust besides the system's"},
    {.name = "username", .desc = "SMTP AUTH user, with password_file"},
    {.name = "password_file",
     .type = KPOOL_OPT_PATH,
     .desc = "the SMTP AUTH password: the file's first line"},
    {.name = "from", .desc = "the sender when a job gives none"},
    {.name = "template_dir",
     .type = KPOOL_OPT_PATH,
     .desc = "where the templates NAME.txt and NAME.html are"},
    {.name = "timeout",
     .type = KPOOL_OPT_DURATION,
     .def = "30s",
     .min = 1,
     .desc = "for the connect to the server and for each step of the SMTP dialogue"},
    {.name = "batch",
     .type = KPOOL_OPT_BOOL,
     .def = "on",
     .desc = "the jobs of one batch share one SMTP session"},
    {.name = NULL},
};

enum starttls { TLS_IF_AVAILABLE, TLS_REQUIRED, TLS_NEVER };

struct tmpl {
	char *name;
	char *txt, *html; /* either may be NULL */
	char *subject;	  /* from the .txt's first line "Subject: ...", or NULL */
};

struct email {
	const struct kpool_host *host;
	char *server;	/* host:port, or NULL with file_dir */
	char *file_dir; /* file:// transport */
	enum starttls starttls;
	char *username, *password;
	char *from;
	char *template_dir;
	char *ca_file;
	long timeout_ms;
	bool batch; /* the jobs of a batch share one SMTP session */
	struct tmpl *t;
	size_t n_t;
	SSL_CTX *ssl;
};

/* One outgoing message: the text, the envelope, and what became of it. */
struct mail {
	struct mime_msg mm;
	char id[33]; /* hex, from the event id */
	smtp_message_t m;
	smtp_recipient_t r[MIME_MAX_RCPT];
};

static void mail_free(struct mail *ml)
{
	mime_msg_free(&ml->mm);
	memset(ml, 0, sizeof(*ml));
}

/* ---- templates ------------------------------------------------------- */

static bool name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

static struct tmpl *tmpl_get(struct email *e, const char *name, bool create)
{
	for (size_t i = 0; i < e->n_t; i++)
		if (strcmp(e->t[i].name, name) == 0)
			return &e->t[i];
	if (!create)
		return NULL;
	struct tmpl *t = realloc(e->t, (e->n_t + 1) * sizeof(*t));
	if (t == NULL)
		return NULL;
	e->t = t;
	t = &e->t[e->n_t++];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	return t;
}

/* Reads every NAME.txt and NAME.html of template_dir, once. */
static int templates_load(struct email *e, char *err, size_t len)
{
	DIR *d = opendir(e->template_dir);
	struct dirent *de;
	int rc = 0;

	if (d == NULL) {
		snprintf(err, len, "template_dir %s: %s", e->template_dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char name[128], path[4096];
		const char *dot = strrchr(de->d_name, '.');
		bool html;

		if (dot == NULL || (strcmp(dot, ".txt") != 0 && strcmp(dot, ".html") != 0))
			continue;
		html = strcmp(dot, ".html") == 0;
		snprintf(name, sizeof(name), "%.*s", (int)(dot - de->d_name), de->d_name);
		if (!name_ok(name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", e->template_dir, de->d_name);
		char *text = util_read_file(path, MAX_TEMPLATE, err, len);
		struct tmpl *t = text ? tmpl_get(e, name, true) : NULL;
		if (t == NULL) {
			free(text);
			rc = -1;
			break;
		}
		if (html) {
			t->html = text;
			continue;
		}
		if (strncmp(text, "Subject:", 8) == 0) { /* the default subject, then the body */
			char *nl = strchr(text, '\n'), *subj = text + 8;
			const char *body = nl ? nl + 1 : "";
			size_t n = nl ? (size_t)(nl - subj) : strlen(subj);
			while (n > 0 && (*subj == ' ' || *subj == '\t'))
				subj++, n--;
			while (n > 0 && (subj[n - 1] == '\r' || subj[n - 1] == ' '))
				n--;
			t->subject = strndup(subj, n);
			memmove(text, body, strlen(body) + 1);
		}
		t->txt = text;
	}
	closedir(d);
	return rc;
}

static const char *str_field(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The event id as the Message-ID's left part: hex SHA-256, the same for a redelivery. */
static void message_id(const char *event_id, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(event_id, strlen(event_id), md, &n, EVP_sha256(), NULL);
	util_hex(md, 16, out);
}

/* Builds the message of one job; false with reason if the job cannot be one. */
static bool build(struct email *e, const struct kpool_job *job, struct mail *ml, char *reason)
{
	json_error_t jerr;
	json_t *root = json_loadb(job->value, job->value_len, 0, &jerr), *j, *data;
	char *text = NULL, *html = NULL, *subject = NULL;
	struct mime_content c = {.default_from = e->from, .id = ml->id, .date = time(NULL)};
	const char *tname;
	bool ok = false;

	if (!json_is_object(root)) {
		snprintf(reason, KPOOL_REASON_MAX, "job is not a JSON object");
		goto out;
	}
	j = util_job_body(root); /* the envelope form: the email is its data */
	data = json_object_get(j, "data");
	if (data == NULL)
		data = json_object();
	else
		json_incref(data);

	/* Content first: the template, or literal text/html. */
	tname = str_field(j, "template");
	c.subject = str_field(j, "subject");
	if (tname) {
		struct tmpl *t = name_ok(tname) ? tmpl_get(e, tname, false) : NULL;
		if (t == NULL) {
			snprintf(reason, KPOOL_REASON_MAX, "template %.64s: not in %s", tname,
				 e->template_dir ? e->template_dir : "(no template_dir)");
			goto out_data;
		}
		if ((t->txt && !(text = mime_render(tname, "txt", t->txt, data, false, reason))) ||
		    (t->html && !(html = mime_render(tname, "html", t->html, data, true, reason))))
			goto out_data;
		if (c.subject == NULL && t->subject) {
			subject = mime_render(tname, "txt", t->subject, data, false, reason);
			if (subject == NULL)
				goto out_data;
			c.subject = subject;
		}
	} else {
		const char *t = str_field(j, "text"), *h = str_field(j, "html");
		text = t ? strdup(t) : NULL;
		html = h ? strdup(h) : NULL;
		if (text == NULL && html == NULL) {
			snprintf(reason, KPOOL_REASON_MAX, "no template, text or html");
			goto out_data;
		}
	}
	c.text = text;
	c.html = html;
	message_id(job->event_id, ml->id);
	ok = mime_message(&ml->mm, j, &c, reason);
out_data:
	json_decref(data);
out:
	json_decref(root);
	free(text);
	free(html);
	free(subject);
	return ok;
}

/* ---- transports -------------------------------------------------------- */

static int mkdir_p(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s", dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0750) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

/* file://: DIR/ID.eml, written whole (temp file, fsync, rename); a redelivery overwrites it. */
static kpool_status write_file(struct email *e, struct mail *ml, char *reason)
{
	char tmp[4096], path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s.eml", e->file_dir, ml->id);
	snprintf(tmp, sizeof(tmp), "%s/.%s.eml.tmp", e->file_dir, ml->id);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 && errno == ENOENT && mkdir_p(e->file_dir) == 0)
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(reason, KPOOL_REASON_MAX, "%s: %s", tmp, strerror(errno));
		return KPOOL_RETRY;
	}
	char env[1024];
	int n = snprintf(env, sizeof(env), "X-Kpool-Envelope-From: %s\r\n", ml->mm.from);
	bool ok = write(fd, env, (size_t)n) == n;
	for (size_t i = 0; ok && i < ml->mm.n_rcpt; i++) {
		n = snprintf(env, sizeof(env), "X-Kpool-Envelope-To: %s\r\n", ml->mm.rcpt[i]);
		ok = write(fd, env, (size_t)n) == n;
	}
	ok = ok && write(fd, ml->mm.text.p, ml->mm.text.len) == (ssize_t)ml->mm.text.len &&
	     fsync(fd) == 0;
	if (close(fd) < 0 || !ok || rename(tmp, path) < 0) {
		snprintf(reason, KPOOL_REASON_MAX, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return KPOOL_RETRY;
	}
	return KPOOL_DONE;
}

/*
 * libesmtp bounds the reads and writes of a session (its Timeout_* kinds),
 * but not its connect(2): it connects with a blocking connect() to each
 * address the server's name resolves to, which against a host that drops
 * SYNs waits as long as the kernel retries them (over two minutes).  So while
 * it connects, a timer of this thread sends it CONNECT_SIGNAL once `timeout`
 * has passed and every CONNECT_REPEAT_MS after, until it is connected; the
 * handler, installed without SA_RESTART, only makes connect() fail with EINTR.
 */
#define CONNECT_SIGNAL	  SIGRTMIN
#define CONNECT_REPEAT_MS 100
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid /* glibc 2.36 does not name it */
#endif

struct connect_timer {
	timer_t id;
	bool made;
	long ms;
	struct sigaction old;
};

static volatile sig_atomic_t connect_interrupted;

static void on_connect_timer(int sig)
{
	(void)sig;
	connect_interrupted = 1;
}

/* Arms the timer for a connect that may take ms, or disarms it (ms 0). */
static void connect_timer_set(struct connect_timer *t, long ms)
{
	struct itimerspec its = {0};

	if (!t->made)
		return;
	if (ms > 0) {
		its.it_value.tv_sec = ms / 1000;
		its.it_value.tv_nsec = ms % 1000 * 1000000L;
		its.it_interval.tv_nsec = CONNECT_REPEAT_MS * 1000000L;
	}
	timer_settime(t->id, 0, &its, NULL);
}

/* Makes and arms the timer for this thread; without one (it cannot be
 * made), a connect is bounded by the kernel only, and the log says so. */
static void connect_timer_start(struct email *e, struct connect_timer *t)
{
	struct sigaction sa = {.sa_handler = on_connect_timer}; /* no SA_RESTART */
	struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = CONNECT_SIGNAL};

	memset(t, 0, sizeof(*t));
	t->ms = e->timeout_ms;
	connect_interrupted = 0;
	sev.sigev_notify_thread_id = gettid();
	sigemptyset(&sa.sa_mask);
	if (sigaction(CONNECT_SIGNAL, &sa, &t->old) < 0) {
		e->host->log(LOG_WARNING, "email: sigaction: %s (connect without a timeout)",
			     strerror(errno));
		return;
	}
	if (timer_create(CLOCK_MONOTONIC, &sev, &t->id) < 0) {
		e->host->log(LOG_WARNING, "email: timer_create: %s (connect without a timeout)",
			     strerror(errno));
		sigaction(CONNECT_SIGNAL, &t->old, NULL);
		return;
	}
	t->made = true;
	connect_timer_set(t, t->ms);
}

/* Deletes the timer, and puts back what CONNECT_SIGNAL did before. */
static void connect_timer_end(struct connect_timer *t)
{
	if (!t->made)
		return;
	timer_delete(t->id);
	sigaction(CONNECT_SIGNAL, &t->old, NULL);
	t->made = false;
}

struct session_info {
	bool no_starttls;
	bool bad_certificate;
	char last_error[200]; /* the server's last 4xx or 5xx reply */
	char auth_error[200]; /* its answer to AUTH, when it refused */
	bool auth_sent, auth_ok;
	bool connected; /* to some address of the server */
	struct connect_timer timer;
};

/* The protocol as it goes: keeps the server's last error reply, for a session that fails. */
static void on_monitor(const char *buf, int len, int writing, void *arg)
{
	struct session_info *si = arg;

	if (writing != SMTP_CB_READING) {
		if (len >= 5 && strncmp(buf, "AUTH ", 5) == 0)
			si->auth_sent = true;
		return;
	}
	if (len >= 3 && strncmp(buf, "235", 3) == 0)
		si->auth_ok = true;
	if (len >= 3 && (buf[0] == '4' || buf[0] == '5') && isdigit((unsigned char)buf[1]) &&
	    isdigit((unsigned char)buf[2])) {
		const char *nl = memchr(buf, '\r', (size_t)len);
		int n = nl ? (int)(nl - buf) : len;
		snprintf(si->last_error, sizeof(si->last_error), "%.*s", n, buf);
		if (si->auth_sent && !si->auth_ok && si->auth_error[0] == '\0')
			snprintf(si->auth_error, sizeof(si->auth_error), "%.*s", n, buf);
	}
}

/* Why OpenSSL refused the server's certificate in this session (one worker, one thread). */
static char verify_error[160];

static int on_verify(int ok, X509_STORE_CTX *ctx)
{
	if (!ok && verify_error[0] == '\0')
		snprintf(verify_error, sizeof(verify_error), "%s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	return ok;
}

static void on_event(smtp_session_t s, int ev, void *arg, ...)
{
	struct session_info *si = arg;
	va_list ap;

	(void)s;
	va_start(ap, arg);
	if (ev == SMTP_EV_CONNECT) {
		si->connected = true;
		connect_timer_set(&si->timer, 0); /* the Timeout_* kinds take over */
	} else if (ev == SMTP_EV_DISCONNECT) {
		connect_timer_set(&si->timer, si->timer.ms); /* for its next address, if any */
	} else if (ev == SMTP_EV_EXTNA_STARTTLS) {
		si->no_starttls = true;
	} else if (ev == SMTP_EV_WRONG_PEER_CERTIFICATE) {
		/* OpenSSL checked the name (or IP address) in the handshake already;
		 * libesmtp's own check knows no IP addresses. */
		int *ok = va_arg(ap, int *);
		if (ok)
			*ok = 1;
	} else if (ev == SMTP_EV_INVALID_PEER_CERTIFICATE || ev == SMTP_EV_NO_PEER_CERTIFICATE) {
		if (ev == SMTP_EV_INVALID_PEER_CERTIFICATE)
			(void)va_arg(ap, long);
		int *ok = va_arg(ap, int *);
		if (ok)
			*ok = 0; /* never deliver to a server we cannot verify */
		si->bad_certificate = true;
	}
	va_end(ap);
}

static int on_auth(auth_client_request_t req, char **result, int fields, void *arg)
{
	struct email *e = arg;

	for (int i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_USER)
			result[i] = e->username;
		else if (req[i].flags & AUTH_PASS)
			result[i] = e->password;
		else
			return 0;
	}
	return 1;
}

/* The outcome of one message from its SMTP statuses: the worst answer decides. */
static kpool_status outcome(struct mail *ml, const char *session_err, char *reason)
{
	const smtp_status_t *st = smtp_reverse_path_status(ml->m), *worst = NULL;
	const char *who = NULL;

	if (st && st->code >= 400)
		worst = st;
	for (size_t i = 0; i < ml->mm.n_rcpt; i++) {
		st = smtp_recipient_status(ml->r[i]);
		if (st && st->code >= 400 &&
		    (worst == NULL || st->code / 100 > worst->code / 100)) {
			worst = st;
			who = ml->mm.rcpt[i];
		}
	}
	if (worst == NULL) {
		st = smtp_message_transfer_status(ml->m);
		if (st && st->code >= 200 && st->code < 300)
			return KPOOL_DONE;
		if (st && st->code >= 400)
			worst = st;
	}
	if (worst == NULL) { /* no answer at all: the session failed */
		snprintf(reason, KPOOL_REASON_MAX, "%s", session_err);
		return KPOOL_RETRY;
	}
	snprintf(reason, KPOOL_REASON_MAX, "%s%s%d %s", who ? who : "", who ? ": " : "",
		 worst->code, worst->text ? worst->text : "");
	reason[strcspn(reason, "\r\n")] = '\0'; /* a reply ends with CRLF */
	return worst->code >= 500 ? KPOOL_FAIL : KPOOL_RETRY;
}

/* Sends the messages in one SMTP session; sets each job's status and reason. */
static void send_session(struct email *e, struct mail **ml, size_t n, kpool_status *status,
			 char (*reason)[KPOOL_REASON_MAX])
{
	smtp_session_t s = smtp_create_session();
	struct session_info si = {0};
	auth_context_t auth = NULL;
	char err[256] = "";

	if (s == NULL || smtp_set_server(s, e->server) == 0) {
		for (size_t i = 0; i < n; i++) {
			status[i] = KPOOL_RETRY;
			snprintf(reason[i], KPOOL_REASON_MAX, "smtp: cannot start a session");
		}
		if (s)
			smtp_destroy_session(s);
		return;
	}
	smtp_set_eventcb(s, on_event, &si);
	smtp_set_monitorcb(s, on_monitor, &si, 0);
	for (int w = Timeout_GREETING; w <= Timeout_DATA2; w++)
		smtp_set_timeout(s, w | Timeout_OVERRIDE_RFC2822_MINIMUM, e->timeout_ms);
	smtp_starttls_enable(s, e->starttls == TLS_REQUIRED ? Starttls_REQUIRED
				: e->starttls == TLS_NEVER  ? Starttls_DISABLED
							    : Starttls_ENABLED);
	if (e->ssl)
		smtp_starttls_set_ctx(s, e->ssl);
	if (e->username) {
		auth = auth_create_context();
		auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0);
		auth_set_interact_cb(auth, on_auth, e);
		smtp_auth_set_context(s, auth);
	}
	for (size_t i = 0; i < n; i++) {
		ml[i]->m = smtp_add_message(s);
		smtp_set_reverse_path(ml[i]->m, ml[i]->mm.from);
		for (size_t r = 0; r < ml[i]->mm.n_rcpt; r++)
			ml[i]->r[r] = smtp_add_recipient(ml[i]->m, ml[i]->mm.rcpt[r]);
		smtp_set_message_str(ml[i]->m, ml[i]->mm.text.p);
	}
	verify_error[0] = '\0';
	connect_timer_start(e, &si.timer);
	int started = smtp_start_session(s);
	connect_timer_end(&si.timer);
	if (!started && !si.connected && connect_interrupted) {
		snprintf(err, sizeof(err), "smtp %s: no connection within %ld ms (timeout)",
			 e->server, e->timeout_ms);
	} else if (!started) {
		char b[200];
		snprintf(err, sizeof(err), "smtp %s: %s", e->server,
			 smtp_strerror(smtp_errno(), b, sizeof(b)));
	} else if (si.last_error[0]) {
		snprintf(err, sizeof(err), "smtp %s: %s", e->server, si.last_error);
	} else {
		snprintf(err, sizeof(err), "smtp %s: the session ended early", e->server);
	}
	if (si.no_starttls && e->starttls == TLS_REQUIRED)
		snprintf(err, sizeof(err),
			 "smtp %s: the server does not offer STARTTLS (starttls = required)",
			 e->server);
	else if (si.bad_certificate || verify_error[0])
		snprintf(err, sizeof(err), "smtp %s: the server's certificate does not verify: %s",
			 e->server, verify_error[0] ? verify_error : "no certificate");
	for (size_t i = 0; i < n; i++) {
		reason[i][0] = '\0';
		status[i] = outcome(ml[i], err, reason[i]);
		/* libesmtp goes on without AUTH when it fails; what the server then
		 * refused was refused for want of it: a matter of the credentials,
		 * not of the job, so it is retried. */
		if (status[i] != KPOOL_DONE && si.auth_sent && !si.auth_ok) {
			status[i] = KPOOL_RETRY;
			snprintf(reason[i], KPOOL_REASON_MAX,
				 "smtp %s: authentication as %s failed: %s", e->server, e->username,
				 si.auth_error[0] ? si.auth_error : "no answer from the server");
		}
	}
	smtp_destroy_session(s);
	if (auth)
		auth_destroy_context(auth);
}

static void handle_batch(void *state, const struct kpool_job *const *jobs, size_t n,
			 kpool_status *status, char (*reason)[KPOOL_REASON_MAX])
{
	struct email *e = state;
	struct mail mails[MAX_BATCH], *ok[MAX_BATCH];
	size_t n_ok = 0, idx[MAX_BATCH];
	kpool_status st[MAX_BATCH];
	char(*why)[KPOOL_REASON_MAX] = calloc(MAX_BATCH, KPOOL_REASON_MAX);

	for (size_t base = 0; base < n; base += MAX_BATCH) {
		size_t m = n - base < MAX_BATCH ? n - base : MAX_BATCH;
		n_ok = 0;
		memset(mails, 0, sizeof(mails));
		for (size_t i = 0; i < m; i++) {
			reason[base + i][0] = '\0';
			if (!build(e, jobs[base + i], &mails[i], reason[base + i])) {
				status[base + i] = KPOOL_FAIL; /* before any connection */
				continue;
			}
			if (e->file_dir) {
				status[base + i] = write_file(e, &mails[i], reason[base + i]);
				continue;
			}
			idx[n_ok] = base + i;
			ok[n_ok++] = &mails[i];
		}
		if (n_ok > 0 && why && !e->batch) {
			for (size_t k = 0; k < n_ok; k++) {
				send_session(e, &ok[k], 1, &st[k], &why[k]);
				status[idx[k]] = st[k];
				memcpy(reason[idx[k]], why[k], KPOOL_REASON_MAX);
			}
		} else if (n_ok > 0 && why) {
			send_session(e, ok, n_ok, st, why);
			for (size_t k = 0; k < n_ok; k++) {
				status[idx[k]] = st[k];
				memcpy(reason[idx[k]], why[k], KPOOL_REASON_MAX);
			}
		} else if (n_ok > 0) {
			for (size_t k = 0; k < n_ok; k++) {
				status[idx[k]] = KPOOL_RETRY;
				snprintf(reason[idx[k]], KPOOL_REASON_MAX, "out of memory");
			}
		}
		for (size_t i = 0; i < m; i++)
			mail_free(&mails[i]);
	}
	free(why);
}

static kpool_status handle(void *state, const struct kpool_job *job, char reason[KPOOL_REASON_MAX])
{
	kpool_status st = KPOOL_FAIL;
	const struct kpool_job *jobs[1] = {job};

	handle_batch(state, jobs, 1, &st, (char(*)[KPOOL_REASON_MAX])reason);
	return st;
}

/* ---- options ------------------------------------------------------------ */

static void email_free(struct email *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n_t; i++) {
		free(e->t[i].name);
		free(e->t[i].txt);
		free(e->t[i].html);
		free(e->t[i].subject);
	}
	free(e->t);
	free(e->server);
	free(e->file_dir);
	free(e->username);
	if (e->password) {
		explicit_bzero(e->password, strlen(e->password));
		free(e->password);
	}
	free(e->from);
	free(e->template_dir);
	free(e->ca_file);
	if (e->ssl)
		SSL_CTX_free(e->ssl);
	free(e);
}

static int set_url(struct email *e, const struct kpool_host *host, const char *url, char *err,
		   size_t len)
{
	if (strncmp(url, "smtp://", 7) == 0) {
		const char *hp = url + 7;
		size_t n = strcspn(hp, "/");
		if (n == 0) {
			snprintf(err, len, "smtp_url %s: no host", url);
			return -1;
		}
		e->server = strndup(hp, n);
		if (e->server && strchr(e->server, ':') == NULL) {
			char *with = NULL;
			if (asprintf(&with, "%s:25", e->server) < 0)
				return -1;
			free(e->server);
			e->server = with;
		}
		return e->server ? 0 : -1;
	}
	if (strncmp(url, "smtps://", 8) == 0) {
		snprintf(err, len,
			 "smtp_url %s: implicit TLS (smtps://) is not something libesmtp 1.1 does; "
			 "use smtp://HOST:587 with starttls = required",
			 url);
		return -1;
	}
	if (strncmp(url, "file://", 7) == 0) {
		const char *p = url + 7;
		if (*p == '/')
			e->file_dir = strdup(p);
		else if (asprintf(&e->file_dir, "%s/%s", host->state_dir, p) < 0)
			e->file_dir = NULL;
		if (e->file_dir == NULL)
			return -1;
		struct stat st; /* made at the first message: kpoold -t creates nothing */
		if (stat(e->file_dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
			snprintf(err, len, "smtp_url %s: %s is not a directory", url, e->file_dir);
			return -1;
		}
		return 0;
	}
	snprintf(err, len, "smtp_url %s: use smtp://HOST[:PORT] or file:///DIR", url);
	return -1;
}

/* Duplicates s, which may be NULL; false if memory ran out. */
static bool dup_opt(char **to, const char *s)
{
	*to = s ? strdup(s) : NULL;
	return s == NULL || *to != NULL;
}

/*
 * A binding's sender: options as email_options declares them, checked and
 * normalized by kpoold.  NULL with err (and nothing kept) if a value cannot
 * be used: a bad URL, sender or password file, unreadable templates, TLS.
 */
static void *init(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
		  char *err, size_t len)
{
	struct email *e = calloc(1, sizeof(*e));
	const char *url = opts_get(opts, n_opts, "smtp_url");
	const char *password_file = opts_get(opts, n_opts, "password_file");
	const char *starttls = opts_get(opts, n_opts, "starttls");

	if (e == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	e->host = host;
	e->timeout_ms = (long)opts_int(opts, n_opts, "timeout");
	e->batch = opts_bool(opts, n_opts, "batch");
	if (!dup_opt(&e->username, opts_get(opts, n_opts, "username")) ||
	    !dup_opt(&e->from, opts_get(opts, n_opts, "from")) ||
	    !dup_opt(&e->template_dir, opts_get(opts, n_opts, "template_dir")) ||
	    !dup_opt(&e->ca_file, opts_get(opts, n_opts, "ca_file"))) {
		snprintf(err, len, "out of memory");
		goto fail;
	}
	if (url == NULL) {
		snprintf(err, len, "smtp_url: missing (smtp://HOST:PORT or file:///DIR)");
		goto fail;
	}
	if (set_url(e, host, url, err, len) < 0)
		goto fail;
	if (starttls && strcmp(starttls, "required") == 0)
		e->starttls = TLS_REQUIRED;
	else if (starttls && strcmp(starttls, "never") == 0)
		e->starttls = TLS_NEVER;
	else
		e->starttls = TLS_IF_AVAILABLE;
	if (e->from) {
		struct buf b = {0};
		char *a = NULL, why[KPOOL_REASON_MAX];
		bool ok = mime_address("from", e->from, &b, &a, why);
		free(b.p);
		free(a);
		if (!ok) {
			snprintf(err, len, "%s", why);
			goto fail;
		}
	}
	if (password_file) {
		char *p = util_read_file(password_file, 4096, err, len);
		if (p == NULL)
			goto fail;
		p[strcspn(p, "\r\n")] = '\0';
		e->password = p;
		if (e->username == NULL) {
			snprintf(err, len, "password_file without username");
			goto fail;
		}
	}
	if (e->template_dir && templates_load(e, err, len) < 0)
		goto fail;
	if (e->server && e->starttls != TLS_NEVER) {
		e->ssl = SSL_CTX_new(TLS_client_method());
		if (e->ssl == NULL || SSL_CTX_set_default_verify_paths(e->ssl) != 1) {
			snprintf(err, len, "cannot set up TLS");
			goto fail;
		}
		if (e->ca_file && SSL_CTX_load_verify_locations(e->ssl, e->ca_file, NULL) != 1) {
			snprintf(err, len, "ca_file %s: not a readable PEM certificate",
				 e->ca_file);
			goto fail;
		}
		/* libesmtp 1.1 takes a TLS 1.3 record without data (a session ticket
		 * that comes after the handshake) for a dropped connection, at random:
		 * TLS 1.2 has none. */
		SSL_CTX_set_max_proto_version(e->ssl, TLS1_2_VERSION);
		SSL_CTX_set_verify(e->ssl, SSL_VERIFY_PEER, on_verify);
		/* the certificate must name the server: its host name or IP address */
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(e->server, ":"), e->server);
		X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(e->ssl);
		if (!X509_VERIFY_PARAM_set1_ip_asc(vp, name) &&
		    !X509_VERIFY_PARAM_set1_host(vp, name, 0)) {
			snprintf(err, len, "cannot set up TLS for %s", name);
			goto fail;
		}
	}
	auth_client_init(); /* a no-op in libesmtp 1.1, but the API asks for it */
	host->log(LOG_INFO, "email: %s%s, %zu templates", e->server ? "smtp " : "files in ",
		  e->server ? e->server : e->file_dir, e->n_t);
	return e;
fail:
	email_free(e);
	return NULL;
}

static void fini(void *state)
{
	email_free(state);
	/* Frees the SASL modules libesmtp loaded (else valgrind sees them lost).
	 * Auth contexts live for one session, so an instance made by a reload
	 * simply loads them again. */
	auth_client_exit();
}

const struct kpool_plugin kpool_plugin = {
    KPOOL_PLUGIN_HEADER,
    .name = "email",
    .version = PACKAGE_VERSION,
    .init = init,
    .handle = handle,
    .fini = fini,
    .handle_batch = handle_batch,
    KPOOL_PLUGIN_OPTIONS(email_options),
};
