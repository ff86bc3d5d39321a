/*
 * overview.c - the console's overview (per binding: handler, processes,
 * jobs per second and its chart, counts, lag, state, Kafka), its live data
 * as JSON, the processes page, and the actions on them: restart a process,
 * pause and resume a binding.  Everything here is read from the slots the
 * supervisor shares with its workers, counted as /metrics counts it.
 */
#include "config.h"

#include <inttypes.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console_int.h"
#include "kpool_cmd.h"

#define CHART_W 560
#define CHART_H 120

/* What the slots of one binding say, summed. */
struct sums {
	uint64_t results[KP_R_MAX];
	uint64_t restarts;
	int running, starting, slots;
	int64_t lag;
	bool lag_known;
	int kafka_up, kafka_down;
	const char *kafka_error;
	bool paused_all;   /* every running process says its partitions are paused */
	bool throttled;	   /* the supervisor backs off restarting them */
	bool rate_waiting; /* a process's next job waits for the binding's rate */
};

/* Whether slot s serves binding name now. */
static bool serves(const struct kp_slot *s, const char *name)
{
	return s->owned && strcmp(s->binding, name) == 0;
}

/* Sums the slots of binding name. */
static void sums_of(const char *name, struct sums *m)
{
	memset(m, 0, sizeof(*m));
	m->paused_all = true;
	for (int i = 0; i < KP_SLOTS_MAX; i++) {
		const struct kp_slot *s = &kp_cons->slots[i];
		if (!serves(s, name))
			continue;
		m->slots++;
		for (int r = 0; r < KP_R_MAX; r++)
			m->results[r] += __atomic_load_n(&s->results[r], __ATOMIC_RELAXED);
		m->restarts += s->restarts;
		m->throttled = m->throttled || s->throttled;
		m->rate_waiting = m->rate_waiting || (s->pid > 0 && s->rate_waiting);
		if (s->state == KP_SLOT_STARTING)
			m->starting++;
		if (s->state != KP_SLOT_RUNNING || s->pid <= 0)
			continue;
		m->running++;
		m->paused_all = m->paused_all && s->paused;
		if (s->kafka_state == KP_KAFKA_UP)
			m->kafka_up++;
		else if (s->kafka_state == KP_KAFKA_DOWN) {
			m->kafka_down++;
			m->kafka_error = s->kafka_error[0] ? s->kafka_error : NULL;
		}
		for (int l = 0; l < s->n_lag && l < KP_LAG_MAX; l++) {
			m->lag += s->lag[l].lag;
			m->lag_known = true;
		}
	}
	if (m->running == 0)
		m->paused_all = false;
}

/* Jobs finished (done, dead-lettered or duplicate): what the chart counts. */
static uint64_t finished(const struct sums *m)
{
	return m->results[KP_R_DONE] + m->results[KP_R_DEAD] + m->results[KP_R_DUPLICATE];
}

/* Takes one sample of every binding's finished jobs (the console's main loop, every 2 s). */
void kp_overview_sample(struct kp_console *cs)
{
	struct sums m;

	pthread_mutex_lock(&cs->lock);
	for (size_t i = 0; i < cs->conf->n_bindings; i++) {
		sums_of(cs->conf->bindings[i].name, &m);
		cs->samples[i][cs->next] = finished(&m);
	}
	cs->sampled_ms[cs->next] = kp_mono_ms();
	cs->next = (cs->next + 1) % KP_SAMPLES;
	if (cs->n_samples < KP_SAMPLES)
		cs->n_samples++;
	pthread_mutex_unlock(&cs->lock);
}

/*
 * Binding i's jobs per second between the samples back and back + span
 * samples ago (0 is the newest); 0 when there are not that many yet.  A
 * total that went down (a process's counters started afresh) counts as 0.
 */
static double rate_at(size_t i, size_t back, size_t span)
{
	struct kp_console *cs = kp_cons;
	size_t a, b;
	double dt;

	if (back + span >= cs->n_samples)
		return 0;
	b = (cs->next + KP_SAMPLES - 1 - back) % KP_SAMPLES;
	a = (cs->next + KP_SAMPLES - 1 - back - span) % KP_SAMPLES;
	dt = (double)(cs->sampled_ms[b] - cs->sampled_ms[a]) / 1000.0;
	if (dt <= 0 || cs->samples[i][b] < cs->samples[i][a])
		return 0;
	return (double)(cs->samples[i][b] - cs->samples[i][a]) / dt;
}

/* Binding i's jobs per second over the last ten seconds (or what has been sampled). */
static double rate_now(size_t i)
{
	size_t span = kp_cons->n_samples > 5 ? 5 : kp_cons->n_samples ? kp_cons->n_samples - 1 : 0;
	double r;

	pthread_mutex_lock(&kp_cons->lock);
	r = span ? rate_at(i, 0, span) : 0;
	pthread_mutex_unlock(&kp_cons->lock);
	return r;
}

/* A binding's state in a word: paused, throttled, starting, running, degraded, down. */
static const char *state_of(const struct kp_binding *b, const struct sums *m, bool paused)
{
	if (paused)
		return m->running && !m->paused_all ? "pausing" : "paused";
	if (m->throttled)
		return "throttled";
	if (m->running == b->processes)
		return m->rate_waiting ? "rate-limited" : "running";
	if (m->starting)
		return "starting";
	return m->running ? "degraded" : "down";
}

/* Kafka as the binding's processes see it: up, down (why), connecting. */
static const char *kafka_of(const struct sums *m)
{
	if (m->kafka_down)
		return m->kafka_error ? m->kafka_error : "down";
	if (m->running && m->kafka_up == m->running)
		return "up";
	return m->running ? "connecting" : "-";
}

/* The overview: a table of bindings, each with its chart; console.js keeps it live. */
void kp_page_overview(const struct kp_req *r, struct kp_resp *resp)
{
	const struct kp_conf *conf = kp_cons->conf;
	struct kp_buf *b = &resp->body;

	kp_page_begin(b, r, "Overview", "overview");
	kp_buf_printf(b, "<p class=\"sub\">kpoold with ");
	kp_buf_htmls(b, conf->path);
	kp_buf_printf(
	    b,
	    " &middot; Kafka %s &middot; <span id=\"updated\" data-live=\"/api/overview\">"
	    "live</span></p>\n",
	    conf->embedded ? "embedded broker" : "cluster");
	kp_buf_printf(b, "<table class=\"bindings\" id=\"bindings\"><thead><tr><th>binding</th>"
			 "<th>handler</th><th>processes</th><th>jobs/s</th><th>done</th>"
			 "<th>retried</th><th>dead-lettered</th><th>duplicate</th><th>lag</th>"
			 "<th>state</th><th>Kafka</th><th></th></tr></thead><tbody>\n");
	for (size_t i = 0; i < conf->n_bindings; i++) {
		const struct kp_binding *bd = &conf->bindings[i];
		struct sums m;
		bool paused = kp_pause_get(conf, bd->name, NULL);
		char id[KP_NAME_MAX + 8];

		sums_of(bd->name, &m);
		snprintf(id, sizeof(id), "b-%s", bd->name);
		kp_buf_printf(b, "<tr id=\"%s\"><td class=\"name\">", id);
		kp_buf_htmls(b, bd->name);
		kp_buf_printf(b, "<div class=\"topics\">");
		kp_buf_htmls(b, bd->topic_list);
		kp_buf_printf(b, "</div></td><td>");
		kp_buf_htmls(b, bd->handler);
		kp_buf_printf(b,
			      "</td><td><span data-k=\"running\">%d</span>/%d</td>"
			      "<td data-k=\"rate\">%.1f</td>"
			      "<td data-k=\"done\">%" PRIu64 "</td><td data-k=\"retried\">%" PRIu64
			      "</td><td data-k=\"dead_lettered\">%" PRIu64
			      "</td><td data-k=\"duplicate\">%" PRIu64 "</td>",
			      m.running, bd->processes, rate_now(i), m.results[KP_R_DONE],
			      m.results[KP_R_RETRIED], m.results[KP_R_DEAD],
			      m.results[KP_R_DUPLICATE]);
		if (m.lag_known)
			kp_buf_printf(b, "<td data-k=\"lag\">%" PRId64 "</td>", m.lag);
		else
			kp_buf_printf(b, "<td data-k=\"lag\">-</td>");
		kp_buf_printf(b, "<td><span class=\"state\" data-k=\"state\">%s</span></td>",
			      state_of(bd, &m, paused));
		kp_buf_printf(b, "<td data-k=\"kafka\">");
		kp_buf_htmls(b, kafka_of(&m));
		kp_buf_printf(b, "</td><td class=\"act\">");
		{
			char action[KP_NAME_MAX + 32];
			snprintf(action, sizeof(action), "/bindings/%s/%s", bd->name,
				 paused ? "resume" : "pause");
			kp_page_button(b, r, action, paused ? "resume" : "pause",
				       paused ? "resume" : "pause");
		}
		kp_buf_printf(b, "</td></tr>\n<tr class=\"chart\"><td colspan=\"12\">"
				 "<img class=\"chart\" alt=\"jobs per second of ");
		kp_buf_htmls(b, bd->name);
		kp_buf_printf(
		    b,
		    ", last five minutes\" width=\"%d\" height=\"%d\" src=\"/chart.svg?b=", CHART_W,
		    CHART_H);
		kp_buf_url(b, bd->name);
		kp_buf_printf(b, "\"></td></tr>\n");
	}
	kp_buf_printf(b, "</tbody></table>\n");
	if (conf->n_bindings == 0)
		kp_buf_printf(b, "<p>No [worker:NAME] binding in the conf.</p>");
	kp_page_end(b);
}

/* GET /api/overview: what the overview shows, as JSON, for console.js to refresh it. */
void kp_api_overview(const struct kp_req *r, struct kp_resp *resp)
{
	const struct kp_conf *conf = kp_cons->conf;
	json_t *doc = json_object(), *bs = json_object();
	char *s;

	(void)r;
	for (size_t i = 0; i < conf->n_bindings; i++) {
		const struct kp_binding *bd = &conf->bindings[i];
		struct sums m;
		bool paused = kp_pause_get(conf, bd->name, NULL);
		json_t *o;

		sums_of(bd->name, &m);
		o = json_pack("{s:i,s:i,s:f,s:I,s:I,s:I,s:I,s:I,s:s,s:b}", "running", m.running,
			      "processes", bd->processes, "rate",
			      (double)(int)(rate_now(i) * 10) / 10, "done",
			      (json_int_t)m.results[KP_R_DONE], "retried",
			      (json_int_t)m.results[KP_R_RETRIED], "dead_lettered",
			      (json_int_t)m.results[KP_R_DEAD], "duplicate",
			      (json_int_t)m.results[KP_R_DUPLICATE], "failed",
			      (json_int_t)m.results[KP_R_FAILED], "state", state_of(bd, &m, paused),
			      "paused", paused);
		json_object_set_new(o, "kafka", kp_json_text(kafka_of(&m), strlen(kafka_of(&m))));
		json_object_set_new(o, "lag", m.lag_known ? json_integer(m.lag) : json_null());
		json_object_set_new(bs, bd->name, o);
	}
	json_object_set_new(doc, "bindings", bs);
	json_object_set_new(doc, "time_ms", json_integer(kp_now_ms()));
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	resp->type = "application/json";
	kp_buf_put(&resp->body, s ? s : "{}", s ? strlen(s) : 2);
	free(s);
}

/* GET /chart.svg?b=NAME: the binding's jobs per second over the last five minutes. */
void kp_chart_svg(const struct kp_req *r, struct kp_resp *resp)
{
	const struct kp_conf *conf = kp_cons->conf;
	const char *name = kp_query_get(r, "b");
	struct kp_buf *b = &resp->body;
	double rates[KP_SAMPLES], top = 0;
	size_t i, n = 0;

	for (i = 0; name && i < conf->n_bindings; i++)
		if (strcmp(conf->bindings[i].name, name) == 0)
			break;
	if (name == NULL || i == conf->n_bindings) {
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND, "No such binding.");
		return;
	}
	pthread_mutex_lock(&kp_cons->lock);
	for (size_t back = 0; back + 1 < kp_cons->n_samples; back++) /* newest first */
		rates[n++] = rate_at(i, back, 1);
	pthread_mutex_unlock(&kp_cons->lock);
	for (size_t k = 0; k < n; k++)
		top = rates[k] > top ? rates[k] : top;
	top = top < 1 ? 1 : top;
	resp->type = "image/svg+xml";
	kp_buf_printf(b,
		      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">"
		      "<rect width=\"100%%\" height=\"100%%\" fill=\"#fbfbfd\"/>"
		      "<line x1=\"40\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ccd\"/>"
		      "<text x=\"36\" y=\"14\" text-anchor=\"end\" fill=\"#667\">%.0f/s</text>"
		      "<text x=\"36\" y=\"%d\" text-anchor=\"end\" fill=\"#667\">0</text>"
		      "<text x=\"40\" y=\"%d\" fill=\"#667\">-5m</text>"
		      "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#667\">now</text>",
		      CHART_W, CHART_H, CHART_W, CHART_H, CHART_H - 16, CHART_W - 4, CHART_H - 16,
		      top, CHART_H - 16, CHART_H - 2, CHART_W - 4, CHART_H - 2);
	if (n > 0) {
		double step = (double)(CHART_W - 44) / (KP_SAMPLES - 1);
		kp_buf_printf(b, "<polyline fill=\"none\" stroke=\"#3b6fd8\" stroke-width=\"2\" "
				 "points=\"");
		for (size_t k = n; k-- > 0;) {
			double x = CHART_W - 4 - (double)k * step;
			double y = (CHART_H - 16) - rates[k] / top * (CHART_H - 30);
			kp_buf_printf(b, "%.1f,%.1f ", x, y);
		}
		kp_buf_printf(b, "\"/>");
	} else {
		kp_buf_printf(b,
			      "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#99a\">"
			      "sampling: a point every %d s</text>",
			      CHART_W / 2, CHART_H / 2, KP_SAMPLE_MS / 1000);
	}
	kp_buf_printf(b, "</svg>\n");
}

/* The processes page: every worker process, its state, uptime and restarts. */
void kp_page_processes(const struct kp_req *r, struct kp_resp *resp)
{
	static const char *const states[KP_SLOT_STATES] = {"stopped", "starting", "running",
							   "stopping"};
	const struct kp_conf *conf = kp_cons->conf;
	struct kp_buf *b = &resp->body;
	int64_t now = kp_now_ms();

	kp_page_begin(b, r, "Processes", "processes");
	kp_buf_printf(b, "<table id=\"processes\"><thead><tr><th>binding</th><th>#</th><th>pid</th>"
			 "<th>state</th><th>up</th><th>restarts</th><th>Kafka</th>"
			 "<th>partitions</th><th></th></tr></thead><tbody>\n");
	for (size_t i = 0; i < conf->n_bindings; i++) {
		const struct kp_binding *bd = &conf->bindings[i];
		for (int k = 0; k < KP_SLOTS_MAX; k++) {
			const struct kp_slot *s = &kp_cons->slots[k];
			char up[32] = "-", action[64];
			int st = s->state;
			if (!serves(s, bd->name))
				continue;
			if (s->pid > 0 && st == KP_SLOT_RUNNING)
				kp_fmt_age(now - (int64_t)s->started_ms, up, sizeof(up));
			kp_buf_printf(b, "<tr id=\"p-%d\"><td>", k);
			kp_buf_htmls(b, bd->name);
			kp_buf_printf(b,
				      "</td><td>%d</td><td>%d</td><td>%s%s</td><td>%s</td>"
				      "<td>%" PRIu64
				      "</td><td>%s</td><td>%d</td><td class=\"act\">",
				      s->index, s->pid > 0 ? (int)s->pid : 0,
				      st >= 0 && st < KP_SLOT_STATES ? states[st] : "?",
				      s->paused ? ", paused" : "", up, s->restarts,
				      s->kafka_state == KP_KAFKA_UP	? "up"
				      : s->kafka_state == KP_KAFKA_DOWN ? "down"
									: "-",
				      s->n_lag);
			snprintf(action, sizeof(action), "/processes/%d/restart", k);
			if (s->pid > 0 && st == KP_SLOT_RUNNING && !s->restart_req)
				kp_page_button(b, r, action, "restart", "restart");
			else if (s->restart_req)
				kp_buf_printf(b, "restarting");
			kp_buf_printf(b, "</td></tr>\n");
		}
	}
	kp_buf_printf(b, "</tbody></table>\n");
	kp_page_end(b);
}

/* POST /processes/K/restart: asks the supervisor to restart the process of slot K. */
void kp_act_restart(const struct kp_req *r, struct kp_resp *resp, const char *slot)
{
	char *end;
	long k = strtol(slot, &end, 10);
	struct kp_slot *s;

	if (*end || k < 0 || k >= KP_SLOTS_MAX || !kp_cons->slots[k].owned ||
	    kp_cons->slots[k].pid <= 0) {
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND, "No worker process runs in slot %s.",
			      slot);
		return;
	}
	s = &kp_cons->slots[k];
	__atomic_store_n(&s->restart_req, 1, __ATOMIC_RELEASE);
	kp_log(KP_NOTICE, "console: restart of worker=%s#%d pid=%d asked", s->binding, s->index,
	       (int)s->pid);
	snprintf(resp->location, sizeof(resp->location), "/processes");
}

/* POST /bindings/NAME/pause|resume: as kpool pause|resume NAME does it. */
void kp_act_pause(const struct kp_req *r, struct kp_resp *resp, const char *binding, bool pause)
{
	char err[512];

	if (kp_conf_binding(kp_cons->conf, binding) == NULL) {
		kp_page_error(resp, r, MHD_HTTP_NOT_FOUND, "There is no binding %s.", binding);
		return;
	}
	if (kp_pause_set(kp_cons->conf, binding, pause, err, sizeof(err)) < 0) {
		kp_page_error(resp, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
		return;
	}
	kp_log(KP_NOTICE, "console: worker=%s %s", binding, pause ? "paused" : "resumed");
	snprintf(resp->location, sizeof(resp->location), "/");
}
