//! The benchmark compares like with like only if the C loop makes exactly the decisions the Rust
//! dispatcher makes: checked here target by target, for every hash, with loads and with servers
//! down, on generated targets and (when the data is there) the World Cup URLs the bench uses.

use vibra::{
    VIBRA_HASH_CHARSUM, VIBRA_HASH_FAST, VIBRA_HASH_MD5, VIBRA_HASH_SHA1, VIBRA_OK,
    vibra_dispatcher, vibra_dispatcher_free, vibra_dispatcher_new, vibra_dispatcher_set_available,
    vibra_hash,
};
use vibra_ffi_bench::{CTargets, c_pick_loop, synthetic_targets};
// `::` because `vibra::vibra_hash` (the C hash type) is imported above.
use ::vibra_hash::{Dispatcher, HashKind};

const SERVERS: u32 = 16;
const REPLICATION: u32 = 2;

/// A libvibra dispatcher and the vibra-hash one it must agree with, the same servers down in
/// both.
struct Pair {
    c: *mut vibra_dispatcher,
    rust: Dispatcher,
}

impl Pair {
    fn new(hash: vibra_hash, down: &[u32]) -> Pair {
        let mut c = std::ptr::null_mut();
        // SAFETY: `c` is writable; freed by Drop.
        assert_eq!(
            unsafe { vibra_dispatcher_new(SERVERS, REPLICATION, hash, &mut c) },
            VIBRA_OK
        );
        let rust =
            Dispatcher::new(SERVERS, REPLICATION, HashKind::try_from(hash).unwrap()).unwrap();
        for &s in down {
            // SAFETY: `c` is live.
            assert_eq!(
                unsafe { vibra_dispatcher_set_available(c, s, false) },
                VIBRA_OK
            );
            rust.set_available(s, false).unwrap();
        }
        Pair { c, rust }
    }

    /// Every target's decision through the C loop (one target per call) against vibra-hash's.
    fn check(&self, targets: &[Vec<u8>], loads: &[u32]) {
        let mut sum = 0;
        for t in targets {
            let expected = self.rust.pick(t, loads).unwrap();
            // SAFETY: `self.c` is live until Drop.
            let c = unsafe { c_pick_loop(self.c, &CTargets::new(std::slice::from_ref(t)), loads) };
            assert_eq!(c, u64::from(expected), "{:?}", String::from_utf8_lossy(t));
            sum += c;
        }
        // And the whole pass at once, as the benchmark runs it.
        // SAFETY: as above.
        assert_eq!(
            unsafe { c_pick_loop(self.c, &CTargets::new(targets), loads) },
            sum
        );
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // SAFETY: made in `new`, not used again.
        unsafe { vibra_dispatcher_free(self.c) };
    }
}

const HASHES: [vibra_hash; 4] = [
    VIBRA_HASH_CHARSUM,
    VIBRA_HASH_MD5,
    VIBRA_HASH_SHA1,
    VIBRA_HASH_FAST,
];

fn loads() -> Vec<u32> {
    (0..SERVERS).map(|s| (s * 7 + 3) % 5).collect()
}

#[test]
fn the_c_loop_decides_as_the_rust_dispatcher_on_generated_targets() {
    let targets = synthetic_targets(512);
    for hash in HASHES {
        Pair::new(hash, &[]).check(&targets, &loads());
        Pair::new(hash, &[0, 5, 6]).check(&targets, &loads());
    }
}

#[test]
fn the_c_loop_decides_as_the_rust_dispatcher_on_the_world_cup_urls() {
    let Some(list) = wc98::urls_or_skip("the C loop on the World Cup URLs") else {
        return;
    };
    let targets = &list.urls[..4096];
    for hash in [VIBRA_HASH_FAST, VIBRA_HASH_CHARSUM] {
        Pair::new(hash, &[]).check(targets, &loads());
    }
}

#[test]
fn failed_calls_add_nothing_to_the_sum() {
    // Loads of the wrong length make every call fail (VIBRA_INVALID_ARGUMENT): the sum is 0.
    let pair = Pair::new(VIBRA_HASH_FAST, &[]);
    let targets = synthetic_targets(8);
    let targets = CTargets::new(&targets);
    // SAFETY (both): `pair.c` is live.
    assert!(unsafe { c_pick_loop(pair.c, &targets, &loads()) } > 0);
    assert_eq!(unsafe { c_pick_loop(pair.c, &targets, &[1, 2, 3]) }, 0);
}
