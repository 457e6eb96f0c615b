//! Resource kinds. Each kind is allocated independently of every other (section 3.6: "in
//! Vibra each type of resources can be adapted independently").

use std::fmt;

/// A kind of resource a pool is made of.
///
/// ```
/// use vibra_alloc::ResourceKind;
/// assert_eq!(ResourceKind::Bandwidth.to_string(), "bandwidth");
/// assert_eq!(ResourceKind::named("disk-iops").to_string(), "disk-iops");
/// assert!(ResourceKind::Bandwidth < ResourceKind::Memory);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// Egress network bandwidth (section 3.4.4: intranet traffic is not counted).
    Bandwidth,
    /// Memory (section 3.4.6: working-set estimate).
    Memory,
    /// CPU share.
    Cpu,
    /// Any other kind, by name.
    Named(String),
}

impl ResourceKind {
    /// A named kind.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::ResourceKind::named("gpu"), vibra_alloc::ResourceKind::Named("gpu".into()));
    /// ```
    #[must_use]
    pub fn named(name: impl Into<String>) -> Self {
        ResourceKind::Named(name.into())
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceKind::Bandwidth => f.write_str("bandwidth"),
            ResourceKind::Memory => f.write_str("memory"),
            ResourceKind::Cpu => f.write_str("cpu"),
            ResourceKind::Named(n) => f.write_str(n),
        }
    }
}
