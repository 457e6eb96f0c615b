//! `vibra-lab map` (SPEC section 9): one request-target per input line in, `<ns> <s1>,<s2>,...`
//! per line out, computed by vibra-hash's [`Dispatcher`] and nothing else.

use std::io::{BufRead, Write};

use vibra_hash::{Dispatcher, HashKind};

use crate::LabError;

/// The arguments of `vibra-lab map`.
///
/// ```
/// use vibra_hash::HashKind;
/// use vibra_lab::MapConfig;
/// let c = MapConfig { servers: 10, replication: 2, hash: HashKind::Md5, down: vec![3, 7] };
/// assert_eq!(c.down.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapConfig {
    /// N, the number of servers (and of sub-namespaces).
    pub servers: u32,
    /// R, the replication factor.
    pub replication: u32,
    /// The hash of the dispatch key.
    pub hash: HashKind,
    /// Servers marked down before any line is mapped.
    pub down: Vec<u32>,
}

/// Maps every line of `input` (a request-target; a trailing `\n` or `\r\n` is not part of
/// it, and the bytes need not be UTF-8) and writes `<ns> <s1>,<s2>,...` per line to `output`.
/// Returns the number of lines mapped.
///
/// # Errors
/// Bad N, R or `down` entries (a [`vibra_hash::Error`]), every server down, or an I/O error.
/// Arguments are checked before any input is read, so nothing is printed on bad arguments.
///
/// ```
/// use vibra_hash::HashKind;
/// use vibra_lab::{MapConfig, run_map};
/// let config = MapConfig { servers: 4, replication: 2, hash: HashKind::Charsum, down: vec![] };
/// let mut out = Vec::new();
/// // charsum of "/a" = 47 + 97 = 144, and 144 mod 4 = 0.
/// run_map(&config, &b"/a\nhttp://example.com/a?q=1\n"[..], &mut out).unwrap();
/// assert_eq!(String::from_utf8(out).unwrap(), "0 0,1\n0 0,1\n");
/// ```
pub fn run_map(
    config: &MapConfig,
    mut input: impl BufRead,
    mut output: impl Write,
) -> Result<u64, LabError> {
    let dispatcher = Dispatcher::new(config.servers, config.replication, config.hash)?;
    for &server in &config.down {
        dispatcher.set_available(server, false)?;
    }
    if dispatcher.available_count() == 0 {
        return Err(LabError::BadArgument {
            option: "--down",
            reason: format!("every one of the {} servers is down", config.servers),
        });
    }
    let mut line = Vec::with_capacity(256);
    let mut text = String::with_capacity(64);
    let mut count = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let target = strip_line_end(&line);
        let ns = dispatcher.namespace(target);
        text.clear();
        text.push_str(&ns.to_string());
        for (i, server) in dispatcher.subset(ns)?.enumerate() {
            text.push(if i == 0 { ' ' } else { ',' });
            text.push_str(&server.to_string());
        }
        text.push('\n');
        output.write_all(text.as_bytes())?;
        count += 1;
    }
    output.flush()?;
    Ok(count)
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(config: &MapConfig, input: &[u8]) -> Result<String, LabError> {
        let mut out = Vec::new();
        run_map(config, input, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn config(servers: u32, replication: u32, down: Vec<u32>) -> MapConfig {
        MapConfig {
            servers,
            replication,
            hash: HashKind::Charsum,
            down,
        }
    }

    #[test]
    fn down_servers_are_skipped_in_cyclic_order() {
        // charsum("/a") = 144: mod 5 = 4, so the subset starts at server 4.
        assert_eq!(map(&config(5, 3, vec![]), b"/a\n").unwrap(), "4 4,0,1\n");
        assert_eq!(map(&config(5, 3, vec![0]), b"/a\n").unwrap(), "4 4,1,2\n");
        assert_eq!(
            map(&config(5, 3, vec![4, 0]), b"/a\n").unwrap(),
            "4 1,2,3\n"
        );
    }

    #[test]
    fn crlf_and_a_missing_final_newline_are_handled() {
        let c = config(4, 1, vec![]);
        assert_eq!(map(&c, b"/a\r\n/a").unwrap(), "0 0\n0 0\n");
        // An empty line is the key "/" (SPEC section 1): 47 mod 4 = 3.
        assert_eq!(map(&c, b"\n").unwrap(), "3 3\n");
    }

    #[test]
    fn bad_arguments_are_typed_errors_before_any_output() {
        assert!(matches!(
            map(&config(0, 1, vec![]), b"/a\n"),
            Err(LabError::Hash(_))
        ));
        assert!(matches!(
            map(&config(4, 5, vec![]), b"/a\n"),
            Err(LabError::Hash(_))
        ));
        assert!(matches!(
            map(&config(4, 1, vec![4]), b"/a\n"),
            Err(LabError::Hash(_))
        ));
        assert!(matches!(
            map(&config(2, 1, vec![0, 1]), b"/a\n"),
            Err(LabError::BadArgument {
                option: "--down",
                ..
            })
        ));
    }

    proptest! {
        /// Whatever bytes a line holds (no newline inside), `map` prints exactly the
        /// dispatcher's sub-namespace and current subset for it, one line per input line.
        #[test]
        fn map_lines_are_the_dispatchers_mapping_for_any_bytes(
            lines in proptest::collection::vec(
                proptest::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..40),
                1..20,
            ),
            servers in 1u32..40,
            replication_seed in 0u32..40,
            down_mask in any::<u64>(),
            hash in proptest::sample::select(HashKind::ALL.to_vec()),
        ) {
            let replication = 1 + replication_seed % servers;
            let down: Vec<u32> = (0..servers).filter(|s| down_mask >> s & 1 == 1).collect();
            prop_assume!(down.len() < servers as usize);
            let config = MapConfig { servers, replication, hash, down: down.clone() };
            let mut input = Vec::new();
            for l in &lines {
                input.extend_from_slice(l);
                input.push(b'\n');
            }
            let mut out = Vec::new();
            let n = run_map(&config, &input[..], &mut out).unwrap();
            prop_assert_eq!(n as usize, lines.len());
            let d = Dispatcher::new(servers, replication, hash).unwrap();
            for s in down {
                d.set_available(s, false).unwrap();
            }
            let text = String::from_utf8(out).unwrap();
            for (line, printed) in lines.iter().zip(text.lines()) {
                let target = strip_line_end(line);
                let ns = d.namespace(target);
                let subset: Vec<String> = d.subset(ns).unwrap().map(|s| s.to_string()).collect();
                prop_assert_eq!(printed, format!("{ns} {}", subset.join(",")));
            }
        }
    }
}
