//! `sipreg-loadgen`: a multi-core SIP registration load generator for any registrar (sipreg,
//! Kamailio, OpenSIPS, Asterisk). It answers Digest challenges with every algorithm the
//! registrar crate supports, measures registrations/s, RFC 6076 Registration Request Delay
//! (hdrhistogram percentiles, coordinated omission corrected in open loop) and its own CPU per
//! registration, and finds the zero-failure Registration Rate (RFC 7501/7502) with `search`.
#![deny(unsafe_code)]
// A binary: its modules' `pub` items are crate-internal by construction.
#![allow(unreachable_pub)]
// The generator is an I/O tool, not part of the registrar's sans-IO core.
#![allow(clippy::disallowed_methods)]

mod msgs;
mod net;
mod report;
mod stats;
mod tls;
mod users;
mod worker;

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use sipreg::auth::Algorithm;

use msgs::Kind;
use report::{Outcome, Second};
use stats::{histogram, Counters, Percentiles};
use worker::{Plan, Transport};

#[derive(Parser)]
#[command(version, about = "SIP registration load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one load test and report.
    Run(RunArgs),
    /// Find the highest zero-failure rate (RFC 7501 Registration Rate).
    Search(SearchArgs),
    /// A plain UDP responder (recvmmsg/sendmmsg) answering every request with a 200 built from
    /// its headers: the loopback ceiling to compare a registrar with.
    Echo {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:5070")]
        listen: SocketAddr,
        /// Pin to this core.
        #[arg(long)]
        pin: Option<usize>,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Target registrar, host:port.
    #[arg(long, default_value = "127.0.0.1:5060")]
    target: String,
    #[arg(long, value_enum, default_value = "udp")]
    transport: Transport,
    /// register | refresh | query | unregister | wildcard | auth-fail | malformed | storm |
    /// mixed (see --mix).
    #[arg(long, default_value = "register")]
    scenario: String,
    /// Mix for `mixed`, percentages: register=50,refresh=30,query=20.
    #[arg(long, default_value = "register=40,refresh=40,query=10,unregister=10")]
    mix: String,
    /// User range, e.g. `u{0..9999}@example.com`.
    #[arg(long, default_value = "u{0..9999}@example.com")]
    users: String,
    /// SIPp-style CSV injection file (user;domain;password) instead of --users.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Password template: {n} = user number, {user} = user name.
    #[arg(long, default_value = "pw{n}")]
    password_template: String,
    /// Requests per second in total (open loop); 0 = closed loop.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Outstanding transactions per worker (closed loop window; open-loop cap).
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Seconds of load (the storm scenario: seconds to register every user).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Pin worker N to core (N + pin_offset) % cores (leave room for a target on the same
    /// machine with e.g. --workers 1 --pin-offset 1).
    #[arg(long, default_value_t = 0)]
    pin_offset: usize,
    /// Do not pin workers to cores.
    #[arg(long)]
    no_pin: bool,
    /// UDP source ports per worker.
    #[arg(long, default_value_t = 16)]
    sockets: usize,
    /// TCP/TLS connections per worker (0 = one per user).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Expires asked for.
    #[arg(long, default_value_t = 3600)]
    expires: u32,
    /// RFC 3261 T1, milliseconds (Timer F = 64 x T1).
    #[arg(long, default_value_t = 500)]
    t1_ms: u64,
    /// Preferred digest algorithm when several are offered.
    #[arg(long, default_value = "MD5")]
    algorithm: String,
    /// Disable TLS session resumption.
    #[arg(long)]
    tls_no_resume: bool,
    /// CA certificate (PEM) to verify the target; without it any certificate is accepted.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Register every user first (unmeasured, closed loop), then run the measured scenario on
    /// those bindings: with `--scenario refresh` this measures the RFC 7502 Re-Registration
    /// Rate.
    #[arg(long)]
    preregister: bool,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an SVG plot of rate and latency over time.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Write the per-second counters and latency percentiles as CSV.
    #[arg(long)]
    csv_out: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

/// How `search` moves between rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum SearchMode {
    /// Bisect between --min-rate and --max-rate.
    Binary,
    /// Climb from --min-rate by --increment until a step fails (RFC 7501 §5.1 style).
    Step,
}

/// `search`: the highest rate with zero failures and zero retransmissions (RFC 7501/7502
/// Registration Rate; with `--scenario refresh --preregister` the Re-Registration Rate).
#[derive(Args)]
struct SearchArgs {
    #[command(flatten)]
    run: RunArgs,
    #[arg(long, value_enum, default_value = "binary")]
    mode: SearchMode,
    /// Lowest rate tried.
    #[arg(long, default_value_t = 1000.0)]
    min_rate: f64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 400_000.0)]
    max_rate: f64,
    /// Binary mode: stop when the interval is narrower than this fraction of the rate.
    #[arg(long, default_value_t = 0.05)]
    precision: f64,
    /// Step mode: rate added per step.
    #[arg(long, default_value_t = 5000.0)]
    increment: f64,
    /// Seconds per step (the confirmation run lasts --duration).
    #[arg(long, default_value_t = 5.0)]
    step: f64,
    /// Runs per candidate rate; every one must be clean.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// A step (and the confirmation) is clean only if its p99 Registration Request Delay stays
    /// at or under this many milliseconds: a queue that keeps growing is an overload before
    /// anything fails (big socket buffers hide it for seconds). 0 = no limit.
    #[arg(long, default_value_t = 50.0)]
    max_delay_ms: f64,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("sipreg-loadgen: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let outcome = run(&args)?;
            print!("{}", report::table(&outcome));
            write_outputs(&args, &outcome)?;
            garbage_check(&outcome)
        }
        Command::Search(s) => search(&s),
        Command::Echo { listen, pin } => {
            if let Some(core) = pin {
                net::pin(core);
            }
            net::echo(listen, None)
        }
    }
}

/// A target that answered only with things that are not responses to our requests (another
/// protocol on that port, a broken registrar) is an error, not a run with zero completions.
fn garbage_check(o: &Outcome) -> Result<()> {
    if o.total.unexpected > 0 && o.total.completed == 0 {
        bail!(
            "{}: the target answered {} messages that are not SIP responses to our requests",
            o.target,
            o.total.unexpected
        );
    }
    Ok(())
}

fn write_outputs(args: &RunArgs, outcome: &Outcome) -> Result<()> {
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(outcome)?)
            .with_context(|| format!("{}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        report::plot(outcome, path)?;
    }
    if let Some(path) = &args.csv_out {
        std::fs::write(path, report::seconds_csv(outcome))
            .with_context(|| format!("{}", path.display()))?;
    }
    Ok(())
}

fn parse_mix(scenario: &str, mix: &str) -> Result<Vec<(Kind, u32)>> {
    let kind = |name: &str| -> Result<Kind> {
        Ok(match name {
            "register" | "storm" => Kind::Register,
            "refresh" => Kind::Refresh,
            "query" => Kind::Query,
            "unregister" => Kind::Unregister,
            "wildcard" => Kind::Wildcard,
            "auth-fail" => Kind::AuthFail,
            "malformed" => Kind::Malformed,
            other => bail!("unknown scenario {other:?}"),
        })
    };
    if scenario != "mixed" {
        return Ok(vec![(kind(scenario)?, 100)]);
    }
    let mut out = Vec::new();
    for part in mix.split(',') {
        let (name, pct) = part
            .split_once('=')
            .with_context(|| format!("--mix: expected name=percent in {part:?}"))?;
        let pct: u32 = pct
            .trim()
            .parse()
            .with_context(|| format!("--mix: bad percentage {pct:?}"))?;
        out.push((kind(name.trim())?, pct));
    }
    if out.iter().map(|(_, p)| p).sum::<u32>() == 0 {
        bail!("--mix: percentages sum to zero");
    }
    Ok(out)
}

fn plan(args: &RunArgs) -> Result<Plan> {
    let target: SocketAddr = args
        .target
        .to_socket_addrs()
        .with_context(|| format!("--target {}", args.target))?
        .next()
        .with_context(|| format!("--target {}: no address", args.target))?;
    let users = match &args.csv {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            users::csv(&text, &path.display().to_string())?
        }
        None => users::range(&args.users, &args.password_template)?,
    };
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let workers = if args.workers == 0 {
        cores
    } else {
        args.workers
    }
    .min(users.len())
    .max(1);
    let storm = args.scenario == "storm";
    let rate = if storm {
        users.len() as f64 / args.duration.max(0.001)
    } else {
        args.rate
    };
    let prefer = Algorithm::parse(args.algorithm.as_bytes())
        .with_context(|| format!("--algorithm {}", args.algorithm))?;
    if args.tls_ca.is_none() && args.transport == Transport::Tls {
        eprintln!("sipreg-loadgen: no --tls-ca given: accepting any server certificate");
    }
    Ok(Plan {
        target,
        transport: args.transport,
        mix: parse_mix(&args.scenario, &args.mix)?,
        users: Arc::new(users),
        rate,
        max_in_flight: args.max_in_flight.max(1),
        duration: Duration::from_secs_f64(args.duration.max(0.001)),
        expires: args.expires,
        t1: Duration::from_millis(args.t1_ms.max(1)),
        timer_f: Duration::from_millis(args.t1_ms.max(1) * 64),
        sockets: args.sockets.max(1),
        connections: args.connections,
        prefer,
        tls_resume: !args.tls_no_resume,
        tls_ca: args.tls_ca.clone(),
        once: storm,
        preregister: args.preregister,
        workers,
    })
}

/// Runs one load test.
fn run(args: &RunArgs) -> Result<Outcome> {
    let plan = Arc::new(plan(args)?);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let (tx, rx) = mpsc::channel();
    let n = plan.users.len();
    let barrier = plan
        .preregister
        .then(|| Arc::new(Barrier::new(plan.workers + 1)));
    let mut cpu0 = net::cpu_time();
    let mut wall0 = Instant::now();
    let mut handles = Vec::new();
    for i in 0..plan.workers {
        let users = (n * i / plan.workers)..(n * (i + 1) / plan.workers);
        let plan = Arc::clone(&plan);
        let tx = tx.clone();
        let barrier = barrier.clone();
        let pin = (!args.no_pin).then(|| (i + args.pin_offset) % cores);
        handles.push(
            std::thread::Builder::new()
                .name(format!("lg-worker-{i}"))
                .spawn(move || {
                    if let Some(core) = pin {
                        net::pin(core);
                    }
                    worker::run(i, &plan, users, &tx, barrier.as_deref())
                })?,
        );
    }
    drop(tx);
    if let Some(b) = &barrier {
        // The measurement starts when every worker has bound its users.
        b.wait();
        cpu0 = net::cpu_time();
        wall0 = Instant::now();
    }
    let live = !args.quiet && std::io::stderr().is_terminal();
    let mut seconds: Vec<Second> = Vec::new();
    let mut per_second: std::collections::BTreeMap<
        u64,
        (Counters, hdrhistogram::Histogram<u64>, usize),
    > = Default::default();
    for snap in rx {
        let e = per_second
            .entry(snap.second)
            .or_insert_with(|| (Counters::default(), histogram(), 0));
        e.0.merge(&snap.counters);
        let _ = e.1.add(&snap.latency);
        e.2 += 1;
        if e.2 == plan.workers {
            let s = Second {
                second: snap.second,
                rate: e.0.completed,
                counters: e.0.clone(),
                latency: Percentiles::of(&e.1),
            };
            if live {
                eprint!(
                    "\r[{:>4}s] {:>9} reg/s  fail {:>6}  timeout {:>6}  retrans {:>6}  p99 {:>8} us   ",
                    s.second, s.rate, s.counters.failures() - s.counters.timeouts, s.counters.timeouts, s.counters.retransmissions, s.latency.p99_us
                );
            }
            seconds.push(s);
        }
    }
    if live {
        eprintln!();
    }
    let mut total = Counters::default();
    let mut hist = histogram();
    for h in handles {
        let t = h
            .join()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        total.merge(&t.counters);
        let _ = hist.add(&t.latency);
    }
    // Per-second entries not reported by every worker (the final partial second).
    for (second, (c, h, _)) in per_second {
        if !seconds.iter().any(|s| s.second == second) {
            seconds.push(Second {
                second,
                rate: c.completed,
                counters: c,
                latency: Percentiles::of(&h),
            });
        }
    }
    seconds.sort_by_key(|s| s.second);
    let wall = wall0.elapsed();
    let cpu = net::cpu_time().saturating_sub(cpu0);
    Ok(Outcome::new(args, &plan, total, &hist, seconds, wall, cpu))
}

/// One candidate rate of a search.
#[derive(Clone, Debug, serde::Serialize)]
struct SearchStep {
    rate: f64,
    /// Every repetition was clean.
    ok: bool,
    /// Lowest achieved rate over the repetitions.
    achieved_rate: f64,
    failures: u64,
    retransmissions: u64,
    unexpected: u64,
    /// Highest p99 delay over the repetitions (µs).
    p99_us: u64,
}

/// The `search` report (`--json`).
#[derive(Clone, Debug, serde::Serialize)]
struct SearchReport {
    mode: SearchMode,
    scenario: String,
    /// The highest clean rate found (0 when none was).
    registration_rate: f64,
    /// The confirmation run at that rate was clean too.
    confirmed: bool,
    steps: Vec<SearchStep>,
    confirmation: Option<Outcome>,
}

/// Zero failures, zero retransmissions, nothing unexpected, something completed.
fn clean(o: &Outcome) -> bool {
    o.total.failures() == 0
        && o.total.retransmissions == 0
        && o.total.unexpected == 0
        && o.total.completed > 0
}

/// The p99 delay is within the search's limit (`max_delay_ms`, 0 = none).
fn delay_ok(o: &Outcome, max_delay_ms: f64) -> bool {
    max_delay_ms <= 0.0 || o.latency.p99_us as f64 <= max_delay_ms * 1000.0
}

/// Runs `repeat` times at `rate`; clean only if every run is clean, keeps up with the rate
/// and answers within the delay limit.
fn trial(base: &RunArgs, rate: f64, repeat: u32, max_delay_ms: f64) -> Result<SearchStep> {
    let mut step = SearchStep {
        rate,
        ok: true,
        achieved_rate: f64::INFINITY,
        failures: 0,
        retransmissions: 0,
        unexpected: 0,
        p99_us: 0,
    };
    let mut args = base.clone();
    args.rate = rate;
    for _ in 0..repeat.max(1) {
        let o = run(&args)?;
        // Keeping up: the completions a step must have (measured against the planned
        // duration, not the wall time, which includes the last answers' round trip).
        let due = rate * args.duration;
        step.ok &=
            clean(&o) && o.total.completed as f64 >= 0.95 * due && delay_ok(&o, max_delay_ms);
        step.p99_us = step.p99_us.max(o.latency.p99_us);
        step.achieved_rate = step.achieved_rate.min(o.achieved_rate());
        step.failures += o.total.failures();
        step.retransmissions += o.total.retransmissions;
        step.unexpected += o.total.unexpected;
        if !step.ok {
            break;
        }
    }
    eprintln!(
        "search: {rate:>10.0}/s -> {} ({:.0}/s achieved, {} failures, {} retransmissions, p99 {} us)",
        if step.ok { "ok" } else { "fail" },
        step.achieved_rate,
        step.failures,
        step.retransmissions,
        step.p99_us
    );
    Ok(step)
}

/// RFC 7501 §5.1-style search (binary or step) on the offered rate for zero failures and zero
/// retransmissions over a fixed step, each rate repeated, then a confirmation run at the result.
/// A rate whose p99 delay exceeds `--max-delay-ms` counts as failed too: the target is queueing
/// faster than it answers, and a longer run would fail.
fn search_report(s: &SearchArgs) -> Result<SearchReport> {
    if !(s.min_rate > 0.0 && s.max_rate >= s.min_rate) {
        bail!("search: need 0 < --min-rate <= --max-rate");
    }
    let mut base = s.run.clone();
    base.duration = s.step;
    base.quiet = true;
    let mut steps = Vec::new();
    let mut best: Option<f64> = None;
    match s.mode {
        SearchMode::Binary => {
            let first = trial(&base, s.min_rate, s.repeat, s.max_delay_ms)?;
            let ok = first.ok;
            steps.push(first);
            if ok {
                best = Some(s.min_rate);
                let (mut lo, mut hi) = (s.min_rate, s.max_rate);
                while hi - lo > s.precision.max(1e-6) * lo {
                    let rate = (lo + hi) / 2.0;
                    let t = trial(&base, rate, s.repeat, s.max_delay_ms)?;
                    if t.ok {
                        lo = rate;
                        best = Some(rate);
                    } else {
                        hi = rate;
                    }
                    steps.push(t);
                }
            }
        }
        SearchMode::Step => {
            if s.increment <= 0.0 {
                bail!("search: --increment must be positive");
            }
            let mut rate = s.min_rate;
            while rate <= s.max_rate * (1.0 + 1e-9) {
                let t = trial(&base, rate, s.repeat, s.max_delay_ms)?;
                let ok = t.ok;
                steps.push(t);
                if !ok {
                    break;
                }
                best = Some(rate);
                rate += s.increment;
            }
        }
    }
    let Some(rate) = best else {
        return Ok(SearchReport {
            mode: s.mode,
            scenario: s.run.scenario.clone(),
            registration_rate: 0.0,
            confirmed: false,
            steps,
            confirmation: None,
        });
    };
    let mut confirm = s.run.clone();
    confirm.rate = rate;
    confirm.quiet = true;
    let o = run(&confirm)?;
    Ok(SearchReport {
        mode: s.mode,
        scenario: s.run.scenario.clone(),
        registration_rate: rate,
        confirmed: clean(&o) && delay_ok(&o, s.max_delay_ms),
        steps,
        confirmation: Some(o),
    })
}

fn search(s: &SearchArgs) -> Result<()> {
    let r = search_report(s)?;
    if let Some(path) = &s.run.json {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("{}", path.display()))?;
    }
    let Some(o) = &r.confirmation else {
        bail!(
            "search: not even --min-rate {:.0}/s was clean (zero failures and retransmissions)",
            s.min_rate
        );
    };
    let what = if s.run.scenario == "refresh" && s.run.preregister {
        "Re-Registration Rate"
    } else {
        "Registration Rate"
    };
    println!(
        "{what} (zero failures, zero retransmissions): {:.0}/s{}",
        r.registration_rate,
        if r.confirmed {
            " (confirmed)"
        } else {
            " (NOT confirmed)"
        }
    );
    print!("{}", report::table(o));
    if let Some(path) = &s.run.plot {
        report::plot(o, path)?;
    }
    if let Some(path) = &s.run.csv_out {
        std::fs::write(path, report::seconds_csv(o))
            .with_context(|| format!("{}", path.display()))?;
    }
    if !r.confirmed {
        bail!(
            "the confirmation run at {:.0}/s had failures or a p99 delay over {} ms",
            r.registration_rate,
            s.max_delay_ms
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
