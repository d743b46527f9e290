//! The registrar state machine: RFC 3261 §10.3 (processing REGISTER requests), §8.2 (UAS
//! behaviour for other methods), §18.2 (response addressing), RFC 3581 (rport), RFC 3327 (Path),
//! RFC 5626 §4.4.1 (CRLF keepalive) and RFC 5626 §6 (instance/reg-id binding identity).
//!
//! Contract: bytes, the peer's address and the current time go in through `handle_*`; response
//! bytes come out through [`Engine::poll_transmit`]. The engine never touches sockets, threads or
//! the clock. One [`Engine`] per shard thread; all of them share one [`Shared`] (configuration,
//! the bindings [`Store`], the [`Authenticator`]). The steady state allocates nothing per request:
//! the request is parsed into views over the receive buffer and the response is written into a
//! reused buffer; only the store copies owned data.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::auth::{Algorithm, AuthConfig, Authenticator, Credentials};
use crate::bytes::{folded_multiply, same};
use crate::sip::{self, Message, Request};
use crate::store::{AorKey, ChangeFeed, Store, StoreConfig};
use crate::time::Instant;

mod error;
pub mod guard;
mod register;
mod remote;
#[cfg(test)]
mod tests;

pub use error::Error;
pub use remote::{decode_value, encode_value, RemoteOp, RemoteReply, RemoteSettings, RemoteWrite};

/// Everything the registrar needs, as plain validated data (`config.rs` builds it from TOML and
/// flags; the runtime reads files, the engine never does).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Domains we are registrar for (Request-URI host and AOR host). Empty = any host.
    pub domains: Vec<String>,
    /// Expiry when neither the contact nor the request says (seconds). Default 3600.
    pub default_expires: u32,
    /// Shortest accepted non-zero expiry; shorter -> 423 with Min-Expires. Default 60.
    pub min_expires: u32,
    /// Longer requested expiries are clamped to this. Default 7200.
    pub max_expires: u32,
    /// Bindings per AOR. Default 10.
    pub max_contacts: usize,
    /// Bindings in total; new ones beyond it get 503 + Retry-After. Default 10 million.
    pub max_bindings: usize,
    /// At `max_contacts`: evict the oldest binding instead of rejecting with 503. Default false.
    pub evict_oldest: bool,
    /// An authenticated user may register AORs other than its own. Default false (403).
    pub allow_third_party: bool,
    /// Remove bindings learned over a stream when that connection closes. Default true.
    pub remove_on_close: bool,
    /// `Server` header value. Default `sipreg/<version>`.
    pub server: String,
    /// Largest message accepted (bytes). Default 65535.
    pub max_message_size: usize,
    /// Header lines per message. Default 128.
    pub max_headers: usize,
    /// Contacts in one REGISTER. Default 32.
    pub max_contacts_per_request: usize,
    /// Initial capacity of the bindings map (AORs) and of the flood guard's source table.
    /// Default 65536.
    pub store_capacity: usize,
    /// Shard count of the bindings map (power of two, >= 4x cores). Default 64.
    pub store_shards: usize,
    /// Digest authentication; `None` = open registration (insecure, logged at start).
    pub auth: Option<AuthSettings>,
    /// Per-source flood control; `None` = off. Default on (loopback allow-listed).
    pub rate_limit: Option<guard::RateLimit>,
    /// Brute-force lockout; `None` = off. Default on.
    pub lockout: Option<guard::Lockout>,
    /// Drop requests from known scanner User-Agents. Default true.
    pub drop_scanners: bool,
    /// Bindings live in a shared location service (Redis, several nodes) instead of this
    /// process's store; `None` = the in-memory store. Fixed at start.
    pub remote: Option<RemoteSettings>,
}

/// Digest authentication settings (see [`crate::auth`]).
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Realm offered in challenges and required in credentials.
    pub realm: String,
    /// Algorithms offered, in preference order ("SHA-256", "MD5", "SHA-512-256", "-sess" forms).
    pub algorithms: Vec<String>,
    /// Contents of the credentials file (the runtime reads the file).
    pub credentials_text: String,
    /// Name of the credentials file, for error messages.
    pub credentials_name: String,
    /// How long a nonce stays valid.
    pub nonce_lifetime: Duration,
    /// Secret keying the nonce HMAC; all nodes of a cluster share it.
    pub secret: [u8; 32],
    /// Bind nonces to the client's IP address.
    pub bind_nonce_to_source: bool,
    /// Random per process, so that two nodes never issue the same nonce.
    pub salt_seed: u64,
    /// A nonce is good for one request only.
    pub one_time_nonces: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts: 10,
            max_bindings: 10_000_000,
            evict_oldest: false,
            allow_third_party: false,
            remove_on_close: true,
            server: concat!("sipreg/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_message_size: 65_535,
            max_headers: 128,
            max_contacts_per_request: 32,
            store_capacity: 1 << 16,
            store_shards: 64,
            auth: None,
            rate_limit: Some(guard::RateLimit::default()),
            lockout: Some(guard::Lockout::default()),
            drop_scanners: true,
            remote: None,
        }
    }
}

/// An invalid engine configuration (bad credentials file, unknown algorithm...).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The reloadable part of the configuration, validated, with what the hot path derives from it.
/// Each [`Engine`] keeps the one in force and picks up a new one at its next input after
/// [`Shared::reload`] (one relaxed atomic load per input).
#[derive(Debug)]
pub struct Policy {
    config: EngineConfig,
    limits: sip::Limits,
    domains: Vec<String>,
    guard: guard::Settings,
}

impl Policy {
    fn new(config: EngineConfig) -> Result<Self, ConfigError> {
        validate(&config)?;
        Ok(Self {
            limits: sip::Limits {
                max_message_size: config.max_message_size,
                max_headers: config.max_headers,
                max_contacts: config.max_contacts_per_request,
            },
            domains: config
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            guard: guard::Settings::new(
                config.rate_limit.clone(),
                config.lockout.clone(),
                config.drop_scanners,
            ),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Parser limits derived from the configuration.
    pub fn limits(&self) -> &sip::Limits {
        &self.limits
    }

    /// Is `host` (as written in a URI) one of our domains? Any host when none are configured.
    /// A registrar usually serves one domain, and requests name it as it is kept (in lower
    /// case): that compare is inline, the others out of line.
    #[inline(always)]
    fn serves(&self, host: &[u8]) -> bool {
        match self.domains.first() {
            None => true,
            Some(d) if same(host, d.as_bytes()) => true,
            Some(_) => self.serves_any(host),
        }
    }

    /// [`Policy::serves`] of a host not written as the first domain.
    #[inline(never)]
    fn serves_any(&self, host: &[u8]) -> bool {
        self.domains
            .iter()
            // Domains are kept in lower case and hosts are mostly written so: an exact
            // comparison first.
            .any(|d| same(host, d.as_bytes()) || sip::eq_ignore_case(host, d.as_bytes()))
    }
}

/// State shared by every shard's [`Engine`]: configuration, bindings store, authenticator.
pub struct Shared {
    policy: Mutex<Arc<Policy>>,
    /// Bumped by every reload; engines compare it with the generation they hold.
    generation: AtomicU64,
    store: Arc<Store>,
    auth: Option<Authenticator>,
    guard: guard::Guard,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("policy", &self.policy())
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Validates the configuration and builds the store and authenticator.
    pub fn new(config: EngineConfig) -> Result<Self, ConfigError> {
        Self::with_feed(config, None)
    }

    /// Like [`Shared::new`], with a change feed subscribed to every binding change
    /// (persistence, replication).
    pub fn with_feed(
        config: EngineConfig,
        feed: Option<Arc<dyn ChangeFeed>>,
    ) -> Result<Self, ConfigError> {
        let store_config = StoreConfig {
            capacity: config.store_capacity,
            shards: config.store_shards,
            max_expires: config.max_expires,
        };
        let auth = config.auth.as_ref().map(build_authenticator).transpose()?;
        let policy = Policy::new(config)?;
        let store = match feed {
            Some(feed) => Store::with_feed(&store_config, feed),
            None => Store::new(&store_config),
        };
        Ok(Self {
            policy: Mutex::new(Arc::new(policy)),
            generation: AtomicU64::new(0),
            store: Arc::new(store),
            auth,
            guard: guard::Guard::with_capacity(store_config.capacity),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the configuration without touching bindings or defence state: limits, expiry
    /// bounds, domains, defences and the credentials take effect at each engine's next input.
    /// Everything is validated first; on error nothing changes. Settings fixed at start
    /// (authentication on/off, realm, algorithms, nonce settings, store sizing) must be
    /// unchanged. Returns what was reloaded, for the log.
    pub fn reload(&self, config: EngineConfig) -> Result<String, ConfigError> {
        let current = self.policy();
        let old = current.config();
        let restart = |field: &str| {
            Err(ConfigError(format!(
                "{field}: changing it needs a restart (the running value stays in force)"
            )))
        };
        if old.store_capacity != config.store_capacity || old.store_shards != config.store_shards {
            return restart("registrar store sizing");
        }
        if old.remote.is_some() != config.remote.is_some() {
            return restart("location.backend");
        }
        let credentials = match (&old.auth, &config.auth, &self.auth) {
            (None, None, _) => None,
            (Some(o), Some(n), Some(auth)) => {
                if o.realm != n.realm
                    || o.algorithms != n.algorithms
                    || o.nonce_lifetime != n.nonce_lifetime
                    || o.bind_nonce_to_source != n.bind_nonce_to_source
                    || o.one_time_nonces != n.one_time_nonces
                {
                    return restart("auth (realm, algorithms, nonce settings)");
                }
                let c = Credentials::parse(&n.credentials_text, &n.credentials_name)
                    .map_err(|e| ConfigError(e.to_string()))?;
                Some((auth, c))
            }
            _ => return restart("auth.credentials (turning authentication on or off)"),
        };
        let policy = Policy::new(config)?;
        let mut done = vec!["limits and registrar policy".to_owned()];
        if let Some((auth, c)) = credentials {
            done.push(format!("{} credentials", c.len()));
            auth.set_credentials(c);
        }
        *self.policy.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(done.join(", "))
    }

    /// The bindings store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The digest authenticator, when authentication is on.
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.auth.as_ref()
    }
}

fn validate(c: &EngineConfig) -> Result<(), ConfigError> {
    let fail = |m: String| Err(ConfigError(m));
    if c.min_expires > c.max_expires {
        return fail(format!(
            "min_expires ({}) is greater than max_expires ({})",
            c.min_expires, c.max_expires
        ));
    }
    if c.default_expires == 0 || c.default_expires > c.max_expires {
        return fail(format!(
            "default_expires ({}) must be between 1 and max_expires ({})",
            c.default_expires, c.max_expires
        ));
    }
    if c.max_contacts == 0 {
        return fail("max_contacts must be at least 1".into());
    }
    if let Some(r) = &c.remote {
        if r.cache_aors == 0 || r.max_pending == 0 || r.max_attempts == 0 {
            return fail(
                "location: cache_aors, max_pending and max_attempts must be at least 1".into(),
            );
        }
    }
    if !(512..=crate::store::MAX_TEXT).contains(&c.max_message_size) {
        return fail(format!(
            "max_message_size ({}) must be between 512 and {}",
            c.max_message_size,
            crate::store::MAX_TEXT
        ));
    }
    Ok(())
}

fn build_authenticator(a: &AuthSettings) -> Result<Authenticator, ConfigError> {
    let mut algorithms = Vec::with_capacity(a.algorithms.len());
    for name in &a.algorithms {
        let alg = Algorithm::parse(name.as_bytes())
            .ok_or_else(|| ConfigError(format!("auth.algorithms: unknown algorithm {name:?}")))?;
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        return Err(ConfigError(
            "auth.algorithms: at least one algorithm is needed".into(),
        ));
    }
    if a.realm.is_empty() || a.realm.contains('"') {
        return Err(ConfigError(format!(
            "auth.realm: invalid realm {:?}",
            a.realm
        )));
    }
    let credentials = Credentials::parse(&a.credentials_text, &a.credentials_name)
        .map_err(|e| ConfigError(e.to_string()))?;
    let config = AuthConfig {
        realm: a.realm.clone(),
        algorithms,
        nonce_lifetime: a.nonce_lifetime,
        secret: a.secret,
        bind_nonce_to_source: a.bind_nonce_to_source,
        salt_seed: a.salt_seed,
        one_time_nonces: a.one_time_nonces,
        ..AuthConfig::default()
    };
    Ok(Authenticator::new(config, credentials))
}

/// Transport a message arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP datagrams.
    Udp,
    /// TCP stream.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    fn to_store(self) -> crate::store::Transport {
        match self {
            Self::Udp => crate::store::Transport::Udp,
            Self::Tcp => crate::store::Transport::Tcp,
            Self::Tls => crate::store::Transport::Tls,
        }
    }
}

/// Identifies one stream connection within the whole process (shard id in the high bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Where a message came from and how.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// The peer's address (source of the datagram / remote end of the connection).
    pub source: SocketAddr,
    /// Our address the message arrived on.
    pub local: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// The connection, for stream transports.
    pub conn: Option<ConnId>,
    /// The shard is behind (the message waited too long in its queue): REGISTERs get 503 +
    /// Retry-After without further work.
    pub overloaded: bool,
}

/// A message the runtime must send.
#[derive(Debug)]
pub struct Transmit<'a> {
    /// Destination (for streams: the connection's peer; send on `conn`).
    pub dest: SocketAddr,
    /// The connection to send on, for stream transports.
    pub conn: Option<ConnId>,
    /// Wire bytes.
    pub bytes: &'a [u8],
}

/// Result of feeding stream bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamStatus {
    /// This many leading bytes were consumed (zero or more whole messages / keepalives).
    Consumed(usize),
    /// Unrecoverable framing error: the runtime must close the connection (after sending
    /// whatever `poll_transmit` returns).
    Close,
}

/// Counters of one engine (one shard). Plain integers: the shard owns them; the management
/// plane reads snapshots.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Requests parsed and processed.
    pub requests: u64,
    /// REGISTERs answered 200.
    pub registered: u64,
    /// 401 challenges sent.
    pub challenges: u64,
    /// Challenges caused by wrong credentials (not by missing or stale ones).
    pub auth_failures: u64,
    /// Requests answered with an error status (4xx/5xx/6xx other than 401).
    pub rejected: u64,
    /// Messages dropped: unparseable, responses, ACKs.
    pub dropped: u64,
    /// CRLFCRLF keepalives answered.
    pub keepalives: u64,
    /// Requests dropped or refused because their source exceeded its rate.
    pub flood_drops: u64,
    /// Requests dropped because of a scanner User-Agent.
    pub scanner_drops: u64,
    /// Requests answered 401 without verification because the user or source was locked out.
    pub lockouts: u64,
    /// Responses to REGISTER by status: `REGISTER_STATUSES[i]` counts in slot `i`, any other
    /// status in the last slot.
    pub register_responses: [u64; REGISTER_STATUSES.len() + 1],
}

const _: () = assert!(REGISTER_STATUSES[0] == 200);

/// The statuses counted one by one in [`Stats::register_responses`] (a fixed set keeps metric
/// label cardinality bounded).
pub const REGISTER_STATUSES: [u16; 13] = [
    200, 400, 401, 403, 404, 413, 416, 420, 423, 500, 503, 505, 513,
];

impl Stats {
    /// Adds another engine's counters (totals over shards).
    pub fn add(&mut self, o: &Self) {
        self.requests += o.requests;
        self.registered += o.registered;
        self.challenges += o.challenges;
        self.auth_failures += o.auth_failures;
        self.rejected += o.rejected;
        self.dropped += o.dropped;
        self.keepalives += o.keepalives;
        self.flood_drops += o.flood_drops;
        self.scanner_drops += o.scanner_drops;
        self.lockouts += o.lockouts;
        for (a, b) in self.register_responses.iter_mut().zip(o.register_responses) {
            *a += b;
        }
    }

    /// A 200 OK rendered ahead of time (remote backend) is not an answer until it is sent.
    /// (`REGISTER_STATUSES[0]` is 200, checked at compile time below.)
    fn uncount_ok(&mut self) {
        self.registered = self.registered.saturating_sub(1);
        self.register_responses[0] = self.register_responses[0].saturating_sub(1);
    }

    /// The 200 OK rendered ahead of time is sent.
    fn count_ok(&mut self) {
        self.registered += 1;
        self.register_responses[0] += 1;
    }

    fn count_register(&mut self, code: u16) {
        let slot = REGISTER_STATUSES
            .iter()
            .position(|&c| c == code)
            .unwrap_or(REGISTER_STATUSES.len());
        if let Some(n) = self.register_responses.get_mut(slot) {
            *n += 1;
        }
    }
}

/// Per-shard registrar engine.
pub struct Engine {
    shared: Arc<Shared>,
    /// The policy in force for this engine, and the reload generation it came from.
    policy: Arc<Policy>,
    generation: u64,
    /// Reused response buffer: one datagram response, or every response produced by one
    /// `handle_stream` call (they all go to the same connection).
    out: Vec<u8>,
    dest: Option<(SocketAddr, Option<ConnId>)>,
    /// Reused scratch for the canonical AOR text.
    aor: String,
    /// The parser's reused header index (no allocation per request).
    scratch: sip::Scratch,
    /// AORs registered over each open stream connection of this shard (for `handle_close`).
    flows: HashMap<ConnId, Vec<AorKey>>,
    /// The `Server` and `Date` header lines every response carries, re-rendered once per
    /// second and when the policy (the server name) changes (empty: render them again).
    server_date: (u64, Vec<u8>),
    stats: Stats,
    /// Recent User-Agent verdicts of the scanner check.
    scanners: guard::ScannerCache,
    /// The shared location service's per-shard state, when bindings live there.
    remote: Option<remote::Remote>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A shard's engine over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        static ENGINES: AtomicU64 = AtomicU64::new(0);
        let policy = shared.policy();
        let remote =
            policy.config.remote.clone().map(|settings| {
                remote::Remote::new(settings, ENGINES.fetch_add(1, Ordering::Relaxed))
            });
        Self {
            remote,
            policy,
            generation: shared.generation.load(Ordering::Acquire),
            shared,
            out: Vec::with_capacity(4096),
            dest: None,
            aor: String::with_capacity(128),
            scratch: sip::Scratch::default(),
            flows: HashMap::new(),
            server_date: (0, Vec::with_capacity(96)),
            stats: Stats::default(),
            scanners: guard::ScannerCache::default(),
        }
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// This engine's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Picks up a reloaded policy (one relaxed load when nothing changed; the reload itself
    /// is out of line).
    #[inline(always)]
    fn refresh_policy(&mut self) {
        if self.shared.generation.load(Ordering::Relaxed) != self.generation {
            self.reload_policy();
        }
    }

    #[cold]
    #[inline(never)]
    fn reload_policy(&mut self) {
        self.generation = self.shared.generation.load(Ordering::Acquire);
        self.policy = self.shared.policy();
        self.server_date.1.clear();
    }

    /// Handles one UDP datagram. Trailing octets after the message are ignored (RFC 4475
    /// §3.1.1.8); unparseable datagrams and responses are dropped and counted.
    pub fn handle_datagram(&mut self, now: Instant, meta: &Meta, bytes: &[u8]) {
        self.refresh_policy();
        self.out.clear();
        self.dest = None;
        // Datagrams are bounded by the receive buffer; the size limit is applied after parsing
        // so an oversized request still gets its 513.
        let limits = sip::Limits {
            max_message_size: usize::MAX,
            ..self.policy.limits
        };
        // Built in this frame's slot: moving the request (several hundred bytes) out of a
        // result would copy it.
        let mut slot = None;
        match sip::parse_datagram_into(bytes, &limits, &mut self.scratch, &mut slot) {
            Ok(msg) => {
                if let Message::Request(req) = msg {
                    let too_large = req.as_bytes().len() > self.policy.limits.max_message_size;
                    if !self.process(now, meta, req, too_large) {
                        self.dest = None;
                    }
                } else {
                    self.stats.dropped += 1;
                }
                self.scratch.reclaim(msg);
            }
            Err(_) => self.stats.dropped += 1,
        }
    }

    /// Handles bytes received on a stream. Consumes every complete message and keepalive at the
    /// front of `bytes` and leaves a partial message for the next call. All responses are
    /// queued for one `poll_transmit`.
    #[must_use]
    pub fn handle_stream(&mut self, now: Instant, meta: &Meta, bytes: &[u8]) -> StreamStatus {
        self.refresh_policy();
        self.out.clear();
        self.dest = None;
        let mut consumed = 0;
        let status = loop {
            let rest = bytes.get(consumed..).unwrap_or_default();
            if rest.is_empty() {
                break StreamStatus::Consumed(consumed);
            }
            match sip::keepalive_len(rest) {
                sip::Status::Partial => break StreamStatus::Consumed(consumed),
                sip::Status::Complete(Some(n)) => {
                    if n == 4 {
                        // RFC 5626 §4.4.1: a CRLFCRLF ping is answered with a CRLF pong.
                        self.out.extend_from_slice(b"\r\n");
                        self.stats.keepalives += 1;
                    }
                    consumed += n;
                    continue;
                }
                sip::Status::Complete(None) => {}
            }
            // In this frame's slot, as in `handle_datagram`.
            let mut slot = None;
            match sip::parse_stream_into(rest, &self.policy.limits, &mut self.scratch, &mut slot) {
                Ok(sip::Status::Partial) => break StreamStatus::Consumed(consumed),
                Ok(sip::Status::Complete((msg, n))) => {
                    consumed += n;
                    match msg {
                        Message::Request(req) => {
                            // On a stream the response goes back over the connection whatever
                            // the Via says (RFC 3261 §18.2.2).
                            let _ = self.process(now, meta, req, false);
                        }
                        Message::Response(_) => self.stats.dropped += 1,
                    }
                    self.scratch.reclaim(msg);
                }
                // A framing error on a stream is unrecoverable (RFC 4475 §3.1.2.3, §3.3.9).
                Err(_) => {
                    self.stats.dropped += 1;
                    break StreamStatus::Close;
                }
            }
        };
        // (`process` set a datagram's destination.)
        self.dest = (!self.out.is_empty()).then_some((meta.source, meta.conn));
        status
    }

    /// A stream connection closed: bindings learned over it are removed if configured
    /// (RFC 5626 style flow failure).
    pub fn handle_close(&mut self, now: Instant, conn: ConnId) {
        let Some(aors) = self.flows.remove(&conn) else {
            return;
        };
        self.refresh_policy();
        if !self.policy.config.remove_on_close {
            return;
        }
        if let Some(node) = self.remote.as_ref().map(|r| r.settings.node) {
            let flow = remote::flow_id(node, conn.0);
            for aor in aors {
                self.remove_flow_remote(now, aor, flow, None);
            }
            return;
        }
        for aor in &aors {
            self.shared.store.modify(aor, now, |bindings| {
                let mut i = 0;
                while let Some(b) = bindings.get(i) {
                    if b.conn() == Some(conn.0) {
                        bindings.remove(i);
                    } else {
                        i += 1;
                    }
                }
            });
        }
    }

    /// Removes a closed flow's bindings of one AOR from the shared location service
    /// (compare-and-set like a REGISTER; `resume` after the service answered).
    fn remove_flow_remote(
        &mut self,
        now: Instant,
        aor: AorKey,
        flow: u64,
        resume: Option<(u64, u8)>,
    ) {
        let Some(remote) = self.remote.as_mut() else {
            return;
        };
        let (version, mut list) = remote.take_state(&aor, now);
        let before = list.len();
        list.retain(|b| b.conn() != Some(flow));
        let changed = list.len() != before;
        let (token, attempts) = match resume {
            // Confirmed by the service: nothing (left) to remove.
            Some(_) if !changed => {
                remote.put_back(aor, (version, list));
                return;
            }
            Some((token, attempts)) => (Some(token), attempts),
            None => (None, 0),
        };
        if attempts >= remote.settings.max_attempts {
            tracing::warn!(aor = %aor.as_str(), "closed flow's bindings not removed (location service busy); they expire");
            return;
        }
        let new_version = if changed {
            remote.new_version()
        } else {
            version
        };
        let write = changed.then(|| RemoteWrite::for_bindings(new_version, &list));
        let pending = remote::Pending {
            aor,
            waiting: remote::Waiting::RemoveFlow(flow),
            attempts: attempts + 1,
            writing: Some((new_version, list)),
            stores_flow: false,
            ready: None,
        };
        remote.submit(token, version, write, pending);
    }

    /// The next compare-and-set the shared location service must run (remote backend).
    pub fn poll_remote(&mut self) -> Option<RemoteOp> {
        self.remote.as_mut()?.poll_op()
    }

    /// Requests waiting for the shared location service.
    pub fn remote_pending(&self) -> usize {
        self.remote.as_ref().map_or(0, remote::Remote::pending)
    }

    /// The shared location service answered the op with this token. Committed as planned: the
    /// response rendered at planning time is the answer (see `poll_transmit`). Otherwise the
    /// request is planned again against the state the service returned and either answered or
    /// sent again (see `poll_remote`). Returns false while the request still waits.
    pub fn handle_remote(&mut self, now: Instant, token: u64, reply: RemoteReply) -> bool {
        self.refresh_policy();
        self.out.clear();
        self.dest = None;
        let Some(p) = self.remote.as_mut().and_then(|r| r.complete(token, &reply)) else {
            return true;
        };
        match p.waiting {
            remote::Waiting::RemoveFlow(flow) => {
                if reply == RemoteReply::Unavailable {
                    tracing::warn!(aor = %p.aor.as_str(), "closed flow's bindings not removed (location service unavailable); they expire");
                } else {
                    self.remove_flow_remote(now, p.aor, flow, Some((token, p.attempts)));
                }
            }
            remote::Waiting::Request {
                bytes,
                meta,
                dest,
                user,
            } => {
                if p.stores_flow && reply == RemoteReply::Committed {
                    if let Some(conn) = meta.conn {
                        self.track_flow(conn, p.aor.clone());
                    }
                }
                // Committed as planned: the response rendered then is the answer.
                if let (RemoteReply::Committed, Some(ready)) = (&reply, p.ready) {
                    self.out.extend_from_slice(&ready);
                    self.stats.count_ok();
                    self.dest = Some((dest, meta.conn));
                    return true;
                }
                let limits = sip::Limits {
                    max_message_size: usize::MAX,
                    ..self.policy.limits
                };
                // The bytes parsed once already; a failure here cannot happen.
                let Ok(Message::Request(req)) = sip::parse_datagram(&bytes, &limits) else {
                    return true;
                };
                let outcome = if reply == RemoteReply::Unavailable || p.attempts == u8::MAX {
                    Err((Error::LocationUnavailable, smallvec::SmallVec::new()))
                } else {
                    let resume = remote::Resume {
                        token,
                        attempts: p.attempts,
                        user,
                    };
                    register::resume(self, now, &meta, &req, resume)
                };
                if self.finish(now, &meta, &req, 0, outcome) {
                    self.dest = Some((dest, meta.conn));
                }
            }
        }
        !self.remote.as_ref().is_some_and(|r| r.is_pending(token))
    }

    /// Remembers that `aor` holds bindings over `conn` (removed when it closes).
    fn track_flow(&mut self, conn: ConnId, aor: AorKey) {
        let aors = self.flows.entry(conn).or_default();
        if !aors.contains(&aor) {
            aors.push(aor);
        }
    }

    /// The next message to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let (dest, conn) = self.dest.take()?;
        Some(Transmit {
            dest,
            conn,
            bytes: &self.out,
        })
    }

    /// Housekeeping: expires due bindings. Safe to call from every shard (the store sweeps each
    /// slot once).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refresh_policy();
        self.shared.store.handle_timeout(now);
        self.shared.guard.handle_timeout(now);
    }

    /// When `handle_timeout` wants to run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shared.store.poll_timeout()
    }

    /// Processes one parsed request, writing its response (if any) into `self.out` after what
    /// is already there. Returns whether a response is due; when one may be, `self.dest` is set
    /// to where a UDP response must go (a stream's caller sets its own destination).
    fn process(&mut self, now: Instant, meta: &Meta, req: &Request<'_>, too_large: bool) -> bool {
        self.stats.requests += 1;
        // Without a Via there is no response (§18.2.1); with a malformed one, the 400 goes
        // back to the packet's source. Written where `poll_transmit` takes it, not kept in
        // this frame across the request's processing (most requests are answered).
        let dest = match req.parsed_top_via() {
            Some(top_via) => response_destination(meta, top_via),
            None => match req.top_via() {
                None => {
                    self.stats.dropped += 1;
                    return false;
                }
                Some(Ok(top_via)) => response_destination(meta, &top_via),
                Some(Err(_)) => meta.source,
            },
        };
        self.dest = Some((dest, None));
        match self
            .shared
            .guard
            .admit(&self.policy.guard, now, meta.source.ip())
        {
            guard::Admit::Yes => {}
            guard::Admit::Drop => {
                self.stats.flood_drops += 1;
                return false;
            }
            guard::Admit::Refuse => {
                self.stats.flood_drops += 1;
                let mut w = self.writer(now, meta, req, sip::StatusCode::SERVICE_UNAVAILABLE, None);
                w.header_fmt("Retry-After", format_args!("{}", error::RETRY_AFTER_SECS));
                w.finish(b"");
                return true;
            }
        }
        let checked = self.scanners.check(
            &self.policy.guard,
            req.header(sip::HeaderName::UserAgent).unwrap_or_default(),
        );
        if checked.drop {
            self.stats.scanner_drops += 1;
            return false;
        }
        let start = self.out.len();
        let outcome = if meta.overloaded && req.method() == sip::Method::REGISTER {
            Err((Error::Overloaded, smallvec::SmallVec::new()))
        } else if too_large {
            Err((Error::MessageTooLarge, smallvec::SmallVec::new()))
        } else {
            register::dispatch(self, now, meta, req, start, checked.stored)
        };
        self.finish(now, meta, req, start, outcome)
    }

    /// Writes the error response of a failed request (its response starts at `start`); returns
    /// whether a response is due. The usual outcome (a response was written) is decided
    /// inline.
    #[inline(always)]
    fn finish(
        &mut self,
        now: Instant,
        meta: &Meta,
        req: &Request<'_>,
        start: usize,
        outcome: Result<register::Done, register::Failed>,
    ) -> bool {
        match outcome {
            Ok(register::Done::Sent) => true,
            other => self.finish_other(now, meta, req, start, other),
        }
    }

    #[inline(never)]
    fn finish_other(
        &mut self,
        now: Instant,
        meta: &Meta,
        req: &Request<'_>,
        start: usize,
        outcome: Result<register::Done, register::Failed>,
    ) -> bool {
        match outcome {
            Ok(register::Done::Sent) => true,
            Ok(register::Done::Pending) => false,
            Ok(register::Done::Drop) => {
                self.stats.dropped += 1;
                false
            }
            Err((e, unsupported)) => {
                self.out.truncate(start);
                self.stats.rejected += 1;
                let (code, reason) = e.status();
                let mut w = self.writer(now, meta, req, code, Some(reason));
                e.write_extra_headers(&mut w, &unsupported);
                w.finish(b"");
                true
            }
        }
    }

    /// Starts a response to `req` at the end of `self.out` with the common headers.
    fn writer<'o>(
        &'o mut self,
        now: Instant,
        meta: &Meta,
        req: &Request<'_>,
        code: sip::StatusCode,
        reason: Option<&str>,
    ) -> sip::ResponseWriter<'o> {
        let register = req.method() == sip::Method::REGISTER;
        self.writer_inline(now, meta, req, code, reason, register)
    }

    /// [`Engine::writer`] inlined into its caller: the 200 OK of a REGISTER (the most
    /// frequent response) calls it directly, the other responses through `writer`.
    /// `register`: `req` is a REGISTER (its response is counted); the 200 OK's caller knows
    /// it without comparing the method.
    #[inline(always)]
    fn writer_inline<'o>(
        &'o mut self,
        now: Instant,
        meta: &Meta,
        req: &Request<'_>,
        code: sip::StatusCode,
        reason: Option<&str>,
        register: bool,
    ) -> sip::ResponseWriter<'o> {
        if register {
            self.stats.count_register(code.0);
        }
        if self.server_date.0 != now.as_secs() || self.server_date.1.is_empty() {
            self.server_date.0 = now.as_secs();
            let lines = &mut self.server_date.1;
            lines.clear();
            lines.extend_from_slice(b"Server: ");
            lines.extend_from_slice(self.policy.config.server.as_bytes());
            lines.extend_from_slice(b"\r\nDate: ");
            sip::write_http_date(lines, now.as_secs());
            lines.extend_from_slice(b"\r\n");
        }
        // §18.2.1: `received` (and `rport` when asked for) on the top Via.
        let tag = |call_id: &[u8]| to_tag(req, call_id);
        let mut w = sip::ResponseWriter::with_tag_of(
            &mut self.out,
            code,
            reason,
            req,
            tag,
            Some(meta.source),
        );
        let lines = &self.server_date.1;
        w.raw(|out| out.extend_from_slice(lines));
        w
    }
}

/// RFC 3261 §18.2.2 + RFC 3581 §4: over UDP, a request whose top Via carries `rport` is answered
/// to the packet's source address and port; otherwise to the source IP (the `received` address)
/// and the port in the Via's sent-by (5060 by default).
fn response_destination(meta: &Meta, via: &sip::Via<'_>) -> SocketAddr {
    if meta.transport != Transport::Udp || via.has_rport() {
        return meta.source;
    }
    SocketAddr::new(meta.source.ip(), via.port.unwrap_or(5060))
}

/// The registrar is a UAS: its responses carry a To tag (§8.2.6.2). Derived from the request
/// (Call-ID, From tag, CSeq) so a retransmitted request is answered with the same tag without
/// keeping state ([`tag_hash`]). `call_id` is the request's Call-ID value (empty when it has
/// none).
fn to_tag(req: &Request<'_>, call_id: &[u8]) -> [u8; 16] {
    let (from_tag, seq) = match (req.parsed_from(), req.parsed_cseq()) {
        (Some(from), Some(cseq)) => (from.tag().unwrap_or_default(), cseq.seq),
        _ => tag_parts_unparsed(req),
    };
    hex16(tag_hash(call_id, from_tag, seq))
}

/// The From tag and CSeq number of a request whose validation stopped before it kept them
/// (out of line: rare, and its parses would give the usual tag a stack frame).
#[cold]
#[inline(never)]
fn tag_parts_unparsed<'b>(req: &Request<'b>) -> (&'b [u8], u32) {
    let from_tag = match req.parsed_from() {
        Some(f) => f.tag(),
        None => req.from().ok().and_then(|f| f.tag()),
    };
    let seq = match req.parsed_cseq() {
        Some(c) => c.seq,
        None => req.cseq().map_or(0, |c| c.seq),
    };
    (from_tag.unwrap_or_default(), seq)
}

/// The constants of [`tag_hash`]: the seed and the key each second word is XORed with (odd,
/// with bits set across the word; foldhash's first digits of pi).
const TAG_SEED: u64 = 0x243f_6a88_85a3_08d3;
const TAG_KEY: u64 = 0x1319_8a2e_0370_7344 | 1;

/// The To tag's 64 bits: a one-shot hash of the Call-ID, the From tag and the CSeq number.
/// Each text's length goes into the state, then every 16 bytes of it (the last 16 overlapping
/// the ones before; a shorter text as its first and last 8 or 4 bytes, or its bytes) as two
/// words, the first XORed into the state and the second into a key, multiplied to 128 bits and
/// the halves folded (foldhash's step); the CSeq number is folded in last. Good enough for a
/// tag, which only has to tell requests apart (RFC 3261 §8.2.6.2, §19.3): every byte and
/// both lengths are read, so requests that differ anywhere — a counter in a Call-ID's middle
/// too — differ in the tag except by a 64-bit collision; it is not keyed against chosen
/// collisions, nor was the fixed-seed foldhash it replaces, whose streaming hasher cost twice
/// the instructions for its bookkeeping per write.
#[inline]
fn tag_hash(call_id: &[u8], from_tag: &[u8], seq: u32) -> u64 {
    let state = fold_text(fold_text(TAG_SEED, call_id), from_tag);
    folded_multiply(state ^ u64::from(seq), TAG_KEY)
}

/// `state` with `text`'s length and every byte of it folded in (see [`tag_hash`]).
#[inline(always)]
fn fold_text(state: u64, text: &[u8]) -> u64 {
    let word = |w: &[u8; 8]| u64::from_le_bytes(*w);
    let mut state = state ^ text.len() as u64;
    let step = |state: u64, chunk: &[u8; 16]| {
        let words = u128::from_le_bytes(*chunk);
        folded_multiply(words as u64 ^ state, (words >> 64) as u64 ^ TAG_KEY)
    };
    if let Some(last) = text.last_chunk::<16>() {
        // The whole chunks of all but the last byte, then the last 16 bytes: every byte
        // read, the fewest chunks.
        let head = text.get(..text.len() - 1).unwrap_or_default();
        for chunk in head.as_chunks::<16>().0 {
            state = step(state, chunk);
        }
        return step(state, last);
    }
    let (a, b) = match (text.first_chunk::<8>(), text.last_chunk::<8>()) {
        (Some(a), Some(b)) => (word(a), word(b)),
        _ => match (text.first_chunk::<4>(), text.last_chunk::<4>()) {
            (Some(a), Some(b)) => (
                u64::from(u32::from_le_bytes(*a)),
                u64::from(u32::from_le_bytes(*b)),
            ),
            // 0 to 3 bytes: the first, the middle one and the last (the length tells them
            // apart).
            _ => match (text.first(), text.get(text.len() / 2), text.last()) {
                (Some(&lo), Some(&mid), Some(&hi)) => {
                    (u64::from(lo), u64::from(hi) << 8 | u64::from(mid))
                }
                _ => (0, 0),
            },
        },
    };
    folded_multiply(a ^ state, b ^ TAG_KEY)
}

/// `h` as 16 lower-case hex digits (`format!("{h:016x}")`): each nibble spread to a byte and
/// turned into its digit by SSE2 compares and adds, 16 at a time (no table lookups).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn hex16(h: u64) -> [u8; 16] {
    use safe_arch::{
        add_i8_m128i, bitand_m128i, cmp_gt_mask_i8_m128i, set_i64_m128i_s, set_splat_i8_m128i,
        shr_imm_u16_m128i, unpack_low_i8_m128i,
    };
    // The bytes high first, as they are written.
    let bytes = set_i64_m128i_s(i64::from_ne_bytes(h.to_be_bytes()));
    let low_nibble = set_splat_i8_m128i(0x0f);
    let high = bitand_m128i(shr_imm_u16_m128i::<4>(bytes), low_nibble);
    let low = bitand_m128i(bytes, low_nibble);
    // One nibble per byte, high nibble first: values 0..=15.
    let nibbles = unpack_low_i8_m128i(high, low);
    // '0' + n, and 'a' - '0' - 10 more for n above 9.
    let letters = bitand_m128i(
        cmp_gt_mask_i8_m128i(nibbles, set_splat_i8_m128i(9)),
        set_splat_i8_m128i((b'a' - b'0' - 10) as i8),
    );
    let digits = add_i8_m128i(
        add_i8_m128i(nibbles, set_splat_i8_m128i(b'0' as i8)),
        letters,
    );
    <[u8; 16]>::from(digits)
}

/// `h` as 16 lower-case hex digits (other targets: the pair table).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn hex16(h: u64) -> [u8; 16] {
    hex16_pairs(h)
}

/// `h` as 16 lower-case hex digits from the pair table: [`hex16`] on targets without SSE2,
/// and its oracle in the tests.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn hex16_pairs(h: u64) -> [u8; 16] {
    let mut tag = [0u8; 16];
    for (pair, byte) in tag.chunks_exact_mut(2).zip(h.to_be_bytes()) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    tag
}

/// Each byte in lower-case hex, high nibble first.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [HEX[b >> 4], HEX[b & 0xf]];
        b += 1;
    }
    table
};

#[cfg(test)]
mod writer_tests {
    use super::*;

    /// The Server and Date lines, for short and long server names, follow the second.
    #[test]
    fn server_date_lines_of_any_name() {
        for server in [
            "sipreg/0.1.0",
            "s",
            "x".repeat(17).as_str(),
            &"y".repeat(18),
            &"z".repeat(200),
        ] {
            let config = EngineConfig {
                domains: vec!["example.com".into()],
                server: server.to_owned(),
                ..EngineConfig::default()
            };
            let (mut engine, meta) = udp_engine(config);
            for (secs, date) in [
                (1_289_690_940, "Sat, 13 Nov 2010 23:29:00 GMT"),
                (1_289_690_941, "Sat, 13 Nov 2010 23:29:01 GMT"),
            ] {
                let req = format!(
                    "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-{secs}\r\n\
                     From: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\n\
                     Call-ID: c@h\r\nCSeq: {} REGISTER\r\nContent-Length: 0\r\n\r\n",
                    secs - 1_289_690_000
                );
                engine.handle_datagram(Instant::from_secs(secs), &meta, req.as_bytes());
                let out = engine
                    .poll_transmit()
                    .map(|t| t.bytes.to_vec())
                    .unwrap_or_default();
                let text = String::from_utf8(out).unwrap();
                let lines = format!("\r\nServer: {server}\r\nDate: {date}\r\n");
                assert!(text.contains(&lines), "{text}");
            }
        }
    }

    /// The SSE2 digits against the pair table, over every byte value in every position.
    #[test]
    fn hex16_matches_the_pair_table() {
        for byte in 0..=255u64 {
            for shift in (0..64).step_by(8) {
                let v = byte << shift | (0x0123_4567_89ab_cdef & !(0xff << shift));
                assert_eq!(hex16(v), hex16_pairs(v), "{v:x}");
            }
        }
    }

    /// The To tag's hash reads every byte and both lengths: the same parts give the same hash,
    /// a change of any one byte of either text (every place, lengths 0 to 70), of a length,
    /// of where the Call-ID ends and the From tag starts, or of the CSeq number gives another.
    #[test]
    fn tag_hash_reads_every_byte() {
        let text = |len: usize, seed: u8| -> Vec<u8> {
            (0..len)
                .map(|i| b'0' + (i as u8).wrapping_mul(7).wrapping_add(seed) % 75)
                .collect()
        };
        for len in 0..=70 {
            for (a, b) in [(text(len, 1), text(9, 2)), (text(38, 3), text(len, 4))] {
                let want = tag_hash(&a, &b, 7);
                assert_eq!(tag_hash(&a, &b, 7), want);
                assert_ne!(tag_hash(&a, &b, 8), want);
                assert_ne!(tag_hash(&a, &b, 7 | 1 << 31), want);
                for (i, flip) in (0..a.len()).flat_map(|i| [(i, 1u8), (i, 0x80)]) {
                    let mut changed = a.clone();
                    changed[i] ^= flip;
                    assert_ne!(tag_hash(&changed, &b, 7), want, "{len} {i}");
                }
                for (i, flip) in (0..b.len()).flat_map(|i| [(i, 1u8), (i, 0x80)]) {
                    let mut changed = b.clone();
                    changed[i] ^= flip;
                    assert_ne!(tag_hash(&a, &changed, 7), want, "{len} {i}");
                }
                // A byte more or less at either end, and a byte moved across the boundary.
                let (mut longer, mut shorter) = (a.clone(), a.clone());
                longer.push(0);
                shorter.pop();
                assert_ne!(tag_hash(&longer, &b, 7), want);
                if !a.is_empty() {
                    assert_ne!(tag_hash(&shorter, &b, 7), want);
                    let moved = [&a[a.len() - 1..], &b[..]].concat();
                    assert_ne!(tag_hash(&shorter, &moved, 7), want);
                }
            }
        }
    }

    /// Call-IDs that differ only in their middle (a counter, as a load generator writes
    /// them) with one From tag and CSeq: no two tags alike.
    #[test]
    fn tags_of_call_ids_differing_in_the_middle() {
        let mut seen = std::collections::HashSet::new();
        for user in 0..100_000u64 {
            let call_id = format!("{user:016x}-9f2c4e1b7a@192.0.2.10");
            let tag = hex16(tag_hash(call_id.as_bytes(), b"a73kszlfl", 1));
            assert!(tag.iter().all(|b| b"0123456789abcdef".contains(b)));
            assert!(seen.insert(tag), "{call_id}");
        }
    }

    /// An engine on `config` and the metadata of a UDP request to it from one phone.
    fn udp_engine(config: EngineConfig) -> (Engine, Meta) {
        let meta = Meta {
            source: "192.0.2.201:5060".parse().unwrap(),
            local: "192.0.2.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            conn: None,
            overloaded: false,
        };
        (Engine::new(Arc::new(Shared::new(config).unwrap())), meta)
    }

    /// Through the engine: a retransmission is answered with the same To tag (§8.2.6.2), a
    /// request with another Call-ID, From tag or CSeq with another one.
    #[test]
    fn to_tag_follows_the_request() {
        let config = EngineConfig {
            domains: vec!["example.com".into()],
            ..EngineConfig::default()
        };
        let (mut engine, meta) = udp_engine(config);
        let mut tag_of = |call_id: &str, from_tag: &str, cseq: u32| {
            let req = format!(
                "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-{cseq}\r\n\
                 From: <sip:u@example.com>;tag={from_tag}\r\nTo: <sip:u@example.com>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContent-Length: 0\r\n\r\n"
            );
            engine.handle_datagram(Instant::from_secs(1_000_000), &meta, req.as_bytes());
            let out = engine.poll_transmit().map(|t| t.bytes.to_vec()).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
            let to = text
                .lines()
                .find_map(|l| l.strip_prefix("To: <sip:u@example.com>;tag="))
                .unwrap()
                .to_owned();
            assert_eq!(to.len(), 16, "{text}");
            assert!(to.bytes().all(|b| b"0123456789abcdef".contains(&b)), "{to}");
            to
        };
        let first = tag_of("c1@h", "f1", 5);
        assert_eq!(tag_of("c1@h", "f1", 5), first, "a retransmission");
        assert_ne!(tag_of("c2@h", "f1", 6), first, "another Call-ID");
        assert_ne!(tag_of("c1@h", "f2", 6), first, "another From tag");
        assert_ne!(tag_of("c1@h", "f1", 6), first, "another CSeq");
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    /// The first domain's inline compare answers as the walk over every domain, folded, does:
    /// for no domain, one and several, hosts written as kept, in other case, longer, shorter
    /// and of every length class the inline compare reads (to 40 bytes).
    #[test]
    fn serves_answers_as_the_walk_over_every_domain() {
        let long = "r".repeat(40);
        for domains in [
            vec![],
            vec!["example.com"],
            vec!["a.org", "example.com"],
            vec!["x", "example.com.", long.as_str()],
        ] {
            let config = EngineConfig {
                domains: domains.iter().map(|d| d.to_string()).collect(),
                ..EngineConfig::default()
            };
            let Ok(policy) = Policy::new(config) else {
                panic!("{domains:?}")
            };
            let mut hosts: Vec<String> = [
                "example.com",
                "EXAMPLE.com",
                "example.co",
                "example.comm",
                "xample.com",
                "a.org",
                "A.ORG",
                "x",
                "X",
                "",
                "example.com.",
            ]
            .map(String::from)
            .to_vec();
            hosts.extend((0..=41).map(|n| "r".repeat(n)));
            hosts.extend((0..=41).map(|n| "R".repeat(n)));
            for host in &hosts {
                let walk =
                    domains.is_empty() || domains.iter().any(|d| d.eq_ignore_ascii_case(host));
                assert_eq!(policy.serves(host.as_bytes()), walk, "{domains:?} {host}");
                let first = domains.first().is_some_and(|d| d == host);
                assert!(first || domains.is_empty() || policy.serves_any(host.as_bytes()) == walk);
            }
        }
    }
}
