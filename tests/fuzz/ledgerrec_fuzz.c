/*
 * ledgerrec_fuzz.c - libFuzzer harness for the reader of the ledger topic's
 * records (kpoold/ledgerrec.c), which every host reads from every other.
 *
 * The first byte of the input is the key's length (modulo what is left),
 * then the key, then the value.  What is read must stay within the record,
 * give a crash's event id and a host's name as NUL-terminated strings of
 * the record's bytes, and read back the same when written again.
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c by
 * make check, so the corpus is replayed by every test run.
 */
/* clang-format off */
/*
 * fuzz-sources: kpoold/ledgerrec.c
 */
/* clang-format on */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, __VA_ARGS__);                                                      \
		abort();                                                                           \
	} while (0)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	unsigned char *key, *value, again[KP_LREC_HEAD + 8 + 256];
	size_t klen, vlen;
	struct kp_lmsg m, m2;
	struct kp_lrec r;

	if (size == 0)
		return 0;
	klen = data[0] % size;
	vlen = size - 1 - klen;
	/* copies of their own size, so that a read past either is caught */
	key = malloc(klen ? klen : 1);
	value = malloc(vlen ? vlen : 1);
	memcpy(key, data + 1, klen);
	memcpy(value, data + 1 + klen, vlen);
	kp_lrec_parse(klen ? key : NULL, klen, vlen ? value : NULL, vlen, &m);
	switch (m.kind) {
	case KP_LK_NONE:
		break;
	case KP_LK_IDS:
		if (m.ids != value + KP_LREC_HEAD ||
		    KP_LREC_HEAD + m.n_ids * KP_LREC_ID_BYTES > vlen)
			FAIL("ids past the record: %zu of %zu bytes\n", m.n_ids, vlen);
		for (size_t i = 0; i < m.n_ids; i++) {
			if (!kp_lrec_id(&m, i, &r))
				continue;
			if (r.outcome != KP_L_DONE && r.outcome != KP_L_DEAD)
				FAIL("outcome %d\n", r.outcome);
			/* written again, it reads the same */
			unsigned char one[KP_LREC_ID_BYTES];
			kp_lrec_put_id(one, &r);
			if (memcmp(one, m.ids + i * KP_LREC_ID_BYTES, sizeof(one)) != 0)
				FAIL("id %zu does not read back\n", i);
		}
		if (kp_lrec_id(&m, m.n_ids, &r))
			FAIL("an id past the last\n");
		break;
	case KP_LK_CRASH:
		if (klen != sizeof(struct kp_id) + 1 || memcmp(m.crash.id.h, key, 16) != 0)
			FAIL("crash keyed by %zu bytes\n", klen);
		if (memchr(m.crash.event_id, '\0', sizeof(m.crash.event_id)) == NULL)
			FAIL("event id not terminated\n");
		if (strlen(m.crash.event_id) > vlen - KP_LREC_HEAD - 2 ||
		    memcmp(m.crash.event_id, value + KP_LREC_HEAD + 2, strlen(m.crash.event_id)) !=
			0)
			FAIL("event id not the record's\n");
		break;
	case KP_LK_MARKER:
	case KP_LK_HOST:
		if (memchr(m.host, '\0', sizeof(m.host)) == NULL)
			FAIL("host not terminated\n");
		/* written again, it reads the same */
		kp_lrec_head(again, m.kind, m.origin, m.at_ms);
		kp_lrec_put64(again + KP_LREC_HEAD,
			      m.kind == KP_LK_MARKER ? m.round : (uint64_t)m.lag);
		memcpy(again + KP_LREC_HEAD + 8, m.host, strlen(m.host));
		kp_lrec_parse(NULL, 0, again, KP_LREC_HEAD + 8 + strlen(m.host), &m2);
		if (m2.kind != m.kind || m2.origin != m.origin || m2.at_ms != m.at_ms ||
		    m2.round != m.round || m2.lag != m.lag || strcmp(m2.host, m.host) != 0)
			FAIL("marker or host does not read back\n");
		break;
	default:
		FAIL("kind %d\n", (int)m.kind);
	}
	free(key);
	free(value);
	return 0;
}
