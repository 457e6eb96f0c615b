/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vibra_netif_ts.h: header-only C twin of the Rust crate `vtimestamp` (SPEC section 7).
 *
 * The 48-bit packet-arrival timestamp and its 8-byte ring record, laid out like Xen's
 * `struct netif_extra_info`: byte 0 = type (6), byte 1 = flags (bit 0 = MORE), bytes 2..8 =
 * packed48 = (sec << 16) | (usec >> 4), little-endian. Plus the high-resolution mode: a base
 * record (flag bit 1, whole seconds) and 48-bit nanosecond offset records (flag bit 2).
 *
 * NEGOTIATION RULE. The plain record is sent only after the frontend wrote
 * "feature-rx-timestamp" = "1" and the backend acknowledged it with the same key. The
 * high-resolution records reuse type 6 but their payload is NOT packed48: a decoder that
 * ignores unknown flag bits (Xen's habit) would misread an offset as a time. A PEER THAT ONLY
 * AGREED "feature-rx-timestamp" MUST NEVER RECEIVE THEM. They need a second key,
 * "feature-rx-timestamp-hires" = "1", written by the frontend and acknowledged by the backend,
 * and meaningful only while "feature-rx-timestamp" is agreed. The encoder state below starts
 * (zeroed) unable to encode: vibra_netif_ts_hires_encode returns VIBRA_NETIF_TS_ENOTNEG until
 * the backend, having acknowledged both keys, calls vibra_netif_ts_hires_agree (and again on
 * every new agreement, which also makes it send a fresh base); vibra_netif_ts_hires_init on
 * disconnect. The Rust crate enforces the same rule by type (HiResAgreed).
 *
 * Written for netfront/netback and other kernel code: only `static inline` functions, no libc
 * beyond <stdint.h> (in the Linux kernel, include <linux/types.h> first and define
 * VIBRA_NETIF_TS_NO_STDINT). No allocation, no global state. Every function returns 0
 * (VIBRA_NETIF_TS_OK) or a negative VIBRA_NETIF_TS_E* code and writes its out-parameters only
 * on success. A test in vtimestamp/tests/c_twin.rs compiles this header with the system C
 * compiler and demands the same bytes and the same errors as the Rust codec.
 *
 * The high-resolution functions divide 64-bit integers: on a 32-bit kernel, wrap them with
 * div_u64 or use the plain 16 us record.
 */
#ifndef VIBRA_NETIF_TS_H
#define VIBRA_NETIF_TS_H

#ifndef VIBRA_NETIF_TS_NO_STDINT
#include <stdint.h>
#endif

/* Spelled exactly as in the generated vibra.h, so both headers can be included together. */
#ifndef VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP
#define VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP 6
#endif
#ifndef VIBRA_NETIF_EXTRA_FLAG_MORE
#define VIBRA_NETIF_EXTRA_FLAG_MORE 1
#endif
#define VIBRA_NETIF_TS_FLAG_HIRES_BASE 0x02u
#define VIBRA_NETIF_TS_FLAG_HIRES_OFFSET 0x04u
/*
 * Flag bit 3 of a plain record, set by the patched xen-netback (integration/xen-netif-ts): the
 * packet took no receive path in the host (Domain-0 itself sent it, or its host receive stamp
 * could not be carried to the vif), so the time is when netback took it for the guest, not a
 * host arrival time. The plain codec below does not know it: a kernel decoder masks it off before
 * vibra_netif_ts_extra_decode and an encoder ORs it in after vibra_netif_ts_extra_encode. A peer
 * that never negotiated "feature-rx-timestamp" never sees it.
 */
#define VIBRA_NETIF_TS_FLAG_LOCAL 0x08u
#define VIBRA_NETIF_TS_RECORD_LEN 8
/* xenstore keys (vtimestamp::FEATURE_RX_TIMESTAMP, vtimestamp::FEATURE_RX_TIMESTAMP_HIRES) */
#define VIBRA_NETIF_TS_FEATURE "feature-rx-timestamp"
#define VIBRA_NETIF_TS_FEATURE_HIRES "feature-rx-timestamp-hires"
#define VIBRA_NETIF_TS_MAX_FRACTION 62499u /* 999999 >> 4 */
#define VIBRA_NETIF_TS_MAX_OFFSET_NS 0xFFFFFFFFFFFFull /* 2^48 - 1 ns, about 78.2 hours */

/* Return codes; each matches one `vtimestamp::TsError` variant. */
#define VIBRA_NETIF_TS_OK 0
#define VIBRA_NETIF_TS_EUSEC (-1)      /* usec >= 1000000           (MicrosOutOfRange) */
#define VIBRA_NETIF_TS_EWIDE (-2)      /* packed value above 2^48-1 (PackedTooWide) */
#define VIBRA_NETIF_TS_EFRACTION (-3)  /* fraction > 62499          (FractionOutOfRange) */
#define VIBRA_NETIF_TS_ETYPE (-4)      /* record type is not 6      (WrongRecordType) */
#define VIBRA_NETIF_TS_EFLAGS (-5)     /* undefined flag bits       (ReservedFlags) */
#define VIBRA_NETIF_TS_ENOBASE (-6)    /* offset before any base    (MissingBase) */
#define VIBRA_NETIF_TS_ERANGE (-7)     /* time not representable    (HiResOutOfRange) */
#define VIBRA_NETIF_TS_EINVAL (-8)     /* NULL pointer (no Rust twin: references cannot be null) */
#define VIBRA_NETIF_TS_ENOTNEG (-9)    /* high-res mode not agreed  (NotNegotiated) */

#define VIBRA_NETIF_TS_NS_PER_SEC 1000000000ull

static inline void vibra_netif_ts_put48(uint8_t *p, uint64_t v)
{
	int i;
	for (i = 0; i < 6; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t vibra_netif_ts_get48(const uint8_t *p)
{
	uint64_t v = 0;
	int i;
	for (i = 0; i < 6; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* vtimestamp::ts48_pack */
static inline int vibra_netif_ts48_pack(uint32_t sec, uint32_t usec, uint64_t *packed)
{
	if (!packed)
		return VIBRA_NETIF_TS_EINVAL;
	if (usec >= 1000000u)
		return VIBRA_NETIF_TS_EUSEC;
	*packed = ((uint64_t)sec << 16) | (uint64_t)(usec >> 4);
	return VIBRA_NETIF_TS_OK;
}

/* vtimestamp::ts48_unpack */
static inline int vibra_netif_ts48_unpack(uint64_t packed, uint32_t *sec, uint32_t *usec)
{
	if (!sec || !usec)
		return VIBRA_NETIF_TS_EINVAL;
	if (packed >> 48)
		return VIBRA_NETIF_TS_EWIDE;
	if ((packed & 0xFFFFu) > VIBRA_NETIF_TS_MAX_FRACTION)
		return VIBRA_NETIF_TS_EFRACTION;
	*sec = (uint32_t)(packed >> 16);
	*usec = (uint32_t)(packed & 0xFFFFu) << 4;
	return VIBRA_NETIF_TS_OK;
}

/* vtimestamp::ts_extra_encode: flags may hold only VIBRA_NETIF_EXTRA_FLAG_MORE. */
static inline int vibra_netif_ts_extra_encode(uint32_t sec, uint32_t usec, uint8_t flags,
					      uint8_t out[8])
{
	uint64_t packed;
	int rc;
	if (!out)
		return VIBRA_NETIF_TS_EINVAL;
	if (flags & ~VIBRA_NETIF_EXTRA_FLAG_MORE)
		return VIBRA_NETIF_TS_EFLAGS;
	rc = vibra_netif_ts48_pack(sec, usec, &packed);
	if (rc)
		return rc;
	out[0] = VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP;
	out[1] = flags;
	vibra_netif_ts_put48(out + 2, packed);
	return VIBRA_NETIF_TS_OK;
}

/* vtimestamp::ts_extra_decode: checks type, then flags, then the packed value. */
static inline int vibra_netif_ts_extra_decode(const uint8_t in[8], uint32_t *sec, uint32_t *usec,
					      uint8_t *flags)
{
	uint32_t s, u;
	int rc;
	if (!in || !sec || !usec || !flags)
		return VIBRA_NETIF_TS_EINVAL;
	if (in[0] != VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP)
		return VIBRA_NETIF_TS_ETYPE;
	if (in[1] & ~VIBRA_NETIF_EXTRA_FLAG_MORE)
		return VIBRA_NETIF_TS_EFLAGS;
	rc = vibra_netif_ts48_unpack(vibra_netif_ts_get48(in + 2), &s, &u);
	if (rc)
		return rc;
	*sec = s;
	*usec = u;
	*flags = in[1];
	return VIBRA_NETIF_TS_OK;
}

/*
 * High-resolution mode state, one per ring; zero-initialise (or call _init) before use. An
 * encoder's `agreed` is set only by vibra_netif_ts_hires_agree (see NEGOTIATION RULE above);
 * the decoder ignores it.
 */
struct vibra_netif_ts_hires {
	uint64_t base_secs;
	int has_base;
	int agreed;
};

/* Back to the zeroed state: no base, high-resolution mode not agreed (a disconnect). */
static inline void vibra_netif_ts_hires_init(struct vibra_netif_ts_hires *st)
{
	if (st) {
		st->base_secs = 0;
		st->has_base = 0;
		st->agreed = 0;
	}
}

/*
 * Call on the backend once both "feature-rx-timestamp" and "feature-rx-timestamp-hires" are
 * acknowledged (and on every new agreement): allows encoding and forgets the base, so the
 * frontend's fresh decoder gets a base first (vtimestamp: a new HiResAgreed epoch).
 */
static inline void vibra_netif_ts_hires_agree(struct vibra_netif_ts_hires *st)
{
	if (st) {
		st->base_secs = 0;
		st->has_base = 0;
		st->agreed = 1;
	}
}

/*
 * vtimestamp::HiResEncoder::encode: the records for a packet that arrived `nanos` after the
 * epoch, into out[0..*count]: a base record (with MORE) first when needed, then the offset
 * record (with MORE when `more` is non-zero). VIBRA_NETIF_TS_ENOTNEG unless
 * vibra_netif_ts_hires_agree was called: never send these records to a plain-mode peer.
 */
static inline int vibra_netif_ts_hires_encode(struct vibra_netif_ts_hires *st, uint64_t nanos,
					      int more, uint8_t out[2][8], unsigned *count)
{
	unsigned n = 0;
	uint64_t base;
	if (!st || !out || !count)
		return VIBRA_NETIF_TS_EINVAL;
	if (!st->agreed)
		return VIBRA_NETIF_TS_ENOTNEG;
	base = st->base_secs;
	if (!st->has_base || nanos < base * VIBRA_NETIF_TS_NS_PER_SEC ||
	    nanos - base * VIBRA_NETIF_TS_NS_PER_SEC > VIBRA_NETIF_TS_MAX_OFFSET_NS) {
		base = nanos / VIBRA_NETIF_TS_NS_PER_SEC;
		out[0][0] = VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP;
		out[0][1] = VIBRA_NETIF_TS_FLAG_HIRES_BASE | VIBRA_NETIF_EXTRA_FLAG_MORE;
		vibra_netif_ts_put48(out[0] + 2, base);
		st->base_secs = base;
		st->has_base = 1;
		n = 1;
	}
	out[n][0] = VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP;
	out[n][1] = (uint8_t)(VIBRA_NETIF_TS_FLAG_HIRES_OFFSET |
			      (more ? (unsigned)VIBRA_NETIF_EXTRA_FLAG_MORE : 0u));
	vibra_netif_ts_put48(out[n] + 2, nanos - base * VIBRA_NETIF_TS_NS_PER_SEC);
	*count = n + 1;
	return VIBRA_NETIF_TS_OK;
}

/*
 * vtimestamp::HiResDecoder::decode: *is_time = 0 and *value = base seconds for a base record;
 * *is_time = 1 and *value = nanoseconds since the epoch for an offset or a plain record.
 */
static inline int vibra_netif_ts_hires_decode(struct vibra_netif_ts_hires *st, const uint8_t in[8],
					      int *is_time, uint64_t *value)
{
	uint64_t v, base_ns;
	uint32_t s, u;
	uint8_t f;
	int rc;
	if (!st || !in || !is_time || !value)
		return VIBRA_NETIF_TS_EINVAL;
	if (in[0] != VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP)
		return VIBRA_NETIF_TS_ETYPE;
	v = vibra_netif_ts_get48(in + 2);
	switch (in[1] & ~VIBRA_NETIF_EXTRA_FLAG_MORE) {
	case 0:
		rc = vibra_netif_ts_extra_decode(in, &s, &u, &f);
		if (rc)
			return rc;
		*is_time = 1;
		*value = (uint64_t)s * VIBRA_NETIF_TS_NS_PER_SEC + (uint64_t)u * 1000u;
		return VIBRA_NETIF_TS_OK;
	case VIBRA_NETIF_TS_FLAG_HIRES_BASE:
		if (v > ~(uint64_t)0 / VIBRA_NETIF_TS_NS_PER_SEC) /* UINT64_MAX: not in the kernel */
			return VIBRA_NETIF_TS_ERANGE;
		st->base_secs = v;
		st->has_base = 1;
		*is_time = 0;
		*value = v;
		return VIBRA_NETIF_TS_OK;
	case VIBRA_NETIF_TS_FLAG_HIRES_OFFSET:
		if (!st->has_base)
			return VIBRA_NETIF_TS_ENOBASE;
		base_ns = st->base_secs * VIBRA_NETIF_TS_NS_PER_SEC;
		if (v > ~(uint64_t)0 - base_ns)
			return VIBRA_NETIF_TS_ERANGE;
		*is_time = 1;
		*value = base_ns + v;
		return VIBRA_NETIF_TS_OK;
	default:
		return VIBRA_NETIF_TS_EFLAGS;
	}
}

#endif /* VIBRA_NETIF_TS_H */
