//! `pingora-round-robin --listen HOST:PORT BACKEND...`: Pingora's own round-robin proxy with
//! vibra-proxy's server set-up, the baseline of `benches/overhead.rs`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = vibra_proxy::Args::parse();
    match vibra_proxy::server::run_round_robin_baseline(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pingora-round-robin: {e}");
            ExitCode::from(2)
        }
    }
}
