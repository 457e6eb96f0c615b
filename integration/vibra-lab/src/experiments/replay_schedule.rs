//! The World Cup trace replay's schedule (fig3.7): which minutes of `requests_per_minute.csv`
//! (read by the `wc98` crate, the workspace's one reader) are replayed, the one factor that
//! scales their counts to the testbed, and the time compression of a shorter run.
//!
//! - **Window**: [`WindowRule::StartingAt`] a named minute (fig3.7 names the dissertation's own
//!   clip) or [`WindowRule::BusiestOfDay`] (the `minutes` consecutive minutes of one day with
//!   the most requests, the earliest on a tie). The minutes must follow each other without a
//!   gap in the file.
//! - **Scale**: one factor for the whole window, chosen so that its *busiest* minute offers a
//!   given byte rate at the workload's mean request size ([`scale_factor`]); every minute's
//!   rate is its count / 60 times that factor, so the trace's shape within the window is kept.
//! - **Compression**: a shorter run may replay each trace minute in `60 / c` seconds at the
//!   same rate (requests per second), so the load the testbed sees is the full run's and
//!   only the number of requests per minute shrinks by `c`.
//!
//! The arrivals themselves are `crate::testbed::poisson_arrivals` over [`ReplaySchedule::rates`]
//! with [`ReplaySchedule::minute`] as the interval.

use std::time::Duration;

use wc98::MinuteCount;

/// Why a schedule cannot be made from the counts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ScheduleError {
    /// No row has the named period.
    #[error("no minute {0} in the per-minute counts")]
    NoSuchMinute(String),
    /// The window runs past the last row.
    #[error("the {minutes}-minute window from {first} runs past the end of the counts")]
    PastTheEnd { first: String, minutes: usize },
    /// No `minutes` consecutive rows of the day.
    #[error("day {day} has no {minutes} consecutive minutes in the counts")]
    NoWindowInDay { day: String, minutes: usize },
    /// Two rows of the window are not one minute apart (or a period does not parse).
    #[error("the counts skip from {from} to {to} inside the window")]
    Gap { from: String, to: String },
    /// A parameter is out of range.
    #[error("bad replay parameter: {0}")]
    Parameter(String),
}

/// How the replayed window is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowRule<'a> {
    /// The minutes from this period on, as the file writes it (`YYYY-MM-DD HH:MM:SS`).
    StartingAt(&'a str),
    /// The consecutive minutes of this day (`YYYY-MM-DD`) with the most requests; the
    /// earliest such window on a tie.
    BusiestOfDay(&'a str),
}

/// The chosen minutes: the first one's period and each minute's count, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) first: String,
    pub(crate) counts: Vec<u64>,
}

/// Minutes since 1970-01-01 00:00 of a `YYYY-MM-DD HH:MM[:SS]` period, `None` if it does not
/// parse (days from the civil date by H. Hinnant's algorithm).
fn minute_index(period: &str) -> Option<i64> {
    let b = period.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = period.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, min) = (num(11..13)?, num(14..16)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || min > 59 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 24 + h) * 60 + min)
}

/// Checks that `rows` are consecutive minutes.
fn contiguous(rows: &[MinuteCount]) -> Result<(), ScheduleError> {
    for pair in rows.windows(2) {
        let (a, b) = (minute_index(&pair[0].period), minute_index(&pair[1].period));
        if a.is_none() || b.is_none() || a.map(|a| a + 1) != b {
            return Err(ScheduleError::Gap {
                from: pair[0].period.clone(),
                to: pair[1].period.clone(),
            });
        }
    }
    Ok(())
}

/// The `minutes`-minute window of `rows` that `rule` names.
pub(crate) fn choose_window(
    rows: &[MinuteCount],
    rule: WindowRule<'_>,
    minutes: usize,
) -> Result<Window, ScheduleError> {
    if minutes == 0 {
        return Err(ScheduleError::Parameter("a window of 0 minutes".into()));
    }
    let start = match rule {
        WindowRule::StartingAt(first) => {
            let start = rows
                .iter()
                .position(|r| r.period == first)
                .ok_or_else(|| ScheduleError::NoSuchMinute(first.to_string()))?;
            if start + minutes > rows.len() {
                return Err(ScheduleError::PastTheEnd {
                    first: first.to_string(),
                    minutes,
                });
            }
            contiguous(&rows[start..start + minutes])?;
            start
        }
        WindowRule::BusiestOfDay(day) => {
            let in_day = |r: &MinuteCount| {
                r.period.len() > day.len()
                    && r.period.starts_with(day)
                    && r.period.as_bytes()[day.len()] == b' '
            };
            let mut best: Option<(u64, usize)> = None;
            for start in 0..rows.len().saturating_sub(minutes - 1) {
                let w = &rows[start..start + minutes];
                if !w.iter().all(in_day) || contiguous(w).is_err() {
                    continue;
                }
                let sum = w.iter().map(|r| r.count).sum::<u64>();
                if best.is_none_or(|(b, _)| sum > b) {
                    best = Some((sum, start));
                }
            }
            best.map(|(_, s)| s)
                .ok_or_else(|| ScheduleError::NoWindowInDay {
                    day: day.to_string(),
                    minutes,
                })?
        }
    };
    let w = &rows[start..start + minutes];
    Ok(Window {
        first: w[0].period.clone(),
        counts: w.iter().map(|r| r.count).collect(),
    })
}

/// The factor that makes a minute of `peak_count` requests offer `peak_bytes_per_sec` at
/// `mean_bytes` per request: `peak_bytes_per_sec / (peak_count / 60 * mean_bytes)`.
pub(crate) fn scale_factor(
    peak_count: u64,
    mean_bytes: f64,
    peak_bytes_per_sec: f64,
) -> Result<f64, ScheduleError> {
    if peak_count == 0 {
        return Err(ScheduleError::Parameter(
            "the busiest minute has no request".into(),
        ));
    }
    if !(mean_bytes.is_finite() && mean_bytes > 0.0) {
        return Err(ScheduleError::Parameter(format!(
            "mean request size {mean_bytes}"
        )));
    }
    if !(peak_bytes_per_sec.is_finite() && peak_bytes_per_sec > 0.0) {
        return Err(ScheduleError::Parameter(format!(
            "offered peak {peak_bytes_per_sec} B/s"
        )));
    }
    Ok(peak_bytes_per_sec / (peak_count as f64 / 60.0 * mean_bytes))
}

/// What is replayed: the first `counts.len()` minutes of a window, each scaled by one factor
/// and replayed in [`Self::minute`] of wall time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReplaySchedule {
    /// The first replayed minute's period.
    pub(crate) first: String,
    /// The replayed minutes' trace counts.
    pub(crate) counts: Vec<u64>,
    /// The window's busiest count, the one the factor was chosen for.
    pub(crate) peak_count: u64,
    /// Requests replayed per request of the trace (per minute of trace time).
    pub(crate) factor: f64,
    /// Trace minutes per wall minute (1 = real time).
    pub(crate) compression: u32,
}

impl ReplaySchedule {
    /// The first `replayed` minutes of `window`, scaled so that the window's busiest minute
    /// offers `peak_bytes_per_sec` at `mean_bytes` per request, each minute replayed in
    /// `60 / compression` seconds at its scaled rate.
    pub(crate) fn new(
        window: &Window,
        replayed: usize,
        compression: u32,
        mean_bytes: f64,
        peak_bytes_per_sec: f64,
    ) -> Result<Self, ScheduleError> {
        if replayed == 0 || replayed > window.counts.len() {
            return Err(ScheduleError::Parameter(format!(
                "{replayed} minutes replayed of a {}-minute window",
                window.counts.len()
            )));
        }
        if compression == 0 {
            return Err(ScheduleError::Parameter("compression 0".into()));
        }
        let peak_count = window.counts.iter().copied().max().unwrap_or(0);
        let factor = scale_factor(peak_count, mean_bytes, peak_bytes_per_sec)?;
        Ok(ReplaySchedule {
            first: window.first.clone(),
            counts: window.counts[..replayed].to_vec(),
            peak_count,
            factor,
            compression,
        })
    }

    /// Requests per second of wall time in each replayed minute: its count / 60 times the
    /// factor, whatever the compression.
    pub(crate) fn rates(&self) -> Vec<f64> {
        self.counts
            .iter()
            .map(|&c| c as f64 / 60.0 * self.factor)
            .collect()
    }

    /// Wall time of one trace minute.
    pub(crate) fn minute(&self) -> Duration {
        Duration::from_secs_f64(60.0 / f64::from(self.compression))
    }

    /// Wall time of the whole replay.
    pub(crate) fn length(&self) -> Duration {
        self.minute() * self.counts.len() as u32
    }

    /// The expected number of requests (the sum of rate x minute).
    pub(crate) fn expected_requests(&self) -> f64 {
        self.rates().iter().sum::<f64>() * self.minute().as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Rows from `start` (minutes since 1998-06-30 00:00) on, one per minute.
    fn rows(day: &str, start: usize, counts: &[u64]) -> Vec<MinuteCount> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &count)| {
                let m = start + i;
                MinuteCount {
                    period: format!("{day} {:02}:{:02}:00", m / 60, m % 60),
                    count,
                }
            })
            .collect()
    }

    #[test]
    fn minute_index_counts_minutes_across_days_and_months() {
        let a = minute_index("1998-06-30 23:59:00").unwrap();
        assert_eq!(minute_index("1998-07-01 00:00:00"), Some(a + 1));
        assert_eq!(minute_index("1970-01-01 00:01:00"), Some(1));
        assert_eq!(
            minute_index("1998-03-01 00:00:00").unwrap()
                - minute_index("1998-02-28 00:00:00").unwrap(),
            24 * 60
        );
        for bad in [
            "",
            "1998-06-30",
            "1998-13-01 00:00:00",
            "1998-06-30 24:00:00",
            "x998-06-30 00:00:00",
        ] {
            assert_eq!(minute_index(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_named_window_is_taken_as_is_and_refused_when_missing_short_or_gapped() {
        let r = rows("1998-06-30", 970, &[5, 6, 7, 8, 9]);
        let w = choose_window(&r, WindowRule::StartingAt("1998-06-30 16:11:00"), 3).unwrap();
        assert_eq!(w.first, "1998-06-30 16:11:00");
        assert_eq!(w.counts, vec![6, 7, 8]);
        assert!(matches!(
            choose_window(&r, WindowRule::StartingAt("1998-06-30 18:00:00"), 3),
            Err(ScheduleError::NoSuchMinute(_))
        ));
        assert!(matches!(
            choose_window(&r, WindowRule::StartingAt("1998-06-30 16:13:00"), 3),
            Err(ScheduleError::PastTheEnd { .. })
        ));
        let mut gapped = r.clone();
        gapped.remove(2);
        assert!(matches!(
            choose_window(&gapped, WindowRule::StartingAt("1998-06-30 16:10:00"), 3),
            Err(ScheduleError::Gap { .. })
        ));
        assert!(choose_window(&r, WindowRule::StartingAt("1998-06-30 16:10:00"), 0).is_err());
    }

    #[test]
    fn the_busiest_window_stays_inside_its_day_and_takes_the_earliest_tie() {
        // The day's last two minutes and the next day's first are the busiest run of 3, but
        // cross midnight; within the day, [9, 9, 2], [9, 2, 9] and [2, 9, 9] tie: the
        // earliest wins.
        let mut r = rows("1998-06-30", 1434, &[1, 9, 9, 2, 9, 9]);
        r.extend(rows("1998-07-01", 0, &[100, 1]));
        let w = choose_window(&r, WindowRule::BusiestOfDay("1998-06-30"), 3).unwrap();
        assert_eq!(w.first, "1998-06-30 23:55:00");
        assert_eq!(w.counts, vec![9, 9, 2]);
        assert!(matches!(
            choose_window(&r, WindowRule::BusiestOfDay("1998-07-02"), 3),
            Err(ScheduleError::NoWindowInDay { .. })
        ));
        // "1998-06-3" is no day: a prefix of the period is not enough.
        assert!(choose_window(&r, WindowRule::BusiestOfDay("1998-06-3"), 3).is_err());
    }

    #[test]
    fn compression_shortens_the_minutes_and_keeps_the_rates() {
        let w = Window {
            first: "1998-06-30 16:10:00".into(),
            counts: vec![60, 120, 240, 120],
        };
        let real = ReplaySchedule::new(&w, 4, 1, 1000.0, 4000.0).unwrap();
        let quick = ReplaySchedule::new(&w, 2, 6, 1000.0, 4000.0).unwrap();
        // The busiest minute (240 = 4 per second) offers 4000 B/s at 1000 B: factor 1.
        assert!((real.factor - 1.0).abs() < 1e-12);
        assert_eq!(real.rates(), vec![1.0, 2.0, 4.0, 2.0]);
        assert_eq!(quick.factor, real.factor);
        assert_eq!(quick.rates(), vec![1.0, 2.0]);
        assert_eq!(real.length(), Duration::from_secs(240));
        assert_eq!(quick.minute(), Duration::from_secs(10));
        assert_eq!(quick.length(), Duration::from_secs(20));
        assert!((real.expected_requests() - 540.0).abs() < 1e-9);
        assert!((quick.expected_requests() - 30.0).abs() < 1e-9);
        assert!(ReplaySchedule::new(&w, 5, 1, 1000.0, 4000.0).is_err());
        assert!(ReplaySchedule::new(&w, 0, 1, 1000.0, 4000.0).is_err());
        assert!(ReplaySchedule::new(&w, 2, 0, 1000.0, 4000.0).is_err());
    }

    #[test]
    fn the_scale_refuses_what_has_no_meaning() {
        assert!(scale_factor(0, 1000.0, 1.0).is_err());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(scale_factor(10, bad, 1.0).is_err(), "mean {bad}");
            assert!(scale_factor(10, 1000.0, bad).is_err(), "peak {bad}");
        }
    }

    #[test]
    fn the_dissertation_clip_is_in_the_real_counts() {
        let Some(all) = wc98::requests_per_minute(None).unwrap() else {
            eprintln!("SKIPPED: no requests_per_minute.csv (set VIBRA_DATA_DIR)");
            return;
        };
        let w = choose_window(&all, WindowRule::StartingAt("1998-06-30 16:10:00"), 10).unwrap();
        assert_eq!(w.counts.len(), 10);
        // The busiest 10 minutes of that day are at least as busy as the clip.
        let b = choose_window(&all, WindowRule::BusiestOfDay("1998-06-30"), 10).unwrap();
        assert!(b.counts.iter().sum::<u64>() >= w.counts.iter().sum::<u64>());
        assert!(b.first.starts_with("1998-06-30 "));
    }

    proptest! {
        #[test]
        fn the_busiest_window_is_the_brute_force_maximum(
            counts in proptest::collection::vec(0u64..1_000, 1..40),
            minutes in 1usize..8,
        ) {
            let r = rows("1998-06-30", 600, &counts);
            match choose_window(&r, WindowRule::BusiestOfDay("1998-06-30"), minutes) {
                Ok(w) => {
                    let sums: Vec<u64> = counts.windows(minutes).map(|x| x.iter().sum()).collect();
                    let max = *sums.iter().max().unwrap();
                    let first = sums.iter().position(|&s| s == max).unwrap();
                    prop_assert_eq!(w.counts.as_slice(), &counts[first..first + minutes]);
                    prop_assert_eq!(&w.first, &r[first].period);
                }
                Err(_) => prop_assert!(minutes > counts.len()),
            }
        }

        #[test]
        fn the_busiest_minute_offers_the_asked_rate_and_the_shape_is_kept(
            counts in proptest::collection::vec(1u64..300_000, 1..12),
            mean in 100.0f64..1e6,
            peak_bytes in 1e3f64..1e9,
            compression in 1u32..12,
        ) {
            let w = Window { first: "1998-06-30 16:10:00".into(), counts: counts.clone() };
            let s = ReplaySchedule::new(&w, counts.len(), compression, mean, peak_bytes).unwrap();
            let rates = s.rates();
            let peak = rates.iter().copied().fold(0.0, f64::max);
            prop_assert!((peak * mean - peak_bytes).abs() <= 1e-9 * peak_bytes);
            let max = *counts.iter().max().unwrap() as f64;
            for (r, &c) in rates.iter().zip(&counts) {
                prop_assert!((r / peak - c as f64 / max).abs() < 1e-9);
            }
            prop_assert!((s.length().as_secs_f64() - 60.0 * counts.len() as f64 / f64::from(compression)).abs() < 1e-6);
        }
    }
}
