//! The game world a server keeps: one player per client, moved by the inputs and advanced
//! every frame; its snapshot is the world update sent to every client (section 6.2.1).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::{InputPacket, SessionKey};

/// Client id under which a server encrypts its world updates (never a real client's id, so
/// no (id, sequence) nonce is used twice under one key).
const SERVER_STREAM: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Player {
    addr: SocketAddr,
    pos: [f32; 3],
    vel: [f32; 3],
    last_seq: u64,
}

/// One server's world. Owned by its server thread.
///
/// ```
/// use vibra_game::{InputPacket, SessionKey, World};
/// let mut w = World::new(SessionKey::from_seed(1));
/// let addr = "127.0.0.1:9".parse().unwrap();
/// w.apply(&InputPacket { client: 1, seq: 1, sent_ns: 0, block: [1; 256] }, addr);
/// w.tick(0.05, 1);
/// assert_eq!(w.players(), 1);
/// assert_eq!(w.snapshot().len(), 8 + 4 + 16);
/// ```
#[derive(Debug)]
pub struct World {
    key: SessionKey,
    frame: u64,
    players: BTreeMap<u32, Player>,
}

impl World {
    /// An empty world whose updates are encrypted with `key`.
    ///
    /// ```
    /// assert_eq!(vibra_game::World::new(vibra_game::SessionKey::from_seed(0)).players(), 0);
    /// ```
    pub fn new(key: SessionKey) -> Self {
        World {
            key,
            frame: 0,
            players: BTreeMap::new(),
        }
    }

    /// Players seen so far.
    ///
    /// ```
    /// assert_eq!(vibra_game::World::new(vibra_game::SessionKey::from_seed(0)).players(), 0);
    /// ```
    pub fn players(&self) -> usize {
        self.players.len()
    }

    /// Applies one input: the first 12 bytes of the block are the player's new velocity
    /// (three little-endian i32 in micro-units per second). Stale (reordered) inputs are
    /// ignored.
    ///
    /// ```
    /// use vibra_game::{InputPacket, SessionKey, World};
    /// let mut w = World::new(SessionKey::from_seed(0));
    /// let addr = "127.0.0.1:9".parse().unwrap();
    /// assert!(w.apply(&InputPacket { client: 1, seq: 2, sent_ns: 0, block: [0; 256] }, addr));
    /// assert!(!w.apply(&InputPacket { client: 1, seq: 1, sent_ns: 0, block: [0; 256] }, addr));
    /// ```
    pub fn apply(&mut self, input: &InputPacket, from: SocketAddr) -> bool {
        let p = self.players.entry(input.client).or_insert(Player {
            addr: from,
            pos: [0.0; 3],
            vel: [0.0; 3],
            last_seq: 0,
        });
        if input.seq <= p.last_seq && p.last_seq != 0 {
            return false;
        }
        p.last_seq = input.seq;
        p.addr = from;
        for (axis, v) in p.vel.iter_mut().enumerate() {
            let raw = i32::from_le_bytes(
                input.block[axis * 4..axis * 4 + 4]
                    .try_into()
                    .unwrap_or_default(),
            );
            *v = raw as f32 / 1e6;
        }
        true
    }

    /// Advances the world by `dt` seconds (one frame) in `substeps` integration steps, each
    /// checking every pair of players for a hit (a line-of-sight test). `substeps` is the
    /// stand-in for the game logic's CPU cost per frame.
    ///
    /// ```
    /// let mut w = vibra_game::World::new(vibra_game::SessionKey::from_seed(0));
    /// w.tick(0.05, 10);
    /// assert_eq!(w.snapshot()[..8], 1u64.to_le_bytes());
    /// ```
    pub fn tick(&mut self, dt: f32, substeps: u32) -> u64 {
        self.frame += 1;
        let steps = substeps.max(1);
        let h = dt / steps as f32;
        let mut players: Vec<&mut Player> = self.players.values_mut().collect();
        let mut hits = 0u64;
        for _ in 0..steps {
            for p in players.iter_mut() {
                for (x, v) in p.pos.iter_mut().zip(p.vel) {
                    *x = (*x + v * h).clamp(-4096.0, 4096.0);
                }
            }
            for i in 0..players.len() {
                for j in i + 1..players.len() {
                    let d: f32 = (0..3)
                        .map(|k| (players[i].pos[k] - players[j].pos[k]).powi(2))
                        .sum();
                    hits += u64::from(d < 1.0);
                }
            }
        }
        std::hint::black_box(hits)
    }

    /// The world update in clear: frame number, player count, then id and position of each
    /// player.
    ///
    /// ```
    /// let w = vibra_game::World::new(vibra_game::SessionKey::from_seed(0));
    /// assert_eq!(w.snapshot().len(), 12);
    /// ```
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + 16 * self.players.len());
        out.extend_from_slice(&self.frame.to_le_bytes());
        out.extend_from_slice(&(self.players.len() as u32).to_le_bytes());
        for (id, p) in &self.players {
            out.extend_from_slice(&id.to_le_bytes());
            for x in p.pos {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    /// The encrypted update for this frame and the addresses to send it to.
    ///
    /// ```
    /// let w = vibra_game::World::new(vibra_game::SessionKey::from_seed(0));
    /// let (update, to) = w.update();
    /// assert_eq!((update.len(), to.len()), (12, 0));
    /// ```
    pub fn update(&self) -> (Vec<u8>, Vec<SocketAddr>) {
        let mut bytes = self.snapshot();
        self.key.encrypt(SERVER_STREAM, self.frame, &mut bytes);
        (bytes, self.players.values().map(|p| p.addr).collect())
    }
}
