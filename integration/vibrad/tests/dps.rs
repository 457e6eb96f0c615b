//! The dps role over real UDP sockets on loopback: three daemons (in-process, each its own
//! thread, socket and ledger) exchanging share through fault-injecting relays that drop,
//! duplicate and reorder datagrams, with conservation checked across the three ledgers at
//! every instant the checker samples; bad datagrams refused; and (root) the same with real
//! cgroups, where the kernel's CPU weights follow the shares.

mod common;

use common::CpuHost;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dps_core::{Message, Party, ProgramId, TransferId, VmId};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use vibra_host::HostController;
use vibrad::config::Config;
use vibrad::daemon::{Signals, Vms};
use vibrad::directory::Directory;
use vibrad::dps::ledger::{HostLedger, Snapshot, Who, conservation_error};
use vibrad::dps::wire::{Body, Envelope};
use vibrad::dps::{CrashMode, CrashPoint, DpsRole};

/// Free loopback ports (bound and released; the tiny race with other processes is accepted).
fn free_ports(n: usize) -> Vec<u16> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

/// A relay between two daemons: every datagram from one is forwarded to the other from the
/// relay's own socket (so each daemon knows the other at the relay's address), dropped,
/// duplicated or held back (reordered) at random while `faulty` is set.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct FaultCounts {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
}

impl Relay {
    fn start(
        a: SocketAddr,
        b: SocketAddr,
        seed: u64,
        faulty: Arc<AtomicBool>,
        counts: Arc<FaultCounts>,
    ) -> Relay {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut held: Vec<(Instant, Vec<u8>, SocketAddr)> = Vec::new();
            let mut buf = [0u8; 256];
            while !st.load(Ordering::SeqCst) {
                let now = Instant::now();
                held.retain(|(at, bytes, to)| {
                    if *at <= now {
                        let _ = sock.send_to(bytes, to);
                        false
                    } else {
                        true
                    }
                });
                let Ok((n, src)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let to = if src == a {
                    b
                } else if src == b {
                    a
                } else {
                    continue;
                };
                let bytes = buf[..n].to_vec();
                if faulty.load(Ordering::SeqCst) {
                    let x: f64 = rng.random();
                    if x < 0.2 {
                        counts.dropped.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    if x < 0.4 {
                        counts.duplicated.fetch_add(1, Ordering::SeqCst);
                        let later =
                            Instant::now() + Duration::from_millis(rng.random_range(0..150));
                        held.push((later, bytes.clone(), to));
                    } else if x < 0.6 {
                        counts.delayed.fetch_add(1, Ordering::SeqCst);
                        let later =
                            Instant::now() + Duration::from_millis(rng.random_range(1..150));
                        held.push((later, bytes, to));
                        continue;
                    }
                }
                counts.forwarded.fetch_add(1, Ordering::SeqCst);
                let _ = sock.send_to(&bytes, to);
            }
        });
        Relay {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The configuration of host `me` of three (one VM each, `vm0` <- `vm1` -> ... linear:
/// vm0 and vm2 wait on vm1), with `peer(me, other)` the address at which `me` reaches `other`.
fn config(
    me: usize,
    listen: SocketAddr,
    peer: &dyn Fn(usize, usize) -> SocketAddr,
    bank: bool,
    parent: &str,
) -> Config {
    let mut s = format!(
        "host = \"h{me}\"\nroles = [\"dps\"]\n[linux]\ncgroup_parent = \"{parent}\"\n[dps]\nperiod_s = 0.1\nlisten = \"{listen}\"\ntotal = 0.6\ncpus = 1.0\nbackground = 0.5\n"
    );
    if bank {
        s.push_str("mode = \"bank\"\nbank = \"h0\"\n");
    }
    s.push_str("[dps.peers]\n");
    for o in (0..3).filter(|&o| o != me) {
        s.push_str(&format!("h{o} = \"{}\"\n", peer(me, o)));
    }
    let ups = ["[\"vm1\"]", "[]", "[\"vm1\"]"];
    for (i, u) in ups.iter().enumerate() {
        s.push_str(&format!(
            "[[dps.vm]]\nname = \"vm{i}\"\nhost = \"h{i}\"\nupstreams = {u}\n"
        ));
    }
    Config::parse(&s).unwrap_or_else(|e| panic!("{e:?}\n{s}"))
}

struct Cluster<H: Vms + Send + 'static> {
    ledgers: Vec<Arc<Mutex<HostLedger>>>,
    signals: Signals,
    threads: Vec<JoinHandle<DpsRole<H>>>,
}

impl<H: Vms + Send + 'static> Cluster<H> {
    fn start(roles: Vec<DpsRole<H>>) -> Self {
        let signals = Signals::default();
        let ledgers = roles.iter().map(DpsRole::ledger).collect();
        let threads = roles
            .into_iter()
            .map(|mut r| {
                let s = signals.clone();
                std::thread::spawn(move || {
                    r.run(&s).unwrap();
                    r
                })
            })
            .collect();
        Cluster {
            ledgers,
            signals,
            threads,
        }
    }

    /// Conservation across the three ledgers, all locked at once (one instant).
    fn conservation(&self) -> f64 {
        let guards: Vec<_> = self.ledgers.iter().map(|l| l.lock()).collect();
        let refs: Vec<&HostLedger> = guards.iter().map(|g| &**g).collect();
        conservation_error(&refs)
    }

    fn open(&self) -> usize {
        self.ledgers.iter().map(|l| l.lock().open().count()).sum()
    }

    fn share(&self, vm: u32) -> f64 {
        self.ledgers
            .iter()
            .find_map(|l| l.lock().share(VmId(vm)))
            .unwrap()
    }

    /// Checks conservation continuously for `d`; returns the number of checks.
    fn watch(&self, d: Duration) -> u64 {
        let until = Instant::now() + d;
        let mut n = 0;
        while Instant::now() < until {
            let e = self.conservation();
            assert!(e < 1e-9, "shares + balance + in flight != W: off by {e}");
            n += 1;
            std::thread::sleep(Duration::from_micros(500));
        }
        n
    }

    fn stop(mut self) -> Vec<DpsRole<H>> {
        self.signals.stop.store(true, Ordering::SeqCst);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect()
    }
}

impl<H: Vms + Send + 'static> Drop for Cluster<H> {
    /// On a failed assertion too: the daemons stop and are dropped (cgroups removed).
    fn drop(&mut self) {
        self.signals.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Processes started for a test, killed and reaped on every exit path.
struct Kids(Vec<std::process::Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Host `me`'s controller with its one VM `vm<me>`: vm1 computes flat out (it holds the others
/// back); vm0 and vm2 mostly wait.
fn scripted_host(me: usize) -> CpuHost {
    let name = format!("vm{me}");
    let host = CpuHost {
        vms: [name.clone()].into(),
        start: Some(Instant::now()),
        ..CpuHost::default()
    };
    host.rate
        .lock()
        .insert(name, if me == 1 { 1.0 } else { 0.05 });
    host
}

/// Three daemons through relays (one per pair). Returns the roles, after a faulty phase, a
/// clean phase and stop, having checked conservation all along.
fn run_through_relays(bank: bool, seed: u64, kill_vm2: bool) {
    let ports = free_ports(3);
    let real: Vec<SocketAddr> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    let faulty = Arc::new(AtomicBool::new(true));
    let counts = Arc::new(FaultCounts::default());
    let mut relays = BTreeMap::new();
    for i in 0..3 {
        for j in i + 1..3 {
            let r = Relay::start(
                real[i],
                real[j],
                seed + (i * 3 + j) as u64,
                Arc::clone(&faulty),
                Arc::clone(&counts),
            );
            relays.insert((i, j), r);
        }
    }
    let peer = |a: usize, b: usize| relays[&(a.min(b), a.max(b))].addr;
    let mut hosts = Vec::new();
    let mut roles = Vec::new();
    for (me, addr) in real.iter().enumerate() {
        let cfg = config(me, *addr, &peer, bank, "unused");
        let host = scripted_host(me);
        hosts.push(host.clone());
        roles.push(DpsRole::new(&cfg, host).unwrap());
    }
    let cluster = Cluster::start(roles);
    let mut checks = cluster.watch(Duration::from_millis(1500));
    if kill_vm2 {
        hosts[2].dead.lock().insert("vm2".into());
    }
    checks += cluster.watch(Duration::from_millis(1500));
    faulty.store(false, Ordering::SeqCst);
    // Clean network: every open transfer is answered within a few retransmissions.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        checks += cluster.watch(Duration::from_millis(100));
        if cluster.open() == 0 || Instant::now() > until {
            break;
        }
    }
    let (s0, s1, s2) = (cluster.share(0), cluster.share(1), cluster.share(2));
    let roles = cluster.stop();
    let c = &counts;
    eprintln!(
        "bank={bank}: {checks} conservation checks; relays forwarded {} dropped {} duplicated {} delayed {}; shares {s0:.4} {s1:.4} {s2:.4}",
        c.forwarded.load(Ordering::SeqCst),
        c.dropped.load(Ordering::SeqCst),
        c.duplicated.load(Ordering::SeqCst),
        c.delayed.load(Ordering::SeqCst)
    );
    assert!(
        c.dropped.load(Ordering::SeqCst) > 0
            && c.duplicated.load(Ordering::SeqCst) > 0
            && c.delayed.load(Ordering::SeqCst) > 0
    );
    let ledgers: Vec<_> = roles.iter().map(|r| r.ledger()).collect();
    let guards: Vec<_> = ledgers.iter().map(|l| l.lock()).collect();
    let refs: Vec<&HostLedger> = guards.iter().map(|g| &**g).collect();
    assert!(
        refs.iter().all(|l| l.open().count() == 0),
        "transfers still open"
    );
    assert!(conservation_error(&refs) < 1e-9);
    // Share moved to the VM that holds the others back, up to its host's room (1 - 0.5).
    assert!(s1 > 0.35, "vm1 share {s1}");
    assert!(s1 <= 0.5 + 1e-9, "vm1's host over capacity: {s1}");
    if kill_vm2 {
        assert!(s2 < 1e-3, "an exited VM keeps {s2}");
    }
    // The weights written follow the shares.
    for (i, h) in hosts.iter().enumerate() {
        let w = [s0, s1, s2][i];
        if kill_vm2 && i == 2 {
            continue;
        }
        let want = vibrad::dps::cpu_setting(w, 1.0, false).unwrap();
        assert_eq!(h.set.lock()[&format!("vm{i}")], want, "vm{i}");
    }
    for r in &roles {
        let bad = r.metrics().render();
        assert!(
            !bad.contains("vibrad_dps_bad_messages_total{"),
            "a relayed datagram was refused: {bad}"
        );
    }
}

#[test]
fn distributed_exchange_conserves_share_under_loss_duplication_and_reordering() {
    run_through_relays(false, 11, true);
}

#[test]
fn bank_exchange_conserves_share_under_loss_duplication_and_reordering() {
    run_through_relays(true, 23, false);
}

#[test]
fn bad_datagrams_are_refused_and_change_nothing() {
    let ports = free_ports(2);
    let me: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
    let peer_sock = UdpSocket::bind(format!("127.0.0.1:{}", ports[1])).unwrap();
    peer_sock
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let peer_addr = peer_sock.local_addr().unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    // host h0 is this daemon; h1 is the peer socket above, h2 a host the test never speaks as
    let h2: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let cfg = config(
        0,
        me,
        &|_, o| if o == 1 { peer_addr } else { h2 },
        false,
        "unused",
    );
    let host = CpuHost {
        vms: ["vm0".to_string()].into(),
        ..CpuHost::default()
    };
    let mut role = DpsRole::new(&cfg, host).unwrap();
    let cluster = vibrad::dps::fingerprint(cfg.dps.as_ref().unwrap());
    let ledger = role.ledger();
    let before = format!("{:?}", ledger.lock());
    let env = |from_host, cluster, body| {
        Envelope {
            from_host,
            cluster,
            low_open: 0,
            body,
        }
        .encode()
    };
    let offer = |from: u32, to: u32, amount: f64| {
        Body::Transfer(Message::Offer {
            id: TransferId(1),
            from: Party::Vm(VmId(from)),
            to: Party::Vm(VmId(to)),
            amount,
        })
    };
    let mut nan = env(1, cluster, offer(1, 0, 0.1));
    let at = nan.len() - 8;
    nan[at..].copy_from_slice(&f64::NAN.to_le_bytes());
    let bad: Vec<(&str, Vec<u8>, &UdpSocket)> = vec![
        ("junk", b"hello".to_vec(), &peer_sock),
        ("NaN amount", nan, &peer_sock),
        (
            "other cluster",
            env(1, cluster ^ 1, offer(1, 0, 0.1)),
            &peer_sock,
        ),
        (
            "from a stranger's address",
            env(1, cluster, offer(1, 0, 0.1)),
            &stranger,
        ),
        (
            "claims to be this host",
            env(0, cluster, offer(1, 0, 0.1)),
            &peer_sock,
        ),
        (
            "VM not on the sender",
            env(1, cluster, offer(2, 0, 0.1)),
            &peer_sock,
        ),
        (
            "VM not on this host",
            env(1, cluster, offer(1, 2, 0.1)),
            &peer_sock,
        ),
        ("more than W", env(1, cluster, offer(1, 0, 0.7)), &peer_sock),
        ("unknown VM", env(1, cluster, offer(7, 0, 0.1)), &peer_sock),
        (
            "reply for a transfer never sent",
            env(
                1,
                cluster,
                Body::Transfer(Message::Accept { id: TransferId(99) }),
            ),
            &peer_sock,
        ),
        (
            "report to a host that is no bank",
            env(
                1,
                cluster,
                Body::Report {
                    vm: VmId(1),
                    share: 0.1,
                    shortage: 0.0,
                    room: 0.0,
                },
            ),
            &peer_sock,
        ),
        (
            "bank party without a bank",
            env(
                1,
                cluster,
                Body::Transfer(Message::Offer {
                    id: TransferId(2),
                    from: Party::Bank(ProgramId(0)),
                    to: Party::Vm(VmId(0)),
                    amount: 0.1,
                }),
            ),
            &peer_sock,
        ),
    ];
    for (what, bytes, from) in &bad {
        from.send_to(bytes, me).unwrap();
        assert_eq!(
            role.poll(Duration::from_millis(100)),
            0,
            "{what} was accepted"
        );
    }
    assert_eq!(
        format!("{:?}", ledger.lock()),
        before,
        "a refused datagram changed the ledger"
    );
    let refused: f64 = ["decode", "cluster", "source", "host", "ledger"]
        .iter()
        .filter_map(|r| {
            role.metrics()
                .get("vibrad_dps_bad_messages_total", &[("reason", r)])
        })
        .sum();
    assert_eq!(refused, bad.len() as f64);
    // A good offer from the peer is accepted and answered (the path above can accept).
    peer_sock
        .send_to(&env(1, cluster, offer(1, 0, 0.1)), me)
        .unwrap();
    assert_eq!(role.poll(Duration::from_millis(200)), 1);
    let mut buf = [0u8; 128];
    let (n, _) = peer_sock.recv_from(&mut buf).unwrap();
    let reply = Envelope::decode(&buf[..n]).unwrap();
    assert_eq!(
        reply.body,
        Body::Transfer(Message::Accept { id: TransferId(1) })
    );
    assert!((ledger.lock().share(VmId(0)).unwrap() - 0.3).abs() < 1e-12);
}

/// Root: three daemons on loopback, each with its VM as a real cgroup (vibra-host's Linux
/// backend): vm1 runs a CPU burner, vm0 and vm2 sleep. The shares move to vm1, the kernel's
/// CPU weights (read back from the cgroup files) equal the shares' settings, and conservation
/// holds at every sample.
#[test]
fn kernel_weights_follow_the_shares() {
    const TEST: &str = "kernel_weights_follow_the_shares";
    if !nix_is_root() {
        common::skip(TEST, "needs root for cgroups and namespaces");
        return;
    }
    let ports = free_ports(3);
    let real: Vec<SocketAddr> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    let pid = std::process::id();
    let mut roles = Vec::new();
    let mut children = Kids(Vec::new());
    for (me, addr) in real.iter().enumerate() {
        let parent = format!("vdps{pid}h{me}");
        let mut cfg = config(me, *addr, &|_, o| real[o], false, &parent);
        // VM names must not collide between runs either.
        let d = cfg.dps.as_mut().unwrap();
        for v in &mut d.vms {
            v.name = format!("vdps{pid}{}", v.name);
        }
        for v in &mut d.vms {
            v.upstreams = v
                .upstreams
                .iter()
                .map(|u| format!("vdps{pid}{u}"))
                .collect();
        }
        let host = vibrad::dps::linux_host(&cfg).unwrap();
        let name = format!("vdps{pid}vm{me}");
        let child = vm_process(me == 1);
        let cpid = child.id();
        children.0.push(child);
        host.attach(&name, cpid).unwrap();
        roles.push(DpsRole::new(&cfg, host).unwrap());
    }
    let initial: Vec<u16> = roles
        .iter_mut()
        .enumerate()
        .map(|(i, r)| {
            r.apply();
            r.host_mut()
                .cpu(&format!("vdps{pid}vm{i}"))
                .unwrap()
                .weight
                .get()
        })
        .collect();
    let cluster = Cluster::start(roles);
    let checks = cluster.watch(Duration::from_secs(3));
    let until = Instant::now() + Duration::from_secs(3);
    while cluster.open() > 0 && Instant::now() < until {
        cluster.watch(Duration::from_millis(50));
    }
    let mut roles = cluster.stop();
    drop(children);
    let mut finals = Vec::new();
    for (i, r) in roles.iter_mut().enumerate() {
        let vm = format!("vdps{pid}vm{i}");
        let share = r.ledger().lock().share(VmId(i as u32)).unwrap();
        let kernel = r.host_mut().cpu(&vm).unwrap();
        let want = vibrad::dps::cpu_setting(share, 1.0, false).unwrap();
        assert_eq!(
            kernel.weight, want.weight,
            "{vm}: kernel weight vs share {share}"
        );
        finals.push((share, kernel.weight.get()));
    }
    eprintln!("{checks} conservation checks; weights {initial:?} -> {finals:?}");
    assert!(finals[1].0 > 0.3, "vm1's share did not grow: {finals:?}");
    assert!(finals[1].1 > initial[1] && finals[0].1 < initial[0]);
    drop(roles); // removes the cgroups and namespaces
}

/// The process a test VM runs: a busy one spins (it wants CPU), the others sleep. `exec`: the
/// shell becomes the sleep, so killing the child kills the sleep (a forked `sleep` would outlive
/// it, holding the test's stdout open for 10 minutes).
fn vm_process(busy: bool) -> std::process::Child {
    let script = if busy {
        "while :; do :; done"
    } else {
        "exec sleep 600"
    };
    std::process::Command::new("sh")
        .args(["-c", script])
        .spawn()
        .unwrap()
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// With `hook_socket` configured, a VM's upstreams are the ranks the PMPI hook reports it
/// waited on (records sent to the socket as the C hook sends them), not the configured
/// topology; without records it has none and offers nothing.
#[test]
fn upstreams_come_from_the_hook_when_its_socket_is_configured() {
    let ports = free_ports(3);
    let addr = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };
    let sock_path =
        std::env::temp_dir().join(format!("vibrad-dps-hook-{}.sock", std::process::id()));
    // vm0's configured upstream is vm1; the hook will say rank 0 waited on rank 2 instead.
    let src = format!(
        "host = \"h0\"\nroles = [\"dps\"]\n[dps]\nperiod_s = 0.1\nlisten = \"{}\"\ntotal = 0.6\ncpus = 1.0\nbackground = 0.5\nhook_socket = \"{}\"\njob = \"bsp-test\"\n[dps.peers]\nh1 = \"{}\"\nh2 = \"{}\"\n[[dps.vm]]\nname = \"vm0\"\nhost = \"h0\"\nupstreams = [\"vm1\"]\n[[dps.vm]]\nname = \"vm1\"\nhost = \"h1\"\n[[dps.vm]]\nname = \"vm2\"\nhost = \"h2\"\n",
        addr(0),
        sock_path.display(),
        addr(1),
        addr(2)
    );
    let hooked = Config::parse(&src).unwrap();
    let host = CpuHost {
        vms: ["vm0".to_string()].into(),
        start: Some(Instant::now()),
        ..CpuHost::default()
    };
    host.rate.lock().insert("vm0".into(), 0.01);
    let mut role = DpsRole::new(&hooked, host).unwrap();
    role.tick().unwrap(); // first reading: no utilisation yet
    std::thread::sleep(Duration::from_millis(50));
    role.tick().unwrap();
    assert_eq!(
        role.ledger().lock().open().count(),
        0,
        "no wait records: no upstream, no offer"
    );
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now_ns = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
    let record = vibra_mpi_hook::WaitRecord {
        kind: vibra_mpi_hook::WaitKind::PointToPoint,
        job: vibra_mpi_hook::job_hash("bsp-test"),
        pid: 1,
        rank: 0,
        world_size: 3,
        peer: 2,
        waits: 10,
        wait_ns: 50_000_000,
        start_ns: now_ns - 100_000_000,
        end_ns: now_ns,
    };
    let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
    client.send_to(&record.encode(), &sock_path).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    role.tick().unwrap();
    let open: Vec<(u64, u16, f64)> = role.ledger().lock().open().collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        open[0].1, 2,
        "the offer goes to vm2's host, the hook's upstream"
    );
    assert_eq!(
        role.metrics().get("vibrad_dps_hook_records_total", &[]),
        Some(1.0)
    );
    drop(role);
    assert!(
        !sock_path.exists(),
        "the hook socket is removed with the role"
    );
}

/// A VM whose ranks are not started yet keeps its share; once seen running, its exit returns
/// the share (offers to the other VMs); started again, it accepts share again.
#[test]
fn only_a_vm_seen_running_can_exit_and_it_can_come_back() {
    let ports = free_ports(3);
    let addr = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };
    let cfg = config(0, addr(0), &|_, o| addr(o), false, "unused");
    let host = CpuHost {
        vms: ["vm0".to_string()].into(),
        start: Some(Instant::now()),
        ..CpuHost::default()
    };
    host.dead.lock().insert("vm0".into());
    let dead = Arc::clone(&host.dead);
    let mut role = DpsRole::new(&cfg, host).unwrap();
    let ledger = role.ledger();
    role.tick().unwrap();
    role.tick().unwrap();
    assert_eq!(
        ledger.lock().open().count(),
        0,
        "a VM not started yet gave its share away"
    );
    assert!((ledger.lock().share(VmId(0)).unwrap() - 0.2).abs() < 1e-12);
    dead.lock().clear();
    role.tick().unwrap();
    dead.lock().insert("vm0".into());
    role.tick().unwrap();
    assert!(!ledger.lock().alive(VmId(0)));
    let open: Vec<(u64, u16, f64)> = ledger.lock().open().collect();
    assert_eq!(
        open.len(),
        2,
        "the exited VM's share goes to the other two: {open:?}"
    );
    assert!(ledger.lock().share(VmId(0)).unwrap() < 1e-12);
    dead.lock().clear();
    role.tick().unwrap();
    assert!(ledger.lock().alive(VmId(0)));
}

/// `STARTUP_PERIODS`: an idle VM's first measured period after it starts is its start-up,
/// not excess: it offers nothing then, and offers from its next period on.
#[test]
fn a_vm_gives_nothing_away_in_its_first_measured_period() {
    let ports = free_ports(3);
    let addr = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };
    let cfg = config(0, addr(0), &|_, o| addr(o), false, "unused");
    // vm0 runs but idles (0.05 CPU of its 0.2 share); its upstream is vm1.
    let mut role = DpsRole::new(&cfg, scripted_host(0)).unwrap();
    let ledger = role.ledger();
    role.tick().unwrap(); // first sample: no period measured yet
    std::thread::sleep(Duration::from_millis(60));
    role.tick().unwrap(); // first measured period: start-up
    assert_eq!(vibrad::dps::STARTUP_PERIODS, 1);
    assert_eq!(
        ledger.lock().open().count(),
        0,
        "the start-up period gave share away"
    );
    assert!((ledger.lock().share(VmId(0)).unwrap() - 0.2).abs() < 1e-12);
    std::thread::sleep(Duration::from_millis(60));
    role.tick().unwrap(); // second measured period: its excess is offered upstream
    assert_eq!(
        ledger.lock().open().count(),
        1,
        "an idle VM offers to its upstream after start-up"
    );
}

/// `min_share`: an idle VM (0.05 CPU of its 0.2 share, W / N = 0.2) gives away only what lies
/// above the floor: with `min_share = 0.75` (floor 0.15) it offers 0.05 x (1 - wh) = 0.025 to
/// its one upstream (0.075 without the floor) and deposits 0.05 in the bank (0.15 without).
#[test]
fn min_share_keeps_a_floor_in_both_modes() {
    for bank in [false, true] {
        for (min_share, want) in [(0.0, 0.15), (0.75, 0.05)] {
            let ports = free_ports(3);
            let addr =
                |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };
            // Host 2's vm2 idles; in bank mode the bank is h0, so its deposit crosses hosts.
            let mut cfg = config(2, addr(2), &|_, o| addr(o), bank, "unused");
            cfg.dps.as_mut().unwrap().min_share = min_share;
            let mut role = DpsRole::new(&cfg, scripted_host(2)).unwrap();
            let ledger = role.ledger();
            role.tick().unwrap(); // first sample
            std::thread::sleep(Duration::from_millis(100));
            role.tick().unwrap(); // start-up period: nothing
            std::thread::sleep(Duration::from_millis(100));
            role.tick().unwrap(); // gives away what is above the floor
            let open: Vec<(u64, u16, f64)> = ledger.lock().open().collect();
            assert_eq!(open.len(), 1, "bank {bank} min_share {min_share}: {open:?}");
            let sent = if bank { open[0].2 } else { open[0].2 * 2.0 }; // wh = 1/2
            assert!(
                (sent - want).abs() < 0.01,
                "bank {bank} min_share {min_share}: gave {sent}, want {want}"
            );
            let kept = ledger.lock().share(VmId(2)).unwrap();
            assert!(kept >= 0.2 * min_share - 1e-9, "kept {kept}");
        }
    }
}

/// `min_excess`: a VM that uses 0.19 CPU of its 0.2 share (5% below: one period's noise for a
/// VM that needs all of it) deposits 0.01 or offers upstream with the plain formulas and gives
/// nothing with `min_excess = 0.1`; an idle VM (0.05 CPU) still gives its 0.15 away.
#[test]
fn min_excess_keeps_a_share_used_nearly_whole() {
    for bank in [false, true] {
        for (rate, min_excess, want) in [
            (0.19, 0.0, Some(0.01)),
            (0.19, 0.1, None),
            (0.05, 0.1, Some(0.15)),
        ] {
            let ports = free_ports(3);
            let addr =
                |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };
            let mut cfg = config(2, addr(2), &|_, o| addr(o), bank, "unused");
            cfg.dps.as_mut().unwrap().min_excess = min_excess;
            let host = scripted_host(2);
            host.rate.lock().insert("vm2".into(), rate);
            let mut role = DpsRole::new(&cfg, host).unwrap();
            let ledger = role.ledger();
            role.tick().unwrap(); // first sample
            std::thread::sleep(Duration::from_millis(100));
            role.tick().unwrap(); // start-up period: nothing
            std::thread::sleep(Duration::from_millis(100));
            role.tick().unwrap();
            let open: Vec<(u64, u16, f64)> = ledger.lock().open().collect();
            let case = format!("bank {bank} use {rate} min_excess {min_excess}: {open:?}");
            match want {
                None => {
                    assert!(open.is_empty(), "{case}");
                    assert!((ledger.lock().share(VmId(2)).unwrap() - 0.2).abs() < 1e-12);
                }
                Some(want) => {
                    assert_eq!(open.len(), 1, "{case}");
                    let sent = if bank { open[0].2 } else { open[0].2 * 2.0 }; // wh = 1/2
                    assert!(
                        (sent - want).abs() < 0.005,
                        "{case}: gave {sent}, want {want}"
                    );
                }
            }
        }
    }
}

/// |shares + balance + in flight - W| over the ledgers the directory holds for `cluster`: each
/// host's record, or its fresh ledger (`fresh`, in host order) when it has not written one
/// (it has sent nothing yet).
fn directory_error(entries: &[(String, vibrad::kv::Entry)], fresh: &[HostLedger]) -> f64 {
    let ledgers: Vec<HostLedger> = fresh
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = format!("/h{i}");
            match entries.iter().find(|(k, _)| k.ends_with(&name)) {
                Some((k, e)) => {
                    let snap: Snapshot = serde_json::from_str(&e.value)
                        .unwrap_or_else(|err| panic!("{k}: {err}: {}", e.value));
                    HostLedger::restore(f.layout().clone(), Default::default(), snap)
                        .unwrap_or_else(|err| panic!("{k}: {err}"))
                }
                None => f.clone(),
            }
        })
        .collect();
    let refs: Vec<&HostLedger> = ledgers.iter().collect();
    conservation_error(&refs)
}

static SCENARIO: AtomicU64 = AtomicU64::new(0);

/// One crash-recovery scenario on `kv`: three daemons on loopback (vm1 computes flat out, vm0
/// and vm2 mostly wait) recording their ledgers in one directory; host `victim` stops dead at
/// `point` (nothing more reaches the directory, the network or the kernel: a kill -9 there);
/// it is restarted from the directory. W is checked on the directory's ledgers all along, on
/// the live ledgers once the victim is back, and at the end on every revision the directory
/// went through. Returns (checks, revisions checked).
fn crash_and_restart(
    kv: Arc<dyn vibrad::kv::Kv>,
    bank: bool,
    victim: usize,
    point: CrashPoint,
) -> (u64, i64) {
    let n = SCENARIO.fetch_add(1, Ordering::SeqCst);
    let prefix = format!("/vibra-dps-recovery-{}-{n}", std::process::id());
    let dir = Directory::new(Arc::clone(&kv), &prefix);
    let first_rev = dir.revision().unwrap();
    let ports = free_ports(3);
    let addr: Vec<SocketAddr> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    let cfgs: Vec<Config> = (0..3)
        .map(|me| config(me, addr[me], &|_, o| addr[o], bank, "unused"))
        .collect();
    let hosts: Vec<CpuHost> = (0..3).map(scripted_host).collect();
    let mut roles: Vec<DpsRole<CpuHost>> = (0..3)
        .map(|me| DpsRole::with_directory(&cfgs[me], hosts[me].clone(), dir.clone()).unwrap())
        .collect();
    let cluster_id = roles[0].cluster();
    let fresh: Vec<HostLedger> = roles.iter().map(|r| r.ledger().lock().clone()).collect();
    roles[victim].crash_at(point, CrashMode::Halt);
    let dps_prefix = format!("{prefix}/dps/{cluster_id:016x}/");
    let check_dir = || {
        let (entries, _) = dir.kv().get_prefix(&dps_prefix).unwrap();
        let e = directory_error(&entries, &fresh);
        assert!(
            e < 1e-9,
            "{point:?}: the directory's ledgers are off W by {e}"
        );
    };
    let mut ledgers: Vec<Arc<Mutex<HostLedger>>> = roles.iter().map(DpsRole::ledger).collect();
    let signals = Signals::default();
    let spawn = |mut r: DpsRole<CpuHost>, s: Signals| {
        std::thread::spawn(move || {
            r.run(&s).unwrap();
            r
        })
    };
    let mut threads: Vec<Option<JoinHandle<DpsRole<CpuHost>>>> = roles
        .into_iter()
        .map(|r| Some(spawn(r, signals.clone())))
        .collect();
    // Stops the daemons on every exit path (a failed assertion included).
    struct StopOnDrop(Signals);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.stop.store(true, Ordering::SeqCst);
        }
    }
    let _stop = StopOnDrop(signals.clone());
    let mut checks = 0u64;
    let until = Instant::now() + Duration::from_secs(10);
    while !threads[victim].as_ref().unwrap().is_finished() {
        assert!(
            Instant::now() < until,
            "{point:?}: host {victim} never reached it"
        );
        check_dir();
        checks += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let dead = threads[victim].take().unwrap().join().unwrap();
    assert!(dead.crashed());
    let frozen = dead.ledger().lock().snapshot();
    drop(dead); // its socket closes, as with the process
    let host = format!("h{victim}");
    let record = dir.read_dps(cluster_id, &host).unwrap().value.unwrap();
    // The crash was mid-exchange: what the directory holds shows it.
    match point {
        CrashPoint::OfferSent => assert!(!record.open.is_empty(), "{record:?}"),
        CrashPoint::GrantsSent => assert!(
            record.open.iter().any(|o| matches!(o.from, Who::Bank(_))),
            "{record:?}"
        ),
        CrashPoint::OfferAccepted => assert!(
            record.decided.iter().any(|d| d.accepted > 0.0),
            "{record:?}"
        ),
        CrashPoint::ReplyReceived => assert!(
            frozen.open.len() < record.open.len(),
            "the closed transfer is still open in the record: {frozen:?} vs {record:?}"
        ),
    }
    for _ in 0..50 {
        check_dir();
        checks += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    // Restart: the ledger comes back from the directory.
    let back = DpsRole::with_directory(&cfgs[victim], hosts[victim].clone(), dir.clone()).unwrap();
    assert_eq!(back.ledger().lock().snapshot(), record);
    ledgers[victim] = back.ledger();
    threads[victim] = Some(spawn(back, signals.clone()));
    let live = |ledgers: &[Arc<Mutex<HostLedger>>]| {
        let guards: Vec<_> = ledgers.iter().map(|l| l.lock()).collect();
        let refs: Vec<&HostLedger> = guards.iter().map(|g| &**g).collect();
        (
            conservation_error(&refs),
            refs.iter().map(|l| l.open().count()).sum::<usize>(),
        )
    };
    // At least a second of exchange after the restart, then until nothing is open.
    let busy_until = Instant::now() + Duration::from_secs(1);
    let until = Instant::now() + Duration::from_secs(8);
    let mut settled = 0;
    loop {
        let (e, open) = live(&ledgers);
        assert!(
            e < 1e-9,
            "{point:?}: live ledgers off W by {e} after the restart"
        );
        check_dir();
        checks += 2;
        settled = if open == 0 { settled + 1 } else { 0 };
        if (settled >= 20 && Instant::now() > busy_until) || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    signals.stop.store(true, Ordering::SeqCst);
    let roles: Vec<DpsRole<CpuHost>> = threads
        .into_iter()
        .map(|t| t.unwrap().join().unwrap())
        .collect();
    let (e, open) = live(&ledgers);
    assert!(e < 1e-9);
    // Every transfer is answered, those restored from the directory included.
    let restored: Vec<u64> = record.open.iter().map(|o| o.id).collect();
    assert!(
        roles.iter().all(|r| r
            .ledger()
            .lock()
            .open()
            .all(|(id, _, _)| !restored.contains(&id))),
        "{point:?}: a transfer restored from the directory was never closed"
    );
    assert_eq!(open, 0, "{point:?}: transfers still open at the end");
    // Every revision the directory went through holds W.
    let last = dir.revision().unwrap();
    for rev in first_rev + 1..=last {
        let at = dir.kv().get_prefix_at(&dps_prefix, rev).unwrap();
        let e = directory_error(&at, &fresh);
        assert!(e < 1e-9, "{point:?}: revision {rev} off W by {e}");
    }
    let shares: Vec<f64> = (0..3)
        .map(|v| {
            ledgers
                .iter()
                .find_map(|l| l.lock().share(VmId(v)))
                .unwrap()
        })
        .collect();
    let metric = |name: &str| -> f64 {
        roles
            .iter()
            .map(|r| r.metrics().get(name, &[]).unwrap_or(0.0))
            .sum()
    };
    let (records, periods) = (
        metric("vibrad_dps_records_total"),
        metric("vibrad_dps_periods_total"),
    );
    eprintln!(
        "{point:?} on h{victim} (bank {bank}): {checks} checks, {} revisions, shares {shares:.4?}; {records} records in {periods} periods of the daemons (survivors' whole run, the victim's second life: {:.2} per period), {:.2} ms per record",
        last - first_rev,
        records / periods.max(1.0),
        1e3 * metric("vibrad_dps_record_seconds_total") / records.max(1.0)
    );
    (checks, last - first_rev)
}

/// A dps daemon stopped dead mid-exchange (after an offer left, after it accepted one, after a
/// reply closed one of its transfers, the bank after its grants left and after it accepted a
/// deposit) and restarted loses no share: W holds on the directory all along, on the live
/// ledgers after the restart and on every revision of the directory; the transfers it had open
/// are answered. On the in-memory directory and on a real etcd (skipped loudly without).
#[test]
fn a_daemon_stopped_dead_mid_exchange_restarts_from_the_directory() {
    const TEST: &str = "a_daemon_stopped_dead_mid_exchange_restarts_from_the_directory";
    let scenarios = [
        (false, 0, CrashPoint::OfferSent),
        (false, 1, CrashPoint::OfferAccepted),
        (false, 0, CrashPoint::ReplyReceived),
        (true, 0, CrashPoint::GrantsSent),
        (true, 0, CrashPoint::OfferAccepted),
    ];
    common::each_store(TEST, |kv| {
        for (bank, victim, point) in scenarios {
            crash_and_restart(Arc::clone(&kv), bank, victim, point);
        }
    });
}

/// A `vibrad` dps process of the kill -9 test, its VM's process and its log.
struct Daemon {
    child: Option<std::process::Child>,
    vm: Option<std::process::Child>,
    log: std::path::PathBuf,
    restarts: u32,
    parent: String,
    name: String,
}

impl Daemon {
    /// What an operator does after a kill -9 (vibrad owns its VMs, a restart recreates
    /// them): the dead daemon's VM is stopped and its cgroups, namespace and link removed.
    fn remove_vm(&mut self) {
        if let Some(mut v) = self.vm.take() {
            let _ = v.kill();
            let _ = v.wait();
        }
        for cg in vm_cgroups(&self.parent, &self.name) {
            let until = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(&cg).is_err() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let link = format!("{}h", self.name);
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        ip(&["link", "del", &link]);
        ip(&["netns", "del", &self.name]);
        // The namespace's teardown is asynchronous: wait for the link to be gone.
        let until = Instant::now() + Duration::from_secs(5);
        while ip(&["link", "show", &link]) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    /// On every exit path: the daemon killed, its VM and the VM's kernel objects removed,
    /// its cgroup parent too.
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.remove_vm();
        for h in ["cpu", "cpuacct", "memory", ""] {
            let _ = std::fs::remove_dir(
                std::path::Path::new("/sys/fs/cgroup")
                    .join(h)
                    .join(&self.parent),
            );
        }
    }
}

/// The cgroup directories vibra-host made for `vm` under `parent` (cgroup v1 hierarchies or
/// the v2 tree).
fn vm_cgroups(parent: &str, vm: &str) -> Vec<std::path::PathBuf> {
    ["cpu", "cpuacct", "memory", ""]
        .iter()
        .map(|h| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(h)
                .join(parent)
                .join(vm)
        })
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// Root and etcd: three `vibrad` dps processes on loopback with the directory on a real etcd,
/// each VM a real cgroup (vm1 burns CPU, vm0 and vm2 sleep). Daemons are killed with SIGKILL
/// mid-exchange (by themselves at `--crash-at` points, and one from outside at an arbitrary
/// moment), their dead VMs removed as an operator would, and restarted; the restarted daemon
/// restores its ledger from etcd. W holds on etcd at every sample and on every revision.
fn kill_dash_nine_processes(etcd: &common::Etcd, bank: bool) {
    use std::os::unix::process::ExitStatusExt;
    let pid = std::process::id();
    let tag = if bank { "b" } else { "d" };
    let prefix = format!("/vibra-dps-kill-{pid}-{tag}");
    let kv: Arc<dyn vibrad::kv::Kv> = Arc::new(etcd.kv());
    let dir = Directory::new(Arc::clone(&kv), &prefix);
    let first_rev = dir.revision().unwrap();
    let ports = free_ports(3);
    let addr: Vec<SocketAddr> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    let tmp = std::env::temp_dir().join(format!("vibrad-dps-kill-{pid}-{tag}"));
    std::fs::create_dir_all(&tmp).unwrap();
    struct RmDir(std::path::PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _tmp = RmDir(tmp.clone());
    let vm = |i: usize| format!("vk{pid}{tag}{i}");
    let parent = |i: usize| format!("vdpsk{pid}{tag}{i}");
    let mut files = Vec::new();
    let mut cfgs = Vec::new();
    for me in 0..3 {
        let mut text = format!(
            "host = \"h{me}\"\nroles = [\"dps\"]\n[directory]\nbackend = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\n[linux]\ncgroup_parent = \"{}\"\n[dps]\nperiod_s = 0.1\nlisten = \"{}\"\ntotal = 0.6\ncpus = 1.0\nbackground = 0.5\n",
            etcd.url,
            parent(me),
            addr[me]
        );
        if bank {
            text.push_str("mode = \"bank\"\nbank = \"h0\"\n");
        }
        text.push_str("[dps.peers]\n");
        for o in (0..3).filter(|&o| o != me) {
            text.push_str(&format!("h{o} = \"{}\"\n", addr[o]));
        }
        let ups = [
            format!("[\"{}\"]", vm(1)),
            "[]".into(),
            format!("[\"{}\"]", vm(1)),
        ];
        for (i, u) in ups.iter().enumerate() {
            text.push_str(&format!(
                "[[dps.vm]]\nname = \"{}\"\nhost = \"h{i}\"\nupstreams = {u}\n",
                vm(i)
            ));
        }
        let f = tmp.join(format!("h{me}.toml"));
        std::fs::write(&f, &text).unwrap();
        cfgs.push(Config::parse(&text).unwrap());
        files.push(f);
    }
    let cluster_id = vibrad::dps::fingerprint(cfgs[0].dps.as_ref().unwrap());
    // The ledgers of hosts that have not written yet.
    let fresh: Vec<HostLedger> = (0..3)
        .map(|me| {
            let d = cfgs[me].dps.as_ref().unwrap();
            let layout = vibrad::dps::ledger::Layout {
                me: me as u16,
                bank_host: bank.then_some(0),
                vm_host: vec![0, 1, 2],
                total: d.total,
                cpus: d.cpus,
                background: d.background,
            };
            HostLedger::new(layout, d.acceptance, 0)
        })
        .collect();
    let dps_prefix = format!("{prefix}/dps/{cluster_id:016x}/");
    let check = || {
        let (entries, _) = kv.get_prefix(&dps_prefix).unwrap();
        let e = directory_error(&entries, &fresh);
        assert!(e < 1e-9, "etcd's ledgers off W by {e}");
    };
    // Crash points per host, one per life; "outside" is a SIGKILL from this test.
    let mut plans: Vec<Vec<&str>> = if bank {
        vec![
            vec!["grants-sent", "offer-accepted"],
            vec!["outside"],
            vec![],
        ]
    } else {
        vec![
            vec!["offer-sent", "reply-received"],
            vec!["offer-accepted"],
            vec!["outside"],
        ]
    };
    for p in &mut plans {
        p.reverse();
    }
    let start = |me: usize, point: Option<&str>, d: &mut Daemon| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vibrad"));
        cmd.arg("--config").arg(&files[me]);
        if let Some(p) = point.filter(|p| *p != "outside") {
            cmd.args(["--crash-at", p]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&d.log)
            .unwrap();
        cmd.env("RUST_LOG", "info")
            .stderr(log)
            .stdout(std::process::Stdio::null());
        d.child = Some(cmd.spawn().unwrap());
        // Its VM appears; a process is started into it.
        let until = Instant::now() + Duration::from_secs(20);
        while vm_cgroups(&parent(me), &vm(me)).is_empty() {
            assert!(
                Instant::now() < until,
                "h{me}'s VM never appeared: {}",
                std::fs::read_to_string(&d.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let child = vm_process(me == 1);
        for cg in vm_cgroups(&parent(me), &vm(me)) {
            std::fs::write(cg.join("cgroup.procs"), child.id().to_string()).unwrap();
        }
        d.vm = Some(child);
    };
    let mut daemons: Vec<Daemon> = (0..3)
        .map(|me| Daemon {
            child: None,
            vm: None,
            log: tmp.join(format!("h{me}.log")),
            restarts: 0,
            parent: parent(me),
            name: vm(me),
        })
        .collect();
    let mut current: Vec<Option<&str>> = vec![None; 3];
    for me in 0..3 {
        current[me] = plans[me].pop();
        start(me, current[me], &mut daemons[me]);
    }
    let t0 = Instant::now();
    let mut checks = 0u64;
    let mut kills = 0;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        check();
        checks += 1;
        for me in 0..3 {
            let d = &mut daemons[me];
            if current[me] == Some("outside")
                && t0.elapsed() > Duration::from_millis(1500 + 300 * kills)
            {
                let p = nix::unistd::Pid::from_raw(d.child.as_ref().unwrap().id() as i32);
                let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
            }
            let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() else {
                continue;
            };
            assert_eq!(
                status.signal(),
                Some(9),
                "h{me} ended without SIGKILL ({status}): {}",
                std::fs::read_to_string(&d.log).unwrap_or_default()
            );
            kills += 1;
            check();
            d.remove_vm();
            assert!(
                vm_cgroups(&parent(me), &vm(me)).is_empty(),
                "h{me}'s VM stays"
            );
            d.restarts += 1;
            current[me] = plans[me].pop();
            start(me, current[me], d);
        }
        if plans.iter().all(Vec::is_empty) && current.iter().all(Option::is_none) {
            break;
        }
        assert!(
            Instant::now() < until,
            "crash points not all reached in 60 s: left {plans:?}, current {current:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Everyone back: a second of exchange, checked all along.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        check();
        checks += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    for (me, d) in daemons.iter_mut().enumerate() {
        // The VM's process ends first, so that the daemon can remove the VM's cgroup.
        if let Some(mut v) = d.vm.take() {
            let _ = v.kill();
            let _ = v.wait();
        }
        let c = d.child.as_mut().unwrap();
        let p = nix::unistd::Pid::from_raw(c.id() as i32);
        nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = c.wait().unwrap();
        let log = std::fs::read_to_string(&d.log).unwrap_or_default();
        assert!(status.success(), "h{me}: {status}: {log}");
        if d.restarts > 0 {
            assert!(
                log.contains("ledger restored from the directory"),
                "h{me} did not restore its ledger: {log}"
            );
        }
    }
    check();
    let last = dir.revision().unwrap();
    for rev in first_rev + 1..=last {
        let at = kv.get_prefix_at(&dps_prefix, rev).unwrap();
        let e = directory_error(&at, &fresh);
        assert!(e < 1e-9, "etcd revision {rev} off W by {e}");
    }
    let (recs, _) = dir.dps_ledgers(cluster_id).unwrap();
    let shares: Vec<f64> = recs
        .values()
        .flat_map(|s| s.shares.values().copied())
        .collect();
    let balance: f64 = recs.values().map(|s| s.balance).sum();
    eprintln!(
        "kill -9 (bank {bank}): {kills} daemons killed and restarted, {checks} checks of W on etcd, {} revisions checked; shares at the end {shares:.4?}, bank balance {balance:.4}",
        last - first_rev
    );
    assert_eq!(kills, plans_len(bank));
}

fn plans_len(bank: bool) -> u64 {
    if bank { 3 } else { 4 }
}

/// Root and etcd: real `vibrad` processes killed with SIGKILL mid-exchange and restarted,
/// fully distributed and with the bank (the bank's daemon killed twice); see
/// `kill_dash_nine_processes`.
#[test]
fn dps_daemons_killed_with_sigkill_restart_from_etcd() {
    const TEST: &str = "dps_daemons_killed_with_sigkill_restart_from_etcd";
    if !nix_is_root() {
        common::skip(TEST, "needs root for cgroups and namespaces");
        return;
    }
    let Some(etcd) = common::Etcd::start(TEST) else {
        return;
    };
    kill_dash_nine_processes(&etcd, false);
    kill_dash_nine_processes(&etcd, true);
}

/// `--dry-run` in the dps role: the period's transfers are computed and printed, but no
/// datagram leaves, no CPU setting is written, nothing is recorded in the directory, and a
/// received offer is decided on a copy and not answered.
#[test]
fn dry_run_sends_writes_and_records_nothing() {
    let ports = free_ports(3);
    let addr = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };
    // The peers' addresses are sockets of this test: anything sent to them is seen.
    let peer1 = UdpSocket::bind(addr(1)).unwrap();
    let peer2 = UdpSocket::bind(addr(2)).unwrap();
    for p in [&peer1, &peer2] {
        p.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    }
    for bank in [false, true] {
        let cfg = config(0, addr(0), &|_, o| addr(o), bank, "unused");
        let host = CpuHost {
            vms: ["vm0".to_string()].into(),
            start: Some(Instant::now()),
            ..CpuHost::default()
        };
        host.rate.lock().insert("vm0".into(), 0.01);
        let set = Arc::clone(&host.set);
        let dir = Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/dry");
        let mut role = DpsRole::with_directory(&cfg, host, dir.clone()).unwrap();
        role.set_dry_run(true);
        let before = role.ledger().lock().snapshot();
        for _ in 0..3 {
            role.tick().unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
        role.retransmit();
        // An offer from h1 is decided on a copy and not answered.
        let offer = Body::Transfer(Message::Offer {
            id: TransferId(1),
            from: Party::Vm(VmId(1)),
            to: Party::Vm(VmId(0)),
            amount: 0.05,
        });
        let env = Envelope {
            from_host: 1,
            cluster: role.cluster(),
            low_open: 0,
            body: offer,
        };
        peer1.send_to(&env.encode(), addr(0)).unwrap();
        assert_eq!(role.poll(Duration::from_millis(100)), 1);
        let mut buf = [0u8; 256];
        assert!(
            peer1.recv_from(&mut buf).is_err(),
            "bank {bank}: a dry run answered"
        );
        assert!(
            peer2.recv_from(&mut buf).is_err(),
            "bank {bank}: a dry run sent"
        );
        assert_eq!(role.ledger().lock().snapshot(), before, "bank {bank}");
        assert!(
            set.lock().is_empty(),
            "bank {bank}: a dry run wrote a CPU setting"
        );
        assert_eq!(dir.read_dps(role.cluster(), "h0").unwrap().revision, 0);
        // The same role, not dry, moves share (vm0 offers its excess to vm1 on h1, or
        // deposits it in the bank, which is on this host) and records it.
        role.set_dry_run(false);
        role.tick().unwrap();
        assert_ne!(role.ledger().lock().snapshot(), before, "bank {bank}");
        if !bank {
            assert!(
                peer1.recv_from(&mut buf).is_ok(),
                "the real run sent nothing"
            );
            assert!(dir.read_dps(role.cluster(), "h0").unwrap().revision > 0);
        }
    }
}

/// SIGHUP in the dps role: a file that changes only tunables (here `cpus`, `period_s`) is
/// applied in place, keeping the ledger; one that changes the layout (W) or does not parse is
/// refused and the old configuration kept.
#[test]
fn sighup_reloads_tunables_and_refuses_layout_changes() {
    let ports = free_ports(3);
    let addr = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };
    let cfg = config(0, addr(0), &|_, o| addr(o), false, "unused");
    let file = std::env::temp_dir().join(format!("vibrad-dps-reload-{}.toml", std::process::id()));
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(file.clone());
    let host = CpuHost {
        vms: ["vm0".to_string()].into(),
        start: Some(Instant::now()),
        ..CpuHost::default()
    };
    let mut role = DpsRole::new(&cfg, host).unwrap();
    role.set_config_path(file.clone());
    let ledger = role.ledger();
    let signals = Signals::default();
    let s = signals.clone();
    let t = std::thread::spawn(move || {
        role.run(&s).unwrap();
        role
    });
    let source = |cpus: &str, total: &str| {
        let mut s = format!(
            "host = \"h0\"\nroles = [\"dps\"]\n[linux]\ncgroup_parent = \"unused\"\n[dps]\nperiod_s = 0.2\nlisten = \"{}\"\ntotal = {total}\ncpus = {cpus}\nbackground = 0.5\n[dps.peers]\n",
            addr(0)
        );
        for o in 1..3 {
            s.push_str(&format!("h{o} = \"{}\"\n", addr(o)));
        }
        let ups = ["[\"vm1\"]", "[]", "[\"vm1\"]"];
        for (i, u) in ups.iter().enumerate() {
            s.push_str(&format!(
                "[[dps.vm]]\nname = \"vm{i}\"\nhost = \"h{i}\"\nupstreams = {u}\n"
            ));
        }
        s
    };
    let reload = |text: &str| {
        std::fs::write(&file, text).unwrap();
        signals.reload.store(true, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(5);
        while signals.reload.load(Ordering::SeqCst) {
            assert!(Instant::now() < until, "SIGHUP never handled");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let shares = || ledger.lock().snapshot().shares;
    let before = shares();
    reload(&source("1.5", "0.6"));
    assert_eq!(
        ledger.lock().layout().cpus,
        1.5,
        "a tunable was not reloaded"
    );
    assert_eq!(shares(), before, "a reload changed the shares");
    reload(&source("2.0", "0.9"));
    assert_eq!(
        ledger.lock().layout().cpus,
        1.5,
        "a layout change (W) was applied"
    );
    assert_eq!(ledger.lock().layout().total, 0.6);
    reload("host = \"h0\"\n[dps\n");
    assert_eq!(ledger.lock().layout().cpus, 1.5, "a bad file was applied");
    signals.stop.store(true, Ordering::SeqCst);
    drop(t.join().unwrap());
}

/// A store whose next compare-and-swap writes succeed but answer with an error, as an etcd
/// write does whose reply is lost in a client timeout.
struct LostReplies {
    inner: vibrad::kv::MemKv,
    lose: AtomicU64,
}

impl vibrad::kv::Kv for LostReplies {
    fn get(&self, key: &str) -> vibrad::Result<Option<vibrad::kv::Entry>> {
        self.inner.get(key)
    }
    fn get_prefix(&self, prefix: &str) -> vibrad::Result<(Vec<(String, vibrad::kv::Entry)>, i64)> {
        self.inner.get_prefix(prefix)
    }
    fn put(&self, key: &str, value: &str, lease: Option<i64>) -> vibrad::Result<i64> {
        self.inner.put(key, value, lease)
    }
    fn cas_put(
        &self,
        key: &str,
        expected: i64,
        value: &str,
        lease: Option<i64>,
    ) -> vibrad::Result<Option<i64>> {
        let r = self.inner.cas_put(key, expected, value, lease)?;
        if r.is_some() && self.lose.load(Ordering::SeqCst) > 0 {
            self.lose.fetch_sub(1, Ordering::SeqCst);
            return Err(vibrad::Error::Etcd("timed out (reply lost)".into()));
        }
        Ok(r)
    }
    fn delete(&self, key: &str) -> vibrad::Result<()> {
        self.inner.delete(key)
    }
    fn grant_lease(&self, ttl: Duration) -> vibrad::Result<i64> {
        self.inner.grant_lease(ttl)
    }
    fn keep_alive(&self, lease: i64) -> vibrad::Result<()> {
        self.inner.keep_alive(lease)
    }
    fn revoke(&self, lease: i64) -> vibrad::Result<()> {
        self.inner.revoke(lease)
    }
    fn wait(&self, prefix: &str, after: i64, timeout: Duration) -> vibrad::Result<bool> {
        self.inner.wait(prefix, after, timeout)
    }
    fn history(&self, key: &str) -> vibrad::Result<Vec<String>> {
        self.inner.history(key)
    }
    fn get_prefix_at(
        &self,
        prefix: &str,
        revision: i64,
    ) -> vibrad::Result<Vec<(String, vibrad::kv::Entry)>> {
        self.inner.get_prefix_at(prefix, revision)
    }
}

/// A record write that was applied but whose reply was lost (CI saw a bank daemon stop with
/// "another daemon wrote this host's ledger" under load, killing its VM's rank): the next
/// compare-and-swap fails, the daemon finds its own record there and goes on recording.
#[test]
fn a_record_applied_with_its_reply_lost_is_not_another_writer() {
    let ports = free_ports(3);
    let addr = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };
    let cfg = config(0, addr(0), &|_, o| addr(o), false, "unused");
    let kv = Arc::new(LostReplies {
        inner: vibrad::kv::MemKv::new(),
        lose: AtomicU64::new(1),
    });
    let dir = Directory::new(kv.clone(), "/lost-reply");
    let mut role = DpsRole::with_directory(&cfg, scripted_host(0), dir.clone()).unwrap();
    let records = || {
        let (recs, rev) = dir.dps_ledgers(role_cluster(&cfg)).unwrap();
        (recs.len(), rev)
    };
    // vm0 idles: after its start-up period it offers every period, and each offer is recorded
    // before it is sent.
    for _ in 0..6 {
        role.tick().unwrap();
        std::thread::sleep(Duration::from_millis(40));
    }
    assert_eq!(kv.lose.load(Ordering::SeqCst), 0, "no record was attempted");
    let (n, rev_before) = records();
    assert_eq!(n, 1);
    for _ in 0..4 {
        role.retransmit();
        role.tick().unwrap();
        std::thread::sleep(Duration::from_millis(40));
    }
    let (_, rev_after) = records();
    assert!(
        rev_after > rev_before,
        "the daemon stopped recording after the lost reply (revision {rev_before} -> {rev_after})"
    );
    assert!(!role.crashed());
}

fn role_cluster(cfg: &Config) -> u64 {
    vibrad::dps::fingerprint(cfg.dps.as_ref().unwrap())
}
