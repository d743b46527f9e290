//! Defences against floods, password guessing and scanners — sans-IO like the rest of the
//! engine (time is an argument; the tables are sharded maps with bounded size).
//!
//! - Per-source rate limiting: a token bucket per client IP (pike-like); a source that empties
//!   its bucket is banned for `ban_secs` — its requests are dropped, or answered 503 +
//!   Retry-After when configured. Trusted peers (edge proxies, SBCs) are allow-listed by CIDR.
//! - Brute-force lockout: failed digest responses are counted per user and per source IP within
//!   a window; past the limit the user (or IP) is locked, and a locked user gets exactly the 401
//!   an unknown user or a wrong password gets — the response is no oracle.
//! - Known scanners (sipvicious' `friendly-scanner`, `sipcli`, ...) are dropped by User-Agent.

use std::net::IpAddr;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::{DashMap, SharedValue};

use crate::bytes::same;
use crate::store::{StoredUserAgent, UserAgentId};
use crate::time::Instant;

/// Flood control settings.
#[derive(Clone, Debug)]
pub struct RateLimit {
    /// Requests per second a source may send on average.
    pub per_second: u32,
    /// Burst allowance (bucket size).
    pub burst: u32,
    /// How long a source that exceeded the rate stays banned.
    pub ban_secs: u32,
    /// Answer banned sources with 503 + Retry-After instead of dropping silently.
    pub reply_503: bool,
    /// Sources never limited (CIDR blocks).
    pub allow: Vec<Cidr>,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 200,
            burst: 400,
            ban_secs: 60,
            reply_503: false,
            allow: vec![
                Cidr::parse("127.0.0.0/8").unwrap_or(Cidr::ANY_V4),
                Cidr::parse("::1/128").unwrap_or(Cidr::ANY_V4),
            ],
        }
    }
}

/// Brute-force lockout settings.
#[derive(Clone, Debug)]
pub struct Lockout {
    /// Failed digest responses tolerated within `window_secs`.
    pub failures: u32,
    /// Counting window.
    pub window_secs: u32,
    /// Lock duration once exceeded.
    pub lock_secs: u32,
}

impl Default for Lockout {
    fn default() -> Self {
        Self {
            failures: 10,
            window_secs: 60,
            lock_secs: 300,
        }
    }
}

/// An IP block, e.g. `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A block's network and mask over its family's address bits.
#[derive(Clone, Copy)]
enum Net {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    const ANY_V4: Self = Self {
        addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        prefix: 32,
    };

    /// Parses `addr/prefix` (or a bare address).
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self { addr, prefix })
    }

    /// The block's network and mask.
    fn net(&self) -> Net {
        let shift = |width: u32| width.saturating_sub(u32::from(self.prefix));
        match self.addr {
            IpAddr::V4(n) => {
                let mask = u32::MAX.checked_shl(shift(32)).unwrap_or(0);
                Net::V4 {
                    net: n.to_bits() & mask,
                    mask,
                }
            }
            IpAddr::V6(n) => {
                let mask = u128::MAX.checked_shl(shift(128)).unwrap_or(0);
                Net::V6 {
                    net: n.to_bits() & mask,
                    mask,
                }
            }
        }
    }

    /// Does the block contain `ip`?
    pub fn contains(&self, ip: IpAddr) -> bool {
        Allowed::of(std::slice::from_ref(self)).contains(ip)
    }
}

/// Substrings (lower case) of User-Agents of known SIP scanners.
const SCANNERS: &[&[u8]] = &[
    b"friendly-scanner",
    b"sipvicious",
    b"sipcli",
    b"sip-scan",
    b"sipsak",
    b"sundayddr",
    b"iwar",
    b"vaxsipuseragent",
    b"pplsip",
    b"sipptk",
];

/// Bit `i` of entry `b`: `SCANNERS[i]` starts with the byte `b` (either case).
const SCANNER_FIRST: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < SCANNERS.len() {
        let c = SCANNERS[i][0];
        table[c as usize] |= 1 << i;
        table[c.to_ascii_uppercase() as usize] |= 1 << i;
        i += 1;
    }
    table
};

/// Is this User-Agent a known scanner? A case-insensitive substring search for each of
/// `SCANNERS` within the first 128 bytes. Every request's User-Agent goes through this, and
/// almost none matches: one pass over the bytes looks up each byte in a table of the needles'
/// first letters and compares needles only where one could start.
pub fn is_scanner(user_agent: &[u8]) -> bool {
    const _: () = assert!(SCANNERS.len() <= 16);
    let hay = user_agent
        .get(..user_agent.len().min(128))
        .unwrap_or_default();
    for (at, &b) in hay.iter().enumerate() {
        let mut candidates = SCANNER_FIRST[usize::from(b)];
        while candidates != 0 {
            let i = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let Some(needle) = SCANNERS.get(i) else {
                break;
            };
            if hay
                .get(at..at + needle.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(needle))
            {
                return true;
            }
        }
    }
    false
}

/// A shard's memory of recent User-Agent verdicts: phones send the same few User-Agent strings
/// over and over, and comparing one with a remembered string is cheaper than searching it for
/// every scanner name. Direct-mapped (by length and a few bytes), exact: a slot remembers the
/// (first 128 bytes of the) string itself, and a miss just runs [`is_scanner`].
///
/// In front of the slots, the User-Agent last seen as the store keeps it, with its verdict:
/// phones of one model register one after another, so the usual check is one compare, and the
/// store packs the request's bindings with that value's id ([`Checked::stored`]) instead of
/// comparing the text again.
pub struct ScannerCache {
    slots: Box<[CachedVerdict]>,
    /// A User-Agent of the store's table and its verdict.
    last: (StoredUserAgent, bool),
}

/// What the scanner check answers for one request.
#[derive(Clone, Copy, Debug)]
pub struct Checked {
    /// Drop the request: its User-Agent is a scanner's (and the check is on).
    pub drop: bool,
    /// The request's User-Agent as the store keeps it, when the check found the two equal:
    /// the request's bindings are packed with its id, without a second compare. It answers for
    /// the request checked only, so it travels with it (a request run again later, re-planned
    /// after the location service answered, has none and packs its header's text).
    pub stored: Option<UserAgentId>,
}

#[derive(Clone)]
struct CachedVerdict {
    len: usize,
    scanner: bool,
    text: [u8; 128],
}

impl Default for ScannerCache {
    fn default() -> Self {
        Self {
            // `len` 129 matches no string (at most 128 bytes are compared).
            slots: vec![
                CachedVerdict {
                    len: 129,
                    scanner: false,
                    text: [0; 128],
                };
                64
            ]
            .into_boxed_slice(),
            last: (StoredUserAgent::EMPTY, false),
        }
    }
}

impl std::fmt::Debug for ScannerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScannerCache").finish_non_exhaustive()
    }
}

impl ScannerCache {
    /// Scanner check (on by default) of a request's User-Agent.
    #[inline]
    pub fn check(&mut self, s: &Settings, user_agent: &[u8]) -> Checked {
        if !s.drop_scanners {
            return Checked {
                drop: false,
                stored: None,
            };
        }
        let (drop, stored) = self.lookup(user_agent);
        Checked {
            drop,
            stored: stored.map(StoredUserAgent::id),
        }
    }

    /// [`is_scanner`], remembered.
    pub fn is_scanner(&mut self, user_agent: &[u8]) -> bool {
        self.lookup(user_agent).0
    }

    /// [`is_scanner`], remembered, and the User-Agent as the store keeps it when they are
    /// equal. The usual request's check (its User-Agent remembered) is inlined into the
    /// caller; a string to search and remember is handled out of line.
    #[inline]
    fn lookup(&mut self, user_agent: &[u8]) -> (bool, Option<StoredUserAgent>) {
        let (stored, scanner) = self.last;
        if same(stored.value(), user_agent) {
            return (scanner, Some(stored));
        }
        let scanner = self.is_scanner_slots(user_agent);
        // Remembered in front when the store has just packed it (a stored value is at most 96
        // bytes long, so it is the whole header, whose verdict this is).
        let stored = StoredUserAgent::last_if(user_agent);
        if let Some(stored) = stored {
            self.last = (stored, scanner);
        }
        (scanner, stored)
    }

    /// [`is_scanner`] through the slots.
    #[inline]
    fn is_scanner_slots(&mut self, user_agent: &[u8]) -> bool {
        // The verdict depends on the first 128 bytes only.
        let ua = user_agent
            .get(..user_agent.len().min(128))
            .unwrap_or_default();
        let (first, last) = (ua.first().copied(), ua.last().copied());
        let mix =
            ua.len() ^ usize::from(first.unwrap_or(0)) << 1 ^ usize::from(last.unwrap_or(0)) << 2;
        let at = mix % 64;
        match self.slots.get(at) {
            Some(slot) if slot.text.get(..slot.len).is_some_and(|t| same(t, ua)) => slot.scanner,
            _ => self.remember(at, ua),
        }
    }

    /// Searches `ua` (at most 128 bytes) and remembers the verdict in slot `at`.
    #[cold]
    #[inline(never)]
    fn remember(&mut self, at: usize, ua: &[u8]) -> bool {
        let scanner = is_scanner(ua);
        if let Some(slot) = self.slots.get_mut(at) {
            if let Some(text) = slot.text.get_mut(..ua.len()) {
                text.copy_from_slice(ua);
                slot.len = ua.len();
                slot.scanner = scanner;
            }
        }
        scanner
    }
}

struct Bucket {
    tokens: f64,
    last_ms: u64,
    banned_until_ms: u64,
}

struct Failures {
    count: u32,
    window_start_ms: u64,
    locked_until_ms: u64,
}

/// The verdict of the flood check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Process the request.
    Yes,
    /// Banned: drop it.
    Drop,
    /// Banned: answer 503 + Retry-After.
    Refuse,
}

/// The defences' settings (reloadable: the engine passes the ones in force with every call,
/// the tables below survive a reload).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Per-source flood control; `None` = off.
    rate: Option<RateLimit>,
    /// Brute-force lockout; `None` = off.
    lockout: Option<Lockout>,
    /// Drop requests from known scanner User-Agents.
    drop_scanners: bool,
    /// `rate`'s allow-list split by family, built by [`Self::new`] (the fields are private and
    /// settings are built anew on a reload, so the split always follows `rate`).
    allowed: Allowed,
}

impl Settings {
    /// The settings, with the rate limit's allow-list made ready for the flood check.
    pub fn new(rate: Option<RateLimit>, lockout: Option<Lockout>, drop_scanners: bool) -> Self {
        let allowed = rate
            .as_ref()
            .map_or_else(Allowed::default, |r| Allowed::of(&r.allow));
        Self {
            rate,
            lockout,
            drop_scanners,
            allowed,
        }
    }
}

/// Allow-listed blocks as the flood check of every request reads them: each block's network
/// and mask computed once, split by family, so a source walks only its own family's blocks (an
/// IPv4 phone does not test the default `::1/128`) and a test is one AND and one compare.
#[derive(Clone, Debug, Default)]
struct Allowed {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Allowed {
    fn of(blocks: &[Cidr]) -> Self {
        let mut allowed = Self::default();
        for c in blocks {
            match c.net() {
                Net::V4 { net, mask } => allowed.v4.push((net, mask)),
                Net::V6 { net, mask } => allowed.v6.push((net, mask)),
            }
        }
        allowed
    }

    /// Does any of the blocks contain `ip`?
    fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let a = a.to_bits();
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = a.to_bits();
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }
}

/// Shared state of the defences. Each table holds at most `MAX_ENTRIES`; idle entries are
/// swept by `handle_timeout`, and when a table is full new sources are not tracked (they are
/// admitted: a flood from more distinct sources than the table holds is a job for the network
/// edge, and refusing unknown sources would lock out legitimate users).
#[derive(Default)]
pub struct Guard {
    buckets: Table<IpAddr, Bucket>,
    /// Entries in `buckets` (its `len()` would visit every lock shard on each new source).
    sources: AtomicUsize,
    users: Table<Box<[u8]>, Failures>,
    ips: Table<IpAddr, Failures>,
}

/// foldhash (seeded, HashDoS-resistant) instead of the default SipHash: the flood check looks up
/// the source of every request. Its `quality` variant, not `fast`: dashmap picks a key's lock
/// shard from the hash's top bits, and `fast` hashes of consecutive IPv4 addresses (a carrier's
/// phones in one subnet) had those bits skewed for some seeds — measured on 1,000 consecutive
/// addresses, 0.35 % of seeds put more than 224 of them (the presized shard's room) in one of
/// eight shards, some all 1,000; `quality`'s extra multiply spreads them (worst 175 over 20,000
/// seeds).
type Table<K, V> = DashMap<K, V, foldhash::quality::RandomState>;

const MAX_ENTRIES: usize = 1 << 20;

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("sources", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard whose source table has room for `sources` sources (at most its bound) before it
    /// grows. Sized like the bindings map (`store.capacity`): a re-registration avalanche
    /// brings one new source per phone, and growing the table then would rehash whole lock
    /// shards under their write lock while every worker waits on them.
    pub fn with_capacity(sources: usize) -> Self {
        Self {
            buckets: Table::with_capacity_and_hasher(sources.min(MAX_ENTRIES), Default::default()),
            ..Self::default()
        }
    }

    /// Flood check for one request from `ip`.
    pub fn admit(&self, s: &Settings, now: Instant, ip: IpAddr) -> Admit {
        let Some(r) = &s.rate else {
            return Admit::Yes;
        };
        if s.allowed.contains(ip) {
            return Admit::Yes;
        }
        let now_ms = now.as_millis();
        let banned = if r.reply_503 {
            Admit::Refuse
        } else {
            Admit::Drop
        };
        // One hash and one probe under the lock shard's write lock, for a known source and a
        // new one alike (`get_mut` then `insert` would hash, lock and probe twice).
        let hasher = self.buckets.hasher();
        let hash = hasher.hash_one(ip);
        // `determine_shard` is always < the shard count (the top bits of the hash): the `else`
        // never runs, and would admit the source untracked, as a full table does.
        let Some(shard) = self
            .buckets
            .shards()
            .get(self.buckets.determine_shard(hash as usize))
        else {
            return Admit::Yes;
        };
        let mut table = shard.write();
        if let Some((_, b)) = table.get_mut(hash, |(k, _)| *k == ip) {
            let b = b.get_mut();
            if now_ms < b.banned_until_ms {
                return banned;
            }
            let elapsed = now_ms.saturating_sub(b.last_ms) as f64 / 1000.0;
            b.tokens = (b.tokens + elapsed * f64::from(r.per_second)).min(f64::from(r.burst));
            b.last_ms = now_ms;
            if b.tokens < 1.0 {
                b.banned_until_ms = now_ms + u64::from(r.ban_secs) * 1000;
                return banned;
            }
            b.tokens -= 1.0;
            return Admit::Yes;
        }
        if self.sources.load(Ordering::Relaxed) < MAX_ENTRIES {
            let bucket = Bucket {
                tokens: f64::from(r.burst) - 1.0,
                last_ms: now_ms,
                banned_until_ms: 0,
            };
            table.insert(hash, (ip, SharedValue::new(bucket)), |(k, _)| {
                hasher.hash_one(k)
            });
            self.sources.fetch_add(1, Ordering::Relaxed);
        }
        Admit::Yes
    }

    /// Allow-listed sources (edge proxies carry many users: never locked out by IP).
    fn trusted(s: &Settings, ip: IpAddr) -> bool {
        s.rate.is_some() && s.allowed.contains(ip)
    }

    /// Is this user or source locked out?
    pub fn locked(&self, s: &Settings, now: Instant, user: Option<&[u8]>, ip: IpAddr) -> bool {
        if s.lockout.is_none() {
            return false;
        }
        let now_ms = now.as_millis();
        let user_locked = user
            .and_then(|u| self.users.get(u))
            .is_some_and(|f| now_ms < f.locked_until_ms);
        user_locked
            || (!Self::trusted(s, ip)
                && self
                    .ips
                    .get(&ip)
                    .is_some_and(|f| now_ms < f.locked_until_ms))
    }

    /// Records a failed digest response; returns true when this failure locked the user or IP.
    pub fn record_failure(
        &self,
        s: &Settings,
        now: Instant,
        user: Option<&[u8]>,
        ip: IpAddr,
    ) -> bool {
        let Some(l) = &s.lockout else { return false };
        let now_ms = now.as_millis();
        let bump = |f: &mut Failures| -> bool {
            if now_ms.saturating_sub(f.window_start_ms) > u64::from(l.window_secs) * 1000 {
                f.count = 0;
                f.window_start_ms = now_ms;
            }
            f.count += 1;
            if f.count > l.failures && now_ms >= f.locked_until_ms {
                f.locked_until_ms = now_ms + u64::from(l.lock_secs) * 1000;
                return true;
            }
            false
        };
        let fresh = || Failures {
            count: 0,
            window_start_ms: now_ms,
            locked_until_ms: 0,
        };
        let mut locked = false;
        if !Self::trusted(s, ip) && (self.ips.len() < MAX_ENTRIES || self.ips.contains_key(&ip)) {
            locked |= bump(&mut self.ips.entry(ip).or_insert_with(fresh));
        }
        if let Some(u) = user {
            if self.users.len() < MAX_ENTRIES || self.users.contains_key(u) {
                locked |= bump(&mut self.users.entry(u.into()).or_insert_with(fresh));
            }
        }
        locked
    }

    /// Drops idle entries (call about once per second).
    pub fn handle_timeout(&self, now: Instant) {
        let now_ms = now.as_millis();
        let idle = |last: u64, until: u64| now_ms > until && now_ms.saturating_sub(last) > 120_000;
        let mut dropped = 0;
        self.buckets.retain(|_, b| {
            let keep = !idle(b.last_ms, b.banned_until_ms);
            dropped += usize::from(!keep);
            keep
        });
        self.sources.fetch_sub(dropped, Ordering::Relaxed);
        self.users
            .retain(|_, f| !idle(f.window_start_ms, f.locked_until_ms));
        self.ips
            .retain(|_, f| !idle(f.window_start_ms, f.locked_until_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UserAgent;

    /// A guard with fixed settings.
    struct G(Guard, Settings);

    impl G {
        fn new(rate: Option<RateLimit>, lockout: Option<Lockout>, drop_scanners: bool) -> Self {
            Self(
                Guard::default(),
                Settings::new(rate, lockout, drop_scanners),
            )
        }
        fn admit(&self, now: Instant, ip: IpAddr) -> Admit {
            self.0.admit(&self.1, now, ip)
        }
        fn locked(&self, now: Instant, user: Option<&[u8]>, ip: IpAddr) -> bool {
            self.0.locked(&self.1, now, user, ip)
        }
        fn record_failure(&self, now: Instant, user: Option<&[u8]>, ip: IpAddr) -> bool {
            self.0.record_failure(&self.1, now, user, ip)
        }
        fn drops_scanner(&self, user_agent: &[u8]) -> bool {
            ScannerCache::default().check(&self.1, user_agent).drop
        }
        fn handle_timeout(&self, now: Instant) {
            self.0.handle_timeout(now);
        }
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(1_700_000_000_000 + ms)
    }

    #[test]
    fn a_presized_guard_takes_its_sources_without_growing() {
        let g = G(
            Guard::with_capacity(1000),
            G::new(Some(RateLimit::default()), None, false).1,
        );
        let before = g.0.buckets.capacity();
        assert!(before >= 1000, "capacity {before}");
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 | i));
            assert_eq!(g.admit(t(0), ip), Admit::Yes);
        }
        assert_eq!(g.0.sources.load(Ordering::Relaxed), 1000);
        assert_eq!(g.0.buckets.capacity(), before);
    }

    /// Consecutive addresses (phones in one subnet) spread over the lock shards for every seed:
    /// no shard gets twice its share. (With foldhash's `fast` hash, about 7 of these 2,000
    /// seeds put more than that in one shard.)
    #[test]
    fn consecutive_sources_spread_over_the_lock_shards() {
        for seed in 0..2000u32 {
            let g = Guard::default();
            let hasher = g.buckets.hasher();
            let mut per_shard = vec![0usize; g.buckets.shards().len()];
            for i in 0..1000u32 {
                let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 | i));
                per_shard[g.buckets.determine_shard(hasher.hash_one(ip) as usize)] += 1;
            }
            let fair = 1000 / per_shard.len();
            let most = per_shard.iter().copied().max().unwrap_or_default();
            assert!(most <= 2 * fair, "seed #{seed}: {per_shard:?}");
        }
    }

    #[test]
    fn cidr() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8:1::5".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
        assert!(Cidr::parse("192.0.2.7")
            .unwrap()
            .contains("192.0.2.7".parse().unwrap()));
    }

    /// The plain definition of a block: the same family and the same first `prefix` bits.
    fn reference_contains(c: &Cidr, ip: IpAddr) -> bool {
        match (c.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(c.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(c.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    #[test]
    fn precomputed_blocks_contain_what_their_prefix_says() {
        let bases: [IpAddr; 6] = [
            "10.1.200.3".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
            "255.255.255.255".parse().unwrap(),
            "2001:db8::5".parse().unwrap(),
            "::".parse().unwrap(),
            "::ffff:10.1.200.3".parse().unwrap(),
        ];
        // Each base, each bit of it flipped, and the other family's addresses.
        let mut ips: Vec<IpAddr> = Vec::new();
        for b in bases {
            ips.push(b);
            match b {
                IpAddr::V4(a) => {
                    ips.extend((0..32).map(|i| IpAddr::from((a.to_bits() ^ 1 << i).to_be_bytes())));
                }
                IpAddr::V6(a) => {
                    ips.extend(
                        (0..128).map(|i| IpAddr::from((a.to_bits() ^ 1 << i).to_be_bytes())),
                    );
                }
            }
        }
        let mut blocks = Vec::new();
        for b in bases {
            let max = if b.is_ipv4() { 32 } else { 128 };
            blocks.extend((0..=max).map(|p| Cidr::parse(&format!("{b}/{p}")).unwrap()));
        }
        blocks.push(Cidr::ANY_V4);
        let mut inside = 0;
        for c in &blocks {
            for &ip in &ips {
                let want = reference_contains(c, ip);
                inside += usize::from(want);
                assert_eq!(c.contains(ip), want, "{c:?} {ip}");
            }
        }
        assert!(inside > 1000, "{inside}");
        // A list answers what its blocks answer one by one, in either order (pairs across two
        // bases mix the families).
        for pair in blocks.windows(2).chain([&blocks[..]]) {
            let rate = RateLimit {
                allow: pair.to_vec(),
                ..RateLimit::default()
            };
            let s = Settings::new(Some(rate), None, false);
            for &ip in &ips {
                let want = pair.iter().any(|c| reference_contains(c, ip));
                assert_eq!(s.allowed.contains(ip), want, "{pair:?} {ip}");
            }
        }
        assert!(!Allowed::of(&[]).contains(bases[0]));
        // The default list, split: loopback of either family only.
        let s = Settings::new(Some(RateLimit::default()), None, false);
        for (ip, want) in [
            ("127.0.0.1", true),
            ("::1", true),
            ("10.0.0.1", false),
            ("::2", false),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(Guard::trusted(&s, ip), want, "{ip}");
        }
        assert!(!Guard::trusted(
            &Settings::default(),
            "127.0.0.1".parse().unwrap()
        ));
        assert_eq!(
            format!("{:?}", Cidr::parse("10.1.2.3/8").unwrap()),
            "Cidr { addr: 10.1.2.3, prefix: 8 }"
        );
    }

    #[test]
    fn token_bucket_bans_and_recovers() {
        let g = G::new(
            Some(RateLimit {
                per_second: 10,
                burst: 5,
                ban_secs: 2,
                reply_503: false,
                allow: vec![],
            }),
            None,
            true,
        );
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(g.admit(t(0), ip), Admit::Yes);
        }
        assert_eq!(g.admit(t(0), ip), Admit::Drop, "burst exhausted -> banned");
        assert_eq!(g.admit(t(0), other), Admit::Yes, "other sources unaffected");
        assert_eq!(g.admit(t(1500), ip), Admit::Drop, "still banned");
        assert_eq!(
            g.admit(t(2100), ip),
            Admit::Yes,
            "ban over, tokens refilled"
        );
        let allow = G::new(
            Some(RateLimit {
                per_second: 1,
                burst: 1,
                ban_secs: 60,
                reply_503: true,
                allow: vec![Cidr::parse("192.0.2.0/24").unwrap()],
            }),
            None,
            false,
        );
        for _ in 0..100 {
            assert_eq!(allow.admit(t(0), ip), Admit::Yes);
        }
        let refuse = G::new(
            Some(RateLimit {
                per_second: 1,
                burst: 1,
                ban_secs: 60,
                reply_503: true,
                allow: vec![],
            }),
            None,
            false,
        );
        assert_eq!(refuse.admit(t(0), ip), Admit::Yes);
        assert_eq!(refuse.admit(t(0), ip), Admit::Refuse);
    }

    #[test]
    fn lockout_per_user_and_ip() {
        let g = G::new(
            None,
            Some(Lockout {
                failures: 3,
                window_secs: 10,
                lock_secs: 30,
            }),
            true,
        );
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        for i in 0..3 {
            assert!(!g.record_failure(t(i), Some(b"alice"), ip));
        }
        assert!(!g.locked(t(5), Some(b"alice"), ip));
        assert!(
            g.record_failure(t(6), Some(b"alice"), ip),
            "4th failure locks"
        );
        assert!(
            g.locked(t(7), Some(b"alice"), "203.0.113.1".parse().unwrap()),
            "user locked from anywhere"
        );
        assert!(
            g.locked(t(7), Some(b"bob"), ip),
            "the guessing IP is locked for every user"
        );
        assert!(!g.locked(t(7), Some(b"bob"), "203.0.113.1".parse().unwrap()));
        assert!(!g.locked(t(36_100), Some(b"alice"), ip), "lock expires");
        // Failures outside the window do not accumulate.
        let g = G::new(
            None,
            Some(Lockout {
                failures: 1,
                window_secs: 1,
                lock_secs: 30,
            }),
            true,
        );
        assert!(!g.record_failure(t(0), Some(b"u"), ip));
        assert!(!g.record_failure(t(5000), Some(b"u"), ip));
    }

    #[test]
    fn scanner_check_finds_what_a_substring_search_finds() {
        // The plain definition: a needle inside the lower-cased first 128 bytes.
        let reference = |ua: &[u8]| {
            let hay: Vec<u8> = ua.iter().take(128).map(u8::to_ascii_lowercase).collect();
            SCANNERS
                .iter()
                .any(|n| hay.windows(n.len()).any(|w| w == *n))
        };
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"s".to_vec(),
            b"sip".to_vec(),
            b"Yealink SIP-T46S 66.86.0.15".to_vec(),
            b"friendly-scanne".to_vec(),
            b"xx FRIENDLY-SCANNER".to_vec(),
            b"VaxSIPUserAgent/3.1".to_vec(),
            b"PPLSIP".to_vec(),
            b"iWar".to_vec(),
            b"sundayddr worm".to_vec(),
            b"sip-scan".to_vec(),
            b"SIPPTK".to_vec(),
            b"sipsa".to_vec(),
            b"sipsak 0.9".to_vec(),
        ];
        for n in SCANNERS {
            // At the 128-byte boundary: inside, straddling, just outside.
            for pad in [128 - n.len(), 128 - n.len() + 1, 128] {
                let mut ua = vec![b'a'; pad];
                ua.extend_from_slice(n);
                cases.push(ua);
            }
        }
        // Pseudo-random strings over the needles' alphabet.
        let alphabet = b"sipSIPvicousclaknfrey-dwhtADVXL ";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let ua: Vec<u8> = (0..len)
                .map(|k| alphabet[((x >> (k % 8 * 8)) as usize + k * 7) % alphabet.len()])
                .collect();
            cases.push(ua);
        }
        for ua in &cases {
            assert_eq!(
                is_scanner(ua),
                reference(ua),
                "{:?}",
                String::from_utf8_lossy(ua)
            );
        }
        for n in SCANNERS {
            assert!(is_scanner(n));
        }
    }

    /// The check in front of the slots against the plain check and the packing's own lookup:
    /// runs of one User-Agent (stored after its first request, as the packing stores it),
    /// alternating ones, scanners packed with the check off, empty, 96, 97 and 130 bytes,
    /// with the check on and off. The verdict is the plain one and the id handed to the
    /// packing the one its lookup finds.
    #[test]
    fn user_agent_seen_is_the_stored_one() {
        let on = Settings::new(None, None, true);
        let off = Settings::new(None, None, false);
        let at_96 = [b'y'; 96];
        let at_97 = [b'y'; 97];
        let long_scanner = [&[b'a'; 120][..], b"sipvicious"].concat();
        let uas: [&[u8]; 9] = [
            b"Yealink SIP-T46S 66.86.0.15",
            b"Yealink SIP-T46S 66.86.0.16",
            b"friendly-scanner",
            b"",
            b"Zoiper rv2.10",
            b"sipcli/v1.8 (scanner test)",
            &at_96,
            &at_97,
            &long_scanner,
        ];
        let mut cache = ScannerCache::default();
        let mut stored_seen = 0;
        for (round, settings) in [&on, &on, &off, &on].into_iter().enumerate() {
            for (k, ua) in uas.iter().enumerate() {
                for repeat in 0..(1 + (k + round) % 3) {
                    let checked = cache.check(settings, ua);
                    let drops = checked.drop;
                    assert_eq!(drops, settings.drop_scanners && is_scanner(ua), "{ua:?}");
                    let handed = checked
                        .stored
                        .map_or(UserAgent::Text(ua), UserAgent::Stored);
                    let stored = matches!(handed, UserAgent::Stored(_));
                    stored_seen += usize::from(stored);
                    // The packing's own lookup (which also stores the value, as packing a
                    // request that was not dropped does): a stored id is always the text's.
                    let looked_up = UserAgent::Text(ua).id();
                    if stored || !drops {
                        assert_eq!(handed.id(), looked_up, "round {round} {repeat}: {ua:?}");
                    }
                }
            }
        }
        assert!(stored_seen > 10, "{stored_seen}");
    }

    #[test]
    fn remembered_verdicts_are_the_verdicts() {
        let mut cache = ScannerCache::default();
        let long_scanner = [&[b'a'; 120][..], b"sipvicious"].concat();
        let long_clean = [&[b'a'; 130][..], b"sipvicious"].concat();
        let uas: [&[u8]; 8] = [
            b"Yealink SIP-T46S 66.86.0.15",
            b"friendly-scanner",
            b"",
            b"Yealink SIP-T46S 66.86.0.16",
            b"sipcli/v1.8",
            &long_scanner,
            &long_clean,
            b"Zoiper rv2.10",
        ];
        for round in 0..3 {
            for ua in uas {
                assert_eq!(
                    cache.is_scanner(ua),
                    is_scanner(ua),
                    "round {round}: {ua:?}"
                );
            }
        }
        // Strings that share a slot replace each other.
        for i in 0..500u32 {
            let ua = format!("UA {i} {}", "x".repeat((i % 40) as usize));
            let ua = if i % 7 == 0 {
                format!("{ua}sipsak")
            } else {
                ua
            };
            assert_eq!(cache.is_scanner(ua.as_bytes()), is_scanner(ua.as_bytes()));
            assert_eq!(cache.is_scanner(ua.as_bytes()), is_scanner(ua.as_bytes()));
        }
    }

    #[test]
    fn scanners() {
        assert!(is_scanner(b"friendly-scanner"));
        assert!(is_scanner(b"SIPVicious 0.3.4"));
        assert!(is_scanner(b"sipcli/v1.8"));
        assert!(!is_scanner(b"Yealink SIP-T46S 66.86.0.15"));
        assert!(!is_scanner(b""));
        let off = G::new(None, None, false);
        assert!(!off.drops_scanner(b"friendly-scanner"));
    }

    #[test]
    fn sweep_forgets_idle_sources() {
        let g = G::new(
            Some(RateLimit {
                allow: vec![],
                ..RateLimit::default()
            }),
            Some(Lockout::default()),
            true,
        );
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        g.admit(t(0), ip);
        g.record_failure(t(0), Some(b"x"), ip);
        for i in 0..50u8 {
            g.admit(t(100_000), IpAddr::from([198, 51, 100, i]));
        }
        g.handle_timeout(t(60_000));
        assert_eq!((g.0.buckets.len(), g.0.users.len()), (51, 1));
        assert_eq!(g.0.sources.load(Ordering::Relaxed), 51);
        g.handle_timeout(t(200_000));
        assert_eq!(g.0.buckets.len(), 50);
        assert_eq!(g.0.sources.load(Ordering::Relaxed), 50);
        g.handle_timeout(t(400_000));
        assert_eq!(g.0.sources.load(Ordering::Relaxed), 0);
        assert_eq!(
            (g.0.buckets.len(), g.0.users.len(), g.0.ips.len()),
            (0, 0, 0)
        );
    }
}
