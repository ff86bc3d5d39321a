/*
 * kpool_status.c - `kpool status`: per binding, its processes and job
 * counts as kpoold's /metrics says them, and the consumer lag per partition
 * from the group's committed offsets and the high watermarks (asked of Kafka
 * directly, so it works while kpoold is down, and on the embedded broker,
 * which has no group-listing APIs).
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

#include "kpool_cmd.h"
#include "kpoold.h"

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

struct lag {
	const char *topic;
	int32_t partition;
	int64_t committed, end, lag; /* committed -1: the group has none */
};

/*
 * Committed offsets of the binding's group and the high watermarks of its
 * topics; lag = end - committed (end - the first offset kept, when the group
 * committed nothing).  Returns how many; -1 with err.
 */
static int lag_of(const struct kp_conf *conf, const struct kp_binding *b, struct lag **out,
		  char *err, size_t len)
{
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *l = NULL;
	rd_kafka_resp_err_t e;
	rd_kafka_t *rk;
	int n = 0;

	*out = NULL;
	if (kp_conf_kafka_apply(conf, rc, err, len) < 0 ||
	    rd_kafka_conf_set(rc, "group.id", b->group, err, len) ||
	    rd_kafka_conf_set(rc, "enable.auto.commit", "false", err, len)) {
		rd_kafka_conf_destroy(rc);
		return -1;
	}
	rd_kafka_conf_set_log_cb(rc, kp_rdkafka_log);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, err, len);
	if (rk == NULL) {
		rd_kafka_conf_destroy(rc);
		return -1;
	}
	l = rd_kafka_topic_partition_list_new(16);
	for (int t = 0; t < b->n_topics; t++) {
		int parts =
		    kp_topic_partitions_lookup(rk, b->topics[t], STATUS_TIMEOUT_MS, err, len);
		if (parts < 0)
			goto fail;
		for (int p = 0; p < parts; p++)
			rd_kafka_topic_partition_list_add(l, b->topics[t], p);
	}
	e = l->cnt ? rd_kafka_committed(rk, l, STATUS_TIMEOUT_MS) : RD_KAFKA_RESP_ERR_NO_ERROR;
	if (e) {
		snprintf(err, len, "committed offsets of group %s: %s", b->group,
			 rd_kafka_err2str(e));
		goto fail;
	}
	*out = calloc((size_t)l->cnt + 1, sizeof(**out));
	if (*out == NULL)
		goto fail;
	for (int i = 0; i < l->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &l->elems[i];
		struct lag *x = &(*out)[n];
		int64_t lo, hi;

		e = rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi,
						     STATUS_TIMEOUT_MS);
		if (e) {
			snprintf(err, len, "%s [%d]: offsets: %s", tp->topic, (int)tp->partition,
				 rd_kafka_err2str(e));
			goto fail;
		}
		for (int t = 0; t < b->n_topics; t++) /* a name that outlives the list */
			if (strcmp(b->topics[t], tp->topic) == 0)
				x->topic = b->topics[t];
		x->partition = tp->partition;
		x->committed = !tp->err && tp->offset >= 0 ? tp->offset : -1;
		x->end = hi;
		x->lag = hi - (x->committed >= 0 ? x->committed : lo);
		if (x->lag < 0)
			x->lag = 0;
		n++;
	}
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	return n;
fail:
	free(*out);
	*out = NULL;
	if (l)
		rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	return -1;
}

/* ---- kpool status ------------------------------------------------------------ */

static const char *const results[] = {"done", "retried", "failed", "dead_lettered", "duplicate"};

static void duration(double s, char *buf, size_t len)
{
	long t = (long)s;

	if (t >= 86400)
		snprintf(buf, len, "%ldd%ldh", t / 86400, t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(buf, len, "%ldh%ldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(buf, len, "%ldm%lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%lds", t < 0 ? 0 : t);
}

int kp_cmd_status(const struct kp_conf *conf, int argc, char **argv)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
						 {NULL, 0, NULL, 0}};
	struct metrics m = {0};
	struct kp_table bt, pt, lt;
	json_t *doc = NULL, *jb = NULL;
	double now = (double)kp_now_ms() / 1e3;
	bool json = false, kafka_ok = true;
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
	if (json) {
		doc = json_object();
		jb = json_array();
		json_object_set_new(doc, "kpoold",
				    json_pack("{s:b,s:o,s:o}", "up", !m.error[0], "metrics",
					      m.url[0] ? json_string(m.url) : json_null(), "error",
					      m.error[0] ? json_string(m.error) : json_null()));
	}
	kp_table_init(&bt, 10, "BINDING", "HANDLER", "PROCESSES", "DONE", "RETRIED", "FAILED",
		      "DEAD-LETTERED", "DUPLICATE", "RESTARTS", "LAG");
	kp_table_init(&pt, 5, "PROCESS", "PID", "STATE", "UPTIME", "RESTARTS");
	kp_table_init(&lt, 6, "BINDING", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
	for (size_t i = 0; i < conf->n_bindings; i++) {
		const struct kp_binding *b = &conf->bindings[i];
		char cell[8][32], err[512], lagbuf[32];
		struct lag *lag = NULL;
		int n_lag = lag_of(conf, b, &lag, err, sizeof(err)), running = 0;
		int64_t total = 0;
		json_t *jp = json_array(), *jl = json_array(), *jj = json_object(),
		       *jd = json_object();

		if (n_lag < 0) {
			kafka_ok = false;
			fprintf(stderr, "kpool: %s: lag unknown: %s\n", b->name, err);
		}
		for (int k = 0; k < b->processes; k++) {
			char idx[16], name[KP_NAME_MAX + 16], pid[16] = "-", up[32] = "-",
							      restarts[24], state[24] = "stopped";
			double r, started = 0;
			snprintf(idx, sizeof(idx), "%d", k);
			snprintf(name, sizeof(name), "%s#%d", b->name, k);
			for (size_t s = 0; s < m.n; s++) {
				const struct sample *x = &m.s[s];
				if (strcmp(x->name, "kpool_worker_start_time_seconds") != 0 ||
				    strcmp(label(x, "worker"), b->name) != 0 ||
				    strcmp(label(x, "index"), idx) != 0)
					continue;
				snprintf(pid, sizeof(pid), "%s", label(x, "pid"));
				snprintf(state, sizeof(state), "%s", label(x, "state"));
				started = x->value;
				duration(now - x->value, up, sizeof(up));
				running += strcmp(state, "running") == 0;
			}
			r = metric(&m, "kpool_worker_process_restarts_total", b->name, "index",
				   idx);
			snprintf(restarts, sizeof(restarts), "%.0f", r);
			if (m.error[0]) {
				snprintf(state, sizeof(state), "unknown");
				snprintf(restarts, sizeof(restarts), "-");
			}
			kp_table_row(&pt, name, pid, state, up, restarts);
			json_array_append_new(
			    jp, json_pack("{s:i,s:o,s:s,s:o,s:i}", "index", k, "pid",
					  strcmp(pid, "-") ? json_integer(atoi(pid)) : json_null(),
					  "state", state, "uptime_s",
					  started > 0 ? json_integer((json_int_t)(now - started))
						      : json_null(),
					  "restarts", (int)r));
		}
		for (int x = 0; x < n_lag; x++) {
			char p[16], co[24], en[24], lg[24];
			snprintf(p, sizeof(p), "%d", (int)lag[x].partition);
			snprintf(co, sizeof(co), "%" PRId64, lag[x].committed);
			snprintf(en, sizeof(en), "%" PRId64, lag[x].end);
			snprintf(lg, sizeof(lg), "%" PRId64, lag[x].lag);
			kp_table_row(&lt, b->name, lag[x].topic, p,
				     lag[x].committed >= 0 ? co : "-", en, lg);
			total += lag[x].lag;
			json_array_append_new(
			    jl, json_pack("{s:s,s:i,s:o,s:I,s:I}", "topic", lag[x].topic,
					  "partition", (int)lag[x].partition, "committed",
					  lag[x].committed >= 0 ? json_integer(lag[x].committed)
								: json_null(),
					  "end", (json_int_t)lag[x].end, "lag",
					  (json_int_t)lag[x].lag));
		}
		for (int r = 0; r < 5; r++) {
			double v = metric(&m, "kpool_jobs_total", b->name, "result", results[r]);
			snprintf(cell[r], sizeof(cell[r]), m.error[0] ? "-" : "%.0f", v);
			json_object_set_new(jj, results[r], json_integer((json_int_t)v));
		}
		for (size_t s = 0; s < m.n; s++)
			if (strcmp(m.s[s].name, "kpool_dead_letter_total") == 0 &&
			    strcmp(label(&m.s[s], "worker"), b->name) == 0)
				json_object_set_new(jd, label(&m.s[s], "class"),
						    json_integer((json_int_t)m.s[s].value));
		snprintf(cell[5], sizeof(cell[5]), "%d/%d", running, b->processes);
		snprintf(cell[6], sizeof(cell[6]), m.error[0] ? "-" : "%.0f",
			 metric(&m, "kpool_worker_restarts_total", b->name, NULL, NULL));
		snprintf(lagbuf, sizeof(lagbuf), n_lag < 0 ? "?" : "%" PRId64, total);
		kp_table_row(&bt, b->name, b->handler, m.error[0] ? "-" : cell[5], cell[0], cell[1],
			     cell[2], cell[3], cell[4], cell[6], lagbuf);
		if (json) {
			json_t *o = json_object(), *topics = json_array();
			for (int t = 0; t < b->n_topics; t++)
				json_array_append_new(topics, json_string(b->topics[t]));
			json_object_set_new(o, "name", json_string(b->name));
			json_object_set_new(o, "handler", json_string(b->handler));
			json_object_set_new(o, "group", json_string(b->group));
			json_object_set_new(o, "topics", topics);
			json_object_set_new(o, "processes", jp);
			json_object_set_new(o, "jobs", jj);
			json_object_set_new(o, "dead_lettered_by_class", jd);
			json_object_set_new(
			    o, "restarts",
			    json_integer((json_int_t)metric(&m, "kpool_worker_restarts_total",
							    b->name, NULL, NULL)));
			json_object_set_new(o, "lag", jl);
			json_object_set_new(o, "lag_total",
					    n_lag < 0 ? json_null() : json_integer(total));
			json_array_append_new(jb, o);
		} else {
			json_decref(jp);
			json_decref(jl);
			json_decref(jj);
			json_decref(jd);
		}
		free(lag);
	}
	if (json) {
		json_object_set_new(doc, "bindings", jb);
		json_dumpf(doc, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(doc);
	} else {
		if (m.error[0])
			printf("kpoold: %s\n\n", m.error);
		else
			printf("kpoold: up (%s)\n\n", m.url);
		kp_table_print(&bt, stdout);
		printf("\n");
		kp_table_print(&pt, stdout);
		if (lt.n_rows) {
			printf("\n");
			kp_table_print(&lt, stdout);
		}
	}
	kp_table_free(&bt);
	kp_table_free(&pt);
	kp_table_free(&lt);
	free(m.s);
	if (m.error[0])
		fprintf(stderr, "kpool: kpoold %s\n", m.error);
	return m.error[0] || !kafka_ok ? 1 : 0;
}
