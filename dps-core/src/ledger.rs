//! Share transfers as messages (section 5.2.2): offer, accept, reject. The [`ShareLedger`]
//! holds every VM's share, each program's bank balance and the transfers in flight, for the
//! whole cluster, so that host bookings can be checked when a transfer arrives.
//!
//! Protocol: the sender deducts the amount when it sends an [`Message::Offer`], but its host
//! keeps the room booked until the receiver accepts, so a refund always fits. The receiver
//! accepts (its share grows) unless its host would be booked above capacity, in which case it
//! rejects, the host is counted as a bottleneck and the amount travels back to the sender,
//! which refunds itself when the [`Message::Reject`] arrives. Every transfer has an id; the
//! receiver remembers its decision and answers a duplicate offer with the same reply, and the
//! sender ignores replies for closed transfers, so lost (retransmitted), duplicated and
//! reordered messages never create or destroy share: at every instant, per program,
//! `sum of shares + bank balance + shares in flight = W` (SPEC section 6).
//! The ledger never books a host above its capacity by an accepted transfer.

use std::collections::HashMap;

use crate::error::DpsError;
use crate::model::{HostId, HostSpec, ProgramId, VmId};

/// Slack for floating-point comparisons of bookings against capacity.
const EPS: f64 = 1e-9;

/// How much of `requested` a party holding `available` can send: all of it, clamped to
/// `available` when it exceeds it only by rounding slack (so "send everything I hold" works
/// after float arithmetic). The one rule every ledger that starts transfers applies.
///
/// Errors: [`DpsError::InsufficientShare`] when `requested` exceeds `available` by more than
/// the slack; [`DpsError::InvalidShare`] when the amount to send is not positive.
///
/// ```
/// use dps_core::ledger::transferable;
/// assert_eq!(transferable(0.5, 0.2).unwrap(), 0.2);
/// assert_eq!(transferable(0.5, 0.5 + 1e-12).unwrap(), 0.5); // rounding: all it holds
/// assert!(transferable(0.5, 0.6).is_err());
/// assert!(transferable(0.0, 0.0).is_err());
/// ```
pub fn transferable(available: f64, requested: f64) -> Result<f64, DpsError> {
    if requested > available + EPS {
        return Err(DpsError::InsufficientShare {
            available,
            requested,
        });
    }
    let amount = requested.min(available);
    if amount > 0.0 {
        Ok(amount)
    } else {
        Err(DpsError::InvalidShare(amount))
    }
}

/// One end of a transfer: a VM, or a program's bank.
///
/// ```
/// use dps_core::{Party, VmId};
/// assert_ne!(Party::Vm(VmId(0)), Party::Vm(VmId(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    /// A VM.
    Vm(VmId),
    /// The bank account of a program (bank-assisted exchange).
    Bank(ProgramId),
}

/// A transfer id, unique within a ledger.
///
/// ```
/// assert_eq!(dps_core::TransferId(1), dps_core::TransferId(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub u64);

/// A protocol message.
///
/// ```
/// use dps_core::{Message, TransferId};
/// let m = Message::Accept { id: TransferId(4) };
/// assert_eq!(m.id(), TransferId(4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Message {
    /// "Take `amount` of share": already deducted from `from`.
    Offer {
        /// The transfer.
        id: TransferId,
        /// Sender.
        from: Party,
        /// Receiver.
        to: Party,
        /// Amount of share, > 0.
        amount: f64,
    },
    /// The receiver took the share.
    Accept {
        /// The transfer.
        id: TransferId,
    },
    /// The receiver's host is fully booked: the share goes back to the sender.
    Reject {
        /// The transfer.
        id: TransferId,
    },
    /// The receiver took `accepted` (its host's room) and the rest goes back to the sender:
    /// the reply of a receiver under [`Acceptance::UpToRoom`].
    AcceptPart {
        /// The transfer.
        id: TransferId,
        /// What the receiver took, > 0 and below the offered amount.
        accepted: f64,
    },
}

/// How a receiver answers an offer its host cannot book in full. Section 5.2.2's receiver
/// rejects it whole ([`Acceptance::Whole`], the default); [`Acceptance::UpToRoom`] takes what
/// fits and sends the rest back in a [`Message::AcceptPart`]. The simulator and a networked
/// share-exchange daemon use this one type (and [`Message`]) for the option and its replies.
///
/// ```
/// use dps_core::*;
/// let p = ProgramLayout::new(1.0, vec![HostId(0), HostId(1)]).unwrap();
/// let hosts = vec![HostSpec::new(1.0, 0.0).unwrap().with_background(0.4).unwrap(); 2];
/// let mut l = ShareLedger::new(hosts, &[p]).unwrap();
/// assert_eq!(l.acceptance(), Acceptance::Whole);
/// l.set_acceptance(Acceptance::UpToRoom);
/// // host 1 has room for 0.1 of the 0.3 offered: 0.1 moves, 0.2 comes back
/// assert_eq!(l.transfer(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.3).unwrap(), Outcome::PartiallyAccepted);
/// assert!((l.share(VmId(1)).unwrap() - 0.6).abs() < 1e-12);
/// assert!((l.share(VmId(0)).unwrap() - 0.4).abs() < 1e-12);
/// assert_eq!(l.conservation_error(ProgramId(0)).unwrap(), 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acceptance {
    /// Accept all of an offer or reject it (section 5.2.2).
    #[default]
    Whole,
    /// Accept up to the host's room; reject only when there is none.
    UpToRoom,
}

impl Message {
    /// The transfer this message belongs to.
    ///
    /// ```
    /// use dps_core::{Message, TransferId};
    /// assert_eq!(Message::Reject { id: TransferId(2) }.id(), TransferId(2));
    /// ```
    pub fn id(&self) -> TransferId {
        match *self {
            Message::Offer { id, .. }
            | Message::Accept { id }
            | Message::Reject { id }
            | Message::AcceptPart { id, .. } => id,
        }
    }
}

/// What the receiver decided.
///
/// ```
/// assert_ne!(dps_core::Outcome::Accepted, dps_core::Outcome::Rejected);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The share moved.
    Accepted,
    /// The share stays with (returns to) the sender.
    Rejected,
    /// Part moved, the rest returns to the sender ([`Acceptance::UpToRoom`]).
    PartiallyAccepted,
}

#[derive(Debug, Clone)]
struct Transfer {
    from: Party,
    to: Party,
    amount: f64,
    program: u32,
    decided: Option<Outcome>,
    /// What the receiver took of a partially accepted transfer (`amount` is then the rest,
    /// still in flight back to the sender).
    accepted: f64,
    open: bool,
    /// The sender's host, whose booking keeps the amount reserved until the receiver accepts
    /// (a rejected amount comes back to a host that never gave its room away).
    reserved_on: Option<u32>,
}

/// Where a program's VMs are placed and what it may use in total.
///
/// ```
/// use dps_core::{HostId, ProgramLayout};
/// let p = ProgramLayout::new(0.4, vec![HostId(0), HostId(1)]).unwrap();
/// assert_eq!(p.initial_share(), 0.2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramLayout {
    total: f64,
    hosts: Vec<HostId>,
}

impl ProgramLayout {
    /// A program of `hosts.len()` VMs (VM i on `hosts[i]`) with total share W = `total`.
    /// Errors: W not finite and > 0, or no VMs.
    ///
    /// ```
    /// assert!(dps_core::ProgramLayout::new(0.0, vec![dps_core::HostId(0)]).is_err());
    /// ```
    pub fn new(total: f64, hosts: Vec<HostId>) -> Result<Self, DpsError> {
        if !(total.is_finite() && total > 0.0) {
            return Err(DpsError::InvalidTotal(total));
        }
        if hosts.is_empty() {
            return Err(DpsError::InvalidTopology(
                "a program needs at least one VM".into(),
            ));
        }
        Ok(Self { total, hosts })
    }

    /// W / N, every VM's share at the start.
    ///
    /// ```
    /// let p = dps_core::ProgramLayout::new(1.0, vec![dps_core::HostId(0); 4]).unwrap();
    /// assert_eq!(p.initial_share(), 0.25);
    /// ```
    pub fn initial_share(&self) -> f64 {
        self.total / self.hosts.len() as f64
    }

    /// The program total W.
    ///
    /// ```
    /// let p = dps_core::ProgramLayout::new(1.0, vec![dps_core::HostId(0)]).unwrap();
    /// assert_eq!(p.total(), 1.0);
    /// ```
    pub fn total(&self) -> f64 {
        self.total
    }

    /// The host of each VM.
    ///
    /// ```
    /// let p = dps_core::ProgramLayout::new(1.0, vec![dps_core::HostId(2)]).unwrap();
    /// assert_eq!(p.hosts(), &[dps_core::HostId(2)]);
    /// ```
    pub fn hosts(&self) -> &[HostId] {
        &self.hosts
    }
}

#[derive(Debug, Clone)]
struct ProgramBook {
    total: f64,
    bank: f64,
    in_flight: f64,
    first_vm: u32,
    vms: u32,
    retired: bool,
}

/// The most share a [`ShareLedger`] holds in all: every program total W plus every host's
/// background load, at most half the largest double. Every sum the ledger forms (a host's
/// booking, a bank, the shares in flight, `shares + bank + in flight`) is a sum of parts of
/// this, so the headroom keeps each one finite even after rounding.
///
/// ```
/// use dps_core::{HostId, HostSpec, ProgramLayout, ShareLedger, MAX_LEDGER_TOTAL};
/// assert_eq!(MAX_LEDGER_TOTAL, f64::MAX / 2.0);
/// let p = ProgramLayout::new(f64::MAX, vec![HostId(0)]).unwrap();
/// assert!(ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).is_err());
/// ```
pub const MAX_LEDGER_TOTAL: f64 = f64::MAX / 2.0;

/// The cluster's share book: shares, banks, bookings, transfers in flight.
///
/// Not shared between threads while mutated (plain `&mut self`); `Clone` gives a snapshot.
///
/// ```
/// use dps_core::{HostId, HostSpec, Outcome, Party, ProgramLayout, ShareLedger, VmId, ProgramId};
/// let hosts = vec![HostSpec::new(1.0, 0.0).unwrap(); 2];
/// let prog = ProgramLayout::new(0.4, vec![HostId(0), HostId(1)]).unwrap();
/// let mut book = ShareLedger::new(hosts, &[prog]).unwrap();
/// assert_eq!(book.transfer(Party::Vm(VmId(1)), Party::Vm(VmId(0)), 0.1).unwrap(), Outcome::Accepted);
/// assert!((book.share(VmId(0)).unwrap() - 0.3).abs() < 1e-12);
/// assert!(book.conservation_error(ProgramId(0)).unwrap() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct ShareLedger {
    hosts: Vec<HostSpec>,
    limit: Vec<f64>,
    booked: Vec<f64>,
    rejections: Vec<u64>,
    vm_host: Vec<u32>,
    vm_program: Vec<u32>,
    shares: Vec<f64>,
    programs: Vec<ProgramBook>,
    transfers: HashMap<u64, Transfer>,
    next_id: u64,
    acceptance: Acceptance,
}

impl ShareLedger {
    /// A ledger with every VM at W/N. Errors: a VM on an unknown host; the program totals plus
    /// the hosts' background loads adding up to more than [`MAX_LEDGER_TOTAL`]
    /// ([`DpsError::InvalidTotal`] with that sum), since a host's booking, a bank or the
    /// conservation check could then overflow to infinity. The initial placement may overbook a
    /// host (the dissertation's fig. 5.9 does); transfers then only go out.
    ///
    /// ```
    /// use dps_core::{HostId, HostSpec, ProgramLayout, ShareLedger};
    /// let p = ProgramLayout::new(1.0, vec![HostId(5)]).unwrap();
    /// assert!(ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).is_err());
    /// ```
    pub fn new(hosts: Vec<HostSpec>, programs: &[ProgramLayout]) -> Result<Self, DpsError> {
        let grand: f64 = hosts.iter().map(HostSpec::background).sum::<f64>()
            + programs.iter().map(ProgramLayout::total).sum::<f64>();
        if !(grand.is_finite() && grand <= MAX_LEDGER_TOTAL) {
            return Err(DpsError::InvalidTotal(grand));
        }
        let mut booked: Vec<f64> = hosts.iter().map(HostSpec::background).collect();
        let mut vm_host = Vec::new();
        let mut vm_program = Vec::new();
        let mut shares = Vec::new();
        let mut books = Vec::with_capacity(programs.len());
        for (p, layout) in programs.iter().enumerate() {
            let first_vm = vm_host.len() as u32;
            let w = layout.initial_share();
            for &h in layout.hosts() {
                let slot = booked
                    .get_mut(h.0 as usize)
                    .ok_or(DpsError::UnknownHost(h.0))?;
                *slot += w;
                vm_host.push(h.0);
                vm_program.push(p as u32);
                shares.push(w);
            }
            books.push(ProgramBook {
                total: layout.total(),
                bank: 0.0,
                in_flight: 0.0,
                first_vm,
                vms: layout.hosts().len() as u32,
                retired: false,
            });
        }
        Ok(Self {
            rejections: vec![0; hosts.len()],
            limit: hosts.iter().map(HostSpec::capacity_shares).collect(),
            hosts,
            booked,
            vm_host,
            vm_program,
            shares,
            programs: books,
            transfers: HashMap::new(),
            next_id: 0,
            acceptance: Acceptance::Whole,
        })
    }

    /// Number of VMs.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0); 3]).unwrap();
    /// assert_eq!(ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap().vms(), 3);
    /// ```
    pub fn vms(&self) -> usize {
        self.shares.len()
    }

    /// Number of hosts.
    ///
    /// ```
    /// # use dps_core::*;
    /// assert_eq!(ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap(); 2], &[]).unwrap().hosts(), 2);
    /// ```
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// A host's specification.
    ///
    /// ```
    /// # use dps_core::*;
    /// let l = ShareLedger::new(vec![HostSpec::new(2.0, 0.0).unwrap()], &[]).unwrap();
    /// assert_eq!(l.host_spec(HostId(0)).unwrap().capacity(), 2.0);
    /// ```
    pub fn host_spec(&self, host: HostId) -> Result<&HostSpec, DpsError> {
        self.hosts
            .get(host.0 as usize)
            .ok_or(DpsError::UnknownHost(host.0))
    }

    /// A VM's share.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0); 2]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert_eq!(l.share(VmId(1)).unwrap(), 0.5);
    /// assert!(l.share(VmId(2)).is_err());
    /// ```
    pub fn share(&self, vm: VmId) -> Result<f64, DpsError> {
        self.shares
            .get(vm.0 as usize)
            .copied()
            .ok_or(DpsError::UnknownVm(vm.0))
    }

    /// All shares, indexed by VM id.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0); 2]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert_eq!(l.shares(), &[0.5, 0.5]);
    /// ```
    pub fn shares(&self) -> &[f64] {
        &self.shares
    }

    /// A VM's host.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0)]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert_eq!(l.host_of(VmId(0)).unwrap(), HostId(0));
    /// ```
    pub fn host_of(&self, vm: VmId) -> Result<HostId, DpsError> {
        self.vm_host
            .get(vm.0 as usize)
            .map(|&h| HostId(h))
            .ok_or(DpsError::UnknownVm(vm.0))
    }

    /// A VM's program.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0)]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert_eq!(l.program_of(VmId(0)).unwrap(), ProgramId(0));
    /// ```
    pub fn program_of(&self, vm: VmId) -> Result<ProgramId, DpsError> {
        self.vm_program
            .get(vm.0 as usize)
            .map(|&p| ProgramId(p))
            .ok_or(DpsError::UnknownVm(vm.0))
    }

    /// The VM ids of a program.
    ///
    /// ```
    /// # use dps_core::*;
    /// let a = ProgramLayout::new(1.0, vec![HostId(0)]).unwrap();
    /// let b = ProgramLayout::new(1.0, vec![HostId(0); 2]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(4.0, 0.0).unwrap()], &[a, b]).unwrap();
    /// assert_eq!(l.program_vms(ProgramId(1)).unwrap(), 1..3);
    /// ```
    pub fn program_vms(&self, program: ProgramId) -> Result<std::ops::Range<u32>, DpsError> {
        let b = self.book(program)?;
        Ok(b.first_vm..b.first_vm + b.vms)
    }

    /// A program's bank balance.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0)]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert_eq!(l.bank(ProgramId(0)).unwrap(), 0.0);
    /// ```
    pub fn bank(&self, program: ProgramId) -> Result<f64, DpsError> {
        Ok(self.book(program)?.bank)
    }

    /// A program's shares in flight (offered and undecided, or rejected and not yet refunded).
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0); 2]).unwrap();
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// l.send(Party::Vm(VmId(0)), Party::Bank(ProgramId(0)), 0.1).unwrap();
    /// assert!((l.in_flight(ProgramId(0)).unwrap() - 0.1).abs() < 1e-12);
    /// ```
    pub fn in_flight(&self, program: ProgramId) -> Result<f64, DpsError> {
        Ok(self.book(program)?.in_flight.max(0.0))
    }

    /// A program's total W.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.5, vec![HostId(0)]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(2.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert_eq!(l.total(ProgramId(0)).unwrap(), 1.5);
    /// ```
    pub fn total(&self, program: ProgramId) -> Result<f64, DpsError> {
        Ok(self.book(program)?.total)
    }

    /// Number of programs.
    ///
    /// ```
    /// # use dps_core::*;
    /// assert_eq!(ShareLedger::new(vec![], &[]).unwrap().programs(), 0);
    /// ```
    pub fn programs(&self) -> usize {
        self.programs.len()
    }

    /// |shares + bank + in flight - W| for a program, recomputed from scratch.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0); 2]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert!(l.conservation_error(ProgramId(0)).unwrap() < 1e-12);
    /// ```
    pub fn conservation_error(&self, program: ProgramId) -> Result<f64, DpsError> {
        let b = self.book(program)?;
        let shares: f64 = self.shares[b.first_vm as usize..(b.first_vm + b.vms) as usize]
            .iter()
            .sum();
        let in_flight: f64 = self
            .transfers
            .values()
            .filter(|t| t.program == program.0 && t.in_flight())
            .map(|t| t.amount)
            .sum();
        Ok((shares + b.bank + in_flight - b.total).abs())
    }

    /// Shares booked on a host: its VMs' shares (of running programs) plus its background.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(0.4, vec![HostId(0); 2]).unwrap();
    /// let h = HostSpec::new(1.0, 0.0).unwrap().with_background(0.5).unwrap();
    /// let l = ShareLedger::new(vec![h], &[p]).unwrap();
    /// assert!((l.booked(HostId(0)).unwrap() - 0.9).abs() < 1e-12);
    /// ```
    pub fn booked(&self, host: HostId) -> Result<f64, DpsError> {
        self.booked
            .get(host.0 as usize)
            .copied()
            .ok_or(DpsError::UnknownHost(host.0))
    }

    /// r_j: the host's unbooked capacity in shares (below its booking limit), 0 when fully
    /// booked.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(0.4, vec![HostId(0)]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert!((l.unbooked(HostId(0)).unwrap() - 0.6).abs() < 1e-12);
    /// ```
    pub fn unbooked(&self, host: HostId) -> Result<f64, DpsError> {
        self.host_spec(host)?;
        Ok((self.limit[host.0 as usize] - self.booked[host.0 as usize]).max(0.0))
    }

    /// Lowers the booking an accepted transfer may reach on a host below its capacity (a
    /// policy safeguard; the limit never exceeds capacity). Errors: unknown host, or a limit
    /// that is not finite and >= 0.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(0.4, vec![HostId(0), HostId(0)]).unwrap();
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// l.set_booking_limit(HostId(0), 0.4).unwrap();
    /// l.transfer(Party::Vm(VmId(0)), Party::Bank(ProgramId(0)), 0.1).unwrap();
    /// assert_eq!(l.transfer(Party::Bank(ProgramId(0)), Party::Vm(VmId(1)), 0.1).unwrap(), Outcome::Accepted);
    /// assert_eq!(l.unbooked(HostId(0)).unwrap(), 0.0);
    /// ```
    pub fn set_booking_limit(&mut self, host: HostId, limit: f64) -> Result<(), DpsError> {
        let cap = self.host_spec(host)?.capacity_shares();
        if !(limit.is_finite() && limit >= 0.0) {
            return Err(DpsError::InvalidParameter {
                name: "booking limit",
                value: limit,
            });
        }
        self.limit[host.0 as usize] = limit.min(cap);
        Ok(())
    }

    /// How many transfers this host has rejected (it is a bottleneck, section 5.2.2).
    ///
    /// ```
    /// # use dps_core::*;
    /// let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[]).unwrap();
    /// assert_eq!(l.rejections(HostId(0)).unwrap(), 0);
    /// ```
    pub fn rejections(&self, host: HostId) -> Result<u64, DpsError> {
        self.rejections
            .get(host.0 as usize)
            .copied()
            .ok_or(DpsError::UnknownHost(host.0))
    }

    /// Resets every host's rejection count (the CRM calls it after each look at them).
    ///
    /// ```
    /// # use dps_core::*;
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[]).unwrap();
    /// l.clear_rejections();
    /// ```
    pub fn clear_rejections(&mut self) {
        self.rejections.iter_mut().for_each(|r| *r = 0);
    }

    /// Starts a transfer: deducts `amount` from `from` and returns the offer to deliver.
    /// Errors (nothing changed): unknown party, amount not finite and > 0, more than the
    /// sender holds, or parties of different programs.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0); 2]).unwrap();
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert!(l.send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.6).is_err());
    /// let m = l.send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.2).unwrap();
    /// assert!(matches!(m, Message::Offer { .. }));
    /// ```
    pub fn send(&mut self, from: Party, to: Party, amount: f64) -> Result<Message, DpsError> {
        if !(amount.is_finite() && amount > 0.0) {
            return Err(DpsError::InvalidShare(amount));
        }
        let pf = self.party_program(from)?;
        let pt = self.party_program(to)?;
        if pf != pt {
            return Err(DpsError::CrossProgram);
        }
        let amount = transferable(self.holding(from), amount)?;
        self.adjust(from, -amount);
        // Keep the room reserved on the sender's host until the receiver accepts.
        let reserved_on = match from {
            Party::Vm(vm) if !self.programs[pf as usize].retired => {
                let h = self.vm_host[vm.0 as usize];
                self.booked[h as usize] += amount;
                Some(h)
            }
            _ => None,
        };
        let id = self.next_id;
        self.next_id += 1;
        self.programs[pf as usize].in_flight += amount;
        self.transfers.insert(
            id,
            Transfer {
                from,
                to,
                amount,
                program: pf,
                decided: None,
                accepted: 0.0,
                open: true,
                reserved_on,
            },
        );
        Ok(Message::Offer {
            id: TransferId(id),
            from,
            to,
            amount,
        })
    }

    /// Delivers a message (possibly a duplicate or out of order). An offer returns the reply to
    /// send back; replies return `None`. Errors: a message for an unknown transfer.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0); 2]).unwrap();
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// let offer = l.send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.2).unwrap();
    /// let reply = l.deliver(offer).unwrap().unwrap();
    /// assert_eq!(l.deliver(offer).unwrap(), Some(reply)); // a duplicate gets the same answer
    /// assert_eq!(l.deliver(reply).unwrap(), None);
    /// assert!((l.share(VmId(1)).unwrap() - 0.7).abs() < 1e-12);
    /// ```
    pub fn deliver(&mut self, msg: Message) -> Result<Option<Message>, DpsError> {
        let id = msg.id();
        let t = self
            .transfers
            .get(&id.0)
            .ok_or(DpsError::UnknownTransfer(id.0))?;
        let (to, amount, program, decided, open, reserved_on) =
            (t.to, t.amount, t.program, t.decided, t.open, t.reserved_on);
        match msg {
            Message::Offer { .. } => {
                let outcome = match decided {
                    Some(o) => o,
                    None => {
                        let o = if self.has_room(to, amount, reserved_on) {
                            Outcome::Accepted
                        } else if let Some(x) = self.partial_room(to, amount, reserved_on) {
                            self.accept_part(id.0, to, x, program);
                            Outcome::PartiallyAccepted
                        } else {
                            Outcome::Rejected
                        };
                        if o == Outcome::Accepted {
                            self.adjust(to, amount);
                            self.programs[program as usize].in_flight -= amount;
                            if let Some(h) = self
                                .transfers
                                .get_mut(&id.0)
                                .and_then(|t| t.reserved_on.take())
                            {
                                self.booked[h as usize] -= amount;
                            }
                        } else if let (Outcome::Rejected, Party::Vm(vm)) = (o, to) {
                            self.rejections[self.vm_host[vm.0 as usize] as usize] += 1;
                        }
                        if let Some(t) = self.transfers.get_mut(&id.0) {
                            t.decided = Some(o);
                        }
                        o
                    }
                };
                Ok(Some(match outcome {
                    Outcome::Accepted => Message::Accept { id },
                    Outcome::Rejected => Message::Reject { id },
                    Outcome::PartiallyAccepted => Message::AcceptPart {
                        id,
                        accepted: self.transfers[&id.0].accepted,
                    },
                }))
            }
            Message::Accept { .. } => {
                if open && decided == Some(Outcome::Accepted) {
                    self.close(id.0);
                }
                Ok(None)
            }
            Message::Reject { .. } | Message::AcceptPart { .. } => {
                let expected = if matches!(msg, Message::Reject { .. }) {
                    Outcome::Rejected
                } else {
                    Outcome::PartiallyAccepted
                };
                if open && decided == Some(expected) {
                    let from = self.transfers[&id.0].from;
                    // The refund lands on the room reserved for it.
                    if let Some(h) = self
                        .transfers
                        .get_mut(&id.0)
                        .and_then(|t| t.reserved_on.take())
                    {
                        self.booked[h as usize] -= amount;
                    }
                    self.adjust(from, amount);
                    self.programs[program as usize].in_flight -= amount;
                    self.close(id.0);
                }
                Ok(None)
            }
        }
    }

    /// The offers of every transfer whose sender has no answer yet, to send again after a
    /// timeout (receivers answer duplicates idempotently).
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0); 2]).unwrap();
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// let offer = l.send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.2).unwrap();
    /// assert_eq!(l.retransmissions(), vec![offer]);
    /// ```
    pub fn retransmissions(&self) -> Vec<Message> {
        let mut out: Vec<Message> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.open)
            .map(|(&id, t)| Message::Offer {
                id: TransferId(id),
                from: t.from,
                to: t.to,
                amount: t.amount,
            })
            .collect();
        out.sort_by_key(Message::id);
        out
    }

    /// Sends and delivers at once over a lossless link: the outcome of the transfer.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0); 2]).unwrap();
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// // the host is fully booked (0.5 + 0.5), but a transfer between two of its own VMs
    /// // leaves the booking unchanged (the sender's deduction makes the room)
    /// assert_eq!(l.transfer(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 0.1).unwrap(), Outcome::Accepted);
    /// ```
    pub fn transfer(&mut self, from: Party, to: Party, amount: f64) -> Result<Outcome, DpsError> {
        let offer = self.send(from, to, amount)?;
        let reply = self.deliver(offer)?;
        let outcome = match reply {
            Some(Message::Accept { .. }) => Outcome::Accepted,
            Some(Message::AcceptPart { .. }) => Outcome::PartiallyAccepted,
            _ => Outcome::Rejected,
        };
        if let Some(r) = reply {
            self.deliver(r)?;
        }
        self.transfers.remove(&offer.id().0);
        Ok(outcome)
    }

    /// Moves a VM (and its booking) to another host: a migration. The destination may end up
    /// above capacity; choosing a destination with room is the cluster resource manager's job.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0)]).unwrap();
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap(); 2], &[p]).unwrap();
    /// l.move_vm(VmId(0), HostId(1)).unwrap();
    /// assert_eq!(l.booked(HostId(1)).unwrap(), 1.0);
    /// ```
    pub fn move_vm(&mut self, vm: VmId, host: HostId) -> Result<(), DpsError> {
        let old = self.host_of(vm)?;
        self.host_spec(host)?;
        let s = self.shares[vm.0 as usize];
        if !self.programs[self.vm_program[vm.0 as usize] as usize].retired {
            self.booked[old.0 as usize] -= s;
            self.booked[host.0 as usize] += s;
        }
        self.vm_host[vm.0 as usize] = host.0;
        Ok(())
    }

    /// Marks a program finished: its VMs no longer book their hosts. Idempotent.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(0.5, vec![HostId(0)]).unwrap();
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// l.retire(ProgramId(0)).unwrap();
    /// assert_eq!(l.booked(HostId(0)).unwrap(), 0.0);
    /// ```
    pub fn retire(&mut self, program: ProgramId) -> Result<(), DpsError> {
        let b = self.book(program)?;
        if b.retired {
            return Ok(());
        }
        for vm in b.first_vm..b.first_vm + b.vms {
            let h = self.vm_host[vm as usize] as usize;
            self.booked[h] -= self.shares[vm as usize];
        }
        for t in self
            .transfers
            .values_mut()
            .filter(|t| t.program == program.0)
        {
            if let Some(h) = t.reserved_on.take() {
                self.booked[h as usize] -= t.amount;
            }
        }
        self.programs[program.0 as usize].retired = true;
        Ok(())
    }

    fn book(&self, program: ProgramId) -> Result<&ProgramBook, DpsError> {
        self.programs
            .get(program.0 as usize)
            .ok_or(DpsError::UnknownProgram(program.0))
    }

    fn party_program(&self, p: Party) -> Result<u32, DpsError> {
        match p {
            Party::Vm(vm) => self.program_of(vm).map(|p| p.0),
            Party::Bank(pr) => self.book(pr).map(|_| pr.0),
        }
    }

    fn holding(&self, p: Party) -> f64 {
        match p {
            Party::Vm(vm) => self.shares[vm.0 as usize],
            Party::Bank(pr) => self.programs[pr.0 as usize].bank,
        }
    }

    /// How offers that do not fit are answered from now on (see [`Acceptance`]).
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0)]).unwrap();
    /// let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// l.set_acceptance(Acceptance::UpToRoom);
    /// assert_eq!(l.acceptance(), Acceptance::UpToRoom);
    /// ```
    pub fn set_acceptance(&mut self, acceptance: Acceptance) {
        self.acceptance = acceptance;
    }

    /// How offers that do not fit are answered.
    ///
    /// ```
    /// # use dps_core::*;
    /// let p = ProgramLayout::new(1.0, vec![HostId(0)]).unwrap();
    /// let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    /// assert_eq!(l.acceptance(), Acceptance::Whole);
    /// ```
    pub fn acceptance(&self) -> Acceptance {
        self.acceptance
    }

    /// Under [`Acceptance::UpToRoom`], the part of an offer that does not fit whole which
    /// the receiver's host can still book (None: reject).
    fn partial_room(&self, to: Party, amount: f64, reserved_on: Option<u32>) -> Option<f64> {
        let Party::Vm(vm) = to else {
            return None;
        };
        if self.acceptance != Acceptance::UpToRoom {
            return None;
        }
        let h = self.vm_host[vm.0 as usize] as usize;
        let released = if reserved_on == Some(h as u32) {
            amount
        } else {
            0.0
        };
        let room = self.limit[h] - self.booked[h] + released;
        (room > EPS).then(|| room.min(amount))
    }

    /// The receiver takes `x` of transfer `id`: its share grows, `x` leaves the flight and
    /// the sender's reservation, and the rest stays in flight back to the sender. The host
    /// still counts a rejection (it could not take everything: a bottleneck signal).
    fn accept_part(&mut self, id: u64, to: Party, x: f64, program: u32) {
        self.adjust(to, x);
        self.programs[program as usize].in_flight -= x;
        if let Some(t) = self.transfers.get_mut(&id) {
            if let Some(h) = t.reserved_on {
                self.booked[h as usize] -= x;
            }
            t.amount -= x;
            t.accepted = x;
        }
        if let Party::Vm(vm) = to {
            self.rejections[self.vm_host[vm.0 as usize] as usize] += 1;
        }
    }

    /// Room for `amount` on the receiver's host; a reservation on that same host is released
    /// by the acceptance, so it counts as room.
    fn has_room(&self, to: Party, amount: f64, reserved_on: Option<u32>) -> bool {
        match to {
            Party::Bank(_) => true,
            Party::Vm(vm) => {
                let h = self.vm_host[vm.0 as usize] as usize;
                if self.programs[self.vm_program[vm.0 as usize] as usize].retired {
                    return true;
                }
                let released = if reserved_on == Some(h as u32) {
                    amount
                } else {
                    0.0
                };
                self.booked[h] + amount - released <= self.limit[h] + EPS
            }
        }
    }

    fn adjust(&mut self, p: Party, delta: f64) {
        match p {
            Party::Vm(vm) => {
                let i = vm.0 as usize;
                self.shares[i] = (self.shares[i] + delta).max(0.0);
                if !self.programs[self.vm_program[i] as usize].retired {
                    self.booked[self.vm_host[i] as usize] += delta;
                }
            }
            Party::Bank(pr) => {
                let b = &mut self.programs[pr.0 as usize].bank;
                *b = (*b + delta).max(0.0);
            }
        }
    }

    fn close(&mut self, id: u64) {
        if let Some(t) = self.transfers.get_mut(&id) {
            t.open = false;
        }
    }
}

impl Transfer {
    fn in_flight(&self) -> bool {
        match self.decided {
            None => true,
            Some(Outcome::Rejected | Outcome::PartiallyAccepted) => self.open,
            Some(Outcome::Accepted) => false,
        }
    }
}
