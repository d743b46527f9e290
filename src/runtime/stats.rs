//! Per-shard runtime counters (atomics: the shard writes, anyone reads), the shard's engine
//! counters (copied after every wakeup), and a fixed-bucket latency histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::engine;

/// Upper bounds (seconds) of the latency histogram's buckets; one more bucket is +Inf.
pub const LATENCY_BUCKETS: [f64; 14] = [
    25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3,
    1.0,
];

/// A histogram with the fixed [`LATENCY_BUCKETS`]; one writer (the shard), any readers.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per-bucket counts (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe_ns(&self, ns: u64) {
        let secs = ns as f64 * 1e-9;
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = self.buckets.get(slot) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// (sum in seconds, count, cumulative (upper bound, count) per finite bucket).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut cumulative = 0;
        let mut out = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            out.push((
                LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                cumulative,
            ));
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        (sum, cumulative, out)
    }
}

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
    /// Open TLS connections (included in `connections`).
    pub tls_connections: AtomicU64,
    /// UDP request latency: kernel receive timestamp -> reply queued for sending (includes the
    /// time spent waiting in the socket buffer).
    pub latency: Histogram,
    /// Kernel thread id of the shard thread (its CPU time is in `/proc/self/task/<tid>/stat`).
    pub tid: AtomicU64,
    /// Inodes of the shard's UDP sockets (their receive queues are in /proc/net/udp*).
    pub udp_inodes: Vec<u64>,
    /// The engine's counters as of the shard's last wakeup.
    engine: Mutex<engine::Stats>,
}

impl ShardStats {
    /// Counters for a shard whose UDP sockets have these inodes.
    pub(crate) fn new(udp_inodes: Vec<u64>) -> Self {
        Self {
            udp_inodes,
            ..Self::default()
        }
    }

    /// The engine's counters as of the shard's last wakeup.
    pub fn engine(&self) -> engine::Stats {
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Publishes the engine's counters; skipped when a reader holds them right now (the next
    /// wakeup publishes again), so the shard never waits.
    pub(crate) fn publish_engine(&self, stats: &engine::Stats) {
        if let Ok(mut e) = self.engine.try_lock() {
            e.clone_from(stats);
        }
    }
}
