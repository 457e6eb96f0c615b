//! The process's resident anonymous memory, read from `/proc` (Linux): table 3.2's memory per
//! distinct object is its growth across preloading LARD with every URL, as the dissertation
//! measured the resident set (section 3.5.2, in 4 KiB pages). No allocator hook and no
//! `unsafe`: the crate forbids it.
//!
//! Anonymous memory (heap, stacks), not the whole resident set: per-object state lives on the
//! heap, while the resident set also counts the program's own file pages as code is first
//! run. Those are not per-object memory, and right after a build they are even dirty in the
//! page cache (a debug test binary faulted in ~500 KiB of them during round-robin's preload).
//!
//! The source is `/proc/self/smaps_rollup`'s `Anonymous:` line (Linux 4.14+), which the
//! kernel sums from the page tables, so it is exact; `/proc/self/status`'s `RssAnon:` is the
//! fallback (its counters may lag by a few pages). Both are in KiB, so the page size does not
//! matter.
//!
//! What the growth does and does not see: pages first touched in the window count, whoever
//! touched them (so measure while no other thread of the process allocates); memory the
//! allocator hands out again after an earlier `free` was already resident and does not count,
//! so the growth is a lower bound on what the measured structure occupies.
//!
//! Transparent huge pages would break that: with THP on (`always`, as many distributions ship
//! it), the kernel's khugepaged may collapse a partly used 2 MiB range into one huge page at
//! any moment, and the resident set jumps by up to 512 pages that nothing touched.
//! [`exclude_huge_pages`] turns them off for the process before a measurement.

use std::io::Read as _;
use std::path::Path;

/// The resident anonymous memory (heap, stacks) of this process in bytes, or `None` where
/// `/proc` does not give it (not Linux).
///
/// ```
/// if let Some(before) = vibra_lab::anonymous_resident_bytes() {
///     let v = vec![1u8; 8 << 20]; // 8 MiB, every page written
///     let after = vibra_lab::anonymous_resident_bytes().unwrap();
///     assert!(after >= before + (4 << 20), "{before} -> {after}");
///     drop(v);
/// }
/// ```
pub fn anonymous_resident_bytes() -> Option<u64> {
    kib_field(Path::new("/proc/self/smaps_rollup"), "Anonymous:")
        .or_else(|| kib_field(Path::new("/proc/self/status"), "RssAnon:"))
        .map(|kib| kib * 1024)
}

/// Turns transparent huge pages off for this process (Linux `prctl(PR_SET_THP_DISABLE)`,
/// inherited by children), so that the resident set grows only by the 4 KiB pages the process
/// touches. Returns whether huge pages are now off; `false` where the system has no such
/// switch (not Linux, or a kernel before 3.15), and then a growth may include a collapse.
///
/// ```
/// if vibra_lab::exclude_huge_pages() {
///     // Every later resident-set growth is in pages this process touched.
/// }
/// ```
pub fn exclude_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::set_thp_disable(true).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The number of the first line `<label> <n> kB` of a `/proc` file.
///
/// Read into a buffer on the stack: a heap buffer, allocated between two readings, could
/// itself be the page the second reading finds grown.
fn kib_field(path: &Path, label: &str) -> Option<u64> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 8192];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    parse_kib(std::str::from_utf8(&buf[..len]).ok()?, label)
}

fn parse_kib(text: &str, label: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix(label))?;
    let mut parts = line.split_whitespace();
    let n = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_labelled_kib_line_and_rejects_others() {
        let status = "Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t    1768 kB\nThreads:\t1\n";
        assert_eq!(parse_kib(status, "VmRSS:"), Some(1768));
        assert_eq!(parse_kib(status, "VmSwap:"), None);
        assert_eq!(parse_kib("VmRSS: 12 pages\n", "VmRSS:"), None);
        assert_eq!(parse_kib("Rss: x kB\n", "Rss:"), None);
    }
}
