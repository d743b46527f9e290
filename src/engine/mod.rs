//! The registrar state machine (RFC 3261 §10.3) — PLACEHOLDER SIGNATURES.
//!
//! This file fixes the interface the runtime drives; the logic lands with the registrar core.
//! Input verbs are `handle_*`, outputs are `poll_*`. The engine never touches sockets, threads
//! or the clock: time, addresses and bytes are arguments.

use std::net::SocketAddr;

use crate::time::Instant;

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
#[derive(Debug, Default)]
pub struct Engine {
    out: Vec<u8>,
    dest: Option<(SocketAddr, Option<ConnId>)>,
}

impl Engine {
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
