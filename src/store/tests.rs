use std::collections::BTreeMap;
use std::sync::Mutex;

use proptest::prelude::*;

use super::*;

const T0: u32 = 1_700_000_000;

fn at(secs: u32) -> Instant {
    Instant::from_secs(u64::from(secs))
}

fn nb(contact: &str, expires_at: u32) -> NewBinding<'_> {
    NewBinding {
        contact: contact.as_bytes(),
        params: b"",
        call_id: b"cid",
        cseq: 1,
        expires_at,
        q: None,
        instance: None,
        reg_id: None,
        path: b"",
        source: "192.0.2.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        conn: None,
        user_agent: b"ua",
        registered_at: T0,
    }
}

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl ChangeFeed for Log {
    fn on_change(&self, c: &Change<'_>) {
        let (k, aor, b) = match c {
            Change::Inserted { aor, binding } => ("ins", aor, binding),
            Change::Refreshed { aor, binding } => ("ref", aor, binding),
            Change::Removed { aor, binding } => ("rem", aor, binding),
            Change::Expired { aor, binding } => ("exp", aor, binding),
        };
        let contact = String::from_utf8_lossy(b.contact()).into_owned();
        self.0
            .lock()
            .unwrap()
            .push(format!("{k} {} {contact}", aor.as_str()));
    }
}

impl Log {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn logged() -> (Store, Arc<Log>) {
    let log = Arc::new(Log::default());
    let cfg = StoreConfig {
        capacity: 16,
        shards: 4,
        max_expires: 3600,
    };
    (Store::with_feed(&cfg, log.clone()), log)
}

#[test]
fn push_replace_remove_with_events_in_order() {
    let (store, log) = logged();
    let a = AorKey::new("sip:a@example.com");
    store.modify(&a, at(T0), |b| {
        b.push(&nb("sip:a@1", T0 + 60));
        b.push(&nb("sip:a@2", T0 + 60));
        b.replace(0, &nb("sip:a@1", T0 + 120));
        b.replace(9, &nb("sip:nope", T0 + 120));
        b.remove(1);
        b.remove(7);
    });
    assert_eq!(
        log.take(),
        vec![
            "ins sip:a@example.com sip:a@1",
            "ins sip:a@example.com sip:a@2",
            "ref sip:a@example.com sip:a@1",
            "rem sip:a@example.com sip:a@2"
        ]
    );
    assert_eq!((store.aor_count(), store.binding_count()), (1, 1));
    let seen = store.lookup(&a, at(T0), |it| {
        it.map(|b| b.expires_at()).collect::<Vec<_>>()
    });
    assert_eq!(seen, Some(vec![T0 + 120]));
    store.modify(&a, at(T0), |b| b.clear());
    assert_eq!(log.take(), vec!["rem sip:a@example.com sip:a@1"]);
    assert_eq!((store.aor_count(), store.binding_count()), (0, 0));
    assert!(
        store.read(a.as_bytes(), |_| ()).is_none(),
        "empty entry deleted"
    );
    assert!(store.lookup(&a, at(T0), |_| ()).is_none());
}

/// A new AOR given as text that is not ASCII packs into its bindings the text its key would
/// hold (`AorKey::from_text`'s lossy conversion); ASCII text as it is.
#[test]
fn a_new_aor_packs_the_text_its_key_holds() {
    let store = Store::new(&StoreConfig::default());
    for text in [
        &b"sip:a@example.com"[..],
        b"sip:\xff@x",
        b"sip:\xc3@example.com",
    ] {
        let packed = store.modify_text(text, at(T0), |b| {
            b.push(&nb("sip:a@1", T0 + 60));
            b.get(0).map(|b| b.aor().to_vec())
        });
        assert_eq!(packed.as_deref(), Some(AorKey::from_text(text).as_bytes()));
    }
}

#[test]
fn modify_by_text_reaches_the_same_aor() {
    for feed in [true, false] {
        let (store, log) = if feed {
            let (s, l) = logged();
            (s, Some(l))
        } else {
            (Store::new(&StoreConfig::default()), None)
        };
        let a = AorKey::new("sip:a@example.com");
        // A new AOR by text: stored, counted, its expiry scheduled, its events keyed.
        store.modify_text(a.as_bytes(), at(T0), |b| b.push(&nb("sip:a@1", T0 + 60)));
        store.modify(&a, at(T0), |b| b.push(&nb("sip:a@2", T0 + 120)));
        store.modify_text(b"sip:a@example.com", at(T0), |b| {
            assert_eq!(b.len(), 2);
            b.replace(0, &nb("sip:a@1", T0 + 90));
        });
        assert_eq!((store.aor_count(), store.binding_count()), (1, 2));
        if let Some(log) = &log {
            assert_eq!(
                log.take(),
                vec![
                    "ins sip:a@example.com sip:a@1",
                    "ins sip:a@example.com sip:a@2",
                    "ref sip:a@example.com sip:a@1"
                ]
            );
        }
        assert_eq!(store.handle_timeout(at(T0 + 90)), 1);
        assert_eq!(store.handle_timeout(at(T0 + 120)), 1);
        assert_eq!((store.aor_count(), store.binding_count()), (0, 0));
        // Emptied by text: the entry goes.
        store.modify_text(a.as_bytes(), at(T0), |b| b.push(&nb("sip:a@1", T0 + 60)));
        store.modify_text(a.as_bytes(), at(T0), |b| b.clear());
        assert_eq!((store.aor_count(), store.binding_count()), (0, 0));
        assert!(
            store.read(a.as_bytes(), |_| ()).is_none(),
            "empty entry deleted"
        );
    }
}

#[test]
fn expired_bindings_are_invisible_then_purged() {
    let (store, log) = logged();
    let a = AorKey::new("sip:a@example.com");
    store.modify(&a, at(T0), |b| {
        b.push(&nb("sip:short", T0 + 10));
        b.push(&nb("sip:long", T0 + 100));
    });
    log.take();
    let live = |now| store.lookup(&a, at(now), |it| it.count());
    assert_eq!(live(T0 + 9), Some(2));
    assert_eq!(live(T0 + 10), Some(1), "expiry instant is exclusive");
    assert_eq!(live(T0 + 100), None);
    // modify purges before the closure sees the list.
    let n = store.modify(&a, at(T0 + 50), |b| b.len());
    assert_eq!(n, 1);
    assert_eq!(log.take(), vec!["exp sip:a@example.com sip:short"]);
    assert_eq!(store.binding_count(), 1);
}

#[test]
fn wheel_expires_exactly_the_due_bindings() {
    let (store, log) = logged();
    let a = AorKey::new("sip:a@x");
    let b = AorKey::new("sip:b@x");
    store.modify(&a, at(T0), |l| l.push(&nb("sip:a1", T0 + 30)));
    store.modify(&b, at(T0), |l| l.push(&nb("sip:b1", T0 + 60)));
    // Refresh a: its old wheel entry (T0+30) becomes stale.
    store.modify(&a, at(T0 + 20), |l| l.replace(0, &nb("sip:a1", T0 + 90)));
    log.take();
    assert_eq!(store.poll_timeout(), Some(at(T0 + 30)));
    assert_eq!(store.handle_timeout(at(T0 + 29)), 0);
    assert_eq!(
        store.handle_timeout(at(T0 + 45)),
        0,
        "stale entry expires nothing"
    );
    assert_eq!(store.handle_timeout(at(T0 + 60)), 1);
    assert_eq!(log.take(), vec!["exp sip:b@x sip:b1"]);
    // Removed before its time: never reported as expired.
    store.modify(&a, at(T0 + 61), |l| l.remove(0));
    log.take();
    assert_eq!(store.handle_timeout(at(T0 + 200)), 0);
    assert!(log.take().is_empty());
    assert_eq!((store.aor_count(), store.binding_count()), (0, 0));
    // A sweep long after (more than one ring turn) still finds everything due.
    store.modify(&a, at(T0 + 300), |l| l.push(&nb("sip:late", T0 + 400)));
    assert_eq!(store.handle_timeout(at(T0 + 100_000)), 1);
}

#[test]
fn oldest_and_load() {
    let (store, log) = logged();
    let a = AorKey::new("sip:a@x");
    store.modify(&a, at(T0), |l| {
        l.push(&NewBinding {
            registered_at: T0 + 5,
            ..nb("sip:1", T0 + 60)
        });
        l.push(&NewBinding {
            registered_at: T0 + 1,
            ..nb("sip:2", T0 + 60)
        });
        l.push(&NewBinding {
            registered_at: T0 + 1,
            ..nb("sip:3", T0 + 60)
        });
        assert_eq!(l.oldest(), Some(1));
    });
    log.take();
    let c = AorKey::new("sip:c@x");
    assert!(store.load(&c, &nb("sip:c1", T0 + 10), at(T0)));
    assert!(
        !store.load(&c, &nb("sip:c2", T0), at(T0)),
        "expired not loaded"
    );
    assert!(log.take().is_empty(), "load emits no events");
    assert_eq!((store.aor_count(), store.binding_count()), (2, 4));
    assert_eq!(store.handle_timeout(at(T0 + 10)), 1);
}

#[test]
fn concurrent_modifications_keep_counts_consistent() {
    let store = Arc::new(Store::new(&StoreConfig {
        capacity: 64,
        shards: 8,
        max_expires: 3600,
    }));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let store = store.clone();
            std::thread::Builder::new()
                .spawn(move || {
                    for i in 0..2000u32 {
                        let aor = AorKey::new(&format!("sip:u{}@x", i % 50));
                        let contact = format!("sip:c{}-{t}", i % 3);
                        store.modify(&aor, at(T0), |l| {
                            let pos = l.iter().position(|b| b.contact() == contact.as_bytes());
                            match pos {
                                Some(idx) if i % 2 == 0 => l.remove(idx),
                                Some(idx) => l.replace(idx, &nb(&contact, T0 + 100)),
                                None => l.push(&nb(&contact, T0 + 100)),
                            }
                        });
                    }
                })
                .unwrap()
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut aors = 0;
    let mut bindings = 0;
    for entry in store.parts.iter().flat_map(|p| p.iter()) {
        aors += 1;
        bindings += entry.value().list.len();
        assert!(!entry.value().list.is_empty());
    }
    assert_eq!((store.aor_count(), store.binding_count()), (aors, bindings));
}

#[derive(Debug, Clone)]
enum Op {
    Push(u8, u8, u16),
    Remove(u8, u8),
    /// A closure that changes nothing (a query), by text.
    Query(u8),
    Advance(u16),
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, 0u8..3, 1u16..200).prop_map(|(a, c, e)| Op::Push(a, c, e)),
        (0u8..4, 0u8..3).prop_map(|(a, c)| Op::Remove(a, c)),
        (0u8..4).prop_map(Op::Query),
        (1u16..120).prop_map(Op::Advance),
        Just(Op::Sweep),
    ]
}

proptest! {
    /// Random operations give the same visible state as a plain model.
    #[test]
    fn matches_a_simple_model(ops in proptest::collection::vec(op(), 1..80)) {
        let store = Store::new(&StoreConfig { capacity: 4, shards: 4, max_expires: 300 });
        let mut model: BTreeMap<u8, Vec<(u8, u32)>> = BTreeMap::new();
        let mut now = T0;
        for op in ops {
            match op {
                Op::Push(a, c, e) => {
                    let aor = AorKey::new(&format!("sip:{a}@x"));
                    let contact = format!("sip:{c}");
                    let push = |l: &mut Bindings<'_>| {
                        let pos = l.iter().position(|b| b.contact() == contact.as_bytes());
                        match pos {
                            Some(i) => l.replace(i, &nb(&contact, now + u32::from(e))),
                            None => l.push(&nb(&contact, now + u32::from(e))),
                        }
                    };
                    // By key and by text (the engine's way) alike.
                    if c % 2 == 0 {
                        store.modify(&aor, at(now), push);
                    } else {
                        store.modify_text(aor.as_bytes(), at(now), push);
                    }
                    let list = model.entry(a).or_default();
                    list.retain(|(_, exp)| *exp > now);
                    match list.iter_mut().find(|(mc, _)| *mc == c) {
                        Some(slot) => slot.1 = now + u32::from(e),
                        None => list.push((c, now + u32::from(e))),
                    }
                }
                Op::Remove(a, c) => {
                    let aor = AorKey::new(&format!("sip:{a}@x"));
                    let contact = format!("sip:{c}");
                    store.modify(&aor, at(now), |l| {
                        let pos = l.iter().position(|b| b.contact() == contact.as_bytes());
                        if let Some(i) = pos {
                            l.remove(i);
                        }
                    });
                    if let Some(list) = model.get_mut(&a) {
                        list.retain(|(mc, exp)| *mc != c && *exp > now);
                    }
                }
                Op::Query(a) => {
                    let n = store.modify_text(format!("sip:{a}@x").as_bytes(), at(now), |l| l.len());
                    if let Some(list) = model.get_mut(&a) {
                        list.retain(|(_, exp)| *exp > now);
                    }
                    let want = model.get(&a).map_or(0, Vec::len);
                    prop_assert_eq!(n, want);
                }
                Op::Advance(s) => now += u32::from(s),
                Op::Sweep => {
                    store.handle_timeout(at(now));
                    for list in model.values_mut() {
                        list.retain(|(_, exp)| *exp > now);
                    }
                }
            }
            for a in 0u8..4 {
                let aor = AorKey::new(&format!("sip:{a}@x"));
                let mut got: Vec<(u8, u32)> = store
                    .lookup(&aor, at(now), |it| {
                        it.map(|b| (b.contact()[4] - b'0', b.expires_at())).collect()
                    })
                    .unwrap_or_default();
                let mut want: Vec<(u8, u32)> = model
                    .get(&a)
                    .map(|l| l.iter().copied().filter(|(_, exp)| *exp > now).collect())
                    .unwrap_or_default();
                got.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(got, want);
            }
            // The map holds exactly the AORs with bindings (expired-but-unswept ones
            // included), none empty, and the counters agree with it.
            let (mut aors, mut bindings) = (0, 0);
            for part in store.parts.iter() {
                for entry in part.iter() {
                    let e = entry.value();
                    prop_assert!(!e.list.is_empty());
                    // Found by its text; every binding carries it; its wheel entry comes at
                    // or before its earliest expiry.
                    prop_assert!(store.read(e.aor(), |_| ()).is_some());
                    prop_assert!(e.list.iter().all(|b| b.aor() == e.aor()));
                    prop_assert!(earliest(&e.list).is_some_and(|m| e.due <= m));
                    aors += 1;
                    bindings += entry.value().list.len();
                }
            }
            prop_assert_eq!((store.aor_count(), store.binding_count()), (aors, bindings));
        }
        store.handle_timeout(at(now + 1000));
        prop_assert_eq!((store.aor_count(), store.binding_count()), (0, 0));
    }
}

/// Pages through the whole store with `limit` AORs per call.
fn scan_all(
    store: &Store,
    limit: usize,
    now: Instant,
    filter: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let next = store.scan(
            cursor.as_ref(),
            limit,
            now,
            filter,
            &mut |aor, live| {
                assert!(live.count() > 0, "only AORs with live bindings");
                seen.push(aor.as_str().to_owned());
            },
            &mut || true,
        );
        match next {
            // The text form round-trips (HTTP cursors).
            Some(c) => cursor = Some(ScanCursor::decode(&c.encode()).unwrap()),
            None => return seen,
        }
    }
}

#[test]
fn scan_visits_every_aor_once_in_pages_of_any_size() {
    let store = Store::new(&StoreConfig {
        capacity: 16,
        shards: 8,
        max_expires: 3600,
    });
    for i in 0..500 {
        let aor = AorKey::new(&format!(
            "sip:u{i}@{}",
            if i % 5 == 0 { "b.example" } else { "a.example" }
        ));
        // Every seventh AOR has only an expired binding: not visited.
        let exp = if i % 7 == 0 { T0 - 1 } else { T0 + 60 };
        store.modify(&aor, at(T0 - 10), |b| b.push(&nb("sip:x@192.0.2.1", exp)));
    }
    let live = (0..500).filter(|i| i % 7 != 0).count();
    let all = |_: &str| true;
    let full = scan_all(&store, usize::MAX, at(T0), &all);
    assert_eq!(full.len(), live);
    for limit in [1, 2, 3, 64, 499, 1000] {
        assert_eq!(scan_all(&store, limit, at(T0), &all), full, "limit {limit}");
    }
    let b = |a: &str| a.ends_with("@b.example");
    assert_eq!(
        scan_all(&store, 7, at(T0), &b).len(),
        (0..500).filter(|i| i % 5 == 0 && i % 7 != 0).count()
    );
    // Stopping early returns a cursor that resumes exactly after the last visited AOR.
    let mut first = Vec::new();
    let mut n = 0;
    let c = store
        .scan(
            None,
            usize::MAX,
            at(T0),
            &all,
            &mut |a, _| first.push(a.as_str().to_owned()),
            &mut || {
                n += 1;
                n < 10
            },
        )
        .unwrap();
    assert!(
        !first.is_empty() && first.len() <= 10,
        "stopped early: {}",
        first.len()
    );
    let mut rest = Vec::new();
    assert!(store
        .scan(
            Some(&c),
            usize::MAX,
            at(T0),
            &all,
            &mut |a, _| rest.push(a.as_str().to_owned()),
            &mut || true
        )
        .is_none());
    first.extend(rest);
    assert_eq!(first, full);
    assert!(ScanCursor::decode("xyz").is_none());
    assert!(ScanCursor::decode("0123.sip:a@b").is_none());
}

#[test]
fn scan_is_exact_for_aors_that_live_through_concurrent_changes() {
    let store = Store::new(&StoreConfig {
        capacity: 4,
        shards: 4,
        max_expires: 3600,
    });
    let stable: Vec<AorKey> = (0..300)
        .map(|i| AorKey::new(&format!("sip:s{i}@x")))
        .collect();
    for aor in &stable {
        store.modify(aor, at(T0), |b| b.push(&nb("sip:s@192.0.2.1", T0 + 600)));
    }
    // Between pages, churn: new AORs arrive (the maps grow and rehash), others leave.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut round = 0;
    loop {
        let next = store.scan(
            cursor.as_ref(),
            13,
            at(T0),
            &|_| true,
            &mut |a, _| seen.push(a.clone()),
            &mut || true,
        );
        // Bounded churn: the walk must still end.
        for j in 0..if round < 20 { 200 } else { 0 } {
            let aor = AorKey::new(&format!("sip:churn{round}-{j}@x"));
            store.modify(&aor, at(T0), |b| b.push(&nb("sip:c@192.0.2.1", T0 + 600)));
            if j % 2 == 0 {
                store.modify(&aor, at(T0), |b| b.clear());
            }
        }
        round += 1;
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    for aor in &stable {
        assert_eq!(seen.iter().filter(|s| *s == aor).count(), 1, "{aor:?}");
    }
}

#[test]
fn refreshes_do_not_grow_the_wheel_and_expiry_follows_the_last_refresh() {
    let (store, log) = logged();
    let a = AorKey::new("sip:r@example.com");
    for i in 0..1000 {
        // Each refresh, one second later, moves the expiry one second later.
        store.modify(&a, at(T0 + i), |b| {
            let n = nb("sip:r@1", T0 + i + 60);
            if b.is_empty() {
                b.push(&n);
            } else {
                b.replace(0, &n);
            }
        });
    }
    assert_eq!(
        store.wheels.len(),
        1,
        "one entry for the AOR, not one per refresh"
    );
    log.take();
    // The first entry fires at T0 + 60: nothing is due, it moves to the current expiry.
    assert_eq!(store.handle_timeout(at(T0 + 61)), 0);
    assert_eq!(store.binding_count(), 1);
    assert_eq!(store.wheels.len(), 1);
    assert_eq!(store.handle_timeout(at(T0 + 999 + 59)), 0);
    assert_eq!(store.handle_timeout(at(T0 + 999 + 60)), 1);
    assert_eq!(log.take(), vec!["exp sip:r@example.com sip:r@1"]);
    assert_eq!((store.binding_count(), store.wheels.len()), (0, 0));
    // An added contact that expires earlier gets its own entry.
    store.modify(&a, at(T0), |b| b.push(&nb("sip:r@1", T0 + 600)));
    store.modify(&a, at(T0), |b| b.push(&nb("sip:r@2", T0 + 100)));
    assert_eq!(store.wheels.len(), 2);
    assert_eq!(store.handle_timeout(at(T0 + 100)), 1);
    assert_eq!(store.handle_timeout(at(T0 + 600)), 1);
    assert_eq!(store.binding_count(), 0);
}

/// The stable hash is part of stored ids and of the partition order: pinned values, whatever the
/// code around it (inlining, unrolling) becomes.
#[test]
fn stable_hash_known_answers() {
    let cases: [(&[&[u8]], u64); 5] = [
        (&[], 0x5979_a8dd_ab6f_6c88),
        (&[b""], 0x7bac_5360_e616_af03),
        (&[b"sip:u1@example.com"], 0xa237_1c08_edeb_51a6),
        (
            &[
                b"sip:u7@192.0.2.10:5060;transport=udp",
                b"<urn:uuid:3f2504e0>",
            ],
            0x9e5f_483e_17e2_6057,
        ),
        (
            &[
                b"0000000000000007-9f2c4e1b7a@192.0.2.10",
                b"a73kszlfl",
                &7u32.to_le_bytes(),
            ],
            0xf1fa_780f_0d5c_4a61,
        ),
    ];
    for (parts, want) in cases {
        assert_eq!(stable_hash(parts), want, "{parts:?}");
    }
}

/// The partition hash is the management scan's order, which a cursor carries across restarts:
/// pinned values for the usual lengths (17 to 31 bytes, folded inline), [`stable_hash`]'s (pinned
/// above) for any other.
#[test]
fn aor_hash_known_answers() {
    let cases: [(&[u8], u64); 4] = [
        (b"sip:u1@example.com", 0x9994_320b_3c8c_f891),
        (b"sip:alice@example.com", 0xc8ee_e67f_0065_96c1),
        (b"sip:u1234567@a.example.com", 0x62f1_6ded_23c4_6ebf),
        (b"sip:+15551234567@example.org", 0xc000_f53c_e9d2_27a5),
    ];
    for (text, want) in cases {
        assert!((17..32).contains(&text.len()));
        assert_eq!(aor_hash(text), want, "{:?}", std::str::from_utf8(text));
    }
    for len in (0..17).chain(32..80) {
        let text: Vec<u8> = (0..len).map(|i| b"sip:u1@example.com;"[i % 19]).collect();
        assert_eq!(aor_hash(&text), stable_hash(&[&text]), "{len}");
    }
}

/// The folded hashes tell apart texts whose four covering words are the same (a repeated
/// byte, different lengths), and the table hash is keyed: two stores' hashers hash every
/// length differently, one hasher always alike.
#[test]
fn aor_hashes_tell_lengths_apart_and_the_table_hash_is_keyed() {
    let (a, b) = (TableHasher::new(), TableHasher::new());
    let mut stable = std::collections::HashSet::new();
    let mut keyed = std::collections::HashSet::new();
    for len in 0..=40 {
        let text = vec![b'x'; len];
        assert_eq!(text_hash(&a, &text), text_hash(&a, &text.clone()));
        assert_ne!(text_hash(&a, &text), text_hash(&b, &text), "{len}");
        assert!(stable.insert(aor_hash(&text)), "{len}");
        assert!(keyed.insert(text_hash(&a, &text)), "{len}");
    }
}

/// The usual AORs of one domain spread over the partitions (the top bits of the partition
/// hash) and over a table's buckets (its low bits): 4,096 of them over 256 partitions and
/// 256 buckets, none empty and none with more than three times its share.
#[test]
fn usual_aors_spread_over_partitions_and_buckets() {
    let hasher = TableHasher::new();
    let (mut parts, mut buckets) = ([0u32; 256], [0u32; 256]);
    for i in 0..4096 {
        let aor = format!("sip:u{i}@example.com");
        parts[(aor_hash(aor.as_bytes()) >> 56) as usize] += 1;
        buckets[(text_hash(&hasher, aor.as_bytes()) & 255) as usize] += 1;
    }
    for counts in [parts, buckets] {
        assert!(counts.iter().all(|&n| (1..=48).contains(&n)), "{counts:?}");
    }
}

/// `purge_and_earliest` against the obvious two passes: the same bindings left (in order), the
/// same `Expired` events (in order), the same count and earliest expiry, for every list of up
/// to four bindings with expiries before, at and after `now`.
#[test]
fn purge_and_earliest_is_purge_then_earliest() {
    let now = T0 + 10;
    let expiries = [T0 + 5, now, now + 1, now + 30];
    let contacts = ["sip:a@h", "sip:b@h", "sip:c@h", "sip:d@h"];
    let mut compared = 0;
    for n in 0..=4u32 {
        for pick in 0..4u32.pow(n) {
            let list: List = (0..n)
                .map(|k| {
                    let e = expiries[(pick / 4u32.pow(k) % 4) as usize];
                    Binding::pack(&nb(contacts[k as usize], e))
                })
                .collect();
            let (mut got, mut want) = (list.clone(), list);
            let (mut got_ev, mut want_ev) = (Events::new(), Events::new());
            let got_out = purge_and_earliest(&mut got, now, Some(&mut got_ev));
            let mut oracle: List = SmallVec::new();
            for b in want.drain(..) {
                if b.expires_at() <= now {
                    want_ev.push((Kind::Expired, b));
                } else {
                    oracle.push(b);
                }
            }
            let want_out = (n as usize - oracle.len(), earliest(&oracle));
            assert_eq!(
                (got_out, &got[..], &got_ev[..]),
                (want_out, &oracle[..], &want_ev[..])
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 1 + 4 + 16 + 64 + 256);
}

/// A key made from bytes is the key made from the same text (hash, equality, order and the
/// stable hash alike); bytes that are not ASCII keep the UTF-8 invariant of `as_str`.
#[test]
fn key_from_text_is_key_from_str() {
    use std::hash::BuildHasher;
    let hasher = foldhash::fast::RandomState::default();
    for text in ["sip:a@example.com", "tel:+15551234", "", "sip:é@x"] {
        let (by_str, by_bytes) = (AorKey::new(text), AorKey::from_text(text.as_bytes()));
        assert_eq!(by_str, by_bytes);
        assert_eq!(by_bytes.as_str(), text);
        assert_eq!(hasher.hash_one(&by_str), hasher.hash_one(text.as_bytes()));
        assert_eq!(aor_hash(by_bytes.as_bytes()), aor_hash(text.as_bytes()));
    }
    assert!(AorKey::new("sip:a@x") < AorKey::from_text(b"sip:b@x"));
    assert_eq!(AorKey::from_text(b"sip:\xff@x").as_str(), "sip:\u{fffd}@x");
}

/// The word-wise ASCII check answers what `<[u8]>::is_ascii` answers, for every length up to
/// 80 with one non-ASCII byte at each position (and none).
#[test]
fn ascii_check_is_std_is_ascii() {
    let mut compared = 0;
    for len in 0..=80usize {
        let text: Vec<u8> = (0..len).map(|i| b"sip:u1@example.com;x"[i % 20]).collect();
        assert!(is_ascii(&text));
        for at in 0..len {
            for high in [0x80, 0xc3, 0xff] {
                let mut t = text.clone();
                t[at] = high;
                assert_eq!(is_ascii(&t), t.is_ascii(), "{len} {at}");
                assert!(!is_ascii(&t));
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 3 * 80 * 81 / 2);
}

/// A wheel entry names its AOR by partition and table hash: its sweep purges the AORs along
/// that hash's probe whose own entry is due, and leaves an AOR not due yet (a stale entry) as
/// it is, its entry included.
#[test]
fn a_sweep_touches_only_due_aors() {
    let store = Store::new(&StoreConfig::default());
    let a = AorKey::new("sip:due@example.com");
    store.modify(&a, at(T0), |b| b.push(&nb("sip:d@1", T0 + 100)));
    let stable = aor_hash(a.as_bytes());
    let (part, map) = (store.part_index(stable), store.part_at(stable));
    let hash = table_hash(map, a.as_bytes());
    assert_eq!(store.expire(part, hash, T0 + 50), 0);
    assert_eq!(store.expire(part, hash ^ 1, T0 + 50), 0);
    assert_eq!(store.expire(usize::MAX, hash, T0 + 200), 0);
    assert_eq!((store.binding_count(), store.wheels.len()), (1, 1));
    assert_eq!(store.expire(part, hash, T0 + 100), 1);
    assert_eq!((store.aor_count(), store.binding_count()), (0, 0));
    assert!(store.read(a.as_bytes(), |_| ()).is_none());
    // Its entry in the wheel is now stale: the sweep that consumes it finds nothing.
    assert_eq!(store.handle_timeout(at(T0 + 100)), 0);
    assert_eq!(store.wheels.len(), 0);
}

/// A sweep under another hash that finds an AOR (its tag matched) reschedules that AOR's next
/// expiry under the AOR's own hash, not the sweep's: after the table grows, only its own hash's
/// probe sequence is sure to reach it.
#[test]
fn a_sweep_reschedules_under_the_aors_own_hash() {
    let store = Store::new(&StoreConfig::default());
    let a = AorKey::new("sip:two@example.com");
    store.modify(&a, at(T0), |b| {
        b.push(&nb("sip:early@1", T0 + 100));
        b.push(&nb("sip:late@1", T0 + 300));
    });
    let stable = aor_hash(a.as_bytes());
    let (part, map) = (store.part_index(stable), store.part_at(stable));
    let hash = table_hash(map, a.as_bytes());
    // Its own wheel entry (at T0 + 100) is taken out; a sweep under another hash with the same
    // tag (top 7 bits), lock shard (the bits below them) and probe start (the low bits under
    // the bucket mask) finds it due: bit 40 is none of those.
    store.wheels.drain_due(T0 + 100, |_, _| {});
    assert_eq!(store.expire(part, hash ^ (1 << 40), T0 + 100), 1);
    assert_eq!(store.binding_count(), 1);
    let mut scheduled = Vec::new();
    store
        .wheels
        .drain_due(T0 + 300, |p, h| scheduled.push((p, h)));
    assert_eq!(scheduled, vec![(part, hash)]);
}
