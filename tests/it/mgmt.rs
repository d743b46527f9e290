//! The management plane: every endpoint in process (both backends), `sipreg ctl` and
//! `POST /v1/reload` against the real binary, and a `stress_` dump of 1M bindings under load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sipreg::mgmt::{Context, Management, MgmtConfig, ServerInfo};

use super::client::Ua;
use super::{backends, spawn_binary, Binary, TestServer};

const TOKEN: &str = "0123456789abcdef-test-token";

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    )
}

/// (status, body) of one request.
pub(crate) fn http(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    let resp = agent()
        .run(request.body(()).unwrap())
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The value of one sample in Prometheus text, parsed with a Prometheus text parser.
fn sample(text: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    for s in &scrape.samples {
        if s.metric != name {
            continue;
        }
        if let Some((k, v)) = label {
            if s.labels.get(k) != Some(v) {
                continue;
            }
        }
        return match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => h.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        };
    }
    panic!("no sample {name} {label:?} in\n{text}")
}

#[test]
fn management_api_endpoints() {
    for backend in backends() {
        let server = TestServer::start(backend, false, |_, _| {});
        let shared = Arc::clone(&server.shared);
        let fail_reload = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&fail_reload);
        let ctx = Context::new(
            shared,
            Box::new(move || {
                if flag.load(Ordering::SeqCst) {
                    Err("registrar.min_expires: bigger than max_expires".into())
                } else {
                    Ok("limits and registrar policy".into())
                }
            }),
        );
        let mgmt = Management::start(
            &MgmtConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                token: Some(TOKEN.into()),
            },
            Arc::clone(&ctx),
        )
        .unwrap();
        let base = format!("http://{}", mgmt.local_addr());
        let get = |path: &str| http("GET", &format!("{base}{path}"), Some(TOKEN));

        // Probes need no token; not ready until the server is registered.
        assert_eq!(http("GET", &format!("{base}/healthz"), None).0, 200);
        assert_eq!(http("GET", &format!("{base}/readyz"), None).0, 503);
        ctx.set_ready(ServerInfo {
            backend: server.server().backend(),
            shards: server.server().stats().to_vec(),
        });
        assert_eq!(http("GET", &format!("{base}/readyz"), None).0, 200);
        // Everything else needs the token.
        for (method, path) in [
            ("GET", "/v1/stats"),
            ("GET", "/metrics"),
            ("POST", "/v1/reload"),
        ] {
            assert_eq!(
                http(method, &format!("{base}{path}"), None).0,
                401,
                "{path}"
            );
            assert_eq!(
                http(
                    method,
                    &format!("{base}{path}"),
                    Some("wrong-token-0123456")
                )
                .0,
                401
            );
        }

        // Bindings: alice (two contacts), bob, carol@other.example.
        let mut alice = server.ua_udp("alice");
        let r = alice.register(
            &["<sip:alice@192.0.2.1>;q=0.5", "<sip:alice@192.0.2.2>"],
            None,
        );
        assert_eq!(r.code, 200, "{}", r.raw);
        assert_eq!(
            server
                .ua_udp("bob")
                .register(&["<sip:bob@192.0.2.3>"], None)
                .code,
            200
        );

        let (status, body) = get("/v1/aors/sip:alice@example.com");
        assert_eq!(status, 200, "{body}");
        let v = json(&body);
        let list = v["bindings"].as_array().unwrap();
        assert_eq!(list.len(), 2, "{body}");
        let first = list
            .iter()
            .find(|b| b["contact"] == "sip:alice@192.0.2.1")
            .unwrap();
        assert_eq!(first["q"], 0.5);
        assert_eq!(first["transport"], "udp");
        assert!(first["expires"].as_u64().unwrap() > 3500, "{first}");
        assert!(first["source"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(first["cseq"].as_u64().unwrap() >= 1);
        // Percent-encoded and scheme-less forms name the same AOR.
        assert_eq!(get("/v1/aors/alice%40example.com").0, 200);
        assert_eq!(get("/v1/aors/sip:nobody@example.com").0, 404);
        assert_eq!(get("/v1/aors/mailto:x@y").0, 400);

        // Stats and metrics agree with what happened.
        let stats = json(&get("/v1/stats").1);
        assert_eq!(stats["bindings"], 3, "{stats}");
        assert_eq!(stats["aors"], 2);
        assert!(stats["ready"].as_bool().unwrap());
        let wait_metric = |name: &str, label: Option<(&str, &str)>, at_least: f64| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let (status, text) = get("/metrics");
                assert_eq!(status, 200);
                let v = sample(&text, name, label);
                if v >= at_least {
                    return (v, text);
                }
                assert!(std::time::Instant::now() < deadline, "{name} stays at {v}");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let (ok, text) = wait_metric(
            "sipreg_register_responses_total",
            Some(("code", "200")),
            2.0,
        );
        assert_eq!(sample(&text, "sipreg_bindings", None), 3.0);
        assert!(sample(&text, "sipreg_request_duration_seconds_count", None) >= 2.0);
        assert_eq!(
            sample(
                &text,
                "sipreg_backend",
                Some(("backend", &format!("{backend:?}").to_lowercase()))
            ),
            1.0
        );
        sample(
            &text,
            "sipreg_shard_busy_seconds_total",
            Some(("shard", "0")),
        );
        sample(&text, "sipreg_shard_rx_queue_bytes", Some(("shard", "1")));
        // One more 200 and one 423 move their counters.
        assert_eq!(alice.register(&["<sip:alice@192.0.2.1>"], None).code, 200);
        assert_eq!(
            alice.register(&["<sip:alice@192.0.2.9>"], Some(5)).code,
            423
        );
        wait_metric(
            "sipreg_register_responses_total",
            Some(("code", "200")),
            ok + 1.0,
        );
        wait_metric(
            "sipreg_register_responses_total",
            Some(("code", "423")),
            1.0,
        );

        // The dump: NDJSON, filters, pagination by cursor.
        assert_eq!(
            server
                .ua_udp("carol")
                .register(&["<sip:carol@192.0.2.4>"], None)
                .code,
            200
        );
        let lines = |body: &str| body.lines().map(json).collect::<Vec<_>>();
        let all = lines(&get("/v1/bindings").1);
        assert_eq!(all.len(), 4, "{all:?}");
        let ids: HashSet<String> = all
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(lines(&get("/v1/bindings?prefix=ali").1).len(), 2);
        assert_eq!(lines(&get("/v1/bindings?domain=other.example").1).len(), 0);
        let mut paged = Vec::new();
        let mut cursor = String::new();
        for _ in 0..10 {
            let page = lines(&get(&format!("/v1/bindings?limit=1{cursor}")).1);
            let (next, bindings): (Vec<_>, Vec<_>) = page
                .into_iter()
                .partition(|l| l.get("next_cursor").is_some());
            paged.extend(bindings);
            match next.first() {
                Some(n) => {
                    let c = n["next_cursor"].as_str().unwrap();
                    cursor = format!("&cursor={}", c.replace('%', "%25").replace('+', "%2B"));
                }
                None => break,
            }
        }
        let paged_ids: HashSet<String> = paged
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(paged_ids, ids, "pages cover every binding once");
        assert_eq!(paged.len(), 4);
        assert_eq!(get("/v1/bindings?limit=0").0, 400);
        assert_eq!(get("/v1/bindings?cursor=garbage").0, 400);

        // Deleting one binding, then the whole AOR.
        let id = first["id"].as_str().unwrap();
        let del = |path: &str| http("DELETE", &format!("{base}{path}"), Some(TOKEN));
        assert_eq!(
            del(&format!("/v1/aors/sip:alice@example.com/bindings/{id}")).0,
            200
        );
        assert_eq!(
            del(&format!("/v1/aors/sip:alice@example.com/bindings/{id}")).0,
            404
        );
        assert_eq!(del("/v1/aors/sip:alice@example.com/bindings/xyz").0, 400);
        let left = json(&get("/v1/aors/sip:alice@example.com").1);
        assert_eq!(left["bindings"].as_array().unwrap().len(), 1);
        let (status, body) = del("/v1/aors/sip:bob@example.com");
        assert_eq!((status, json(&body)["removed"].as_u64()), (200, Some(1)));
        assert_eq!(get("/v1/aors/sip:bob@example.com").0, 404);
        // A query over SIP sees the deletion too.
        let q = alice.register(&[], None);
        assert_eq!(q.contacts().len(), 1, "{}", q.raw);

        // Reload: refused with the reason, then accepted.
        let (status, body) = http("POST", &format!("{base}/v1/reload"), Some(TOKEN));
        assert_eq!(status, 422);
        assert!(json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("min_expires"));
        fail_reload.store(false, Ordering::SeqCst);
        assert_eq!(
            http("POST", &format!("{base}/v1/reload"), Some(TOKEN)).0,
            200
        );

        assert_eq!(get("/v1/nothing").0, 404);
        assert_eq!(
            http("DELETE", &format!("{base}/v1/stats"), Some(TOKEN)).0,
            405
        );
        mgmt.shutdown();
    }
}

/// Runs `sipreg ctl` against `mgmt`.
fn ctl(mgmt: std::net::SocketAddr, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipreg"))
        .arg("ctl")
        .args(["--url", &format!("http://{mgmt}")])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ctl_and_reload_against_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sipreg.toml");
    let write_config = |min_expires: u32, extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ntls = []\n[runtime]\nshards = 1\npin = false\n\
                 [registrar]\ndomains = [\"example.com\"]\nmin_expires = {min_expires}\n{extra}"
            ),
        )
        .unwrap();
    };
    write_config(60, "");
    let Binary {
        child,
        udp,
        mgmt,
        logs,
    } = spawn_binary(&config);
    let mut alice = Ua::udp("alice", udp);
    assert_eq!(
        alice.register(&["<sip:alice@192.0.2.1>"], Some(120)).code,
        200
    );

    let (code, out, err) = ctl(mgmt, &["lookup", "sip:alice@example.com"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sip:alice@192.0.2.1") && out.contains("udp/127.0.0.1"),
        "{out}"
    );
    let (code, out, _) = ctl(mgmt, &["--json", "lookup", "alice@example.com"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = v["bindings"][0]["id"].as_str().unwrap().to_owned();
    let (code, out, _) = ctl(mgmt, &["dump"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("sip:alice@example.com") && out.contains("1 bindings"),
        "{out}"
    );
    let (code, out, _) = ctl(mgmt, &["--json", "stats"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["bindings"],
        1
    );
    let (code, _, err) = ctl(mgmt, &["lookup", "sip:nobody@example.com"]);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");

    // Reload through the API: limits change without losing the binding.
    write_config(300, "");
    let (code, out, err) = ctl(mgmt, &["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("limits"), "{out}");
    let r = alice.register(&["<sip:alice@192.0.2.1>"], Some(120));
    assert_eq!(r.code, 423, "the new min_expires is in force: {}", r.raw);
    assert!(r.raw.contains("Min-Expires: 300"), "{}", r.raw);
    // A broken file is refused with the field; the running configuration stays.
    write_config(300, "max_contactz = 3\n");
    let (code, _, err) = ctl(mgmt, &["reload"]);
    assert_eq!(code, 1);
    assert!(err.contains("max_contactz"), "{err}");
    write_config(9000, "");
    let (code, _, err) = ctl(mgmt, &["reload"]);
    assert_eq!(code, 1);
    assert!(err.contains("min_expires"), "{err}");
    assert_eq!(
        alice.register(&["<sip:alice@192.0.2.1>"], Some(120)).code,
        423
    );
    assert_eq!(
        alice.register(&["<sip:alice@192.0.2.1>"], Some(600)).code,
        200
    );

    let (code, out, _) = ctl(mgmt, &["delete", "sip:alice@example.com", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("removed 1"), "{out}");
    assert_eq!(alice.register(&[], None).contacts().len(), 0);
    // Unreachable API: exit 2.
    let (code, _, _) = ctl("127.0.0.1:1".parse().unwrap(), &["stats"]);
    assert_eq!(code, 2);

    super::stop(child, &logs);
}

/// Dumps 1M bindings (or `SIPREG_STRESS_BINDINGS`) while UDP REGISTERs run, and reports the
/// dump rate, the registration rate with and without a dump running, and the RSS growth during
/// the dump. `cargo test --release --test it -- --ignored stress_dump --nocapture`
#[test]
#[ignore = "stress: 1M bindings"]
fn stress_dump_1m_bindings_under_load() {
    let n: usize = std::env::var("SIPREG_STRESS_BINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let server = TestServer::start(sipreg::runtime::Backend::Fallback, false, |e, rt| {
        e.store_capacity = n + n / 4;
        e.max_bindings = n + 1000;
        e.rate_limit = None;
        rt.shards = 1;
    });
    let shared = Arc::clone(&server.shared);
    let store = shared.store();
    let now = sipreg::time::Instant::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let t = std::time::Instant::now();
    for i in 0..n {
        let aor = sipreg::store::AorKey::new(&format!("sip:user{i}@example.com"));
        let contact = format!("sip:user{i}@192.0.2.{}:5060", i % 250);
        store.load(
            &aor,
            &sipreg::store::NewBinding {
                contact: contact.as_bytes(),
                params: b"",
                call_id: format!("call-{i}").as_bytes(),
                cseq: 1,
                expires_at: u32::try_from(now.as_secs()).unwrap() + 3600,
                registered_at: u32::try_from(now.as_secs()).unwrap(),
                q: None,
                instance: None,
                reg_id: None,
                path: b"",
                user_agent: b"stress",
                source: "127.0.0.1:5060".parse().unwrap(),
                transport: sipreg::store::Transport::Udp,
                conn: None,
            },
            now,
        );
    }
    eprintln!("loaded {n} bindings in {:?}", t.elapsed());
    let ctx = Context::new(Arc::clone(&shared), Box::new(|| Ok(String::new())));
    ctx.set_ready(ServerInfo {
        backend: server.server().backend(),
        shards: server.server().stats().to_vec(),
    });
    let mgmt = Management::start(
        &MgmtConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
        },
        ctx,
    )
    .unwrap();

    // Background load: 64 users re-registering over one socket, one request in flight each
    // (throughput-bound, not latency-bound).
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, done, target) = (Arc::clone(&stop), Arc::clone(&done), server.udp());
        std::thread::spawn(move || {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let port = sock.local_addr().unwrap().port();
            let mut cseq = [0u32; 64];
            let send = |i: usize, cseq: &mut [u32; 64]| {
                cseq[i] += 1;
                let msg = format!(
                    "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{i}-{c};rport\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:load{i}@example.com>;tag=t{i}\r\nTo: <sip:load{i}@example.com>\r\n\
                     Call-ID: load-{i}\r\nCSeq: {c} REGISTER\r\nContact: <sip:load{i}@192.0.2.9>\r\nContent-Length: 0\r\n\r\n",
                    c = cseq[i]
                );
                let _ = sock.send_to(msg.as_bytes(), target);
            };
            for i in 0..64 {
                send(i, &mut cseq);
            }
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = sock.recv(&mut buf) else {
                    // A lost datagram: restart every user.
                    for i in 0..64 {
                        send(i, &mut cseq);
                    }
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("SIP/2.0 200") {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                let user = text
                    .split("Call-ID: load-")
                    .nth(1)
                    .and_then(|r| r.split('\r').next()?.parse::<usize>().ok());
                if let Some(i) = user.filter(|i| *i < 64) {
                    send(i, &mut cseq);
                }
            }
        })
    };
    let rate = |secs: f64| {
        let before = done.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs_f64(secs));
        (done.load(Ordering::Relaxed) - before) as f64 / secs
    };
    let idle_rate = rate(2.0);
    let rss = || -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let rss_before = rss();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let dumping = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, dumping) = (Arc::clone(&peak), Arc::clone(&dumping));
        std::thread::spawn(move || {
            while dumping.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let before = done.load(Ordering::Relaxed);
    let t = std::time::Instant::now();
    let resp = agent()
        .get(&format!("http://{}/v1/bindings", mgmt.local_addr()))
        .call()
        .unwrap();
    let mut reader = std::io::BufReader::new(resp.into_body().into_reader());
    let (mut lines, mut bytes) = (0usize, 0usize);
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0 {
        lines += 1;
        bytes += line.len();
        line.clear();
    }
    let took = t.elapsed();
    let during = (done.load(Ordering::Relaxed) - before) as f64 / took.as_secs_f64();
    dumping.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let growth_mib = (peak.load(Ordering::Relaxed).saturating_sub(rss_before)) as f64 / 1024.0;
    eprintln!(
        "dump: {lines} bindings, {:.1} MiB in {:.2} s = {:.0} bindings/s; RSS growth during the dump {growth_mib:.1} MiB; \
         registrations/s (64 in flight): {idle_rate:.0} without a dump, {during:.0} during it ({:+.1} %)",
        bytes as f64 / 1048576.0,
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64(),
        (during / idle_rate - 1.0) * 100.0
    );
    assert!(lines > n, "every binding dumped ({lines})");
    assert!(
        growth_mib < 64.0,
        "constant memory: grew {growth_mib:.1} MiB"
    );
    mgmt.shutdown();
}
