//! Bytes per binding: registers N single-contact AORs with realistic sizes through the store
//! (mimalloc, as in the server) and prints RSS growth / N.
//!
//!     cargo run --release --example binding_mem -- 1000000
#![allow(clippy::disallowed_methods)]

use sipreg::store::{AorKey, NewBinding, Store, StoreConfig, Transport};
use sipreg::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let t0 = 1_700_000_000u32;
    let now = Instant::from_secs(u64::from(t0));
    let before = rss_bytes();
    let store = Store::new(&StoreConfig {
        capacity: n as usize,
        shards: 64,
        max_expires: 7200,
    });
    let mut contact = String::new();
    let mut call_id = String::new();
    for i in 0..n {
        let aor = AorKey::new(&format!("sip:user{i:06}@example.com"));
        contact.clear();
        contact.push_str(&format!("sip:user{i:06}@192.0.2.44:5060;transport=udp"));
        call_id.clear();
        call_id.push_str(&format!("{i:08x}a1b2c3d4e5f60718293a4b5c"));
        store.modify(&aor, now, |b| {
            b.push(&NewBinding {
                contact: contact.as_bytes(),
                params: b"",
                call_id: call_id.as_bytes(),
                cseq: 1,
                expires_at: t0 + 3600 + (i % 3600),
                q: None,
                instance: None,
                reg_id: None,
                path: b"",
                source: "192.0.2.44:5060".parse().unwrap(),
                transport: Transport::Udp,
                conn: None,
                user_agent: b"Yealink SIP-T46S 66.86.0.15",
                registered_at: t0,
            })
        });
    }
    let after = rss_bytes();
    println!("bindings: {}", store.binding_count());
    println!(
        "size_of::<Binding>() = {} bytes",
        size_of::<sipreg::store::Binding>()
    );
    println!("RSS growth: {} MiB", (after - before) / (1 << 20));
    println!(
        "bytes per binding: {:.0}",
        (after - before) as f64 / f64::from(n)
    );
}
