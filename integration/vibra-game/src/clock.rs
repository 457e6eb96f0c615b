//! The one clock every timestamp in the game uses: `CLOCK_REALTIME`, the clock of
//! `SO_TIMESTAMPNS`, so client send times, kernel stamps and the server's reads compare
//! directly (the clients and servers share a machine: no synchronisation needed, 6.5.3).

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now (0 if the clock is before 1970).
///
/// ```
/// assert!(vibra_game::unix_nanos_now() > 1_600_000_000_000_000_000);
/// ```
pub fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
