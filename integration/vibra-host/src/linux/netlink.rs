//! rtnetlink for egress shaping: a `NETLINK_ROUTE` socket (netlink-sys) speaking
//! netlink-packet-route's link and tc messages, used synchronously.
//!
//! Owns the link-index lookup (`RTM_GETLINK` by name) and the tbf root qdisc: replacing it
//! (`RTM_NEWQDISC`, `NLM_F_CREATE | NLM_F_REPLACE`) and reading its rate back (`RTM_GETQDISC`
//! dump). netlink-packet-route does not type tbf's options, so [`Tbf`] builds them as raw
//! attributes, with the values iproute2's `tc` derives from
//! `tc qdisc replace dev D root tbf rate R burst B latency 50ms` (`tc/q_tbf.c`, `tc/tc_core.c`):
//! the kernel ends up holding the very qdisc that command would have made. `tc` also sends a
//! 1 KiB rate table; the kernel reads it only for link-layer-unaware requests (from tc before
//! 2013), and `tc` marks its rate Ethernet as this module does, so it is left out.
//!
//! A socket belongs to the network namespace it was created in: [`Rtnl::open_in`] creates it
//! on a short-lived thread that first joins the namespace (`setns`), so the caller's own
//! namespace never changes.

use std::fmt;
use std::fs::File;
use std::io;

use netlink_packet_core::{
    DecodeError, DefaultNla, NLM_F_ACK, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE,
    NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, Nla, NlasIterator,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// `TCA_TBF_PARMS`: `struct tc_tbf_qopt` (linux/pkt_sched.h).
const TCA_TBF_PARMS: u16 = 1;
/// `TCA_TBF_RATE64`: the rate in bytes/s when it does not fit the qopt's 32 bits.
const TCA_TBF_RATE64: u16 = 4;
/// `TCA_TBF_BURST`: the bucket in bytes (the kernel derives its time form from it).
const TCA_TBF_BURST: u16 = 6;
/// `TC_LINKLAYER_ETHERNET`, what `tc` puts in a rate spec by default.
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// `NLMSGERR_ATTR_MSG`: the kernel's extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `TCA_OPTIONS`.
const TCA_OPTIONS: u16 = 2;
/// Bytes of `struct tc_tbf_qopt`: two 12-byte rate specs and limit, buffer, mtu.
const TBF_QOPT_LEN: usize = 36;
/// Receive buffer: a dump part is at most 32 KiB.
const RX_BYTES: usize = 64 * 1024;
/// Microseconds per psched tick as `tc` computes it from `/proc/net/psched` (1000 ns per us
/// over 64 ns per tick: the kernel's `PSCHED_SHIFT` of 6, fixed since Linux 2.6.31).
const TICKS_PER_US: f64 = 1000.0 / 64.0;

/// A failed netlink request: what was asked, the kernel's errno (or the local I/O or decode
/// failure) and, when the kernel gave one, its extended-ack message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) request: String,
    pub(crate) source: io::Error,
    pub(crate) kernel_says: String,
}

impl Failure {
    fn new(request: String, source: io::Error) -> Failure {
        Failure {
            request,
            source,
            kernel_says: String::new(),
        }
    }
}

/// The tbf a `tc qdisc replace ... tbf rate R burst B latency L` command makes, in the kernel's
/// terms: what goes into `TCA_TBF_PARMS`, `TCA_TBF_BURST` and, above 32 bits, `TCA_TBF_RATE64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tbf {
    /// Bytes per second.
    pub(crate) rate: u64,
    /// Bucket size in bytes.
    pub(crate) burst: u32,
    /// Queue limit in bytes: `rate * latency + burst`, truncated as `tc` does.
    pub(crate) limit: u32,
    /// The bucket as transmission time at the 32-bit rate, in psched ticks (`tc`'s
    /// `tc_calc_xmittime`; the kernel recomputes it from the burst).
    pub(crate) buffer_ticks: u32,
}

impl Tbf {
    /// `tc`'s derivation for `rate` bytes/s, `burst` bytes and `latency_us` of queue. Errors
    /// (with the reason) when the burst or the limit does not fit tbf's 32-bit fields: above
    /// about 572 Gbit/s with 50 ms of latency and a 10 ms burst, where `tc` itself fails or wraps.
    pub(crate) fn tc(rate: u64, burst: u64, latency_us: u32) -> Result<Tbf, String> {
        let burst = u32::try_from(burst)
            .map_err(|_| format!("a tbf burst of {burst} bytes does not fit 32 bits"))?;
        // tc/q_tbf.c: `double lim = rate64*(double)latency/TIME_UNITS_PER_SEC + buffer;`
        let limit = rate as f64 * f64::from(latency_us) / 1e6 + f64::from(burst);
        if limit > f64::from(u32::MAX) {
            return Err(format!(
                "a tbf queue of {latency_us} us at {rate} bytes/s ({limit} bytes) does not fit 32 bits"
            ));
        }
        // tc_calc_xmittime(opt.rate.rate, buffer): the 32-bit rate, time in us, then ticks,
        // each step truncated to unsigned int (saturating where C would be undefined).
        let rate32 = u32::try_from(rate).unwrap_or(u32::MAX);
        let us = (1e6 * (f64::from(burst) / f64::from(rate32))) as u32;
        let buffer_ticks = (f64::from(us) * TICKS_PER_US) as u32;
        Ok(Tbf {
            rate,
            burst,
            limit: limit as u32,
            buffer_ticks,
        })
    }

    /// `struct tc_tbf_qopt` as `tc` fills it: rate spec (cell_log 3 for tc's default mtu of
    /// 2047, Ethernet link layer, cell_align -1, the rate saturated at 32 bits), no peak rate,
    /// limit, buffer, mtu 0. Native byte order, as the kernel reads it.
    pub(crate) fn qopt(&self) -> [u8; TBF_QOPT_LEN] {
        let mut q = [0u8; TBF_QOPT_LEN];
        q[0] = 3; // cell_log
        q[1] = TC_LINKLAYER_ETHERNET;
        // overhead (2..4) and mpu (6..8) stay 0.
        q[4..6].copy_from_slice(&(-1i16).to_ne_bytes()); // cell_align
        let rate32 = u32::try_from(self.rate).unwrap_or(u32::MAX);
        q[8..12].copy_from_slice(&rate32.to_ne_bytes());
        // peakrate (12..24) stays 0.
        q[24..28].copy_from_slice(&self.limit.to_ne_bytes());
        q[28..32].copy_from_slice(&self.buffer_ticks.to_ne_bytes());
        // mtu (32..36) stays 0.
        q
    }

    /// The attributes inside `TCA_OPTIONS`, in `tc`'s order: parameters, burst, 64-bit rate
    /// when the rate does not fit 32 bits.
    pub(crate) fn options(&self) -> Vec<TcOption> {
        let mut o = vec![
            TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, self.qopt().to_vec())),
            TcOption::Other(DefaultNla::new(
                TCA_TBF_BURST,
                self.burst.to_ne_bytes().to_vec(),
            )),
        ];
        if self.rate >= 1 << 32 {
            o.push(TcOption::Other(DefaultNla::new(
                TCA_TBF_RATE64,
                self.rate.to_ne_bytes().to_vec(),
            )));
        }
        o
    }
}

/// The rate in bytes/s of a tbf qdisc's options as the kernel reports them (its `TCA_OPTIONS`
/// attribute's value): `TCA_TBF_RATE64` when present, else the qopt's 32-bit rate, as `tc`
/// reads it.
pub(crate) fn tbf_rate(options: &[u8]) -> Result<u64, String> {
    let mut rate32 = None;
    let mut rate64 = None;
    for nla in NlasIterator::new(options) {
        let nla = nla.map_err(|e| format!("tbf options: {e}"))?;
        let v = nla.value();
        match nla.kind() {
            TCA_TBF_PARMS if v.len() >= TBF_QOPT_LEN => {
                rate32 = Some(u32::from_ne_bytes([v[8], v[9], v[10], v[11]]));
            }
            TCA_TBF_RATE64 if v.len() >= 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v[..8]);
                rate64 = Some(u64::from_ne_bytes(b));
            }
            _ => {}
        }
    }
    rate64
        .or(rate32.map(u64::from))
        .ok_or_else(|| "tbf options without TCA_TBF_PARMS".to_string())
}

/// The value bytes of an attribute the crate kept untyped.
fn nla_value(nla: &DefaultNla) -> Vec<u8> {
    let mut v = vec![0u8; nla.value_len()];
    nla.emit_value(&mut v);
    v
}

/// The raw `TCA_OPTIONS` of a tc message whose kind the crate does not type (tbf's).
pub(crate) fn raw_options(attributes: &[TcAttribute]) -> Option<Vec<u8>> {
    attributes.iter().find_map(|a| match a {
        TcAttribute::Options(o) => o.iter().find_map(|o| match o {
            TcOption::Other(nla) if nla.kind() & 0x3fff == TCA_OPTIONS => Some(nla_value(nla)),
            _ => None,
        }),
        _ => None,
    })
}

/// One synchronous rtnetlink socket, bound in the network namespace it was created in.
pub(crate) struct Rtnl {
    socket: Socket,
    seq: u32,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rtnl").field("seq", &self.seq).finish()
    }
}

impl Rtnl {
    /// A socket in this thread's network namespace, asking for extended acks (the kernel's
    /// error text) and capped acks (no echo of the request).
    pub(crate) fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_ext_ack(true)?;
        socket.set_cap_ack(true)?;
        Ok(Rtnl {
            socket,
            seq: 0,
            tx: Vec::with_capacity(256),
            rx: Vec::with_capacity(RX_BYTES),
        })
    }

    /// A socket in the network namespace `ns` (an open `/run/netns/<name>` or
    /// `/proc/<pid>/ns/net`), created on a thread that joins it and then ends.
    pub(crate) fn open_in(ns: &File) -> io::Result<Rtnl> {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                Rtnl::open()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
        })
    }

    /// Sends one request; returns its sequence number.
    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        self.tx.clear();
        self.tx.resize(packet.buffer_len(), 0);
        packet.serialize(&mut self.tx);
        self.socket.send(&self.tx, 0)?;
        Ok(self.seq)
    }

    /// Sends `message` and reads the kernel's answers to it until its ack, error or end of
    /// dump, handing each reply to `each`. Answers to earlier requests are skipped.
    fn exchange(
        &mut self,
        request: impl Fn() -> String,
        message: RouteNetlinkMessage,
        flags: u16,
        mut each: impl FnMut(RouteNetlinkMessage) -> Result<(), String>,
    ) -> Result<(), Failure> {
        let seq = self
            .send(message, flags | NLM_F_ACK)
            .map_err(|e| Failure::new(request(), e))?;
        let decode =
            |e: DecodeError| Failure::new(request(), io::Error::new(io::ErrorKind::InvalidData, e));
        loop {
            self.rx.clear();
            let n = self
                .socket
                .recv(&mut self.rx, libc::MSG_TRUNC)
                .map_err(|e| Failure::new(request(), e))?;
            if n > self.rx.len() {
                return Err(Failure::new(
                    request(),
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a {n}-byte answer does not fit {RX_BYTES} bytes"),
                    ),
                ));
            }
            let mut offset = 0;
            while offset < n {
                let bytes = &self.rx[offset..n];
                let buf = NetlinkBuffer::new_checked(bytes).map_err(decode)?;
                let len = buf.length() as usize;
                offset += (len + 3) & !3;
                if buf.sequence_number() != seq {
                    continue;
                }
                match buf.message_type() {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let flags = buf.flags();
                        let payload = buf.payload();
                        let code = payload
                            .get(..4)
                            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                            .unwrap_or(0);
                        if code == 0 {
                            return Ok(());
                        }
                        return Err(Failure {
                            request: request(),
                            source: io::Error::from_raw_os_error(-code),
                            kernel_says: extack(&payload[4..], flags),
                        });
                    }
                    _ => {
                        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..len])
                            .map_err(decode)?;
                        if let NetlinkPayload::InnerMessage(inner) = msg.payload {
                            each(inner).map_err(|e| {
                                Failure::new(
                                    request(),
                                    io::Error::new(io::ErrorKind::InvalidData, e),
                                )
                            })?;
                        }
                    }
                }
            }
        }
    }

    /// The index of link `dev` in this socket's namespace (`RTM_GETLINK` by name).
    pub(crate) fn link_index(&mut self, dev: &str) -> Result<u32, Failure> {
        let mut get = LinkMessage::default();
        get.attributes.push(LinkAttribute::IfName(dev.to_string()));
        let mut index = None;
        self.exchange(
            || format!("RTM_GETLINK {dev}"),
            RouteNetlinkMessage::GetLink(get),
            0,
            |m| {
                if let RouteNetlinkMessage::NewLink(l) = m {
                    index = Some(l.header.index);
                }
                Ok(())
            },
        )?;
        index.ok_or_else(|| {
            Failure::new(
                format!("RTM_GETLINK {dev}"),
                io::Error::new(io::ErrorKind::InvalidData, "acknowledged without a link"),
            )
        })
    }

    /// Replaces the root qdisc of link `index` by `tbf` in one request (`NLM_F_CREATE |
    /// NLM_F_REPLACE`, as `tc qdisc replace`): a tbf root is changed in place, any other root
    /// swapped atomically; on error the old one stays.
    pub(crate) fn replace_root_tbf(&mut self, index: u32, tbf: &Tbf) -> Result<(), Failure> {
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.parent = TcHandle::ROOT;
        msg.attributes.push(TcAttribute::Kind("tbf".to_string()));
        msg.attributes.push(TcAttribute::Options(tbf.options()));
        self.exchange(
            || format!("RTM_NEWQDISC tbf rate {} B/s on link {index}", tbf.rate),
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            |_| Ok(()),
        )
    }

    /// The root qdisc of link `index`: its kind and, for a tbf, its rate in bytes/s.
    pub(crate) fn root_qdisc(
        &mut self,
        index: u32,
    ) -> Result<Option<(String, Option<u64>)>, Failure> {
        let mut found = None;
        self.exchange(
            || format!("RTM_GETQDISC dump for link {index}"),
            RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
            NLM_F_DUMP,
            |m| {
                let RouteNetlinkMessage::NewQueueDiscipline(q) = m else {
                    return Ok(());
                };
                if q.header.index != index as i32 || q.header.parent != TcHandle::ROOT {
                    return Ok(());
                }
                let kind = q.attributes.iter().find_map(|a| match a {
                    TcAttribute::Kind(k) => Some(k.clone()),
                    _ => None,
                });
                let kind = kind.ok_or("a root qdisc without a kind")?;
                let rate = if kind == "tbf" {
                    let options = raw_options(&q.attributes).ok_or("a tbf without options")?;
                    Some(tbf_rate(&options)?)
                } else {
                    None
                };
                found = Some((kind, rate));
                Ok(())
            },
        )?;
        Ok(found)
    }
}

/// The kernel's extended-ack message in an error's payload after the code: the echoed request
/// header (the whole request unless `NLM_F_CAPPED`), then attributes when `NLM_F_ACK_TLVS`.
fn extack(after_code: &[u8], flags: u16) -> String {
    let skip = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        match after_code.get(..4) {
            Some(l) => u32::from_ne_bytes([l[0], l[1], l[2], l[3]]) as usize,
            None => return String::new(),
        }
    };
    let Some(tlvs) = after_code.get((skip + 3) & !3..) else {
        return String::new();
    };
    NlasIterator::new(tlvs)
        .flatten()
        .find(|n| n.kind() == NLMSGERR_ATTR_MSG)
        .map(|n| {
            String::from_utf8_lossy(n.value())
                .trim_end_matches('\0')
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tbf_of_8_mbit_is_what_tc_computes() {
        // tc qdisc replace dev D root tbf rate 8000000bit burst 16384 latency 50ms
        let t = Tbf::tc(1_000_000, 16_384, 50_000).unwrap();
        assert_eq!(t.limit, 66_384); // 1e6 B/s x 50 ms + 16384
        assert_eq!(t.buffer_ticks, 256_000); // 16384 us at 1 B/us, 15.625 ticks per us
        let q = t.qopt();
        assert_eq!(&q[..8], &[3, 1, 0, 0, 0xff, 0xff, 0, 0]);
        assert_eq!(u32::from_ne_bytes(q[8..12].try_into().unwrap()), 1_000_000);
        assert!(q[12..24].iter().all(|&b| b == 0), "no peak rate");
        assert_eq!(u32::from_ne_bytes(q[24..28].try_into().unwrap()), 66_384);
        assert_eq!(u32::from_ne_bytes(q[28..32].try_into().unwrap()), 256_000);
        assert_eq!(&q[32..], &[0, 0, 0, 0]);
        let kinds: Vec<u16> = t.options().iter().map(|o| o.kind()).collect();
        assert_eq!(kinds, [TCA_TBF_PARMS, TCA_TBF_BURST]);
    }

    #[test]
    fn rates_beyond_32_bits_carry_rate64_and_a_saturated_qopt_rate() {
        let t = Tbf::tc(5_000_000_000, 50_000_000, 50_000).unwrap();
        assert_eq!(t.limit, 300_000_000);
        assert_eq!(
            u32::from_ne_bytes(t.qopt()[8..12].try_into().unwrap()),
            u32::MAX
        );
        let kinds: Vec<u16> = t.options().iter().map(|o| o.kind()).collect();
        assert_eq!(kinds, [TCA_TBF_PARMS, TCA_TBF_BURST, TCA_TBF_RATE64]);
    }

    #[test]
    fn limits_beyond_32_bits_are_refused_not_wrapped() {
        let e = Tbf::tc(100_000_000_000, 1_000_000_000, 50_000).unwrap_err();
        assert!(e.contains("does not fit 32 bits"), "{e}");
        assert!(Tbf::tc(1000, 1 << 32, 50_000).is_err());
        // The last rate whose 50 ms queue plus 10 ms burst fits: 0.06 x rate <= u32::MAX.
        let last = (f64::from(u32::MAX) / 0.06) as u64 - 1;
        assert!(Tbf::tc(last, last / 100, 50_000).is_ok());
        assert!(Tbf::tc(last + 1000, (last + 1000) / 100, 50_000).is_err());
    }

    #[test]
    fn an_error_answer_yields_the_kernel_text() {
        // code, a capped echo of a 16-byte header, then NLMSGERR_ATTR_MSG "No such device".
        let mut p = vec![0u8; 16];
        p[..4].copy_from_slice(&36u32.to_ne_bytes());
        let text = b"No such device\0";
        p.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text);
        assert_eq!(extack(&p, NLM_F_CAPPED), "No such device");
        assert_eq!(extack(&p[..10], NLM_F_CAPPED), "");
    }

    proptest! {
        /// What the write path puts in a tc message, the read path finds again: the whole
        /// message emitted and parsed back by netlink-packet-route, for every rate tbf holds.
        #[test]
        fn tbf_rate_survives_the_message_round_trip(rate in 1u64..=71_000_000_000) {
            let burst = (rate / 100).max(16 * 1024);
            let t = Tbf::tc(rate, burst, 50_000).unwrap();
            prop_assert_eq!(
                u64::from(t.limit),
                (rate as f64 * 0.05 + burst as f64) as u64
            );
            let mut msg = TcMessage::with_index(7);
            msg.header.parent = TcHandle::ROOT;
            msg.attributes.push(TcAttribute::Kind("tbf".to_string()));
            msg.attributes.push(TcAttribute::Options(t.options()));
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST;
            let mut packet = NetlinkMessage::new(
                header,
                NetlinkPayload::from(RouteNetlinkMessage::NewQueueDiscipline(msg)),
            );
            packet.finalize();
            let mut bytes = vec![0u8; packet.buffer_len()];
            packet.serialize(&mut bytes);
            let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
            let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewQueueDiscipline(q)) =
                back.payload
            else {
                panic!("not a qdisc message: {back:?}");
            };
            let options = raw_options(&q.attributes).expect("options");
            prop_assert_eq!(tbf_rate(&options).unwrap(), rate);
            prop_assert_eq!(q.header.index, 7);
        }
    }
}
