//! Parser: any bytes, every typed accessor; a parsed request must answer with a response that
//! parses and keeps Call-ID and CSeq.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipreg::sip::{self, Contact, Limits, Message, ResponseWriter, StatusCode, Uri};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = sip::parse_stream(data, &limits);
    let _ = sip::frame_stream(data, &limits);
    let _ = sip::keepalive_len(data);
    let Ok(Message::Request(req)) = sip::parse_datagram(data, &limits) else { return };
    let _ = (req.call_id(), req.expires(), req.max_forwards(), req.defect());
    for v in req.vias() {
        if let Ok(v) = v {
            let _ = (v.branch(), v.rport(), v.received());
        }
    }
    for c in req.contacts() {
        if let Ok(Contact::Addr(a)) = c {
            let _ = (a.fields(), a.expires(), a.q(), a.instance(), a.reg_id(), a.other_params().count());
            let mut aor = String::new();
            let _ = a.name_addr.uri.write_aor(&mut aor);
            let _ = a.name_addr.uri.equivalent(&a.name_addr.uri);
        }
    }
    if let Ok(u) = Uri::parse(req.uri()) {
        let mut aor = String::new();
        let _ = u.write_aor(&mut aor);
    }
    let (Ok(call_id), Ok(cseq)) = (req.call_id(), req.cseq()) else { return };
    if req.defect().is_some() {
        return;
    }
    let mut out = Vec::new();
    let w = ResponseWriter::new(&mut out, StatusCode::OK, None, &req, b"fuzz", Some("192.0.2.1:5060".parse().unwrap()));
    w.finish(b"");
    let parsed = sip::parse_datagram(&out, &limits);
    let Ok(Message::Response(r)) = parsed else {
        panic!("our response does not parse: {parsed:?}\n{}", String::from_utf8_lossy(&out));
    };
    assert_eq!(r.call_id().ok(), Some(call_id), "Call-ID kept");
    assert_eq!(r.cseq().ok().map(|c| c.seq), Some(cseq.seq), "CSeq kept");
});
