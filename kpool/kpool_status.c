/*
 * kpool_status.c - `kpool status`: per binding, its processes and job
 * counts as kpoold's /metrics says them, whether the operator paused it
 * (state_dir/paused), and the consumer lag per partition from the group's
 * committed offsets and the high watermarks (asked of Kafka directly, so it
 * works while kpoold is down, and on the embedded broker, which has no
 * group-listing APIs).
 */
#include "config.h"

#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "kpool_cmd.h"

#define STATUS_TIMEOUT_MS 5000
#define LABELS_MAX	  4

/* One sample of /metrics: name{labels} value. */
struct sample {
	char name[64];
	char key[LABELS_MAX][16], val[LABELS_MAX][KP_TOPIC_MAX];
	int n_labels;
	double value;
};

struct metrics {
	struct sample *s;
	size_t n;
	char url[300];
	char error[300]; /* why there are none */
};

/* The value of s's label key, "" if it has none. */
static const char *label(const struct sample *s, const char *key)
{
	for (int i = 0; i < s->n_labels; i++)
		if (strcmp(s->key[i], key) == 0)
			return s->val[i];
	return "";
}

/* Parses one line of the Prometheus text format; false for comments and the unparsable. */
static bool parse_sample(const char *line, struct sample *s)
{
	const char *p = line;
	size_t n = strcspn(p, "{ ");
	char *end;

	memset(s, 0, sizeof(*s));
	if (*p == '#' || n == 0 || n >= sizeof(s->name))
		return false;
	memcpy(s->name, p, n);
	p += n;
	if (*p == '{') {
		p++;
		while (*p && *p != '}') {
			size_t k = strcspn(p, "=");
			size_t v = 0;
			int i = s->n_labels;
			if (p[k] != '=' || p[k + 1] != '"' || i == LABELS_MAX ||
			    k >= sizeof(s->key[i]))
				return false;
			memcpy(s->key[i], p, k);
			p += k + 2;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				if (v + 1 < sizeof(s->val[i]))
					s->val[i][v++] = *p;
				p++;
			}
			if (*p != '"')
				return false;
			s->n_labels++;
			p++;
			if (*p == ',')
				p++;
		}
		if (*p != '}')
			return false;
		p++;
	}
	s->value = strtod(p, &end);
	return end != p;
}

/* curl's write callback: appends to the memory stream; a short count fails the transfer. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
	FILE *f = opaque;
	return fwrite(data, size, nmemb, f);
}

/* GETs kpoold's /metrics (the address it wrote to state_dir); m->error says why not. */
static void metrics_fetch(const struct kp_conf *conf, struct metrics *m)
{
	char path[PATH_MAX], addr[256], *body = NULL, *line, *save = NULL;
	size_t len = 0, cap = 0;
	FILE *f;
	CURL *c;
	CURLcode e;
	long code = 0;

	if (conf->metrics_listen == NULL || !conf->metrics_listen[0]) {
		snprintf(m->error, sizeof(m->error), "metrics_listen is off in %s", conf->path);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", conf->state_dir, KP_METRICS_FILE);
	f = fopen(path, "r");
	if (f == NULL || fgets(addr, sizeof(addr), f) == NULL) {
		snprintf(m->error, sizeof(m->error), "not running (no %s)", path);
		if (f)
			fclose(f);
		return;
	}
	fclose(f);
	addr[strcspn(addr, "\r\n")] = '\0';
	snprintf(m->url, sizeof(m->url), "http://%s/metrics", addr);
	f = open_memstream(&body, &len);
	c = curl_easy_init();
	if (f == NULL || c == NULL) {
		snprintf(m->error, sizeof(m->error), "out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, m->url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)STATUS_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	e = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	fclose(f);
	f = NULL;
	if (e != CURLE_OK || code != 200) {
		snprintf(m->error, sizeof(m->error), "not answering at %s (%s)", m->url,
			 e != CURLE_OK ? curl_easy_strerror(e) : "not 200");
		goto out;
	}
	for (line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct sample s;
		if (!parse_sample(line, &s))
			continue;
		if (m->n == cap) {
			struct sample *x = realloc(m->s, (cap = cap ? cap * 2 : 256) * sizeof(*x));
			if (x == NULL)
				break;
			m->s = x;
		}
		m->s[m->n++] = s;
	}
out:
	if (f)
		fclose(f);
	free(body);
	if (c)
		curl_easy_cleanup(c);
}

/* The value of name{worker=w, key=val} (key NULL: any), summed; 0 if none. */
static double metric(const struct metrics *m, const char *name, const char *w, const char *key,
		     const char *val)
{
	double v = 0;

	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->s[i].name, name) == 0 && strcmp(label(&m->s[i], "worker"), w) == 0 &&
		    (key == NULL || strcmp(label(&m->s[i], key), val) == 0))
			v += m->s[i].value;
	return v;
}

/* ---- lag --------------------------------------------------------------------- */

/*
 * The lag of each partition of the binding's topics, as a JSON array of
 * {topic, partition, committed, end, lag}: end - committed (end - the first
 * offset kept, when the group committed nothing; committed is then null).
 * NULL with err.
 */
static json_t *lag_of(const struct kp_conf *conf, const struct kp_binding *b, char *err, size_t len)
{
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	int64_t *lo = NULL, *hi = NULL;
	json_t *out = NULL;
	rd_kafka_t *rk = NULL;

	if (kp_conf_kafka_apply(conf, kc, false, err, len) < 0 ||
	    rd_kafka_conf_set(kc, "group.id", b->group, err, len) ||
	    rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, len)) {
		rd_kafka_conf_destroy(kc);
		goto out;
	}
	rd_kafka_conf_set_log_cb(kc, kp_rdkafka_log);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, len);
	if (rk == NULL) {
		rd_kafka_conf_destroy(kc);
		goto out;
	}
	if (kp_topic_lookup(rk, b->topics, b->n_topics, l, STATUS_TIMEOUT_MS, err, len) < 0)
		goto out;
	lo = calloc((size_t)l->cnt + 1, sizeof(*lo));
	hi = calloc((size_t)l->cnt + 1, sizeof(*hi));
	if (lo == NULL || hi == NULL) {
		snprintf(err, len, "out of memory");
		goto out;
	}
	if (l->cnt && kp_topic_watermarks(rk, l, lo, hi, STATUS_TIMEOUT_MS, err, len) < 0)
		goto out;
	if (l->cnt && (e = rd_kafka_committed(rk, l, STATUS_TIMEOUT_MS))) {
		snprintf(err, len, "committed offsets of group %s: %s", b->group,
			 rd_kafka_err2str(e));
		goto out;
	}
	out = json_array();
	for (int i = 0; i < l->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &l->elems[i];
		int64_t committed = !tp->err && tp->offset >= 0 ? tp->offset : -1;
		int64_t lag = hi[i] - (committed >= 0 ? committed : lo[i]);

		json_array_append_new(
		    out, json_pack("{s:s,s:i,s:o,s:I,s:I}", "topic", tp->topic, "partition",
				   (int)tp->partition, "committed",
				   committed >= 0 ? json_integer(committed) : json_null(), "end",
				   (json_int_t)hi[i], "lag", (json_int_t)(lag > 0 ? lag : 0)));
	}
out:
	free(lo);
	free(hi);
	rd_kafka_topic_partition_list_destroy(l);
	if (rk)
		rd_kafka_destroy(rk);
	return out;
}

/* ---- kpool status ------------------------------------------------------------ */

static const char *const results[] = {"done",	       "retried",   "failed",
				      "dead_lettered", "duplicate", "expired"};

/* t seconds as 3d4h, 2h5m, 4m10s or 9s (below 0 as 0s). */
static void duration(json_int_t t, char *buf, size_t len)
{
	if (t >= 86400)
		snprintf(buf, len, "%lldd%lldh", (long long)(t / 86400),
			 (long long)(t % 86400 / 3600));
	else if (t >= 3600)
		snprintf(buf, len, "%lldh%lldm", (long long)(t / 3600), (long long)(t % 3600 / 60));
	else if (t >= 60)
		snprintf(buf, len, "%lldm%llds", (long long)(t / 60), (long long)(t % 60));
	else
		snprintf(buf, len, "%llds", (long long)(t < 0 ? 0 : t));
}

/* The processes of a binding as /metrics has them (none known if kpoold is down). */
static json_t *processes_of(const struct metrics *m, const struct kp_binding *b, double now)
{
	json_t *arr = json_array();

	for (int k = 0; k < b->processes; k++) {
		char idx[16];
		json_t *o = json_pack("{s:i,s:n,s:s,s:n,s:n}", "index", k, "pid", "state",
				      m->error[0] ? "unknown" : "stopped", "uptime_s", "restarts");
		snprintf(idx, sizeof(idx), "%d", k);
		for (size_t s = 0; s < m->n; s++) {
			const struct sample *x = &m->s[s];
			if (strcmp(x->name, "kpool_worker_start_time_seconds") != 0 ||
			    strcmp(label(x, "worker"), b->name) != 0 ||
			    strcmp(label(x, "index"), idx) != 0)
				continue;
			json_object_set_new(o, "pid", json_integer(atoi(label(x, "pid"))));
			json_object_set_new(
			    o, "state", kp_json_text(label(x, "state"), strlen(label(x, "state"))));
			json_object_set_new(o, "uptime_s",
					    json_integer((json_int_t)(now - x->value)));
		}
		if (!m->error[0])
			json_object_set_new(
			    o, "restarts",
			    json_integer((json_int_t)metric(
				m, "kpool_worker_process_restarts_total", b->name, "index", idx)));
		json_array_append_new(arr, o);
	}
	return arr;
}

/*
 * The binding's ledger as /metrics has it: local, or its topic, the topic's
 * state, and each host's lag on it (this one's and the others' as they last
 * said).
 */
static json_t *ledger_of(const struct metrics *m, const struct kp_binding *b)
{
	json_t *o = json_pack(
	    "{s:s,s:o,s:n,s:o}", "ledger", b->ledger_kafka ? "kafka" : "local", "topic",
	    b->ledger_kafka ? kp_json_text(b->ledger_topic, strlen(b->ledger_topic)) : json_null(),
	    "state", "hosts", json_array());

	for (size_t i = 0; b->ledger_kafka && i < m->n; i++) {
		const struct sample *x = &m->s[i];
		if (strcmp(label(x, "worker"), b->name) != 0)
			continue;
		if (strcmp(x->name, "kpool_ledger_topic_state") == 0 && x->value > 0)
			json_object_set_new(
			    o, "state", kp_json_text(label(x, "state"), strlen(label(x, "state"))));
		else if (strcmp(x->name, "kpool_ledger_topic_lag") == 0)
			json_array_append_new(
			    json_object_get(o, "hosts"),
			    json_pack("{s:o,s:o,s:I}", "host",
				      kp_json_text(label(x, "host"), strlen(label(x, "host"))),
				      "store",
				      kp_json_text(label(x, "store"), strlen(label(x, "store"))),
				      "lag", (json_int_t)x->value));
	}
	return o;
}

/* One binding's part of the status document; *kafka_ok cleared if its lag is unknown. */
static json_t *binding_status(const struct kp_conf *conf, const struct kp_binding *b,
			      const struct metrics *m, double now, bool *kafka_ok)
{
	json_t *o = json_object(), *topics = json_array(), *jobs = json_object(),
	       *dead = json_object(), *lag;
	json_int_t total = 0;
	char err[512], since[40];
	int64_t since_ms = 0;
	bool paused = kp_pause_get(conf, b->name, &since_ms);
	size_t i;
	json_t *x;

	for (int t = 0; t < b->n_topics; t++)
		json_array_append_new(topics, kp_json_text(b->topics[t], strlen(b->topics[t])));
	for (size_t r = 0; r < sizeof(results) / sizeof(results[0]); r++)
		json_object_set_new(
		    jobs, results[r],
		    m->error[0] ? json_null()
				: json_integer((json_int_t)metric(m, "kpool_jobs_total", b->name,
								  "result", results[r])));
	for (size_t s = 0; s < m->n; s++)
		if (strcmp(m->s[s].name, "kpool_dead_letter_total") == 0 &&
		    strcmp(label(&m->s[s], "worker"), b->name) == 0)
			json_object_set_new(dead, label(&m->s[s], "class"),
					    json_integer((json_int_t)m->s[s].value));
	lag = lag_of(conf, b, err, sizeof(err));
	if (lag == NULL) {
		*kafka_ok = false;
		fprintf(stderr, "kpool: %s: lag unknown: %s\n", b->name, err);
	}
	json_array_foreach (lag, i, x)
		total += json_integer_value(json_object_get(x, "lag"));
	json_object_set_new(o, "name", kp_json_text(b->name, strlen(b->name)));
	json_object_set_new(o, "handler", kp_json_text(b->handler, strlen(b->handler)));
	json_object_set_new(o, "group", kp_json_text(b->group, strlen(b->group)));
	/* Paused as the operator left it (state_dir), whether kpoold runs or not. */
	json_object_set_new(o, "paused", json_boolean(paused));
	if (paused)
		kp_cmd_iso(since_ms, since, sizeof(since));
	json_object_set_new(o, "paused_since", paused ? json_string(since) : json_null());
	json_object_set_new(o, "topics", topics);
	/* The binding's rate, and the time its jobs waited for it (summed over processes). */
	json_object_set_new(o, "rate",
			    b->rate ? kp_json_text(b->rate, strlen(b->rate)) : json_null());
	json_object_set_new(o, "rate_limited_seconds",
			    m->error[0] ? json_null()
					: json_real(metric(m, "kpool_rate_limited_seconds_total",
							   b->name, NULL, NULL)));
	json_object_set_new(o, "processes", processes_of(m, b, now));
	json_object_set_new(o, "jobs", jobs);
	json_object_set_new(o, "dead_lettered_by_class", dead);
	json_object_set_new(o, "restarts",
			    m->error[0]
				? json_null()
				: json_integer((json_int_t)metric(m, "kpool_worker_restarts_total",
								  b->name, NULL, NULL)));
	json_object_set_new(o, "lag", lag ? lag : json_array());
	json_object_set_new(o, "lag_total", lag ? json_integer(total) : json_null());
	json_object_set_new(o, "ledger", ledger_of(m, b));
	return o;
}

/* A number of the document as a cell: "-" for null. */
static const char *cell(json_t *v, char *buf, size_t len)
{
	if (!json_is_integer(v))
		return "-";
	snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

/* The status document as tables. */
static void print_tables(json_t *doc)
{
	json_t *kpoold = json_object_get(doc, "kpoold"), *b, *x;
	struct kp_table bt, pt, lt, gt;
	size_t i, k;

	const char *said = json_string_value(json_object_get(
	    kpoold, json_is_true(json_object_get(kpoold, "up")) ? "metrics" : "error"));

	if (said == NULL)
		said = "?";
	if (json_is_true(json_object_get(kpoold, "up")))
		printf("kpoold: up (");
	else
		printf("kpoold: ");
	kp_text_put(stdout, said, strlen(said), 0);
	printf(json_is_true(json_object_get(kpoold, "up")) ? ")\n\n" : "\n\n");
	kp_table_init(&bt, 14, "BINDING", "HANDLER", "PROCESSES", "PAUSED", "RATE", "WAITED",
		      "DONE", "RETRIED", "FAILED", "DEAD-LETTERED", "DUPLICATE", "EXPIRED",
		      "RESTARTS", "LAG");
	kp_table_init(&pt, 5, "PROCESS", "PID", "STATE", "UPTIME", "RESTARTS");
	kp_table_init(&lt, 6, "BINDING", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
	kp_table_init(&gt, 6, "BINDING", "LEDGER", "STATE", "HOST", "STORE", "LEDGER-LAG");
	json_array_foreach (json_object_get(doc, "bindings"), i, b) {
		const char *name = json_string_value(json_object_get(b, "name"));
		json_t *jobs = json_object_get(b, "jobs");
		char c[8][32], procs[32], waited[32] = "-";
		int running = 0;

		json_array_foreach (json_object_get(b, "processes"), k, x) {
			char pname[KP_NAME_MAX + 16], up[32] = "-";
			if (json_is_integer(json_object_get(x, "uptime_s")))
				duration(json_integer_value(json_object_get(x, "uptime_s")), up,
					 sizeof(up));
			snprintf(pname, sizeof(pname), "%s#%zu", name, k);
			running +=
			    strcmp(json_string_value(json_object_get(x, "state")), "running") == 0;
			kp_table_row(&pt, pname,
				     cell(json_object_get(x, "pid"), c[0], sizeof(c[0])),
				     json_string_value(json_object_get(x, "state")), up,
				     cell(json_object_get(x, "restarts"), c[1], sizeof(c[1])));
		}
		json_array_foreach (json_object_get(b, "lag"), k, x)
			kp_table_row(&lt, name, json_string_value(json_object_get(x, "topic")),
				     cell(json_object_get(x, "partition"), c[0], sizeof(c[0])),
				     cell(json_object_get(x, "committed"), c[1], sizeof(c[1])),
				     cell(json_object_get(x, "end"), c[2], sizeof(c[2])),
				     cell(json_object_get(x, "lag"), c[3], sizeof(c[3])));
		json_t *ledger = json_object_get(b, "ledger"),
		       *hosts = json_object_get(ledger, "hosts");
		const char *topic = json_string_value(json_object_get(ledger, "topic"));
		const char *state = json_string_value(json_object_get(ledger, "state"));
		if (topic == NULL)
			kp_table_row(&gt, name, "local", "-", "-", "-", "-");
		else if (json_array_size(hosts) == 0)
			kp_table_row(&gt, name, topic, state ? state : "?", "-", "-", "-");
		json_array_foreach (hosts, k, x)
			kp_table_row(&gt, name, topic, state ? state : "?",
				     json_string_value(json_object_get(x, "host")),
				     json_string_value(json_object_get(x, "store")),
				     cell(json_object_get(x, "lag"), c[0], sizeof(c[0])));
		snprintf(procs, sizeof(procs), "%d/%zu", running,
			 json_array_size(json_object_get(b, "processes")));
		json_t *rate = json_object_get(b, "rate");
		if (json_is_string(rate) &&
		    json_is_number(json_object_get(b, "rate_limited_seconds")))
			snprintf(waited, sizeof(waited), "%.1fs",
				 json_number_value(json_object_get(b, "rate_limited_seconds")));
		kp_table_row(&bt, name, json_string_value(json_object_get(b, "handler")),
			     json_is_true(json_object_get(kpoold, "up")) ? procs : "-",
			     json_is_true(json_object_get(b, "paused")) ? "yes" : "no",
			     json_is_string(rate) ? json_string_value(rate) : "-", waited,
			     cell(json_object_get(jobs, "done"), c[0], sizeof(c[0])),
			     cell(json_object_get(jobs, "retried"), c[1], sizeof(c[1])),
			     cell(json_object_get(jobs, "failed"), c[2], sizeof(c[2])),
			     cell(json_object_get(jobs, "dead_lettered"), c[3], sizeof(c[3])),
			     cell(json_object_get(jobs, "duplicate"), c[4], sizeof(c[4])),
			     cell(json_object_get(jobs, "expired"), c[7], sizeof(c[7])),
			     cell(json_object_get(b, "restarts"), c[5], sizeof(c[5])),
			     json_is_null(json_object_get(b, "lag_total"))
				 ? "?"
				 : cell(json_object_get(b, "lag_total"), c[6], sizeof(c[6])));
	}
	kp_table_print(&bt, stdout);
	printf("\n");
	kp_table_print(&pt, stdout);
	if (lt.n_rows) {
		printf("\n");
		kp_table_print(&lt, stdout);
	}
	printf("\n");
	kp_table_print(&gt, stdout);
	kp_table_free(&gt);
	kp_table_free(&bt);
	kp_table_free(&pt);
	kp_table_free(&lt);
}

/*
 * kpool status: 0, 1 when kpoold's metrics or a binding's lag are unknown
 * (the rest is printed all the same, and why said), 2 on a usage error.
 */
int kp_cmd_status(const struct kp_conf *conf, int argc, char **argv)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
						 {NULL, 0, NULL, 0}};
	struct metrics m = {0};
	double now = (double)kp_now_ms() / 1e3;
	bool json = false, kafka_ok = true;
	json_t *doc, *bindings;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c != 'j') {
			fprintf(stderr, "usage: kpool -c CONF status [--json]\n");
			return 2;
		}
		json = true;
	}
	if (optind != argc) {
		fprintf(stderr, "usage: kpool -c CONF status [--json]\n");
		return 2;
	}
	metrics_fetch(conf, &m);
	bindings = json_array();
	for (size_t i = 0; i < conf->n_bindings; i++)
		json_array_append_new(bindings,
				      binding_status(conf, &conf->bindings[i], &m, now, &kafka_ok));
	doc = json_pack("{s:{s:b,s:o,s:o},s:o}", "kpoold", "up", !m.error[0], "metrics",
			m.url[0] ? kp_json_text(m.url, strlen(m.url)) : json_null(), "error",
			m.error[0] ? kp_json_text(m.error, strlen(m.error)) : json_null(),
			"bindings", bindings);
	if (json) {
		kp_json_print(doc, stdout, JSON_INDENT(2));
	} else {
		print_tables(doc);
	}
	json_decref(doc);
	free(m.s);
	if (m.error[0]) {
		fprintf(stderr, "kpool: kpoold ");
		kp_text_put(stderr, m.error, strlen(m.error), 0);
		fprintf(stderr, "\n");
	}
	return m.error[0] || !kafka_ok ? 1 : 0;
}
