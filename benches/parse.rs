//! Parsing a realistic softphone REGISTER (several Contacts) and RFC 3665 2.1 F3.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sipreg::sip::{self, Message};

const SOFTPHONE: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---6a1f3c2e0b1d4e5f;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp>;+sip.instance=\"<urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301>\";reg-id=1\r\n\
Contact: <sip:alice@[2001:db8::10]:5060>;q=0.5, <sip:alice@198.51.100.7:40000>;expires=60\r\n\
To: \"Alice\" <sip:alice@example.com>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=9fxced76sl\r\n\
Call-ID: 8f3b2c1d-4e5f-6a7b-8c9d-0e1f2a3b4c5d\r\n\
CSeq: 42 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, outbound, path, gruu\r\n\
User-Agent: Zoiper rv2.10.20.2\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 0\r\n\r\n";

fn bench_parse(c: &mut Criterion) {
    let f3 = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/sip-corpus/rfc3665/2.1-F3-REGISTER.sip"
    ))
    .expect("shared corpus present");
    let limits = sip::Limits::default();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("softphone_register_index", |b| {
        b.iter(|| black_box(sip::parse_datagram(black_box(SOFTPHONE), &limits).is_ok()))
    });
    g.bench_function("softphone_register_all_views", |b| {
        b.iter(|| {
            let Ok(Message::Request(r)) = sip::parse_datagram(black_box(SOFTPHONE), &limits) else {
                panic!()
            };
            let n = r.contacts().filter(Result::is_ok).count();
            black_box((r.cseq().is_ok(), r.to().is_ok(), r.vias().count(), n))
        })
    });
    g.bench_function("rfc3665_2_1_f3_index", |b| {
        b.iter(|| black_box(sip::parse_datagram(black_box(&f3), &limits).is_ok()))
    });
    g.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
