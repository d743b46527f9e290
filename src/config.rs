//! `sipreg.toml`: the configuration file, validated into [`EngineConfig`] and
//! [`RuntimeConfig`]. Unknown fields are errors; every error names the field (and, for TOML
//! syntax and type errors, the line). Command-line flags override the file (see `main.rs`).
//!
//! The embedded default (no file) listens on UDP and TCP 0.0.0.0:5060 and TLS 0.0.0.0:5061,
//! one shard per core, and serves open registration (no credentials file) with a loud warning.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{AuthSettings, EngineConfig};
use crate::runtime::{Backend, RuntimeConfig, TlsFiles};

/// A configuration problem, naming the field or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, unknown field or wrong type (the message names the line and the field).
    #[error("{file}: {message}")]
    Toml {
        /// The file.
        file: String,
        /// toml's message, with line and column.
        message: String,
    },
    /// A value out of range.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `registrar.min_expires`.
        field: &'static str,
        /// Why.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen addresses.
    pub listen: Listen,
    /// Threads and I/O.
    pub runtime: Runtime,
    /// RFC 3261 §10.3 policy.
    pub registrar: Registrar,
    /// Digest authentication.
    pub auth: Auth,
    /// TLS certificate.
    pub tls: Tls,
    /// Resource limits.
    pub limits: Limits,
    /// Flood control, lockout, scanners.
    pub security: Security,
    /// The management HTTP API and metrics.
    pub management: Management,
    /// Durable bindings.
    pub persistence: Persistence,
    /// Where bindings live: this process, or Redis shared by several nodes.
    pub location: Location,
}

/// `[location]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Location {
    /// `memory` (this process's store, persisted by `[persistence]`) or `redis` (one location
    /// service shared by every node pointed at it; `[persistence]` is then unused). Default
    /// `memory`.
    pub backend: String,
    /// Redis URLs (`redis://host:port[/db]`): one server, or the seed nodes of a cluster.
    pub redis_urls: Vec<String>,
    /// The URLs are Redis Cluster nodes. Default false.
    pub redis_cluster: bool,
    /// Key prefix (keys are `<prefix>{<AOR>}`). Default `sipreg:`.
    pub key_prefix: String,
    /// Milliseconds to wait for Redis before a REGISTER gets 503 + Retry-After. Default 250.
    pub timeout_ms: u64,
    /// Requests per shard waiting for Redis; more get 503 at once. Default 16384.
    pub max_pending: usize,
    /// AOR versions each shard remembers (saves a round trip on refreshes). Default 100000.
    pub cache_aors: usize,
}

impl Default for Location {
    fn default() -> Self {
        Self {
            backend: "memory".into(),
            redis_urls: vec!["redis://127.0.0.1:6379/".into()],
            redis_cluster: false,
            key_prefix: "sipreg:".into(),
            timeout_ms: 250,
            max_pending: 16_384,
            cache_aors: 100_000,
        }
    }
}

/// `[persistence]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Persistence {
    /// `none` (memory only), `interval` (group commit, fsync at most every `interval_ms`; a
    /// crash loses at most that window) or `ack` (a 200 OK waits until its change is fsynced).
    /// Default `interval`.
    pub durability: String,
    /// Data directory (relative to the working directory). Default `sipreg-data`.
    pub dir: PathBuf,
    /// Milliseconds between fsyncs in `interval` mode. Default 10.
    pub interval_ms: u64,
    /// Changes waiting for the disk writer; shards wait beyond it. Default 65536.
    pub queue_capacity: usize,
}

impl Default for Persistence {
    fn default() -> Self {
        Self {
            durability: "interval".into(),
            dir: PathBuf::from("sipreg-data"),
            interval_ms: 10,
            queue_capacity: 65_536,
        }
    }
}

/// `[management]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Management {
    /// Serve the management API (`/metrics`, `/v1/...`, probes). Default true.
    pub enabled: bool,
    /// Listen address. Default `127.0.0.1:9060` (loopback: the API can delete bindings).
    pub listen: SocketAddr,
    /// File holding the bearer token every endpoint but `/healthz` and `/readyz` requires.
    /// None = no token (then keep `listen` on loopback).
    pub token_file: Option<PathBuf>,
}

impl Default for Management {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9060)),
            token_file: None,
        }
    }
}

/// `[security]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// Per-source rate limiting on. Default true.
    pub rate_limit: bool,
    /// Requests per second per source. Default 200.
    pub rate_per_second: u32,
    /// Burst per source. Default 400.
    pub rate_burst: u32,
    /// Ban duration for a source over the rate, seconds. Default 60.
    pub ban_secs: u32,
    /// Answer banned sources with 503 + Retry-After instead of dropping. Default false.
    pub ban_reply_503: bool,
    /// Trusted sources (CIDR), never rate-limited nor locked out by IP. Default loopback.
    pub allow: Vec<String>,
    /// Brute-force lockout on. Default true.
    pub lockout: bool,
    /// Failed digest responses tolerated per user and per IP within `lockout_window`. Default 10.
    pub lockout_failures: u32,
    /// Seconds. Default 60.
    pub lockout_window: u32,
    /// Lock duration, seconds. Default 300.
    pub lockout_secs: u32,
    /// Drop known scanner User-Agents (friendly-scanner, sipvicious, ...). Default true.
    pub drop_scanners: bool,
}

impl Default for Security {
    fn default() -> Self {
        let r = crate::engine::guard::RateLimit::default();
        let l = crate::engine::guard::Lockout::default();
        Self {
            rate_limit: true,
            rate_per_second: r.per_second,
            rate_burst: r.burst,
            ban_secs: r.ban_secs,
            ban_reply_503: r.reply_503,
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            lockout: true,
            lockout_failures: l.failures,
            lockout_window: l.window_secs,
            lockout_secs: l.lock_secs,
            drop_scanners: true,
        }
    }
}

/// `[listen]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// UDP addresses. Default `["0.0.0.0:5060"]`.
    pub udp: Vec<SocketAddr>,
    /// TCP addresses. Default `["0.0.0.0:5060"]`.
    pub tcp: Vec<SocketAddr>,
    /// TLS addresses. Default `["0.0.0.0:5061"]`.
    pub tls: Vec<SocketAddr>,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            udp: vec![SocketAddr::from(([0, 0, 0, 0], 5060))],
            tcp: vec![SocketAddr::from(([0, 0, 0, 0], 5060))],
            tls: vec![SocketAddr::from(([0, 0, 0, 0], 5061))],
        }
    }
}

/// `[runtime]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// Shard threads; 0 = one per available core. Default 0.
    pub shards: usize,
    /// `auto` (io_uring when available), `uring` or `fallback` (epoll). Default `auto`.
    pub backend: Backend,
    /// Pin shard N to core N. Default true.
    pub pin: bool,
    /// Log filter (tracing `EnvFilter` syntax). Default `info`.
    pub log: String,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            shards: 0,
            backend: Backend::Auto,
            pin: true,
            log: "info".into(),
        }
    }
}

/// `[registrar]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registrar {
    /// Domains served (Request-URI and AOR host). Empty = any. Default empty.
    pub domains: Vec<String>,
    /// Seconds, when the request gives none. Default 3600.
    pub default_expires: u32,
    /// Shortest non-zero expiry accepted (423 below). Default 60.
    pub min_expires: u32,
    /// Longer expiries are clamped. Default 7200.
    pub max_expires: u32,
    /// Bindings per AOR. Default 10.
    pub max_contacts: usize,
    /// Evict the oldest binding instead of answering 503 at `max_contacts`. Default false.
    pub evict_oldest: bool,
    /// Authenticated users may register other AORs. Default false.
    pub allow_third_party: bool,
    /// Remove bindings learned over a connection when it closes. Default true.
    pub remove_on_close: bool,
    /// Initial bindings map capacity (AORs), also the flood guard's initial source table size
    /// (at most 2^20 sources). Default 65536.
    pub capacity: usize,
}

impl Default for Registrar {
    fn default() -> Self {
        let e = EngineConfig::default();
        Self {
            domains: e.domains,
            default_expires: e.default_expires,
            min_expires: e.min_expires,
            max_expires: e.max_expires,
            max_contacts: e.max_contacts,
            evict_oldest: e.evict_oldest,
            allow_third_party: e.allow_third_party,
            remove_on_close: e.remove_on_close,
            capacity: e.store_capacity,
        }
    }
}

/// `[auth]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Credentials file (see `auth::Credentials`). None = open registration.
    pub credentials: Option<PathBuf>,
    /// Realm. Default `sipreg`.
    pub realm: String,
    /// Algorithms offered, strongest first. Default `["SHA-256", "MD5"]`.
    pub algorithms: Vec<String>,
    /// Nonce lifetime in seconds. Default 300.
    pub nonce_lifetime: u64,
    /// 64 hex digits shared by a cluster; random per start when absent.
    pub nonce_secret: Option<String>,
    /// Bind nonces to the client IP. Default false.
    pub bind_nonce_to_source: bool,
    /// A nonce is good for one request only. Default false.
    pub one_time_nonces: bool,
    /// Serve open registration even though a credentials file is configured. Default false.
    pub insecure_no_auth: bool,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            credentials: None,
            realm: "sipreg".into(),
            algorithms: vec!["SHA-256".into(), "MD5".into()],
            nonce_lifetime: 300,
            nonce_secret: None,
            bind_nonce_to_source: false,
            one_time_nonces: false,
            insecure_no_auth: false,
        }
    }
}

/// `[tls]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain. With `key`; none = a self-signed certificate generated at start.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// PEM CA certificates for client certificates (mutual TLS). None = no client certificates.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse clients without a certificate. Default false (optional).
    pub require_client_cert: bool,
}

/// The largest `limits.max_connections` accepted: a shard numbers its connections in 22 bits
/// of its event tokens (the bits above carry the token kind and the io_uring write flag).
pub const MAX_CONNECTIONS_PER_SHARD: usize = 1 << 22;

/// `[limits]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest SIP message, bytes: 512 to 65535 (the default).
    pub max_message_size: usize,
    /// Open TCP+TLS connections per shard. Default 10000.
    pub max_connections: usize,
    /// Open connections per client IP per shard. Default 100.
    pub max_connections_per_ip: usize,
    /// Seconds without traffic before a connection is closed. Default 300.
    pub idle_timeout: u64,
    /// Bindings in total (memory bound); new ones beyond it get 503. Default 10 million.
    pub max_bindings: usize,
    /// Milliseconds a datagram may wait in a socket queue before its shard counts as
    /// overloaded and answers REGISTERs 503 + Retry-After. Default 500.
    pub overload_delay_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 65_535,
            max_connections: 10_000,
            max_connections_per_ip: 100,
            idle_timeout: 300,
            max_bindings: 10_000_000,
            overload_delay_ms: 500,
        }
    }
}

impl Config {
    /// Parses TOML text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Toml {
            file: file.into(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The effective configuration as TOML (`sipreg --print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The Redis location service's settings; `None` for the memory backend.
    pub fn redis_config(&self) -> Result<Option<crate::remote::RedisConfig>, ConfigError> {
        let l = &self.location;
        match l.backend.as_str() {
            "memory" => return Ok(None),
            "redis" => {}
            other => {
                return Err(invalid(
                    "location.backend",
                    format!("{other:?} is not one of memory, redis"),
                ))
            }
        }
        if l.redis_urls.is_empty() {
            return Err(invalid("location.redis_urls", "at least one URL is needed"));
        }
        if l.timeout_ms == 0 {
            return Err(invalid("location.timeout_ms", "must be at least 1"));
        }
        if l.max_pending == 0 {
            return Err(invalid("location.max_pending", "must be at least 1"));
        }
        if l.cache_aors == 0 {
            return Err(invalid("location.cache_aors", "must be at least 1"));
        }
        if l.key_prefix.contains(['{', '}']) {
            return Err(invalid(
                "location.key_prefix",
                "must not contain { or } (the AOR is the cluster hash tag)",
            ));
        }
        Ok(Some(crate::remote::RedisConfig {
            urls: l.redis_urls.clone(),
            cluster: l.redis_cluster,
            key_prefix: l.key_prefix.clone(),
            timeout: Duration::from_millis(l.timeout_ms),
            queue: l.max_pending,
        }))
    }

    /// Persistence settings; `None` for `durability = "none"`.
    pub fn persist_config(&self) -> Result<Option<crate::persist::PersistConfig>, ConfigError> {
        use crate::persist::Durability;
        let p = &self.persistence;
        let durability = match p.durability.as_str() {
            "none" => return Ok(None),
            "interval" => {
                if p.interval_ms == 0 || p.interval_ms > 10_000 {
                    return Err(invalid(
                        "persistence.interval_ms",
                        format!("{} is not between 1 and 10000", p.interval_ms),
                    ));
                }
                Durability::Interval(Duration::from_millis(p.interval_ms))
            }
            "ack" => Durability::Ack,
            other => {
                return Err(invalid(
                    "persistence.durability",
                    format!("{other:?}: expected \"none\", \"interval\" or \"ack\""),
                ))
            }
        };
        if p.queue_capacity == 0 {
            return Err(invalid("persistence.queue_capacity", "must be at least 1"));
        }
        Ok(Some(crate::persist::PersistConfig {
            dir: p.dir.clone(),
            durability,
            queue_capacity: p.queue_capacity,
        }))
    }

    /// The management server's configuration (reads the token file); `None` when disabled.
    pub fn management_config(&self) -> Result<Option<crate::mgmt::MgmtConfig>, ConfigError> {
        let m = &self.management;
        if !m.enabled {
            return Ok(None);
        }
        let token = match &m.token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                let token = text.trim();
                if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(invalid(
                        "management.token_file",
                        format!(
                            "{}: the token must be at least 16 characters, without spaces",
                            path.display()
                        ),
                    ));
                }
                Some(token.to_owned())
            }
        };
        if token.is_none() && !m.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %m.listen,
                "management API on a non-loopback address without a token: anyone who reaches it can delete bindings"
            );
        }
        Ok(Some(crate::mgmt::MgmtConfig {
            listen: m.listen,
            token,
        }))
    }

    /// Is authentication on?
    pub fn auth_enabled(&self) -> bool {
        self.auth.credentials.is_some() && !self.auth.insecure_no_auth
    }

    /// The engine's configuration. Reads the credentials file; `random` supplies the nonce
    /// secret and salt when none is configured.
    pub fn engine_config(&self, random: [u8; 40]) -> Result<EngineConfig, ConfigError> {
        let r = &self.registrar;
        if r.min_expires > r.max_expires {
            return Err(invalid(
                "registrar.min_expires",
                format!(
                    "{} is greater than registrar.max_expires ({})",
                    r.min_expires, r.max_expires
                ),
            ));
        }
        if r.default_expires == 0 || r.default_expires > r.max_expires {
            return Err(invalid(
                "registrar.default_expires",
                "must be between 1 and registrar.max_expires",
            ));
        }
        if r.max_contacts == 0 {
            return Err(invalid("registrar.max_contacts", "must be at least 1"));
        }
        if !(512..=crate::store::MAX_TEXT).contains(&self.limits.max_message_size) {
            return Err(invalid(
                "limits.max_message_size",
                format!(
                    "must be between 512 and {} (the store keeps a message's strings with \
                     16-bit lengths)",
                    crate::store::MAX_TEXT
                ),
            ));
        }
        let mut salt = [0u8; 8];
        salt.copy_from_slice(&random[32..]);
        let auth = if self.auth_enabled() {
            let path = self.auth.credentials.as_deref().unwrap_or(Path::new(""));
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid("auth.credentials", format!("{}: {e}", path.display())))?;
            let mut secret = [0u8; 32];
            match &self.auth.nonce_secret {
                Some(hex) => secret = parse_secret(hex)?,
                None => secret.copy_from_slice(&random[..32]),
            }
            if self.auth.nonce_lifetime == 0 {
                return Err(invalid("auth.nonce_lifetime", "must be at least 1 second"));
            }
            Some(AuthSettings {
                realm: self.auth.realm.clone(),
                algorithms: self.auth.algorithms.clone(),
                credentials_text: text,
                credentials_name: path.display().to_string(),
                nonce_lifetime: Duration::from_secs(self.auth.nonce_lifetime),
                secret,
                bind_nonce_to_source: self.auth.bind_nonce_to_source,
                one_time_nonces: self.auth.one_time_nonces,
                salt_seed: u64::from_le_bytes(salt),
            })
        } else {
            None
        };
        let sec = &self.security;
        let mut allow = Vec::with_capacity(sec.allow.len());
        for a in &sec.allow {
            allow.push(crate::engine::guard::Cidr::parse(a).ok_or_else(|| {
                invalid(
                    "security.allow",
                    format!("{a:?} is not an address or CIDR block"),
                )
            })?);
        }
        if sec.rate_limit && (sec.rate_per_second == 0 || sec.rate_burst == 0) {
            return Err(invalid(
                "security.rate_per_second",
                "rate and burst must be at least 1",
            ));
        }
        let rate_limit = sec.rate_limit.then_some(crate::engine::guard::RateLimit {
            per_second: sec.rate_per_second,
            burst: sec.rate_burst,
            ban_secs: sec.ban_secs,
            reply_503: sec.ban_reply_503,
            allow,
        });
        let lockout = sec.lockout.then_some(crate::engine::guard::Lockout {
            failures: sec.lockout_failures,
            window_secs: sec.lockout_window,
            lock_secs: sec.lockout_secs,
        });
        Ok(EngineConfig {
            rate_limit,
            lockout,
            drop_scanners: sec.drop_scanners,
            domains: r.domains.clone(),
            default_expires: r.default_expires,
            min_expires: r.min_expires,
            max_expires: r.max_expires,
            max_contacts: r.max_contacts,
            max_bindings: self.limits.max_bindings,
            evict_oldest: r.evict_oldest,
            allow_third_party: r.allow_third_party,
            remove_on_close: r.remove_on_close,
            max_message_size: self.limits.max_message_size,
            store_capacity: r.capacity,
            auth,
            remote: self.redis_config()?.map(|_| crate::engine::RemoteSettings {
                // Unique per process (flows of two nodes never collide).
                node: u64::from_le_bytes(salt).rotate_left(17) ^ 0x5152_4547,
                cache_aors: self.location.cache_aors,
                max_pending: self.location.max_pending,
                ..crate::engine::RemoteSettings::default()
            }),
            ..EngineConfig::default()
        })
    }

    /// The runtime's configuration.
    pub fn runtime_config(&self) -> Result<RuntimeConfig, ConfigError> {
        let tls = match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            _ => return Err(invalid("tls.cert", "tls.cert and tls.key go together")),
        };
        if self.tls.require_client_cert && self.tls.client_ca.is_none() {
            return Err(invalid("tls.require_client_cert", "needs tls.client_ca"));
        }
        if self.listen.udp.is_empty() && self.listen.tcp.is_empty() && self.listen.tls.is_empty() {
            return Err(invalid("listen", "no listen address"));
        }
        if self.limits.max_connections_per_ip == 0 || self.limits.max_connections == 0 {
            return Err(invalid(
                "limits.max_connections",
                "connection limits must be at least 1",
            ));
        }
        if self.limits.max_connections > MAX_CONNECTIONS_PER_SHARD {
            return Err(invalid(
                "limits.max_connections",
                format!("at most {MAX_CONNECTIONS_PER_SHARD} per shard"),
            ));
        }
        Ok(RuntimeConfig {
            udp: self.listen.udp.clone(),
            tcp: self.listen.tcp.clone(),
            tls: self.listen.tls.clone(),
            shards: self.runtime.shards,
            backend: self.runtime.backend,
            pin: self.runtime.pin,
            tls_files: tls,
            client_auth: crate::runtime::ClientAuth {
                ca: self.tls.client_ca.clone(),
                required: self.tls.require_client_cert,
            },
            max_connections: self.limits.max_connections,
            max_connections_per_ip: self.limits.max_connections_per_ip,
            idle_timeout: Duration::from_secs(self.limits.idle_timeout.max(1)),
            max_message_size: self.limits.max_message_size,
            overload_delay: Duration::from_millis(self.limits.overload_delay_ms.max(1)),
            // Set by main.rs when persistence runs in `ack` mode.
            ack_gate: None,
            // Set by main.rs when bindings live in Redis.
            remote: None,
        })
    }
}

fn parse_secret(hex: &str) -> Result<[u8; 32], ConfigError> {
    let bad = || invalid("auth.nonce_secret", "must be 64 hex digits");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_round_trip() {
        let c = Config::default();
        assert!(!c.auth_enabled(), "default serves open registration");
        assert_eq!(c.listen.tls, vec![SocketAddr::from(([0, 0, 0, 0], 5061))]);
        let again = Config::from_toml(&c.to_toml(), "printed").unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
        let e = c.engine_config([0; 40]).unwrap();
        assert!(e.auth.is_none());
        assert_eq!(e.default_expires, 3600);
    }

    #[test]
    fn errors_name_field_and_line() {
        let e = Config::from_toml(
            "[registrar]\nmin_expires = 60\nmax_expirez = 10\n",
            "a.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("a.toml: "), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("max_expirez"), "{e}");
        let e = Config::from_toml("[listen]\nudp = [\"not an address\"]\n", "b.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        let c = Config::from_toml(
            "[registrar]\nmin_expires = 900\nmax_expires = 600\ndefault_expires = 300\n",
            "c",
        )
        .unwrap();
        let e = c.engine_config([0; 40]).unwrap_err().to_string();
        assert!(
            e.starts_with("registrar.min_expires:") && e.contains("registrar.max_expires"),
            "{e}"
        );
        let c = Config::from_toml("[tls]\ncert = \"a.pem\"\n", "d").unwrap();
        assert!(c
            .runtime_config()
            .unwrap_err()
            .to_string()
            .starts_with("tls.cert"));
        let c = Config::from_toml("[auth]\ncredentials = \"/nonexistent/users\"\n", "e").unwrap();
        assert!(c
            .engine_config([0; 40])
            .unwrap_err()
            .to_string()
            .starts_with("auth.credentials"));
        let c = Config::from_toml("[security]\nallow = [\"10.0.0.0/99\"]\n", "s").unwrap();
        assert!(c
            .engine_config([0; 40])
            .unwrap_err()
            .to_string()
            .starts_with("security.allow"));
        for (n, ok) in [
            (0, false),
            (1, true),
            (MAX_CONNECTIONS_PER_SHARD, true),
            (MAX_CONNECTIONS_PER_SHARD + 1, false),
        ] {
            let c = Config::from_toml(&format!("[limits]\nmax_connections = {n}\n"), "m").unwrap();
            match c.runtime_config() {
                Ok(r) => assert!(ok, "{n} accepted: {r:?}"),
                Err(e) => {
                    assert!(!ok, "{n} refused: {e}");
                    assert!(e.to_string().starts_with("limits.max_connections"), "{e}");
                }
            }
        }
        for (n, ok) in [(511, false), (512, true), (65_535, true), (65_536, false)] {
            let c = Config::from_toml(&format!("[limits]\nmax_message_size = {n}\n"), "z").unwrap();
            match c.engine_config([0; 40]) {
                Ok(_) => assert!(ok, "{n} accepted"),
                Err(e) => {
                    assert!(!ok, "{n} refused: {e}");
                    assert!(e.to_string().starts_with("limits.max_message_size"), "{e}");
                }
            }
        }
        let c = Config::from_toml("[runtime]\nbackend = \"kqueue\"\n", "f");
        assert!(c.unwrap_err().to_string().contains("kqueue"));
        for (toml, field) in [
            ("backend = \"etcd\"", "location.backend"),
            (
                "backend = \"redis\"\nredis_urls = []",
                "location.redis_urls",
            ),
            ("backend = \"redis\"\ntimeout_ms = 0", "location.timeout_ms"),
            (
                "backend = \"redis\"\nmax_pending = 0",
                "location.max_pending",
            ),
            ("backend = \"redis\"\ncache_aors = 0", "location.cache_aors"),
            (
                "backend = \"redis\"\nkey_prefix = \"a{b\"",
                "location.key_prefix",
            ),
        ] {
            let c = Config::from_toml(&format!("[location]\n{toml}\n"), "l").unwrap();
            let e = c.redis_config().unwrap_err().to_string();
            assert!(e.starts_with(field), "{toml}: {e}");
            assert!(c.engine_config([0; 40]).is_err(), "{toml}");
        }
        let c = Config::from_toml("[location]\nbackend = \"redis\"\n", "l").unwrap();
        let r = c.redis_config().unwrap().unwrap();
        assert_eq!(r.urls, vec!["redis://127.0.0.1:6379/".to_owned()]);
        let engine = c.engine_config([7; 40]).unwrap();
        assert_ne!(engine.remote.unwrap().node, 0);
        assert!(Config::default().redis_config().unwrap().is_none());
        // A bad URL is refused when the client starts (named too).
        let bad = crate::remote::RedisConfig {
            urls: vec!["http://x".into()],
            ..r
        };
        let e = crate::remote::RedisLocation::start(&bad, 1)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("location.redis_urls"), "{e}");
    }

    #[test]
    fn example_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/sipreg.toml");
        let c = Config::load(Path::new(path)).unwrap();
        assert_eq!(c.registrar.domains, vec!["example.com".to_owned()]);
        c.engine_config([0; 40]).unwrap();
        c.runtime_config().unwrap();
    }

    #[test]
    fn auth_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, "alice:sipreg:plain:pw\n").unwrap();
        let text = format!(
            "[auth]\ncredentials = {:?}\nnonce_secret = \"{}\"\n",
            users.display().to_string(),
            "ab".repeat(32)
        );
        let c = Config::from_toml(&text, "g").unwrap();
        assert!(c.auth_enabled());
        let a = c.engine_config([1; 40]).unwrap().auth.unwrap();
        assert_eq!(a.secret, [0xab; 32]);
        assert!(a.credentials_text.contains("alice"));
        let off = Config::from_toml(&format!("{text}insecure_no_auth = true\n"), "h").unwrap();
        assert!(!off.auth_enabled());
        let bad = Config::from_toml(
            "[auth]\nnonce_secret = \"xyz\"\ncredentials = \"/dev/null\"\n",
            "i",
        )
        .unwrap();
        assert!(bad
            .engine_config([0; 40])
            .unwrap_err()
            .to_string()
            .starts_with("auth.nonce_secret"));
    }
}
