//! `/metrics` (Prometheus text format through `prometheus-client`) and `/v1/stats`.
//!
//! The counters live where they are counted (the shards' atomics, each engine's snapshot, the
//! store's gauges); a [`Collector`] reads them at scrape time, so the fast path pays nothing for
//! metrics beyond its own counters. Labels are bounded: status code (a fixed set), shard
//! (one per core), transport, reason.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde_json::json;

use super::Context;
use crate::engine::{Stats, REGISTER_STATUSES};
use crate::runtime::stats::ShardStats;

/// USER_HZ: the unit of the CPU times in `/proc/<pid>/task/<tid>/stat` (100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

#[derive(Debug)]
struct SipregCollector(Arc<Context>);

/// The engines' counters summed over shards.
fn totals(shards: &[Arc<ShardStats>]) -> Stats {
    let mut t = Stats::default();
    for s in shards {
        t.add(&s.engine());
    }
    t
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One metric with a value per label value.
fn family(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &str,
    values: impl IntoIterator<Item = (String, u64)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (value, n) in values {
        let labels = [(label, value.as_str())];
        let f = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(n).encode(f)?,
            _ => ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(f)?,
        }
    }
    Ok(())
}

impl Collector for SipregCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let ctx = &self.0;
        let shards = ctx.shards();
        let t = totals(shards);
        let store = ctx.shared.store();
        let sum = |f: fn(&ShardStats) -> u64| shards.iter().map(|s| f(s)).sum::<u64>();

        let codes = REGISTER_STATUSES
            .iter()
            .map(ToString::to_string)
            .chain(std::iter::once("other".to_owned()))
            .zip(t.register_responses.iter().copied());
        family(
            &mut e,
            "sipreg_register_responses",
            "Responses to REGISTER by status code",
            MetricType::Counter,
            "code",
            codes,
        )?;
        counter(
            &mut e,
            "sipreg_requests",
            "SIP requests processed",
            t.requests,
        )?;
        counter(
            &mut e,
            "sipreg_registrations",
            "REGISTERs answered 200",
            t.registered,
        )?;
        counter(
            &mut e,
            "sipreg_auth_challenges",
            "401 challenges sent",
            t.challenges,
        )?;
        counter(
            &mut e,
            "sipreg_auth_failures",
            "Wrong digest responses and unknown users",
            t.auth_failures,
        )?;
        counter(
            &mut e,
            "sipreg_auth_lockouts",
            "Requests refused because the user or source is locked out",
            t.lockouts,
        )?;
        counter(
            &mut e,
            "sipreg_keepalives",
            "CRLFCRLF keepalives answered",
            t.keepalives,
        )?;
        family(
            &mut e,
            "sipreg_dropped",
            "Messages dropped without a response, by reason",
            MetricType::Counter,
            "reason",
            [
                ("unparseable".to_owned(), t.dropped),
                ("flood".to_owned(), t.flood_drops),
                ("scanner".to_owned(), t.scanner_drops),
            ],
        )?;
        // The process's own store; with Redis the bindings are counted there (`DBSIZE`), not
        // here, so these series are left out rather than reported as zero.
        if ctx.location.get().is_none() {
            gauge(
                &mut e,
                "sipreg_aors",
                "AORs with at least one binding",
                count(store.aor_count()),
            )?;
            gauge(
                &mut e,
                "sipreg_bindings",
                "Stored bindings",
                count(store.binding_count()),
            )?;
            counter(
                &mut e,
                "sipreg_expired_bindings",
                "Bindings removed by expiry",
                store.expired_count(),
            )?;
        }
        if let Some(p) = ctx.persister.get() {
            counter(
                &mut e,
                "sipreg_persist_enqueued_changes",
                "Binding changes handed to the journal (sequence number of the last one)",
                p.enqueued(),
            )?;
            counter(
                &mut e,
                "sipreg_persist_durable_changes",
                "Binding changes fsynced: every change up to this sequence number is durable",
                p.durable(),
            )?;
        }
        if let Some(location) = ctx.location.get() {
            let st = location.stats();
            let (ops, conflicts, unavailable) = (
                st.ops.load(Ordering::Relaxed),
                st.conflicts.load(Ordering::Relaxed),
                st.unavailable.load(Ordering::Relaxed),
            );
            family(
                &mut e,
                "sipreg_location_ops",
                "Compare-and-set ops on Redis by result (conflict: re-planned against the current value)",
                MetricType::Counter,
                "result",
                [
                    (
                        "committed".to_owned(),
                        ops.saturating_sub(conflicts + unavailable),
                    ),
                    ("conflict".to_owned(), conflicts),
                    ("unavailable".to_owned(), unavailable),
                ],
            )?;
        }
        family(
            &mut e,
            "sipreg_connections",
            "Open stream connections by transport",
            MetricType::Gauge,
            "transport",
            [
                (
                    "tcp".to_owned(),
                    sum(|s| {
                        s.connections
                            .load(Ordering::Relaxed)
                            .saturating_sub(s.tls_connections.load(Ordering::Relaxed))
                    }),
                ),
                (
                    "tls".to_owned(),
                    sum(|s| s.tls_connections.load(Ordering::Relaxed)),
                ),
            ],
        )?;
        counter(
            &mut e,
            "sipreg_connections_rejected",
            "Connections refused by the total or per-IP cap",
            sum(|s| s.rejected_connections.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut e,
            "sipreg_connections_idle_closed",
            "Connections closed for idleness or slowness",
            sum(|s| s.idle_closed.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut e,
            "sipreg_connections_stalled_closed",
            "Connections closed because the peer stopped reading",
            sum(|s| s.stalled_closed.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut e,
            "sipreg_udp_send_errors",
            "UDP sends that failed",
            sum(|s| s.send_errors.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut e,
            "sipreg_overloaded",
            "Datagrams that waited longer than the overload delay",
            sum(|s| s.overloaded.load(Ordering::Relaxed)),
        )?;

        let per_shard = |f: &dyn Fn(&ShardStats) -> u64| {
            shards
                .iter()
                .enumerate()
                .map(|(i, s)| (i.to_string(), f(s)))
                .collect::<Vec<_>>()
        };
        family(
            &mut e,
            "sipreg_shard_datagrams",
            "Datagrams received per shard",
            MetricType::Counter,
            "shard",
            per_shard(&|s| s.datagrams.load(Ordering::Relaxed)),
        )?;
        let queues = udp_queues();
        family(
            &mut e,
            "sipreg_shard_rx_queue_bytes",
            "Bytes waiting in the shard's UDP receive buffers",
            MetricType::Gauge,
            "shard",
            per_shard(&|s| s.udp_inodes.iter().filter_map(|i| queues.get(i)).sum()),
        )?;
        {
            let mut m = e.encode_descriptor(
                "sipreg_shard_busy_seconds",
                "CPU time of the shard thread",
                None,
                MetricType::Counter,
            )?;
            for (i, s) in shards.iter().enumerate() {
                let shard = i.to_string();
                let labels = [("shard", shard.as_str())];
                ConstCounter::new(thread_cpu_seconds(s.tid.load(Ordering::Relaxed)))
                    .encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let (sum_s, count, mut buckets) =
                shards
                    .iter()
                    .fold((0.0, 0, Vec::new()), |(s, c, mut b), sh| {
                        let (s2, c2, b2) = sh.latency.snapshot();
                        if b.is_empty() {
                            b = b2;
                        } else {
                            for (x, y) in b.iter_mut().zip(b2) {
                                x.1 += y.1;
                            }
                        }
                        (s + s2, c + c2, b)
                    });
            // The +Inf bucket is implied by the count.
            buckets.retain(|(le, _)| le.is_finite());
            let mut m = e.encode_descriptor(
                "sipreg_request_duration_seconds",
                "UDP requests: kernel receive timestamp to reply queued",
                None,
                MetricType::Histogram,
            )?;
            m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                sum_s, count, &buckets, None,
            )?;
        }
        if let Some(info) = ctx.server.get() {
            let backend = format!("{:?}", info.backend).to_ascii_lowercase();
            let mut m = e.encode_descriptor(
                "sipreg_backend",
                "The I/O backend in use",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(1).encode(m.encode_family(&[("backend", backend.as_str())])?)?;
        }
        gauge(
            &mut e,
            "sipreg_shards",
            "Shard threads",
            count(shards.len()),
        )?;
        Ok(())
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `/metrics`.
pub(super) fn render(ctx: &Arc<Context>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SipregCollector(Arc::clone(ctx))));
    let mut out = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).is_err() {
        out.clear();
        let _ = writeln!(out, "# encoding failed");
    }
    out
}

/// `/v1/stats`.
pub(super) fn stats_json(ctx: &Context) -> serde_json::Value {
    let shards = ctx.shards();
    let t = totals(shards);
    let store = ctx.shared.store();
    let codes: serde_json::Map<String, serde_json::Value> = REGISTER_STATUSES
        .iter()
        .map(ToString::to_string)
        .chain(std::iter::once("other".to_owned()))
        .zip(t.register_responses.iter().map(|n| json!(n)))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "ready": ctx.server.get().is_some(),
        "backend": ctx.server.get().map(|s| format!("{:?}", s.backend).to_ascii_lowercase()),
        "location": if ctx.location.get().is_some() { "redis" } else { "memory" },
        // With Redis the bindings are counted there, not in this process.
        "aors": ctx.location.get().is_none().then(|| store.aor_count()),
        "bindings": ctx.location.get().is_none().then(|| store.binding_count()),
        "expired": ctx.location.get().is_none().then(|| store.expired_count()),
        "requests": t.requests,
        "registered": t.registered,
        "challenges": t.challenges,
        "auth_failures": t.auth_failures,
        "lockouts": t.lockouts,
        "rejected": t.rejected,
        "dropped": t.dropped,
        "flood_drops": t.flood_drops,
        "scanner_drops": t.scanner_drops,
        "keepalives": t.keepalives,
        "register_responses": codes,
        "shards": shards.iter().map(|s| json!({
            "datagrams": s.datagrams.load(Ordering::Relaxed),
            "connections": s.connections.load(Ordering::Relaxed),
            "tls_connections": s.tls_connections.load(Ordering::Relaxed),
            "overloaded": s.overloaded.load(Ordering::Relaxed),
            "busy_seconds": thread_cpu_seconds(s.tid.load(Ordering::Relaxed)),
        })).collect::<Vec<_>>(),
    })
}

/// rx_queue (bytes) per socket inode, from /proc/net/udp and udp6.
fn udp_queues() -> std::collections::HashMap<u64, u64> {
    let mut out = std::collections::HashMap::new();
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(queues), Some(inode)) = (fields.get(4), fields.get(9)) else {
                continue;
            };
            let rx = queues
                .split_once(':')
                .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok());
            if let (Some(rx), Ok(inode)) = (rx, inode.parse()) {
                out.insert(inode, rx);
            }
        }
    }
    out
}

/// utime + stime of a thread of this process, in seconds (0 when unknown).
fn thread_cpu_seconds(tid: u64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return 0.0;
    };
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / USER_HZ
}
