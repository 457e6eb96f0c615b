//! The crate's one error type: every way an input can be wrong, with the offending value.

/// Everything the codec, the ring record, the high-resolution mode, the negotiation and the
/// socket module can reject. Inputs that produce an error change nothing.
///
/// ```
/// use vtimestamp::{ts48_pack, TsError};
/// assert_eq!(ts48_pack(0, 1_000_000), Err(TsError::MicrosOutOfRange(1_000_000)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    /// The sub-second part of a `timeval` must be below 1,000,000 microseconds (SPEC 7).
    #[error("microseconds {0} out of range (must be < 1000000)")]
    MicrosOutOfRange(i64),
    /// The sub-second part of a `timespec` must be below 1,000,000,000 nanoseconds.
    #[error("nanoseconds {0} out of range (must be < 1000000000)")]
    NanosOutOfRange(i64),
    /// The seconds do not fit the 32 bits of the 48-bit format (before 1970 or after 2106).
    #[error("seconds {0} outside the 48-bit format's range [0, 2^32)")]
    SecondsOutOfRange(i128),
    /// A packed value has bits set above bit 47.
    #[error("packed value {0:#x} does not fit in 48 bits")]
    PackedTooWide(u64),
    /// A packed value's 16-bit fraction decodes to 1,000,000 us or more, which `pack` never
    /// produces (the largest valid fraction is 999999 >> 4 = 62499).
    #[error("packed fraction {0} out of range (must be <= 62499)")]
    FractionOutOfRange(u16),
    /// A ring record of another extra type was handed to the timestamp decoder.
    #[error("extra record type {found} is not the timestamp type {expected}")]
    WrongRecordType {
        /// The type byte found.
        found: u8,
        /// The type byte this decoder accepts.
        expected: u8,
    },
    /// Flag bits that this record kind does not define are set.
    #[error("flags {flags:#04x} have bits outside {allowed:#04x} set")]
    ReservedFlags {
        /// The flags byte found (or given).
        flags: u8,
        /// The bits this record kind allows.
        allowed: u8,
    },
    /// A buffer held fewer bytes than the record or message needs.
    #[error("buffer truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// An extra-record chain ended while the last record still carried the MORE flag.
    #[error("extra-record chain ends after {records} records with the MORE flag still set")]
    UnterminatedChain {
        /// Records read before the buffer ran out.
        records: usize,
    },
    /// A high-resolution offset record arrived before any base record.
    #[error("high-resolution offset record without a preceding base record")]
    MissingBase,
    /// A high-resolution timestamp lies before its base or more than 2^48 ns after it.
    #[error("{nanos} ns since the epoch is not representable (before 1970 or beyond u64)")]
    HiResOutOfRange {
        /// The offending time in nanoseconds since the Unix epoch, as far as it could be told.
        nanos: i128,
    },
    /// A value under `feature-rx-timestamp` in xenstore that is neither "0" nor "1".
    #[error("feature-rx-timestamp value {0:?} is neither \"0\" nor \"1\"")]
    BadFeatureValue(String),
    /// A record was sent or accepted before both ends agreed on `feature-rx-timestamp`.
    #[error("timestamp records are not negotiated (state: {0})")]
    NotNegotiated(&'static str),
    /// A socket call failed; `errno` is the OS error number.
    #[error("{op} failed: {}", std::io::Error::from_raw_os_error(*errno))]
    Io {
        /// The call (`"recvmsg"`, `"setsockopt(SO_TIMESTAMPNS)"`, ...).
        op: &'static str,
        /// The OS error number.
        errno: i32,
    },
    /// The kernel does not support the requested timestamping option on this socket.
    #[error("kernel timestamping option {option} not supported: {}", std::io::Error::from_raw_os_error(*errno))]
    Unsupported {
        /// The socket option.
        option: &'static str,
        /// The OS error number (`ENOPROTOOPT`, `EINVAL`, ...).
        errno: i32,
    },
    /// A datagram arrived without the kernel timestamp control message that was enabled.
    #[error("datagram carried no kernel timestamp")]
    MissingTimestamp,
    /// The kernel cut the control messages short (`MSG_CTRUNC`).
    #[error("control messages truncated by the kernel (MSG_CTRUNC)")]
    ControlTruncated,
    /// A control message is malformed.
    #[error("malformed control message at byte {offset}: {fault}")]
    MalformedCmsg {
        /// Byte offset of the message's header in the control buffer.
        offset: usize,
        /// What is wrong with it.
        fault: CmsgFault,
    },
    /// A peer address of a family other than IPv4 or IPv6.
    #[error("unsupported address family {0}")]
    AddressFamily(i32),
    /// A receive batch must hold between 1 and the maximum number of datagrams.
    #[error("batch of {requested} datagrams outside [1, {max}] (or zero-byte datagram buffers)")]
    BatchSize {
        /// Requested batch size.
        requested: usize,
        /// The largest batch.
        max: usize,
    },
}

/// What is wrong with a malformed control message.
///
/// ```
/// use vtimestamp::CmsgFault;
/// assert_eq!(CmsgFault::LengthBelowHeader(3).to_string(), "cmsg_len 3 is shorter than its header");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmsgFault {
    /// `cmsg_len` is smaller than the header itself.
    #[error("cmsg_len {0} is shorter than its header")]
    LengthBelowHeader(usize),
    /// `cmsg_len` runs past the end of the control buffer.
    #[error("cmsg_len {len} runs past the {available} bytes left")]
    LengthPastEnd {
        /// The message's `cmsg_len`.
        len: usize,
        /// Bytes left in the buffer from the message's start.
        available: usize,
    },
    /// A timestamp message whose payload has the wrong size.
    #[error("timestamp payload of {len} bytes, expected {expected}")]
    PayloadSize {
        /// Payload bytes found.
        len: usize,
        /// Payload bytes expected.
        expected: usize,
    },
    /// A timestamp with nanoseconds outside [0, 10^9), negative seconds, or a time past what u64
    /// nanoseconds since the epoch hold (the year 2554).
    #[error("invalid timespec {sec} s {nsec} ns")]
    BadTimespec {
        /// `tv_sec`.
        sec: i64,
        /// `tv_nsec`.
        nsec: i64,
    },
}
