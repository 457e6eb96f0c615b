//! The 48-bit timestamp of SPEC section 7 (dissertation 6.5.1): 32 bits of seconds since the
//! Unix epoch and the microseconds cut to 16 bits by dropping their low 4 bits (16 us
//! resolution). This module owns the bit layout and the conversions; it never does I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::TsError;

/// Resolution of the 48-bit format: 2^4 microseconds.
pub const RESOLUTION_US: u32 = 16;
/// The largest value a packed timestamp may take: 48 bits.
pub const PACKED_MASK: u64 = (1 << 48) - 1;
/// The largest valid 16-bit fraction: 999999 >> 4.
pub const MAX_FRACTION: u16 = (999_999 >> 4) as u16;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A `struct timeval` as plain fields (seconds and microseconds since the Unix epoch), so the
/// codec needs no libc. The socket module converts `libc::timeval` into it.
///
/// ```
/// use vtimestamp::{Timeval, Ts48};
/// let ts = Ts48::try_from(Timeval { tv_sec: 1_000, tv_usec: 33 })?;
/// assert_eq!(Timeval::from(ts), Timeval { tv_sec: 1_000, tv_usec: 32 });
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timeval {
    /// Seconds since the Unix epoch.
    pub tv_sec: i64,
    /// Microseconds past the second, in [0, 1000000) when well formed.
    pub tv_usec: i64,
}

/// A `struct timespec` as plain fields (seconds and nanoseconds since the Unix epoch).
///
/// ```
/// use vtimestamp::{Timespec, Ts48};
/// let ts = Ts48::try_from(Timespec { tv_sec: 7, tv_nsec: 31_999 })?;
/// assert_eq!(Timespec::from(ts), Timespec { tv_sec: 7, tv_nsec: 16_000 });
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timespec {
    /// Seconds since the Unix epoch.
    pub tv_sec: i64,
    /// Nanoseconds past the second, in [0, 1000000000) when well formed.
    pub tv_nsec: i64,
}

impl Timespec {
    /// Nanoseconds since the epoch; errors on a negative time or a malformed `tv_nsec`.
    ///
    /// ```
    /// let t = vtimestamp::Timespec { tv_sec: 2, tv_nsec: 5 };
    /// assert_eq!(t.to_unix_nanos()?, 2_000_000_005);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn to_unix_nanos(self) -> Result<u64, TsError> {
        if !(0..1_000_000_000).contains(&self.tv_nsec) {
            return Err(TsError::NanosOutOfRange(self.tv_nsec));
        }
        u64::try_from(self.tv_sec)
            .ok()
            .and_then(|s| s.checked_mul(NANOS_PER_SEC))
            .and_then(|n| n.checked_add(self.tv_nsec as u64))
            .ok_or(TsError::SecondsOutOfRange(self.tv_sec.into()))
    }

    /// The same instant as a [`SystemTime`]; errors like [`Timespec::to_unix_nanos`].
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let t = vtimestamp::Timespec { tv_sec: 1, tv_nsec: 0 };
    /// assert_eq!(t.to_system_time()?, UNIX_EPOCH + Duration::from_secs(1));
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn to_system_time(self) -> Result<SystemTime, TsError> {
        Ok(UNIX_EPOCH + Duration::from_nanos(self.to_unix_nanos()?))
    }
}

/// A valid 48-bit timestamp: below 2^48, with a fraction that unpacks to under one second.
/// Every value of this type packs and unpacks without error, so wrong states cannot be built.
///
/// Plain data: `Copy`, `Send` and `Sync`.
///
/// ```
/// use vtimestamp::Ts48;
/// let ts = Ts48::new(1_700_000_000, 123_456)?;
/// assert_eq!(ts.packed(), (1_700_000_000u64 << 16) | (123_456 >> 4));
/// assert_eq!((ts.secs(), ts.micros()), (1_700_000_000, 123_456 & !15));
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts48(u64);

impl Ts48 {
    /// The epoch itself.
    pub const EPOCH: Ts48 = Ts48(0);
    /// The last representable instant: 2106-02-07 06:28:15.999984 UTC.
    pub const MAX: Ts48 = Ts48(((u32::MAX as u64) << 16) | MAX_FRACTION as u64);

    /// Packs seconds and microseconds (SPEC 7). Errors when `usec >= 1_000_000`.
    ///
    /// ```
    /// use vtimestamp::{Ts48, TsError};
    /// assert!(Ts48::new(u32::MAX, 999_999).is_ok());
    /// assert_eq!(Ts48::new(1, 1_000_000), Err(TsError::MicrosOutOfRange(1_000_000)));
    /// ```
    #[inline]
    pub const fn new(sec: u32, usec: u32) -> Result<Self, TsError> {
        if usec >= 1_000_000 {
            return Err(TsError::MicrosOutOfRange(usec as i64));
        }
        Ok(Ts48(((sec as u64) << 16) | (usec >> 4) as u64))
    }

    /// Accepts a packed value as found on the wire, checking both invariants.
    ///
    /// ```
    /// use vtimestamp::{Ts48, TsError};
    /// assert_eq!(Ts48::from_packed(0x1_0000)?.secs(), 1);
    /// assert_eq!(Ts48::from_packed(1 << 48), Err(TsError::PackedTooWide(1 << 48)));
    /// assert_eq!(Ts48::from_packed(62_500), Err(TsError::FractionOutOfRange(62_500)));
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub const fn from_packed(packed: u64) -> Result<Self, TsError> {
        if packed & !PACKED_MASK != 0 {
            return Err(TsError::PackedTooWide(packed));
        }
        let fraction = (packed & 0xFFFF) as u16;
        if fraction > MAX_FRACTION {
            return Err(TsError::FractionOutOfRange(fraction));
        }
        Ok(Ts48(packed))
    }

    /// The 48-bit wire value.
    ///
    /// ```
    /// assert_eq!(vtimestamp::Ts48::new(2, 32)?.packed(), 0x2_0002);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub const fn packed(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch.
    ///
    /// ```
    /// assert_eq!(vtimestamp::Ts48::new(9, 0)?.secs(), 9);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub const fn secs(self) -> u32 {
        (self.0 >> 16) as u32
    }

    /// Microseconds past the second: a multiple of 16 below 1,000,000.
    ///
    /// ```
    /// assert_eq!(vtimestamp::Ts48::new(0, 999_999)?.micros(), 999_984);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub const fn micros(self) -> u32 {
        ((self.0 & 0xFFFF) as u32) << 4
    }

    /// Truncates nanoseconds since the Unix epoch to the 16 us grid.
    ///
    /// ```
    /// use vtimestamp::Ts48;
    /// let ts = Ts48::from_unix_nanos(1_500_000_017_999)?;
    /// assert_eq!(ts.to_unix_nanos(), 1_500_000_016_000);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub const fn from_unix_nanos(nanos: u64) -> Result<Self, TsError> {
        let sec = nanos / NANOS_PER_SEC;
        if sec > u32::MAX as u64 {
            return Err(TsError::SecondsOutOfRange(sec as i128));
        }
        let usec = ((nanos % NANOS_PER_SEC) / 1_000) as u32;
        Ts48::new(sec as u32, usec)
    }

    /// Nanoseconds since the Unix epoch (always a multiple of 16,000).
    ///
    /// ```
    /// assert_eq!(vtimestamp::Ts48::new(1, 16)?.to_unix_nanos(), 1_000_016_000);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub const fn to_unix_nanos(self) -> u64 {
        self.secs() as u64 * NANOS_PER_SEC + self.micros() as u64 * 1_000
    }
}

/// Range check of a signed seconds field against the 32-bit range.
fn seconds(tv_sec: i64) -> Result<u32, TsError> {
    u32::try_from(tv_sec).map_err(|_| TsError::SecondsOutOfRange(tv_sec.into()))
}

impl TryFrom<Timeval> for Ts48 {
    type Error = TsError;
    fn try_from(tv: Timeval) -> Result<Self, TsError> {
        if !(0..1_000_000).contains(&tv.tv_usec) {
            return Err(TsError::MicrosOutOfRange(tv.tv_usec));
        }
        Ts48::new(seconds(tv.tv_sec)?, tv.tv_usec as u32)
    }
}

impl From<Ts48> for Timeval {
    fn from(ts: Ts48) -> Self {
        Timeval {
            tv_sec: ts.secs().into(),
            tv_usec: ts.micros().into(),
        }
    }
}

impl TryFrom<Timespec> for Ts48 {
    type Error = TsError;
    fn try_from(ts: Timespec) -> Result<Self, TsError> {
        if !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(TsError::NanosOutOfRange(ts.tv_nsec));
        }
        Ts48::new(seconds(ts.tv_sec)?, (ts.tv_nsec / 1_000) as u32)
    }
}

impl From<Ts48> for Timespec {
    fn from(ts: Ts48) -> Self {
        Timespec {
            tv_sec: ts.secs().into(),
            tv_nsec: i64::from(ts.micros()) * 1_000,
        }
    }
}

/// Times before 1970 or from 2106 on are rejected with [`TsError::SecondsOutOfRange`].
impl TryFrom<SystemTime> for Ts48 {
    type Error = TsError;
    fn try_from(t: SystemTime) -> Result<Self, TsError> {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => {
                let sec = u32::try_from(d.as_secs())
                    .map_err(|_| TsError::SecondsOutOfRange(d.as_secs().into()))?;
                Ts48::new(sec, d.subsec_micros())
            }
            Err(before) => Err(TsError::SecondsOutOfRange(
                -i128::from(before.duration().as_secs()) - 1,
            )),
        }
    }
}

impl From<Ts48> for SystemTime {
    fn from(ts: Ts48) -> Self {
        UNIX_EPOCH + Duration::from_nanos(ts.to_unix_nanos())
    }
}

/// SPEC 8 `vibra_ts48_pack`: `(sec << 16) | (usec >> 4)`; errors when `usec >= 1_000_000`.
///
/// ```
/// use vtimestamp::{ts48_pack, TsError};
/// assert_eq!(ts48_pack(1, 17)?, 0x1_0001);
/// assert_eq!(ts48_pack(1, 1_000_000), Err(TsError::MicrosOutOfRange(1_000_000)));
/// # Ok::<(), TsError>(())
/// ```
#[inline]
pub fn ts48_pack(sec: u32, usec: u32) -> Result<u64, TsError> {
    match Ts48::new(sec, usec) {
        Ok(ts) => Ok(ts.packed()),
        Err(e) => Err(e),
    }
}

/// SPEC 8 `vibra_ts48_unpack`: `(packed >> 16, (packed & 0xFFFF) << 4)`; errors when the value
/// is wider than 48 bits or its fraction would unpack to a second or more.
///
/// ```
/// use vtimestamp::{ts48_unpack, TsError};
/// assert_eq!(ts48_unpack(0x1_0001)?, (1, 16));
/// assert_eq!(ts48_unpack(u64::MAX), Err(TsError::PackedTooWide(u64::MAX)));
/// # Ok::<(), TsError>(())
/// ```
#[inline]
pub fn ts48_unpack(packed: u64) -> Result<(u32, u32), TsError> {
    match Ts48::from_packed(packed) {
        Ok(ts) => Ok((ts.secs(), ts.micros())),
        Err(e) => Err(e),
    }
}
