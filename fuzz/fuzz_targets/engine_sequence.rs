//! The engine fed sequences of operations with fabricated time. After every step: responses
//! parse, no AOR holds more than max_contacts bindings, and every listed binding has
//! 0 < expires <= max_expires.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sipreg::engine::{ConnId, Engine, EngineConfig, Meta, Shared, Transport};
use sipreg::sip::{self, Contact, Message};
use sipreg::time::Instant;

#[derive(Arbitrary, Debug)]
enum Op {
    Raw(Vec<u8>),
    Register { user: u8, call: u8, cseq: u16, contacts: Vec<(u8, Option<u16>)>, expires: Option<u16>, wildcard: bool },
    Stream(Vec<u8>),
    Advance(u16),
    Close,
}

const MAX_CONTACTS: usize = 3;
const MAX_EXPIRES: u32 = 600;

fn check(bytes: &[u8]) {
    match sip::parse_datagram(bytes, &sip::Limits::default()) {
        Ok(Message::Response(r)) => {
            let listed: Vec<u32> = r
                .contacts()
                .filter_map(|c| match c {
                    Ok(Contact::Addr(a)) => a.expires().ok().flatten(),
                    _ => None,
                })
                .collect();
            assert!(listed.len() <= MAX_CONTACTS, "too many bindings listed");
            if r.status().0 == 200 {
                assert!(listed.iter().all(|&e| e > 0 && e <= MAX_EXPIRES), "bad expires {listed:?}");
            }
        }
        other => panic!("engine wrote something that is not a response: {other:?}"),
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let config = EngineConfig {
        max_contacts: MAX_CONTACTS,
        max_expires: MAX_EXPIRES,
        min_expires: 30,
        default_expires: 300,
        store_capacity: 64,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(Arc::new(Shared::new(config).unwrap()));
    let mut now = Instant::from_secs(1_700_000_000);
    let udp = Meta { source: "192.0.2.1:5060".parse().unwrap(), local: "192.0.2.2:5060".parse().unwrap(), transport: Transport::Udp, conn: None, overloaded: false };
    let tcp = Meta { transport: Transport::Tcp, conn: Some(ConnId(1)), ..udp };
    let mut stream = Vec::new();
    for op in ops.into_iter().take(64) {
        match op {
            Op::Raw(b) => engine.handle_datagram(now, &udp, &b),
            Op::Register { user, call, cseq, contacts, expires, wildcard } => {
                let mut m = format!(
                    "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{cseq};rport\r\n\
                     From: <sip:u{}@example.com>;tag=1\r\nTo: <sip:u{}@example.com>\r\nCall-ID: c{}\r\nCSeq: {cseq} REGISTER\r\n",
                    user % 4, user % 4, call % 3
                );
                if wildcard {
                    m.push_str("Contact: *\r\n");
                }
                for (c, e) in contacts.iter().take(6) {
                    match e {
                        Some(e) => m.push_str(&format!("Contact: <sip:c{}@192.0.2.9>;expires={e}\r\n", c % 5)),
                        None => m.push_str(&format!("Contact: <sip:c{}@192.0.2.9>\r\n", c % 5)),
                    }
                }
                if let Some(e) = expires {
                    m.push_str(&format!("Expires: {e}\r\n"));
                }
                m.push_str("Content-Length: 0\r\n\r\n");
                engine.handle_datagram(now, &udp, m.as_bytes());
            }
            Op::Stream(b) => {
                stream.extend_from_slice(&b);
                if let sipreg::engine::StreamStatus::Consumed(n) = engine.handle_stream(now, &tcp, &stream) {
                    stream.drain(..n.min(stream.len()));
                } else {
                    stream.clear();
                }
            }
            Op::Advance(s) => {
                now = now + std::time::Duration::from_secs(u64::from(s));
                engine.handle_timeout(now);
            }
            Op::Close => engine.handle_close(now, ConnId(1)),
        }
        while let Some(t) = engine.poll_transmit() {
            // Streams may carry several responses and CRLF pongs; check datagrams only.
            if t.conn.is_none() {
                check(t.bytes);
            }
        }
    }
});
