//! The model clients: one thread drives every client of every server. Each client has its own
//! UDP socket and sends inputs as a Poisson process (exponential gaps, section 6.5.2), each
//! stamped with the send time just before `send`; it also drains the world updates it gets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use crate::clock::unix_nanos_now;
use crate::{GameError, INPUT_BLOCK_LEN, InputPacket, SessionKey, error::io};

pub(crate) struct Client {
    pub id: u32,
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub key: SessionKey,
    pub seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ClientLog {
    pub inputs_sent: u64,
    pub updates_received: u64,
}

pub(crate) fn new_client(
    id: u32,
    server: SocketAddr,
    key: SessionKey,
) -> Result<Client, GameError> {
    // Loopback servers (one machine) get a loopback client; others one on any interface.
    let local = if server.ip().is_loopback() {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    };
    let sock = UdpSocket::bind(local).map_err(io("bind client"))?;
    sock.set_nonblocking(true).map_err(io("set_nonblocking"))?;
    Ok(Client {
        id,
        sock,
        server,
        key,
        seq: 0,
    })
}

pub(crate) fn drive(
    mut clients: Vec<Client>,
    rate_hz: f64,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Result<ClientLog, GameError> {
    let gap = Exp::new(rate_hz).map_err(|e| GameError::Config(format!("input rate: {e}")))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    let mut due: BinaryHeap<Reverse<(Duration, usize)>> = (0..clients.len())
        .map(|i| Reverse((Duration::from_secs_f64(gap.sample(&mut rng)), i)))
        .collect();
    let mut log = ClientLog::default();
    let mut buf = [0u8; 4096];
    let mut next_drain = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let Some(&Reverse((at, i))) = due.peek() else {
            break;
        };
        let elapsed = start.elapsed();
        if elapsed >= next_drain {
            for c in &clients {
                while c.sock.recv(&mut buf).is_ok() {
                    log.updates_received += 1;
                }
            }
            next_drain = elapsed + Duration::from_millis(20);
            continue;
        }
        if at > elapsed {
            std::thread::sleep((at - elapsed).min(next_drain - elapsed));
            continue;
        }
        due.pop();
        let c = &mut clients[i];
        c.seq += 1;
        let mut block = [0u8; INPUT_BLOCK_LEN];
        rng.fill(&mut block[..]);
        let mut packet = InputPacket {
            client: c.id,
            seq: c.seq,
            sent_ns: 0,
            block,
        };
        packet.sent_ns = unix_nanos_now();
        // Encryption and digest come after the stamp: they are part of what the client does
        // between deciding on an input and the packet leaving (section 6.5.3).
        let wire = packet.encode(&c.key);
        if c.sock.send_to(&wire, c.server).is_ok() {
            log.inputs_sent += 1;
        }
        due.push(Reverse((
            at + Duration::from_secs_f64(gap.sample(&mut rng)),
            i,
        )));
    }
    Ok(log)
}
