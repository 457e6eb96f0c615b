//! The `feature-rx-timestamp` handshake of SPEC 7 as two small state machines, one per end.
//! Stock netfront drops a packet with an unknown extra type and stock netback disables the vif,
//! so a backend sends timestamp records only after the frontend has written
//! `feature-rx-timestamp = 1` in its xenstore directory and the backend has answered with the
//! same key in its own. This module owns the rules only: callers do the xenstore I/O and feed
//! the values they read.

use crate::TsError;

/// The xenstore key both ends write, each in its own directory.
pub const FEATURE_RX_TIMESTAMP: &str = "feature-rx-timestamp";

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

    /// Withdraws the request (the frontend disconnects): returns the write to perform.
    ///
    /// ```
    /// let mut fe = vtimestamp::FrontendNegotiation::new();
    /// fe.request();
    /// assert_eq!(fe.withdraw().value, "0");
    /// assert!(fe.accept_record().is_err());
    /// ```
    pub fn withdraw(&mut self) -> XenstoreWrite {
        self.state = FrontendState::Off;
        WRITE_OFF
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
/// ```
/// use vtimestamp::BackendNegotiation;
/// let mut be = BackendNegotiation::new();
/// assert!(be.may_send().is_err());
/// let ack = be.on_frontend_feature(Some("1"))?.expect("an acknowledgement to write");
/// assert_eq!(ack.value, "1");
/// be.may_send()?;
/// # Ok::<(), vtimestamp::TsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BackendNegotiation {
    state: BackendState,
}

impl Default for BackendNegotiation {
    fn default() -> Self {
        Self::new()
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
        }
    }

    /// The current state.
    ///
    /// ```
    /// let be = vtimestamp::BackendNegotiation::new();
    /// assert_eq!(be.state(), vtimestamp::BackendState::Off);
    /// ```
    pub const fn state(&self) -> BackendState {
        self.state
    }

    /// Feeds the value read from the frontend's directory. Returns the write to perform in the
    /// backend's directory when the state changes (acknowledge, or withdraw the
    /// acknowledgement); `None` when nothing changes. The caller must complete that write
    /// before sending the first record. A malformed value is an error and changes nothing.
    ///
    /// ```
    /// let mut be = vtimestamp::BackendNegotiation::new();
    /// assert_eq!(be.on_frontend_feature(None)?, None);
    /// assert!(be.on_frontend_feature(Some("1"))?.is_some());
    /// assert_eq!(be.on_frontend_feature(Some("1"))?, None);
    /// assert_eq!(be.on_frontend_feature(Some("0"))?.map(|w| w.value), Some("0"));
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn on_frontend_feature(
        &mut self,
        value: Option<&str>,
    ) -> Result<Option<XenstoreWrite>, TsError> {
        let on = parse_feature(value)?;
        Ok(match (self.state, on) {
            (BackendState::Off, true) => {
                self.state = BackendState::Acknowledged;
                Some(WRITE_ON)
            }
            (BackendState::Acknowledged, false) => {
                self.state = BackendState::Off;
                Some(WRITE_OFF)
            }
            _ => None,
        })
    }

    /// Ok when timestamp records may be put on the ring.
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

    /// Forgets the acknowledgement (the vif disconnects); the caller removes its key.
    ///
    /// ```
    /// let mut be = vtimestamp::BackendNegotiation::new();
    /// be.on_frontend_feature(Some("1"))?;
    /// be.reset();
    /// assert!(be.may_send().is_err());
    /// # Ok::<(), vtimestamp::TsError>(())
    /// ```
    pub fn reset(&mut self) {
        self.state = BackendState::Off;
    }
}
