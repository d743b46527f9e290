//! The one worker loop both backends drive: a shard's engine, its UDP sockets, listeners and
//! connections (TCP and TLS), timers. A backend ([`Driver`]) only waits for readiness or
//! completions, hands received datagrams and readiness to the [`Shard`], and sends the UDP
//! replies the shard queued, in one batch per wakeup.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;

use super::stats::ShardStats;
use super::{wall_clock, AckGate, RemoteStore, RuntimeConfig};
use crate::engine::RemoteReply;
use crate::engine::{ConnId, Engine, Meta, StreamStatus, Transport};
use crate::time::Instant;
use crate::transport::tls::TlsSession;

/// The TLS configuration shared by every shard; replaced as a whole on reload (new
/// connections get the new certificate, open ones keep theirs).
pub(crate) type TlsSlot = Arc<std::sync::RwLock<Arc<ServerConfig>>>;

fn current(slot: &TlsSlot) -> Arc<ServerConfig> {
    Arc::clone(
        &slot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

/// Token kinds in the high byte of an event token.
pub(crate) const TOKEN_UDP: u64 = 1 << 56;
pub(crate) const TOKEN_LISTENER: u64 = 2 << 56;
pub(crate) const TOKEN_CONN: u64 = 3 << 56;
pub(crate) const TOKEN_WAKE: u64 = 4 << 56;
const KIND_MASK: u64 = 0xff << 56;

/// What a backend must do with a stream fd after the shard handled an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Watch for readability (new fd).
    Add { write: bool },
    /// Change write interest.
    Modify { write: bool },
    /// Stop watching (the fd is closed right after).
    Remove,
}

/// A queued UDP reply: `bytes` is `out[start..end]`.
pub(crate) struct UdpSend {
    pub(crate) socket: usize,
    pub(crate) dest: SocketAddr,
    /// Source address to send from (wildcard-bound sockets), via IP_PKTINFO.
    pub(crate) from: Option<IpAddr>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

pub(crate) struct Listener {
    pub(crate) socket: TcpListener,
    pub(crate) tls: bool,
    pub(crate) local: SocketAddr,
}

struct Conn {
    stream: TcpStream,
    id: ConnId,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<TlsSession>,
    /// Plaintext received and not yet consumed by the engine.
    inbuf: Vec<u8>,
    /// Bytes to write (ciphertext for TLS).
    outbuf: Vec<u8>,
    last_active: std::time::Instant,
    write_interest: bool,
    closing: bool,
    /// Responses of this connection waiting for durability (`ack` mode): later ones wait too,
    /// so responses leave in order.
    held: usize,
}

impl Conn {
    /// Queues plaintext for sending (encrypted on TLS connections).
    fn queue(&mut self, plaintext: &[u8]) {
        match self.tls.as_mut() {
            Some(tls) => {
                let _ = tls.send(plaintext);
                let _ = tls.take_output(&mut self.outbuf);
            }
            None => self.outbuf.extend_from_slice(plaintext),
        }
    }
}

/// A response held until the change it acknowledges is durable (persistence `ack` mode).
struct Held {
    /// Durable sequence number it waits for.
    seq: u64,
    to: HeldTo,
    bytes: Vec<u8>,
}

enum HeldTo {
    Udp {
        socket: usize,
        dest: SocketAddr,
        from: Option<IpAddr>,
    },
    /// Plaintext for a connection (encrypted when released).
    Conn(ConnId),
}

/// The state of one shard, independent of the backend.
pub(crate) struct Shard {
    pub(crate) index: usize,
    engine: Engine,
    pub(crate) udp: Vec<UdpSocket>,
    udp_local: Vec<SocketAddr>,
    pub(crate) listeners: Vec<Listener>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    generation: u32,
    per_ip: HashMap<IpAddr, usize>,
    open: usize,
    tls: Option<TlsSlot>,
    cfg: Arc<RuntimeConfig>,
    pub(crate) shutdown: Arc<AtomicBool>,
    /// UDP replies queued during one wakeup.
    pub(crate) sends: Vec<UdpSend>,
    pub(crate) send_buf: Vec<u8>,
    /// Interest changes for stream fds queued during one wakeup.
    pub(crate) interest: Vec<(RawFd, u64, Interest)>,
    /// Closed connections whose fds are released after the backend dropped its interest.
    closing_fds: Vec<TcpStream>,
    now: Instant,
    last_tick: std::time::Instant,
    /// Kernel receive timestamps (ns) of the datagrams handled in this wakeup.
    received_ns: Vec<u64>,
    /// Persistence `ack` mode: responses wait here, in order, until their change is durable.
    gate: Option<Arc<dyn AckGate>>,
    held: VecDeque<Held>,
    /// The shared location service, when bindings live there.
    remote: Option<Arc<dyn RemoteStore>>,
    /// Where the response of a UDP request waiting for the service goes: (socket, our
    /// address when the socket is bound to a wildcard address).
    routes: HashMap<u64, (usize, Option<IpAddr>)>,
    replies: Vec<(u64, RemoteReply)>,
    pub(crate) stats: Arc<ShardStats>,
}

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        engine: Engine,
        udp: Vec<UdpSocket>,
        listeners: Vec<Listener>,
        tls: Option<TlsSlot>,
        cfg: Arc<RuntimeConfig>,
        shutdown: Arc<AtomicBool>,
        stats: Arc<ShardStats>,
    ) -> io::Result<Self> {
        let udp_local = udp
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<io::Result<_>>()?;
        Ok(Self {
            index,
            engine,
            udp,
            udp_local,
            listeners,
            conns: Vec::new(),
            free: Vec::new(),
            generation: 0,
            per_ip: HashMap::new(),
            open: 0,
            tls,
            shutdown,
            sends: Vec::with_capacity(64),
            send_buf: Vec::with_capacity(64 * 1024),
            interest: Vec::new(),
            closing_fds: Vec::new(),
            now: wall_clock(),
            last_tick: std::time::Instant::now(),
            received_ns: Vec::with_capacity(64),
            gate: cfg.ack_gate.clone(),
            held: VecDeque::new(),
            remote: cfg.remote.clone(),
            routes: HashMap::new(),
            replies: Vec::new(),
            cfg,
            stats,
        })
    }

    /// Reads the clock once per wakeup (the engine takes time as an argument), and releases
    /// the held responses whose changes became durable.
    pub(crate) fn begin_batch(&mut self) {
        self.now = wall_clock();
        self.take_remote_replies();
        let Some(durable) = self.gate.as_ref().map(|g| g.durable()) else {
            return;
        };
        while self.held.front().is_some_and(|h| h.seq <= durable) {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            match h.to {
                HeldTo::Udp { socket, dest, from } => {
                    queue_udp(
                        &mut self.send_buf,
                        &mut self.sends,
                        socket,
                        dest,
                        from,
                        &h.bytes,
                    );
                }
                HeldTo::Conn(id) => {
                    let (slot, generation) = (conn_slot(id), conn_generation(id));
                    let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                        continue;
                    };
                    if conn_generation(conn.id) != generation {
                        continue; // closed meanwhile: the response has nowhere to go
                    }
                    conn.held = conn.held.saturating_sub(1);
                    conn.queue(&h.bytes);
                    self.flush_conn(slot);
                }
            }
        }
    }

    /// Called by the backend after it sent the queued replies.
    pub(crate) fn end_batch(&mut self) {
        if !self.received_ns.is_empty() {
            let done = wall_clock_ns();
            for at in self.received_ns.drain(..) {
                self.stats.latency.observe_ns(done.saturating_sub(at));
            }
        }
        self.stats.publish_engine(self.engine.stats());
        self.sends.clear();
        self.send_buf.clear();
        self.interest.clear();
        self.closing_fds.clear();
    }

    /// One received datagram. `local_ip` is its destination address when the socket is bound
    /// to a wildcard address (IP_PKTINFO).
    pub(crate) fn on_datagram(
        &mut self,
        socket: usize,
        source: SocketAddr,
        received: super::socket::Received,
        data: &[u8],
    ) {
        let Some(bound) = self.udp_local.get(socket).copied() else {
            return;
        };
        let local = SocketAddr::new(received.local.unwrap_or(bound.ip()), bound.port());
        self.stats.datagrams.fetch_add(1, Ordering::Relaxed);
        // Behind by more than the overload delay: answer 503 instead of growing the backlog.
        let now_ns = self.now.as_millis().saturating_mul(1_000_000);
        let waited_ms = received
            .at_ns
            .map_or(0, |at| now_ns.saturating_sub(at) / 1_000_000);
        let overloaded = waited_ms > self.cfg.overload_delay.as_millis() as u64;
        if let Some(at) = received.at_ns {
            self.received_ns.push(at);
        }
        if overloaded {
            self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
        }
        let meta = Meta {
            source,
            local,
            transport: Transport::Udp,
            conn: None,
            overloaded,
        };
        let before = self.gate.as_ref().map_or(0, |g| g.last_enqueued());
        self.engine.handle_datagram(self.now, &meta, data);
        let wait = must_wait(self.gate.as_ref(), before);
        if let Some(t) = self.engine.poll_transmit() {
            let from = bound
                .ip()
                .is_unspecified()
                .then_some(local.ip())
                .filter(|ip| ip.is_ipv4() == t.dest.is_ipv4());
            if let Some(seq) = wait {
                self.held.push_back(Held {
                    seq,
                    to: HeldTo::Udp {
                        socket,
                        dest: t.dest,
                        from,
                    },
                    bytes: t.bytes.to_vec(),
                });
                return;
            }
            queue_udp(
                &mut self.send_buf,
                &mut self.sends,
                socket,
                t.dest,
                from,
                t.bytes,
            );
        }
        // A request waiting for the shared location service (never held: `ack` mode and the
        // remote backend exclude each other).
        let wildcard = bound.ip().is_unspecified().then_some(local.ip());
        self.pump_remote(Some((socket, wildcard)));
    }

    /// Readiness of a listener or connection token.
    pub(crate) fn on_ready(&mut self, token: u64, readable: bool, writable: bool) {
        match token & KIND_MASK {
            TOKEN_LISTENER => {
                self.accept(usize::try_from(token & !KIND_MASK).unwrap_or(usize::MAX))
            }
            TOKEN_CONN => {
                let (slot, generation) = split_conn_token(token);
                let live = self
                    .conns
                    .get(slot)
                    .and_then(Option::as_ref)
                    .is_some_and(|c| conn_generation(c.id) == generation);
                if !live {
                    return;
                }
                if readable {
                    self.read_conn(slot);
                }
                if writable {
                    self.flush_conn(slot);
                }
            }
            _ => {}
        }
    }

    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let (stream, peer) = match listener.socket.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    return;
                }
            };
            let tls = listener.tls;
            let local = listener.local;
            let per_ip = self.per_ip.get(&peer.ip()).copied().unwrap_or(0);
            if self.open >= self.cfg.max_connections || per_ip >= self.cfg.max_connections_per_ip {
                self.stats
                    .rejected_connections
                    .fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let session = match (tls, &self.tls) {
                (true, Some(slot)) => match TlsSession::new(&current(slot)) {
                    Ok(s) => Some(s),
                    Err(_) => continue,
                },
                (true, None) => continue,
                (false, _) => None,
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().unwrap_or(local);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            self.generation = self.generation.wrapping_add(1);
            let id = conn_id(self.index, slot, self.generation);
            let fd = stream.as_raw_fd();
            if let Some(s) = self.conns.get_mut(slot) {
                *s = Some(Conn {
                    stream,
                    id,
                    peer,
                    local,
                    tls: session,
                    inbuf: Vec::new(),
                    outbuf: Vec::new(),
                    last_active: std::time::Instant::now(),
                    write_interest: false,
                    closing: false,
                    held: 0,
                });
            }
            *self.per_ip.entry(peer.ip()).or_insert(0) += 1;
            self.open += 1;
            self.stats.connections.fetch_add(1, Ordering::Relaxed);
            if tls {
                self.stats.tls_connections.fetch_add(1, Ordering::Relaxed);
            }
            self.interest.push((
                fd,
                conn_token(slot, self.generation),
                Interest::Add { write: false },
            ));
        }
    }

    fn read_conn(&mut self, slot: usize) {
        let max_buffer = self.cfg.max_message_size.saturating_mul(2);
        let mut chunk = [0u8; 16 * 1024];
        let mut eof = false;
        let mut failed = false;
        loop {
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if conn.closing {
                break;
            }
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    conn.last_active = std::time::Instant::now();
                    let data = chunk.get(..n).unwrap_or_default();
                    match conn.tls.as_mut() {
                        Some(tls) => {
                            if tls.receive(data, &mut conn.inbuf).is_err() {
                                failed = true;
                            }
                            let _ = tls.take_output(&mut conn.outbuf);
                        }
                        None => conn.inbuf.extend_from_slice(data),
                    }
                    if failed {
                        break;
                    }
                    // Complete messages are handled as they arrive, so a burst of pipelined
                    // requests is not mistaken for an oversized one: only what stays unconsumed
                    // (a partial message) counts against the bound.
                    self.process_conn(slot);
                    // Answer as we go: the bound on unsent bytes must only catch peers that do
                    // not read, not a long burst we have not tried to write yet.
                    self.flush_conn(slot);
                    let pending = self
                        .conns
                        .get(slot)
                        .and_then(Option::as_ref)
                        .map_or(0, |c| c.inbuf.len());
                    if pending > max_buffer {
                        failed = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if eof || failed {
            if let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                c.closing = true;
            }
        }
        self.flush_conn(slot);
    }

    fn process_conn(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.inbuf.is_empty() {
            return;
        }
        let transport = if conn.tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        let meta = Meta {
            source: conn.peer,
            local: conn.local,
            transport,
            conn: Some(conn.id),
            overloaded: false,
        };
        let before = self.gate.as_ref().map_or(0, |g| g.last_enqueued());
        let status = self.engine.handle_stream(self.now, &meta, &conn.inbuf);
        let wait = match (self.gate.as_ref(), must_wait(self.gate.as_ref(), before)) {
            (_, Some(seq)) => Some(seq),
            // Behind a held response of this connection: wait with it (in order).
            (Some(g), None) if conn.held > 0 => Some(g.last_enqueued()),
            _ => None,
        };
        if let Some(t) = self.engine.poll_transmit() {
            if let Some(seq) = wait {
                conn.held += 1;
                self.held.push_back(Held {
                    seq,
                    to: HeldTo::Conn(conn.id),
                    bytes: t.bytes.to_vec(),
                });
            } else {
                conn.queue(t.bytes);
            }
        }
        match status {
            StreamStatus::Consumed(n) => {
                conn.inbuf.drain(..n.min(conn.inbuf.len()));
            }
            StreamStatus::Close => conn.closing = true,
        }
        self.pump_remote(None);
    }

    /// Hands the engine's ops for the shared location service over (`udp`: the route of the
    /// datagram just handled). An op the service cannot take is answered 503 at once.
    fn pump_remote(&mut self, udp: Option<(usize, Option<IpAddr>)>) {
        if self.remote.is_none() {
            return;
        }
        while let Some(op) = self.engine.poll_remote() {
            let token = op.token;
            if let Some(route) = udp {
                self.routes.entry(token).or_insert(route);
            }
            let index = self.index;
            let accepted = self
                .remote
                .as_ref()
                .is_some_and(|r| r.submit(index, op).is_ok());
            if !accepted {
                let done = self
                    .engine
                    .handle_remote(self.now, token, RemoteReply::Unavailable);
                self.send_remote_answer(token, done);
            }
        }
    }

    /// Feeds the service's replies to the engine and sends the answers they complete.
    fn take_remote_replies(&mut self) {
        let Some(remote) = self.remote.as_ref() else {
            return;
        };
        remote.take_replies(self.index, &mut self.replies);
        if self.replies.is_empty() {
            return;
        }
        let mut replies = std::mem::take(&mut self.replies);
        for (token, reply) in replies.drain(..) {
            let done = self.engine.handle_remote(self.now, token, reply);
            self.send_remote_answer(token, done);
            // A retry keeps its token (and its route).
            self.pump_remote(None);
        }
        self.replies = replies;
    }

    /// Sends the response the engine wrote for the request with this token.
    fn send_remote_answer(&mut self, token: u64, done: bool) {
        let route = if done {
            self.routes.remove(&token)
        } else {
            self.routes.get(&token).copied()
        };
        let Some(t) = self.engine.poll_transmit() else {
            return;
        };
        match t.conn {
            Some(id) => {
                let slot = conn_slot(id);
                let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                    return;
                };
                if conn.id != id {
                    return; // closed meanwhile: the response has nowhere to go
                }
                conn.queue(t.bytes);
                self.flush_conn(slot);
            }
            None => {
                let Some((socket, wildcard)) = route else {
                    return;
                };
                let from = wildcard.filter(|ip| ip.is_ipv4() == t.dest.is_ipv4());
                queue_udp(
                    &mut self.send_buf,
                    &mut self.sends,
                    socket,
                    t.dest,
                    from,
                    t.bytes,
                );
            }
        }
    }

    /// Writes what is pending; closes the connection when it is done and closing.
    fn flush_conn(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut broken = false;
        while !conn.outbuf.is_empty() {
            match conn.stream.write(&conn.outbuf) {
                Ok(0) => {
                    broken = true;
                    break;
                }
                Ok(n) => {
                    conn.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        // A peer that keeps sending but never reads would make the responses pile up here
        // without bound (the kernel send buffer is already full at this point): close it.
        if conn.outbuf.len() > self.cfg.max_message_size.saturating_mul(4) {
            self.stats.stalled_closed.fetch_add(1, Ordering::Relaxed);
            // Abortive close: a graceful one would queue our FIN behind the responses the peer
            // never reads and leave the socket (and its buffers) orphaned in FIN-WAIT-1.
            self.abort_conn(slot);
            return;
        }
        if broken || (conn.closing && conn.outbuf.is_empty()) {
            self.close_conn(slot);
            return;
        }
        let want = !conn.outbuf.is_empty();
        if want != conn.write_interest {
            conn.write_interest = want;
            let token = conn_token(slot, conn_generation(conn.id));
            self.interest.push((
                conn.stream.as_raw_fd(),
                token,
                Interest::Modify { write: want },
            ));
        }
    }

    /// Closes with a reset (SO_LINGER 0): unsent data is discarded at once.
    fn abort_conn(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get(slot).and_then(Option::as_ref) {
            let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
        }
        self.close_conn_as(slot, true);
    }

    fn close_conn(&mut self, slot: usize) {
        self.close_conn_as(slot, false);
    }

    fn close_conn_as(&mut self, slot: usize, abort: bool) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let token = conn_token(slot, conn_generation(conn.id));
        self.interest
            .push((conn.stream.as_raw_fd(), token, Interest::Remove));
        if !abort {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        // The fd is closed by the backend once it has removed its interest (io_uring polls
        // hold no reference to a closed fd number we might reuse).
        self.closing_fds.push(conn.stream);
        self.free.push(slot);
        self.open = self.open.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&conn.peer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&conn.peer.ip());
            }
        }
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        if conn.tls.is_some() {
            self.stats.tls_connections.fetch_sub(1, Ordering::Relaxed);
        }
        self.engine.handle_close(self.now, conn.id);
        self.pump_remote(None);
    }

    /// Once per second: idle connections, expiry sweep.
    pub(crate) fn tick(&mut self) {
        let now = std::time::Instant::now();
        if now.duration_since(self.last_tick) < Duration::from_secs(1) {
            return;
        }
        self.last_tick = now;
        self.now = wall_clock();
        self.engine.handle_timeout(self.now);
        let idle = self.cfg.idle_timeout;
        let handshake = Duration::from_secs(10).min(idle);
        let expired: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.as_ref()?;
                // A TLS handshake or a partial message must complete quickly (slow clients).
                let pending =
                    c.tls.as_ref().is_some_and(TlsSession::is_handshaking) || !c.inbuf.is_empty();
                let limit = if pending { handshake } else { idle };
                (now.duration_since(c.last_active) >= limit).then_some(i)
            })
            .collect();
        for slot in expired {
            self.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
            self.close_conn(slot);
        }
    }

    /// Closes every connection (shutdown).
    pub(crate) fn close_all(&mut self) {
        for slot in 0..self.conns.len() {
            self.flush_conn(slot);
            self.close_conn(slot);
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}

/// Queues a UDP reply for this wakeup's send batch (sent by the backend in one go).
fn queue_udp(
    send_buf: &mut Vec<u8>,
    sends: &mut Vec<UdpSend>,
    socket: usize,
    dest: SocketAddr,
    from: Option<IpAddr>,
    bytes: &[u8],
) {
    let start = send_buf.len();
    send_buf.extend_from_slice(bytes);
    sends.push(UdpSend {
        socket,
        dest,
        from,
        start,
        end: send_buf.len(),
    });
}

/// The sequence number a response must wait for, when it acknowledges a change that is not
/// durable yet (`before` = the thread's last enqueued change before the request).
fn must_wait(gate: Option<&Arc<dyn AckGate>>, before: u64) -> Option<u64> {
    let gate = gate?;
    let seq = gate.last_enqueued();
    (seq != before && seq > gate.durable()).then_some(seq)
}

fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Shard (10 bits) | slot (22 bits, as in tokens) | generation (32 bits).
fn conn_id(shard: usize, slot: usize, generation: u32) -> ConnId {
    let shard = (shard as u64 & 0x3ff) << 54;
    let slot = (slot as u64 & 0x3f_ffff) << 32;
    ConnId(shard | slot | u64::from(generation))
}

fn conn_slot(id: ConnId) -> usize {
    ((id.0 >> 32) & 0x3f_ffff) as usize
}

fn conn_generation(id: ConnId) -> u32 {
    (id.0 & 0xffff_ffff) as u32
}

pub(crate) fn conn_token(slot: usize, generation: u32) -> u64 {
    TOKEN_CONN | ((slot as u64 & 0xff_ffff) << 32) | u64::from(generation)
}

fn split_conn_token(token: u64) -> (usize, u32) {
    (
        ((token >> 32) & 0xff_ffff) as usize,
        (token & 0xffff_ffff) as u32,
    )
}
