use proptest::prelude::*;
use serde_json::Value;

use super::*;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/sip-corpus/digest/vectors.json"
);

fn vectors() -> Value {
    let text = std::fs::read_to_string(VECTORS).expect("shared corpus present");
    serde_json::from_str(&text).expect("vectors.json parses")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn qop_of(v: &Value) -> Option<Qop> {
    match v.get("qop").and_then(Value::as_str) {
        Some("auth") => Some(Qop::Auth),
        Some("auth-int") => Some(Qop::AuthInt),
        _ => None,
    }
}

fn compute(v: &Value, alg: Algorithm) -> String {
    let base = digest::ha1(
        alg,
        s(v, "username").as_bytes(),
        s(v, "realm").as_bytes(),
        s(v, "password").as_bytes(),
    );
    let r = digest::response(
        &base,
        &Inputs {
            alg,
            nonce: s(v, "nonce").as_bytes(),
            cnonce: s(v, "cnonce").as_bytes(),
            nc: s(v, "nc").as_bytes(),
            qop: qop_of(v),
            method: s(v, "method").as_bytes(),
            uri: s(v, "uri").as_bytes(),
            body: s(v, "entity_body").as_bytes(),
        },
    );
    String::from_utf8(r.hex().as_bytes().to_vec()).unwrap()
}

#[test]
fn every_known_answer_vector() {
    let all = vectors();
    let list = all["vectors"].as_array().unwrap();
    assert!(list.len() >= 23);
    let mut checked = 0;
    for v in list {
        let id = s(v, "id");
        let alg = Algorithm::parse(s(v, "algorithm").as_bytes())
            .unwrap_or_else(|| panic!("{id}: algorithm"));
        if let Some(ha1) = v
            .get("ha1")
            .or(v.get("expected_ha1"))
            .and_then(Value::as_str)
        {
            let mut out = Vec::new();
            ha1_hex(
                alg,
                s(v, "username").as_bytes(),
                s(v, "realm").as_bytes(),
                s(v, "password").as_bytes(),
                &mut out,
            );
            assert_eq!(String::from_utf8(out).unwrap(), ha1, "{id}: HA1");
            checked += 1;
        }
        if id == "rfc7616-3.9.2-sha512-256-userhash" {
            // FIPS SHA-512/256 gives the erratum 4897 values; RFC 7616 printed truncated SHA-512.
            assert_eq!(
                compute(v, alg),
                v["fips_180_4_sha512_256"]["response"].as_str().unwrap(),
                "{id}"
            );
            assert_ne!(
                compute(v, alg),
                v["printed_in_rfc"]["response"].as_str().unwrap(),
                "{id}"
            );
            checked += 1;
            continue;
        }
        let Some(expected) = v.get("expected_response").and_then(Value::as_str) else {
            continue;
        };
        let got = compute(v, alg);
        if id == "sofia-test1-register-mismatch" {
            assert_eq!(got, expected, "{id}: correct value");
            let header = s(v, "header");
            let parsed = parse_authorization(header.as_bytes()).unwrap();
            assert_ne!(
                parsed.response,
                got.as_bytes(),
                "{id}: the header's response must not verify"
            );
        } else {
            assert_eq!(got, expected, "{id}");
            if let Some(header) = v.get("header").and_then(Value::as_str) {
                let parsed =
                    parse_authorization(header.as_bytes()).unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(
                    String::from_utf8_lossy(parsed.response).to_ascii_lowercase(),
                    expected,
                    "{id}: header"
                );
                assert_eq!(parsed.nonce, s(v, "nonce").as_bytes(), "{id}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 23, "checked {checked}");
    for bad in all["known_bad_examples"].as_array().unwrap() {
        let got = compute(bad, Algorithm::Md5);
        assert_eq!(got, s(bad, "computed_response"));
        assert_ne!(
            got,
            s(bad, "printed_response"),
            "known-bad example must fail"
        );
    }
}

const NOW: u64 = 1_700_000_000;

fn authenticator(algs: &[Algorithm], qop: &[Qop]) -> Authenticator {
    let creds = Credentials::parse(
        "bob:example.com:plain:secret\nmd5only:example.com:939e7578ed9e3c518a452acee763bce9\n",
        "t",
    )
    .unwrap();
    Authenticator::new(
        AuthConfig {
            realm: "example.com".into(),
            algorithms: algs.to_vec(),
            qop: qop.to_vec(),
            secret: [5; 32],
            salt_seed: 7,
            nc_guard_capacity: 1024,
            ..AuthConfig::default()
        },
        creds,
    )
}

fn ip() -> IpAddr {
    "192.0.2.7".parse().unwrap()
}

/// Challenge -> client answer, for the challenge line of `alg`.
fn answer(
    a: &Authenticator,
    alg: Algorithm,
    now: u64,
    user: &str,
    pass: &str,
    nc: u32,
    body: &[u8],
) -> Vec<u8> {
    let mut ch = Vec::new();
    a.write_challenge(Instant::from_secs(now), ip(), false, &mut ch);
    let text = String::from_utf8(ch).unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.contains(&format!("algorithm={},", alg.name()))
                || l.ends_with(&format!("algorithm={}", alg.name()))
        })
        .unwrap_or_else(|| panic!("no {} in {text}", alg.name()));
    let value = line.strip_prefix("WWW-Authenticate: ").unwrap();
    let c = parse_challenge(value.as_bytes()).unwrap();
    let mut out = Vec::new();
    write_authorization(
        &mut out,
        &c,
        user.as_bytes(),
        pass.as_bytes(),
        b"REGISTER",
        b"sip:example.com",
        b"cn0nce",
        nc,
        body,
    );
    out
}

fn verify<'a>(a: &Authenticator, now: u64, value: &'a [u8], body: &[u8]) -> Verdict<'a> {
    a.verify(
        Instant::from_secs(now),
        ip(),
        b"REGISTER",
        b"sip:example.com",
        body,
        [value],
    )
}

#[test]
fn round_trip_every_algorithm_and_qop() {
    let all: Vec<Algorithm> = ALGORITHMS.iter().map(|(a, _)| *a).collect();
    for qop in [&[Qop::Auth][..], &[Qop::AuthInt], &[]] {
        let a = authenticator(&all, qop);
        for alg in &all {
            let value = answer(&a, *alg, NOW, "bob", "secret", 1, b"body");
            assert_eq!(
                verify(&a, NOW + 1, &value, b"body"),
                Verdict::Authenticated { user: b"bob" },
                "{alg:?} {qop:?}"
            );
            if qop == [Qop::AuthInt] {
                let v2 = answer(&a, *alg, NOW, "bob", "secret", 1, b"body");
                assert!(
                    matches!(
                        verify(&a, NOW + 1, &v2, b"tampered"),
                        Verdict::Challenge { .. }
                    ),
                    "auth-int covers the body"
                );
            }
        }
    }
}

#[test]
fn failures_table() {
    let a = authenticator(&[Algorithm::Sha256, Algorithm::Md5], &[Qop::Auth]);
    let good = answer(&a, Algorithm::Md5, NOW, "bob", "secret", 1, b"");
    let challenged = |v: Verdict<'_>| match v {
        Verdict::Challenge { stale, failure } => Some((stale, failure)),
        _ => None,
    };
    // Wrong password vs unknown user: the same verdict shape (stale=false).
    let wrong = answer(&a, Algorithm::Md5, NOW, "bob", "nope", 1, b"");
    assert_eq!(
        challenged(verify(&a, NOW, &wrong, b"")),
        Some((false, Failure::WrongResponse))
    );
    let unknown = answer(&a, Algorithm::Md5, NOW, "mallory", "nope", 1, b"");
    assert_eq!(
        challenged(verify(&a, NOW, &unknown, b"")),
        Some((false, Failure::UnknownUser))
    );
    // Expired nonce with the right password: stale=true.
    assert_eq!(
        challenged(verify(&a, NOW + 300, &good, b"")),
        Some((true, Failure::StaleNonce))
    );
    // Expired nonce with a wrong password: not stale.
    assert_eq!(
        challenged(verify(&a, NOW + 300, &wrong, b"")),
        Some((false, Failure::WrongResponse))
    );
    // nc replay.
    assert_eq!(
        verify(&a, NOW, &good, b""),
        Verdict::Authenticated { user: b"bob" }
    );
    assert_eq!(
        challenged(verify(&a, NOW, &good, b"")),
        Some((true, Failure::Replay))
    );
    // Forged nonce.
    let forged = String::from_utf8(good.clone())
        .unwrap()
        .replacen("nonce=\"", "nonce=\"0", 1);
    assert_eq!(
        challenged(verify(&a, NOW, forged.as_bytes(), b"")),
        Some((false, Failure::BadNonce))
    );
    // Another secret (another cluster) does not verify our nonces.
    let mut other = authenticator(&[Algorithm::Md5], &[Qop::Auth]);
    other.nonces = Nonces::new([6; 32], 0);
    assert_eq!(
        challenged(verify(&other, NOW, &good, b"")),
        Some((false, Failure::BadNonce))
    );
    // Other realm only / none / unknown scheme (RFC 4475 regaut01).
    let other_realm = String::from_utf8(good.clone())
        .unwrap()
        .replace("realm=\"example.com\"", "realm=\"x.org\"");
    assert_eq!(
        challenged(verify(&a, NOW, other_realm.as_bytes(), b"")),
        Some((false, Failure::OtherRealm))
    );
    assert_eq!(
        challenged(a.verify(
            Instant::from_secs(NOW),
            ip(),
            b"REGISTER",
            b"sip:example.com",
            b"",
            []
        )),
        Some((false, Failure::NoCredentials))
    );
    assert_eq!(
        challenged(verify(
            &a,
            NOW,
            b"NoOneKnowsThisScheme opaque-data=here",
            b""
        )),
        Some((false, Failure::NoCredentials))
    );
    // URI mismatch and malformed headers: 400.
    assert!(matches!(
        a.verify(
            Instant::from_secs(NOW),
            ip(),
            b"REGISTER",
            b"sip:other.com",
            b"",
            [good.as_slice()]
        ),
        Verdict::BadRequest(_)
    ));
    assert!(matches!(
        verify(&a, NOW, b"Digest username=\"bob", b""),
        Verdict::BadRequest(_)
    ));
    assert!(matches!(
        verify(&a, NOW, b"Digest username=\"bob\"", b""),
        Verdict::BadRequest(_)
    ));
    // An algorithm we do not offer.
    let sha512 = authenticator(&[Algorithm::Sha512_256], &[Qop::Auth]);
    let v = answer(&sha512, Algorithm::Sha512_256, NOW, "bob", "secret", 1, b"");
    assert_eq!(
        challenged(verify(&a, NOW, &v, b"")),
        Some((false, Failure::UnsupportedAlgorithm))
    );
    // A user with only an MD5 HA1 cannot use SHA-256.
    let md5only = answer(
        &a,
        Algorithm::Sha256,
        NOW,
        "md5only",
        "Circle Of Life",
        1,
        b"",
    );
    assert_eq!(
        challenged(verify(&a, NOW, &md5only, b"")),
        Some((false, Failure::UnknownUser))
    );
}

#[test]
fn nonces_bound_to_source() {
    let mut a = authenticator(&[Algorithm::Md5], &[Qop::Auth]);
    a.config.bind_nonce_to_source = true;
    let value = answer(&a, Algorithm::Md5, NOW, "bob", "secret", 1, b"");
    let elsewhere: IpAddr = "198.51.100.1".parse().unwrap();
    assert!(matches!(
        a.verify(
            Instant::from_secs(NOW),
            elsewhere,
            b"REGISTER",
            b"sip:example.com",
            b"",
            [value.as_slice()]
        ),
        Verdict::Challenge {
            failure: Failure::BadNonce,
            ..
        }
    ));
    assert_eq!(
        verify(&a, NOW, &value, b""),
        Verdict::Authenticated { user: b"bob" }
    );
}

#[test]
fn one_time_nonces() {
    let mut a = authenticator(&[Algorithm::Md5], &[Qop::Auth]);
    a.config.one_time_nonces = true;
    let first = answer(&a, Algorithm::Md5, NOW, "bob", "secret", 1, b"");
    assert_eq!(
        verify(&a, NOW, &first, b""),
        Verdict::Authenticated { user: b"bob" }
    );
    // Same nonce, higher nc: refused (stale=true asks for a fresh challenge).
    let nonce = parse_authorization(&first).unwrap().nonce.to_vec();
    let c = Challenge {
        realm: b"example.com",
        nonce: &nonce,
        opaque: None,
        algorithm: Algorithm::Md5,
        qop_auth: true,
        qop_auth_int: false,
        stale: false,
        userhash: false,
    };
    let mut second = Vec::new();
    write_authorization(
        &mut second,
        &c,
        b"bob",
        b"secret",
        b"REGISTER",
        b"sip:example.com",
        b"x",
        2,
        b"",
    );
    assert_eq!(
        verify(&a, NOW, &second, b""),
        Verdict::Challenge {
            stale: true,
            failure: Failure::Replay
        }
    );
    // Without qop (no nc) a one-time nonce is tracked too.
    let mut b = authenticator(&[Algorithm::Md5], &[]);
    b.config.one_time_nonces = true;
    let v = answer(&b, Algorithm::Md5, NOW, "bob", "secret", 1, b"");
    assert_eq!(
        verify(&b, NOW, &v, b""),
        Verdict::Authenticated { user: b"bob" }
    );
    assert!(matches!(
        verify(&b, NOW, &v, b""),
        Verdict::Challenge { stale: true, .. }
    ));
}

#[test]
fn challenges_are_identical_in_shape() {
    let a = authenticator(&[Algorithm::Sha256, Algorithm::Md5], &[Qop::Auth]);
    let mut one = Vec::new();
    a.write_challenge(Instant::from_secs(NOW), ip(), false, &mut one);
    let mut two = Vec::new();
    a.write_challenge(Instant::from_secs(NOW), ip(), false, &mut two);
    assert_eq!(one.len(), two.len());
    assert_ne!(one, two, "fresh nonce each time");
    let text = String::from_utf8(one).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("algorithm=SHA-256") && lines[1].contains("algorithm=MD5"));
    let nonce = |l: &str| {
        parse_challenge(l.strip_prefix("WWW-Authenticate: ").unwrap().as_bytes())
            .unwrap()
            .nonce
            .to_vec()
    };
    assert_eq!(
        nonce(lines[0]),
        nonce(lines[1]),
        "one nonce shared by every algorithm"
    );
    let mut stale = Vec::new();
    a.write_challenge(Instant::from_secs(NOW), ip(), true, &mut stale);
    assert!(String::from_utf8(stale)
        .unwrap()
        .lines()
        .all(|l| l.ends_with(", stale=true")));
}

#[test]
fn credentials_reload() {
    let a = authenticator(&[Algorithm::Md5], &[Qop::Auth]);
    let v = answer(&a, Algorithm::Md5, NOW, "bob", "secret", 1, b"");
    a.set_credentials(Credentials::parse("bob:example.com:plain:changed\n", "t").unwrap());
    assert!(matches!(
        verify(&a, NOW, &v, b""),
        Verdict::Challenge {
            failure: Failure::WrongResponse,
            ..
        }
    ));
}

proptest! {
    #[test]
    fn header_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_authorization(&bytes);
        let _ = parse_challenge(&bytes);
        let mut prefixed = b"Digest ".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = parse_authorization(&prefixed);
        let a = authenticator(&[Algorithm::Md5], &[Qop::Auth]);
        let verdict = a.verify(Instant::from_secs(NOW), ip(), b"REGISTER", b"sip:example.com", b"", [prefixed.as_slice()]);
        let authenticated = matches!(verdict, Verdict::Authenticated { .. });
        prop_assert!(!authenticated);
    }
}
