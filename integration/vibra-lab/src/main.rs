//! The `vibra-lab` command: `map` (SPEC section 9), `reproduce` (SPEC section 10), `list`.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use vibra_hash::HashKind;
use vibra_lab::{
    AgentChoice, DEFAULT_SEED, EXPERIMENTS, Experiment, LabError, MapConfig, Progress, RunContext,
    find, json_line, render_text, run_checked, run_map, write_outputs,
};

/// Vibra's lab: map request targets to server subsets, and reproduce the dissertation's
/// figures and tables beside the original values.
#[derive(Debug, Parser)]
#[command(name = "vibra-lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read one request-target per line on standard input; print `<ns> <s1>,<s2>,...` per line.
    Map {
        /// Number of servers N (>= 1).
        #[arg(long, value_name = "N")]
        servers: u32,
        /// Replication factor R (1 <= R <= N).
        #[arg(long, value_name = "R")]
        replication: u32,
        /// Hash of the dispatch key: charsum, md5, sha1 or fast.
        #[arg(long, value_name = "HASH", value_parser = parse_hash)]
        hash: HashKind,
        /// Servers marked down, comma-separated (e.g. 3,7).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        down: Vec<u32>,
    },
    /// Run one experiment (or all, with no NAME) and print each result beside the
    /// dissertation's; figures are written as SVG under --out.
    Reproduce {
        /// The experiment (see `vibra-lab list`); all of them when absent.
        name: Option<String>,
        /// Smaller runs that finish in under a minute on 2 cores.
        #[arg(long)]
        quick: bool,
        /// Print one JSON object per experiment, `{"experiment": ..., "rows": [...]}`.
        #[arg(long)]
        json: bool,
        /// Folder for the SVG figures and the full JSON reports.
        #[arg(long, value_name = "DIR", default_value = "target/vibra-lab")]
        out: PathBuf,
        /// The World Cup URL list (`object_mappings.sort`). Default: wc98/object_mappings.sort
        /// in $VIBRA_DATA_DIR (an error if it is not there), else in ../shared/data beside the
        /// workspace root if present, else generated URLs.
        #[arg(long, value_name = "PATH", conflicts_with = "generated_urls")]
        urls: Option<PathBuf>,
        /// Use generated URLs even when the real list is present.
        #[arg(long)]
        generated_urls: bool,
        /// Seed of every synthetic workload.
        #[arg(long, default_value_t = DEFAULT_SEED)]
        seed: u64,
        /// No progress lines on standard error.
        #[arg(long, short)]
        quiet: bool,
        /// Skip the experiments on the real testbed (root, namespaces, cgroups, nginx):
        /// CI's lab stage does, and runs them with --quick in their own stage.
        #[arg(long)]
        no_testbed: bool,
        /// Who moves the back ends' bandwidth and memory in fig4.4 and fig4.3: `lab` (vibra-lab, by
        /// hand, 3 s after the failure) or `vibrad` (a real vibrad adopting the back ends;
        /// its binary from $VIBRA_VIBRAD_BIN or beside vibra-lab). fig3.7: `vibrad` runs
        /// one for the URL-hashing policies (bandwidth every 3 s), `lab` none.
        #[arg(long, value_name = "AGENT", default_value = "lab")]
        agent: AgentChoice,
        /// The policies a testbed comparison (fig3.8, fig3.9, fig3.10) runs, comma-separated,
        /// in this order, instead of its own list (e.g. `url-hash/r,round-robin,nginx-vibra`);
        /// each must be one the experiment knows. Other experiments ignore it.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        policies: Option<Vec<String>>,
        /// Each testbed back end's disk-read rate in MB/s (a cgroup v1 blkio throttle), in
        /// place of the experiment's own (none for fig3.7, fig3.8, fig4.3, fig4.4; 1 for
        /// fig3.9, 2 for fig3.10). Other experiments ignore it.
        #[arg(
            long,
            value_name = "MB_PER_S",
            value_parser = parse_disk_rate,
            allow_negative_numbers = true
        )]
        disk_read_mb_s: Option<u64>,
    },
    /// List the experiments `reproduce` knows.
    List,
}

/// `--disk-read-mb-s`: a rate of at least 0.01 MB/s (a blkio throttle of 10,000 bytes per
/// second), at most 100,000 MB/s, returned in bytes per second.
fn parse_disk_rate(s: &str) -> Result<u64, String> {
    let mb: f64 = s
        .parse()
        .map_err(|_| "expected a rate in MB/s, e.g. 1 or 0.5".to_string())?;
    if !(0.01..=100_000.0).contains(&mb) {
        return Err("expected a rate from 0.01 to 100000 MB/s".to_string());
    }
    Ok((mb * 1e6).round() as u64)
}

fn parse_hash(s: &str) -> Result<HashKind, String> {
    s.parse::<HashKind>()
        .map_err(|_| "expected one of charsum, md5, sha1, fast".to_string())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's normal output, exit 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Plain `vibra-lab`: the help, on standard error, and a failure status.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // SPEC section 9: one line on bad arguments.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            eprintln!("vibra-lab: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vibra-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode, LabError> {
    match command {
        Command::Map {
            servers,
            replication,
            hash,
            down,
        } => {
            let config = MapConfig {
                servers,
                replication,
                hash,
                down,
            };
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            run_map(&config, stdin, std::io::BufWriter::new(stdout))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            let mut out = std::io::stdout().lock();
            for e in EXPERIMENTS {
                writeln!(out, "{:10} {}", e.name(), e.title())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reproduce {
            name,
            quick,
            json,
            out,
            urls,
            generated_urls,
            seed,
            quiet,
            no_testbed,
            agent,
            policies,
            disk_read_mb_s,
        } => {
            // The one reader and its one rule for finding the data (the wc98 crate); read once,
            // shared by every experiment.
            let urls = if generated_urls {
                None
            } else {
                wc98::urls(urls.as_deref())?.map(Arc::new)
            };
            let ctx = RunContext {
                quick,
                seed,
                urls,
                progress: if quiet {
                    Progress::silent()
                } else {
                    Progress::stderr()
                },
                agent,
                policies,
                disk_read_bytes_per_sec: disk_read_mb_s,
            };
            let whole_report = name.is_none();
            let selected: Vec<&dyn Experiment> = match name {
                Some(n) => vec![find(&n)?],
                None => EXPERIMENTS.to_vec(),
            };
            reproduce(&selected, &ctx, json, &out, no_testbed, whole_report)
        }
    }
}

fn reproduce(
    selected: &[&dyn Experiment],
    ctx: &RunContext,
    json: bool,
    out: &Path,
    no_testbed: bool,
    whole_report: bool,
) -> Result<ExitCode, LabError> {
    let mut stdout = std::io::stdout().lock();
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for experiment in selected {
        ctx.progress.say(experiment.name(), "running");
        let started = Instant::now();
        // SPEC section 10: the no-argument report finishes within 30 minutes on 2 cores, so
        // there an experiment on real components runs at its --quick size (each under 5
        // minutes); naming it runs the full size.
        let skipped = no_testbed && experiment.real_components();
        let reduced = whole_report && !ctx.quick && !no_testbed && experiment.real_components();
        let run_ctx = if reduced {
            ctx.progress.say(
                experiment.name(),
                &format!(
                    "at its --quick size in the whole report; `reproduce {}` runs the full size",
                    experiment.name()
                ),
            );
            RunContext {
                quick: true,
                ..ctx.clone()
            }
        } else {
            ctx.clone()
        };
        let result = if skipped {
            Err(LabError::Skipped {
                experiment: experiment.name(),
                reason: "--no-testbed".to_string(),
            })
        } else {
            run_checked(*experiment, &run_ctx).map(|mut report| {
                if reduced {
                    report.notes.insert(
                        0,
                        format!(
                            "run at its --quick size: the whole report keeps experiments on \
                             real components at that size to finish within SPEC section 10's \
                             30 minutes; `vibra-lab reproduce {}` runs the full size",
                            experiment.name()
                        ),
                    );
                }
                report
            })
        };
        let result = result
            .and_then(|report| write_outputs(*experiment, &report, out).map(|svgs| (report, svgs)));
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok((report, svgs)) => {
                ctx.progress.say(
                    experiment.name(),
                    &format!("done in {seconds:.1} s, outputs in {}", out.display()),
                );
                if json {
                    writeln!(stdout, "{}", json_line(experiment.name(), &report))?;
                } else {
                    writeln!(stdout, "{}", render_text(*experiment, &report, &svgs))?;
                }
                summary.push((experiment.name(), "ok".to_string(), seconds, svgs.len()));
            }
            Err(LabError::Skipped { experiment, reason }) => {
                // SPEC section 10: listed as skipped with the reason; the rest still runs.
                eprintln!("SKIPPED {experiment}: {reason}");
                if !json {
                    writeln!(stdout, "== {experiment}: SKIPPED: {reason} ==\n")?;
                }
                summary.push((experiment, format!("skipped: {reason}"), seconds, 0));
            }
            Err(e) => {
                eprintln!("vibra-lab: {e}");
                summary.push((experiment.name(), format!("FAILED: {e}"), seconds, 0));
                failures.push(experiment.name());
            }
        }
        stdout.flush()?;
    }
    if !json && selected.len() > 1 {
        writeln!(stdout, "== summary ==")?;
        for (name, status, seconds, figures) in &summary {
            writeln!(
                stdout,
                "  {name:10} {seconds:7.1} s  {figures} figure(s)  {status}"
            )?;
        }
        writeln!(stdout, "  outputs: {}", out.display())?;
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
