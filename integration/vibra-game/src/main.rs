//! `vibra-game`: runs the model FPS game for a list of server counts and prints the packet
//! delivery delay by timestamp source.
//!
//! `vibra-game [--servers 1,8,16,32] [--clients 4] [--burners 2] [--background 0] [--seconds 3] [--warmup 0.5] [--seed 1]`

use std::process::ExitCode;
use std::time::Duration;

use vibra_game::{GameConfig, run};

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
