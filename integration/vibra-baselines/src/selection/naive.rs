//! The dissertation's *naive* failure handling (section 4.3.3, SPEC section 3): after a change,
//! re-partition the key space into M = (available servers) contiguous equal ranges,
//! `range = floor(h * M / 2^64)`, handed to the survivors in server order; range j is served by
//! survivors j, j+1, ..., j+R-1 (cyclic among survivors). It exists to be compared against the
//! failure-skip rule: it moves far more of the key space when a server fails.

use core::time::Duration;

use super::{Placement, Selection, check_len};
use crate::Error;
use vibra_hash::Error as HashError;
use vibra_hash::{Dispatcher, HashKind, dispatch_key};

/// The naive re-partitioning baseline.
///
/// The range formula needs a hash spread over all 64 bits: with [`HashKind::Charsum`] (sums are
/// small numbers) every key falls into range 0, which is faithful to the formula but useless;
/// use it with `Fast`, `Md5` or `Sha1`.
///
/// ```
/// use std::time::Duration;
/// use vibra_hash::HashKind;
/// use vibra_baselines::{NaiveRepartition, Placement, Selection};
///
/// let mut naive = NaiveRepartition::new(4, 1, HashKind::Md5)?;
/// let mut before = Vec::new();
/// naive.holders(b"/", &mut before)?;
/// // MD5("/") starts 0x6666..., so it falls in range floor(0.4 * 4) = 1.
/// assert_eq!(before, vec![1]);
/// naive.set_available(0, false)?;
/// let mut after = Vec::new();
/// naive.holders(b"/", &mut after)?;
/// // Now 3 ranges over survivors [1, 2, 3]: floor(0.4 * 3) = 1 -> server 2.
/// assert_eq!(after, vec![2]);
/// assert_eq!(naive.select(b"/", &[0; 4], Duration::ZERO)?, 2);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct NaiveRepartition {
    servers: u32,
    replication: u32,
    hash: HashKind,
    /// Available servers in ascending order: the survivor order of the ranges.
    alive: Vec<u32>,
}

impl NaiveRepartition {
    /// The baseline over `servers` servers, all available, replication `replication`.
    ///
    /// # Errors
    /// As [`Dispatcher::new`](vibra_hash::Dispatcher::new).
    ///
    /// ```
    /// # use vibra_hash::HashKind;
    /// # use vibra_baselines::NaiveRepartition;
    /// assert!(NaiveRepartition::new(10, 0, HashKind::Fast).is_err());
    /// ```
    pub fn new(servers: u32, replication: u32, hash: HashKind) -> Result<Self, Error> {
        // Same bounds as the dispatcher it is compared with.
        Dispatcher::new(servers, replication, hash)?;
        Ok(NaiveRepartition {
            servers,
            replication,
            hash,
            alive: (0..servers).collect(),
        })
    }

    /// The range `floor(h * M / 2^64)` of a dispatch key among `ranges` ranges.
    ///
    /// ```
    /// # use vibra_hash::HashKind;
    /// # use vibra_baselines::NaiveRepartition;
    /// assert_eq!(NaiveRepartition::range_of(HashKind::Md5, b"/", 10), 4); // 0x6666cd.. > 0.4 * 2^64
    /// ```
    #[inline]
    pub fn range_of(hash: HashKind, key: &[u8], ranges: u32) -> u32 {
        ((u128::from(hash.hash64(key)) * u128::from(ranges)) >> 64) as u32
    }

    /// The serving servers of a target now, in subset order.
    #[inline]
    fn members(&self, target: &[u8]) -> Result<impl Iterator<Item = u32> + '_, Error> {
        let m = self.alive.len() as u32;
        if m == 0 {
            return Err(HashError::NoServerAvailable.into());
        }
        let j = Self::range_of(self.hash, dispatch_key(target), m);
        let r = self.replication.min(m);
        Ok((0..r).map(move |t| self.alive[((j + t) % m) as usize]))
    }
}

impl Selection for NaiveRepartition {
    fn name(&self) -> &'static str {
        "naive-repartition"
    }

    fn servers(&self) -> u32 {
        self.servers
    }

    #[inline]
    fn select(&mut self, target: &[u8], loads: &[u32], _now: Duration) -> Result<u32, Error> {
        check_len(loads.len(), self.servers)?;
        self.members(target)?
            .min_by_key(|&s| loads[s as usize])
            .ok_or_else(|| HashError::NoServerAvailable.into())
    }

    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error> {
        if server >= self.servers {
            return Err(HashError::ServerOutOfRange {
                server,
                servers: self.servers,
            }
            .into());
        }
        match (self.alive.binary_search(&server), available) {
            (Err(at), true) => self.alive.insert(at, server),
            (Ok(at), false) => {
                self.alive.remove(at);
            }
            _ => {}
        }
        Ok(())
    }
}

impl Placement for NaiveRepartition {
    fn holders(&self, target: &[u8], out: &mut Vec<u32>) -> Result<(), Error> {
        out.extend(self.members(target)?);
        Ok(())
    }
}
