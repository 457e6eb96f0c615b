//! High-resolution mode: the dissertation's "common base timestamp between multiple packets"
//! (6.5.1). A base record carries whole seconds since the epoch; each packet then carries a
//! 48-bit nanosecond offset from that base (1 ns resolution, 2^48 ns = about 78.2 hours of
//! range). The encoder emits a new base by itself whenever an offset would not fit, so callers
//! never see a rebase.
//!
//! Wire form (a project choice, documented here because SPEC 7 fixes only the plain record):
//! both records are type 6 with flag bit 1 (base) or bit 2 (offset) set, and no extra type
//! number beyond SPEC 7's is taken. Payloads are 48-bit little-endian and are **not** packed48.
//! A base record always carries MORE, because its offset record follows.
//!
//! # Only for a peer that negotiated the mode
//!
//! This crate's plain decoder rejects both records with [`TsError::ReservedFlags`], but an
//! independent SPEC-7 decoder that ignores unknown flag bits (Xen's habit) would silently
//! misread an offset record as a time. So a frontend that only agreed `feature-rx-timestamp`
//! must never receive these records: they need the separate key
//! [`crate::FEATURE_RX_TIMESTAMP_HIRES`], written by the frontend and acknowledged by the
//! backend. [`HiResEncoder::encode`] takes a [`HiResAgreed`], which only
//! [`crate::BackendNegotiation::hires`] gives out, and only while both keys are acknowledged;
//! sending high-resolution records to a plain-mode peer does not compile.

use crate::TsError;
use crate::negotiation::HiResAgreed;
use crate::record::{
    EXTRA_FLAG_MORE, EXTRA_TYPE_TIMESTAMP, ExtraRecord, RECORD_LEN, TS_FLAG_HIRES_BASE,
    TS_FLAG_HIRES_OFFSET, TimestampRecord, from_le48,
};

/// The largest offset an offset record holds: 2^48 - 1 ns (about 78.2 hours).
pub const MAX_OFFSET_NANOS: u64 = (1 << 48) - 1;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The records for one packet: an optional base record, then the offset record.
///
/// ```
/// # let be = vtimestamp::hires::doc_agreed_backend();
/// let mut enc = vtimestamp::HiResEncoder::new();
/// let recs = enc.encode(be.hires()?, 1_700_000_000_123_456_789, false);
/// assert_eq!(recs.as_slice().len(), 2); // the first packet needs a base
/// assert_eq!(enc.encode(be.hires()?, 1_700_000_000_223_456_789, false).as_slice().len(), 1);
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HiResRecords {
    recs: [[u8; RECORD_LEN]; 2],
    len: usize,
}

impl HiResRecords {
    /// The records in ring order.
    ///
    /// ```
    /// # let be = vtimestamp::hires::doc_agreed_backend();
    /// let recs = vtimestamp::HiResEncoder::new().encode(be.hires()?, 5, false);
    /// assert_eq!(recs.as_slice()[0][1] & 2, 2); // base flag
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub fn as_slice(&self) -> &[[u8; RECORD_LEN]] {
        &self.recs[..self.len]
    }
}

/// Host side of high-resolution mode: remembers the base the guest was last sent.
///
/// One encoder per ring (per vif queue): `Send`, not shared. Encoding needs the proof
/// [`HiResAgreed`] that the frontend asked for the mode and this backend acknowledged it
/// (`feature-rx-timestamp-hires`); a new agreement (a reconnect) makes the encoder send a new
/// base first, for the frontend's fresh decoder.
///
/// ```
/// use vtimestamp::{BackendNegotiation, HiResDecoder, HiResEncoder, HiResEvent};
/// let mut be = BackendNegotiation::new();
/// be.on_frontend_feature(Some("1"))?; // the frontend wrote both keys
/// be.on_frontend_hires(Some("1"))?;
/// let (mut enc, mut dec) = (HiResEncoder::new(), HiResDecoder::new());
/// let t = 1_700_000_000_000_000_001;
/// let mut got = None;
/// for rec in enc.encode(be.hires()?, t, false).as_slice() {
///     if let HiResEvent::Time { unix_nanos } = dec.decode(rec)? {
///         got = Some(unix_nanos);
///     }
/// }
/// assert_eq!(got, Some(t));
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct HiResEncoder {
    base_secs: Option<u64>,
    /// The agreement the base was sent under (0: none).
    epoch: u64,
}

impl HiResEncoder {
    /// An encoder that has sent no base yet.
    ///
    /// ```
    /// assert_eq!(vtimestamp::HiResEncoder::new().base_secs(), None);
    /// ```
    pub const fn new() -> Self {
        HiResEncoder {
            base_secs: None,
            epoch: 0,
        }
    }

    /// The base last emitted, in whole seconds since the epoch.
    ///
    /// ```
    /// # let be = vtimestamp::hires::doc_agreed_backend();
    /// let mut enc = vtimestamp::HiResEncoder::new();
    /// enc.encode(be.hires()?, 3_500_000_000, false);
    /// assert_eq!(enc.base_secs(), Some(3));
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub const fn base_secs(&self) -> Option<u64> {
        self.base_secs
    }

    /// Forgets the base, so the next packet carries one (after a ring reset or reconnect).
    ///
    /// ```
    /// # let be = vtimestamp::hires::doc_agreed_backend();
    /// let mut enc = vtimestamp::HiResEncoder::new();
    /// enc.encode(be.hires()?, 1, false);
    /// enc.reset();
    /// assert_eq!(enc.encode(be.hires()?, 1, false).as_slice().len(), 2);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn reset(&mut self) {
        self.base_secs = None;
    }

    /// The records for a packet that arrived `unix_nanos` after the epoch: a new base first
    /// when there is none, the time lies before it, the offset would exceed 48 bits, or
    /// `agreed` is a newer agreement than the last base was sent under. `more` sets MORE on
    /// the offset record (another extra record follows it).
    ///
    /// `agreed` comes from [`crate::BackendNegotiation::hires`]: high-resolution records go
    /// only to a frontend that negotiated `feature-rx-timestamp-hires`, never to a plain-mode
    /// peer.
    ///
    /// ```
    /// # let be = vtimestamp::hires::doc_agreed_backend();
    /// let mut enc = vtimestamp::HiResEncoder::new();
    /// enc.encode(be.hires()?, 10_000_000_000, false);
    /// // 79 hours later: the offset would not fit, so a new base goes first.
    /// let later = 10_000_000_000 + 79 * 3600 * 1_000_000_000;
    /// assert_eq!(enc.encode(be.hires()?, later, false).as_slice().len(), 2);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub fn encode(&mut self, agreed: HiResAgreed<'_>, unix_nanos: u64, more: bool) -> HiResRecords {
        if agreed.epoch() != self.epoch {
            self.epoch = agreed.epoch();
            self.base_secs = None;
        }
        let more_flag = if more { EXTRA_FLAG_MORE } else { 0 };
        if let Some(base) = self.base_secs {
            // No overflow: a base is at most u64::MAX / 10^9 seconds (it came from a u64).
            let base_ns = base * NANOS_PER_SEC;
            if unix_nanos >= base_ns && unix_nanos - base_ns <= MAX_OFFSET_NANOS {
                return HiResRecords {
                    recs: [
                        record(TS_FLAG_HIRES_OFFSET | more_flag, unix_nanos - base_ns),
                        [0; RECORD_LEN],
                    ],
                    len: 1,
                };
            }
        }
        let base = unix_nanos / NANOS_PER_SEC;
        self.base_secs = Some(base);
        HiResRecords {
            recs: [
                record(TS_FLAG_HIRES_BASE | EXTRA_FLAG_MORE, base),
                record(
                    TS_FLAG_HIRES_OFFSET | more_flag,
                    unix_nanos - base * NANOS_PER_SEC,
                ),
            ],
            len: 2,
        }
    }
}

/// A type-6 record with `flags` and a 48-bit `payload` (below 2^48 by the callers' checks),
/// built in one 64-bit word: byte 0 = type, byte 1 = flags, bytes 2..8 = payload LE.
#[inline]
const fn record(flags: u8, payload: u64) -> [u8; RECORD_LEN] {
    ((payload << 16) | ((flags as u64) << 8) | EXTRA_TYPE_TIMESTAMP as u64).to_le_bytes()
}

/// What one record told a [`HiResDecoder`].
///
/// ```
/// let mut dec = vtimestamp::HiResDecoder::new();
/// let base = [6, 3, 7, 0, 0, 0, 0, 0];
/// assert_eq!(dec.decode(&base)?, vtimestamp::HiResEvent::Base { secs: 7 });
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiResEvent {
    /// A base record: later offsets count from these seconds.
    Base {
        /// Whole seconds since the epoch.
        secs: u64,
    },
    /// A packet's arrival time (from an offset record, or a plain 16 us record).
    Time {
        /// Nanoseconds since the epoch.
        unix_nanos: u64,
    },
}

/// Guest side of high-resolution mode. Also accepts plain 16 us records, so a guest decodes
/// whatever the host sends. One decoder per ring: `Send`, not shared.
///
/// ```
/// let mut dec = vtimestamp::HiResDecoder::new();
/// let offset_first = [6, 4, 1, 0, 0, 0, 0, 0];
/// assert_eq!(dec.decode(&offset_first), Err(vtimestamp::TsError::MissingBase));
/// ```
#[derive(Debug, Clone, Default)]
pub struct HiResDecoder {
    base_secs: Option<u64>,
}

impl HiResDecoder {
    /// A decoder that has seen no base yet.
    ///
    /// ```
    /// assert_eq!(vtimestamp::HiResDecoder::new().base_secs(), None);
    /// ```
    pub const fn new() -> Self {
        HiResDecoder { base_secs: None }
    }

    /// The current base in whole seconds since the epoch.
    ///
    /// ```
    /// let mut dec = vtimestamp::HiResDecoder::new();
    /// dec.decode(&[6, 3, 9, 0, 0, 0, 0, 0])?;
    /// assert_eq!(dec.base_secs(), Some(9));
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub const fn base_secs(&self) -> Option<u64> {
        self.base_secs
    }

    /// Decodes one record. On error the decoder's base is unchanged.
    ///
    /// ```
    /// let mut dec = vtimestamp::HiResDecoder::new();
    /// let both = [6, 6, 0, 0, 0, 0, 0, 0]; // base and offset flags at once
    /// assert!(dec.decode(&both).is_err());
    /// ```
    #[inline]
    pub fn decode(&mut self, bytes: &[u8; RECORD_LEN]) -> Result<HiResEvent, TsError> {
        const ALLOWED: u8 = EXTRA_FLAG_MORE | TS_FLAG_HIRES_BASE | TS_FLAG_HIRES_OFFSET;
        let raw = ExtraRecord::from_bytes(*bytes);
        if raw.kind != EXTRA_TYPE_TIMESTAMP {
            return Err(TsError::WrongRecordType {
                found: raw.kind,
                expected: EXTRA_TYPE_TIMESTAMP,
            });
        }
        let value = from_le48(raw.payload);
        match raw.flags & !EXTRA_FLAG_MORE {
            0 => TimestampRecord::decode(bytes).map(|r| HiResEvent::Time {
                unix_nanos: r.ts.to_unix_nanos(),
            }),
            TS_FLAG_HIRES_BASE => {
                if value.checked_mul(NANOS_PER_SEC).is_none() {
                    return Err(TsError::HiResOutOfRange {
                        nanos: i128::from(value) * i128::from(NANOS_PER_SEC),
                    });
                }
                self.base_secs = Some(value);
                Ok(HiResEvent::Base { secs: value })
            }
            TS_FLAG_HIRES_OFFSET => {
                let base = self.base_secs.ok_or(TsError::MissingBase)?;
                // The base was checked on arrival, so only the sum can overflow.
                let base_ns = base * NANOS_PER_SEC;
                let unix_nanos = base_ns.checked_add(value).ok_or(TsError::HiResOutOfRange {
                    nanos: i128::from(base_ns) + i128::from(value),
                })?;
                Ok(HiResEvent::Time { unix_nanos })
            }
            _ => Err(TsError::ReservedFlags {
                flags: raw.flags,
                allowed: ALLOWED,
            }),
        }
    }
}

/// A backend that has negotiated the high-resolution mode, for the examples in this crate's
/// documentation. Not part of the API.
#[doc(hidden)]
pub fn doc_agreed_backend() -> crate::BackendNegotiation {
    let mut be = crate::BackendNegotiation::new();
    // Both values are well formed, so neither call can fail.
    let _ = be.on_frontend_feature(Some("1"));
    let _ = be.on_frontend_hires(Some("1"));
    be
}
