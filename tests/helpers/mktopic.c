/*
 * mktopic - creates Kafka topics for the tests, as an application's deploy
 * would: mktopic BOOTSTRAP PARTITIONS TOPIC...  A topic that exists already
 * is fine.  Exits 0 when every topic is there, 1 otherwise.
 */
#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>

#include "kpoold.h"

int main(int argc, char **argv)
{
	char err[512];
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	rd_kafka_t *rk;
	int rc_exit = 0, final;

	if (argc < 4) {
		fprintf(stderr, "usage: mktopic BOOTSTRAP PARTITIONS TOPIC...\n");
		return 2;
	}
	if (rd_kafka_conf_set(rc, "bootstrap.servers", argv[1], err, sizeof(err)) ||
	    (rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mktopic: %s\n", err);
		return 1;
	}
	for (int i = 3; i < argc; i++)
		if (kp_topic_create(rk, argv[i], atoi(argv[2]), 30000, &final, err, sizeof(err)) <
		    0) {
			fprintf(stderr, "mktopic: %s\n", err);
			rc_exit = 1;
		}
	rd_kafka_destroy(rk);
	return rc_exit;
}
