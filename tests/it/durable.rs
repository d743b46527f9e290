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
