//! Storage engine comparison for sipreg's persistence write pattern (issue 7): N writes of
//! 200-byte values under 24-60 byte keys (60 % new keys, 30 % overwrites, 10 % deletes), batches
//! of 4096, group commit (fsync) at most every 10 ms; then a reopen and a full scan (the load at
//! start). fjall 3 (the engine sipreg uses) against redb 4.
//!
//!     cargo run --release --features persist-bench --example persist_bench -- 1000000
#![allow(clippy::disallowed_methods, missing_docs)]

use redb::{ReadableDatabase, ReadableTable};
use std::time::{Duration, Instant};

const VALUE: usize = 200;

fn key(i: u64) -> Vec<u8> {
    // 24-60 byte keys: "sip:userNNN@domain" + 0 + 8-byte id.
    let mut k = format!("sip:user{i}@example{}.com", i % 1000).into_bytes();
    while k.len() < 24 + (i % 36) as usize {
        k.push(b'x');
    }
    k.push(0);
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// The op stream: 1M writes, 30 % overwrites of earlier keys, 10 % deletes.
fn ops(n: u64) -> Vec<(u64, bool)> {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = 0;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let r = x % 100;
        if r < 60 || next == 0 {
            out.push((next, false));
            next += 1;
        } else if r < 90 {
            out.push((x % next, false));
        } else {
            out.push((x % next, true));
        }
    }
    out
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut t = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let m = e.metadata().unwrap();
        t += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    t
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let ops = ops(n);
    let value = vec![7u8; VALUE];
    let window = Duration::from_millis(10);
    let batch = 4096;
    for engine in ["fjall", "redb"] {
        let dir = tempfile::tempdir_in(".").unwrap();
        let t = Instant::now();
        let mut syncs = 0;
        match engine {
            "fjall" => {
                let db = fjall::Database::builder(dir.path())
                    .manual_journal_persist(true)
                    .open()
                    .unwrap();
                let ks = db
                    .keyspace("b", fjall::KeyspaceCreateOptions::default)
                    .unwrap();
                let mut last = Instant::now();
                for chunk in ops.chunks(batch) {
                    let mut b = db.batch();
                    for (k, del) in chunk {
                        if *del {
                            b.remove(&ks, key(*k));
                        } else {
                            b.insert(&ks, key(*k), value.clone());
                        }
                    }
                    b.commit().unwrap();
                    if last.elapsed() >= window {
                        db.persist(fjall::PersistMode::SyncData).unwrap();
                        syncs += 1;
                        last = Instant::now();
                    }
                }
                db.persist(fjall::PersistMode::SyncData).unwrap();
                let w = t.elapsed();
                drop(ks);
                drop(db);
                let t2 = Instant::now();
                let db = fjall::Database::builder(dir.path()).open().unwrap();
                let ks = db
                    .keyspace("b", fjall::KeyspaceCreateOptions::default)
                    .unwrap();
                let mut live = 0u64;
                for kv in ks.iter() {
                    let (_k, v) = kv.into_inner().unwrap();
                    live += (v.len() == VALUE) as u64;
                }
                let l = t2.elapsed();
                println!("fjall: {n} writes in {w:.2?} = {:.0}/s, {syncs} syncs; load {live} live in {l:.2?} = {:.0}/s; disk {} B/live", n as f64 / w.as_secs_f64(), live as f64 / l.as_secs_f64(), dir_size(dir.path()) / live.max(1));
            }
            _ => {
                const T: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("b");
                let db = redb::Database::create(dir.path().join("db.redb")).unwrap();
                let mut last = Instant::now();
                for chunk in ops.chunks(batch) {
                    let mut tx = db.begin_write().unwrap();
                    let sync = last.elapsed() >= window;
                    tx.set_durability(if sync {
                        redb::Durability::Immediate
                    } else {
                        redb::Durability::None
                    })
                    .unwrap();
                    {
                        let mut t = tx.open_table(T).unwrap();
                        for (k, del) in chunk {
                            if *del {
                                t.remove(key(*k).as_slice()).unwrap();
                            } else {
                                t.insert(key(*k).as_slice(), value.as_slice()).unwrap();
                            }
                        }
                    }
                    tx.commit().unwrap();
                    if sync {
                        syncs += 1;
                        last = Instant::now();
                    }
                }
                let mut tx = db.begin_write().unwrap();
                tx.set_durability(redb::Durability::Immediate).unwrap();
                tx.commit().unwrap();
                let w = t.elapsed();
                drop(db);
                let t2 = Instant::now();
                let db = redb::Database::create(dir.path().join("db.redb")).unwrap();
                let rt = db.begin_read().unwrap();
                let t = rt.open_table(T).unwrap();
                let mut live = 0u64;
                for kv in t.iter().unwrap() {
                    let (_k, v) = kv.unwrap();
                    live += (v.value().len() == VALUE) as u64;
                }
                let l = t2.elapsed();
                println!("redb:  {n} writes in {w:.2?} = {:.0}/s, {syncs} syncs; load {live} live in {l:.2?} = {:.0}/s; disk {} B/live", n as f64 / w.as_secs_f64(), live as f64 / l.as_secs_f64(), dir_size(dir.path()) / live.max(1));
            }
        }
    }
}
