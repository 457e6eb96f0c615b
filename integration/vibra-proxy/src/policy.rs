//! The dispatching policies the proxy can run (SPEC section 10's `policy` values), and the
//! selection state each keeps.

use std::fmt;

/// A dispatching policy, selected with `--policy` (SPEC section 10's names).
///
/// `url-hash` and `url-hash/r` both run vibra-hash's least-loaded-in-subset over
/// `--replication R`: SPEC 10 labels the R = 1 runs `url-hash` and the replicated runs
/// `url-hash/r`, and `url-hash` is the default SPEC 11's command line names. `url-hash/r`
/// refuses R = 1, so a run labelled replicated is replicated. The others ignore `--replication`
/// and `--hash` and run vibra-baselines' implementation (LARD with Pai et al.'s parameters).
///
/// ```
/// use vibra_proxy::Policy;
/// assert_eq!(Policy::LardR.to_string(), "lard/r");
/// assert_eq!(Policy::ALL.len(), 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum Policy {
    /// vibra-hash, any R (the default).
    #[default]
    #[value(name = "url-hash")]
    UrlHash,
    /// vibra-hash with R >= 2.
    #[value(name = "url-hash/r")]
    UrlHashR,
    /// LARD (Pai et al., ASPLOS'98).
    #[value(name = "lard")]
    Lard,
    /// LARD with replication.
    #[value(name = "lard/r")]
    LardR,
    /// The server with the fewest active requests.
    #[value(name = "least-conn")]
    LeastConn,
    /// Round-robin over the servers that are up.
    #[value(name = "round-robin")]
    RoundRobin,
}

impl Policy {
    /// Every policy, in SPEC 10's order.
    pub const ALL: [Policy; 6] = [
        Policy::UrlHash,
        Policy::UrlHashR,
        Policy::Lard,
        Policy::LardR,
        Policy::LeastConn,
        Policy::RoundRobin,
    ];

    /// SPEC 10's name, as `--policy` takes it.
    ///
    /// ```
    /// assert_eq!(vibra_proxy::Policy::UrlHashR.name(), "url-hash/r");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Policy::UrlHash => "url-hash",
            Policy::UrlHashR => "url-hash/r",
            Policy::Lard => "lard",
            Policy::LardR => "lard/r",
            Policy::LeastConn => "least-conn",
            Policy::RoundRobin => "round-robin",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
