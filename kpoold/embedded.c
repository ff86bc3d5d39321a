/*
 * embedded.c - the embedded broker child: librdkafka's in-memory mock
 * cluster, for trying kpool out and for tests.  It keeps nothing across
 * restarts.  Its address goes to state_dir/embedded.bootstrap, written
 * atomically, where workers and the kpool command read it.
 */
#include "config.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "kpoold.h"

#define EMBEDDED_PARTITIONS 4

static volatile sig_atomic_t stopping;

/* SIGTERM, SIGINT: the broker stops after its next wake-up. */
static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Creates a topic, and its dead-letter topic, so that consumers find them at once. */
static void topic_create(rd_kafka_mock_cluster_t *mc, const char *topic)
{
	rd_kafka_mock_topic_create(mc, topic, EMBEDDED_PARTITIONS, 1);
}

/* The broker process; returns its exit status. */
int kp_embedded_run(const struct kp_conf *conf)
{
	char err[512], path[PATH_MAX], tmp[PATH_MAX];
	rd_kafka_conf_t *rc = rd_kafka_conf_new();
	rd_kafka_mock_cluster_t *mc;
	struct sigaction sa = {.sa_handler = on_stop};
	sigset_t mask, old;
	rd_kafka_t *rk;
	FILE *f;

	kp_log_who("broker");
	kp_proctitle("kpoold: broker");
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, &old);

	rd_kafka_conf_set(rc, "log_level", "3", NULL, 0);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof(err));
	if (rk == NULL) {
		rd_kafka_conf_destroy(rc);
		kp_log(KP_ERROR, "kafka: %s", err);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, 1);
	if (mc == NULL) {
		kp_log(KP_ERROR, "cannot start the embedded broker");
		rd_kafka_destroy(rk);
		return 1;
	}
	for (size_t i = 0; i < conf->n_bindings; i++) {
		const struct kp_binding *b = &conf->bindings[i];
		char dlq[KP_TOPIC_MAX + 8];

		for (int t = 0; t < b->n_topics; t++) {
			topic_create(mc, b->topics[t]);
			kp_dlq_topic(b, b->topics[t], dlq, sizeof(dlq));
			topic_create(mc, dlq);
		}
		if (b->ledger_kafka) /* compacted nowhere: the mock broker keeps everything */
			rd_kafka_mock_topic_create(mc, b->ledger_topic, 1, 1);
	}
	snprintf(path, sizeof(path), "%s/%s", conf->state_dir, KP_EMBEDDED_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%s\n", rd_kafka_mock_cluster_bootstraps(mc)) < 0 ||
	    fclose(f) != 0 || rename(tmp, path) < 0) {
		kp_log(KP_ERROR, "%s: %s", path, strerror(errno));
		rd_kafka_mock_cluster_destroy(mc);
		rd_kafka_destroy(rk);
		return 1;
	}
	kp_log(KP_NOTICE, "embedded broker listening on %s (in memory, not for production)",
	       rd_kafka_mock_cluster_bootstraps(mc));
	while (!stopping)
		sigsuspend(&old);
	unlink(path);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	kp_log(KP_INFO, "stopped");
	return 0;
}
