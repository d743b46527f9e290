//! Runs the generator against an in-process sipreg (real sockets on loopback) for every
//! scenario and transport, and against stub responders. The assertions are on counts.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use sipreg::engine::{AuthSettings, EngineConfig, Shared};
use sipreg::runtime::{self, Backend, RuntimeConfig, Server};

use super::*;

fn server() -> Server {
    server_with(false)
}

fn server_with(one_time_nonces: bool) -> Server {
    let users: String = (0..50)
        .map(|n| format!("u{n}:example.com:plain:pw{n}\n"))
        .collect();
    let engine = EngineConfig {
        domains: vec!["example.com".into()],
        auth: Some(AuthSettings {
            realm: "example.com".into(),
            algorithms: vec!["SHA-256".into(), "MD5".into()],
            credentials_text: users,
            credentials_name: "loadgen-test".into(),
            nonce_lifetime: Duration::from_secs(300),
            secret: [1; 32],
            bind_nonce_to_source: false,
            salt_seed: 5,
            one_time_nonces,
        }),
        // These tests send thousands of deliberate wrong passwords (auth-fail) for the same
        // users that later scenarios register: lockout would (rightly) refuse them.
        lockout: None,
        ..EngineConfig::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let rt = RuntimeConfig {
        udp: vec![any],
        tcp: vec![any],
        tls: vec![any],
        shards: 1,
        backend: Backend::Fallback,
        ..RuntimeConfig::default()
    };
    runtime::run(rt, Arc::new(Shared::new(engine).unwrap())).unwrap()
}

fn args(target: SocketAddr, transport: &str, scenario: &str, extra: &[&str]) -> RunArgs {
    let target = target.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("--target", &target),
        ("--transport", transport),
        ("--scenario", scenario),
        ("--users", "u{0..49}@example.com"),
        ("--duration", "0.3"),
        ("--max-in-flight", "8"),
        ("--sockets", "2"),
        ("--connections", "2"),
        ("--workers", "1"),
    ];
    for kv in extra.chunks(2) {
        let (k, v) = (kv[0], kv.get(1).copied().unwrap_or(""));
        pairs.retain(|(name, _)| *name != k);
        pairs.push((k, v));
    }
    let mut v: Vec<String> = vec![
        "sipreg-loadgen".into(),
        "run".into(),
        "--quiet".into(),
        "--no-pin".into(),
    ];
    for (k, val) in pairs {
        v.push(k.to_owned());
        // An empty value: a flag without argument.
        if !val.is_empty() {
            v.push(val.to_owned());
        }
    }
    match Cli::parse_from(v).command {
        Command::Run(a) => a,
        _ => unreachable!(),
    }
}

#[test]
fn every_scenario_on_every_transport() {
    let srv = server();
    let targets = [
        ("udp", srv.udp_addrs()[0]),
        ("tcp", srv.tcp_addrs()[0]),
        ("tls", srv.tls_addrs()[0]),
    ];
    for (transport, target) in targets {
        for scenario in [
            "register",
            "refresh",
            "query",
            "unregister",
            "wildcard",
            "auth-fail",
            "malformed",
            "mixed",
        ] {
            let o = run(&args(target, transport, scenario, &[])).unwrap();
            assert!(
                o.total.completed > 10,
                "{transport} {scenario}: {}",
                report::table(&o)
            );
            assert_eq!(
                o.total.failures(),
                0,
                "{transport} {scenario}: {}",
                report::table(&o)
            );
            assert_eq!(o.total.unexpected, 0, "{transport} {scenario}");
            assert_eq!(
                o.total.attempted, o.total.completed,
                "{transport} {scenario}"
            );
            if scenario == "register" {
                assert_eq!(
                    o.total.challenges, o.total.attempted,
                    "each registration is challenged once"
                );
            }
        }
        // The storm: every user registers exactly once.
        let o = run(&args(target, transport, "storm", &["--duration", "0.2"])).unwrap();
        assert_eq!(
            (o.total.attempted, o.total.completed),
            (50, 50),
            "{transport} storm"
        );
    }
    // Wrong passwords for real users: the auth-fail scenario completes only by refusals.
    let o = run(&args(
        srv.udp_addrs()[0],
        "udp",
        "auth-fail",
        &["--password-template", "pw{n}"],
    ))
    .unwrap();
    assert_eq!(o.total.failures(), 0);
    // A password that is right makes auth-fail fail (the target accepted it).
    let o = run(&args(
        srv.udp_addrs()[0],
        "udp",
        "register",
        &["--password-template", "nope"],
    ))
    .unwrap();
    assert_eq!(
        o.total.failed.get(&401).copied().unwrap_or(0),
        o.total.attempted,
        "{}",
        report::table(&o)
    );
    srv.shutdown().unwrap();
}

#[test]
fn re_registration_and_stale_nonces() {
    let srv = server();
    // Pre-registered users refresh with their cached nonce: no new challenge, no failure.
    let o = run(&args(
        srv.udp_addrs()[0],
        "udp",
        "refresh",
        &["--preregister", ""],
    ))
    .unwrap();
    assert!(o.total.completed > 10, "{}", report::table(&o));
    assert_eq!(o.total.failures(), 0, "{}", report::table(&o));
    assert_eq!(o.total.challenges, 0, "{}", report::table(&o));
    assert_eq!(o.total.attempted, o.total.completed);
    // Two workers share the users: the storm still registers each exactly once.
    let o = run(&args(
        srv.tcp_addrs()[0],
        "tcp",
        "storm",
        &["--workers", "2", "--duration", "0.2"],
    ))
    .unwrap();
    assert_eq!(
        (o.workers, o.total.attempted, o.total.completed),
        (2, 50, 50)
    );
    // A storm faster than the window allows (50 users in 1 ms, 8 in flight): the schedule
    // runs late, and still every user registers once.
    let o = run(&args(
        srv.udp_addrs()[0],
        "udp",
        "storm",
        &["--duration", "0.001"],
    ))
    .unwrap();
    assert_eq!((o.total.attempted, o.total.completed), (50, 50));
    srv.shutdown().unwrap();
    // One-time nonces: every cached nonce is refused, and the fresh challenge is answered
    // within the same transaction, so refreshes still succeed (each challenged once).
    let srv = server_with(true);
    let o = run(&args(
        srv.udp_addrs()[0],
        "udp",
        "refresh",
        &["--preregister", ""],
    ))
    .unwrap();
    assert!(o.total.completed > 10, "{}", report::table(&o));
    assert_eq!(o.total.failures(), 0, "{}", report::table(&o));
    assert_eq!(
        o.total.challenges,
        o.total.attempted,
        "{}",
        report::table(&o)
    );
    srv.shutdown().unwrap();
}

#[test]
fn json_and_plot_outputs() {
    let srv = server();
    let dir = std::env::temp_dir().join(format!("lg-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("o.json");
    let svg = dir.join("o.svg");
    let csv = dir.join("o.csv");
    let a = args(
        srv.udp_addrs()[0],
        "udp",
        "register",
        &[
            "--duration",
            "1.2",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
            "--csv-out",
            csv.to_str().unwrap(),
        ],
    );
    let o = run(&a).unwrap();
    write_outputs(&a, &o).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "target",
        "transport",
        "total",
        "latency",
        "completed_per_s",
        "ineffective_pct",
        "generator_cpu_us_per_op",
        "seconds",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["total"]["completed"].as_u64(), Some(o.total.completed));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // The CSV's rows add up to the run's totals (the last row is the partial final second).
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("second,completed,attempted,"));
    let rows: Vec<Vec<u64>> = lines
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() >= 2, "{text}");
    assert!(rows.iter().all(|r| r.len() == 13));
    assert_eq!(rows.iter().map(|r| r[1]).sum::<u64>(), o.total.completed);
    assert_eq!(rows.iter().map(|r| r[2]).sum::<u64>(), o.total.attempted);
    srv.shutdown().unwrap();
}

/// A UDP responder that answers 200 but stalls once for `stall`.
fn stalling_responder(stall: Duration, stop: Arc<AtomicBool>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::new();
        let mut seen = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            seen += 1;
            if seen == 200 {
                std::thread::sleep(stall);
            }
            if msgs::respond(&buf[..n], None, &mut out) {
                let _ = sock.send_to(&out, from);
            }
        }
    });
    addr
}

#[test]
fn coordinated_omission_correction_shows_a_stall() {
    let stop = Arc::new(AtomicBool::new(false));
    let target = stalling_responder(Duration::from_millis(400), stop.clone());
    // Open loop at 2000/s: requests scheduled during the 400 ms stall wait for it, and their
    // latency counts from their scheduled time.
    let open = run(&args(
        target,
        "udp",
        "register",
        &[
            "--rate",
            "2000",
            "--duration",
            "1",
            "--max-in-flight",
            "4096",
        ],
    ))
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(open.total.completed > 1000, "{}", report::table(&open));
    assert!(
        open.latency.p90_us >= 50_000,
        "open loop p90 must include the stall: {:?}",
        open.latency
    );
    // Closed loop with one request outstanding: only the stalled request sees the delay.
    let stop = Arc::new(AtomicBool::new(false));
    let target = stalling_responder(Duration::from_millis(400), stop.clone());
    let closed = run(&args(
        target,
        "udp",
        "register",
        &["--duration", "1", "--max-in-flight", "1"],
    ))
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(
        closed.latency.p90_us < 50_000,
        "closed loop hides the stall: {:?}",
        closed.latency
    );
    assert!(closed.latency.max_us >= 300_000);
}

#[test]
fn retransmissions_and_timeouts_against_a_silent_target() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap();
    let o = run(&args(
        target,
        "udp",
        "register",
        &[
            "--t1-ms",
            "20",
            "--duration",
            "0.2",
            "--max-in-flight",
            "2",
            "--users",
            "u{0..1}@example.com",
        ],
    ))
    .unwrap();
    // T1 = 20 ms -> Timer F = 1.28 s; retransmissions at 20, 60, 140, 300, 620, 1140 ms.
    assert_eq!(o.total.completed, 0);
    assert_eq!(o.total.timeouts, o.total.attempted);
    assert!(
        o.total.retransmissions >= 5 * o.total.attempted,
        "{}",
        report::table(&o)
    );
    drop(silent);
}

#[test]
fn mix_and_user_errors() {
    assert_eq!(parse_mix("mixed", "register=50,query=50").unwrap().len(), 2);
    assert!(parse_mix("mixed", "register=x").is_err());
    assert!(parse_mix("bogus", "").is_err());
    let bad = args(
        "127.0.0.1:9".parse().unwrap(),
        "udp",
        "register",
        &["--users", "nodomain"],
    );
    assert!(run(&bad).unwrap_err().to_string().contains("--users"));
    // A UDP port nobody listens on: the kernel's ICMP port unreachable is a clear error, not
    // 32 s of timeouts.
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap();
    drop(closed);
    let started = Instant::now();
    let err = run(&args(port, "udp", "register", &["--duration", "2"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unreachable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast");
    let bad = args("127.0.0.1:9".parse().unwrap(), "tcp", "register", &[]);
    assert!(
        run(&bad)
            .unwrap_err()
            .to_string()
            .contains("cannot connect"),
        "unreachable target is a clear error"
    );
}

fn search_args(target: SocketAddr, extra: &[&str]) -> SearchArgs {
    let target = target.to_string();
    let mut v: Vec<&str> = vec![
        "sipreg-loadgen",
        "search",
        "--no-pin",
        "--workers",
        "1",
        "--target",
        &target,
        "--users",
        "u{0..49}@example.com",
        "--step",
        "0.3",
        "--duration",
        "0.3",
    ];
    v.extend_from_slice(extra);
    match Cli::parse_from(v).command {
        Command::Search(s) => s,
        _ => unreachable!(),
    }
}

#[test]
fn search_modes() {
    let srv = server();
    let target = srv.udp_addrs()[0];
    // Step: 100, 200, 300 all clean (each twice), then the confirmation at 300. (No delay
    // limit here: a debug build on a loaded test machine has delay spikes; the limit has its
    // own test below.)
    let r = search_report(&search_args(
        target,
        &[
            "--mode",
            "step",
            "--min-rate",
            "100",
            "--increment",
            "100",
            "--max-rate",
            "300",
            "--repeat",
            "2",
            "--max-delay-ms",
            "0",
        ],
    ))
    .unwrap();
    let rates: Vec<f64> = r.steps.iter().map(|s| s.rate).collect();
    assert_eq!(rates, [100.0, 200.0, 300.0]);
    assert!(r.steps.iter().all(|s| s.ok), "{:?}", r.steps);
    assert_eq!(r.registration_rate, 300.0);
    assert!(r.confirmed);
    // Binary between 100 and 200 to 30 %: 100, 150, 175.
    let r = search_report(&search_args(
        target,
        &[
            "--min-rate",
            "100",
            "--max-rate",
            "200",
            "--precision",
            "0.3",
            "--max-delay-ms",
            "0",
        ],
    ))
    .unwrap();
    let rates: Vec<f64> = r.steps.iter().map(|s| s.rate).collect();
    assert_eq!(rates, [100.0, 150.0, 175.0], "{:?}", r.steps);
    assert_eq!(r.registration_rate, 175.0);
    srv.shutdown().unwrap();
    // Re-Registration Rate on pre-registered users (a fresh registrar: the runs above left
    // bindings from their own source ports).
    let srv = server();
    let target = srv.udp_addrs()[0];
    let r = search_report(&search_args(
        target,
        &[
            "--mode",
            "step",
            "--scenario",
            "refresh",
            "--preregister",
            "--min-rate",
            "100",
            "--max-rate",
            "100",
            "--max-delay-ms",
            "0",
        ],
    ))
    .unwrap();
    assert!(r.confirmed, "{:?}", r.steps);
    let c = r.confirmation.unwrap();
    assert_eq!(
        c.total.challenges, 0,
        "refreshes reuse the bound users' nonces"
    );
    srv.shutdown().unwrap();
    // A silent target: the first step fails and nothing is confirmed.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = search_report(&search_args(
        silent.local_addr().unwrap(),
        &["--mode", "step", "--min-rate", "100", "--t1-ms", "10"],
    ))
    .unwrap();
    assert_eq!(r.steps.len(), 1);
    assert!(!r.steps[0].ok && r.steps[0].retransmissions > 0);
    assert_eq!(r.registration_rate, 0.0);
    assert!(r.confirmation.is_none());
}

/// A UDP relay in front of `server` that holds every answer for `delay` (a target whose
/// queue is `delay` deep). Stops when `stop` is set.
fn delaying_relay(server: SocketAddr, delay: Duration, stop: Arc<AtomicBool>) -> SocketAddr {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    front.set_nonblocking(true).unwrap();
    back.set_nonblocking(true).unwrap();
    let addr = front.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut client = None;
        let mut held: std::collections::VecDeque<(Instant, Vec<u8>)> = Default::default();
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let mut idle = true;
            if let Ok((n, from)) = front.recv_from(&mut buf) {
                client = Some(from);
                let _ = back.send_to(&buf[..n], server);
                idle = false;
            }
            if let Ok(n) = back.recv(&mut buf) {
                held.push_back((Instant::now() + delay, buf[..n].to_vec()));
                idle = false;
            }
            while held.front().is_some_and(|(at, _)| *at <= Instant::now()) {
                let (_, m) = held.pop_front().unwrap();
                if let Some(c) = client {
                    let _ = front.send_to(&m, c);
                }
            }
            if idle {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    addr
}

#[test]
fn search_counts_a_slow_answer_as_a_failure() {
    let srv = server();
    let stop = Arc::new(AtomicBool::new(false));
    let relay = delaying_relay(srv.udp_addrs()[0], Duration::from_millis(30), stop.clone());
    let step = ["--mode", "step", "--min-rate", "100", "--max-rate", "100"];
    // Answers 30 ms late, never lost: clean by failures, not within 10 ms.
    let mut args: Vec<&str> = step.to_vec();
    args.extend(["--max-delay-ms", "10"]);
    let r = search_report(&search_args(relay, &args)).unwrap();
    assert!(!r.steps[0].ok, "{:?}", r.steps);
    assert_eq!(r.steps[0].failures + r.steps[0].retransmissions, 0);
    assert!(r.steps[0].p99_us >= 30_000, "{:?}", r.steps);
    assert_eq!(r.registration_rate, 0.0);
    // Within a 200 ms limit it is clean and confirmed.
    let mut args: Vec<&str> = step.to_vec();
    args.extend(["--max-delay-ms", "200"]);
    let r = search_report(&search_args(relay, &args)).unwrap();
    assert!(r.confirmed, "{:?}", r.steps);
    assert_eq!(r.registration_rate, 100.0);
    stop.store(true, Ordering::Relaxed);
    srv.shutdown().unwrap();
}

#[test]
fn a_target_answering_garbage_is_a_clear_error() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let target = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((_, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(b"HTTP/1.1 400 Bad Request\r\n\r\n", from);
            }
        }
    });
    let o = run(&args(
        target,
        "udp",
        "register",
        &["--t1-ms", "10", "--duration", "0.2", "--max-in-flight", "2"],
    ))
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    assert_eq!(o.total.completed, 0);
    assert!(
        o.total.unexpected >= o.total.attempted,
        "{}",
        report::table(&o)
    );
    let e = garbage_check(&o).unwrap_err().to_string();
    assert!(e.contains("not SIP responses"), "{e}");
}

#[test]
fn duplicate_answers_are_late_not_unexpected() {
    // A responder that answers every request twice (as a registrar answers a request and its
    // retransmission): the second answer is ours but no longer awaited.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let target = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                if msgs::respond(&buf[..n], None, &mut out) {
                    let _ = sock.send_to(&out, from);
                    let _ = sock.send_to(&out, from);
                }
            }
        }
    });
    let o = run(&args(
        target,
        "udp",
        "register",
        &["--duration", "0.2", "--max-in-flight", "1"],
    ))
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    assert!(o.total.completed > 10, "{}", report::table(&o));
    assert_eq!(o.total.unexpected, 0, "{}", report::table(&o));
    // The last duplicate may arrive after the run ended.
    assert!(
        (o.total.completed - 1..=o.total.completed).contains(&o.total.late),
        "{}",
        report::table(&o)
    );
}
