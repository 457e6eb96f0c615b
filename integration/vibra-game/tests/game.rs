//! The model game on real loopback sockets. Only invariants are checked, never timings: the
//! machine is shared.

use std::time::Duration;

use proptest::prelude::*;
use vibra_game::{GameConfig, GameError, INPUT_PACKET_LEN, InputPacket, SessionKey, run};

#[test]
fn kernel_stamps_never_trail_the_app_clock_and_every_input_verifies() {
    let cfg = GameConfig {
        servers: 3,
        clients_per_server: 2,
        burners: 1,
        warmup: Duration::from_millis(200),
        measure: Duration::from_millis(600),
        ..Default::default()
    };
    let r = run(&cfg).expect("run");
    // Something was measured, from each source: 6 clients at 20 inputs/s for 0.6 s send about
    // 72 inputs in the window (a run that measured nothing would pass every check below).
    assert!(r.inputs_sent > 0, "no input sent: {r:?}");
    assert!(r.app.samples > 0, "no application-clock sample: {r:?}");
    assert!(r.kernel.samples > 0, "no kernel-stamp sample: {r:?}");
    assert!(
        r.updates_sent > 0 && r.updates_received > 0,
        "no world update: {r:?}"
    );
    // A delay from the client's send to the application clock read after recvmsg is positive.
    assert!(r.app.mean_us > 0.0 && r.app.p95_us > 0.0, "{r:?}");
    assert_eq!(r.kernel_after_app, 0);
    assert_eq!(r.rejected, 0);
    assert_eq!(r.app.samples, r.kernel.samples);
    assert!(r.app.samples as u64 <= r.inputs_sent);
    // Per packet kernel <= app, so every order statistic and the mean keep that order.
    assert!(r.kernel.mean_us <= r.app.mean_us);
    assert!(r.kernel.p95_us <= r.app.p95_us);
    assert!(r.updates_received <= r.updates_sent);
}

#[test]
fn bad_configurations_are_rejected() {
    for cfg in [
        GameConfig {
            servers: 0,
            ..Default::default()
        },
        GameConfig {
            clients_per_server: 0,
            ..Default::default()
        },
        GameConfig {
            input_rate_hz: f64::NAN,
            ..Default::default()
        },
        GameConfig {
            update_hz: 0,
            ..Default::default()
        },
        GameConfig {
            measure: Duration::ZERO,
            ..Default::default()
        },
    ] {
        assert!(matches!(run(&cfg), Err(GameError::Config(_))), "{cfg:?}");
    }
}

proptest! {
    #[test]
    fn input_packets_round_trip_at_296_bytes(
        client in 0u32..u32::MAX, seq in any::<u64>(), sent_ns in any::<u64>(),
        block in prop::collection::vec(any::<u8>(), 256), seed in any::<u64>(),
    ) {
        let key = SessionKey::from_seed(seed);
        let p = InputPacket { client, seq, sent_ns, block: block.try_into().expect("256 bytes") };
        let wire = p.encode(&key);
        prop_assert_eq!(wire.len(), INPUT_PACKET_LEN);
        prop_assert_eq!(InputPacket::decode(&wire, &key)?, p);
    }

    #[test]
    fn any_flipped_bit_fails_the_digest(seed in any::<u64>(), bit in 0usize..INPUT_PACKET_LEN * 8) {
        let key = SessionKey::from_seed(seed);
        let mut wire = InputPacket { client: 1, seq: 2, sent_ns: 3, block: [9; 256] }.encode(&key);
        wire[bit / 8] ^= 1 << (bit % 8);
        let rejected = matches!(InputPacket::decode(&wire, &key), Err(GameError::Digest { .. }));
        prop_assert!(rejected);
    }
}
