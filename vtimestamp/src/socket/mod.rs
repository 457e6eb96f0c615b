//! Kernel receive timestamps on Linux UDP sockets: `SO_TIMESTAMPNS` or `SO_TIMESTAMPING`
//! (software receive), read with `recvmsg` one datagram at a time or `recvmmsg` in batches.
//! The arrival time is taken by the kernel when the packet enters the network stack, so it
//! does not include the time the process waited to be scheduled (dissertation 6.3.3).
//!
//! Linux switches arrival stamping on for the whole machine from a work queue shortly after
//! the first socket asks for it, so datagrams that arrive in that short window carry no
//! arrival stamp: with [`KernelClock::Software`] they give [`TsError::MissingTimestamp`], with
//! [`KernelClock::Ns`] the kernel stamps them when `recvmsg` runs. Long-lived servers never
//! notice; a program that measures should open its sockets before it starts measuring.
//!
//! This is the only module of the crate that uses libc or `unsafe`; every unsafe block says
//! why it is sound. Control messages are parsed by the safe [`parse_control`].

mod cmsg;

use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

pub use cmsg::{ControlTimestamps, parse_control};

use crate::{Timespec, TsError};

/// The most datagrams one [`RecvBatch`] holds (one `recvmmsg` call).
pub const MAX_BATCH: usize = 64;

/// Control buffer for one datagram: room for `SCM_TIMESTAMPNS` and `SCM_TIMESTAMPING` at
/// once (96 bytes) plus one small message such as `IP_PKTINFO`, aligned for `cmsghdr`. More
/// control messages than that end in [`TsError::ControlTruncated`].
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct ControlBuf([u8; 128]);

/// Which kernel timestamp to ask for.
///
/// ```
/// use vtimestamp::socket::KernelClock;
/// assert_ne!(KernelClock::Ns, KernelClock::Software);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelClock {
    /// `SO_TIMESTAMPNS`: `CLOCK_REALTIME` at arrival, as a `timespec` (the usual choice).
    Ns,
    /// `SO_TIMESTAMPING` with `SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE`.
    Software,
}

/// One received datagram's metadata.
///
/// ```no_run
/// # use vtimestamp::socket::{KernelClock, TimestampedSocket};
/// let sock = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns)?;
/// let mut buf = [0u8; 1500];
/// let got = sock.recv(&mut buf)?;
/// println!("{} bytes from {} at {:?}", got.len, got.from, got.arrival);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes stored in the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer and was cut (`MSG_TRUNC`).
    pub truncated: bool,
    /// The sender.
    pub from: SocketAddr,
    /// The kernel arrival time (`CLOCK_REALTIME`).
    pub arrival: Timespec,
}

/// A UDP socket with kernel receive timestamps enabled. `Send` and `Sync` like the
/// [`UdpSocket`] it wraps; concurrent receives each get whole datagrams.
///
/// ```
/// use vtimestamp::socket::{KernelClock, TimestampedSocket};
/// use std::time::SystemTime;
/// let rx = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns)?;
/// let tx = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// tx.send_to(b"hello", rx.socket().local_addr()?)?;
/// let mut buf = [0u8; 64];
/// let got = rx.recv(&mut buf)?;
/// let now = SystemTime::now();
/// assert_eq!(&buf[..got.len], b"hello");
/// assert!(got.arrival.to_system_time()? <= now);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TimestampedSocket {
    sock: UdpSocket,
    clock: KernelClock,
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_int_option(sock: &UdpSocket, name: libc::c_int, value: libc::c_int) -> Result<(), i32> {
    // SAFETY: the fd is open for the lifetime of `sock`; the option value points to a live
    // c_int and the length passed is exactly its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(last_errno()) }
}

/// Reads a `sockaddr_storage` filled by the kernel into a [`SocketAddr`].
fn socket_addr(storage: &libc::sockaddr_storage) -> Result<SocketAddr, TsError> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (ss_family says so); sockaddr_storage is
            // large enough and suitably aligned for every sockaddr type.
            let sin: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        family => Err(TsError::AddressFamily(family)),
    }
}

fn check_flags(msg_flags: libc::c_int) -> Result<(), TsError> {
    if msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(TsError::ControlTruncated);
    }
    Ok(())
}

fn arrival_of(control: &[u8]) -> Result<Timespec, TsError> {
    parse_control(control)?
        .arrival()
        .ok_or(TsError::MissingTimestamp)
}

impl TimestampedSocket {
    /// Enables kernel receive timestamps on `sock`. Errors with [`TsError::Unsupported`] when
    /// the kernel refuses the option.
    ///
    /// ```
    /// use vtimestamp::socket::{KernelClock, TimestampedSocket};
    /// let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let sock = TimestampedSocket::new(udp, KernelClock::Software)?;
    /// assert_eq!(sock.clock(), KernelClock::Software);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(sock: UdpSocket, clock: KernelClock) -> Result<Self, TsError> {
        let (option, name, value) = match clock {
            KernelClock::Ns => ("SO_TIMESTAMPNS", libc::SO_TIMESTAMPNS, 1),
            KernelClock::Software => (
                "SO_TIMESTAMPING",
                libc::SO_TIMESTAMPING,
                (libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE)
                    as libc::c_int,
            ),
        };
        set_int_option(&sock, name, value)
            .map_err(|errno| TsError::Unsupported { option, errno })?;
        Ok(TimestampedSocket { sock, clock })
    }

    /// Binds a UDP socket to `addr` and enables `clock`.
    ///
    /// ```
    /// use vtimestamp::socket::{KernelClock, TimestampedSocket};
    /// let sock = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns)?;
    /// assert!(sock.socket().local_addr()?.port() != 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(addr: impl std::net::ToSocketAddrs, clock: KernelClock) -> Result<Self, TsError> {
        let sock = UdpSocket::bind(addr).map_err(|e| TsError::Io {
            op: "bind",
            errno: e.raw_os_error().unwrap_or(0),
        })?;
        Self::new(sock, clock)
    }

    /// The wrapped socket (for `send_to`, timeouts, non-blocking mode, ...).
    ///
    /// ```
    /// # use vtimestamp::socket::{KernelClock, TimestampedSocket};
    /// let sock = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns)?;
    /// sock.socket().set_nonblocking(true)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// The timestamp option in force.
    ///
    /// ```
    /// # use vtimestamp::socket::{KernelClock, TimestampedSocket};
    /// let sock = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns)?;
    /// assert_eq!(sock.clock(), KernelClock::Ns);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> KernelClock {
        self.clock
    }

    /// Gives the socket back (timestamps stay enabled on it).
    ///
    /// ```
    /// # use vtimestamp::socket::{KernelClock, TimestampedSocket};
    /// let udp = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns)?.into_inner();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> UdpSocket {
        self.sock
    }

    /// Receives one datagram into `buf` with `recvmsg`, with its kernel arrival time. Blocks
    /// unless the socket is non-blocking or has a read timeout (then `TsError::Io` with
    /// `EAGAIN`, see [`TsError::is_would_block`]).
    ///
    /// ```
    /// # use vtimestamp::socket::{KernelClock, TimestampedSocket};
    /// let rx = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns)?;
    /// rx.socket().set_nonblocking(true)?;
    /// let mut buf = [0u8; 16];
    /// assert!(rx.recv(&mut buf).unwrap_err().is_would_block());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&self, buf: &mut [u8]) -> Result<Received, TsError> {
        let mut control = ControlBuf([0; 128]);
        // SAFETY: sockaddr_storage is plain data for which all-zero bytes are valid.
        let mut addr: libc::sockaddr_storage = unsafe { zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data (pointers and integers); all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len() as _;
        // SAFETY: every pointer in `msg` points to a live local or to `buf`, with the lengths
        // set to their sizes; they all outlive the call, and the kernel writes within them.
        let n = unsafe { libc::recvmsg(self.sock.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(TsError::Io {
                op: "recvmsg",
                errno: last_errno(),
            });
        }
        check_flags(msg.msg_flags)?;
        let control_len = (msg.msg_controllen as usize).min(control.0.len());
        Ok(Received {
            len: n as usize,
            truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
            from: socket_addr(&addr)?,
            arrival: arrival_of(&control.0[..control_len])?,
        })
    }

    /// Receives up to `batch.capacity()` datagrams with one `recvmmsg` call: waits for the
    /// first (unless non-blocking or timed out), then takes whatever else is queued
    /// (`MSG_WAITFORONE`). Returns how many arrived; read them with [`RecvBatch::get`].
    /// When a datagram's control messages are malformed the whole call reports the error: the
    /// batch then holds no datagrams, and the datagrams that call took from the socket are
    /// dropped.
    ///
    /// ```
    /// use vtimestamp::socket::{KernelClock, RecvBatch, TimestampedSocket};
    /// let rx = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns)?;
    /// let tx = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// for i in 0..3u8 { tx.send_to(&[i], rx.socket().local_addr()?)?; }
    /// let mut batch = RecvBatch::new(8, 64)?;
    /// let mut seen = Vec::new();
    /// while seen.len() < 3 {
    ///     let n = rx.recv_batch(&mut batch)?;
    ///     seen.extend((0..n).map(|i| batch.get(i).unwrap().0[0]));
    /// }
    /// assert_eq!(seen, [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> Result<usize, TsError> {
        batch.filled = 0;
        let count = batch.meta.len();
        // SAFETY: sockaddr_storage is plain data; all-zero is valid.
        let mut addrs: [libc::sockaddr_storage; MAX_BATCH] = unsafe { zeroed() };
        let mut controls = [ControlBuf([0; 128]); MAX_BATCH];
        let cap = batch.datagram_cap;
        let mut iovs: [libc::iovec; MAX_BATCH] = std::array::from_fn(|_| libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        });
        for (iov, chunk) in iovs.iter_mut().zip(batch.data.chunks_exact_mut(cap)) {
            iov.iov_base = chunk.as_mut_ptr().cast();
            iov.iov_len = cap;
        }
        // SAFETY: mmsghdr is plain data (pointers and integers); all-zero is valid.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        for i in 0..count {
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = controls[i].0.as_mut_ptr().cast();
            h.msg_controllen = controls[i].0.len() as _;
        }
        // SAFETY: the first `count` (<= MAX_BATCH) headers point to live locals and to
        // disjoint `cap`-byte chunks of `batch.data`, with matching lengths; all outlive the
        // call. The timeout pointer may be null.
        let n = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(TsError::Io {
                op: "recvmmsg",
                errno: last_errno(),
            });
        }
        let n = n as usize;
        for i in 0..n {
            let h = &hdrs[i].msg_hdr;
            check_flags(h.msg_flags)?;
            let control_len = (h.msg_controllen as usize).min(controls[i].0.len());
            batch.meta[i] = Received {
                len: (hdrs[i].msg_len as usize).min(cap),
                truncated: h.msg_flags & libc::MSG_TRUNC != 0,
                from: socket_addr(&addrs[i])?,
                arrival: arrival_of(&controls[i].0[..control_len])?,
            };
        }
        batch.filled = n;
        Ok(n)
    }
}

/// Buffers for one `recvmmsg` call: `capacity` datagrams of up to `datagram_cap` bytes each.
/// Allocated once, reused for every call. `Send` and `Sync`.
///
/// ```
/// let batch = vtimestamp::socket::RecvBatch::new(32, 1500)?;
/// assert_eq!((batch.capacity(), batch.len()), (32, 0));
/// assert!(vtimestamp::socket::RecvBatch::new(0, 1500).is_err());
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecvBatch {
    data: Vec<u8>,
    datagram_cap: usize,
    meta: Vec<Received>,
    filled: usize,
}

impl RecvBatch {
    /// Buffers for `capacity` (1..=[`MAX_BATCH`]) datagrams of `datagram_cap` (> 0) bytes.
    ///
    /// ```
    /// assert!(vtimestamp::socket::RecvBatch::new(65, 1500).is_err());
    /// ```
    pub fn new(capacity: usize, datagram_cap: usize) -> Result<Self, TsError> {
        if capacity == 0 || capacity > MAX_BATCH || datagram_cap == 0 {
            return Err(TsError::BatchSize {
                requested: capacity,
                max: MAX_BATCH,
            });
        }
        let empty = Received {
            len: 0,
            truncated: false,
            from: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            arrival: Timespec::default(),
        };
        Ok(RecvBatch {
            data: vec![0; capacity * datagram_cap],
            datagram_cap,
            meta: vec![empty; capacity],
            filled: 0,
        })
    }

    /// How many datagrams one call can take.
    ///
    /// ```
    /// assert_eq!(vtimestamp::socket::RecvBatch::new(4, 9)?.capacity(), 4);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// How many datagrams the last call received.
    ///
    /// ```
    /// assert!(vtimestamp::socket::RecvBatch::new(4, 9)?.is_empty());
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.filled
    }

    /// Whether the last call received nothing.
    ///
    /// ```
    /// assert_eq!(vtimestamp::socket::RecvBatch::new(4, 9)?.len(), 0);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The `i`-th datagram of the last call: its bytes and metadata.
    ///
    /// ```
    /// assert!(vtimestamp::socket::RecvBatch::new(4, 9)?.get(0).is_none());
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<(&[u8], &Received)> {
        if i >= self.filled {
            return None;
        }
        let meta = &self.meta[i];
        let start = i * self.datagram_cap;
        Some((&self.data[start..start + meta.len], meta))
    }

    /// The datagrams of the last call, in arrival order.
    ///
    /// ```
    /// assert_eq!(vtimestamp::socket::RecvBatch::new(4, 9)?.iter().count(), 0);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Received)> {
        (0..self.filled).filter_map(|i| self.get(i))
    }
}

impl TsError {
    /// Whether this is a receive that found no datagram (`EAGAIN`/`EWOULDBLOCK`: a
    /// non-blocking socket or an expired read timeout).
    ///
    /// ```
    /// let e = vtimestamp::TsError::Io { op: "recvmsg", errno: libc::EAGAIN };
    /// assert!(e.is_would_block());
    /// ```
    pub fn is_would_block(&self) -> bool {
        matches!(self, TsError::Io { errno, .. } if *errno == libc::EAGAIN || *errno == libc::EWOULDBLOCK)
    }
}

/// A kernel `struct timespec` as the codec's plain [`Timespec`].
///
/// ```
/// let k = libc::timespec { tv_sec: 3, tv_nsec: 4 };
/// assert_eq!(vtimestamp::Timespec::from(k), vtimestamp::Timespec { tv_sec: 3, tv_nsec: 4 });
/// ```
impl From<libc::timespec> for Timespec {
    // time_t and long are i32 on some 32-bit targets: the conversion is not always the identity.
    #[allow(clippy::useless_conversion)]
    fn from(k: libc::timespec) -> Self {
        Timespec {
            tv_sec: i64::from(k.tv_sec),
            tv_nsec: i64::from(k.tv_nsec),
        }
    }
}

/// A kernel `struct timeval` as the codec's plain [`crate::Timeval`].
///
/// ```
/// let k = libc::timeval { tv_sec: 3, tv_usec: 4 };
/// let ts = vtimestamp::Ts48::try_from(vtimestamp::Timeval::from(k))?;
/// assert_eq!((ts.secs(), ts.micros()), (3, 0));
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
impl From<libc::timeval> for crate::Timeval {
    #[allow(clippy::useless_conversion)] // as above: suseconds_t and time_t vary by target
    fn from(k: libc::timeval) -> Self {
        crate::Timeval {
            tv_sec: i64::from(k.tv_sec),
            tv_usec: i64::from(k.tv_usec),
        }
    }
}
