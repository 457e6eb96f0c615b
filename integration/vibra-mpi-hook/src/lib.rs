//! Reader of the wait records that the Vibra PMPI hook (`c/vibra_mpi_hook.c`) sends to a local
//! Unix datagram socket, and the per-rank upstream sets DPS derives from them.
//!
//! The hook times every blocking receive, wait and collective of an MPI rank and reports, per
//! flush interval, "rank i waited X ns on rank j" ([`WaitRecord`], the 64-byte little-endian
//! layout of `c/vibra_mpi_wait.h`, version 1). A rank's upstream VMs (dissertation 5.4.4) are the
//! peers it waited on; [`Upstreams`] keeps them per (job, rank) with expiry, through
//! [`dps_core::UpstreamTracker`].
//!
//! ```
//! use vibra_mpi_hook::{Upstreams, UpstreamConfig, WaitKind, WaitRecord};
//! let r = WaitRecord {
//!     kind: WaitKind::PointToPoint, job: 7, pid: 100, rank: 2, world_size: 4, peer: 1,
//!     waits: 5, wait_ns: 40_000_000, start_ns: 0, end_ns: 100_000_000,
//! };
//! let bytes = r.encode();
//! let back = WaitRecord::decode(&bytes).unwrap();
//! assert_eq!(back, r);
//! let mut ups = Upstreams::new(UpstreamConfig::default()).unwrap();
//! ups.ingest(&back);
//! assert_eq!(ups.upstreams(7, 2, 0.5), vec![1]);
//! ```
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use dps_core::{UpstreamTracker, WakeUp};

/// Length of one record on the wire (`VIBRA_MPI_WAIT_LEN`).
pub const RECORD_LEN: usize = 64;
/// First four bytes of every record, "VMPW" (`VIBRA_MPI_WAIT_MAGIC`, little-endian u32).
pub const MAGIC: u32 = 0x5750_4D56;
/// The one record version this reader understands (`VIBRA_MPI_WAIT_VERSION`).
pub const VERSION: u16 = 1;

/// Which kind of MPI call the waits were in.
///
/// ```
/// assert_ne!(vibra_mpi_hook::WaitKind::PointToPoint, vibra_mpi_hook::WaitKind::Collective);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitKind {
    /// A receive, wait or sendrecv: `peer` sent the awaited message (wire value 0).
    PointToPoint,
    /// A collective: MPI does not say who arrived last, so the hook attributes the wait to
    /// every other participant (to the root for a broadcast or scatter) (wire value 1).
    Collective,
}

/// One decoded wait record: during `[start_ns, end_ns)` (the host's `CLOCK_MONOTONIC`), rank
/// `rank` of job `job` waited `wait_ns` in `waits` blocking calls on rank `peer`.
///
/// ```
/// # use vibra_mpi_hook::*;
/// let r = WaitRecord { kind: WaitKind::Collective, job: 1, pid: 2, rank: 0, world_size: 2,
///     peer: 1, waits: 1, wait_ns: 10, start_ns: 5, end_ns: 6 };
/// assert_eq!(WaitRecord::decode(&r.encode()), Ok(r));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitRecord {
    /// The kind of call.
    pub kind: WaitKind,
    /// FNV-1a 64 of the job id (`VIBRA_MPI_JOB`, else `PMIX_NAMESPACE`, else "").
    pub job: u64,
    /// Process id of the waiting rank.
    pub pid: u32,
    /// Rank of the waiter in `MPI_COMM_WORLD`.
    pub rank: u32,
    /// Size of `MPI_COMM_WORLD`.
    pub world_size: u32,
    /// Rank waited on, in `MPI_COMM_WORLD`.
    pub peer: u32,
    /// Number of blocking calls that waited in the interval (at least 1).
    pub waits: u32,
    /// Total time those calls waited, nanoseconds.
    pub wait_ns: u64,
    /// Interval start, nanoseconds of `CLOCK_MONOTONIC`.
    pub start_ns: u64,
    /// Interval end, nanoseconds of `CLOCK_MONOTONIC`.
    pub end_ns: u64,
}

/// Why bytes are not a valid version-1 record. Decoding never panics on any input.
///
/// ```
/// assert_eq!(vibra_mpi_hook::WaitRecord::decode(&[0u8; 3]),
///            Err(vibra_mpi_hook::DecodeError::Length(3)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A datagram of another length than 64 bytes.
    #[error("wait record must be 64 bytes, got {0}")]
    Length(usize),
    /// The first four bytes are not "VMPW".
    #[error("bad magic {0:#010x}")]
    Magic(u32),
    /// A version this reader does not know.
    #[error("unsupported wait record version {0}")]
    Version(u16),
    /// A kind other than 0 or 1.
    #[error("unknown wait kind {0}")]
    Kind(u16),
    /// Reserved bytes not zero.
    #[error("reserved field is {0}, must be 0")]
    Reserved(u32),
    /// rank or peer not below world_size, peer == rank, waits == 0 or end before start.
    #[error("inconsistent record: {0}")]
    Inconsistent(&'static str),
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl WaitRecord {
    /// Parses one datagram (exactly [`RECORD_LEN`] bytes), checking magic, version, kind,
    /// reserved bytes and the consistency of the fields.
    ///
    /// ```
    /// # use vibra_mpi_hook::*;
    /// let mut b = [0u8; RECORD_LEN];
    /// b[..4].copy_from_slice(b"VMPW");
    /// b[4] = 2; // version 2
    /// assert_eq!(WaitRecord::decode(&b), Err(DecodeError::Version(2)));
    /// ```
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != RECORD_LEN {
            return Err(DecodeError::Length(b.len()));
        }
        let magic = le_u32(b, 0);
        if magic != MAGIC {
            return Err(DecodeError::Magic(magic));
        }
        let version = le_u16(b, 4);
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = match le_u16(b, 6) {
            0 => WaitKind::PointToPoint,
            1 => WaitKind::Collective,
            k => return Err(DecodeError::Kind(k)),
        };
        let reserved = le_u32(b, 36);
        if reserved != 0 {
            return Err(DecodeError::Reserved(reserved));
        }
        let r = WaitRecord {
            kind,
            job: le_u64(b, 8),
            pid: le_u32(b, 16),
            rank: le_u32(b, 20),
            world_size: le_u32(b, 24),
            peer: le_u32(b, 28),
            waits: le_u32(b, 32),
            wait_ns: le_u64(b, 40),
            start_ns: le_u64(b, 48),
            end_ns: le_u64(b, 56),
        };
        if r.rank >= r.world_size || r.peer >= r.world_size {
            return Err(DecodeError::Inconsistent(
                "rank or peer not below world_size",
            ));
        }
        if r.peer == r.rank {
            return Err(DecodeError::Inconsistent("a rank waiting on itself"));
        }
        if r.waits == 0 {
            return Err(DecodeError::Inconsistent("zero waits"));
        }
        if r.end_ns < r.start_ns {
            return Err(DecodeError::Inconsistent("interval ends before it starts"));
        }
        Ok(r)
    }

    /// The 64-byte wire form (what `vibra_mpi_wait_encode` writes).
    ///
    /// ```
    /// # use vibra_mpi_hook::*;
    /// let r = WaitRecord { kind: WaitKind::PointToPoint, job: 0, pid: 1, rank: 1,
    ///     world_size: 2, peer: 0, waits: 1, wait_ns: 1, start_ns: 0, end_ns: 0 };
    /// assert_eq!(&r.encode()[..4], b"VMPW");
    /// ```
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        let kind: u16 = match self.kind {
            WaitKind::PointToPoint => 0,
            WaitKind::Collective => 1,
        };
        b[6..8].copy_from_slice(&kind.to_le_bytes());
        b[8..16].copy_from_slice(&self.job.to_le_bytes());
        b[16..20].copy_from_slice(&self.pid.to_le_bytes());
        b[20..24].copy_from_slice(&self.rank.to_le_bytes());
        b[24..28].copy_from_slice(&self.world_size.to_le_bytes());
        b[28..32].copy_from_slice(&self.peer.to_le_bytes());
        b[32..36].copy_from_slice(&self.waits.to_le_bytes());
        b[40..48].copy_from_slice(&self.wait_ns.to_le_bytes());
        b[48..56].copy_from_slice(&self.start_ns.to_le_bytes());
        b[56..64].copy_from_slice(&self.end_ns.to_le_bytes());
        b
    }
}

/// FNV-1a 64 of a job id, as the hook computes the record's `job` field.
///
/// ```
/// assert_eq!(vibra_mpi_hook::job_hash(""), 0xcbf2_9ce4_8422_2325);
/// ```
pub fn job_hash(job: &str) -> u64 {
    job.bytes().fold(0xcbf2_9ce4_8422_2325, |h, c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How records become upstream entries.
///
/// ```
/// let c = vibra_mpi_hook::UpstreamConfig::default();
/// assert_eq!(c.ttl_s, 10.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpstreamConfig {
    /// An upstream expires this many seconds after the end of the last record naming it (the
    /// dissertation's "old entries expire after a certain period": two 5 s DPS periods).
    pub ttl_s: f64,
    /// A record makes its peer an upstream only if it waited at least this long in total
    /// (filters the microseconds a message takes to arrive from a peer that is not behind).
    pub min_wait_ns: u64,
    /// Whether collective waits (attributed to every participant) count.
    pub collectives: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            ttl_s: 10.0,
            min_wait_ns: 1_000_000,
            collectives: false,
        }
    }
}

/// A configuration the tracker cannot use.
///
/// ```
/// let mut c = vibra_mpi_hook::UpstreamConfig::default();
/// c.ttl_s = -1.0;
/// assert!(vibra_mpi_hook::Upstreams::new(c).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid upstream configuration: {0}")]
pub struct ConfigError(#[from] dps_core::DpsError);

/// Each (job, rank)'s upstream set: the peers it waited on recently.
///
/// ```
/// # use vibra_mpi_hook::*;
/// let mut u = Upstreams::new(UpstreamConfig { ttl_s: 1.0, ..Default::default() }).unwrap();
/// u.ingest(&WaitRecord { kind: WaitKind::PointToPoint, job: 1, pid: 9, rank: 3,
///     world_size: 4, peer: 2, waits: 2, wait_ns: 5_000_000, start_ns: 0, end_ns: 1_000_000_000 });
/// assert_eq!(u.upstreams(1, 3, 1.5), vec![2]);
/// assert!(u.upstreams(1, 3, 2.5).is_empty()); // expired
/// ```
#[derive(Debug, Clone)]
pub struct Upstreams {
    config: UpstreamConfig,
    ranks: HashMap<(u64, u32), UpstreamTracker<u32>>,
}

impl Upstreams {
    /// An empty set of trackers; errors if `ttl_s` is not finite and positive.
    ///
    /// ```
    /// assert!(vibra_mpi_hook::Upstreams::new(Default::default()).is_ok());
    /// ```
    pub fn new(config: UpstreamConfig) -> Result<Self, ConfigError> {
        UpstreamTracker::<u32>::new(config.ttl_s)?;
        Ok(Self {
            config,
            ranks: HashMap::new(),
        })
    }

    /// Takes one record into account (its time is `end_ns`, in seconds of `CLOCK_MONOTONIC`).
    ///
    /// ```
    /// # use vibra_mpi_hook::*;
    /// let mut u = Upstreams::new(Default::default()).unwrap();
    /// u.ingest(&WaitRecord { kind: WaitKind::PointToPoint, job: 1, pid: 9, rank: 3,
    ///     world_size: 4, peer: 2, waits: 2, wait_ns: 5_000, start_ns: 0, end_ns: 0 });
    /// assert!(u.upstreams(1, 3, 0.0).is_empty()); // 5 us: below min_wait_ns
    /// ```
    pub fn ingest(&mut self, r: &WaitRecord) {
        if r.wait_ns < self.config.min_wait_ns
            || (r.kind == WaitKind::Collective && !self.config.collectives)
        {
            return;
        }
        let ttl = self.config.ttl_s;
        let t = self
            .ranks
            .entry((r.job, r.rank))
            .or_insert_with(|| UpstreamTracker::new(ttl).expect("ttl validated in Upstreams::new"));
        t.observe(WakeUp {
            sender: r.peer,
            receiver_was_blocked: true,
            at: r.end_ns as f64 * 1e-9,
        });
    }

    /// The fresh upstreams of `rank` of `job` at `now_s` (seconds of `CLOCK_MONOTONIC`), in
    /// first-seen order.
    ///
    /// ```
    /// let u = vibra_mpi_hook::Upstreams::new(Default::default()).unwrap();
    /// assert!(u.upstreams(0, 0, 0.0).is_empty());
    /// ```
    pub fn upstreams(&self, job: u64, rank: u32, now_s: f64) -> Vec<u32> {
        self.ranks
            .get(&(job, rank))
            .map(|t| t.upstreams(now_s).collect())
            .unwrap_or_default()
    }

    /// Drops expired entries and ranks left with none.
    ///
    /// ```
    /// let mut u = vibra_mpi_hook::Upstreams::new(Default::default()).unwrap();
    /// u.expire(100.0);
    /// ```
    pub fn expire(&mut self, now_s: f64) {
        self.ranks.retain(|_, t| {
            t.expire(now_s);
            t.count(now_s) > 0
        });
    }
}

/// What one [`WaitListener::drain`] did.
///
/// ```
/// assert_eq!(vibra_mpi_hook::Drained::default().accepted, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Valid records, handed to the caller.
    pub accepted: u64,
    /// Datagrams that were not valid records (counted, logged by the caller, nothing changed).
    pub rejected: u64,
}

/// The local end of the hook's socket: a bound Unix datagram socket whose pending records
/// [`drain`](Self::drain) hands to the caller (typically [`Upstreams::ingest`]). The socket
/// file is removed on drop.
///
/// ```
/// use vibra_mpi_hook::*;
/// let path = std::env::temp_dir().join(format!("vibra-mpi-doc-{}.sock", std::process::id()));
/// let mut l = WaitListener::bind(&path).unwrap();
/// let r = WaitRecord { kind: WaitKind::PointToPoint, job: 1, pid: 9, rank: 1, world_size: 2,
///     peer: 0, waits: 1, wait_ns: 2_000_000, start_ns: 0, end_ns: 1 };
/// let tx = std::os::unix::net::UnixDatagram::unbound().unwrap();
/// tx.send_to(&r.encode(), &path).unwrap();
/// tx.send_to(b"junk", &path).unwrap();
/// let mut ups = Upstreams::new(Default::default()).unwrap();
/// let d = l.drain(|r| ups.ingest(r)).unwrap();
/// assert_eq!((d.accepted, d.rejected), (1, 1));
/// assert_eq!(l.last_rejection(), Some(DecodeError::Length(4)));
/// assert_eq!(ups.upstreams(1, 1, 0.0), vec![0]);
/// ```
#[derive(Debug)]
pub struct WaitListener {
    sock: UnixDatagram,
    path: PathBuf,
    last_rejection: Option<DecodeError>,
}

impl WaitListener {
    /// Binds a non-blocking datagram socket at `path` (which must not exist).
    ///
    /// ```
    /// assert!(vibra_mpi_hook::WaitListener::bind("/nonexistent-dir/x.sock").is_err());
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let sock = UnixDatagram::bind(&path)?;
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock,
            path,
            last_rejection: None,
        })
    }

    /// Reads every pending datagram: each valid record goes to `on_record`, other datagrams are
    /// counted as rejected (the reason of the last one is kept for the caller's log) and change
    /// nothing. Never blocks.
    ///
    /// ```
    /// # use vibra_mpi_hook::*;
    /// let path = std::env::temp_dir().join(format!("vibra-mpi-doc2-{}.sock", std::process::id()));
    /// let mut l = WaitListener::bind(&path).unwrap();
    /// let mut ups = Upstreams::new(Default::default()).unwrap();
    /// assert_eq!(l.drain(|r| ups.ingest(r)).unwrap(), Drained::default());
    /// ```
    pub fn drain(&mut self, mut on_record: impl FnMut(&WaitRecord)) -> io::Result<Drained> {
        let mut d = Drained::default();
        // One byte more than a record, so a longer datagram shows as a wrong length.
        let mut buf = [0u8; RECORD_LEN + 1];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => match WaitRecord::decode(&buf[..n]) {
                    Ok(r) => {
                        on_record(&r);
                        d.accepted += 1;
                    }
                    Err(e) => {
                        self.last_rejection = Some(e);
                        d.rejected += 1;
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(d),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Why the last rejected datagram was rejected, if any was.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("vibra-mpi-doc3-{}.sock", std::process::id()));
    /// assert_eq!(vibra_mpi_hook::WaitListener::bind(&path).unwrap().last_rejection(), None);
    /// ```
    pub fn last_rejection(&self) -> Option<DecodeError> {
        self.last_rejection
    }

    /// The socket's path (what the ranks get as `VIBRA_MPI_SOCKET`).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("vibra-mpi-doc4-{}.sock", std::process::id()));
    /// assert_eq!(vibra_mpi_hook::WaitListener::bind(&path).unwrap().path(), path);
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WaitListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WaitRecord {
        WaitRecord {
            kind: WaitKind::PointToPoint,
            job: 0x0102_0304_0506_0708,
            pid: 0x1122_3344,
            rank: 3,
            world_size: 4,
            peer: 2,
            waits: 9,
            wait_ns: 0xA0B0_C0D0_E0F0,
            start_ns: 1,
            end_ns: 2,
        }
    }

    #[test]
    fn layout_is_little_endian_at_the_documented_offsets() {
        let b = sample().encode();
        assert_eq!(&b[0..8], &[b'V', b'M', b'P', b'W', 1, 0, 0, 0]);
        assert_eq!(&b[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[16..20], &[0x44, 0x33, 0x22, 0x11]);
        assert_eq!(
            &b[20..36],
            &[3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0]
        );
        assert_eq!(&b[36..40], &[0; 4]);
        assert_eq!(&b[40..46], &[0xF0, 0xE0, 0xD0, 0xC0, 0xB0, 0xA0]);
        assert_eq!(b[48], 1);
        assert_eq!(b[56], 2);
    }

    #[test]
    fn every_bad_field_is_rejected() {
        let good = sample().encode();
        let cases: [(usize, u8, DecodeError); 6] = [
            (0, b'X', DecodeError::Magic(0x5750_4D58)),
            (4, 2, DecodeError::Version(2)),
            (6, 2, DecodeError::Kind(2)),
            (36, 1, DecodeError::Reserved(1)),
            (28, 3, DecodeError::Inconsistent("a rank waiting on itself")),
            (32, 0, DecodeError::Inconsistent("zero waits")),
        ];
        for (at, v, err) in cases {
            let mut b = good;
            b[at] = v;
            assert_eq!(WaitRecord::decode(&b), Err(err), "byte {at} = {v}");
        }
        let mut b = good;
        b[24] = 3; // world_size 3 with rank 3
        assert!(matches!(
            WaitRecord::decode(&b),
            Err(DecodeError::Inconsistent(_))
        ));
        let mut b = good;
        b[48] = 3; // start after end
        assert!(matches!(
            WaitRecord::decode(&b),
            Err(DecodeError::Inconsistent(_))
        ));
        assert_eq!(
            WaitRecord::decode(&good[..63]),
            Err(DecodeError::Length(63))
        );
    }

    #[test]
    fn collectives_count_only_when_configured() {
        let mut r = sample();
        r.kind = WaitKind::Collective;
        r.wait_ns = 10_000_000;
        let mut off = Upstreams::new(UpstreamConfig::default()).unwrap();
        off.ingest(&r);
        assert!(off.upstreams(r.job, 3, 0.0).is_empty());
        let mut on = Upstreams::new(UpstreamConfig {
            collectives: true,
            ..Default::default()
        })
        .unwrap();
        on.ingest(&r);
        assert_eq!(on.upstreams(r.job, 3, 0.0), vec![2]);
        on.expire(100.0);
        assert!(on.ranks.is_empty());
    }

    #[test]
    fn job_hash_matches_fnv1a_reference() {
        // FNV-1a 64 test vector: "a" -> 0xaf63dc4c8601ec8c.
        assert_eq!(job_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
