//! # vibra-game
//!
//! The model FPS game of the dissertation's section 6.5.2, on real UDP sockets on loopback:
//! game servers (one thread and socket each, standing in for the game-server VMs) and their
//! clients. Each client sends 296-byte input packets (a 256-byte input block encrypted with
//! ChaCha20, a header with sequence number, send time and client id, and a SHA-1 digest) as a
//! Poisson process of 20 inputs per second; each server sends a world update to every client
//! 20 times per second. Background CPU burners add load.
//!
//! For every input the server records the packet delivery delay (section 6.5.3) with two
//! timestamp sources: the application clock read right after `recvmsg` returns (what a game
//! server gets from `gettimeofday`), and the kernel's arrival stamp (`SO_TIMESTAMPNS`, through
//! [`vtimestamp::socket`]). The gap between them is the scheduling delay that kernel (or, in
//! the dissertation, host) timestamps remove.
//!
//! ```no_run
//! let report = vibra_game::run(&vibra_game::GameConfig { servers: 16, ..Default::default() })?;
//! println!("mean delay: app clock {:.0} us, kernel {:.0} us", report.app.mean_us, report.kernel.mean_us);
//! # Ok::<(), vibra_game::GameError>(())
//! ```

mod affinity;
mod burner;
mod clients;
mod clock;
mod error;
mod packet;
mod record;
mod remote;
mod run;
mod server;
mod stats;
mod world;

pub use clock::unix_nanos_now;
pub use error::GameError;
pub use packet::{INPUT_BLOCK_LEN, INPUT_PACKET_LEN, InputPacket, SessionKey};
pub use record::InputRecord;
pub use remote::{RemoteClientLog, RemoteClients, RemoteServer, fetch_records};
pub use run::{GameConfig, GameReport, run};
pub use stats::DelaySummary;
pub use world::World;

/// The README's examples, compiled as doctests so they cannot go stale.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
