//! Control-message parsing on arbitrary bytes (what `recvmsg` would hand back if the kernel,
//! or a bug, produced garbage): never a panic, and any timestamp found is well formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtimestamp::socket::parse_control;

fuzz_target!(|data: &[u8]| {
    if let Ok(found) = parse_control(data) {
        for ts in [found.ns, found.software].into_iter().flatten() {
            assert!(ts.tv_sec >= 0 && (0..1_000_000_000).contains(&ts.tv_nsec));
            assert!(ts.to_system_time().is_ok());
        }
    }
});
