//! HTTP Digest authentication for SIP: RFC 2617, RFC 7616, RFC 8760 (SHA-256 and SHA-512/256
//! for SIP), RFC 3261 §22.
//!
//! Contract: [`Authenticator::write_challenge`] writes one `WWW-Authenticate` header per
//! configured algorithm, all sharing one fresh nonce; [`Authenticator::verify`] checks a
//! request's `Authorization` headers and returns a [`Verdict`]. Nonces are stateless (HMAC over
//! issue time, salt and realm — see `nonce.rs`), so any shard or node sharing the secret can
//! verify them; the only state is a bounded nc replay guard. Response and MAC comparisons are
//! constant time (`subtle`). An unknown user goes through exactly the same computation against
//! a dummy HA1 and gets exactly the same answer as a known user with a wrong password.
//! Time and the client address are arguments; nothing here reads a clock.

mod credentials;
mod digest;
mod header;
mod nonce;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use subtle::ConstantTimeEq;

pub use credentials::{Credentials, CredentialsError};
pub use header::{parse_authorization, parse_challenge, Challenge, DigestResponse};

use crate::time::Instant;
use digest::Inputs;
use nonce::{NonceState, Nonces, Replay, ReplayGuard};

/// A Digest algorithm (RFC 7616 §3.3, RFC 8760 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5.
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256.
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
    /// SHA-512-256 (FIPS 180-4 SHA-512/256).
    Sha512_256,
    /// SHA-512-256-sess.
    Sha512_256Sess,
}

const ALGORITHMS: [(Algorithm, &str); 6] = [
    (Algorithm::Md5, "MD5"),
    (Algorithm::Md5Sess, "MD5-sess"),
    (Algorithm::Sha256, "SHA-256"),
    (Algorithm::Sha256Sess, "SHA-256-sess"),
    (Algorithm::Sha512_256, "SHA-512-256"),
    (Algorithm::Sha512_256Sess, "SHA-512-256-sess"),
];

impl Algorithm {
    /// The token as written in headers.
    pub fn name(self) -> &'static str {
        ALGORITHMS
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("MD5", |(_, n)| n)
    }

    /// Parses a token, case-insensitively.
    pub fn parse(s: &[u8]) -> Option<Self> {
        ALGORITHMS
            .iter()
            .find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(s))
            .map(|(a, _)| *a)
    }

    /// Hex length of this algorithm's digests.
    pub fn hex_len(self) -> usize {
        if self.base() == Self::Md5 {
            32
        } else {
            64
        }
    }

    /// The algorithm without `-sess`.
    pub fn base(self) -> Self {
        match self {
            Self::Md5 | Self::Md5Sess => Self::Md5,
            Self::Sha256 | Self::Sha256Sess => Self::Sha256,
            Self::Sha512_256 | Self::Sha512_256Sess => Self::Sha512_256,
        }
    }

    /// A `-sess` variant.
    pub fn is_sess(self) -> bool {
        self != self.base()
    }
}

/// Quality of protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qop {
    /// `auth`.
    Auth,
    /// `auth-int` (the body is covered).
    AuthInt,
}

impl Qop {
    /// The token.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

/// Authentication settings.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Realm in challenges; credentials must name it.
    pub realm: String,
    /// Algorithms offered, strongest first (RFC 8760 §2.3). Default SHA-256, MD5.
    pub algorithms: Vec<Algorithm>,
    /// qop values offered. Default `auth`.
    pub qop: Vec<Qop>,
    /// Nonce lifetime; an older nonce with a correct response gets `stale=true`. Default 300 s.
    pub nonce_lifetime: Duration,
    /// HMAC key of the nonces. The default (zeros) is for tests: the runtime sets a random or
    /// configured one; a cluster shares it.
    pub secret: [u8; 32],
    /// Distinguishes this process's nonces from other nodes' (random in the runtime).
    pub salt_seed: u64,
    /// Bind nonces to the client IP (breaks clients behind NAT pools). Default false.
    pub bind_nonce_to_source: bool,
    /// A nonce is good for one request only (each REGISTER costs a challenge round trip).
    /// Default false.
    pub one_time_nonces: bool,
    /// Nonces tracked by the nc replay guard. Default 1 048 576 (~40 MB).
    pub nc_guard_capacity: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            realm: String::new(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            qop: vec![Qop::Auth],
            nonce_lifetime: Duration::from_secs(300),
            secret: [0; 32],
            salt_seed: 0,
            bind_nonce_to_source: false,
            one_time_nonces: false,
            nc_guard_capacity: 1 << 20,
        }
    }
}

/// A malformed Digest header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Not the Digest scheme.
    UnsupportedScheme,
    /// Syntax error.
    Malformed(&'static str),
    /// A mandatory parameter is missing.
    MissingField(&'static str),
    /// An algorithm we do not know.
    UnknownAlgorithm,
    /// A qop we do not know.
    BadQop,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedScheme => f.write_str("unsupported authentication scheme"),
            Self::Malformed(why) => write!(f, "malformed Digest header: {why}"),
            Self::MissingField(name) => write!(f, "Digest header without {name}"),
            Self::UnknownAlgorithm => f.write_str("unknown Digest algorithm"),
            Self::BadQop => f.write_str("unknown qop"),
        }
    }
}

impl std::error::Error for Error {}

/// Why a request was (re)challenged — for logs and metrics only, never visible on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No Digest credentials.
    NoCredentials,
    /// Credentials for another realm only.
    OtherRealm,
    /// The user does not exist (answered exactly like `WrongResponse`).
    UnknownUser,
    /// Wrong password.
    WrongResponse,
    /// A nonce we did not issue.
    BadNonce,
    /// A correct response with an expired nonce.
    StaleNonce,
    /// An nc already seen with this nonce.
    Replay,
    /// An algorithm we do not offer, or no HA1 for it.
    UnsupportedAlgorithm,
}

/// The outcome of [`Authenticator::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Valid credentials for this user.
    Authenticated {
        /// The user name.
        user: &'a [u8],
    },
    /// Answer 401 with a fresh challenge.
    Challenge {
        /// Set `stale=true` (the credentials were right, the nonce was not fresh).
        stale: bool,
        /// Why (logs and metrics only).
        failure: Failure,
    },
    /// The Authorization header is broken: 400 with this reason.
    BadRequest(&'static str),
}

/// The outcome of [`Authenticator::select`].
#[derive(Clone, Copy, Debug)]
pub enum Selected<'a> {
    /// Credentials for our realm, to verify.
    Ours(DigestResponse<'a>),
    /// Nothing to verify: the answer is already known.
    Decided(Verdict<'a>),
}

impl<'a> Selected<'a> {
    /// The user name the credentials claim (not yet verified).
    pub fn username(&self) -> Option<&'a [u8]> {
        match self {
            Self::Ours(r) => Some(r.username),
            Self::Decided(_) => None,
        }
    }
}

/// Verifies credentials and issues challenges. `Send + Sync`; share it across shards.
pub struct Authenticator {
    config: AuthConfig,
    credentials: RwLock<Arc<Credentials>>,
    nonces: Nonces,
    guard: ReplayGuard,
    /// HA1 of the unknown-user path, one per base algorithm.
    dummy: [digest::Hash; 3],
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("realm", &self.config.realm)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// A new authenticator.
    pub fn new(config: AuthConfig, credentials: Credentials) -> Self {
        let dummy = [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256]
            .map(|a| digest::ha1(a, b"\0unknown", config.realm.as_bytes(), &config.secret));
        Self {
            nonces: Nonces::new(config.secret, config.salt_seed),
            guard: ReplayGuard::new(config.nc_guard_capacity),
            credentials: RwLock::new(Arc::new(credentials)),
            dummy,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Replaces the credentials (reload); requests in flight finish with the old set.
    pub fn set_credentials(&self, credentials: Credentials) {
        let mut slot = self
            .credentials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Arc::new(credentials);
    }

    /// How many credentials are in force.
    pub fn credentials_len(&self) -> usize {
        self.credentials
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    fn source(&self, ip: IpAddr) -> Option<IpAddr> {
        self.config.bind_nonce_to_source.then_some(ip)
    }

    /// Appends one `WWW-Authenticate` line per configured algorithm, sharing one fresh nonce.
    pub fn write_challenge(&self, now: Instant, source: IpAddr, stale: bool, out: &mut Vec<u8>) {
        let mut nonce = Vec::with_capacity(nonce::NONCE_HEX_LEN);
        self.nonces.issue(
            now.as_secs(),
            self.config.realm.as_bytes(),
            self.source(source),
            &mut nonce,
        );
        let qop = match (
            self.config.qop.contains(&Qop::Auth),
            self.config.qop.contains(&Qop::AuthInt),
        ) {
            (true, true) => "auth,auth-int",
            (false, true) => "auth-int",
            (true, false) => "auth",
            (false, false) => "",
        };
        for alg in &self.config.algorithms {
            out.extend_from_slice(b"WWW-Authenticate: Digest realm=\"");
            out.extend_from_slice(self.config.realm.as_bytes());
            out.extend_from_slice(b"\", nonce=\"");
            out.extend_from_slice(&nonce);
            out.extend_from_slice(b"\", algorithm=");
            out.extend_from_slice(alg.name().as_bytes());
            if !qop.is_empty() {
                out.extend_from_slice(b", qop=\"");
                out.extend_from_slice(qop.as_bytes());
                out.push(b'"');
            }
            if stale {
                out.extend_from_slice(b", stale=true");
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Picks and parses the request's Authorization value for our realm (once: lockout
    /// accounting reads its user name before [`Authenticator::verify_selected`] checks it).
    pub fn select<'a>(&self, authorizations: impl IntoIterator<Item = &'a [u8]>) -> Selected<'a> {
        let realm = self.config.realm.as_bytes();
        let mut other_realm = false;
        for value in authorizations {
            match parse_authorization(value) {
                Ok(r) if r.realm == realm => return Selected::Ours(r),
                Ok(_) => other_realm = true,
                // RFC 4475 §3.3.7: an unknown scheme is as good as no credentials.
                Err(Error::UnsupportedScheme) => {}
                Err(Error::Malformed(why)) => return Selected::Decided(Verdict::BadRequest(why)),
                Err(Error::MissingField(_)) => {
                    return Selected::Decided(Verdict::BadRequest("Incomplete Digest Credentials"))
                }
                Err(Error::UnknownAlgorithm | Error::BadQop) => {
                    return Selected::Decided(Verdict::Challenge {
                        stale: false,
                        failure: Failure::UnsupportedAlgorithm,
                    })
                }
            }
        }
        let failure = if other_realm {
            Failure::OtherRealm
        } else {
            Failure::NoCredentials
        };
        Selected::Decided(Verdict::Challenge {
            stale: false,
            failure,
        })
    }

    /// Verifies the request's Authorization values (the one for our realm is used).
    pub fn verify<'a>(
        &self,
        now: Instant,
        source: IpAddr,
        method: &[u8],
        request_uri: &[u8],
        body: &[u8],
        authorizations: impl IntoIterator<Item = &'a [u8]>,
    ) -> Verdict<'a> {
        self.verify_selected(
            now,
            source,
            method,
            request_uri,
            body,
            self.select(authorizations),
        )
    }

    /// Verifies what [`Authenticator::select`] picked.
    pub fn verify_selected<'a>(
        &self,
        now: Instant,
        source: IpAddr,
        method: &[u8],
        request_uri: &[u8],
        body: &[u8],
        selected: Selected<'a>,
    ) -> Verdict<'a> {
        let realm = self.config.realm.as_bytes();
        let r = match selected {
            Selected::Ours(r) => r,
            Selected::Decided(v) => return v,
        };
        let alg = r.algorithm.unwrap_or(Algorithm::Md5);
        if !self.config.algorithms.contains(&alg) {
            return Verdict::Challenge {
                stale: false,
                failure: Failure::UnsupportedAlgorithm,
            };
        }
        if r.qop.is_some_and(|q| !self.config.qop.contains(&q)) {
            return Verdict::Challenge {
                stale: false,
                failure: Failure::UnsupportedAlgorithm,
            };
        }
        // RFC 2617 §3.2.2.5: the digest-uri must name the Request-URI.
        if r.uri != request_uri {
            return Verdict::BadRequest("Digest URI Does Not Match Request-URI");
        }
        let now_secs = now.as_secs();
        let lifetime = self.config.nonce_lifetime.as_secs();
        let state = self
            .nonces
            .check(r.nonce, now_secs, lifetime, realm, self.source(source));
        if state == NonceState::Invalid {
            return Verdict::Challenge {
                stale: false,
                failure: Failure::BadNonce,
            };
        }
        // Known or not, the same work: a real HA1 or the dummy one, then the full response.
        let creds = self
            .credentials
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()));
        let stored = if r.userhash {
            None
        } else {
            creds.lookup(r.username, realm, alg).copied()
        };
        let known = stored.is_some();
        let base_index = match alg.base() {
            Algorithm::Sha256 => 1,
            Algorithm::Sha512_256 => 2,
            _ => 0,
        };
        let ha1 = stored.unwrap_or(self.dummy[base_index]);
        let expected = digest::response(
            &ha1,
            &Inputs {
                alg,
                nonce: r.nonce,
                cnonce: r.cnonce.unwrap_or_default(),
                nc: r.nc.unwrap_or_default(),
                qop: r.qop,
                method,
                uri: r.uri,
                body,
            },
        );
        let hex = expected.hex();
        let matches = hex.as_bytes().len() == r.response.len()
            && bool::from(
                hex.as_bytes()
                    .ct_eq(&lowercase::<64>(r.response)[..r.response.len()]),
            );
        if !(matches && known) {
            let failure = if known {
                Failure::WrongResponse
            } else {
                Failure::UnknownUser
            };
            return Verdict::Challenge {
                stale: false,
                failure,
            };
        }
        let NonceState::Fresh { id, issued } = state else {
            return Verdict::Challenge {
                stale: true,
                failure: Failure::StaleNonce,
            };
        };
        // nc must grow per nonce; with one-time nonces a nonce (with or without qop) is good
        // for one request only.
        let nc = match r.nc {
            Some(nc) => std::str::from_utf8(nc)
                .ok()
                .and_then(|n| u32::from_str_radix(n, 16).ok()),
            None if self.config.one_time_nonces => Some(1),
            None => None,
        };
        if r.nc.is_some() || self.config.one_time_nonces {
            let first_only = self.config.one_time_nonces;
            let ok = nc.is_some_and(|nc| {
                self.guard
                    .check(id, issued, nc, first_only, now_secs, lifetime)
                    == Replay::Ok
            });
            if !ok {
                return Verdict::Challenge {
                    stale: true,
                    failure: Failure::Replay,
                };
            }
        }
        Verdict::Authenticated { user: r.username }
    }
}

/// ASCII-lowercases up to N bytes into a stack buffer (clients may send upper-case hex).
fn lowercase<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(s) {
        *o = b.to_ascii_lowercase();
    }
    out
}

/// Client side: writes an Authorization value answering `challenge`. With a qop offer, `auth`
/// is used (with `cnonce` and `nc`).
#[allow(clippy::too_many_arguments)]
pub fn write_authorization(
    out: &mut Vec<u8>,
    challenge: &Challenge<'_>,
    username: &[u8],
    password: &[u8],
    method: &[u8],
    uri: &[u8],
    cnonce: &[u8],
    nc: u32,
    body: &[u8],
) {
    let alg = challenge.algorithm;
    let qop = if challenge.qop_auth {
        Some(Qop::Auth)
    } else if challenge.qop_auth_int {
        Some(Qop::AuthInt)
    } else {
        None
    };
    let nc_text = format!("{nc:08x}");
    let base = digest::ha1(alg, username, challenge.realm, password);
    let resp = digest::response(
        &base,
        &Inputs {
            alg,
            nonce: challenge.nonce,
            cnonce,
            nc: nc_text.as_bytes(),
            qop,
            method,
            uri,
            body,
        },
    );
    let mut push = |parts: &[&[u8]]| parts.iter().for_each(|p| out.extend_from_slice(p));
    push(&[
        b"Digest username=\"",
        username,
        b"\", realm=\"",
        challenge.realm,
        b"\", nonce=\"",
    ]);
    push(&[
        challenge.nonce,
        b"\", uri=\"",
        uri,
        b"\", response=\"",
        resp.hex().as_bytes(),
        b"\"",
    ]);
    push(&[b", algorithm=", alg.name().as_bytes()]);
    if let Some(q) = qop {
        push(&[b", qop=", q.name().as_bytes(), b", nc=", nc_text.as_bytes()]);
    }
    // -sess HA1 covers the cnonce (RFC 2617 §3.2.2.2), so it is sent with or without qop.
    if qop.is_some() || alg.is_sess() {
        push(&[b", cnonce=\"", cnonce, b"\""]);
    }
    if let Some(opaque) = challenge.opaque {
        push(&[b", opaque=\"", opaque, b"\""]);
    }
}

/// Lower-case hex HA1 = H(user:realm:password).
pub fn ha1_hex(alg: Algorithm, user: &[u8], realm: &[u8], password: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(digest::ha1(alg, user, realm, password).hex().as_bytes());
}

/// Byte predicate shared by the header parsers: RFC 3261 token characters.
fn is_token_byte(b: u8) -> bool {
    crate::sip::is_token(b)
}

#[cfg(test)]
mod tests;
