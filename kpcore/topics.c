/*
 * topics.c - what kpool asks Kafka about topics: whether one exists and
 * how many partitions it has, their watermarks, and creating a dead-letter
 * topic with its source topic's partition count.  These wait for the
 * broker: a worker asks them from its watch thread (watch.c), never from
 * its loop.
 *
 * Asked through a consumer handle, whose metadata requests never create a
 * topic (allow.auto.create.topics is false for consumers).
 */
#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

/*
 * Adds the partitions of those of topics that exist to out, from one request
 * for the metadata of every topic: asking for a topic by name would create it
 * on a broker that creates topics on demand (the embedded one does), which a
 * command that only looks must not do.  Returns how many of the topics exist,
 * -1 with err.
 */
int kp_topic_lookup(rd_kafka_t *rk, char *const *topics, int n,
		    rd_kafka_topic_partition_list_t *out, int timeout_ms, char *err, size_t len)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
	int found = 0;

	if (e) {
		snprintf(err, len, "metadata: %s", rd_kafka_err2str(e));
		return -1;
	}
	for (int t = 0; t < n; t++)
		for (int i = 0; i < md->topic_cnt; i++) {
			const rd_kafka_metadata_topic_t *mt = &md->topics[i];
			if (strcmp(mt->topic, topics[t]) != 0)
				continue;
			if (mt->err || mt->partition_cnt <= 0) {
				snprintf(err, len, "metadata for %s: %s", mt->topic,
					 rd_kafka_err2str(mt->err));
				rd_kafka_metadata_destroy(md);
				return -1;
			}
			for (int p = 0; p < mt->partition_cnt; p++)
				rd_kafka_topic_partition_list_add(out, mt->topic, p);
			found++;
		}
	rd_kafka_metadata_destroy(md);
	return found;
}

/*
 * The first offset kept (lo) and the end (hi) of every partition of l, in
 * l's order, from two offset requests (not two per partition).  -1 with err.
 */
int kp_topic_watermarks(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l, int64_t *lo,
			int64_t *hi, int timeout_ms, char *err, size_t len)
{
	for (int pass = 0; pass < 2; pass++) {
		rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_copy(l);
		rd_kafka_resp_err_t e;

		for (int i = 0; i < q->cnt; i++) /* ListOffsets' "timestamps" for the ends */
			q->elems[i].offset = pass ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
		e = rd_kafka_offsets_for_times(rk, q, timeout_ms);
		for (int i = 0; !e && i < q->cnt; i++) {
			e = q->elems[i].err;
			(pass ? hi : lo)[i] = q->elems[i].offset;
		}
		rd_kafka_topic_partition_list_destroy(q);
		if (e) {
			snprintf(err, len, "offsets: %s", rd_kafka_err2str(e));
			return -1;
		}
	}
	return 0;
}

/*
 * Partitions of topic: > 0 when it exists, 0 when the cluster says it does
 * not (yet), -1 with err when Kafka could not be asked.
 */
int kp_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t len)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e;
	int n = -1;

	if (rkt == NULL) {
		snprintf(err, len, "%s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
		return -1;
	}
	e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
	if (e) {
		snprintf(err, len, "metadata for %s: %s", topic, rd_kafka_err2str(e));
	} else if (md->topic_cnt != 1) {
		snprintf(err, len, "metadata for %s: no answer for it", topic);
	} else {
		e = md->topics[0].err;
		if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			n = 0;
		else if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0)
			n = md->topics[0].partition_cnt;
		else if (e == RD_KAFKA_RESP_ERR_NO_ERROR ||
			 e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
			snprintf(err, len, "%s: being created", topic);
		else
			snprintf(err, len, "metadata for %s: %s", topic, rd_kafka_err2str(e));
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return n;
}

/*
 * Asks the cluster to create topic with partitions partitions, its default
 * replication factor and configs (name, value, ..., NULL; or NULL); the
 * answer comes to q as an event for kp_topic_create_result().  -1 with err
 * when the request cannot be made.
 */
static int kp_topic_create_ask(rd_kafka_t *rk, const char *topic, int partitions,
			       const char *const *configs, int timeout_ms, rd_kafka_queue_t *q,
			       char *err, size_t len)
{
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, err, len);
	rd_kafka_AdminOptions_t *o;

	if (nt == NULL)
		return -1;
	for (size_t i = 0; configs && configs[i] && configs[i + 1]; i += 2)
		rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]);
	o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	if (rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, err, len) ||
	    rd_kafka_AdminOptions_set_operation_timeout(o, timeout_ms, err, len)) {
		rd_kafka_AdminOptions_destroy(o);
		rd_kafka_NewTopic_destroy(nt);
		return -1;
	}
	rd_kafka_CreateTopics(rk, &nt, 1, o, q);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_NewTopic_destroy(nt);
	return 0;
}

/*
 * The outcome of kp_topic_create_ask(): 0 when the topic is there (created
 * now or by someone else), -1 with err otherwise; *final is set when asking
 * again cannot help (not authorized, a policy refused it).
 */
static int kp_topic_create_result(rd_kafka_event_t *ev, const char *topic, int *final, char *err,
				  size_t len)
{
	const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
	const rd_kafka_topic_result_t **tr;
	rd_kafka_resp_err_t e;
	size_t n = 0;

	*final = 0;
	if (rd_kafka_event_error(ev)) {
		snprintf(err, len, "creating %s: %s", topic, rd_kafka_event_error_string(ev));
		return -1;
	}
	tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
	if (n != 1) {
		snprintf(err, len, "creating %s: no result", topic);
		return -1;
	}
	e = rd_kafka_topic_result_error(tr[0]);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
		return 0;
	const char *why = rd_kafka_topic_result_error_string(tr[0]);
	snprintf(err, len, "creating %s: %s", topic, why && *why ? why : rd_kafka_err2str(e));
	*final = e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
		 e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
		 e == RD_KAFKA_RESP_ERR_POLICY_VIOLATION ||
		 e == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR ||
		 e == RD_KAFKA_RESP_ERR_INVALID_PARTITIONS || e == RD_KAFKA_RESP_ERR_INVALID_CONFIG;
	return -1;
}

/*
 * Creates topic (configs as kp_topic_create_ask()) and waits for the answer: up to timeout_ms (and
 * a second), in slices of 100 ms, after each of which stop(arg), when given, may end the wait (the
 * watch thread's stop).  As kp_topic_create_result().
 */
int kp_topic_create(rd_kafka_t *rk, const char *topic, int partitions, const char *const *configs,
		    int timeout_ms, bool (*stop)(void *), void *arg, int *final, char *err,
		    size_t len)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev = NULL;
	int64_t until = kp_mono_ms() + timeout_ms + 1000;
	int rc = -1;

	*final = 1;
	if (kp_topic_create_ask(rk, topic, partitions, configs, timeout_ms, q, err, len) == 0) {
		*final = 0;
		while (ev == NULL && kp_mono_ms() < until && !(stop && stop(arg)))
			ev = rd_kafka_queue_poll(q, 100);
		if (ev == NULL) {
			snprintf(err, len, "creating %s: no answer within %d ms", topic,
				 timeout_ms);
		} else {
			rc = kp_topic_create_result(ev, topic, final, err, len);
			rd_kafka_event_destroy(ev);
		}
	}
	rd_kafka_queue_destroy(q); /* an answer still on its way is dropped with it */
	return rc;
}
