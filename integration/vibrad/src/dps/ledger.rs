//! One host's half of the share-transfer protocol (dps-core's `ledger` module describes it for
//! a cluster held in one process; here each daemon holds only its own part and the messages
//! cross the network).
//!
//! The host keeps its VMs' shares, the bank balance when it is the bank, the transfers it sent
//! that are still open, and its decisions on the offers it received. The sender deducts an
//! offer's amount at once and keeps its host's room booked until a reply arrives; the receiver
//! decides once (accept, reject, or accept part up to its host's room) and answers any
//! duplicate of the offer with the same reply; the sender refunds what was not accepted when
//! the reply arrives and ignores replies for transfers it already closed. Ids are unique per
//! host (`epoch << 32 | counter`) and every datagram carries the sender's lowest open id, so a
//! receiver forgets decisions the sender can no longer ask about and ignores offers below it.
//!
//! Hence, across the hosts, per program: `sum of shares + bank balance + in flight = W`, where
//! a transfer is in flight for `amount - accepted` while its sender holds it open
//! ([`conservation_error`]). Lost, duplicated and reordered datagrams change none of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dps_core::bank::{BankRound, BankerPolicy as _, CappedBanker, SpecBanker};
use dps_core::{Acceptance, DpsError, Message, Party, ProgramId, TransferId, VmId};
use serde::{Deserialize, Serialize};

use super::wire::Body;

/// Rounding slack for room checks and "send all I hold".
const EPS: f64 = 1e-9;

/// The one program a dps configuration describes.
pub const PROGRAM: ProgramId = ProgramId(0);

/// Who is where: the fixed part of a host ledger, the same on every host except `me`.
///
/// ```
/// let l = vibrad::dps::ledger::Layout { me: 0, bank_host: None, vm_host: vec![0, 1],
///     total: 0.4, cpus: 1.0, background: 0.5 };
/// assert_eq!(l.initial_share(), 0.2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// This host's index.
    pub me: u16,
    /// The bank's host (bank mode), or none (fully distributed).
    pub bank_host: Option<u16>,
    /// Each VM's host (index = the VM's global id).
    pub vm_host: Vec<u16>,
    /// W, the program's total share, in CPUs.
    pub total: f64,
    /// This host's CPUs (its capacity C_j).
    pub cpus: f64,
    /// CPUs booked by load that DPS does not move (the dissertation's `eatcpu`).
    pub background: f64,
}

impl Layout {
    /// Every VM's share at start: W / N.
    ///
    /// ```
    /// let l = vibrad::dps::ledger::Layout { me: 0, bank_host: None, vm_host: vec![0; 4],
    ///     total: 1.0, cpus: 1.0, background: 0.0 };
    /// assert_eq!(l.initial_share(), 0.25);
    /// ```
    #[must_use]
    pub fn initial_share(&self) -> f64 {
        self.total / self.vm_host.len().max(1) as f64
    }

    fn host_of(&self, p: Party) -> Option<u16> {
        match p {
            Party::Vm(v) => self.vm_host.get(v.0 as usize).copied(),
            Party::Bank(b) if b == PROGRAM => self.bank_host,
            Party::Bank(_) => None,
        }
    }
}

/// A datagram the ledger refused; nothing was changed.
///
/// ```
/// let e = vibrad::dps::ledger::BadMessage::UnknownTransfer(7);
/// assert!(e.to_string().contains("7"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadMessage {
    /// A party that does not exist in this configuration.
    #[error("unknown party {0:?}")]
    UnknownParty(Party),
    /// The offer's sender is not on the host it came from.
    #[error("{party:?} is not on the sending host {host}")]
    WrongSender {
        /// The party.
        party: Party,
        /// The host the datagram came from.
        host: u16,
    },
    /// The offer's receiver is not on this host.
    #[error("{0:?} is not on this host")]
    NotMine(Party),
    /// Sender and receiver are the same party.
    #[error("a transfer from {0:?} to itself")]
    SelfTransfer(Party),
    /// An amount that is not in (0, W].
    #[error("amount {0} outside (0, W]")]
    Amount(f64),
    /// An id already decided, with different content.
    #[error("transfer {0} repeated with different content")]
    Conflict(u64),
    /// A reply for a transfer this host never sent.
    #[error("reply for unknown transfer {0}")]
    UnknownTransfer(u64),
    /// A reply from a host that was not the transfer's receiver.
    #[error("reply for transfer {0} from a host that did not receive it")]
    WrongReplier(u64),
    /// A partial acceptance outside [0, amount].
    #[error("transfer {id}: accepted {accepted} outside [0, {amount}]")]
    Accepted {
        /// The transfer.
        id: u64,
        /// What the reply says was accepted.
        accepted: f64,
        /// The transfer's amount.
        amount: f64,
    },
    /// A report sent to a host that is not the bank, or about a VM not on its sender.
    #[error("report: {0}")]
    Report(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Out {
    from: Party,
    to: Party,
    amount: f64,
    /// Room kept booked on this host until the reply (sent by a local VM).
    reserved: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Decided {
    from: Party,
    to: Party,
    amount: f64,
    accepted: f64,
}

impl Decided {
    fn reply(&self, id: TransferId) -> Message {
        if self.accepted >= self.amount {
            Message::Accept { id }
        } else if self.accepted <= 0.0 {
            Message::Reject { id }
        } else {
            Message::AcceptPart {
                id,
                accepted: self.accepted,
            }
        }
    }
}

/// One host's shares, bank balance, open transfers and decisions.
///
/// ```
/// use dps_core::{Party, VmId};
/// use vibrad::dps::ledger::{HostLedger, Layout};
/// let layout = |me| Layout { me, bank_host: None, vm_host: vec![0, 1], total: 0.4, cpus: 1.0, background: 0.0 };
/// let (mut a, mut b) = (HostLedger::new(layout(0), Default::default(), 1), HostLedger::new(layout(1), Default::default(), 2));
/// let offer = a.send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.1).unwrap();
/// let reply = b.receive(0, a.low_open(), offer.into()).unwrap().unwrap();
/// a.receive(1, b.low_open(), reply).unwrap();
/// assert!((b.share(VmId(1)).unwrap() - 0.3).abs() < 1e-12);
/// assert!(vibrad::dps::ledger::conservation_error(&[&a, &b]) < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct HostLedger {
    layout: Layout,
    acceptance: Acceptance,
    shares: BTreeMap<u32, f64>,
    dead: BTreeSet<u32>,
    balance: f64,
    next_id: u64,
    outgoing: BTreeMap<u64, Out>,
    decisions: HashMap<(u16, u64), Decided>,
    floors: HashMap<u16, u64>,
    /// The latest report of each VM: share, shortage, its host's room.
    reports: BTreeMap<u32, (f64, f64, f64)>,
    /// Bank rounds cap grants by the reported rooms (dps-core's `CappedBanker`).
    capped_grants: bool,
}

impl From<Message> for Body {
    fn from(m: Message) -> Self {
        Body::Transfer(m)
    }
}

impl HostLedger {
    /// This host's ledger: its VMs at W / N each, an empty bank, no transfer. `epoch` is the
    /// high half of every id this host makes (the daemon uses its start time in seconds, so a
    /// restarted daemon never reuses an id).
    ///
    /// ```
    /// use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 1, bank_host: None, vm_host: vec![0, 1, 1],
    ///     total: 0.3, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// assert_eq!(l.local_vms().count(), 2);
    /// ```
    #[must_use]
    pub fn new(layout: Layout, acceptance: Acceptance, epoch: u32) -> Self {
        let w = layout.initial_share();
        let shares = layout
            .vm_host
            .iter()
            .enumerate()
            .filter(|(_, h)| **h == layout.me)
            .map(|(i, _)| (i as u32, w))
            .collect();
        HostLedger {
            layout,
            acceptance,
            shares,
            dead: BTreeSet::new(),
            balance: 0.0,
            next_id: u64::from(epoch) << 32,
            outgoing: BTreeMap::new(),
            decisions: HashMap::new(),
            floors: HashMap::new(),
            reports: BTreeMap::new(),
            capped_grants: false,
        }
    }

    /// The layout.
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// assert_eq!(l.layout().me, 0);
    /// ```
    #[must_use]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// This host's VMs and their shares.
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0, 0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// assert_eq!(l.local_vms().map(|(_, w)| w).sum::<f64>(), 1.0);
    /// ```
    pub fn local_vms(&self) -> impl Iterator<Item = (VmId, f64)> + '_ {
        self.shares.iter().map(|(&v, &w)| (VmId(v), w))
    }

    /// A local VM's share.
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0, 1], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// assert_eq!(l.share(dps_core::VmId(0)), Some(0.5));
    /// assert_eq!(l.share(dps_core::VmId(1)), None); // not on this host
    /// ```
    #[must_use]
    pub fn share(&self, vm: VmId) -> Option<f64> {
        self.shares.get(&vm.0).copied()
    }

    /// The bank balance (0 unless this host is the bank).
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: Some(0), vm_host: vec![0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// assert_eq!(l.balance(), 0.0);
    /// ```
    #[must_use]
    pub fn balance(&self) -> f64 {
        self.balance
    }

    /// Marks a local VM as exited (it accepts nothing any more) or running again.
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let mut l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// l.set_alive(dps_core::VmId(0), false);
    /// assert!(!l.alive(dps_core::VmId(0)));
    /// ```
    pub fn set_alive(&mut self, vm: VmId, alive: bool) {
        if alive {
            self.dead.remove(&vm.0);
        } else if self.shares.contains_key(&vm.0) {
            self.dead.insert(vm.0);
        }
    }

    /// Whether a local VM runs (as far as the ledger was told).
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// assert!(l.alive(dps_core::VmId(0)));
    /// ```
    #[must_use]
    pub fn alive(&self, vm: VmId) -> bool {
        self.shares.contains_key(&vm.0) && !self.dead.contains(&vm.0)
    }

    /// Room left on this host: CPUs less background, local shares and reservations.
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0, 1], total: 0.4, cpus: 1.0, background: 0.5 }, Default::default(), 0);
    /// assert!((l.room() - 0.3).abs() < 1e-12);
    /// ```
    #[must_use]
    pub fn room(&self) -> f64 {
        let reserved: f64 = self
            .outgoing
            .values()
            .filter(|o| o.reserved)
            .map(|o| o.amount)
            .sum();
        let booked = self.layout.background + self.shares.values().sum::<f64>() + reserved;
        (self.layout.cpus - booked).max(0.0)
    }

    /// The lowest id still open here (the next id when none is): every datagram carries it.
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 3);
    /// assert_eq!(l.low_open(), 3 << 32);
    /// ```
    #[must_use]
    pub fn low_open(&self) -> u64 {
        self.outgoing.keys().next().copied().unwrap_or(self.next_id)
    }

    /// Open transfers: (id, destination host, amount not yet known to be accepted).
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// assert_eq!(l.open().count(), 0);
    /// ```
    pub fn open(&self) -> impl Iterator<Item = (u64, u16, f64)> + '_ {
        self.outgoing.iter().map(|(&id, o)| {
            let to = self.layout.host_of(o.to).unwrap_or(self.layout.me);
            (id, to, o.amount)
        })
    }

    /// What this host accepted of `from_host`'s transfer `id`, if it decided it.
    ///
    /// ```
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// assert_eq!(l.accepted(1, 5), None);
    /// ```
    #[must_use]
    pub fn accepted(&self, from_host: u16, id: u64) -> Option<f64> {
        self.decisions.get(&(from_host, id)).map(|d| d.accepted)
    }

    /// Starts a transfer from a party of this host: deducts the amount (clamped to what the
    /// party holds when within rounding of it) and returns the offer to deliver.
    ///
    /// ```
    /// use dps_core::{Party, VmId};
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let mut l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0, 1], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// assert!(l.send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.6).is_err()); // holds 0.5
    /// l.send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.2).unwrap();
    /// assert!((l.share(VmId(0)).unwrap() - 0.3).abs() < 1e-12);
    /// ```
    pub fn send(&mut self, from: Party, to: Party, amount: f64) -> Result<Message, DpsError> {
        if !(amount.is_finite() && amount > 0.0) {
            return Err(DpsError::InvalidShare(amount));
        }
        if self.layout.host_of(from) != Some(self.layout.me) {
            return Err(DpsError::InvalidTopology(format!(
                "{from:?} is not on this host"
            )));
        }
        if self.layout.host_of(to).is_none() || from == to {
            return Err(DpsError::InvalidTopology(format!(
                "no transfer from {from:?} to {to:?}"
            )));
        }
        let amount = dps_core::ledger::transferable(self.holding(from), amount)?;
        self.adjust(from, -amount);
        let id = self.next_id;
        self.next_id += 1;
        self.outgoing.insert(
            id,
            Out {
                from,
                to,
                amount,
                reserved: matches!(from, Party::Vm(_)),
            },
        );
        Ok(Message::Offer {
            id: TransferId(id),
            from,
            to,
            amount,
        })
    }

    fn holding(&self, p: Party) -> f64 {
        match p {
            Party::Vm(v) => self.shares.get(&v.0).copied().unwrap_or(0.0),
            Party::Bank(_) => self.balance,
        }
    }

    fn adjust(&mut self, p: Party, by: f64) {
        match p {
            Party::Vm(v) => {
                if let Some(w) = self.shares.get_mut(&v.0) {
                    *w = (*w + by).max(0.0);
                }
            }
            Party::Bank(_) => self.balance = (self.balance + by).max(0.0),
        }
    }

    /// Every open offer again, with its destination host (sent each retransmission tick; the
    /// receiver answers duplicates with its first reply).
    ///
    /// ```
    /// use dps_core::{Party, VmId};
    /// # use vibrad::dps::ledger::{HostLedger, Layout};
    /// let mut l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0, 1], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// let m = l.send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.2).unwrap();
    /// assert_eq!(l.retransmissions(), vec![(1, m)]);
    /// ```
    #[must_use]
    pub fn retransmissions(&self) -> Vec<(u16, Message)> {
        self.outgoing
            .iter()
            .map(|(&id, o)| {
                (
                    self.layout.host_of(o.to).unwrap_or(self.layout.me),
                    Message::Offer {
                        id: TransferId(id),
                        from: o.from,
                        to: o.to,
                        amount: o.amount,
                    },
                )
            })
            .collect()
    }

    /// Handles one datagram's body from `from_host` (whose lowest open id is `low_open`):
    /// an offer gets a reply (the same one for every duplicate), a reply closes its transfer,
    /// a report is kept for the bank's next round. A bad body is refused and changes nothing
    /// (not even the remembered floor).
    ///
    /// ```
    /// use dps_core::{Message, Party, TransferId, VmId};
    /// # use vibrad::dps::ledger::{HostLedger, Layout, BadMessage};
    /// let mut l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0, 1], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// let forged = Message::Offer { id: TransferId(1), from: Party::Vm(VmId(0)), to: Party::Vm(VmId(0)), amount: 0.1 };
    /// assert!(matches!(l.receive(1, 0, forged.into()), Err(BadMessage::WrongSender { .. })));
    /// assert_eq!(l.share(VmId(0)), Some(0.5));
    /// ```
    pub fn receive(
        &mut self,
        from_host: u16,
        low_open: u64,
        body: Body,
    ) -> Result<Option<Body>, BadMessage> {
        let out = match body {
            Body::Transfer(Message::Offer {
                id,
                from,
                to,
                amount,
            }) => self.offer(from_host, low_open, id, from, to, amount)?,
            Body::Transfer(m) => {
                self.reply(from_host, m)?;
                None
            }
            Body::Report {
                vm,
                share,
                shortage,
                room,
            } => {
                if self.layout.bank_host != Some(self.layout.me) {
                    return Err(BadMessage::Report("this host is not the bank"));
                }
                if self.layout.vm_host.get(vm.0 as usize) != Some(&from_host) {
                    return Err(BadMessage::Report("the VM is not on the sending host"));
                }
                let ok = |x: f64| (0.0..=self.layout.total + EPS).contains(&x);
                if !(ok(share) && ok(shortage)) {
                    return Err(BadMessage::Report("share or shortage outside [0, W]"));
                }
                if !(room.is_finite() && room >= 0.0) {
                    return Err(BadMessage::Report("room negative or not finite"));
                }
                self.reports.insert(vm.0, (share, shortage, room));
                None
            }
        };
        let floor = self.floors.entry(from_host).or_insert(0);
        if low_open > *floor {
            *floor = low_open;
            self.decisions
                .retain(|&(h, id), _| h != from_host || id >= low_open);
        }
        Ok(out.map(Body::Transfer))
    }

    fn offer(
        &mut self,
        from_host: u16,
        low_open: u64,
        id: TransferId,
        from: Party,
        to: Party,
        amount: f64,
    ) -> Result<Option<Message>, BadMessage> {
        let host_of = |p| self.layout.host_of(p).ok_or(BadMessage::UnknownParty(p));
        if host_of(from)? != from_host {
            return Err(BadMessage::WrongSender {
                party: from,
                host: from_host,
            });
        }
        if host_of(to)? != self.layout.me {
            return Err(BadMessage::NotMine(to));
        }
        if from == to {
            return Err(BadMessage::SelfTransfer(from));
        }
        if !(amount > 0.0 && amount <= self.layout.total + EPS) {
            return Err(BadMessage::Amount(amount));
        }
        if let Some(d) = self.decisions.get(&(from_host, id.0)) {
            if (d.from, d.to, d.amount) != (from, to, amount) {
                return Err(BadMessage::Conflict(id.0));
            }
            return Ok(Some(d.reply(id)));
        }
        let floor = self
            .floors
            .get(&from_host)
            .copied()
            .unwrap_or(0)
            .max(low_open);
        if id.0 < floor {
            // Closed at its sender: a late duplicate, nothing to answer.
            return Ok(None);
        }
        let accepted = match to {
            Party::Bank(_) => amount,
            Party::Vm(v) if self.dead.contains(&v.0) => 0.0,
            Party::Vm(_) => {
                let room = self.room();
                if amount <= room + EPS {
                    amount
                } else if self.acceptance == Acceptance::UpToRoom && room > EPS {
                    room
                } else {
                    0.0
                }
            }
        };
        if accepted > 0.0 {
            self.adjust(to, accepted);
        }
        let d = Decided {
            from,
            to,
            amount,
            accepted,
        };
        self.decisions.insert((from_host, id.0), d);
        Ok(Some(d.reply(id)))
    }

    fn reply(&mut self, from_host: u16, m: Message) -> Result<(), BadMessage> {
        let id = m.id().0;
        let Some(o) = self.outgoing.get(&id).copied() else {
            if id < self.next_id && id >> 32 == self.next_id >> 32 {
                return Ok(()); // a duplicate reply for a closed transfer
            }
            return Err(BadMessage::UnknownTransfer(id));
        };
        if self.layout.host_of(o.to) != Some(from_host) {
            return Err(BadMessage::WrongReplier(id));
        }
        let accepted = match m {
            Message::Accept { .. } => o.amount,
            Message::Reject { .. } => 0.0,
            Message::AcceptPart { accepted, .. } => {
                if !(0.0..=o.amount).contains(&accepted) {
                    return Err(BadMessage::Accepted {
                        id,
                        accepted,
                        amount: o.amount,
                    });
                }
                accepted
            }
            Message::Offer { .. } => return Ok(()),
        };
        self.outgoing.remove(&id);
        let refund = o.amount - accepted;
        if refund > 0.0 {
            self.adjust(o.from, refund);
        }
        Ok(())
    }

    /// The bank's round (bank host only): the latest report of every VM (share, shortage;
    /// none yet: 0, 0) through dps-core's `bank_redistribute` (SPEC 6, eq. 5.2), then one
    /// grant offer per VM for its grant (grants below `min` stay in the bank). The reports
    /// are cleared.
    ///
    /// ```
    /// use dps_core::{Message, Party, ProgramId, VmId};
    /// use vibrad::dps::{ledger::{HostLedger, Layout}, wire::Body};
    /// let mut bank = HostLedger::new(Layout { me: 0, bank_host: Some(0), vm_host: vec![1, 1],
    ///     total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// // VM 0 on host 1 deposits 0.3 (keeping 0.2), VM 1 (share 0.5) reports a shortage of 0.1
    /// let dep = Message::Offer { id: dps_core::TransferId(5), from: Party::Vm(VmId(0)), to: Party::Bank(ProgramId(0)), amount: 0.3 };
    /// bank.receive(1, 5, dep.into()).unwrap();
    /// bank.receive(1, 5, Body::Report { vm: VmId(0), share: 0.2, shortage: 0.0, room: 0.5 }).unwrap();
    /// bank.receive(1, 5, Body::Report { vm: VmId(1), share: 0.5, shortage: 0.1, room: 0.5 }).unwrap();
    /// let grants = bank.bank_round(1e-4).unwrap();
    /// // E = 0.3 >= F = 0.1: VM 1 gets 0.1 + 0.2 * 0.6 / 0.8, VM 0 gets 0.2 * 0.2 / 0.8
    /// let amounts: Vec<f64> = grants.iter().map(|(_, m)| match m {
    ///     Message::Offer { amount, .. } => *amount, _ => 0.0 }).collect();
    /// assert!((amounts[0] - 0.05).abs() < 1e-12 && (amounts[1] - 0.25).abs() < 1e-12);
    /// assert!(bank.balance() < 1e-12); // rounding only
    /// ```
    pub fn bank_round(&mut self, min: f64) -> Result<Vec<(u16, Message)>, DpsError> {
        if self.layout.bank_host != Some(self.layout.me) {
            return Err(DpsError::InvalidTopology(
                "this host is not the bank".into(),
            ));
        }
        let n = self.layout.vm_host.len();
        let mut shares = vec![0.0; n];
        let mut shortages = vec![0.0; n];
        let mut headroom = vec![0.0; n];
        for (&v, &(w, f, r)) in &self.reports {
            shares[v as usize] = w;
            shortages[v as usize] = f;
            headroom[v as usize] = r;
        }
        self.reports.clear();
        let mut grants = vec![0.0; n];
        let round = BankRound {
            shares: &shares,
            shortages: &shortages,
            headroom: &headroom,
            balance: self.balance,
        };
        if self.capped_grants {
            CappedBanker.grants(&round, &mut grants)?;
        } else {
            SpecBanker.grants(&round, &mut grants)?;
        }
        let mut out = Vec::new();
        for (v, g) in grants.into_iter().enumerate() {
            if g >= min && self.balance > 0.0 {
                let to = Party::Vm(VmId(v as u32));
                let m = self.send(Party::Bank(PROGRAM), to, g.min(self.balance))?;
                out.push((self.layout.vm_host[v], m));
            }
        }
        Ok(out)
    }
}

/// A party as the directory stores it (`{"Vm": 3}` or `{"Bank": 0}`).
///
/// ```
/// use vibrad::dps::ledger::Who;
/// assert_eq!(serde_json::to_string(&Who::Vm(3)).unwrap(), r#"{"Vm":3}"#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Who {
    /// A VM, by its global id.
    Vm(u32),
    /// The bank of a program.
    Bank(u32),
}

impl From<Party> for Who {
    fn from(p: Party) -> Self {
        match p {
            Party::Vm(v) => Who::Vm(v.0),
            Party::Bank(b) => Who::Bank(b.0),
        }
    }
}

impl From<Who> for Party {
    fn from(w: Who) -> Self {
        match w {
            Who::Vm(v) => Party::Vm(VmId(v)),
            Who::Bank(b) => Party::Bank(ProgramId(b)),
        }
    }
}

/// An open transfer of a [`Snapshot`]: sent by this host, not yet answered.
///
/// ```
/// use vibrad::dps::ledger::{OpenTransfer, Who};
/// let o = OpenTransfer { id: 1, from: Who::Vm(0), to: Who::Vm(1), amount: 0.1, reserved: true };
/// assert_eq!(o.amount, 0.1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenTransfer {
    /// The transfer id.
    pub id: u64,
    /// The sending party (on this host).
    pub from: Who,
    /// The receiving party.
    pub to: Who,
    /// The amount deducted from the sender.
    pub amount: f64,
    /// Whether this host's room stays booked until the reply.
    pub reserved: bool,
}

/// A decision of a [`Snapshot`]: an offer this host received and answered.
///
/// ```
/// use vibrad::dps::ledger::{Decision, Who};
/// let d = Decision { host: 1, id: 7, from: Who::Vm(2), to: Who::Vm(0), amount: 0.1, accepted: 0.05 };
/// assert!(d.accepted <= d.amount);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The sending host.
    pub host: u16,
    /// The transfer id (the sender's).
    pub id: u64,
    /// The sending party.
    pub from: Who,
    /// The receiving party (on this host).
    pub to: Who,
    /// The amount offered.
    pub amount: f64,
    /// What this host accepted of it.
    pub accepted: f64,
}

/// Everything of a [`HostLedger`] that a restarted daemon needs to go on where the killed one
/// stopped: its VMs' shares, the bank balance, the next id, the open transfers and the
/// decisions on received offers (with the senders' floors). The bank's pending reports are
/// not in it (every VM reports again each period). The dps role writes it to the directory
/// before any datagram that reflects it leaves the host (`README`, "Crash recovery").
///
/// ```
/// use vibrad::dps::ledger::{HostLedger, Layout};
/// let layout = Layout { me: 0, bank_host: None, vm_host: vec![0, 1], total: 0.4, cpus: 1.0, background: 0.0 };
/// let l = HostLedger::new(layout.clone(), Default::default(), 1);
/// let text = serde_json::to_string(&l.snapshot()).unwrap();
/// let back = HostLedger::restore(layout, Default::default(), serde_json::from_str(&text).unwrap()).unwrap();
/// assert_eq!(back.snapshot(), l.snapshot());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The next transfer id this host makes.
    pub next_id: u64,
    /// This host's VMs' shares, by global VM id.
    pub shares: BTreeMap<u32, f64>,
    /// The bank balance (0 unless this host is the bank).
    pub balance: f64,
    /// Transfers sent and not yet answered, by id.
    pub open: Vec<OpenTransfer>,
    /// Decisions on received offers, by (host, id).
    pub decided: Vec<Decision>,
    /// Per sending host, the lowest id it still holds open (as last heard).
    pub floors: BTreeMap<u16, u64>,
}

impl HostLedger {
    /// The ledger's durable state (deterministic: equal ledgers give equal snapshots).
    ///
    /// ```
    /// use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 2);
    /// assert_eq!(l.snapshot().next_id, 2 << 32);
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let mut decided: Vec<Decision> = self
            .decisions
            .iter()
            .map(|(&(host, id), d)| Decision {
                host,
                id,
                from: d.from.into(),
                to: d.to.into(),
                amount: d.amount,
                accepted: d.accepted,
            })
            .collect();
        decided.sort_by_key(|d| (d.host, d.id));
        Snapshot {
            next_id: self.next_id,
            shares: self.shares.clone(),
            balance: self.balance,
            open: self
                .outgoing
                .iter()
                .map(|(&id, o)| OpenTransfer {
                    id,
                    from: o.from.into(),
                    to: o.to.into(),
                    amount: o.amount,
                    reserved: o.reserved,
                })
                .collect(),
            decided,
            floors: self.floors.iter().map(|(&h, &f)| (h, f)).collect(),
        }
    }

    /// A ledger from a snapshot, after checking it against the layout: exactly this host's
    /// VMs with finite shares in [0, W], a balance only on the bank's host, open transfers
    /// from this host's parties to known parties with amounts in (0, W] and ids below
    /// `next_id`, decisions on offers from the senders' hosts to this host's parties with
    /// 0 <= accepted <= amount. A bad snapshot is refused with the reason.
    ///
    /// ```
    /// use vibrad::dps::ledger::{HostLedger, Layout};
    /// let layout = Layout { me: 0, bank_host: None, vm_host: vec![0, 1], total: 0.4, cpus: 1.0, background: 0.0 };
    /// let mut s = HostLedger::new(layout.clone(), Default::default(), 1).snapshot();
    /// s.shares.insert(1, 0.2); // VM 1 is on host 1
    /// assert!(HostLedger::restore(layout, Default::default(), s).is_err());
    /// ```
    pub fn restore(layout: Layout, acceptance: Acceptance, snap: Snapshot) -> Result<Self, String> {
        let w = layout.total;
        let amount_ok = |a: f64| a.is_finite() && a > 0.0 && a <= w + EPS;
        let share_ok = |a: f64| a.is_finite() && (0.0..=w + EPS).contains(&a);
        let mut l = HostLedger::new(layout, acceptance, 0);
        let mine: BTreeSet<u32> = l.shares.keys().copied().collect();
        let got: BTreeSet<u32> = snap.shares.keys().copied().collect();
        if mine != got {
            return Err(format!("shares for VMs {got:?}, this host has {mine:?}"));
        }
        if let Some((v, s)) = snap.shares.iter().find(|(_, s)| !share_ok(**s)) {
            return Err(format!("VM {v}: share {s} outside [0, W]"));
        }
        if !share_ok(snap.balance)
            || (snap.balance > 0.0 && l.layout.bank_host != Some(l.layout.me))
        {
            return Err(format!("bank balance {} on this host", snap.balance));
        }
        let me = l.layout.me;
        for o in &snap.open {
            let (from, to) = (Party::from(o.from), Party::from(o.to));
            if l.layout.host_of(from) != Some(me) || l.layout.host_of(to).is_none() || from == to {
                return Err(format!("open transfer {}: {from:?} -> {to:?}", o.id));
            }
            if !amount_ok(o.amount) || o.id >= snap.next_id {
                return Err(format!(
                    "open transfer {}: amount {} or id not below next_id {}",
                    o.id, o.amount, snap.next_id
                ));
            }
            let out = Out {
                from,
                to,
                amount: o.amount,
                reserved: o.reserved,
            };
            if l.outgoing.insert(o.id, out).is_some() {
                return Err(format!("open transfer {} twice", o.id));
            }
        }
        for d in &snap.decided {
            let (from, to) = (Party::from(d.from), Party::from(d.to));
            if l.layout.host_of(from) != Some(d.host) || l.layout.host_of(to) != Some(me) {
                return Err(format!(
                    "decision on {}'s transfer {}: {from:?} -> {to:?}",
                    d.host, d.id
                ));
            }
            if !(amount_ok(d.amount) && d.accepted >= 0.0 && d.accepted <= d.amount) {
                return Err(format!(
                    "decision on {}'s transfer {}: accepted {} of {}",
                    d.host, d.id, d.accepted, d.amount
                ));
            }
            let dec = Decided {
                from,
                to,
                amount: d.amount,
                accepted: d.accepted,
            };
            if l.decisions.insert((d.host, d.id), dec).is_some() {
                return Err(format!("decision on {}'s transfer {} twice", d.host, d.id));
            }
        }
        l.shares = snap.shares;
        l.balance = snap.balance;
        l.next_id = snap.next_id;
        l.floors = snap.floors.into_iter().collect();
        Ok(l)
    }

    /// Changes this host's capacity and background (a configuration reload); shares, open
    /// transfers and decisions stay.
    ///
    /// ```
    /// use vibrad::dps::ledger::{HostLedger, Layout};
    /// let mut l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0], total: 0.2, cpus: 1.0, background: 0.5 }, Default::default(), 0);
    /// l.set_capacity(2.0, 0.5, Default::default());
    /// assert!((l.room() - 1.3).abs() < 1e-12);
    /// ```
    pub fn set_capacity(&mut self, cpus: f64, background: f64, acceptance: Acceptance) {
        self.layout.cpus = cpus;
        self.layout.background = background;
        self.acceptance = acceptance;
    }

    /// With `true`, this host's bank rounds use dps-core's `CappedBanker`: shortages as eq.
    /// 5.2, then the remainder in proportion to shares but never above a VM's reported room
    /// (what fits nowhere stays in the bank), instead of the plain rule (`SpecBanker`), whose
    /// remainder also goes to VMs on full hosts, who send it back. A safeguard SPEC 6 allows.
    ///
    /// ```
    /// use dps_core::{Message, Party, ProgramId, VmId};
    /// use vibrad::dps::{ledger::{HostLedger, Layout}, wire::Body};
    /// let mut bank = HostLedger::new(Layout { me: 0, bank_host: Some(0), vm_host: vec![1, 2],
    ///     total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 0);
    /// bank.set_capped_grants(true);
    /// let dep = Message::Offer { id: dps_core::TransferId(5), from: Party::Vm(VmId(0)), to: Party::Bank(ProgramId(0)), amount: 0.2 };
    /// bank.receive(1, 5, dep.into()).unwrap();
    /// // VM 0's host has the 0.2 it deposited free; VM 1's host is full
    /// bank.receive(1, 5, Body::Report { vm: VmId(0), share: 0.3, shortage: 0.0, room: 0.2 }).unwrap();
    /// bank.receive(2, 5, Body::Report { vm: VmId(1), share: 0.5, shortage: 0.0, room: 0.0 }).unwrap();
    /// let grants = bank.bank_round(1e-4).unwrap();
    /// assert_eq!(grants.len(), 1); // all of it back to VM 0, nothing to the full host
    /// assert_eq!(grants[0].0, 1);
    /// ```
    pub fn set_capped_grants(&mut self, capped: bool) {
        self.capped_grants = capped;
    }
}

/// |sum of shares + bank balance + in flight - W| over the ledgers of every host of the
/// program (taken at one instant): a transfer is in flight for its amount less what its
/// receiver accepted, while its sender holds it open.
///
/// ```
/// # use vibrad::dps::ledger::{HostLedger, Layout, conservation_error};
/// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0, 0], total: 0.8, cpus: 1.0, background: 0.0 }, Default::default(), 0);
/// assert!(conservation_error(&[&l]) < 1e-12);
/// ```
#[must_use]
pub fn conservation_error(hosts: &[&HostLedger]) -> f64 {
    let Some(first) = hosts.first() else {
        return 0.0;
    };
    let mut sum = 0.0;
    for h in hosts {
        sum += h.shares.values().sum::<f64>() + h.balance;
        for (id, to, amount) in h.open() {
            let accepted = hosts
                .iter()
                .find(|r| r.layout.me == to)
                .and_then(|r| r.accepted(h.layout.me, id))
                .unwrap_or(0.0);
            sum += amount - accepted;
        }
    }
    (sum - first.layout.total).abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cluster(bank: bool, acceptance: Acceptance) -> Vec<HostLedger> {
        // three hosts, two VMs each, W = 1.2, every host 1 CPU with 0.5 booked by a burner
        let vm_host = vec![0, 0, 1, 1, 2, 2];
        (0..3)
            .map(|me| {
                HostLedger::new(
                    Layout {
                        me,
                        bank_host: bank.then_some(0),
                        vm_host: vm_host.clone(),
                        total: 1.2,
                        cpus: 1.0,
                        background: 0.5,
                    },
                    acceptance,
                    u32::from(me) + 1,
                )
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    enum Step {
        Send { from_vm: u32, to: u32, frac: f64 },
        Deliver { pick: usize, dup: bool },
        Drop { pick: usize },
        Retransmit { host: u16 },
        Exit { vm: u32 },
        BankRound,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u32..6, 0u32..7, 0.01f64..1.0).prop_map(|(from_vm, to, frac)| Step::Send {
                from_vm,
                to,
                frac
            }),
            (any::<usize>(), any::<bool>()).prop_map(|(pick, dup)| Step::Deliver { pick, dup }),
            any::<usize>().prop_map(|pick| Step::Drop { pick }),
            (0u16..3).prop_map(|host| Step::Retransmit { host }),
            (0u32..6).prop_map(|vm| Step::Exit { vm }),
            Just(Step::BankRound),
        ]
    }

    /// One step of the network model on `hosts`: the datagrams it makes go to `emit` as
    /// (from host, to host, body); `Deliver` and `Drop` take from `net`.
    fn play(
        hosts: &mut [HostLedger],
        s: Step,
        bank: bool,
        net: &mut Vec<(u16, u16, u64, Body)>,
        emit: &mut Vec<(u16, u16, Body)>,
    ) -> Result<(), BadMessage> {
        match s {
            Step::Send { from_vm, to, frac } => {
                let h = (from_vm / 2) as usize;
                let w = hosts[h].share(VmId(from_vm)).unwrap_or(0.0);
                let to_party = if to == 6 {
                    Party::Bank(PROGRAM)
                } else {
                    Party::Vm(VmId(to))
                };
                if w * frac > 0.0
                    && let Ok(m) = hosts[h].send(Party::Vm(VmId(from_vm)), to_party, w * frac)
                {
                    let dest = hosts[h].layout.host_of(to_party).unwrap();
                    emit.push((h as u16, dest, m.into()));
                }
            }
            Step::Deliver { pick, dup } => {
                if !net.is_empty() {
                    let i = pick % net.len();
                    let (from, to, low, body) = if dup { net[i] } else { net.swap_remove(i) };
                    if let Some(reply) = hosts[to as usize].receive(from, low, body)? {
                        emit.push((to, from, reply));
                    }
                }
            }
            Step::Drop { pick } => {
                if !net.is_empty() {
                    let i = pick % net.len();
                    net.swap_remove(i);
                }
            }
            Step::Retransmit { host } => {
                for (dest, m) in hosts[host as usize].retransmissions() {
                    emit.push((host, dest, m.into()));
                }
            }
            Step::Exit { vm } => hosts[(vm / 2) as usize].set_alive(VmId(vm), false),
            Step::BankRound => {
                if bank {
                    for (dest, m) in hosts[0].bank_round(1e-6).unwrap() {
                        emit.push((0, dest, m.into()));
                    }
                }
            }
        }
        Ok(())
    }

    fn all(hosts: &[HostLedger]) -> Vec<&HostLedger> {
        hosts.iter().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any interleaving of sends, deliveries in any order, duplicates, drops,
        /// retransmissions, VM exits and bank rounds keeps shares + balance + in flight = W
        /// and every host within its capacity; once the network is drained with every message
        /// delivered, nothing stays in flight.
        #[test]
        fn conservation_under_loss_duplication_and_reordering(
            bank in any::<bool>(),
            part in any::<bool>(),
            steps in proptest::collection::vec(step(), 1..120),
        ) {
            let acc = if part { Acceptance::UpToRoom } else { Acceptance::Whole };
            let mut hosts = cluster(bank, acc);
            // the network: (from host, to host, low_open, body)
            let mut net: Vec<(u16, u16, u64, Body)> = Vec::new();
            let mut emit = Vec::new();
            for s in steps {
                let r = play(&mut hosts, s, bank, &mut net, &mut emit);
                prop_assert!(r.is_ok(), "{r:?}");
                for (from, to, body) in emit.drain(..) {
                    net.push((from, to, hosts[from as usize].low_open(), body));
                }
                prop_assert!(conservation_error(&all(&hosts)) < 1e-9,
                    "conservation broken: {}", conservation_error(&all(&hosts)));
                for h in &hosts {
                    // accepted transfers and refunds never book a host beyond its capacity
                    let booked = 0.5 + h.shares.values().sum::<f64>();
                    prop_assert!(booked <= 1.0 + 1e-6, "{booked}");
                    prop_assert!(h.shares.values().all(|w| *w >= 0.0) && h.balance >= 0.0);
                }
            }
            // drain: retransmit and deliver everything until no transfer is open
            for _ in 0..4 {
                net.clear();
                for host in 0..3u16 {
                    let low = hosts[host as usize].low_open();
                    for (dest, m) in hosts[host as usize].retransmissions() {
                        net.push((host, dest, low, m.into()));
                    }
                }
                while let Some((from, to, low, body)) = net.pop() {
                    if let Ok(Some(reply)) = hosts[to as usize].receive(from, low, body) {
                        net.push((to, from, hosts[to as usize].low_open(), reply));
                    }
                }
            }
            prop_assert!(hosts.iter().all(|h| h.open().count() == 0));
            prop_assert!(conservation_error(&all(&hosts)) < 1e-9);
        }
    }

    #[derive(Debug, Clone)]
    enum CrashStep {
        Net(Step),
        /// The host records its ledger and its held datagrams leave.
        Record {
            host: u16,
        },
        /// kill -9: the host's ledger and held datagrams are lost; it restarts from its record.
        Crash {
            host: u16,
        },
    }

    fn crash_step() -> impl Strategy<Value = CrashStep> {
        prop_oneof![
            6 => step().prop_map(CrashStep::Net),
            3 => (0u16..3).prop_map(|host| CrashStep::Record { host }),
            1 => (0u16..3).prop_map(|host| CrashStep::Crash { host }),
        ]
    }

    /// The ledgers a directory restores: each host's record, or a fresh ledger for a host
    /// that never wrote one (it has sent nothing).
    fn restored(fresh: &[HostLedger], dir: &[Option<Snapshot>]) -> Vec<HostLedger> {
        fresh
            .iter()
            .zip(dir)
            .map(|(f, d)| match d {
                Some(s) => HostLedger::restore(f.layout.clone(), f.acceptance, s.clone()).unwrap(),
                None => f.clone(),
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// The dps role's write-ahead rule over a model of crash points: a host's datagrams
        /// leave only when its ledger is recorded (the directory), and a crash at any point
        /// loses the host's unrecorded state and held datagrams and restarts it from its
        /// record. Then at every step both the live ledgers and the directory's ledgers keep
        /// shares + balance + in flight = W, a restored snapshot round-trips through JSON,
        /// and once drained nothing stays open.
        #[test]
        fn crashes_at_any_point_keep_w_in_the_ledgers_and_the_directory(
            bank in any::<bool>(),
            part in any::<bool>(),
            steps in proptest::collection::vec(crash_step(), 1..150),
        ) {
            let acc = if part { Acceptance::UpToRoom } else { Acceptance::Whole };
            let fresh = cluster(bank, acc);
            let mut hosts = fresh.clone();
            let mut dir: Vec<Option<Snapshot>> = vec![None; 3];
            // held[h]: datagrams of host h waiting for its record; net: datagrams sent
            let mut held: Vec<Vec<(u16, Body)>> = vec![Vec::new(); 3];
            let mut net: Vec<(u16, u16, u64, Body)> = Vec::new();
            let mut crashes = 0;
            for s in steps {
                match s {
                    CrashStep::Net(s) => {
                        let mut emit = Vec::new();
                        let r = play(&mut hosts, s, bank, &mut net, &mut emit);
                        prop_assert!(r.is_ok(), "{r:?}");
                        for (from, to, body) in emit {
                            held[from as usize].push((to, body));
                        }
                    }
                    CrashStep::Record { host } => {
                        let h = host as usize;
                        let text = serde_json::to_string(&hosts[h].snapshot()).unwrap();
                        dir[h] = Some(serde_json::from_str(&text).unwrap());
                        let low = hosts[h].low_open();
                        for (dest, b) in held[h].drain(..) {
                            net.push((host, dest, low, b));
                        }
                    }
                    CrashStep::Crash { host } => {
                        let h = host as usize;
                        crashes += 1;
                        held[h].clear();
                        hosts[h] = restored(&fresh, &dir).swap_remove(h);
                    }
                }
                let e = conservation_error(&all(&hosts));
                prop_assert!(e < 1e-9, "live ledgers: off by {e}");
                let from_dir = restored(&fresh, &dir);
                let e = conservation_error(&all(&from_dir));
                prop_assert!(e < 1e-9, "directory: off by {e}");
            }
            // Drain: every host records and sends, every datagram is delivered.
            for _ in 0..4 {
                for host in 0..3u16 {
                    for (dest, m) in hosts[host as usize].retransmissions() {
                        held[host as usize].push((dest, m.into()));
                    }
                }
                loop {
                    for host in 0..3u16 {
                        let h = host as usize;
                        dir[h] = Some(hosts[h].snapshot());
                        let low = hosts[h].low_open();
                        for (dest, b) in held[h].drain(..) {
                            net.push((host, dest, low, b));
                        }
                    }
                    let Some((from, to, low, body)) = net.pop() else { break };
                    if let Ok(Some(reply)) = hosts[to as usize].receive(from, low, body) {
                        held[to as usize].push((from, reply));
                    }
                }
            }
            prop_assert!(hosts.iter().all(|h| h.open().count() == 0), "open after drain ({crashes} crashes)");
            prop_assert!(conservation_error(&all(&hosts)) < 1e-9);
        }
    }

    #[test]
    fn bad_snapshots_are_refused() {
        let hosts = cluster(true, Acceptance::UpToRoom);
        let good = hosts[1].snapshot();
        let layout = hosts[1].layout.clone();
        type Edit = Box<dyn Fn(&mut Snapshot)>;
        let bad: Vec<Edit> = vec![
            Box::new(|s| {
                s.shares.remove(&2);
            }),
            Box::new(|s| {
                s.shares.insert(2, f64::NAN);
            }),
            Box::new(|s| {
                s.shares.insert(2, 5.0);
            }),
            Box::new(|s| s.balance = 0.1), // host 1 is not the bank
            Box::new(|s| {
                s.open.push(OpenTransfer {
                    id: s.next_id,
                    from: Who::Vm(2),
                    to: Who::Vm(0),
                    amount: 0.1,
                    reserved: true,
                });
            }),
            Box::new(|s| {
                s.open.push(OpenTransfer {
                    id: 0,
                    from: Who::Vm(0),
                    to: Who::Vm(2),
                    amount: 0.1,
                    reserved: true,
                });
            }),
            Box::new(|s| {
                s.decided.push(Decision {
                    host: 0,
                    id: 1,
                    from: Who::Vm(0),
                    to: Who::Vm(2),
                    amount: 0.1,
                    accepted: 0.2,
                });
            }),
            Box::new(|s| {
                s.decided.push(Decision {
                    host: 2,
                    id: 1,
                    from: Who::Vm(0),
                    to: Who::Vm(2),
                    amount: 0.1,
                    accepted: 0.0,
                });
            }),
        ];
        for (i, f) in bad.iter().enumerate() {
            let mut s = good.clone();
            f(&mut s);
            assert!(
                HostLedger::restore(layout.clone(), Acceptance::UpToRoom, s).is_err(),
                "bad snapshot {i} accepted"
            );
        }
        let l = HostLedger::restore(layout, Acceptance::UpToRoom, good.clone()).unwrap();
        assert_eq!(l.snapshot(), good);
    }

    #[test]
    fn bad_bodies_change_nothing() {
        let mut hosts = cluster(true, Acceptance::UpToRoom);
        let before = format!("{:?}", hosts[1]);
        let offer = |id, from, to, amount| {
            Body::Transfer(Message::Offer {
                id: TransferId(id),
                from,
                to,
                amount,
            })
        };
        let vm = |v| Party::Vm(VmId(v));
        let bad = [
            (0, offer(1, vm(9), vm(2), 0.1)),                     // unknown VM
            (0, offer(1, vm(4), vm(2), 0.1)),                     // VM 4 is on host 2
            (0, offer(1, vm(0), vm(0), 0.1)),                     // not for host 1
            (0, offer(1, vm(0), vm(2), 5.0)),                     // more than W
            (0, offer(1, vm(0), vm(2), -0.1)),                    // negative
            (0, offer(1, Party::Bank(ProgramId(3)), vm(2), 0.1)), // no such program
            (0, Body::Transfer(Message::Accept { id: TransferId(77) })), // never sent
            (
                0,
                Body::Report {
                    vm: VmId(0),
                    share: 0.1,
                    shortage: 0.0,
                    room: 0.0,
                },
            ), // host 1 is no bank
        ];
        for (from, b) in bad {
            assert!(hosts[1].receive(from, 1 << 40, b).is_err(), "{b:?}");
        }
        assert_eq!(format!("{:?}", hosts[1]), before);
        // a duplicate with different content is refused, the first decision stands
        let m = hosts[0].send(vm(0), vm(2), 0.05).unwrap();
        let r = hosts[1].receive(0, 0, m.into()).unwrap();
        assert!(matches!(r, Some(Body::Transfer(Message::Accept { .. }))));
        let id = m.id().0;
        assert_eq!(
            hosts[1].receive(0, 0, offer(id, vm(0), vm(2), 0.06)),
            Err(BadMessage::Conflict(id))
        );
        // a partial acceptance larger than the amount is refused
        let m = hosts[2].send(vm(4), vm(2), 0.1).unwrap();
        let id = m.id();
        assert!(matches!(
            hosts[2].receive(
                1,
                0,
                Body::Transfer(Message::AcceptPart { id, accepted: 0.2 })
            ),
            Err(BadMessage::Accepted { .. })
        ));
        // a reply from a host that did not receive the transfer is refused
        assert_eq!(
            hosts[2].receive(0, 0, Body::Transfer(Message::Accept { id })),
            Err(BadMessage::WrongReplier(id.0))
        );
        assert!(conservation_error(&all(&hosts)) < 1e-12);
    }

    #[test]
    fn partial_acceptance_takes_the_room_and_refunds_the_rest() {
        let mut hosts = cluster(false, Acceptance::UpToRoom);
        // host 1: 0.5 background + 0.4 shares: room 0.1
        let m = hosts[0]
            .send(Party::Vm(VmId(0)), Party::Vm(VmId(2)), 0.15)
            .unwrap();
        let r = hosts[1].receive(0, 0, m.into()).unwrap().unwrap();
        assert!(
            matches!(r, Body::Transfer(Message::AcceptPart { accepted, .. }) if (accepted - 0.1).abs() < 1e-9)
        );
        hosts[0].receive(1, 0, r).unwrap();
        assert!((hosts[0].share(VmId(0)).unwrap() - 0.1).abs() < 1e-9);
        assert!((hosts[1].share(VmId(2)).unwrap() - 0.3).abs() < 1e-9);
        // whole-only: the same offer is rejected whole
        let mut hosts = cluster(false, Acceptance::Whole);
        let m = hosts[0]
            .send(Party::Vm(VmId(0)), Party::Vm(VmId(2)), 0.15)
            .unwrap();
        let r = hosts[1].receive(0, 0, m.into()).unwrap().unwrap();
        assert!(matches!(r, Body::Transfer(Message::Reject { .. })));
    }

    #[test]
    fn exited_vm_refuses_offers() {
        let mut hosts = cluster(false, Acceptance::UpToRoom);
        hosts[1].set_alive(VmId(2), false);
        let m = hosts[0]
            .send(Party::Vm(VmId(0)), Party::Vm(VmId(2)), 0.05)
            .unwrap();
        let r = hosts[1].receive(0, 0, m.into()).unwrap().unwrap();
        assert!(matches!(r, Body::Transfer(Message::Reject { .. })));
    }
}
