//! `vibrad --config FILE [--dry-run]` runs the agent; `vibrad check-config FILE` lists every
//! configuration error (key and line) and exits 1 if there is one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vibrad::config::Config;
use vibrad::daemon::{Daemon, Signals, linux_host, open_directory};

#[derive(Parser)]
#[command(
    name = "vibrad",
    about = "Vibra's per-host daemon: allocation loop and directory"
)]
struct Cli {
    /// The configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the plans, apply nothing (neither kernel nor applied records).
    #[arg(long)]
    dry_run: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check a configuration file and report every error.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::CheckConfig { file }) = cli.cmd {
        return match Config::load(&file) {
            Ok(c) => {
                println!(
                    "{}: ok ({} customers, {} VMs, {} hosts)",
                    file.display(),
                    c.customers.len(),
                    c.vms.len(),
                    c.hosts.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let Some(path) = cli.config else {
        eprintln!("vibrad: --config FILE is required (or: vibrad check-config FILE)");
        return ExitCode::from(2);
    };
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vibrad: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let signals = Signals::default();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, signals.stop.clone()) {
            eprintln!("vibrad: signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, signals.reload.clone())
    {
        eprintln!("vibrad: signal handler: {e}");
        return ExitCode::FAILURE;
    }
    let metrics_addr = cfg.metrics;
    let dir = open_directory(&cfg);
    let run = || -> vibrad::Result<()> {
        let (host, children) = linux_host(&cfg)?;
        let mut d = Daemon::new(cfg.clone(), host, dir, cli.dry_run)?;
        for c in children {
            d.adopt_child(c);
        }
        d.set_config_path(path.clone());
        if let Some(a) = metrics_addr {
            let bound = d.metrics().serve(a)?;
            tracing::info!(%bound, "metrics endpoint");
        }
        tracing::info!(host = cfg.host, "vibrad running");
        d.run(&signals)
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "vibrad stopped");
            ExitCode::FAILURE
        }
    }
}
