//! Integration tests: the real server on ephemeral loopback ports, on BOTH backends, driven
//! through real UDP, TCP and TLS (rustls) sockets. Every socket read has a timeout.
#![allow(clippy::disallowed_methods, missing_docs, unreachable_pub)]

mod client;
mod durable;
mod mgmt;
mod redis;

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use client::{Reply, Ua};
use sipreg::engine::{AuthSettings, EngineConfig, Shared};
use sipreg::runtime::{self, Backend, RuntimeConfig, Server};

const REALM: &str = "example.com";

fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Fallback];
    match runtime::detect() {
        Ok(()) => b.push(Backend::Uring),
        Err(why) => eprintln!("\n*** SKIPPING the io_uring backend in this test: {why} ***\n"),
    }
    b
}

/// Retries a socket call interrupted by a signal (EINTR).
fn retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct TestServer {
    server: Option<Server>,
    shared: Arc<Shared>,
}

impl TestServer {
    fn start(
        backend: Backend,
        auth: bool,
        tweak: impl FnOnce(&mut EngineConfig, &mut RuntimeConfig),
    ) -> Self {
        let mut engine = EngineConfig {
            domains: vec![REALM.into()],
            ..EngineConfig::default()
        };
        if auth {
            engine.auth = Some(AuthSettings {
                realm: REALM.into(),
                algorithms: vec!["SHA-256".into(), "MD5".into()],
                credentials_text:
                    "alice:example.com:plain:wonderland\nbob:example.com:plain:builder\n".into(),
                credentials_name: "test-users".into(),
                nonce_lifetime: Duration::from_secs(300),
                secret: [3; 32],
                bind_nonce_to_source: false,
                salt_seed: 11,
                one_time_nonces: false,
            });
        }
        let mut rt = RuntimeConfig {
            udp: vec![any_port()],
            tcp: vec![any_port()],
            tls: vec![any_port()],
            shards: 2,
            backend,
            ..RuntimeConfig::default()
        };
        tweak(&mut engine, &mut rt);
        let shared = Arc::new(Shared::new(engine).expect("valid engine config"));
        let server = runtime::run(rt, Arc::clone(&shared)).expect("server starts");
        assert_eq!(server.backend(), backend);
        Self {
            server: Some(server),
            shared,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn udp(&self) -> SocketAddr {
        self.server().udp_addrs()[0]
    }

    fn tcp(&self) -> SocketAddr {
        self.server().tcp_addrs()[0]
    }

    fn tls(&self) -> SocketAddr {
        self.server().tls_addrs()[0]
    }

    fn ua_udp(&self, user: &str) -> Ua {
        Ua::udp(user, self.udp())
    }

    fn ua_tcp(&self, user: &str) -> Ua {
        Ua::tcp(user, self.tcp())
    }

    fn ua_tls(&self, user: &str) -> Ua {
        Ua::tls(
            user,
            self.tls(),
            self.server().tls_certificate().unwrap().to_vec(),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().expect("clean shutdown");
        }
    }
}

#[test]
fn udp_register_refresh_query_unregister_wildcard() {
    for backend in backends() {
        let srv = TestServer::start(backend, false, |_, _| {});
        let mut ua = srv.ua_udp("carol");
        let r = ua.register(&["<sip:carol@192.0.2.1:5060>"], Some(600));
        assert_eq!(r.code, 200, "{backend:?}: {}", r.raw);
        assert_eq!(
            r.contacts(),
            vec![("sip:carol@192.0.2.1:5060".to_owned(), 600)]
        );
        let r = ua.register(&["<sip:carol@192.0.2.1:5060>"], Some(300));
        assert_eq!(
            r.contacts(),
            vec![("sip:carol@192.0.2.1:5060".to_owned(), 300)],
            "refresh"
        );
        let r = ua.register(&["<sip:carol@192.0.2.2:5060>"], Some(300));
        assert_eq!(r.contacts().len(), 2);
        let r = ua.register(&[], None);
        assert_eq!((r.code, r.contacts().len()), (200, 2), "query");
        let r = ua.register(&["<sip:carol@192.0.2.1:5060>;expires=0"], None);
        assert_eq!(
            r.contacts(),
            vec![("sip:carol@192.0.2.2:5060".to_owned(), 300)],
            "unregister one"
        );
        let r = ua.register(&["*"], Some(0));
        assert_eq!((r.code, r.contacts().len()), (200, 0), "wildcard");
        assert!(
            r.header("Via").unwrap().contains("received=127.0.0.1"),
            "{}",
            r.raw
        );
    }
}

#[test]
fn digest_exchange_over_udp_tcp_and_tls() {
    for backend in backends() {
        let srv = TestServer::start(backend, true, |_, _| {});
        for (name, mut ua) in [
            ("udp", srv.ua_udp("alice")),
            ("tcp", srv.ua_tcp("alice")),
            ("tls", srv.ua_tls("alice")),
        ] {
            let r = ua.register(&["<sip:alice@192.0.2.9>"], Some(600));
            assert_eq!(r.code, 401, "{backend:?} {name}");
            assert_eq!(r.headers("WWW-Authenticate").len(), 2);
            let r = ua.authenticate(
                &r,
                "SHA-256",
                "wonderland",
                &["<sip:alice@192.0.2.9>"],
                Some(600),
            );
            assert_eq!(r.code, 200, "{backend:?} {name}: {}", r.raw);
            assert_eq!(r.contacts().len(), 1);
            // Wrong password and unknown user: the same 401 shape.
            let c = ua.register(&["<sip:alice@192.0.2.9>"], Some(600));
            let wrong = ua.authenticate(&c, "MD5", "nope", &["<sip:alice@192.0.2.9>"], Some(600));
            let mut mallory = if name == "udp" {
                srv.ua_udp("mallory")
            } else {
                srv.ua_tcp("mallory")
            };
            let c = mallory.register(&["<sip:m@192.0.2.9>"], Some(600));
            let unknown =
                mallory.authenticate(&c, "MD5", "nope", &["<sip:m@192.0.2.9>"], Some(600));
            assert_eq!((wrong.code, unknown.code), (401, 401));
            assert_eq!(wrong.header_names(), unknown.header_names());
        }
    }
}

#[test]
fn tcp_framing_two_in_one_write_and_byte_by_byte() {
    for backend in backends() {
        let srv = TestServer::start(backend, false, |_, _| {});
        let ua = srv.ua_tcp("dave");
        let one = ua.build(1, &["<sip:dave@192.0.2.3>"], Some(120));
        let two = ua.build(2, &[], None);
        let mut s = TcpStream::connect(srv.tcp()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut both = one.clone();
        both.extend_from_slice(&two);
        s.write_all(&both).unwrap();
        let replies = client::read_replies(&mut s, 2);
        assert_eq!(
            replies.iter().map(|r| r.code).collect::<Vec<_>>(),
            vec![200, 200],
            "{backend:?}"
        );
        assert_eq!(
            replies[1].contacts().len(),
            1,
            "the query sees the first request's binding"
        );
        for b in ua.build(3, &[], None) {
            s.write_all(&[b]).unwrap();
        }
        let r = client::read_replies(&mut s, 1);
        assert_eq!(r[0].header("CSeq").as_deref(), Some("3 REGISTER"));
        // CRLF keepalive (RFC 5626 §4.4.1) answered with CRLF.
        s.write_all(b"\r\n\r\n").unwrap();
        let mut pong = [0u8; 2];
        s.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"\r\n", "{backend:?}");
    }
}

#[test]
fn malformed_and_oversized_input() {
    for backend in backends() {
        let srv = TestServer::start(backend, false, |e, _| e.max_message_size = 2048);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let bad = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx;rport\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        sock.send_to(bad, srv.udp()).unwrap();
        let mut buf = [0u8; 4096];
        let n = retry(|| sock.recv(&mut buf)).unwrap();
        assert!(
            buf[..n].starts_with(b"SIP/2.0 400 Missing From"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        sock.send_to(b"\x00\xff garbage", srv.udp()).unwrap();
        let mut ua = srv.ua_udp("erin");
        let big = format!("X-Pad: {}", "a".repeat(3000));
        let r = ua.send(&ua.build_with(1, &["<sip:erin@192.0.2.5>"], None, &[&big]));
        assert_eq!(r.code, 513, "{backend:?}");
        let r = ua.register(&["<sip:erin@192.0.2.5>"], None);
        assert_eq!(r.code, 200, "{backend:?}: still serving");
        // On a stream, an oversized message closes the connection.
        let mut s = TcpStream::connect(srv.tcp()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut msg = ua.build_with(9, &[], None, &[&big]);
        msg.extend_from_slice(&[b'x'; 2048]);
        let _ = s.write_all(&msg);
        let mut rest = Vec::new();
        let closed = s.read_to_end(&mut rest).is_ok();
        assert!(
            closed,
            "{backend:?}: connection closed after a framing error"
        );
    }
}

#[test]
fn connection_cap_per_ip() {
    for backend in backends() {
        let srv = TestServer::start(backend, false, |_, rt| {
            rt.shards = 1;
            rt.max_connections_per_ip = 2;
        });
        let keep: Vec<Ua> = (0..2)
            .map(|i| {
                let mut ua = srv.ua_tcp(&format!("cap{i}"));
                assert_eq!(ua.register(&[], None).code, 200);
                ua
            })
            .collect();
        let mut third = TcpStream::connect(srv.tcp()).unwrap();
        third
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = third.write_all(&keep[0].build(5, &[], None));
        let mut buf = Vec::new();
        let n = third.read_to_end(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "{backend:?}: over the cap, closed without an answer");
        assert!(
            srv.server().stats()[0]
                .rejected_connections
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        );
    }
}

/// A client that pipelines requests but never reads its responses is closed once they pile up
/// (they would otherwise be buffered without bound), and the shard keeps serving others.
#[test]
fn stream_peer_that_never_reads_is_closed() {
    for backend in backends() {
        stream_peer_that_never_reads(backend);
    }
}

/// The client must see a reset: on io_uring this also checks that no request left in the ring
/// keeps a closed connection's socket alive.
fn stream_peer_that_never_reads(backend: Backend) {
    use socket2::{Domain, Socket, Type};
    {
        let srv = TestServer::start(backend, false, |e, rt| {
            rt.shards = 1;
            e.max_message_size = 2048;
            rt.max_message_size = 2048;
        });
        let ua = srv.ua_tcp("sink");
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&srv.tcp().into()).unwrap();
        let mut s: TcpStream = sock.into();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        // Far more responses than the kernel buffers on both sides plus 4 x 2048 bytes.
        let limit = 64 << 20;
        let mut sent = 0;
        let mut cseq = 0;
        let closed = loop {
            if sent >= limit {
                break false;
            }
            // Distinct CSeqs (and branches): new requests, not retransmissions.
            let batch: Vec<u8> = (0..64)
                .flat_map(|_| {
                    cseq += 1;
                    ua.build(cseq, &[], None)
                })
                .collect();
            match s.write_all(&batch) {
                Ok(()) => sent += batch.len(),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let closed = matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    );
                    assert!(closed, "{backend:?}: {e} after {sent} bytes");
                    break true;
                }
            }
        };
        assert!(
            closed,
            "{backend:?}: still open after {sent} bytes of requests"
        );
        let stalled = srv.server().stats()[0]
            .stalled_closed
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(stalled, 1, "{backend:?}");
        let mut ua = srv.ua_tcp("after");
        assert_eq!(
            ua.register(&[], None).code,
            200,
            "{backend:?}: still serving"
        );
    }
}

#[test]
fn rfc3665_2_3_query_over_tls_with_digest() {
    for backend in backends() {
        let srv = TestServer::start(backend, true, |_, _| {});
        let mut ua = srv.ua_tls("bob");
        let c = ua.register(&["<sips:bob@client.biloxi.example.com>"], None);
        let r = ua.authenticate(
            &c,
            "MD5",
            "builder",
            &["<sips:bob@client.biloxi.example.com>"],
            None,
        );
        assert_eq!(r.code, 200);
        let c = ua.register(&["<mailto:bob@biloxi.example.com>"], None);
        assert_eq!(
            ua.authenticate(
                &c,
                "MD5",
                "builder",
                &["<mailto:bob@biloxi.example.com>"],
                None
            )
            .code,
            200
        );
        // 2.3: REGISTER without Contact -> the current list.
        let c = ua.register(&[], None);
        let r = ua.authenticate(&c, "SHA-256", "builder", &[], None);
        assert_eq!(r.code, 200, "{backend:?}: {}", r.raw);
        let uris: Vec<String> = r.contacts().into_iter().map(|c| c.0).collect();
        assert_eq!(
            uris,
            vec![
                "sips:bob@client.biloxi.example.com",
                "mailto:bob@biloxi.example.com"
            ]
        );
        // Closing the TLS flow removes its bindings (remove_on_close).
        drop(ua);
        std::thread::sleep(Duration::from_millis(300));
        let mut other = srv.ua_udp("bob");
        let c = other.register(&[], None);
        let r = other.authenticate(&c, "MD5", "builder", &[], None);
        assert_eq!(r.contacts().len(), 0, "{backend:?}: {}", r.raw);
    }
}

#[test]
fn binary_starts_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sipreg.toml");
    std::fs::write(
        &config,
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ntls = []\n[runtime]\nshards = 1\npin = false\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sipreg"))
        .arg("--config")
        .arg(&config)
        .args(["--mgmt", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // SIGTERM only once the binary says it started (it blocks the signals before that line):
    // a fixed sleep raced a loaded machine's start-up, and the default action killed it.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("sipreg started") {
                let _ = started_tx.send(());
            }
            err.push_str(&line);
            err.push('\n');
        }
        err
    });
    assert!(
        started_rx.recv_timeout(Duration::from_secs(60)).is_ok(),
        "no start within 60 s"
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");
    // SAFETY: sending SIGTERM to our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop within 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let err = reader.join().unwrap();
    assert!(
        err.contains("sipreg started") && err.contains("stopped"),
        "{err}"
    );
    // A broken config is refused with the field and line.
    std::fs::write(&config, "[registrar]\nmin_expirez = 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipreg"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("line 2") && msg.contains("min_expirez"),
        "{msg}"
    );
}

#[allow(dead_code)]
fn _reply_type_is_used(_: Reply) {}

#[test]
fn attacks_while_a_legitimate_user_registers() {
    use sipreg::engine::guard::{Lockout, RateLimit};
    for backend in backends() {
        let srv = TestServer::start(backend, true, |e, rt| {
            e.rate_limit = Some(RateLimit {
                per_second: 2000,
                burst: 2500,
                ban_secs: 30,
                reply_503: false,
                allow: vec![],
            });
            e.lockout = Some(Lockout {
                failures: 5,
                window_secs: 60,
                lock_secs: 300,
            });
            rt.idle_timeout = Duration::from_secs(1);
        });
        // Enumeration sweep: 1,000 user names, each answered with a 401 of the same shape.
        let mut scanner = Ua::udp_from("bob", srv.udp(), "127.0.0.4");
        let mut shapes = std::collections::BTreeSet::new();
        for i in 0..1000u32 {
            let mut probe = Ua::udp_from(&format!("user{i}"), srv.udp(), "127.0.0.4");
            let c = probe.register(&["<sip:p@192.0.2.1>"], None);
            let r = probe.authenticate(&c, "MD5", "guess", &["<sip:p@192.0.2.1>"], None);
            shapes.insert((r.code, r.header_names()));
        }
        // A known user with a wrong password answers exactly like the 1,000 probes.
        let c = scanner.register(&[], None);
        let known = scanner.authenticate(&c, "MD5", "guess", &[], None);
        shapes.insert((known.code, known.header_names()));
        assert_eq!(
            shapes.len(),
            1,
            "{backend:?}: every probe got the same answer shape"
        );
        assert_eq!(shapes.iter().next().map(|s| s.0), Some(401));

        // Password guessing against alice: locked after 5 failures; the legitimate alice from
        // another address is refused too while locked (per-user lockout), with the same 401.
        let mut guesser = Ua::udp_from("alice", srv.udp(), "127.0.0.5");
        for i in 0..7 {
            let c = guesser.register(&["<sip:alice@192.0.2.66>"], None);
            let r = guesser.authenticate(
                &c,
                "MD5",
                &format!("pw{i}"),
                &["<sip:alice@192.0.2.66>"],
                None,
            );
            assert_eq!(r.code, 401);
        }
        let mut alice = Ua::udp_from("alice", srv.udp(), "127.0.0.6");
        let c = alice.register(&["<sip:alice@192.0.2.9>"], None);
        assert_eq!(
            alice
                .authenticate(&c, "MD5", "wonderland", &["<sip:alice@192.0.2.9>"], None)
                .code,
            401,
            "{backend:?}: locked"
        );

        // A flood from one source is banned; bob, elsewhere, still registers.
        let flood = UdpSocket::bind("127.0.0.2:0").unwrap();
        let template = Ua::udp_from("bob", srv.udp(), "127.0.0.2");
        // 8,000 requests in paced chunks (the socket queue must not overflow, or the guard
        // would not see them): far beyond the 2,500 burst plus 2,000/s.
        for chunk in 0..160u32 {
            for i in 0..50 {
                let _ = flood.send_to(&template.build(1000 + chunk * 50 + i, &[], None), srv.udp());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut after = Ua::udp_from("bob", srv.udp(), "127.0.0.2");
        let msg = after.build(5000, &[], None);
        assert!(
            after.send_maybe(&msg, Duration::from_millis(300)).is_none(),
            "{backend:?}: flooding source banned"
        );
        let mut bob = Ua::udp_from("bob", srv.udp(), "127.0.0.3");
        let c = bob.register(&["<sip:bob@192.0.2.7>"], None);
        assert_eq!(
            bob.authenticate(&c, "MD5", "builder", &["<sip:bob@192.0.2.7>"], None)
                .code,
            200,
            "{backend:?}"
        );

        // Slow TCP clients: partial messages are reclaimed by the timeout.
        let mut slow: Vec<TcpStream> = (0..20)
            .map(|_| {
                let mut s = TcpStream::connect(srv.tcp()).unwrap();
                s.write_all(b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP x")
                    .unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s
            })
            .collect();
        // ... and TLS clients that never finish the handshake.
        slow.extend((0..5).map(|_| {
            let mut s = TcpStream::connect(srv.tls()).unwrap();
            s.write_all(b"\x16\x03\x01").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        }));
        std::thread::sleep(Duration::from_millis(2500));
        for s in &mut slow {
            let mut b = [0u8; 16];
            assert_eq!(
                retry(|| s.read(&mut b)).unwrap_or(0),
                0,
                "{backend:?}: slow connection closed"
            );
        }
        let open: u64 = srv
            .server()
            .stats()
            .iter()
            .map(|s| s.connections.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        assert_eq!(open, 0, "{backend:?}");
        let c = bob.register(&[], None);
        assert_eq!(
            bob.authenticate(&c, "MD5", "builder", &[], None).code,
            200,
            "{backend:?}: still serving"
        );
    }
}

/// The real binary, started by [`spawn_binary`].
struct Binary {
    child: std::process::Child,
    /// Its first UDP address.
    udp: SocketAddr,
    /// Its management API.
    mgmt: SocketAddr,
    logs: std::sync::mpsc::Receiver<String>,
}

/// Starts the real binary with `config` (management API on an ephemeral port, data directory
/// `data/` beside the config file), returns it with its addresses (from its start line). The
/// caller waits for the child.
fn spawn_binary(config: &std::path::Path) -> Binary {
    spawn_binary_with(config, &[])
}

#[allow(clippy::zombie_processes)]
fn spawn_binary_with(config: &std::path::Path, extra: &[&str]) -> Binary {
    use std::io::BufRead;
    let data = config.parent().unwrap().join("data");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sipreg"))
        .arg("--config")
        .arg(config)
        .args(["--mgmt", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .args(extra)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("start line");
        let plain: String = line.chars().filter(|c| !c.is_control()).collect();
        let field = |name: &str, close: char| -> Option<SocketAddr> {
            let rest = plain.split(name).nth(1)?;
            rest.split(close)
                .next()?
                .split(',')
                .next()?
                .trim()
                .parse()
                .ok()
        };
        if let (Some(udp), Some(mgmt)) = (field("udp=[", ']'), field("management=Some(", ')')) {
            return Binary {
                child,
                udp,
                mgmt,
                logs: rx,
            };
        }
    }
}

/// Stops the binary with SIGTERM and checks it exits cleanly; otherwise fails with its exit
/// status and the log lines the test had not read.
fn stop(mut child: std::process::Child, logs: &std::sync::mpsc::Receiver<String>) {
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    if !status.success() {
        let unread: Vec<String> = logs.try_iter().collect();
        panic!(
            "sipreg exited with {status}; unread log lines:\n{}",
            unread.join("\n")
        );
    }
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: signalling our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn sighup_reloads_credentials_and_keeps_bindings() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "alice:example.com:plain:wonderland\n").unwrap();
    let config = dir.path().join("sipreg.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ntls = []\n[runtime]\nshards = 1\npin = false\n\
             [registrar]\ndomains = [\"example.com\"]\n[auth]\nrealm = \"example.com\"\ncredentials = {:?}\n",
            users.display().to_string()
        ),
    )
    .unwrap();
    let Binary {
        child,
        udp: addr,
        logs,
        ..
    } = spawn_binary(&config);
    let mut alice = Ua::udp("alice", addr);
    let c = alice.register(&["<sip:alice@192.0.2.1>"], None);
    assert_eq!(
        alice
            .authenticate(&c, "MD5", "wonderland", &["<sip:alice@192.0.2.1>"], None)
            .code,
        200
    );
    let mut carol = Ua::udp("carol", addr);
    let c = carol.register(&["<sip:carol@192.0.2.2>"], None);
    assert_eq!(
        carol
            .authenticate(&c, "MD5", "c4rol", &["<sip:carol@192.0.2.2>"], None)
            .code,
        401,
        "unknown yet"
    );

    // A broken file is refused; the old credentials stay.
    std::fs::write(&users, "alice:example.com:plain:wonderland\nbroken line\n").unwrap();
    signal(&child, libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let line = logs
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("reload log");
        if line.contains("reload refused") {
            assert!(line.contains(":2:"), "the error names the line: {line}");
            break;
        }
    }
    let c = alice.register(&[], None);
    assert_eq!(
        alice
            .authenticate(&c, "MD5", "wonderland", &[], None)
            .contacts()
            .len(),
        1
    );

    // A good file adds carol; alice's binding survived both reloads.
    std::fs::write(
        &users,
        "alice:example.com:plain:wonderland\ncarol:example.com:plain:c4rol\n",
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    loop {
        let line = logs
            .recv_timeout(Duration::from_secs(5))
            .expect("reload log");
        if line.contains("configuration reloaded") {
            break;
        }
    }
    let c = carol.register(&["<sip:carol@192.0.2.2>"], None);
    assert_eq!(
        carol
            .authenticate(&c, "MD5", "c4rol", &["<sip:carol@192.0.2.2>"], None)
            .code,
        200
    );
    let c = alice.register(&[], None);
    assert_eq!(
        alice
            .authenticate(&c, "SHA-256", "wonderland", &[], None)
            .contacts()
            .len(),
        1
    );
    stop(child, &logs);
}

#[test]
fn wildcard_bind_replies_from_the_address_asked() {
    for backend in backends() {
        let srv = TestServer::start(backend, false, |_, rt| {
            rt.udp = vec!["0.0.0.0:0".parse().unwrap()];
            rt.tcp = vec![];
            rt.tls = vec![];
        });
        let port = srv.udp().port();
        for dest in ["127.0.0.1", "127.0.0.2"] {
            let to: SocketAddr = format!("{dest}:{port}").parse().unwrap();
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let ua = Ua::udp("pkt", to);
            sock.send_to(&ua.build(1, &[], None), to).unwrap();
            let mut buf = [0u8; 4096];
            let (_, from) = retry(|| sock.recv_from(&mut buf)).unwrap();
            assert_eq!(from, to, "{backend:?}: IP_PKTINFO picks the source address");
        }
    }
}

#[test]
fn overloaded_shard_sheds_load_with_503() {
    for backend in backends() {
        let srv = TestServer::start(backend, false, |_, rt| {
            rt.shards = 1;
            rt.overload_delay = Duration::from_millis(1);
        });
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let ua = Ua::udp("burst", srv.udp());
        for i in 0..5000 {
            let _ = sock.send_to(&ua.build(i + 1, &[], None), srv.udp());
        }
        let (mut ok, mut shed) = (0, 0);
        let mut buf = [0u8; 4096];
        while let Ok(n) = retry(|| sock.recv(&mut buf)) {
            if buf[..n].starts_with(b"SIP/2.0 503 Overloaded") {
                shed += 1;
            } else if buf[..n].starts_with(b"SIP/2.0 200") {
                ok += 1;
            }
        }
        assert!(
            shed > 0,
            "{backend:?}: a backlog beyond 1 ms is shed ({ok} ok)"
        );
        assert!(
            srv.server().stats()[0]
                .overloaded
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }
}
