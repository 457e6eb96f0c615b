//! `wc98-urls [--file PATH] [--limit N]`: prints the World Cup URLs one per line, byte for byte
//! as the Rust readers see them, for shell scripts and C or Python tests (so they never parse
//! the list themselves). Exits 1 with a message when there is no list or it is unreadable.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wc98-urls: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut file: Option<PathBuf> = None;
    let mut limit = usize::MAX;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{} needs a value", arg.to_string_lossy()))
        };
        match arg.to_str() {
            Some("--file") => file = Some(PathBuf::from(value()?)),
            Some("--limit") => {
                let v = value()?;
                limit = v
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("--limit: {} is not a count", v.to_string_lossy()))?;
            }
            Some("-h" | "--help") => {
                println!(
                    "usage: wc98-urls [--file PATH] [--limit N]\n\
                     prints the World Cup URLs one per line (default: {} in ${} or {})",
                    wc98::URLS_FILE,
                    wc98::DATA_DIR_ENV,
                    wc98::default_data_dir().display()
                );
                return Ok(());
            }
            _ => return Err(format!("unknown argument {}", arg.to_string_lossy())),
        }
    }
    let list = wc98::urls(file.as_deref())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no World Cup URL list: set {} or give --file",
                wc98::DATA_DIR_ENV
            )
        })?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for url in list.urls.iter().take(limit) {
        out.write_all(url)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}
