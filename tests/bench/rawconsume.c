/*
 * rawconsume.c - the reference for scripts/bench: a bare librdkafka consumer
 * loop (subscribe, poll, store the offset) that does nothing with the jobs.
 * Prints jobs/s from the first job to the last, and the peak RSS.
 *
 * usage: rawconsume BOOTSTRAP TOPIC COUNT [GROUP]
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_t *rk;
	long want, got = 0;
	double first = 0, last = 0, deadline;
	struct rusage ru;

	if (argc < 4) {
		fprintf(stderr, "usage: rawconsume BOOTSTRAP TOPIC COUNT [GROUP]\n");
		return 2;
	}
	want = atol(argv[3]);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "group.id", argc > 4 ? argv[4] : "rawconsume", err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "queued.max.messages.kbytes", "4096", err, sizeof(err))) {
		fprintf(stderr, "rawconsume: %s\n", err);
		return 1;
	}
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (rk == NULL) {
		fprintf(stderr, "rawconsume: %s\n", err);
		return 1;
	}
	rd_kafka_poll_set_consumer(rk);
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, argv[2], RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	deadline = now() + 120;
	while (got < want && now() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (m == NULL)
			continue;
		if (!m->err) {
			if (got++ == 0)
				first = now();
			last = now();
			rd_kafka_offset_store(m->rkt, m->partition, m->offset);
		}
		rd_kafka_message_destroy(m);
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("raw jobs=%ld seconds=%.3f jobs_per_s=%.0f peak_rss_kib=%ld\n", got, last - first,
	       got > 1 && last > first ? (double)(got - 1) / (last - first) : 0.0, ru.ru_maxrss);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return got == want ? 0 : 1;
}
