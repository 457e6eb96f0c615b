//! Status codes: the one place that gives each kind of failure its number.
//!
//! The numbers are ABI: they are explicit, never reused and never renumbered. A code arriving
//! from C is a plain integer converted with [`Status::from_code`], which fails for unknown
//! numbers, so no invalid value is ever held in a Rust enum.
//!
//! A leaf module (the boundary reports failures with these codes); the C function that gives a
//! code's text, `vibra_status_str`, is in `status_text`.

/// The result of every fallible libvibra function: `VIBRA_OK` (0) or one of the `VIBRA_*`
/// error codes below. A plain `uint32_t` in C, so any value may be passed to
/// `vibra_status_str`.
pub type vibra_status = u32;

/// Success.
pub const VIBRA_OK: vibra_status = 0;
/// A required pointer argument was NULL (or a buffer was NULL with a non-zero length).
pub const VIBRA_NULL_POINTER: vibra_status = 1;
/// An argument was outside its documented domain: a count of zero, a replication factor above
/// the server count, a negative, NaN or infinite number, lengths that do not match.
pub const VIBRA_INVALID_ARGUMENT: vibra_status = 2;
/// An enumeration argument (such as a `vibra_hash`) had a value with no meaning.
pub const VIBRA_INVALID_ENUM: vibra_status = 3;
/// An output buffer was too small; the needed length was written to the length out-parameter.
pub const VIBRA_BUFFER_TOO_SMALL: vibra_status = 4;
/// A server, virtual machine or sub-namespace index was not below its count.
pub const VIBRA_OUT_OF_RANGE: vibra_status = 5;
/// No server (or no other server, for failover compensation) is available.
pub const VIBRA_NO_SERVER_AVAILABLE: vibra_status = 6;
/// A counter would go below zero: a release without a matching acquire.
pub const VIBRA_NOT_ACQUIRED: vibra_status = 7;
/// A panic inside libvibra was caught at the boundary. This is a bug in libvibra: please report
/// it with the message from `vibra_last_error`.
pub const VIBRA_PANIC: vibra_status = 100;

/// The codes as a Rust enum, for matching inside the library. Discriminants are the constants
/// above, so the two can never disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Status {
    Ok = VIBRA_OK,
    NullPointer = VIBRA_NULL_POINTER,
    InvalidArgument = VIBRA_INVALID_ARGUMENT,
    InvalidEnum = VIBRA_INVALID_ENUM,
    BufferTooSmall = VIBRA_BUFFER_TOO_SMALL,
    OutOfRange = VIBRA_OUT_OF_RANGE,
    NoServerAvailable = VIBRA_NO_SERVER_AVAILABLE,
    NotAcquired = VIBRA_NOT_ACQUIRED,
    Panic = VIBRA_PANIC,
}

impl Status {
    /// Every code, in numeric order.
    pub(crate) const ALL: [Status; 9] = [
        Status::Ok,
        Status::NullPointer,
        Status::InvalidArgument,
        Status::InvalidEnum,
        Status::BufferTooSmall,
        Status::OutOfRange,
        Status::NoServerAvailable,
        Status::NotAcquired,
        Status::Panic,
    ];

    /// The status with this number, if there is one.
    pub(crate) fn from_code(code: u32) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The number C sees.
    pub(crate) const fn code(self) -> vibra_status {
        self as vibra_status
    }

    /// Static, NUL-terminated text for the code.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Status::Ok => "VIBRA_OK: success\0",
            Status::NullPointer => "VIBRA_NULL_POINTER: a required pointer argument was NULL\0",
            Status::InvalidArgument => {
                "VIBRA_INVALID_ARGUMENT: an argument was outside its domain\0"
            }
            Status::InvalidEnum => "VIBRA_INVALID_ENUM: an enumeration value had no meaning\0",
            Status::BufferTooSmall => "VIBRA_BUFFER_TOO_SMALL: an output buffer was too small\0",
            Status::OutOfRange => "VIBRA_OUT_OF_RANGE: an index was not below its count\0",
            Status::NoServerAvailable => "VIBRA_NO_SERVER_AVAILABLE: no server is available\0",
            Status::NotAcquired => "VIBRA_NOT_ACQUIRED: release without a matching acquire\0",
            Status::Panic => "VIBRA_PANIC: a bug inside libvibra was caught (please report it)\0",
        }
    }
}
