//! Stateless nonces and the bounded nc replay guard (RFC 7616 §3.3, §5.5).
//!
//! A nonce is 32 bytes, hex encoded: issue time (8 bytes, Unix seconds), a salt (8 bytes: a
//! per-process seed plus a counter, so every challenge gets a distinct nonce), and the first 16
//! bytes of HMAC-SHA256(secret, time || salt || realm [|| client IP]). Any shard, or any node
//! sharing the secret, verifies it without shared state.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::digest::{unhex, Hash};

const MAC_LEN: usize = 16;
const RAW_LEN: usize = 16 + MAC_LEN;
/// Hex length of a nonce.
pub(crate) const NONCE_HEX_LEN: usize = RAW_LEN * 2;
/// Clock skew tolerated between nodes for nonces issued "in the future".
const FUTURE_SKEW_SECS: u64 = 30;

/// What a nonce check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NonceState {
    /// Authentic and within its lifetime; `id` keys the replay guard, `issued` its age.
    Fresh { id: u128, issued: u64 },
    /// Authentic but expired.
    Stale,
    /// Not ours (bad MAC, bad format, other realm or source).
    Invalid,
}

pub(crate) struct Nonces {
    /// HMAC-SHA256 keyed with the secret once: cloning it per nonce skips hashing the key pads
    /// again (two of the four SHA-256 blocks of each MAC).
    keyed: Hmac<Sha256>,
    seed: u64,
    counter: AtomicU64,
}

impl Nonces {
    pub(crate) fn new(secret: [u8; 32], seed: u64) -> Self {
        // HMAC takes keys of any length: the fallback (a zero key) cannot happen.
        let keyed = Hmac::<Sha256>::new_from_slice(&secret)
            .unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
        Self {
            keyed,
            seed,
            counter: AtomicU64::new(0),
        }
    }

    fn mac(&self, issued: u64, salt: u64, realm: &[u8], source: Option<IpAddr>) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(&issued.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        mac.update(realm);
        match source {
            Some(IpAddr::V4(ip)) => mac.update(&ip.octets()),
            Some(IpAddr::V6(ip)) => mac.update(&ip.octets()),
            None => {}
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// A fresh nonce (hex) issued at `now_secs`.
    pub(crate) fn issue(
        &self,
        now_secs: u64,
        realm: &[u8],
        source: Option<IpAddr>,
        out: &mut Vec<u8>,
    ) {
        let salt = self
            .seed
            .wrapping_add(self.counter.fetch_add(1, Ordering::Relaxed));
        let mac = self.mac(now_secs, salt, realm, source);
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&now_secs.to_be_bytes());
        raw[8..16].copy_from_slice(&salt.to_be_bytes());
        raw[16..].copy_from_slice(&mac[..MAC_LEN]);
        for i in 0..RAW_LEN / 16 {
            let chunk = Hash::from_slice(&raw[i * 16..(i + 1) * 16]);
            if let Some(c) = chunk {
                out.extend_from_slice(c.hex().as_bytes());
            }
        }
    }

    pub(crate) fn check(
        &self,
        nonce: &[u8],
        now_secs: u64,
        lifetime_secs: u64,
        realm: &[u8],
        source: Option<IpAddr>,
    ) -> NonceState {
        if nonce.len() != NONCE_HEX_LEN {
            return NonceState::Invalid;
        }
        let (Some(head), Some(tail)) = (unhex(&nonce[..32]), unhex(&nonce[32..])) else {
            return NonceState::Invalid;
        };
        let head = head.as_bytes();
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&head[..8]);
        let mut salt = [0u8; 8];
        salt.copy_from_slice(&head[8..16]);
        let issued = u64::from_be_bytes(issued);
        let expected = self.mac(issued, u64::from_be_bytes(salt), realm, source);
        if !bool::from(expected[..MAC_LEN].ct_eq(tail.as_bytes())) {
            return NonceState::Invalid;
        }
        if issued > now_secs + FUTURE_SKEW_SECS {
            return NonceState::Invalid;
        }
        if now_secs >= issued.saturating_add(lifetime_secs) {
            return NonceState::Stale;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(tail.as_bytes());
        NonceState::Fresh {
            id: u128::from_be_bytes(id),
            issued,
        }
    }
}

/// Verdict of the replay guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    Ok,
    Replayed,
}

struct Shard {
    /// nonce id -> highest nc seen.
    seen: HashMap<u128, u32, foldhash::fast::RandomState>,
    /// Tracked nonces in first-use order, with their issue time (eviction order).
    order: VecDeque<(u128, u64)>,
    /// Issue time of the newest nonce evicted before it expired: an untracked nonce issued at or
    /// before this may have been evicted, so it cannot be trusted with any nc.
    watermark: u64,
}

/// Bounded memory: at most `capacity` tracked nonces in total. When full, the nonce used first
/// is evicted in O(1); while it has not expired, nonces issued up to its issue time are then
/// answered with a `stale=true` challenge (one extra round trip) rather than trusted: eviction
/// can never open a replay window.
pub(crate) struct ReplayGuard {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl ReplayGuard {
    pub(crate) fn new(capacity: usize) -> Self {
        let n = 16;
        Self {
            shards: (0..n)
                .map(|_| {
                    Mutex::new(Shard {
                        seen: HashMap::default(),
                        order: VecDeque::new(),
                        watermark: 0,
                    })
                })
                .collect(),
            per_shard: (capacity / n).max(1),
        }
    }

    /// Records `nc` for the nonce; it must be greater than every nc seen with it.
    /// With `first_use_only` (one-time nonces) any second use is a replay, whatever its nc.
    pub(crate) fn check(
        &self,
        id: u128,
        issued: u64,
        nc: u32,
        first_use_only: bool,
        now_secs: u64,
        lifetime: u64,
    ) -> Replay {
        let idx = usize::try_from(id % self.shards.len() as u128).unwrap_or(0);
        let Some(shard) = self.shards.get(idx) else {
            return Replay::Replayed;
        };
        let mut s = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(max) = s.seen.get_mut(&id) {
            if first_use_only || nc <= *max {
                return Replay::Replayed;
            }
            *max = nc;
            return Replay::Ok;
        }
        if issued <= s.watermark {
            return Replay::Replayed;
        }
        while s.seen.len() >= self.per_shard {
            let Some((old, t)) = s.order.pop_front() else {
                break;
            };
            s.seen.remove(&old);
            if now_secs < t.saturating_add(lifetime) {
                s.watermark = s.watermark.max(t);
            }
        }
        if issued <= s.watermark {
            return Replay::Replayed;
        }
        s.seen.insert(id, nc);
        s.order.push_back((id, issued));
        Replay::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_states() {
        let n = Nonces::new([1; 32], 99);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut a = Vec::new();
        n.issue(1000, b"r", None, &mut a);
        let mut b = Vec::new();
        n.issue(1000, b"r", None, &mut b);
        assert_eq!(a.len(), NONCE_HEX_LEN);
        assert_ne!(a, b, "every challenge gets its own nonce");
        assert!(matches!(
            n.check(&a, 1010, 300, b"r", None),
            NonceState::Fresh { issued: 1000, .. }
        ));
        assert_eq!(n.check(&a, 1300, 300, b"r", None), NonceState::Stale);
        assert_eq!(n.check(&a, 1010, 300, b"other", None), NonceState::Invalid);
        assert_eq!(n.check(&a, 1010, 300, b"r", Some(ip)), NonceState::Invalid);
        assert_eq!(
            n.check(&a, 900, 300, b"r", None),
            NonceState::Invalid,
            "from the future"
        );
        let mut forged = a.clone();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(n.check(&forged, 1010, 300, b"r", None), NonceState::Invalid);
        assert_eq!(
            Nonces::new([2; 32], 99).check(&a, 1010, 300, b"r", None),
            NonceState::Invalid
        );
        let mut bound = Vec::new();
        n.issue(1000, b"r", Some(ip), &mut bound);
        assert!(matches!(
            n.check(&bound, 1001, 300, b"r", Some(ip)),
            NonceState::Fresh { .. }
        ));
        assert_eq!(
            n.check(b"not-hex", 1001, 300, b"r", None),
            NonceState::Invalid
        );
    }

    #[test]
    fn replay_guard_with_eviction_watermark() {
        let g = ReplayGuard::new(16); // one entry per shard
        assert_eq!(g.check(16, 100, 1, false, 100, 300), Replay::Ok);
        assert_eq!(g.check(16, 100, 1, false, 100, 300), Replay::Replayed);
        assert_eq!(g.check(16, 100, 2, false, 100, 300), Replay::Ok);
        // Same shard (id % 16 == 0), shard full: the older nonce is evicted.
        assert_eq!(g.check(32, 150, 1, false, 150, 300), Replay::Ok);
        // The evicted nonce (issued 100 <= watermark) can no longer be used with any nc.
        assert_eq!(g.check(16, 100, 9, false, 151, 300), Replay::Replayed);
        // An evicted entry that had expired does not raise the watermark.
        assert_eq!(g.check(48, 500, 1, false, 500, 300), Replay::Ok);
        assert_eq!(g.check(64, 501, 1, false, 501, 300), Replay::Ok);
        assert_eq!(
            g.check(48, 500, 2, false, 502, 300),
            Replay::Replayed,
            "48 was evicted by 64"
        );
    }
}
