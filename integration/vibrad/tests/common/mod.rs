//! Shared test helpers: the two stores (in memory, and a real etcd started for the test),
//! an in-memory host controller, and the loud skip.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use vibra_host::{Bandwidth, CpuSetting, HostController, MemoryTarget, Outcome, VmUsage};
use vibrad::kv::{EtcdKv, Kv, MemKv};
use vibrad::local_etcd::{EtcdMember, LocalEtcd};

/// Skips loudly, or fails when CI forbids skipping (VIBRA_REQUIRE_PRIVILEGED=1).
pub fn skip(test: &str, why: &str) {
    if std::env::var("VIBRA_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run ({why}) but VIBRA_REQUIRE_PRIVILEGED=1 demands it");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// A real etcd, single member, on ports and a data dir named after this process (and a
/// per-process counter), removed on drop.
pub struct Etcd {
    local: LocalEtcd,
    pub dir: std::path::PathBuf,
    pub url: String,
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Etcd {
    pub fn start(test: &str) -> Option<Etcd> {
        Etcd::start_on(test, &[])
    }

    /// Also listens for clients on `extra` addresses (the same port), e.g. the root ends of
    /// veths to other network namespaces.
    pub fn start_on(test: &str, extra: &[std::net::Ipv4Addr]) -> Option<Etcd> {
        if Command::new("etcd").arg("--version").output().is_err() {
            skip(test, "no etcd binary (apt-get install etcd-server)");
            return None;
        }
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        let port = 20000 + ((pid * 8 + n * 2) % 40000) as u16;
        let dir = std::env::temp_dir().join(format!("vibrad-etcd-{pid}-{n}"));
        let member = EtcdMember::single(&format!("t{pid}x{n}"), &dir, port).serving_also(extra);
        let local = member
            .start(Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        Some(Etcd {
            url: local.url(),
            dir,
            local,
        })
    }

    pub fn kv(&self) -> EtcdKv {
        EtcdKv::new(vec![self.url.clone()], Duration::from_secs(2))
    }
}

/// Runs `f` against the in-memory store, then against a real etcd (skipping loudly without).
pub fn each_store(test: &str, f: impl Fn(Arc<dyn Kv>)) {
    f(Arc::new(MemKv::new()));
    if let Some(etcd) = Etcd::start(test) {
        f(Arc::new(etcd.kv()));
    }
}

/// An in-memory host controller: kernel settings in a map shared by every fake host of a
/// test (so a test can check the bound across hosts at every write), with injectable errors
/// and deaths.
#[derive(Clone, Default)]
pub struct FakeHost {
    pub vms: BTreeSet<String>,
    /// Egress bytes/s per VM, shared by all fake hosts.
    pub kernel: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Checked after every write: panics when violated.
    pub bound_bytes: Option<u64>,
    pub failing: Arc<Mutex<BTreeSet<String>>>,
    pub dead: Arc<Mutex<BTreeSet<String>>>,
    pub egress: Arc<Mutex<BTreeMap<String, u64>>>,
    pub writes: Arc<Mutex<u64>>,
}

impl FakeHost {
    fn err(vm: &str) -> vibra_host::Error {
        vibra_host::Error::UnknownVm {
            vm: vm.to_string(),
            op: vibra_host::Operation::SetEgress,
        }
    }
}

impl HostController for FakeHost {
    type VmId = String;
    fn list_vms(&self) -> Result<Vec<String>, vibra_host::Error> {
        Ok(self.vms.iter().cloned().collect())
    }
    fn set_cpu(&mut self, vm: &String, _: CpuSetting) -> Result<Outcome, vibra_host::Error> {
        Err(Self::err(vm))
    }
    fn cpu(&self, vm: &String) -> Result<CpuSetting, vibra_host::Error> {
        Err(Self::err(vm))
    }
    fn set_memory_target(
        &mut self,
        vm: &String,
        _: MemoryTarget,
    ) -> Result<Outcome, vibra_host::Error> {
        Err(Self::err(vm))
    }
    fn memory_target(&self, vm: &String) -> Result<Option<MemoryTarget>, vibra_host::Error> {
        Err(Self::err(vm))
    }
    fn set_egress(&mut self, vm: &String, rate: Bandwidth) -> Result<Outcome, vibra_host::Error> {
        if !self.vms.contains(vm) || self.failing.lock().contains(vm) {
            return Err(Self::err(vm));
        }
        let mut k = self.kernel.lock();
        k.insert(vm.clone(), rate.bytes_per_sec());
        *self.writes.lock() += 1;
        if let Some(b) = self.bound_bytes {
            // A dead VM sends nothing: its stale limit holds no bandwidth.
            let dead = self.dead.lock();
            let sum: u64 = k
                .iter()
                .filter(|(v, _)| !dead.contains(*v))
                .map(|(_, b)| b)
                .sum();
            assert!(sum <= b, "kernel sum {sum} over the bound {b}: {k:?}");
        }
        Ok(Outcome::Written)
    }
    fn egress_limit(&self, vm: &String) -> Result<Option<Bandwidth>, vibra_host::Error> {
        Ok(self
            .kernel
            .lock()
            .get(vm)
            .map(|&b| Bandwidth::from_bytes_per_sec(b as f64).unwrap()))
    }
    fn usage(&self, vm: &String) -> Result<VmUsage, vibra_host::Error> {
        Ok(VmUsage {
            egress_bytes: self.egress.lock().get(vm).copied().unwrap_or(0),
            ..VmUsage::default()
        })
    }
}

impl vibrad::daemon::Vms for FakeHost {
    fn running(&self, vm: &str) -> vibrad::Result<bool> {
        Ok(!self.dead.lock().contains(vm))
    }
}

/// An etcd cluster of `n` members on this machine (ports and data dirs named after this
/// process), whose members can be stopped and started again; everything removed on drop.
pub struct Cluster {
    members: Vec<(EtcdMember, Option<Child>)>,
}

impl Cluster {
    pub fn start(test: &str, n: usize) -> Option<Cluster> {
        Cluster::start_on(test, n, &[])
    }

    /// Also serves clients on `extra` addresses (each member on its own port), e.g. the root
    /// ends of veths to other network namespaces.
    pub fn start_on(test: &str, n: usize, extra: &[std::net::Ipv4Addr]) -> Option<Cluster> {
        if Command::new("etcd").arg("--version").output().is_err() {
            skip(test, "no etcd binary (apt-get install etcd-server)");
            return None;
        }
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        // Ports apart from Etcd::start's (which uses base + 0..8 per process).
        let port = |i: usize| 20000 + ((pid * 8 + 4000 + (k * 8 + i as u32) * 2) % 40000) as u16;
        let name = |i: usize| format!("c{pid}x{k}m{i}");
        let initial = (0..n)
            .map(|i| format!("{}=http://127.0.0.1:{}", name(i), port(i) + 1))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("c{pid}x{k}");
        let members = (0..n)
            .map(|i| {
                let dir = std::env::temp_dir().join(format!("vibrad-etcd-{pid}-c{k}-{i}"));
                let _ = std::fs::remove_dir_all(&dir);
                let m = EtcdMember::member(&name(i), &dir, port(i), port(i) + 1, &initial, &token)
                    .serving_also(extra);
                (m, None)
            })
            .collect();
        let mut c = Cluster { members };
        for i in 0..n {
            c.start_member(i);
        }
        c.wait_ready(Duration::from_secs(20));
        Some(c)
    }

    pub fn start_member(&mut self, i: usize) {
        let (m, child) = &mut self.members[i];
        *child = Some(m.spawn().expect("spawn etcd member"));
    }

    /// Stops member `i` (SIGKILL: a crash).
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].1.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.0.client_url()).collect()
    }

    /// Every member's client URL on `ip` (one of the extra addresses).
    pub fn urls_on(&self, ip: std::net::Ipv4Addr) -> Vec<String> {
        self.members.iter().map(|m| m.0.client_url_on(ip)).collect()
    }

    /// Waits until the cluster accepts a write again (after members were started).
    pub fn wait_ready(&self, limit: Duration) -> Duration {
        let t = Instant::now();
        let kv = self.kv();
        while kv.put("/ready", "1", None).is_err() {
            assert!(
                t.elapsed() < limit,
                "etcd cluster did not come back in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        t.elapsed()
    }

    pub fn kv(&self) -> EtcdKv {
        EtcdKv::new(self.urls(), Duration::from_secs(2))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
            let _ = std::fs::remove_dir_all(self.members[i].0.data_dir());
        }
    }
}

/// A host whose VMs use CPU at scripted rates (CPUs) and whose CPU settings are recorded.
#[derive(Clone, Default)]
pub struct CpuHost {
    pub vms: BTreeSet<String>,
    pub rate: Arc<Mutex<BTreeMap<String, f64>>>,
    pub dead: Arc<Mutex<BTreeSet<String>>>,
    pub set: Arc<Mutex<BTreeMap<String, CpuSetting>>>,
    pub start: Option<Instant>,
    pub used: Arc<Mutex<BTreeMap<String, (Instant, f64)>>>,
}

fn unknown_cpu_vm(vm: &str) -> vibra_host::Error {
    vibra_host::Error::UnknownVm {
        vm: vm.to_string(),
        op: vibra_host::Operation::SetCpu,
    }
}

impl HostController for CpuHost {
    type VmId = String;
    fn list_vms(&self) -> Result<Vec<String>, vibra_host::Error> {
        Ok(self.vms.iter().cloned().collect())
    }
    fn set_cpu(&mut self, vm: &String, cpu: CpuSetting) -> Result<Outcome, vibra_host::Error> {
        if !self.vms.contains(vm) {
            return Err(unknown_cpu_vm(vm));
        }
        self.set.lock().insert(vm.clone(), cpu);
        Ok(Outcome::Written)
    }
    fn cpu(&self, vm: &String) -> Result<CpuSetting, vibra_host::Error> {
        self.set
            .lock()
            .get(vm)
            .copied()
            .ok_or_else(|| unknown_cpu_vm(vm))
    }
    fn set_memory_target(
        &mut self,
        vm: &String,
        _: MemoryTarget,
    ) -> Result<Outcome, vibra_host::Error> {
        Err(unknown_cpu_vm(vm))
    }
    fn memory_target(&self, vm: &String) -> Result<Option<MemoryTarget>, vibra_host::Error> {
        Err(unknown_cpu_vm(vm))
    }
    fn set_egress(&mut self, vm: &String, _: Bandwidth) -> Result<Outcome, vibra_host::Error> {
        Err(unknown_cpu_vm(vm))
    }
    fn egress_limit(&self, vm: &String) -> Result<Option<Bandwidth>, vibra_host::Error> {
        Err(unknown_cpu_vm(vm))
    }
    /// CPU time integrates the VM's scripted rate since the last read.
    fn usage(&self, vm: &String) -> Result<VmUsage, vibra_host::Error> {
        let now = Instant::now();
        let rate = self.rate.lock().get(vm).copied().unwrap_or(0.0);
        let mut used = self.used.lock();
        let e = used
            .entry(vm.clone())
            .or_insert((self.start.unwrap_or(now), 0.0));
        e.1 += rate * now.duration_since(e.0).as_secs_f64();
        e.0 = now;
        Ok(VmUsage {
            cpu_time: Duration::from_secs_f64(e.1),
            ..VmUsage::default()
        })
    }
}

impl vibrad::daemon::Vms for CpuHost {
    fn running(&self, vm: &str) -> vibrad::Result<bool> {
        Ok(!self.dead.lock().contains(vm))
    }
}
