/* conf_test.c - the conf file: durations, sizes, defaults, options and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

static char path[] = "/tmp/kpool-conf-test.XXXXXX";

static struct kp_conf *load(const char *text, char *err, size_t len)
{
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	struct kp_conf *c = kp_conf_load(path, err, len);
	unlink(path);
	strcpy(path + strlen(path) - 6, "XXXXXX");
	return c;
}

static void durations(void **state)
{
	int64_t ms;

	(void)state;
	assert_int_equal(kp_parse_duration("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(kp_parse_duration("30s", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(kp_parse_duration("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(kp_parse_duration("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(kp_parse_duration("7d", &ms), 0);
	assert_int_equal(ms, 604800000);
	assert_int_equal(kp_parse_duration("0", &ms), 0);
	assert_int_equal(ms, 0);
	/* The handlers' old grammar, now the one grammar: bare seconds, fractions. */
	assert_int_equal(kp_parse_duration("30", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(kp_parse_duration("1.5s", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(kp_parse_duration("0.25m", &ms), 0);
	assert_int_equal(ms, 15000);
	assert_int_equal(kp_parse_duration("2.5", &ms), 0);
	assert_int_equal(ms, 2500);
	assert_int_equal(kp_parse_duration("1.", &ms), -1);
	assert_int_equal(kp_parse_duration(".5s", &ms), -1);
	assert_int_equal(kp_parse_duration("1y", &ms), -1);
	assert_int_equal(kp_parse_duration("-1s", &ms), -1);
	assert_int_equal(kp_parse_duration("s", &ms), -1);
	assert_int_equal(kp_parse_duration("99999999999999999d", &ms), -1);
}

static void sizes(void **state)
{
	int64_t b;

	(void)state;
	assert_int_equal(kp_parse_size("512", &b), 0);
	assert_int_equal(b, 512);
	assert_int_equal(kp_parse_size("512B", &b), 0);
	assert_int_equal(b, 512);
	assert_int_equal(kp_parse_size("64KiB", &b), 0);
	assert_int_equal(b, 65536);
	assert_int_equal(kp_parse_size("1MiB", &b), 0);
	assert_int_equal(b, 1048576);
	assert_int_equal(kp_parse_size("1MB", &b), -1);
	assert_int_equal(kp_parse_size("MiB", &b), -1);
}

/* rate = N/s, N/m, N/h. */
static void rates(void **state)
{
	static const struct {
		const char *s;
		int64_t n, ms;
	} good[] = {{"50/s", 50, 1000},
		    {"14/sec", 14, 1000},
		    {"100/m", 100, 60000},
		    {"100 / min", 100, 60000},
		    {"5000/h", 5000, 3600000},
		    {"1/hour", 1, 3600000},
		    {"1000000000/s", 1000000000, 1000}};
	static const char *const bad[] = {
	    "",	    "50",    "50/",   "/s",	      "0/s",
	    "-1/s", "1.5/s", "50/d",  "50/week",      "50/ss",
	    "x/s",  "50/s ", " 50/s", "1000000001/s", "99999999999999999999/s"};
	int64_t n, ms;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(kp_parse_rate(good[i].s, &n, &ms), 0);
		assert_int_equal(n, good[i].n);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (kp_parse_rate(bad[i], &n, &ms) == 0)
			fail_msg("'%s' taken as a rate", bad[i]);
}

/* rate, max_age and expired as a binding has them. */
static void limits(void **state)
{
	char err[512];
	struct kp_conf *c = load("[kafka]\nbootstrap.servers = embedded\n"
				 "[worker:email]\ntopic = q\nhandler = log\nrate = 100/m\n"
				 "max_age = 15m\nexpired = drop\n"
				 "[worker:off]\ntopic = r\nhandler = log\nrate = off\n",
				 err, sizeof(err));
	const struct kp_binding *b;

	(void)state;
	assert_non_null(c);
	b = kp_conf_binding(c, "email");
	assert_string_equal(b->rate, "100/m");
	assert_int_equal(b->rate_n, 100);
	assert_int_equal(b->rate_period_ms, 60000);
	assert_int_equal(b->max_age_ms, 15 * 60000);
	assert_true(b->expired_drop);
	b = kp_conf_binding(c, "off");
	assert_null(b->rate);
	assert_int_equal(b->rate_period_ms, 0);
	kp_conf_free(c);
}

static void defaults_and_options(void **state)
{
	char err[512];
	struct kp_conf *c =
	    load("[kafka]\nbootstrap.servers = k1:9092,k2:9092\n"
		 "security.protocol = plaintext\n"
		 "[worker:email]\ntopic = email-queue, more ; comment\nhandler = log\n"
		 "smtp_url = smtp://localhost:25\nlevel = debug\n",
		 err, sizeof(err));
	const struct kp_binding *b;

	(void)state;
	assert_non_null(c);
	assert_false(c->embedded);
	assert_string_equal(c->bootstrap, "k1:9092,k2:9092");
	assert_int_equal(c->n_kafka, 2);
	assert_string_equal(c->state_dir, "/var/lib/kpool");
	assert_int_equal(c->shutdown_timeout_ms, 30000);
	b = kp_conf_binding(c, "email");
	assert_non_null(b);
	assert_int_equal(b->n_topics, 2);
	assert_string_equal(b->topics[0], "email-queue");
	assert_string_equal(b->topics[1], "more");
	assert_string_equal(b->group, "kpool-email");
	assert_null(b->dead_letter_topic);
	assert_int_equal(b->processes, 1);
	assert_int_equal(b->max_attempts, 5);
	assert_int_equal(b->retry_backoff_ms, 1000);
	assert_int_equal(b->retry_backoff_max_ms, 300000);
	assert_int_equal(b->max_crashes, 3);
	assert_int_equal(b->max_job_bytes, 960 * 1024);
	assert_true(b->idempotency);
	assert_int_equal(b->idempotency_ttl_ms, 7 * 86400000LL);
	assert_int_equal(b->n_idkeys, 4);
	assert_int_equal(b->idkeys[0].kind, KP_IDKEY_HEADER);
	assert_string_equal(b->idkeys[0].name, "event-id");
	assert_int_equal(b->idkeys[1].kind, KP_IDKEY_JSON);
	assert_int_equal(b->idkeys[1].depth, 2);
	assert_string_equal(b->idkeys[1].path[1], "eventId");
	/* The scan looks for the id keys, then the job's deadline. */
	assert_string_equal(b->idkeys[4].name, "expiresAt");
	assert_int_equal(b->idkeys[5].depth, 2);
	assert_string_equal(b->idkeys[5].path[0], "metadata");
	assert_string_equal(b->idkeys[5].path[1], "expiresAt");
	/* No rate, no max_age; expired jobs are dead-lettered. */
	assert_null(b->rate);
	assert_int_equal(b->rate_period_ms, 0);
	assert_int_equal(b->max_age_ms, 0);
	assert_false(b->expired_drop);
	/* Unknown worker keys go to the handler, in order, with their lines. */
	assert_int_equal(b->n_opts, 2);
	assert_string_equal(b->opts[0].key, "smtp_url");
	assert_string_equal(b->opts[0].value, "smtp://localhost:25");
	assert_int_equal(b->opts[0].line, 7);
	assert_string_equal(b->opts[1].key, "level");
	kp_conf_free(c);
}

static void relative_state_dir(void **state)
{
	char err[512];
	struct kp_conf *c = load("[kafka]\nbootstrap.servers = embedded\n[pool]\nstate_dir = st\n",
				 err, sizeof(err));

	(void)state;
	assert_non_null(c);
	assert_true(c->embedded);
	assert_string_equal(c->state_dir, "/tmp/st");
	assert_string_equal(c->dir, "/tmp");
	kp_conf_free(c);
}

/* normalized SPEC VALUE WANT: kp_opt_normalize() turns VALUE into WANT (NULL: refuses it). */
static void normalized(const struct kpool_option_spec *spec, const char *value, const char *want)
{
	char err[256] = "", *out = NULL;
	int rc = kp_opt_normalize(spec, value, "/etc/kpool", &out, err, sizeof(err));

	if (want == NULL) {
		if (rc == 0 || out != NULL || err[0] == '\0')
			fail_msg("%s = '%s': wanted an error, got '%s'", spec->name, value,
				 out ? out : "NULL");
		return;
	}
	if (rc < 0 || out == NULL || strcmp(out, want) != 0)
		fail_msg("%s = '%s': wanted '%s', got '%s' (%s)", spec->name, value, want,
			 out ? out : "NULL", err);
	free(out);
}

/* A handler's declared options: read with the conf's grammar, handed on in normal form. */
static void handler_options(void **state)
{
	const struct kpool_option_spec str = {.name = "s"};
	const struct kpool_option_spec num = {
	    .name = "n", .type = KPOOL_OPT_INT, .min = 1, .max = 64};
	const struct kpool_option_spec any = {.name = "a", .type = KPOOL_OPT_INT, .min = INT64_MIN};
	const struct kpool_option_spec flag = {.name = "b", .type = KPOOL_OPT_BOOL};
	const struct kpool_option_spec dur = {.name = "d", .type = KPOOL_OPT_DURATION, .min = 1};
	const struct kpool_option_spec size = {.name = "z", .type = KPOOL_OPT_SIZE, .max = 4096};
	const struct kpool_option_spec file = {.name = "p", .type = KPOOL_OPT_PATH};
	const struct kpool_option_spec choice = {
	    .name = "e", .type = KPOOL_OPT_ENUM, .choices = "job|data"};
	char err[256], *out;

	(void)state;
	normalized(&str, " as written ", " as written ");
	normalized(&num, "+08", "8");
	normalized(&num, "65", NULL);
	normalized(&num, "0", NULL);
	normalized(&num, "8x", NULL);
	normalized(&any, "-3", "-3");
	normalized(&flag, "yes", "true");
	normalized(&flag, "off", "false");
	normalized(&flag, "maybe", NULL);
	normalized(&dur, "1.5s", "1500");
	normalized(&dur, "2h", "7200000");
	normalized(&dur, "10", "10000");
	normalized(&dur, "0", NULL); /* below min */
	normalized(&dur, "soon", NULL);
	normalized(&size, "4KiB", "4096");
	normalized(&size, "4097", NULL);
	normalized(&file, "templates", "/etc/kpool/templates");
	normalized(&file, "/srv/t", "/srv/t");
	normalized(&file, "", NULL);
	normalized(&choice, "data", "data");
	normalized(&choice, "dat", NULL);
	normalized(&choice, "job|data", NULL);
	assert_int_equal(kp_opt_normalize(&choice, "all", NULL, &out, err, sizeof(err)), -1);
	assert_string_equal(err, "'all' is not job or data");
	assert_int_equal(kp_opt_normalize(&dur, "5 parsecs", NULL, &out, err, sizeof(err)), -1);
	assert_string_equal(err, "bad duration '5 parsecs' (use a number with ms, s, m, h or d)");
}

static void expect_error(const char *text, const char *want)
{
	char err[512] = "";
	struct kp_conf *c = load(text, err, sizeof(err));

	if (c != NULL || strstr(err, want) == NULL)
		fail_msg("wanted an error with '%s', got '%s'", want, err);
}

static void errors(void **state)
{
	(void)state;
	expect_error("[kafka]\nbootstrap.servers = embedded\n[bogus]\nx = 1\n",
		     ":3: [bogus]: unknown section");
	expect_error("[kafka]\nbootstrap.servers = embedded\n[empty]\n",
		     ":3: [empty]: unknown section");
	expect_error("[kafka]\nbootstrap.servers = embedded\n[worker:w]\nhandler = log\n",
		     ":3: [worker:w] topic: missing");
	expect_error("[kafka]\nbootstrap.servers = embedded\n[worker:w]\ntopic = t\nhandler = log\n"
		     "retry_backoff = 1 fortnight\n",
		     ":6: [worker:w] retry_backoff: bad duration");
	expect_error("[kafka]\nbootstrap.servers = embedded\n[worker:w]\ntopic = t\nhandler = log\n"
		     "idempotency = maybe\n",
		     ":6: [worker:w] idempotency: 'maybe' is not on or off");
	expect_error("[kafka]\nbootstrap.servers = embedded\n[worker:w]\ntopic = t\nhandler = log\n"
		     "max_attempts = 0\n",
		     ":6: [worker:w] max_attempts: '0' is not a whole number from 1");
	expect_error("[pool]\nlog_level = loud\n[kafka]\nbootstrap.servers = embedded\n",
		     ":2: [pool] log_level: 'loud' is not debug");
	expect_error("[pool]\nstate_dir = /x\n", "[kafka] bootstrap.servers: missing");
	expect_error("[kafka]\nbootstrap.servers = embedded\nno.such.property = 1\n",
		     ":3: [kafka] no.such.property: No such configuration property");
}

/* A ninth source is refused without touching memory past the eight slots. */
static void too_many_idkeys(void **state)
{
	struct {
		struct kp_idkey keys[KP_IDKEYS_MAX];
		unsigned char after[sizeof(struct kp_idkey)];
	} s;
	unsigned char want[sizeof(s.after)];
	char err[256] = "";
	int n = -1;

	(void)state;
	memset(s.after, 0xa5, sizeof(s.after));
	memcpy(want, s.after, sizeof(want));
	assert_int_equal(kp_idkeys_parse("header:a, header:b, header:c, header:d, header:e, "
					 "header:f, header:g, header:h, json:x.y.z",
					 s.keys, &n, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "more than 8 sources");
	assert_memory_equal(s.after, want, sizeof(want));
	kp_idkeys_free(s.keys, n);
	assert_int_equal(kp_idkeys_parse("header:a, header:b, header:c, header:d, header:e, "
					 "header:f, header:g, json:x.y.z",
					 s.keys, &n, err, sizeof(err)),
			 0);
	assert_int_equal(n, 8);
	assert_int_equal(s.keys[7].depth, 3);
	assert_memory_equal(s.after, want, sizeof(want));
	kp_idkeys_free(s.keys, n);
}

/* A [kafka] key of one kind of client is not given to the other (no CONFWARN). */
static void kafka_roles(void **state)
{
	(void)state;
	/* a consumer's keys, kept from a producer */
	assert_true(kp_conf_kafka_other("group.id", true));
	assert_true(kp_conf_kafka_other("fetch.wait.max.ms", true));
	assert_true(kp_conf_kafka_other("auto.offset.reset", true)); /* a topic key */
	assert_false(kp_conf_kafka_other("group.id", false));
	/* a producer's, kept from a consumer */
	assert_true(kp_conf_kafka_other("linger.ms", false));
	assert_true(kp_conf_kafka_other("acks", false));
	assert_false(kp_conf_kafka_other("linger.ms", true));
	/* both kinds', and keys librdkafka does not know (it refuses those itself) */
	assert_false(kp_conf_kafka_other("bootstrap.servers", true));
	assert_false(kp_conf_kafka_other("security.protocol", false));
	assert_false(kp_conf_kafka_other("group", true)); /* a prefix is not the key */
	assert_false(kp_conf_kafka_other("no.such.key", true));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(durations),
	    cmocka_unit_test(sizes),
	    cmocka_unit_test(rates),
	    cmocka_unit_test(limits),
	    cmocka_unit_test(defaults_and_options),
	    cmocka_unit_test(relative_state_dir),
	    cmocka_unit_test(handler_options),
	    cmocka_unit_test(errors),
	    cmocka_unit_test(too_many_idkeys),
	    cmocka_unit_test(kafka_roles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
