//! A ketama consistent-hash ring compatible with nginx's `hash $key consistent` (160 points per
//! weight unit, CRC32 of `host \0 port prev_hash`), built with `pingora-ketama`, which replays
//! a trace recorded from a real nginx in its own tests. It is the usual locality-preserving
//! alternative to URL hashing with subsets: no replication and no load awareness.

use core::time::Duration;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use pingora_ketama::{Bucket, Continuum};

use super::{Placement, Selection, check_len};
use crate::Error;
use vibra_hash::Error as HashError;
use vibra_hash::{Availability, dispatch_key};

/// An nginx-compatible ketama ring over servers named by their socket addresses.
///
/// Down servers are skipped by walking the ring to the next point of an available server
/// (pingora's health-aware walk). nginx itself walks at most 20 points before falling back to
/// round-robin; with all servers up both agree exactly.
///
/// ```
/// use std::time::Duration;
/// use vibra_baselines::{KetamaRing, Selection};
///
/// // pingora-ketama's sample recorded from nginx: two servers of weight 1.
/// let servers = ["127.0.0.1:7777".parse()?, "127.0.0.1:7778".parse()?];
/// let mut ring = KetamaRing::new(&servers)?;
/// assert_eq!(ring.server_for_key(b"/some/path"), Some(1));
/// assert_eq!(ring.server_for_key(b"/some/longer/path"), Some(0));
/// ring.set_available(1, false)?;
/// assert_eq!(ring.select(b"/some/path", &[0, 0], Duration::ZERO)?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KetamaRing {
    continuum: Continuum,
    /// Server index of each ring point, in ring order.
    owners: Box<[u32]>,
    up: Availability,
}

impl core::fmt::Debug for KetamaRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KetamaRing")
            .field("servers", &self.up.servers())
            .field("points", &self.owners.len())
            .finish_non_exhaustive()
    }
}

impl KetamaRing {
    /// nginx's ring is limited to 2^16 servers here (pingora-ketama stores 16-bit node ids).
    ///
    /// ```
    /// # use vibra_baselines::KetamaRing;
    /// assert!(KetamaRing::with_servers(KetamaRing::MAX_SERVERS + 1).is_err());
    /// ```
    pub const MAX_SERVERS: u32 = 1 << 16;

    /// A ring over `servers` (server `i` is `servers[i]`), each of weight 1.
    ///
    /// # Errors
    /// As [`KetamaRing::weighted`].
    ///
    /// ```
    /// # use vibra_baselines::KetamaRing;
    /// assert!(KetamaRing::new(&[]).is_err());
    /// ```
    pub fn new(servers: &[SocketAddr]) -> Result<Self, Error> {
        let weighted: Vec<(SocketAddr, u32)> = servers.iter().map(|&a| (a, 1)).collect();
        Self::weighted(&weighted)
    }

    /// A ring over `n` servers with made-up addresses `10.x.y.z:80` (server `i` at
    /// `10.0.0.0 + i + 1`), for comparisons where only the count matters.
    ///
    /// # Errors
    /// [`HashError::InvalidServerCount`] unless `1 <= n <= MAX_SERVERS`.
    ///
    /// ```
    /// # use vibra_baselines::{KetamaRing, Selection};
    /// assert_eq!(KetamaRing::with_servers(16)?.servers(), 16);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn with_servers(n: u32) -> Result<Self, Error> {
        if n == 0 || n > Self::MAX_SERVERS {
            return Err(HashError::InvalidServerCount {
                servers: n as usize,
                max: Self::MAX_SERVERS as usize,
            }
            .into());
        }
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)), 80))
            .collect();
        Self::new(&addrs)
    }

    /// A ring with nginx weights (`server addr weight=w`: 160 points per unit).
    ///
    /// # Errors
    /// [`HashError::InvalidServerCount`] for no server or more than `MAX_SERVERS`;
    /// [`Error::InvalidRingServer`] for a weight of 0, a duplicate address, or a total of
    /// more than 2^24 points.
    ///
    /// ```
    /// # use vibra_baselines::KetamaRing;
    /// let a = "10.0.0.1:443".parse()?;
    /// assert!(KetamaRing::weighted(&[(a, 100)]).is_ok());
    /// assert!(KetamaRing::weighted(&[(a, 1), (a, 1)]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn weighted(servers: &[(SocketAddr, u32)]) -> Result<Self, Error> {
        let n = u32::try_from(servers.len())
            .ok()
            .filter(|n| (1..=Self::MAX_SERVERS).contains(n))
            .ok_or(HashError::InvalidServerCount {
                servers: servers.len(),
                max: Self::MAX_SERVERS as usize,
            })?;
        let mut index = HashMap::with_capacity(servers.len());
        let mut total: u64 = 0;
        for (i, &(addr, weight)) in servers.iter().enumerate() {
            let server = i as u32;
            if weight == 0 {
                return Err(Error::InvalidRingServer {
                    server,
                    reason: "weight is 0",
                });
            }
            total += u64::from(weight) * 160;
            if total > 1 << 24 {
                return Err(Error::InvalidRingServer {
                    server,
                    reason: "the ring would exceed 2^24 points",
                });
            }
            if index.insert(addr, server).is_some() {
                return Err(Error::InvalidRingServer {
                    server,
                    reason: "duplicate address",
                });
            }
        }
        let buckets: Vec<Bucket> = servers.iter().map(|&(a, w)| Bucket::new(a, w)).collect();
        let continuum = Continuum::new(&buckets);
        // Resolve each ring point to its server once, so a lookup is a binary search plus one
        // array read. get_addr advances the index and wraps to 0 after the last point.
        let mut owners = Vec::with_capacity(total as usize);
        let mut at = 0usize;
        while let Some(addr) = continuum.get_addr(&mut at) {
            owners.push(index[addr]);
            if at == 0 {
                break;
            }
        }
        Ok(KetamaRing {
            continuum,
            owners: owners.into_boxed_slice(),
            up: Availability::all_up(n)?,
        })
    }

    /// The server nginx would choose for a raw hash key (no dispatch-key extraction: nginx
    /// hashes whatever `$key` expands to), skipping down servers; `None` if all are down.
    ///
    /// ```
    /// # use vibra_baselines::KetamaRing;
    /// let ring = KetamaRing::with_servers(3)?;
    /// assert!(ring.server_for_key(b"/a").unwrap() < 3);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    #[inline]
    pub fn server_for_key(&self, key: &[u8]) -> Option<u32> {
        let start = self.continuum.node_idx(key);
        let (tail, head) = (&self.owners[start..], &self.owners[..start]);
        tail.iter().chain(head).copied().find(|&s| self.up.is_up(s))
    }

    /// The number of points on the ring (160 per weight unit, minus CRC32 collisions).
    ///
    /// ```
    /// # use vibra_baselines::KetamaRing;
    /// assert!(KetamaRing::with_servers(4)?.points() <= 640);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn points(&self) -> usize {
        self.owners.len()
    }
}

impl Selection for KetamaRing {
    fn name(&self) -> &'static str {
        "ketama"
    }

    fn servers(&self) -> u32 {
        self.up.servers()
    }

    #[inline]
    fn select(&mut self, target: &[u8], loads: &[u32], _now: Duration) -> Result<u32, Error> {
        check_len(loads.len(), self.up.servers())?;
        self.server_for_key(dispatch_key(target))
            .ok_or(HashError::NoServerAvailable.into())
    }

    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error> {
        Ok(self.up.set(server, available)?)
    }
}

impl Placement for KetamaRing {
    fn holders(&self, target: &[u8], out: &mut Vec<u32>) -> Result<(), Error> {
        out.push(
            self.server_for_key(dispatch_key(target))
                .ok_or(HashError::NoServerAvailable)?,
        );
        Ok(())
    }
}
