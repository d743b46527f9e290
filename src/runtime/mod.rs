//! The runtime: the ONLY place with sockets, threads, io_uring and the clock.
//!
//! `run` binds one SO_REUSEPORT socket per listen address per shard, starts one shard thread
//! per core (pinned), and drives each shard (`worker::Shard`) with a backend:
//! - `uring` (`uring.rs`): io_uring with SINGLE_ISSUER + DEFER_TASKRUN (COOP_TASKRUN on older
//!   kernels), one multishot `RecvMsg` per UDP socket over a provided buffer ring, `SendMsg`
//!   replies submitted once per completion batch, multishot poll for stream sockets;
//! - `fallback` (`fallback.rs`): epoll + recvmmsg/sendmmsg batches, for kernels or sandboxes
//!   where io_uring is missing or blocked (ENOSYS, EPERM from seccomp,
//!   `kernel.io_uring_disabled`). Both run the same worker loop and the same engine.
//!
//! Why not tokio-uring: no release since 2024, no multishot receive or provided buffer rings,
//! and it measured 246k echo/s here against 308k/s for the `io-uring` crate used directly.
#![allow(clippy::disallowed_methods)]

mod fallback;
mod socket;
pub mod stats;
mod uring;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Shared};
pub use crate::transport::tls::ClientAuth;
use crate::transport::tls::{ServerTls, TlsError};
use socket::EventFd;
use stats::ShardStats;
use worker::{Listener, Shard};

/// Which I/O backend drives the shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// io_uring when it works here, else the fallback.
    #[default]
    Auto,
    /// io_uring (fails to start when unavailable).
    Uring,
    /// epoll + recvmmsg/sendmmsg.
    Fallback,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "uring" | "io_uring" => Ok(Self::Uring),
            "fallback" | "epoll" => Ok(Self::Fallback),
            other => Err(format!("unknown backend {other:?} (auto, uring, fallback)")),
        }
    }
}

/// PEM certificate and key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Runtime settings (from `config.rs`).
#[derive(Clone)]
pub struct RuntimeConfig {
    /// UDP listen addresses.
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS listen addresses.
    pub tls: Vec<SocketAddr>,
    /// Shard threads (0 = one per core).
    pub shards: usize,
    /// Backend.
    pub backend: Backend,
    /// Pin shard threads to cores.
    pub pin: bool,
    /// Certificate files; None = self-signed.
    pub tls_files: Option<TlsFiles>,
    /// Client certificates (mutual TLS).
    pub client_auth: ClientAuth,
    /// Connections per shard.
    pub max_connections: usize,
    /// Connections per client IP per shard.
    pub max_connections_per_ip: usize,
    /// Idle connection timeout.
    pub idle_timeout: Duration,
    /// Largest SIP message (bounds per-connection buffers: twice this received, four times this
    /// unsent).
    pub max_message_size: usize,
    /// A datagram that waited longer than this in the socket queue finds the shard overloaded:
    /// REGISTERs are answered 503 + Retry-After instead of processed.
    pub overload_delay: Duration,
    /// Persistence `ack` mode: responses that acknowledge a change wait until it is durable.
    pub ack_gate: Option<Arc<dyn AckGate>>,
    /// The shared location service (Redis), when bindings live there.
    pub remote: Option<Arc<dyn RemoteStore>>,
}

/// What the runtime needs from the shared location service (implemented by
/// `remote::RedisLocation`): it carries out the engine's compare-and-set ops
/// ([`crate::engine::RemoteOp`]) off the shard threads and hands every op's reply back to the
/// shard that submitted it, waking it. Every accepted op gets exactly one reply (a timeout is
/// `Unavailable`).
pub trait RemoteStore: Send + Sync {
    /// Queues an op of shard `shard`; a full queue or a stopped service hands it back.
    fn submit(
        &self,
        shard: usize,
        op: crate::engine::RemoteOp,
    ) -> Result<(), crate::engine::RemoteOp>;
    /// Moves the replies waiting for shard `shard` into `out`.
    fn take_replies(&self, shard: usize, out: &mut Vec<(u64, crate::engine::RemoteReply)>);
    /// `wake` is called when a reply for shard `shard` is waiting.
    fn add_waker(&self, shard: usize, wake: Box<dyn Fn() + Send + Sync>);
}

/// What the runtime needs from persistence in `ack` mode (implemented by
/// `persist::Persister`): changes get increasing sequence numbers as the engine hands them over
/// (on the shard thread, through the store's change feed); a response whose request handed over
/// a change is held until that change's sequence number is durable, then sent. Responses on one
/// connection stay in order.
pub trait AckGate: Send + Sync {
    /// The sequence number of the last change the calling thread handed over (0: none).
    fn last_enqueued(&self) -> u64;
    /// Every change up to this sequence number is durable.
    fn durable(&self) -> u64;
    /// `wake` is called after each durable point (the shards wake up to release responses).
    fn add_waker(&self, wake: Box<dyn Fn() + Send + Sync>);
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("tls", &self.tls)
            .field("shards", &self.shards)
            .field("backend", &self.backend)
            .field("ack_gate", &self.ack_gate.is_some())
            .field("remote", &self.remote.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            udp: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
            shards: 1,
            backend: Backend::Auto,
            pin: false,
            tls_files: None,
            client_auth: ClientAuth::default(),
            max_connections: 10_000,
            max_connections_per_ip: 100,
            idle_timeout: Duration::from_secs(300),
            max_message_size: 65_535,
            overload_delay: Duration::from_millis(500),
            ack_gate: None,
            remote: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Binding an address failed (in use, permission...).
    #[error("cannot listen on {transport} {addr}: {source}")]
    Bind {
        /// udp, tcp or tls.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// io_uring was required but is not usable.
    #[error("io_uring backend unavailable: {0}")]
    UringUnavailable(String),
    /// TLS setup.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Any other start-up failure.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The wall clock as the core's `Instant` (ms since the Unix epoch): the one place the I/O
/// layers (shards, management API, start-up) read it.
pub fn wall_clock() -> crate::time::Instant {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    crate::time::Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Probes io_uring with the setup flags and opcodes the uring backend uses.
pub fn detect() -> Result<(), String> {
    uring::probe()
}

/// A running server.
pub struct Server {
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
    backend: Backend,
    shutdown: Arc<AtomicBool>,
    wakers: Vec<Arc<EventFd>>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    stats: Vec<Arc<ShardStats>>,
    tls_fingerprint: Option<String>,
    tls_certificate: Option<Vec<u8>>,
    tls_slot: Option<worker::TlsSlot>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("udp", &self.udp)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Bound UDP addresses (with the real ports when 0 was asked for).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// Bound TCP addresses.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// Bound TLS addresses.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls
    }

    /// The backend in use (never `Auto`).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// SHA-256 fingerprint of the TLS certificate, when TLS is on.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.tls_fingerprint.as_deref()
    }

    /// The TLS certificate (DER), when TLS is on — e.g. for clients that pin it.
    pub fn tls_certificate(&self) -> Option<&[u8]> {
        self.tls_certificate.as_deref()
    }

    /// Replaces the TLS certificate (and client-certificate policy) for new connections
    /// without a restart. On error the certificate in force stays. Returns the new fingerprint.
    pub fn reload_tls(
        &self,
        files: Option<&TlsFiles>,
        client: &ClientAuth,
    ) -> Result<String, RunError> {
        self.tls_reloader().reload(files, client)
    }

    /// A handle that reloads the TLS certificate from any thread (the management API).
    pub fn tls_reloader(&self) -> TlsReloader {
        TlsReloader(self.tls_slot.clone())
    }

    /// Per-shard counters.
    pub fn stats(&self) -> &[Arc<ShardStats>] {
        &self.stats
    }

    /// Stops accepting, finishes the work in hand, closes connections and joins the shards
    /// (bounded: each shard wakes up within its poll interval).
    pub fn shutdown(self) -> io::Result<()> {
        self.shutdown.store(true, Ordering::SeqCst);
        for w in &self.wakers {
            w.wake();
        }
        let mut result = Ok(());
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("a shard thread panicked")),
            }
        }
        result
    }
}

/// Replaces the certificate new TLS connections get (see [`Server::reload_tls`]).
#[derive(Clone)]
pub struct TlsReloader(Option<worker::TlsSlot>);

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("enabled", &self.0.is_some())
            .finish()
    }
}

impl TlsReloader {
    /// Is TLS on?
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Loads the new certificate and swaps it in; on error the one in force stays.
    pub fn reload(
        &self,
        files: Option<&TlsFiles>,
        client: &ClientAuth,
    ) -> Result<String, RunError> {
        if self.0.is_none() {
            return Err(RunError::Io(io::Error::other("TLS is not enabled")));
        }
        let tls = match files {
            Some(f) => ServerTls::from_pem_files_with(&f.cert, &f.key, client)?,
            None => ServerTls::self_signed_with(&[], client)?,
        };
        Ok(self.install(tls))
    }

    /// Swaps in an already loaded certificate (no-op when TLS is off); returns its fingerprint.
    pub fn install(&self, tls: ServerTls) -> String {
        if let Some(slot) = &self.0 {
            *slot
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&tls.config);
        }
        tls.fingerprint
    }
}

/// The number of shard threads `run` starts for a configured count (0 = one per core).
pub fn shard_count(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    }
}

/// Binds every address and starts the shards.
pub fn run(cfg: RuntimeConfig, shared: Arc<Shared>) -> Result<Server, RunError> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let shards = shard_count(cfg.shards);
    let backend = match cfg.backend {
        Backend::Auto => match detect() {
            Ok(()) => Backend::Uring,
            Err(why) => {
                tracing::warn!(reason = %why, "io_uring unavailable, using the epoll fallback");
                Backend::Fallback
            }
        },
        Backend::Uring => {
            detect().map_err(RunError::UringUnavailable)?;
            Backend::Uring
        }
        Backend::Fallback => Backend::Fallback,
    };
    let tls = if cfg.tls.is_empty() {
        None
    } else {
        let tls = match &cfg.tls_files {
            Some(f) => ServerTls::from_pem_files_with(&f.cert, &f.key, &cfg.client_auth)?,
            None => ServerTls::self_signed_with(&[], &cfg.client_auth)?,
        };
        tracing::info!(fingerprint = %tls.fingerprint, self_signed = cfg.tls_files.is_none(), "TLS certificate");
        Some(tls)
    };
    // Shard 0 binds first; port-0 addresses then get the real port for the other shards.
    let mut udp_addrs = cfg.udp.clone();
    let mut tcp_addrs = cfg.tcp.clone();
    let mut tls_addrs = cfg.tls.clone();
    let mut per_shard = Vec::with_capacity(shards);
    for _ in 0..shards {
        let mut udp = Vec::new();
        for addr in &mut udp_addrs {
            let s = socket::udp(*addr).map_err(|source| RunError::Bind {
                transport: "udp",
                addr: *addr,
                source,
            })?;
            *addr = s.local_addr()?;
            udp.push(s);
        }
        let mut listeners = Vec::new();
        for (addrs, is_tls, name) in [
            (&mut tcp_addrs, false, "tcp"),
            (&mut tls_addrs, true, "tls"),
        ] {
            for addr in addrs.iter_mut() {
                let l = socket::tcp_listener(*addr).map_err(|source| RunError::Bind {
                    transport: name,
                    addr: *addr,
                    source,
                })?;
                *addr = l.local_addr()?;
                listeners.push(Listener {
                    local: *addr,
                    socket: l,
                    tls: is_tls,
                });
            }
        }
        per_shard.push((udp, listeners));
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    let cfg = Arc::new(cfg);
    let tls_config: Option<worker::TlsSlot> = tls
        .as_ref()
        .map(|t| Arc::new(std::sync::RwLock::new(Arc::clone(&t.config))));
    let mut threads = Vec::with_capacity(shards);
    let mut wakers = Vec::with_capacity(shards);
    let mut stats = Vec::with_capacity(shards);
    for (index, (udp, listeners)) in per_shard.into_iter().enumerate() {
        let waker = Arc::new(EventFd::new()?);
        if let Some(remote) = &cfg.remote {
            let w = Arc::clone(&waker);
            remote.add_waker(index, Box::new(move || w.wake()));
        }
        let shard_stats = Arc::new(ShardStats::new(udp.iter().filter_map(inode).collect()));
        let shard = Shard::new(
            index,
            Engine::new(Arc::clone(&shared)),
            udp,
            listeners,
            tls_config.clone(),
            Arc::clone(&cfg),
            Arc::clone(&shutdown),
            Arc::clone(&shard_stats),
        )?;
        let pin = cfg.pin.then_some(index % cores);
        let w = Arc::clone(&waker);
        let shard_tid = Arc::clone(&shard_stats);
        let handle = std::thread::Builder::new()
            .name(format!("sipreg-shard-{index}"))
            .spawn(move || {
                shard_tid.tid.store(thread_id(), Ordering::Relaxed);
                if let Some(core) = pin {
                    if !socket::pin_to_core(core) {
                        tracing::warn!(shard = index, core, "could not pin shard thread");
                    }
                }
                let result = match backend {
                    Backend::Fallback => {
                        fallback::Driver::new(&shard, &w).and_then(|d| worker_loop(shard, d))
                    }
                    _ => uring::Driver::new(&shard, &w).and_then(|d| worker_loop(shard, d)),
                };
                if let Err(e) = &result {
                    tracing::error!(shard = index, error = %e, "shard stopped");
                }
                result
            })?;
        threads.push(handle);
        wakers.push(waker);
        stats.push(shard_stats);
    }
    if let Some(gate) = &cfg.ack_gate {
        let wakers = wakers.clone();
        gate.add_waker(Box::new(move || {
            for w in &wakers {
                w.wake();
            }
        }));
    }
    Ok(Server {
        udp: udp_addrs,
        tcp: tcp_addrs,
        tls: tls_addrs,
        backend,
        shutdown,
        wakers,
        threads,
        stats,
        tls_slot: tls_config,
        tls_certificate: tls.as_ref().map(|t| t.certificate.to_vec()),
        tls_fingerprint: tls.map(|t| t.fingerprint),
    })
}

/// The socket's inode, as listed in /proc/net/udp (for its receive queue in metrics).
fn inode(socket: &std::net::UdpSocket) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
        .ok()
        .map(|m| m.ino())
}

/// The calling thread's kernel id (0 when /proc is not mounted).
fn thread_id() -> u64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// What a backend does for one wakeup of the shared worker loop.
pub(crate) trait Driver {
    /// Waits (at most `timeout`) for completions or readiness, feeds them to the shard, sends
    /// the UDP replies it queued in one batch and applies its stream-interest changes.
    fn turn(&mut self, shard: &mut Shard, timeout: Duration) -> io::Result<()>;
}

/// The one worker loop of both backends.
fn worker_loop<D: Driver>(mut shard: Shard, mut driver: D) -> io::Result<()> {
    while !shard.stopping() {
        driver.turn(&mut shard, Duration::from_millis(200))?;
        shard.tick();
    }
    // Graceful stop: answer what already arrived, flush and close connections.
    driver.turn(&mut shard, Duration::ZERO)?;
    shard.close_all();
    driver.turn(&mut shard, Duration::ZERO)?;
    Ok(())
}
