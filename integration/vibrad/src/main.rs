//! `vibrad --config FILE [--dry-run]` runs the configured role (the agent, or the dps role);
//! `vibrad check-config FILE` lists every configuration error (key and line) and exits 1 if
//! there is one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vibrad::config::{Backend, Config};
use vibrad::daemon::{Daemon, Signals, Vms, linux_host, open_directory};

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
    /// Fault injection for the dps role's recovery tests: SIGKILL itself at this point of the
    /// exchange (offer-sent, offer-accepted, reply-received, grants-sent).
    #[arg(long, hide = true)]
    crash_at: Option<vibrad::dps::CrashPoint>,
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
            Ok(c) if c.roles.dps => {
                let d = c.dps.as_ref().map_or(0, |d| d.vms.len());
                println!("{}: ok (dps role, {d} VMs)", file.display());
                ExitCode::SUCCESS
            }
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
    if cfg.roles.dps {
        let run = || -> vibrad::Result<()> {
            let opts = (cli.dry_run, path.clone(), cli.crash_at);
            match cfg.backend {
                Backend::Linux => run_dps(&cfg, vibrad::dps::linux_host(&cfg)?, opts, &signals),
                #[cfg(feature = "xen")]
                Backend::Xen => run_dps(&cfg, vibrad::xen::dps_host(&cfg)?, opts, &signals),
                #[cfg(not(feature = "xen"))]
                Backend::Xen => Err(no_xen()),
            }
        };
        return match run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "vibrad stopped");
                ExitCode::FAILURE
            }
        };
    }
    let dir = open_directory(&cfg);
    let run = || -> vibrad::Result<()> {
        match cfg.backend {
            Backend::Linux => {
                let (host, children) = linux_host(&cfg)?;
                let mut d = Daemon::new(cfg.clone(), host, dir, cli.dry_run)?;
                for c in children {
                    d.adopt_child(c);
                }
                run_agent(d, &cfg, &path, &signals)
            }
            #[cfg(feature = "xen")]
            Backend::Xen => {
                let host = vibrad::xen::agent_host(&cfg)?;
                run_agent(
                    Daemon::new(cfg.clone(), host, dir, cli.dry_run)?,
                    &cfg,
                    &path,
                    &signals,
                )
            }
            #[cfg(not(feature = "xen"))]
            Backend::Xen => {
                drop(dir);
                Err(no_xen())
            }
        }
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "vibrad stopped");
            ExitCode::FAILURE
        }
    }
}

/// The agent role's loop on any backend, with its metrics endpoint.
fn run_agent<H: Vms>(
    mut d: Daemon<H>,
    cfg: &Config,
    path: &std::path::Path,
    signals: &Signals,
) -> vibrad::Result<()> {
    d.set_config_path(path.to_path_buf());
    if let Some(a) = cfg.metrics {
        let bound = d.metrics().serve(a)?;
        tracing::info!(%bound, "metrics endpoint");
    }
    tracing::info!(host = cfg.host, "vibrad running");
    d.run(signals)
}

/// The dps role's loop on any backend, with its metrics endpoint; `opts` are the command
/// line's dry run, configuration path (SIGHUP) and crash point.
fn run_dps<H: Vms>(
    cfg: &Config,
    host: H,
    (dry_run, path, crash_at): (bool, PathBuf, Option<vibrad::dps::CrashPoint>),
    signals: &Signals,
) -> vibrad::Result<()> {
    let mut role = vibrad::dps::DpsRole::new(cfg, host)?;
    role.set_dry_run(dry_run);
    role.set_config_path(path);
    if let Some(p) = crash_at {
        role.crash_at(p, vibrad::dps::CrashMode::Kill);
    }
    if let Some(a) = cfg.metrics {
        let bound = role.metrics().serve(a)?;
        tracing::info!(%bound, "metrics endpoint");
    }
    tracing::info!(host = cfg.host, listen = %role.local_addr()?, "vibrad dps role running");
    role.run(signals)
}

/// `backend = "xen"` in a vibrad built without the feature (the configuration check already
/// refuses it; this keeps the match total without a panic).
#[cfg(not(feature = "xen"))]
fn no_xen() -> vibrad::Error {
    vibrad::Error::Config(vec![vibrad::config::ConfigError {
        line: 0,
        key: "backend".into(),
        message: "\"xen\" needs a vibrad built with the `xen` feature".into(),
    }])
}
