//! The dps role's datagram: a fixed header and one body, little-endian. Transfers travel as
//! dps-core's own [`Message`] (the type the simulator's ledger uses), so the daemon and the
//! simulator speak one protocol; the only other body is a VM's report to the bank.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `VDPS` |
//! | 4 | 1 | version (2; 1 had no room in reports) |
//! | 5 | 1 | body kind: 0 offer, 1 accept, 2 reject, 3 accept part, 4 report |
//! | 6 | 2 | sending host's index (hosts sorted by name) |
//! | 8 | 8 | cluster fingerprint (FNV-1a 64 of the hosts, VMs and W; mismatched configs never talk) |
//! | 16 | 8 | the sender's lowest open transfer id (every id below it is closed at the sender) |
//! | 24 | .. | body |
//!
//! Bodies: offer = id u64, from party (tag u8: 0 VM, 1 bank; index u32), to party, amount f64
//! (26 bytes); accept/reject = id (8); accept part = id, accepted f64 (16); report = VM u32,
//! share f64, shortage f64, its host's room f64 (28). Any other length, kind, tag, or a non-finite number is an error.

use dps_core::{Message, Party, ProgramId, TransferId, VmId};

/// Magic number at offset 0.
pub const MAGIC: [u8; 4] = *b"VDPS";
/// The format version.
pub const VERSION: u8 = 2;
/// Header length in bytes.
pub const HEADER_LEN: usize = 24;
/// The longest datagram (header plus an offer).
pub const MAX_LEN: usize = HEADER_LEN + 28;

/// What a datagram carries.
///
/// ```
/// use vibrad::dps::wire::Body;
/// let b = Body::Transfer(dps_core::Message::Accept { id: dps_core::TransferId(3) });
/// assert!(matches!(b, Body::Transfer(_)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Body {
    /// A share transfer message, dps-core's own type.
    Transfer(Message),
    /// Bank mode: a VM's share and shortage this period (SPEC 6's f_i), sent to the bank.
    Report {
        /// The VM (global index, the order of `[[dps.vm]]`).
        vm: VmId,
        /// Its share now, in CPUs.
        share: f64,
        /// Its shortage, in CPUs.
        shortage: f64,
        /// Its host's room now (unbooked CPUs): the headroom the bank caps grants by with
        /// `capped_grants`.
        room: f64,
    },
}

/// One datagram.
///
/// ```
/// use vibrad::dps::wire::{Body, Envelope};
/// let e = Envelope { from_host: 1, cluster: 9, low_open: 4,
///     body: Body::Transfer(dps_core::Message::Reject { id: dps_core::TransferId(4) }) };
/// assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Envelope {
    /// The sending host's index.
    pub from_host: u16,
    /// The cluster fingerprint.
    pub cluster: u64,
    /// The sender's lowest open transfer id.
    pub low_open: u64,
    /// The body.
    pub body: Body,
}

/// Why a datagram could not be decoded.
///
/// ```
/// let e = vibrad::dps::wire::Envelope::decode(b"nope").unwrap_err();
/// assert!(e.to_string().contains("length"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Wrong length for the header or the body kind.
    #[error("bad length {got} (expected {expected})")]
    Length {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// Not a dps datagram.
    #[error("bad magic")]
    Magic,
    /// A version this daemon does not speak.
    #[error("unsupported version {0}")]
    Version(u8),
    /// Unknown body kind.
    #[error("unknown body kind {0}")]
    Kind(u8),
    /// Unknown party tag.
    #[error("unknown party tag {0}")]
    Party(u8),
    /// A NaN or infinite number.
    #[error("non-finite {0}")]
    NotFinite(&'static str),
}

fn put_party(out: &mut Vec<u8>, p: Party) {
    let (tag, i) = match p {
        Party::Vm(v) => (0u8, v.0),
        Party::Bank(b) => (1u8, b.0),
    };
    out.push(tag);
    out.extend_from_slice(&i.to_le_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[self.at..self.at + N]);
        self.at += N;
        a
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
    fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        let x = f64::from_le_bytes(self.bytes());
        if x.is_finite() {
            Ok(x)
        } else {
            Err(DecodeError::NotFinite(what))
        }
    }
    fn party(&mut self) -> Result<Party, DecodeError> {
        let [tag] = self.bytes::<1>();
        let i = self.u32();
        match tag {
            0 => Ok(Party::Vm(VmId(i))),
            1 => Ok(Party::Bank(ProgramId(i))),
            t => Err(DecodeError::Party(t)),
        }
    }
}

impl Envelope {
    /// The datagram's bytes.
    ///
    /// ```
    /// use vibrad::dps::wire::{Body, Envelope, HEADER_LEN};
    /// let e = Envelope { from_host: 0, cluster: 1, low_open: 0,
    ///     body: Body::Transfer(dps_core::Message::Accept { id: dps_core::TransferId(1) }) };
    /// assert_eq!(e.encode().len(), HEADER_LEN + 8);
    /// ```
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        let kind: u8 = match self.body {
            Body::Transfer(Message::Offer { .. }) => 0,
            Body::Transfer(Message::Accept { .. }) => 1,
            Body::Transfer(Message::Reject { .. }) => 2,
            Body::Transfer(Message::AcceptPart { .. }) => 3,
            Body::Report { .. } => 4,
        };
        out.push(kind);
        out.extend_from_slice(&self.from_host.to_le_bytes());
        out.extend_from_slice(&self.cluster.to_le_bytes());
        out.extend_from_slice(&self.low_open.to_le_bytes());
        match self.body {
            Body::Transfer(Message::Offer {
                id,
                from,
                to,
                amount,
            }) => {
                out.extend_from_slice(&id.0.to_le_bytes());
                put_party(&mut out, from);
                put_party(&mut out, to);
                out.extend_from_slice(&amount.to_le_bytes());
            }
            Body::Transfer(Message::Accept { id } | Message::Reject { id }) => {
                out.extend_from_slice(&id.0.to_le_bytes());
            }
            Body::Transfer(Message::AcceptPart { id, accepted }) => {
                out.extend_from_slice(&id.0.to_le_bytes());
                out.extend_from_slice(&accepted.to_le_bytes());
            }
            Body::Report {
                vm,
                share,
                shortage,
                room,
            } => {
                out.extend_from_slice(&vm.0.to_le_bytes());
                out.extend_from_slice(&share.to_le_bytes());
                out.extend_from_slice(&shortage.to_le_bytes());
                out.extend_from_slice(&room.to_le_bytes());
            }
        }
        out
    }

    /// Decodes a datagram; any deviation from the layout is an error.
    ///
    /// ```
    /// use vibrad::dps::wire::{DecodeError, Envelope};
    /// let mut b = vec![0u8; 32];
    /// b[..4].copy_from_slice(b"VDPS");
    /// b[4] = vibrad::dps::wire::VERSION;
    /// b[5] = 9;
    /// assert_eq!(Envelope::decode(&b), Err(DecodeError::Kind(9)));
    /// ```
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < HEADER_LEN {
            return Err(DecodeError::Length {
                got: b.len(),
                expected: HEADER_LEN,
            });
        }
        if b[..4] != MAGIC {
            return Err(DecodeError::Magic);
        }
        if b[4] != VERSION {
            return Err(DecodeError::Version(b[4]));
        }
        let kind = b[5];
        let body_len = match kind {
            0 => 26,
            1 | 2 => 8,
            3 => 16,
            4 => 28,
            k => return Err(DecodeError::Kind(k)),
        };
        if b.len() != HEADER_LEN + body_len {
            return Err(DecodeError::Length {
                got: b.len(),
                expected: HEADER_LEN + body_len,
            });
        }
        let mut r = Reader { b, at: 6 };
        let from_host = u16::from_le_bytes(r.bytes());
        let cluster = r.u64();
        let low_open = r.u64();
        let body = match kind {
            0 => {
                let id = TransferId(r.u64());
                let from = r.party()?;
                let to = r.party()?;
                let amount = r.f64("amount")?;
                Body::Transfer(Message::Offer {
                    id,
                    from,
                    to,
                    amount,
                })
            }
            1 => Body::Transfer(Message::Accept {
                id: TransferId(r.u64()),
            }),
            2 => Body::Transfer(Message::Reject {
                id: TransferId(r.u64()),
            }),
            3 => {
                let id = TransferId(r.u64());
                let accepted = r.f64("accepted")?;
                Body::Transfer(Message::AcceptPart { id, accepted })
            }
            _ => {
                let vm = VmId(r.u32());
                let share = r.f64("share")?;
                let shortage = r.f64("shortage")?;
                let room = r.f64("room")?;
                Body::Report {
                    vm,
                    share,
                    shortage,
                    room,
                }
            }
        };
        Ok(Envelope {
            from_host,
            cluster,
            low_open,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn party() -> impl Strategy<Value = Party> {
        prop_oneof![
            any::<u32>().prop_map(|v| Party::Vm(VmId(v))),
            any::<u32>().prop_map(|p| Party::Bank(ProgramId(p))),
        ]
    }

    fn body() -> impl Strategy<Value = Body> {
        let x = -1e300f64..1e300;
        prop_oneof![
            (any::<u64>(), party(), party(), x.clone()).prop_map(|(id, from, to, amount)| {
                Body::Transfer(Message::Offer {
                    id: TransferId(id),
                    from,
                    to,
                    amount,
                })
            }),
            any::<u64>().prop_map(|id| Body::Transfer(Message::Accept { id: TransferId(id) })),
            any::<u64>().prop_map(|id| Body::Transfer(Message::Reject { id: TransferId(id) })),
            (any::<u64>(), x.clone()).prop_map(|(id, accepted)| Body::Transfer(
                Message::AcceptPart {
                    id: TransferId(id),
                    accepted
                }
            )),
            (any::<u32>(), x.clone(), x.clone(), x).prop_map(|(vm, share, shortage, room)| {
                Body::Report {
                    vm: VmId(vm),
                    share,
                    shortage,
                    room,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(from_host in any::<u16>(), cluster in any::<u64>(), low_open in any::<u64>(), body in body()) {
            let e = Envelope { from_host, cluster, low_open, body };
            let b = e.encode();
            prop_assert!(b.len() <= MAX_LEN);
            prop_assert_eq!(Envelope::decode(&b).unwrap(), e);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Envelope::decode(&b);
        }

        #[test]
        fn truncated_or_extended_datagrams_are_refused(body in body(), cut in 1usize..8) {
            let e = Envelope { from_host: 0, cluster: 0, low_open: 0, body };
            let b = e.encode();
            prop_assert!(Envelope::decode(&b[..b.len() - cut]).is_err());
            let mut longer = b.clone();
            longer.push(0);
            prop_assert!(Envelope::decode(&longer).is_err());
        }
    }

    #[test]
    fn nan_amounts_and_bad_tags_are_refused() {
        let e = Envelope {
            from_host: 0,
            cluster: 0,
            low_open: 0,
            body: Body::Transfer(Message::Offer {
                id: TransferId(1),
                from: Party::Vm(VmId(0)),
                to: Party::Vm(VmId(1)),
                amount: f64::NAN,
            }),
        };
        assert_eq!(
            Envelope::decode(&e.encode()),
            Err(DecodeError::NotFinite("amount"))
        );
        let mut b = e.encode();
        b[HEADER_LEN + 8] = 7;
        assert_eq!(Envelope::decode(&b), Err(DecodeError::Party(7)));
        b[4] = 1; // version 1 reports had no room: refused, not misread
        assert_eq!(Envelope::decode(&b), Err(DecodeError::Version(1)));
    }
}
