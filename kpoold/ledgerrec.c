/*
 * ledgerrec.c - the records of the ledger topic (ledgertopic.c): written by
 * every host of a binding, read by every other, so read as outside bytes.
 *
 * Key: "kpool.ids.ORIGIN.SEQ" (finished ids), the id's 16 bytes and 'c' (a
 * crash count), "kpool.marker.ORIGIN.PARTITION" or "kpool.host.ORIGIN".
 * Value, big-endian: version (1), kind, origin (the writing ledger file's
 * random number), ms; then for ids, each one's 16-byte key, outcome (1 done,
 * 2 dead-lettered) and finished-at ms; for a crash its count, signal and
 * event id; for a marker its round; for a host its lag and host name.  A
 * record that is none of these (a tombstone, a later version's, one cut
 * short) is read as KP_LK_NONE and skipped.
 */
#include "config.h"

#include <endian.h>
#include <string.h>

#include "ledger.h"

/* v, big-endian, at p. */
static void put64(unsigned char *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

/* The big-endian 64 bits at p. */
static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

/* Writes a value's head (KP_LREC_HEAD bytes) to v; returns its length. */
size_t kp_lrec_head(unsigned char *v, enum kp_lkind kind, uint64_t origin, int64_t ms)
{
	v[0] = KP_LREC_VERSION;
	v[1] = (unsigned char)kind;
	put64(v + 2, origin);
	put64(v + 10, (uint64_t)ms);
	return KP_LREC_HEAD;
}

/* Writes one finished id of an ids record to p (KP_LREC_ID_BYTES). */
void kp_lrec_put_id(unsigned char *p, const struct kp_lrec *r)
{
	memcpy(p, r->id.h, 16);
	p[16] = r->outcome;
	put64(p + 17, (uint64_t)r->at_ms);
}

/* Writes a 64-bit number (a marker's round, a host's lag) to p. */
void kp_lrec_put64(unsigned char *p, uint64_t v)
{
	put64(p, v);
}

/* Reads a record of the ledger topic into m; m->kind is KP_LK_NONE when it is none. */
void kp_lrec_parse(const void *key, size_t klen, const void *value, size_t len, struct kp_lmsg *m)
{
	const unsigned char *v = value;

	memset(m, 0, sizeof(*m));
	if (v == NULL || len < KP_LREC_HEAD || v[0] != KP_LREC_VERSION)
		return;
	m->origin = get64(v + 2);
	m->at_ms = (int64_t)get64(v + 10);
	v += KP_LREC_HEAD;
	len -= KP_LREC_HEAD;
	switch (((const unsigned char *)value)[1]) {
	case KP_LK_IDS:
		m->ids = v;
		m->n_ids = len / KP_LREC_ID_BYTES;
		m->kind = KP_LK_IDS;
		break;
	case KP_LK_CRASH:
		if (key == NULL || klen != sizeof(struct kp_id) + 1 || len < 2)
			return;
		memcpy(m->crash.id.h, key, sizeof(m->crash.id.h));
		m->crash.count = v[0];
		m->crash.signal = v[1];
		len -= 2;
		if (len >= sizeof(m->crash.event_id))
			len = sizeof(m->crash.event_id) - 1;
		memcpy(m->crash.event_id, v + 2, len);
		m->crash.event_id[strnlen(m->crash.event_id, len)] = '\0'; /* up to a NUL in it */
		m->kind = KP_LK_CRASH;
		break;
	case KP_LK_MARKER:
		if (len < 8)
			return;
		m->round = get64(v);
		m->kind = KP_LK_MARKER;
		break;
	case KP_LK_HOST:
		if (len < 8)
			return;
		m->lag = (int64_t)get64(v);
		len -= 8;
		if (len >= sizeof(m->host))
			len = sizeof(m->host) - 1;
		memcpy(m->host, v + 8, len);
		m->host[strnlen(m->host, len)] = '\0';
		m->kind = KP_LK_HOST;
		break;
	}
}

/*
 * The i-th finished id of an ids record into r: false when its outcome is
 * neither done nor dead-lettered (a later version's), and then it is skipped.
 */
bool kp_lrec_id(const struct kp_lmsg *m, size_t i, struct kp_lrec *r)
{
	const unsigned char *p = m->ids + i * KP_LREC_ID_BYTES;

	memset(r, 0, sizeof(*r));
	if (i >= m->n_ids || (p[16] != KP_L_DONE && p[16] != KP_L_DEAD))
		return false;
	memcpy(r->id.h, p, sizeof(r->id.h));
	r->outcome = p[16];
	r->at_ms = (int64_t)get64(p + 17);
	return true;
}
