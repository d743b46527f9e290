//! Per-shard runtime counters (atomics: the shard writes, anyone reads).

use std::sync::atomic::AtomicU64;

/// Counters of one shard.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Datagrams received.
    pub datagrams: AtomicU64,
    /// Open stream connections.
    pub connections: AtomicU64,
    /// Connections refused by the total or per-IP cap.
    pub rejected_connections: AtomicU64,
    /// Connections closed for idleness or slowness.
    pub idle_closed: AtomicU64,
    /// Connections closed because their peer stopped reading its responses (more than four
    /// maximum-size messages left unsent beyond what the kernel buffers).
    pub stalled_closed: AtomicU64,
    /// UDP sends that failed.
    pub send_errors: AtomicU64,
    /// Datagrams that waited longer than the overload delay (answered 503 when REGISTERs).
    pub overloaded: AtomicU64,
}
