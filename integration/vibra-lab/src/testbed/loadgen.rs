//! The load generator: `connections` threads, each with one keep-alive HTTP/1.1 connection,
//! taking the next request of a shared list in order (so the stream's order is kept up to
//! the `connections` requests in flight), checking every answer is `200` with the object's
//! size, and timing each request. By default one pass over the list, and any failure ends
//! the run; [`LoadOptions`] turn it into a timed run that cycles the list, counts failures
//! and publishes live counters (for a time series around a failure, fig. 4.4).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::TestbedError;

/// How long a connect, a send or a wait for the next bytes may take: the largest object of the
/// model (4 MiB) at the smallest per-back-end rate the lab uses takes well under a second, and
/// a shaped queue adds tens of milliseconds, so 30 s only fires when something is stuck.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One request: the target and the body size expected.
///
/// ```
/// let r = vibra_lab::testbed::Request { target: "/a.gif".into(), bytes: 3 };
/// assert_eq!(r.bytes, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request-target, sent as is.
    pub target: String,
    /// The body size the answer must have.
    pub bytes: u64,
}

/// What a run of the load generator measured.
///
/// ```
/// let s = vibra_lab::testbed::LoadStats::default();
/// assert_eq!(s.requests, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    /// Requests answered `200` with the expected size.
    pub requests: u64,
    /// Body bytes received for them.
    pub bytes: u64,
    /// Requests that failed (only with [`LoadOptions::count_failures`]; otherwise the first
    /// failure ends the run with an error).
    pub failed: u64,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Per-request latencies in microseconds, sorted.
    pub latencies_us: Vec<u64>,
}

impl LoadStats {
    /// The `p`-quantile latency in milliseconds (nearest rank), 0 when empty.
    ///
    /// ```
    /// let s = vibra_lab::testbed::LoadStats { latencies_us: vec![1000, 2000, 3000, 4000], ..Default::default() };
    /// assert_eq!(s.latency_ms(0.5), 2.0);
    /// assert_eq!(s.latency_ms(1.0), 4.0);
    /// ```
    pub fn latency_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = (p * self.latencies_us.len() as f64).ceil() as usize;
        self.latencies_us[rank.clamp(1, self.latencies_us.len()) - 1] as f64 / 1e3
    }

    /// Mean latency in milliseconds, 0 when empty.
    ///
    /// ```
    /// let s = vibra_lab::testbed::LoadStats { latencies_us: vec![1000, 3000], ..Default::default() };
    /// assert_eq!(s.mean_ms(), 2.0);
    /// ```
    pub fn mean_ms(&self) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.iter().sum::<u64>() as f64 / self.latencies_us.len() as f64 / 1e3
    }
}

/// Counters a run updates as each request completes, for a sampler to read while it runs.
///
/// ```
/// let live = vibra_lab::testbed::LiveCounters::default();
/// assert_eq!(live.snapshot(), (0, 0, 0, 0));
/// ```
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Requests answered correctly.
    pub requests: AtomicU64,
    /// Their body bytes.
    pub bytes: AtomicU64,
    /// Requests that failed (counted only with [`LoadOptions::count_failures`]).
    pub failed: AtomicU64,
    /// Sum of the answered requests' latencies, microseconds.
    pub latency_us: AtomicU64,
}

impl LiveCounters {
    /// `(requests, bytes, failed, latency_us)` now.
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// let live = vibra_lab::testbed::LiveCounters::default();
    /// live.failed.fetch_add(2, Ordering::Relaxed);
    /// assert_eq!(live.snapshot().2, 2);
    /// ```
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.latency_us.load(Ordering::Relaxed),
        )
    }
}

/// How a run ends and what it does with a failed request. The default is [`run_load`]'s: one
/// pass over the list, the first failure ends the run.
///
/// ```
/// let o = vibra_lab::testbed::LoadOptions::default();
/// assert!(!o.count_failures && o.until.is_none() && o.live.is_none() && o.arrivals.is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Count a failed request (and drop its connection) instead of ending the run.
    pub count_failures: bool,
    /// Cycle through the list until this instant, then end normally (instead of one pass).
    pub until: Option<Instant>,
    /// Open loop: request `i` (the list cycled) is sent `arrivals[i]` after the run starts,
    /// and its latency counts from then (waiting for a free connection included); the run
    /// ends after the last arrival (or at `until`). Offsets in increasing order, e.g. from
    /// [`crate::testbed::poisson_arrivals`].
    pub arrivals: Option<Arc<[Duration]>>,
    /// Counters updated as requests complete.
    pub live: Option<Arc<LiveCounters>>,
}

/// Sends every request of `requests` to `addr` over `connections` keep-alive connections.
/// Any failed request (connection refused, timeout, a status other than 200, a body of the
/// wrong size) ends the run with an error: the figures count only complete runs. Stops with
/// [`TestbedError::Interrupted`] when `stop` is set.
///
/// ```no_run
/// use vibra_lab::testbed::{Request, run_load};
/// use std::sync::atomic::AtomicBool;
/// let reqs = vec![Request { target: "/index.html".into(), bytes: 615 }];
/// let stats = run_load("127.0.0.1:80".parse().unwrap(), &reqs, 4, &AtomicBool::new(false))?;
/// println!("{} req in {:.1} s", stats.requests, stats.seconds);
/// # Ok::<(), vibra_lab::testbed::TestbedError>(())
/// ```
pub fn run_load(
    addr: SocketAddr,
    requests: &[Request],
    connections: usize,
    stop: &AtomicBool,
) -> Result<LoadStats, TestbedError> {
    run_load_with(addr, requests, connections, stop, &LoadOptions::default())
}

/// [`run_load`] with [`LoadOptions`]: e.g. a timed run that cycles the list, counts failures
/// and publishes live counters.
///
/// ```no_run
/// use std::sync::{Arc, atomic::AtomicBool};
/// use std::time::{Duration, Instant};
/// use vibra_lab::testbed::{LiveCounters, LoadOptions, Request, run_load_with};
/// let reqs = vec![Request { target: "/index.html".into(), bytes: 615 }];
/// let live = Arc::new(LiveCounters::default());
/// let opts = LoadOptions {
///     count_failures: true,
///     until: Some(Instant::now() + Duration::from_secs(10)),
///     live: Some(Arc::clone(&live)),
///     arrivals: None,
/// };
/// let stats = run_load_with("127.0.0.1:80".parse().unwrap(), &reqs, 4, &AtomicBool::new(false), &opts)?;
/// println!("{} answered, {} failed", stats.requests, stats.failed);
/// # Ok::<(), vibra_lab::testbed::TestbedError>(())
/// ```
pub fn run_load_with(
    addr: SocketAddr,
    requests: &[Request],
    connections: usize,
    stop: &AtomicBool,
    options: &LoadOptions,
) -> Result<LoadStats, TestbedError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let started = Instant::now();
    let results: Vec<Result<LoadStats, TestbedError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..connections.max(1))
            .map(|_| {
                s.spawn(|| {
                    let r = worker(addr, requests, &next, stop, &failed, options, started);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(TestbedError::Load(
                        "a load-generator thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let mut total = LoadStats {
        seconds: started.elapsed().as_secs_f64(),
        ..LoadStats::default()
    };
    // A signal also reaches nginx and the proxy (a terminal's Ctrl-C goes to the whole
    // process group): the failures it causes are the interruption.
    if stop.load(Ordering::Relaxed) {
        return Err(TestbedError::Interrupted);
    }
    // Report the first real failure, not a worker that stopped because another failed.
    let mut interrupted = false;
    for r in results {
        match r {
            Ok(s) => {
                total.requests += s.requests;
                total.bytes += s.bytes;
                total.failed += s.failed;
                total.latencies_us.extend(s.latencies_us);
            }
            Err(TestbedError::Interrupted) => interrupted = true,
            Err(e) => return Err(e),
        }
    }
    if interrupted {
        return Err(TestbedError::Interrupted);
    }
    total.latencies_us.sort_unstable();
    Ok(total)
}

fn worker(
    addr: SocketAddr,
    requests: &[Request],
    next: &AtomicUsize,
    stop: &AtomicBool,
    failed: &AtomicBool,
    options: &LoadOptions,
    started: Instant,
) -> Result<LoadStats, TestbedError> {
    let mut stats = LoadStats::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut sink = vec![0u8; 64 * 1024];
    let cycle = options.until.is_some() || options.arrivals.is_some();
    loop {
        if stop.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed) {
            return Err(TestbedError::Interrupted);
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if options.until.is_some_and(|until| Instant::now() >= until) {
            return Ok(stats);
        }
        let req = if cycle && !requests.is_empty() {
            &requests[i % requests.len()]
        } else {
            match requests.get(i) {
                Some(r) => r,
                None => return Ok(stats),
            }
        };
        let t0 = match &options.arrivals {
            Some(arrivals) => {
                let Some(at) = arrivals.get(i) else {
                    return Ok(stats);
                };
                let due = started + *at;
                // Sleep in short steps, so a stop or a deadline is seen in time.
                while let Some(left) = due.checked_duration_since(Instant::now()) {
                    if stop.load(Ordering::Relaxed)
                        || options.until.is_some_and(|u| Instant::now() >= u)
                    {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(100)));
                }
                due
            }
            None => Instant::now(),
        };
        match request(addr, &mut conn, req, &mut sink) {
            Ok(()) => {
                let us = t0.elapsed().as_micros() as u64;
                stats.latencies_us.push(us);
                stats.requests += 1;
                stats.bytes += req.bytes;
                if let Some(live) = &options.live {
                    live.requests.fetch_add(1, Ordering::Relaxed);
                    live.bytes.fetch_add(req.bytes, Ordering::Relaxed);
                    live.latency_us.fetch_add(us, Ordering::Relaxed);
                }
            }
            Err(_) if options.count_failures => {
                stats.failed += 1;
                if let Some(live) = &options.live {
                    live.failed.fetch_add(1, Ordering::Relaxed);
                }
                // Not a busy loop against a front end that refuses everything.
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends `req` on `conn` (or a new connection) and reads its answer; leaves the connection
/// in `conn` when it may be reused. One retry on a fresh connection: a keep-alive connection
/// may have been closed by the other side between two requests.
fn request(
    addr: SocketAddr,
    conn: &mut Option<BufReader<TcpStream>>,
    req: &Request,
    sink: &mut [u8],
) -> Result<(), TestbedError> {
    let mut attempt = 0;
    loop {
        let fresh = conn.is_none();
        let c = match conn.take() {
            Some(c) => c,
            None => connect(addr)?,
        };
        match exchange(c, req, sink) {
            Ok(keep) => {
                *conn = keep;
                return Ok(());
            }
            Err(e) if !fresh && attempt == 0 && e.is_reset() => attempt += 1,
            Err(e) => return Err(e.into_error(addr, &req.target)),
        }
    }
}

fn connect(addr: SocketAddr) -> Result<BufReader<TcpStream>, TestbedError> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| TestbedError::Load(format!("connect to {addr}: {e}")))?;
    let setup = || -> std::io::Result<()> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)
    };
    setup().map_err(|e| TestbedError::Load(format!("socket options for {addr}: {e}")))?;
    Ok(BufReader::with_capacity(64 * 1024, stream))
}

/// Why one exchange failed.
enum ExchangeError {
    /// The connection was closed or reset before any answer byte: retry on a fresh one.
    Reset(std::io::Error),
    Io(std::io::Error),
    Protocol(String),
}

impl ExchangeError {
    fn is_reset(&self) -> bool {
        matches!(self, ExchangeError::Reset(_))
    }

    fn into_error(self, addr: SocketAddr, target: &str) -> TestbedError {
        TestbedError::Load(match self {
            ExchangeError::Reset(e) | ExchangeError::Io(e) => {
                format!("GET {target} via {addr}: {e}")
            }
            ExchangeError::Protocol(why) => format!("GET {target} via {addr}: {why}"),
        })
    }
}

/// One request and its answer on `conn`; the connection back when it may be reused.
fn exchange(
    mut conn: BufReader<TcpStream>,
    req: &Request,
    sink: &mut [u8],
) -> Result<Option<BufReader<TcpStream>>, ExchangeError> {
    let head = format!("GET {} HTTP/1.1\r\nHost: testbed\r\n\r\n", req.target);
    conn.get_mut()
        .write_all(head.as_bytes())
        .map_err(ExchangeError::Reset)?;
    let mut line = String::new();
    let n = conn.read_line(&mut line).map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
            ExchangeError::Reset(e)
        }
        _ => ExchangeError::Io(e),
    })?;
    if n == 0 {
        return Err(ExchangeError::Reset(
            std::io::ErrorKind::UnexpectedEof.into(),
        ));
    }
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(ExchangeError::Protocol(format!(
            "answer {:?}",
            line.trim_end()
        )));
    }
    let mut length = None;
    let mut close = false;
    loop {
        line.clear();
        conn.read_line(&mut line).map_err(ExchangeError::Io)?;
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                close = true;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(ExchangeError::Protocol(format!("unexpected {h}")));
            }
        }
    }
    let Some(length) = length else {
        return Err(ExchangeError::Protocol("no Content-Length".into()));
    };
    if length != req.bytes {
        return Err(ExchangeError::Protocol(format!(
            "{length} bytes, expected {}",
            req.bytes
        )));
    }
    let mut left = length;
    while left > 0 {
        let want = left.min(sink.len() as u64) as usize;
        let got = conn.read(&mut sink[..want]).map_err(ExchangeError::Io)?;
        if got == 0 {
            return Err(ExchangeError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        left -= got as u64;
    }
    Ok(if close { None } else { Some(conn) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers every request with `body_len` bytes, closing after `per_conn`.
    fn server(body_len: usize, per_conn: usize, status: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    for _ in 0..per_conn {
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let head =
                            format!("HTTP/1.1 {status}\r\nContent-Length: {body_len}\r\n\r\n");
                        let _ = w.write_all(head.as_bytes());
                        let _ = w.write_all(&vec![b'x'; body_len]);
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn every_request_is_sent_once_and_reconnects_survive_closed_keepalives() {
        let addr = server(1000, 3, "200 OK");
        let reqs: Vec<Request> = (0..50)
            .map(|i| Request {
                target: format!("/f{i}"),
                bytes: 1000,
            })
            .collect();
        let s = run_load(addr, &reqs, 4, &AtomicBool::new(false)).unwrap();
        assert_eq!(s.requests, 50);
        assert_eq!(s.bytes, 50_000);
        assert_eq!(s.latencies_us.len(), 50);
    }

    #[test]
    fn a_timed_run_cycles_the_list_counts_failures_and_publishes_live_counters() {
        let addr = server(10, 100, "404 Not Found");
        let good = server(100, 100, "200 OK");
        let reqs = vec![Request {
            target: "/f".into(),
            bytes: 10,
        }];
        let live = Arc::new(LiveCounters::default());
        let opts = LoadOptions {
            count_failures: true,
            until: Some(Instant::now() + Duration::from_millis(300)),
            live: Some(Arc::clone(&live)),
            arrivals: None,
        };
        let s = run_load_with(addr, &reqs, 2, &AtomicBool::new(false), &opts).unwrap();
        assert_eq!(s.requests, 0);
        assert!(s.failed >= 2, "{s:?}");
        assert_eq!(live.snapshot().2, s.failed);
        // Two requests cycled past the list's end: every answer counted, live and total.
        let reqs = vec![
            Request {
                target: "/a".into(),
                bytes: 100,
            },
            Request {
                target: "/b".into(),
                bytes: 100,
            },
        ];
        let live = Arc::new(LiveCounters::default());
        let opts = LoadOptions {
            live: Some(Arc::clone(&live)),
            until: Some(Instant::now() + Duration::from_millis(300)),
            ..LoadOptions::default()
        };
        let s = run_load_with(good, &reqs, 2, &AtomicBool::new(false), &opts).unwrap();
        assert!(s.requests > 2, "the list was not cycled: {s:?}");
        let (n, bytes, failed, _) = live.snapshot();
        assert_eq!((n, bytes, failed), (s.requests, s.bytes, 0));
    }

    #[test]
    fn an_open_loop_run_sends_each_arrival_once_and_ends_after_the_last() {
        let addr = server(100, 1000, "200 OK");
        let reqs = vec![Request {
            target: "/a".into(),
            bytes: 100,
        }];
        let arrivals: Arc<[Duration]> = (0..20).map(|k| Duration::from_millis(10 * k)).collect();
        let opts = LoadOptions {
            arrivals: Some(arrivals),
            ..LoadOptions::default()
        };
        let t = Instant::now();
        let s = run_load_with(addr, &reqs, 3, &AtomicBool::new(false), &opts).unwrap();
        assert_eq!(s.requests, 20, "one request per arrival, the list cycled");
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "sent before their arrival times"
        );
    }

    #[test]
    fn a_wrong_size_or_status_fails_the_run() {
        let addr = server(999, 100, "200 OK");
        let reqs = vec![Request {
            target: "/f".into(),
            bytes: 1000,
        }];
        let e = run_load(addr, &reqs, 1, &AtomicBool::new(false)).unwrap_err();
        assert!(e.to_string().contains("999 bytes"), "{e}");
        let addr = server(10, 100, "404 Not Found");
        let reqs = vec![Request {
            target: "/f".into(),
            bytes: 10,
        }];
        let e = run_load(addr, &reqs, 2, &AtomicBool::new(false)).unwrap_err();
        assert!(e.to_string().contains("404"), "{e}");
    }
}
