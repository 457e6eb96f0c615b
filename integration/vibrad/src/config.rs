//! vibrad's TOML configuration: parsed with toml's spanned tree so that one pass reports every
//! error (unknown keys included), each with its key path and line. serde's derive would stop at
//! the first error; `check-config` must list them all.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use vibra_alloc::{Alpha, ResourceKind};
use vibra_host::{LinkAddrs, UnitSize, VmSpec};

pub use crate::error::ConfigError;

/// The `[agent]` role's settings.
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
/// assert_eq!(c.agent.period.as_secs(), 3);
/// assert_eq!(c.agent.alpha.get(), 0.9);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// Re-division period (`period_s`, default 3 s as in the dissertation's section 3.5.3).
    pub period: Duration,
    /// EMA factor (`alpha`, default 0.9, SPEC section 5).
    pub alpha: Alpha,
    /// How long a replacement VM runs on its boot share before it gets the rest of its saved
    /// allocation back (`warmup_s`, default 0: at once; vibra-alloc's warm-up, 4.3.1).
    pub warmup: Duration,
}

/// Where the directory lives.
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
/// assert_eq!(c.directory, vibrad::config::DirectoryConfig::Memory);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryConfig {
    /// In this process (one host, the default).
    Memory,
    /// On etcd.
    Etcd {
        /// Client URLs (`http://host:port`).
        endpoints: Vec<String>,
        /// The host lease's TTL.
        lease_ttl: Duration,
    },
}

/// One resource kind of a customer: its pool and floor in units, and what a unit is.
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
/// assert_eq!(c.customers[0].kinds[0].pool, 10_000);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct KindSpec {
    /// The kind.
    pub kind: ResourceKind,
    /// The host-side size of one unit.
    pub unit: UnitSize,
    /// The customer's bound, in units.
    pub pool: u64,
    /// The least a live VM gets, in units (at least 1: no host setting means "nothing").
    pub floor: u64,
    /// The unit's size as configured (bytes/s, bytes, or units per CPU share).
    pub unit_size: u64,
}

/// A customer: its VMs' replication factor R and its pools.
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
/// assert_eq!(c.customers[0].name, "acme");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerConfig {
    /// Its name.
    pub name: String,
    /// SPEC section 4's R.
    pub replication: u32,
    /// One entry per configured kind.
    pub kinds: Vec<KindSpec>,
}

/// A VM: its customer, its host and optionally the command run inside it and its link.
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
/// assert_eq!(c.vms[1].host, "h1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Its name (a Linux cgroup/netns name).
    pub name: String,
    /// Its customer.
    pub customer: String,
    /// Its host.
    pub host: String,
    /// Started inside the VM (its network namespace and cgroups) by its host; empty: none.
    pub command: Vec<String>,
    /// Its veth link's addresses.
    pub link: Option<LinkAddrs>,
}

/// The whole configuration.
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
/// assert_eq!((c.host.as_str(), c.hosts.len(), c.customers.len()), ("h1", 1, 1));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// This host's name.
    pub host: String,
    /// The agent role.
    pub agent: AgentConfig,
    /// The directory.
    pub directory: DirectoryConfig,
    /// Key prefix in the directory (default `/vibra`).
    pub prefix: String,
    /// The Prometheus endpoint's address, if any.
    pub metrics: Option<SocketAddr>,
    /// The host controller this vibrad drives.
    pub backend: Backend,
    /// The parent cgroup of this host's VMs (Linux backend).
    pub cgroup_parent: String,
    /// `[linux] adopt`: this host's VMs already exist under `cgroup_parent` (made by another
    /// program, e.g. vibra-lab's testbed); vibrad adopts them by name (vibra-host's
    /// `LinuxHost::adopt_vm`) instead of creating them, and never kills or removes them.
    pub adopt: bool,
    /// Every host.
    pub hosts: Vec<String>,
    /// Every customer.
    pub customers: Vec<CustomerConfig>,
    /// Every VM, in the order that defines each customer's VM order (SPEC 4's cyclic order).
    pub vms: Vec<VmConfig>,
    /// The roles this process runs.
    pub roles: Roles,
    /// The `[dps]` section (present when the `dps` role is on).
    pub dps: Option<DpsConfig>,
}

/// The host controller of one vibrad (`backend = "linux"` or `"xen"`).
///
/// `"xen"` is accepted only by a vibrad built with the `xen` cargo feature; without it the
/// configuration check reports the `backend` key.
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
/// assert_eq!(c.backend, vibrad::config::Backend::Linux);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// vibra-host's `LinuxHost`: vibrad creates each VM (a cgroup and a network namespace)
    /// at start and removes it when it stops, or with `[linux] adopt = true` adopts the
    /// existing ones by name.
    Linux,
    /// vibra-host's `XenHost`, from Domain-0: vibrad adopts the running domains named by the
    /// VMs (a toolstack such as `xl` creates and destroys them).
    Xen,
}

/// The roles of one vibrad process (`roles = [...]`).
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
/// assert!(c.roles.agent && !c.roles.dps);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// The allocation loop.
    pub agent: bool,
    /// DPS share exchange.
    pub dps: bool,
}

/// How the hosts exchange share (SPEC 6).
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL_DPS).unwrap();
/// assert_eq!(c.dps.unwrap().mode, vibrad::config::DpsMode::Distributed);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpsMode {
    /// Fully distributed (eq. 5.1): each VM offers its upstream VMs part of its excess.
    Distributed,
    /// Bank-assisted (eq. 5.2): VMs deposit excess and report shortages to the bank, a role of
    /// the vibrad on the named host.
    Bank {
        /// The bank's host.
        host: String,
    },
}

/// A VM of the DPS program: its host, its MPI rank and its configured upstream VMs.
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL_DPS).unwrap();
/// assert_eq!(c.dps.unwrap().vms[0].upstreams, vec!["rank1".to_string()]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpsVm {
    /// Its name (a Linux cgroup name).
    pub name: String,
    /// Its host.
    pub host: String,
    /// Its MPI rank in the job (default: its position in `[[dps.vm]]`).
    pub rank: u32,
    /// The fallback topology: the VMs it waits on, used when no hook socket is configured.
    pub upstreams: Vec<String>,
}

/// The PMPI hook's socket and the job whose ranks the VMs run.
///
/// ```
/// let c = vibrad::config::Config::parse(&vibrad::config::MINIMAL_DPS.replace(
///     "[dps.peers]", "hook_socket = \"/run/vibrad/mpi.sock\"\njob = \"bsp\"\n[dps.peers]")).unwrap();
/// assert_eq!(c.dps.unwrap().hook.unwrap().job, "bsp");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookConfig {
    /// The Unix datagram socket the hook sends to (`VIBRA_MPI_SOCKET`).
    pub socket: std::path::PathBuf,
    /// The job id (`VIBRA_MPI_JOB`).
    pub job: String,
}

/// The `[dps]` role's settings.
///
/// ```
/// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL_DPS).unwrap();
/// let d = c.dps.unwrap();
/// assert_eq!(d.period.as_secs(), 5);
/// assert_eq!(d.vms.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DpsConfig {
    /// Exchange period T (`period_s`, default 5 s, the dissertation's).
    pub period: Duration,
    /// Fully distributed or bank-assisted.
    pub mode: DpsMode,
    /// This daemon's UDP address.
    pub listen: SocketAddr,
    /// The other hosts' daemons, by host name.
    pub peers: std::collections::BTreeMap<String, SocketAddr>,
    /// W: the program's total share in CPUs (each VM starts at W / N).
    pub total: f64,
    /// This host's CPUs available to shares (C_j).
    pub cpus: f64,
    /// CPUs of this host booked by load DPS does not move.
    pub background: f64,
    /// Reject an offer that does not fit whole, or accept up to the host's room.
    pub acceptance: dps_core::Acceptance,
    /// eq. 5.1's withholding factor; none: 1 / (P + 1).
    pub withhold: Option<f64>,
    /// A safeguard beyond the plain formulas (SPEC 6 allows it; dps-sim's
    /// `Safeguards::min_share_fraction`): a VM never offers or deposits share below this
    /// fraction of W / N (`min_share`, in [0, 1], default 0: the plain formulas). With a
    /// period shorter than an iteration, a VM that waited through one period would otherwise
    /// give its whole share away and then compute at almost nothing.
    pub min_share: f64,
    /// A safeguard beyond the plain formulas: an excess smaller than this fraction of the VM's
    /// share counts as none (`min_excess`, in [0, 1), default 0: the plain formulas). Use
    /// measured over a short period is noisy (CFS quota periods, wake-up latency): a VM that
    /// needs all of its share reads a few percent below it, and would otherwise give that away
    /// every period and compute on less until it came back.
    pub min_excess: f64,
    /// Bank mode: the bank caps each grant by the room its VM's host reported (dps-core's
    /// `CappedBanker`; `capped_grants`, default false: SPEC 6's plain rule, whose remainder
    /// also goes to VMs on full hosts, who send it back).
    pub capped_grants: bool,
    /// Also cap each VM at its share (cgroup `cpu.max`, Xen credit cap).
    pub cap: bool,
    /// The PMPI hook (else the configured upstreams).
    pub hook: Option<HookConfig>,
    /// Every VM of the program, on every host (the order gives their ids).
    pub vms: Vec<DpsVm>,
}

impl DpsConfig {
    /// Every host, sorted: a host's index in this list is its id on the wire.
    ///
    /// ```
    /// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL_DPS).unwrap();
    /// assert_eq!(c.dps.unwrap().hosts(), vec!["h1".to_string(), "h2".to_string()]);
    /// ```
    #[must_use]
    pub fn hosts(&self) -> Vec<String> {
        let mut h: BTreeSet<String> = self.peers.keys().cloned().collect();
        h.extend(self.vms.iter().map(|v| v.host.clone()));
        h.into_iter().collect()
    }
}

/// A small valid configuration (one host, one customer, two VMs), for examples and tests.
///
/// ```
/// assert!(vibrad::config::Config::parse(vibrad::config::MINIMAL).is_ok());
/// ```
pub const MINIMAL: &str = r#"host = "h1"
[[customer]]
name = "acme"
[customer.bandwidth]
pool_bytes_per_s = 10_000_000
[[vm]]
name = "acme-1"
customer = "acme"
host = "h1"
[[vm]]
name = "acme-2"
customer = "acme"
host = "h1"
"#;

/// A small valid dps-only configuration (two hosts, one VM each, fully distributed).
///
/// ```
/// assert!(vibrad::config::Config::parse(vibrad::config::MINIMAL_DPS).is_ok());
/// ```
pub const MINIMAL_DPS: &str = r#"host = "h1"
roles = ["dps"]
[dps]
listen = "127.0.0.1:7701"
total = 0.4
cpus = 1.0
background = 0.5
[dps.peers]
h2 = "127.0.0.1:7702"
[[dps.vm]]
name = "rank0"
host = "h1"
upstreams = ["rank1"]
[[dps.vm]]
name = "rank1"
host = "h2"
"#;

struct Ctx<'s> {
    src: &'s str,
    errors: Vec<ConfigError>,
}

type Val<'i> = Spanned<DeValue<'i>>;

impl Ctx<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.src.len());
        self.src[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn err(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let line = self.line(span);
        self.errors.push(ConfigError {
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Reports every key of `t` not in `allowed`.
    fn keys(&mut self, path: &str, t: &DeTable<'_>, allowed: &[&str]) {
        for k in t.keys() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                let key = join(path, k.get_ref());
                self.err(
                    &k.span(),
                    &key,
                    format!("unknown key (allowed here: {})", allowed.join(", ")),
                );
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

struct Table<'a, 'i> {
    path: String,
    span: Range<usize>,
    t: &'a DeTable<'i>,
}

impl<'a, 'i> Table<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.t.get(key)
    }

    fn required(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<&'a Val<'i>> {
        let v = self.get(key);
        if v.is_none() {
            ctx.err(&self.span, &join(&self.path, key), "missing required key");
        }
        v
    }

    fn str_of(&self, ctx: &mut Ctx<'_>, key: &str, v: &Val<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                ctx.err(
                    &v.span(),
                    &join(&self.path, key),
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn req_str(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<String> {
        let v = self.required(ctx, key)?;
        self.str_of(ctx, key, v)
    }

    fn opt_str(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<String> {
        let v = self.get(key)?;
        self.str_of(ctx, key, v)
    }

    /// A non-negative integer.
    fn opt_u64(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<u64> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    ctx.err(
                        &v.span(),
                        &join(&self.path, key),
                        format!("expected a non-negative integer below 2^64, found {i}"),
                    );
                    None
                }
            },
            other => {
                ctx.err(
                    &v.span(),
                    &join(&self.path, key),
                    format!("expected an integer, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A number (integer or float).
    fn opt_f64(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            ctx.err(
                &v.span(),
                &join(&self.path, key),
                format!("expected a number, found {}", v.get_ref().type_str()),
            );
        }
        parsed
    }

    fn opt_bool(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                ctx.err(
                    &v.span(),
                    &join(&self.path, key),
                    format!("expected true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn span_of(&self, key: &str) -> Range<usize> {
        self.get(key).map_or(self.span.clone(), Spanned::span)
    }

    fn sub(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Table<'a, 'i>> {
        let v = self.get(key)?;
        table_of(ctx, &join(&self.path, key), v)
    }

    /// An array of tables (`[[key]]`).
    fn tables(&self, ctx: &mut Ctx<'_>, key: &str) -> Vec<Table<'a, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        match v.get_ref() {
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    table_of(ctx, &format!("{}[{i}]", join(&self.path, key)), item)
                })
                .collect(),
            other => {
                ctx.err(
                    &v.span(),
                    &join(&self.path, key),
                    format!(
                        "expected an array of tables ([[{key}]]), found {}",
                        other.type_str()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn str_array(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Vec<String>> {
        let v = self.get(key)?;
        let DeValue::Array(a) = v.get_ref() else {
            ctx.err(
                &v.span(),
                &join(&self.path, key),
                format!(
                    "expected an array of strings, found {}",
                    v.get_ref().type_str()
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in a.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.to_string()),
                other => ctx.err(
                    &item.span(),
                    &format!("{}[{i}]", join(&self.path, key)),
                    format!("expected a string, found {}", other.type_str()),
                ),
            }
        }
        Some(out)
    }
}

fn table_of<'a, 'i>(ctx: &mut Ctx<'_>, path: &str, v: &'a Val<'i>) -> Option<Table<'a, 'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(Table {
            path: path.to_string(),
            span: v.span(),
            t,
        }),
        other => {
            ctx.err(
                &v.span(),
                path,
                format!("expected a table, found {}", other.type_str()),
            );
            None
        }
    }
}

/// How each kind's keys are named and turned into units.
struct KindKeys {
    table: &'static str,
    pool: &'static str,
    floor: &'static str,
    unit: &'static str,
    default_unit: u64,
}

const KINDS: [KindKeys; 3] = [
    KindKeys {
        table: "bandwidth",
        pool: "pool_bytes_per_s",
        floor: "floor_bytes_per_s",
        unit: "unit_bytes_per_s",
        default_unit: 1000,
    },
    KindKeys {
        table: "memory",
        pool: "pool_bytes",
        floor: "floor_bytes",
        unit: "unit_bytes",
        default_unit: 4096,
    },
    KindKeys {
        table: "cpu",
        pool: "pool_units",
        floor: "floor_units",
        unit: "units_per_share",
        default_unit: 10_000,
    },
];

fn kind_spec(ctx: &mut Ctx<'_>, t: &Table<'_, '_>, k: &KindKeys) -> Option<KindSpec> {
    ctx.keys(&t.path, t.t, &[k.pool, k.floor, k.unit]);
    let pool = t.required(ctx, k.pool).and(t.opt_u64(ctx, k.pool));
    let unit = t.opt_u64(ctx, k.unit).unwrap_or(k.default_unit);
    let floor = t.opt_u64(ctx, k.floor);
    let unit_key = join(&t.path, k.unit);
    let unit_span = t.get(k.unit).map_or(t.span.clone(), Spanned::span);
    if unit == 0 {
        ctx.err(&unit_span, &unit_key, "must be positive");
        return None;
    }
    let (kind, size) = match k.table {
        "bandwidth" => (
            ResourceKind::Bandwidth,
            UnitSize::bandwidth_bytes_per_sec(unit as f64),
        ),
        "memory" => (ResourceKind::Memory, UnitSize::memory_bytes(unit)),
        _ => (ResourceKind::Cpu, UnitSize::cpu_units_per_share(unit)),
    };
    let size = match size {
        Ok(s) => s,
        Err(e) => {
            ctx.err(&unit_span, &unit_key, e.to_string());
            return None;
        }
    };
    let pool = pool?;
    // The CPU kind counts in units already; the others are converted to whole units.
    let to_units = |v: u64| if k.table == "cpu" { v } else { v / unit };
    let pool_units = to_units(pool);
    let floor_units = floor.map_or(1, to_units);
    if floor_units == 0 {
        let span = t.get(k.floor).map_or(t.span.clone(), Spanned::span);
        ctx.err(
            &span,
            &join(&t.path, k.floor),
            format!("must be at least one unit ({unit}): a VM cannot be given nothing"),
        );
        return None;
    }
    if pool_units == 0 {
        let span = t.get(k.pool).map_or(t.span.clone(), Spanned::span);
        ctx.err(&span, &join(&t.path, k.pool), "must be at least one unit");
        return None;
    }
    Some(KindSpec {
        kind,
        unit: size,
        pool: pool_units,
        floor: floor_units,
        unit_size: unit,
    })
}

impl Config {
    /// Parses and checks a configuration. Errors: every problem found, in file order.
    ///
    /// ```
    /// let errs = vibrad::config::Config::parse("host = 1\n[agent]\nalpha = 2\n").unwrap_err();
    /// let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
    /// assert!(keys.contains(&"host") && keys.contains(&"agent.alpha"));
    /// ```
    pub fn parse(src: &str) -> Result<Config, Vec<ConfigError>> {
        let mut ctx = Ctx {
            src,
            errors: Vec::new(),
        };
        let (root, parse_errors) = DeTable::parse_recoverable(src);
        for e in &parse_errors {
            let span = e.span().unwrap_or(0..0);
            ctx.err(&span, "(syntax)", e.message().to_string());
        }
        let root_span = root.span();
        let root = Table {
            path: String::new(),
            span: root_span,
            t: root.get_ref(),
        };
        let cfg = build(&mut ctx, &root);
        let mut errors = ctx.errors;
        errors.sort_by_key(|e| e.line);
        match cfg {
            Some(c) if errors.is_empty() => Ok(c),
            _ => Err(errors),
        }
    }

    /// Reads and parses a file.
    ///
    /// ```
    /// assert!(vibrad::config::Config::load(std::path::Path::new("/nonexistent.toml")).is_err());
    /// ```
    pub fn load(path: &std::path::Path) -> crate::Result<Config> {
        let src = std::fs::read_to_string(path).map_err(|source| crate::Error::ReadConfig {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&src).map_err(crate::Error::Config)
    }

    /// The VMs of `customer`, in configuration order.
    ///
    /// ```
    /// let c = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
    /// assert_eq!(c.vms_of("acme").len(), 2);
    /// ```
    #[must_use]
    pub fn vms_of(&self, customer: &str) -> Vec<&VmConfig> {
        self.vms.iter().filter(|v| v.customer == customer).collect()
    }
}

fn build(ctx: &mut Ctx<'_>, root: &Table<'_, '_>) -> Option<Config> {
    ctx.keys(
        "",
        root.t,
        &[
            "host",
            "roles",
            "backend",
            "agent",
            "directory",
            "metrics",
            "linux",
            "customer",
            "vm",
            "dps",
        ],
    );
    let host = root.req_str(ctx, "host");
    // Roles: `agent` (the default) and `dps`, one per process.
    let mut roles = Roles {
        agent: true,
        dps: false,
    };
    if let Some(list) = root.str_array(ctx, "roles") {
        let span = root.span_of("roles");
        roles.agent = false;
        for r in &list {
            match r.as_str() {
                "agent" => roles.agent = true,
                "dps" => roles.dps = true,
                other => ctx.err(
                    &span,
                    "roles",
                    format!("unknown role {other:?} (known: \"agent\", \"dps\")"),
                ),
            }
        }
        if !roles.agent && !roles.dps {
            ctx.err(&span, "roles", "no role to run (\"agent\" or \"dps\")");
        }
        if roles.agent && roles.dps {
            ctx.err(
                &span,
                "roles",
                "one role per vibrad process: run the agent and the dps role as two processes",
            );
        }
    }
    if roles.dps && root.get("dps").is_none() {
        ctx.err(&root.span, "dps", "the dps role needs a [dps] section");
    }
    if !roles.dps
        && let Some(v) = root.get("dps")
    {
        ctx.err(&v.span(), "dps", "a [dps] section without the \"dps\" role");
    }
    // backend: which host controller.
    let mut backend = Backend::Linux;
    if let Some(b) = root.opt_str(ctx, "backend") {
        let span = root.span_of("backend");
        match b.as_str() {
            "linux" => {}
            "xen" if cfg!(feature = "xen") => backend = Backend::Xen,
            "xen" => ctx.err(
                &span,
                "backend",
                "\"xen\" needs a vibrad built with the `xen` feature (cargo build -p vibrad --features xen); this one has only \"linux\"",
            ),
            other => ctx.err(
                &span,
                "backend",
                format!("unknown backend {other:?} (known: \"linux\", \"xen\")"),
            ),
        }
    }
    if backend == Backend::Xen
        && let Some(v) = root.get("linux")
    {
        ctx.err(
            &v.span(),
            "linux",
            "[linux] applies to backend = \"linux\" only",
        );
    }
    let dps = root
        .sub(ctx, "dps")
        .and_then(|d| dps_section(ctx, &d, host.as_deref(), backend));

    // [agent]
    let mut period = Duration::from_secs(3);
    let mut alpha = Alpha::DISSERTATION;
    let mut warmup = Duration::ZERO;
    if let Some(a) = root.sub(ctx, "agent") {
        ctx.keys("agent", a.t, &["period_s", "alpha", "warmup_s"]);
        if let Some(w) = a.opt_f64(ctx, "warmup_s") {
            if w.is_finite() && (0.0..=86_400.0).contains(&w) {
                warmup = Duration::from_secs_f64(w);
            } else {
                ctx.err(
                    &a.get("warmup_s").map_or(a.span.clone(), Spanned::span),
                    "agent.warmup_s",
                    format!("must be in [0, 86400] seconds, found {w}"),
                );
            }
        }
        if let Some(p) = a.opt_f64(ctx, "period_s") {
            if p.is_finite() && p > 0.0 && p <= 3600.0 {
                period = Duration::from_secs_f64(p);
            } else {
                ctx.err(
                    &a.get("period_s").map_or(a.span.clone(), Spanned::span),
                    "agent.period_s",
                    format!("must be in (0, 3600] seconds, found {p}"),
                );
            }
        }
        if let Some(x) = a.opt_f64(ctx, "alpha") {
            match Alpha::new(x) {
                Ok(v) => alpha = v,
                Err(e) => ctx.err(
                    &a.get("alpha").map_or(a.span.clone(), Spanned::span),
                    "agent.alpha",
                    format!("{e} (must be in [0, 1])"),
                ),
            }
        }
    }

    // [directory]
    let mut directory = DirectoryConfig::Memory;
    let mut prefix = "/vibra".to_string();
    if let Some(d) = root.sub(ctx, "directory") {
        ctx.keys(
            "directory",
            d.t,
            &["backend", "endpoints", "lease_ttl_s", "prefix"],
        );
        let backend = d.opt_str(ctx, "backend").unwrap_or_else(|| "memory".into());
        let endpoints = d.str_array(ctx, "endpoints").unwrap_or_default();
        let ttl = d.opt_u64(ctx, "lease_ttl_s").unwrap_or(10);
        if let Some(p) = d.opt_str(ctx, "prefix") {
            if p.starts_with('/') && !p.ends_with('/') && p.len() > 1 {
                prefix = p;
            } else {
                ctx.err(
                    &d.get("prefix").map_or(d.span.clone(), Spanned::span),
                    "directory.prefix",
                    "must start with '/' and not end with it",
                );
            }
        }
        let bspan = d.get("backend").map_or(d.span.clone(), Spanned::span);
        match backend.as_str() {
            "memory" => {}
            "etcd" => {
                if endpoints.is_empty() {
                    ctx.err(
                        &d.span,
                        "directory.endpoints",
                        "the etcd backend needs at least one endpoint",
                    );
                }
                for (i, e) in endpoints.iter().enumerate() {
                    if !e.starts_with("http://") {
                        ctx.err(
                            &d.get("endpoints").map_or(d.span.clone(), Spanned::span),
                            &format!("directory.endpoints[{i}]"),
                            format!("{e:?}: expected http://host:port"),
                        );
                    }
                }
                if !(2..=3600).contains(&ttl) {
                    ctx.err(
                        &d.get("lease_ttl_s").map_or(d.span.clone(), Spanned::span),
                        "directory.lease_ttl_s",
                        "must be 2 to 3600 seconds",
                    );
                }
                directory = DirectoryConfig::Etcd {
                    endpoints,
                    lease_ttl: Duration::from_secs(ttl),
                };
            }
            other => ctx.err(
                &bspan,
                "directory.backend",
                format!("{other:?}: expected \"memory\" or \"etcd\""),
            ),
        }
    }

    // [metrics]
    let mut metrics = None;
    if let Some(m) = root.sub(ctx, "metrics") {
        ctx.keys("metrics", m.t, &["listen"]);
        if let Some(l) = m.opt_str(ctx, "listen") {
            match l.parse::<SocketAddr>() {
                Ok(a) => metrics = Some(a),
                Err(e) => ctx.err(
                    &m.get("listen").map_or(m.span.clone(), Spanned::span),
                    "metrics.listen",
                    format!("{l:?}: {e} (expected ip:port)"),
                ),
            }
        }
    }

    // [linux]
    let mut cgroup_parent = "vibrad".to_string();
    let mut adopt = false;
    if let Some(l) = root.sub(ctx, "linux") {
        ctx.keys("linux", l.t, &["cgroup_parent", "adopt"]);
        if let Some(p) = l.opt_str(ctx, "cgroup_parent") {
            cgroup_parent = p;
        }
        adopt = l.opt_bool(ctx, "adopt").unwrap_or(false);
    }

    // [[host]] is not a key: hosts are named by the VMs and `host`; gather them.
    let mut customers = Vec::new();
    let mut cnames = BTreeSet::new();
    for c in root.tables(ctx, "customer") {
        ctx.keys(
            &c.path,
            c.t,
            &["name", "replication", "bandwidth", "memory", "cpu"],
        );
        let name = c.req_str(ctx, "name");
        let replication = c.opt_u64(ctx, "replication").unwrap_or(1);
        let mut kinds = Vec::new();
        for k in &KINDS {
            if let Some(t) = c.sub(ctx, k.table)
                && let Some(spec) = kind_spec(ctx, &t, k)
            {
                kinds.push(spec);
            }
        }
        if !KINDS.iter().any(|k| c.get(k.table).is_some()) {
            ctx.err(
                &c.span,
                &c.path,
                "a customer needs at least one of [bandwidth], [memory], [cpu]",
            );
        }
        if let Some(name) = name {
            if !cnames.insert(name.clone()) {
                ctx.err(
                    &c.get("name").map_or(c.span.clone(), Spanned::span),
                    &join(&c.path, "name"),
                    format!("customer {name:?} is defined twice"),
                );
            }
            let replication = match u32::try_from(replication) {
                Ok(r) if r >= 1 => r,
                _ => {
                    ctx.err(
                        &c.get("replication").map_or(c.span.clone(), Spanned::span),
                        &join(&c.path, "replication"),
                        "must be at least 1",
                    );
                    1
                }
            };
            customers.push((
                c.span.clone(),
                c.path.clone(),
                CustomerConfig {
                    name,
                    replication,
                    kinds,
                },
            ));
        }
    }

    let mut vms = Vec::new();
    let mut vnames = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for v in root.tables(ctx, "vm") {
        ctx.keys(
            &v.path,
            v.t,
            &[
                "name",
                "customer",
                "host",
                "command",
                "host_ip",
                "vm_ip",
                "prefix_len",
            ],
        );
        let name = v.req_str(ctx, "name");
        let customer = v.req_str(ctx, "customer");
        let vhost = v.req_str(ctx, "host");
        let command = v.str_array(ctx, "command").unwrap_or_default();
        let span = |k: &str| v.get(k).map_or(v.span.clone(), Spanned::span);
        let ip = |ctx: &mut Ctx<'_>, k: &str| -> Option<Ipv4Addr> {
            let s = v.opt_str(ctx, k)?;
            match s.parse() {
                Ok(a) => Some(a),
                Err(e) => {
                    ctx.err(&span(k), &join(&v.path, k), format!("{s:?}: {e}"));
                    None
                }
            }
        };
        let host_ip = ip(ctx, "host_ip");
        let vm_ip = ip(ctx, "vm_ip");
        let prefix_len = v.opt_u64(ctx, "prefix_len").unwrap_or(30);
        let link = match (host_ip, vm_ip) {
            (Some(h), Some(m)) => match u8::try_from(prefix_len)
                .ok()
                .and_then(|p| LinkAddrs::new(h, m, p))
            {
                Some(l) => Some(l),
                None => {
                    ctx.err(&span("prefix_len"), &join(&v.path, "prefix_len"), "host_ip, vm_ip and prefix_len do not make a valid link (distinct addresses in one subnet, prefix 1-30)");
                    None
                }
            },
            (None, None) => None,
            _ => {
                ctx.err(&v.span, &v.path, "host_ip and vm_ip go together");
                None
            }
        };
        let (Some(name), Some(customer), Some(vhost)) = (name, customer, vhost) else {
            continue;
        };
        check_vm_name(ctx, backend, &span("name"), &join(&v.path, "name"), &name);
        if backend == Backend::Xen {
            for k in ["command", "host_ip", "vm_ip", "prefix_len"] {
                if v.get(k).is_some() {
                    ctx.err(
                        &span(k),
                        &join(&v.path, k),
                        "backend = \"xen\" adopts domains a toolstack created: vibrad starts no command and makes no link in them",
                    );
                }
            }
        }
        if adopt && host.as_ref() == Some(&vhost) {
            for (k, set) in [
                ("command", !command.is_empty()),
                ("host_ip", v.get("host_ip").is_some()),
                ("vm_ip", v.get("vm_ip").is_some()),
            ] {
                if set {
                    ctx.err(
                        &span(k),
                        &join(&v.path, k),
                        "this host adopts its VMs ([linux] adopt = true): their creator starts their commands and makes their links",
                    );
                }
            }
        }
        if !vnames.insert(name.clone()) {
            ctx.err(
                &span("name"),
                &join(&v.path, "name"),
                format!("VM {name:?} is defined twice"),
            );
        }
        if !cnames.contains(&customer) {
            ctx.err(
                &span("customer"),
                &join(&v.path, "customer"),
                format!("no customer named {customer:?}"),
            );
        }
        hosts.insert(vhost.clone());
        vms.push(VmConfig {
            name,
            customer,
            host: vhost,
            command,
            link,
        });
    }

    let mut out_customers = Vec::new();
    for (span, path, c) in customers {
        let n = vms.iter().filter(|v| v.customer == c.name).count();
        if n == 0 {
            ctx.err(&span, &path, format!("customer {:?} has no VM", c.name));
            continue;
        }
        if c.replication as usize > n {
            ctx.err(
                &span,
                &join(&path, "replication"),
                format!("R = {} but the customer has {n} VMs", c.replication),
            );
        }
        for k in &c.kinds {
            if u128::from(k.floor) * n as u128 > u128::from(k.pool) {
                ctx.err(
                    &span,
                    &format!("{path}.{}", k.kind),
                    format!(
                        "{n} VMs x floor {} units exceed the pool of {} units",
                        k.floor, k.pool
                    ),
                );
            }
        }
        out_customers.push(c);
    }
    if let Some(h) = &host
        && roles.agent
        && !hosts.contains(h)
    {
        ctx.err(
            &root.get("host").map_or(0..0, Spanned::span),
            "host",
            format!(
                "no VM is on host {h:?} (hosts named by VMs: {})",
                hosts.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    Some(Config {
        host: host?,
        agent: AgentConfig {
            period,
            alpha,
            warmup,
        },
        directory,
        prefix,
        metrics,
        backend,
        cgroup_parent,
        adopt,
        hosts: hosts.into_iter().collect(),
        customers: out_customers,
        vms,
        roles,
        dps,
    })
}

/// A number in a range, with the error naming the key.
fn num_in(
    ctx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    key: &str,
    ok: impl Fn(f64) -> bool,
    what: &str,
) -> Option<f64> {
    let x = t.opt_f64(ctx, key)?;
    if x.is_finite() && ok(x) {
        Some(x)
    } else {
        ctx.err(
            &t.span_of(key),
            &join(&t.path, key),
            format!("must be {what}, found {x}"),
        );
        None
    }
}

fn socket_addr(ctx: &mut Ctx<'_>, t: &Table<'_, '_>, key: &str, v: &Val<'_>) -> Option<SocketAddr> {
    let s = t.str_of(ctx, key, v)?;
    match s.parse() {
        Ok(a) => Some(a),
        Err(e) => {
            ctx.err(
                &v.span(),
                &join(&t.path, key),
                format!("{s:?}: {e} (expected ip:port)"),
            );
            None
        }
    }
}

/// A VM name the backend can use: a Linux cgroup/netns name (vibra-host's `VmSpec`), or a Xen
/// domain name (not empty, no NUL or `/`: `xl` refuses neither, xenstore paths would break).
fn check_vm_name(ctx: &mut Ctx<'_>, backend: Backend, span: &Range<usize>, key: &str, name: &str) {
    match backend {
        Backend::Linux => {
            if let Err(e) = VmSpec::new(name) {
                ctx.err(span, key, e.to_string());
            }
        }
        Backend::Xen => {
            if name.is_empty() || name.contains(['\0', '/']) {
                ctx.err(span, key, format!("{name:?} is not a Xen domain name"));
            }
        }
    }
}

fn dps_section(
    ctx: &mut Ctx<'_>,
    d: &Table<'_, '_>,
    me: Option<&str>,
    backend: Backend,
) -> Option<DpsConfig> {
    ctx.keys(
        "dps",
        d.t,
        &[
            "period_s",
            "mode",
            "bank",
            "listen",
            "peers",
            "total",
            "cpus",
            "background",
            "acceptance",
            "withhold",
            "min_share",
            "min_excess",
            "capped_grants",
            "cap",
            "hook_socket",
            "job",
            "vm",
        ],
    );
    let period = num_in(
        ctx,
        d,
        "period_s",
        |p| p > 0.0 && p <= 3600.0,
        "in (0, 3600] seconds",
    )
    .map_or(Duration::from_secs(5), Duration::from_secs_f64);
    let listen = d
        .required(ctx, "listen")
        .and_then(|v| socket_addr(ctx, d, "listen", v));
    let total = d.required(ctx, "total").and(num_in(
        ctx,
        d,
        "total",
        |x| x > 0.0 && x <= 65_536.0,
        "in (0, 65536] CPUs",
    ));
    let cpus = d.required(ctx, "cpus").and(num_in(
        ctx,
        d,
        "cpus",
        |x| x > 0.0 && x <= 65_536.0,
        "in (0, 65536] CPUs",
    ));
    let background =
        num_in(ctx, d, "background", |x| x >= 0.0, "a finite number >= 0").unwrap_or(0.0);
    if let Some(c) = cpus
        && background >= c
    {
        ctx.err(
            &d.span_of("background"),
            "dps.background",
            format!("{background} leaves nothing of the host's {c} CPUs"),
        );
    }
    let withhold = num_in(
        ctx,
        d,
        "withhold",
        |x| (0.0..=1.0).contains(&x),
        "in [0, 1]",
    );
    let min_share = num_in(
        ctx,
        d,
        "min_share",
        |x| (0.0..=1.0).contains(&x),
        "in [0, 1] (a fraction of W / N)",
    )
    .unwrap_or(0.0);
    let min_excess = num_in(
        ctx,
        d,
        "min_excess",
        |x| (0.0..1.0).contains(&x),
        "in [0, 1) (a fraction of the VM's share)",
    )
    .unwrap_or(0.0);
    let capped_grants = d.opt_bool(ctx, "capped_grants").unwrap_or(false);
    let cap = d.opt_bool(ctx, "cap").unwrap_or(false);
    let acceptance = match d.opt_str(ctx, "acceptance").as_deref() {
        None | Some("up_to_room") => dps_core::Acceptance::UpToRoom,
        Some("whole") => dps_core::Acceptance::Whole,
        Some(other) => {
            ctx.err(
                &d.span_of("acceptance"),
                "dps.acceptance",
                format!("{other:?}: expected \"up_to_room\" or \"whole\""),
            );
            dps_core::Acceptance::UpToRoom
        }
    };
    let mut peers = std::collections::BTreeMap::new();
    if let Some(p) = d.sub(ctx, "peers") {
        for (k, v) in p.t.iter() {
            let name = k.get_ref().to_string();
            if Some(name.as_str()) == me {
                ctx.err(
                    &k.span(),
                    &join("dps.peers", &name),
                    "this host is not its own peer",
                );
            }
            if let Some(a) = socket_addr(ctx, &p, &name, v) {
                peers.insert(name, a);
            }
        }
    }
    let hook_socket = d.opt_str(ctx, "hook_socket");
    let job = d.opt_str(ctx, "job");
    let hook = match (hook_socket, job) {
        (Some(s), Some(j)) => {
            if !s.starts_with('/') {
                ctx.err(
                    &d.span_of("hook_socket"),
                    "dps.hook_socket",
                    "must be an absolute path",
                );
            }
            Some(HookConfig {
                socket: s.into(),
                job: j,
            })
        }
        (None, None) => None,
        (Some(_), None) => {
            ctx.err(
                &d.span,
                "dps.job",
                "hook_socket needs the job id (VIBRA_MPI_JOB) of the ranks",
            );
            None
        }
        (None, Some(_)) => {
            ctx.err(&d.span_of("job"), "dps.job", "job without hook_socket");
            None
        }
    };

    let mut vms: Vec<DpsVm> = Vec::new();
    let mut spans = Vec::new();
    let mut ranks = BTreeSet::new();
    for (i, v) in d.tables(ctx, "vm").into_iter().enumerate() {
        ctx.keys(&v.path, v.t, &["name", "host", "rank", "upstreams"]);
        let name = v.req_str(ctx, "name");
        let host = v.req_str(ctx, "host");
        let rank = v.opt_u64(ctx, "rank").unwrap_or(i as u64);
        let upstreams = v.str_array(ctx, "upstreams").unwrap_or_default();
        let (Some(name), Some(host)) = (name, host) else {
            continue;
        };
        check_vm_name(
            ctx,
            backend,
            &v.span_of("name"),
            &join(&v.path, "name"),
            &name,
        );
        if vms.iter().any(|x| x.name == name) {
            ctx.err(
                &v.span_of("name"),
                &join(&v.path, "name"),
                format!("VM {name:?} is defined twice"),
            );
        }
        let rank = match u32::try_from(rank) {
            Ok(r) if ranks.insert(r) => r,
            _ => {
                ctx.err(
                    &v.span_of("rank"),
                    &join(&v.path, "rank"),
                    format!("rank {rank} is taken or too large"),
                );
                0
            }
        };
        if Some(host.as_str()) != me && !peers.contains_key(&host) {
            ctx.err(
                &v.span_of("host"),
                &join(&v.path, "host"),
                format!("host {host:?} is neither this host nor in [dps.peers]"),
            );
        }
        spans.push((v.path.clone(), v.span_of("upstreams")));
        vms.push(DpsVm {
            name,
            host,
            rank,
            upstreams,
        });
    }
    for (v, (path, span)) in vms.iter().zip(&spans) {
        for (j, u) in v.upstreams.iter().enumerate() {
            if *u == v.name || !vms.iter().any(|x| x.name == *u) {
                ctx.err(
                    span,
                    &format!("{path}.upstreams[{j}]"),
                    format!("{u:?} is not another VM of [[dps.vm]]"),
                );
            }
        }
    }
    if let Some(me) = me
        && !vms.iter().any(|v| v.host == me)
    {
        ctx.err(
            &d.span,
            "dps.vm",
            format!("no [[dps.vm]] is on this host {me:?}"),
        );
    }
    if vms.is_empty() {
        ctx.err(
            &d.span,
            "dps.vm",
            "the program needs at least one [[dps.vm]]",
        );
    }
    let mode = match d.opt_str(ctx, "mode").as_deref() {
        None | Some("distributed") => {
            if d.get("bank").is_some() {
                ctx.err(&d.span_of("bank"), "dps.bank", "only with mode = \"bank\"");
            }
            DpsMode::Distributed
        }
        Some("bank") => match d.opt_str(ctx, "bank") {
            Some(b) if Some(b.as_str()) == me || peers.contains_key(&b) => {
                DpsMode::Bank { host: b }
            }
            Some(b) => {
                ctx.err(
                    &d.span_of("bank"),
                    "dps.bank",
                    format!("{b:?} is neither this host nor in [dps.peers]"),
                );
                DpsMode::Distributed
            }
            None => {
                ctx.err(&d.span, "dps.bank", "mode = \"bank\" needs the bank's host");
                DpsMode::Distributed
            }
        },
        Some(other) => {
            ctx.err(
                &d.span_of("mode"),
                "dps.mode",
                format!("{other:?}: expected \"distributed\" or \"bank\""),
            );
            DpsMode::Distributed
        }
    };
    if peers.len() + 1 > usize::from(u16::MAX) {
        ctx.err(&d.span, "dps.peers", "too many hosts");
    }
    Some(DpsConfig {
        period,
        mode,
        listen: listen?,
        peers,
        total: total?,
        cpus: cpus?,
        background,
        acceptance,
        withhold,
        min_share,
        min_excess,
        capped_grants,
        cap,
        hook,
        vms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_parses_with_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.agent.period, Duration::from_secs(3));
        assert_eq!(c.customers[0].kinds[0].floor, 1);
        assert_eq!(c.customers[0].replication, 1);
        assert_eq!(c.prefix, "/vibra");
    }

    #[test]
    fn every_error_is_reported_with_key_and_line() {
        let src = r#"host = "h1"
colour = "blue"
[agent]
period_s = -1
alpha = 1.5
speed = 3
[[customer]]
name = "acme"
replication = 5
[customer.bandwidth]
pool_bytes_per_s = "lots"
[[vm]]
name = "a vm"
customer = "nobody"
host = "h1"
"#;
        let errs = Config::parse(src).unwrap_err();
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.key.as_str())).collect();
        for want in [
            (2, "colour"),
            (4, "agent.period_s"),
            (5, "agent.alpha"),
            (6, "agent.speed"),
            (11, "customer[0].bandwidth.pool_bytes_per_s"),
            (13, "vm[0].name"),
            (14, "vm[0].customer"),
        ] {
            assert!(got.contains(&want), "missing {want:?} in {got:?}");
        }
    }

    #[test]
    fn floors_over_the_pool_and_r_over_n_are_errors() {
        let src = MINIMAL
            .replace(
                "pool_bytes_per_s = 10_000_000",
                "pool_bytes_per_s = 10_000\nfloor_bytes_per_s = 6_000",
            )
            .replace(
                "name = \"acme\"\n[customer",
                "name = \"acme\"\nreplication = 3\n[customer",
            );
        let errs = Config::parse(&src).unwrap_err();
        assert!(
            errs.iter().any(|e| e.key == "customer[0].bandwidth"),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.key == "customer[0].replication"),
            "{errs:?}"
        );
    }

    #[test]
    fn adopted_vms_take_no_command_or_link() {
        let c = Config::parse(&format!("{MINIMAL}[linux]\nadopt = true\n")).unwrap();
        assert!(c.adopt);
        assert!(!Config::parse(MINIMAL).unwrap().adopt);
        let src = MINIMAL.replace(
            "name = \"acme-2\"",
            "name = \"acme-2\"\ncommand = [\"nginx\"]\nhost_ip = \"10.0.0.1\"\nvm_ip = \"10.0.0.2\"",
        ) + "[linux]\nadopt = true\n";
        let errs = Config::parse(&src).unwrap_err();
        for key in ["vm[1].command", "vm[1].host_ip", "vm[1].vm_ip"] {
            assert!(
                errs.iter().any(|e| e.key == key),
                "{key} missing in {errs:?}"
            );
        }
        let errs = Config::parse(&format!("{MINIMAL}[linux]\nadopt = 1\n")).unwrap_err();
        assert!(errs.iter().any(|e| e.key == "linux.adopt"), "{errs:?}");
    }

    #[test]
    fn roles_are_checked() {
        assert!(Config::parse(&format!("roles = [\"agent\"]\n{MINIMAL}")).is_ok());
        let errs = Config::parse(&format!("roles = [\"dps\"]\n{MINIMAL}")).unwrap_err();
        assert!(
            errs.iter().any(|e| e.key == "dps" && e.line == 1),
            "{errs:?}"
        );
        let errs =
            Config::parse(&format!("roles = [\"agent\", \"dps\", \"x\"]\n{MINIMAL}")).unwrap_err();
        assert_eq!(
            errs.iter().filter(|e| e.key == "roles").count(),
            2,
            "{errs:?}"
        );
    }

    #[test]
    fn dps_minimal_parses_with_defaults() {
        let c = Config::parse(MINIMAL_DPS).unwrap();
        assert!(c.roles.dps && !c.roles.agent);
        let d = c.dps.unwrap();
        assert_eq!(d.period, Duration::from_secs(5));
        assert_eq!(d.mode, DpsMode::Distributed);
        assert_eq!(d.acceptance, dps_core::Acceptance::UpToRoom);
        assert_eq!((d.vms[0].rank, d.vms[1].rank), (0, 1));
        assert!(d.hook.is_none() && !d.cap && d.withhold.is_none());
        assert_eq!(d.min_share, 0.0);
        assert_eq!(d.min_excess, 0.0);
        assert!(!d.capped_grants);
    }

    #[test]
    fn min_share_is_a_fraction_of_w_over_n() {
        let with = |v: &str| MINIMAL_DPS.replace("[dps]\n", &format!("[dps]\nmin_share = {v}\n"));
        assert!(
            with("0.5").contains("min_share = 0.5"),
            "MINIMAL_DPS has a [dps] line"
        );
        assert_eq!(
            Config::parse(&with("0.5")).unwrap().dps.unwrap().min_share,
            0.5
        );
        for bad in ["1.5", "-0.1", "\"half\""] {
            let errs = Config::parse(&with(bad)).unwrap_err();
            assert!(
                errs.iter().any(|e| e.key == "dps.min_share"),
                "{bad}: {errs:?}"
            );
        }
    }

    #[test]
    fn min_excess_is_a_fraction_below_one() {
        let with = |v: &str| MINIMAL_DPS.replace("[dps]\n", &format!("[dps]\nmin_excess = {v}\n"));
        assert_eq!(
            Config::parse(&with("0.1")).unwrap().dps.unwrap().min_excess,
            0.1
        );
        for bad in ["1", "1.5", "-0.1", "\"some\""] {
            let errs = Config::parse(&with(bad)).unwrap_err();
            assert!(
                errs.iter().any(|e| e.key == "dps.min_excess"),
                "{bad}: {errs:?}"
            );
        }
    }

    #[test]
    fn every_dps_error_is_reported_with_key_and_line() {
        let src = r#"host = "h1"
roles = ["dps"]
[dps]
period_s = 0
mode = "bank"
bank = "h9"
listen = "nowhere"
total = -1
cpus = 1.0
background = 2.0
acceptance = "some"
withhold = 1.5
cap = "yes"
hook_socket = "relative.sock"
job = "bsp"
speed = 1
[dps.peers]
h2 = "127.0.0.1:99999"
h1 = "127.0.0.1:7000"
[[dps.vm]]
name = "rank0"
host = "h1"
upstreams = ["rank0", "ghost"]
colour = "red"
[[dps.vm]]
name = "rank1"
host = "h3"
rank = 0
"#;
        let errs = Config::parse(src).unwrap_err();
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.key.as_str())).collect();
        for want in [
            (4, "dps.period_s"),
            (6, "dps.bank"),
            (7, "dps.listen"),
            (8, "dps.total"),
            (10, "dps.background"),
            (11, "dps.acceptance"),
            (12, "dps.withhold"),
            (13, "dps.cap"),
            (14, "dps.hook_socket"),
            (16, "dps.speed"),
            (18, "dps.peers.h2"),
            (19, "dps.peers.h1"),
            (23, "dps.vm[0].upstreams[0]"),
            (23, "dps.vm[0].upstreams[1]"),
            (24, "dps.vm[0].colour"),
            (27, "dps.vm[1].host"),
            (28, "dps.vm[1].rank"),
        ] {
            assert!(got.contains(&want), "missing {want:?} in {got:?}");
        }
    }

    #[test]
    fn syntax_errors_have_lines() {
        let errs = Config::parse("host = \"h1\"\n[agent\n").unwrap_err();
        assert!(
            errs.iter().any(|e| e.line == 2 && e.key == "(syntax)"),
            "{errs:?}"
        );
    }

    #[test]
    fn backend_is_linux_by_default_and_unknown_ones_are_errors() {
        assert_eq!(Config::parse(MINIMAL).unwrap().backend, Backend::Linux);
        let c = Config::parse(&format!("backend = \"linux\"\n{MINIMAL}")).unwrap();
        assert_eq!(c.backend, Backend::Linux);
        let errs = Config::parse(&format!("backend = \"kvm\"\n{MINIMAL}")).unwrap_err();
        assert_eq!((errs[0].line, errs[0].key.as_str()), (1, "backend"));
    }

    #[cfg(not(feature = "xen"))]
    #[test]
    fn xen_backend_without_the_feature_names_the_key() {
        for src in [MINIMAL, MINIMAL_DPS] {
            let text = src.replacen('\n', "\nbackend = \"xen\"\n", 1);
            let errs = Config::parse(&text).unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!((errs[0].line, errs[0].key.as_str()), (2, "backend"));
            assert!(errs[0].message.contains("`xen` feature"), "{errs:?}");
        }
    }

    #[cfg(feature = "xen")]
    #[test]
    fn xen_backend_adopts_domains_and_refuses_linux_only_keys() {
        let c = Config::parse(&MINIMAL.replacen('\n', "\nbackend = \"xen\"\n", 1)).unwrap();
        assert_eq!(c.backend, Backend::Xen);
        let d = Config::parse(&MINIMAL_DPS.replacen('\n', "\nbackend = \"xen\"\n", 1)).unwrap();
        assert_eq!(d.backend, Backend::Xen);
        // Xen domain names need not be Linux interface names (15 bytes).
        let long = MINIMAL
            .replacen('\n', "\nbackend = \"xen\"\n", 1)
            .replace("acme-1", "a-domain-name-longer-than-15");
        assert!(Config::parse(&long).is_ok());
        let src = "host = \"h1\"\nbackend = \"xen\"\n[linux]\ncgroup_parent = \"x\"\n\
                   [[customer]]\nname = \"acme\"\n[customer.bandwidth]\npool_bytes_per_s = 10_000\n\
                   [[vm]]\nname = \"acme-1\"\ncustomer = \"acme\"\nhost = \"h1\"\ncommand = [\"sleep\", \"9\"]\n\
                   host_ip = \"10.0.0.1\"\nvm_ip = \"10.0.0.2\"\n\
                   [[vm]]\nname = \"a/b\"\ncustomer = \"acme\"\nhost = \"h1\"\n";
        let errs = Config::parse(src).unwrap_err();
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(
            got,
            [
                (3, "linux"),
                (13, "vm[0].command"),
                (14, "vm[0].host_ip"),
                (15, "vm[0].vm_ip"),
                (17, "vm[1].name"),
            ],
            "{errs:?}"
        );
    }
}
