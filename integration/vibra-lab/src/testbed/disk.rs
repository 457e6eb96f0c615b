//! Disk reads of the block device under a directory, from `/sys/dev/block/<maj>:<min>/stat`
//! (the same counters as `/sys/block/*/stat`; a partition has its own).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::TestbedError;

/// Bytes per sector in the block layer's `stat` counters (always 512, whatever the device's
/// own sector size: Documentation/block/stat.rst).
const SECTOR_BYTES: u64 = 512;

/// The block device a directory lives on, read through its `stat` file.
///
/// ```no_run
/// use vibra_lab::testbed::BlockDevice;
/// let disk = BlockDevice::of_dir(std::path::Path::new("/var/tmp"))?;
/// println!("{} read so far: {} bytes", disk.stat_path().display(), disk.read_bytes()?);
/// # Ok::<(), vibra_lab::testbed::TestbedError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    stat: PathBuf,
}

impl BlockDevice {
    /// The device holding `dir`. Fails with [`TestbedError::NotOnBlockDevice`] when the
    /// file system has no block device (tmpfs, overlay, NFS): its reads could not be counted.
    ///
    /// ```no_run
    /// let disk = vibra_lab::testbed::BlockDevice::of_dir(std::path::Path::new("/"))?;
    /// assert!(disk.stat_path().ends_with("stat"));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn of_dir(dir: &Path) -> Result<Self, TestbedError> {
        let meta = std::fs::metadata(dir).map_err(|e| TestbedError::io(dir, e))?;
        let dev = meta.dev();
        let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        let stat = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
        if !stat.is_file() {
            return Err(TestbedError::NotOnBlockDevice {
                dir: dir.to_path_buf(),
                device: format!("{major}:{minor}"),
            });
        }
        Ok(BlockDevice { stat })
    }

    /// The whole disk's `major:minor` (the device itself, or the disk a partition is on):
    /// what a cgroup's read throttle names.
    ///
    /// ```no_run
    /// let disk = vibra_lab::testbed::BlockDevice::of_dir(std::path::Path::new("/"))?;
    /// assert!(disk.whole_disk()?.contains(':'));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn whole_disk(&self) -> Result<String, TestbedError> {
        // /sys/dev/block/M:m is a link to the device's folder; a partition's folder holds a
        // `partition` file and sits in its disk's folder.
        let dir = self.stat.parent().unwrap_or(Path::new("/"));
        let dir = std::fs::canonicalize(dir).map_err(|e| TestbedError::io(dir, e))?;
        let disk = if dir.join("partition").is_file() {
            dir.parent().unwrap_or(&dir).to_path_buf()
        } else {
            dir
        };
        let dev = disk.join("dev");
        let text = std::fs::read_to_string(&dev).map_err(|e| TestbedError::io(&dev, e))?;
        Ok(text.trim().to_string())
    }

    /// The `stat` file read.
    ///
    /// ```no_run
    /// let disk = vibra_lab::testbed::BlockDevice::of_dir(std::path::Path::new("/"))?;
    /// assert!(disk.stat_path().starts_with("/sys/dev/block"));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn stat_path(&self) -> &Path {
        &self.stat
    }

    /// Bytes read from the device since boot (sectors read x 512).
    ///
    /// ```no_run
    /// let disk = vibra_lab::testbed::BlockDevice::of_dir(std::path::Path::new("/"))?;
    /// let before = disk.read_bytes()?;
    /// assert!(disk.read_bytes()? >= before);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn read_bytes(&self) -> Result<u64, TestbedError> {
        let text =
            std::fs::read_to_string(&self.stat).map_err(|e| TestbedError::io(&self.stat, e))?;
        sectors_read(&text)
            .map(|s| s * SECTOR_BYTES)
            .ok_or_else(|| TestbedError::Parse {
                what: self.stat.display().to_string(),
                text,
            })
    }
}

/// Field 3 of a block `stat` line: sectors read.
fn sectors_read(text: &str) -> Option<u64> {
    text.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_third_field_is_sectors_read() {
        let line = "  164905    54123  9753214    74210   339251   329720 15372048  1208340 0 410000 1290000";
        assert_eq!(sectors_read(line), Some(9_753_214));
        assert_eq!(sectors_read("1 2"), None);
        assert_eq!(sectors_read("1 2 x"), None);
    }
}
