//! Drives `sipreg::engine::Engine` N times for one case, for instruction counting under
//! callgrind (`benches/callgrind/run.sh`). Only the engine calls happen inside the
//! `#[inline(never)]` functions named `measured_*`; the script restricts callgrind's collection
//! to them (`--toggle-collect`) and takes the difference of two runs with different N, so
//! building messages, computing the client's digest response and the engine's start-up cost
//! all drop out of the per-operation figure.
//!
//! Usage: `engine_iters <register|refresh|digest|query> <N>`
//!
//! Each run checks the engine's answers (200 for a registration or query, 401 then 200 for
//! the digest exchange) and exits non-zero otherwise, so a count of a failing path is never
//! reported as a cost.

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sipreg::engine::{AuthSettings, Engine, EngineConfig, Meta, Shared, Transport};
use sipreg::sip::{self, HeaderName, Message};
use sipreg::time::Instant;

/// The server's allocator (src/main.rs), so allocations cost here what they cost in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Each phone has its own address (as on a carrier network), so the engine's per-source rate
/// limit (on by default) is exercised but never trips: a user's requests are 10 ms apart.
fn meta(user: u64) -> Meta {
    let [_, _, _, _, _, a, b, c] = user.to_be_bytes();
    Meta {
        source: std::net::SocketAddr::from(([10, a, b, c], 5060)),
        local: std::net::SocketAddr::from(([192, 0, 2, 1], 5060)),
        transport: Transport::Udp,
        conn: None,
        overloaded: false,
    }
}

/// A REGISTER of a typical desk phone; `contact = false` makes it a query (RFC 3261 §10.2.3).
fn register(user: u64, cseq: u32, contact: bool, auth: Option<&[u8]>) -> Vec<u8> {
    let mut m = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{user}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:u{user}@example.com>;tag=a73kszlfl\r\n\
         To: <sip:u{user}@example.com>\r\n\
         Call-ID: {user:016x}-9f2c4e1b7a@192.0.2.10\r\n\
         CSeq: {cseq} REGISTER\r\n"
    )
    .into_bytes();
    if contact {
        m.extend_from_slice(
            format!(
                "Contact: <sip:u{user}@192.0.2.10:5060;transport=udp>;+sip.instance=\"<urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301>\"\r\n\
                 Expires: 3600\r\n"
            )
            .as_bytes(),
        );
    }
    m.extend_from_slice(
        b"User-Agent: Yealink SIP-T46S 66.86.0.15\r\n\
          Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, MESSAGE\r\n",
    );
    if let Some(a) = auth {
        m.extend_from_slice(b"Authorization: ");
        m.extend_from_slice(a);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    m
}

const USERS: u64 = 1000;

fn engine(auth: bool) -> Result<Engine, String> {
    let mut config = EngineConfig {
        domains: vec!["example.com".into()],
        store_capacity: 1 << 20,
        ..EngineConfig::default()
    };
    if auth {
        config.auth = Some(AuthSettings {
            realm: "example.com".into(),
            algorithms: vec!["MD5".into()],
            credentials_text: (0..USERS)
                .map(|i| format!("u{i}:example.com:plain:pw{i}\n"))
                .collect(),
            credentials_name: "callgrind".into(),
            nonce_lifetime: Duration::from_secs(300),
            secret: [9; 32],
            bind_nonce_to_source: false,
            salt_seed: 1,
            one_time_nonces: false,
        });
    }
    Shared::new(config)
        .map(|s| Engine::new(Arc::new(s)))
        .map_err(|e| format!("engine config: {e:?}"))
}

/// One request in, its response out and checked. Returns the status code.
fn request_checked(eng: &mut Engine, now: Instant, meta: &Meta, msg: &[u8]) -> u16 {
    let mut out = Vec::with_capacity(1024);
    measured_handle(eng, now, meta, msg, &mut out);
    status_of(&out)
}

/// The measured unit: the engine handles one request and the response is copied out (as a
/// runtime copies it into its send buffer). Checking the response happens outside.
#[inline(never)]
fn measured_handle(eng: &mut Engine, now: Instant, meta: &Meta, msg: &[u8], out: &mut Vec<u8>) {
    eng.handle_datagram(now, meta, black_box(msg));
    out.clear();
    if let Some(t) = eng.poll_transmit() {
        out.extend_from_slice(t.bytes);
    }
}

fn status_of(bytes: &[u8]) -> u16 {
    match sip::parse_datagram(bytes, &sip::Limits::default()) {
        Ok(Message::Response(r)) => r.status().0,
        _ => 0,
    }
}

/// The client's Authorization value for a 401 (outside the measured functions).
fn answer(challenge: &[u8], user: u64) -> Result<Vec<u8>, String> {
    let Ok(Message::Response(r)) = sip::parse_datagram(challenge, &sip::Limits::default()) else {
        return Err("the challenge does not parse".into());
    };
    let www = r
        .headers_named(HeaderName::WwwAuthenticate)
        .next()
        .ok_or("401 without WWW-Authenticate")?;
    let ch = sipreg::auth::parse_challenge(www).map_err(|e| format!("challenge: {e:?}"))?;
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
    Ok(value)
}

fn expect(what: &str, got: u16, want: u16) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: status {got}, expected {want}"))
    }
}

fn run(case: &str, n: u64) -> Result<(), String> {
    let start = Instant::from_secs(1_700_000_000);
    let at = |i: u64| Instant::from_millis(start.as_millis() + 10 * i);
    match case {
        // A new AOR each time: parse, store insert, 200 with the binding.
        "register" => {
            let mut eng = engine(false)?;
            let msgs: Vec<Vec<u8>> = (0..n).map(|u| register(u, 1, true, None)).collect();
            for (u, m) in (0..).zip(&msgs) {
                let got = request_checked(&mut eng, at(u), &meta(u), m);
                expect("register", got, 200)?;
            }
        }
        // The same AOR refreshed (the steady state of a registrar).
        "refresh" => {
            let mut eng = engine(false)?;
            let msgs: Vec<Vec<u8>> = (1..=n)
                .map(|c| register(7, u32::try_from(c).unwrap_or(u32::MAX), true, None))
                .collect();
            for (i, m) in (0..).zip(&msgs) {
                let got = request_checked(&mut eng, at(i), &meta(7), m);
                expect("refresh", got, 200)?;
            }
        }
        // A query of an AOR with one binding.
        "query" => {
            let mut eng = engine(false)?;
            let seed = register(7, 1, true, None);
            expect(
                "seed",
                request_checked(&mut eng, at(0), &meta(7), &seed),
                200,
            )?;
            let msgs: Vec<Vec<u8>> = (2..n + 2)
                .map(|c| register(7, u32::try_from(c).unwrap_or(u32::MAX), false, None))
                .collect();
            for (i, m) in (1..).zip(&msgs) {
                let got = request_checked(&mut eng, at(i), &meta(7), m);
                expect("query", got, 200)?;
            }
        }
        // The two-request exchange: REGISTER -> 401, REGISTER with Authorization -> 200.
        "digest" => {
            let mut eng = engine(true)?;
            let mut challenge = Vec::with_capacity(1024);
            for i in 0..n {
                let user = i % USERS;
                let cseq = u32::try_from(2 * (i / USERS) + 1).unwrap_or(u32::MAX);
                let first = register(user, cseq, true, None);
                measured_handle(&mut eng, at(i), &meta(user), &first, &mut challenge);
                expect("challenge", status_of(&challenge), 401)?;
                let auth = answer(&challenge, user)?;
                let second = register(user, cseq + 1, true, Some(&auth));
                let got = request_checked(&mut eng, at(i), &meta(user), &second);
                expect("authenticated", got, 200)?;
            }
        }
        other => return Err(format!("unknown case {other:?}")),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(case), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: engine_iters <register|refresh|digest|query> <N>");
        return ExitCode::from(2);
    };
    match run(case, n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine_iters: {e}");
            ExitCode::FAILURE
        }
    }
}
