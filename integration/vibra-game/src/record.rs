//! One input as a game server received it, and its one-line text form (what a remote server
//! hands out over TCP): shared by the server thread that records inputs and the remote ends.

use crate::GameError;

/// One input as a remote server received it: who sent it, when (the client's clock), when the
/// server's kernel stamped it (`SO_TIMESTAMPNS`) and when the server read it (its application
/// clock, right after `recvmsg`). All in nanoseconds since the Unix epoch.
///
/// ```
/// let r = vibra_game::InputRecord { client: 3, seq: 9, sent_ns: 10, kernel_ns: 20, app_ns: 30 };
/// assert_eq!(vibra_game::InputRecord::parse_line(&r.to_line())?, r);
/// # Ok::<(), vibra_game::GameError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputRecord {
    /// The client id from the packet.
    pub client: u32,
    /// The client's sequence number.
    pub seq: u64,
    /// The client's send time (its clock).
    pub sent_ns: u64,
    /// The server's kernel arrival stamp (its clock, or the host's with host timestamps).
    pub kernel_ns: u64,
    /// The server's application clock after `recvmsg` returned.
    pub app_ns: u64,
}

impl InputRecord {
    /// The record as one line of the report: `client seq sent_ns kernel_ns app_ns`.
    ///
    /// ```
    /// let r = vibra_game::InputRecord { client: 1, seq: 2, sent_ns: 3, kernel_ns: 4, app_ns: 5 };
    /// assert_eq!(r.to_line(), "1 2 3 4 5");
    /// ```
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.client, self.seq, self.sent_ns, self.kernel_ns, self.app_ns
        )
    }

    /// Parses a line written by [`InputRecord::to_line`].
    ///
    /// ```
    /// assert!(vibra_game::InputRecord::parse_line("1 2 3").is_err());
    /// assert!(vibra_game::InputRecord::parse_line("1 2 3 4 x").is_err());
    /// ```
    pub fn parse_line(line: &str) -> Result<Self, GameError> {
        let bad = || GameError::BadRecord(line.to_owned());
        let mut it = line.split_ascii_whitespace();
        let mut next = || it.next().ok_or_else(bad);
        let client = next()?.parse().map_err(|_| bad())?;
        let mut num = || -> Result<u64, GameError> { next()?.parse().map_err(|_| bad()) };
        let record = InputRecord {
            client,
            seq: num()?,
            sent_ns: num()?,
            kernel_ns: num()?,
            app_ns: num()?,
        };
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(record)
    }
}
