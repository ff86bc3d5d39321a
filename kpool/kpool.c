/*
 * kpool.c - the admin command: send jobs, inspect and replay dead-letter
 * topics, show the pool's status, pause and resume a binding, read the audit
 * log and the analytics rollup.
 */
#include "config.h"

#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "kpool_cmd.h"

#define SEND_FLUSH_MS 30000

/* Prints the usage to f: standard output for -h, standard error for a usage error. */
static void usage(FILE *f)
{
	fprintf(
	    f, "usage: kpool -c CONF send TOPIC [--key K] [--header NAME=VALUE]... [--keep-empty]\n"
	       "       kpool -c CONF dlq list TOPIC [--limit N] [--error-class C] [--since T] "
	       "[--json]\n"
	       "       kpool -c CONF dlq show TOPIC PARTITION:OFFSET [--json]\n"
	       "       kpool -c CONF dlq replay TOPIC [--to TOPIC] [--error-class C] [--offsets "
	       "[P:]A..B]\n"
	       "                               [--limit N] [--dry-run] [--from-start] [--json]\n"
	       "       kpool -c CONF status [--json]\n"
	       "       kpool -c CONF pause NAME\n"
	       "       kpool -c CONF resume NAME\n"
	       "       kpool audit verify DB\n"
	       "       kpool audit query DB [--user U] [--action A] [--since T] [--json]\n"
	       "       kpool analytics report DB [--since T] [--by minute|hour|day] [--event E]\n"
	       "                                 [--json] [--svg FILE]\n"
	       "       kpool -h|--help | -V|--version\n"
	       "  send   one job per line of standard input; empty lines are skipped unless\n"
	       "         --keep-empty sends them as empty jobs\n"
	       "  dlq    a dead-letter topic: list its records (a summary per error class),\n"
	       "         show one, or replay them to where they came from; a replay remembers\n"
	       "         what it sent (group kpool-replay-TOPIC) unless --from-start\n"
	       "  status each binding's processes, job counts, whether it is paused, and lag\n"
	       "         per partition\n"
	       "  pause  binding NAME's workers stop fetching (its jobs wait in Kafka) until\n"
	       "         kpool resume NAME; it lasts across reloads and restarts of kpoold\n"
	       "  audit  the audit handler's log: verify its hash chain (exit 1 at the first\n"
	       "         bad entry), or list entries; T is a time or an age (90m, 24h, 7d)\n"
	       "  analytics  the analytics handler's rollup: events and distinct users per\n"
	       "         bucket (hour unless --by), as a table, JSON, or an SVG bar chart\n");
}

struct send_state {
	long failed;
	char first_error[256];
};

/* kpool send's delivery report: counts the jobs Kafka did not take, keeping the first error. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct send_state *st = opaque;

	if (m->err && st->failed++ == 0)
		snprintf(st->first_error, sizeof(st->first_error), "%s", rd_kafka_err2str(m->err));
}

/*
 * kpool send: produces each line of standard input as a job, acks=all; 0
 * when all were acknowledged, 1 having said why, 2 on a usage error.
 */
static int cmd_send(const struct kp_conf *conf, int argc, char **argv)
{
	static const struct option longopts[] = {{"key", required_argument, NULL, 'k'},
						 {"header", required_argument, NULL, 'H'},
						 {"keep-empty", no_argument, NULL, 'E'},
						 {NULL, 0, NULL, 0}};
	const char *key = NULL, *topic;
	char err[512], *line = NULL;
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
	struct send_state st = {0};
	rd_kafka_conf_t *rc = NULL;
	rd_kafka_t *rk = NULL;
	size_t cap = 0;
	ssize_t n;
	long sent = 0;
	bool keep_empty = false;
	int c, ret = 2;

	optind = 0; /* a fresh scan: main() parsed its own options with "+" */
	while ((c = getopt_long(argc, argv, "k:H:", longopts, NULL)) != -1) {
		char *eq = c == 'H' ? strchr(optarg, '=') : NULL;

		if (c == 'E') {
			keep_empty = true;
		} else if (c == 'k') {
			key = optarg;
		} else if (c == 'H' && eq && eq != optarg) {
			rd_kafka_header_add(hdrs, optarg, eq - optarg, eq + 1, -1);
		} else if (c == 'H') {
			fprintf(stderr, "kpool: --header wants NAME=VALUE, not '%s'\n", optarg);
			goto out;
		} else {
			usage(stderr);
			goto out;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		goto out;
	}
	topic = argv[optind];
	ret = 1;
	rc = rd_kafka_conf_new();
	if (kp_conf_kafka_apply(conf, rc, true, err, sizeof(err)) < 0 ||
	    rd_kafka_conf_set(rc, "acks", "all", err, sizeof(err)) ||
	    rd_kafka_conf_set(rc, "enable.idempotence", "true", err, sizeof(err)) ||
	    rd_kafka_conf_set(rc, "linger.ms", "5", err, sizeof(err)) ||
	    /* jobs without a key go to every partition, for every worker to share */
	    rd_kafka_conf_set(rc, "sticky.partitioning.linger.ms", "0", err, sizeof(err))) {
		fprintf(stderr, "kpool: %s\n", err);
		goto out;
	}
	rd_kafka_conf_set_dr_msg_cb(rc, on_delivery);
	rd_kafka_conf_set_opaque(rc, &st);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof(err));
	if (rk == NULL) {
		fprintf(stderr, "kpool: %s\n", err);
		goto out;
	}
	rc = NULL; /* now owned by rk */
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		rd_kafka_resp_err_t e;

		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (n == 0 && !keep_empty)
			continue;
		for (;;) {
			e = rd_kafka_producev(
			    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
			    RD_KAFKA_V_VALUE(line, (size_t)n),
			    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			    RD_KAFKA_V_HEADERS(rd_kafka_headers_copy(hdrs)), RD_KAFKA_V_END);
			if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				break;
			rd_kafka_poll(rk, 100); /* let deliveries make room */
		}
		if (e) {
			fprintf(stderr, "kpool: send to %s: %s\n", topic, rd_kafka_err2str(e));
			goto out;
		}
		sent++;
		rd_kafka_poll(rk, 0);
	}
	if (rd_kafka_flush(rk, SEND_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "kpool: %s: %d jobs not acknowledged in %ds\n", topic,
			rd_kafka_outq_len(rk), SEND_FLUSH_MS / 1000);
		goto out;
	}
	if (st.failed) {
		fprintf(stderr, "kpool: %s: %ld of %ld jobs not sent: %s\n", topic, st.failed, sent,
			st.first_error);
		goto out;
	}
	fprintf(stderr, "kpool: sent %ld jobs to %s\n", sent, topic);
	ret = 0;
out:
	free(line);
	if (rk)
		rd_kafka_destroy(rk);
	if (rc)
		rd_kafka_conf_destroy(rc);
	rd_kafka_headers_destroy(hdrs);
	return ret;
}

/* kpool: its own options, then the command; exits 0, 1 on failure (said), 2 on a usage error. */
int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	const char *path = NULL;
	struct kp_conf *conf;
	char err[1024];
	int c, rc;

	kp_log_who("kpool");
	/* "+": the first operand ends main's options, the subcommand's follow it */
	while ((c = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("kpool %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc && strcmp(argv[optind], "audit") == 0)
		return kp_cmd_audit(argc - optind, argv + optind);
	if (optind < argc && strcmp(argv[optind], "analytics") == 0)
		return kp_cmd_analytics(argc - optind, argv + optind);
	if (path == NULL || optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[optind], "send") != 0 && strcmp(argv[optind], "dlq") != 0 &&
	    strcmp(argv[optind], "status") != 0 && strcmp(argv[optind], "pause") != 0 &&
	    strcmp(argv[optind], "resume") != 0) {
		fprintf(stderr, "kpool: unknown command '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	conf = kp_conf_load(path, err, sizeof(err));
	if (conf == NULL) {
		fprintf(stderr, "kpool: %s\n", err);
		return 1;
	}
	if (strcmp(argv[optind], "dlq") == 0)
		rc = kp_cmd_dlq(conf, argc - optind, argv + optind);
	else if (strcmp(argv[optind], "status") == 0)
		rc = kp_cmd_status(conf, argc - optind, argv + optind);
	else if (strcmp(argv[optind], "pause") == 0 || strcmp(argv[optind], "resume") == 0)
		rc = kp_cmd_pause(conf, argc - optind, argv + optind);
	else
		rc = cmd_send(conf, argc - optind, argv + optind);
	kp_conf_free(conf);
	return rc;
}
