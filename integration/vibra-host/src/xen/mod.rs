//! The Xen backend (cargo feature `xen`): runs in Domain-0 and acts on domains through
//! libxenctrl (credit scheduler weight/cap, domain info: CPU time and pages), libxenlight
//! (memory target) and xenstore (the netback vif `rate` key), plus a tc tbf on `vif<dom>.<dev>` (over rtnetlink).
//!
//! Owns the three library handles and every `unsafe` call of the crate; each block says why it
//! is sound. Egress is the guest's transmit path, limited by netback's credit scheduler (the
//! vif `rate` key, live-changeable) and counted as the vif's `rx_bytes` in Domain-0. The tc
//! alternative shapes the other direction (Domain-0 to guest) on the vif's root qdisc.

mod ffi;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_uint, c_void};
use std::fmt;
use std::time::Duration;

use crate::controller::{CpuSetting, HostController, Outcome, VmUsage};
use crate::error::{Error, Operation};
use crate::linux::net;
use crate::linux::netlink::Rtnl;
use crate::units::{Bandwidth, CpuCap, CpuWeight, MemoryTarget, PAGE_BYTES};

/// A Xen domain id (0 is Domain-0).
///
/// ```
/// assert_eq!(vibra_host::DomId(3).to_string(), "domain 3");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub u32);

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "domain {}", self.0)
    }
}

/// What Xen says of a domain now ([`XenHost::domain_state`]).
///
/// ```
/// use vibra_host::DomainState;
/// assert!(DomainState::Running.is_running());
/// assert!(!DomainState::Crashed.is_running() && !DomainState::Gone.is_running());
/// assert_eq!(DomainState::ShutDown { reason: 0 }.to_string(), "shut down (reason 0)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// The domain exists and has not shut down (it may be paused or blocked).
    Running,
    /// The domain shut down with `SHUTDOWN_crash` and is kept by its toolstack
    /// (`on_crash = "preserve"`, or until the toolstack reacts).
    Crashed,
    /// The domain shut down for another reason (`reason`: Xen's `SHUTDOWN_*` code: 0
    /// poweroff, 1 reboot, 2 suspend, 4 watchdog, 5 soft reset).
    ShutDown {
        /// Xen's shutdown code.
        reason: u32,
    },
    /// No such domain, or it is dying (being destroyed).
    Gone,
}

impl DomainState {
    /// Whether the domain still runs its guest.
    ///
    /// ```
    /// assert!(!vibra_host::DomainState::ShutDown { reason: 0 }.is_running());
    /// ```
    #[must_use]
    pub fn is_running(self) -> bool {
        self == DomainState::Running
    }
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainState::Running => f.write_str("running"),
            DomainState::Crashed => f.write_str("crashed"),
            DomainState::ShutDown { reason } => write!(f, "shut down (reason {reason})"),
            DomainState::Gone => f.write_str("gone"),
        }
    }
}

/// The most domains one listing returns.
const MAX_DOMAINS: usize = 1024;

/// Settings this controller last wrote to a domain (for [`Outcome::Unchanged`]).
#[derive(Default)]
struct Written {
    cpu: Option<CpuSetting>,
    memory: Option<MemoryTarget>,
    egress: Option<Bandwidth>,
}

/// A Xen host, driven from Domain-0. Needs root in Domain-0 (privcmd, xenstore, sysfs).
///
/// Holds raw library handles, so it is neither `Send` nor `Sync`: one thread owns it.
///
/// ```no_run
/// use vibra_host::{CpuSetting, CpuWeight, DomId, HostController, MemoryTarget, XenHost};
/// let mut xen = XenHost::open()?;
/// let guest = xen.find_domain("web")?;
/// xen.set_cpu(&guest, CpuSetting { weight: CpuWeight::new(512)?, cap: None })?;
/// xen.set_memory_target(&guest, MemoryTarget::from_mib(512)?)?;
/// println!("{:?}", xen.usage(&guest)?);
/// # Ok::<(), vibra_host::Error>(())
/// ```
pub struct XenHost {
    xc: *mut ffi::xc_interface,
    xs: *mut ffi::xs_handle,
    xl: *mut ffi::libxl_ctx,
    logger: *mut ffi::xentoollog_logger,
    log_file: *mut ffi::FILE,
    written: HashMap<DomId, Written>,
    /// Domain-0's rtnetlink socket for [`XenHost::shape_vif_tx`], opened on first use.
    rtnl: RefCell<Option<Rtnl>>,
}

impl fmt::Debug for XenHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XenHost")
            .field("domains_written", &self.written.len())
            .finish()
    }
}

fn unavailable(what: &str) -> Error {
    Error::XenUnavailable {
        reason: format!("{what}: {}", std::io::Error::last_os_error()),
    }
}

impl XenHost {
    /// Opens libxenctrl, xenstore and a libxenlight context (logging errors to stderr).
    /// Fails with [`Error::XenUnavailable`] and the library's error text when not in a Xen
    /// Domain-0 or not privileged.
    ///
    /// ```
    /// // On a machine without Xen this is a typed error, never a panic.
    /// if !std::path::Path::new("/proc/xen/capabilities").exists() {
    ///     assert!(matches!(vibra_host::XenHost::open(), Err(vibra_host::Error::XenUnavailable { .. })));
    /// }
    /// ```
    pub fn open() -> Result<Self, Error> {
        let mut host = XenHost {
            xc: std::ptr::null_mut(),
            xs: std::ptr::null_mut(),
            xl: std::ptr::null_mut(),
            logger: std::ptr::null_mut(),
            log_file: std::ptr::null_mut(),
            written: HashMap::new(),
            rtnl: RefCell::new(None),
        };
        // SAFETY: null loggers are documented as "log to stderr"; the handle is checked
        // for NULL and owned by `host` (closed in Drop).
        host.xc = unsafe { ffi::xc_interface_open(std::ptr::null_mut(), std::ptr::null_mut(), 0) };
        if host.xc.is_null() {
            return Err(unavailable(
                "xc_interface_open (is this Xen Domain-0, as root?)",
            ));
        }
        // SAFETY: flags 0 opens the default connection; NULL is checked; closed in Drop.
        host.xs = unsafe { ffi::xs_open(0) };
        if host.xs.is_null() {
            return Err(unavailable("xs_open (is xenstored running?)"));
        }
        // SAFETY: dup gives libxl's logger its own stderr descriptor, so fclose in Drop closes
        // only that copy; fdopen's result is checked for NULL.
        host.log_file = unsafe {
            let fd = libc::dup(2);
            if fd < 0 {
                std::ptr::null_mut()
            } else {
                libc::fdopen(fd, c"w".as_ptr())
            }
        };
        if host.log_file.is_null() {
            return Err(unavailable("fdopen(dup(stderr)) for the libxl logger"));
        }
        // SAFETY: log_file is a valid FILE*; the logger is checked for NULL and destroyed in Drop.
        host.logger =
            unsafe { ffi::xtl_createlogger_stdiostream(host.log_file, ffi::abi::XTL_ERROR, 0) };
        if host.logger.is_null() {
            return Err(unavailable("xtl_createlogger_stdiostream"));
        }
        let mut ctx = std::ptr::null_mut();
        // SAFETY: ctx is a valid out-pointer; version is the headers' LIBXL_VERSION; the
        // logger outlives the context (freed after it in Drop).
        let rc = unsafe { ffi::libxl_ctx_alloc(&mut ctx, ffi::abi::LIBXL_VERSION, 0, host.logger) };
        if rc != 0 || ctx.is_null() {
            return Err(Error::XenUnavailable {
                reason: format!("libxl_ctx_alloc: {}", libxl_error(rc)),
            });
        }
        host.xl = ctx;
        Ok(host)
    }

    fn xc_error(&self, vm: DomId, op: Operation, call: &'static str) -> Error {
        let os = std::io::Error::last_os_error();
        // SAFETY: xc is a valid handle; the returned pointer is valid until the next libxc
        // call on this thread, and the message is NUL-terminated within its fixed array.
        let xc_msg = unsafe {
            let e = ffi::xc_get_last_error(self.xc);
            if e.is_null() {
                String::new()
            } else {
                CStr::from_ptr((*e).message.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            }
        };
        // SAFETY: valid handle.
        unsafe { ffi::xc_clear_last_error(self.xc) };
        let message = if xc_msg.is_empty() {
            os.to_string()
        } else {
            format!("{xc_msg} ({os})")
        };
        Error::Xen {
            vm: vm.to_string(),
            op,
            call,
            message,
        }
    }

    fn dominfo(&self, vm: DomId, op: Operation) -> Result<ffi::xc_domaininfo_t, Error> {
        // SAFETY: xc_domaininfo_t is plain old data; all-zero is a valid value.
        let mut info: ffi::xc_domaininfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: info points to room for exactly one entry, as max_domains = 1 says.
        let n = unsafe { ffi::xc_domain_getinfolist(self.xc, vm.0, 1, &mut info) };
        if n < 0 {
            return Err(self.xc_error(vm, op, "xc_domain_getinfolist"));
        }
        // The call returns the first domain with id >= vm: a different id means no such domain.
        if n == 0 || u32::from(info.domain) != vm.0 || info.flags & ffi::abi::DOMINF_DYING != 0 {
            return Err(Error::UnknownVm {
                vm: vm.to_string(),
                op,
            });
        }
        Ok(info)
    }

    fn xs_read(&self, vm: DomId, op: Operation, path: &str) -> Result<Option<String>, Error> {
        let cpath = xs_path(vm, op, "xs_read", path)?;
        let mut len: c_uint = 0;
        // SAFETY: valid handle and NUL-terminated path; the result is malloc'ed, `len` bytes
        // long, and freed below exactly once.
        let p = unsafe { ffi::xs_read(self.xs, ffi::abi::XBT_NULL, cpath.as_ptr(), &mut len) };
        if p.is_null() {
            let os = std::io::Error::last_os_error();
            if os.raw_os_error() == Some(libc::ENOENT) {
                return Ok(None);
            }
            return Err(xs_failure(vm, op, "xs_read", path, os));
        }
        // SAFETY: p points to len readable bytes (xs_read's contract).
        let value = unsafe {
            String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len as usize))
                .into_owned()
        };
        // SAFETY: p came from malloc in libxenstore and is not used after this.
        unsafe { libc::free(p) };
        Ok(Some(value))
    }

    fn xs_write(&self, vm: DomId, op: Operation, path: &str, value: &str) -> Result<(), Error> {
        let cpath = xs_path(vm, op, "xs_write", path)?;
        // SAFETY: valid handle, NUL-terminated path, and value.len() readable bytes at value.
        let ok = unsafe {
            ffi::xs_write(
                self.xs,
                ffi::abi::XBT_NULL,
                cpath.as_ptr(),
                value.as_ptr() as *const c_void,
                value.len() as c_uint,
            )
        };
        if !ok {
            return Err(xs_failure(
                vm,
                op,
                "xs_write",
                path,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn xs_directory(&self, vm: DomId, op: Operation, path: &str) -> Result<Vec<String>, Error> {
        let cpath = xs_path(vm, op, "xs_directory", path)?;
        let mut num: c_uint = 0;
        // SAFETY: valid handle and path; the result is one malloc'ed block holding `num`
        // pointers to NUL-terminated strings, freed below exactly once.
        let list =
            unsafe { ffi::xs_directory(self.xs, ffi::abi::XBT_NULL, cpath.as_ptr(), &mut num) };
        if list.is_null() {
            let os = std::io::Error::last_os_error();
            if os.raw_os_error() == Some(libc::ENOENT) {
                return Ok(Vec::new());
            }
            return Err(xs_failure(vm, op, "xs_directory", path, os));
        }
        // SAFETY: list holds num valid C-string pointers inside the same block.
        let names = unsafe {
            (0..num as usize)
                .map(|i| {
                    CStr::from_ptr(*list.add(i) as *const c_char)
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        // SAFETY: one free for the whole block, as xenstore.h documents.
        unsafe { libc::free(list as *mut c_void) };
        Ok(names)
    }

    /// The domain's name from xenstore (`/local/domain/<id>/name`).
    ///
    /// ```no_run
    /// let xen = vibra_host::XenHost::open()?;
    /// assert_eq!(xen.domain_name(vibra_host::DomId(0))?, "Domain-0");
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn domain_name(&self, vm: DomId) -> Result<String, Error> {
        self.xs_read(
            vm,
            Operation::ListVms,
            &format!("/local/domain/{}/name", vm.0),
        )?
        .ok_or(Error::UnknownVm {
            vm: vm.to_string(),
            op: Operation::ListVms,
        })
    }

    /// The domain's state from its domain info: [`DomainState::Gone`] when Xen has no domain
    /// `vm` or it is dying, [`DomainState::Crashed`] when it shut down with `SHUTDOWN_crash`.
    /// Errors only when the hypercall itself fails.
    ///
    /// ```no_run
    /// let xen = vibra_host::XenHost::open()?;
    /// assert!(xen.domain_state(vibra_host::DomId(0))?.is_running());
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn domain_state(&self, vm: DomId) -> Result<DomainState, Error> {
        match self.dominfo(vm, Operation::ReadUsage) {
            Ok(info) => Ok(state_of(info.flags)),
            Err(Error::UnknownVm { .. }) => Ok(DomainState::Gone),
            Err(e) => Err(e),
        }
    }

    /// The id of the running domain called `name`.
    ///
    /// ```no_run
    /// let xen = vibra_host::XenHost::open()?;
    /// assert_eq!(xen.find_domain("Domain-0")?, vibra_host::DomId(0));
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn find_domain(&self, name: &str) -> Result<DomId, Error> {
        for d in self.list_vms()? {
            if self.domain_name(d).ok().as_deref() == Some(name) {
                return Ok(d);
            }
        }
        Err(Error::UnknownVm {
            vm: name.to_string(),
            op: Operation::ListVms,
        })
    }

    /// The domain's vif device numbers served by Domain-0's netback.
    ///
    /// ```no_run
    /// let xen = vibra_host::XenHost::open()?;
    /// let guest = xen.find_domain("web")?;
    /// println!("{:?}", xen.vifs(guest)?); // e.g. [0]
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn vifs(&self, vm: DomId) -> Result<Vec<u32>, Error> {
        let mut devs: Vec<u32> = self
            .xs_directory(
                vm,
                Operation::ReadUsage,
                &format!("/local/domain/0/backend/vif/{}", vm.0),
            )?
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        devs.sort_unstable();
        Ok(devs)
    }

    /// The alternative shaper: a tbf at `rate` on `vif<dom>.<dev>`'s root qdisc (set over
    /// Domain-0's rtnetlink socket, as `tc qdisc replace ... tbf` would), which limits traffic
    /// from Domain-0 *to* the guest (the vif's transmit side).
    ///
    /// ```no_run
    /// let xen = vibra_host::XenHost::open()?;
    /// let guest = xen.find_domain("web")?;
    /// xen.shape_vif_tx(guest, 0, vibra_host::Bandwidth::from_bits_per_sec(512e3)?)?;
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn shape_vif_tx(&self, vm: DomId, dev: u32, rate: Bandwidth) -> Result<(), Error> {
        self.dominfo(vm, Operation::SetEgress)?;
        let mut rtnl = self.rtnl.borrow_mut();
        let rtnl = match &mut *rtnl {
            Some(r) => r,
            empty => empty.insert(Rtnl::open().map_err(|source| Error::Netlink {
                vm: vm.to_string(),
                op: Operation::SetEgress,
                request: "socket in Domain-0's network namespace".to_string(),
                source,
                kernel_says: String::new(),
            })?),
        };
        net::shape(&vm.to_string(), rtnl, &format!("vif{}.{dev}", vm.0), rate)
    }

    fn written(&mut self, vm: DomId) -> &mut Written {
        self.written.entry(vm).or_default()
    }
}

/// The state a domain info's `flags` say (a dying domain never gets here: see `dominfo`).
fn state_of(flags: u32) -> DomainState {
    if flags & ffi::abi::DOMINF_SHUTDOWN == 0 {
        return DomainState::Running;
    }
    let reason = (flags >> ffi::abi::DOMINF_SHUTDOWN_SHIFT) & ffi::abi::DOMINF_SHUTDOWN_MASK;
    if reason == ffi::abi::SHUTDOWN_CRASH {
        DomainState::Crashed
    } else {
        DomainState::ShutDown { reason }
    }
}

/// A xenstore path as a C string (paths are built from numbers, so a NUL is a caller bug
/// reported as an error, not a panic).
fn xs_path(vm: DomId, op: Operation, call: &'static str, path: &str) -> Result<CString, Error> {
    CString::new(path).map_err(|_| Error::Xen {
        vm: vm.to_string(),
        op,
        call,
        message: format!("path {path:?} has a NUL"),
    })
}

/// A failed xenstore call on `path`, with the OS error it left in errno.
fn xs_failure(
    vm: DomId,
    op: Operation,
    call: &'static str,
    path: &str,
    os: std::io::Error,
) -> Error {
    Error::Xen {
        vm: vm.to_string(),
        op,
        call,
        message: format!("{path}: {os}"),
    }
}

fn libxl_error(rc: i32) -> String {
    // SAFETY: libxl_error_to_string takes any int and returns a static string or NULL.
    let name = unsafe { ffi::libxl_error_to_string(rc) };
    let name = if name.is_null() {
        "unknown".to_string()
    } else {
        // SAFETY: non-NULL results are static NUL-terminated strings.
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    };
    format!("libxl error {rc} ({name}); details on stderr")
}

impl Drop for XenHost {
    fn drop(&mut self) {
        // SAFETY: each handle is either NULL (never opened; all these accept or skip NULL) or
        // owned by us and released exactly once, the context before its logger.
        unsafe {
            if !self.xl.is_null() {
                ffi::libxl_ctx_free(self.xl);
            }
            if !self.logger.is_null() {
                ffi::xtl_logger_destroy(self.logger);
            }
            if !self.log_file.is_null() {
                libc::fclose(self.log_file);
            }
            if !self.xs.is_null() {
                ffi::xs_close(self.xs);
            }
            if !self.xc.is_null() {
                ffi::xc_interface_close(self.xc);
            }
        }
    }
}

impl HostController for XenHost {
    type VmId = DomId;

    fn list_vms(&self) -> Result<Vec<DomId>, Error> {
        // SAFETY: plain old data; zeroed entries are valid.
        let mut infos: Vec<ffi::xc_domaininfo_t> = vec![unsafe { std::mem::zeroed() }; MAX_DOMAINS];
        // SAFETY: infos has room for MAX_DOMAINS entries, as max_domains says.
        let n = unsafe {
            ffi::xc_domain_getinfolist(self.xc, 0, MAX_DOMAINS as c_uint, infos.as_mut_ptr())
        };
        if n < 0 {
            return Err(self.xc_error(DomId(0), Operation::ListVms, "xc_domain_getinfolist"));
        }
        Ok(infos[..n as usize]
            .iter()
            .filter(|i| i.flags & ffi::abi::DOMINF_DYING == 0)
            .map(|i| DomId(u32::from(i.domain)))
            .collect())
    }

    fn set_cpu(&mut self, vm: &DomId, cpu: CpuSetting) -> Result<Outcome, Error> {
        if self.written(*vm).cpu == Some(cpu) {
            return Ok(Outcome::Unchanged);
        }
        // Weight and cap go in one hypercall: there is no half update.
        let mut s = ffi::xen_domctl_sched_credit {
            weight: cpu.weight.get(),
            cap: cpu.cap.map_or(0, CpuCap::percent),
        };
        // SAFETY: valid handle; s is a valid, initialised struct of the header's layout.
        if unsafe { ffi::xc_sched_credit_domain_set(self.xc, vm.0, &mut s) } != 0 {
            return Err(self.xc_error(*vm, Operation::SetCpu, "xc_sched_credit_domain_set"));
        }
        self.written(*vm).cpu = Some(cpu);
        Ok(Outcome::Written)
    }

    fn cpu(&self, vm: &DomId) -> Result<CpuSetting, Error> {
        let mut s = ffi::xen_domctl_sched_credit::default();
        // SAFETY: valid handle; s is a valid out-struct.
        if unsafe { ffi::xc_sched_credit_domain_get(self.xc, vm.0, &mut s) } != 0 {
            return Err(self.xc_error(*vm, Operation::ReadUsage, "xc_sched_credit_domain_get"));
        }
        let weight = CpuWeight::new(u32::from(s.weight))?;
        let cap = if s.cap == 0 {
            None
        } else {
            Some(CpuCap::new(u32::from(s.cap))?)
        };
        Ok(CpuSetting { weight, cap })
    }

    fn set_memory_target(&mut self, vm: &DomId, target: MemoryTarget) -> Result<Outcome, Error> {
        if self.written(*vm).memory == Some(target) {
            return Ok(Outcome::Unchanged);
        }
        self.dominfo(*vm, Operation::SetMemory)?;
        let kib = i64::try_from(target.kib()).map_err(|_| Error::InvalidMemory {
            bytes: target.bytes(),
        })?;
        // SAFETY: valid context; absolute (relative = 0) target, enforced (enforce = 1) like `xl mem-set`.
        let rc = unsafe { ffi::libxl_set_memory_target(self.xl, vm.0, kib, 0, 1) };
        if rc != 0 {
            return Err(Error::Xen {
                vm: vm.to_string(),
                op: Operation::SetMemory,
                call: "libxl_set_memory_target",
                message: libxl_error(rc),
            });
        }
        self.written(*vm).memory = Some(target);
        Ok(Outcome::Written)
    }

    fn memory_target(&self, vm: &DomId) -> Result<Option<MemoryTarget>, Error> {
        self.dominfo(*vm, Operation::ReadUsage)?;
        let mut kib: u64 = 0;
        // SAFETY: valid context and out-pointer.
        let rc = unsafe { ffi::libxl_get_memory_target(self.xl, vm.0, &mut kib) };
        if rc != 0 {
            return Err(Error::Xen {
                vm: vm.to_string(),
                op: Operation::ReadUsage,
                call: "libxl_get_memory_target",
                message: libxl_error(rc),
            });
        }
        MemoryTarget::from_bytes(kib.saturating_mul(1024)).map(Some)
    }

    fn set_egress(&mut self, vm: &DomId, rate: Bandwidth) -> Result<Outcome, Error> {
        let op = Operation::SetEgress;
        if self.written(*vm).egress == Some(rate) {
            return Ok(Outcome::Unchanged);
        }
        self.dominfo(*vm, op)?;
        let devs = self.vifs(*vm)?;
        if devs.is_empty() {
            return Err(Error::Xen {
                vm: vm.to_string(),
                op,
                call: "xs_directory",
                message: "the domain has no vif served by Domain-0".to_string(),
            });
        }
        for dev in devs {
            // netback watches this key and applies a new credit at once (no reconnect).
            self.xs_write(
                *vm,
                op,
                &format!("/local/domain/0/backend/vif/{}/{dev}/rate", vm.0),
                &rate.xen_vif_rate(),
            )?;
        }
        self.written(*vm).egress = Some(rate);
        Ok(Outcome::Written)
    }

    fn egress_limit(&self, vm: &DomId) -> Result<Option<Bandwidth>, Error> {
        let op = Operation::ReadUsage;
        let Some(dev) = self.vifs(*vm)?.first().copied() else {
            return Ok(None);
        };
        let Some(value) = self.xs_read(
            *vm,
            op,
            &format!("/local/domain/0/backend/vif/{}/{dev}/rate", vm.0),
        )?
        else {
            return Ok(None);
        };
        let parsed = value.split_once(',').and_then(|(b, u)| {
            Some((
                b.trim().parse::<u64>().ok()?,
                u.trim_end_matches('\0').trim().parse::<u64>().ok()?,
            ))
        });
        let (bytes, usecs) = parsed.filter(|&(_, u)| u > 0).ok_or_else(|| Error::Parse {
            vm: vm.to_string(),
            op,
            what: "vif rate",
            text: value.clone(),
        })?;
        Bandwidth::from_bytes_per_sec(bytes as f64 * 1e6 / usecs as f64).map(Some)
    }

    fn usage(&self, vm: &DomId) -> Result<VmUsage, Error> {
        let op = Operation::ReadUsage;
        let info = self.dominfo(*vm, op)?;
        let mut egress_bytes = 0u64;
        for dev in self.vifs(*vm)? {
            egress_bytes +=
                net::counter(&vm.to_string(), &format!("vif{}.{dev}", vm.0), "rx_bytes")?;
        }
        Ok(VmUsage {
            cpu_time: Duration::from_nanos(info.cpu_time),
            memory_bytes: info.tot_pages.saturating_mul(PAGE_BYTES),
            egress_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_flags_map_to_states() {
        use ffi::abi::{DOMINF_SHUTDOWN, DOMINF_SHUTDOWN_SHIFT, SHUTDOWN_CRASH};
        assert_eq!(state_of(0), DomainState::Running);
        let crashed = DOMINF_SHUTDOWN | (SHUTDOWN_CRASH << DOMINF_SHUTDOWN_SHIFT);
        assert_eq!(state_of(crashed), DomainState::Crashed);
        assert_eq!(
            state_of(DOMINF_SHUTDOWN),
            DomainState::ShutDown { reason: 0 }
        );
        // A crash code without the shutdown flag is a running domain's stale field.
        assert_eq!(
            state_of(SHUTDOWN_CRASH << DOMINF_SHUTDOWN_SHIFT),
            DomainState::Running
        );
    }
}
