//! `Dispatcher::pick` against the physical floor of a dispatch decision and its peers (issue 11
//! item 1), on the real World Cup URLs, 16 servers, R = 2.
//!
//! The **floor** is what any locality-keeping decision must do, written here as the issue
//! defines it: extract the SPEC 1 key (an SSE2 check of up to four 16-byte windows for '?'/'#'
//! on 16-64-byte paths, a plain scan otherwise), hash it with XXH3, reduce it to N with a mask
//! (N = 16) and load one table entry. The **peers** get the same key and hash, so only the
//! choice differs: keyed power-of-two-choices with loads (two candidates from the hash, the
//! less loaded wins), Maglev with its own 65,537-entry lookup table (Eisenbud et al., NSDI
//! 2016, section 3.4's population), and AnchorHash (Mendelson et al., 2020, algorithm 3's
//! GetBucket, capacity 32 with 16 working buckets). They are written from the papers here
//! because the crates that exist (`maglev` 0.2, `anchorhash` 0.2) hash through `std::hash`
//! (SipHash by default) and are not maintained, so they would measure their hashers.
//!
//! **Method** (the machine is shared, so wall time and absolute figures mislead): every
//! contestant runs one pass over the whole corpus per round; rounds are interleaved (the order
//! rotates each round) and repeated at least 21 times; the clock is this thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`); the table gives each contestant's median time per decision and
//! the **median of its per-round ratios** to the floor and to `pick`, so a load change during
//! the run affects both sides of a ratio alike. Then criterion times the same passes once more
//! (wall clock, for the record). Rounds: `VIBRA_FLOOR_ROUNDS` (default 31).
//!
//! ```text
//! VIBRA_DATA_DIR=<data dir> cargo bench -p vibra-hash --bench floor
//! ```

use std::hint::black_box;

use cpu_time::ThreadTime;
use criterion::{Criterion, Throughput};
use vibra_hash::{Availability, BalanceFactor, Dispatcher, HashKind, dispatch_key};
use xxhash_rust::xxh3::xxh3_64;

const SERVERS: u32 = 16;
const REPLICATION: u32 = 2;
const LOADS: [u32; SERVERS as usize] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3];

/// The corpus packed into one buffer (the workspace's one packer, in wc98).
type Corpus = wc98::PackedUrls;

/// The floor's key extraction: origin form, an SSE2 check of four 16-byte windows at
/// `min(16k, n - 16)` for 16..=64-byte paths, a plain `memchr2` scan otherwise.
#[inline(always)]
fn floor_key(target: &[u8]) -> &[u8] {
    if target.first() != Some(&b'/') {
        return dispatch_key(target); // absolute form: not in this corpus
    }
    let n = target.len();
    let end = if (16..=64).contains(&n) && !windows_have_mark(target) {
        None
    } else {
        memchr::memchr2(b'?', b'#', target)
    };
    let key = match end {
        Some(e) => &target[..e],
        None => target,
    };
    if key.is_empty() { b"/" } else { key }
}

#[inline(always)]
fn windows_have_mark(path: &[u8]) -> bool {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let last = path.len() - 16;
    let q = set_splat_i8_m128i(b'?' as i8);
    let f = set_splat_i8_m128i(b'#' as i8);
    let mut any = m128i::default();
    for k in 0..4 {
        let at = (16 * k).min(last);
        let mut w = [0u8; 16];
        w.copy_from_slice(&path[at..at + 16]);
        let w = load_unaligned_m128i(&w);
        any = bitor_m128i(
            any,
            bitor_m128i(cmp_eq_mask_i8_m128i(w, q), cmp_eq_mask_i8_m128i(w, f)),
        );
    }
    move_mask_i8_m128i(any) != 0
}

/// The floor: key, XXH3, mask, one table entry.
struct Floor {
    table: [u32; SERVERS as usize],
}

impl Floor {
    #[inline(always)]
    fn pick(&self, target: &[u8]) -> u32 {
        let h = xxh3_64(floor_key(target));
        self.table[(h & u64::from(SERVERS - 1)) as usize]
    }
}

/// Keyed power-of-two-choices with loads: two candidates from the key's hash, the less loaded
/// wins (ties to the first).
#[inline(always)]
fn p2c(target: &[u8], loads: &[u32; SERVERS as usize]) -> u32 {
    let h = xxh3_64(floor_key(target));
    let a = (h & u64::from(SERVERS - 1)) as usize;
    let b = ((h >> 32) & u64::from(SERVERS - 1)) as usize;
    if loads[b] < loads[a] {
        b as u32
    } else {
        a as u32
    }
}

/// Maglev's lookup table (section 3.4): M = 65,537 entries (prime), each backend's preference
/// list `(offset + j * skip) mod M` from two hashes of its name, filled round-robin.
struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    const M: u64 = 65_537;

    fn new(servers: u32) -> Self {
        let m = Self::M;
        let prefs: Vec<(u64, u64)> = (0..servers)
            .map(|s| {
                let name = format!("backend-{s}");
                let offset = xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), 1) % m;
                let skip = xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), 2) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; servers as usize];
        let mut table = vec![u32::MAX; m as usize];
        let mut filled = 0;
        'fill: loop {
            for s in 0..servers as usize {
                let (offset, skip) = prefs[s];
                let mut c = (offset + next[s] * skip) % m;
                while table[c as usize] != u32::MAX {
                    next[s] += 1;
                    c = (offset + next[s] * skip) % m;
                }
                table[c as usize] = s as u32;
                next[s] += 1;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Maglev { table }
    }

    #[inline(always)]
    fn pick(&self, target: &[u8]) -> u32 {
        let h = xxh3_64(floor_key(target));
        // Lemire's multiply-shift range reduction into 0..M (no division).
        let slot = ((u128::from(h) * u128::from(Self::M)) >> 64) as usize;
        self.table[slot]
    }
}

/// AnchorHash (Mendelson, Vargaftik, Barabash, Lorenz, Keslassy, Orda; IEEE/ACM ToN 2020),
/// algorithm 3: capacity `a` buckets, the last `a - w` removed at start (in reverse order, as
/// the paper's initialisation does).
struct Anchor {
    a: Vec<u32>,
    k: Vec<u32>,
    capacity: u64,
}

impl Anchor {
    fn new(capacity: u32, working: u32) -> Self {
        let mut a = vec![0u32; capacity as usize];
        let k: Vec<u32> = (0..capacity).collect();
        // Remove buckets capacity-1 down to working: A[b] = size of the working set after.
        for (n, b) in (working..capacity).rev().enumerate() {
            a[b as usize] = capacity - 1 - n as u32;
        }
        // With buckets removed in this order (each the last one), K stays the identity.
        Anchor {
            a,
            k,
            capacity: u64::from(capacity),
        }
    }

    /// A cheap, well-mixed hash of (key hash, bucket): the paper's `hash(k, b)`.
    #[inline(always)]
    fn rehash(h: u64, b: u32) -> u64 {
        let x = (h ^ u64::from(b).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^ (x >> 31)
    }

    #[inline(always)]
    fn pick(&self, target: &[u8]) -> u32 {
        let h = xxh3_64(floor_key(target));
        let mut b = ((u128::from(h) * u128::from(self.capacity)) >> 64) as u32;
        while self.a[b as usize] > 0 {
            let ab = self.a[b as usize];
            let mut c = ((u128::from(Self::rehash(h, b)) * u128::from(ab)) >> 64) as u32;
            while self.a[c as usize] >= ab {
                c = self.k[c as usize];
            }
            b = c;
        }
        b
    }
}

fn thread_cpu_ns() -> u64 {
    ThreadTime::try_now()
        .map(|t| t.as_duration().as_nanos() as u64)
        .unwrap_or_default()
}

type Pass<'a> = Box<dyn FnMut(&Corpus) -> u64 + 'a>;

/// A pass where each lookup's input depends on the previous decision (latency).
#[inline(always)]
fn dependent(urls: &Corpus, mut f: impl FnMut(&[u8]) -> u32) -> u64 {
    let (mut i, mut sum) = (0usize, 0u64);
    for _ in 0..urls.len() {
        let s = f(urls.get(i));
        sum += u64::from(s);
        i += 1 + (s as usize & 1);
        if i >= urls.len() {
            i -= urls.len();
        }
    }
    sum
}

fn contestants<'a>(
    d: &'a Dispatcher,
    down: &'a Dispatcher,
    floor: &'a Floor,
    maglev: &'a Maglev,
    anchor: &'a Anchor,
    up: &'a Availability,
) -> Vec<(&'static str, Pass<'a>)> {
    let total: u64 = LOADS.iter().map(|&l| u64::from(l)).sum();
    let factor = BalanceFactor::new(125).unwrap();
    let wide = BalanceFactor::new(200).unwrap();
    vec![
        (
            "floor",
            Box::new(move |u: &Corpus| u.iter().map(|t| u64::from(floor.pick(black_box(t)))).sum()),
        ),
        (
            "pick",
            Box::new(move |u: &Corpus| {
                u.iter()
                    .map(|t| u64::from(d.pick(black_box(t), &LOADS).unwrap()))
                    .sum()
            }),
        ),
        (
            "pick, one server down",
            Box::new(move |u: &Corpus| {
                u.iter()
                    .map(|t| u64::from(down.pick(black_box(t), &LOADS).unwrap()))
                    .sum()
            }),
        ),
        (
            "pick_with (caller's availability)",
            Box::new(move |u: &Corpus| {
                u.iter()
                    .map(|t| u64::from(d.pick_with(black_box(t), &LOADS, up.words()).unwrap()))
                    .sum()
            }),
        ),
        (
            "pick_bounded, common case (factor 200%: a member under the bound)",
            Box::new(move |u: &Corpus| {
                u.iter()
                    .map(|t| u64::from(d.pick_bounded(black_box(t), &LOADS, total, wide).unwrap()))
                    .sum()
            }),
        ),
        (
            "pick_bounded, factor 125% (19% of sub-namespaces spill)",
            Box::new(move |u: &Corpus| {
                u.iter()
                    .map(|t| {
                        u64::from(d.pick_bounded(black_box(t), &LOADS, total, factor).unwrap())
                    })
                    .sum()
            }),
        ),
        (
            "keyed P2C with loads",
            Box::new(move |u: &Corpus| {
                u.iter().map(|t| u64::from(p2c(black_box(t), &LOADS))).sum()
            }),
        ),
        (
            "Maglev (own table)",
            Box::new(move |u: &Corpus| {
                u.iter().map(|t| u64::from(maglev.pick(black_box(t)))).sum()
            }),
        ),
        (
            "AnchorHash (32 buckets, 16 working)",
            Box::new(move |u: &Corpus| {
                u.iter().map(|t| u64::from(anchor.pick(black_box(t)))).sum()
            }),
        ),
        (
            "floor, dependent",
            Box::new(move |u: &Corpus| dependent(u, |t| floor.pick(t))),
        ),
        (
            "pick, dependent",
            Box::new(move |u: &Corpus| dependent(u, |t| d.pick(t, &LOADS).unwrap())),
        ),
    ]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let Some(list) = wc98::urls(None).unwrap_or_else(|e| panic!("World Cup URL list: {e}")) else {
        eprintln!("floor bench: SKIPPED, no World Cup URL list (set VIBRA_DATA_DIR)");
        return;
    };
    let urls = Corpus::pack(&list.urls);
    let d = Dispatcher::new(SERVERS, REPLICATION, HashKind::Fast).unwrap();
    let down = Dispatcher::new(SERVERS, REPLICATION, HashKind::Fast).unwrap();
    down.set_available(5, false).unwrap();
    let floor = Floor {
        table: core::array::from_fn(|i| i as u32),
    };
    let maglev = Maglev::new(SERVERS);
    let anchor = Anchor::new(2 * SERVERS, SERVERS);
    let up = Availability::all_up(SERVERS).unwrap();
    // Every peer's decisions stay in range (a check that the implementations are sane).
    for t in urls.iter().take(1000) {
        assert!(maglev.pick(t) < SERVERS && anchor.pick(t) < SERVERS && p2c(t, &LOADS) < SERVERS);
        assert_eq!(d.pick_with(t, &LOADS, up.words()), d.pick(t, &LOADS));
    }

    let rounds: usize = std::env::var("VIBRA_FLOOR_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(31)
        .max(21);
    let load_before = uptime();
    let mut c = contestants(&d, &down, &floor, &maglev, &anchor, &up);
    let names: Vec<&str> = c.iter().map(|(n, _)| *n).collect();
    let mut times = vec![Vec::with_capacity(rounds); c.len()];
    for (_, f) in c.iter_mut() {
        black_box(f(&urls)); // warm-up
    }
    for round in 0..rounds {
        for k in 0..c.len() {
            let i = (k + round) % c.len();
            let t0 = thread_cpu_ns();
            black_box((c[i].1)(&urls));
            times[i].push((thread_cpu_ns() - t0) as f64 / urls.len() as f64);
        }
    }
    let load_after = uptime();
    let ratio_to = |j: usize, i: usize| {
        let mut r: Vec<f64> = (0..rounds).map(|k| times[i][k] / times[j][k]).collect();
        median(&mut r)
    };
    println!(
        "\n{} URLs from {}, N = {SERVERS}, R = {REPLICATION}, {rounds} paired rounds, thread CPU time; load average {load_before} before, {load_after} after\n",
        urls.len(),
        list.path.display()
    );
    println!("| decision | ns (median) | / floor (median of ratios) | / pick (median of ratios) |");
    println!("| --- | --- | --- | --- |");
    for (i, name) in names.iter().enumerate() {
        let mut t = times[i].clone();
        let (floor_ref, pick_ref) = if name.ends_with("dependent") {
            (
                names.iter().position(|n| *n == "floor, dependent").unwrap(),
                names.iter().position(|n| *n == "pick, dependent").unwrap(),
            )
        } else {
            (0, 1)
        };
        println!(
            "| {name} | {:.2} | {:.3} | {:.3} |",
            median(&mut t),
            ratio_to(floor_ref, i),
            ratio_to(pick_ref, i)
        );
    }
    println!();

    let mut crit = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(200))
        .measurement_time(std::time::Duration::from_millis(600))
        .configure_from_args();
    let mut g = crit.benchmark_group("floor");
    g.throughput(Throughput::Elements(urls.len() as u64));
    for (name, f) in c.iter_mut() {
        g.bench_function(*name, |b| b.iter(|| f(&urls)));
    }
    g.finish();
    crit.final_summary();
}
