//! The 8-byte ring record of SPEC 7, laid out like Xen's `struct netif_extra_info`: byte 0 =
//! type, byte 1 = flags, bytes 2..8 = payload (for a timestamp: packed48, little-endian).
//! Records chain with Xen's MORE flag. This module owns the bytes; it never does I/O.

use bytes::{Buf, BufMut};

use crate::{Ts48, TsError};

/// Length of one ring record.
pub const RECORD_LEN: usize = 8;
/// Length of a record's payload.
pub const PAYLOAD_LEN: usize = 6;
/// `VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP`: the first extra type free in both Xen's and Linux's
/// `netif.h` (GSO 1, MCAST_ADD 2, MCAST_DEL 3, HASH 4, XDP 5).
pub const EXTRA_TYPE_TIMESTAMP: u8 = 6;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra record follows this one.
pub const EXTRA_FLAG_MORE: u8 = 1 << 0;
/// Timestamp-record flag (project choice, see [`crate::hires`]): the payload is a base, whole
/// seconds since the epoch as a 48-bit little-endian integer.
pub const TS_FLAG_HIRES_BASE: u8 = 1 << 1;
/// Timestamp-record flag (project choice, see [`crate::hires`]): the payload is a 48-bit
/// little-endian nanosecond offset from the last base.
pub const TS_FLAG_HIRES_OFFSET: u8 = 1 << 2;

/// Any extra record: the type, the flags and the 6-byte payload, uninterpreted. Use it to walk
/// a chain that mixes the timestamp with Xen's other extra types.
///
/// Plain data: `Copy`, `Send` and `Sync`.
///
/// ```
/// use vtimestamp::ExtraRecord;
/// let gso = ExtraRecord { kind: 1, flags: 1, payload: [0x40, 0x05, 1, 0, 0, 0] };
/// assert_eq!(ExtraRecord::from_bytes(gso.to_bytes()), gso);
/// assert!(gso.has_more());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtraRecord {
    /// Byte 0: the extra type (`XEN_NETIF_EXTRA_TYPE_*`, or [`EXTRA_TYPE_TIMESTAMP`]).
    pub kind: u8,
    /// Byte 1: the flags ([`EXTRA_FLAG_MORE`] and type-specific bits).
    pub flags: u8,
    /// Bytes 2..8: the payload.
    pub payload: [u8; PAYLOAD_LEN],
}

impl ExtraRecord {
    /// The record's 8 bytes.
    ///
    /// ```
    /// let r = vtimestamp::ExtraRecord { kind: 6, flags: 0, payload: [1, 2, 3, 4, 5, 6] };
    /// assert_eq!(r.to_bytes(), [6, 0, 1, 2, 3, 4, 5, 6]);
    /// ```
    #[inline]
    pub const fn to_bytes(self) -> [u8; RECORD_LEN] {
        let p = self.payload;
        [self.kind, self.flags, p[0], p[1], p[2], p[3], p[4], p[5]]
    }

    /// Splits 8 bytes into type, flags and payload (any bytes are a valid raw record).
    ///
    /// ```
    /// let r = vtimestamp::ExtraRecord::from_bytes([4, 1, 0, 0, 0, 0, 0, 9]);
    /// assert_eq!((r.kind, r.flags, r.payload[5]), (4, 1, 9));
    /// ```
    #[inline]
    pub const fn from_bytes(b: [u8; RECORD_LEN]) -> Self {
        ExtraRecord {
            kind: b[0],
            flags: b[1],
            payload: [b[2], b[3], b[4], b[5], b[6], b[7]],
        }
    }

    /// Whether another extra record follows (Xen's MORE flag).
    ///
    /// ```
    /// assert!(!vtimestamp::ExtraRecord::from_bytes([6, 0, 0, 0, 0, 0, 0, 0]).has_more());
    /// ```
    #[inline]
    pub const fn has_more(self) -> bool {
        self.flags & EXTRA_FLAG_MORE != 0
    }

    /// Appends the 8 bytes to `buf`; errors (writing nothing) when fewer than 8 bytes fit.
    ///
    /// ```
    /// let r = vtimestamp::ExtraRecord::from_bytes([6, 0, 1, 0, 0, 0, 0, 0]);
    /// let mut out = bytes::BytesMut::new();
    /// r.put(&mut out)?;
    /// assert_eq!(&out[..], &r.to_bytes());
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn put<B: BufMut>(self, buf: &mut B) -> Result<(), TsError> {
        room(buf, RECORD_LEN)?;
        buf.put_slice(&self.to_bytes());
        Ok(())
    }

    /// Takes 8 bytes from `buf`; errors (consuming nothing) when fewer are left.
    ///
    /// ```
    /// let mut b = bytes::Bytes::from_static(&[6, 0, 1, 0, 0, 0, 0, 0, 0xff]);
    /// let r = vtimestamp::ExtraRecord::get(&mut b)?;
    /// assert_eq!((r.kind, b.len()), (6, 1));
    /// assert!(vtimestamp::ExtraRecord::get(&mut b).is_err());
    /// assert_eq!(b.len(), 1);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn get<B: Buf>(buf: &mut B) -> Result<Self, TsError> {
        have(buf, RECORD_LEN)?;
        let mut b = [0u8; RECORD_LEN];
        buf.copy_to_slice(&mut b);
        Ok(ExtraRecord::from_bytes(b))
    }
}

fn room<B: BufMut>(buf: &B, needed: usize) -> Result<(), TsError> {
    if buf.remaining_mut() < needed {
        return Err(TsError::Truncated {
            needed,
            available: buf.remaining_mut(),
        });
    }
    Ok(())
}

fn have<B: Buf>(buf: &B, needed: usize) -> Result<(), TsError> {
    if buf.remaining() < needed {
        return Err(TsError::Truncated {
            needed,
            available: buf.remaining(),
        });
    }
    Ok(())
}

#[inline]
pub(crate) const fn from_le48(p: [u8; PAYLOAD_LEN]) -> u64 {
    u64::from_le_bytes([p[0], p[1], p[2], p[3], p[4], p[5], 0, 0])
}

/// A decoded plain timestamp record (type 6, 16 us resolution): the timestamp and whether
/// another extra record follows.
///
/// Plain data: `Copy`, `Send` and `Sync`.
///
/// ```
/// use vtimestamp::{TimestampRecord, Ts48};
/// let rec = TimestampRecord { ts: Ts48::new(1_700_000_000, 250_000)?, more: false };
/// assert_eq!(TimestampRecord::decode(&rec.encode())?, rec);
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimestampRecord {
    /// The arrival time.
    pub ts: Ts48,
    /// Xen's MORE flag: another extra record follows.
    pub more: bool,
}

impl TimestampRecord {
    /// The 8 bytes: `[6, flags, packed48 little-endian]`.
    ///
    /// ```
    /// use vtimestamp::{TimestampRecord, Ts48};
    /// let rec = TimestampRecord { ts: Ts48::from_packed(0x0102_0304_0506)?, more: true };
    /// assert_eq!(rec.encode(), [6, 1, 6, 5, 4, 3, 2, 1]);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub const fn encode(self) -> [u8; RECORD_LEN] {
        let flags = if self.more { EXTRA_FLAG_MORE } else { 0 };
        ((self.ts.packed() << 16) | ((flags as u64) << 8) | EXTRA_TYPE_TIMESTAMP as u64)
            .to_le_bytes()
    }

    /// Decodes 8 bytes. Errors on another record type, on flags other than MORE (a
    /// high-resolution record is not a plain timestamp) and on an invalid packed value.
    ///
    /// ```
    /// use vtimestamp::{TimestampRecord, TsError};
    /// let gso = [1, 0, 0, 0, 0, 0, 0, 0];
    /// assert_eq!(TimestampRecord::decode(&gso),
    ///            Err(TsError::WrongRecordType { found: 1, expected: 6 }));
    /// ```
    #[inline]
    pub fn decode(bytes: &[u8; RECORD_LEN]) -> Result<Self, TsError> {
        // One 64-bit load: byte 0 = type, byte 1 = flags, bytes 2..8 = packed48 (SPEC 7).
        let word = u64::from_le_bytes(*bytes);
        let (kind, flags) = (word as u8, (word >> 8) as u8);
        if kind != EXTRA_TYPE_TIMESTAMP {
            return Err(TsError::WrongRecordType {
                found: kind,
                expected: EXTRA_TYPE_TIMESTAMP,
            });
        }
        if flags & !EXTRA_FLAG_MORE != 0 {
            return Err(TsError::ReservedFlags {
                flags,
                allowed: EXTRA_FLAG_MORE,
            });
        }
        Ok(TimestampRecord {
            ts: Ts48::from_packed(word >> 16)?,
            more: flags & EXTRA_FLAG_MORE != 0,
        })
    }

    /// Appends the record to `buf`; errors (writing nothing) when fewer than 8 bytes fit.
    ///
    /// ```
    /// use vtimestamp::{TimestampRecord, Ts48};
    /// let mut slot = [0u8; 8];
    /// TimestampRecord { ts: Ts48::EPOCH, more: false }.put(&mut &mut slot[..])?;
    /// assert_eq!(slot[0], 6);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn put<B: BufMut>(self, buf: &mut B) -> Result<(), TsError> {
        ExtraRecord::from_bytes(self.encode()).put(buf)
    }

    /// Takes and decodes one record from `buf`. A truncated buffer is never consumed; when the
    /// record lies in one chunk (`Bytes`, `BytesMut`, `&[u8]`: every contiguous buffer) a
    /// record that fails to decode is not consumed either. A record split across the chunks
    /// of a chained buffer is consumed before it is decoded.
    ///
    /// ```
    /// use vtimestamp::TimestampRecord;
    /// let mut b = bytes::Bytes::from_static(&[6, 0, 0, 0, 1, 0, 0, 0]);
    /// assert_eq!(TimestampRecord::get(&mut b)?.ts.secs(), 1);
    /// let mut gso = bytes::Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 0]);
    /// assert!(TimestampRecord::get(&mut gso).is_err());
    /// assert_eq!(gso.len(), 8);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn get<B: Buf>(buf: &mut B) -> Result<Self, TsError> {
        have(buf, RECORD_LEN)?;
        let mut b = [0u8; RECORD_LEN];
        if let Some(head) = buf.chunk().get(..RECORD_LEN) {
            b.copy_from_slice(head);
            let rec = TimestampRecord::decode(&b)?;
            buf.advance(RECORD_LEN);
            Ok(rec)
        } else {
            buf.copy_to_slice(&mut b);
            TimestampRecord::decode(&b)
        }
    }
}

/// SPEC 8 `vibra_ts_extra_encode`: the 8-byte record for `sec`/`usec` with `flags`. Only
/// [`EXTRA_FLAG_MORE`] may be set; errors on `usec >= 1_000_000` or other flag bits.
///
/// ```
/// use vtimestamp::{ts_extra_encode, EXTRA_FLAG_MORE};
/// assert_eq!(ts_extra_encode(1, 16, EXTRA_FLAG_MORE)?, [6, 1, 1, 0, 1, 0, 0, 0]);
/// assert!(ts_extra_encode(1, 16, 0x80).is_err());
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[inline]
pub fn ts_extra_encode(sec: u32, usec: u32, flags: u8) -> Result<[u8; RECORD_LEN], TsError> {
    if flags & !EXTRA_FLAG_MORE != 0 {
        return Err(TsError::ReservedFlags {
            flags,
            allowed: EXTRA_FLAG_MORE,
        });
    }
    match Ts48::new(sec, usec) {
        Ok(ts) => Ok(TimestampRecord {
            ts,
            more: flags & EXTRA_FLAG_MORE != 0,
        }
        .encode()),
        Err(e) => Err(e),
    }
}

/// SPEC 8 `vibra_ts_extra_decode`: `(sec, usec, flags)` from an 8-byte record; errors on a
/// record of another type, on flags other than MORE and on an invalid packed value.
///
/// ```
/// use vtimestamp::{ts_extra_decode, TsError};
/// assert_eq!(ts_extra_decode(&[6, 1, 1, 0, 1, 0, 0, 0])?, (1, 16, 1));
/// assert_eq!(ts_extra_decode(&[5, 0, 0, 0, 0, 0, 0, 0]),
///            Err(TsError::WrongRecordType { found: 5, expected: 6 }));
/// # Ok::<(), TsError>(())
/// ```
#[inline]
pub fn ts_extra_decode(bytes: &[u8; RECORD_LEN]) -> Result<(u32, u32, u8), TsError> {
    match TimestampRecord::decode(bytes) {
        Ok(rec) => Ok((
            rec.ts.secs(),
            rec.ts.micros(),
            if rec.more { EXTRA_FLAG_MORE } else { 0 },
        )),
        Err(e) => Err(e),
    }
}

/// Walks a chain of extra records in `buf` the way netfront does: one record, then another
/// for as long as the MORE flag is set. Yields each raw record; stops after the first record
/// without MORE, or after the first error (a short buffer). [`ExtraChain::remainder`] gives
/// the bytes after the chain.
///
/// ```
/// use vtimestamp::{extra_chain, ExtraRecord, TimestampRecord, Ts48};
/// let gso = ExtraRecord { kind: 1, flags: 1, payload: [0; 6] }.to_bytes();
/// let ts = TimestampRecord { ts: Ts48::new(5, 0)?, more: false }.encode();
/// let buf = [gso, ts, [0xEE; 8]].concat();
/// let mut chain = extra_chain(&buf);
/// let kinds: Vec<u8> = chain.by_ref().map(|r| r.map(|r| r.kind)).collect::<Result<_, _>>()?;
/// assert_eq!(kinds, [1, 6]);
/// assert_eq!(chain.remainder(), &[0xEE; 8]);
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
pub fn extra_chain(buf: &[u8]) -> ExtraChain<'_> {
    ExtraChain {
        rest: buf,
        records: 0,
        done: false,
    }
}

/// Iterator returned by [`extra_chain`]. Borrows the buffer; `Send` and `Sync`.
///
/// ```
/// let chain = vtimestamp::extra_chain(&[6, 0, 0, 0, 0, 0, 0, 0]);
/// assert_eq!(chain.count(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct ExtraChain<'a> {
    rest: &'a [u8],
    records: usize,
    done: bool,
}

impl<'a> ExtraChain<'a> {
    /// The bytes not read yet: after the chain's last record once the chain has ended.
    ///
    /// ```
    /// let buf = [6, 0, 0, 0, 0, 0, 0, 0, 42];
    /// let mut chain = vtimestamp::extra_chain(&buf);
    /// chain.next();
    /// assert_eq!(chain.remainder(), &[42]);
    /// ```
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }

    /// The first timestamp record in the (rest of the) chain, decoded; `Ok(None)` when the
    /// chain has none. Stops at the first malformed record.
    ///
    /// ```
    /// use vtimestamp::{extra_chain, ExtraRecord, TimestampRecord, Ts48};
    /// let hash = ExtraRecord { kind: 4, flags: 1, payload: [0; 6] }.to_bytes();
    /// let ts = TimestampRecord { ts: Ts48::new(9, 32)?, more: false }.encode();
    /// let found = extra_chain(&[hash, ts].concat()).find_timestamp()?;
    /// assert_eq!(found.map(|r| r.ts.micros()), Some(32));
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn find_timestamp(&mut self) -> Result<Option<TimestampRecord>, TsError> {
        for raw in self.by_ref() {
            let raw = raw?;
            if raw.kind == EXTRA_TYPE_TIMESTAMP {
                return TimestampRecord::decode(&raw.to_bytes()).map(Some);
            }
        }
        Ok(None)
    }
}

impl Iterator for ExtraChain<'_> {
    type Item = Result<ExtraRecord, TsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let Some((head, rest)) = self.rest.split_first_chunk::<RECORD_LEN>() else {
            self.done = true;
            return Some(Err(if self.records == 0 {
                TsError::Truncated {
                    needed: RECORD_LEN,
                    available: self.rest.len(),
                }
            } else {
                TsError::UnterminatedChain {
                    records: self.records,
                }
            }));
        };
        let rec = ExtraRecord::from_bytes(*head);
        self.rest = rest;
        self.records += 1;
        self.done = !rec.has_more();
        Some(Ok(rec))
    }
}

/// Writes `records` as one chain: sets MORE on every record but the last and clears it on the
/// last. Writes nothing unless all of them fit in `buf`.
///
/// ```
/// use vtimestamp::{extra_chain, put_chain, ExtraRecord};
/// let recs = [ExtraRecord { kind: 1, flags: 0, payload: [0; 6] },
///             ExtraRecord { kind: 6, flags: 1, payload: [0; 6] }];
/// let mut out = Vec::new();
/// put_chain(&recs, &mut out)?;
/// assert_eq!((out[1], out[9]), (1, 0));
/// assert_eq!(extra_chain(&out).count(), 2);
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
pub fn put_chain<B: BufMut>(records: &[ExtraRecord], buf: &mut B) -> Result<(), TsError> {
    room(buf, records.len().saturating_mul(RECORD_LEN))?;
    for (i, rec) in records.iter().enumerate() {
        let more = i + 1 < records.len();
        let flags = if more {
            rec.flags | EXTRA_FLAG_MORE
        } else {
            rec.flags & !EXTRA_FLAG_MORE
        };
        buf.put_slice(&ExtraRecord { flags, ..*rec }.to_bytes());
    }
    Ok(())
}
