//! One experiment run: start the servers, the clients and the burners, warm up, measure, stop,
//! and summarise the delays by timestamp source.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use vtimestamp::socket::{KernelClock, TimestampedSocket};

use crate::clients::{self, ClientLog};
use crate::server::{self, ServerLog, ServerParams};
use crate::{DelaySummary, GameError, SessionKey, affinity, burner, error::io};

/// What to run.
///
/// ```
/// let cfg = vibra_game::GameConfig { servers: 4, ..Default::default() };
/// assert_eq!(cfg.input_rate_hz, 20.0);
/// assert_eq!(cfg.update_hz, 20);
/// ```
#[derive(Debug, Clone)]
pub struct GameConfig {
    /// Game servers (threads, each with its own socket and world), at least 1.
    pub servers: usize,
    /// Clients per server, at least 1.
    pub clients_per_server: usize,
    /// Mean inputs per second per client (Poisson): 20 in section 6.5.2.
    pub input_rate_hz: f64,
    /// World updates per second: 20 in section 6.5.2 (Quake 3's default).
    pub update_hz: u32,
    /// Integration steps per world frame ([`crate::World::tick`]): the game logic's CPU cost.
    /// The default, 10,000 steps with 4 players, takes roughly 0.3 to 0.8 ms per frame on a
    /// shared 2-core x86-64 machine (`--example frame_cost` measures it).
    pub sim_substeps: u32,
    /// CPU burner threads pinned with the game servers: the dissertation's CPU-bound VMs
    /// sharing the servers' CPU (section 6.6.2).
    pub burners: usize,
    /// Unpinned background burner threads that may run on any CPU, the clients' included:
    /// other work on the machine (other tenants, a compile), as a controlled, documented load
    /// rather than whatever else happens to run. 0 by default.
    pub background: usize,
    /// Pin the servers and burners to one CPU and the clients to the others (section 6.6.2's
    /// "restricted CPU assignment"; the clients stand in for the separate client machine).
    /// Ignored when the process may use only one CPU.
    pub pin_servers: bool,
    /// Time before measuring starts (sockets open, kernel stamping on, worlds populated).
    pub warmup: Duration,
    /// Time measured.
    pub measure: Duration,
    /// Seed for keys and client randomness.
    pub seed: u64,
}

impl Default for GameConfig {
    fn default() -> Self {
        GameConfig {
            servers: 1,
            clients_per_server: 4,
            input_rate_hz: 20.0,
            update_hz: 20,
            sim_substeps: 10_000,
            burners: 2,
            background: 0,
            pin_servers: true,
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(3),
            seed: 1,
        }
    }
}

/// What a run measured.
///
/// ```no_run
/// let report = vibra_game::run(&vibra_game::GameConfig::default())?;
/// println!("app clock mean {:.0} us, kernel mean {:.0} us", report.app.mean_us, report.kernel.mean_us);
/// # Ok::<(), vibra_game::GameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct GameReport {
    /// The configuration run.
    pub config: GameConfig,
    /// Delay from the client's send to the application clock read after `recvmsg`.
    pub app: DelaySummary,
    /// Delay from the client's send to the kernel arrival stamp.
    pub kernel: DelaySummary,
    /// Inputs the clients sent (whole run).
    pub inputs_sent: u64,
    /// World updates sent by the servers and received by the clients (whole run).
    pub updates_sent: u64,
    /// World updates received by the clients.
    pub updates_received: u64,
    /// Inputs rejected by the digest check (must be 0).
    pub rejected: usize,
    /// Inputs whose kernel stamp was later than the application clock (must be 0).
    pub kernel_after_app: usize,
    /// The CPU the servers and burners were pinned to, if they were.
    pub server_cpu: Option<usize>,
}

fn check(cfg: &GameConfig) -> Result<(), GameError> {
    let bad = |what: &str| Err(GameError::Config(what.to_owned()));
    if cfg.servers == 0 || cfg.clients_per_server == 0 {
        return bad("servers and clients per server must be at least 1");
    }
    if !(cfg.input_rate_hz.is_finite() && cfg.input_rate_hz > 0.0) {
        return bad("input rate must be positive and finite");
    }
    if cfg.update_hz == 0 || cfg.update_hz > 1000 {
        return bad("update rate must be in 1..=1000 Hz");
    }
    if cfg.measure.is_zero() {
        return bad("measuring time must be positive");
    }
    Ok(())
}

fn join<T>(h: JoinHandle<T>, what: &'static str) -> Result<T, GameError> {
    h.join().map_err(|_| GameError::ThreadPanicked(what))
}

/// Runs the model game once on loopback and returns the delays by timestamp source.
///
/// ```
/// use std::time::Duration;
/// let cfg = vibra_game::GameConfig {
///     servers: 2, burners: 0,
///     warmup: Duration::from_millis(100), measure: Duration::from_millis(400),
///     ..Default::default()
/// };
/// let r = vibra_game::run(&cfg)?;
/// assert!(r.app.samples > 0);
/// assert_eq!(r.kernel_after_app, 0);
/// assert_eq!(r.app.samples, r.kernel.samples);
/// # Ok::<(), vibra_game::GameError>(())
/// ```
pub fn run(cfg: &GameConfig) -> Result<GameReport, GameError> {
    check(cfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let frame = Duration::from_secs(1) / cfg.update_hz;

    // Sockets first, so kernel stamping is on machine-wide before any input is sent.
    let mut servers = Vec::with_capacity(cfg.servers);
    let mut clients = Vec::new();
    for s in 0..cfg.servers {
        let sock = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns)?;
        let addr = sock.socket().local_addr().map_err(io("local_addr"))?;
        let key = SessionKey::from_seed(cfg.seed ^ (s as u64).wrapping_mul(0x9E37_79B9));
        for c in 0..cfg.clients_per_server {
            let id = (s * cfg.clients_per_server + c) as u32;
            clients.push(clients::new_client(id, addr, key)?);
        }
        servers.push((sock, key));
    }

    let cpus = affinity::allowed_cpus();
    let (server_cpu, client_cpu) = match (cfg.pin_servers, cpus.first(), cpus.last()) {
        (true, Some(&first), Some(&last)) if first != last => (Some(last), Some(first)),
        _ => (None, None),
    };
    let pin = move |cpu: Option<usize>| cpu.map_or(Ok(()), affinity::pin_current_thread);

    let result = (|| {
        let mut server_threads = Vec::new();
        for (i, (sock, key)) in servers.into_iter().enumerate() {
            let params = ServerParams {
                key,
                frame,
                sim_substeps: cfg.sim_substeps,
                stop: stop.clone(),
                measuring: measuring.clone(),
                records: None,
            };
            server_threads.push(
                thread::Builder::new()
                    .name(format!("game-server-{i}"))
                    .spawn(move || {
                        pin(server_cpu)?;
                        server::serve(sock, params)
                    })
                    .map_err(io("spawn server"))?,
            );
        }
        let mut burners = Vec::new();
        for i in 0..cfg.burners {
            let stop = stop.clone();
            burners.push(
                thread::Builder::new()
                    .name(format!("burner-{i}"))
                    .spawn(move || {
                        pin(server_cpu)?;
                        Ok::<_, GameError>(burner::burn(stop))
                    })
                    .map_err(io("spawn burner"))?,
            );
        }
        for i in 0..cfg.background {
            let stop = stop.clone();
            burners.push(
                thread::Builder::new()
                    .name(format!("background-{i}"))
                    .spawn(move || Ok::<_, GameError>(burner::burn(stop)))
                    .map_err(io("spawn background burner"))?,
            );
        }
        let (rate, seed, client_stop) = (cfg.input_rate_hz, cfg.seed, stop.clone());
        let driver = thread::Builder::new()
            .name("game-clients".into())
            .spawn(move || {
                pin(client_cpu)?;
                clients::drive(clients, rate, seed, client_stop)
            })
            .map_err(io("spawn clients"))?;

        thread::sleep(cfg.warmup);
        measuring.store(true, Ordering::Relaxed);
        thread::sleep(cfg.measure);
        measuring.store(false, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);

        let client_log: ClientLog = join(driver, "client")??;
        let mut logs: Vec<ServerLog> = Vec::new();
        for h in server_threads {
            logs.push(join(h, "server")??);
        }
        for h in burners {
            join(h, "burner")??;
        }
        Ok::<_, GameError>((client_log, logs))
    })();
    // Whatever happened, no thread keeps running.
    stop.store(true, Ordering::Relaxed);
    let (client_log, logs) = result?;

    let mut kernel: Vec<u64> = logs.iter().flat_map(|l| l.kernel.iter().copied()).collect();
    let mut app: Vec<u64> = logs.iter().flat_map(|l| l.app.iter().copied()).collect();
    Ok(GameReport {
        config: cfg.clone(),
        app: DelaySummary::from_nanos(&mut app),
        kernel: DelaySummary::from_nanos(&mut kernel),
        inputs_sent: client_log.inputs_sent,
        updates_sent: logs.iter().map(|l| l.updates_sent).sum(),
        updates_received: client_log.updates_received,
        rejected: logs.iter().map(|l| l.rejected).sum(),
        kernel_after_app: logs.iter().map(|l| l.kernel_after_app).sum(),
        server_cpu,
    })
}
