//! The VM directory of section 3.4.2: customers' resource bounds, VMs (allocation,
//! utilisation, host), hosts (capacity, utilisation) and the VM-to-host map.
//!
//! Agents change allocations only through [`VmDirectory::apply`], which validates every step
//! of a plan against the customer's bound and each host's remaining capacity and applies the
//! plan whole or not at all. The trait lets an integration put the directory on a real store;
//! [`InMemoryDirectory`] is the thread-safe in-process default. This module never talks to a
//! VMM: forwarding an accepted change to Xen is the integration's job.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use parking_lot::RwLock;

use crate::error::{Error, Result, check_non_negative};
use crate::ids::{CustomerId, HostId, VmId};
use crate::kind::ResourceKind;
use crate::plan::Plan;

/// Units per resource kind (a bound, a capacity or an allocation).
pub type Amounts = BTreeMap<ResourceKind, u64>;

/// Measured utilisation per resource kind, in the kind's units (may be fractional).
pub type Usage = BTreeMap<ResourceKind, f64>;

/// What the directory holds about a customer.
///
/// ```
/// use vibra_alloc::{CustomerRecord, ResourceKind};
/// let c = CustomerRecord { bounds: [(ResourceKind::Bandwidth, 80_000)].into() };
/// assert_eq!(c.bounds[&ResourceKind::Bandwidth], 80_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerRecord {
    /// The most the customer's VMs may hold in total, per kind. A kind without a bound
    /// cannot be allocated to the customer's VMs.
    pub bounds: Amounts,
}

/// What the directory holds about a host.
///
/// ```
/// let h = vibra_alloc::HostRecord::default();
/// assert!(h.capacity.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostRecord {
    /// What the host can give its VMs in total, per kind. A kind without a capacity cannot be
    /// allocated to VMs on the host.
    pub capacity: Amounts,
    /// The last utilisation the host reported, per kind.
    pub utilization: Usage,
}

/// What the directory holds about a VM.
///
/// ```
/// use vibra_alloc::{CustomerId, HostId, VmRecord};
/// let v = VmRecord { customer: CustomerId(0), host: HostId(0), allocation: Default::default(), utilization: Default::default() };
/// assert!(v.allocation.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VmRecord {
    /// The owner.
    pub customer: CustomerId,
    /// Where it runs.
    pub host: HostId,
    /// Its current allocation, per kind (a missing kind is 0).
    pub allocation: Amounts,
    /// The last utilisation reported for it, per kind.
    pub utilization: Usage,
}

/// The directory's interface. Every method is all-or-nothing: on error nothing changed.
/// Implementations must be usable from many threads at once (`Send + Sync`).
///
/// ```
/// use vibra_alloc::{CustomerId, HostId, InMemoryDirectory, Plan, ResourceKind, VmDirectory, VmId};
///
/// let bw = ResourceKind::Bandwidth;
/// let dir = InMemoryDirectory::new();
/// dir.add_customer(CustomerId(1), [(bw.clone(), 100)].into()).unwrap();
/// dir.add_host(HostId(0), [(bw.clone(), 1_000)].into()).unwrap();
/// dir.add_vm(VmId(0), CustomerId(1), HostId(0), [(bw.clone(), 50)].into()).unwrap();
/// dir.add_vm(VmId(1), CustomerId(1), HostId(0), [(bw.clone(), 50)].into()).unwrap();
///
/// let plan = Plan::between_ids(&[VmId(0), VmId(1)], &[50, 50], &[70, 30]).unwrap();
/// dir.apply(CustomerId(1), &bw, &plan).unwrap();
/// assert_eq!(dir.vm(VmId(0)).unwrap().allocation[&bw], 70);
///
/// // Over the customer's bound: rejected whole.
/// let greedy = Plan::between_ids(&[VmId(0), VmId(1)], &[70, 30], &[60, 50]).unwrap();
/// assert!(dir.apply(CustomerId(1), &bw, &greedy).is_err());
/// assert_eq!(dir.vm(VmId(0)).unwrap().allocation[&bw], 70);
/// ```
pub trait VmDirectory: Send + Sync {
    /// Registers a customer with its bounds. Errors: the id exists.
    fn add_customer(&self, id: CustomerId, bounds: Amounts) -> Result<()>;
    /// Changes one of a customer's bounds. A bound below what the customer holds is accepted:
    /// from then on only decreases pass until the sum is under it. Errors: unknown customer.
    fn set_customer_bound(&self, id: CustomerId, kind: ResourceKind, bound: u64) -> Result<()>;
    /// Registers a host with its capacities. Errors: the id exists.
    fn add_host(&self, id: HostId, capacity: Amounts) -> Result<()>;
    /// Registers a VM of `customer` on `host` with an initial allocation, validated like a
    /// plan. Errors: the id exists; unknown customer or host; a kind with no bound or
    /// capacity; over the bound or the host's remaining capacity.
    fn add_vm(
        &self,
        id: VmId,
        customer: CustomerId,
        host: HostId,
        allocation: Amounts,
    ) -> Result<()>;
    /// Removes a VM, releasing its allocation, and returns its record. Errors: unknown VM.
    fn remove_vm(&self, id: VmId) -> Result<VmRecord>;
    /// Moves a VM to another host (after a migration), checked against the new host's
    /// remaining capacity for every kind the VM holds. Errors: unknown VM or host; over
    /// capacity.
    fn move_vm(&self, id: VmId, to: HostId) -> Result<()>;
    /// Records a VM's measured utilisation. Errors: unknown VM; negative, NaN or infinite.
    fn report_vm_usage(&self, id: VmId, kind: ResourceKind, usage: f64) -> Result<()>;
    /// Records a host's measured utilisation. Errors: unknown host; negative, NaN or infinite.
    fn report_host_usage(&self, id: HostId, kind: ResourceKind, usage: f64) -> Result<()>;
    /// Applies an agent's plan for one customer and one kind, whole or not at all. Each step
    /// must name a VM of `customer` whose allocation equals the step's `from` at that point
    /// of the plan; each increasing step must keep the customer's total within its bound and
    /// the VM's host within its capacity. Decreases always pass, so a plan in SPEC order is
    /// accepted exactly when its every prefix fits.
    fn apply(&self, customer: CustomerId, kind: &ResourceKind, plan: &Plan) -> Result<()>;
    /// A copy of a customer's record. Errors: unknown customer.
    fn customer(&self, id: CustomerId) -> Result<CustomerRecord>;
    /// A copy of a host's record. Errors: unknown host.
    fn host(&self, id: HostId) -> Result<HostRecord>;
    /// A copy of a VM's record. Errors: unknown VM.
    fn vm(&self, id: VmId) -> Result<VmRecord>;
    /// The customer's VMs, ascending. Errors: unknown customer.
    fn vms_of(&self, id: CustomerId) -> Result<Vec<VmId>>;
    /// The VMs on a host, ascending (the VM-to-host map read backwards). Errors: unknown host.
    fn vms_on(&self, id: HostId) -> Result<Vec<VmId>>;
    /// Units of `kind` held by the customer's VMs in total. Errors: unknown customer.
    fn customer_total(&self, id: CustomerId, kind: &ResourceKind) -> Result<u128>;
    /// Units of `kind` allocated on a host in total. Errors: unknown host.
    fn host_total(&self, id: HostId, kind: &ResourceKind) -> Result<u128>;
}

#[derive(Debug, Clone, Default, PartialEq)]
struct State {
    customers: HashMap<CustomerId, CustomerRecord>,
    hosts: HashMap<HostId, HostRecord>,
    vms: HashMap<VmId, VmRecord>,
    by_customer: HashMap<CustomerId, BTreeSet<VmId>>,
    by_host: HashMap<HostId, BTreeSet<VmId>>,
}

impl State {
    fn customer_total(&self, id: CustomerId, kind: &ResourceKind) -> u128 {
        self.by_customer.get(&id).map_or(0, |vms| {
            vms.iter()
                .map(|v| u128::from(alloc_of(&self.vms[v], kind)))
                .sum()
        })
    }

    fn host_total(&self, id: HostId, kind: &ResourceKind) -> u128 {
        self.by_host.get(&id).map_or(0, |vms| {
            vms.iter()
                .map(|v| u128::from(alloc_of(&self.vms[v], kind)))
                .sum()
        })
    }

    fn bound(&self, customer: CustomerId, kind: &ResourceKind) -> Result<u64> {
        let c = self
            .customers
            .get(&customer)
            .ok_or(Error::UnknownCustomer(customer))?;
        c.bounds
            .get(kind)
            .copied()
            .ok_or_else(|| Error::UnknownKind(kind.clone()))
    }

    fn capacity(&self, host: HostId, kind: &ResourceKind) -> Result<u64> {
        let h = self.hosts.get(&host).ok_or(Error::UnknownHost(host))?;
        h.capacity
            .get(kind)
            .copied()
            .ok_or_else(|| Error::UnknownKind(kind.clone()))
    }
}

fn alloc_of(vm: &VmRecord, kind: &ResourceKind) -> u64 {
    vm.allocation.get(kind).copied().unwrap_or(0)
}

/// The in-memory directory: a `parking_lot::RwLock` around plain maps. Readers run in
/// parallel; each write holds the lock for one validation and one commit, so a plan is seen
/// either entirely applied or not at all. `Send + Sync`; share it behind an `Arc`.
///
/// ```
/// use vibra_alloc::{CustomerId, InMemoryDirectory, VmDirectory};
/// let dir = InMemoryDirectory::new();
/// dir.add_customer(CustomerId(1), Default::default()).unwrap();
/// assert!(dir.add_customer(CustomerId(1), Default::default()).is_err());
/// ```
#[derive(Debug, Default)]
pub struct InMemoryDirectory {
    state: RwLock<State>,
}

impl InMemoryDirectory {
    /// An empty directory.
    ///
    /// ```
    /// let dir = vibra_alloc::InMemoryDirectory::new();
    /// use vibra_alloc::VmDirectory;
    /// assert!(dir.vm(vibra_alloc::VmId(0)).is_err());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot equality check used by tests: whether two directories hold the same data.
    ///
    /// ```
    /// let a = vibra_alloc::InMemoryDirectory::new();
    /// let b = vibra_alloc::InMemoryDirectory::new();
    /// assert!(a.same_contents(&b));
    /// ```
    #[must_use]
    pub fn same_contents(&self, other: &InMemoryDirectory) -> bool {
        if std::ptr::eq(self, other) {
            return true;
        }
        *self.state.read() == *other.state.read()
    }

    /// A deep copy of the directory's contents (for checkpoints and tests).
    ///
    /// ```
    /// use vibra_alloc::{CustomerId, InMemoryDirectory, VmDirectory};
    /// let a = InMemoryDirectory::new();
    /// a.add_customer(CustomerId(1), Default::default()).unwrap();
    /// assert!(a.snapshot().customer(CustomerId(1)).is_ok());
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> InMemoryDirectory {
        InMemoryDirectory {
            state: RwLock::new(self.state.read().clone()),
        }
    }
}

impl VmDirectory for InMemoryDirectory {
    fn add_customer(&self, id: CustomerId, bounds: Amounts) -> Result<()> {
        let mut s = self.state.write();
        if s.customers.contains_key(&id) {
            return Err(Error::DuplicateCustomer(id));
        }
        s.customers.insert(id, CustomerRecord { bounds });
        s.by_customer.insert(id, BTreeSet::new());
        Ok(())
    }

    fn set_customer_bound(&self, id: CustomerId, kind: ResourceKind, bound: u64) -> Result<()> {
        let mut s = self.state.write();
        let c = s.customers.get_mut(&id).ok_or(Error::UnknownCustomer(id))?;
        c.bounds.insert(kind, bound);
        Ok(())
    }

    fn add_host(&self, id: HostId, capacity: Amounts) -> Result<()> {
        let mut s = self.state.write();
        if s.hosts.contains_key(&id) {
            return Err(Error::DuplicateHost(id));
        }
        s.hosts.insert(
            id,
            HostRecord {
                capacity,
                utilization: Usage::new(),
            },
        );
        s.by_host.insert(id, BTreeSet::new());
        Ok(())
    }

    fn add_vm(
        &self,
        id: VmId,
        customer: CustomerId,
        host: HostId,
        allocation: Amounts,
    ) -> Result<()> {
        let mut s = self.state.write();
        if s.vms.contains_key(&id) {
            return Err(Error::DuplicateVm(id));
        }
        if !s.customers.contains_key(&customer) {
            return Err(Error::UnknownCustomer(customer));
        }
        if !s.hosts.contains_key(&host) {
            return Err(Error::UnknownHost(host));
        }
        for (kind, &units) in &allocation {
            let bound = s.bound(customer, kind)?;
            let capacity = s.capacity(host, kind)?;
            let would_be = s.customer_total(customer, kind) + u128::from(units);
            if units > 0 && would_be > u128::from(bound) {
                return Err(Error::OverCustomerBound {
                    customer,
                    kind: kind.clone(),
                    would_be,
                    bound,
                });
            }
            let would_be = s.host_total(host, kind) + u128::from(units);
            if units > 0 && would_be > u128::from(capacity) {
                return Err(Error::OverHostCapacity {
                    host,
                    kind: kind.clone(),
                    would_be,
                    capacity,
                });
            }
        }
        s.vms.insert(
            id,
            VmRecord {
                customer,
                host,
                allocation,
                utilization: Usage::new(),
            },
        );
        s.by_customer.entry(customer).or_default().insert(id);
        s.by_host.entry(host).or_default().insert(id);
        Ok(())
    }

    fn remove_vm(&self, id: VmId) -> Result<VmRecord> {
        let mut s = self.state.write();
        let rec = s.vms.remove(&id).ok_or(Error::UnknownVm(id))?;
        if let Some(set) = s.by_customer.get_mut(&rec.customer) {
            set.remove(&id);
        }
        if let Some(set) = s.by_host.get_mut(&rec.host) {
            set.remove(&id);
        }
        Ok(rec)
    }

    fn move_vm(&self, id: VmId, to: HostId) -> Result<()> {
        let mut s = self.state.write();
        let rec = s.vms.get(&id).ok_or(Error::UnknownVm(id))?;
        if !s.hosts.contains_key(&to) {
            return Err(Error::UnknownHost(to));
        }
        let from = rec.host;
        if from == to {
            return Ok(());
        }
        for (kind, &units) in &rec.allocation {
            if units == 0 {
                continue;
            }
            let capacity = s.capacity(to, kind)?;
            let would_be = s.host_total(to, kind) + u128::from(units);
            if would_be > u128::from(capacity) {
                return Err(Error::OverHostCapacity {
                    host: to,
                    kind: kind.clone(),
                    would_be,
                    capacity,
                });
            }
        }
        if let Some(set) = s.by_host.get_mut(&from) {
            set.remove(&id);
        }
        s.by_host.entry(to).or_default().insert(id);
        if let Some(rec) = s.vms.get_mut(&id) {
            rec.host = to;
        }
        Ok(())
    }

    fn report_vm_usage(&self, id: VmId, kind: ResourceKind, usage: f64) -> Result<()> {
        check_non_negative("usage", None, usage)?;
        let mut s = self.state.write();
        let rec = s.vms.get_mut(&id).ok_or(Error::UnknownVm(id))?;
        rec.utilization.insert(kind, usage);
        Ok(())
    }

    fn report_host_usage(&self, id: HostId, kind: ResourceKind, usage: f64) -> Result<()> {
        check_non_negative("usage", None, usage)?;
        let mut s = self.state.write();
        let rec = s.hosts.get_mut(&id).ok_or(Error::UnknownHost(id))?;
        rec.utilization.insert(kind, usage);
        Ok(())
    }

    fn apply(&self, customer: CustomerId, kind: &ResourceKind, plan: &Plan) -> Result<()> {
        let mut s = self.state.write();
        let bound = s.bound(customer, kind)?;
        // Validate on a scratch copy of the touched entries: nothing is written until every
        // step has passed.
        let mut customer_sum = s.customer_total(customer, kind);
        let mut host_sums: HashMap<HostId, u128> = HashMap::new();
        let mut now: HashMap<VmId, u64> = HashMap::new();
        for c in plan {
            let rec = s.vms.get(&c.vm).ok_or(Error::UnknownVm(c.vm))?;
            if rec.customer != customer {
                return Err(Error::NotOwner {
                    vm: c.vm,
                    owner: rec.customer,
                    claimed: customer,
                });
            }
            let actual = *now.entry(c.vm).or_insert_with(|| alloc_of(rec, kind));
            if actual != c.from {
                return Err(Error::StaleChange {
                    vm: c.vm,
                    expected: c.from,
                    actual,
                });
            }
            let host = rec.host;
            let capacity = s.capacity(host, kind)?;
            let host_sum = host_sums
                .entry(host)
                .or_insert_with(|| s.host_total(host, kind));
            customer_sum = customer_sum - u128::from(c.from) + u128::from(c.to);
            *host_sum = *host_sum - u128::from(c.from) + u128::from(c.to);
            if c.to > c.from {
                if customer_sum > u128::from(bound) {
                    return Err(Error::OverCustomerBound {
                        customer,
                        kind: kind.clone(),
                        would_be: customer_sum,
                        bound,
                    });
                }
                if *host_sum > u128::from(capacity) {
                    return Err(Error::OverHostCapacity {
                        host,
                        kind: kind.clone(),
                        would_be: *host_sum,
                        capacity,
                    });
                }
            }
            now.insert(c.vm, c.to);
        }
        for (vm, units) in now {
            if let Some(rec) = s.vms.get_mut(&vm) {
                rec.allocation.insert(kind.clone(), units);
            }
        }
        Ok(())
    }

    fn customer(&self, id: CustomerId) -> Result<CustomerRecord> {
        let s = self.state.read();
        s.customers
            .get(&id)
            .cloned()
            .ok_or(Error::UnknownCustomer(id))
    }

    fn host(&self, id: HostId) -> Result<HostRecord> {
        let s = self.state.read();
        s.hosts.get(&id).cloned().ok_or(Error::UnknownHost(id))
    }

    fn vm(&self, id: VmId) -> Result<VmRecord> {
        let s = self.state.read();
        s.vms.get(&id).cloned().ok_or(Error::UnknownVm(id))
    }

    fn vms_of(&self, id: CustomerId) -> Result<Vec<VmId>> {
        let s = self.state.read();
        s.by_customer
            .get(&id)
            .map(|set| set.iter().copied().collect())
            .ok_or(Error::UnknownCustomer(id))
    }

    fn vms_on(&self, id: HostId) -> Result<Vec<VmId>> {
        let s = self.state.read();
        s.by_host
            .get(&id)
            .map(|set| set.iter().copied().collect())
            .ok_or(Error::UnknownHost(id))
    }

    fn customer_total(&self, id: CustomerId, kind: &ResourceKind) -> Result<u128> {
        let s = self.state.read();
        if !s.customers.contains_key(&id) {
            return Err(Error::UnknownCustomer(id));
        }
        Ok(s.customer_total(id, kind))
    }

    fn host_total(&self, id: HostId, kind: &ResourceKind) -> Result<u128> {
        let s = self.state.read();
        if !s.hosts.contains_key(&id) {
            return Err(Error::UnknownHost(id));
        }
        Ok(s.host_total(id, kind))
    }
}
