//! Measures what one world frame costs with the default number of integration steps, so the
//! `sim_substeps` setting can be related to CPU time: `cargo run --release -p vibra-game --example frame_cost`.

use std::time::Instant;

use vibra_game::{GameConfig, InputPacket, SessionKey, World};

fn main() {
    let cfg = GameConfig::default();
    let mut w = World::new(SessionKey::from_seed(1));
    let addr = "127.0.0.1:9".parse().expect("address");
    for c in 0..cfg.clients_per_server as u32 {
        let mut block = [0u8; 256];
        block[..4].copy_from_slice(&(1_000_000 * (c as i32 + 1)).to_le_bytes());
        w.apply(
            &InputPacket {
                client: c,
                seq: 1,
                sent_ns: 0,
                block,
            },
            addr,
        );
    }
    let frames = 200;
    let t = Instant::now();
    for _ in 0..frames {
        w.tick(0.05, cfg.sim_substeps);
    }
    let per = t.elapsed() / frames;
    println!(
        "{} players, {} substeps: {:?} per frame, {:.1}% of a core per server at {} Hz",
        cfg.clients_per_server,
        cfg.sim_substeps,
        per,
        per.as_secs_f64() * f64::from(cfg.update_hz) * 100.0,
        cfg.update_hz
    );
}
