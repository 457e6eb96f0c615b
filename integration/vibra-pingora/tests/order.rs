//! `FailoverOrder` against vibra-hash: the first server of a URL's failover order is the
//! dispatcher's equal-load pick under the same availability, whatever order the set arrives in.

use proptest::prelude::*;
use vibra_hash::{Availability, Dispatcher, HashKind};
use vibra_pingora::FailoverOrder;

proptest! {
    #[test]
    fn first_of_failover_order_is_the_equal_load_pick(
        n in 1u32..40,
        r_seed in 0u32..40,
        present_seed in any::<u64>(),
        shuffle_seed in any::<u64>(),
        url in "/[a-z0-9/._?=&]{0,24}",
    ) {
        let r = 1 + r_seed % n;
        // Configured: server s is named 1000 - s, so sorted order is the reverse.
        let configured: Vec<u32> = (0..n).map(|s| 1000 - s).collect();
        let flags: Vec<bool> = (0..n).map(|s| present_seed >> (s % 64) & 1 == 1 || s == n - 1).collect();
        let mut items: Vec<u32> = (0..n).filter(|&s| flags[s as usize]).map(|s| 1000 - s).collect();
        items.sort_unstable();
        let shift = (shuffle_seed % items.len() as u64) as usize;
        items.rotate_left(shift);

        let order = FailoverOrder::new(&configured, items.iter().copied(), |x| *x, HashKind::Md5).unwrap();
        let d = Dispatcher::new(n, r, HashKind::Md5).unwrap();
        let up = Availability::from_flags(&flags).unwrap();
        let expected = d.pick_with(url.as_bytes(), &vec![0; n as usize], up.words()).unwrap();
        let walk: Vec<u32> = order.failover(url.as_bytes()).map(|name| 1000 - name).collect();
        prop_assert_eq!(walk[0], expected);
        // The walk is the whole present set in cyclic order from the sub-namespace.
        let cyclic: Vec<u32> = up.iter_from(d.namespace(url.as_bytes())).collect();
        prop_assert_eq!(walk, cyclic);
    }
}

#[test]
fn unlisted_items_are_numbered_after_the_configured_ones() {
    let order = FailoverOrder::new(&["b", "a"], ["a", "b", "c"], |s| *s, HashKind::Fast).unwrap();
    assert_eq!(order.servers(), 3);
    assert_eq!(
        (0..3).map(|s| order.server(s).copied()).collect::<Vec<_>>(),
        vec![Some("b"), Some("a"), Some("c")]
    );
}

#[test]
fn a_duplicate_keeps_the_first_and_nothing_present_is_an_error() {
    let order = FailoverOrder::new(&[1, 2], [(1, 'x'), (1, 'y')], |p| p.0, HashKind::Fast).unwrap();
    assert_eq!(order.server(0), Some(&(1, 'x')));
    assert_eq!(order.failover(b"/").count(), 1);
    assert!(FailoverOrder::new(&[1, 2], [3u8; 0], |x| u32::from(*x), HashKind::Fast).is_err());
}
