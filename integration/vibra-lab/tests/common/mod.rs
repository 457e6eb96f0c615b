//! What the root tests of the testbed share: the skip rule and the root check.

/// Whether `VIBRA_REQUIRE_PRIVILEGED=1` forbids skipping (CI's testbed stage).
fn require() -> bool {
    std::env::var("VIBRA_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}

/// Says `SKIPPED <test>: <why>`, or fails when skipping is forbidden.
pub fn skip(test: &str, why: &str) {
    assert!(
        !require(),
        "{test}: cannot run ({why}) but VIBRA_REQUIRE_PRIVILEGED=1 demands it"
    );
    eprintln!("SKIPPED {test}: {why}");
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}
