//! The management plane: an HTTP API (JSON), Prometheus metrics and health probes, on its own
//! thread with a small current-thread tokio runtime — never on the shard threads.
//!
//! It belongs to the I/O layer like [`crate::runtime`] (sockets, a thread, the clock); what it
//! serves comes from the sans-IO core: [`Store::lookup`](crate::store::Store::lookup),
//! [`Store::modify`](crate::store::Store::modify) and [`Store::scan`](crate::store::Store::scan)
//! for bindings, the shards' counters for metrics, [`Shared::reload`] behind `POST /v1/reload`.
//!
//! Endpoints (bound to 127.0.0.1 by default; with a token, every endpoint but the two probes
//! needs `Authorization: Bearer <token>`):
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/healthz` | 200 while the process serves HTTP |
//! | GET | `/readyz` | 200 once bindings are loaded and the SIP listeners are open, else 503 |
//! | GET | `/metrics` | Prometheus text format 0.0.4 |
//! | GET | `/v1/stats` | counters and gauges as JSON |
//! | GET | `/v1/aors/{aor}` | the AOR's live bindings |
//! | DELETE | `/v1/aors/{aor}` | removes all its bindings |
//! | DELETE | `/v1/aors/{aor}/bindings/{id}` | removes one binding (`id` from the JSON) |
//! | GET | `/v1/bindings?domain=&prefix=&limit=&cursor=` | NDJSON stream of bindings |
//! | POST | `/v1/reload` | re-reads the configuration (as SIGHUP does) |
//!
//! With the Redis backend, AOR lookups and deletes go to Redis (deletes with the registrar's
//! compare-and-set), and the dump walks Redis (every master of a cluster) with SCAN: filters and
//! `limit` work, cursors do not (an AOR may come twice across a Redis rehash).
//!
//! `{aor}` is a SIP URI, percent-encoded or not (`sip:alice@example.com`, or `alice@example.com`
//! for the `sip:` scheme); it is canonicalised like the registrar does (RFC 3261 §10.3 step 5).
#![allow(clippy::disallowed_methods)]

mod api;
mod metrics;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::Shared;
use crate::runtime::stats::ShardStats;
use crate::runtime::{wall_clock as now, Backend};

/// Management server settings (from `[management]`).
#[derive(Clone, Debug)]
pub struct MgmtConfig {
    /// Listen address. Default 127.0.0.1:9060.
    pub listen: SocketAddr,
    /// Bearer token required by every endpoint but the probes; `None` = no authentication
    /// (keep the listener on loopback then).
    pub token: Option<String>,
}

/// Re-reads the configuration and applies what can change at run time; returns a summary or
/// the reason nothing changed.
pub type ReloadFn = dyn Fn() -> Result<String, String> + Send + Sync;

/// The running SIP server, as far as the management plane needs it.
#[derive(Debug)]
pub struct ServerInfo {
    /// The I/O backend in use.
    pub backend: Backend,
    /// Per-shard counters.
    pub shards: Vec<Arc<ShardStats>>,
}

/// Everything the API serves.
pub struct Context {
    shared: Arc<Shared>,
    server: OnceLock<ServerInfo>,
    reload: Box<ReloadFn>,
    /// The Redis location service, when bindings live there (lookups and deletes go to it).
    location: OnceLock<Arc<crate::remote::RedisLocation>>,
    /// The local journal, when bindings are persisted (its progress is in `/metrics`).
    persister: OnceLock<Arc<crate::persist::Persister>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("ready", &self.server.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context over the registrar state; not ready until [`Context::set_ready`].
    pub fn new(shared: Arc<Shared>, reload: Box<ReloadFn>) -> Arc<Self> {
        Arc::new(Self {
            shared,
            server: OnceLock::new(),
            reload,
            location: OnceLock::new(),
            persister: OnceLock::new(),
        })
    }

    /// Bindings are persisted by `persister`: its progress is reported.
    pub fn set_persister(&self, persister: Arc<crate::persist::Persister>) {
        let _ = self.persister.set(persister);
    }

    /// Bindings live in Redis: AOR lookups and deletes go there; the dump is refused.
    pub fn set_location(&self, location: Arc<crate::remote::RedisLocation>) {
        let _ = self.location.set(location);
    }

    /// Bindings are loaded and the SIP listeners are open: `/readyz` answers 200 from now on.
    pub fn set_ready(&self, info: ServerInfo) {
        let _ = self.server.set(info);
    }

    fn shards(&self) -> &[Arc<ShardStats>] {
        self.server.get().map_or(&[], |s| &s.shards)
    }
}

/// The running management server.
#[derive(Debug)]
pub struct Management {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Management {
    /// Binds the listener (errors are reported here, before anything else starts) and starts
    /// the management thread.
    pub fn start(config: &MgmtConfig, ctx: Arc<Context>) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let token = config.token.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // Dumps run on blocking threads: at most this many at once, the rest wait.
            .max_blocking_threads(4)
            .thread_name("sipreg-mgmt-blocking")
            .build()?;
        let thread = std::thread::Builder::new()
            .name("sipreg-mgmt".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => api::serve(l, Arc::new(api::State { ctx, token }), stopped).await,
                        Err(e) => tracing::error!(error = %e, "management listener"),
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        tracing::info!(%addr, "management API listening");
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the thread.
    pub fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
