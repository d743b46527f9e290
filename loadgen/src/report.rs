//! The run report: a human table, JSON with stable field names, and an SVG plot (plotters).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use plotters::prelude::*;
use serde::Serialize;

use crate::stats::{Counters, Percentiles};
use crate::worker::{Plan, Transport};
use crate::RunArgs;

/// One second of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Second {
    pub second: u64,
    /// Completed transactions in that second.
    pub rate: u64,
    pub counters: Counters,
    pub latency: Percentiles,
}

/// The whole run (the JSON document).
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub target: String,
    pub transport: Transport,
    pub scenario: String,
    pub users: usize,
    pub workers: usize,
    pub offered_rate: f64,
    pub duration_s: f64,
    pub total: Counters,
    /// RFC 6076 Registration Request Delay (first REGISTER to final answer, challenge included).
    pub latency: Percentiles,
    /// Completed per second of wall time.
    pub completed_per_s: f64,
    /// RFC 6076 Ineffective Registration Attempts, percent of attempts.
    pub ineffective_pct: f64,
    /// The generator's own CPU (user + system) per completed transaction.
    pub generator_cpu_us_per_op: f64,
    /// Generator CPU as a share of its cores (1.0 = one core busy).
    pub generator_cpu_cores: f64,
    pub seconds: Vec<Second>,
}

impl Outcome {
    pub fn new(
        args: &RunArgs,
        plan: &Plan,
        total: Counters,
        hist: &hdrhistogram::Histogram<u64>,
        seconds: Vec<Second>,
        wall: Duration,
        cpu: Duration,
    ) -> Self {
        let secs = wall.as_secs_f64().max(1e-9);
        let ineffective = if total.attempted == 0 {
            0.0
        } else {
            100.0 * total.failures() as f64 / total.attempted as f64
        };
        Self {
            target: plan.target.to_string(),
            transport: plan.transport,
            scenario: args.scenario.clone(),
            users: plan.users.len(),
            workers: plan.workers,
            offered_rate: plan.rate,
            duration_s: secs,
            latency: Percentiles::of(hist),
            completed_per_s: total.completed as f64 / secs,
            ineffective_pct: ineffective,
            generator_cpu_us_per_op: if total.completed == 0 {
                0.0
            } else {
                cpu.as_secs_f64() * 1e6 / total.completed as f64
            },
            generator_cpu_cores: cpu.as_secs_f64() / secs,
            total,
            seconds,
        }
    }

    /// Completed per second over the seconds that were fully under load.
    pub fn achieved_rate(&self) -> f64 {
        self.completed_per_s
    }
}

/// The human-readable summary.
pub fn table(o: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "target        {} ({:?}), scenario {}, {} users, {} workers",
        o.target, o.transport, o.scenario, o.users, o.workers
    );
    let _ = writeln!(
        s,
        "offered       {}",
        if o.offered_rate > 0.0 {
            format!("{:.0}/s (open loop)", o.offered_rate)
        } else {
            "closed loop".to_owned()
        }
    );
    let _ = writeln!(s, "attempted     {}", o.total.attempted);
    let _ = writeln!(
        s,
        "completed     {}  ({:.0}/s over {:.1} s)",
        o.total.completed, o.completed_per_s, o.duration_s
    );
    let failed: Vec<String> = o
        .total
        .failed
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    let _ = writeln!(
        s,
        "failed        {}  {}",
        o.total.failed.values().sum::<u64>(),
        failed.join(", ")
    );
    let _ = writeln!(s, "timeouts      {}", o.total.timeouts);
    let _ = writeln!(s, "retransmits   {}", o.total.retransmissions);
    let _ = writeln!(s, "unexpected    {}", o.total.unexpected);
    let _ = writeln!(s, "late          {}", o.total.late);
    let _ = writeln!(s, "challenges    {}", o.total.challenges);
    if o.total.unreachable > 0 {
        let _ = writeln!(
            s,
            "unreachable   {} ICMP port-unreachable reports",
            o.total.unreachable
        );
    }
    let _ = writeln!(s, "ineffective   {:.3} %", o.ineffective_pct);
    let l = &o.latency;
    let _ = writeln!(
        s,
        "latency (us)  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
    );
    let _ = writeln!(
        s,
        "generator     {:.2} us CPU per completed request, {:.2} cores busy",
        o.generator_cpu_us_per_op, o.generator_cpu_cores
    );
    if o.generator_cpu_cores > 0.9 * o.workers as f64 {
        let _ = writeln!(
            s,
            "WARNING       the generator used > 90% of its cores: it may be the bottleneck"
        );
    }
    s
}

/// Column names of [`seconds_csv`], a stable order.
pub const CSV_HEADER: &str = "second,completed,attempted,failed,timeouts,retransmissions,\
unexpected,challenges,p50_us,p90_us,p99_us,p999_us,max_us";

/// One row per second (for spreadsheets and gnuplot), with [`CSV_HEADER`] first.
pub fn seconds_csv(o: &Outcome) -> String {
    let mut s = String::with_capacity(64 * (o.seconds.len() + 1));
    s.push_str(CSV_HEADER);
    s.push('\n');
    for x in &o.seconds {
        let c = &x.counters;
        let l = &x.latency;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            x.second,
            c.completed,
            c.attempted,
            c.failed.values().sum::<u64>(),
            c.timeouts,
            c.retransmissions,
            c.unexpected,
            c.challenges,
            l.p50_us,
            l.p90_us,
            l.p99_us,
            l.p999_us,
            l.max_us
        );
    }
    s
}

/// Rate and latency percentiles per second, as SVG.
pub fn plot(o: &Outcome, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(300);
    let secs = o.seconds.len().max(1) as u64;
    let max_rate = o.seconds.iter().map(|s| s.rate).max().unwrap_or(1).max(1);
    let mut c = ChartBuilder::on(&top)
        .caption(
            format!(
                "{} {:?} {} — completed/s",
                o.target, o.transport, o.scenario
            ),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0u64..secs + 1, 0u64..max_rate + max_rate / 10 + 1)?;
    c.configure_mesh()
        .x_desc("second")
        .y_desc("per second")
        .draw()?;
    c.draw_series(LineSeries::new(
        o.seconds.iter().map(|s| (s.second, s.rate)),
        &BLUE,
    ))?;
    let max_lat = o
        .seconds
        .iter()
        .map(|s| s.latency.p999_us)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut l = ChartBuilder::on(&bottom)
        .caption("latency (us): p50, p99, p99.9", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0u64..secs + 1, 0u64..max_lat + max_lat / 10 + 1)?;
    l.configure_mesh()
        .x_desc("second")
        .y_desc("microseconds")
        .draw()?;
    for (color, pick) in [(GREEN, 0usize), (RED, 1), (BLACK, 2)] {
        l.draw_series(LineSeries::new(
            o.seconds.iter().map(|s| {
                (
                    s.second,
                    [s.latency.p50_us, s.latency.p99_us, s.latency.p999_us][pick],
                )
            }),
            &color,
        ))?;
    }
    root.present()?;
    Ok(())
}
