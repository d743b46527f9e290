//! The location service: bindings per address-of-record (RFC 3261 §10.2, §10.3).
//!
//! Contract: `dashmap` sharded concurrent maps of AORs, each a `SmallVec` of compact
//! [`Binding`]s that also carry the AOR's text (the map's key: no allocation of its own),
//! shared by every shard thread. The AORs are split over many small maps
//! (partitions) by a stable hash, so that [`Store::scan`] can walk them in a fixed order one
//! partition at a time (the management dump) without holding any lock for long. [`Store::modify`] runs a closure on one AOR's live
//! bindings under that map shard's write lock — the registrar's §10.3 checks and updates happen
//! there atomically. Expired bindings are never visible: reads filter on the expiry time and
//! `modify` purges them before the closure runs; a timer wheel ([`Store::handle_timeout`])
//! removes the rest without scanning the map. Every change is reported to an optional
//! [`ChangeFeed`] after the lock is released (persistence and replication subscribe there).
//! Time is an argument; the store never reads a clock.

mod binding;
pub mod record;
mod wheel;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use std::hash::BuildHasher;

use dashmap::{DashMap, SharedValue};
use smallvec::SmallVec;

pub use binding::{
    Binding, ContactPart, NewBinding, ReplyParts, RequestPart, StoredUserAgent, Transport,
    UserAgent, UserAgentId, MAX_TEXT,
};
use wheel::Wheels;

use crate::bytes::folded_multiply;
use crate::time::Instant;

/// Store sizing.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Initial capacity in AORs (pre-sized so that shard resizes do not cause latency spikes).
    /// Default 65 536.
    pub capacity: usize,
    /// Map partitions (each a small `DashMap`); rounded up to a power of two, at least 4.
    /// Default 256: a scan snapshots one partition's keys at a time, 1/256 of the map.
    pub shards: usize,
    /// Longest binding lifetime in seconds (sizes the expiry wheel). Default 86 400.
    pub max_expires: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            capacity: 1 << 16,
            shards: 256,
            max_expires: 86_400,
        }
    }
}

/// A canonical address-of-record (see `sip::Uri::write_aor`). Cheap to clone (reference
/// counted). Held as bytes, always UTF-8 (every constructor sees to it):
/// a key made from the ASCII text the engine has at hand needs no UTF-8 validation.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct AorKey(Arc<[u8]>);

impl AorKey {
    /// Wraps canonical AOR text.
    pub fn new(canonical: &str) -> Self {
        Self(Arc::from(canonical.as_bytes()))
    }

    /// Wraps canonical AOR text given as bytes: ASCII (every AOR `sip::Uri` writes) as is,
    /// anything else through a lossy UTF-8 conversion.
    pub fn from_text(canonical: &[u8]) -> Self {
        if is_ascii(canonical) {
            Self(Arc::from(canonical))
        } else {
            Self::new(&String::from_utf8_lossy(canonical))
        }
    }

    /// The AOR text.
    pub fn as_str(&self) -> &str {
        // Always UTF-8 (see the constructors): the fallback is never taken.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The AOR text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Text that is not ASCII through a lossy UTF-8 conversion (out of line: an AOR is ASCII).
#[cold]
#[inline(never)]
fn lossy(aor: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(aor).into_owned().into_bytes()
}

/// `<[u8]>::is_ascii` for the short text of an AOR: the high bits of the eight-byte words
/// covering it ORed together (no byte-by-byte tail).
fn is_ascii(s: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The usual AOR's four words, as its hashes read them (one read for all three).
    if let Some([a, b, c, d]) = covering_pair(s) {
        return (a | b | c | d) & HIGH == 0;
    }
    match crate::bytes::covering_words(s) {
        Some(words) => words.fold(0, |any, w| any | w) & HIGH == 0,
        None => s.is_ascii(),
    }
}

/// The AOR's text (the derived `Hash`/`Eq` are those of the bytes).
impl std::borrow::Borrow<[u8]> for AorKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// A change to one binding, reported after the map lock is released.
#[derive(Debug)]
pub enum Change<'a> {
    /// A new binding.
    Inserted {
        /// The AOR.
        aor: &'a AorKey,
        /// The binding as stored.
        binding: &'a Binding,
    },
    /// An existing binding was updated in place (refresh, new CSeq, expiry, source) with the
    /// same id. A replacement that changes the id (another contact spelling, an RFC 5626
    /// instance at a new address) is reported as `Removed` + `Inserted` instead.
    Refreshed {
        /// The AOR.
        aor: &'a AorKey,
        /// The binding as stored now.
        binding: &'a Binding,
    },
    /// A binding was removed by a request or a closed flow.
    Removed {
        /// The AOR.
        aor: &'a AorKey,
        /// The binding as it was.
        binding: &'a Binding,
    },
    /// A binding expired.
    Expired {
        /// The AOR.
        aor: &'a AorKey,
        /// The binding as it was.
        binding: &'a Binding,
    },
}

/// Subscriber to binding changes. Called on the thread that made the change, never while a
/// map lock is held; keep it short (hand the change to another thread).
pub trait ChangeFeed: Send + Sync {
    /// One change.
    fn on_change(&self, change: &Change<'_>);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Inserted,
    Refreshed,
    Removed,
    Expired,
}

/// Inline capacity 1: most AORs hold one binding; a `Binding` is a 16-byte handle, so a map
/// slot is 16 (key) + 24 (list) bytes. A second inline slot would add 16 bytes to every slot,
/// and at 1M AORs the table has 2M slots (see `examples/binding_mem.rs`).
type List = SmallVec<[Binding; 1]>;

/// An AOR's bindings held outside the map (the remote location backend's per-shard cache).
pub type BindingList = List;

/// Events gathered under the lock, delivered after it.
type Events = SmallVec<[(Kind, Binding); 2]>;

/// The per-AOR view given to [`Store::modify`]'s closure. Expired bindings were purged first.
pub struct Bindings<'s> {
    list: &'s mut List,
    events: Option<&'s mut Events>,
    /// The AOR's canonical text, packed into each binding (empty for a detached list).
    aor: &'s [u8],
}

impl<'s> Bindings<'s> {
    /// A view over bindings held outside the store (no change feed, no accounting).
    pub fn detached(list: &'s mut BindingList) -> Self {
        Self {
            list,
            events: None,
            aor: b"",
        }
    }

    /// Number of live bindings.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// No bindings.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The bindings in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.list.iter()
    }

    /// One binding.
    pub fn get(&self, idx: usize) -> Option<&Binding> {
        self.list.get(idx)
    }

    /// Adds a binding.
    pub fn push(&mut self, b: &NewBinding<'_>) {
        let (r, c) = b.parts();
        self.push_parts(&r, &c);
    }

    /// Adds the binding of a request's part and a contact's (see [`RequestPart`]).
    pub fn push_parts(&mut self, r: &RequestPart<'_>, c: &ContactPart<'_>) {
        let binding = Binding::pack_parts(r, c, self.aor);
        self.record(Kind::Inserted, &binding);
        self.list.push(binding);
    }

    /// Replaces binding `idx` (out of range: no-op).
    pub fn replace(&mut self, idx: usize, b: &NewBinding<'_>) {
        let (r, c) = b.parts();
        self.replace_parts(idx, &r, &c);
    }

    /// Replaces binding `idx` with the binding of a request's part and a contact's (out of
    /// range: no-op).
    pub fn replace_parts(&mut self, idx: usize, r: &RequestPart<'_>, c: &ContactPart<'_>) {
        let Some(slot) = self.list.get_mut(idx) else {
            return;
        };
        if self.events.is_none() {
            // Nobody needs the old binding: refresh it in place.
            slot.repack_parts(r, c);
            return;
        }
        let old = std::mem::replace(slot, Binding::pack_parts(r, c, self.aor));
        let (Some(events), Some(new)) = (self.events.as_deref_mut(), self.list.get(idx)) else {
            return;
        };
        // A binding whose identity (contact, instance) changed — an RFC 5626 instance that
        // moved to a new contact — is reported as removed and inserted, so subscribers keyed
        // by the binding id (persistence) drop the old key.
        if old.id() == new.id() {
            events.push((Kind::Refreshed, new.clone()));
        } else {
            events.push((Kind::Removed, old));
            events.push((Kind::Inserted, new.clone()));
        }
    }

    /// Removes binding `idx` (out of range: no-op).
    pub fn remove(&mut self, idx: usize) {
        if idx < self.list.len() {
            let b = self.list.remove(idx);
            self.record(Kind::Removed, &b);
        }
    }

    /// Removes every binding.
    pub fn clear(&mut self) {
        while !self.list.is_empty() {
            self.remove(self.list.len() - 1);
        }
    }

    /// The binding registered longest ago (ties: the lowest index).
    pub fn oldest(&self) -> Option<usize> {
        self.list
            .iter()
            .enumerate()
            .min_by_key(|(i, b)| (b.registered_at(), *i))
            .map(|(i, _)| i)
    }

    #[inline]
    fn record(&mut self, kind: Kind, b: &Binding) {
        if let Some(events) = self.events.as_deref_mut() {
            events.push((kind, b.clone()));
        }
    }
}

/// One AOR in the map: its bindings, each of which holds the AOR's text (the map has no key
/// of its own: no allocation per AOR besides its bindings), and when its wheel entry is due.
#[derive(Default)]
struct Entry {
    list: List,
    /// The time of the AOR's earliest wheel entry: the sweep at that time (or later) purges
    /// it and schedules the next one. `u32::MAX`: none.
    due: u32,
}

impl Entry {
    /// The AOR's text (that of its first binding: an entry without bindings is never left in
    /// the map).
    fn aor(&self) -> &[u8] {
        self.list.first().map(Binding::aor).unwrap_or_default()
    }
}

/// One partition, used through its raw tables: every probe and insert hashes the AOR's text
/// with the partition's hasher ([`text_hash`]), and compares it with [`Entry::aor`].
type Map = DashMap<(), Entry, TableHasher>;

/// The tables' hasher: foldhash's seeded (HashDoS-resistant) hasher, and secret seeds drawn
/// from it for [`fold_words`] (see [`text_hash`]). SipHash showed in profiles.
#[derive(Clone)]
struct TableHasher {
    state: foldhash::fast::RandomState,
    seeds: [u64; 3],
}

impl TableHasher {
    fn new() -> Self {
        let state = foldhash::fast::RandomState::default();
        // Words no one outside learns (nothing the store shows depends on its table hashes):
        // foldhash's own keyed hash of three constants.
        let seeds = [1u64, 2, 3].map(|i| state.hash_one(i));
        Self { state, seeds }
    }
}

impl BuildHasher for TableHasher {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.state.build_hasher()
    }
}

/// A partition's table element.
type Slot = ((), SharedValue<Entry>);

/// The lock shard of table hash `hash` in partition `map` (a macro: the shard's type is
/// dashmap's to name).
macro_rules! shard_of {
    ($map:expr, $hash:expr) => {{
        let shards = $map.shards();
        // `determine_shard` is always < the shard count (the top bits of the hash), a power
        // of two: the mask only spares a division where an index check needs a bound.
        &shards[$map.determine_shard($hash as usize) & (shards.len() - 1)]
    }};
}

/// The seeded hash of an AOR's text in `map` (its table's hash).
#[inline(always)]
fn table_hash(map: &Map, aor: &[u8]) -> u64 {
    text_hash(map.hasher(), aor)
}

/// The seeded hash of an AOR's text (every hash of the tables' elements is this one). The
/// usual text, 17 to 31 bytes, is folded inline from the words [`aor_hash`] folds too (one read
/// of them for both when inlined together), under the hasher's secret seeds: foldhash's own
/// round for that length, as flood-resistant as foldhash under its seeds. Any other length is
/// foldhash's keyed hash of the bytes alone, without the length prefix of `Hash` for slices
/// (foldhash's `write` already folds the length in).
#[inline(always)]
fn text_hash(hasher: &TableHasher, aor: &[u8]) -> u64 {
    match covering_pair(aor) {
        Some(words) => fold_words(words, aor.len(), hasher.seeds),
        None => foldhash_text(hasher, aor),
    }
}

/// [`text_hash`] of text of any other length than the usual.
#[inline(never)]
fn foldhash_text(hasher: &TableHasher, aor: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = hasher.build_hasher();
    h.write(aor);
    h.finish()
}

/// The shared bindings store.
pub struct Store {
    /// Partition `p` holds the AORs whose partition hash (`aor_hash`) has `p` in its top bits.
    parts: Box<[Map]>,
    /// 64 - log2(partitions).
    part_shift: u32,
    wheels: Wheels,
    feed: Option<Arc<dyn ChangeFeed>>,
    aors: AtomicUsize,
    bindings: AtomicUsize,
    expired: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("aors", &self.aor_count())
            .field("bindings", &self.binding_count())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store without a change feed.
    pub fn new(config: &StoreConfig) -> Self {
        let parts = config.shards.max(4).next_power_of_two();
        let hasher = TableHasher::new();
        Self {
            // Two lock shards per partition: with >= 256 partitions the locks are uncontended.
            parts: (0..parts)
                .map(|_| {
                    Map::with_capacity_and_hasher_and_shard_amount(
                        config.capacity / parts,
                        hasher.clone(),
                        2,
                    )
                })
                .collect(),
            part_shift: 64 - parts.trailing_zeros(),
            // A few wheels keep their locks uncontended; more would only add per-slot list
            // heads (measured at 1M bindings when a slot was a Vec: 64 wheels cost 13 bytes
            // per binding more than 8).
            wheels: Wheels::new(config.max_expires, 8),
            feed: None,
            aors: AtomicUsize::new(0),
            bindings: AtomicUsize::new(0),
            expired: AtomicU64::new(0),
        }
    }

    /// An empty store reporting every change to `feed`.
    pub fn with_feed(config: &StoreConfig, feed: Arc<dyn ChangeFeed>) -> Self {
        Self {
            feed: Some(feed),
            ..Self::new(config)
        }
    }

    /// Atomic read-modify-write of one AOR: expired bindings are purged (reported as
    /// `Expired`), then `f` runs under the map shard's write lock. A new AOR's entry is stored
    /// only when `f` leaves bindings, and an entry `f` empties is deleted under the same lock.
    /// Never touch another AOR inside `f`.
    pub fn modify<R>(
        &self,
        aor: &AorKey,
        now: Instant,
        f: impl FnOnce(&mut Bindings<'_>) -> R,
    ) -> R {
        self.modify_aor(aor.as_bytes(), Some(aor), now, f)
    }

    /// [`Store::modify`] by the AOR's canonical text (as for [`AorKey::from_text`]): no key is
    /// made (the text is packed into the AOR's bindings) unless change events need one.
    pub fn modify_text<R>(
        &self,
        aor: &[u8],
        now: Instant,
        f: impl FnOnce(&mut Bindings<'_>) -> R,
    ) -> R {
        self.modify_aor(aor, None, now, f)
    }

    fn modify_aor<R>(
        &self,
        aor: &[u8],
        key: Option<&AorKey>,
        now: Instant,
        f: impl FnOnce(&mut Bindings<'_>) -> R,
    ) -> R {
        // As its bindings hold it.
        let aor = binding::cap(aor);
        let mut events: Events = SmallVec::new();
        let record = self.feed.is_some();
        // `old_min`: the earliest expiry left after the purge (a new AOR's list is empty: no
        // purge to run).
        let run = |list: &mut List,
                   text: &[u8],
                   before: usize,
                   old_min: Option<u32>,
                   events: &mut Events| {
            let mut view = Bindings {
                list,
                events: record.then_some(events),
                aor: text,
            };
            let result = f(&mut view);
            let after = view.list.len();
            // The wheel holds an entry at or before each AOR's earliest expiry. A refresh moves
            // the expiry later, so the existing entry still comes first (its sweep reschedules
            // at the then-earliest expiry): only a new AOR or an earlier expiry needs an entry.
            // One entry per AOR instead of one per refresh keeps the wheel's memory bounded by
            // the AORs, whatever the refresh rate.
            let schedule = match (old_min, earliest(view.list)) {
                (None, new) => new,
                (Some(old), Some(new)) if new < old => Some(new),
                _ => None,
            };
            (result, schedule, before, after)
        };
        // The AOR is hashed twice, once with the stable hash (partition) and once with the
        // partition's seeded hasher (lock shard and table slot), the usual text's words read
        // once for both; the table is probed under the lock shard's write lock, held across
        // the closure.
        let stable = aor_hash(aor);
        let part = self.part_index(stable);
        let map = self.part_at(stable);
        let hasher = map.hasher();
        let hash = table_hash(map, aor);
        let shard = shard_of!(map, hash);
        let (result, schedule, before, after) = {
            let mut table = shard.write();
            let eq = |(_, e): &Slot| e.get().aor() == aor;
            match table.get_mut(hash, eq) {
                // An existing AOR (the common refresh).
                Some((_, entry)) => {
                    let entry = entry.get_mut();
                    let list = &mut entry.list;
                    let before = list.len();
                    // The time in seconds only here: a new AOR has nothing to purge.
                    let (expired, old_min) =
                        purge_and_earliest(list, secs(now), record.then_some(&mut events));
                    self.count_expired(expired);
                    // `aor` is the matched entry's text: new bindings pack it from there.
                    let done = run(list, aor, before, old_min, &mut events);
                    if let Some(at) = done.1 {
                        entry.due = entry.due.min(at);
                    }
                    if done.3 == 0 {
                        table.remove_entry(hash, |(_, e): &Slot| e.get().list.is_empty());
                    }
                    done
                }
                // A new AOR: its entry is inserted empty (under the lock no one else sees it)
                // and its bindings built in place; an entry left empty (a query or a failed
                // request of an unknown AOR) is removed again.
                None => {
                    let empty = Entry {
                        list: List::new(),
                        due: u32::MAX,
                    };
                    let (_, entry) =
                        table.insert_entry(hash, ((), SharedValue::new(empty)), |(_, e)| {
                            text_hash(hasher, e.get().aor())
                        });
                    let entry = entry.get_mut();
                    // The text the key would hold (see `AorKey::from_text`): a plain
                    // borrow of the usual ASCII text, no `Cow` to tell apart or drop.
                    let converted;
                    let text = if is_ascii(aor) {
                        aor
                    } else {
                        converted = lossy(aor);
                        &converted
                    };
                    let done = run(&mut entry.list, text, 0, None, &mut events);
                    entry.due = done.1.unwrap_or(u32::MAX);
                    if done.3 == 0 {
                        table.remove_entry(hash, |(_, e): &Slot| e.get().list.is_empty());
                    }
                    done
                }
            }
        };
        self.account(before, after);
        if let Some(at) = schedule {
            self.wheels.schedule(part, hash, at);
        }
        if events.is_empty() {
            // Never pushed to (the usual store has no feed), so never spilled: nothing to drop
            // or free, and its drop's checks are skipped.
            std::mem::forget(events);
        } else {
            let key = key.cloned().unwrap_or_else(|| AorKey::from_text(aor));
            self.deliver(&key, &events);
        }
        result
    }

    /// Read-only view of an AOR's live bindings; `None` when it has none.
    pub fn lookup<R>(
        &self,
        aor: &AorKey,
        now: Instant,
        f: impl FnOnce(&mut dyn Iterator<Item = &Binding>) -> R,
    ) -> Option<R> {
        let now_secs = secs(now);
        self.read(aor.as_bytes(), |list| {
            let mut live = list.iter().filter(|b| b.expires_at() > now_secs).peekable();
            live.peek()?;
            Some(f(&mut live))
        })
        .flatten()
    }

    /// Runs `f` on an AOR's stored bindings (expired ones included) under its read lock.
    fn read<R>(&self, aor: &[u8], f: impl FnOnce(&List) -> R) -> Option<R> {
        let aor = binding::cap(aor);
        let map = self.part_of(aor);
        let hash = table_hash(map, aor);
        let table = shard_of!(map, hash).read();
        let (_, entry) = table.get(hash, |(_, e): &Slot| e.get().aor() == aor)?;
        Some(f(&entry.get().list))
    }

    /// Expires the bindings due by `now`, slot by slot; returns how many expired. Any shard may
    /// call it: each wheel slot is swept once.
    pub fn handle_timeout(&self, now: Instant) -> usize {
        let now_secs = secs(now);
        let mut expired = 0;
        self.wheels.drain_due(now_secs, |part, hash| {
            expired += self.expire(part, hash, now_secs);
        });
        expired
    }

    /// When the next wheel slot is due (1-second resolution).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wheels
            .next_due()
            .map(|s| Instant::from_secs(u64::from(s)))
    }

    /// AORs with at least one binding (expired-but-unswept ones included until swept).
    pub fn aor_count(&self) -> usize {
        self.aors.load(Ordering::Relaxed)
    }

    /// Stored bindings (expired-but-unswept ones included until swept).
    pub fn binding_count(&self) -> usize {
        self.bindings.load(Ordering::Relaxed)
    }

    /// Bindings removed by expiry since start.
    pub fn expired_count(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    fn count_expired(&self, n: usize) {
        if n > 0 {
            self.expired.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Bulk load (restart): inserts without change events. Skips (returns false) an expired
    /// binding.
    pub fn load(&self, aor: &AorKey, b: &NewBinding<'_>, now: Instant) -> bool {
        if b.expires_at <= secs(now) {
            return false;
        }
        let text = binding::cap(aor.as_bytes());
        let binding = Binding::pack_for(b, text);
        let at = binding.expires_at();
        let stable = aor_hash(text);
        let map = self.part_at(stable);
        let hasher = map.hasher();
        let hash = table_hash(map, text);
        let (before, earlier) = {
            let mut table = shard_of!(map, hash).write();
            match table.get_mut(hash, |(_, e): &Slot| e.get().aor() == text) {
                Some((_, entry)) => {
                    let entry = entry.get_mut();
                    let before = entry.list.len();
                    let earlier = earliest(&entry.list).is_none_or(|m| at < m);
                    entry.list.push(binding);
                    if earlier {
                        entry.due = entry.due.min(at);
                    }
                    (before, earlier)
                }
                None => {
                    let mut list = List::new();
                    list.push(binding);
                    let entry = Entry { list, due: at };
                    table.insert(hash, ((), SharedValue::new(entry)), |(_, e)| {
                        text_hash(hasher, e.get().aor())
                    });
                    (0, true)
                }
            }
        };
        self.account(before, before + 1);
        if earlier {
            self.wheels.schedule(self.part_index(stable), hash, at);
        }
        true
    }

    /// Walks the AORs in a fixed order — ascending (partition hash of the AOR, AOR text) —
    /// starting after `after`, calling `f` with each AOR that passes `filter` and its live
    /// bindings, for at most `max_aors` AORs. Returns the cursor to continue from, or `None`
    /// when the walk is complete. `pause` runs after each visited AOR with no lock held (the
    /// place to block on a slow consumer); returning false stops the walk there (the cursor
    /// returned then continues after the last visited AOR).
    ///
    /// One partition at a time: its matching keys are copied (made from the AORs' text, under
    /// its read locks, briefly), sorted, then each AOR is read under its own lock only while `f` runs.
    /// Memory is bounded by one partition's keys, not by the store. Every AOR that exists for
    /// the whole walk is visited exactly once, whatever else changes meanwhile (resizes
    /// included); AORs added or removed during the walk may or may not be visited.
    pub fn scan(
        &self,
        after: Option<&ScanCursor>,
        max_aors: usize,
        now: Instant,
        filter: &dyn Fn(&str) -> bool,
        f: &mut dyn FnMut(&AorKey, &mut dyn Iterator<Item = &Binding>),
        pause: &mut dyn FnMut() -> bool,
    ) -> Option<ScanCursor> {
        let cursor = |(hash, aor): &(u64, AorKey)| ScanCursor {
            hash: *hash,
            aor: aor.as_str().to_owned(),
        };
        let now_secs = secs(now);
        let first = after.map_or(0, |c| self.part_index(c.hash));
        let mut budget = max_aors;
        let mut keys: Vec<(u64, AorKey)> = Vec::new();
        for p in first..self.parts.len() {
            if budget == 0 {
                return keys.last().map(cursor);
            }
            let map = self.parts.get(p)?;
            keys.clear();
            keys.extend(map.iter().filter_map(|e| {
                let aor = e.value().aor();
                // Always UTF-8 (stored as `AorKey::from_text` makes it).
                if !filter(std::str::from_utf8(aor).unwrap_or_default()) {
                    return None;
                }
                let hash = aor_hash(aor);
                let later = after.is_none_or(|c| (hash, aor) > (c.hash, c.aor.as_bytes()));
                later.then(|| (hash, AorKey::from_text(aor)))
            }));
            let more = keys.len() > budget;
            if more {
                keys.select_nth_unstable_by(budget, |a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                keys.truncate(budget);
            }
            keys.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            for key in &keys {
                self.read(key.1.as_bytes(), |list| {
                    let mut live = list.iter().filter(|b| b.expires_at() > now_secs).peekable();
                    if live.peek().is_some() {
                        f(&key.1, &mut live);
                    }
                });
                if !pause() {
                    return Some(cursor(key));
                }
            }
            budget -= keys.len();
            if more {
                return keys.last().map(cursor);
            }
        }
        None
    }

    fn part_index(&self, hash: u64) -> usize {
        // `part_shift` is at most 62 (at least four partitions): the mask only spares the
        // check `checked_shr` makes for 64 and more.
        usize::try_from(hash >> (self.part_shift & 63)).unwrap_or(0)
    }

    fn part_of(&self, aor: &[u8]) -> &Map {
        self.part_at(aor_hash(aor))
    }

    /// The partition of an AOR by its [`aor_hash`].
    fn part_at(&self, hash: u64) -> &Map {
        let p = self.part_index(hash);
        // `part_index` is always < parts.len(): the top log2(len) bits of a u64.
        &self.parts[p]
    }

    /// The sweep of a wheel entry: partition `part`, table hash `hash`. Every AOR along that
    /// hash's probe sequence whose wheel entry is due (its own, or one sharing the hash's tag)
    /// has its expired bindings purged and its next entry scheduled under its own hash (the
    /// one its probe sequence starts from, whatever later growth of the table moves); the
    /// others keep theirs.
    fn expire(&self, part: usize, hash: u64, now_secs: u32) -> usize {
        let Some(map) = self.parts.get(part) else {
            return 0;
        };
        let record = self.feed.is_some();
        let mut expired = 0;
        // One due AOR per round (each leaves with a later `due`, or is deleted): the events
        // are delivered and the next entry scheduled with no lock held.
        loop {
            let mut events: Events = SmallVec::new();
            let (key, own, before, after, next) = {
                let mut table = shard_of!(map, hash).write();
                let due = |(_, e): &Slot| e.get().due <= now_secs;
                let Some((_, entry)) = table.get_mut(hash, due) else {
                    break;
                };
                let entry = entry.get_mut();
                // (An AOR whose tag only matches `hash`'s has a hash of its own; it lies in
                // this lock shard's table, so its own hash picks this shard too.)
                let own = table_hash(map, entry.aor());
                let key = record.then(|| AorKey::from_text(entry.aor()));
                let before = entry.list.len();
                self.count_expired(purge(
                    &mut entry.list,
                    now_secs,
                    record.then_some(&mut events),
                ));
                let next = earliest(&entry.list);
                entry.due = next.unwrap_or(u32::MAX);
                let after = entry.list.len();
                if after == 0 {
                    table.remove_entry(own, |(_, e): &Slot| e.get().list.is_empty());
                }
                (key, own, before, after, next)
            };
            // This AOR's wheel entry was consumed: keep one at its earliest remaining expiry.
            if let Some(at) = next {
                self.wheels.schedule(part, own, at);
            }
            self.account(before, after);
            if let Some(key) = key {
                self.deliver(&key, &events);
            }
            expired += before - after;
        }
        expired
    }

    fn account(&self, before: usize, after: usize) {
        match (before, after) {
            (0, a) if a > 0 => {
                self.aors.fetch_add(1, Ordering::Relaxed);
            }
            (b, 0) if b > 0 => {
                self.aors.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if after > before {
            self.bindings.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.bindings.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    fn deliver(&self, aor: &AorKey, events: &Events) {
        let Some(feed) = &self.feed else { return };
        for (kind, binding) in events {
            let change = match kind {
                Kind::Inserted => Change::Inserted { aor, binding },
                Kind::Refreshed => Change::Refreshed { aor, binding },
                Kind::Removed => Change::Removed { aor, binding },
                Kind::Expired => Change::Expired { aor, binding },
            };
            feed.on_change(&change);
        }
    }
}

/// The earliest expiry in a list.
fn earliest(list: &List) -> Option<u32> {
    list.iter().map(Binding::expires_at).min()
}

/// [`purge`], and the earliest expiry of the bindings left. Usually nothing has expired: then
/// this is one pass over the list's slice that only reads the expiries.
#[inline]
fn purge_and_earliest(
    list: &mut List,
    now_secs: u32,
    events: Option<&mut Events>,
) -> (usize, Option<u32>) {
    match earliest(list) {
        Some(min) if min <= now_secs => {
            let expired = purge(list, now_secs, events);
            (expired, earliest(list))
        }
        min => (0, min),
    }
}

/// Removes bindings whose expiry is at or before `now_secs`; returns how many.
fn purge(list: &mut List, now_secs: u32, mut events: Option<&mut Events>) -> usize {
    let before = list.len();
    let mut i = 0;
    while let Some(b) = list.get(i) {
        if b.expires_at() <= now_secs {
            let b = list.remove(i);
            if let Some(ev) = events.as_deref_mut() {
                ev.push((Kind::Expired, b));
            }
        } else {
            i += 1;
        }
    }
    before - list.len()
}

/// Removes the bindings of a detached list that expired at `now`; returns how many.
pub fn purge_expired(list: &mut BindingList, now: Instant) -> usize {
    purge(list, secs(now), None)
}

/// Whole seconds as the coarse expiry tick (u32 seconds since the Unix epoch, good to 2106).
fn secs(now: Instant) -> u32 {
    u32::try_from(now.as_secs()).unwrap_or(u32::MAX)
}

/// Where a scan stands: the last AOR visited, in scan order. Text form (for HTTP cursors):
/// 16 hex digits of the hash, `.`, the AOR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanCursor {
    hash: u64,
    aor: String,
}

impl ScanCursor {
    /// The text form.
    pub fn encode(&self) -> String {
        format!("{:016x}.{}", self.hash, self.aor)
    }

    /// Parses the text form; `None` when malformed.
    pub fn decode(s: &str) -> Option<Self> {
        let (hash, aor) = s.split_once('.')?;
        if hash.len() != 16 {
            return None;
        }
        Some(Self {
            hash: u64::from_str_radix(hash, 16).ok()?,
            aor: aor.to_owned(),
        })
    }
}

/// The partition hash of an AOR's text (and the management scan's order): the same in every
/// process. The usual text, 17 to 31 bytes (`sip:user@domain`), is folded inline from the four
/// words that cover it ([`fold_words`] with fixed seeds); any other length is [`stable_hash`]'s.
#[inline]
fn aor_hash(aor: &[u8]) -> u64 {
    match covering_pair(aor) {
        Some(words) => fold_words(words, aor.len(), STABLE_SEEDS),
        None => stable_hash(&[aor]),
    }
}

/// The seeds of [`aor_hash`]'s folding (fixed: the partition order must survive restarts).
const STABLE_SEEDS: [u64; 3] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
];

/// Text of 17 to 31 bytes as its first 16 bytes and its last 16 (overlapping), each as two
/// little-endian words; `None` for any other length.
#[inline]
fn covering_pair(s: &[u8]) -> Option<[u64; 4]> {
    if !(17..32).contains(&s.len()) {
        return None;
    }
    let (first, last) = (s.first_chunk::<16>()?, s.last_chunk::<16>()?);
    let word = |b: &[u8; 16], i: usize| {
        b.get(i..i + 8)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    Some([word(first, 0), word(first, 8), word(last, 0), word(last, 8)])
}

/// Foldhash's round over 17 to 31 bytes (its `hash_bytes_long` for one pair of 16-byte reads):
/// each of the first two words folded with one of the last two, under seeds `[start, lane,
/// key]` turned by the length (overlapping reads of different lengths differ).
#[inline]
fn fold_words(w: [u64; 4], len: usize, seeds: [u64; 3]) -> u64 {
    let [start, lane, key] = seeds;
    let s0 = start.rotate_right(u32::try_from(len).unwrap_or(0));
    let s1 = s0.wrapping_add(lane);
    let [a, b, c, d] = w;
    folded_multiply(a ^ s0, c ^ key) ^ folded_multiply(b ^ s1, d ^ key)
}

/// Which wheel an AOR's timers live in (the same AOR always picks the same wheel): the hash's
/// low bits under `mask` (the number of wheels, a power of two, less one).
fn wheel_index(aor_hash: u64, mask: usize) -> usize {
    usize::try_from(aor_hash).unwrap_or(0) & mask
}

/// A hash of byte strings that is the same in every process (fixed-seed foldhash): wheel
/// placement, binding ids, the partition of AORs of unusual length (see `aor_hash`), a
/// Redis node's ids. Inlined: with the
/// number of parts known where it is called, the loop unrolls and the hasher's buffer
/// bookkeeping folds away.
#[inline]
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x5157_5245_4721_0001).build_hasher();
    for p in parts {
        h.write(p);
        h.write_u8(0xff);
    }
    h.finish()
}

#[cfg(test)]
mod tests;
