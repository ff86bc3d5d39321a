/*
 * produce - writes one record the way other tools write theirs, for the
 * tests: produce BOOTSTRAP TOPIC KEY VALUE [NAME=VALUE]...  A header value
 * written 0x... is bytes in hex (Spring Kafka's big-endian numbers); an
 * empty KEY means none.  Exits 0 once Kafka acknowledged it.
 *
 * produce BOOTSTRAP TOPIC -: one record per stdin line "KEY|VALUE", each sent
 * as soon as its line is read (kcat reads all of its input first), so a test
 * can space records in time.  Exits 0 once Kafka acknowledged every one.
 */
#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rd_kafka_resp_err_t delivered = RD_KAFKA_RESP_ERR__IN_PROGRESS;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err || delivered == RD_KAFKA_RESP_ERR__IN_PROGRESS)
		delivered = m->err;
}

/* Waits for every record's acknowledgement: 0 when all were taken. */
static int finish(rd_kafka_t *rk)
{
	rd_kafka_flush(rk, 30000);
	rd_kafka_destroy(rk);
	if (delivered) {
		fprintf(stderr, "produce: %s\n", rd_kafka_err2str(delivered));
		return 1;
	}
	return 0;
}

/* Lines "KEY|VALUE" from stdin, each produced at once. */
static int lines(const char *bootstrap, const char *topic)
{
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	rd_kafka_t *rk;
	char err[512], *line = NULL;
	size_t cap = 0;
	ssize_t n;

	rd_kafka_conf_set_dr_msg_cb(rc, on_delivery);
	if (rd_kafka_conf_set(rc, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
	    rd_kafka_conf_set(rc, "linger.ms", "0", err, sizeof(err)) ||
	    (rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "produce: %s\n", err);
		return 1;
	}
	/* Connected, and the topic's leaders known, before the first line: a
	 * record is then on its way as soon as it is read. */
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	while ((n = getline(&line, &cap, stdin)) > 0) {
		char *bar = strchr(line, '|');
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (bar == NULL)
			continue;
		if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
				      RD_KAFKA_V_KEY(line, (size_t)(bar - line)),
				      RD_KAFKA_V_VALUE(bar + 1, strlen(bar + 1)),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) {
			fprintf(stderr, "produce: cannot queue a record\n");
			return 1;
		}
		rd_kafka_poll(rk, 0);
	}
	free(line);
	return finish(rk);
}

int main(int argc, char **argv)
{
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	rd_kafka_headers_t *h = rd_kafka_headers_new(8);
	rd_kafka_resp_err_t e;
	rd_kafka_t *rk;
	char err[512];

	if (argc == 4 && strcmp(argv[3], "-") == 0) {
		rd_kafka_conf_destroy(rc);
		rd_kafka_headers_destroy(h);
		return lines(argv[1], argv[2]);
	}
	if (argc < 5) {
		fprintf(stderr, "usage: produce BOOTSTRAP TOPIC KEY VALUE [NAME=VALUE]...\n");
		return 2;
	}
	for (int i = 5; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		unsigned char bytes[64];
		size_t n = 0;

		if (eq == NULL) {
			fprintf(stderr, "produce: '%s' is not NAME=VALUE\n", argv[i]);
			return 2;
		}
		*eq++ = '\0';
		if (strncmp(eq, "0x", 2) == 0) {
			for (const char *p = eq + 2; p[0] && p[1] && n < sizeof(bytes); p += 2) {
				char two[3] = {p[0], p[1], '\0'};
				bytes[n++] = (unsigned char)strtoul(two, NULL, 16);
			}
			rd_kafka_header_add(h, argv[i], -1, bytes, (ssize_t)n);
		} else {
			rd_kafka_header_add(h, argv[i], -1, eq, -1);
		}
	}
	rd_kafka_conf_set_dr_msg_cb(rc, on_delivery);
	if (rd_kafka_conf_set(rc, "bootstrap.servers", argv[1], err, sizeof(err)) ||
	    (rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "produce: %s\n", err);
		return 1;
	}
	e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]),
			      RD_KAFKA_V_KEY(argv[3][0] ? argv[3] : NULL, strlen(argv[3])),
			      RD_KAFKA_V_VALUE(argv[4], strlen(argv[4])),
			      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
			      RD_KAFKA_V_END);
	if (e) {
		fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
		return 1;
	}
	return finish(rk);
}
