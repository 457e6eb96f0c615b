//! `vibra-proxy --listen HOST:PORT --replication R --hash H [--policy P] BACKEND...`
//! (SPEC section 11); see the crate docs.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = vibra_proxy::Args::parse();
    match vibra_proxy::server::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vibra-proxy: {e}");
            ExitCode::from(2)
        }
    }
}
