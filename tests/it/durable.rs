//! Persistence `ack` mode in the runtime: a response that acknowledges a change waits until the
//! change is durable (a fake gate here; the real one is `persist::Persister`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sipreg::engine::{EngineConfig, Shared};
use sipreg::runtime::{self, AckGate, RuntimeConfig};
use sipreg::store::{Change, ChangeFeed};

use super::client::Ua;
use super::{any_port, backends, REALM};

#[derive(Default)]
struct FakeGate {
    enqueued: AtomicU64,
    durable: AtomicU64,
    wakers: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl ChangeFeed for FakeGate {
    fn on_change(&self, _: &Change<'_>) {
        self.enqueued.fetch_add(1, Ordering::SeqCst);
    }
}

impl AckGate for FakeGate {
    fn last_enqueued(&self) -> u64 {
        self.enqueued.load(Ordering::SeqCst)
    }
    fn durable(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }
    fn add_waker(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.wakers.lock().unwrap().push(wake);
    }
}

impl FakeGate {
    fn make_durable(&self) {
        self.durable
            .store(self.enqueued.load(Ordering::SeqCst), Ordering::SeqCst);
        for w in self.wakers.lock().unwrap().iter() {
            w();
        }
    }
}

#[test]
fn ack_mode_holds_responses_until_durable() {
    for backend in backends() {
        let gate = Arc::new(FakeGate::default());
        let engine = EngineConfig {
            domains: vec![REALM.into()],
            ..EngineConfig::default()
        };
        let shared =
            Arc::new(Shared::with_feed(engine, Some(gate.clone() as Arc<dyn ChangeFeed>)).unwrap());
        let rt = RuntimeConfig {
            udp: vec![any_port()],
            tcp: vec![any_port()],
            shards: 1,
            backend,
            ack_gate: Some(gate.clone() as Arc<dyn AckGate>),
            ..RuntimeConfig::default()
        };
        let server = runtime::run(rt, shared).unwrap();
        for tcp in [false, true] {
            let mut ua = if tcp {
                Ua::tcp("alice", server.tcp_addrs()[0])
            } else {
                Ua::udp("alice", server.udp_addrs()[0])
            };
            // A query changes nothing: answered at once.
            assert_eq!(ua.register(&[], None).code, 200, "{backend:?}");
            // A registration waits for durability.
            let release = {
                let gate = Arc::clone(&gate);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(400));
                    gate.make_durable();
                })
            };
            let t = std::time::Instant::now();
            let r = ua.register(&["<sip:alice@192.0.2.1>"], None);
            let waited = t.elapsed();
            release.join().unwrap();
            assert_eq!(r.code, 200, "{backend:?} tcp={tcp}: {}", r.raw);
            assert!(
                waited >= Duration::from_millis(350),
                "{backend:?} tcp={tcp}: answered after {waited:?}, before the change was durable"
            );
            // Once durable, a refresh is held again until the next durable point.
            let gate2 = Arc::clone(&gate);
            let release = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                gate2.make_durable();
            });
            let t = std::time::Instant::now();
            assert_eq!(ua.register(&["<sip:alice@192.0.2.1>"], None).code, 200);
            assert!(
                t.elapsed() >= Duration::from_millis(150),
                "{backend:?} tcp={tcp}"
            );
            release.join().unwrap();
            // The removal is held too.
            let gate3 = Arc::clone(&gate);
            let release = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                gate3.make_durable();
            });
            let r = ua.register(&["<sip:alice@192.0.2.1>"], Some(0));
            assert_eq!((r.code, r.contacts().len()), (200, 0), "{}", r.raw);
            release.join().unwrap();
        }
        server.shutdown().unwrap();
    }
}

/// Registers distinct AORs `crash{n}`, `n` from `first` on, over UDP with 64 in flight until
/// `stop`; returns each acknowledged (200 OK) AOR number with the time its answer arrived.
fn storm(
    target: std::net::SocketAddr,
    first: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(u64, std::time::Instant)>> {
    std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let mut next = first;
        let send = |n: u64| {
            let msg = format!(
                "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{n};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:crash{n}@example.com>;tag=t\r\nTo: <sip:crash{n}@example.com>\r\n\
                 Call-ID: crash-{n}\r\nCSeq: 1 REGISTER\r\nContact: <sip:crash{n}@192.0.2.9>\r\nExpires: 3600\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            let _ = sock.send_to(msg.as_bytes(), target);
        };
        for _ in 0..64 {
            send(next);
            next += 1;
        }
        let mut acked = Vec::new();
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = sock.recv(&mut buf) else {
                // Timeouts: keep 64 in flight (the server may be dead already).
                for _ in 0..64 {
                    send(next);
                    next += 1;
                }
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            let user = text
                .split("Call-ID: crash-")
                .nth(1)
                .and_then(|r| r.split('\r').next()?.parse::<u64>().ok());
            if let (true, Some(u)) = (text.starts_with("SIP/2.0 200"), user) {
                acked.push((u, std::time::Instant::now()));
            }
            send(next);
            next += 1;
        }
        acked
    })
}

/// The AORs a running binary holds, through its management API dump.
fn stored_aors(mgmt: std::net::SocketAddr) -> std::collections::HashSet<String> {
    let (status, body) = super::mgmt::http("GET", &format!("http://{mgmt}/v1/bindings"), None);
    assert_eq!(status, 200);
    body.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["aor"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// A counter of the binary's `/metrics`.
fn metric(mgmt: std::net::SocketAddr, name: &str) -> u64 {
    let (status, text) = super::mgmt::http("GET", &format!("http://{mgmt}/metrics"), None);
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// Under load, SIGKILL the real binary, restart it on the same data directory, and check what
/// survived. A first storm's acknowledged bindings are all durable once the journal reports
/// them fsynced (`/metrics`), however slow the disk; a second storm is cut by the SIGKILL:
/// every binding it had acknowledged survives in `ack` mode, and in `interval` mode the ones
/// lost are reported (the window, which depends on how fast this machine's disk syncs).
#[test]
fn crash_under_load_keeps_acknowledged_bindings() {
    for mode in ["ack", "interval"] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sipreg.toml");
        std::fs::write(
            &config,
            "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ntls = []\n[runtime]\nshards = 2\npin = false\n\
             [registrar]\ndomains = [\"example.com\"]\n",
        )
        .unwrap();
        let super::Binary {
            mut child,
            udp,
            mgmt,
            ..
        } = super::spawn_binary_with(&config, &["--durability", mode]);
        let run = |first: u64, for_ms: u64| {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let load = storm(udp, first, Arc::clone(&stop));
            std::thread::sleep(Duration::from_millis(for_ms));
            (stop, load)
        };
        let (stop, load) = run(0, 1000);
        stop.store(true, Ordering::Relaxed);
        let synced_before = load.join().unwrap();
        // Everything acknowledged so far was handed to the journal before its answer.
        let enqueued = metric(mgmt, "sipreg_persist_enqueued_changes_total");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while metric(mgmt, "sipreg_persist_durable_changes_total") < enqueued {
            assert!(
                std::time::Instant::now() < deadline,
                "{mode}: no fsync in 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (stop, load) = run(1 << 32, 500);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(150));
        stop.store(true, Ordering::Relaxed);
        let cut = load.join().unwrap();

        let restarted = super::spawn_binary_with(&config, &["--durability", mode]);
        let stored = stored_aors(restarted.mgmt);
        let missing = |acked: &[(u64, std::time::Instant)]| {
            acked
                .iter()
                .filter(|(n, _)| !stored.contains(&format!("sip:crash{n}@example.com")))
                .count()
        };
        let (lost_synced, lost_cut) = (missing(&synced_before), missing(&cut));
        eprintln!(
            "{mode}: {} acknowledged and synced, {} acknowledged in the cut storm, {} loaded \
             after restart; missing {lost_synced} synced, {lost_cut} of the cut storm",
            synced_before.len(),
            cut.len(),
            stored.len(),
        );
        assert!(
            synced_before.len() > 100 && !cut.is_empty(),
            "{mode}: the load made progress"
        );
        assert_eq!(lost_synced, 0, "{mode}: every synced binding survives");
        if mode == "ack" {
            assert_eq!(lost_cut, 0, "ack: every acknowledged binding survives");
        }
        super::signal(&restarted.child, libc::SIGTERM);
        let mut c = restarted.child;
        assert!(c.wait().unwrap().success());
    }
}
