/*
 * keyed_hash.c
 *	  The hash behind every lock tag and wake-up slot the extension derives
 *	  from a group name: SipHash-2-4, keyed with a secret of the cluster.
 *
 * Why keyed: a lock tag or a wake-up slot is a name hashed down to 64 bits
 * or fewer, and two groups whose names hash alike share it, so that one can
 * hold off the other (a transaction holding the group lock of one blocks
 * the renewals, fences and forced releases of the other).  With an
 * unseeded hash such names are computed offline in a second and work on
 * every server.  A keyed pseudorandom function leaves nothing to compute
 * offline: without the key its outputs cannot be predicted, so a name that
 * collides with a chosen group can only be searched for online, one server
 * round trip per guess, against 64 bits.  (A per-group id would need no
 * hash at all, but a group has no row before its first acquisition, and
 * the rows of version 1.0 have no id.)
 *
 * The key is the first 16 bytes of the cluster's mock-authentication
 * nonce: 32 random bytes made by initdb, kept in pg_control (so the same
 * on a standby made from the cluster), and not readable through SQL.  The
 * same name therefore has different tags on different clusters.
 *
 * SipHash-2-4 (Aumasson and Bernstein, 2012) is a keyed PRF made for
 * exactly this: short inputs, hash-table and lock-table keys an attacker
 * chooses.  PostgreSQL has no keyed hash of its kind, so this file carries
 * its own small implementation (its output matches the reference test
 * vectors of the SipHash paper).
 */
#include "leader.h"

#include "access/xlog.h"

#define SIP_ROTL(x, b)	(uint64) (((x) << (b)) | ((x) >> (64 - (b))))

typedef struct SipState
{
	uint64		v0;
	uint64		v1;
	uint64		v2;
	uint64		v3;
} SipState;

static inline uint64
sip_read_le64(const unsigned char *p)
{
	uint64		word = 0;

	for (int i = 7; i >= 0; i--)
		word = (word << 8) | p[i];
	return word;
}

static inline void
sip_round(SipState *s)
{
	s->v0 += s->v1;
	s->v1 = SIP_ROTL(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = SIP_ROTL(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = SIP_ROTL(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = SIP_ROTL(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = SIP_ROTL(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = SIP_ROTL(s->v2, 32);
}

/* One 64-bit message block, with the two compression rounds of SipHash-2-4. */
static inline void
sip_block(SipState *s, uint64 m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

/*
 * SipHash-2-4 of the message made of the nwords 64-bit words (as
 * little-endian bytes) followed by the len bytes of data, under the 16-byte
 * key.
 */
static uint64
siphash24(const unsigned char *key, const uint64 *words, int nwords,
		  const unsigned char *data, size_t len)
{
	uint64		k0 = sip_read_le64(key);
	uint64		k1 = sip_read_le64(key + 8);
	SipState	s = {
		.v0 = UINT64CONST(0x736f6d6570736575) ^ k0,
		.v1 = UINT64CONST(0x646f72616e646f6d) ^ k1,
		.v2 = UINT64CONST(0x6c7967656e657261) ^ k0,
		.v3 = UINT64CONST(0x7465646279746573) ^ k1,
	};
	uint64		last = ((uint64) (nwords * 8 + len)) << 56;
	size_t		tail = len % 8;

	for (int i = 0; i < nwords; i++)
		sip_block(&s, words[i]);
	for (size_t off = 0; off + 8 <= len; off += 8)
		sip_block(&s, sip_read_le64(data + off));
	for (size_t i = 0; i < tail; i++)
		last |= ((uint64) data[len - tail + i]) << (8 * i);
	sip_block(&s, last);
	s.v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

/*
 * The keyed hash of a name, after nwords numbers that belong with it (a
 * database, a term): its output cannot be predicted without this cluster's
 * key.
 */
uint64
leader_keyed_hash(const char *name, const int64 *words, int nwords)
{
	return siphash24((const unsigned char *) GetMockAuthenticationNonce(),
					 (const uint64 *) words, nwords,
					 (const unsigned char *) name, strlen(name));
}
