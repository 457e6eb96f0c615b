//! `vibra-lab reproduce fig6.5 --quick --json` end to end: real game servers on loopback.
//! Only invariants are checked (the machine is shared): every server count has a row per
//! timestamp source, and kernel stamps are never later than the application clock, so the
//! kernel's mean and 95th percentile never exceed the application clock's.

use std::process::Command;

use serde_json::Value;

#[test]
fn fig6_5_quick_json_has_both_sources_and_kernel_never_trails() {
    let out = Command::new(env!("CARGO_BIN_EXE_vibra-lab"))
        .args(["reproduce", "fig6.5", "--quick", "--json", "--quiet"])
        .arg("--out")
        .arg(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("run vibra-lab");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(doc["experiment"], "fig6.5");
    let rows = doc["rows"].as_array().expect("rows");
    let servers: Vec<u64> = rows
        .iter()
        .filter(|r| r["source"] == "kernel")
        .map(|r| r["servers"].as_u64().expect("servers"))
        .collect();
    assert!(servers.len() >= 3 && servers.contains(&46), "{servers:?}");
    for n in servers {
        let get = |source: &str, field: &str| {
            rows.iter()
                .find(|r| r["servers"] == n && r["source"] == source)
                .and_then(|r| r[field].as_f64())
                .unwrap_or_else(|| panic!("{n} servers: no {source} {field}"))
        };
        assert!(get("kernel", "samples") > 0.0);
        assert_eq!(get("kernel", "samples"), get("app_clock", "samples"));
        assert!(get("kernel", "mean_us") <= get("app_clock", "mean_us"));
        assert!(get("kernel", "p95_us") <= get("app_clock", "p95_us"));
    }
}
