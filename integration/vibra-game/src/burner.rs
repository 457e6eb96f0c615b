//! Background CPU burners: threads that hash in a loop until told to stop, the "other VMs'
//! work" that competes with the game servers for the CPU.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha1::{Digest, Sha1};

pub(crate) fn burn(stop: Arc<AtomicBool>) -> u64 {
    let mut state = [0u8; 64];
    let mut rounds = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..256 {
            let d = Sha1::digest(state);
            state[..20].copy_from_slice(&d);
            rounds += 1;
        }
        black_box(&state);
    }
    rounds
}
