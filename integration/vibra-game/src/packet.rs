//! The 296-byte player-input packet of section 6.5.2: a header (sequence number, client send
//! time, client id), the 256-byte input block encrypted with ChaCha20, and a SHA-1 digest.
//!
//! Layout (little-endian): `[0..8)` sequence number, `[8..16)` send time in nanoseconds since
//! the Unix epoch (the client's `CLOCK_REALTIME`, section 6.5.3), `[16..20)` client id,
//! `[20..276)` ciphertext, `[276..296)` SHA-1 of bytes `[0..276)`.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use sha1::{Digest, Sha1};

use crate::GameError;

/// Bytes of one input packet (the dissertation's UDP payload size).
pub const INPUT_PACKET_LEN: usize = 296;
/// Bytes of the user-input block.
pub const INPUT_BLOCK_LEN: usize = 256;
const HEADER_LEN: usize = 20;
const DIGEST_AT: usize = HEADER_LEN + INPUT_BLOCK_LEN;

/// A session key shared by a client and its server.
///
/// ```
/// let key = vibra_game::SessionKey::from_seed(7);
/// assert_ne!(key, vibra_game::SessionKey::from_seed(8));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// A key derived from a seed (SHA-1 stretched to 32 bytes): reproducible runs.
    ///
    /// ```
    /// assert_eq!(vibra_game::SessionKey::from_seed(1), vibra_game::SessionKey::from_seed(1));
    /// ```
    pub fn from_seed(seed: u64) -> Self {
        let a = Sha1::digest(seed.to_le_bytes());
        let b = Sha1::digest(a);
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&a);
        key[20..].copy_from_slice(&b[..12]);
        SessionKey(key)
    }

    /// Encrypts (or decrypts: the same operation) `data` in place with the keystream for
    /// (`stream`, `seq`).
    ///
    /// ```
    /// let key = vibra_game::SessionKey::from_seed(3);
    /// let mut data = *b"world update";
    /// key.encrypt(1, 2, &mut data);
    /// assert_ne!(&data, b"world update");
    /// key.encrypt(1, 2, &mut data);
    /// assert_eq!(&data, b"world update");
    /// ```
    pub fn encrypt(&self, stream: u32, seq: u64, data: &mut [u8]) {
        self.cipher(stream, seq).apply_keystream(data);
    }

    fn cipher(&self, client: u32, seq: u64) -> ChaCha20 {
        // A nonce is never reused under one key: (client, seq) is unique per session.
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&client.to_le_bytes());
        nonce[4..].copy_from_slice(&seq.to_le_bytes());
        ChaCha20::new(&self.0.into(), &nonce.into())
    }
}

/// A decoded input packet.
///
/// ```
/// use vibra_game::{InputPacket, SessionKey};
/// let key = SessionKey::from_seed(1);
/// let p = InputPacket { client: 3, seq: 9, sent_ns: 1_700_000_000_000_000_000, block: [5; 256] };
/// let wire = p.encode(&key);
/// assert_eq!(wire.len(), 296);
/// assert_eq!(InputPacket::decode(&wire, &key)?, p);
/// # Ok::<(), vibra_game::GameError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InputPacket {
    /// The sending client.
    pub client: u32,
    /// The client's sequence number.
    pub seq: u64,
    /// When the client sent it (ns since the Unix epoch).
    pub sent_ns: u64,
    /// The user-input block, in clear.
    pub block: [u8; INPUT_BLOCK_LEN],
}

impl InputPacket {
    /// The 296 wire bytes: header, encrypted block, digest.
    ///
    /// ```
    /// use vibra_game::{InputPacket, SessionKey};
    /// let p = InputPacket { client: 1, seq: 1, sent_ns: 0, block: [0; 256] };
    /// let wire = p.encode(&SessionKey::from_seed(0));
    /// assert_ne!(&wire[20..276], &[0u8; 256][..]); // the block is encrypted
    /// ```
    pub fn encode(&self, key: &SessionKey) -> [u8; INPUT_PACKET_LEN] {
        let mut out = [0u8; INPUT_PACKET_LEN];
        out[0..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&self.sent_ns.to_le_bytes());
        out[16..20].copy_from_slice(&self.client.to_le_bytes());
        out[HEADER_LEN..DIGEST_AT].copy_from_slice(&self.block);
        key.cipher(self.client, self.seq)
            .apply_keystream(&mut out[HEADER_LEN..DIGEST_AT]);
        let digest = Sha1::digest(&out[..DIGEST_AT]);
        out[DIGEST_AT..].copy_from_slice(&digest);
        out
    }

    /// Checks the size and digest, then decrypts.
    ///
    /// ```
    /// use vibra_game::{InputPacket, SessionKey};
    /// let key = SessionKey::from_seed(1);
    /// let mut wire = InputPacket { client: 1, seq: 2, sent_ns: 3, block: [4; 256] }.encode(&key);
    /// wire[100] ^= 1;
    /// assert!(InputPacket::decode(&wire, &key).is_err());
    /// assert!(InputPacket::decode(&wire[..10], &key).is_err());
    /// ```
    pub fn decode(wire: &[u8], key: &SessionKey) -> Result<Self, GameError> {
        let wire: &[u8; INPUT_PACKET_LEN] = wire
            .try_into()
            .map_err(|_| GameError::PacketSize(wire.len()))?;
        let seq = u64::from_le_bytes(wire[0..8].try_into().unwrap_or_default());
        let sent_ns = u64::from_le_bytes(wire[8..16].try_into().unwrap_or_default());
        let client = u32::from_le_bytes(wire[16..20].try_into().unwrap_or_default());
        if Sha1::digest(&wire[..DIGEST_AT])[..] != wire[DIGEST_AT..] {
            return Err(GameError::Digest { client, seq });
        }
        let mut block = [0u8; INPUT_BLOCK_LEN];
        block.copy_from_slice(&wire[HEADER_LEN..DIGEST_AT]);
        key.cipher(client, seq).apply_keystream(&mut block);
        Ok(InputPacket {
            client,
            seq,
            sent_ns,
            block,
        })
    }
}
