//! What every experiment is run with: the `--quick`, `--seed` and `--urls` choices and a
//! progress reporter that writes to standard error only (standard output stays clean for
//! `--json`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::LabError;

/// The seed every synthetic workload uses unless `--seed` says otherwise: the date of the
/// dissertation's World Cup trace clip (30 June 1998). Printed in every report that uses it.
///
/// ```
/// assert_eq!(vibra_lab::DEFAULT_SEED, 19_980_630);
/// ```
pub const DEFAULT_SEED: u64 = 19_980_630;

/// The options an experiment runs with.
///
/// ```
/// use vibra_lab::RunContext;
/// let ctx = RunContext::quiet(true);
/// assert!(ctx.quick);
/// assert_eq!(ctx.seed, vibra_lab::DEFAULT_SEED);
/// assert_eq!(ctx.scale(10, 1000), 10);
/// ```
#[derive(Debug, Clone)]
pub struct RunContext {
    /// `--quick`: finish in well under a minute on 2 cores (SPEC section 10).
    pub quick: bool,
    /// The seed for every random choice; the same seed gives the same rows.
    pub seed: u64,
    /// The real World Cup URL list, when one was given or found (read once by
    /// [`wc98::urls`], shared by every experiment of the run).
    pub urls: Option<Arc<wc98::UrlList>>,
    /// Where progress lines go.
    pub progress: Progress,
    /// `--agent`: who moves the back ends' resources on the testbed after a failure.
    pub agent: AgentChoice,
    /// `--policies`: the policies a testbed comparison (fig3.8, fig3.9, fig3.10) runs, in
    /// this order, instead of its own list; `None` for its own list. See
    /// [`RunContext::policies`].
    pub policies: Option<Vec<String>>,
    /// `--disk-read-mb-s`: each testbed back end's disk-read rate in bytes per second (a
    /// blkio throttle), in place of the experiment's own (none for fig3.7, fig3.8, fig4.3 and
    /// fig4.4, 1 MB/s for fig3.9, 2 MB/s for fig3.10); `None` for the experiment's own.
    pub disk_read_bytes_per_sec: Option<u64>,
}

/// Who moves the testbed's bandwidth and memory in fig4.4 and fig4.3 (`--agent`); in fig3.7
/// `Vibrad` runs one for the URL-hashing policies and `Lab` none (no failure to compensate).
///
/// ```
/// use vibra_lab::AgentChoice;
/// assert_eq!(AgentChoice::default(), AgentChoice::Lab);
/// assert_eq!("vibrad".parse::<AgentChoice>(), Ok(AgentChoice::Vibrad));
/// assert!("x".parse::<AgentChoice>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentChoice {
    /// vibra-lab itself, through vibra-host, one agent period after the failure (the failed
    /// back end's share split evenly among the survivors).
    #[default]
    Lab,
    /// A real `vibrad` (agent role) adopting the back ends: it measures, re-divides every
    /// period and compensates a failure (SPEC 4) by itself.
    Vibrad,
}

impl std::str::FromStr for AgentChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lab" => Ok(AgentChoice::Lab),
            "vibrad" => Ok(AgentChoice::Vibrad),
            _ => Err(format!("{s:?}: expected lab or vibrad")),
        }
    }
}

impl RunContext {
    /// A context with the default seed, no URL list and silent progress.
    ///
    /// ```
    /// use vibra_lab::RunContext;
    /// assert!(!RunContext::quiet(false).quick);
    /// ```
    pub fn quiet(quick: bool) -> Self {
        RunContext {
            quick,
            seed: DEFAULT_SEED,
            urls: None,
            progress: Progress::silent(),
            agent: AgentChoice::Lab,
            policies: None,
            disk_read_bytes_per_sec: None,
        }
    }

    /// Each testbed back end's disk-read rate (bytes per second, `None`: the device's own
    /// speed): `--disk-read-mb-s` when given, else the experiment's `own`.
    ///
    /// ```
    /// use vibra_lab::RunContext;
    /// let mut ctx = RunContext::quiet(true);
    /// assert_eq!(ctx.disk_read_rate(Some(1_000_000)), Some(1_000_000));
    /// assert_eq!(ctx.disk_read_rate(None), None);
    /// ctx.disk_read_bytes_per_sec = Some(500_000);
    /// assert_eq!(ctx.disk_read_rate(Some(1_000_000)), Some(500_000));
    /// assert_eq!(ctx.disk_read_rate(None), Some(500_000));
    /// ```
    pub fn disk_read_rate(&self, own: Option<u64>) -> Option<u64> {
        self.disk_read_bytes_per_sec.or(own)
    }

    /// The policies `experiment` runs: `--policies` in its order when given, each of which
    /// must be one of the experiment's `known` policies, else its own `defaults`.
    ///
    /// ```
    /// use vibra_lab::RunContext;
    /// const KNOWN: &[&str] = &["url-hash/r", "least-conn", "round-robin", "nginx-vibra"];
    /// let mut ctx = RunContext::quiet(true);
    /// assert_eq!(ctx.policies("fig3.8", &KNOWN[..3], KNOWN).unwrap(), &KNOWN[..3]);
    /// ctx.policies = Some(vec!["nginx-vibra".into(), "round-robin".into()]);
    /// assert_eq!(
    ///     ctx.policies("fig3.8", &KNOWN[..3], KNOWN).unwrap(),
    ///     ["nginx-vibra", "round-robin"]
    /// );
    /// ctx.policies = Some(vec!["lard".into()]);
    /// let e = ctx.policies("fig3.8", &KNOWN[..3], KNOWN).unwrap_err();
    /// assert!(e.to_string().contains("fig3.8 does not run 'lard'"));
    /// ```
    pub fn policies(
        &self,
        experiment: &'static str,
        defaults: &[&'static str],
        known: &[&'static str],
    ) -> Result<Vec<&'static str>, LabError> {
        let Some(asked) = &self.policies else {
            return Ok(defaults.to_vec());
        };
        let bad = |reason: String| LabError::BadArgument {
            option: "--policies",
            reason,
        };
        if asked.is_empty() {
            return Err(bad("no policy named".to_string()));
        }
        let mut chosen: Vec<&'static str> = Vec::with_capacity(asked.len());
        for name in asked {
            let Some(&policy) = known.iter().find(|&&k| k == name) else {
                return Err(bad(format!(
                    "{experiment} does not run '{name}' (it runs {})",
                    known.join(", ")
                )));
            };
            if chosen.contains(&policy) {
                return Err(bad(format!("'{name}' named twice")));
            }
            chosen.push(policy);
        }
        Ok(chosen)
    }

    /// Picks the quick or the full size of a parameter.
    ///
    /// ```
    /// use vibra_lab::RunContext;
    /// assert_eq!(RunContext::quiet(false).scale(10, 1000), 1000);
    /// ```
    pub fn scale<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// Writes progress lines (`[name] what: 40% (4/10)`) to standard error, at most one per
/// second per task plus the first and the last, or nothing when silent.
///
/// ```
/// use vibra_lab::Progress;
/// let p = Progress::silent();
/// let mut t = p.task("fig4.1", "analytic loss", 3);
/// t.advance(3);
/// assert_eq!(t.done(), 3);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Progress lines on standard error.
    ///
    /// ```
    /// assert!(vibra_lab::Progress::stderr().is_enabled());
    /// ```
    pub fn stderr() -> Self {
        Progress { enabled: true }
    }

    /// No progress output at all.
    ///
    /// ```
    /// assert!(!vibra_lab::Progress::silent().is_enabled());
    /// ```
    pub fn silent() -> Self {
        Progress { enabled: false }
    }

    /// Whether lines are written.
    ///
    /// ```
    /// assert!(!vibra_lab::Progress::silent().is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Prints one free-form progress line.
    ///
    /// ```
    /// vibra_lab::Progress::silent().say("table3.1", "reading the URL list");
    /// ```
    pub fn say(&self, experiment: &str, message: &str) {
        if self.enabled {
            eprintln!("[{experiment}] {message}");
        }
    }

    /// Starts a task of `total` steps.
    ///
    /// ```
    /// let mut t = vibra_lab::Progress::silent().task("x", "steps", 10);
    /// t.advance(4);
    /// assert_eq!(t.done(), 4);
    /// ```
    pub fn task(&self, experiment: &str, what: &str, total: u64) -> Task {
        let task = Task {
            enabled: self.enabled,
            label: format!("[{experiment}] {what}"),
            total,
            done: 0,
            started: Instant::now(),
            last_print: None,
        };
        task.print();
        task
    }
}

/// A progress task made by [`Progress::task`].
///
/// ```
/// let mut task = vibra_lab::Progress::silent().task("table3.2", "timing", 10);
/// for _ in 0..10 {
///     task.advance(1);
/// }
/// assert_eq!(task.done(), 10);
/// ```
#[derive(Debug)]
pub struct Task {
    enabled: bool,
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last_print: Option<Instant>,
}

impl Task {
    const EVERY: Duration = Duration::from_secs(1);

    /// Records `steps` more steps done, printing a line when a second has passed since the
    /// last one, and at the end.
    ///
    /// ```
    /// let mut t = vibra_lab::Progress::silent().task("x", "y", 2);
    /// t.advance(1);
    /// t.advance(1);
    /// assert_eq!(t.done(), 2);
    /// ```
    pub fn advance(&mut self, steps: u64) {
        self.done = self.done.saturating_add(steps);
        if !self.enabled {
            return;
        }
        let due = self.last_print.is_none_or(|t| t.elapsed() >= Self::EVERY);
        if due || self.done >= self.total {
            self.print();
            self.last_print = Some(Instant::now());
        }
    }

    /// Steps done so far.
    ///
    /// ```
    /// assert_eq!(vibra_lab::Progress::silent().task("x", "y", 5).done(), 0);
    /// ```
    pub fn done(&self) -> u64 {
        self.done
    }

    fn print(&self) {
        if !self.enabled {
            return;
        }
        let pct = if self.total == 0 {
            100.0
        } else {
            100.0 * self.done as f64 / self.total as f64
        };
        eprintln!(
            "{}: {:.0}% ({}/{}, {:.1} s)",
            self.label,
            pct.min(100.0),
            self.done,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
    }
}
