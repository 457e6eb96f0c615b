//! nginx as the testbed's front end (`FrontEnd::start_nginx`): a real testbed of two back ends,
//! each nginx policy in front, every request answered with its object's size, and the
//! requests spread as the policy says (least_conn uses both back ends; the hash policies send
//! each URL to one back end while both are up). `nginx-vibra` needs the Vibra module
//! (`VIBRA_NGINX_MODULE`, built by examples/nginx/build.sh); CI's testbed stage builds it.
//! Needs root, nginx, ip and tc: skips loudly without them, fails instead with
//! `VIBRA_REQUIRE_PRIVILEGED=1`.

use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use vibra_lab::testbed::{
    CorpusFile, FrontEnd, NGINX_MODULE_ENV, NGINX_POLICIES, Request, Testbed, TestbedConfig,
    run_load, unavailable,
};

const TEST: &str = "each_nginx_policy_serves_every_request_through_the_testbed";

fn skip(why: &str) {
    assert!(
        !std::env::var("VIBRA_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1"),
        "{TEST}: cannot run ({why}) but VIBRA_REQUIRE_PRIVILEGED=1 demands it"
    );
    eprintln!("SKIPPED {TEST}: {why}");
}

#[test]
fn each_nginx_policy_serves_every_request_through_the_testbed() {
    // The proxy binary is not needed here; any other reason not to run is.
    if let Some(why) = unavailable().filter(|w| !w.contains("vibra-proxy")) {
        return skip(&why);
    }
    let files: Vec<CorpusFile> = (0..40)
        .map(|i| CorpusFile {
            url: format!("/f/{i}.html"),
            bytes: 1000 + 37 * i,
        })
        .collect();
    let requests: Vec<Request> = (0..400)
        .map(|k| {
            let f = &files[(k * 7) % files.len()];
            Request {
                target: f.url.clone(),
                bytes: f.bytes,
            }
        })
        .collect();
    let config = TestbedConfig {
        backends: 2,
        memory_mib: 32,
        egress_bits_per_sec: 400e6,
        ..TestbedConfig::default()
    };
    let tb = Testbed::up(&config, &files).expect("testbed up");
    for &policy in NGINX_POLICIES {
        if policy == "nginx-vibra" && std::env::var_os(NGINX_MODULE_ENV).is_none() {
            skip(&format!("{policy}: no {NGINX_MODULE_ENV}"));
            continue;
        }
        let before = tb.egress_bytes().unwrap();
        let fe = FrontEnd::start_nginx(policy, tb.backend_addrs(), tb.work_dir())
            .unwrap_or_else(|e| panic!("{policy}: {e}"));
        let stats = run_load(fe.addr(), &requests, 4, &AtomicBool::new(false))
            .unwrap_or_else(|e| panic!("{policy}: {e}"));
        let addr = fe.addr();
        drop(fe);
        // Nothing of the front end is left: nginx's workers outlive a killed master and hold
        // its listening socket (they did, before the front end killed its process group).
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{policy}: something still accepts on {addr} after the front end was dropped"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(stats.requests, requests.len() as u64, "{policy}");
        let sent: Vec<u64> = tb
            .egress_bytes()
            .unwrap()
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect();
        let body: u64 = requests.iter().map(|r| r.bytes).sum();
        eprintln!(
            "{policy}: {} requests, back ends sent {sent:?} bytes",
            stats.requests
        );
        assert!(
            sent.iter().sum::<u64>() >= body,
            "{policy}: the back ends sent less than the bodies"
        );
        // Forty URLs over two back ends: each policy uses both.
        assert!(
            sent.iter().all(|&s| s > 0),
            "{policy}: a back end got nothing: {sent:?}"
        );
    }
}
