//! Network namespaces and veth links (through iproute2's `ip`, when a VM is created or
//! destroyed) and tbf egress shaping (over rtnetlink, see [`super::netlink`]; also the Xen
//! backend's tbf on a vif).
//!
//! Owns every external command the Linux backend runs. A shaping change runs none: it is two
//! netlink round trips on a socket kept per namespace ([`NetnsSockets`]).

use std::collections::HashMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::netlink::{Failure, Rtnl, Tbf};
use crate::error::{Error, Operation};
use crate::units::Bandwidth;

/// Runs `program args`, turning a spawn failure or non-zero exit into [`Error::Command`] with
/// the command's standard error.
pub(crate) fn run(vm: &str, op: Operation, program: &str, args: &[&str]) -> Result<String, Error> {
    let command = || format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Error::Command {
            vm: vm.to_string(),
            op,
            command: command(),
            stderr: format!("cannot run {program}: {e}"),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            vm: vm.to_string(),
            op,
            command: command(),
            stderr: format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The addresses of a VM's point-to-point link.
///
/// ```
/// use std::net::Ipv4Addr;
/// let link = vibra_host::LinkAddrs::new(Ipv4Addr::new(10, 213, 0, 1), Ipv4Addr::new(10, 213, 0, 2), 30).unwrap();
/// assert_eq!(link.prefix_len(), 30);
/// assert!(vibra_host::LinkAddrs::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 30).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkAddrs {
    host: Ipv4Addr,
    vm: Ipv4Addr,
    prefix_len: u8,
}

impl LinkAddrs {
    /// Host-side and VM-side addresses in one subnet of `prefix_len` bits (8..=30); `None`
    /// when the two are equal, the prefix is out of range or they are in different subnets.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// assert!(vibra_host::LinkAddrs::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 1, 2), 30).is_none());
    /// ```
    pub fn new(host: Ipv4Addr, vm: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        if !(8..=30).contains(&prefix_len) || host == vm {
            return None;
        }
        let mask = u32::MAX << (32 - prefix_len);
        (u32::from(host) & mask == u32::from(vm) & mask).then_some(LinkAddrs {
            host,
            vm,
            prefix_len,
        })
    }

    /// The host end's address.
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// let l = vibra_host::LinkAddrs::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 30).unwrap();
    /// assert_eq!(l.host(), Ipv4Addr::new(10, 0, 0, 1));
    /// ```
    pub fn host(&self) -> Ipv4Addr {
        self.host
    }

    /// The VM end's address.
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// let l = vibra_host::LinkAddrs::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 30).unwrap();
    /// assert_eq!(l.vm(), Ipv4Addr::new(10, 0, 0, 2));
    /// ```
    pub fn vm(&self) -> Ipv4Addr {
        self.vm
    }

    /// The subnet's prefix length.
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// let l = vibra_host::LinkAddrs::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 24).unwrap();
    /// assert_eq!(l.prefix_len(), 24);
    /// ```
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
}

/// The name of the VM end of the link inside its namespace.
pub(crate) const VM_IF: &str = "eth0";

/// Creates namespace `ns` and a veth pair: `host_if` in the host, [`VM_IF`] in `ns`, both up.
pub(crate) fn create_link(
    vm: &str,
    ns: &str,
    host_if: &str,
    addrs: Option<LinkAddrs>,
) -> Result<(), Error> {
    let op = Operation::CreateVm;
    run(vm, op, "ip", &["netns", "add", ns])?;
    let rest = || -> Result<(), Error> {
        run(
            vm,
            op,
            "ip",
            &[
                "link", "add", host_if, "type", "veth", "peer", "name", VM_IF, "netns", ns,
            ],
        )?;
        if let Some(a) = addrs {
            run(
                vm,
                op,
                "ip",
                &[
                    "addr",
                    "add",
                    &format!("{}/{}", a.host, a.prefix_len),
                    "dev",
                    host_if,
                ],
            )?;
            run(
                vm,
                op,
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{}/{}", a.vm, a.prefix_len),
                    "dev",
                    VM_IF,
                ],
            )?;
        }
        run(vm, op, "ip", &["link", "set", host_if, "up"])?;
        run(vm, op, "ip", &["-n", ns, "link", "set", VM_IF, "up"])?;
        run(vm, op, "ip", &["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    };
    rest().inspect_err(|_| {
        // Leave nothing half-made.
        let _ = destroy_link(vm, ns, host_if);
    })
}

/// Deletes `ns` (and with it the veth pair); a missing namespace is not an error.
pub(crate) fn destroy_link(vm: &str, ns: &str, host_if: &str) -> Result<(), Error> {
    let op = Operation::DestroyVm;
    // Delete the link first: namespace teardown is asynchronous in the kernel, so deleting the
    // namespace first would leave the host end around for a while.
    if std::path::Path::new("/sys/class/net")
        .join(host_if)
        .exists()
    {
        run(vm, op, "ip", &["link", "del", host_if])?;
    }
    let ns_exists = run(vm, op, "ip", &["netns", "list"])?
        .lines()
        .any(|l| l.split_whitespace().next() == Some(ns));
    if ns_exists {
        run(vm, op, "ip", &["netns", "del", ns])?;
    }
    Ok(())
}

/// Queue latency of every tbf this crate sets (`tc`'s `latency 50ms`).
pub(crate) const TBF_LATENCY_US: u32 = 50_000;

/// Replaces the root qdisc of `dev` (in the namespace of `rtnl`) by a tbf at `rate`, with burst
/// [`Bandwidth::tbf_burst_bytes`] and 50 ms of queue: what
/// `tc qdisc replace dev <dev> root tbf rate <rate> burst <burst> latency 50ms` does, as two
/// netlink round trips (the link's index, then the qdisc). The replace is one request, so on
/// error the old qdisc stays.
pub(crate) fn shape(vm: &str, rtnl: &mut Rtnl, dev: &str, rate: Bandwidth) -> Result<(), Error> {
    let op = Operation::SetEgress;
    let tbf =
        Tbf::tc(rate.bytes_per_sec(), rate.tbf_burst_bytes(), TBF_LATENCY_US).map_err(|why| {
            Error::Netlink {
                vm: vm.to_string(),
                op,
                request: format!("RTM_NEWQDISC tbf on {dev}"),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why),
                kernel_says: String::new(),
            }
        })?;
    let index = rtnl.link_index(dev).map_err(|f| netlink_error(vm, op, f))?;
    rtnl.replace_root_tbf(index, &tbf)
        .map_err(|f| netlink_error(vm, op, f))
}

/// The rate of the tbf root qdisc of `dev` in the namespace of `rtnl`: `None` when its root
/// qdisc is another kind or the default.
pub(crate) fn shaped_rate(
    vm: &str,
    rtnl: &mut Rtnl,
    dev: &str,
) -> Result<Option<Bandwidth>, Error> {
    let op = Operation::ReadUsage;
    let index = rtnl.link_index(dev).map_err(|f| netlink_error(vm, op, f))?;
    match rtnl
        .root_qdisc(index)
        .map_err(|f| netlink_error(vm, op, f))?
    {
        Some((_, Some(rate))) => Bandwidth::from_bytes_per_sec(rate as f64).map(Some),
        _ => Ok(None),
    }
}

fn netlink_error(vm: &str, op: Operation, f: Failure) -> Error {
    Error::Netlink {
        vm: vm.to_string(),
        op,
        request: f.request,
        source: f.source,
        kernel_says: f.kernel_says,
    }
}

/// Where `ip netns` keeps its named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// The rtnetlink sockets of named network namespaces, one each, opened inside the namespace
/// on first use and kept, so a control period re-creates none.
///
/// A socket keeps its namespace alive, so the name is checked on every use (one `stat`): a
/// namespace deleted since is an error, as it was for `tc -n` (and its socket is closed,
/// releasing the namespace), and one re-created under the same name gets a new socket.
#[derive(Debug, Default)]
pub(crate) struct NetnsSockets {
    open: HashMap<String, ((u64, u64), Rtnl)>,
}

impl NetnsSockets {
    /// The socket of namespace `ns` (`/run/netns/<ns>`).
    pub(crate) fn get(&mut self, vm: &str, op: Operation, ns: &str) -> Result<&mut Rtnl, Error> {
        let path = Path::new(NETNS_DIR).join(ns);
        let io = |source| Error::Io {
            vm: vm.to_string(),
            op,
            path: path.display().to_string(),
            source,
        };
        let id = match std::fs::metadata(&path) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) => {
                self.open.remove(ns);
                return Err(io(e));
            }
        };
        if self.open.get(ns).is_none_or(|(known, _)| *known != id) {
            let file = File::open(&path).map_err(io)?;
            let meta = file.metadata().map_err(io)?;
            let rtnl = Rtnl::open_in(&file).map_err(|source| Error::Netlink {
                vm: vm.to_string(),
                op,
                request: format!("socket in network namespace {ns}"),
                source,
                kernel_says: String::new(),
            })?;
            self.open
                .insert(ns.to_string(), ((meta.dev(), meta.ino()), rtnl));
        }
        match self.open.get_mut(ns) {
            Some((_, rtnl)) => Ok(rtnl),
            None => Err(io(std::io::Error::from(std::io::ErrorKind::NotFound))),
        }
    }

    /// Closes the socket of `ns`, if open (before the namespace is deleted: an open socket
    /// would keep it, and the veth inside it, alive).
    pub(crate) fn close(&mut self, ns: &str) {
        self.open.remove(ns);
    }
}

/// Reads an interface statistics counter from sysfs (`rx_bytes`, `tx_bytes`).
pub(crate) fn counter(vm: &str, dev: &str, name: &str) -> Result<u64, Error> {
    let path = std::path::Path::new("/sys/class/net")
        .join(dev)
        .join("statistics")
        .join(name);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        vm: vm.to_string(),
        op: Operation::ReadUsage,
        path: path.display().to_string(),
        source,
    })?;
    text.trim().parse().map_err(|_| Error::Parse {
        vm: vm.to_string(),
        op: Operation::ReadUsage,
        what: name_static(name),
        text,
    })
}

fn name_static(name: &str) -> &'static str {
    match name {
        "rx_bytes" => "rx_bytes",
        "tx_bytes" => "tx_bytes",
        _ => "interface counter",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_is_a_command_error_naming_vm() {
        let e = run(
            "vm1",
            Operation::SetEgress,
            "/nonexistent/vibra-no-such-tool",
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Command { vm, .. } if vm == "vm1"),
            "{e}"
        );
    }

    #[test]
    fn failing_program_reports_stderr() {
        let e = run(
            "vm2",
            Operation::SetEgress,
            "sh",
            &["-c", "echo boom >&2; exit 3"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
    }

    /// Whether this process may create links and qdiscs in the host's namespace; says why
    /// not (or fails, when `VIBRA_REQUIRE_PRIVILEGED=1` as in CI).
    fn root_or_skip(test: &str) -> bool {
        let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        });
        if !root {
            assert!(
                !std::env::var("VIBRA_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1"),
                "{test}: needs root but VIBRA_REQUIRE_PRIVILEGED=1 demands it"
            );
            eprintln!("SKIPPED {test}: needs root for links and qdiscs in the host namespace");
        }
        root
    }

    /// A veth pair in the host's namespace, deleted when dropped.
    struct HostVeth(String);

    impl Drop for HostVeth {
        fn drop(&mut self) {
            let _ = run(
                "test",
                Operation::DestroyVm,
                "ip",
                &["link", "del", &self.0],
            );
        }
    }

    /// The tbf set over a socket in the host's own namespace (the Xen backend's vif path) is
    /// the one iproute2's `tc` sets with the backend's former command, in `tc`'s most
    /// detailed view, and reads back at the same rate.
    #[test]
    fn host_namespace_tbf_is_what_tc_itself_sets() {
        if !root_or_skip("host_namespace_tbf") {
            return;
        }
        let dev = format!("vhn{}a", std::process::id());
        run(
            "test",
            Operation::CreateVm,
            "ip",
            &[
                "link",
                "add",
                &dev,
                "type",
                "veth",
                "peer",
                "name",
                &format!("vhn{}b", std::process::id()),
            ],
        )
        .unwrap();
        let _veth = HostVeth(dev.clone());
        run(
            "test",
            Operation::CreateVm,
            "ip",
            &["link", "set", &dev, "up"],
        )
        .unwrap();
        let show = || {
            run(
                "test",
                Operation::ReadUsage,
                "tc",
                &["-j", "-d", "-r", "qdisc", "show", "dev", &dev, "root"],
            )
            .unwrap()
        };
        let mut rtnl = Rtnl::open().unwrap();
        assert_eq!(shaped_rate("test", &mut rtnl, &dev).unwrap(), None);
        for bytes_per_sec in [1_000.0, 2_500_000.0, 6_000_000_000.0] {
            let rate = Bandwidth::from_bytes_per_sec(bytes_per_sec).unwrap();
            shape("test", &mut rtnl, &dev, rate).unwrap();
            let ours = show();
            assert_eq!(shaped_rate("test", &mut rtnl, &dev).unwrap(), Some(rate));
            let burst = rate.tbf_burst_bytes().to_string();
            run(
                "test",
                Operation::SetEgress,
                "tc",
                &[
                    "qdisc",
                    "replace",
                    "dev",
                    &dev,
                    "root",
                    "tbf",
                    "rate",
                    &rate.tc_rate(),
                    "burst",
                    &burst,
                    "latency",
                    "50ms",
                ],
            )
            .unwrap();
            assert!(ours.contains("\"kind\":\"tbf\""), "{ours}");
            assert_eq!(ours, show(), "netlink's tbf differs from tc's at {rate:?}");
        }
        // A link that does not exist: the kernel's ENODEV, naming the request.
        let e = shape(
            "test",
            &mut rtnl,
            "vhn-none",
            Bandwidth::from_bytes_per_sec(1e3).unwrap(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Netlink { request, source, .. }
                if request.contains("vhn-none") && source.raw_os_error() == Some(19)),
            "{e}"
        );
    }

    #[test]
    fn vanished_interface_counter_is_an_io_error() {
        let e = counter("vm3", "vibra-no-such-if", "rx_bytes").unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
