//! Counters and latency histograms (hdrhistogram, microseconds), per worker and per second,
//! merged by the main thread.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded (60 s, beyond Timer F).
const MAX_US: u64 = 60_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Counters of a period (a second or the whole run).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    /// Transactions started (a REGISTER and its authenticated retry count once).
    pub attempted: u64,
    /// Transactions that ended as the scenario expects (200, or the expected refusal).
    pub completed: u64,
    /// Transactions that ended otherwise, by final status code.
    pub failed: BTreeMap<u16, u64>,
    /// No final answer within Timer F.
    pub timeouts: u64,
    /// UDP retransmissions sent (RFC 3261 Timer E).
    pub retransmissions: u64,
    /// Responses that did not parse or do not carry one of our branches.
    pub unexpected: u64,
    /// Responses to our transactions that were no longer awaited (answers to retransmissions,
    /// answers after Timer F).
    pub late: u64,
    /// 401 challenges received (answered).
    pub challenges: u64,
    /// ICMP port-unreachable reports on the UDP sockets (the target was down for a while).
    pub unreachable: u64,
}

impl Counters {
    pub fn failures(&self) -> u64 {
        self.failed.values().sum::<u64>() + self.timeouts
    }

    pub fn merge(&mut self, o: &Self) {
        self.attempted += o.attempted;
        self.completed += o.completed;
        for (k, v) in &o.failed {
            *self.failed.entry(*k).or_default() += v;
        }
        self.timeouts += o.timeouts;
        self.retransmissions += o.retransmissions;
        self.unexpected += o.unexpected;
        self.late += o.late;
        self.challenges += o.challenges;
        self.unreachable += o.unreachable;
    }
}

/// One worker's report for one second (or its final remainder).
pub struct Snapshot {
    pub second: u64,
    pub counters: Counters,
    pub latency: Histogram<u64>,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_percentiles() {
        let mut a = Counters {
            attempted: 2,
            completed: 1,
            timeouts: 1,
            ..Counters::default()
        };
        a.failed.insert(503, 1);
        let mut b = Counters {
            attempted: 3,
            completed: 3,
            ..Counters::default()
        };
        b.failed.insert(503, 2);
        b.merge(&a);
        assert_eq!((b.attempted, b.completed, b.failures()), (5, 4, 4));
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let p = Percentiles::of(&h);
        assert!((495..=505).contains(&p.p50_us), "{p:?}");
        assert!(p.p999_us >= 998 && p.max_us >= 1000);
    }
}
