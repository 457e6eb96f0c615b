//! End-to-end tests of the built `vibra-lab` binary: what a user types, what they get.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use vibra_hash::{Dispatcher, HashKind};

fn vibra_lab(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vibra-lab"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the vibra-lab binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    // A command that rejects its arguments exits without reading: ignore the broken pipe.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("vibra-lab finishes")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 output")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh output folder per test (tests run in parallel).
fn out_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vibra-lab-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `vibra-lab map --servers N --replication R --hash H [--down LIST]` over `input`.
fn map(servers: &str, replication: &str, hash: &str, down: Option<&str>, input: &[u8]) -> Output {
    let mut args = vec![
        "map",
        "--servers",
        servers,
        "--replication",
        replication,
        "--hash",
        hash,
    ];
    if let Some(list) = down {
        args.extend_from_slice(&["--down", list]);
    }
    vibra_lab(&args, input)
}

#[test]
fn map_prints_the_sub_namespace_and_subset_of_each_line() {
    // charsum: "/a" = 47 + 97 = 144 (mod 4 = 0), "/" = 47 (mod 4 = 3); the query and the
    // authority are not part of the key (SPEC section 1).
    let out = map(
        "4",
        "2",
        "charsum",
        None,
        b"/a\nhttp://example.com/a?q=1\n\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0 0,1\n0 0,1\n3 3,0\n");

    let down = map("4", "2", "charsum", Some("0,1"), b"/a\n");
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(stdout(&down), "0 2,3\n");
}

#[test]
fn map_agrees_with_the_library_for_every_hash() {
    let targets: Vec<String> = (0..300)
        .map(|i| format!("/english/competition/matchstat{}.htm?x={i}", 8800 + i * 7))
        .collect();
    let input = targets.join("\n") + "\n";
    for hash in HashKind::ALL {
        let out = map("11", "3", hash.name(), Some("2,3,10"), input.as_bytes());
        assert!(out.status.success(), "{hash}: {}", stderr(&out));
        let d = Dispatcher::new(11, 3, hash).unwrap();
        for s in [2, 3, 10] {
            d.set_available(s, false).unwrap();
        }
        let expected: String = targets
            .iter()
            .map(|t| {
                let ns = d.namespace(t.as_bytes());
                let subset: Vec<String> = d.subset(ns).unwrap().map(|s| s.to_string()).collect();
                format!("{ns} {}\n", subset.join(","))
            })
            .collect();
        assert_eq!(stdout(&out), expected, "{hash}");
    }
}

#[test]
fn map_rejects_bad_arguments_with_one_line_and_no_output() {
    let bad = |out: Output, case: &str| {
        assert!(!out.status.success(), "{case} succeeded");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{case}: {err}");
        assert!(err.starts_with("vibra-lab: "), "{case}: {err}");
        assert!(out.stdout.is_empty(), "{case} printed {}", stdout(&out));
    };
    bad(map("0", "1", "md5", None, b"/a\n"), "N = 0");
    bad(map("4", "0", "md5", None, b"/a\n"), "R = 0");
    bad(map("4", "5", "md5", None, b"/a\n"), "R > N");
    bad(map("x", "1", "md5", None, b"/a\n"), "N not a number");
    bad(map("4", "1", "crc", None, b"/a\n"), "unknown hash");
    bad(
        map("4", "1", "sha1", Some("4"), b"/a\n"),
        "down server out of range",
    );
    bad(
        map("2", "1", "sha1", Some("0,1"), b"/a\n"),
        "every server down",
    );
    bad(
        map("4", "1", "sha1", Some("1,,2"), b"/a\n"),
        "empty --down entry",
    );
    let missing = vibra_lab(&["map", "--servers", "4", "--replication", "1"], b"/a\n");
    bad(missing, "no --hash");
}

#[test]
fn list_names_every_registered_experiment() {
    let out = vibra_lab(&["list"], b"");
    assert!(out.status.success());
    let text = stdout(&out);
    for e in vibra_lab::EXPERIMENTS {
        assert!(text.contains(e.name()), "{} missing from {text}", e.name());
    }
}

/// `vibra-lab reproduce ARGS... --generated-urls --out DIR` (tests never depend on the
/// shared data being present).
fn reproduce(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["reproduce"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--generated-urls", "--out", dir.to_str().unwrap()]);
    vibra_lab(&all, b"")
}

/// Standard output of a successful run, parsed as one JSON object.
fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    let text = stdout(out);
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap()
}

fn assert_svg(path: &Path) {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert!(body.starts_with("<svg"), "{path:?}");
}

#[test]
fn reproduce_rejects_an_unknown_experiment() {
    let dir = out_dir("unknown");
    let out = reproduce(&dir, &["fig0.0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown experiment 'fig0.0'"));
}

#[test]
fn reproduce_refuses_a_policy_the_experiment_does_not_run_before_any_testbed() {
    // Refused before the testbed is looked at, so the same as root and not (no testbed is
    // brought up: the experiment fails at once and writes no report).
    for (experiment, bad) in [
        ("fig3.8", "lard-x"),
        ("fig3.9", "nginx-vibra"),
        ("fig3.10", "round-robin"),
    ] {
        let dir = out_dir(&format!("bad-policies-{experiment}"));
        let out = reproduce(
            &dir,
            &[
                experiment,
                "--quick",
                "--policies",
                &format!("url-hash,{bad}"),
            ],
        );
        assert!(!out.status.success(), "{experiment}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "bad argument --policies: {experiment} does not run '{bad}'"
            )),
            "{experiment}: {err}"
        );
        assert!(!dir.join(format!("{experiment}.json")).exists());
    }
    let dir = out_dir("bad-policies-twice");
    let out = reproduce(&dir, &["fig3.8", "--policies", "url-hash,url-hash"]);
    assert!(
        stderr(&out).contains("'url-hash' named twice"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reproduce_refuses_a_disk_read_rate_out_of_range_in_one_line() {
    for bad in ["0", "-1", "0.001", "abc", "NaN", "inf", "100001"] {
        let dir = out_dir(&format!("bad-disk-{bad}"));
        let out = reproduce(&dir, &["fig3.7", "--quick", "--disk-read-mb-s", bad]);
        assert!(!out.status.success(), "{bad}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{bad}: {err}");
        assert!(err.contains("--disk-read-mb-s"), "{bad}: {err}");
        assert!(!dir.exists(), "{bad}: nothing written");
    }
}

#[test]
fn reproduce_table3_1_json_has_the_spec_fields_and_writes_svgs() {
    let dir = out_dir("t31");
    let out = reproduce(&dir, &["table3.1", "--quick", "--json"]);
    let v = json_of(&out);
    assert_eq!(v["experiment"], "table3.1");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5 * 4, "round-robin + 4 hashes, 4 servers each");
    let fields = vibra_lab::find("table3.1").unwrap().row_fields();
    assert!(fields.contains(&"distinct_bytes"));
    for row in rows {
        for field in fields {
            assert!(row.get(field).is_some(), "{field} missing in {row}");
        }
    }
    for svg in ["requests", "bytes", "distinct-objects"] {
        assert_svg(&dir.join(format!("table3.1-{svg}.svg")));
    }
    // Progress goes to standard error, never into the JSON.
    assert!(stderr(&out).contains("[table3.1]"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reproduce_is_deterministic_for_a_seed_and_prints_it() {
    let dir = out_dir("seed");
    let run = |seed: &str| reproduce(&dir, &["table3.1", "--quick", "--quiet", "--seed", seed]);
    let (a, b, c) = (run("5"), run("5"), run("6"));
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(stdout(&a), stdout(&b));
    assert_ne!(stdout(&a), stdout(&c));
    assert!(stdout(&a).contains("seed 5"));
    assert!(stdout(&a).contains("ours vs dissertation"));
    assert!(a.stderr.is_empty(), "--quiet: {}", stderr(&a));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reproduce_fig4_1_json_rows_hold_the_dissertations_numbers() {
    let dir = out_dir("fig41");
    let v = json_of(&reproduce(&dir, &["fig4.1", "--json", "--quick"]));
    assert_eq!(v["experiment"], "fig4.1");
    let rows = v["rows"].as_array().unwrap();
    // N = 2..32 by R = 1..4, less (2, 3), (2, 4), (3, 4) where R > N.
    assert_eq!(rows.len(), 121);
    let q = rows
        .iter()
        .find(|x| x["servers"] == 10 && x["replication"] == 1)
        .unwrap();
    assert!((q["naive_worst_loss"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert!((q["naive_avg_loss"].as_f64().unwrap() - 0.367).abs() < 5e-4);
    for row in rows {
        let n = row["servers"].as_f64().unwrap();
        let skip = row["skip_loss"].as_f64().unwrap();
        assert!((skip - 1.0 / n).abs() < 1e-12);
        assert!(row["naive_avg_loss"].as_f64().unwrap() >= skip);
    }
    assert_svg(&dir.join("fig4.1.svg"));
    assert_svg(&dir.join("fig4.1-worst.svg"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reproduce_everything_quick_prints_each_result_and_draws_every_figure() {
    let dir = out_dir("all");
    // The testbed experiments have their own test (tests/testbed.rs) and CI stage.
    let out = reproduce(&dir, &["--quick", "--no-testbed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for e in vibra_lab::EXPERIMENTS {
        if e.real_components() {
            let skipped = format!("== {}: SKIPPED: --no-testbed ==", e.name());
            assert!(text.contains(&skipped), "{}", e.name());
            assert!(!dir.join(format!("{}.json", e.name())).exists());
            continue;
        }
        assert!(text.contains(&format!("== {}: ", e.name())), "{}", e.name());
        assert!(dir.join(format!("{}.json", e.name())).exists());
    }
    assert!(text.contains("== summary =="));
    let simulated = vibra_lab::EXPERIMENTS
        .iter()
        .filter(|e| !e.real_components())
        .count();
    assert!(simulated < vibra_lab::EXPERIMENTS.len());
    assert_eq!(text.matches("ours vs dissertation:").count(), simulated);
    // Every "figure: <path>" line names an SVG that exists.
    let figures: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("figure: "))
        .collect();
    assert!(figures.len() >= 7, "{figures:?}");
    for f in figures {
        assert_svg(Path::new(f));
    }
    // table3.2 as JSON, in a process of its own (the resident set is process-wide): LARD's
    // resident set grows with every distinct object, the hashes' does not.
    let v = json_of(&reproduce(
        &dir,
        &["table3.2", "--quick", "--json", "--quiet"],
    ));
    let rows = v["rows"].as_array().unwrap();
    let field = |a: &str, f: &str| {
        rows.iter()
            .find(|r| r["algorithm"] == a)
            .unwrap_or_else(|| panic!("{a} missing"))[f]
            .as_f64()
            .unwrap_or_else(|| panic!("{a}: {f} is not a number"))
    };
    for r in rows {
        assert!(r["ns_per_decision"].as_f64().unwrap() > 0.0, "{r}");
    }
    // Linux CI: /proc is there, so the RSS column is a number. A key alone is ~26 bytes, so
    // LARD's history costs more than 16 bytes per object; a page or two of noise over ~19,000
    // objects is well under a byte.
    assert!(field("lard", "bytes_per_object") > 16.0);
    assert!(field("lard", "history_estimate_bytes_per_object") > 16.0);
    for hash in ["charsum", "md5", "sha1", "fast", "round-robin", "ketama"] {
        assert!(field(hash, "bytes_per_object") < 1.0, "{hash}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reproduce_fig5_7_quick_json_rows_have_the_spec_fields_and_one_row_per_key() {
    let dir = out_dir("fig5_7");
    let v = json_of(&reproduce(
        &dir,
        &["fig5.7", "--quick", "--json", "--quiet"],
    ));
    assert_eq!(v["experiment"], "fig5.7");
    let rows = v["rows"].as_array().unwrap();
    // SPEC section 10's fields, plus the dimensions this experiment adds: a row is keyed by
    // (topology, scheduler, iterations, share), not by share alone.
    let mut keys = std::collections::HashSet::new();
    for r in rows {
        for f in ["share", "static_s", "distributed_s", "bank_s", "dps_s"] {
            assert!(r[f].as_f64().is_some_and(f64::is_finite), "{f}: {r}");
        }
        assert!(r["policy"].is_string(), "{r}");
        let key = (
            r["topology"].as_str().unwrap().to_string(),
            r["scheduler"].as_str().unwrap().to_string(),
            r["iterations"].as_u64().unwrap(),
            r["share"].to_string(),
        );
        assert!(keys.insert(key), "duplicate row {r}");
    }
    let at = |topology: &str, scheduler: &str, share: f64, f: &str| {
        rows.iter()
            .find(|r| {
                r["topology"] == topology
                    && r["scheduler"] == scheduler
                    && r["iterations"] == 10
                    && r["share"].as_f64() == Some(share)
            })
            .unwrap_or_else(|| panic!("no {topology}/{scheduler}/{share} row"))[f]
            .as_f64()
            .unwrap()
    };
    for scheduler in ["fluid", "credit"] {
        // The dissertation: the bank shortens the response at 0.1 share, and beats the fully
        // distributed exchange on the linear chain; nothing to gain when hosts are fully booked.
        let (st, dist, bank) = (
            at("linear", scheduler, 0.1, "static_s"),
            at("linear", scheduler, 0.1, "distributed_s"),
            at("linear", scheduler, 0.1, "bank_s"),
        );
        assert!(bank < dist && dist < st, "{scheduler}: {st} {dist} {bank}");
        let (st, bank) = (
            at("linear", scheduler, 0.5, "static_s"),
            at("linear", scheduler, 0.5, "bank_s"),
        );
        assert!(
            (st - bank).abs() <= 1e-6 * st,
            "{scheduler}: {st} vs {bank}"
        );
    }
    assert!(dir.join("fig5.7.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `vibra-lab reproduce fig4.1 --quick --quiet --out DIR ARGS...` with `VIBRA_DATA_DIR` set to
/// `data_dir` (or removed when `None`, so the workspace default applies).
fn fig4_1_with_data(dir: &Path, data_dir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibra-lab"));
    cmd.args(["reproduce", "fig4.1", "--quick", "--quiet", "--out"])
        .arg(dir)
        .args(args);
    match data_dir {
        Some(d) => cmd.env(wc98::DATA_DIR_ENV, d),
        None => cmd.env_remove(wc98::DATA_DIR_ENV),
    };
    cmd.output().expect("vibra-lab runs")
}

#[test]
fn reproduce_reads_the_url_list_where_wc98_finds_it_and_a_wrong_place_is_an_error() {
    let dir = out_dir("data-dir");
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("wc98")).unwrap();
    let list = data.join(wc98::URLS_FILE);
    // A trailing blank and a carriage return are parts of their URLs (wc98's rule).
    let mut lines: Vec<u8> = (0..28)
        .flat_map(|i| format!("{i:>10} /english/news/item{i}.htm\n").into_bytes())
        .collect();
    lines.extend_from_slice(
        b"        28 /english/news/item0.htm \n        29 /english/news/item0.htm\r\n",
    );
    std::fs::write(&list, &lines).unwrap();

    // $VIBRA_DATA_DIR: 30 URLs of the file plus the 8 hot objects the corpus always holds.
    let out = fig4_1_with_data(&dir, Some(&data), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = format!("38 URLs of the World Cup URL list {}", list.display());
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));

    // --urls wins over the variable, even one naming nothing.
    let missing_dir = dir.join("no-such-dir");
    let out = fig4_1_with_data(
        &dir,
        Some(&missing_dir),
        &["--urls", list.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));

    // --generated-urls ignores the data entirely.
    let out = fig4_1_with_data(&dir, Some(&data), &["--generated-urls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("of generated URLs (seed "),
        "{}",
        stdout(&out)
    );

    // A variable naming no directory, a directory without the list, or a --urls file that is
    // not there: errors naming the culprit, never a silent fall-back to generated URLs.
    let out = fig4_1_with_data(&dir, Some(&missing_dir), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("VIBRA_DATA_DIR"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let out = fig4_1_with_data(&dir, Some(&dir), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(wc98::URLS_FILE), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let out = fig4_1_with_data(&dir, None, &["--urls", "no-such.sort"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such.sort"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reproduce_uses_the_real_world_cup_list_by_default_when_it_is_there() {
    let Some(list) = wc98::urls_or_skip("vibra-lab reproduce default list") else {
        return;
    };
    let dir = out_dir("real-list");
    // The test's own environment decides where the data is (VIBRA_DATA_DIR or the default),
    // exactly as for the binary: pass it through unchanged.
    let out = Command::new(env!("CARGO_BIN_EXE_vibra-lab"))
        .args(["reproduce", "fig4.1", "--quick", "--quiet", "--out"])
        .arg(&dir)
        .output()
        .expect("vibra-lab runs");
    assert!(out.status.success(), "{}", stderr(&out));
    // --quick samples the first 10,000 URLs of the 89,997.
    let expected = format!(
        "10000 URLs of the World Cup URL list {}",
        list.path.display()
    );
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}
