//! Network namespaces, veth links and tc shaping, through iproute2's `ip` and `tc`.
//!
//! Owns every external command the Linux backend runs (and the Xen backend's tc on a vif).
//! One process per change: a shaping change is exactly one `tc` run.

use std::net::Ipv4Addr;
use std::process::Command;

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

/// The tc arguments of a tbf root qdisc limiting `dev` to `rate` (latency 50 ms of queue).
pub(crate) fn tbf_args(dev: &str, rate: Bandwidth) -> Vec<String> {
    let burst = rate.tbf_burst_bytes().to_string();
    [
        "qdisc",
        "replace",
        "dev",
        dev,
        "root",
        "tbf",
        "rate",
        &rate.tc_rate(),
        "burst",
        &burst,
        "latency",
        "50ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Replaces the root qdisc of `dev` (in namespace `ns`, or the host's with `None`) by a tbf at
/// `rate`: one `tc` run. `replace` swaps the qdisc atomically, so on error the old one stays.
pub(crate) fn shape(vm: &str, ns: Option<&str>, dev: &str, rate: Bandwidth) -> Result<(), Error> {
    let mut args: Vec<String> = Vec::with_capacity(16);
    if let Some(ns) = ns {
        args.extend(["-n".to_string(), ns.to_string()]);
    }
    args.extend(tbf_args(dev, rate));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(vm, Operation::SetEgress, "tc", &args).map(drop)
}

/// Reads the rate of the tbf root qdisc of `dev` (None when `dev` has no tbf root).
pub(crate) fn shaped_rate(
    vm: &str,
    ns: Option<&str>,
    dev: &str,
) -> Result<Option<Bandwidth>, Error> {
    let mut args: Vec<&str> = Vec::with_capacity(8);
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "qdisc", "show", "dev", dev, "root"]);
    let out = run(vm, Operation::ReadUsage, "tc", &args)?;
    if !out.contains("\"kind\":\"tbf\"") {
        return Ok(None);
    }
    // iproute2's JSON prints tbf's rate in bytes per second: `"rate":125000`.
    let rate = out
        .split("\"rate\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<f64>().ok())
        .ok_or_else(|| Error::Parse {
            vm: vm.to_string(),
            op: Operation::ReadUsage,
            what: "tbf rate",
            text: out.clone(),
        })?;
    Bandwidth::from_bytes_per_sec(rate).map(Some)
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
    fn tbf_command_carries_rate_and_burst() {
        let args = tbf_args("eth0", Bandwidth::from_bits_per_sec(8e6).unwrap());
        assert_eq!(
            args.join(" "),
            "qdisc replace dev eth0 root tbf rate 8000000bit burst 16384 latency 50ms"
        );
    }

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

    #[test]
    fn vanished_interface_counter_is_an_io_error() {
        let e = counter("vm3", "vibra-no-such-if", "rx_bytes").unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
