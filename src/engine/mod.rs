//! The registrar state machine (RFC 3261 §10.3) — PLACEHOLDER SIGNATURES.
//!
//! This file fixes the interface the runtime drives; the logic lands with the registrar core.
//! Input verbs are `handle_*`, outputs are `poll_*`. The engine never touches sockets, threads
//! or the clock: time, addresses and bytes are arguments.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::time::Instant;

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
    /// At `max_contacts`: evict the oldest binding instead of rejecting with 503. Default false.
    pub evict_oldest: bool,
    /// An authenticated user may register AORs other than its own. Default false (403).
    pub allow_third_party: bool,
    /// Remove bindings learned over a stream when that connection closes. Default true.
    pub remove_on_close: bool,
    /// `Server` header value. Default "sipreg/<version>".
    pub server: String,
    /// Largest message accepted (bytes). Default 65535.
    pub max_message_size: usize,
    /// Header lines per message. Default 128.
    pub max_headers: usize,
    /// Contacts in one REGISTER. Default 32.
    pub max_contacts_per_request: usize,
    /// Initial capacity of the bindings map (AORs). Default 65536.
    pub store_capacity: usize,
    /// Shard count of the bindings map (power of two, >= 4x cores). Default 64.
    pub store_shards: usize,
    /// Digest authentication; `None` = open registration (insecure, logged at start).
    pub auth: Option<AuthSettings>,
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts: 10,
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
        }
    }
}

/// An invalid engine configuration (bad credentials file, unknown algorithm...).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// State shared by every shard's [`Engine`]: configuration, bindings store, authenticator.
#[derive(Debug)]
pub struct Shared {
    config: EngineConfig,
}

impl Shared {
    /// Validates the configuration and builds the store and authenticator.
    pub fn new(config: EngineConfig) -> Result<Self, ConfigError> {
        Ok(Self { config })
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
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

/// Per-shard registrar engine.
#[derive(Debug)]
pub struct Engine {
    shared: Arc<Shared>,
    out: Vec<u8>,
    dest: Option<(SocketAddr, Option<ConnId>)>,
}

impl Engine {
    /// A shard's engine over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared, out: Vec::with_capacity(4096), dest: None }
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A stream connection closed: bindings learned over it are removed if configured.
    pub fn handle_close(&mut self, _now: Instant, _conn: ConnId) {}

    /// Handles one UDP datagram.
    pub fn handle_datagram(&mut self, _now: Instant, meta: &Meta, bytes: &[u8]) {
        self.out.clear();
        self.out.extend_from_slice(bytes);
        self.dest = Some((meta.source, meta.conn));
    }

    /// Handles bytes received on a stream; returns how much was consumed.
    #[must_use]
    pub fn handle_stream(&mut self, now: Instant, meta: &Meta, bytes: &[u8]) -> StreamStatus {
        self.handle_datagram(now, meta, bytes);
        StreamStatus::Consumed(bytes.len())
    }

    /// The next message to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let (dest, conn) = self.dest.take()?;
        Some(Transmit { dest, conn, bytes: &self.out })
    }

    /// Housekeeping (expiry sweep).
    pub fn handle_timeout(&mut self, _now: Instant) {}

    /// When `handle_timeout` wants to run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}
