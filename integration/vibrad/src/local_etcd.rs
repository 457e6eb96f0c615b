//! A local etcd member started as a child process (Debian's `etcd-server`): the directory
//! for experiments on one machine (vibra-lab's live DPS cluster) and for vibrad's own tests.
//!
//! [`EtcdMember`] is one member's command line (name, data folder, client and peer URLs, the
//! initial cluster); [`LocalEtcd`] is a running one, killed and its data folder removed when
//! dropped. A production cluster is run by its operator, not by vibrad: this is for a
//! directory that lives as long as one experiment.
//!
//! ```no_run
//! use std::time::Duration;
//! use vibrad::kv::Kv as _;
//! use vibrad::local_etcd::EtcdMember;
//! let dir = std::env::temp_dir().join("my-experiment-etcd");
//! let etcd = EtcdMember::single("exp1", &dir, 23790).start(Duration::from_secs(15))?;
//! etcd.kv().put("/hello", "world", None)?;
//! # Ok::<(), vibrad::Error>(())
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kv::{EtcdKv, Kv as _};
use crate::{Error, Result};

/// How long a client request to a local member may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// One etcd member's command line. Ports are the caller's choice (pick them below the
/// kernel's ephemeral range so that no outgoing connection holds them).
///
/// ```
/// use vibrad::local_etcd::EtcdMember;
/// let m = EtcdMember::single("exp1", "/tmp/exp1-etcd".as_ref(), 23790);
/// assert_eq!(m.client_url(), "http://127.0.0.1:23790");
/// assert!(m.args().contains(&"exp1=http://127.0.0.1:23791".to_string()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    name: String,
    data_dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    extra_clients: Vec<Ipv4Addr>,
    initial_cluster: String,
    token: Option<String>,
}

impl EtcdMember {
    /// A single-member cluster named `name`, its data in `data_dir`, clients on
    /// `127.0.0.1:client_port`, peers on `client_port + 1`.
    ///
    /// ```
    /// let m = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000);
    /// assert_eq!(m.name(), "a");
    /// ```
    pub fn single(name: &str, data_dir: &Path, client_port: u16) -> EtcdMember {
        let peer_port = client_port.wrapping_add(1);
        let initial = format!("{name}=http://127.0.0.1:{peer_port}");
        EtcdMember {
            token: None,
            ..EtcdMember::member(name, data_dir, client_port, peer_port, &initial, "")
        }
    }

    /// Member `name` of a cluster whose members (this one among them) are `initial`
    /// (`name=http://127.0.0.1:peer_port`, comma-separated), with the cluster's `token`.
    ///
    /// ```
    /// use vibrad::local_etcd::EtcdMember;
    /// let m = EtcdMember::member("m0", "/tmp/m0".as_ref(), 24000, 24001, "m0=http://127.0.0.1:24001", "t");
    /// assert!(m.args().contains(&"--initial-cluster-token".to_string()));
    /// ```
    pub fn member(
        name: &str,
        data_dir: &Path,
        client_port: u16,
        peer_port: u16,
        initial: &str,
        token: &str,
    ) -> EtcdMember {
        EtcdMember {
            name: name.to_string(),
            data_dir: data_dir.to_path_buf(),
            client_port,
            peer_port,
            extra_clients: Vec::new(),
            initial_cluster: initial.to_string(),
            token: Some(token.to_string()),
        }
    }

    /// Also serves clients on these addresses (same port), e.g. the root ends of veths to
    /// other network namespaces.
    ///
    /// ```
    /// use vibrad::local_etcd::EtcdMember;
    /// let m = EtcdMember::single("a", "/tmp/a".as_ref(), 24000).serving_also(&["10.0.0.1".parse().unwrap()]);
    /// assert_eq!(m.client_urls()[1], "http://10.0.0.1:24000");
    /// ```
    pub fn serving_also(mut self, extra: &[Ipv4Addr]) -> EtcdMember {
        self.extra_clients = extra.to_vec();
        self
    }

    /// The member's name.
    ///
    /// ```
    /// assert_eq!(vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000).name(), "a");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The loopback client URL (the one advertised).
    ///
    /// ```
    /// let m = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000);
    /// assert_eq!(m.client_url(), "http://127.0.0.1:24000");
    /// ```
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Every client URL: loopback, then each extra address on the same port.
    ///
    /// ```
    /// let m = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000);
    /// assert_eq!(m.client_urls(), vec!["http://127.0.0.1:24000".to_string()]);
    /// ```
    pub fn client_urls(&self) -> Vec<String> {
        std::iter::once(self.client_url())
            .chain(
                self.extra_clients
                    .iter()
                    .map(|ip| format!("http://{ip}:{}", self.client_port)),
            )
            .collect()
    }

    /// The client URL on `ip` (one of the extra addresses).
    ///
    /// ```
    /// let m = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000);
    /// assert_eq!(m.client_url_on("10.1.0.1".parse().unwrap()), "http://10.1.0.1:24000");
    /// ```
    pub fn client_url_on(&self, ip: Ipv4Addr) -> String {
        format!("http://{ip}:{}", self.client_port)
    }

    /// The member's data folder.
    ///
    /// ```
    /// let m = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000);
    /// assert_eq!(m.data_dir(), std::path::Path::new("/tmp/a"));
    /// ```
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The arguments given to `etcd`.
    ///
    /// ```
    /// let m = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000);
    /// assert_eq!(m.args()[0], "--name");
    /// ```
    pub fn args(&self) -> Vec<String> {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut a = vec![
            "--name".to_string(),
            self.name.clone(),
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
            "--listen-client-urls".to_string(),
            self.client_urls().join(","),
            "--advertise-client-urls".to_string(),
            self.client_url(),
            "--listen-peer-urls".to_string(),
            peer.clone(),
            "--initial-advertise-peer-urls".to_string(),
            peer,
            "--initial-cluster".to_string(),
            self.initial_cluster.clone(),
        ];
        if let Some(t) = &self.token {
            a.push("--initial-cluster-token".to_string());
            a.push(t.clone());
        }
        a
    }

    /// Spawns `etcd` with [`EtcdMember::args`] (output discarded) and returns at once: a
    /// member of a larger cluster is ready only once a quorum runs.
    ///
    /// Errors: [`Error::Io`] when `etcd` cannot be started (not installed: Debian's
    /// `etcd-server`).
    ///
    /// ```no_run
    /// let m = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000);
    /// let mut child = m.spawn()?;
    /// child.kill().ok();
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn spawn(&self) -> Result<Child> {
        Command::new("etcd")
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Io {
                what: "starting etcd (Debian's etcd-server)".into(),
                source,
            })
    }

    /// Starts the member on an empty data folder (whatever was there is removed) and waits
    /// up to `limit` for it to answer a read: for a single-member cluster.
    ///
    /// Errors: [`Error::Io`] when `etcd` cannot be started; [`Error::Etcd`] when it does not
    /// answer within `limit` (the process is then stopped and its folder removed).
    ///
    /// ```no_run
    /// let m = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000);
    /// let etcd = m.start(std::time::Duration::from_secs(15))?;
    /// println!("{}", etcd.url());
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn start(self, limit: Duration) -> Result<LocalEtcd> {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let child = self.spawn()?;
        let etcd = LocalEtcd {
            child,
            member: self,
        };
        let kv = etcd.kv();
        let t = Instant::now();
        loop {
            match kv.get("/ready") {
                Ok(_) => return Ok(etcd),
                Err(e) if t.elapsed() >= limit => {
                    return Err(Error::Etcd(format!(
                        "local member {} did not answer within {limit:?}: {e}",
                        etcd.url()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// A running single-member etcd: killed and its data folder removed when dropped.
///
/// ```no_run
/// let m = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000);
/// let etcd = m.start(std::time::Duration::from_secs(15))?;
/// drop(etcd); // process gone, /tmp/a removed
/// # Ok::<(), vibrad::Error>(())
/// ```
#[derive(Debug)]
pub struct LocalEtcd {
    child: Child,
    member: EtcdMember,
}

impl LocalEtcd {
    /// The client URL (loopback).
    ///
    /// ```no_run
    /// # let etcd = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000).start(std::time::Duration::from_secs(15))?;
    /// assert_eq!(etcd.url(), "http://127.0.0.1:24000");
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn url(&self) -> String {
        self.member.client_url()
    }

    /// The member it runs.
    ///
    /// ```no_run
    /// # let etcd = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000).start(std::time::Duration::from_secs(15))?;
    /// assert_eq!(etcd.member().name(), "a");
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn member(&self) -> &EtcdMember {
        &self.member
    }

    /// A client of it.
    ///
    /// ```no_run
    /// use vibrad::kv::Kv as _;
    /// # let etcd = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000).start(std::time::Duration::from_secs(15))?;
    /// etcd.kv().put("/k", "v", None)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn kv(&self) -> EtcdKv {
        EtcdKv::new(vec![self.url()], CLIENT_TIMEOUT)
    }

    /// The process id of the member.
    ///
    /// ```no_run
    /// # let etcd = vibrad::local_etcd::EtcdMember::single("a", "/tmp/a".as_ref(), 24000).start(std::time::Duration::from_secs(15))?;
    /// assert!(etcd.pid() > 0);
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.member.data_dir);
    }
}
