//! # vtimestamp
//!
//! Packet-arrival timestamps for game servers and virtual NICs (dissertation chapter 6,
//! SPEC section 7):
//!
//! - [`ts48`]: the bit-exact 48-bit codec (32-bit seconds, 16 us resolution, range to 2106)
//!   and conversions from and to `timeval`, `timespec`, nanoseconds and [`std::time::SystemTime`];
//! - [`record`]: the 8-byte ring record (type 6, flags, packed48 little-endian) with Xen's MORE
//!   chaining; [`negotiation`]: the `feature-rx-timestamp` handshake;
//! - [`hires`]: the high-resolution mode (a base plus 48-bit nanosecond offsets). Its records
//!   are type 6 with flag bit 1 or 2 and a payload that is not packed48, so **they go only to a
//!   frontend that also negotiated `feature-rx-timestamp-hires`, never to a plain-mode peer**
//!   (which might ignore the flag bits and misread them): the encoder needs the proof
//!   [`HiResAgreed`] that only [`BackendNegotiation::hires`] gives;
//! - `socket` (Linux, default feature `socket`): UDP receive with kernel arrival times through
//!   `recvmsg` and `recvmmsg`. It is the only module that uses libc or `unsafe`.
//!
//! The C twin `include/vibra_netif_ts.h` (header-only, for kernel code) produces the same bytes;
//! a test checks it against this crate.
//!
//! ```
//! use vtimestamp::{ts48_pack, ts48_unpack, ts_extra_decode, ts_extra_encode};
//! let packed = ts48_pack(1_700_000_000, 123_456)?;
//! assert_eq!(ts48_unpack(packed)?, (1_700_000_000, 123_456 / 16 * 16));
//! let record = ts_extra_encode(1_700_000_000, 123_456, 0)?;
//! assert_eq!(ts_extra_decode(&record)?, (1_700_000_000, 123_456 / 16 * 16, 0));
//! # Ok::<(), vtimestamp::TsError>(())
//! ```
#![cfg_attr(not(all(feature = "socket", target_os = "linux")), forbid(unsafe_code))]
#![cfg_attr(all(feature = "socket", target_os = "linux"), deny(unsafe_code))]

mod error;
pub mod hires;
pub mod negotiation;
pub mod record;
#[cfg(all(feature = "socket", target_os = "linux"))]
#[allow(unsafe_code)] // The one module that talks to the kernel; every block has a SAFETY note.
pub mod socket;
pub mod ts48;

pub use error::{CmsgFault, TsError};
pub use hires::{HiResDecoder, HiResEncoder, HiResEvent, HiResRecords, MAX_OFFSET_NANOS};
pub use negotiation::{
    BackendNegotiation, BackendState, FEATURE_RX_TIMESTAMP, FEATURE_RX_TIMESTAMP_HIRES,
    FrontendNegotiation, FrontendState, HiResAgreed, XenstoreWrite, parse_feature,
};
pub use record::{
    EXTRA_FLAG_MORE, EXTRA_TYPE_TIMESTAMP, ExtraChain, ExtraRecord, RECORD_LEN, TS_FLAG_HIRES_BASE,
    TS_FLAG_HIRES_OFFSET, TimestampRecord, extra_chain, put_chain, ts_extra_decode,
    ts_extra_encode,
};
pub use ts48::{RESOLUTION_US, Timespec, Timeval, Ts48, ts48_pack, ts48_unpack};

/// The README's examples, compiled and run as doctests so they cannot go stale (one of them
/// uses the socket module).
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "socket", target_os = "linux"))]
pub struct ReadmeDoctests;
