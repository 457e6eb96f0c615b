//! The VM directory: vibrad's records on a [`Kv`] store (in memory or etcd). The key schema is
//! in the crate README. Every write that could break a customer's bound (`granted/`,
//! `applied/`) is one compare-and-swap on the key's mod revision, after checking the bound on
//! the whole new map: two hosts racing can never leave a sum over the bound in the store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vibra_alloc::ResourceKind;

use crate::config::Config;
use crate::dps::ledger::Snapshot;
use crate::error::{Error, Result};
use crate::kv::Kv;

/// Per-VM units of one kind, by VM name.
pub type Units = BTreeMap<String, u64>;

/// Which allocation record.
///
/// ```
/// assert_eq!(vibrad::directory::Record::Granted.name(), "granted");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// What the customer's leader decided (the target).
    Granted,
    /// What the VMs' hosts have set in their kernels (an upper bound of it: an increase is
    /// recorded before it is written, a decrease after).
    Applied,
}

impl Record {
    /// The key segment.
    ///
    /// ```
    /// assert_eq!(vibrad::directory::Record::Applied.name(), "applied");
    /// ```
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Record::Granted => "granted",
            Record::Applied => "applied",
        }
    }
}

/// A record read with the mod revision to compare against when writing it back (0: absent).
///
/// ```
/// let v = vibrad::directory::Versioned { value: 1, revision: 0 };
/// assert_eq!(v.revision, 0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value (empty when absent).
    pub value: T,
    /// Its mod revision.
    pub revision: i64,
}

/// A customer's record (`customers/<c>`), published from the configuration.
///
/// ```
/// let r: vibrad::directory::CustomerRecord = serde_json::from_str(r#"{"replication":1,"bounds":{},"vms":[]}"#).unwrap();
/// assert_eq!(r.replication, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRecord {
    /// SPEC 4's R.
    pub replication: u32,
    /// Bound per kind, in units.
    pub bounds: BTreeMap<String, u64>,
    /// The customer's VMs in their cyclic order.
    pub vms: Vec<String>,
}

/// A VM's record (`vms/<vm>`).
///
/// ```
/// let r: Result<vibrad::directory::VmRecord, _> = serde_json::from_str(r#"{"customer":"c","host":"h","x":1}"#);
/// assert!(r.is_err()); // unknown fields are bad directory content
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmRecord {
    /// Its customer.
    pub customer: String,
    /// Its host.
    pub host: String,
}

/// The directory over a store.
///
/// ```
/// use std::sync::Arc;
/// use vibrad::directory::{Directory, Record};
/// let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/vibra");
/// let kind = vibra_alloc::ResourceKind::Bandwidth;
/// let g = dir.read(Record::Granted, "acme", &kind).unwrap();
/// assert_eq!(g.revision, 0);
/// let map = [("a".to_string(), 6u64), ("b".to_string(), 4)].into_iter().collect();
/// assert!(dir.write(Record::Granted, "acme", &kind, 10, g.revision, &map).unwrap());
/// let over = [("a".to_string(), 7u64), ("b".to_string(), 4)].into_iter().collect();
/// let g = dir.read(Record::Granted, "acme", &kind).unwrap();
/// assert!(dir.write(Record::Granted, "acme", &kind, 10, g.revision, &over).is_err());
/// ```
#[derive(Clone)]
pub struct Directory {
    kv: Arc<dyn Kv>,
    prefix: String,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Directory({})", self.prefix)
    }
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Directory {
        key: key.to_string(),
        message: format!("unreadable record ({e}): {text:?}"),
    })
}

fn last_segment(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

impl Directory {
    /// The directory under `prefix` (for example `/vibra`).
    ///
    /// ```
    /// let d = vibrad::directory::Directory::new(std::sync::Arc::new(vibrad::kv::MemKv::new()), "/x");
    /// assert_eq!(d.prefix(), "/x");
    /// ```
    #[must_use]
    pub fn new(kv: Arc<dyn Kv>, prefix: &str) -> Self {
        Directory {
            kv,
            prefix: prefix.to_string(),
        }
    }

    /// The key prefix.
    ///
    /// ```
    /// let d = vibrad::directory::Directory::new(std::sync::Arc::new(vibrad::kv::MemKv::new()), "/x");
    /// assert_eq!(d.key_host("h1"), "/x/hosts/h1");
    /// ```
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert!(dir.kv().get("/d/none").unwrap().is_none());
    /// ```
    #[must_use]
    pub fn kv(&self) -> &Arc<dyn Kv> {
        &self.kv
    }

    /// `hosts/<h>`: present while the host's lease lives.
    ///
    /// ```
    /// # let dir = vibrad::directory::Directory::new(std::sync::Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert_eq!(dir.key_host("h"), "/d/hosts/h");
    /// ```
    #[must_use]
    pub fn key_host(&self, host: &str) -> String {
        format!("{}/hosts/{host}", self.prefix)
    }

    /// `granted/<c>/<kind>` or `applied/<c>/<kind>`.
    ///
    /// ```
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(std::sync::Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert_eq!(dir.key_alloc(Record::Applied, "c", &vibra_alloc::ResourceKind::Memory), "/d/applied/c/memory");
    /// ```
    #[must_use]
    pub fn key_alloc(&self, which: Record, customer: &str, kind: &ResourceKind) -> String {
        format!("{}/{}/{customer}/{kind}", self.prefix, which.name())
    }

    /// Publishes the configuration's customers and VMs (`customers/<c>`, `vms/<vm>`). Every
    /// host publishes the same records from the same configuration; the last write wins.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// let cfg = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
    /// dir.publish(&cfg).unwrap();
    /// assert!(dir.kv().get("/d/vms/acme-1").unwrap().is_some());
    /// ```
    pub fn publish(&self, cfg: &Config) -> Result<()> {
        for c in &cfg.customers {
            let rec = CustomerRecord {
                replication: c.replication,
                bounds: c
                    .kinds
                    .iter()
                    .map(|k| (k.kind.to_string(), k.pool))
                    .collect(),
                vms: cfg.vms_of(&c.name).iter().map(|v| v.name.clone()).collect(),
            };
            let key = format!("{}/customers/{}", self.prefix, c.name);
            self.kv
                .put(&key, &serde_json::to_string(&rec).unwrap_or_default(), None)?;
        }
        for v in &cfg.vms {
            let rec = VmRecord {
                customer: v.customer.clone(),
                host: v.host.clone(),
            };
            let key = format!("{}/vms/{}", self.prefix, v.name);
            self.kv
                .put(&key, &serde_json::to_string(&rec).unwrap_or_default(), None)?;
        }
        Ok(())
    }

    /// Registers `host` under a new lease of `ttl`; returns the lease.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// dir.register_host("h1", std::time::Duration::from_secs(10)).unwrap();
    /// assert!(dir.live_hosts().unwrap().contains("h1"));
    /// ```
    pub fn register_host(&self, host: &str, ttl: Duration) -> Result<i64> {
        let lease = self.kv.grant_lease(ttl)?;
        self.kv.put(&self.key_host(host), "{}", Some(lease))?;
        Ok(lease)
    }

    /// The hosts whose lease is alive.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert!(dir.live_hosts().unwrap().is_empty());
    /// ```
    pub fn live_hosts(&self) -> Result<BTreeSet<String>> {
        let (kvs, _) = self.kv.get_prefix(&format!("{}/hosts/", self.prefix))?;
        Ok(kvs
            .iter()
            .map(|(k, _)| last_segment(k).to_string())
            .collect())
    }

    /// Publishes a VM's measured usage (units per kind) under the host's lease.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// dir.report_usage("c", "vm1", &[("bandwidth".to_string(), 5.0)].into(), None).unwrap();
    /// assert_eq!(dir.usage("c").unwrap()["vm1"]["bandwidth"], 5.0);
    /// ```
    pub fn report_usage(
        &self,
        customer: &str,
        vm: &str,
        usage: &BTreeMap<String, f64>,
        lease: Option<i64>,
    ) -> Result<()> {
        let key = format!("{}/usage/{customer}/{vm}", self.prefix);
        self.kv.put(
            &key,
            &serde_json::to_string(usage).unwrap_or_default(),
            lease,
        )?;
        Ok(())
    }

    /// Every VM's last usage report for a customer.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// dir.kv().put("/d/usage/c/vm1", "{\"bandwidth\": -1}", None).unwrap();
    /// assert!(dir.usage("c").unwrap_err().to_string().contains("/d/usage/c/vm1"));
    /// ```
    pub fn usage(&self, customer: &str) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
        let (kvs, _) = self
            .kv
            .get_prefix(&format!("{}/usage/{customer}/", self.prefix))?;
        let mut out = BTreeMap::new();
        for (k, e) in kvs {
            let u: BTreeMap<String, f64> = parse(&k, &e.value)?;
            if u.values().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(Error::Directory {
                    key: k,
                    message: format!("negative or non-finite usage: {}", e.value),
                });
            }
            out.insert(last_segment(&k).to_string(), u);
        }
        Ok(out)
    }

    /// Records that a VM failed (its host saw it stop).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// dir.mark_failed("c", "vm1").unwrap();
    /// assert!(dir.failed("c").unwrap().contains("vm1"));
    /// ```
    pub fn mark_failed(&self, customer: &str, vm: &str) -> Result<()> {
        let key = format!("{}/failed/{customer}/{vm}", self.prefix);
        self.kv.put(&key, "{}", None)?;
        Ok(())
    }

    /// Clears a VM's failure marker: its host started it again (a replacement).
    ///
    /// ```
    /// # let dir = vibrad::directory::Directory::new(std::sync::Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// dir.mark_failed("c", "vm1").unwrap();
    /// dir.clear_failed("c", "vm1").unwrap();
    /// assert!(dir.failed("c").unwrap().is_empty());
    /// ```
    pub fn clear_failed(&self, customer: &str, vm: &str) -> Result<()> {
        self.kv
            .delete(&format!("{}/failed/{customer}/{vm}", self.prefix))
    }

    /// The failed VMs of a customer.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert!(dir.failed("c").unwrap().is_empty());
    /// ```
    pub fn failed(&self, customer: &str) -> Result<BTreeSet<String>> {
        let (kvs, _) = self
            .kv
            .get_prefix(&format!("{}/failed/{customer}/", self.prefix))?;
        Ok(kvs
            .iter()
            .map(|(k, _)| last_segment(k).to_string())
            .collect())
    }

    /// Reads an allocation record (empty with revision 0 when absent).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// let r = dir.read(Record::Granted, "c", &vibra_alloc::ResourceKind::Cpu).unwrap();
    /// assert!(r.value.is_empty() && r.revision == 0);
    /// ```
    pub fn read(
        &self,
        which: Record,
        customer: &str,
        kind: &ResourceKind,
    ) -> Result<Versioned<Units>> {
        let key = self.key_alloc(which, customer, kind);
        match self.kv.get(&key)? {
            None => Ok(Versioned {
                value: Units::new(),
                revision: 0,
            }),
            Some(e) => Ok(Versioned {
                value: parse(&key, &e.value)?,
                revision: e.mod_revision,
            }),
        }
    }

    /// Writes an allocation record if it still has mod revision `expected` (one transaction).
    /// Refuses ([`Error::OverBound`], nothing written) a map whose sum exceeds `bound`.
    /// Returns whether it wrote (false: someone else wrote first; re-read and retry).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// let k = vibra_alloc::ResourceKind::Memory;
    /// let m: Units = [("a".to_string(), 3)].into();
    /// assert!(dir.write(Record::Applied, "c", &k, 3, 0, &m).unwrap());
    /// assert!(!dir.write(Record::Applied, "c", &k, 3, 0, &m).unwrap()); // stale revision
    /// ```
    pub fn write(
        &self,
        which: Record,
        customer: &str,
        kind: &ResourceKind,
        bound: u64,
        expected: i64,
        map: &Units,
    ) -> Result<bool> {
        let key = self.key_alloc(which, customer, kind);
        let sum: u128 = map.values().map(|&u| u128::from(u)).sum();
        if sum > u128::from(bound) {
            return Err(Error::OverBound { key, sum, bound });
        }
        self.kv.cas(
            &key,
            expected,
            &serde_json::to_string(map).unwrap_or_default(),
            None,
        )
    }

    /// Sets a VM's `applied/` entry to 0 (its host is fenced: the VM holds nothing any more),
    /// as a compare-and-swap retried on conflict.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// let k = vibra_alloc::ResourceKind::Memory;
    /// dir.write(Record::Applied, "c", &k, 9, 0, &[("a".to_string(), 3)].into()).unwrap();
    /// dir.release("c", &k, 9, "a").unwrap();
    /// assert_eq!(dir.read(Record::Applied, "c", &k).unwrap().value["a"], 0);
    /// ```
    pub fn release(&self, customer: &str, kind: &ResourceKind, bound: u64, vm: &str) -> Result<()> {
        loop {
            let cur = self.read(Record::Applied, customer, kind)?;
            if cur.value.get(vm).is_none_or(|&u| u == 0) {
                return Ok(());
            }
            let mut next = cur.value.clone();
            next.insert(vm.to_string(), 0);
            if self.write(Record::Applied, customer, kind, bound, cur.revision, &next)? {
                return Ok(());
            }
        }
    }

    /// Tries to become (or stay) the leader of `customer`: the one host that runs its
    /// allocator. The key lives under the host's lease, so a dead leader's place frees up.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert!(dir.try_lead("c", "h1", None).unwrap());
    /// assert!(!dir.try_lead("c", "h2", None).unwrap());
    /// ```
    pub fn try_lead(&self, customer: &str, host: &str, lease: Option<i64>) -> Result<bool> {
        let key = format!("{}/leader/{customer}", self.prefix);
        match self.kv.get(&key)? {
            Some(e) => Ok(e.value == host),
            None => self.kv.cas(&key, 0, host, lease),
        }
    }

    /// `dps/<cluster>/<host>`: a dps host's ledger ([`Snapshot`]); `cluster` is the
    /// configuration's fingerprint in hex, so daemons of another layout never read it.
    ///
    /// ```
    /// # let dir = vibrad::directory::Directory::new(std::sync::Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert_eq!(dir.key_dps(0xab, "h1"), "/d/dps/00000000000000ab/h1");
    /// ```
    #[must_use]
    pub fn key_dps(&self, cluster: u64, host: &str) -> String {
        format!("{}/dps/{cluster:016x}/{host}", self.prefix)
    }

    /// A dps host's last recorded ledger (none with revision 0 when absent). Unreadable
    /// content is an error naming the key.
    ///
    /// ```
    /// # let dir = vibrad::directory::Directory::new(std::sync::Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert_eq!(dir.read_dps(1, "h1").unwrap().revision, 0);
    /// dir.kv().put(&dir.key_dps(1, "h1"), "{\"next_id\": -1}", None).unwrap();
    /// assert!(dir.read_dps(1, "h1").unwrap_err().to_string().contains("/d/dps/"));
    /// ```
    pub fn read_dps(&self, cluster: u64, host: &str) -> Result<Versioned<Option<Snapshot>>> {
        let key = self.key_dps(cluster, host);
        match self.kv.get(&key)? {
            None => Ok(Versioned {
                value: None,
                revision: 0,
            }),
            Some(e) => Ok(Versioned {
                value: Some(parse(&key, &e.value)?),
                revision: e.mod_revision,
            }),
        }
    }

    /// Records a dps host's ledger if its key still has mod revision `expected` (one
    /// transaction; 0: absent). Returns the new mod revision, or none when another writer
    /// changed the key since (a second daemon for the same host: this one must stop).
    ///
    /// ```
    /// # let dir = vibrad::directory::Directory::new(std::sync::Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// use vibrad::dps::ledger::{HostLedger, Layout};
    /// let l = HostLedger::new(Layout { me: 0, bank_host: None, vm_host: vec![0], total: 1.0, cpus: 1.0, background: 0.0 }, Default::default(), 1);
    /// let r = dir.write_dps(1, "h1", 0, &l.snapshot()).unwrap().unwrap();
    /// assert!(dir.write_dps(1, "h1", 0, &l.snapshot()).unwrap().is_none()); // stale
    /// assert_eq!(dir.read_dps(1, "h1").unwrap().revision, r);
    /// ```
    pub fn write_dps(
        &self,
        cluster: u64,
        host: &str,
        expected: i64,
        snap: &Snapshot,
    ) -> Result<Option<i64>> {
        let key = self.key_dps(cluster, host);
        let text = serde_json::to_string(snap).map_err(|e| Error::Directory {
            key: key.clone(),
            message: format!("cannot encode the ledger: {e}"),
        })?;
        self.kv.cas_put(&key, expected, &text, None)
    }

    /// Every dps host's recorded ledger of a cluster, read at one store revision (a
    /// consistent cut: tests and tools check W on it).
    ///
    /// ```
    /// # let dir = vibrad::directory::Directory::new(std::sync::Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert!(dir.dps_ledgers(1).unwrap().0.is_empty());
    /// ```
    pub fn dps_ledgers(&self, cluster: u64) -> Result<(BTreeMap<String, Snapshot>, i64)> {
        let (kvs, rev) = self
            .kv
            .get_prefix(&format!("{}/dps/{cluster:016x}/", self.prefix))?;
        let mut out = BTreeMap::new();
        for (k, e) in kvs {
            out.insert(last_segment(&k).to_string(), parse(&k, &e.value)?);
        }
        Ok((out, rev))
    }

    /// Blocks until a key under the prefix changes after revision `after`, or `timeout`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// let rev = dir.revision().unwrap();
    /// assert!(!dir.wait(rev, std::time::Duration::from_millis(10)).unwrap());
    /// ```
    pub fn wait(&self, after: i64, timeout: Duration) -> Result<bool> {
        self.kv.wait(&format!("{}/", self.prefix), after, timeout)
    }

    /// The store's revision now.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// assert_eq!(dir.revision().unwrap(), 0);
    /// ```
    pub fn revision(&self) -> Result<i64> {
        Ok(self.kv.get_prefix(&format!("{}/hosts/", self.prefix))?.1)
    }

    /// Every value an allocation record has held (tests check bounds at every step).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::directory::*;
    /// # let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/d");
    /// let k = vibra_alloc::ResourceKind::Memory;
    /// dir.write(Record::Applied, "c", &k, 9, 0, &[("a".to_string(), 3)].into()).unwrap();
    /// assert_eq!(dir.history(Record::Applied, "c", &k).unwrap().len(), 1);
    /// ```
    pub fn history(
        &self,
        which: Record,
        customer: &str,
        kind: &ResourceKind,
    ) -> Result<Vec<Units>> {
        let key = self.key_alloc(which, customer, kind);
        self.kv
            .history(&key)?
            .iter()
            .map(|v| parse(&key, v))
            .collect()
    }
}
