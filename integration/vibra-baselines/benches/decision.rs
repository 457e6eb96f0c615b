//! Cost of one dispatch decision for every policy on the same URL corpus, side by side in one
//! criterion run (issue 2 item 7, dissertation table 3.2), plus the memory each policy keeps
//! per distinct object.
//!
//! Corpus: the 1998 World Cup URL list, read by the workspace's one reader (`wc98::urls`, which
//! finds the data directory: `VIBRA_DATA_DIR` or the default beside the repository); when there
//! is none, 90,000 generated URLs of a similar shape (fixed seed). The data is read in place,
//! never copied into the repository.
//!
//! Each criterion iteration is one pass over the whole corpus; the "thrpt" line gives the time
//! per decision. 16 servers, R = 2, a fixed load vector.
//!
//! The clock is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the
//! project's machines are shared 2-core boxes where wall time mostly measures other processes.
//! CPU time still includes cache and SMT-sibling interference, so compare ratios within a run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pingora_ketama::{Bucket, Continuum};
use vibra_baselines::{KetamaRing, Lard, LardParams, LeastConnection, RoundRobin, Selection};
use vibra_hash::{Dispatcher, HashKind, dispatch_key};

const SERVERS: u32 = 16;
const REPLICATION: u32 = 2;
const LOADS: [u32; SERVERS as usize] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3];

/// 90,000 URLs shaped like the World Cup site's (directories, names, ~3.5% with a query).
fn generated_urls() -> Vec<Vec<u8>> {
    let dirs = [
        "/english/",
        "/french/",
        "/images/",
        "/english/teams/",
        "/french/news/",
    ];
    let exts = [".html", ".gif", ".jpg", ".htm"];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..90_000)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut u = format!(
                "{}{}_{}{}",
                dirs[(x % 5) as usize],
                ["team", "match", "news", "photo"][(x >> 8) as usize % 4],
                i,
                exts[(x >> 16) as usize % 4]
            );
            if x % 29 == 0 {
                u.push_str("?lang=en");
            }
            u.into_bytes()
        })
        .collect()
}

/// The World Cup URLs through the workspace's one reader (`wc98::urls`: every byte of each
/// URL, nothing trimmed), else the generated corpus.
fn load_corpus() -> (Vec<Vec<u8>>, String) {
    match wc98::urls(None) {
        Ok(Some(list)) if !list.urls.is_empty() => {
            let source = list.path.display().to_string();
            (list.urls, source)
        }
        Ok(_) => (
            generated_urls(),
            "generated (no World Cup data found)".to_owned(),
        ),
        Err(e) => panic!("World Cup URL list: {e}"),
    }
}

/// One pass: every URL dispatched once, back to back.
#[inline]
fn pass<P: Selection>(p: &mut P, urls: &Corpus) -> u64 {
    let mut sum = 0u64;
    for u in urls.iter() {
        sum += u64::from(p.select(black_box(u), &LOADS, Duration::ZERO).unwrap());
    }
    sum
}

/// One pass where each lookup's input depends on the previous decision (latency, not
/// throughput): the next URL index is advanced by the chosen server's parity.
#[inline]
fn dependent_pass<P: Selection>(p: &mut P, urls: &Corpus) -> u64 {
    let mut i = 0usize;
    let mut sum = 0u64;
    for _ in 0..urls.len() {
        let s = p.select(urls.get(i), &LOADS, Duration::ZERO).unwrap();
        sum += u64::from(s);
        i += 1 + (s as usize & 1);
        if i >= urls.len() {
            i -= urls.len();
        }
    }
    sum
}

/// Resident set size in bytes, from /proc (Linux); None elsewhere.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn preloaded_lard<S: std::hash::BuildHasher>(urls: &Corpus, hasher: S) -> Lard<S> {
    let mut lard = Lard::with_hasher(SERVERS, LardParams::PAI_ASPLOS98, hasher).unwrap();
    for u in urls.iter() {
        lard.select(u, &[0; SERVERS as usize], Duration::ZERO)
            .unwrap();
    }
    lard
}

fn report_memory(urls: &Corpus) {
    let rss0 = rss_bytes();
    let started = Instant::now();
    let lard = preloaded_lard(urls, std::hash::RandomState::new());
    let rss1 = rss_bytes();
    let objects = lard.history_len();
    eprintln!(
        "memory: LARD history of {objects} distinct objects: {} bytes by table estimate ({:.1} B/object){}; built in {:?}",
        lard.history_bytes(),
        lard.history_bytes() as f64 / objects as f64,
        match (rss0, rss1) {
            (Some(a), Some(b)) => format!(
                ", RSS grew {} KiB ({:.1} B/object, {} 4K pages)",
                b.saturating_sub(a) / 1024,
                b.saturating_sub(a) as f64 / objects as f64,
                b.saturating_sub(a) / 4096
            ),
            _ => String::new(),
        },
        started.elapsed()
    );
    let d = Dispatcher::new(SERVERS, REPLICATION, HashKind::Fast).unwrap();
    let rss2 = rss_bytes();
    let mut fresh = Dispatcher::new(SERVERS, REPLICATION, HashKind::Fast).unwrap();
    pass(&mut fresh, urls);
    eprintln!(
        "memory: url-hash keeps 0 bytes per object: its state is {} bytes for {SERVERS} servers whatever the corpus (RSS change over a full pass: {} KiB)",
        size_of::<Dispatcher>() + SERVERS as usize * 4 + (SERVERS as usize).div_ceil(64) * 8,
        rss_bytes()
            .zip(rss2)
            .map_or(0, |(b, a)| b.saturating_sub(a) / 1024)
    );
    drop((lard, d));
}

/// The corpus packed into one buffer (the workspace's one packer, in wc98).
type Corpus = wc98::PackedUrls;

fn decisions(c: &mut Criterion<ThreadCpuTime>) {
    let (owned, source) = load_corpus();
    let urls = Corpus::pack(&owned);
    drop(owned);
    let mut lens: Vec<usize> = urls.iter().map(|u| u.len()).collect();
    let with_query = urls.iter().filter(|u| u.contains(&b'?')).count();
    lens.sort_unstable();
    eprintln!(
        "corpus: {} URLs from {source}; median length {} bytes; {} with '?'",
        urls.len(),
        lens[lens.len() / 2],
        with_query
    );
    report_memory(&urls);

    let mut g = c.benchmark_group("decision");
    g.throughput(Throughput::Elements(urls.len() as u64));

    let mut rr = RoundRobin::new(SERVERS).unwrap();
    g.bench_function("round-robin", |b| b.iter(|| pass(&mut rr, &urls)));
    let mut lc = LeastConnection::new(SERVERS).unwrap();
    g.bench_function("least-connection", |b| b.iter(|| pass(&mut lc, &urls)));
    for hash in HashKind::ALL {
        let mut d = Dispatcher::new(SERVERS, REPLICATION, hash).unwrap();
        g.bench_function(format!("url-hash/{hash} R=2"), |b| {
            b.iter(|| pass(&mut d, &urls))
        });
    }
    // A server count that is not a power of two: `mod N` takes the reciprocal path, not a mask.
    let mut d15 = Dispatcher::new(SERVERS - 1, REPLICATION, HashKind::Fast).unwrap();
    let loads15 = &LOADS[..(SERVERS - 1) as usize];
    g.bench_function("url-hash/fast R=2 N=15", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for u in urls.iter() {
                sum += u64::from(d15.select(black_box(u), loads15, Duration::ZERO).unwrap());
            }
            sum
        })
    });
    let mut d = Dispatcher::new(SERVERS, REPLICATION, HashKind::Fast).unwrap();
    g.bench_function("url-hash/fast R=2 dependent", |b| {
        b.iter(|| dependent_pass(&mut d, &urls))
    });
    let mut d = Dispatcher::new(SERVERS, REPLICATION, HashKind::Charsum).unwrap();
    g.bench_function("url-hash/charsum R=2 dependent", |b| {
        b.iter(|| dependent_pass(&mut d, &urls))
    });
    let tracker = Dispatcher::new(SERVERS, REPLICATION, HashKind::Fast).unwrap();
    g.bench_function("url-hash/fast R=2 tracker acquire+release", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for u in urls.iter() {
                let lease = tracker.acquire(black_box(u)).unwrap();
                sum += u64::from(lease.server());
            }
            sum
        })
    });
    let mut lard = preloaded_lard(&urls, std::hash::RandomState::new());
    g.bench_function("lard (std HashMap, 90k preloaded)", |b| {
        b.iter(|| pass(&mut lard, &urls))
    });
    drop(lard);
    let mut lard = preloaded_lard(&urls, foldhash::fast::FixedState::default());
    g.bench_function("lard (foldhash, 90k preloaded)", |b| {
        b.iter(|| pass(&mut lard, &urls))
    });
    drop(lard);
    let mut ring = KetamaRing::with_servers(SERVERS).unwrap();
    g.bench_function("ketama ring (vibra KetamaRing)", |b| {
        b.iter(|| pass(&mut ring, &urls))
    });
    // pingora-ketama on its own (address lookup only), for reference.
    let buckets: Vec<Bucket> = (0..SERVERS)
        .map(|i| Bucket::new(format!("10.0.0.{}:80", i + 1).parse().unwrap(), 1))
        .collect();
    let continuum = Continuum::new(&buckets);
    g.bench_function("ketama ring (pingora-ketama node())", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for u in urls.iter() {
                sum += u64::from(continuum.node(dispatch_key(black_box(u))).unwrap().port());
            }
            sum
        })
    });
    g.bench_function("key extraction only (dispatch_key)", |b| {
        b.iter(|| {
            let mut sum = 0usize;
            for u in urls.iter() {
                sum += dispatch_key(black_box(u)).len();
            }
            sum
        })
    });
    g.bench_function("key extraction only (position loop)", |b| {
        b.iter(|| {
            let mut sum = 0usize;
            for u in urls.iter() {
                let u = black_box(u);
                let end = u
                    .iter()
                    .position(|&c| c == b'?' || c == b'#')
                    .unwrap_or(u.len());
                sum += end;
            }
            sum
        })
    });
    g.finish();
}

/// Criterion clock: CPU time of the benchmark thread.
struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    // CLOCK_THREAD_CPUTIME_ID exists on every Linux since 2.6.12; a failure would read as 0.
    ThreadTime::try_now()
        .map(|t| t.as_duration())
        .unwrap_or_default()
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Shows pass times in ms and, as "throughput", CPU nanoseconds per decision.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical_ns < 1e3 {
            (1.0, "ns cpu")
        } else if typical_ns < 1e6 {
            (1e-3, "µs cpu")
        } else {
            (1e-6, "ms cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let per = match *t {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => n,
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Bits(n) => n,
        } as f64;
        values.iter_mut().for_each(|v| *v /= per);
        "ns/decision"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(ThreadCpuTime)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = decisions
}
criterion_main!(benches);
