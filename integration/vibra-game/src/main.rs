//! `vibra-game`: runs the model FPS game for a list of server counts and prints the packet
//! delivery delay by timestamp source.
//!
//! `vibra-game [--servers 1,8,16,32] [--clients 4] [--burners 2] [--background 0] [--seconds 3] [--warmup 0.5] [--seed 1]`
//!
//! `vibra-game serve ADDR:PORT KEY_SEED [SUBSTEPS]`: one game server on a real interface (a game
//! VM), inputs on UDP and its report of their raw times on TCP, both on PORT, until killed;
//! the clients elsewhere use `SessionKey::from_seed(KEY_SEED)` (see `RemoteServer`).

use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use vibra_game::{GameConfig, RemoteServer, SessionKey, run};

fn serve(args: &[String]) -> Result<(), String> {
    let [addr, seed, rest @ ..] = args else {
        return Err("usage: vibra-game serve ADDR:PORT KEY_SEED [SUBSTEPS]".into());
    };
    let addr = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
    let seed = seed.parse().map_err(|e| format!("key seed {seed}: {e}"))?;
    let substeps = match rest {
        [] => GameConfig::default().sim_substeps,
        [n] => n.parse().map_err(|e| format!("substeps {n}: {e}"))?,
        _ => return Err("too many arguments".into()),
    };
    let server = RemoteServer::bind(addr, SessionKey::from_seed(seed), substeps)
        .map_err(|e| e.to_string())?;
    println!(
        "GAME-SERVER listening on {} (udp inputs, tcp report)",
        server.local_addr()
    );
    server
        .run(&Arc::new(AtomicBool::new(false)))
        .map_err(|e| e.to_string())
}

fn parse() -> Result<(Vec<usize>, GameConfig), String> {
    let mut servers = vec![1, 8, 16, 32];
    let mut cfg = GameConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{flag} {v}: {e}"));
        let int = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--servers" => servers = value.split(',').map(int).collect::<Result<_, _>>()?,
            "--clients" => cfg.clients_per_server = int(&value)?,
            "--burners" => cfg.burners = int(&value)?,
            "--background" => cfg.background = int(&value)?,
            "--seconds" => {
                cfg.measure =
                    Duration::try_from_secs_f64(num(&value)?).map_err(|e| e.to_string())?
            }
            "--warmup" => {
                cfg.warmup = Duration::try_from_secs_f64(num(&value)?).map_err(|e| e.to_string())?
            }
            "--seed" => cfg.seed = value.parse().map_err(|e| format!("--seed {value}: {e}"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok((servers, cfg))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "serve") {
        return match serve(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vibra-game serve: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (servers, cfg) = match parse() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("vibra-game: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("servers source     samples   mean_us    p95_us");
    for n in servers {
        match run(&GameConfig {
            servers: n,
            ..cfg.clone()
        }) {
            Ok(r) => {
                for (source, s) in [("app_clock", r.app), ("kernel", r.kernel)] {
                    println!(
                        "{n:7} {source:10} {:7} {:9.1} {:9.1}",
                        s.samples, s.mean_us, s.p95_us
                    );
                }
            }
            Err(e) => {
                eprintln!("vibra-game: {n} servers: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
