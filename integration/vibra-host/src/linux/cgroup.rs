//! cgroup discovery and the per-VM control files.
//!
//! Owns the choice between cgroup v2 and v1 per resource, made from `/proc/self/mountinfo` and
//! the v2 root's `cgroup.controllers`: v2 where its controller is offered, v1 otherwise
//! (hybrid hosts mount v2 with no cpu/memory controller and v1 beside it). It never assumes a
//! path: a host with neither gets [`Error::NoController`].

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Operation};

/// Where CPU weight/cap, CPU accounting and memory are controlled on this host.
///
/// ```no_run
/// let layout = vibra_host::CgroupLayout::detect()?;
/// println!("{layout}"); // e.g. "cpu: v1 /sys/fs/cgroup/cpu, cpuacct: v1 ..., memory: v1 ..."
/// # Ok::<(), vibra_host::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLayout {
    pub(crate) cpu: Hierarchy,
    pub(crate) cpuacct: Hierarchy,
    pub(crate) memory: Hierarchy,
}

/// One mounted hierarchy that serves a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    V1(PathBuf),
    V2(PathBuf),
}

impl Hierarchy {
    pub(crate) fn root(&self) -> &Path {
        match self {
            Hierarchy::V1(p) | Hierarchy::V2(p) => p,
        }
    }
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hierarchy::V1(p) => write!(f, "v1 {}", p.display()),
            Hierarchy::V2(p) => write!(f, "v2 {}", p.display()),
        }
    }
}

impl fmt::Display for CgroupLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpu: {}, cpuacct: {}, memory: {}",
            self.cpu, self.cpuacct, self.memory
        )
    }
}

/// A mount seen in mountinfo: (mount point, fstype, super options).
struct Mount {
    point: PathBuf,
    fstype: String,
    options: Vec<String>,
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let point = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let fstype = post.next()?.to_string();
            let _source = post.next()?;
            let options = post
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_string)
                .collect();
            // mountinfo escapes spaces as \040; cgroup mount points never contain them.
            Some(Mount {
                point: PathBuf::from(point),
                fstype,
                options,
            })
        })
        .collect()
}

impl CgroupLayout {
    /// Detects the layout of the running host.
    ///
    /// ```no_run
    /// let layout = vibra_host::CgroupLayout::detect()?;
    /// assert!(!layout.to_string().is_empty());
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn detect() -> Result<Self, Error> {
        let text = fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::NoController {
            resource: "cpu",
            detail: format!("cannot read /proc/self/mountinfo: {e}"),
        })?;
        let mounts = parse_mountinfo(&text);
        let v2 = mounts.iter().find(|m| m.fstype == "cgroup2").map(|m| {
            let controllers =
                fs::read_to_string(m.point.join("cgroup.controllers")).unwrap_or_default();
            (
                m.point.clone(),
                controllers
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            )
        });
        let pick = |resource: &'static str| -> Result<Hierarchy, Error> {
            if let Some((root, controllers)) = &v2 {
                // cpuacct has no v2 controller: v2's cpu.stat always reports usage_usec, but we
                // keep accounting in the same version as control so one process placement serves both.
                let wanted = if resource == "cpuacct" {
                    "cpu"
                } else {
                    resource
                };
                if controllers.iter().any(|c| c == wanted) {
                    return Ok(Hierarchy::V2(root.clone()));
                }
            }
            if let Some(m) = mounts
                .iter()
                .find(|m| m.fstype == "cgroup" && m.options.iter().any(|o| o == resource))
            {
                return Ok(Hierarchy::V1(m.point.clone()));
            }
            Err(Error::NoController {
                resource,
                detail: match &v2 {
                    Some((root, c)) => format!(
                        "cgroup2 at {} offers only {:?} and no cgroup v1 {resource} is mounted",
                        root.display(),
                        c
                    ),
                    None => format!("no cgroup2 mount and no cgroup v1 {resource} mount"),
                },
            })
        };
        Ok(CgroupLayout {
            cpu: pick("cpu")?,
            cpuacct: pick("cpuacct")?,
            memory: pick("memory")?,
        })
    }

    /// The directory of cgroup `relative` (for example `parent/vm`, as [`crate::LinuxHost`]
    /// names a VM's cgroup) in each distinct hierarchy in use: where another process (a
    /// launcher such as an MPI wrapper) writes a pid to `cgroup.procs` to place it in a VM
    /// that a daemon created. Nothing is read or created.
    ///
    /// ```no_run
    /// let layout = vibra_host::CgroupLayout::detect()?;
    /// for dir in layout.dirs_of("vibrad/vm0") {
    ///     std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dirs_of(&self, relative: &str) -> Vec<PathBuf> {
        self.hierarchies()
            .into_iter()
            .map(|h| h.root().join(relative))
            .collect()
    }

    /// The directory of cgroup `relative` in the hierarchy that serves cpu, and whether that
    /// hierarchy is cgroup v2 (control files `cpu.weight`, `cpu.max`) rather than v1
    /// (`cpu.shares`, `cpu.cfs_quota_us`). Nothing is read or created.
    ///
    /// ```no_run
    /// let layout = vibra_host::CgroupLayout::detect()?;
    /// let (dir, v2) = layout.cpu_dir_of("vibrad");
    /// println!("{} ({})", dir.display(), if v2 { "v2" } else { "v1" });
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn cpu_dir_of(&self, relative: &str) -> (PathBuf, bool) {
        (
            self.cpu.root().join(relative),
            matches!(self.cpu, Hierarchy::V2(_)),
        )
    }

    /// The distinct hierarchies in use (a process is placed once in each).
    pub(crate) fn hierarchies(&self) -> Vec<&Hierarchy> {
        let mut out: Vec<&Hierarchy> = Vec::with_capacity(3);
        for h in [&self.cpu, &self.cpuacct, &self.memory] {
            if !out.contains(&h) {
                out.push(h);
            }
        }
        out
    }
}

/// Reads a control file, naming the VM and operation on failure.
pub(crate) fn read(vm: &str, op: Operation, path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        vm: vm.to_string(),
        op,
        path: path.display().to_string(),
        source,
    })
}

/// Writes a control file in one write(2), naming the VM and operation on failure.
pub(crate) fn write(vm: &str, op: Operation, path: &Path, value: &str) -> Result<(), Error> {
    fs::write(path, value).map_err(|source| Error::Io {
        vm: vm.to_string(),
        op,
        path: path.display().to_string(),
        source,
    })
}

/// Parses the first whitespace-separated number of a control file.
pub(crate) fn parse_u64(
    vm: &str,
    op: Operation,
    what: &'static str,
    text: &str,
) -> Result<u64, Error> {
    text.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Error::Parse {
            vm: vm.to_string(),
            op,
            what,
            text: text.to_string(),
        })
}

/// Enables `controller` for the children of `dir` (v2 only; an already enabled one is fine).
pub(crate) fn enable_v2_controller(vm: &str, dir: &Path, controller: &str) -> Result<(), Error> {
    let path = dir.join("cgroup.subtree_control");
    let current = read(vm, Operation::CreateVm, &path)?;
    if current.split_whitespace().any(|c| c == controller) {
        return Ok(());
    }
    write(vm, Operation::CreateVm, &path, &format!("+{controller}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing_finds_v1_controllers_and_v2() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(m[1].options.iter().any(|o| o == "cpuacct"));
        assert_eq!(m[2].fstype, "cgroup2");
    }

    #[test]
    fn hierarchies_are_deduplicated() {
        let p = PathBuf::from("/x");
        let l = CgroupLayout {
            cpu: Hierarchy::V2(p.clone()),
            cpuacct: Hierarchy::V2(p.clone()),
            memory: Hierarchy::V2(p),
        };
        assert_eq!(l.hierarchies().len(), 1);
        assert_eq!(l.dirs_of("p/vm"), vec![PathBuf::from("/x/p/vm")]);
        assert_eq!(l.cpu_dir_of("p"), (PathBuf::from("/x/p"), true));
    }

    #[test]
    fn v1_dirs_name_every_hierarchy_once() {
        let l = CgroupLayout {
            cpu: Hierarchy::V1(PathBuf::from("/c/cpu")),
            cpuacct: Hierarchy::V1(PathBuf::from("/c/cpuacct")),
            memory: Hierarchy::V1(PathBuf::from("/c/memory")),
        };
        assert_eq!(
            l.dirs_of("h/v"),
            ["/c/cpu/h/v", "/c/cpuacct/h/v", "/c/memory/h/v"]
                .map(PathBuf::from)
                .to_vec()
        );
        assert_eq!(l.cpu_dir_of("h"), (PathBuf::from("/c/cpu/h"), false));
    }

    #[test]
    fn unparsable_counter_is_a_typed_error() {
        assert!(matches!(
            parse_u64("vm", Operation::ReadUsage, "x", "max"),
            Err(Error::Parse { .. })
        ));
        assert_eq!(
            parse_u64("vm", Operation::ReadUsage, "x", "42\n").unwrap(),
            42
        );
    }
}
