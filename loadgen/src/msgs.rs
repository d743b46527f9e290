//! REGISTER construction into a reused buffer and response classification, with the
//! registrar's own parser (`sipreg::sip`) and digest code (`sipreg::auth`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;

use sipreg::auth::{self, Algorithm};
use sipreg::sip::{self, HeaderName, Message};

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Initial registration (with a Contact).
    Register,
    /// Re-registration of a bound AOR (same Call-ID, higher CSeq).
    Refresh,
    /// REGISTER without Contact.
    Query,
    /// Contact with expires=0.
    Unregister,
    /// `Contact: *` with `Expires: 0`.
    Wildcard,
    /// Registration with a wrong password: success means the target refuses it.
    AuthFail,
    /// An invalid request: success means the target answers 4xx.
    Malformed,
}

/// A challenge kept by a user agent to answer and reuse (nc grows).
#[derive(Clone, Debug)]
pub struct Cached {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    pub qop_auth: bool,
    pub nc: u32,
}

/// Everything a REGISTER needs.
pub struct Register<'a> {
    pub kind: Kind,
    pub transport: &'a str,
    pub local: SocketAddr,
    pub user: &'a str,
    pub domain: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub branch: &'a str,
    pub expires: u32,
    /// Answer this challenge with this password.
    pub auth: Option<(&'a Cached, &'a str)>,
}

/// Writes the request into `out` (cleared first).
pub fn build(out: &mut Vec<u8>, r: &Register<'_>) {
    out.clear();
    let _ = write!(
        out,
        "REGISTER sip:{} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={};rport\r\nMax-Forwards: 70\r\n",
        r.domain, r.transport, r.local, r.branch
    );
    if r.kind != Kind::Malformed {
        let _ = write!(
            out,
            "From: <sip:{}@{}>;tag={}\r\n",
            r.user,
            r.domain,
            r.call_id.len()
        );
    }
    let _ = write!(
        out,
        "To: <sip:{}@{}>\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n",
        r.user, r.domain, r.call_id, r.cseq
    );
    match r.kind {
        Kind::Query | Kind::Malformed => {}
        Kind::Wildcard => out.extend_from_slice(b"Contact: *\r\nExpires: 0\r\n"),
        Kind::Unregister => {
            let _ = write!(out, "Contact: <sip:{}@{}>;expires=0\r\n", r.user, r.local);
        }
        _ => {
            let _ = write!(
                out,
                "Contact: <sip:{}@{}>\r\nExpires: {}\r\n",
                r.user, r.local, r.expires
            );
        }
    }
    if let Some((c, password)) = r.auth {
        let ch = auth::Challenge {
            realm: c.realm.as_bytes(),
            nonce: c.nonce.as_bytes(),
            opaque: c.opaque.as_deref().map(str::as_bytes),
            algorithm: c.algorithm,
            qop_auth: c.qop_auth,
            qop_auth_int: false,
            stale: false,
            userhash: false,
        };
        // The digest-uri and cnonce on the stack: no allocation per request (a domain longer
        // than the buffer falls back to the heap).
        let mut stack = [0u8; 256];
        let heap;
        let uri: &[u8] = if let Some(dst) = stack.get_mut(..4 + r.domain.len()) {
            dst[..4].copy_from_slice(b"sip:");
            dst[4..].copy_from_slice(r.domain.as_bytes());
            dst
        } else {
            heap = format!("sip:{}", r.domain);
            heap.as_bytes()
        };
        let mut cnonce = [0u8; 16];
        let _ = write!(&mut cnonce[..], "{:08x}{:08x}", r.cseq, c.nc);
        out.extend_from_slice(b"Authorization: ");
        auth::write_authorization(
            out,
            &ch,
            r.user.as_bytes(),
            password.as_bytes(),
            b"REGISTER",
            uri,
            &cnonce,
            c.nc,
            b"",
        );
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"User-Agent: sipreg-loadgen\r\nContent-Length: 0\r\n\r\n");
}

/// What a response means to the generator.
#[derive(Debug)]
pub struct Answer {
    pub code: u16,
    /// The branch of the top Via (our transaction token).
    pub branch: Option<(u32, u32)>,
    /// A Digest challenge, for 401/407.
    pub challenge: Option<Cached>,
}

/// Classifies a response; `None` for garbage (counted as unexpected).
pub fn classify(bytes: &[u8], prefer: Algorithm) -> Option<Answer> {
    let Ok(Message::Response(r)) = sip::parse_datagram(bytes, &sip::Limits::default()) else {
        return None;
    };
    let branch = r
        .vias()
        .next()
        .and_then(Result::ok)
        .and_then(|v| v.branch())
        .and_then(parse_branch);
    let mut challenge = None;
    if r.status().0 == 401 || r.status().0 == 407 {
        let name = if r.status().0 == 401 {
            HeaderName::WwwAuthenticate
        } else {
            HeaderName::Other
        };
        let mut chosen: Option<Cached> = None;
        for v in r.headers_named(name) {
            let Ok(c) = auth::parse_challenge(v) else {
                continue;
            };
            let cached = Cached {
                realm: String::from_utf8_lossy(c.realm).into_owned(),
                nonce: String::from_utf8_lossy(c.nonce).into_owned(),
                opaque: c.opaque.map(|o| String::from_utf8_lossy(o).into_owned()),
                algorithm: c.algorithm,
                qop_auth: c.qop_auth,
                nc: 0,
            };
            if chosen.is_none() || c.algorithm == prefer {
                chosen = Some(cached);
            }
        }
        challenge = chosen;
    }
    Some(Answer {
        code: r.status().0,
        branch,
        challenge,
    })
}

/// Our branch format: `z9hG4bK-<slot>-<generation>`.
pub fn write_branch(out: &mut String, slot: u32, generation: u32) {
    out.clear();
    let _ = write!(out, "z9hG4bK-{slot:x}-{generation:x}");
}

fn parse_branch(b: &[u8]) -> Option<(u32, u32)> {
    let rest = b.strip_prefix(b"z9hG4bK-")?;
    let text = std::str::from_utf8(rest).ok()?;
    let (slot, generation) = text.split_once('-')?;
    Some((
        u32::from_str_radix(slot, 16).ok()?,
        u32::from_str_radix(generation, 16).ok()?,
    ))
}

/// A stateless answer (the `echo` responder and the tests' stub targets): 200 with the request's
/// headers, or a 401 challenge when `challenge` is set.
pub fn respond(request: &[u8], challenge: Option<&str>, out: &mut Vec<u8>) -> bool {
    let Ok(Message::Request(req)) = sip::parse_datagram(request, &sip::Limits::default()) else {
        return false;
    };
    out.clear();
    let (code, reason) = if challenge.is_some() {
        (401, "Unauthorized")
    } else {
        (200, "OK")
    };
    let _ = write!(out, "SIP/2.0 {code} {reason}\r\n");
    for h in req.headers() {
        if matches!(
            h.name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        ) {
            out.extend_from_slice(h.raw_name());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(c) = challenge {
        let _ = write!(out, "WWW-Authenticate: {c}\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_classify_round_trip() {
        let mut out = Vec::new();
        let mut branch = String::new();
        write_branch(&mut branch, 42, 7);
        let cached = Cached {
            realm: "example.com".into(),
            nonce: "abc".into(),
            opaque: None,
            algorithm: Algorithm::Md5,
            qop_auth: true,
            nc: 1,
        };
        build(
            &mut out,
            &Register {
                kind: Kind::Register,
                transport: "UDP",
                local: "127.0.0.1:40000".parse().unwrap(),
                user: "u1",
                domain: "example.com",
                call_id: "c1",
                cseq: 3,
                branch: &branch,
                expires: 600,
                auth: Some((&cached, "pw")),
            },
        );
        let Ok(Message::Request(r)) = sip::parse_datagram(&out, &sip::Limits::default()) else {
            panic!()
        };
        assert_eq!(r.defect(), None);
        assert!(r
            .header(HeaderName::Authorization)
            .unwrap()
            .starts_with(b"Digest username=\"u1\""));
        let mut resp = Vec::new();
        assert!(respond(
            &out,
            Some("Digest realm=\"example.com\", nonce=\"n1\", algorithm=MD5, qop=\"auth\""),
            &mut resp
        ));
        let a = classify(&resp, Algorithm::Md5).unwrap();
        assert_eq!(a.code, 401);
        assert_eq!(a.branch, Some((42, 7)));
        assert_eq!(a.challenge.unwrap().nonce, "n1");
        assert!(classify(b"garbage", Algorithm::Md5).is_none());
        let mut bad = Vec::new();
        build(
            &mut bad,
            &Register {
                kind: Kind::Malformed,
                transport: "UDP",
                local: "127.0.0.1:40000".parse().unwrap(),
                user: "u1",
                domain: "example.com",
                call_id: "c1",
                cseq: 1,
                branch: &branch,
                expires: 600,
                auth: None,
            },
        );
        let Ok(Message::Request(r)) = sip::parse_datagram(&bad, &sip::Limits::default()) else {
            panic!()
        };
        assert!(r.defect().is_some(), "malformed requests lack From");
        let _ = std::io::sink().write_all(&bad);
    }
}
