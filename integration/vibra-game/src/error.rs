//! The crate's error type.

/// What can go wrong in the model game.
///
/// ```
/// let e = vibra_game::GameError::PacketSize(12);
/// assert!(e.to_string().contains("12"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GameError {
    /// An input packet must be exactly [`crate::INPUT_PACKET_LEN`] bytes.
    #[error("input packet of {0} bytes, expected 296")]
    PacketSize(usize),
    /// The digest does not match the packet's contents.
    #[error("digest mismatch on packet {seq} from client {client}")]
    Digest {
        /// The claimed client.
        client: u32,
        /// The claimed sequence number.
        seq: u64,
    },
    /// A configuration value out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A socket or thread operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Kernel timestamping failed.
    #[error("kernel timestamps: {0}")]
    Timestamp(#[from] vtimestamp::TsError),
    /// A line of a remote server's report is not `client seq sent_ns kernel_ns app_ns`.
    #[error("bad input record line: {0:?}")]
    BadRecord(String),
    /// A game thread panicked.
    #[error("a {0} thread panicked")]
    ThreadPanicked(&'static str),
}

pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> GameError {
    move |source| GameError::Io { op, source }
}
