//! Several sipreg nodes sharing one location service on a real `redis-server` (standalone and
//! a 3-master Redis Cluster), on loopback. `.ci/run` installs redis-server when it is absent;
//! without it these tests are skipped with a loud message.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sipreg::engine::{decode_value, RemoteSettings};
use sipreg::remote::{RedisConfig, RedisLocation};
use sipreg::runtime::{Backend, RemoteStore};

use super::mgmt::http;
use super::{client::Ua, TestServer};

/// The redis-server binary, or None (with a loud message) when it is not installed.
fn redis_server_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("redis-server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "\n*** SKIPPING this Redis test: redis-server is not installed \
             (apt-get install redis-server; .ci/run does it) ***\n"
        );
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server child on a loopback port, killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    binary: PathBuf,
}

impl Redis {
    fn start(binary: &Path, dir: &Path, extra: &[&str]) -> Self {
        let mut r = Self {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            binary: binary.to_owned(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.query(&["PING"]).is_none() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// One command through a fresh synchronous connection; None when unreachable.
    fn query(&self, args: &[&str]) -> Option<redis::Value> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut c = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c).ok()
    }

    fn int(&self, args: &[&str]) -> i64 {
        match self.query(args) {
            Some(redis::Value::Int(n)) => n,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// Stops the server the way an operator would (`SHUTDOWN`, which saves when persistence
    /// is on), or kills it.
    fn stop(&mut self, kill: bool) {
        if !kill {
            let _ = self.query(&["SHUTDOWN"]);
        }
        if let Some(mut c) = self.child.take() {
            if kill {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// A standalone redis-server in a fresh directory, or None (skipped loudly).
fn standalone(extra: &[&str]) -> Option<(tempfile::TempDir, Redis)> {
    let bin = redis_server_binary()?;
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&bin, dir.path(), extra);
    Some((dir, redis))
}

/// A registrar node in this process whose bindings live in Redis.
struct Node {
    server: TestServer,
    location: Arc<RedisLocation>,
}

impl Node {
    fn start(backend: Backend, urls: &[String], cluster: bool, node: u64) -> Self {
        let config = RedisConfig {
            urls: urls.to_vec(),
            cluster,
            key_prefix: "sipreg:".into(),
            // Generous: the test machine is shared and debug builds are slow (an outage is
            // still noticed at once: the connection is refused).
            timeout: Duration::from_secs(2),
            queue: 4096,
        };
        let location = RedisLocation::start(&config, 2).expect("valid Redis config");
        let store = Arc::clone(&location) as Arc<dyn RemoteStore>;
        let server = TestServer::start(backend, false, |engine, rt| {
            engine.remote = Some(RemoteSettings {
                node,
                max_pending: 4096,
                ..RemoteSettings::default()
            });
            rt.remote = Some(store);
            // The whole suite shares a loaded machine: no overload shedding here.
            rt.overload_delay = Duration::from_secs(10);
        });
        Self { server, location }
    }

    fn udp(&self, user: &str) -> Ua {
        self.server.ua_udp(user)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(s) = self.server.server.take() {
            s.shutdown().expect("clean shutdown");
        }
        self.location.close();
    }
}

/// Registers until the node answers 200 (it connects to Redis in the background).
fn register_when_ready(ua: &mut Ua, contact: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = ua.register(&[contact], Some(600));
        if r.code == 200 {
            return;
        }
        assert_eq!(r.code, 503, "{}", r.raw);
        assert!(Instant::now() < deadline, "Redis never became usable");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn contact_uris(r: &super::client::Reply) -> Vec<String> {
    let mut c: Vec<String> = r.contacts().into_iter().map(|(u, _)| u).collect();
    c.sort();
    c
}

#[test]
fn redis_nodes_share_bindings_expire_with_ttl_and_survive_a_node() {
    let Some((dir, redis)) = standalone(&["--appendonly", "no"]) else {
        return;
    };
    // Node A on io_uring (when available), node B on the fallback, node C the real binary.
    let a_backend = super::backends().pop().unwrap();
    let a = Node::start(a_backend, &[redis.url()], false, 1);
    let b = Node::start(Backend::Fallback, &[redis.url()], false, 2);

    let mut ua = a.udp("ann");
    register_when_ready(&mut ua, "<sip:ann@192.0.2.1:5060>");
    // B never saw the AOR: its query is answered from Redis.
    let mut on_b = b.udp("ann");
    register_when_ready(&mut on_b, "<sip:ann@192.0.2.2:5060>");
    let q = ua.register(&[], None);
    assert_eq!(
        contact_uris(&q),
        vec!["sip:ann@192.0.2.1:5060", "sip:ann@192.0.2.2:5060"],
        "{}",
        q.raw
    );
    // One key per AOR, hash-tagged, expiring with its latest binding.
    let key = "sipreg:{sip:ann@example.com}";
    let ttl = redis.int(&["TTL", key]);
    assert!((590..=600).contains(&ttl), "TTL {ttl}");
    on_b.register(&["<sip:ann@192.0.2.2:5060>"], Some(900));
    let ttl = redis.int(&["TTL", key]);
    assert!(
        (890..=900).contains(&ttl),
        "TTL follows the latest expiry: {ttl}"
    );

    // A TCP flow on B: its binding goes when the connection closes, A's bindings stay.
    {
        let mut tcp = b.server.ua_tcp("ann");
        let r = tcp.register(&["<sip:ann@192.0.2.3:5060;transport=tcp>"], Some(600));
        assert_eq!(r.contacts().len(), 3, "{}", r.raw);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while ua.register(&[], None).contacts().len() != 2 {
        assert!(
            Instant::now() < deadline,
            "the closed flow's binding stayed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The real binary joins with --redis and sees the same bindings.
    let cfg = dir.path().join("sipreg.toml");
    std::fs::write(
        &cfg,
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\ntls = []\n[runtime]\nshards = 1\n",
    )
    .unwrap();
    let mut c = super::spawn_binary_with(&cfg, &["--redis", &redis.url()]);
    let mut on_c = Ua::udp("ann", c.udp);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = on_c.register(&[], None);
        if r.code == 200 {
            assert_eq!(r.contacts().len(), 2, "{}", r.raw);
            break;
        }
        assert!(Instant::now() < deadline, "binary never reached Redis");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its management API reads and deletes in Redis.
    let api = format!("http://{}", c.mgmt);
    let (code, body) = http("GET", &format!("{api}/v1/aors/sip:ann@example.com"), None);
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let bindings = json["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 2, "{body}");
    let id = bindings
        .iter()
        .find(|b| b["contact"] == "sip:ann@192.0.2.2:5060")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, body) = http(
        "DELETE",
        &format!("{api}/v1/aors/sip:ann@example.com/bindings/{id}"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        contact_uris(&on_b.register(&[], None)),
        vec!["sip:ann@192.0.2.1:5060"],
        "node B sees the API's delete at once (its cached version is stale)"
    );
    assert_eq!(
        http(
            "GET",
            &format!("{api}/v1/aors/sip:nobody@example.com"),
            None
        )
        .0,
        404
    );
    // The dump walks Redis.
    let (code, body) = http("GET", &format!("{api}/v1/bindings"), None);
    assert_eq!(code, 200, "{body}");
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["contact"], "sip:ann@192.0.2.1:5060");
    assert_eq!(lines[0]["aor"], "sip:ann@example.com");
    let (code, body) = http("GET", &format!("{api}/v1/bindings?domain=other.org"), None);
    assert_eq!((code, body.as_str()), (200, ""));
    assert_eq!(
        http("GET", &format!("{api}/v1/bindings?cursor=abc"), None).0,
        400
    );
    let (_, stats) = http("GET", &format!("{api}/v1/stats"), None);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["location"], "redis");
    assert!(stats["bindings"].is_null(), "{stats}");
    let (_, metrics) = http("GET", &format!("{api}/metrics"), None);
    assert!(!metrics.contains("sipreg_bindings "), "{metrics}");
    assert!(
        metrics.contains("sipreg_location_ops_total{result=\"committed\"}"),
        "{metrics}"
    );
    on_b.register(&["<sip:ann@192.0.2.2:5060>"], Some(900));
    // The binary registers a contact of its own and is killed (SIGKILL): nothing is lost.
    let mut other = Ua::udp("ann", c.udp);
    let r = other.send(&other.build_with(1, &["<sip:ann@192.0.2.4:5060>"], Some(600), &[]));
    assert_eq!((r.code, r.contacts().len()), (200, 3), "{}", r.raw);
    super::signal(&c.child, libc::SIGKILL);
    let _ = c.child.wait();
    assert_eq!(on_b.register(&[], None).contacts().len(), 3);

    // Node A stops too; B still answers for everything A and C registered.
    drop(a);
    assert_eq!(on_b.register(&[], None).contacts().len(), 3);
    // Unregistering everything deletes the key.
    let r = on_b.build_with(50, &["*"], Some(0), &[]);
    let mut star = b.udp("ann");
    let r = star.send(&r);
    assert_eq!((r.code, r.contacts().len()), (200, 0), "{}", r.raw);
    assert_eq!(redis.int(&["EXISTS", key]), 0);
}

#[test]
fn redis_cseq_race_between_two_nodes_keeps_rfc_order() {
    let Some((_dir, redis)) = standalone(&["--appendonly", "no"]) else {
        return;
    };
    let a = Node::start(Backend::Fallback, &[redis.url()], false, 1);
    let b = Node::start(Backend::Fallback, &[redis.url()], false, 2);
    // Both nodes reach Redis before the race (a node still connecting answers 503).
    register_when_ready(&mut b.udp("warm-up"), "<sip:w@192.0.2.9:5060>");
    const AORS: usize = 40;
    let mut outcomes = (0, 0);
    for i in 0..AORS {
        let user = format!("race{i}");
        let mut first = a.udp(&user);
        register_when_ready(&mut first, "<sip:r@192.0.2.1:5060>");
        // The same UA's next two requests (same Call-ID) reach two nodes at the same time:
        // CSeq 10 refreshes on A, CSeq 9 (older) removes on B.
        let refresh = first.build(10, &["<sip:r@192.0.2.1:5060>"], Some(600));
        let remove = first.build(9, &["<sip:r@192.0.2.1:5060>"], Some(0));
        let barrier = Arc::new(Barrier::new(2));
        let (mut ua_a, mut ua_b) = (a.udp(&user), b.udp(&user));
        let (b1, b2) = (Arc::clone(&barrier), Arc::clone(&barrier));
        let t1 = std::thread::spawn(move || {
            b1.wait();
            ua_a.send(&refresh).code
        });
        let t2 = std::thread::spawn(move || {
            b2.wait();
            let r = ua_b.send(&remove);
            (r.code, r.raw)
        });
        let (ca, (cb, raw)) = (t1.join().unwrap(), t2.join().unwrap());
        assert_eq!(ca, 200, "CSeq 10 is always accepted");
        match cb {
            200 => outcomes.0 += 1, // B went first: removed, then A re-registered
            400 => outcomes.1 += 1, // A went first: B's older CSeq is refused
            other => panic!("unexpected {other} for {user}: {raw}"),
        }
        // Whatever the order, the binding of CSeq 10 is what Redis holds.
        let value = match redis.query(&["GET", &format!("sipreg:{{sip:{user}@example.com}}")]) {
            Some(redis::Value::BulkString(v)) => v,
            other => panic!("{user}: {other:?}"),
        };
        let (_, list) = decode_value(&value).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].cseq(), 10, "{user}");
    }
    eprintln!(
        "CSeq race over {AORS} AORs: older removal first {} times, refused {} times",
        outcomes.0, outcomes.1
    );
}

#[test]
fn redis_outage_answers_503_and_recovers_with_the_data() {
    // An operator's Redis: append-only file, fsync every write.
    let Some((_dir, mut redis)) = standalone(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--enable-debug-command",
        "yes",
    ]) else {
        return;
    };
    let a = Node::start(Backend::Fallback, &[redis.url()], false, 1);
    let mut ua = a.udp("otto");
    register_when_ready(&mut ua, "<sip:otto@192.0.2.1:5060>");

    redis.stop(false);
    let started = Instant::now();
    let r = ua.register(&["<sip:otto@192.0.2.1:5060>"], Some(600));
    assert_eq!(r.code, 503, "{}", r.raw);
    assert_eq!(r.header("Retry-After").as_deref(), Some("5"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "fails fast: {:?}",
        started.elapsed()
    );
    // Down for a while: every request fails fast, none waits in an unbounded queue.
    for _ in 0..20 {
        assert_eq!(ua.register(&[], None).code, 503);
    }

    redis.spawn();
    let back = Instant::now();
    let deadline = back + Duration::from_secs(10);
    let r = loop {
        let r = ua.register(&[], None);
        if r.code == 200 {
            break r;
        }
        assert!(Instant::now() < deadline, "never recovered: {}", r.raw);
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("recovered {:?} after Redis came back", back.elapsed());
    assert_eq!(
        contact_uris(&r),
        vec!["sip:otto@192.0.2.1:5060"],
        "the binding survived the Redis restart (AOF)"
    );
    assert!(
        a.location
            .stats()
            .unavailable
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    // A slow Redis (blocked for 1.5 s): requests give up after the node's timeout with 503,
    // and the node is back as soon as Redis is.
    let quick = {
        let config = RedisConfig {
            urls: vec![redis.url()],
            cluster: false,
            key_prefix: "sipreg:".into(),
            timeout: Duration::from_millis(300),
            queue: 64,
        };
        let location = RedisLocation::start(&config, 2).unwrap();
        let store = Arc::clone(&location) as Arc<dyn RemoteStore>;
        let server = TestServer::start(Backend::Fallback, false, |engine, rt| {
            engine.remote = Some(RemoteSettings {
                node: 9,
                ..RemoteSettings::default()
            });
            rt.remote = Some(store);
            rt.overload_delay = Duration::from_secs(10);
        });
        Node { server, location }
    };
    let mut q = quick.udp("otto");
    register_when_ready(&mut q, "<sip:otto@192.0.2.9:5060>");
    let url = redis.url();
    let sleeper = std::thread::spawn(move || {
        let client = redis::Client::open(url).unwrap();
        let mut c = client.get_connection().unwrap();
        let slept: redis::RedisResult<()> =
            redis::cmd("DEBUG").arg("SLEEP").arg("1.5").query(&mut c);
        slept.expect("DEBUG SLEEP");
    });
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let r = q.register(&[], None);
    assert_eq!(r.code, 503, "{}", r.raw);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    sleeper.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while q.register(&[], None).code != 200 {
        assert!(Instant::now() < deadline, "no recovery after a slow Redis");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(quick);

    // Killed (not shut down) Redis: the same.
    redis.stop(true);
    assert_eq!(ua.register(&[], None).code, 503);
}

#[test]
fn redis_cluster_three_masters() {
    let Some(bin) = redis_server_binary() else {
        return;
    };
    let cli = bin.with_file_name("redis-cli");
    if !cli.is_file() {
        eprintln!("\n*** SKIPPING the Redis Cluster test: redis-cli is not installed ***\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let masters: Vec<Redis> = (0..3)
        .map(|i| {
            Redis::start(
                &bin,
                &dir.path().join(format!("m{i}")),
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--appendonly",
                    "no",
                ],
            )
        })
        .collect();
    let addrs: Vec<String> = masters
        .iter()
        .map(|m| format!("127.0.0.1:{}", m.port))
        .collect();
    let out = Command::new(&cli)
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-cli --cluster create: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !masters.iter().all(|m| {
        matches!(m.query(&["CLUSTER", "INFO"]), Some(redis::Value::BulkString(v))
            if String::from_utf8_lossy(&v).contains("cluster_state:ok"))
    }) {
        assert!(Instant::now() < deadline, "cluster never became ok");
        std::thread::sleep(Duration::from_millis(100));
    }
    let urls: Vec<String> = masters.iter().map(Redis::url).collect();
    let a = Node::start(Backend::Fallback, &urls, true, 1);
    let b = Node::start(Backend::Fallback, &urls[1..2], true, 2);
    const AORS: usize = 120;
    for i in 0..AORS {
        let mut ua = a.udp(&format!("c{i}"));
        register_when_ready(&mut ua, &format!("<sip:c{i}@192.0.2.7:5060>"));
    }
    for i in 0..AORS {
        let mut ua = b.udp(&format!("c{i}"));
        let r = ua.register(&[], None);
        assert_eq!(
            contact_uris(&r),
            vec![format!("sip:c{i}@192.0.2.7:5060")],
            "{}",
            r.raw
        );
    }
    // The management dump's walk covers every master.
    let walked = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            b.location.scan(tx).await.unwrap();
            let mut aors = std::collections::BTreeSet::new();
            while let Some(item) = rx.recv().await {
                let (aor, value) = item.unwrap();
                assert_eq!(decode_value(&value).unwrap().1.len(), 1);
                aors.insert(aor);
            }
            aors
        })
    };
    assert_eq!(walked.len(), AORS);
    assert!(walked.contains("sip:c0@example.com"));
    let sizes: Vec<i64> = masters.iter().map(|m| m.int(&["DBSIZE"])).collect();
    assert_eq!(sizes.iter().sum::<i64>(), AORS as i64);
    assert!(
        sizes.iter().all(|&n| n > 0),
        "AORs spread over every master: {sizes:?}"
    );
    // The Call-ID/CSeq rule holds through the cluster: same UA (Call-ID), older CSeq, via B.
    let mut ua = b.udp("c0");
    let r = ua.send(&ua.build(0, &["<sip:c0@192.0.2.7:5060>"], Some(0)));
    assert_eq!(r.code, 400, "{}", r.raw);
    let r = ua.send(&ua.build(100, &["<sip:c0@192.0.2.7:5060>"], Some(0)));
    assert_eq!((r.code, r.contacts().len()), (200, 0), "{}", r.raw);
    assert_eq!(
        masters.iter().map(|m| m.int(&["DBSIZE"])).sum::<i64>(),
        AORS as i64 - 1
    );
}

#[test]
fn redis_max_contacts_holds_under_concurrent_nodes() {
    let Some((_dir, redis)) = standalone(&["--appendonly", "no"]) else {
        return;
    };
    let start = |node| {
        let config = RedisConfig {
            urls: vec![redis.url()],
            cluster: false,
            key_prefix: "sipreg:".into(),
            timeout: Duration::from_secs(2),
            queue: 4096,
        };
        let location = RedisLocation::start(&config, 2).unwrap();
        let store = Arc::clone(&location) as Arc<dyn RemoteStore>;
        let server = TestServer::start(Backend::Fallback, false, |engine, rt| {
            engine.max_contacts = 5;
            engine.remote = Some(RemoteSettings {
                node,
                ..RemoteSettings::default()
            });
            rt.remote = Some(store);
            rt.overload_delay = Duration::from_secs(10);
        });
        Node { server, location }
    };
    let nodes = [start(1), start(2)];
    let mut warm = nodes[0].udp("hot");
    let r = loop {
        let r = warm.register(&[], None);
        if r.code == 200 {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(r.contacts().is_empty());
    // 16 phones (each its own Call-ID) register one contact each on one AOR at once, through
    // two nodes: exactly 5 may get in.
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let mut ua = Ua::udp("hot", nodes[i % 2].server.udp());
            ua.set_call_id(&format!("phone-{i}"));
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let r = ua.register(&[&format!("<sip:hot@192.0.2.{i}:5060>")], Some(600));
                (r.code, r.raw.lines().next().unwrap_or_default().to_owned())
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let count = |what: &str| answers.iter().filter(|(_, l)| l.contains(what)).count();
    let (ok, full, busy) = (
        count("200 OK"),
        count("Too Many Bindings"),
        count("Location Service Unavailable"),
    );
    eprintln!("hot AOR: {ok} registered, {full} refused (max contacts), {busy} gave up after losing 8 races");
    assert_eq!(ok + full + busy, 16, "{answers:?}");
    assert!(ok <= 5, "{answers:?}");
    if busy == 0 {
        assert_eq!(ok, 5, "{answers:?}");
    }
    // Redis holds exactly the bindings that were acknowledged.
    let value = match redis.query(&["GET", "sipreg:{sip:hot@example.com}"]) {
        Some(redis::Value::BulkString(v)) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(decode_value(&value).unwrap().1.len(), ok);
}

#[test]
fn redis_expiry_leaves_nothing_behind() {
    let Some((_dir, redis)) = standalone(&["--appendonly", "no"]) else {
        return;
    };
    let config = RedisConfig {
        urls: vec![redis.url()],
        cluster: false,
        key_prefix: "sipreg:".into(),
        timeout: Duration::from_secs(2),
        queue: 64,
    };
    let location = RedisLocation::start(&config, 2).unwrap();
    let store = Arc::clone(&location) as Arc<dyn RemoteStore>;
    let server = TestServer::start(Backend::Fallback, false, |engine, rt| {
        engine.min_expires = 1;
        engine.remote = Some(RemoteSettings {
            node: 5,
            ..RemoteSettings::default()
        });
        rt.remote = Some(store);
        rt.overload_delay = Duration::from_secs(10);
    });
    let node = Node { server, location };
    let mut ua = node.udp("eve");
    register_when_ready(&mut ua, "<sip:nobody@192.0.2.9:5060>;expires=0");
    // Expiry times are whole seconds: start just after a second begins.
    loop {
        let frac = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis();
        if frac < 50 {
            break;
        }
        std::thread::sleep(Duration::from_millis(u64::from(1000 - frac).min(20)));
    }
    let r = ua.register(&["<sip:eve@192.0.2.1:5060>;expires=1"], None);
    assert_eq!(r.contacts().len(), 1, "{}", r.raw);
    let r = ua.register(&["<sip:eve@192.0.2.2:5060>;expires=3"], None);
    assert_eq!(r.contacts().len(), 2, "{}", r.raw);
    let key = "sipreg:{sip:eve@example.com}";
    std::thread::sleep(Duration::from_millis(1300));
    // The first binding expired: invisible, although the value still holds it.
    assert_eq!(
        contact_uris(&ua.register(&[], None)),
        vec!["sip:eve@192.0.2.2:5060"]
    );
    assert_eq!(redis.int(&["EXISTS", key]), 1);
    // With its last binding the value expires in Redis by itself: no sweep, nothing left.
    std::thread::sleep(Duration::from_millis(2400));
    assert_eq!(redis.int(&["EXISTS", key]), 0);
    assert_eq!(redis.int(&["DBSIZE"]), 0);
}
