//! Safe parsing of the control messages (`cmsghdr` chain) that `recvmsg` fills in. The walk
//! follows glibc's `CMSG_FIRSTHDR`/`CMSG_NXTHDR` over a plain byte slice, so it needs no
//! `unsafe` and no trust in the lengths it reads: a malformed chain is a typed error. This is
//! the code the `cmsg_parse` fuzz target drives.

use std::mem::size_of;

use crate::{CmsgFault, Timespec, TsError};

/// `sizeof(struct cmsghdr)`: `size_t cmsg_len; int cmsg_level; int cmsg_type;`.
const HDR_LEN: usize = size_of::<libc::size_t>() + 2 * size_of::<libc::c_int>();
/// Bytes of one `struct timespec` in a control message.
const TIMESPEC_LEN: usize = size_of::<libc::time_t>() + size_of::<libc::c_long>();

/// `CMSG_ALIGN`: rounds up to the alignment of `size_t`.
const fn align(len: usize) -> usize {
    let a = size_of::<libc::size_t>();
    (len + a - 1) & !(a - 1)
}

/// Kernel receive timestamps found in one datagram's control messages.
///
/// ```
/// let found = vtimestamp::socket::parse_control(&[])?;
/// assert_eq!(found, vtimestamp::socket::ControlTimestamps::default());
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControlTimestamps {
    /// From `SCM_TIMESTAMPNS` (`SO_TIMESTAMPNS`).
    pub ns: Option<Timespec>,
    /// The software stamp (`ts[0]`) of `SCM_TIMESTAMPING`, when it is set.
    pub software: Option<Timespec>,
}

impl ControlTimestamps {
    /// The arrival time: the `SO_TIMESTAMPNS` one, else the software `SO_TIMESTAMPING` one.
    ///
    /// ```
    /// assert_eq!(vtimestamp::socket::ControlTimestamps::default().arrival(), None);
    /// ```
    pub fn arrival(&self) -> Option<Timespec> {
        self.ns.or(self.software)
    }
}

fn read_int(bytes: &[u8]) -> i64 {
    match bytes.len() {
        8 => i64::from_ne_bytes(bytes.try_into().unwrap_or([0; 8])),
        4 => i32::from_ne_bytes(bytes.try_into().unwrap_or([0; 4])).into(),
        _ => 0, // unreachable: only called with the sizes of time_t and long
    }
}

fn read_timespec(bytes: &[u8], offset: usize) -> Result<Timespec, TsError> {
    let (sec, nsec) = bytes.split_at(size_of::<libc::time_t>());
    let ts = Timespec {
        tv_sec: read_int(sec),
        tv_nsec: read_int(&nsec[..size_of::<libc::c_long>()]),
    };
    // Negative times, malformed nanoseconds and times past what u64 nanoseconds hold (the
    // year 2554) are not arrival times any kernel produces: reject them here, so every
    // timestamp this parser returns converts to nanoseconds and `SystemTime`.
    if ts.to_unix_nanos().is_err() {
        return Err(TsError::MalformedCmsg {
            offset,
            fault: CmsgFault::BadTimespec {
                sec: ts.tv_sec,
                nsec: ts.tv_nsec,
            },
        });
    }
    Ok(ts)
}

fn payload_of(data: &[u8], expected: usize, offset: usize) -> Result<&[u8], TsError> {
    if data.len() != expected {
        return Err(TsError::MalformedCmsg {
            offset,
            fault: CmsgFault::PayloadSize {
                len: data.len(),
                expected,
            },
        });
    }
    Ok(data)
}

/// Walks the control buffer `control` (the first `msg_controllen` bytes) and returns the
/// receive timestamps it holds. Messages of other levels and types are skipped; a header or
/// length that does not fit, or a timestamp of the wrong size or value, is an error.
///
/// ```
/// use vtimestamp::socket::parse_control;
/// // One SCM_TIMESTAMPNS message (x86-64 / aarch64 layout): len, level, type, timespec.
/// let mut cmsg = Vec::new();
/// cmsg.extend_from_slice(&32usize.to_ne_bytes());
/// cmsg.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
/// cmsg.extend_from_slice(&libc::SCM_TIMESTAMPNS.to_ne_bytes());
/// cmsg.extend_from_slice(&1_700_000_000i64.to_ne_bytes());
/// cmsg.extend_from_slice(&5i64.to_ne_bytes());
/// let ts = parse_control(&cmsg)?.arrival().expect("a timestamp");
/// assert_eq!((ts.tv_sec, ts.tv_nsec), (1_700_000_000, 5));
/// assert!(parse_control(&cmsg[..20]).is_err());
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
pub fn parse_control(control: &[u8]) -> Result<ControlTimestamps, TsError> {
    let mut found = ControlTimestamps::default();
    let mut offset = 0;
    // glibc's CMSG_NXTHDR stops when no whole header is left; so do we.
    while control.len() - offset >= HDR_LEN {
        let hdr = &control[offset..offset + HDR_LEN];
        let (len_bytes, rest) = hdr.split_at(size_of::<libc::size_t>());
        let (level_bytes, type_bytes) = rest.split_at(size_of::<libc::c_int>());
        let len = read_int(len_bytes) as u64 as usize;
        let level = read_int(level_bytes) as i32;
        let kind = read_int(type_bytes) as i32;
        let available = control.len() - offset;
        if len < HDR_LEN {
            return Err(TsError::MalformedCmsg {
                offset,
                fault: CmsgFault::LengthBelowHeader(len),
            });
        }
        if len > available {
            return Err(TsError::MalformedCmsg {
                offset,
                fault: CmsgFault::LengthPastEnd { len, available },
            });
        }
        let data = &control[offset + align(HDR_LEN).min(len)..offset + len];
        if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
            let p = payload_of(data, TIMESPEC_LEN, offset)?;
            found.ns = Some(read_timespec(p, offset)?);
        } else if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPING {
            // struct scm_timestamping { struct timespec ts[3]; }: ts[0] is the software stamp.
            let p = payload_of(data, 3 * TIMESPEC_LEN, offset)?;
            let sw = read_timespec(&p[..TIMESPEC_LEN], offset)?;
            if sw != Timespec::default() {
                found.software = Some(sw);
            }
        }
        // Step to the next header; past the end means we are done.
        offset = offset.saturating_add(align(len)).min(control.len());
    }
    Ok(found)
}
