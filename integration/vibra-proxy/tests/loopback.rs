//! vibra-proxy end to end on loopback (feature `pingora`): the real binary, real HTTP back
//! ends that say who served, `vibra-lab map` (its library function, `run_map`) as the
//! reference for where each URL goes.
//!
//! URLs: a synthetic set covering the key rules, plus World Cup 98 URLs when the data is there
//! (`wc98::urls_or_skip`). A World Cup URL is used only if an HTTP/1.1 request line carries it
//! byte for byte: it starts with `/` and has only the characters RFC 3986 allows in a path and
//! query (letters, digits, `-._~!$&'()*+,;=:@/?%`). The list also holds bytes a request line
//! cannot carry (spaces, control bytes, non-ASCII) and ones Pingora's parser refuses with 400
//! (`<`, `>`, `"`, `{`, `|`, ...). The back ends echo the target they received, and the test
//! checks it arrived unchanged.

#[path = "support/backend.rs"]
mod backend;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use backend::{BackEnd, free_port, http_safe, start_backends};

use vibra_hash::HashKind;
use vibra_lab::{MapConfig, run_map};

const SERVERS: u32 = 4;
const WC98_URLS: usize = 1500;
const WAIT: Duration = Duration::from_secs(20);

struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    fn start(backends: &[BackEnd], replication: u32, hash: HashKind, policy: &str) -> Proxy {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibra-proxy"));
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--replication", &replication.to_string()])
            .args(["--hash", &hash.to_string(), "--policy", policy])
            .args(["--health-interval-ms", "100"])
            .args(backends.iter().map(|b| b.addr.to_string()))
            .stdout(Stdio::null());
        let child = cmd.spawn().expect("start vibra-proxy");
        let proxy = Proxy { child, port };
        wait_for("the proxy to answer", || {
            get(port, "/").is_ok_and(|r| r.status == 200)
        });
        proxy
    }

    /// SIGTERM, then the exit status within the limit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "vibra-proxy ignored SIGTERM");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Reply {
    status: u32,
    server: Option<u32>,
    body: String,
}

/// One request on a fresh connection, read to EOF (the proxy has ended the request, and so
/// given back its active count, before it closes the connection).
fn get(port: u16, target: &str) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(WAIT))?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: vibra.test\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let server = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Served-By: "))
        .and_then(|v| v.trim().parse().ok());
    Ok(Reply {
        status,
        server,
        body: body.to_owned(),
    })
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn urls() -> Vec<String> {
    let mut urls: Vec<String> = [
        "/",
        "/index.html",
        "/?lang=en",
        "/a",
        "/A",
        "/a%20b",
        "/%7Euser/",
    ]
    .map(String::from)
    .to_vec();
    for i in 0..60 {
        urls.push(format!("/english/images/team_{i}.gif"));
        if i % 3 == 0 {
            urls.push(format!("/french/news/{i}.html?from={i}&lang=fr"));
        }
    }
    if let Some(list) = wc98::urls_or_skip("vibra-proxy loopback: World Cup URLs") {
        let safe: Vec<&Vec<u8>> = list.urls.iter().filter(|u| http_safe(u)).collect();
        let step = (safe.len() / WC98_URLS).max(1);
        urls.extend(
            safe.iter()
                .step_by(step)
                .take(WC98_URLS)
                .map(|u| String::from_utf8(u.to_vec()).expect("visible ASCII")),
        );
    }
    urls
}

/// `vibra-lab map`'s subset of every URL.
fn reference(urls: &[String], replication: u32, hash: HashKind, down: &[u32]) -> Vec<Vec<u32>> {
    let config = MapConfig {
        servers: SERVERS,
        replication,
        hash,
        down: down.to_vec(),
    };
    let input: String = urls.iter().map(|u| format!("{u}\n")).collect();
    let mut out = Vec::new();
    run_map(&config, input.as_bytes(), &mut out).expect("vibra-lab map");
    let out = String::from_utf8(out).unwrap();
    out.lines()
        .map(|l| {
            l.split(' ')
                .nth(1)
                .unwrap()
                .split(',')
                .map(|s| s.parse().unwrap())
                .collect()
        })
        .collect()
}

/// Every URL, sent one at a time (equal loads: none active), goes to the first member of its
/// `vibra-lab map` subset and arrives unchanged.
fn check_placement(port: u16, urls: &[String], subsets: &[Vec<u32>], what: &str) {
    for (url, subset) in urls.iter().zip(subsets) {
        let r = get(port, url).unwrap();
        assert_eq!(r.status, 200, "{what}: {url}: {r:?}");
        assert_eq!(
            r.server,
            Some(subset[0]),
            "{what}: {url} (subset {subset:?})"
        );
        assert_eq!(
            r.body,
            format!("{} {url}", subset[0]),
            "{what}: target changed"
        );
    }
}

#[test]
fn every_url_goes_where_vibra_lab_map_says() {
    let urls = urls();
    for (replication, hash) in [
        (1, HashKind::Md5),
        (2, HashKind::Charsum),
        (2, HashKind::Fast),
    ] {
        let backends = start_backends(SERVERS);
        let proxy = Proxy::start(&backends, replication, hash, "url-hash");
        let what = format!("R = {replication}, {hash}");
        check_placement(
            proxy.port,
            &urls,
            &reference(&urls, replication, hash, &[]),
            &what,
        );
        assert!(proxy.terminate().success(), "SIGTERM: clean exit");
    }
}

#[test]
fn a_killed_back_end_moves_only_its_urls_and_they_come_back() {
    let urls = urls();
    let (replication, hash, victim) = (2, HashKind::Md5, 1u32);
    let mut backends = start_backends(SERVERS);
    let proxy = Proxy::start(&backends, replication, hash, "url-hash/r");
    let all_up = reference(&urls, replication, hash, &[]);
    let one_down = reference(&urls, replication, hash, &[victim]);
    let moved = all_up
        .iter()
        .zip(&one_down)
        .filter(|(a, b)| a[0] != b[0])
        .count();
    let victims = all_up.iter().filter(|s| s[0] == victim).count();
    assert_eq!(
        moved, victims,
        "the reference moves exactly the victim's URLs"
    );
    check_placement(proxy.port, &urls, &all_up, "all up");

    // Killed: the first request to it fails to connect, marks it down and is retried on the
    // URL's next server; every URL then goes where `map --down 1` says (and a leaked active
    // count on any path would show here as a URL sent to its second member).
    let addr = backends[victim as usize].addr;
    backends[victim as usize].kill();
    check_placement(proxy.port, &urls, &one_down, "server 1 killed");

    // Restored on the same port: the next health check brings it back.
    backends[victim as usize] = BackEnd::start(victim, addr);
    let probe = urls
        .iter()
        .zip(&all_up)
        .find(|(_, s)| s[0] == victim)
        .map(|(u, _)| u.clone())
        .expect("some URL on the victim");
    wait_for("the restored back end's health check", || {
        get(proxy.port, &probe).is_ok_and(|r| r.server == Some(victim))
    });
    check_placement(proxy.port, &urls, &all_up, "server 1 restored");
    assert!(proxy.terminate().success());
}

#[test]
fn every_policy_routes() {
    let urls: Vec<String> = (0..40).map(|i| format!("/p/{}.html", i % 10)).collect();
    for policy in [
        "url-hash",
        "url-hash/r",
        "lard",
        "lard/r",
        "least-conn",
        "round-robin",
    ] {
        let backends = start_backends(SERVERS);
        let proxy = Proxy::start(&backends, 2, HashKind::Fast, policy);
        let mut served = [0u32; SERVERS as usize];
        let mut first: std::collections::HashMap<&str, u32> = Default::default();
        for url in &urls {
            let r = get(proxy.port, url).unwrap();
            assert_eq!(r.status, 200, "{policy}: {url}");
            let s = r.server.expect("served by a back end");
            served[s as usize] += 1;
            let seen = *first.entry(url.as_str()).or_insert(s);
            if policy != "round-robin" && policy != "least-conn" {
                assert_eq!(seen, s, "{policy}: {url} is sticky at equal loads");
            }
        }
        if policy == "round-robin" {
            assert!(served.iter().all(|&n| n == 10), "{policy}: {served:?}");
        }
        assert!(proxy.terminate().success(), "{policy}: SIGTERM");
    }
}

#[test]
fn bad_arguments_exit_non_zero_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_vibra-proxy"))
        .args([
            "--listen",
            "127.0.0.1:1",
            "--replication",
            "3",
            "127.0.0.1:2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("replication"));
}
