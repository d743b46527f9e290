//! Aggregation of the side-by-side registrar benchmark (`benches/e2e/run.sh`, issue 6).
//!
//! Contract: `run.sh` leaves one directory per run with, for each target `NAME`,
//! - `NAME.search.json`: the `sipreg-loadgen search --json` report (`registration_rate`,
//!   `confirmed`, the steps, and the `confirmation` run whose `offered_rate` is the zero-failure
//!   Registration Rate, RFC 7501 §5.1 style: no failures, no retransmissions); an unconfirmed
//!   search counts as no rate;
//! - `NAME.json`: a `sipreg-loadgen run --json` at 80 % of that rate (latency percentiles);
//! - `NAME.cpu`: a line `cpu_s=<seconds>`, the target process's utime + stime over the 80 %
//!   run;
//!
//! and optionally `memory.tsv` (`NAME<TAB>bindings<TAB>bytes`: growth of the target's resident
//! or shared memory while registering `bindings` distinct AORs). A target whose search failed
//! has no `NAME.search.json`; it is reported without a rate.
//!
//! This crate reads those files ([`load_dir`]), computes the per-registration CPU and the ratios
//! (sipreg / Kamailio, sipreg / echo ceiling), and renders a markdown table ([`markdown`]), a
//! JSON document ([`Report`]) and an SVG plot of rate vs latency per target ([`svg`]).
//! It performs no measurement itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Generator CPU (fraction of one core) at or above which the generator may be the bottleneck.
pub const GENERATOR_BOTTLENECK_CORES: f64 = 0.9;

/// The part of a `sipreg-loadgen --json` report this crate uses (other fields are ignored).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Outcome {
    /// Offered rate, requests per second (0 = closed loop).
    pub offered_rate: f64,
    /// Seconds of load.
    pub duration_s: f64,
    /// Totals.
    pub total: Counters,
    /// Latency percentiles over the run.
    pub latency: Percentiles,
    /// Completed transactions per second.
    pub completed_per_s: f64,
    /// Generator CPU per completed transaction, µs.
    pub generator_cpu_us_per_op: f64,
    /// Generator CPU in cores (1.0 = one core busy).
    pub generator_cpu_cores: f64,
}

/// Transaction counters of a run.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Counters {
    /// Transactions that ended as expected.
    pub completed: u64,
    /// Other final statuses, by code.
    #[serde(default)]
    pub failed: BTreeMap<String, u64>,
    /// Transactions without a final answer.
    pub timeouts: u64,
    /// UDP retransmissions.
    pub retransmissions: u64,
}

impl Counters {
    /// Failed plus timed-out transactions.
    pub fn failures(&self) -> u64 {
        self.failed.values().sum::<u64>() + self.timeouts
    }
}

/// Latency percentiles, µs.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
}

/// One target's aggregated figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    /// Target name, e.g. `sipreg-uring-udp-md5`, `kamailio-udp-md5`, `echo-udp`.
    pub name: String,
    /// Zero-failure Registration Rate, per second (`None` when the search found none).
    pub registration_rate: Option<f64>,
    /// Offered rate of the 80 % run, per second.
    pub load_offered_rate: f64,
    /// Completed per second in the 80 % run.
    pub load_completed_per_s: f64,
    /// Latency at 80 % of the Registration Rate.
    pub latency: Percentiles,
    /// Failures + timeouts in the 80 % run.
    pub load_failures: u64,
    /// Target CPU per completed registration in the 80 % run, µs.
    pub target_cpu_us_per_op: Option<f64>,
    /// Generator CPU in cores during the 80 % run.
    pub generator_cpu_cores: f64,
    /// The generator used ≥ 90 % of a core: the rate may be the generator's limit.
    pub generator_bound: bool,
    /// Latency at the Registration Rate itself (the search's confirmation run).
    pub latency_at_rate: Option<Percentiles>,
}

/// Memory per binding of one target.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Memory {
    /// Target name.
    pub name: String,
    /// Distinct AORs registered.
    pub bindings: u64,
    /// Memory growth in bytes.
    pub bytes: u64,
}

impl Memory {
    /// Growth divided by the number of bindings.
    pub fn bytes_per_binding(&self) -> f64 {
        if self.bindings == 0 {
            0.0
        } else {
            self.bytes as f64 / self.bindings as f64
        }
    }
}

/// The whole run, as written to `results/<date>-<host>.json`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// Free text: cores, CPU model, kernel, pinning.
    pub machine: String,
    /// One row per target, in name order.
    pub rows: Vec<Row>,
    /// Memory per binding, when measured.
    pub memory: Vec<Memory>,
}

/// Parses a loadgen JSON report.
pub fn parse_outcome(text: &str) -> Result<Outcome> {
    serde_json::from_str(text).context("not a sipreg-loadgen JSON report")
}

/// The part of a `sipreg-loadgen search --json` report this crate uses.
#[derive(Deserialize)]
struct SearchReport {
    confirmed: bool,
    confirmation: Option<Outcome>,
}

/// Parses a search report: the confirmation run when the rate was confirmed, else `None`.
/// (A bare run report, as older generators wrote, is taken as the confirmation run.)
pub fn parse_search(text: &str) -> Result<Option<Outcome>> {
    match serde_json::from_str::<SearchReport>(text) {
        Ok(s) => Ok(s.confirmation.filter(|_| s.confirmed)),
        Err(_) => parse_outcome(text).map(Some),
    }
}

/// Parses a `NAME.cpu` file: a line `cpu_s=<seconds>`.
pub fn parse_cpu(text: &str) -> Result<f64> {
    for line in text.lines() {
        if let Some(v) = line.trim().strip_prefix("cpu_s=") {
            let s: f64 = v.trim().parse().with_context(|| format!("cpu_s={v:?}"))?;
            if !s.is_finite() || s < 0.0 {
                bail!("cpu_s={v}: not a CPU time");
            }
            return Ok(s);
        }
    }
    bail!("no cpu_s= line")
}

/// Parses `memory.tsv`: `NAME<TAB>bindings<TAB>bytes` per line; `#` starts a comment.
pub fn parse_memory(text: &str) -> Result<Vec<Memory>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let [name, bindings, bytes] = f.as_slice() else {
            bail!("memory.tsv line {}: expected 3 tab-separated fields", i + 1);
        };
        out.push(Memory {
            name: (*name).to_owned(),
            bindings: bindings
                .parse()
                .with_context(|| format!("memory.tsv line {}: bindings", i + 1))?,
            bytes: bytes
                .parse()
                .with_context(|| format!("memory.tsv line {}: bytes", i + 1))?,
        });
    }
    Ok(out)
}

/// Combines one target's files into a row.
pub fn row(name: &str, search: Option<&Outcome>, load: &Outcome, target_cpu_s: Option<f64>) -> Row {
    let cpu = target_cpu_s
        .and_then(|s| (load.total.completed > 0).then(|| s * 1e6 / load.total.completed as f64));
    Row {
        name: name.to_owned(),
        registration_rate: search.map(|s| s.offered_rate),
        load_offered_rate: load.offered_rate,
        load_completed_per_s: load.completed_per_s,
        latency: load.latency,
        load_failures: load.total.failures(),
        target_cpu_us_per_op: cpu,
        generator_cpu_cores: load.generator_cpu_cores,
        generator_bound: load.generator_cpu_cores >= GENERATOR_BOTTLENECK_CORES,
        latency_at_rate: search.map(|s| s.latency),
    }
}

/// Reads a run directory (see the module docs).
pub fn load_dir(dir: &Path, machine: &str) -> Result<Report> {
    let mut rows = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|f| {
            f.strip_suffix(".json")
                .filter(|n| !n.ends_with(".search"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    for name in names {
        let read = |suffix: &str| std::fs::read_to_string(dir.join(format!("{name}{suffix}")));
        let load = parse_outcome(&read(".json")?).with_context(|| format!("{name}.json"))?;
        let search = match read(".search.json") {
            Ok(t) => parse_search(&t).with_context(|| format!("{name}.search.json"))?,
            Err(_) => None,
        };
        let cpu = match read(".cpu") {
            Ok(t) => Some(parse_cpu(&t).with_context(|| format!("{name}.cpu"))?),
            Err(_) => None,
        };
        rows.push(row(&name, search.as_ref(), &load, cpu));
    }
    let memory = match std::fs::read_to_string(dir.join("memory.tsv")) {
        Ok(t) => parse_memory(&t)?,
        Err(_) => Vec::new(),
    };
    Ok(Report {
        machine: machine.to_owned(),
        rows,
        memory,
    })
}

/// The comparison key of a target: its name without the first component
/// (`sipreg-uring-udp-md5` → `udp-md5` after the backend, `kamailio-udp-md5` → `udp-md5`).
fn scenario_key(name: &str) -> &str {
    let rest = name.split_once('-').map_or(name, |(_, r)| r);
    match rest.split_once('-') {
        Some(("uring" | "fallback", r)) => r,
        _ => rest,
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// sipreg's Registration Rate divided by Kamailio's for the same scenario.
pub fn ratio_vs_kamailio(report: &Report, row: &Row) -> Option<f64> {
    if !row.name.starts_with("sipreg-") {
        return None;
    }
    let key = scenario_key(&row.name);
    let k = report
        .rows
        .iter()
        .find(|r| r.name.starts_with("kamailio-") && scenario_key(&r.name) == key)?;
    ratio(row.registration_rate, k.registration_rate)
}

/// A target's Registration Rate divided by the echo ceiling of its transport (`echo-udp`).
pub fn ratio_vs_echo(report: &Report, row: &Row) -> Option<f64> {
    if row.name.starts_with("echo-") {
        return None;
    }
    let transport = scenario_key(&row.name).split('-').next()?;
    let e = report
        .rows
        .iter()
        .find(|r| r.name == format!("echo-{transport}"))?;
    ratio(row.registration_rate, e.registration_rate)
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_owned(), f)
}

/// Thousands separators for a rate.
fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The markdown table of a report (rows, then memory per binding, then notes).
pub fn markdown(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n", report.machine);
    s.push_str(
        "| target | Registration Rate /s | p50 µs | p99 µs | p99.9 µs | target CPU µs/reg | generator CPU | × Kamailio | × echo |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &report.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.0} %{} | {} | {} |",
            r.name,
            opt(r.registration_rate, thousands),
            r.latency.p50_us,
            r.latency.p99_us,
            r.latency.p999_us,
            opt(r.target_cpu_us_per_op, |v| format!("{v:.1}")),
            r.generator_cpu_cores * 100.0,
            if r.generator_bound { " ⚠" } else { "" },
            opt(ratio_vs_kamailio(report, r), |v| format!("{v:.2}×")),
            opt(ratio_vs_echo(report, r), |v| format!("{:.0} %", v * 100.0)),
        );
    }
    if !report.memory.is_empty() {
        s.push_str("\n| target | bindings | bytes per binding |\n|---|---:|---:|\n");
        for m in &report.memory {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} |",
                m.name,
                thousands(m.bindings as f64),
                m.bytes_per_binding()
            );
        }
    }
    s.push_str(
        "\nLatency is measured at 80 % of each target's zero-failure Registration Rate. \
         Target CPU comes from /proc/<pid>/stat over that run.\n",
    );
    let bound: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| r.generator_bound)
        .map(|r| r.name.as_str())
        .collect();
    if !bound.is_empty() {
        let _ = writeln!(
            s,
            "\n⚠ The generator used ≥ {:.0} % of a core for: {}; those rates may be the \
             generator's limit, not the target's.",
            GENERATOR_BOTTLENECK_CORES * 100.0,
            bound.join(", ")
        );
    }
    let short: Vec<String> = report
        .rows
        .iter()
        .filter(|r| !r.sustained())
        .map(|r| {
            format!(
                "{} ({} of {} offered)",
                r.name,
                thousands(r.load_completed_per_s),
                thousands(r.load_offered_rate)
            )
        })
        .collect();
    if !short.is_empty() {
        let _ = writeln!(
            s,
            "\n⚠ The 80 % run completed less than 95 % of the offered rate for: {}; the \
             search overestimated the sustainable rate (latency there is queueing).",
            short.join(", ")
        );
    }
    s
}

impl Row {
    /// The 80 % run completed at least 95 % of what it offered.
    pub fn sustained(&self) -> bool {
        self.load_completed_per_s >= 0.95 * self.load_offered_rate
    }
}

/// Writes an SVG plot: per target, p50 and p99 latency at 80 % and 100 % of its rate.
pub fn svg(report: &Report, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let points: Vec<(&Row, Vec<(f64, f64)>)> = report
        .rows
        .iter()
        .filter_map(|r| {
            let rate = r.registration_rate?;
            let mut v = vec![(0.8 * rate, r.latency.p99_us.max(1) as f64)];
            if let Some(l) = r.latency_at_rate {
                v.push((rate, l.p99_us.max(1) as f64));
            }
            Some((r, v))
        })
        .collect();
    let max_x = points
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.0))
        .fold(1.0, f64::max)
        * 1.1;
    let max_y = points
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1))
        .fold(10.0, f64::max)
        * 2.0;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("p99 latency vs registration rate", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, (1.0..max_y).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("registrations per second")
        .y_desc("p99 latency (µs)")
        .draw()?;
    for (i, (r, v)) in points.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(v.iter().copied(), color.stroke_width(2)))?
            .label(r.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        chart.draw_series(v.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report in the shape `sipreg-loadgen` writes (field list from loadgen's `Outcome`,
    /// `Counters` and `Percentiles`), with fields this crate ignores.
    fn loadgen_json(offered: f64, completed: u64, p99: u64, gen_cores: f64) -> String {
        format!(
            r#"{{
  "target": "127.0.0.1:5060", "transport": "udp", "scenario": "register",
  "users": 10000, "workers": 1, "offered_rate": {offered}, "duration_s": 10.0,
  "total": {{ "attempted": {completed}, "completed": {completed},
             "failed": {{ "503": 2, "408": 1 }}, "timeouts": 4, "retransmissions": 0,
             "unexpected": 0, "challenges": 0 }},
  "latency": {{ "p50_us": 120, "p90_us": 300, "p99_us": {p99}, "p999_us": 2000,
               "max_us": 9000, "mean_us": 150.5 }},
  "completed_per_s": {cps}, "ineffective_pct": 0.0,
  "generator_cpu_us_per_op": 4.5, "generator_cpu_cores": {gen_cores},
  "seconds": []
}}"#,
            cps = completed as f64 / 10.0
        )
    }

    #[test]
    fn parses_a_loadgen_report() {
        let o = parse_outcome(&loadgen_json(8000.0, 80_000, 900, 0.5)).unwrap();
        assert_eq!(o.offered_rate, 8000.0);
        assert_eq!(o.total.completed, 80_000);
        assert_eq!(o.total.failures(), 2 + 1 + 4);
        assert_eq!(o.latency.p99_us, 900);
        assert_eq!(o.completed_per_s, 8000.0);
    }

    #[test]
    fn parses_a_search_report() {
        let run = loadgen_json(10_000.0, 100_000, 3000, 1.0);
        let report = |confirmed: bool| {
            format!(
                r#"{{"mode": "binary", "scenario": "register", "registration_rate": 10000.0,
                   "confirmed": {confirmed}, "steps": [{{"rate": 1000.0, "ok": true}}],
                   "confirmation": {run}}}"#
            )
        };
        let o = parse_search(&report(true)).unwrap().unwrap();
        assert_eq!((o.offered_rate, o.latency.p99_us), (10_000.0, 3000));
        assert_eq!(
            parse_search(&report(false)).unwrap(),
            None,
            "unconfirmed: no rate"
        );
        assert_eq!(parse_search(&run).unwrap().unwrap().offered_rate, 10_000.0);
        assert!(parse_search("{}").is_err());
    }

    #[test]
    fn rejects_what_is_not_a_report() {
        for bad in ["", "{}", "[1,2]", r#"{"offered_rate": "fast"}"#] {
            assert!(parse_outcome(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cpu_file() {
        let table: &[(&str, Option<f64>)] = &[
            ("cpu_s=1.25\n", Some(1.25)),
            ("# target 1234\ncpu_s= 0\n", Some(0.0)),
            ("cpu_s=-1\n", None),
            ("cpu_s=abc\n", None),
            ("1.25\n", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_cpu(text).ok(), *want, "{text:?}");
        }
    }

    #[test]
    fn memory_file() {
        let m = parse_memory(
            "# name bindings bytes\nsipreg\t1000000\t250000000\n\nkamailio\t4\t3480\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].bytes_per_binding(), 250.0);
        assert_eq!(m[1].bytes_per_binding(), 870.0);
        assert!(parse_memory("sipreg 1000 2000\n").is_err());
        assert!(parse_memory("sipreg\tmany\t2000\n").is_err());
    }

    #[test]
    fn row_computes_cpu_per_registration_and_the_bottleneck_flag() {
        let load = parse_outcome(&loadgen_json(8000.0, 80_000, 900, 0.95)).unwrap();
        let search = parse_outcome(&loadgen_json(10_000.0, 100_000, 3000, 1.0)).unwrap();
        // 0.8 s of target CPU over 80,000 registrations = 10 µs each.
        let r = row("kamailio-udp-noauth", Some(&search), &load, Some(0.8));
        assert_eq!(r.registration_rate, Some(10_000.0));
        assert!((r.target_cpu_us_per_op.unwrap() - 10.0).abs() < 1e-9);
        assert!(r.generator_bound);
        assert_eq!(r.latency_at_rate.map(|l| l.p99_us), Some(3000));
        let r = row("x", None, &load, None);
        assert_eq!((r.registration_rate, r.target_cpu_us_per_op), (None, None));
    }

    fn report() -> Report {
        let mk = |name: &str, rate: Option<f64>, gen: f64| Row {
            name: name.into(),
            registration_rate: rate,
            load_offered_rate: rate.unwrap_or(0.0) * 0.8,
            load_completed_per_s: rate.unwrap_or(0.0) * 0.8,
            latency: Percentiles {
                p50_us: 100,
                p99_us: 400,
                p999_us: 1500,
            },
            load_failures: 0,
            target_cpu_us_per_op: Some(4.25),
            generator_cpu_cores: gen,
            generator_bound: gen >= GENERATOR_BOTTLENECK_CORES,
            latency_at_rate: None,
        };
        Report {
            machine: "Machine: test".into(),
            rows: vec![
                mk("echo-udp", Some(250_000.0), 0.5),
                mk("kamailio-udp-md5", Some(20_000.0), 0.3),
                mk("sipreg-uring-udp-md5", Some(80_000.0), 0.95),
                mk("sipreg-fallback-tcp-noauth", None, 0.2),
            ],
            memory: vec![Memory {
                name: "sipreg".into(),
                bindings: 1_000_000,
                bytes: 287_000_000,
            }],
        }
    }

    #[test]
    fn scenario_keys() {
        for (name, key) in [
            ("sipreg-uring-udp-md5", "udp-md5"),
            ("sipreg-fallback-tcp-noauth", "tcp-noauth"),
            ("kamailio-udp-md5", "udp-md5"),
            ("echo-udp", "udp"),
        ] {
            assert_eq!(scenario_key(name), key);
        }
    }

    #[test]
    fn ratios() {
        let rep = report();
        // 80,000 / 20,000 and 80,000 / 250,000.
        assert_eq!(ratio_vs_kamailio(&rep, &rep.rows[2]), Some(4.0));
        assert_eq!(ratio_vs_echo(&rep, &rep.rows[2]), Some(0.32));
        assert_eq!(ratio_vs_kamailio(&rep, &rep.rows[1]), None);
        assert_eq!(ratio_vs_echo(&rep, &rep.rows[0]), None);
        // No rate, or no Kamailio TCP row: no ratio.
        assert_eq!(ratio_vs_kamailio(&rep, &rep.rows[3]), None);
    }

    #[test]
    fn markdown_table() {
        let md = markdown(&report());
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "Machine: test");
        assert!(lines.contains(
            &"| sipreg-uring-udp-md5 | 80,000 | 100 | 400 | 1500 | 4.2 | 95 % ⚠ | 4.00× | 32 % |"
        ), "{md}");
        assert!(
            lines.contains(
                &"| kamailio-udp-md5 | 20,000 | 100 | 400 | 1500 | 4.2 | 30 % | – | 8 % |"
            ),
            "{md}"
        );
        assert!(
            lines.contains(
                &"| sipreg-fallback-tcp-noauth | – | 100 | 400 | 1500 | 4.2 | 20 % | – | – |"
            ),
            "{md}"
        );
        assert!(lines.contains(&"| sipreg | 1,000,000 | 287 |"), "{md}");
        assert!(md.contains("generator used ≥ 90 % of a core for: sipreg-uring-udp-md5;"));
        assert!(!md.contains("less than 95 %"), "{md}");
        let mut rep = report();
        rep.rows[0].load_completed_per_s = 150_000.0; // of 200,000 offered
        assert!(markdown(&rep).contains(
            "completed less than 95 % of the offered rate for: echo-udp (150,000 of 200,000 offered);"
        ));
    }

    #[test]
    fn thousands_separators() {
        for (v, s) in [
            (0.0, "0"),
            (999.4, "999"),
            (1000.0, "1,000"),
            (1_234_567.0, "1,234,567"),
        ] {
            assert_eq!(thousands(v), s);
        }
    }

    #[test]
    fn directory_and_svg() {
        let dir = tempdir();
        std::fs::write(
            dir.join("echo-udp.json"),
            loadgen_json(200_000.0, 2_000_000, 500, 0.5),
        )
        .unwrap();
        std::fs::write(
            dir.join("echo-udp.search.json"),
            loadgen_json(250_000.0, 2_500_000, 900, 0.6),
        )
        .unwrap();
        std::fs::write(dir.join("echo-udp.cpu"), "cpu_s=6.0\n").unwrap();
        std::fs::write(dir.join("memory.tsv"), "sipreg\t10\t2870\n").unwrap();
        let rep = load_dir(&dir, "m").unwrap();
        assert_eq!(rep.rows.len(), 1);
        assert_eq!(rep.rows[0].registration_rate, Some(250_000.0));
        assert!((rep.rows[0].target_cpu_us_per_op.unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(rep.memory[0].bytes_per_binding(), 287.0);
        let out = dir.join("plot.svg");
        svg(&rep, &out).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("<svg") && text.contains("echo-udp"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sipreg-e2e-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
