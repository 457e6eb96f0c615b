//! Program topologies (the `patterns` program of section 5.5.1 generates the same set): who
//! sends each VM the messages it needs before its next BSP iteration.

use dps_core::DpsError;

/// A communication topology over N VMs.
///
/// ```
/// use dps_sim::Topology;
/// assert_eq!(Topology::Linear.neighbours(0, 4).unwrap(), vec![1]);
/// assert_eq!(Topology::Ring.neighbours(0, 4).unwrap(), vec![1, 3]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// 1-D mesh: i talks to i-1 and i+1.
    Linear,
    /// 1-D torus.
    Ring,
    /// 2-D mesh of `cols` columns (N must be a multiple of `cols`).
    Mesh2d {
        /// Columns.
        cols: u32,
    },
    /// 2-D torus of `cols` columns.
    Torus2d {
        /// Columns.
        cols: u32,
    },
    /// Binary reduction tree: parent and children.
    Tree,
    /// Hypercube (N a power of two): neighbours differ in one bit.
    Hypercube,
    /// Everyone waits for everyone: a BSP barrier.
    AllToAll,
}

impl Topology {
    /// The neighbours of VM `i` among `n`, sorted and without `i`. Errors: `i >= n`, or a shape
    /// that does not fit `n`.
    ///
    /// ```
    /// use dps_sim::Topology;
    /// assert_eq!(Topology::Hypercube.neighbours(5, 8).unwrap(), vec![1, 4, 7]);
    /// assert!(Topology::Hypercube.neighbours(0, 6).is_err());
    /// assert_eq!(Topology::Tree.neighbours(1, 7).unwrap(), vec![0, 3, 4]);
    /// ```
    pub fn neighbours(&self, i: u32, n: u32) -> Result<Vec<u32>, DpsError> {
        self.validate(n)?;
        if i >= n {
            return Err(DpsError::UnknownVm(i));
        }
        let mut v: Vec<u32> = match *self {
            Topology::Linear => [i.checked_sub(1), (i + 1 < n).then_some(i + 1)]
                .into_iter()
                .flatten()
                .collect(),
            Topology::Ring => {
                if n == 1 {
                    vec![]
                } else {
                    vec![(i + n - 1) % n, (i + 1) % n]
                }
            }
            Topology::Mesh2d { cols } | Topology::Torus2d { cols } => {
                let rows = n / cols;
                let (r, c) = (i / cols, i % cols);
                let wrap = matches!(self, Topology::Torus2d { .. });
                let mut out = Vec::new();
                let mut push = |rr: i64, cc: i64| {
                    let (rr, cc) = if wrap {
                        (rr.rem_euclid(rows as i64), cc.rem_euclid(cols as i64))
                    } else {
                        (rr, cc)
                    };
                    if (0..rows as i64).contains(&rr) && (0..cols as i64).contains(&cc) {
                        out.push(rr as u32 * cols + cc as u32);
                    }
                };
                push(r as i64 - 1, c as i64);
                push(r as i64 + 1, c as i64);
                push(r as i64, c as i64 - 1);
                push(r as i64, c as i64 + 1);
                out
            }
            Topology::Tree => {
                let mut out = Vec::new();
                if i > 0 {
                    out.push((i - 1) / 2);
                }
                for c in [2 * i + 1, 2 * i + 2] {
                    if c < n {
                        out.push(c);
                    }
                }
                out
            }
            Topology::Hypercube => (0..n.trailing_zeros()).map(|b| i ^ (1 << b)).collect(),
            Topology::AllToAll => (0..n).filter(|&j| j != i).collect(),
        };
        v.sort_unstable();
        v.dedup();
        v.retain(|&j| j != i);
        Ok(v)
    }

    /// Checks that the topology fits `n` VMs.
    ///
    /// ```
    /// use dps_sim::Topology;
    /// assert!(Topology::Mesh2d { cols: 3 }.validate(6).is_ok());
    /// assert!(Topology::Mesh2d { cols: 4 }.validate(6).is_err());
    /// ```
    pub fn validate(&self, n: u32) -> Result<(), DpsError> {
        let bad = |why: &str| {
            Err(DpsError::InvalidTopology(format!(
                "{self:?} over {n} VMs: {why}"
            )))
        };
        if n == 0 {
            return bad("no VMs");
        }
        match *self {
            Topology::Mesh2d { cols } | Topology::Torus2d { cols }
                if cols == 0 || n % cols != 0 =>
            {
                bad("N must be a multiple of cols")
            }
            Topology::Hypercube if !n.is_power_of_two() => bad("N must be a power of two"),
            _ => Ok(()),
        }
    }
}
