//! The engine's half of the shared location service (several nodes, one Redis): sans-IO.
//!
//! Each AOR is one value in the shared service: an 8-byte version followed by the AOR's
//! bindings (each a `store::record`, length-prefixed). Every change is a **compare-and-set on
//! the whole AOR**: the engine plans the request with the exact §10.3 code the memory backend
//! runs (Call-ID/CSeq rule, wildcard, max-contacts, RFC 5626 identity, §19.1.4 URI equality)
//! against the version it last saw, and asks the service to write the new value only if the
//! version is still the one it planned against (one atomic script in Redis, see
//! `remote::redis`). If another node (or shard) wrote in between, the reply carries the
//! current value; the engine re-plans against it and tries again. So two nodes racing on one
//! AOR are serialised by the service and each request is checked against the state it
//! replaces: RFC semantics hold across nodes, nothing is half-written, and the check needs no
//! re-implementation in Lua.
//!
//! The version each shard saw last is kept in a bounded per-shard cache, so a refresh from the
//! same UA (which the kernel's SO_REUSEPORT hash sends to the same shard) is one round trip.
//! The cache is only ever a *guess*: every answer that depends on the state (a 200 listing
//! the bindings, a 400 for an out-of-order CSeq, a 503 for too many bindings) is confirmed by a
//! compare-and-set against the service first — a request whose plan changes nothing still
//! sends one without a write — so a stale cache costs a round trip, never a wrong answer.
//!
//! Versions are random 64-bit values drawn by the writer (never reused counters), so a value
//! that expired and was re-created elsewhere can never be mistaken for the one cached (ABA).
//! Expiry: the value expires in the service at its latest binding's expiry (Redis `EXAT`),
//! expired bindings inside it are invisible and purged at the next write: nothing leaks.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::Meta;
use crate::store::record::{self, DecodeError};
use crate::store::{self, AorKey, Binding, BindingList};
use crate::time::Instant;

/// Settings of the remote location backend.
#[derive(Clone, Debug)]
pub struct RemoteSettings {
    /// Random per process: flow (connection) ids are qualified by it, so a node only removes
    /// the bindings of its own closed connections.
    pub node: u64,
    /// AORs whose last-seen version each shard remembers. Default 100,000.
    pub cache_aors: usize,
    /// Requests of one shard waiting for the service; more get 503 + Retry-After at once (no
    /// unbounded queue). Default 16,384.
    pub max_pending: usize,
    /// Compare-and-set attempts per request before it gives up with 503 (lost races on a hot
    /// AOR). Default 8.
    pub max_attempts: u8,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            node: 0,
            cache_aors: 100_000,
            max_pending: 16_384,
            max_attempts: 8,
        }
    }
}

/// One compare-and-set on an AOR's whole value, for the runtime to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteOp {
    /// Identifies the request in [`super::Engine::handle_remote`].
    pub token: u64,
    /// The AOR.
    pub aor: AorKey,
    /// The version the plan was made against (0: the AOR has no value).
    pub expected: u64,
    /// What to write when the version still matches; `None`: only confirm the version.
    pub write: Option<RemoteWrite>,
}

/// The new value of an AOR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteWrite {
    /// Encoded value (version first, see [`encode_value`]); empty when `expire_at` is 0.
    pub value: Vec<u8>,
    /// Unix time (seconds) at which the service drops the value: the latest binding expiry.
    /// 0: delete the value (no bindings left).
    pub expire_at: u32,
}

/// The service's answer to a [`RemoteOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteReply {
    /// The version matched (and the write, if any, was made).
    Committed,
    /// The version did not match: the current value (`None`: the AOR has none).
    Current(Option<Vec<u8>>),
    /// No answer in time, or the service is unreachable. Nothing is known about the write.
    Unavailable,
}

/// Encodes an AOR's value: the version (8 bytes, big endian), then each binding as a 2-byte
/// big-endian length and its `store::record` encoding.
pub fn encode_value(version: u64, list: &[Binding]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + list.len() * 160);
    out.extend_from_slice(&version.to_be_bytes());
    let mut rec = Vec::with_capacity(160);
    for b in list {
        rec.clear();
        record::encode(b, &mut rec);
        // A record is bounded by the binding's capped fields, far below 64 KiB.
        let len = u16::try_from(rec.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(rec.get(..usize::from(len)).unwrap_or(&rec));
    }
    out
}

/// Decodes an AOR's value into its version and bindings.
pub fn decode_value(value: &[u8]) -> Result<(u64, BindingList), DecodeError> {
    let (version, mut rest) = value.split_at_checked(8).ok_or(DecodeError::Truncated)?;
    let version = u64::from_be_bytes(version.try_into().map_err(|_| DecodeError::Truncated)?);
    let mut list = BindingList::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(2).ok_or(DecodeError::Truncated)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (rec, tail) = tail.split_at_checked(len).ok_or(DecodeError::Truncated)?;
        list.push(Binding::pack(&record::decode(rec)?));
        rest = tail;
    }
    Ok((version, list))
}

/// What a request waiting for the service is, to finish it when the reply comes.
pub(super) enum Waiting {
    /// A REGISTER: its bytes are parsed again and planned again against the confirmed state.
    Request {
        bytes: Vec<u8>,
        meta: Meta,
        /// Where the response goes (UDP: §18.2.2 / rport; streams: the connection).
        dest: SocketAddr,
        /// Authentication is not repeated (a one-time nonce is spent).
        user: Option<Vec<u8>>,
    },
    /// A closed connection's bindings on this AOR are being removed (no response).
    RemoveFlow(u64),
}

pub(super) struct Pending {
    pub(super) aor: AorKey,
    pub(super) waiting: Waiting,
    pub(super) attempts: u8,
    /// The AOR's state once the compare-and-set commits (version, bindings): the new state for
    /// a write, the planned-against state for a confirmation.
    pub(super) writing: Option<(u64, BindingList)>,
    /// The response, rendered when the request was planned: sent as is when the op commits
    /// (the common case: no second parse). `None`: the request is re-planned on any reply.
    pub(super) ready: Option<Vec<u8>>,
    /// The write stores bindings over the request's stream connection (flow tracking).
    pub(super) stores_flow: bool,
}

/// A re-run of a request after the service answered.
pub(super) struct Resume {
    pub(super) token: u64,
    pub(super) attempts: u8,
    pub(super) user: Option<Vec<u8>>,
}

/// Per-engine state of the remote backend.
pub(super) struct Remote {
    pub(super) settings: RemoteSettings,
    /// Last version seen per AOR, with its bindings.
    cache: HashMap<AorKey, (u64, BindingList)>,
    pending: HashMap<u64, Pending>,
    ops: Vec<RemoteOp>,
    next_token: u64,
    rng: u64,
}

impl Remote {
    pub(super) fn new(settings: RemoteSettings, shard_seed: u64) -> Self {
        Self {
            rng: (settings.node ^ shard_seed.rotate_left(32)) | 1,
            settings,
            cache: HashMap::new(),
            pending: HashMap::new(),
            ops: Vec::new(),
            next_token: 1,
        }
    }

    /// Takes the cached version and live bindings of an AOR out of the cache (version 0, none:
    /// not cached — planned as absent, and corrected by the service if it is not). Every op's
    /// reply puts the AOR's state back (see `complete`), so nothing is copied.
    pub(super) fn take_state(&mut self, aor: &AorKey, now: Instant) -> (u64, BindingList) {
        let (version, mut list) = self.cache.remove(aor).unwrap_or_default();
        store::purge_expired(&mut list, now);
        (version, list)
    }

    /// Puts back a state taken by `take_state` that no op is carrying.
    pub(super) fn put_back(&mut self, aor: AorKey, state: (u64, BindingList)) {
        self.remember(aor, state);
    }

    /// Can another request wait for the service?
    pub(super) fn has_room(&self) -> bool {
        self.pending.len() < self.settings.max_pending
    }

    /// A fresh, never-reused version for a write (xorshift64*, seeded per node and shard).
    pub(super) fn new_version(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1
    }

    /// Queues a compare-and-set for `pending` (a new token, or the resumed one).
    pub(super) fn submit(
        &mut self,
        token: Option<u64>,
        expected: u64,
        write: Option<RemoteWrite>,
        pending: Pending,
    ) {
        let token = token.unwrap_or_else(|| {
            self.next_token += 1;
            self.next_token
        });
        self.ops.push(RemoteOp {
            token,
            aor: pending.aor.clone(),
            expected,
            write,
        });
        self.pending.insert(token, pending);
    }

    pub(super) fn poll_op(&mut self) -> Option<RemoteOp> {
        self.ops.pop()
    }

    /// Takes a pending request back and records what the reply says about its AOR. Returns
    /// `None` for an unknown token.
    pub(super) fn complete(&mut self, token: u64, reply: &RemoteReply) -> Option<Pending> {
        let mut p = self.pending.remove(&token)?;
        match reply {
            RemoteReply::Committed => {
                if let Some(state) = p.writing.take() {
                    self.remember(p.aor.clone(), state);
                }
            }
            RemoteReply::Current(value) => {
                p.ready = None;
                let state = match value.as_deref().map(decode_value) {
                    None => Some((0, BindingList::new())),
                    Some(Ok(state)) => Some(state),
                    Some(Err(e)) => {
                        tracing::warn!(aor = %p.aor.as_str(), error = %e, "undecodable location value");
                        None
                    }
                };
                match state {
                    Some(state) => self.remember(p.aor.clone(), state),
                    // A value this build cannot read is never overwritten blindly: the request
                    // fails (and keeps failing) with 503 rather than losing other nodes' data.
                    None => p.attempts = u8::MAX,
                }
                p.writing = None;
                p.stores_flow = false;
            }
            RemoteReply::Unavailable => {
                // The write may or may not have happened: forget what we think we know.
                self.cache.remove(&p.aor);
                p.ready = None;
            }
        }
        Some(p)
    }

    fn remember(&mut self, aor: AorKey, state: (u64, BindingList)) {
        if self.cache.len() >= self.settings.cache_aors && !self.cache.contains_key(&aor) {
            // Bounded: drop an arbitrary entry (it only costs a round trip later).
            if let Some(victim) = self.cache.keys().next().cloned() {
                self.cache.remove(&victim);
            }
        }
        if self.settings.cache_aors > 0 {
            self.cache.insert(aor, state);
        }
    }

    pub(super) fn is_pending(&self, token: u64) -> bool {
        self.pending.contains_key(&token)
    }

    /// Requests waiting for the service.
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }
}

impl RemoteWrite {
    /// The value to write for `list` under `version` (a delete when `list` is empty).
    pub fn for_bindings(version: u64, list: &[Binding]) -> Self {
        match list.iter().map(Binding::expires_at).max() {
            Some(expire_at) => Self {
                value: encode_value(version, list),
                expire_at,
            },
            None => Self {
                value: Vec::new(),
                expire_at: 0,
            },
        }
    }
}

/// The flow id stored with bindings learned over a connection: qualified by the node, so that
/// equal connection ids of two nodes never collide in the shared service.
pub(super) fn flow_id(node: u64, conn: u64) -> u64 {
    store::stable_hash(&[&node.to_le_bytes(), &conn.to_le_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewBinding, Transport};

    fn binding(contact: &str, cseq: u32) -> Binding {
        Binding::pack(&NewBinding {
            contact: contact.as_bytes(),
            params: b";+sip.foo",
            call_id: b"call@host",
            cseq,
            expires_at: 2_000_000_000,
            q: Some(500),
            instance: Some(b"<urn:uuid:1>"),
            reg_id: Some(2),
            path: b"<sip:p1.example.com;lr>",
            source: "[2001:db8::1]:5070".parse().unwrap(),
            transport: Transport::Tls,
            conn: Some(77),
            user_agent: b"UA/1",
            registered_at: 1_900_000_000,
        })
    }

    #[test]
    fn value_round_trip_and_truncation() {
        let list = [binding("sip:a@h", 1), binding("sip:b@h;transport=tcp", 9)];
        let value = encode_value(0xdead_beef, &list);
        let (version, back) = decode_value(&value).unwrap();
        assert_eq!(version, 0xdead_beef);
        assert_eq!(back.len(), 2);
        for (a, b) in list.iter().zip(&back) {
            assert_eq!(a.contact(), b.contact());
            assert_eq!(a.cseq(), b.cseq());
            assert_eq!(a.conn(), b.conn());
            assert_eq!(a.source(), b.source());
            assert_eq!(a.id(), b.id());
        }
        assert_eq!(decode_value(&encode_value(7, &[])).unwrap().1.len(), 0);
        // Values are written whole (one SET); a cut inside the version or a record is an error,
        // a cut between records is a shorter list.
        let first = 8 + 2 + usize::from(u16::from_be_bytes([value[8], value[9]]));
        for cut in 0..value.len() {
            match decode_value(&value[..cut]) {
                Ok((_, l)) => assert!(
                    (cut == 8 && l.is_empty()) || (cut == first && l.len() == 1),
                    "cut at {cut}"
                ),
                Err(_) => assert!(cut != 8 && cut != first),
            }
        }
    }

    #[test]
    fn versions_differ_and_are_never_zero() {
        let mut r = Remote::new(RemoteSettings::default(), 3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let v = r.new_version();
            assert_ne!(v, 0);
            assert!(seen.insert(v));
        }
    }

    #[test]
    fn cache_is_bounded() {
        let settings = RemoteSettings {
            cache_aors: 4,
            ..RemoteSettings::default()
        };
        let mut r = Remote::new(settings, 0);
        for i in 0..100 {
            r.remember(AorKey::new(&format!("sip:{i}@h")), (1, BindingList::new()));
            assert!(r.cache.len() <= 4);
        }
    }

    #[test]
    fn write_deletes_empty_and_expires_at_latest() {
        assert_eq!(RemoteWrite::for_bindings(5, &[]).expire_at, 0);
        let w = RemoteWrite::for_bindings(5, &[binding("sip:a@h", 1)]);
        assert_eq!(w.expire_at, 2_000_000_000);
        assert_eq!(decode_value(&w.value).unwrap().0, 5);
    }
}
