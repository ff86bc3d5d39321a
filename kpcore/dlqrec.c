/*
 * dlqrec.c - the dead-letter record's format, in one place: the name of a
 * binding's dead-letter topic and the headers kpool adds to a job's copy.
 * kpoold writes them (deadletter.c) and `kpool dlq` reads them
 * (kpool_dlqrec.c) from the one table below; a header renamed here is
 * renamed for both.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

const char *const kp_dlh_names[KP_DLH_MAX] = {
    [KP_DLH_TOPIC] = "kpool.original.topic",
    [KP_DLH_PARTITION] = "kpool.original.partition",
    [KP_DLH_OFFSET] = "kpool.original.offset",
    [KP_DLH_TIMESTAMP] = "kpool.original.timestamp",
    [KP_DLH_EVENT_ID] = "kpool.event-id",
    [KP_DLH_WORKER] = "kpool.worker",
    [KP_DLH_HANDLER] = "kpool.handler",
    [KP_DLH_CLASS] = "kpool.error.class",
    [KP_DLH_ERROR] = "kpool.error",
    [KP_DLH_ATTEMPTS] = "kpool.attempts",
    [KP_DLH_FAILED_AT] = "kpool.failed-at",
    [KP_DLH_HOST] = "kpool.host",
    [KP_DLH_PID] = "kpool.pid",
    [KP_DLH_OMITTED] = "kpool.omitted",
    [KP_DLH_VALUE_BYTES] = "kpool.original.value-bytes",
};

/* The dead-letter topic of binding b for jobs from topic src: its own, or SRC.dlq. */
void kp_dlq_topic(const struct kp_binding *b, const char *src, char *buf, size_t len)
{
	if (b->dead_letter_topic)
		snprintf(buf, len, "%s", b->dead_letter_topic);
	else
		snprintf(buf, len, "%s.dlq", src);
}

/*
 * Writes kpool's headers into h: each of values[] that is not NULL, as
 * text.  Whatever h held under those names before (a replayed job that
 * failed again carries the last round's) is removed first, so a record has
 * one of each.  Never fails: librdkafka aborts when memory runs out.
 */
void kp_dlh_write(rd_kafka_headers_t *h, const char *const values[KP_DLH_MAX])
{
	for (int i = 0; i < KP_DLH_MAX; i++) {
		rd_kafka_header_remove(h, kp_dlh_names[i]);
		if (values[i])
			rd_kafka_header_add(h, kp_dlh_names[i], -1, values[i], -1);
	}
}
