//! The content-unaware baselines of the dissertation's evaluation (section 3.5): round-robin
//! and least-connection. They hold no per-object state and give no locality.

use core::time::Duration;

use super::{Selection, check_len};
use crate::Error;
use vibra_hash::{Availability, Error as HashError};

/// Round-robin over the available servers: each request goes to the next available server after
/// the previous choice, whatever its load.
///
/// ```
/// use std::time::Duration;
/// use vibra_baselines::{RoundRobin, Selection};
///
/// let mut rr = RoundRobin::new(3)?;
/// rr.set_available(1, false)?;
/// let picks: Vec<u32> = (0..4).map(|_| rr.select(b"/", &[0; 3], Duration::ZERO).unwrap()).collect();
/// assert_eq!(picks, vec![0, 2, 0, 2]);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RoundRobin {
    up: Availability,
    next: u32,
}

impl RoundRobin {
    /// A round-robin over `servers` servers, all available.
    ///
    /// # Errors
    /// [`HashError::InvalidServerCount`] unless `1 <= servers <= Dispatcher::MAX_SERVERS`.
    ///
    /// ```
    /// # use vibra_baselines::RoundRobin;
    /// assert!(RoundRobin::new(0).is_err());
    /// ```
    pub fn new(servers: u32) -> Result<Self, Error> {
        Ok(RoundRobin {
            up: Availability::all_up(servers)?,
            next: 0,
        })
    }
}

impl Selection for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn servers(&self) -> u32 {
        self.up.servers()
    }

    #[inline]
    fn select(&mut self, _target: &[u8], loads: &[u32], _now: Duration) -> Result<u32, Error> {
        let n = self.up.servers();
        check_len(loads.len(), n)?;
        let s = self
            .up
            .iter_from(self.next)
            .next()
            .ok_or(HashError::NoServerAvailable)?;
        self.next = if s + 1 == n { 0 } else { s + 1 };
        Ok(s)
    }

    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error> {
        Ok(self.up.set(server, available)?)
    }
}

/// Least-connection: the available server with the fewest active connections, ties to the
/// lowest index.
///
/// ```
/// use std::time::Duration;
/// use vibra_baselines::{LeastConnection, Selection};
///
/// let mut lc = LeastConnection::new(3)?;
/// assert_eq!(lc.select(b"/", &[2, 1, 1], Duration::ZERO)?, 1);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LeastConnection {
    up: Availability,
}

impl LeastConnection {
    /// Least-connection over `servers` servers, all available.
    ///
    /// # Errors
    /// [`HashError::InvalidServerCount`] unless `1 <= servers <= Dispatcher::MAX_SERVERS`.
    ///
    /// ```
    /// # use vibra_baselines::LeastConnection;
    /// assert!(LeastConnection::new(16).is_ok());
    /// ```
    pub fn new(servers: u32) -> Result<Self, Error> {
        Ok(LeastConnection {
            up: Availability::all_up(servers)?,
        })
    }
}

impl Selection for LeastConnection {
    fn name(&self) -> &'static str {
        "least-connection"
    }

    fn servers(&self) -> u32 {
        self.up.servers()
    }

    #[inline]
    fn select(&mut self, _target: &[u8], loads: &[u32], _now: Duration) -> Result<u32, Error> {
        check_len(loads.len(), self.up.servers())?;
        self.up
            .iter()
            .min_by_key(|&s| loads[s as usize])
            .ok_or_else(|| HashError::NoServerAvailable.into())
    }

    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error> {
        Ok(self.up.set(server, available)?)
    }
}
