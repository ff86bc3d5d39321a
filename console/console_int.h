/*
 * console_int.h - what the console's files share: the response being built
 * (a page, its escaping), the request as routed, the rates sampled from the
 * slots, and each page's entry point.
 *
 *   console.c   the process: listening, the login and CSRF checks, routing
 *   runner.c    replays, each in a process of its own, as kpool dlq replay runs
 *   session.c   session cookies and CSRF tokens, signed with the token's key
 *   html.c      a page being built: escaping, layout, forms
 *   overview.c  the overview, its live data and chart, processes, pause
 *   dlpages.c   dead letters: topics, a page of records, a record, replay
 */
#ifndef KP_CONSOLE_INT_H
#define KP_CONSOLE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "kpoold.h"

/* Bytes growing as a page is written; aborts when memory runs out (a page is small). */
struct kp_buf {
	char *s;
	size_t n, cap;
};

void kp_buf_put(struct kp_buf *b, const void *s, size_t n);
void kp_buf_printf(struct kp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kp_buf_html(struct kp_buf *b, const void *s, size_t n);
void kp_buf_htmls(struct kp_buf *b, const char *s);
void kp_buf_url(struct kp_buf *b, const char *s);
void kp_buf_free(struct kp_buf *b);

/* A request as the pages see it. */
struct kp_req {
	struct MHD_Connection *c;
	const char *method, *path;
	const char *csrf;   /* this session's CSRF token, "" when read-only */
	bool can_act;	    /* logged in with a token: actions are offered */
	struct kp_kv *form; /* a POST's fields */
	size_t n_form;
};

/* What a page answers: a status, a type and a body, or a redirect. */
struct kp_resp {
	int status;
	const char *type;
	struct kp_buf body;
	char location[1024];   /* a redirect (303) when set */
	char records_read[32]; /* X-Kpool-Records-Read, for the dead-letter pages */
};

/* Jobs finished per binding, sampled every KP_SAMPLE_MS for the chart. */
#define KP_SAMPLE_MS 2000
#define KP_SAMPLES   150 /* five minutes */

struct kp_console {
	const struct kp_conf *conf;
	struct kp_slot *slots;
	pthread_mutex_t lock;		 /* the samples */
	uint64_t (*samples)[KP_SAMPLES]; /* per binding, a ring of totals */
	int64_t sampled_ms[KP_SAMPLES];
	size_t n_samples, next;
	bool tls;
	int runner_fd; /* the replay runner's end of the socketpair */
	pthread_mutex_t runner_lock;
};

extern struct kp_console *kp_cons;

/* session.c */
void kp_session_key(const char *token);
void kp_session_new(int64_t lifetime_ms, char *out, size_t len);
bool kp_session_ok(const char *v);
void kp_session_csrf(const char *session, char *out, size_t len);
bool kp_session_token_ok(const char *token);

/* parse.c */
void kp_cursor_read(const char *s, int64_t *cur, int n);
long kp_dry_run_count(const char *log);

/* html.c */
void kp_page_begin(struct kp_buf *b, const struct kp_req *r, const char *title, const char *nav);
void kp_page_end(struct kp_buf *b);
void kp_page_csrf(struct kp_buf *b, const struct kp_req *r);
void kp_page_button(struct kp_buf *b, const struct kp_req *r, const char *action, const char *label,
		    const char *cls);
void kp_page_error(struct kp_resp *resp, const struct kp_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *kp_form_get(const struct kp_req *r, const char *name);
const char *kp_query_get(const struct kp_req *r, const char *name);
void kp_fmt_time(int64_t ms, char *out, size_t len);
void kp_fmt_age(int64_t ms, char *out, size_t len);

/* overview.c */
void kp_overview_sample(struct kp_console *cs);
void kp_page_overview(const struct kp_req *r, struct kp_resp *resp);
void kp_api_overview(const struct kp_req *r, struct kp_resp *resp);
void kp_chart_svg(const struct kp_req *r, struct kp_resp *resp);
void kp_page_processes(const struct kp_req *r, struct kp_resp *resp);
void kp_act_restart(const struct kp_req *r, struct kp_resp *resp, const char *slot);
void kp_act_pause(const struct kp_req *r, struct kp_resp *resp, const char *binding, bool pause);

/* dlpages.c */
void kp_page_dlq_topics(const struct kp_req *r, struct kp_resp *resp);
void kp_page_dlq_list(const struct kp_req *r, struct kp_resp *resp, const char *topic);
void kp_page_dlq_record(const struct kp_req *r, struct kp_resp *resp, const char *topic,
			const char *at);
void kp_act_replay(const struct kp_req *r, struct kp_resp *resp, const char *topic, const char *at);
void kp_page_replay(const struct kp_req *r, struct kp_resp *resp, const char *id);

/* runner.c: replays run by the runner process, each logged to a file. */
int kp_runner_run(const char *dir);
int kp_runner_start(json_t *req, char *id, size_t len, char *err, size_t errlen);
int kp_runner_status(const char *id, struct kp_buf *log, int *exit_status);

#endif /* KP_CONSOLE_INT_H */
