//! The game across machines: one game server on a real interface (the game-server VM of section
//! 6.6, e.g. a Xen guest) that keeps every input's raw times and hands them out over TCP, and
//! clients elsewhere (the client machine) that drive such servers. Unlike [`crate::run`], the
//! two ends may have different clocks, so nothing here subtracts one side's time from the
//! other's: the records carry the client's send time, the server's kernel arrival stamp and the
//! server's application clock, and the caller aligns the clocks.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use vtimestamp::socket::{KernelClock, TimestampedSocket};

use crate::clients::{self, ClientLog};
use crate::record::InputRecord;
use crate::server::{self, ServerParams};
use crate::{GameError, SessionKey, error::io};

/// A game server on a real interface: UDP inputs on its address, and on the same TCP port a
/// report of the inputs received since the last report.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
/// let server = vibra_game::RemoteServer::bind("127.0.0.1:0".parse()?, vibra_game::SessionKey::from_seed(1), 1_000)?;
/// let addr = server.local_addr();
/// let stop = Arc::new(AtomicBool::new(false));
/// let s = stop.clone();
/// let t = std::thread::spawn(move || server.run(&s));
/// assert!(vibra_game::fetch_records(addr)?.is_empty());
/// stop.store(true, Ordering::Relaxed);
/// t.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RemoteServer {
    udp: TimestampedSocket,
    tcp: TcpListener,
    addr: SocketAddr,
    key: SessionKey,
    sim_substeps: u32,
}

impl RemoteServer {
    /// Binds the UDP socket (kernel stamps on) and the TCP report listener on `addr` (port 0:
    /// one free port for both, tried a few times).
    pub fn bind(addr: SocketAddr, key: SessionKey, sim_substeps: u32) -> Result<Self, GameError> {
        let mut last = None;
        for _ in 0..16 {
            let udp = TimestampedSocket::bind(addr, KernelClock::Ns)?;
            let bound = udp.socket().local_addr().map_err(io("local_addr"))?;
            match TcpListener::bind(bound) {
                Ok(tcp) => {
                    return Ok(RemoteServer {
                        udp,
                        tcp,
                        addr: bound,
                        key,
                        sim_substeps,
                    });
                }
                Err(e) if addr.port() == 0 => last = Some(e),
                Err(e) => return Err(io("bind report listener")(e)),
            }
        }
        Err(io("bind report listener")(
            last.unwrap_or_else(|| std::io::Error::other("no free port")),
        ))
    }

    /// The address of both sockets.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` is set: the game server on its own thread (20 world updates a
    /// second), and here each report connection gets the inputs received since the last one.
    pub fn run(self, stop: &Arc<AtomicBool>) -> Result<(), GameError> {
        let records = Arc::new(Mutex::new(Vec::new()));
        let params = ServerParams {
            key: self.key,
            frame: Duration::from_millis(50),
            sim_substeps: self.sim_substeps,
            stop: stop.clone(),
            measuring: Arc::new(AtomicBool::new(false)),
            records: Some(records.clone()),
        };
        let udp = self.udp;
        let game = thread::Builder::new()
            .name("game-server".into())
            .spawn(move || server::serve(udp, params))
            .map_err(io("spawn server"))?;
        self.tcp
            .set_nonblocking(true)
            .map_err(io("set_nonblocking"))?;
        let result = (|| {
            while !stop.load(Ordering::Relaxed) && !game.is_finished() {
                match self.tcp.accept() {
                    Ok((conn, _)) => {
                        let taken = match records.lock() {
                            Ok(mut r) => std::mem::take(&mut *r),
                            Err(_) => return Err(GameError::ThreadPanicked("game-server")),
                        };
                        report(conn, &taken)?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => return Err(io("accept")(e)),
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let served = game
            .join()
            .map_err(|_| GameError::ThreadPanicked("game-server"))?;
        result.and(served.map(|_| ()))
    }
}

fn report(conn: TcpStream, records: &[InputRecord]) -> Result<(), GameError> {
    conn.set_nonblocking(false).map_err(io("set_nonblocking"))?;
    let mut out = std::io::BufWriter::new(conn);
    for r in records {
        writeln!(out, "{}", r.to_line()).map_err(io("write report"))?;
    }
    out.flush().map_err(io("write report"))
}

/// Fetches a [`RemoteServer`]'s report: the inputs it received since the previous report.
/// See [`RemoteServer`] for an example.
pub fn fetch_records(addr: SocketAddr) -> Result<Vec<InputRecord>, GameError> {
    let conn =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(io("connect report"))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io("set_read_timeout"))?;
    let mut records = Vec::new();
    for line in BufReader::new(conn).lines() {
        records.push(InputRecord::parse_line(&line.map_err(io("read report"))?)?);
    }
    Ok(records)
}

/// What the remote clients did.
///
/// ```
/// let log = vibra_game::RemoteClientLog::default();
/// assert_eq!(log.inputs_sent, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteClientLog {
    /// Inputs sent.
    pub inputs_sent: u64,
    /// World updates received.
    pub updates_received: u64,
}

/// Clients driving remote game servers: `clients_per_server` clients per server, each sending
/// inputs as a Poisson process (one thread drives them all), until [`RemoteClients::stop`].
/// Client ids are `server index * clients_per_server + c`.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
/// let key = vibra_game::SessionKey::from_seed(5);
/// let server = vibra_game::RemoteServer::bind("127.0.0.1:0".parse()?, key, 100)?;
/// let addr = server.local_addr();
/// let stop = Arc::new(AtomicBool::new(false));
/// let s = stop.clone();
/// let t = std::thread::spawn(move || server.run(&s));
/// let clients = vibra_game::RemoteClients::start(&[(addr, key)], 2, 100.0, 1)?;
/// std::thread::sleep(std::time::Duration::from_millis(300));
/// let log = clients.stop()?;
/// std::thread::sleep(std::time::Duration::from_millis(100));
/// let records = vibra_game::fetch_records(addr)?;
/// assert!(log.inputs_sent > 0 && !records.is_empty());
/// assert!(records.iter().all(|r| r.kernel_ns <= r.app_ns));
/// stop.store(true, Ordering::Relaxed);
/// t.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RemoteClients {
    stop: Arc<AtomicBool>,
    driver: Option<JoinHandle<Result<ClientLog, GameError>>>,
}

impl RemoteClients {
    /// Opens the clients' sockets and starts sending.
    pub fn start(
        servers: &[(SocketAddr, SessionKey)],
        clients_per_server: usize,
        rate_hz: f64,
        seed: u64,
    ) -> Result<Self, GameError> {
        if servers.is_empty() || clients_per_server == 0 {
            return Err(GameError::Config(
                "servers and clients per server must be at least 1".into(),
            ));
        }
        let mut all = Vec::new();
        for (s, (addr, key)) in servers.iter().enumerate() {
            for c in 0..clients_per_server {
                let id = u32::try_from(s * clients_per_server + c)
                    .map_err(|_| GameError::Config("too many clients".into()))?;
                all.push(clients::new_client(id, *addr, *key)?);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let driver = thread::Builder::new()
            .name("game-clients".into())
            .spawn(move || clients::drive(all, rate_hz, seed, flag))
            .map_err(io("spawn clients"))?;
        Ok(RemoteClients {
            stop,
            driver: Some(driver),
        })
    }

    /// Stops sending and returns what was sent and received.
    pub fn stop(mut self) -> Result<RemoteClientLog, GameError> {
        self.stop.store(true, Ordering::Relaxed);
        let driver = self
            .driver
            .take()
            .ok_or(GameError::ThreadPanicked("game-clients"))?;
        let log = driver
            .join()
            .map_err(|_| GameError::ThreadPanicked("game-clients"))??;
        Ok(RemoteClientLog {
            inputs_sent: log.inputs_sent,
            updates_received: log.updates_received,
        })
    }
}

impl Drop for RemoteClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}
