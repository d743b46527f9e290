//! Deterministic engine harness: simulated user agents, fabricated time, no sockets.
//!
//! Covers every RFC 3261 §10.3 rule the engine implements (table-driven where the rules are
//! independent), the RFC 3665 §2 flows from the shared corpus, and the RFC 4475 torture messages
//! that are REGISTERs or that name a registrar's response.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::sip::{Contact, Message, Response};
use crate::store::Change;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/sip-corpus");
const T0: u64 = 1_700_000_000;

fn udp_meta() -> Meta {
    let source: SocketAddr = "192.0.2.201:5060".parse().unwrap();
    Meta {
        source,
        local: "192.0.2.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        conn: None,
        overloaded: false,
    }
}

/// Counts change-feed events (to prove "no second update").
#[derive(Default)]
struct Feed(Mutex<Vec<String>>);

impl ChangeFeed for Feed {
    fn on_change(&self, change: &Change<'_>) {
        let (kind, aor, b) = match change {
            Change::Inserted { aor, binding } => ("insert", aor, binding),
            Change::Refreshed { aor, binding } => ("refresh", aor, binding),
            Change::Removed { aor, binding } => ("remove", aor, binding),
            Change::Expired { aor, binding } => ("expire", aor, binding),
        };
        let contact = String::from_utf8_lossy(b.contact()).into_owned();
        self.0
            .lock()
            .unwrap()
            .push(format!("{kind} {} {contact}", aor.as_str()));
    }
}

struct Harness {
    engine: Engine,
    feed: Arc<Feed>,
    now: Instant,
    meta: Meta,
}

/// A parsed response, owned for easy assertions.
#[derive(Debug)]
struct Reply {
    code: u16,
    reason: String,
    raw: String,
    /// (uri, expires, rest-of-params) per Contact value.
    contacts: Vec<(String, u32, String)>,
}

impl Reply {
    fn header_names(&self) -> Vec<String> {
        let mut n: Vec<String> = self
            .raw
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(n, _)| n.to_owned())
            .collect();
        n.sort();
        n
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    fn headers(&self, name: &str) -> Vec<String> {
        self.raw
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    fn contact_uris(&self) -> Vec<&str> {
        self.contacts.iter().map(|c| c.0.as_str()).collect()
    }
}

fn parse_reply(bytes: &[u8]) -> Reply {
    let Ok(Message::Response(resp)) = sip::parse_datagram(bytes, &sip::Limits::default()) else {
        panic!(
            "engine wrote an unparseable response: {}",
            String::from_utf8_lossy(bytes)
        );
    };
    Reply {
        code: resp.status().0,
        reason: String::from_utf8_lossy(resp.reason()).into_owned(),
        raw: String::from_utf8_lossy(bytes).into_owned(),
        contacts: contacts_of(&resp),
    }
}

fn contacts_of(resp: &Response<'_>) -> Vec<(String, u32, String)> {
    resp.contacts()
        .map(|c| match c.expect("contact in response parses") {
            Contact::Star => panic!("registrar never answers with *"),
            Contact::Addr(a) => {
                let expires = a
                    .expires()
                    .unwrap()
                    .expect("every listed contact has expires");
                let mut rest = String::new();
                if let Some(q) = a.q().unwrap() {
                    rest.push_str(&format!(";q={q}"));
                }
                for p in a.other_params() {
                    rest.push_str(&String::from_utf8_lossy(p));
                }
                (
                    String::from_utf8_lossy(a.name_addr.uri.raw()).into_owned(),
                    expires,
                    rest,
                )
            }
        })
        .collect()
}

impl Harness {
    fn new(config: EngineConfig) -> Self {
        let feed = Arc::new(Feed::default());
        let shared = Shared::with_feed(config, Some(feed.clone() as Arc<dyn ChangeFeed>))
            .expect("valid config");
        Self {
            engine: Engine::new(Arc::new(shared)),
            feed,
            now: Instant::from_secs(T0),
            meta: udp_meta(),
        }
    }

    fn open() -> Self {
        Self::new(EngineConfig {
            domains: vec!["example.com".into()],
            ..EngineConfig::default()
        })
    }

    /// Sends one datagram; returns the response, if any.
    fn send(&mut self, msg: &[u8]) -> Option<Reply> {
        self.engine.handle_datagram(self.now, &self.meta, msg);
        let reply = parse_reply(self.engine.poll_transmit()?.bytes);
        assert!(
            self.engine.poll_transmit().is_none(),
            "one response per datagram"
        );
        Some(reply)
    }

    fn expect(&mut self, msg: &[u8]) -> Reply {
        self.send(msg)
            .unwrap_or_else(|| panic!("no response to {}", String::from_utf8_lossy(msg)))
    }

    fn advance(&mut self, secs: u64) {
        self.now = self.now + Duration::from_secs(secs);
        self.engine.handle_timeout(self.now);
    }

    fn events(&self) -> Vec<String> {
        std::mem::take(&mut *self.feed.0.lock().unwrap())
    }
}

/// A REGISTER builder for table tests.
#[derive(Clone)]
struct Reg {
    ruri: String,
    to: String,
    call_id: String,
    cseq: u32,
    contacts: Vec<String>,
    extra: Vec<String>,
}

impl Reg {
    fn new(user: &str) -> Self {
        Self {
            ruri: "sip:example.com".into(),
            to: format!("<sip:{user}@example.com>"),
            call_id: format!("{user}-call@192.0.2.201"),
            cseq: 1,
            contacts: vec![format!("<sip:{user}@192.0.2.201:5060>")],
            extra: vec![],
        }
    }

    fn contact(mut self, c: &str) -> Self {
        self.contacts = vec![c.to_owned()];
        self
    }

    fn contacts(mut self, c: &[&str]) -> Self {
        self.contacts = c.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn header(mut self, h: &str) -> Self {
        self.extra.push(h.to_owned());
        self
    }

    fn cseq(mut self, n: u32) -> Self {
        self.cseq = n;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut m = format!(
            "REGISTER {} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.201:5060;branch=z9hG4bK{}x{};rport\r\n\
             Max-Forwards: 70\r\nFrom: {};tag=f1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n",
            self.ruri, self.cseq, self.call_id.len(), self.to, self.to, self.call_id, self.cseq
        );
        for c in &self.contacts {
            m.push_str(&format!("Contact: {c}\r\n"));
        }
        for h in &self.extra {
            m.push_str(h);
            m.push_str("\r\n");
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m.into_bytes()
    }
}

#[test]
fn register_refresh_query_unregister() {
    let mut h = Harness::open();
    let r = h.expect(&Reg::new("alice").bytes());
    assert_eq!(r.code, 200, "{}", r.raw);
    assert_eq!(
        r.contacts,
        vec![("sip:alice@192.0.2.201:5060".into(), 3600, String::new())]
    );
    assert!(
        r.header("To").unwrap().contains(";tag="),
        "UAS adds a To tag"
    );
    assert!(r.header("Date").is_some(), "§10.3 step 8: Date");
    assert_eq!(
        h.events(),
        vec!["insert sip:alice@example.com sip:alice@192.0.2.201:5060"]
    );

    h.advance(100);
    let r = h.expect(&Reg::new("alice").cseq(2).header("Expires: 600").bytes());
    assert_eq!(r.contacts[0].1, 600);
    assert_eq!(
        h.events(),
        vec!["refresh sip:alice@example.com sip:alice@192.0.2.201:5060"]
    );

    h.advance(100);
    let r = h.expect(&Reg::new("bob-other").contacts(&[]).bytes());
    assert_eq!(r.code, 200);
    assert!(r.contacts.is_empty(), "other AOR has no bindings");
    let mut query = Reg::new("alice").cseq(3).contacts(&[]);
    query.call_id = "a-query".into();
    let r = h.expect(&query.bytes());
    assert_eq!(
        r.contacts,
        vec![("sip:alice@192.0.2.201:5060".into(), 500, String::new())]
    );
    assert!(h.events().is_empty(), "a query changes nothing");

    let r = h.expect(
        &Reg::new("alice")
            .cseq(4)
            .contact("<sip:alice@192.0.2.201:5060>;expires=0")
            .bytes(),
    );
    assert_eq!(r.code, 200);
    assert!(r.contacts.is_empty());
    assert_eq!(
        h.events(),
        vec!["remove sip:alice@example.com sip:alice@192.0.2.201:5060"]
    );
    assert_eq!(
        h.engine.shared().store().aor_count(),
        0,
        "empty AOR entry removed"
    );
}

#[test]
fn expiry_priority_and_limits() {
    // contact param > Expires header > default; clamp to max; below min -> 423 + Min-Expires.
    let cases: &[(&str, Option<&str>, Result<u32, u32>)] = &[
        ("", None, Ok(3600)),
        ("", Some("Expires: 120"), Ok(120)),
        (";expires=300", Some("Expires: 120"), Ok(300)),
        (";expires=99999", None, Ok(7200)),
        ("", Some("Expires: 4294967295"), Ok(7200)),
        (";expires=59", None, Err(60)),
        ("", Some("Expires: 1"), Err(60)),
        (";expires=60", None, Ok(60)),
    ];
    for (param, header, want) in cases {
        let mut h = Harness::open();
        let mut reg = Reg::new("carol").contact(&format!("<sip:carol@192.0.2.9>{param}"));
        if let Some(hd) = header {
            reg = reg.header(hd);
        }
        let r = h.expect(&reg.bytes());
        match want {
            Ok(secs) => {
                assert_eq!(r.code, 200, "{param} {header:?}: {}", r.raw);
                assert_eq!(r.contacts[0].1, *secs, "{param} {header:?}");
            }
            Err(min) => {
                assert_eq!(r.code, 423, "{param} {header:?}");
                assert_eq!(r.header("Min-Expires"), Some(min.to_string()));
                assert!(h.events().is_empty(), "423 stores nothing");
            }
        }
    }
}

#[test]
fn one_bad_contact_rejects_the_whole_request() {
    let mut h = Harness::open();
    let r = h.expect(
        &Reg::new("dave")
            .contacts(&["<sip:dave@192.0.2.1>", "<sip:dave@192.0.2.2>;expires=5"])
            .bytes(),
    );
    assert_eq!(r.code, 423);
    assert!(h.events().is_empty(), "atomic: nothing stored");
}

#[test]
fn bindings_expire_without_a_sweep_and_with_one() {
    let mut h = Harness::open();
    h.expect(&Reg::new("erin").header("Expires: 60").bytes());
    h.events();
    // Not yet swept: the query must already hide the expired binding.
    h.now = h.now + Duration::from_secs(61);
    let r = h.expect(&Reg::new("erin").cseq(2).contacts(&[]).bytes());
    assert!(r.contacts.is_empty(), "expired binding listed: {}", r.raw);
    h.advance(5);
    let ev = h.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(
        ev[0].starts_with("expire ") || ev[0].starts_with("remove "),
        "{ev:?}"
    );
    assert_eq!(h.engine.shared().store().binding_count(), 0);
}

#[test]
fn call_id_cseq_ordering() {
    let mut h = Harness::open();
    let first = Reg::new("frank").cseq(5);
    let original = h.expect(&first.bytes());
    assert_eq!(original.code, 200);
    h.events();

    // An identical retransmission: same answer, no second update.
    let again = h.expect(&first.bytes());
    assert_eq!(again.code, 200);
    assert_eq!(
        again.header("To"),
        original.header("To"),
        "the same To tag, statelessly"
    );
    assert_eq!(again.contacts.len(), 1);
    assert!(h.events().is_empty(), "retransmission updated the store");

    // Same Call-ID, lower CSeq: the request fails and nothing changes.
    let r = h.expect(&first.clone().cseq(4).header("Expires: 0").bytes());
    assert_eq!(r.code, 400, "{}", r.raw);
    assert!(h.events().is_empty());

    // Different Call-ID (a rebooted phone) with any CSeq: accepted.
    let mut reboot = first.clone().cseq(1);
    reboot.call_id = "frank-after-reboot".into();
    assert_eq!(h.expect(&reboot.bytes()).code, 200);
    assert_eq!(h.events().len(), 1);

    // Wildcard with the stored Call-ID and a CSeq not above the stored one: aborted.
    let mut star = reboot.clone().contact("*").header("Expires: 0");
    star.cseq = 1;
    assert_eq!(h.expect(&star.bytes()).code, 400);
    assert!(h.events().is_empty());
    star.cseq = 2;
    let r = h.expect(&star.bytes());
    assert_eq!((r.code, r.contacts.len()), (200, 0));
    assert_eq!(h.events().len(), 1);
}

#[test]
fn wildcard_rules() {
    for (contacts, expires, code) in [
        (vec!["*"], Some("Expires: 0"), 200),
        (vec!["*"], None, 400),
        (vec!["*"], Some("Expires: 30"), 400),
        (vec!["*", "<sip:g@192.0.2.1>"], Some("Expires: 0"), 400),
    ] {
        let mut h = Harness::open();
        h.expect(&Reg::new("gina").bytes());
        h.events();
        let mut reg = Reg::new("gina").cseq(2).contacts(&contacts);
        if let Some(e) = expires {
            reg = reg.header(e);
        }
        let r = h.expect(&reg.bytes());
        assert_eq!(r.code, code, "{contacts:?} {expires:?}: {}", r.raw);
        assert_eq!(h.events().len(), usize::from(code == 200));
    }
}

#[test]
fn contact_matching_uses_uri_equality_and_instance() {
    let mut h = Harness::open();
    h.expect(
        &Reg::new("hank")
            .contact("<sip:hank@Host.Example.COM:5060;transport=udp>")
            .bytes(),
    );
    h.events();
    // §19.1.4: host case-insensitive, same params -> same binding (a refresh).
    let r = h.expect(
        &Reg::new("hank")
            .cseq(2)
            .contact("<sip:hank@host.example.com:5060;transport=UDP>")
            .bytes(),
    );
    assert_eq!(r.contacts.len(), 1, "{}", r.raw);
    // The stored contact's bytes (and so its id) changed: the feed reports remove + insert so
    // that id-keyed subscribers (persistence) drop the old key.
    let ev = h.events();
    assert!(
        ev[0].starts_with("remove") && ev[1].starts_with("insert"),
        "{ev:?}"
    );
    // Byte-identical refresh: a refresh event.
    h.expect(
        &Reg::new("hank")
            .cseq(3)
            .contact("<sip:hank@host.example.com:5060;transport=UDP>")
            .bytes(),
    );
    assert!(h.events()[0].starts_with("refresh"));
    // Explicit vs default port are different URIs: a second binding.
    let r = h.expect(
        &Reg::new("hank")
            .cseq(4)
            .contact("<sip:hank@host.example.com;transport=udp>")
            .bytes(),
    );
    assert_eq!(r.contacts.len(), 2);

    // RFC 5626: same +sip.instance and reg-id, new address (NAT rebinding) -> replaces.
    let inst = r#";+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1"#;
    h.expect(
        &Reg::new("ivy")
            .contact(&format!("<sip:ivy@192.0.2.1:5060>{inst}"))
            .bytes(),
    );
    let r = h.expect(
        &Reg::new("ivy")
            .cseq(2)
            .contact(&format!("<sip:ivy@198.51.100.7:4000>{inst}"))
            .bytes(),
    );
    assert_eq!(r.contact_uris(), vec!["sip:ivy@198.51.100.7:4000"]);
    assert_eq!(r.contacts[0].2, inst, "instance and reg-id echoed");
}

#[test]
fn params_echoed_and_url_params_kept() {
    let mut h = Harness::open();
    let r = h.expect(
        &Reg::new("jo")
            .contact("<sip:jo@192.0.2.4;user=phone;foo=bar>;q=0.7;video;x-y=\"z\"")
            .bytes(),
    );
    assert_eq!(
        r.contacts,
        vec![(
            "sip:jo@192.0.2.4;user=phone;foo=bar".into(),
            3600,
            ";q=700;video;x-y=\"z\"".into()
        )]
    );
    assert!(
        r.raw.contains(
            "Contact: <sip:jo@192.0.2.4;user=phone;foo=bar>;expires=3600;q=0.7;video;x-y=\"z\""
        ),
        "{}",
        r.raw
    );
}

#[test]
fn max_contacts_reject_or_evict() {
    let config = |evict| EngineConfig {
        domains: vec!["example.com".into()],
        max_contacts: 2,
        evict_oldest: evict,
        ..EngineConfig::default()
    };
    let mut h = Harness::new(config(false));
    h.expect(
        &Reg::new("kim")
            .contacts(&["<sip:k@192.0.2.1>", "<sip:k@192.0.2.2>"])
            .bytes(),
    );
    let r = h.expect(&Reg::new("kim").cseq(2).contact("<sip:k@192.0.2.3>").bytes());
    assert_eq!(r.code, 503);
    assert_eq!(r.header("Retry-After").as_deref(), Some("30"));
    // Removing one and adding one in the same request fits.
    let r = h.expect(
        &Reg::new("kim")
            .cseq(3)
            .contacts(&["<sip:k@192.0.2.1>;expires=0", "<sip:k@192.0.2.3>"])
            .bytes(),
    );
    assert_eq!(
        r.contact_uris(),
        vec!["sip:k@192.0.2.2", "sip:k@192.0.2.3"],
        "{}",
        r.raw
    );

    let mut h = Harness::new(config(true));
    h.expect(&Reg::new("kim").contact("<sip:k@192.0.2.1>").bytes());
    h.advance(1);
    h.expect(&Reg::new("kim").cseq(2).contact("<sip:k@192.0.2.2>").bytes());
    h.advance(1);
    let r = h.expect(&Reg::new("kim").cseq(3).contact("<sip:k@192.0.2.3>").bytes());
    assert_eq!(r.code, 200);
    assert_eq!(
        r.contact_uris(),
        vec!["sip:k@192.0.2.2", "sip:k@192.0.2.3"],
        "oldest evicted"
    );
}

#[test]
fn request_level_rules() {
    type Case = (Reg, u16, Option<(&'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        (
            Reg {
                ruri: "sip:other.net".into(),
                ..Reg::new("a")
            },
            404,
            None,
        ),
        (
            Reg {
                to: "<sip:a@other.net>".into(),
                ..Reg::new("a")
            },
            404,
            None,
        ),
        (
            Reg {
                ruri: "tel:+15551234".into(),
                ..Reg::new("a")
            },
            416,
            None,
        ),
        (
            Reg {
                to: "<tel:+15551234>".into(),
                ..Reg::new("a")
            },
            400,
            None,
        ),
        (
            Reg::new("a").header("Require: path, foo, bar"),
            420,
            Some(("Unsupported", "foo, bar")),
        ),
        (Reg::new("a").header("Require: path"), 200, None),
        (Reg::new("a").header("Proxy-Require: foo"), 200, None),
    ];
    for (reg, code, header) in cases {
        let mut h = Harness::open();
        let r = h.expect(&reg.bytes());
        assert_eq!(r.code, code, "{}", String::from_utf8_lossy(&reg.bytes()));
        if let Some((name, value)) = header {
            assert_eq!(r.header(name).as_deref(), Some(value));
        }
    }
}

#[test]
fn other_methods() {
    let mut h = Harness::open();
    let msg = |method: &str| {
        format!(
            "{method} sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKo\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:example.com>\r\n\
             Call-ID: o1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    let r = h.expect(&msg("OPTIONS"));
    assert_eq!(r.code, 200);
    assert!(r.header("Allow").unwrap().contains("REGISTER"));
    let r = h.expect(&msg("INVITE"));
    assert_eq!(r.code, 405);
    assert_eq!(r.header("Allow").as_deref(), Some("REGISTER, OPTIONS"));
    assert_eq!(h.expect(&msg("FOOBAR")).code, 501);
    assert!(h.send(&msg("ACK")).is_none(), "ACK is never answered");
    let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKo\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:example.com>;tag=2\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    assert!(h.send(resp).is_none(), "responses are dropped");
    assert!(h.send(b"\x00\x01garbage").is_none());
    let v3 = String::from_utf8(msg("OPTIONS"))
        .unwrap()
        .replacen("SIP/2.0", "SIP/3.0", 1);
    assert_eq!(h.expect(v3.as_bytes()).code, 505);
}

#[test]
fn response_addressing_and_via() {
    let mut h = Harness::open();
    h.meta.source = "203.0.113.5:40000".parse().unwrap();
    // rport present: back to the packet's source port, rport filled in, received added.
    h.engine
        .handle_datagram(h.now, &h.meta, &Reg::new("lou").bytes());
    let t = h.engine.poll_transmit().unwrap();
    assert_eq!(t.dest, h.meta.source);
    let text = String::from_utf8_lossy(t.bytes).into_owned();
    assert!(text.contains("received=203.0.113.5"), "{text}");
    assert!(text.contains("rport=40000"), "{text}");
    // No rport: source IP, the port from the Via sent-by (§18.2.2).
    let no_rport = String::from_utf8(Reg::new("lou").cseq(2).bytes())
        .unwrap()
        .replace(";rport", "");
    h.engine
        .handle_datagram(h.now, &h.meta, no_rport.as_bytes());
    assert_eq!(
        h.engine.poll_transmit().unwrap().dest,
        "203.0.113.5:5060".parse().unwrap()
    );
}

#[test]
fn stream_framing_keepalive_and_close() {
    let mut h = Harness::open();
    let meta = Meta {
        transport: Transport::Tcp,
        conn: Some(ConnId(7)),
        ..udp_meta()
    };
    let one = Reg::new("mia").bytes();
    let two = Reg::new("mia").cseq(2).contacts(&[]).bytes();
    let mut buf = b"\r\n\r\n".to_vec();
    buf.extend_from_slice(&one);
    buf.extend_from_slice(&two);
    buf.extend_from_slice(&one[..10]);
    let status = h.engine.handle_stream(h.now, &meta, &buf);
    assert_eq!(status, StreamStatus::Consumed(buf.len() - 10));
    let t = h.engine.poll_transmit().unwrap();
    assert_eq!(t.conn, Some(ConnId(7)));
    assert!(t.bytes.starts_with(b"\r\nSIP/2.0 200 OK"));
    assert_eq!(
        t.bytes
            .windows(14)
            .filter(|w| w == b"SIP/2.0 200 OK")
            .count(),
        2
    );
    // A partial message consumes nothing.
    assert_eq!(
        h.engine.handle_stream(h.now, &meta, &one[..10]),
        StreamStatus::Consumed(0)
    );
    assert!(h.engine.poll_transmit().is_none());
    // Framing error closes.
    let bad = b"REGISTER sip:example.com SIP/2.0\r\nContent-Length: -5\r\n\r\n";
    assert_eq!(
        h.engine.handle_stream(h.now, &meta, bad),
        StreamStatus::Close
    );
    // Bindings learned over the flow go away with the connection.
    assert_eq!(h.engine.shared().store().binding_count(), 1);
    h.events();
    h.engine.handle_close(h.now, ConnId(7));
    assert_eq!(h.engine.shared().store().binding_count(), 0);
    assert_eq!(h.events().len(), 1);
}

#[test]
fn oversized_request_gets_513() {
    let mut h = Harness::new(EngineConfig {
        max_message_size: 600,
        ..EngineConfig::default()
    });
    let big = Reg::new("nat")
        .header(&format!("X-Pad: {}", "a".repeat(700)))
        .bytes();
    assert_eq!(h.expect(&big).code, 513);
    assert_eq!(h.expect(&Reg::new("nat").bytes()).code, 200);
}

#[test]
fn config_validation_names_fields() {
    let bad = |c: EngineConfig| Shared::new(c).unwrap_err().to_string();
    assert!(bad(EngineConfig {
        min_expires: 900,
        max_expires: 600,
        default_expires: 600,
        ..EngineConfig::default()
    })
    .contains("min_expires"));
    assert!(bad(EngineConfig {
        default_expires: 0,
        ..EngineConfig::default()
    })
    .contains("default_expires"));
    assert!(bad(EngineConfig {
        max_contacts: 0,
        ..EngineConfig::default()
    })
    .contains("max_contacts"));
    for size in [511, 65_536] {
        assert!(bad(EngineConfig {
            max_message_size: size,
            ..EngineConfig::default()
        })
        .contains("max_message_size"));
    }
    let auth = AuthSettings {
        realm: "example.com".into(),
        algorithms: vec!["SHA-1".into()],
        credentials_text: String::new(),
        credentials_name: "users.txt".into(),
        nonce_lifetime: Duration::from_secs(300),
        secret: [7; 32],
        bind_nonce_to_source: false,
        salt_seed: 1,
        one_time_nonces: false,
    };
    assert!(bad(EngineConfig {
        auth: Some(auth.clone()),
        ..EngineConfig::default()
    })
    .contains("SHA-1"));
    let broken = AuthSettings {
        algorithms: vec!["MD5".into()],
        credentials_text: "ok:example.com:plain:x\nbroken\n".into(),
        ..auth
    };
    assert!(bad(EngineConfig {
        auth: Some(broken),
        ..EngineConfig::default()
    })
    .contains("users.txt:2"));
}

// ---------------------------------------------------------------------------------------------
// Digest authentication through the engine.

const PASSWORD: &str = "bob-secret";

fn auth_config(domains: &[&str], realm: &str, users: &[(&str, &str)]) -> EngineConfig {
    let credentials_text: String = users
        .iter()
        .map(|(u, p)| format!("{u}:{realm}:plain:{p}\n"))
        .collect();
    EngineConfig {
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        auth: Some(AuthSettings {
            realm: realm.into(),
            algorithms: vec!["SHA-256".into(), "MD5".into()],
            credentials_text,
            credentials_name: "test-users".into(),
            nonce_lifetime: Duration::from_secs(300),
            secret: [42; 32],
            bind_nonce_to_source: false,
            salt_seed: 1,
            one_time_nonces: false,
        }),
        ..EngineConfig::default()
    }
}

/// `msg` without its Authorization header.
fn answer_none(msg: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(msg).into_owned();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    let mut lines: Vec<&str> = Vec::new();
    let mut skipping = false;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) && skipping {
            continue;
        }
        skipping = line.to_ascii_lowercase().starts_with("authorization:");
        if !skipping {
            lines.push(line);
        }
    }
    format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
}

/// Replaces (or adds) the Authorization header of `msg` with a correct answer to the `alg`
/// challenge in `challenge_reply`, as `user`/`password`.
fn answer(
    msg: &[u8],
    challenge_reply: &Reply,
    alg: &str,
    user: &str,
    password: &str,
    nc: u32,
) -> Vec<u8> {
    let www = challenge_reply
        .headers("WWW-Authenticate")
        .into_iter()
        .find(|v| v.contains(&format!("algorithm={alg}")))
        .unwrap_or_else(|| panic!("no {alg} challenge in {}", challenge_reply.raw));
    let ch = crate::auth::parse_challenge(www.as_bytes()).expect("our challenge parses");
    let text = String::from_utf8_lossy(msg).into_owned();
    let Ok(Message::Request(req)) = sip::parse_datagram(msg, &sip::Limits::default()) else {
        panic!("test request must parse")
    };
    let mut value = Vec::new();
    crate::auth::write_authorization(
        &mut value,
        &ch,
        user.as_bytes(),
        password.as_bytes(),
        b"REGISTER",
        req.uri(),
        b"0a4f113b",
        nc,
        b"",
    );
    // Drop the old Authorization (with its folded continuation lines) and add the new one.
    let stripped = String::from_utf8(answer_none(text.as_bytes())).unwrap();
    let head = stripped.trim_end_matches("\r\n");
    format!(
        "{head}\r\nAuthorization: {}\r\n\r\n",
        String::from_utf8_lossy(&value)
    )
    .into_bytes()
}

#[test]
fn digest_exchange_each_algorithm_and_failures() {
    let mut h = Harness::new(auth_config(
        &["example.com"],
        "example.com",
        &[("bob", PASSWORD)],
    ));
    let reg = Reg::new("bob").bytes();
    let challenge = h.expect(&reg);
    assert_eq!(challenge.code, 401);
    let www = challenge.headers("WWW-Authenticate");
    assert_eq!(www.len(), 2, "one challenge per algorithm: {www:?}");
    assert!(www[0].contains("algorithm=SHA-256") && www[1].contains("algorithm=MD5"));
    assert!(h.events().is_empty());

    for (i, alg) in ["SHA-256", "MD5"].iter().enumerate() {
        let ok = h.expect(&answer(
            &Reg::new("bob").cseq(2 + i as u32).bytes(),
            &challenge,
            alg,
            "bob",
            PASSWORD,
            1 + i as u32,
        ));
        assert_eq!(ok.code, 200, "{alg}: {}", ok.raw);
    }
    // Wrong password and unknown user: the same 401 shape (anti-enumeration).
    let wrong = h.expect(&answer(
        &Reg::new("bob").cseq(9).bytes(),
        &challenge,
        "MD5",
        "bob",
        "nope",
        9,
    ));
    let mut mallory = Reg::new("mallory");
    mallory.cseq = 9;
    let unknown = h.expect(&answer(
        &mallory.bytes(),
        &challenge,
        "MD5",
        "mallory",
        "nope",
        10,
    ));
    assert_eq!((wrong.code, unknown.code), (401, 401));
    let shape = |r: &Reply| {
        let mut names: Vec<String> = r
            .raw
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(n, _)| n.to_owned())
            .collect();
        names.sort();
        (
            r.code,
            r.reason.clone(),
            names,
            r.headers("WWW-Authenticate").len(),
        )
    };
    assert_eq!(shape(&wrong), shape(&unknown));
    // Authenticated as bob, registering alice's AOR: 403.
    let third = answer(
        &Reg::new("alice").bytes(),
        &challenge,
        "MD5",
        "bob",
        PASSWORD,
        11,
    );
    assert_eq!(h.expect(&third).code, 403);
    assert_eq!(h.engine.stats().auth_failures, 2);
}

#[test]
fn regaut01_unknown_scheme_is_challenged_or_ignored() {
    let msg = std::fs::read(format!("{CORPUS}/torture/rfc4475/regaut01.dat")).unwrap();
    let mut h = Harness::new(auth_config(
        &["example.com"],
        "example.com",
        &[("bob", PASSWORD)],
    ));
    let r = h.expect(&msg);
    assert_eq!(
        r.code, 401,
        "registrar using auth issues a Digest challenge"
    );
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Digest "));
    let mut h = Harness::new(EngineConfig::default());
    assert_eq!(
        h.expect(&msg).code,
        200,
        "registrar without auth ignores the header"
    );
}

// ---------------------------------------------------------------------------------------------
// RFC 3665 §2 flows from the shared corpus.
//
// RFC 3665 §1.3: the Digest responses "are not actual MD5 encodings" and no password is given.
// The flows are replayed with the corpus's credentials (user `bob`, realm `atlanta.example.com`)
// and a password of ours: each request is sent byte-exact except its Authorization header, which
// is recomputed against the nonce our registrar issued. CSeq values are kept too; where the RFC's
// reuse of Call-ID 1j9FpLxk3uxtm8tn with CSeq 1 after CSeq 2 would (correctly) fail §10.3 step 7,
// that is tested separately.

fn corpus_msg(name: &str) -> Vec<u8> {
    std::fs::read(format!("{CORPUS}/rfc3665/{name}.sip")).expect("corpus present")
}

fn rfc3665_harness() -> Harness {
    Harness::new(auth_config(
        &["biloxi.example.com", "ss2.biloxi.example.com"],
        "atlanta.example.com",
        &[("bob", PASSWORD)],
    ))
}

/// Contacts of an RFC response file, for comparing with ours.
fn corpus_contacts(name: &str) -> Vec<(String, u32, String)> {
    let bytes = corpus_msg(name);
    let Ok(Message::Response(resp)) = sip::parse_datagram(&bytes, &sip::Limits::default()) else {
        panic!("{name} is a response")
    };
    contacts_of(&resp)
}

#[test]
fn rfc3665_2_1_successful_new_registration() {
    let mut h = rfc3665_harness();
    let f2 = h.expect(&corpus_msg("2.1-F1-REGISTER"));
    assert_eq!(f2.code, 401, "F2 401 Unauthorized");
    let f4 = h.expect(&answer(
        &corpus_msg("2.1-F3-REGISTER"),
        &f2,
        "MD5",
        "bob",
        PASSWORD,
        1,
    ));
    assert_eq!(f4.code, 200, "{}", f4.raw);
    assert_eq!(f4.contacts, corpus_contacts("2.1-F4-200"));
}

#[test]
fn rfc3665_2_2_to_2_4_update_query_cancel() {
    let mut h = rfc3665_harness();
    let ch = h.expect(&corpus_msg("2.1-F1-REGISTER"));
    h.expect(&answer(
        &corpus_msg("2.1-F3-REGISTER"),
        &ch,
        "MD5",
        "bob",
        PASSWORD,
        1,
    ));

    // 2.2: F1 as printed sends qop="auth" without nc/cnonce: improper directives, 400 per RFC
    // 2617 §3.2.2. Without them the UA is challenged; answered, the update adds the mailto:
    // contact and the 200 lists both bindings.
    let f1 = corpus_msg("2.2-F1-REGISTER");
    assert_eq!(h.expect(&f1).code, 400);
    let unauthenticated = answer_none(&f1);
    let challenge = h.expect(&unauthenticated);
    assert_eq!(challenge.code, 401);
    let f2 = h.expect(&answer(&f1, &challenge, "MD5", "bob", PASSWORD, 1));
    assert_eq!(f2.code, 200, "{}", f2.raw);
    let rfc = corpus_contacts("2.2-F2-200");
    assert_eq!(
        f2.contact_uris(),
        rfc.iter().map(|c| c.0.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(f2.contacts[0].1, rfc[0].1, "existing binding keeps 3600");
    // The RFC prints expires=4294967295 for the new mailto: binding, which F1 (no Expires) does
    // not ask for; §10.3 step 7 gives it the default (3600).
    assert_eq!(f2.contacts[1].1, 3600);

    // 2.3 (the seed flow): a query returns the current list.
    let f1 = corpus_msg("2.3-F1-REGISTER");
    let ch = h.expect(&f1);
    let f2 = h.expect(&answer(&f1, &ch, "MD5", "bob", PASSWORD, 1));
    assert_eq!(f2.code, 200);
    assert_eq!(
        f2.contact_uris(),
        corpus_contacts("2.3-F2-200")
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>()
    );

    // 2.4 as printed reuses Call-ID 1j9FpLxk3uxtm8tn with CSeq 1 after 2.1's CSeq 2: §10.3
    // step 6 aborts it. With the CSeq a real UA would use (3), all bindings are removed.
    let f1 = corpus_msg("2.4-F1-REGISTER");
    let ch = h.expect(&f1);
    let refused = h.expect(&answer(&f1, &ch, "MD5", "bob", PASSWORD, 1));
    assert_eq!(refused.code, 400);
    let fixed = String::from_utf8(f1)
        .unwrap()
        .replace("CSeq: 1 REGISTER", "CSeq: 3 REGISTER");
    let f2 = h.expect(&answer(fixed.as_bytes(), &ch, "MD5", "bob", PASSWORD, 2));
    assert_eq!(f2.code, 200, "{}", f2.raw);
    assert!(f2.contacts.is_empty());
    assert!(corpus_contacts("2.4-F2-200").is_empty());
}

#[test]
fn rfc3665_2_5_wrong_password() {
    let mut h = rfc3665_harness();
    let f2 = h.expect(&corpus_msg("2.5-F1-REGISTER"));
    assert_eq!(f2.code, 401);
    let f4 = h.expect(&answer(
        &corpus_msg("2.5-F3-REGISTER"),
        &f2,
        "MD5",
        "bob",
        "wrong",
        1,
    ));
    assert_eq!(f4.code, 401, "F4: challenged again");
    let n2 = f2.header("WWW-Authenticate").unwrap();
    let n4 = f4.header("WWW-Authenticate").unwrap();
    assert_ne!(n2, n4, "a fresh nonce");
    assert_eq!(h.engine.shared().store().binding_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// RFC 4475 torture messages a registrar answers.

fn torture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{CORPUS}/torture/rfc4475/{name}.dat")).expect("corpus present")
}

#[test]
fn rfc4475_registrar_verdicts() {
    // (file, expected status or None = dropped)
    let table: &[(&str, Option<u16>)] = &[
        ("cparam01", Some(200)),
        ("cparam02", Some(200)),
        ("dblreq", Some(200)),
        ("escnull", Some(200)),
        ("regescrt", Some(200)),
        ("scalar02", Some(400)),
        ("unksm2", Some(400)),
        ("regbadct", Some(400)),
        ("badvers", Some(505)),
        ("bext01", Some(420)),
        ("unkscm", Some(416)),
        ("novelsc", Some(416)),
        ("mismatch01", Some(400)),
        ("multi01", Some(400)),
        ("insuf", Some(400)),
        ("badinv01", Some(400)),
        ("intmeth", Some(501)),
        ("esc02", Some(501)),
        ("bigcode", None),
        ("scalarlg", None),
        ("bcast", None),
    ];
    for (name, want) in table {
        let mut h = Harness::new(EngineConfig::default());
        let got = h.send(&torture(name)).map(|r| r.code);
        assert_eq!(got, *want, "{name}");
    }
}

#[test]
fn rfc4475_every_message_handled_without_panic() {
    for dir in ["torture/rfc4475", "torture/rfc5118"] {
        for entry in std::fs::read_dir(format!("{CORPUS}/{dir}")).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let mut h = Harness::new(EngineConfig::default());
            let _ = h.send(&bytes);
            let meta = Meta {
                transport: Transport::Tcp,
                conn: Some(ConnId(1)),
                ..udp_meta()
            };
            let _ = h.engine.handle_stream(h.now, &meta, &bytes);
        }
    }
}

#[test]
fn rfc4475_cparam_and_escapes_bindings() {
    let mut h = Harness::new(EngineConfig::default());
    let r = h.expect(&torture("cparam01"));
    assert!(
        r.contacts.iter().all(|c| !c.0.contains("unknownparam")),
        "contact-param, not url-param: {}",
        r.raw
    );
    assert!(
        r.contacts.iter().any(|c| c.2.contains("unknownparam")),
        "contact-param echoed: {}",
        r.raw
    );
    let mut h = Harness::new(EngineConfig::default());
    let r = h.expect(&torture("cparam02"));
    assert!(
        r.contacts.iter().any(|c| c.0.contains(";unknownparam")),
        "url-param kept: {}",
        r.raw
    );
    let mut h = Harness::new(EngineConfig::default());
    let r = h.expect(&torture("escnull"));
    assert_eq!(r.contacts.len(), 2, "two distinct contacts: {}", r.raw);
    let mut h = Harness::new(EngineConfig::default());
    let r = h.expect(&torture("regescrt"));
    assert!(
        r.contacts
            .iter()
            .any(|c| c.0.contains("?Route=%3Csip:sip.example.com%3E")),
        "{}",
        r.raw
    );
    let mut h = Harness::new(EngineConfig::default());
    let r = h.expect(&torture("dblreq"));
    assert_eq!(
        r.header("CSeq").as_deref(),
        Some("8 REGISTER"),
        "the REGISTER, not the trailing INVITE"
    );
    assert_eq!(r.contact_uris(), vec!["sip:j.user@host.example.com"]);
}

// ---------------------------------------------------------------------------------------------
// Defences (guard.rs) through the engine.

#[test]
fn flood_from_one_source_is_banned_others_unaffected() {
    let mut h = Harness::new(EngineConfig {
        rate_limit: Some(guard::RateLimit {
            per_second: 5,
            burst: 10,
            ban_secs: 30,
            reply_503: false,
            allow: vec![],
        }),
        ..EngineConfig::default()
    });
    let mut answered = 0;
    for i in 0..50 {
        if h.send(&Reg::new("flood").cseq(i + 1).bytes()).is_some() {
            answered += 1;
        }
    }
    assert_eq!(answered, 10, "the burst, then dropped");
    assert_eq!(h.engine.stats().flood_drops, 40);
    h.meta.source = "198.51.100.20:5060".parse().unwrap();
    assert_eq!(
        h.expect(&Reg::new("legit").bytes()).code,
        200,
        "another source still served"
    );
    // With reply_503 the banned source is told to come back later.
    let mut h = Harness::new(EngineConfig {
        rate_limit: Some(guard::RateLimit {
            per_second: 1,
            burst: 1,
            ban_secs: 30,
            reply_503: true,
            allow: vec![],
        }),
        ..EngineConfig::default()
    });
    h.expect(&Reg::new("a").bytes());
    let r = h.expect(&Reg::new("a").cseq(2).bytes());
    assert_eq!(r.code, 503);
    assert_eq!(r.header("Retry-After").as_deref(), Some("30"));
}

#[test]
fn total_bindings_are_bounded() {
    let mut h = Harness::new(EngineConfig {
        max_bindings: 3,
        ..EngineConfig::default()
    });
    for u in ["a", "b", "c"] {
        assert_eq!(h.expect(&Reg::new(u).bytes()).code, 200);
    }
    let r = h.expect(&Reg::new("d").bytes());
    assert_eq!(
        (r.code, r.header("Retry-After").as_deref()),
        (503, Some("30"))
    );
    assert_eq!(
        h.expect(&Reg::new("a").cseq(2).bytes()).code,
        200,
        "refreshes still work"
    );
    assert_eq!(
        h.expect(
            &Reg::new("a")
                .cseq(3)
                .contact("<sip:a@192.0.2.201:5060>;expires=0")
                .bytes()
        )
        .code,
        200
    );
    assert_eq!(h.expect(&Reg::new("d").bytes()).code, 200, "room again");
}

#[test]
fn scanner_user_agents_are_dropped() {
    let mut h = Harness::open();
    assert!(h
        .send(&Reg::new("x").header("User-Agent: friendly-scanner").bytes())
        .is_none());
    assert_eq!(h.engine.stats().scanner_drops, 1);
    assert_eq!(
        h.expect(&Reg::new("x").header("User-Agent: Yealink SIP-T46S").bytes())
            .code,
        200
    );
}

#[test]
fn password_guessing_locks_out_without_an_oracle() {
    let mut config = auth_config(&["example.com"], "example.com", &[("bob", PASSWORD)]);
    config.lockout = Some(guard::Lockout {
        failures: 3,
        window_secs: 60,
        lock_secs: 300,
    });
    let mut h = Harness::new(config);
    let challenge = h.expect(&Reg::new("bob").bytes());
    let mut shapes = Vec::new();
    for i in 0..5u32 {
        let guess = answer(
            &Reg::new("bob").cseq(10 + i).bytes(),
            &challenge,
            "MD5",
            "bob",
            &format!("guess{i}"),
            1 + i,
        );
        let r = h.expect(&guess);
        assert_eq!(r.code, 401);
        shapes.push(r.header_names());
    }
    assert!(
        shapes.windows(2).all(|w| w[0] == w[1]),
        "locked answers look like wrong-password answers"
    );
    // Now even the right password is refused, with the same 401.
    let right = answer(
        &Reg::new("bob").cseq(20).bytes(),
        &challenge,
        "MD5",
        "bob",
        PASSWORD,
        9,
    );
    let r = h.expect(&right);
    assert_eq!(r.code, 401);
    assert_eq!(r.header_names(), shapes[0]);
    assert!(h.engine.stats().lockouts >= 1);
    // After the lock expires, the right password works again.
    h.advance(301);
    let fresh = h.expect(&Reg::new("bob").cseq(30).bytes());
    let ok = h.expect(&answer(
        &Reg::new("bob").cseq(31).bytes(),
        &fresh,
        "MD5",
        "bob",
        PASSWORD,
        1,
    ));
    assert_eq!(ok.code, 200, "{}", ok.raw);
}

#[test]
fn overloaded_shard_answers_503_to_registers() {
    let mut h = Harness::open();
    h.meta.overloaded = true;
    let r = h.expect(&Reg::new("busy").bytes());
    assert_eq!(
        (r.code, r.header("Retry-After").as_deref()),
        (503, Some("30"))
    );
    assert!(h.events().is_empty(), "nothing stored");
    h.meta.overloaded = false;
    assert_eq!(h.expect(&Reg::new("busy").bytes()).code, 200);
}

#[test]
fn reload_changes_policy_and_keeps_bindings() {
    let mut h = Harness::open();
    assert_eq!(h.expect(&Reg::new("alice").bytes()).code, 200);
    let shared = Arc::clone(h.engine.shared());
    // Invalid: refused, nothing changes.
    let bad = EngineConfig {
        domains: vec!["example.com".into()],
        min_expires: 9000,
        ..EngineConfig::default()
    };
    assert!(shared.reload(bad).unwrap_err().0.contains("min_expires"));
    let short = Reg::new("alice").cseq(2).header("Expires: 100");
    assert_eq!(h.expect(&short.bytes()).code, 200);
    // Valid: in force at the engine's next input; the binding survived.
    let strict = EngineConfig {
        domains: vec!["example.com".into()],
        min_expires: 600,
        max_contacts: 1,
        ..EngineConfig::default()
    };
    assert!(shared.reload(strict).is_ok());
    let r = h.expect(&Reg::new("alice").cseq(3).header("Expires: 100").bytes());
    assert_eq!((r.code, r.header("Min-Expires")), (423, Some("600".into())));
    let r = h.expect(&Reg::new("alice").cseq(4).contacts(&[]).bytes());
    assert_eq!(r.contact_uris(), ["sip:alice@192.0.2.201:5060"]);
    let two = Reg::new("bob").contacts(&["<sip:b@192.0.2.1>", "<sip:b@192.0.2.2>"]);
    assert_eq!(h.expect(&two.bytes()).code, 503, "max_contacts 1");
    // Settings fixed at start are refused.
    let auth = auth_config(&["example.com"], "example.com", &[("bob", "pw")]);
    assert!(shared.reload(auth).unwrap_err().0.contains("restart"));
    let resized = EngineConfig {
        store_shards: 1024,
        ..EngineConfig::default()
    };
    assert!(shared.reload(resized).unwrap_err().0.contains("restart"));
}

#[test]
fn reload_swaps_credentials_or_refuses_a_broken_file() {
    let cfg = auth_config(&["example.com"], "example.com", &[("alice", "old")]);
    let shared = Shared::new(cfg.clone()).unwrap();
    let mut broken = cfg.clone();
    if let Some(a) = broken.auth.as_mut() {
        a.credentials_text.push_str("not a credentials line\n");
    }
    assert!(shared.reload(broken).is_err());
    let auth = shared.authenticator().unwrap();
    assert!(auth.credentials_len() == 1);
    let mut more = cfg.clone();
    if let Some(a) = more.auth.as_mut() {
        a.credentials_text.push_str("bob:example.com:plain:pw\n");
    }
    assert!(shared.reload(more).unwrap().contains("2 credentials"));
    assert!(auth.credentials_len() == 2);
    let mut realm = cfg;
    if let Some(a) = realm.auth.as_mut() {
        a.realm = "elsewhere".into();
    }
    assert!(shared.reload(realm).unwrap_err().0.contains("realm"));
}

// ---------------------------------------------------------------------------------------------
// The remote location backend (remote.rs): nodes sharing one compare-and-set service.

/// The shared service, as the Redis script behaves: compare the version, then write or answer
/// the current value.
#[derive(Default)]
struct FakeService {
    values: HashMap<String, Vec<u8>>,
    /// Ops answered Unavailable (Redis down).
    down: bool,
    ops: usize,
}

impl FakeService {
    fn run(&mut self, op: &RemoteOp) -> RemoteReply {
        self.ops += 1;
        if self.down {
            return RemoteReply::Unavailable;
        }
        let key = op.aor.as_str().to_owned();
        let current = self.values.get(&key);
        let version = current.map_or(0, |v| decode_value(v).unwrap().0);
        if version != op.expected {
            return RemoteReply::Current(current.cloned());
        }
        if let Some(w) = &op.write {
            if w.expire_at == 0 {
                self.values.remove(&key);
            } else {
                self.values.insert(key, w.value.clone());
            }
        }
        RemoteReply::Committed
    }
}

/// Several registrar nodes (one engine each) over one [`FakeService`].
struct Cluster {
    nodes: Vec<Engine>,
    service: FakeService,
    /// Ops submitted and not yet run: (node, op).
    queue: std::collections::VecDeque<(usize, RemoteOp)>,
    now: Instant,
}

fn remote_config(node: u64) -> EngineConfig {
    EngineConfig {
        domains: vec!["example.com".into()],
        remote: Some(RemoteSettings {
            node,
            ..RemoteSettings::default()
        }),
        ..EngineConfig::default()
    }
}

impl Cluster {
    fn new(n: usize, config: impl Fn(u64) -> EngineConfig) -> Self {
        Self {
            nodes: (1..=n as u64)
                .map(|i| Engine::new(Arc::new(Shared::new(config(i)).unwrap())))
                .collect(),
            service: FakeService::default(),
            queue: Default::default(),
            now: Instant::from_secs(T0),
        }
    }

    /// Hands a datagram to a node; its ops wait in the queue. Returns an immediate response.
    fn submit(&mut self, node: usize, msg: &[u8]) -> Option<Reply> {
        self.nodes[node].handle_datagram(self.now, &udp_meta(), msg);
        let reply = self.nodes[node]
            .poll_transmit()
            .map(|t| parse_reply(t.bytes));
        self.collect(node);
        reply
    }

    fn collect(&mut self, node: usize) {
        while let Some(op) = self.nodes[node].poll_remote() {
            self.queue.push_back((node, op));
        }
    }

    /// Runs queued ops (and the ops they cause) in order; returns the responses by node.
    fn run(&mut self) -> Vec<(usize, Reply)> {
        let mut replies = Vec::new();
        while let Some((node, op)) = self.queue.pop_front() {
            let answer = self.service.run(&op);
            self.nodes[node].handle_remote(self.now, op.token, answer);
            if let Some(t) = self.nodes[node].poll_transmit() {
                replies.push((node, parse_reply(t.bytes)));
            }
            self.collect(node);
        }
        replies
    }

    fn expect(&mut self, node: usize, msg: &[u8]) -> Reply {
        if let Some(r) = self.submit(node, msg) {
            return r;
        }
        let mut replies = self.run();
        assert_eq!(replies.len(), 1, "one response");
        replies.pop().unwrap().1
    }
}

#[test]
fn remote_nodes_share_bindings_and_keep_section_10_3_rules() {
    let mut c = Cluster::new(2, remote_config);
    let r = c.expect(0, &Reg::new("ana").cseq(5).bytes());
    assert_eq!(
        (r.code, r.contact_uris()),
        (200, vec!["sip:ana@192.0.2.201:5060"])
    );
    // Node B never saw the AOR: its query is answered from the service.
    let q = c.expect(1, &Reg::new("ana").cseq(6).contacts(&[]).bytes());
    assert_eq!(q.contact_uris(), vec!["sip:ana@192.0.2.201:5060"]);
    assert_eq!(q.contacts[0].1, 3600);
    // Same Call-ID, lower CSeq on node B: refused although B never stored that binding.
    let r = c.expect(1, &Reg::new("ana").cseq(4).header("Expires: 0").bytes());
    assert_eq!(r.code, 400, "{}", r.raw);
    // A retransmission is a replay, not a second write.
    let writes = c.service.ops;
    let r = c.expect(0, &Reg::new("ana").cseq(5).bytes());
    assert_eq!(r.code, 200);
    assert_eq!(c.service.ops, writes + 1, "one confirming op, no retry");
    // Node B removes the binding; node A's cache is stale, its query is still right.
    let r = c.expect(1, &Reg::new("ana").cseq(7).header("Expires: 0").bytes());
    assert_eq!((r.code, r.contacts.len()), (200, 0));
    assert!(
        c.service.values.is_empty(),
        "an AOR without bindings is deleted"
    );
    let q = c.expect(0, &Reg::new("ana").cseq(8).contacts(&[]).bytes());
    assert_eq!((q.code, q.contacts.len()), (200, 0), "{}", q.raw);
    // Wildcard from node A after node B registered again.
    c.expect(1, &Reg::new("ana").cseq(9).bytes());
    let r = c.expect(
        0,
        &Reg::new("ana")
            .cseq(10)
            .contact("*")
            .header("Expires: 0")
            .bytes(),
    );
    assert_eq!((r.code, r.contacts.len()), (200, 0), "{}", r.raw);
    assert!(c.service.values.is_empty());
}

/// A REGISTER re-planned after the location service answered (`register::resume`) packs its
/// own User-Agent, not the one of the request the scanner check saw last on that node.
#[test]
fn remote_resume_keeps_its_own_user_agent() {
    let mut c = Cluster::new(2, remote_config);
    let ua = |phone: &str| format!("User-Agent: {phone}");
    c.expect(
        0,
        &Reg::new("ana").cseq(1).header(&ua("Yealink T46S")).bytes(),
    );
    // Node 1's cache never saw ana: its op meets a newer version and is re-planned.
    assert!(c
        .submit(
            1,
            &Reg::new("ana").cseq(2).header(&ua("Polycom VVX")).bytes()
        )
        .is_none());
    // Meanwhile node 1 handles other phones of one model (its scanner check remembers it).
    for (n, user) in ["bob", "cy", "dee"].into_iter().enumerate() {
        let r = c.submit(
            1,
            &Reg::new(user).cseq(1).header(&ua("Yealink T46S")).bytes(),
        );
        assert!(r.is_none(), "{n}");
    }
    for (node, r) in c.run() {
        assert_eq!(r.code, 200, "node {node}: {}", r.raw);
    }
    let (_, list) = decode_value(&c.service.values["sip:ana@example.com"]).unwrap();
    let agents: Vec<_> = list.iter().map(|b| b.user_agent()).collect();
    assert_eq!(agents, vec![&b"Polycom VVX"[..]]);
}

#[test]
fn remote_cseq_race_between_two_nodes() {
    let mut c = Cluster::new(2, remote_config);
    c.expect(0, &Reg::new("bo").cseq(1).bytes());
    c.expect(1, &Reg::new("bo").cseq(2).bytes());
    c.expect(0, &Reg::new("bo").cseq(3).contacts(&[]).bytes()); // both caches are current now
                                                                // Both nodes plan against the same version at the same time: CSeq 10 on A, 9 on B.
    assert!(c.submit(0, &Reg::new("bo").cseq(10).bytes()).is_none());
    assert!(c
        .submit(1, &Reg::new("bo").cseq(9).header("Expires: 0").bytes())
        .is_none());
    let replies = c.run();
    let codes: Vec<(usize, u16)> = replies.iter().map(|(n, r)| (*n, r.code)).collect();
    assert_eq!(
        codes,
        vec![(0, 200), (1, 400)],
        "the older CSeq loses the race"
    );
    let q = c.expect(1, &Reg::new("bo").cseq(11).contacts(&[]).bytes());
    assert_eq!(q.contacts.len(), 1, "the binding of CSeq 10 stays");
    // The other order: the higher CSeq arrives second and wins after re-planning.
    assert!(c
        .submit(1, &Reg::new("bo").cseq(12).header("Expires: 0").bytes())
        .is_none());
    assert!(c.submit(0, &Reg::new("bo").cseq(13).bytes()).is_none());
    let replies = c.run();
    let codes: Vec<(usize, u16)> = replies.iter().map(|(n, r)| (*n, r.code)).collect();
    assert_eq!(codes, vec![(1, 200), (0, 200)]);
    assert_eq!(
        replies[1].1.contacts.len(),
        1,
        "re-registered after the removal"
    );
}

#[test]
fn remote_max_contacts_is_atomic_across_nodes() {
    let mut c = Cluster::new(2, |n| EngineConfig {
        max_contacts: 1,
        ..remote_config(n)
    });
    let mut other = Reg::new("cy").contact("<sip:cy@192.0.2.9>");
    other.call_id = "other-phone".into();
    assert!(c.submit(0, &Reg::new("cy").bytes()).is_none());
    assert!(c.submit(1, &other.bytes()).is_none());
    let codes: Vec<u16> = c.run().iter().map(|(_, r)| r.code).collect();
    assert_eq!(codes, vec![200, 503]);
    let (_, list) = decode_value(c.service.values.values().next().unwrap()).unwrap();
    assert_eq!(list.len(), 1);
}

#[test]
fn remote_unavailable_and_full_answer_503_and_recover() {
    let mut c = Cluster::new(1, |n| EngineConfig {
        remote: Some(RemoteSettings {
            node: n,
            max_pending: 2,
            ..RemoteSettings::default()
        }),
        ..remote_config(n)
    });
    c.service.down = true;
    let r = c.expect(0, &Reg::new("di").bytes());
    assert_eq!(r.code, 503);
    assert_eq!(r.header("Retry-After").as_deref(), Some("5"));
    assert!(c.service.values.is_empty(), "nothing written");
    c.service.down = false;
    assert_eq!(
        c.expect(0, &Reg::new("di").cseq(2).bytes()).code,
        200,
        "recovers by itself"
    );
    // Two requests wait; the third is refused at once (bounded).
    assert!(c.submit(0, &Reg::new("e1").bytes()).is_none());
    assert!(c.submit(0, &Reg::new("e2").bytes()).is_none());
    assert_eq!(c.nodes[0].remote_pending(), 2);
    let r = c
        .submit(0, &Reg::new("e3").bytes())
        .expect("immediate answer");
    assert_eq!(r.code, 503);
    assert_eq!(c.run().len(), 2);
    assert_eq!(c.nodes[0].remote_pending(), 0);
}

#[test]
fn remote_hot_aor_gives_up_after_max_attempts() {
    let mut c = Cluster::new(1, remote_config);
    c.expect(0, &Reg::new("fe").bytes());
    assert!(c.submit(0, &Reg::new("fe").cseq(2).bytes()).is_none());
    // Another writer changes the value before every attempt.
    let mut answers = 0;
    while let Some((node, op)) = c.queue.pop_front() {
        let key = op.aor.as_str().to_owned();
        let (_, list) = decode_value(&c.service.values[&key]).unwrap();
        c.service
            .values
            .insert(key, encode_value(0x1000 + answers, &list));
        answers += 1;
        let a = c.service.run(&op);
        c.nodes[node].handle_remote(c.now, op.token, a);
        c.collect(node);
    }
    let r = parse_reply(c.nodes[0].poll_transmit().unwrap().bytes);
    assert_eq!(r.code, 503);
    assert_eq!(answers, 8, "max_attempts");
}

#[test]
fn remote_flow_bindings_removed_on_close_only_for_this_node() {
    let mut c = Cluster::new(2, remote_config);
    let tcp = |conn| Meta {
        transport: Transport::Tcp,
        conn: Some(ConnId(conn)),
        ..udp_meta()
    };
    // The same connection id on both nodes, different contacts on one AOR.
    for (node, host) in [(0, "192.0.2.1"), (1, "192.0.2.2")] {
        let mut reg = Reg::new("gi").contact(&format!("<sip:gi@{host};transport=tcp>"));
        reg.call_id = format!("call-{node}");
        let bytes = reg.bytes();
        let status = c.nodes[node].handle_stream(c.now, &tcp(7), &bytes);
        assert_eq!(status, StreamStatus::Consumed(bytes.len()));
        assert!(c.nodes[node].poll_transmit().is_none());
        c.collect(node);
        assert_eq!(c.run()[0].1.code, 200);
    }
    c.nodes[0].handle_close(c.now, ConnId(7));
    c.collect(0);
    assert!(c.run().is_empty(), "no response for a flow removal");
    let q = c.expect(1, &Reg::new("gi").cseq(9).contacts(&[]).bytes());
    assert_eq!(q.contact_uris(), vec!["sip:gi@192.0.2.2;transport=tcp"]);
}

/// The remote backend answers exactly like the memory backend: random request sequences over
/// a few AORs, contacts, Call-IDs and CSeqs, sent to a memory engine and round-robin to three
/// remote nodes, give the same status and contact list every time.
#[test]
fn remote_backend_matches_memory_backend() {
    let config = |remote: Option<u64>| EngineConfig {
        domains: vec!["example.com".into()],
        max_contacts: 3,
        remote: remote.map(|node| RemoteSettings {
            node,
            cache_aors: 2, // small: evictions and stale entries happen all the time
            ..RemoteSettings::default()
        }),
        ..EngineConfig::default()
    };
    let mut memory = Harness::new(config(None));
    let mut cluster = Cluster::new(3, |n| config(Some(n)));
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for i in 0..3000 {
        let user = ["u0", "u1", "u2", "u3"][next(4) as usize];
        let mut reg = Reg::new(user).cseq(next(6) as u32 + 1);
        reg.call_id = format!("c{}", next(2));
        let contact = |k: u64| format!("<sip:{user}@192.0.2.{k}>");
        reg = match next(6) {
            0 => reg.contacts(&[]),
            1 => reg.contact("*").header("Expires: 0"),
            2 => reg.contact(&format!("{};expires=0", contact(next(4)))),
            3 => reg.contacts(&[&contact(next(4)), &contact(next(4))]),
            _ => reg.contact(&contact(next(4))),
        };
        let msg = reg.bytes();
        let want = memory.expect(&msg);
        let got = cluster.expect(i % 3, &msg);
        assert_eq!(
            (got.code, &got.contacts),
            (want.code, &want.contacts),
            "request {i}:\n{}",
            String::from_utf8_lossy(&msg)
        );
        if next(10) == 0 {
            memory.advance(900);
            cluster.now = memory.now;
        }
    }
    // The counters agree too (a response rendered ahead of time is counted once, when sent).
    let mut remote = Stats::default();
    for n in &cluster.nodes {
        remote.add(n.stats());
    }
    let local = memory.engine.stats();
    assert_eq!(remote.registered, local.registered);
    assert_eq!(remote.register_responses, local.register_responses);
    assert_eq!(remote.requests, local.requests);
}

/// The To tag's hex digits are `format!("{h:016x}")`.
#[test]
fn to_tag_hex_digits() {
    let mut h = 0x0123_4567_89ab_cdefu64;
    for i in 0..1000u64 {
        for v in [h, i, u64::MAX - i, i << 60] {
            assert_eq!(hex16(v).to_vec(), format!("{v:016x}").into_bytes());
        }
        h = h.rotate_left(7) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
