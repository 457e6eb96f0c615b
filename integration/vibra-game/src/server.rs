//! One game server (one "VM" of section 6.6): a thread that receives inputs on its own UDP
//! socket with kernel timestamps, applies them, and sends a world update to every client each
//! frame. For every input it records two delays from the client's send time: to the kernel
//! arrival stamp, and to the application clock read right after `recvmsg` returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vtimestamp::socket::TimestampedSocket;

use crate::clock::unix_nanos_now;
use crate::record::InputRecord;
use crate::{GameError, InputPacket, SessionKey, World, error::io};

/// What one server measured.
#[derive(Debug, Default)]
pub(crate) struct ServerLog {
    /// Send-to-kernel-arrival delays, ns.
    pub kernel: Vec<u64>,
    /// Send-to-application-clock delays, ns.
    pub app: Vec<u64>,
    /// Inputs whose kernel stamp was later than the application clock (must stay 0).
    pub kernel_after_app: usize,
    /// Inputs that failed the digest check.
    pub rejected: usize,
    /// World updates sent.
    pub updates_sent: u64,
}

pub(crate) struct ServerParams {
    pub key: SessionKey,
    pub frame: Duration,
    pub sim_substeps: u32,
    pub stop: Arc<AtomicBool>,
    pub measuring: Arc<AtomicBool>,
    /// Where every measured input's raw times also go (the remote server's report), if set.
    pub records: Option<Arc<Mutex<Vec<InputRecord>>>>,
}

pub(crate) fn serve(sock: TimestampedSocket, p: ServerParams) -> Result<ServerLog, GameError> {
    let mut log = ServerLog::default();
    let mut world = World::new(p.key);
    let mut buf = [0u8; 2048];
    let mut next_frame = Instant::now() + p.frame;
    while !p.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_frame {
            world.tick(p.frame.as_secs_f32(), p.sim_substeps);
            let (update, to) = world.update();
            for addr in to {
                // A full client buffer drops the update, as UDP would: not an error.
                let _ = sock.socket().send_to(&update, addr);
                log.updates_sent += 1;
            }
            next_frame += p.frame;
            if next_frame < now {
                next_frame = now + p.frame; // fell behind: skip frames rather than burst
            }
        }
        // Always look at the socket between frames, even when frames run late, so an
        // overloaded server still reads its inputs (late, which is what is measured).
        let wait = next_frame
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(100));
        sock.socket()
            .set_read_timeout(Some(wait))
            .map_err(io("set_read_timeout"))?;
        let got = match sock.recv(&mut buf) {
            Ok(got) => got,
            Err(e) if e.is_would_block() => continue,
            Err(e) => return Err(e.into()),
        };
        // The application clock, read as soon as recvmsg returns: section 6.3.3's first method.
        let app_ns = unix_nanos_now();
        let kernel_ns = got.arrival.to_unix_nanos()?;
        let input = match InputPacket::decode(&buf[..got.len], &p.key) {
            Ok(input) => input,
            Err(_) => {
                log.rejected += 1;
                continue;
            }
        };
        world.apply(&input, got.from);
        if p.measuring.load(Ordering::Relaxed) {
            log.kernel.push(kernel_ns.saturating_sub(input.sent_ns));
            log.app.push(app_ns.saturating_sub(input.sent_ns));
            if kernel_ns > app_ns {
                log.kernel_after_app += 1;
            }
        }
        if let Some(records) = &p.records {
            // A poisoned lock means the report thread panicked: keep serving, as UDP would.
            if let Ok(mut records) = records.lock() {
                records.push(InputRecord {
                    client: input.client,
                    seq: input.seq,
                    sent_ns: input.sent_ns,
                    kernel_ns,
                    app_ns,
                });
            }
        }
    }
    Ok(log)
}
