/*
 * conf.c - the conf file: [kafka], [pool] and [worker:NAME] sections, read
 * with libinih.  Options are declared once, in the tables below, with type,
 * default and description; the same tables validate the file and print the
 * reference (kpoold --options).  Every error names the file, line and key.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"

enum opt_type { OPT_STR, OPT_INT, OPT_DUR, OPT_SIZE, OPT_BOOL, OPT_LEVEL, OPT_TOPICS, OPT_IDKEYS };

struct optdef {
	const char *key;
	enum opt_type type;
	const char *def; /* NULL: none (or computed, see desc) */
	long min, max;	 /* for OPT_INT */
	size_t off;
	const char *desc;
};

#define POOL(f) offsetof(struct kp_conf, f)
#define BIND(f) offsetof(struct kp_binding, f)

static const struct optdef pool_opts[] = {
    {"plugin_dir", OPT_STR, NULL, 0, 0, POOL(plugin_dir),
     "where handler plugins NAME.so are found (default: the build's plugins when run "
     "from the source tree, else " KP_PLUGIN_DIR ")"},
    {"state_dir", OPT_STR, "/var/lib/kpool", 0, 0, POOL(state_dir),
     "processed-id databases, embedded broker address, metrics address; a relative path "
     "is taken from the conf file's directory"},
    {"metrics_listen", OPT_STR, "127.0.0.1:9464", 0, 0, POOL(metrics_listen),
     "HOST:PORT for GET /metrics and /healthz; port 0 picks one; empty turns it off"},
    {"shutdown_timeout", OPT_DUR, "30s", 0, 0, POOL(shutdown_timeout_ms),
     "how long workers may take to stop before SIGKILL"},
    {"log_level", OPT_LEVEL, "info", 0, 0, POOL(log_level),
     "debug, info, notice, warning or error"},
    {"user", OPT_STR, NULL, 0, 0, POOL(user),
     "when started as root: the user to run as once the metrics socket is open"},
};

static const struct optdef worker_opts[] = {
    {"topic", OPT_TOPICS, NULL, 0, 0, BIND(topic_list),
     "topics to consume, comma separated (required)"},
    {"handler", OPT_STR, NULL, 0, 0, BIND(handler),
     "plugin that handles the jobs: plugin_dir/HANDLER.so (required)"},
    {"processes", OPT_INT, "1", 1, 64, BIND(processes),
     "worker processes, all in one consumer group"},
    {"group", OPT_STR, NULL, 0, 0, BIND(group), "consumer group (default kpool-NAME)"},
    {"dead_letter_topic", OPT_STR, NULL, 0, 0, BIND(dead_letter_topic),
     "where jobs that cannot be handled go (default TOPIC.dlq)"},
    {"max_attempts", OPT_INT, "5", 1, 1000, BIND(max_attempts),
     "handler calls for a job that asks to be retried"},
    {"retry_backoff", OPT_DUR, "1s", 0, 0, BIND(retry_backoff_ms),
     "first retry delay; doubles each attempt, with jitter"},
    {"retry_backoff_max", OPT_DUR, "5m", 0, 0, BIND(retry_backoff_max_ms), "longest retry delay"},
    {"max_crashes", OPT_INT, "3", 1, 100, BIND(max_crashes),
     "worker deaths one job may cause before it is dead-lettered"},
    {"max_job_bytes", OPT_SIZE, "960KiB", 0, 0, BIND(max_job_bytes),
     "larger jobs are dead-lettered as bad-input (their copy fits Kafka's 1 MB default)"},
    {"idempotency", OPT_BOOL, "on", 0, 0, BIND(idempotency),
     "skip jobs whose event id was already handled"},
    {"idempotency_key", OPT_IDKEYS, "header:event-id, json:metadata.eventId, json:eventId, json:id",
     0, 0, BIND(idempotency_key), "where the event id is found, first match wins"},
    {"idempotency_ttl", OPT_DUR, "7d", 0, 0, BIND(idempotency_ttl_ms),
     "how long handled event ids are remembered"},
    {"ledger", OPT_STR, "kafka", 0, 0, BIND(ledger),
     "kafka: the hosts of the binding share finished ids through ledger_topic (compacted; "
     "every host reads it); local: this host's ledger only"},
    {"ledger_topic", OPT_STR, NULL, 0, 0, BIND(ledger_topic),
     "the ledger topic of ledger = kafka, made when absent (default GROUP.ledger)"},
    {"rate", OPT_STR, NULL, 0, 0, BIND(rate),
     "at most N handler calls per second, minute or hour for the whole binding: N/s, N/m "
     "or N/h (default: no limit); hosts share it by their share of the partitions"},
    {"max_age", OPT_DUR, NULL, 0, 0, BIND(max_age_ms),
     "a job older than this when its turn comes (from its Kafka timestamp) is expired "
     "(default: none; a job's own expiresAt counts too)"},
    {"expired", OPT_STR, "dead-letter", 0, 0, BIND(expired),
     "what becomes of an expired job: dead-letter (class expired) or drop (counted only)"},
};

#define CONS(f) offsetof(struct kp_conf, f)

static const struct optdef console_opts[] = {
    {"listen", OPT_STR, NULL, 0, 0, CONS(console_listen),
     "HOST:PORT of the web console (off when not set); port 0 picks one; without "
     "token_file only a loopback address"},
    {"token_file", OPT_STR, NULL, 0, 0, CONS(console_token_file),
     "a file whose first line is the login token (not readable by others); without it "
     "the console is read-only"},
    {"cert_file", OPT_STR, NULL, 0, 0, CONS(console_cert_file),
     "PEM certificate: the console speaks HTTPS (with key_file)"},
    {"key_file", OPT_STR, NULL, 0, 0, CONS(console_key_file), "PEM private key of cert_file"},
    {"session_lifetime", OPT_DUR, "12h", 0, 0, CONS(console_session_ms), "how long a login lasts"},
};

#define N_POOL	  (sizeof(pool_opts) / sizeof(pool_opts[0]))
#define N_CONSOLE (sizeof(console_opts) / sizeof(console_opts[0]))
#define N_WORKER  (sizeof(worker_opts) / sizeof(worker_opts[0]))

struct section {
	char *name;
	int line;
};

struct parse_ctx {
	struct kp_conf *conf;
	FILE *f;
	int nl;	      /* newlines read so far */
	bool partial; /* the last chunk read did not end a line */
	struct section *sections;
	size_t n_sections;
	char *err;
	size_t errlen;
	bool failed;
	bool pool_set[N_POOL];
	int console_line[N_CONSOLE]; /* where each [console] key was set */
};

/* Keeps the parse's first error, as FILE:LINE: [SECTION] KEY: message; later ones are dropped. */
static void perr(struct parse_ctx *c, int line, const char *section, const char *key,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void perr(struct parse_ctx *c, int line, const char *section, const char *key,
		 const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (c->failed)
		return;
	c->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (key)
		snprintf(c->err, c->errlen, "%s:%d: [%s] %s: %s", c->conf->path, line, section, key,
			 msg);
	else if (section)
		snprintf(c->err, c->errlen, "%s:%d: [%s]: %s", c->conf->path, line, section, msg);
	else
		snprintf(c->err, c->errlen, "%s:%d: %s", c->conf->path, line, msg);
}

/* The line libinih is on: the lines read so far, and the one being read. */
static int cur_line(const struct parse_ctx *c)
{
	return c->nl + (c->partial ? 1 : 0);
}

/* Cuts leading and trailing whitespace off s, in place; returns where it now starts. */
static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Parses "header:event-id, json:metadata.eventId, ..." into keys; -1 with err on a bad one. */
int kp_idkeys_parse(const char *s, struct kp_idkey *keys, int *n, char *err, size_t len)
{
	char *copy = strdup(s), *save = NULL, *tok;
	int rc = -1;

	*n = 0;
	if (copy == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *t = trim(tok);

		/* Counted before the slot is touched: there is no slot past the last. */
		if (*n == KP_IDKEYS_MAX) {
			snprintf(err, len, "more than %d sources", KP_IDKEYS_MAX);
			goto out;
		}
		struct kp_idkey *k = &keys[*n];
		memset(k, 0, sizeof(*k));
		if (strncmp(t, "header:", 7) == 0 && t[7]) {
			k->kind = KP_IDKEY_HEADER;
			k->name = strdup(t + 7);
		} else if (strncmp(t, "json:", 5) == 0 && t[5]) {
			char *p, *psave = NULL;

			k->kind = KP_IDKEY_JSON;
			k->name = strdup(t + 5);
			char *path = strdup(t + 5);
			for (p = strtok_r(path, ".", &psave); p; p = strtok_r(NULL, ".", &psave)) {
				if (k->depth == KP_PATH_DEPTH) {
					free(path);
					snprintf(err, len, "'%s' is deeper than %d", t,
						 KP_PATH_DEPTH);
					(*n)++;
					goto out;
				}
				k->path[k->depth++] = strdup(p);
			}
			free(path);
		} else {
			snprintf(err, len, "'%s' is not header:NAME or json:PATH", t);
			goto out;
		}
		(*n)++;
	}
	if (*n == 0) {
		snprintf(err, len, "no sources");
		goto out;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/* Frees what kp_idkeys_parse() put in keys[0..n). */
void kp_idkeys_free(struct kp_idkey *keys, int n)
{
	for (int i = 0; i < n; i++) {
		free(keys[i].name);
		for (int j = 0; j < keys[i].depth; j++)
			free(keys[i].path[j]);
	}
}

/* Stores one value into the field an option table entry describes. */
static int opt_set(struct parse_ctx *c, void *base, const struct optdef *o, const char *value,
		   int line, const char *section)
{
	char *field = (char *)base + o->off;
	char *end;
	long v;

	switch (o->type) {
	case OPT_STR:
	case OPT_TOPICS:
	case OPT_IDKEYS:
		free(*(char **)field);
		*(char **)field = strdup(value);
		return 0;
	case OPT_INT:
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno || end == value || *end || v < o->min || v > o->max) {
			perr(c, line, section, o->key, "'%s' is not a whole number from %ld to %ld",
			     value, o->min, o->max);
			return -1;
		}
		*(int *)field = (int)v;
		return 0;
	case OPT_DUR:
		if (kp_parse_duration(value, (int64_t *)field) < 0) {
			perr(c, line, section, o->key,
			     "bad duration '%s' (use a number with ms, s, m, h or d)", value);
			return -1;
		}
		return 0;
	case OPT_SIZE:
		if (kp_parse_size(value, (int64_t *)field) < 0) {
			perr(c, line, section, o->key,
			     "bad size '%s' (use a number with B, KiB, MiB or GiB)", value);
			return -1;
		}
		return 0;
	case OPT_BOOL:
		if (kp_parse_bool(value, (bool *)field) < 0) {
			perr(c, line, section, o->key, "'%s' is not on or off", value);
			return -1;
		}
		return 0;
	case OPT_LEVEL:
		if ((*(int *)field = kp_level_parse(value)) < 0) {
			perr(c, line, section, o->key,
			     "'%s' is not debug, info, notice, warning or error", value);
			return -1;
		}
		return 0;
	}
	return -1;
}

/* Whether s is a binding name: [a-z0-9_-]+, shorter than KP_NAME_MAX. */
static bool valid_name(const char *s)
{
	if (*s == '\0' || strlen(s) >= KP_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' ||
		      *s == '-'))
			return false;
	return true;
}

/* The binding named name, made with its defaults on first sight; NULL when memory runs out. */
static struct kp_binding *binding_get(struct parse_ctx *c, const char *name, int line)
{
	struct kp_conf *conf = c->conf;
	struct kp_binding *b;

	for (size_t i = 0; i < conf->n_bindings; i++)
		if (strcmp(conf->bindings[i].name, name) == 0)
			return &conf->bindings[i];
	b = realloc(conf->bindings, (conf->n_bindings + 1) * sizeof(*b));
	if (b == NULL)
		return NULL;
	conf->bindings = b;
	b = &conf->bindings[conf->n_bindings++];
	memset(b, 0, sizeof(*b));
	b->name = strdup(name);
	b->line = line;
	for (size_t i = 0; i < N_WORKER; i++)
		if (worker_opts[i].def)
			opt_set(c, b, &worker_opts[i], worker_opts[i].def, 0, "");
	return b;
}

/* Appends key = value (of line) to *kv; -1, *kv unchanged, when memory runs out. */
static int kv_append(struct kp_kv **kv, size_t *n, const char *key, const char *value, int line)
{
	struct kp_kv *p = realloc(*kv, (*n + 1) * sizeof(**kv));

	if (p == NULL)
		return -1;
	*kv = p;
	p[*n].key = strdup(key);
	p[*n].value = strdup(value);
	p[*n].line = line;
	(*n)++;
	return 0;
}

static void anchor(char **path, const char *conf_path);

/* Whether the [kafka] keys already hold key. */
static bool kafka_has(const struct kp_conf *conf, const char *key)
{
	for (size_t i = 0; i < conf->n_kafka; i++)
		if (strcmp(conf->kafka[i].key, key) == 0)
			return true;
	return false;
}

/*
 * [kafka] sasl.password.file, kpool's own key: the file's first line is the
 * sasl.password, so that the secret never sits in the conf.  Read at every
 * (re)load, by the user kpoold runs as then.
 */
static void read_secret(struct parse_ctx *c, int line, const char *value)
{
	char *path = strdup(value), *secret = NULL;
	size_t cap = 0;
	ssize_t n = -1;
	FILE *f;

	if (path == NULL)
		return;
	anchor(&path, c->conf->path);
	f = fopen(path, "r");
	if (f == NULL) {
		perr(c, line, "kafka", "sasl.password.file", "%s: %s", path, strerror(errno));
		goto out;
	}
	n = getline(&secret, &cap, f);
	fclose(f);
	while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
		secret[--n] = '\0';
	if (n <= 0)
		perr(c, line, "kafka", "sasl.password.file",
		     "%s: empty (the first line is the password)", path);
	else if (kafka_has(c->conf, "sasl.password"))
		perr(c, line, "kafka", "sasl.password.file",
		     "sasl.password is given already; use one");
	else
		kv_append(&c->conf->kafka, &c->conf->n_kafka, "sasl.password", secret, line);
out:
	if (secret)
		explicit_bzero(secret, cap);
	free(secret);
	free(path);
}

/* libinih's callback: one key = value at a time. */
static int on_key(void *user, const char *section, const char *key, const char *value)
{
	struct parse_ctx *c = user;
	struct kp_conf *conf = c->conf;
	int line = cur_line(c);

	if (c->failed)
		return 1;
	if (*section == '\0') {
		perr(c, line, NULL, NULL, "'%s' is outside any section", key);
		return 1;
	}
	if (strcmp(section, "kafka") == 0) {
		if (strcmp(key, "bootstrap.servers") == 0) {
			free(conf->bootstrap);
			conf->bootstrap = strdup(value);
		}
		if (strcmp(key, "sasl.password.file") == 0) {
			read_secret(c, line, value);
			return 1;
		}
		if (strcmp(key, "sasl.password") == 0 && kafka_has(conf, key)) {
			perr(c, line, "kafka", key,
			     "given already (here or by sasl.password.file); use one");
			return 1;
		}
		kv_append(&conf->kafka, &conf->n_kafka, key, value, line);
		return 1;
	}
	if (strcmp(section, "pool") == 0) {
		for (size_t i = 0; i < N_POOL; i++)
			if (strcmp(key, pool_opts[i].key) == 0) {
				opt_set(c, conf, &pool_opts[i], value, line, section);
				c->pool_set[i] = true;
				return 1;
			}
		perr(c, line, section, key, "unknown key");
		return 1;
	}
	if (strcmp(section, "console") == 0) {
		for (size_t i = 0; i < N_CONSOLE; i++)
			if (strcmp(key, console_opts[i].key) == 0) {
				opt_set(c, conf, &console_opts[i], value, line, section);
				c->console_line[i] = line;
				return 1;
			}
		perr(c, line, section, key, "unknown key");
		return 1;
	}
	if (strncmp(section, "worker:", 7) == 0 && valid_name(section + 7)) {
		struct kp_binding *b = binding_get(c, section + 7, line);

		if (b == NULL) {
			perr(c, line, section, key, "out of memory");
			return 1;
		}
		for (size_t i = 0; i < N_WORKER; i++)
			if (strcmp(key, worker_opts[i].key) == 0) {
				opt_set(c, b, &worker_opts[i], value, line, section);
				b->key_line[i] = line;
				return 1;
			}
		kv_append(&b->opts, &b->n_opts, key, value, line); /* the handler's own */
		return 1;
	}
	return 1; /* the section itself is reported by check_sections() */
}

/* libinih's reader: fgets, counting lines and noting where sections begin. */
static char *reader(char *buf, int size, void *stream)
{
	struct parse_ctx *c = stream;
	char *s = fgets(buf, size, c->f);
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s);
	if (!c->partial) {
		char *t = s;

		while (*t == ' ' || *t == '\t')
			t++;
		if (*t == '[') {
			/* The name ends at ']', or with the line when there is none
			 * (inih calls that a syntax error): never a line break in it. */
			size_t len = strcspn(t + 1, "]\r\n");
			struct section *p = realloc(c->sections, (c->n_sections + 1) * sizeof(*p));
			if (p) {
				c->sections = p;
				p[c->n_sections].name = strndup(t + 1, len);
				p[c->n_sections].line = c->nl + 1;
				c->n_sections++;
			}
		}
	}
	if (n > 0 && s[n - 1] == '\n') {
		c->nl++;
		c->partial = false;
	} else {
		c->partial = true;
	}
	return s;
}

/* Every section header must be one kpool knows; empty [worker:x] sections count too. */
static void check_sections(struct parse_ctx *c)
{
	for (size_t i = 0; i < c->n_sections && !c->failed; i++) {
		const char *s = c->sections[i].name;
		int line = c->sections[i].line;

		if (strcmp(s, "kafka") == 0 || strcmp(s, "pool") == 0 || strcmp(s, "console") == 0)
			continue;
		if (strncmp(s, "worker:", 7) == 0) {
			if (!valid_name(s + 7)) {
				perr(c, line, s, NULL,
				     "bad worker name '%s' (use a-z, 0-9, _ and -, at most %d)",
				     s + 7, KP_NAME_MAX - 1);
				return;
			}
			struct kp_binding *b = binding_get(c, s + 7, line);
			if (b && line < b->line)
				b->line = line;
			continue;
		}
		perr(c, line, s, NULL,
		     "unknown section (kpool knows [kafka], [pool], [console], [worker:NAME])");
	}
}

/* Where a binding's own key was set, else its section header. */
static int line_of(const struct kp_binding *b, const char *key)
{
	for (size_t i = 0; i < N_WORKER; i++)
		if (strcmp(worker_opts[i].key, key) == 0 && b->key_line[i])
			return b->key_line[i];
	return b->line;
}

/* Fills computed defaults and checks what one binding needs. */
static void check_binding(struct parse_ctx *c, struct kp_binding *b)
{
	char section[KP_NAME_MAX + 8];
	char err[256];

	snprintf(section, sizeof(section), "worker:%s", b->name);
	if (b->topic_list == NULL || *trim(b->topic_list) == '\0') {
		perr(c, b->line, section, "topic", "missing (the topics this worker consumes)");
		return;
	}
	if (b->handler == NULL) {
		perr(c, b->line, section, "handler", "missing (the plugin that runs the jobs)");
		return;
	}
	if (!valid_name(b->handler)) {
		perr(c, line_of(b, "handler"), section, "handler", "'%s' is not a plugin name",
		     b->handler);
		return;
	}
	char *copy = strdup(b->topic_list), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		t = trim(t);
		if (*t == '\0')
			continue;
		if (b->n_topics == KP_TOPICS_MAX) {
			perr(c, line_of(b, "topic"), section, "topic", "more than %d topics",
			     KP_TOPICS_MAX);
			break;
		}
		if (strlen(t) >= KP_TOPIC_MAX) {
			perr(c, line_of(b, "topic"), section, "topic", "'%s' is too long", t);
			break;
		}
		b->topics[b->n_topics++] = strdup(t);
	}
	free(copy);
	if (b->n_topics == 0 && !c->failed)
		perr(c, line_of(b, "topic"), section, "topic", "no topic named");
	if (b->group == NULL) {
		char g[KP_NAME_MAX + 8];
		snprintf(g, sizeof(g), "kpool-%s", b->name);
		b->group = strdup(g);
	}
	if (strcmp(b->ledger, "kafka") == 0)
		b->ledger_kafka =
		    b->idempotency; /* without idempotency there is nothing to share */
	else if (strcmp(b->ledger, "local") != 0)
		perr(c, line_of(b, "ledger"), section, "ledger", "'%s' is neither kafka nor local",
		     b->ledger);
	if (b->ledger_topic == NULL && b->group) {
		char t[KP_TOPIC_MAX + 16];
		snprintf(t, sizeof(t), "%s.ledger", b->group);
		b->ledger_topic = strdup(t);
	}
	if (b->ledger_topic && (strlen(b->ledger_topic) >= KP_TOPIC_MAX || !*b->ledger_topic))
		perr(c, line_of(b, "ledger_topic"), section, "ledger_topic",
		     "'%s' is not a topic name", b->ledger_topic);
	if (b->retry_backoff_max_ms < b->retry_backoff_ms)
		perr(c, line_of(b, "retry_backoff_max"), section, "retry_backoff_max",
		     "shorter than retry_backoff");
	if (kp_idkeys_parse(b->idempotency_key, b->idkeys, &b->n_idkeys, err, sizeof(err)) < 0)
		perr(c, line_of(b, "idempotency_key"), section, "idempotency_key", "%s", err);
	/* After the id keys, the deadline's: the scan looks for them in the same pass. */
	int nd;
	if (!c->failed)
		kp_idkeys_parse(KP_DEADLINE_KEYS, b->idkeys + b->n_idkeys, &nd, err, sizeof(err));
	if (b->rate && (*b->rate == '\0' || strcmp(b->rate, "off") == 0)) { /* no limit */
		free(b->rate);
		b->rate = NULL;
	}
	if (b->rate && kp_parse_rate(b->rate, &b->rate_n, &b->rate_period_ms) < 0)
		perr(c, line_of(b, "rate"), section, "rate",
		     "'%s' is not a rate (use N/s, N/m or N/h, N a whole number from 1 to "
		     "1000000000)",
		     b->rate);
	if (strcmp(b->expired, "drop") == 0)
		b->expired_drop = true;
	else if (strcmp(b->expired, "dead-letter") != 0)
		perr(c, line_of(b, "expired"), section, "expired",
		     "'%s' is neither dead-letter nor drop", b->expired);
}

/*
 * The plugin directory when the conf names none: the build's plugins when
 * kpoold runs from its build tree, else the installed one.  NULL if memory
 * runs out.
 */
char *kp_conf_default_plugin_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t blen = strlen(KP_BUILDDIR);

	if (n > 0) {
		exe[n] = '\0';
		if (strncmp(exe, KP_BUILDDIR "/", blen + 1) == 0 &&
		    access(KP_BUILDDIR "/plugins/.libs", F_OK) == 0)
			return strdup(KP_BUILDDIR "/plugins/.libs");
	}
	return strdup(KP_PLUGIN_DIR);
}

/*
 * The absolute directory of the conf file at path, into dir; -1 (dir left
 * empty) if it cannot be told or does not fit.
 */
static int conf_dir(const char *path, char *dir, size_t len)
{
	char real[PATH_MAX], *slash;

	dir[0] = '\0';
	if (realpath(path, real) == NULL)
		return -1;
	slash = strrchr(real, '/');
	if (slash == real) /* a conf in / */
		slash++;
	*slash = '\0';
	if (strlen(real) >= len)
		return -1;
	memcpy(dir, real, strlen(real) + 1);
	return 0;
}

/* Makes a relative path relative to the conf file's directory, so every command agrees on it. */
static void anchor(char **path, const char *conf_path)
{
	char dir[PATH_MAX], out[PATH_MAX * 2];
	const char *slash;

	if (*path == NULL || (*path)[0] == '/' || (*path)[0] == '\0')
		return;
	if (realpath(conf_path, dir) == NULL)
		return;
	slash = strrchr(dir, '/');
	snprintf(out, sizeof(out), "%.*s/%s", (int)(slash - dir), dir, *path);
	free(*path);
	*path = strdup(out);
}

/* Checks the [kafka] keys against librdkafka's own table, without connecting. */
static void check_kafka(struct parse_ctx *c)
{
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	char err[512];

	for (size_t i = 0; i < c->conf->n_kafka && !c->failed; i++) {
		const struct kp_kv *kv = &c->conf->kafka[i];

		if (strcmp(kv->key, "bootstrap.servers") == 0)
			continue;
		if (rd_kafka_conf_set(rc, kv->key, kv->value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
			perr(c, kv->line, "kafka", kv->key, "%s", err);
	}
	rd_kafka_conf_destroy(rc);
}

/* Whether host (of HOST:PORT, brackets gone) is a loopback address, by its digits alone. */
static bool loopback(const char *host)
{
	unsigned char a[16];

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) == 1)
		return memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0;
	return false;
}

/*
 * Splits HOST:PORT ([V6]:PORT) into host (brackets gone) and port; -1 if s
 * is not that, with a port from 0 to 65535.
 */
int kp_hostport(const char *s, char *host, size_t len, int *port)
{
	const char *colon = strrchr(s, ':');
	size_t n;
	char *end;
	long p;

	if (colon == NULL || colon[1] == '\0')
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || p < 0 || p > 65535)
		return -1;
	n = (size_t)(colon - s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n >= len)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	*port = (int)p;
	return 0;
}

/* [console]: where it listens, and that without a token it is on loopback only. */
static void check_console(struct parse_ctx *c)
{
	struct kp_conf *conf = c->conf;
	const int *at = c->console_line;
	char host[256];
	int port;

	if (conf->console_listen == NULL) {
		for (size_t i = 0; i < N_CONSOLE; i++)
			if (at[i] && !c->failed)
				perr(c, at[i], "console", console_opts[i].key,
				     "set, but the console is off (it needs listen = HOST:PORT)");
		return;
	}
	if (kp_hostport(conf->console_listen, host, sizeof(host), &port) < 0 || host[0] == '\0') {
		perr(c, at[0], "console", "listen", "'%s' is not HOST:PORT", conf->console_listen);
		return;
	}
	if (conf->console_token_file == NULL && !loopback(host)) {
		perr(c, at[0], "console", "listen",
		     "'%s' is not a loopback address, and without token_file the console "
		     "has no login: set token_file, or listen on 127.0.0.1",
		     conf->console_listen);
		return;
	}
	if ((conf->console_cert_file == NULL) != (conf->console_key_file == NULL)) {
		perr(c, conf->console_cert_file ? at[2] : at[3], "console",
		     conf->console_cert_file ? "cert_file" : "key_file",
		     "HTTPS needs both cert_file and key_file");
		return;
	}
	for (int i = 0; i < 3; i++)
		conf->console_lines[i] = at[i + 1];
	anchor(&conf->console_token_file, conf->path);
	anchor(&conf->console_cert_file, conf->path);
	anchor(&conf->console_key_file, conf->path);
}

/* Reads and checks a conf file; returns NULL with a one-line err on failure. */
struct kp_conf *kp_conf_load(const char *path, char *err, size_t len)
{
	struct parse_ctx c = {0};
	struct kp_conf *conf = calloc(1, sizeof(*conf));
	int rc;

	if (conf == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	conf->path = strdup(path);
	c.conf = conf;
	c.err = err;
	c.errlen = len;
	for (size_t i = 0; i < N_POOL; i++)
		if (pool_opts[i].def)
			opt_set(&c, conf, &pool_opts[i], pool_opts[i].def, 0, "pool");
	for (size_t i = 0; i < N_CONSOLE; i++)
		if (console_opts[i].def)
			opt_set(&c, conf, &console_opts[i], console_opts[i].def, 0, "console");
	c.f = fopen(path, "r");
	if (c.f == NULL) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		goto fail;
	}
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = 64 * 1024;
	rc = ini_parse_stream(reader, &c, on_key, &c);
	fclose(c.f);
	if (rc > 0 && !c.failed)
		perr(&c, rc, NULL, NULL, "syntax error (expected [section] or key = value)");
	check_sections(&c);
	if (!c.failed && conf->bootstrap == NULL)
		perr(&c, 1, "kafka", "bootstrap.servers",
		     "missing (a broker list, or 'embedded' for the built-in broker)");
	if (!c.failed)
		conf->embedded = strcmp(conf->bootstrap, "embedded") == 0;
	check_kafka(&c);
	for (size_t i = 0; i < conf->n_bindings && !c.failed; i++)
		check_binding(&c, &conf->bindings[i]);
	if (!c.failed)
		check_console(&c);
	if (conf->plugin_dir == NULL)
		conf->plugin_dir = kp_conf_default_plugin_dir();
	anchor(&conf->plugin_dir, path);
	anchor(&conf->state_dir, path);
	if (!c.failed) {
		char dir[PATH_MAX];

		if (conf_dir(path, dir, sizeof(dir)) < 0)
			perr(&c, 1, NULL, NULL, "cannot tell the conf file's directory: %s",
			     strerror(errno));
		else
			conf->dir = strdup(dir);
	}
	for (size_t i = 0; i < c.n_sections; i++)
		free(c.sections[i].name);
	free(c.sections);
	if (c.failed)
		goto fail;
	return conf;
fail:
	kp_conf_free(conf);
	return NULL;
}

/* Frees a conf and everything it owns; NULL is fine. */
void kp_conf_free(struct kp_conf *conf)
{
	if (conf == NULL)
		return;
	for (size_t i = 0; i < conf->n_kafka; i++) {
		free(conf->kafka[i].key);
		free(conf->kafka[i].value);
	}
	free(conf->kafka);
	for (size_t i = 0; i < conf->n_bindings; i++) {
		struct kp_binding *b = &conf->bindings[i];

		free(b->name);
		for (int t = 0; t < b->n_topics; t++)
			free(b->topics[t]);
		free(b->topic_list);
		free(b->handler);
		free(b->group);
		free(b->dead_letter_topic);
		free(b->ledger);
		free(b->ledger_topic);
		free(b->idempotency_key);
		kp_idkeys_free(b->idkeys, b->n_idkeys + KP_DEADLINE_N); /* unset ones are zero */
		free(b->rate);
		free(b->expired);
		for (size_t o = 0; o < b->n_opts; o++) {
			free(b->opts[o].key);
			free(b->opts[o].value);
		}
		free(b->opts);
	}
	free(conf->bindings);
	free(conf->path);
	free(conf->dir);
	free(conf->bootstrap);
	free(conf->plugin_dir);
	free(conf->state_dir);
	free(conf->metrics_listen);
	free(conf->user);
	free(conf->console_listen);
	free(conf->console_token_file);
	free(conf->console_cert_file);
	free(conf->console_key_file);
	free(conf);
}

/* Finds a binding by name; NULL if there is none. */
const struct kp_binding *kp_conf_binding(const struct kp_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->n_bindings; i++)
		if (strcmp(conf->bindings[i].name, name) == 0)
			return &conf->bindings[i];
	return NULL;
}

/*
 * The broker list to connect to: the conf's, or for "embedded" the address the
 * embedded broker wrote into state_dir.  Returns a string to free, or NULL with err.
 */
char *kp_conf_bootstrap(const struct kp_conf *conf, char *err, size_t len)
{
	char path[PATH_MAX], buf[1024];
	FILE *f;

	if (!conf->embedded)
		return strdup(conf->bootstrap);
	snprintf(path, sizeof(path), "%s/%s", conf->state_dir, KP_EMBEDDED_FILE);
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, len, "%s: %s (is kpoold running with the embedded broker?)", path,
			 strerror(errno));
		return NULL;
	}
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		snprintf(err, len, "%s: empty", path);
		return NULL;
	}
	fclose(f);
	return strdup(trim(buf));
}

/*
 * Whether librdkafka documents key as a property of the other kind of
 * client only: a consumer's on a producer, or the reverse, which it would
 * take and then warn about (CONFWARN).  Read from librdkafka's own table,
 * so that it is right for the version kpool runs with.
 */
bool kp_conf_kafka_other(const char *key, bool producer)
{
	char *text = NULL, *line, *save = NULL;
	size_t size = 0, klen = strlen(key);
	FILE *f = open_memstream(&text, &size);
	bool other = false;

	if (f == NULL)
		return false;
	rd_kafka_conf_properties_show(f); /* "name | C, P or * | range | ..." */
	fclose(f);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *bar = strchr(line, '|'), *role;
		if (bar == NULL || strncmp(line, key, klen) != 0 ||
		    (line[klen] != ' ' && line[klen] != '|'))
			continue;
		for (role = bar + 1; *role == ' '; role++)
			;
		other = *role == (producer ? 'C' : 'P');
		break;
	}
	free(text);
	return other;
}

/*
 * Sets the [kafka] keys and the broker list on a librdkafka conf for a
 * producer or a consumer (keys only the other kind has are left out);
 * -1 with err on failure.
 */
int kp_conf_kafka_apply(const struct kp_conf *conf, void *rd_conf, bool producer, char *err,
			size_t len)
{
	char *bootstrap = kp_conf_bootstrap(conf, err, len);

	if (bootstrap == NULL)
		return -1;
	for (size_t i = 0; i < conf->n_kafka; i++) {
		const struct kp_kv *kv = &conf->kafka[i];
		const char *v = strcmp(kv->key, "bootstrap.servers") == 0 ? bootstrap : kv->value;

		if (kp_conf_kafka_other(kv->key, producer))
			continue;

		if (rd_kafka_conf_set(rd_conf, kv->key, v, err, len) != RD_KAFKA_CONF_OK) {
			free(bootstrap);
			return -1;
		}
	}
	free(bootstrap);
	return 0;
}

/* One line of --options: key, default, what it is; a long default gets a line of its own. */
void kp_conf_print_option(const char *key, const char *def, const char *desc)
{
	if (strlen(def) > 14)
		printf("%-18s  %s\n%-18s  %-14s  %s\n", key, def, "", "", desc);
	else
		printf("%-18s  %-14s  %s\n", key, def, desc);
}

/* Prints the option tables, the reference for kpool.conf(5). */
void kp_conf_print_options(void)
{
	printf("[pool]\n");
	for (size_t i = 0; i < N_POOL; i++)
		kp_conf_print_option(pool_opts[i].key, pool_opts[i].def ? pool_opts[i].def : "-",
				     pool_opts[i].desc);
	printf("\n[kafka]\n");
	kp_conf_print_option("bootstrap.servers", "-",
			     "host:port,... or 'embedded' for the built-in broker");
	kp_conf_print_option("sasl.password.file", "-",
			     "a file whose first line is sasl.password, kept out of the conf");
	kp_conf_print_option(
	    "*", "-", "any other key is librdkafka's (security.protocol, sasl.*, ssl.*, ...)");
	printf("\n[console]\n");
	for (size_t i = 0; i < N_CONSOLE; i++)
		kp_conf_print_option(console_opts[i].key,
				     console_opts[i].def ? console_opts[i].def : "-",
				     console_opts[i].desc);
	printf("\n[worker:NAME]\n");
	for (size_t i = 0; i < N_WORKER; i++)
		kp_conf_print_option(worker_opts[i].key,
				     worker_opts[i].def ? worker_opts[i].def : "-",
				     worker_opts[i].desc);
}
