//! The `feature-rx-timestamp` handshake of SPEC 7 as two small state machines, one per end.
//! Stock netfront drops a packet with an unknown extra type and stock netback disables the vif,
//! so a backend sends timestamp records only after the frontend has written
//! `feature-rx-timestamp = 1` in its xenstore directory and the backend has answered with the
//! same key in its own. This module owns the rules only: callers do the xenstore I/O and feed
//! the values they read.
//!
//! # High-resolution records need their own key
//!
//! The high-resolution records of [`crate::hires`] reuse type 6 with flag bit 1 or 2 and a
//! payload that is **not** packed48 (whole seconds, or a nanosecond offset). A SPEC-7 decoder
//! that ignores unknown flag bits, as Xen's code habitually does, would silently misread an
//! offset as a time. So **a peer that only agreed `feature-rx-timestamp` must never receive
//! them**: they are sent only after the frontend has also written
//! [`FEATURE_RX_TIMESTAMP_HIRES`] `= 1` and the backend has acknowledged it with the same key,
//! and that key means nothing unless `feature-rx-timestamp` is agreed too. The backend state
//! machine enforces it by type: [`crate::HiResEncoder::encode`] needs a [`HiResAgreed`], which
//! only [`BackendNegotiation::hires`] hands out, and only while both keys are acknowledged.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::TsError;

/// The xenstore key both ends write, each in its own directory.
pub const FEATURE_RX_TIMESTAMP: &str = "feature-rx-timestamp";

/// The xenstore key for the high-resolution mode, written by the frontend and acknowledged by
/// the backend like [`FEATURE_RX_TIMESTAMP`]; meaningful only once that key is agreed.
///
/// ```
/// assert_eq!(vtimestamp::FEATURE_RX_TIMESTAMP_HIRES, "feature-rx-timestamp-hires");
/// ```
pub const FEATURE_RX_TIMESTAMP_HIRES: &str = "feature-rx-timestamp-hires";

/// A xenstore write the caller must perform in its own directory.
///
/// ```
/// let w = vtimestamp::FrontendNegotiation::new().request();
/// assert_eq!((w.key, w.value), ("feature-rx-timestamp", "1"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenstoreWrite {
    /// The key, relative to the writer's directory.
    pub key: &'static str,
    /// The value to write.
    pub value: &'static str,
}

const WRITE_ON: XenstoreWrite = XenstoreWrite {
    key: FEATURE_RX_TIMESTAMP,
    value: "1",
};
const WRITE_OFF: XenstoreWrite = XenstoreWrite {
    key: FEATURE_RX_TIMESTAMP,
    value: "0",
};
const HIRES_ON: XenstoreWrite = XenstoreWrite {
    key: FEATURE_RX_TIMESTAMP_HIRES,
    value: "1",
};
const HIRES_OFF: XenstoreWrite = XenstoreWrite {
    key: FEATURE_RX_TIMESTAMP_HIRES,
    value: "0",
};

/// Reads a `feature-rx-timestamp` value: absent or `"0"` is off, `"1"` is on, anything else
/// is an error (xenstore values are strings; no other spelling is accepted).
///
/// ```
/// use vtimestamp::parse_feature;
/// assert_eq!(parse_feature(None)?, false);
/// assert_eq!(parse_feature(Some("1"))?, true);
/// assert!(parse_feature(Some("yes")).is_err());
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
pub fn parse_feature(value: Option<&str>) -> Result<bool, TsError> {
    match value {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(TsError::BadFeatureValue(other.to_owned())),
    }
}

/// Where a frontend (the guest's netfront) stands.
///
/// ```
/// assert_eq!(vtimestamp::FrontendNegotiation::new().state(), vtimestamp::FrontendState::Off);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendState {
    /// Not requested: a timestamp record would be a protocol error.
    Off,
    /// `feature-rx-timestamp = 1` written; the backend has not acknowledged (yet).
    Requested,
    /// Both ends wrote 1.
    Agreed,
}

impl FrontendState {
    fn name(self) -> &'static str {
        match self {
            FrontendState::Off => "frontend off",
            FrontendState::Requested => "frontend requested",
            FrontendState::Agreed => "agreed",
        }
    }
}

/// The frontend's side of the handshake. Owned by one connection: `Send`, not shared.
///
/// ```
/// use vtimestamp::{FrontendNegotiation, FrontendState};
/// let mut fe = FrontendNegotiation::new();
/// assert!(fe.accept_record().is_err());
/// let write = fe.request(); // the caller writes it into the frontend's directory
/// assert_eq!(write.value, "1");
/// assert_eq!(fe.on_backend_feature(Some("1"))?, FrontendState::Agreed);
/// fe.accept_record()?;
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FrontendNegotiation {
    state: FrontendState,
    hires: FrontendState,
}

impl Default for FrontendNegotiation {
    fn default() -> Self {
        Self::new()
    }
}

impl FrontendNegotiation {
    /// A frontend that has not asked for timestamps.
    ///
    /// ```
    /// let fe = vtimestamp::FrontendNegotiation::new();
    /// assert!(fe.accept_record().is_err());
    /// ```
    pub const fn new() -> Self {
        FrontendNegotiation {
            state: FrontendState::Off,
            hires: FrontendState::Off,
        }
    }

    /// The current state.
    ///
    /// ```
    /// let mut fe = vtimestamp::FrontendNegotiation::new();
    /// fe.request();
    /// assert_eq!(fe.state(), vtimestamp::FrontendState::Requested);
    /// ```
    pub const fn state(&self) -> FrontendState {
        self.state
    }

    /// Asks for timestamps: returns the write to perform. Idempotent.
    ///
    /// ```
    /// let mut fe = vtimestamp::FrontendNegotiation::new();
    /// assert_eq!(fe.request(), fe.request());
    /// ```
    pub fn request(&mut self) -> XenstoreWrite {
        if self.state == FrontendState::Off {
            self.state = FrontendState::Requested;
        }
        WRITE_ON
    }

    /// Feeds the value read from the backend's directory (its watch fired). A backend "1"
    /// without a request leaves the frontend off: only the frontend can start the handshake.
    /// A withdrawn acknowledgement (absent or "0") falls back to `Requested`. A malformed value
    /// is an error and changes nothing.
    ///
    /// ```
    /// let mut fe = vtimestamp::FrontendNegotiation::new();
    /// assert_eq!(fe.on_backend_feature(Some("1"))?, vtimestamp::FrontendState::Off);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn on_backend_feature(&mut self, value: Option<&str>) -> Result<FrontendState, TsError> {
        let on = parse_feature(value)?;
        self.state = match (self.state, on) {
            (FrontendState::Off, _) => FrontendState::Off,
            (_, true) => FrontendState::Agreed,
            (_, false) => FrontendState::Requested,
        };
        Ok(self.state)
    }

    /// Whether a received timestamp record may be trusted. Accepted once requested: the
    /// backend only sends after writing its acknowledgement, which the frontend's watch may
    /// see later than the first record; refused while off.
    ///
    /// ```
    /// let mut fe = vtimestamp::FrontendNegotiation::new();
    /// fe.request();
    /// assert!(fe.accept_record().is_ok());
    /// ```
    pub fn accept_record(&self) -> Result<(), TsError> {
        match self.state {
            FrontendState::Off => Err(TsError::NotNegotiated(self.state.name())),
            FrontendState::Requested | FrontendState::Agreed => Ok(()),
        }
    }

    /// Withdraws the request (the frontend disconnects), high-resolution mode included: returns
    /// the two writes to perform (`feature-rx-timestamp = 0`, `feature-rx-timestamp-hires = 0`),
    /// so that no stale high-resolution request outlives the connection.
    ///
    /// ```
    /// let mut fe = vtimestamp::FrontendNegotiation::new();
    /// fe.request_hires();
    /// let [plain, hires] = fe.withdraw();
    /// assert_eq!((plain.value, hires.value), ("0", "0"));
    /// assert!(fe.accept_record().is_err());
    /// assert!(fe.accept_hires_record().is_err());
    /// ```
    pub fn withdraw(&mut self) -> [XenstoreWrite; 2] {
        self.state = FrontendState::Off;
        self.hires = FrontendState::Off;
        [WRITE_OFF, HIRES_OFF]
    }

    /// Asks for timestamps in high-resolution mode: returns the writes to perform,
    /// `feature-rx-timestamp = 1` then `feature-rx-timestamp-hires = 1` (the second key means
    /// nothing without the first). Only a frontend whose decoder understands the
    /// high-resolution records ([`crate::HiResDecoder`]) may call this. Idempotent.
    ///
    /// ```
    /// use vtimestamp::{FrontendNegotiation, FrontendState};
    /// let mut fe = FrontendNegotiation::new();
    /// let [plain, hires] = fe.request_hires();
    /// assert_eq!((plain.key, hires.key), ("feature-rx-timestamp", "feature-rx-timestamp-hires"));
    /// assert_eq!((fe.state(), fe.hires_state()), (FrontendState::Requested, FrontendState::Requested));
    /// ```
    pub fn request_hires(&mut self) -> [XenstoreWrite; 2] {
        let plain = self.request();
        if self.hires == FrontendState::Off {
            self.hires = FrontendState::Requested;
        }
        [plain, HIRES_ON]
    }

    /// Where the high-resolution mode stands (`Off` unless [`Self::request_hires`] was called).
    ///
    /// ```
    /// let fe = vtimestamp::FrontendNegotiation::new();
    /// assert_eq!(fe.hires_state(), vtimestamp::FrontendState::Off);
    /// ```
    pub const fn hires_state(&self) -> FrontendState {
        self.hires
    }

    /// Feeds the value of `feature-rx-timestamp-hires` read from the backend's directory, with
    /// the same rules as [`Self::on_backend_feature`]: a backend "1" without a high-resolution
    /// request leaves the mode off. A malformed value is an error and changes nothing.
    ///
    /// ```
    /// use vtimestamp::{FrontendNegotiation, FrontendState};
    /// let mut fe = FrontendNegotiation::new();
    /// fe.request(); // plain only
    /// assert_eq!(fe.on_backend_hires(Some("1"))?, FrontendState::Off);
    /// fe.request_hires();
    /// assert_eq!(fe.on_backend_hires(Some("1"))?, FrontendState::Agreed);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn on_backend_hires(&mut self, value: Option<&str>) -> Result<FrontendState, TsError> {
        let on = parse_feature(value)?;
        self.hires = match (self.hires, on) {
            (FrontendState::Off, _) => FrontendState::Off,
            (_, true) => FrontendState::Agreed,
            (_, false) => FrontendState::Requested,
        };
        Ok(self.hires)
    }

    /// Whether a received high-resolution record (flag bit 1 or 2) may be trusted: only once
    /// this frontend has asked for the mode. A frontend that asked for plain records only must
    /// treat one as a protocol error.
    ///
    /// ```
    /// let mut fe = vtimestamp::FrontendNegotiation::new();
    /// fe.request();
    /// assert!(fe.accept_hires_record().is_err());
    /// fe.request_hires();
    /// assert!(fe.accept_hires_record().is_ok());
    /// ```
    pub fn accept_hires_record(&self) -> Result<(), TsError> {
        match (self.state, self.hires) {
            (FrontendState::Off, _) | (_, FrontendState::Off) => {
                Err(TsError::NotNegotiated("frontend high-resolution mode off"))
            }
            _ => Ok(()),
        }
    }
}

/// Where a backend (the host's netback) stands.
///
/// ```
/// assert_eq!(vtimestamp::BackendNegotiation::new().state(), vtimestamp::BackendState::Off);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Sending a timestamp record would break a stock frontend.
    Off,
    /// The frontend asked and this backend acknowledged: records may be sent.
    Acknowledged,
}

/// The backend's side of the handshake. Owned by one vif: `Send`, not shared.
///
/// The state-changing calls return the xenstore writes to perform in the backend's directory
/// (none, one or two); the caller must complete them before sending the first record.
///
/// ```
/// use vtimestamp::BackendNegotiation;
/// let mut be = BackendNegotiation::new();
/// assert!(be.may_send().is_err());
/// let ack = be.on_frontend_feature(Some("1"))?;
/// assert_eq!((ack[0].key, ack[0].value), ("feature-rx-timestamp", "1"));
/// be.may_send()?;
/// // Plain records only: the frontend did not ask for the high-resolution mode.
/// assert!(be.hires().is_err());
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BackendNegotiation {
    state: BackendState,
    /// The frontend's latest `feature-rx-timestamp-hires` value.
    hires_wanted: bool,
    /// Nonzero while the high-resolution mode is acknowledged: the agreement's identity.
    hires_epoch: u64,
}

impl Default for BackendNegotiation {
    fn default() -> Self {
        Self::new()
    }
}

/// Agreement identities, unique in the process, so an encoder notices a new agreement (a
/// reconnect) and sends a fresh base to the fresh decoder.
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// Proof that the high-resolution mode is acknowledged on a vif right now: the only way to call
/// [`crate::HiResEncoder::encode`]. It borrows the [`BackendNegotiation`] it came from, so the
/// negotiation cannot change (a withdrawal, a reset) while the proof is held. `Copy`; get one
/// per packet or per batch with [`BackendNegotiation::hires`].
///
/// ```compile_fail
/// let mut be = vtimestamp::BackendNegotiation::new();
/// be.on_frontend_feature(Some("1")).unwrap();
/// be.on_frontend_hires(Some("1")).unwrap();
/// let agreed = be.hires().unwrap();
/// be.reset(); // error: `be` is borrowed by `agreed`
/// vtimestamp::HiResEncoder::new().encode(agreed, 1, false);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HiResAgreed<'a> {
    epoch: u64,
    _negotiation: PhantomData<&'a BackendNegotiation>,
}

impl HiResAgreed<'_> {
    /// The identity of the agreement (unique in the process, never 0).
    pub(crate) const fn epoch(self) -> u64 {
        self.epoch
    }
}

impl BackendNegotiation {
    /// A backend that has acknowledged nothing.
    ///
    /// ```
    /// assert!(vtimestamp::BackendNegotiation::new().may_send().is_err());
    /// ```
    pub const fn new() -> Self {
        BackendNegotiation {
            state: BackendState::Off,
            hires_wanted: false,
            hires_epoch: 0,
        }
    }

    /// The current state (of the plain `feature-rx-timestamp` handshake).
    ///
    /// ```
    /// let be = vtimestamp::BackendNegotiation::new();
    /// assert_eq!(be.state(), vtimestamp::BackendState::Off);
    /// ```
    pub const fn state(&self) -> BackendState {
        self.state
    }

    /// Feeds the `feature-rx-timestamp` value read from the frontend's directory. Returns the
    /// writes to perform in the backend's directory: the acknowledgement (or its withdrawal)
    /// when the state changes, plus `feature-rx-timestamp-hires` when the high-resolution mode
    /// changes with it; empty when nothing changes. Withdrawing `feature-rx-timestamp` also
    /// forgets the frontend's high-resolution request: to reconnect in that mode, the frontend
    /// writes both keys again ([`FrontendNegotiation::request_hires`] does). A malformed value
    /// is an error and changes nothing.
    ///
    /// ```
    /// let mut be = vtimestamp::BackendNegotiation::new();
    /// assert!(be.on_frontend_feature(None)?.is_empty());
    /// assert_eq!(be.on_frontend_feature(Some("1"))?.len(), 1);
    /// assert!(be.on_frontend_feature(Some("1"))?.is_empty());
    /// assert_eq!(be.on_frontend_feature(Some("0"))?[0].value, "0");
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn on_frontend_feature(
        &mut self,
        value: Option<&str>,
    ) -> Result<Vec<XenstoreWrite>, TsError> {
        let on = parse_feature(value)?;
        let mut writes = Vec::new();
        match (self.state, on) {
            (BackendState::Off, true) => {
                self.state = BackendState::Acknowledged;
                writes.push(WRITE_ON);
            }
            (BackendState::Acknowledged, false) => {
                self.state = BackendState::Off;
                // The connection ends: a high-resolution request read before it must not
                // carry over to the next one, which may come from a plain-mode frontend.
                self.hires_wanted = false;
                writes.push(WRITE_OFF);
            }
            _ => {}
        }
        writes.extend(self.settle_hires());
        Ok(writes)
    }

    /// Feeds the `feature-rx-timestamp-hires` value read from the frontend's directory. The
    /// backend acknowledges the high-resolution mode only while `feature-rx-timestamp` is
    /// acknowledged too (the watches may fire in either order: a request that arrives first is
    /// remembered). Returns the write to perform when the mode changes. A malformed value is an
    /// error and changes nothing.
    ///
    /// ```
    /// let mut be = vtimestamp::BackendNegotiation::new();
    /// assert!(be.on_frontend_hires(Some("1"))?.is_none()); // plain not agreed yet
    /// let writes = be.on_frontend_feature(Some("1"))?; // now both are acknowledged
    /// assert_eq!(writes.iter().map(|w| w.key).collect::<Vec<_>>(),
    ///            ["feature-rx-timestamp", "feature-rx-timestamp-hires"]);
    /// assert!(be.hires().is_ok());
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn on_frontend_hires(
        &mut self,
        value: Option<&str>,
    ) -> Result<Option<XenstoreWrite>, TsError> {
        self.hires_wanted = parse_feature(value)?;
        Ok(self.settle_hires())
    }

    /// Brings the high-resolution acknowledgement in line with the rule "both keys requested,
    /// plain acknowledged"; returns the write when it changes.
    fn settle_hires(&mut self) -> Option<XenstoreWrite> {
        let should = self.hires_wanted && self.state == BackendState::Acknowledged;
        match (self.hires_epoch != 0, should) {
            (false, true) => {
                self.hires_epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed);
                Some(HIRES_ON)
            }
            (true, false) => {
                self.hires_epoch = 0;
                Some(HIRES_OFF)
            }
            _ => None,
        }
    }

    /// Ok when timestamp records may be put on the ring (plain 16 us records; high-resolution
    /// records need [`Self::hires`]).
    ///
    /// ```
    /// let be = vtimestamp::BackendNegotiation::new();
    /// assert!(matches!(be.may_send(), Err(vtimestamp::TsError::NotNegotiated(_))));
    /// ```
    pub fn may_send(&self) -> Result<(), TsError> {
        match self.state {
            BackendState::Acknowledged => Ok(()),
            BackendState::Off => Err(TsError::NotNegotiated("backend off")),
        }
    }

    /// The proof that high-resolution records may be put on the ring: both
    /// `feature-rx-timestamp` and `feature-rx-timestamp-hires` are acknowledged. Errors with
    /// [`TsError::NotNegotiated`] otherwise: a plain-mode frontend must never receive them.
    ///
    /// ```
    /// use vtimestamp::{BackendNegotiation, HiResEncoder};
    /// let mut be = BackendNegotiation::new();
    /// be.on_frontend_feature(Some("1"))?;
    /// assert!(be.hires().is_err()); // plain mode only
    /// be.on_frontend_hires(Some("1"))?;
    /// let recs = HiResEncoder::new().encode(be.hires()?, 1_700_000_000_000_000_001, false);
    /// assert_eq!(recs.as_slice().len(), 2);
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    #[inline]
    pub fn hires(&self) -> Result<HiResAgreed<'_>, TsError> {
        if self.hires_epoch == 0 {
            return Err(TsError::NotNegotiated("backend high-resolution mode off"));
        }
        Ok(HiResAgreed {
            epoch: self.hires_epoch,
            _negotiation: PhantomData,
        })
    }

    /// Forgets every acknowledgement (the vif disconnects); the caller removes its keys.
    ///
    /// ```
    /// let mut be = vtimestamp::BackendNegotiation::new();
    /// be.on_frontend_feature(Some("1"))?;
    /// be.on_frontend_hires(Some("1"))?;
    /// be.reset();
    /// assert!(be.may_send().is_err());
    /// assert!(be.hires().is_err());
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}
