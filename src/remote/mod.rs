//! The shared location service on Redis (standalone or Redis Cluster): the I/O half of the
//! remote backend (`engine/remote.rs` is the sans-IO half, and explains the model).
//!
//! One thread (`sipreg-redis`) runs a current-thread tokio runtime. Each shard has its own
//! bounded queue of ops, its own Redis connection (standalone: a reconnecting
//! `ConnectionManager`; cluster: a `ClusterConnection`, which routes by slot and follows
//! MOVED/ASK) and its own reply list. Ops of one shard are pipelined on its connection: they
//! are sent as they come without waiting for earlier replies, so a node's throughput is bound
//! by Redis, not by round trips. Every op gets exactly one reply: the script's answer, or
//! `Unavailable` after `timeout` or on any error — the shard then answers 503 + Retry-After,
//! and the node recovers by itself when Redis answers again (the connection reconnects in the
//! background). Nothing here is unbounded: the queue per shard holds at most the engine's
//! `max_pending` ops.
//!
//! Keys: `<prefix>{<canonical AOR>}`. The braces are a Redis Cluster hash tag, so one AOR is
//! one slot; a canonical AOR never contains `{` or `}` (they are escaped in SIP URIs).
//!
//! The compare-and-set is one Lua script (atomic in Redis). Its answer: `1` = the version
//! matched (and the write, if any, was made); `0` = it did not and the AOR has no value;
//! a bulk string = it did not, here is the current value.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

use crate::engine::{RemoteOp, RemoteReply};
use crate::runtime::RemoteStore;

/// The compare-and-set. KEYS[1] = the AOR's key; ARGV[1] = the expected version (8 bytes;
/// all zero = no value); optional ARGV[2] = the new value, ARGV[3] = its expiry as Unix
/// seconds (`0` = delete the key).
const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
local ver = string.rep('\0', 8)
if cur then ver = string.sub(cur, 1, 8) end
if ver ~= ARGV[1] then
  if cur then return cur end
  return 0
end
if #ARGV >= 3 then
  if ARGV[3] == '0' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3])
  end
end
return 1
";

/// Where the shared location service is and how to talk to it (`[location]` in the config).
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` URLs: one for standalone Redis, the seed nodes for a cluster.
    pub urls: Vec<String>,
    /// Redis Cluster (slot routing) instead of one server.
    pub cluster: bool,
    /// Key prefix, before the `{AOR}` hash tag.
    pub key_prefix: String,
    /// An op without an answer after this long is `Unavailable` (503 to the UA).
    pub timeout: Duration,
    /// Ops one shard may have queued or in flight (the engine's `max_pending`).
    pub queue: usize,
}

/// Counters of the Redis client (for metrics and tests).
#[derive(Debug, Default)]
pub struct RedisStats {
    /// Ops carried out (any answer).
    pub ops: AtomicU64,
    /// Ops whose version did not match (a race or a stale cache: the request is re-planned).
    pub conflicts: AtomicU64,
    /// Ops that failed (timeout, connection error, script error).
    pub unavailable: AtomicU64,
}

struct ShardSlot {
    replies: Mutex<Vec<(u64, RemoteReply)>>,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl ShardSlot {
    fn push(&self, token: u64, reply: RemoteReply) {
        let was_empty = {
            let mut r = self.replies.lock().unwrap_or_else(PoisonError::into_inner);
            r.push((token, reply));
            r.len() == 1
        };
        // The shard drains the whole list on each wakeup: wake it once per batch, not per op.
        if was_empty {
            if let Some(wake) = self.wake.get() {
                wake();
            }
        }
    }
}

/// A management request (the HTTP API's lookups and deletes), served on the client thread.
enum Admin {
    /// The AOR's current value.
    Get(crate::store::AorKey),
    /// Removes the AOR's bindings (all, or the one with this id); answers how many.
    Delete(crate::store::AorKey, Option<u64>),
    /// Sends every AOR's (name, value) to the channel (see [`RedisLocation::scan`]).
    Scan(ScanSender),
}

/// Where a scan sends each AOR and its value (an `Err` ends the scan with a reason).
pub type ScanSender = mpsc::Sender<Result<(String, Vec<u8>), String>>;

/// The answer to an [`Admin`] request.
type AdminAnswer = Result<AdminReply, String>;

enum AdminReply {
    Value(Option<Vec<u8>>),
    Removed(usize),
    Scanning,
}

/// The Redis location service client (see the module documentation).
pub struct RedisLocation {
    admin: mpsc::Sender<(Admin, tokio::sync::oneshot::Sender<AdminAnswer>)>,
    queues: Vec<mpsc::Sender<RemoteOp>>,
    slots: Arc<Vec<ShardSlot>>,
    stats: Arc<RedisStats>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLocation")
            .field("shards", &self.queues.len())
            .finish_non_exhaustive()
    }
}

/// A configuration error (bad URL).
#[derive(Debug, thiserror::Error)]
#[error("location.redis_urls: {0}")]
pub struct RedisError(String);

/// One shard's connection.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    async fn cas(
        &mut self,
        script: &redis::Script,
        key: &[u8],
        op: &RemoteOp,
    ) -> redis::RedisResult<redis::Value> {
        let mut inv = script.key(key);
        inv.arg(&op.expected.to_be_bytes()[..]);
        if let Some(w) = &op.write {
            inv.arg(&w.value[..]).arg(w.expire_at);
        }
        match self {
            Self::Single(c) => inv.invoke_async(c).await,
            Self::Cluster(c) => inv.invoke_async(c).await,
        }
    }

    async fn ping(&mut self) -> redis::RedisResult<()> {
        let cmd = redis::cmd("PING");
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

impl RedisLocation {
    /// Starts the client thread for `shards` shards. Redis need not be up: ops fail with
    /// `Unavailable` until it is (URLs are checked here).
    pub fn start(config: &RedisConfig, shards: usize) -> Result<Arc<Self>, RedisError> {
        if config.urls.is_empty() {
            return Err(RedisError("at least one URL is needed".into()));
        }
        let infos = config
            .urls
            .iter()
            .map(|u| {
                redis::IntoConnectionInfo::into_connection_info(u.as_str())
                    .map_err(|e| RedisError(format!("{u:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !config.cluster && infos.len() > 1 {
            return Err(RedisError(
                "several URLs need location.redis_cluster = true".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RedisError(format!("runtime: {e}")))?;
        let slots: Arc<Vec<ShardSlot>> = Arc::new(
            (0..shards)
                .map(|_| ShardSlot {
                    replies: Mutex::new(Vec::new()),
                    wake: OnceLock::new(),
                })
                .collect(),
        );
        let stats = Arc::new(RedisStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut queues = Vec::with_capacity(shards);
        let mut receivers = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (tx, rx) = mpsc::channel(config.queue.max(1));
            queues.push(tx);
            receivers.push(rx);
        }
        let (admin, admin_rx) = mpsc::channel(64);
        let cfg = config.clone();
        let (slots2, stats2) = (Arc::clone(&slots), Arc::clone(&stats));
        let thread = std::thread::Builder::new()
            .name("sipreg-redis".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let admin_conn = connect(&cfg, &infos);
                    tokio::spawn(serve_admin(admin_rx, admin_conn, cfg.clone()));
                    let mut tasks = Vec::new();
                    for (shard, rx) in receivers.into_iter().enumerate() {
                        let conn = connect(&cfg, &infos);
                        tasks.push(tokio::spawn(serve_shard(
                            shard,
                            rx,
                            conn,
                            cfg.clone(),
                            Arc::clone(&slots2),
                            Arc::clone(&stats2),
                        )));
                    }
                    for t in tasks {
                        let _ = t.await;
                    }
                });
            })
            .map_err(|e| RedisError(format!("thread: {e}")))?;
        Ok(Arc::new(Self {
            admin,
            queues,
            slots,
            stats,
            stop,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// The AOR's current value in Redis (`None`: no bindings), for the management API.
    pub async fn get(&self, aor: &crate::store::AorKey) -> Result<Option<Vec<u8>>, String> {
        match self.ask(Admin::Get(aor.clone())).await? {
            AdminReply::Value(v) => Ok(v),
            _ => Err("unexpected answer".into()),
        }
    }

    /// Removes the AOR's bindings (all, or the one with `id`) with the same compare-and-set as
    /// the registrar; returns how many were removed.
    pub async fn delete(
        &self,
        aor: &crate::store::AorKey,
        id: Option<u64>,
    ) -> Result<usize, String> {
        match self.ask(Admin::Delete(aor.clone(), id)).await? {
            AdminReply::Removed(n) => Ok(n),
            _ => Err("unexpected answer".into()),
        }
    }

    /// Starts a walk over every AOR in Redis (every master of a cluster), sending each AOR and
    /// its value to `tx` as it goes; the walk stops when `tx` is dropped (a slow reader slows it
    /// down: the channel is bounded). Redis `SCAN` semantics: an AOR that exists for the whole
    /// walk is sent at least once (rarely twice, across a rehash).
    pub async fn scan(&self, tx: ScanSender) -> Result<(), String> {
        self.ask(Admin::Scan(tx)).await.map(|_| ())
    }

    async fn ask(&self, request: Admin) -> AdminAnswer {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.admin
            .try_send((request, tx))
            .map_err(|_| "the Redis client is busy or stopped".to_owned())?;
        rx.await
            .map_err(|_| "the Redis client stopped".to_owned())?
    }

    /// The client's counters.
    pub fn stats(&self) -> &RedisStats {
        &self.stats
    }

    /// Stops taking ops, lets the ones in flight finish (each within `timeout`) and joins the
    /// thread.
    pub fn close(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Closing the queues ends each shard's task once its ops are answered.
        for q in &self.queues {
            let _ = q.try_send(RemoteOp {
                token: 0,
                aor: crate::store::AorKey::new(""),
                expected: 0,
                write: None,
            });
        }
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
    }
}

/// A connection that connects (and reconnects) in the background.
fn connect(cfg: &RedisConfig, infos: &[redis::ConnectionInfo]) -> Arc<tokio::sync::OnceCell<Conn>> {
    let cell = Arc::new(tokio::sync::OnceCell::new());
    let (cfg, infos, c) = (cfg.clone(), infos.to_vec(), Arc::clone(&cell));
    tokio::spawn(async move {
        let mut logged = false;
        loop {
            match open(&cfg, &infos).await {
                Ok(conn) => {
                    let _ = c.set(conn);
                    return;
                }
                Err(e) => {
                    if !logged {
                        tracing::warn!(error = %e, "Redis unreachable; retrying (REGISTERs get 503 meanwhile)");
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    cell
}

async fn open(cfg: &RedisConfig, infos: &[redis::ConnectionInfo]) -> redis::RedisResult<Conn> {
    if cfg.cluster {
        let client = redis::cluster::ClusterClient::builder(infos.to_vec())
            .connection_timeout(cfg.timeout.max(Duration::from_millis(100)))
            .response_timeout(cfg.timeout)
            .retries(2)
            .build()?;
        return Ok(Conn::Cluster(client.get_async_connection().await?));
    }
    let info = infos
        .first()
        .cloned()
        .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no URL")))?;
    let client = redis::Client::open(info)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(cfg.timeout.max(Duration::from_millis(100))))
        .set_response_timeout(Some(cfg.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    // Connects now, so that an unreachable server is noticed (and retried) here.
    Ok(Conn::Single(
        ConnectionManager::new_with_config(client, config).await?,
    ))
}

async fn serve_shard(
    shard: usize,
    mut rx: mpsc::Receiver<RemoteOp>,
    conn: Arc<tokio::sync::OnceCell<Conn>>,
    cfg: RedisConfig,
    slots: Arc<Vec<ShardSlot>>,
    stats: Arc<RedisStats>,
) {
    let script = Arc::new(redis::Script::new(CAS));
    let mut batch = Vec::with_capacity(256);
    // After a failure the connection is probed every 200 ms, so that it reconnects before the
    // next REGISTER needs it (a reconnecting connection only retries when it is used).
    let healthy = Arc::new(AtomicBool::new(true));
    let mut probe = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, 256) => if n == 0 {
                return;
            },
            _ = probe.tick() => {
                if let (false, Some(c)) = (healthy.load(Ordering::Relaxed), conn.get().cloned()) {
                    let (healthy, timeout) = (Arc::clone(&healthy), cfg.timeout);
                    tokio::spawn(async move {
                        let mut c = c;
                        if matches!(tokio::time::timeout(timeout, c.ping()).await, Ok(Ok(()))) {
                            healthy.store(true, Ordering::Relaxed);
                        }
                    });
                }
                continue;
            }
        }
        for op in batch.drain(..) {
            if op.token == 0 {
                return; // close()
            }
            let Some(slot_list) = slots.get(shard) else {
                continue;
            };
            let Some(c) = conn.get().cloned() else {
                stats.ops.fetch_add(1, Ordering::Relaxed);
                stats.unavailable.fetch_add(1, Ordering::Relaxed);
                slot_list.push(op.token, RemoteReply::Unavailable);
                continue;
            };
            let (key, script, slots, stats, healthy, timeout) = (
                key_of(&cfg.key_prefix, &op.aor),
                Arc::clone(&script),
                Arc::clone(&slots),
                Arc::clone(&stats),
                Arc::clone(&healthy),
                cfg.timeout,
            );
            // Each op runs as its own task: ops of one connection are pipelined.
            tokio::spawn(async move {
                let mut c = c;
                let answer = tokio::time::timeout(timeout, c.cas(&script, &key, &op)).await;
                let reply = match answer {
                    Ok(Ok(redis::Value::Int(1))) => RemoteReply::Committed,
                    Ok(Ok(redis::Value::Int(0))) => RemoteReply::Current(None),
                    Ok(Ok(redis::Value::BulkString(v))) => RemoteReply::Current(Some(v)),
                    Ok(Ok(other)) => {
                        tracing::warn!(answer = ?other, "unexpected answer from the location script");
                        RemoteReply::Unavailable
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "Redis op failed");
                        RemoteReply::Unavailable
                    }
                    Err(_) => RemoteReply::Unavailable,
                };
                stats.ops.fetch_add(1, Ordering::Relaxed);
                match reply {
                    RemoteReply::Current(_) => stats.conflicts.fetch_add(1, Ordering::Relaxed),
                    RemoteReply::Unavailable => {
                        healthy.store(false, Ordering::Relaxed);
                        stats.unavailable.fetch_add(1, Ordering::Relaxed)
                    }
                    RemoteReply::Committed => 0,
                };
                if let Some(s) = slots.get(shard) {
                    s.push(op.token, reply);
                }
            });
        }
    }
}

/// Serves the management API's requests, one at a time.
async fn serve_admin(
    mut rx: mpsc::Receiver<(Admin, tokio::sync::oneshot::Sender<AdminAnswer>)>,
    conn: Arc<tokio::sync::OnceCell<Conn>>,
    cfg: RedisConfig,
) {
    let script = redis::Script::new(CAS);
    while let Some((request, answer)) = rx.recv().await {
        let result = match (conn.get().cloned(), request) {
            (None, _) => Err("Redis is unreachable".to_owned()),
            (Some(c), Admin::Scan(tx)) => {
                tokio::spawn(scan_all(c, cfg.clone(), tx));
                Ok(AdminReply::Scanning)
            }
            (Some(mut c), request) => {
                let work = admin(&mut c, &script, &cfg, request);
                match tokio::time::timeout(cfg.timeout * 8, work).await {
                    Ok(r) => r,
                    Err(_) => Err("Redis did not answer in time".to_owned()),
                }
            }
        };
        let _ = answer.send(result);
    }
}

async fn admin(
    c: &mut Conn,
    script: &redis::Script,
    cfg: &RedisConfig,
    request: Admin,
) -> AdminAnswer {
    let aor = match &request {
        Admin::Get(aor) | Admin::Delete(aor, _) => aor.clone(),
        Admin::Scan(_) => return Err("not here".into()),
    };
    let key = key_of(&cfg.key_prefix, &aor);
    // Read with a version that never matches: the script answers the current value.
    let read = RemoteOp {
        token: 1,
        aor: aor.clone(),
        expected: u64::MAX,
        write: None,
    };
    for _ in 0..8 {
        let current = match c
            .cas(script, &key, &read)
            .await
            .map_err(|e| e.to_string())?
        {
            redis::Value::BulkString(v) => Some(v),
            _ => None,
        };
        let Admin::Delete(_, id) = &request else {
            return Ok(AdminReply::Value(current));
        };
        let Some(value) = current else {
            return Ok(AdminReply::Removed(0));
        };
        let (version, mut list) = crate::engine::decode_value(&value).map_err(|e| e.to_string())?;
        let before = list.len();
        list.retain(|b| id.is_some_and(|id| b.id() != id));
        let removed = before - list.len();
        if removed == 0 {
            return Ok(AdminReply::Removed(0));
        }
        // A fresh version (never derived from the old one alone): the engines' caches of this
        // AOR are invalidated by it.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let new_version =
            crate::store::stable_hash(&[&version.to_le_bytes(), &nanos.to_le_bytes()]) | 1;
        let write = crate::engine::RemoteWrite::for_bindings(new_version, &list);
        let op = RemoteOp {
            token: 1,
            aor: aor.clone(),
            expected: version,
            write: Some(write),
        };
        if let redis::Value::Int(1) = c.cas(script, &key, &op).await.map_err(|e| e.to_string())? {
            return Ok(AdminReply::Removed(removed));
        }
    }
    Err("the AOR kept changing; try again".into())
}

/// Walks every master (one server, or each master of the cluster) with SCAN.
async fn scan_all(conn: Conn, cfg: RedisConfig, tx: ScanSender) {
    let result = match conn {
        Conn::Single(mut c) => scan_node(&mut c, &cfg.key_prefix, &tx).await.map(|_| ()),
        Conn::Cluster(mut c) => scan_cluster(&mut c, &cfg, &tx).await,
    };
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

async fn scan_cluster(
    c: &mut redis::cluster_async::ClusterConnection,
    cfg: &RedisConfig,
    tx: &ScanSender,
) -> Result<(), String> {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(c)
        .await
        .map_err(|e| e.to_string())?;
    let seed = redis::IntoConnectionInfo::into_connection_info(
        cfg.urls.first().map_or("", String::as_str),
    )
    .map_err(|e| e.to_string())?;
    // `<id> <ip:port@cport[,hostname]> <flags> ...`: the masters that are not failed.
    for line in nodes.lines() {
        let mut f = line.split_whitespace();
        let (Some(_), Some(addr), Some(flags)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !flags.split(',').any(|x| x == "master") || flags.contains("fail") {
            continue;
        }
        let addr = addr.split(['@', ',']).next().unwrap_or_default();
        let Some((host, port)) = addr.rsplit_once(':') else {
            continue;
        };
        let port: u16 = port.parse().map_err(|_| format!("CLUSTER NODES: {line}"))?;
        let info = seed
            .clone()
            .set_addr(redis::ConnectionAddr::Tcp(host.to_owned(), port));
        let mut node = redis::Client::open(info)
            .map_err(|e| e.to_string())?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        if !scan_node(&mut node, &cfg.key_prefix, tx).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// SCANs one server for `<prefix>{...}` keys and sends each AOR with its value; false when the
/// receiver is gone.
async fn scan_node<C: redis::aio::ConnectionLike>(
    c: &mut C,
    prefix: &str,
    tx: &ScanSender,
) -> Result<bool, String> {
    let pattern = format!("{}{{*", redis_glob_escape(prefix));
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(c)
            .await
            .map_err(|e| e.to_string())?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("GET").arg(k);
            }
            let values: Vec<Option<Vec<u8>>> =
                pipe.query_async(c).await.map_err(|e| e.to_string())?;
            for (key, value) in keys.iter().zip(values) {
                // Gone meanwhile (expired, deleted): nothing to send.
                let Some(value) = value else { continue };
                let aor = key
                    .get(prefix.len() + 1..key.len().saturating_sub(1))
                    .and_then(|a| std::str::from_utf8(a).ok());
                let Some(aor) = aor else { continue };
                if tx.send(Ok((aor.to_owned(), value))).await.is_err() {
                    return Ok(false);
                }
            }
        }
        if next == 0 {
            return Ok(true);
        }
        cursor = next;
    }
}

/// Escapes Redis glob metacharacters in a literal key prefix.
fn redis_glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// `<prefix>{<AOR>}`: the braces are the Redis Cluster hash tag.
fn key_of(prefix: &str, aor: &crate::store::AorKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + aor.as_bytes().len() + 2);
    key.extend_from_slice(prefix.as_bytes());
    key.push(b'{');
    key.extend_from_slice(aor.as_bytes());
    key.push(b'}');
    key
}

impl RemoteStore for RedisLocation {
    fn submit(&self, shard: usize, op: RemoteOp) -> Result<(), RemoteOp> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(op);
        }
        match self.queues.get(shard) {
            Some(q) => q.try_send(op).map_err(|e| match e {
                mpsc::error::TrySendError::Full(op) | mpsc::error::TrySendError::Closed(op) => op,
            }),
            None => Err(op),
        }
    }

    fn take_replies(&self, shard: usize, out: &mut Vec<(u64, RemoteReply)>) {
        if let Some(s) = self.slots.get(shard) {
            out.append(&mut s.replies.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }

    fn add_waker(&self, shard: usize, wake: Box<dyn Fn() + Send + Sync>) {
        if let Some(s) = self.slots.get(shard) {
            let _ = s.wake.set(wake);
        }
    }
}
