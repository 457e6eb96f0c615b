//! Behaviour of the baselines behind the `Selection` trait, and nginx compatibility of the
//! ketama ring.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use vibra_baselines::{
    BoundedLoad, Error, KetamaRing, Lard, LardParams, LardR, LeastConnection, NaiveRepartition,
    Placement, RoundRobin, Selection,
};
use vibra_hash::{BalanceFactor, Dispatcher, Error as HashError, HashKind};

const T0: Duration = Duration::ZERO;

/// Recorded from a real nginx 1.x (`hash $request_uri consistent`, nine servers of weight 100)
/// by the pingora-ketama authors (its `test-data/sample-nginx-upstream.csv`, Apache-2.0): the
/// first 20 of its 1000 lines.
const NGINX_TRACE: &str = "\
/81fa1d251d605775d647b5b55565e71526d4cef6,10.0.0.7:443
/2fec328e6ccdda6a7edf329f9f780e546ea183b4,10.0.0.5:443
/19fb835d90883a6263ec4279c6da184e3f1a79b2,10.0.0.4:443
/da7a88e542f7aaddc074f988164b9df7e5f7fea6,10.0.0.4:443
/8f87cfd8005306643b6528b3d4125cf005139a7e,10.0.0.5:443
/26d2769eab098458bc3e4e641a4b7d8abffd0aea,10.0.0.6:443
/aa5b5323980f2d3e21246212ebd820c3949c1e88,10.0.0.7:443
/d9c4bc3cc4517c629e8f4c911c2fd8baf260ae65,10.0.0.1:443
/28c1c069a2904bb3b3e0f9731b1ff8de9ab7a76d,10.0.0.4:443
/fe5199bdfeee5cd431ae7e9f77f178164f9995a0,10.0.0.9:443
/43992eee187920c5e8695332f71ca6e23ef6ac4b,10.0.0.3:443
/38528aab753a6f32de86b5a7acdbb0c885137a81,10.0.0.9:443
/12d4b9155ff599c0ac554226796b58a2278b450f,10.0.0.7:443
/9c34c9a4f9009997dd29c6e6a627b0aca7beb6e5,10.0.0.5:443
/eb5a2ab55796afd673874fd7560f1329be5540bd,10.0.0.9:443
/ad7b5395766b77098c3f212043650a805b622ffe,10.0.0.3:443
/c72fedf4177499635302849496898fe4f3409cc1,10.0.0.9:443
/77766138aaf0c016bdd1f6b996177fc8ca1d2204,10.0.0.8:443
/860c86b94e04f2648fb164c87fd6166707fd08ff,10.0.0.6:443
/1b419454e4eb63ef915e8e06cc11110a3ccd607e,10.0.0.7:443
";

#[test]
fn ketama_matches_a_trace_recorded_from_nginx() {
    let servers: Vec<(SocketAddr, u32)> = (1..=9)
        .map(|i| (format!("10.0.0.{i}:443").parse().unwrap(), 100))
        .collect();
    let ring = KetamaRing::weighted(&servers).unwrap();
    for line in NGINX_TRACE.lines() {
        let (uri, upstream) = line.split_once(',').unwrap();
        let want: SocketAddr = upstream.parse().unwrap();
        let got = ring.server_for_key(uri.as_bytes()).unwrap();
        assert_eq!(servers[got as usize].0, want, "{uri}");
    }
}

#[test]
fn ketama_matches_nginx_sample_with_two_servers() {
    let servers: Vec<SocketAddr> = ["127.0.0.1:7777", "127.0.0.1:7778"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let ring = KetamaRing::new(&servers).unwrap();
    for (key, want) in [
        (&b"/some/path"[..], 1),
        (b"/some/longer/path", 0),
        (b"/sad/zaidoon", 1),
        (b"/g", 0),
        (b"/pingora/team/is/cool/and/this/is/a/long/uri", 1),
        (b"/i/am/not/confident/in/this/code", 0),
    ] {
        assert_eq!(ring.server_for_key(key), Some(want));
    }
    assert_eq!(ring.points(), 320);
}

#[test]
fn ketama_skips_down_servers_and_errors_when_all_are_down() {
    let mut ring = KetamaRing::with_servers(5).unwrap();
    let keys: Vec<String> = (0..500).map(|i| format!("/k{i}")).collect();
    let before: Vec<u32> = keys
        .iter()
        .map(|k| ring.server_for_key(k.as_bytes()).unwrap())
        .collect();
    ring.set_available(2, false).unwrap();
    for (k, &b) in keys.iter().zip(&before) {
        let now = ring.select(k.as_bytes(), &[0; 5], T0).unwrap();
        assert_ne!(now, 2);
        if b != 2 {
            assert_eq!(
                now, b,
                "consistent hashing moves only the failed server's keys"
            );
        }
    }
    for s in 0..5 {
        ring.set_available(s, false).unwrap();
    }
    assert_eq!(
        ring.select(b"/x", &[0; 5], T0),
        Err(Error::Hash(HashError::NoServerAvailable))
    );
    assert_eq!(
        ring.select(b"/x", &[0; 4], T0),
        Err(Error::Hash(HashError::SliceLength { len: 4, servers: 5 }))
    );
    assert!(KetamaRing::with_servers(0).is_err());
    assert!(ring.set_available(5, true).is_err());
}

#[test]
fn round_robin_cycles_over_available_servers() {
    let mut rr = RoundRobin::new(4).unwrap();
    let picks: Vec<u32> = (0..6)
        .map(|_| rr.select(b"/", &[9, 0, 0, 0], T0).unwrap())
        .collect();
    assert_eq!(picks, vec![0, 1, 2, 3, 0, 1]);
    rr.set_available(3, false).unwrap();
    rr.set_available(0, false).unwrap();
    let picks: Vec<u32> = (0..4)
        .map(|_| rr.select(b"/", &[0; 4], T0).unwrap())
        .collect();
    assert_eq!(picks, vec![2, 1, 2, 1]);
    rr.set_available(1, false).unwrap();
    rr.set_available(2, false).unwrap();
    assert_eq!(
        rr.select(b"/", &[0; 4], T0),
        Err(Error::Hash(HashError::NoServerAvailable))
    );
}

#[test]
fn least_connection_takes_the_lowest_index_on_ties_and_skips_down_servers() {
    let mut lc = LeastConnection::new(4).unwrap();
    assert_eq!(lc.select(b"/", &[3, 1, 1, 2], T0), Ok(1));
    lc.set_available(1, false).unwrap();
    assert_eq!(lc.select(b"/", &[3, 1, 1, 2], T0), Ok(2));
    assert!(lc.select(b"/", &[3, 1], T0).is_err());
}

#[test]
fn lard_follows_pai_et_al() {
    let mut lard = Lard::new(3, LardParams::PAI_ASPLOS98).unwrap();
    // First sight: least loaded.
    assert_eq!(lard.select(b"/a", &[10, 5, 7], T0), Ok(1));
    // Above T_high but nobody below T_low, and below 2 T_high: stays.
    assert_eq!(lard.select(b"/a", &[30, 66, 26], T0), Ok(1));
    // At 2 T_high: moves whatever the others' loads.
    assert_eq!(lard.select(b"/a", &[100, 130, 90], T0), Ok(2));
    // The move is remembered.
    assert_eq!(lard.select(b"/a", &[0, 0, 1], T0), Ok(2));
    // A failed server's entries are invalid; when it returns it is a new incarnation.
    lard.set_available(2, false).unwrap();
    assert_eq!(lard.select(b"/a", &[4, 3, 0], T0), Ok(1));
    lard.set_available(2, true).unwrap();
    assert_eq!(lard.select(b"/a", &[4, 3, 0], T0), Ok(1));
    let mut held = Vec::new();
    lard.holders(b"/a?q", &mut held).unwrap();
    assert_eq!(held, vec![1]);
    assert_eq!(lard.history_len(), 1);
    assert_eq!(
        lard.select(b"/a", &[0; 2], T0),
        Err(Error::Hash(HashError::SliceLength { len: 2, servers: 3 }))
    );
}

#[test]
fn lard_r_grows_on_overload_and_shrinks_after_k() {
    let mut lr = LardR::new(4, LardParams::PAI_ASPLOS98).unwrap();
    let s = Duration::from_secs;
    assert_eq!(lr.select(b"/hot", &[0, 0, 0, 0], s(0)), Ok(0));
    // Member overloaded while server 3 is under T_low: grow.
    assert_eq!(lr.select(b"/hot", &[70, 30, 30, 10], s(1)), Ok(3));
    assert_eq!(lr.replicas(b"/hot"), vec![0, 3]);
    // Least-loaded member wins; no change within K.
    assert_eq!(lr.select(b"/hot", &[5, 30, 30, 10], s(10)), Ok(0));
    assert_eq!(lr.replicas(b"/hot"), vec![0, 3]);
    // Unchanged for more than K: the most loaded member leaves.
    assert_eq!(lr.select(b"/hot", &[5, 30, 30, 10], s(22)), Ok(0));
    assert_eq!(lr.replicas(b"/hot"), vec![0]);
    // A single member is never removed.
    assert_eq!(lr.select(b"/hot", &[5, 30, 30, 10], s(100)), Ok(0));
    assert_eq!(lr.replicas(b"/hot"), vec![0]);
    // Its only member fails: a new set on the least-loaded server.
    lr.set_available(0, false).unwrap();
    assert_eq!(lr.select(b"/hot", &[0, 3, 2, 9], s(101)), Ok(2));
    assert_eq!(lr.replicas(b"/hot"), vec![2]);
    assert!(lr.history_bytes() > 0);
}

#[test]
fn lard_params_reject_inverted_thresholds() {
    assert_eq!(
        LardParams::new(30, 30, Duration::ZERO),
        Err(Error::InvalidThresholds {
            t_low: 30,
            t_high: 30
        })
    );
}

#[test]
fn naive_repartition_hands_ranges_to_survivors_in_server_order() {
    let mut naive = NaiveRepartition::new(5, 2, HashKind::Fast).unwrap();
    naive.set_available(1, false).unwrap();
    naive.set_available(3, false).unwrap();
    let survivors = [0u32, 2, 4];
    for i in 0..300 {
        let key = format!("/obj/{i}");
        let j = NaiveRepartition::range_of(HashKind::Fast, key.as_bytes(), 3) as usize;
        let mut held = Vec::new();
        naive.holders(key.as_bytes(), &mut held).unwrap();
        assert_eq!(held, vec![survivors[j], survivors[(j + 1) % 3]]);
    }
    for s in [0, 2, 4] {
        naive.set_available(s, false).unwrap();
    }
    assert_eq!(
        naive.select(b"/", &[0; 5], T0),
        Err(Error::Hash(HashError::NoServerAvailable))
    );
    assert!(NaiveRepartition::new(3, 4, HashKind::Fast).is_err());
}

#[test]
fn every_policy_rejects_bad_input_without_changing() {
    let lard = Lard::new(4, LardParams::PAI_ASPLOS98).unwrap();
    let mut policies: Vec<Box<dyn Selection>> = vec![
        Box::new(RoundRobin::new(4).unwrap()),
        Box::new(LeastConnection::new(4).unwrap()),
        Box::new(NaiveRepartition::new(4, 2, HashKind::Md5).unwrap()),
        Box::new(lard),
        Box::new(LardR::new(4, LardParams::PAI_ASPLOS98).unwrap()),
        Box::new(KetamaRing::with_servers(4).unwrap()),
        Box::new(Dispatcher::new(4, 2, HashKind::Fast).unwrap()),
        Box::new(BoundedLoad::new(
            Dispatcher::new(4, 2, HashKind::Fast).unwrap(),
            BalanceFactor::new(125).unwrap(),
        )),
    ];
    for p in &mut policies {
        assert_eq!(p.servers(), 4, "{}", p.name());
        assert_eq!(
            p.select(b"/a", &[0; 5], T0),
            Err(Error::Hash(HashError::SliceLength { len: 5, servers: 4 })),
            "{}",
            p.name()
        );
        assert_eq!(
            p.set_available(4, false),
            Err(Error::Hash(HashError::ServerOutOfRange {
                server: 4,
                servers: 4
            })),
            "{}",
            p.name()
        );
        let first = p.select(b"/a", &[0; 4], T0).unwrap();
        assert!(first < 4);
        for s in 0..4 {
            p.set_available(s, false).unwrap();
        }
        assert_eq!(
            p.select(b"/a", &[0; 4], T0),
            Err(Error::Hash(HashError::NoServerAvailable)),
            "{}",
            p.name()
        );
    }
    assert!(RoundRobin::new(0).is_err());
    assert!(LeastConnection::new(Dispatcher::MAX_SERVERS + 1).is_err());
}

proptest! {
    #[test]
    fn naive_policy_placement_agrees_with_exact_naive_loss(
        n in 2u32..12, r_seed in any::<u32>(), failed_seed in any::<u32>()
    ) {
        let r = 1 + r_seed % n;
        let failed = failed_seed % n;
        let before = NaiveRepartition::new(n, r, HashKind::Fast).unwrap();
        let mut after = before.clone();
        after.set_available(failed, false).unwrap();
        let keys: Vec<String> = (0..4000).map(|i| format!("/u/{i}")).collect();
        let sampled = vibra_baselines::locality_loss(keys.iter().map(|k| k.as_bytes()), &before, &after).unwrap();
        let mut down = vec![true; n as usize];
        down[failed as usize] = false;
        let exact = vibra_baselines::naive_loss(&vec![true; n as usize], &down, r).unwrap();
        // 4000 keys: standard error well under 1%.
        prop_assert!((sampled - exact).abs() < 0.04, "sampled {} exact {}", sampled, exact);
    }
}

/// Pai et al.'s "load >= 2 T_high" test with T_high near `u32::MAX` (2 T_high > u32::MAX):
/// no overflow, and a server at `u32::MAX` is below 2 T_high, so LARD and LARD/R keep it.
#[test]
fn lard_with_the_largest_t_high_does_not_overflow() {
    let params = LardParams::new(0, u32::MAX, Duration::from_secs(20)).unwrap();
    let policies: Vec<Box<dyn Selection>> = vec![
        Box::new(Lard::new(2, params).unwrap()),
        Box::new(LardR::new(2, params).unwrap()),
    ];
    for mut p in policies {
        assert_eq!(p.select(b"/a", &[0, 1], T0), Ok(0), "{}", p.name());
        assert_eq!(p.select(b"/a", &[u32::MAX, 0], T0), Ok(0), "{}", p.name());
    }
    // At T_high = 2^31, a load of 2^32 - 1 >= 2 T_high - 1 but < 2 T_high: still kept.
    let params = LardParams::new(0, 1 << 31, Duration::ZERO).unwrap();
    let mut lard = Lard::new(2, params).unwrap();
    assert_eq!(lard.select(b"/a", &[0, 1], T0), Ok(0));
    assert_eq!(lard.select(b"/a", &[u32::MAX, 0], T0), Ok(0));
}
