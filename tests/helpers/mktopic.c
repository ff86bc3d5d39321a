/*
 * mktopic - creates Kafka topics for the tests, as an application's deploy
 * would: mktopic [--auto] BOOTSTRAP PARTITIONS TOPIC...  A topic that exists
 * already is fine.  Exits 0 when every topic is there, 1 otherwise.
 *
 * With --auto, for an embedded broker (librdkafka's mock cluster): a topic is
 * made by asking a producer for its metadata, which that broker answers by
 * creating it with its default partitions (CreateTopics is not answered by
 * every version of it); a count other than PARTITIONS is an error.
 */
#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define AUTO_WAIT_MS 3000 /* a broker that is not there is not waited for longer */

static int auto_create(rd_kafka_t *rk, const char *topic, int want, char *err, size_t len)
{
	int64_t until = kp_mono_ms() + AUTO_WAIT_MS;
	int n;

	do {
		n = kp_topic_partitions(rk, topic, 500, err, len);
	} while (n <= 0 && kp_mono_ms() < until);
	if (n == 0)
		snprintf(err, len, "%s: not created", topic);
	if (n > 0 && n != want)
		snprintf(err, len, "%s: made with %d partitions, not %d", topic, n, want);
	return n == want ? 0 : -1;
}

int main(int argc, char **argv)
{
	char err[512];
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	rd_kafka_t *rk;
	int rc_exit = 0, final, made;
	bool automatic = argc > 1 && strcmp(argv[1], "--auto") == 0;

	argv += automatic;
	argc -= automatic;
	if (argc < 4) {
		fprintf(stderr, "usage: mktopic [--auto] BOOTSTRAP PARTITIONS TOPIC...\n");
		return 2;
	}
	if (rd_kafka_conf_set(rc, "bootstrap.servers", argv[1], err, sizeof(err)) ||
	    (rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mktopic: %s\n", err);
		return 1;
	}
	for (int i = 3; i < argc; i++) {
		made = automatic ? auto_create(rk, argv[i], atoi(argv[2]), err, sizeof(err))
				 : kp_topic_create(rk, argv[i], atoi(argv[2]), NULL, 30000, NULL,
						   NULL, &final, err, sizeof(err));
		if (made < 0) {
			fprintf(stderr, "mktopic: %s\n", err);
			rc_exit = 1;
		}
	}
	rd_kafka_destroy(rk);
	return rc_exit;
}
