//! Full engine handling: a no-auth REGISTER (new AOR each time and refresh of one AOR), a query,
//! and the two-request digest exchange (401 challenge, then the authenticated REGISTER).
//! Figures to report, not timed tests.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sipreg::engine::{AuthSettings, Engine, EngineConfig, Meta, Shared, Transport};
use sipreg::sip::{self, HeaderName, Message};
use sipreg::time::Instant;

fn meta() -> Meta {
    Meta {
        source: "192.0.2.10:5060".parse().unwrap(),
        local: "192.0.2.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        conn: None,
        overloaded: false,
    }
}

fn register(user: u64, cseq: u32, auth: Option<&str>) -> Vec<u8> {
    let mut m = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{user}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:u{user}@example.com>;tag=a73kszlfl\r\n\
         To: <sip:u{user}@example.com>\r\n\
         Call-ID: {user:016x}-9f2c4e1b7a@192.0.2.10\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:u{user}@192.0.2.10:5060;transport=udp>;+sip.instance=\"<urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301>\"\r\n\
         User-Agent: Yealink SIP-T46S 66.86.0.15\r\n\
         Expires: 3600\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, MESSAGE\r\n"
    );
    if let Some(a) = auth {
        m.push_str("Authorization: ");
        m.push_str(a);
        m.push_str("\r\n");
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m.into_bytes()
}

fn engine(auth: bool) -> Engine {
    let mut config = EngineConfig {
        domains: vec!["example.com".into()],
        store_capacity: 1 << 20,
        ..EngineConfig::default()
    };
    if auth {
        let users: String = (0..1000)
            .map(|i| format!("u{i}:example.com:plain:pw{i}\n"))
            .collect();
        config.auth = Some(AuthSettings {
            realm: "example.com".into(),
            algorithms: vec!["MD5".into(), "SHA-256".into()],
            credentials_text: users,
            credentials_name: "bench".into(),
            nonce_lifetime: Duration::from_secs(300),
            secret: [9; 32],
            bind_nonce_to_source: false,
            salt_seed: 1,
            one_time_nonces: false,
        });
    }
    Engine::new(Arc::new(Shared::new(config).expect("valid bench config")))
}

fn status(eng: &mut Engine) -> u16 {
    let t = eng.poll_transmit().expect("a response");
    match sip::parse_datagram(t.bytes, &sip::Limits::default()) {
        Ok(Message::Response(r)) => r.status().0,
        _ => 0,
    }
}

fn bench_engine(c: &mut Criterion) {
    let now = Instant::from_secs(1_700_000_000);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));

    let mut eng = engine(false);
    let mut n = 0u64;
    g.bench_function("register_new_aor_noauth", |b| {
        b.iter(|| {
            n += 1;
            let msg = register(n, 1, None);
            eng.handle_datagram(now, &meta(), black_box(&msg));
            black_box(eng.poll_transmit().map(|t| t.bytes.len()))
        })
    });

    let mut eng = engine(false);
    let msgs: Vec<Vec<u8>> = (1..=100_000).map(|cseq| register(7, cseq, None)).collect();
    let mut i = 0;
    g.bench_function("refresh_noauth", |b| {
        b.iter(|| {
            let msg = &msgs[i % msgs.len()];
            i += 1;
            eng.handle_datagram(now, &meta(), black_box(msg));
            black_box(eng.poll_transmit().map(|t| t.bytes.len()))
        })
    });

    let mut eng = engine(true);
    let mut user = 0u64;
    g.bench_function("digest_exchange_md5", |b| {
        b.iter(|| {
            user = (user + 1) % 1000;
            let first = register(user, 1, None);
            eng.handle_datagram(now, &meta(), &first);
            let challenge = eng.poll_transmit().expect("challenge").bytes.to_vec();
            let Ok(Message::Response(r)) = sip::parse_datagram(&challenge, &sip::Limits::default())
            else {
                panic!("401 parses")
            };
            let www = r
                .headers_named(HeaderName::WwwAuthenticate)
                .next()
                .expect("challenge");
            let ch = sipreg::auth::parse_challenge(www).expect("challenge parses");
            let mut value = Vec::with_capacity(256);
            sipreg::auth::write_authorization(
                &mut value,
                &ch,
                format!("u{user}").as_bytes(),
                format!("pw{user}").as_bytes(),
                b"REGISTER",
                b"sip:example.com",
                b"0a4f113b",
                1,
                b"",
            );
            let second = register(
                user,
                2,
                Some(std::str::from_utf8(&value).unwrap_or_default()),
            );
            eng.handle_datagram(now, &meta(), &second);
            black_box(status(&mut eng))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
