//! Measurements of a dispatching policy (SPEC section 3, dissertation tables 3.1 and figures
//! 4.1-4.4): locality loss after a change of available servers, exact for the failure-skip rule
//! and the naive re-partitioning, sampled for any [`Placement`]; per-server request, byte and
//! distinct-object counts of a request stream; and the load that lands on a failed server's
//! neighbours. Pure functions of their inputs: no clocks, no I/O.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use crate::Error;
use crate::selection::Placement;
use vibra_hash::Error as HashError;
use vibra_hash::{Availability, Dispatcher, HashKind, dispatch_key, takeover_servers};

/// A before/after pair of availability states, validated, with a dispatcher of their N and R
/// whose [`subset_with`](Dispatcher::subset_with) gives the SPEC section 3 subsets under
/// either state (the hash is irrelevant: only sub-namespace indices are used).
struct States {
    before: Availability,
    after: Availability,
    subsets: Dispatcher,
}

/// Validates a before/after pair of availability vectors and R.
fn check_states(before: &[bool], after: &[bool], replication: u32) -> Result<States, Error> {
    let b = Availability::from_flags(before)?;
    let n = b.servers();
    if after.len() != before.len() {
        return Err(HashError::SliceLength {
            len: after.len(),
            servers: n,
        }
        .into());
    }
    let a = Availability::from_flags(after)?;
    let subsets = Dispatcher::new(n, replication, HashKind::Fast)?;
    if b.count() == 0 || a.count() == 0 {
        return Err(HashError::NoServerAvailable.into());
    }
    Ok(States {
        before: b,
        after: a,
        subsets,
    })
}

/// Exact locality loss of the failure-skip rule (SPEC section 3) between two availability
/// states: `1 - sum_s |cover_s(before) ∩ cover_s(after)| / R`, each sub-namespace weighing 1/N.
/// From all servers up to k failed, this is exactly `k / N`: the optimum. (When fewer than R
/// servers are up before, each key has only `min(R, alive)` holders, and that replaces R.)
///
/// # Errors
/// [`HashError::InvalidServerCount`] for empty slices, [`HashError::SliceLength`] if their lengths
/// differ, [`HashError::InvalidReplication`] unless `1 <= R <= N`, [`HashError::NoServerAvailable`] if
/// either state has no server up.
///
/// ```
/// use vibra_baselines::skip_rule_loss;
///
/// let before = [true; 10];
/// let mut after = before;
/// after[3] = false;
/// assert_eq!(skip_rule_loss(&before, &after, 2)?, 0.1);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
pub fn skip_rule_loss(before: &[bool], after: &[bool], replication: u32) -> Result<f64, Error> {
    let states = check_states(before, after, replication)?;
    let d = &states.subsets;
    let (mut held, mut kept) = (0u64, 0u64);
    let mut a_members = Vec::with_capacity(replication as usize);
    for ns in 0..d.servers() {
        a_members.clear();
        a_members.extend(d.subset_with(ns, states.after.words())?);
        for s in d.subset_with(ns, states.before.words())? {
            held += 1;
            kept += u64::from(a_members.contains(&s));
        }
    }
    Ok((held - kept) as f64 / held as f64)
}

/// An arc of the unit circle in units of 1/`scale`: `[start, start + len)` modulo `scale`.
#[derive(Clone, Copy)]
struct Arc {
    start: u64,
    len: u64,
}

impl Arc {
    /// The one or two linear pieces of the arc within `[0, scale)`.
    fn pieces(self, scale: u64) -> [(u64, u64); 2] {
        if self.len >= scale {
            return [(0, scale), (0, 0)];
        }
        let end = self.start + self.len;
        if end <= scale {
            [(self.start, end), (0, 0)]
        } else {
            [(self.start, scale), (0, end - scale)]
        }
    }

    fn overlap(self, other: Arc, scale: u64) -> u64 {
        let mut total = 0;
        for (a0, a1) in self.pieces(scale) {
            for (b0, b1) in other.pieces(scale) {
                total += a1.min(b1).saturating_sub(a0.max(b0));
            }
        }
        total
    }
}

/// The cover of the survivor at position `p` of `m` under the naive scheme with replication
/// `r = min(R, m)`: ranges `p-r+1 ..= p` (cyclic), each of `scale / m` units.
fn naive_cover(p: u64, m: u64, r: u64, scale: u64) -> Arc {
    let unit = scale / m;
    let first = (p + m - (r - 1)) % m;
    Arc {
        start: first * unit,
        len: r * unit,
    }
}

/// Exact locality loss of the dissertation's naive re-partitioning (SPEC section 3) between two
/// availability states: M alive servers split the key space into M contiguous equal ranges
/// handed to them in server order, range j served by survivors j..j+R-1 (cyclic). Computed with
/// integer arithmetic on the common grid of both partitions.
///
/// # Errors
/// As [`skip_rule_loss`].
///
/// ```
/// use vibra_baselines::naive_loss;
///
/// // Two servers, R = 1: server 0 fails and server 1 takes the whole key space; it keeps its
/// // own half, so half of the locality is lost.
/// assert_eq!(naive_loss(&[true, true], &[false, true], 1)?, 0.5);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
pub fn naive_loss(before: &[bool], after: &[bool], replication: u32) -> Result<f64, Error> {
    check_states(before, after, replication)?;
    let survivors = |state: &[bool]| -> Vec<u32> {
        (0..state.len() as u32)
            .filter(|&s| state[s as usize])
            .collect()
    };
    let (b, a) = (survivors(before), survivors(after));
    let (mb, ma) = (b.len() as u64, a.len() as u64);
    let scale = mb * ma;
    let r = u64::from(replication);
    let mut kept: u128 = 0;
    for (pb, s) in b.iter().enumerate() {
        if let Ok(pa) = a.binary_search(s) {
            let cb = naive_cover(pb as u64, mb, r.min(mb), scale);
            let ca = naive_cover(pa as u64, ma, r.min(ma), scale);
            kept += u128::from(cb.overlap(ca, scale));
        }
    }
    // Every key is held by min(R, M_b) servers before.
    let held = u128::from(scale) * u128::from(r.min(mb));
    Ok((held - kept) as f64 / held as f64)
}

/// One row of figure 4.1: locality loss after one failure among N servers with replication R,
/// the naive scheme (average over which server fails, each equally likely, and worst case)
/// against the failure-skip rule (always `1 / N`).
///
/// ```
/// let row = vibra_baselines::fig4_1_row(2, 1)?;
/// assert_eq!((row.naive_worst_loss, row.skip_loss), (0.5, 0.5));
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fig41Row {
    /// N.
    pub servers: u32,
    /// R.
    pub replication: u32,
    /// Naive loss averaged over the failed server.
    pub naive_avg_loss: f64,
    /// Naive loss for the worst failed server.
    pub naive_worst_loss: f64,
    /// Failure-skip loss (exactly 1/N).
    pub skip_loss: f64,
}

/// Figure 4.1 for one (N, R): every single failure from all servers up, exactly.
///
/// # Errors
/// [`HashError::InvalidServerCount`] for N < 2 (one failure would leave nobody),
/// [`HashError::InvalidReplication`] unless `1 <= R <= N`.
///
/// ```
/// use vibra_baselines::fig4_1_row;
///
/// let row = fig4_1_row(10, 1)?;
/// assert!((row.naive_worst_loss - 0.5).abs() < 1e-12);
/// assert!((row.naive_avg_loss - 0.367).abs() < 5e-4);
/// assert!((row.skip_loss - 0.1).abs() < 1e-12);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
pub fn fig4_1_row(servers: u32, replication: u32) -> Result<Fig41Row, Error> {
    if !(2..=vibra_hash::Dispatcher::MAX_SERVERS).contains(&servers) {
        return Err(HashError::InvalidServerCount {
            servers: servers as usize,
            max: vibra_hash::Dispatcher::MAX_SERVERS as usize,
        }
        .into());
    }
    let before = vec![true; servers as usize];
    let mut after = before.clone();
    let (mut sum, mut worst) = (0.0f64, 0.0f64);
    let mut skip_sum = 0.0;
    for f in 0..servers as usize {
        after[f] = false;
        let loss = naive_loss(&before, &after, replication)?;
        skip_sum += skip_rule_loss(&before, &after, replication)?;
        after[f] = true;
        sum += loss;
        worst = worst.max(loss);
    }
    Ok(Fig41Row {
        servers,
        replication,
        naive_avg_loss: sum / f64::from(servers),
        naive_worst_loss: worst,
        skip_loss: skip_sum / f64::from(servers),
    })
}

/// Figure 4.1 over ranges of N and R (the dissertation plots N = 2..=32, R = 1..=4); pairs with
/// R > N are left out.
///
/// # Errors
/// As [`fig4_1_row`].
///
/// ```
/// use vibra_baselines::fig4_1;
///
/// let rows = fig4_1(2..=32, 1..=4)?;
/// assert_eq!(rows.len(), 31 * 4 - 3); // (2, 3), (2, 4), (3, 4) left out
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
pub fn fig4_1(
    servers: RangeInclusive<u32>,
    replications: RangeInclusive<u32>,
) -> Result<Vec<Fig41Row>, Error> {
    let mut rows = Vec::new();
    for n in servers {
        for r in replications.clone().filter(|&r| r <= n) {
            rows.push(fig4_1_row(n, r)?);
        }
    }
    Ok(rows)
}

/// Sampled locality loss of any two placements (e.g. one policy before and after a failure)
/// over a set of targets, each weighing the same:
/// `1 - sum |holders_before ∩ holders_after| / sum |holders_before|`. With R holders per key
/// before, this is SPEC section 3's formula estimated on the sample. Returns 0 when nothing was
/// held before.
///
/// # Errors
/// Whatever either placement returns (e.g. [`HashError::NoServerAvailable`]).
///
/// ```
/// use vibra_hash::{Dispatcher, HashKind};
/// use vibra_baselines::locality_loss;
///
/// let before = Dispatcher::new(8, 2, HashKind::Fast)?;
/// let after = Dispatcher::new(8, 2, HashKind::Fast)?;
/// after.set_available(5, false)?;
/// let urls: Vec<String> = (0..2000).map(|i| format!("/img/{i}.gif")).collect();
/// let loss = locality_loss(urls.iter().map(|u| u.as_bytes()), &before, &after)?;
/// assert!((loss - 1.0 / 8.0).abs() < 0.03);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
pub fn locality_loss<'k>(
    targets: impl IntoIterator<Item = &'k [u8]>,
    before: &dyn Placement,
    after: &dyn Placement,
) -> Result<f64, Error> {
    let (mut b, mut a) = (Vec::new(), Vec::new());
    let (mut held, mut kept) = (0u64, 0u64);
    for t in targets {
        b.clear();
        a.clear();
        before.holders(t, &mut b)?;
        after.holders(t, &mut a)?;
        held += b.len() as u64;
        kept += b.iter().filter(|s| a.contains(s)).count() as u64;
    }
    Ok(if held == 0 {
        0.0
    } else {
        1.0 - kept as f64 / held as f64
    })
}

/// One server's share of a request stream (dissertation table 3.1).
///
/// ```
/// let mut st = vibra_baselines::StreamStats::new(1)?;
/// st.record(0, b"/a", 10)?;
/// st.record(0, b"/a", 10)?;
/// let s = st.server(0)?;
/// assert_eq!((s.requests, s.bytes, s.distinct_objects, s.distinct_bytes), (2, 20, 1, 10));
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests served.
    pub requests: u64,
    /// Bytes served (saturating at `u64::MAX`).
    pub bytes: u64,
    /// Distinct objects served (by dispatch key).
    pub distinct_objects: u64,
    /// Total size of the distinct objects (each counted once, at its first size; saturating at
    /// `u64::MAX`).
    pub distinct_bytes: u64,
}

/// Per-server request, byte and distinct-object counts of a request stream.
///
/// Objects are identified by the XXH3-64 of their dispatch key: two distinct keys merge only on
/// a 64-bit collision (about 10^-10 for a million objects), which keeps the counter small.
///
/// ```
/// use vibra_baselines::StreamStats;
///
/// let mut st = StreamStats::new(2)?;
/// st.record(0, b"/a.gif?x=1", 100)?;
/// st.record(0, b"/a.gif", 100)?;
/// st.record(1, b"/b.gif", 50)?;
/// let s0 = st.server(0)?;
/// assert_eq!((s0.requests, s0.bytes, s0.distinct_objects, s0.distinct_bytes), (2, 200, 1, 100));
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StreamStats {
    servers: Vec<(ServerStats, HashMap<u64, ()>)>,
}

impl StreamStats {
    /// Empty counters for `servers` servers.
    ///
    /// # Errors
    /// [`HashError::InvalidServerCount`] unless `1 <= servers <= Dispatcher::MAX_SERVERS`.
    ///
    /// ```
    /// # use vibra_baselines::StreamStats;
    /// assert!(StreamStats::new(0).is_err());
    /// ```
    pub fn new(servers: u32) -> Result<Self, Error> {
        crate::selection::check_servers(servers)?;
        Ok(StreamStats {
            servers: vec![Default::default(); servers as usize],
        })
    }

    /// Counts one request for `target`, of `bytes` bytes, served by `server`. Byte totals
    /// saturate at `u64::MAX` instead of wrapping.
    ///
    /// # Errors
    /// [`HashError::ServerOutOfRange`] if `server >= N` (nothing counted).
    ///
    /// ```
    /// # use vibra_baselines::StreamStats;
    /// let mut st = StreamStats::new(1)?;
    /// assert!(st.record(1, b"/", 1).is_err());
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn record(&mut self, server: u32, target: &[u8], bytes: u64) -> Result<(), Error> {
        let n = self.servers.len() as u32;
        let (stats, seen) = self
            .servers
            .get_mut(server as usize)
            .ok_or(HashError::ServerOutOfRange { server, servers: n })?;
        // Byte counts come from the caller and can pass u64::MAX: they saturate rather than wrap
        // (a wrapped total would look small and plausible). The two object counts grow by one
        // per call, so they cannot.
        stats.requests += 1;
        stats.bytes = stats.bytes.saturating_add(bytes);
        let id = HashKind::Fast.hash64(dispatch_key(target));
        if seen.insert(id, ()).is_none() {
            stats.distinct_objects += 1;
            stats.distinct_bytes = stats.distinct_bytes.saturating_add(bytes);
        }
        Ok(())
    }

    /// The counts of one server.
    ///
    /// # Errors
    /// [`HashError::ServerOutOfRange`] if `server >= N`.
    ///
    /// ```
    /// # use vibra_baselines::StreamStats;
    /// assert_eq!(StreamStats::new(3)?.server(2)?.requests, 0);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn server(&self, server: u32) -> Result<ServerStats, Error> {
        self.servers.get(server as usize).map(|(s, _)| *s).ok_or(
            HashError::ServerOutOfRange {
                server,
                servers: self.servers.len() as u32,
            }
            .into(),
        )
    }

    /// The counts of every server, by index.
    ///
    /// ```
    /// # use vibra_baselines::StreamStats;
    /// let mut st = StreamStats::new(2)?;
    /// st.record(1, b"/x", 7)?;
    /// assert_eq!(st.per_server()[1].bytes, 7);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn per_server(&self) -> Vec<ServerStats> {
        self.servers.iter().map(|(s, _)| *s).collect()
    }

    /// Locality loss between two runs of a stream (e.g. before and after a failure) for any
    /// policy, from the objects each server actually served:
    /// `1 - sum_s |objects_s(self) ∩ objects_s(after)| / sum_s |objects_s(self)|`.
    ///
    /// # Errors
    /// [`HashError::SliceLength`] if the two have different server counts.
    ///
    /// ```
    /// # use vibra_baselines::StreamStats;
    /// let mut before = StreamStats::new(2)?;
    /// before.record(0, b"/a", 1)?;
    /// before.record(1, b"/b", 1)?;
    /// let mut after = StreamStats::new(2)?;
    /// after.record(1, b"/a", 1)?;
    /// after.record(1, b"/b", 1)?;
    /// assert_eq!(before.locality_loss_to(&after)?, 0.5);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn locality_loss_to(&self, after: &StreamStats) -> Result<f64, Error> {
        if after.servers.len() != self.servers.len() {
            return Err(HashError::SliceLength {
                len: after.servers.len(),
                servers: self.servers.len() as u32,
            }
            .into());
        }
        let (mut held, mut kept) = (0usize, 0usize);
        for ((_, b), (_, a)) in self.servers.iter().zip(&after.servers) {
            held += b.len();
            kept += b.keys().filter(|k| a.contains_key(k)).count();
        }
        Ok(if held == 0 {
            0.0
        } else {
            1.0 - kept as f64 / held as f64
        })
    }
}

/// Per-server load when each sub-namespace's load is split evenly among its subset (the
/// steady state of least-loaded selection among equal servers), before and after a change.
///
/// ```
/// let l = vibra_baselines::failover_load(&[2.0, 2.0], 2, &[true; 2], &[true, false])?;
/// assert_eq!((l.before, l.after), (vec![2.0, 2.0], vec![4.0, 0.0]));
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverLoad {
    /// Load per server with the `before` availability.
    pub before: Vec<f64>,
    /// Load per server with the `after` availability.
    pub after: Vec<f64>,
}

/// Per-server load before and after a change of availability, from the load of each
/// sub-namespace (`weights[i]` for sub-namespace i, e.g. its request count).
///
/// # Errors
/// As [`skip_rule_loss`] (with `weights` in the role of `before`'s length), plus
/// [`Error::InvalidWeight`] for a negative or non-finite weight and
/// [`Error::WeightSumOverflow`] when the weights' total passes `f64::MAX`.
///
/// ```
/// use vibra_baselines::failover_load;
///
/// let l = failover_load(&[1.0; 4], 1, &[true; 4], &[true, false, true, true])?;
/// assert_eq!(l.after, vec![1.0, 0.0, 2.0, 1.0]);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
pub fn failover_load(
    weights: &[f64],
    replication: u32,
    before: &[bool],
    after: &[bool],
) -> Result<FailoverLoad, Error> {
    let states = check_states(before, after, replication)?;
    let n = states.subsets.servers();
    if weights.len() != before.len() {
        return Err(HashError::SliceLength {
            len: weights.len(),
            servers: n,
        }
        .into());
    }
    if let Some(index) = weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
        return Err(Error::InvalidWeight { index });
    }
    // Each server's load below is a rounded sum, in index order, of terms `w / members <= w`;
    // rounded addition is monotonic, so it never exceeds this rounded total: a finite total
    // keeps every load finite.
    let mut total = 0.0f64;
    if let Some(index) = weights.iter().position(|&w| {
        total += w;
        total.is_infinite()
    }) {
        return Err(Error::WeightSumOverflow { index });
    }
    let spread = |up: &Availability| -> Result<Vec<f64>, Error> {
        let mut load = vec![0.0; n as usize];
        for (ns, &w) in weights.iter().enumerate() {
            let members = states.subsets.subset_with(ns as u32, up.words())?;
            let count = members.clone().count() as f64;
            for s in members {
                load[s as usize] += w / count;
            }
        }
        Ok(load)
    };
    Ok(FailoverLoad {
        before: spread(&states.before)?,
        after: spread(&states.after)?,
    })
}

/// The heaviest load landing on a failed server's neighbours (its takeover servers).
///
/// ```
/// let p = vibra_baselines::neighbour_peak(&[1.0; 4], 1, &[true; 4], 3)?;
/// assert_eq!((p.server, p.after / p.before), (0, 2.0));
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeighbourPeak {
    /// The most loaded takeover server after the failure.
    pub server: u32,
    /// Its load before the failure.
    pub before: f64,
    /// Its load after.
    pub after: f64,
}

/// After `failed` fails (from `available`), the takeover server
/// ([`takeover_servers`](vibra_hash::takeover_servers)) with the highest load, per
/// [`failover_load`]. With uniform load and R = 1 it carries twice its share; with R = 2,
/// one and a half: replication spreads the failover load.
///
/// # Errors
/// As [`failover_load`] and [`takeover_servers`](vibra_hash::takeover_servers).
///
/// ```
/// use vibra_baselines::neighbour_peak;
///
/// let p = neighbour_peak(&[1.0; 8], 2, &[true; 8], 3)?;
/// assert_eq!((p.server, p.before, p.after), (4, 1.0, 1.5));
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
pub fn neighbour_peak(
    weights: &[f64],
    replication: u32,
    available: &[bool],
    failed: u32,
) -> Result<NeighbourPeak, Error> {
    let takers = takeover_servers(available, failed, replication)?;
    let mut after = available.to_vec();
    after[failed as usize] = false;
    let load = failover_load(weights, replication, available, &after)?;
    let mut best = takers[0];
    for &s in &takers[1..] {
        if load.after[s as usize] > load.after[best as usize] {
            best = s;
        }
    }
    Ok(NeighbourPeak {
        server: best,
        before: load.before[best as usize],
        after: load.after[best as usize],
    })
}
