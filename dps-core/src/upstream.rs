//! Upstream inference (section 5.4.4). The guest kernel reports a wake-up whenever a packet
//! wakes a receiving process; only wake-ups of a *blocked* receiver say "the sender held me
//! back". The tracker keeps the senders of such wake-ups, each entry expiring `ttl` seconds
//! after it was last seen, and [`TrafficFilter`] drops loopback, infrastructure services
//! (DHCP, NIS, NFS, NTP, DNS) and the scheduler's own control traffic before they count.

use std::net::{IpAddr, SocketAddr};

use crate::error::DpsError;

/// One wake-up report: who sent the packet, whether the receiver was blocked, and when.
///
/// ```
/// let w = dps_core::WakeUp { sender: 3u32, receiver_was_blocked: true, at: 1.5 };
/// assert!(w.receiver_was_blocked);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WakeUp<K> {
    /// The peer that sent the waking packet.
    pub sender: K,
    /// The receiving process was neither running nor runnable.
    pub receiver_was_blocked: bool,
    /// Seconds on the tracker's clock.
    pub at: f64,
}

/// The current upstream VMs of one VM, with expiring entries.
///
/// ```
/// use dps_core::{UpstreamTracker, WakeUp};
/// let mut t = UpstreamTracker::new(10.0).unwrap();
/// t.observe(WakeUp { sender: 7u32, receiver_was_blocked: true, at: 0.0 });
/// t.observe(WakeUp { sender: 8u32, receiver_was_blocked: false, at: 0.0 }); // not a dependency
/// assert_eq!(t.upstreams(5.0).collect::<Vec<_>>(), vec![7]);
/// assert_eq!(t.upstreams(11.0).count(), 0); // expired
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTracker<K> {
    ttl: f64,
    entries: Vec<(K, f64)>,
}

impl<K: Copy + PartialEq> UpstreamTracker<K> {
    /// A tracker whose entries expire `ttl` seconds after last seen. Errors unless finite, > 0.
    ///
    /// ```
    /// assert!(dps_core::UpstreamTracker::<u32>::new(0.0).is_err());
    /// ```
    pub fn new(ttl: f64) -> Result<Self, DpsError> {
        if !(ttl.is_finite() && ttl > 0.0) {
            return Err(DpsError::InvalidParameter {
                name: "ttl",
                value: ttl,
            });
        }
        Ok(Self {
            ttl,
            entries: Vec::new(),
        })
    }

    /// Records a wake-up; only a blocked receiver makes the sender an upstream.
    ///
    /// ```
    /// # use dps_core::*;
    /// let mut t = UpstreamTracker::new(1.0).unwrap();
    /// t.observe(WakeUp { sender: 1u8, receiver_was_blocked: true, at: 0.0 });
    /// assert_eq!(t.count(0.5), 1);
    /// ```
    pub fn observe(&mut self, w: WakeUp<K>) {
        if !w.receiver_was_blocked || !w.at.is_finite() {
            return;
        }
        match self.entries.iter_mut().find(|(k, _)| *k == w.sender) {
            Some(e) => e.1 = e.1.max(w.at),
            None => self.entries.push((w.sender, w.at)),
        }
    }

    /// The upstreams still fresh at `now`, in first-seen order.
    ///
    /// ```
    /// # use dps_core::*;
    /// let t = UpstreamTracker::<u8>::new(1.0).unwrap();
    /// assert_eq!(t.upstreams(0.0).count(), 0);
    /// ```
    pub fn upstreams(&self, now: f64) -> impl Iterator<Item = K> + '_ {
        let ttl = self.ttl;
        self.entries
            .iter()
            .filter(move |(_, seen)| now - seen <= ttl)
            .map(|(k, _)| *k)
    }

    /// P: the number of fresh upstreams at `now`.
    ///
    /// ```
    /// # use dps_core::*;
    /// let t = UpstreamTracker::<u8>::new(1.0).unwrap();
    /// assert_eq!(t.count(0.0), 0);
    /// ```
    pub fn count(&self, now: f64) -> u32 {
        self.upstreams(now).count() as u32
    }

    /// Drops expired entries.
    ///
    /// ```
    /// # use dps_core::*;
    /// let mut t = UpstreamTracker::new(1.0).unwrap();
    /// t.observe(WakeUp { sender: 1u8, receiver_was_blocked: true, at: 0.0 });
    /// t.expire(5.0);
    /// assert_eq!(t.count(0.0), 0);
    /// ```
    pub fn expire(&mut self, now: f64) {
        let ttl = self.ttl;
        self.entries.retain(|(_, seen)| now - seen <= ttl);
    }

    /// Forgets everything (e.g. after a migration).
    ///
    /// ```
    /// # use dps_core::*;
    /// let mut t = UpstreamTracker::new(1.0).unwrap();
    /// t.observe(WakeUp { sender: 1u8, receiver_was_blocked: true, at: 0.0 });
    /// t.clear();
    /// assert_eq!(t.count(0.0), 0);
    /// ```
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// How often one VM is woken from blocking by its peers, in wake-ups per second: for a BSP
/// program every iteration ends in a barrier that wakes each VM that got there first, so this
/// is the program's measured iteration rate (its *pace*), from the same wake-up reports the
/// [`UpstreamTracker`] reads. A window runs from one [`WakeRate::close`] to the next and spans
/// its wake-ups: rate = (wake-ups - 1) / (last - first) over the wake-ups since the last
/// counted one, so a steady pace reads exactly whatever the window length. A window with fewer
/// than two wake-ups (an iteration longer than the window) keeps the last rate and carries
/// its wake-ups into the next window.
///
/// ```
/// let mut r = dps_core::WakeRate::default();
/// for k in 0..6 {
///     r.observe(0.1 + 0.2 * f64::from(k)); // a wake-up every 0.2 s
/// }
/// assert!((r.close().unwrap() - 5.0).abs() < 1e-9);
/// assert!((r.close().unwrap() - 5.0).abs() < 1e-9); // no new wake-up: the last rate stays
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WakeRate {
    first: f64,
    last: f64,
    count: u32,
    rate: Option<f64>,
}

impl WakeRate {
    /// Records a wake-up of the blocked VM at `at` seconds (times must not go backwards).
    ///
    /// ```
    /// let mut r = dps_core::WakeRate::default();
    /// r.observe(1.0);
    /// assert_eq!(r.close(), None); // one wake-up gives no rate yet
    /// r.observe(1.5);
    /// assert_eq!(r.close(), Some(2.0));
    /// ```
    pub fn observe(&mut self, at: f64) {
        if self.count == 0 {
            self.first = at;
        }
        self.last = at;
        self.count += 1;
    }

    /// Ends the window: the rate over its wake-ups (the last one starts the next window), or
    /// the previous rate when there were fewer than two; `None` until a rate was ever measured.
    ///
    /// ```
    /// assert_eq!(dps_core::WakeRate::default().close(), None);
    /// ```
    pub fn close(&mut self) -> Option<f64> {
        if self.count >= 2 && self.last > self.first {
            self.rate = Some(f64::from(self.count - 1) / (self.last - self.first));
            self.first = self.last;
            self.count = 1;
        }
        self.rate
    }

    /// The last measured rate, if any.
    ///
    /// ```
    /// assert_eq!(dps_core::WakeRate::default().rate(), None);
    /// ```
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }
}

impl UpstreamTracker<SocketAddr> {
    /// Records a wake-up caused by a packet from `w.sender` to `receiver`, unless `filter`
    /// says the packet is not part of the parallel program. Returns whether it counted.
    ///
    /// ```
    /// use dps_core::{TrafficFilter, UpstreamTracker, WakeUp};
    /// let f = TrafficFilter::default();
    /// let mut t = UpstreamTracker::new(10.0).unwrap();
    /// let me = "10.0.0.2:5000".parse().unwrap();
    /// let dns = WakeUp { sender: "10.0.0.9:53".parse().unwrap(), receiver_was_blocked: true, at: 0.0 };
    /// assert!(!t.observe_packet(&f, dns, me));
    /// let peer = WakeUp { sender: "10.0.0.3:5000".parse().unwrap(), receiver_was_blocked: true, at: 0.0 };
    /// assert!(t.observe_packet(&f, peer, me));
    /// ```
    pub fn observe_packet(
        &mut self,
        filter: &TrafficFilter,
        w: WakeUp<SocketAddr>,
        receiver: SocketAddr,
    ) -> bool {
        if !filter.admits(w.sender, receiver) {
            return false;
        }
        self.observe(w);
        w.receiver_was_blocked
    }
}

/// Well-known ports of infrastructure services whose packets never make a sender an upstream:
/// DNS 53, DHCP 67/68, NTP 123, portmapper 111 (NIS/ypbind and NFS's RPC side), NFS 2049,
/// NFS lock manager 4045. A [`TrafficFilter::default`] ignores packets from (or to) these.
///
/// ```
/// use dps_core::{TrafficFilter, INFRASTRUCTURE_PORTS};
/// assert!(INFRASTRUCTURE_PORTS.contains(&53) && INFRASTRUCTURE_PORTS.contains(&2049));
/// let f = TrafficFilter::default();
/// let me: std::net::SocketAddr = "10.0.0.2:7000".parse().unwrap();
/// for port in INFRASTRUCTURE_PORTS {
///     let sender = std::net::SocketAddr::from(([10, 0, 0, 9], port));
///     assert!(!f.admits(sender, me), "port {port}");
/// }
/// ```
pub const INFRASTRUCTURE_PORTS: [u16; 7] = [53, 67, 68, 111, 123, 2049, 4045];

/// Decides which packets may name an upstream VM.
///
/// ```
/// let mut f = dps_core::TrafficFilter::default();
/// let crm: std::net::SocketAddr = "10.0.0.1:7000".parse().unwrap();
/// f.add_control_endpoint(crm);
/// assert!(!f.admits(crm, "10.0.0.2:1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficFilter {
    infrastructure_ports: Vec<u16>,
    control: Vec<SocketAddr>,
    control_hosts: Vec<IpAddr>,
}

impl Default for TrafficFilter {
    fn default() -> Self {
        Self {
            infrastructure_ports: INFRASTRUCTURE_PORTS.to_vec(),
            control: Vec::new(),
            control_hosts: Vec::new(),
        }
    }
}

impl TrafficFilter {
    /// Adds a port of a further infrastructure service (e.g. a site's NIS server port).
    ///
    /// ```
    /// let mut f = dps_core::TrafficFilter::default();
    /// f.add_infrastructure_port(834);
    /// assert!(!f.admits("10.0.0.5:834".parse().unwrap(), "10.0.0.2:1".parse().unwrap()));
    /// ```
    pub fn add_infrastructure_port(&mut self, port: u16) {
        self.infrastructure_ports.push(port);
    }

    /// Excludes one endpoint of the scheduler's control traffic (CRM, DPS daemon, UIA, bank).
    ///
    /// ```
    /// let mut f = dps_core::TrafficFilter::default();
    /// f.add_control_endpoint("10.0.0.1:9".parse().unwrap());
    /// assert!(f.admits("10.0.0.1:10".parse().unwrap(), "10.0.0.2:1".parse().unwrap()));
    /// ```
    pub fn add_control_endpoint(&mut self, addr: SocketAddr) {
        self.control.push(addr);
    }

    /// Excludes every packet from a control host (e.g. the VM directory machine).
    ///
    /// ```
    /// let mut f = dps_core::TrafficFilter::default();
    /// f.add_control_host("10.0.0.1".parse().unwrap());
    /// assert!(!f.admits("10.0.0.1:10".parse().unwrap(), "10.0.0.2:1".parse().unwrap()));
    /// ```
    pub fn add_control_host(&mut self, ip: IpAddr) {
        self.control_hosts.push(ip);
    }

    /// Whether a packet from `sender` to `receiver` may name an upstream: not loopback, not
    /// from the receiver itself, not to or from an infrastructure port, not control traffic.
    ///
    /// ```
    /// let f = dps_core::TrafficFilter::default();
    /// let me = "10.0.0.2:5000".parse().unwrap();
    /// assert!(!f.admits("127.0.0.1:5000".parse().unwrap(), me));
    /// assert!(!f.admits("10.0.0.7:123".parse().unwrap(), me));
    /// assert!(f.admits("10.0.0.7:5000".parse().unwrap(), me));
    /// ```
    pub fn admits(&self, sender: SocketAddr, receiver: SocketAddr) -> bool {
        if sender.ip().is_loopback() || sender.ip() == receiver.ip() {
            return false;
        }
        let infra = |p: u16| self.infrastructure_ports.contains(&p);
        if infra(sender.port()) || infra(receiver.port()) {
            return false;
        }
        !(self.control.contains(&sender) || self.control_hosts.contains(&sender.ip()))
    }
}
