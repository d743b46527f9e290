//! Authorization / WWW-Authenticate parsing and verification: never a panic, and a random header
//! never authenticates.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sipreg::auth::{self, Algorithm, AuthConfig, Authenticator, Credentials, Verdict};
use sipreg::time::Instant;

fn authenticator() -> &'static Authenticator {
    static A: OnceLock<Authenticator> = OnceLock::new();
    A.get_or_init(|| {
        Authenticator::new(
            AuthConfig {
                realm: "example.com".into(),
                algorithms: vec![Algorithm::Sha256, Algorithm::Md5, Algorithm::Sha512_256Sess],
                secret: [9; 32],
                ..AuthConfig::default()
            },
            Credentials::parse("alice:example.com:plain:secret\n", "fuzz").unwrap(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = auth::parse_authorization(data);
    let _ = auth::parse_challenge(data);
    let _ = Credentials::parse(&String::from_utf8_lossy(data), "fuzz");
    let mut v = b"Digest ".to_vec();
    v.extend_from_slice(data);
    let verdict = authenticator().verify(
        Instant::from_secs(1_700_000_000),
        "192.0.2.1".parse().unwrap(),
        b"REGISTER",
        b"sip:example.com",
        b"",
        [v.as_slice(), data],
    );
    assert!(!matches!(verdict, Verdict::Authenticated { .. }), "a random header authenticated");
});
