//! Store operations at 1M bindings: inserting new AORs, refreshing existing ones, lookups.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sipreg::store::{AorKey, NewBinding, Store, StoreConfig, Transport};
use sipreg::time::Instant;

const N: u32 = 1_000_000;
const T0: u32 = 1_700_000_000;

fn binding(contact: &str, expires_at: u32) -> NewBinding<'_> {
    NewBinding {
        contact: contact.as_bytes(),
        params: b"",
        call_id: b"0123456789abcdef0123456789abcdef",
        cseq: 1,
        expires_at,
        q: None,
        instance: None,
        reg_id: None,
        path: b"",
        source: "192.0.2.44:5060".parse().unwrap(),
        transport: Transport::Udp,
        conn: None,
        user_agent: b"Yealink SIP-T46S 66.86.0.15",
        registered_at: T0,
    }
}

fn bench_store(c: &mut Criterion) {
    let now = Instant::from_secs(u64::from(T0));
    let store = Store::new(&StoreConfig {
        capacity: 2 * N as usize,
        shards: 64,
        max_expires: 7200,
    });
    let keys: Vec<AorKey> = (0..N)
        .map(|i| AorKey::new(&format!("sip:user{i:06}@example.com")))
        .collect();
    let contacts: Vec<String> = (0..N)
        .map(|i| format!("sip:user{i:06}@192.0.2.44:5060;transport=udp"))
        .collect();
    for (k, c) in keys.iter().zip(&contacts) {
        store.modify(k, now, |b| b.push(&binding(c, T0 + 3600)));
    }
    let mut g = c.benchmark_group("store_1m");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("refresh", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            store.modify(&keys[i], now, |l| {
                l.replace(0, &binding(&contacts[i], T0 + 3600))
            })
        })
    });
    g.bench_function("lookup", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(store.lookup(&keys[i], now, |it| it.count()))
        })
    });
    let mut n = N;
    g.bench_function("insert_new_aor", |b| {
        b.iter(|| {
            n += 1;
            let k = AorKey::new(&format!("sip:user{n:07}@example.com"));
            store.modify(&k, now, |l| {
                l.push(&binding("sip:new@192.0.2.44:5060", T0 + 3600))
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
