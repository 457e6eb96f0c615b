//! A fixed amount of dispatch work over the real World Cup URLs, for instruction counting with
//! `valgrind --tool=callgrind` (repeatable however loaded the machine is, unlike any clock).
//!
//! ```text
//! cargo build --release -p vibra-hash --example decision_count
//! valgrind --tool=callgrind --toggle-collect='*decision_count::run*' \
//!     target/release/examples/decision_count fast 16
//! ```
//!
//! Arguments: a mode (`key`, `fast`, `fast-dep`, `charsum`, `md5`, `bounded`, `acquire`) and the server
//! count (default 16; R = 2). Each mode makes one pass: one decision per URL. The corpus is
//! the World Cup URL list, read by `wc98::urls` (data directory from `VIBRA_DATA_DIR`, else the
//! default beside the repository). Only `run` is counted (with the
//! `--toggle-collect` above), so reading the corpus is not: divide its instruction count by the
//! printed number of URLs.

use std::hint::black_box;
use std::process::ExitCode;

use vibra_hash::{Dispatcher, HashKind, dispatch_key};

/// The World Cup URLs through the workspace's one reader (every byte of each URL, nothing
/// trimmed); `None` when the data is not there.
fn corpus() -> Option<Vec<Vec<u8>>> {
    match wc98::urls(None) {
        Ok(list) => list.map(|l| l.urls),
        Err(e) => {
            eprintln!("World Cup URL list: {e}");
            None
        }
    }
}

/// The counted work: one pass over `urls` in `mode`.
#[inline(never)]
fn run(mode: &str, d: &Dispatcher, urls: &[Vec<u8>], loads: &[u32]) -> u64 {
    let mut sum = 0u64;
    match mode {
        "key" => {
            for u in urls {
                sum += dispatch_key(black_box(u)).len() as u64;
            }
        }
        "fast-dep" => {
            let mut i = 0usize;
            for _ in 0..urls.len() {
                let s = d.pick(&urls[i], loads).unwrap_or(0);
                sum += u64::from(s);
                i += 1 + (s as usize & 1);
                if i >= urls.len() {
                    i -= urls.len();
                }
            }
        }
        "bounded" => {
            // A factor high enough that some member is always under the bound (the common case).
            let factor = vibra_hash::BalanceFactor::new(1000).unwrap_or_else(|_| unreachable!());
            let total = loads.iter().map(|&l| u64::from(l)).sum();
            for u in urls {
                sum += u64::from(
                    d.pick_bounded(black_box(u), loads, total, factor)
                        .unwrap_or(0),
                );
            }
        }
        "acquire" => {
            for u in urls {
                if let Ok(lease) = d.acquire(black_box(u)) {
                    sum += u64::from(lease.server());
                }
            }
        }
        _ => {
            for u in urls {
                sum += u64::from(d.pick(black_box(u), loads).unwrap_or(0));
            }
        }
    }
    sum
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("fast", String::as_str);
    let servers: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let hash = match mode {
        "charsum" => HashKind::Charsum,
        "md5" => HashKind::Md5,
        _ => HashKind::Fast,
    };
    let Some(urls) = corpus() else {
        eprintln!("no World Cup URL list found (set VIBRA_DATA_DIR)");
        return ExitCode::FAILURE;
    };
    let d = match Dispatcher::new(servers, 2, hash) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let loads: Vec<u32> = (0..servers).map(|s| (s * 7 + 3) % 10).collect();
    let sum = run(mode, &d, &urls, &loads);
    println!(
        "{mode}: {} URLs, {servers} servers, checksum {sum}",
        urls.len()
    );
    ExitCode::SUCCESS
}
