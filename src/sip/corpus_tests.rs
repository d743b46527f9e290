//! The RFC 4475 and RFC 5118 torture messages from the shared corpus, checked against the
//! verdicts recorded in their index files.

use serde_json::Value;

use super::*;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/sip-corpus");

/// What the parser must make of a message.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Parses; no defect.
    Clean,
    /// Parses; this defect is recorded.
    Defect(Error),
    /// Does not parse.
    Rejected(Error),
}

fn verdict(bytes: &[u8]) -> Verdict {
    match parse_datagram(bytes, &Limits::default()) {
        Ok(Message::Request(r)) => r.defect().map_or(Verdict::Clean, Verdict::Defect),
        Ok(Message::Response(r)) => r.defect().map_or(Verdict::Clean, Verdict::Defect),
        Err(e) => Verdict::Rejected(e),
    }
}

/// Invalid (or verdict-less) messages and the precise outcome we give them. Messages the RFC
/// calls valid must come out `Clean` (checked from the index files).
fn expected_invalid(name: &str) -> Option<Verdict> {
    use Verdict::{Clean, Defect, Rejected};
    Some(match name {
        "badaspec" => Defect(Error::BadNameAddr),
        "baddn" => Defect(Error::BadNameAddr),
        "badinv01" => Defect(Error::BadVia),
        // 505 is the engine's decision: the parser accepts other versions.
        "badvers" => Clean,
        "bigcode" => Rejected(Error::BadStatusCode),
        "clerr" => Defect(Error::Truncated),
        // Date is not interpreted by a registrar (RFC 4475 §3.1.2.12 allows ignoring it).
        "baddate" => Clean,
        // Headers in the Request-URI: syntactically a URI; the engine refuses them (400).
        "escruri" => Clean,
        "insuf" => Defect(Error::MissingHeader("From")),
        "ltgtruri" => Defect(Error::BadUri),
        "lwsruri" => Defect(Error::BadStartLine),
        "lwsstart" => Defect(Error::BadStartLine),
        "trws" => Defect(Error::BadStartLine),
        "mcl01" => Defect(Error::ConflictingContentLength),
        "mismatch01" | "mismatch02" => Defect(Error::CSeqMethodMismatch),
        "multi01" => Defect(Error::DuplicateHeader("From")),
        "ncl" => Defect(Error::BadContentLength),
        "quotbal" => Defect(Error::BadNameAddr),
        // The Contact value itself is broken; checked through contacts() below.
        "regbadct" => Clean,
        "scalar02" => Defect(Error::BadCSeq),
        "scalarlg" => Defect(Error::BadCSeq),
        // A transaction-layer matter, not a syntax error.
        "badbranch" => Clean,
        "test" => Rejected(Error::BadHeader),
        "ipv6-bad" => Defect(Error::BadUri),
        // Invalid under strict RFC 3261 grammar, but RFC 5118 §4.5 says it must parse.
        "via-received-param-with-delim" => Clean,
        // RFC 5118 §4.10: tolerated.
        "ipv6-bug-abnf-3-colons" => Clean,
        _ => return None,
    })
}

/// RFC 5118 files whose Content-Length matches their body in neither line-ending form (see the
/// corpus MANIFEST): the body is shorter than announced.
const CL_MISMATCH_IN_CORPUS: &[&str] = &["ipv6-in-sdp", "mult-ip-in-sdp"];

#[test]
fn torture_messages_match_their_verdicts() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for index in ["torture/rfc4475-index.json", "torture/rfc5118-index.json"] {
        let text = std::fs::read_to_string(format!("{CORPUS}/{index}")).expect("corpus present");
        let json: Value = serde_json::from_str(&text).unwrap();
        for e in json["entries"].as_array().unwrap() {
            let name = e["message_name"].as_str().unwrap();
            let bytes = std::fs::read(format!("{CORPUS}/{}", e["file"].as_str().unwrap())).unwrap();
            let got = verdict(&bytes);
            let want = match (expected_invalid(name), e["wellformed_per_rfc"].as_bool()) {
                (Some(v), _) => v,
                (None, Some(true)) if CL_MISMATCH_IN_CORPUS.contains(&name) => {
                    Verdict::Defect(Error::Truncated)
                }
                (None, Some(true)) => Verdict::Clean,
                (None, _) => {
                    failures.push(format!("{name}: no expectation recorded (got {got:?})"));
                    continue;
                }
            };
            if got != want {
                failures.push(format!("{name}: got {got:?}, want {want:?}"));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(checked, 62);
}

#[test]
fn torture_details() {
    let read = |name: &str| std::fs::read(format!("{CORPUS}/torture/rfc4475/{name}.dat")).unwrap();
    let parse = |bytes: &[u8]| -> Vec<u8> { bytes.to_vec() };
    // dblreq: only the REGISTER, trailing octets ignored.
    let b = parse(&read("dblreq"));
    let Ok(Message::Request(r)) = parse_datagram(&b, &Limits::default()) else {
        panic!()
    };
    assert_eq!(r.method(), Method::REGISTER);
    assert!(r.as_bytes().len() < b.len());
    // esc02: RE%47IST%45R is not REGISTER, C%6Fntact is not Contact.
    let b = read("esc02");
    let Ok(Message::Request(r)) = parse_datagram(&b, &Limits::default()) else {
        panic!()
    };
    assert_eq!(r.method().0, b"RE%47IST%45R");
    assert_eq!(r.contacts().count(), 2);
    // cparam01 / cparam02: contact-param vs url-param.
    let b = read("cparam01");
    let Ok(Message::Request(r)) = parse_datagram(&b, &Limits::default()) else {
        panic!()
    };
    let Some(Ok(Contact::Addr(c))) = r.contacts().next() else {
        panic!()
    };
    assert!(c.name_addr.params.get(b"unknownparam").is_some());
    assert!(c.name_addr.uri.params().get(b"unknownparam").is_none());
    let b = read("cparam02");
    let Ok(Message::Request(r)) = parse_datagram(&b, &Limits::default()) else {
        panic!()
    };
    let Some(Ok(Contact::Addr(c))) = r.contacts().next() else {
        panic!()
    };
    assert!(c.name_addr.uri.params().get(b"unknownparam").is_some());
    // regbadct: the escaped header requires <>.
    let b = read("regbadct");
    let Ok(Message::Request(r)) = parse_datagram(&b, &Limits::default()) else {
        panic!()
    };
    assert_eq!(
        r.contacts().next().map(|c| c.err()),
        Some(Some(Error::BadContact))
    );
    // longreq: 34 Vias in mixed forms.
    let b = read("longreq");
    let Ok(Message::Request(r)) = parse_datagram(&b, &Limits::default()) else {
        panic!()
    };
    assert!(r.vias().count() >= 34);
    assert!(r.vias().all(|v| v.is_ok()));
    // mpart01: binary body framed exactly.
    let b = read("mpart01");
    let Ok(Message::Request(r)) = parse_datagram(&b, &Limits::default()) else {
        panic!()
    };
    assert_eq!(r.body().len(), 553);
    // The same bytes as a stream: Content-Length frames it; clerr waits for more.
    assert_eq!(
        frame_stream(&b, &Limits::default()),
        Ok(Status::Complete(b.len()))
    );
    assert_eq!(
        frame_stream(&read("clerr"), &Limits::default()),
        Ok(Status::Partial)
    );
    assert_eq!(
        frame_stream(&read("ncl"), &Limits::default()),
        Err(Error::BadContentLength)
    );
}

#[test]
fn rfc3665_messages_parse() {
    for entry in std::fs::read_dir(format!("{CORPUS}/rfc3665")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("sip") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let v = verdict(&bytes);
        // 2.5 F1 as printed has no Max-Forwards: not a defect we enforce (a registrar is the
        // last hop). Everything in section 2 must parse cleanly.
        assert_eq!(v, Verdict::Clean, "{}", path.display());
    }
}
