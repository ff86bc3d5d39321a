/*
 * html.c - a console page being built: bytes that grow, text escaped for
 * HTML whatever it holds, the layout every page shares, and the forms that
 * carry the session's CSRF token.  Nothing from a job, a header or a key
 * reaches a page but through kp_buf_html().
 */
#include "config.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "console_int.h"
#include "kpool_cmd.h"

/* Appends n bytes. */
void kp_buf_put(struct kp_buf *b, const void *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *x = realloc(b->s, cap);
		if (x == NULL)
			abort(); /* a page: no memory is no way on */
		b->s = x;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = '\0';
}

/* Appends printf-formatted text (only for what the console itself makes). */
void kp_buf_printf(struct kp_buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		kp_buf_put(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (big == NULL)
		abort();
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	kp_buf_put(b, big, (size_t)n);
	free(big);
}

/*
 * Appends n bytes from outside as HTML text: made valid UTF-8 with control
 * characters shown as escapes (kp_text_clean), then & < > " ' as entities,
 * so the text is the same in an element and in a quoted attribute.
 */
void kp_buf_html(struct kp_buf *b, const void *s, size_t n)
{
	char *t = kp_text_clean(s, n, KP_TEXT_LINES);
	const char *p = t, *q;

	while (*(q = p + strcspn(p, "&<>\"'"))) {
		kp_buf_put(b, p, (size_t)(q - p));
		switch (*q) {
		case '&':
			kp_buf_put(b, "&amp;", 5);
			break;
		case '<':
			kp_buf_put(b, "&lt;", 4);
			break;
		case '>':
			kp_buf_put(b, "&gt;", 4);
			break;
		case '"':
			kp_buf_put(b, "&quot;", 6);
			break;
		default:
			kp_buf_put(b, "&#39;", 5);
		}
		p = q + 1;
	}
	kp_buf_put(b, p, strlen(p));
	free(t);
}

/* kp_buf_html() of a string; NULL shows as nothing. */
void kp_buf_htmls(struct kp_buf *b, const char *s)
{
	if (s)
		kp_buf_html(b, s, strlen(s));
}

/* Appends s percent-encoded for a URL's path segment or query value. */
void kp_buf_url(struct kp_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			kp_buf_put(b, s, 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			kp_buf_put(b, e, 3);
		}
	}
}

/* Frees what b holds; b is empty again. */
void kp_buf_free(struct kp_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

/* The head of every page: its title, the navigation (nav marks the current
 * one), and whether the console is read-only. */
void kp_page_begin(struct kp_buf *b, const struct kp_req *r, const char *title, const char *nav)
{
	static const char *const items[][2] = {
	    {"overview", "/"}, {"dead letters", "/dlq"}, {"processes", "/processes"}};

	kp_buf_printf(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			 "<meta name=\"viewport\" content=\"width=device-width\">"
			 "<title>");
	kp_buf_htmls(b, title);
	kp_buf_printf(b, " - kpool</title>"
			 "<link rel=\"stylesheet\" href=\"/static/console.css\">"
			 "<script src=\"/static/console.js\" defer></script>"
			 "</head><body><header><a class=\"brand\" href=\"/\">kpool</a><nav>");
	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
		kp_buf_printf(b, "<a href=\"%s\"%s>%s</a>", items[i][1],
			      nav && strcmp(nav, items[i][0]) == 0 ? " class=\"here\"" : "",
			      items[i][0]);
	kp_buf_printf(b, "</nav><span class=\"who\">");
	if (r->can_act) {
		kp_buf_printf(b, "<form method=\"post\" action=\"/logout\">");
		kp_page_csrf(b, r);
		kp_buf_printf(b, "<button type=\"submit\" class=\"link\">log out</button></form>");
	} else {
		kp_buf_printf(b,
			      "<span class=\"badge ro\" id=\"read-only\" title=\"no token_file is "
			      "set: the console shows, and changes nothing\">read-only</span>");
	}
	kp_buf_printf(b, "</span></header><main>\n<h1>");
	kp_buf_htmls(b, title);
	kp_buf_printf(b, "</h1>\n");
}

/* The end of every page. */
void kp_page_end(struct kp_buf *b)
{
	kp_buf_printf(b, "</main><footer>kpool " PACKAGE_VERSION "</footer></body></html>\n");
}

/* The hidden field every form posting an action carries. */
void kp_page_csrf(struct kp_buf *b, const struct kp_req *r)
{
	kp_buf_printf(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
	kp_buf_htmls(b, r->csrf);
	kp_buf_printf(b, "\">");
}

/* A form of one button posting to action (a path the console made), when actions are allowed. */
void kp_page_button(struct kp_buf *b, const struct kp_req *r, const char *action, const char *label,
		    const char *cls)
{
	if (!r->can_act)
		return;
	kp_buf_printf(b, "<form method=\"post\" class=\"inline\" action=\"");
	kp_buf_htmls(b, action);
	kp_buf_printf(b, "\">");
	kp_page_csrf(b, r);
	kp_buf_printf(b, "<button type=\"submit\" class=\"%s\">", cls ? cls : "");
	kp_buf_htmls(b, label);
	kp_buf_printf(b, "</button></form>");
}

/* An error page: status and a sentence (escaped). */
void kp_page_error(struct kp_resp *resp, const struct kp_req *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kp_buf_free(&resp->body);
	resp->status = status;
	resp->type = "text/html; charset=utf-8";
	kp_page_begin(&resp->body, r, status == 404 ? "Not found" : "Cannot do that", NULL);
	kp_buf_printf(&resp->body, "<p class=\"error\" id=\"error\">");
	kp_buf_htmls(&resp->body, msg);
	kp_buf_printf(&resp->body, "</p>");
	kp_page_end(&resp->body);
}

/* A POST field, NULL if the form has none. */
const char *kp_form_get(const struct kp_req *r, const char *name)
{
	for (size_t i = 0; i < r->n_form; i++)
		if (strcmp(r->form[i].key, name) == 0)
			return r->form[i].value;
	return NULL;
}

/* A query-string argument, NULL if absent or empty. */
const char *kp_query_get(const struct kp_req *r, const char *name)
{
	const char *v = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);

	return v && *v ? v : NULL;
}

/* An epoch time in ms as 2026-11-30 23:59:01 UTC; "-" when unknown. */
void kp_fmt_time(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms < 0 || gmtime_r(&t, &tm) == NULL) {
		snprintf(out, len, "-");
		return;
	}
	strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* A duration in ms as 3d 4h, 5h 6m, 7m 8s or 9s. */
void kp_fmt_age(int64_t ms, char *out, size_t len)
{
	int64_t s = ms < 0 ? 0 : ms / 1000;

	if (s >= 86400)
		snprintf(out, len, "%dd %dh", (int)(s / 86400), (int)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(out, len, "%dh %dm", (int)(s / 3600), (int)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(out, len, "%dm %ds", (int)(s / 60), (int)(s % 60));
	else
		snprintf(out, len, "%ds", (int)s);
}
