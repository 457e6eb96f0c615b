//! A disk-read rate per back end: a cgroup v1 `blkio` group per back end with
//! `blkio.throttle.read_bps_device` on the corpus's disk, so that a back end whose page cache
//! misses is bound by its disk, as the dissertation's were (its least-connection was slowest
//! "due to its excessive disk activities"). vibra-host has no disk resource, so the testbed
//! keeps these groups itself, named `vibra-testbed-<run id>/<vm>` like the others, and removes
//! them after the processes in them are gone. cgroup v2 (`io.max`) is not supported yet: the
//! testbed refuses a throttle there with a clear error.

use std::path::{Path, PathBuf};

use super::TestbedError;

/// Where cgroup v1's blkio hierarchy is mounted on this kind of machine.
const BLKIO_ROOT: &str = "/sys/fs/cgroup/blkio";

/// The run's blkio groups; removed on drop (after their processes exited).
#[derive(Debug)]
pub(crate) struct ReadThrottle {
    parent: PathBuf,
    groups: Vec<PathBuf>,
    disk: String,
    bytes_per_sec: u64,
}

impl ReadThrottle {
    /// Makes the run's parent group (`vibra-testbed-<run id>`) for throttling reads of `disk`
    /// (`major:minor`) to `bytes_per_sec` per back end.
    pub(crate) fn new(
        run_id: &str,
        disk: String,
        bytes_per_sec: u64,
    ) -> Result<Self, TestbedError> {
        let root = Path::new(BLKIO_ROOT);
        if !root.join("blkio.throttle.read_bps_device").is_file() {
            return Err(TestbedError::Unavailable(format!(
                "a disk-read rate per back end needs cgroup v1's blkio controller at \
                 {BLKIO_ROOT} (cgroup v2's io.max is not supported yet)"
            )));
        }
        if bytes_per_sec == 0 {
            return Err(TestbedError::Unavailable(
                "a disk-read rate of 0 would stop every back end".into(),
            ));
        }
        let parent = root.join(format!("vibra-testbed-{run_id}"));
        std::fs::create_dir(&parent).map_err(|e| TestbedError::io(&parent, e))?;
        Ok(ReadThrottle {
            parent,
            groups: Vec::new(),
            disk,
            bytes_per_sec,
        })
    }

    /// The group for `vm`, throttled; returns its `cgroup.procs` for the caller to move a
    /// process into.
    pub(crate) fn add(&mut self, vm: &str) -> Result<PathBuf, TestbedError> {
        let g = self.parent.join(vm);
        std::fs::create_dir(&g).map_err(|e| TestbedError::io(&g, e))?;
        self.groups.push(g.clone());
        let f = g.join("blkio.throttle.read_bps_device");
        std::fs::write(&f, format!("{} {}", self.disk, self.bytes_per_sec))
            .map_err(|e| TestbedError::io(&f, e))?;
        Ok(g.join("cgroup.procs"))
    }

    /// Moves process `pid` into `vm`'s group (its children, forked later, stay there).
    pub(crate) fn attach(procs: &Path, pid: u32) -> Result<(), TestbedError> {
        std::fs::write(procs, pid.to_string()).map_err(|e| TestbedError::io(procs, e))
    }

    /// Bytes per second each back end may read from the disk.
    pub(crate) fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }
}

impl Drop for ReadThrottle {
    fn drop(&mut self) {
        // The processes are gone by now (the testbed kills them first); a group that still
        // holds one cannot be removed, which the CI stage's leftover check reports.
        for g in self.groups.iter().rev() {
            let _ = std::fs::remove_dir(g);
        }
        let _ = std::fs::remove_dir(&self.parent);
    }
}
