//! The identifiers every module names things by: VMs, customers and hosts.
//!
//! A leaf module (it imports nothing from the crate), so that the error type, the directory
//! and the algorithms can all name a VM or a host without importing one another.

use std::fmt;

/// A VM's identifier. In the slice functions it is the VM's position (0-based) in the input,
/// which is also what the C ABI's `vibra_change.vm` carries. Wherever the crate orders by
/// VM (the groups of a [`crate::Plan`], SPEC section 5's "ascending VM index") it orders by
/// this id, never by a position in some other list.
///
/// ```
/// use vibra_alloc::VmId;
/// assert_eq!(VmId(3).to_string(), "vm3");
/// assert_eq!(VmId(3).index(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmId(pub u32);

impl VmId {
    /// The id as a slice index.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::VmId(7).index(), 7usize);
    /// ```
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vm{}", self.0)
    }
}

/// A customer (the owner of a VM cluster and of its resource pool).
///
/// ```
/// assert_eq!(vibra_alloc::CustomerId(4).to_string(), "customer4");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomerId(pub u32);

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "customer{}", self.0)
    }
}

/// A physical host.
///
/// ```
/// assert_eq!(vibra_alloc::HostId(1).to_string(), "host1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub u32);

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host{}", self.0)
    }
}
