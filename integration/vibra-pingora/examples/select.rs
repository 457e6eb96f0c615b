//! `cargo run -p vibra-pingora --features pingora --example select`: a Pingora
//! `LoadBalancer` with Vibra's URL-hash selection over four back ends listed out of sorted
//! order; prints where each URL goes, then takes one back end out and shows that only its
//! URLs moved.

use std::collections::BTreeSet;

use pingora_load_balancing::{Backend, Backends, LoadBalancer, discovery};
use vibra_hash::HashKind;
use vibra_pingora::{VibraConfig, VibraSelection};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Configured order (what another front end, or `vibra-lab map`, numbers 0..3).
    let order = [
        "127.0.0.1:9004",
        "127.0.0.1:9001",
        "127.0.0.1:9003",
        "127.0.0.1:9002",
    ];
    let set: BTreeSet<Backend> = order
        .iter()
        .map(|a| Backend::new(a))
        .collect::<Result<_, _>>()?;
    let config = VibraConfig::new(
        order
            .iter()
            .map(|a| a.parse())
            .collect::<Result<Vec<_>, _>>()?,
        HashKind::Md5,
    );
    let lb = LoadBalancer::<VibraSelection>::from_backends_with_config(
        Backends::new(discovery::Static::new(set)),
        Some(config),
    );
    tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(lb.update())?;

    let urls: Vec<String> = (0..12)
        .map(|i| format!("/english/images/team_{i}.gif"))
        .collect();
    let number = |b: &Backend| order.iter().position(|a| *a == b.addr.to_string());
    let pick = |url: &str| {
        lb.select(url.as_bytes(), order.len())
            .and_then(|b| number(&b))
    };
    let before: Vec<_> = urls.iter().map(|u| pick(u)).collect();

    let failed = Backend::new(order[1])?;
    lb.backends().set_enable(&failed, false); // as a failed health check would
    println!("URL                              before  after (server 1 down)");
    for (url, was) in urls.iter().zip(&before) {
        let now = pick(url);
        let note = if now != *was { "  moved" } else { "" };
        let show = |s: Option<usize>| s.map_or("none".to_string(), |s| s.to_string());
        println!("{url:<32} {:>6}  {:>6}{note}", show(*was), show(now));
        // Only server 1's URLs move, and they move to the next server in configured order.
        assert!(
            now == *was || *was == Some(1),
            "{url} moved off a healthy server"
        );
        assert_ne!(now, Some(1));
    }
    Ok(())
}
