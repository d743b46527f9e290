//! Server-side Digest verification (MD5 and SHA-256, qop=auth) and challenge writing.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sipreg::auth::{self, Algorithm, AuthConfig, Authenticator, Credentials, Qop};
use sipreg::time::Instant;

fn bench_digest(c: &mut Criterion) {
    let now = Instant::from_secs(1_700_000_000);
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Elements(1));
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let a = Authenticator::new(
            AuthConfig {
                realm: "example.com".into(),
                algorithms: vec![alg],
                qop: vec![Qop::Auth],
                nc_guard_capacity: 1 << 22,
                ..AuthConfig::default()
            },
            Credentials::parse("alice:example.com:plain:secret\n", "bench").unwrap(),
        );
        let mut ch = Vec::new();
        a.write_challenge(now, ip, false, &mut ch);
        let text = String::from_utf8(ch).unwrap();
        let value = text
            .trim_end()
            .strip_prefix("WWW-Authenticate: ")
            .unwrap()
            .to_owned();
        let challenge = auth::parse_challenge(value.as_bytes()).unwrap();
        // Precomputed answers with growing nc (the replay guard rejects a reused nc).
        let answers: Vec<Vec<u8>> = (1..=200_000u32)
            .map(|nc| {
                let mut out = Vec::new();
                auth::write_authorization(
                    &mut out,
                    &challenge,
                    b"alice",
                    b"secret",
                    b"REGISTER",
                    b"sip:example.com",
                    b"c0ffee",
                    nc,
                    b"",
                );
                out
            })
            .collect();
        let mut i = 0;
        g.bench_function(format!("verify_{}", alg.name()), |b| {
            b.iter(|| {
                let v = &answers[i % answers.len()];
                i += 1;
                black_box(a.verify(
                    now,
                    ip,
                    b"REGISTER",
                    b"sip:example.com",
                    b"",
                    [v.as_slice()],
                ))
            })
        });
        let mut out = Vec::with_capacity(512);
        g.bench_function(format!("challenge_{}", alg.name()), |b| {
            b.iter(|| {
                out.clear();
                a.write_challenge(now, ip, false, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_digest);
criterion_main!(benches);
