//! Response writer (RFC 3261 §8.2.6) into a caller-owned buffer, and the Date header format.

use std::io::Write as _;
use std::net::SocketAddr;

use super::header::{offset_in, CommaSplit, HeaderName, Via};
use super::parse::{Header, Request};
use super::StatusCode;

/// Writes one response. Created from the request it answers; headers are appended in call
/// order; [`ResponseWriter::finish`] adds Content-Length and the body.
#[derive(Debug)]
pub struct ResponseWriter<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
}

impl<'o> ResponseWriter<'o> {
    /// Writes the status line and the headers copied from the request (§8.2.6.2): every Via in
    /// order — the top one with `received=<source ip>` and, when the request asked with a
    /// valueless `rport`, `rport=<source port>` (§18.2.1, RFC 3581 §4) — From, To (with
    /// `;tag=<to_tag>` added when the request's To has none), Call-ID and CSeq.
    #[inline]
    pub fn new(
        out: &'o mut Vec<u8>,
        status: StatusCode,
        reason: Option<&str>,
        req: &Request<'_>,
        to_tag: &[u8],
        received: Option<SocketAddr>,
    ) -> Self {
        Self::with_tag_of(out, status, reason, req, |_| to_tag, received)
    }

    /// [`ResponseWriter::new`] with the To tag made from the request's Call-ID value (empty
    /// when it has none) by `to_tag`: the Call-ID the writer looks up anyway.
    #[inline(always)]
    pub fn with_tag_of<T: AsRef<[u8]>>(
        out: &'o mut Vec<u8>,
        status: StatusCode,
        reason: Option<&str>,
        req: &Request<'_>,
        to_tag: impl FnOnce(&[u8]) -> T,
        received: Option<SocketAddr>,
    ) -> Self {
        let start = out.len();
        // The status line and the top Via's head in one piece: a request has its Via (when
        // it has none, the head is taken back).
        match (status, reason) {
            (StatusCode::OK, None) => out.extend_from_slice(b"SIP/2.0 200 OK\r\nVia: "),
            _ => {
                let reason = reason.unwrap_or_else(|| status.reason());
                out.extend_from_slice(b"SIP/2.0 ");
                push_decimal(out, u64::from(status.0));
                out.push(b' ');
                out.extend_from_slice(reason.as_bytes());
                out.extend_from_slice(b"\r\nVia: ");
            }
        }
        // Every Via in order, then From, To, Call-ID and CSeq in request order. The usual
        // request (each of the four once, in this order) straight from the header index, any
        // other in a general pass.
        let mark = out.len().saturating_sub(b"Via: ".len());
        let lines = consecutive_lines(req);
        let call_id = match lines {
            Some([_, _, call_id, _]) => Some(call_id.value),
            None => req.header(HeaderName::CallId),
        };
        let tag = to_tag(call_id.unwrap_or_default());
        let tag = tag.as_ref();
        if !copy_usual(out, mark, req, lines, call_id, tag, received) {
            out.truncate(mark);
            copy_in_two_passes(out, req, tag, received);
        }
        Self { out, start }
    }

    /// Appends `name: value`.
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Appends `name: <formatted value>`.
    pub fn header_fmt(&mut self, name: &str, args: std::fmt::Arguments<'_>) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        let _ = self.out.write_fmt(args);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Appends `Contact: <uri>;expires=N` followed by `params` (raw, each starting with `;`).
    #[inline]
    pub fn contact(&mut self, uri: &[u8], expires: u32, params: &[u8]) -> &mut Self {
        const EXPIRES: &[u8; 10] = b">;expires=";
        self.out.extend_from_slice(b"Contact: <");
        self.out.extend_from_slice(uri);
        match decimal8(expires) {
            // The usual delta, in one copy with the text before it.
            Some((digits, len)) => {
                let mut buf = [0u8; EXPIRES.len() + 8];
                buf[..EXPIRES.len()].copy_from_slice(EXPIRES);
                buf[EXPIRES.len()..].copy_from_slice(&digits.to_le_bytes());
                push_prefix(self.out, &buf, EXPIRES.len() + len);
            }
            None => {
                self.out.extend_from_slice(EXPIRES);
                push_decimal(self.out, u64::from(expires));
            }
        }
        self.out.extend_from_slice(params);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Lets `f` append whole, CRLF-terminated header lines.
    pub fn raw(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        f(self.out);
        self
    }

    /// Ends a response without a body with `tail`: its last header lines, `Content-Length: 0`
    /// among them, and the empty line (a fixed ending in one copy); returns the response's
    /// length.
    pub fn finish_with(self, tail: &[u8]) -> usize {
        debug_assert!(tail.ends_with(b"Content-Length: 0\r\n\r\n"));
        self.out.extend_from_slice(tail);
        self.out.len() - self.start
    }

    /// Appends Content-Length and the body; returns the response's length.
    pub fn finish(self, body: &[u8]) -> usize {
        if body.is_empty() {
            self.out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        } else {
            self.out.extend_from_slice(b"Content-Length: ");
            push_decimal(self.out, body.len() as u64);
            self.out.extend_from_slice(b"\r\n\r\n");
            self.out.extend_from_slice(body);
        }
        self.out.len() - self.start
    }
}

/// The From, To, Call-ID and CSeq values when the request (valid: each of them once) has
/// their lines one after another in this order, the usual layout: read off the header index
/// from its (only) From line on, without a lookup per name. The walk to the From line costs
/// a compare per line before it, less than the lookups for the few lines a request usually
/// has there (its Vias, Max-Forwards).
#[inline(always)]
fn consecutive_lines<'r, 'b>(req: &'r Request<'b>) -> Option<&'r [Header<'b>; 4]> {
    if req.defect().is_some() {
        return None;
    }
    let headers = req.headers();
    let at = headers.iter().position(|h| h.name == HeaderName::From)?;
    let lines = headers.get(at..)?.first_chunk::<4>()?;
    let [_, to, call_id, cseq] = lines;
    let consecutive = to.name == HeaderName::To
        && call_id.name == HeaderName::CallId
        && cseq.name == HeaderName::CSeq;
    consecutive.then_some(lines)
}

/// Every Via line, then the From, To, Call-ID and CSeq lines, each set in request order,
/// when the request (valid: each of the four once) has them in the order From, To, Call-ID,
/// CSeq; `false` otherwise (the caller takes back what was written). The four are `lines`
/// when they are consecutive ([`consecutive_lines`]), else found through the header index
/// (`call_id` already was), without a pass over every header line. The top Via's `Via: ` is
/// already written, at `via_head` (taken back when the request has no Via).
#[inline(always)]
fn copy_usual(
    out: &mut Vec<u8>,
    via_head: usize,
    req: &Request<'_>,
    lines: Option<&[Header<'_>; 4]>,
    call_id: Option<&[u8]>,
    to_tag: &[u8],
    received: Option<SocketAddr>,
) -> bool {
    // The four values are read from the lines after the Vias are written: one pointer kept
    // across them rather than eight words.
    let ordered = match lines {
        Some(_) => None,
        None => match ordered_lines(req, call_id) {
            Some(values) => Some(values),
            None => return false,
        },
    };
    let raw = req.as_bytes();
    // The first Via line found through the census, the others (the usual request has none)
    // by the walk over the lines. The usual single Via's line is left open: its line end is
    // written with the From line's head, in one piece.
    let open = match req.header(HeaderName::Via) {
        Some(top) => {
            push_top_via(out, req, top, received);
            true
        }
        None => {
            out.truncate(via_head);
            false
        }
    };
    let open = if req.line_count(HeaderName::Via) > 1 {
        out.extend_from_slice(b"\r\n");
        for via in req.headers_named(HeaderName::Via).skip(1) {
            push_line(out, raw, via, b"Via: ");
        }
        false
    } else {
        open
    };
    let [from, to, call_id, cseq] = match (lines, ordered) {
        (Some([from, to, call_id, cseq]), _) => [from.value, to.value, call_id.value, cseq.value],
        (None, Some(values)) => values,
        // (Not reached: without `lines` there is `ordered`. The caller takes back what was
        // written and falls back to the general pass.)
        (None, None) => return false,
    };
    let to_tag = if to_has_tag(req) { &[][..] } else { to_tag };
    // Each line as RFC 3261 spells it (what the general pass writes for any spelling), not
    // copied from the request: checking that the request's four lines read so costs more
    // than the two copies of the values it would save.
    if open {
        out.extend_from_slice(b"\r\nFrom: ");
    } else {
        out.extend_from_slice(b"From: ");
    }
    out.extend_from_slice(from);
    out.extend_from_slice(b"\r\nTo: ");
    out.extend_from_slice(to);
    match <&[u8; 16]>::try_from(to_tag) {
        // The engine's tag (16 hex digits) with the text around it in one piece.
        Ok(tag) => {
            let mut piece = *b";tag=0123456789abcdef\r\nCall-ID: ";
            if let Some(digits) = piece.get_mut(5..21) {
                digits.copy_from_slice(tag);
            }
            out.extend_from_slice(&piece);
        }
        Err(_) => {
            if !to_tag.is_empty() {
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(to_tag);
            }
            out.extend_from_slice(b"\r\nCall-ID: ");
        }
    }
    out.extend_from_slice(call_id);
    out.extend_from_slice(b"\r\nCSeq: ");
    push_short_line(out, raw, cseq);
    true
}

/// Appends `value`, a request header's value, and CRLF. A value of up to 14 bytes (the
/// usual CSeq) that the request follows with CRLF is copied with it as the 16 bytes of the
/// request there, cut after the CRLF: a copy of known size, not a `memcpy` call and a
/// second piece.
#[inline(always)]
fn push_short_line(out: &mut Vec<u8>, raw: &[u8], value: &[u8]) {
    // Wrapping: a value outside `raw` gives a place `get` refuses.
    let at = (value.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    let end = value.len() + 2;
    match raw.get(at..).and_then(|r| r.first_chunk::<16>()) {
        Some(block) if end <= 16 && block.get(value.len()..end) == Some(b"\r\n") => {
            push_prefix(out, block, end);
        }
        _ => {
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The From, To, Call-ID and CSeq values of a valid request whose lines are in this order but
/// not one after another, through the header index (out of line: rare).
#[cold]
#[inline(never)]
fn ordered_lines<'b>(req: &Request<'b>, call_id: Option<&'b [u8]>) -> Option<[&'b [u8]; 4]> {
    if req.defect().is_some() {
        return None;
    }
    let (Some(from), Some(to), Some(call_id), Some(cseq)) = (
        req.header(HeaderName::From),
        req.header(HeaderName::To),
        call_id,
        req.header(HeaderName::CSeq),
    ) else {
        return None;
    };
    // Values are views of the request's bytes: their addresses are their order.
    let ordered = from.as_ptr() < to.as_ptr()
        && to.as_ptr() < call_id.as_ptr()
        && call_id.as_ptr() < cseq.as_ptr();
    ordered.then_some([from, to, call_id, cseq])
}

/// All Vias first, then From, To, Call-ID and CSeq in request order: for any request
/// [`copy_usual`] does not take (out of line).
#[cold]
#[inline(never)]
fn copy_in_two_passes(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    to_tag: &[u8],
    received: Option<SocketAddr>,
) {
    let to_tag = if to_has_tag(req) { &[][..] } else { to_tag };
    let raw = req.as_bytes();
    let mut vias = req.headers().iter().filter(|h| h.name == HeaderName::Via);
    if let Some(top) = vias.next() {
        out.extend_from_slice(b"Via: ");
        push_top_via(out, req, top.value, received);
        out.extend_from_slice(b"\r\n");
    }
    for via in vias {
        push_line(out, raw, via.value, b"Via: ");
    }
    for h in req.headers() {
        match h.name {
            HeaderName::From => push_line(out, raw, h.value, b"From: "),
            HeaderName::To => push_to(out, raw, h.value, to_tag),
            HeaderName::CallId => push_line(out, raw, h.value, b"Call-ID: "),
            HeaderName::CSeq => push_line(out, raw, h.value, b"CSeq: "),
            _ => {}
        }
    }
}

/// Appends the request's top Via line (`value`, its first Via line's) with `received`/`rport`
/// set, after its `Via: ` head (already written), without its line end (the caller's).
#[inline(always)]
fn push_top_via(out: &mut Vec<u8>, req: &Request<'_>, value: &[u8], received: Option<SocketAddr>) {
    match req.parsed_top_via() {
        // The usual one value per line: the parsed top Via is the whole value (a valid Via has
        // no comma outside a quoted string), no need to split it again.
        Some(via) if via.raw.as_ptr() == value.as_ptr() && via.raw.len() == value.len() => {
            match (via.without_rport(), received) {
                // The usual shape from an IPv4 source: what `write_top_via` writes for it,
                // without its other cases.
                (Some((head, rport)), Some(SocketAddr::V4(source))) => {
                    out.extend_from_slice(head);
                    push_received_v4(out, source.ip().octets(), rport.then_some(source.port()));
                }
                _ => write_top_via(out, value, Some(via), received),
            }
        }
        _ => write_top_via_line(out, req, value, received),
    }
}

/// The top Via line's values when the parsed top Via is not its whole value (several values
/// on the line, or validation stopped before it). Out of line: rare, and its lookups would
/// otherwise be set up on every response.
#[cold]
#[inline(never)]
fn write_top_via_line(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    value: &[u8],
    received: Option<SocketAddr>,
) {
    let mut values = CommaSplit::new(value);
    let first = values.next().unwrap_or_default();
    let parsed = req.top_via().and_then(Result::ok);
    write_top_via(out, first, parsed.as_ref(), received);
    for v in values {
        out.extend_from_slice(b", ");
        out.extend_from_slice(v);
    }
}

/// Appends the To line of the request, with `;tag=<to_tag>` unless `to_tag` is empty (the
/// request's To has one, or there is none to add).
#[inline(always)]
fn push_to(out: &mut Vec<u8>, raw: &[u8], value: &[u8], to_tag: &[u8]) {
    if to_tag.is_empty() {
        push_line(out, raw, value, b"To: ");
        return;
    }
    match line_in(raw, value, b"To: ", false) {
        Some(line) => out.extend_from_slice(line),
        None => {
            out.extend_from_slice(b"To: ");
            out.extend_from_slice(value);
        }
    }
    out.extend_from_slice(b";tag=");
    push_tag(out, to_tag);
    out.extend_from_slice(b"\r\n");
}

/// Appends the To tag.
#[inline(always)]
fn push_tag(out: &mut Vec<u8>, to_tag: &[u8]) {
    // The engine's tags are 16 hex digits: a copy of known size (no `memcpy` call).
    match <&[u8; 16]>::try_from(to_tag) {
        Ok(tag) => out.extend_from_slice(tag),
        Err(_) => out.extend_from_slice(to_tag),
    }
}

/// Whether the request's To has a tag (then the response's To is the request's).
#[inline(always)]
fn to_has_tag(req: &Request<'_>) -> bool {
    match req.parsed_to() {
        Some(t) => t.tag().is_some(),
        None => to_has_tag_unparsed(req),
    }
}

/// [`to_has_tag`] when validation did not parse the To (out of line: rare).
#[cold]
#[inline(never)]
fn to_has_tag_unparsed(req: &Request<'_>) -> bool {
    req.to().is_ok_and(|t| t.tag().is_some())
}

/// Appends `head` (`Name: `), a request header's `value` and CRLF: the request's own line in
/// one copy when it reads exactly so (the usual case), otherwise piece by piece. Inlined: the
/// head's length is then known where it is compared (no `memcmp` call).
#[inline(always)]
fn push_line<const N: usize>(out: &mut Vec<u8>, raw: &[u8], value: &[u8], head: &[u8; N]) {
    if let Some(line) = line_in(raw, value, head, true) {
        out.extend_from_slice(line);
        return;
    }
    out.extend_from_slice(head);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The bytes of the request `raw` that read `head`, then `value` (plus CRLF with `crlf`),
/// when `value` lies in `raw` and the bytes around it read so: exactly what would be written
/// piece by piece, in one piece. Only addresses are compared for the value (the same bytes),
/// the head and CRLF by content.
#[inline(always)]
fn line_in<'r, const N: usize>(
    raw: &'r [u8],
    value: &[u8],
    head: &[u8; N],
    crlf: bool,
) -> Option<&'r [u8]> {
    // Wrapping offsets: a value outside `raw` gives a range `get` refuses (it starts past its
    // end, or ends past `raw`'s).
    let at = (value.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    let end = at
        .wrapping_add(value.len())
        .wrapping_add(if crlf { 2 } else { 0 });
    let line = raw.get(at.wrapping_sub(N)..end)?;
    let placed = line.first_chunk::<N>() == Some(head) && (!crlf || line.ends_with(b"\r\n"));
    placed.then_some(line)
}

/// The top Via with `received`/`rport` set from the packet source. A Via that does not parse is
/// copied as it is.
fn write_top_via(
    out: &mut Vec<u8>,
    value: &[u8],
    parsed: Option<&Via<'_>>,
    received: Option<SocketAddr>,
) {
    let reparsed;
    let via = match parsed {
        Some(via) => Some(via),
        None => {
            reparsed = Via::parse(value).ok();
            reparsed.as_ref()
        }
    };
    let (Some(source), Some(via)) = (received, via) else {
        out.extend_from_slice(value);
        return;
    };
    let rport = match via.without_rport() {
        // The usual shape (no received, at most a bare `;rport` at the end), known from parsing.
        Some((head, rport)) => {
            out.extend_from_slice(head);
            rport
        }
        None => copy_without_received_rport(out, via),
    };
    let port = rport.then_some(source.port());
    match source.ip() {
        std::net::IpAddr::V4(ip) => push_received_v4(out, ip.octets(), port),
        std::net::IpAddr::V6(ip) => push_received_v6(out, ip, port),
    }
}

/// [`push_received_v4`] for an IPv6 source, through `core::fmt` (out of line: its frame is
/// large).
#[inline(never)]
fn push_received_v6(out: &mut Vec<u8>, ip: std::net::Ipv6Addr, rport: Option<u16>) {
    out.extend_from_slice(b";received=");
    let _ = write!(out, "{ip}");
    if let Some(port) = rport {
        out.extend_from_slice(b";rport=");
        push_decimal(out, u64::from(port));
    }
}

/// Copies the whole Via value minus its `received` and `rport` parameters (split as
/// `Params::segments` splits them: a `;` inside quotes does not end a parameter), in runs of
/// the value. Returns whether an `rport` was dropped. The usual Via never comes here: parsing
/// already found its shape (`Via::without_rport`).
#[inline(never)]
fn copy_without_received_rport(out: &mut Vec<u8>, via: &Via<'_>) -> bool {
    let text = via.raw;
    let raw = via.params.raw();
    let params_at = text.len() - raw.len();
    let mut rport = false;
    let mut run = 0;
    let mut at = params_at;
    // Segments are sub-slices of `params`; bytes between them (none in a valid Via) are left
    // out, as when copying segment by segment.
    for seg in via.params.segments() {
        let seg_at = params_at + offset_in(raw, seg);
        if seg_at != at {
            out.extend_from_slice(text.get(run..at).unwrap_or_default());
            run = seg_at;
        }
        at = seg_at + seg.len();
        if let Some(is_rport) = received_or_rport(seg) {
            rport |= is_rport;
            out.extend_from_slice(text.get(run..seg_at).unwrap_or_default());
            run = at;
        }
    }
    out.extend_from_slice(text.get(run..at).unwrap_or_default());
    rport
}

/// Is this Via parameter segment (`;name[=value]`) a `received` or an `rport` (the second
/// answer: which one)? `None` for any other parameter.
fn received_or_rport(seg: &[u8]) -> Option<bool> {
    let name = seg.get(1..).unwrap_or_default();
    let name = crate::sip::trim_lws(name.split(|&b| b == b'=').next().unwrap_or_default());
    if name.eq_ignore_ascii_case(b"received") {
        Some(false)
    } else if name.eq_ignore_ascii_case(b"rport") {
        Some(true)
    } else {
        None
    }
}

/// The decimal digits of 0..=99, two bytes each.
const DIGITS2: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Each octet value as it follows a dot in dotted decimal, a little-endian word: the dot
/// and the digits in its low bytes (text order), the number of digits in its high byte (1 to
/// 3: read as two bits, the writer's lengths are known to stay within its buffer).
const DOTTED: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut v = 0;
    while v < 256 {
        let o = v as u8;
        let text: [u8; 4] = if o >= 100 {
            [b'.', b'0' + o / 100, b'0' + (o / 10) % 10, b'0' + o % 10]
        } else if o >= 10 {
            [b'.', b'0' + o / 10, b'0' + o % 10, 0]
        } else {
            [b'.', b'0' + o, 0, 0]
        };
        let digits: u64 = if o >= 100 {
            3
        } else if o >= 10 {
            2
        } else {
            1
        };
        table[v] = u32::from_le_bytes(text) as u64 | digits << 56;
        v += 1;
    }
    table
};

/// Appends `buf[..len]`. The whole array is copied — a copy of known size, inlined, where a
/// copy of `len` bytes calls `memcpy` — and the bytes past `len` are cut off again.
#[inline(always)]
fn push_prefix<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], len: usize) {
    let end = out.len() + len.min(N);
    out.extend_from_slice(buf);
    out.truncate(end);
}

/// The decimal digits of 0..=99 in pairs.
const PAIRS: [[u8; 2]; 100] = {
    let mut table = [[0u8; 2]; 100];
    let mut v = 0;
    while v < 100 {
        table[v] = [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
        v += 1;
    }
    table
};

/// `n` below 10^8 in decimal: its digits in the low bytes of the little-endian word (the
/// first digit lowest), and their count; `None` from 10^8 on. Divisions by constants, no loop.
fn decimal8(n: u32) -> Option<(u64, usize)> {
    let n = usize::try_from(n).ok().filter(|&n| n < 100_000_000)?;
    if n < 10_000 {
        // The usual port or delta: two pairs, half the divisions.
        let [c0, c1] = PAIRS[n / 100];
        let [d0, d1] = PAIRS[n % 100];
        let word = u64::from(u32::from_le_bytes([c0, c1, d0, d1]));
        if n >= 1000 {
            // Four digits (the usual port and delta): no leading zeros to count.
            return Some((word, 4));
        }
        let zeros =
            ((word ^ u64::from_le_bytes([b'0', b'0', b'0', 0, 0, 0, 0, 0])).trailing_zeros() / 8)
                .min(3);
        return Some((word >> (8 * zeros), 4 - zeros as usize));
    }
    let [a0, a1] = PAIRS[n / 1_000_000 % 100];
    let [b0, b1] = PAIRS[n / 10_000 % 100];
    let [c0, c1] = PAIRS[n / 100 % 100];
    let [d0, d1] = PAIRS[n % 100];
    // Eight digits, leading zeros included, then the leading zeros shifted out.
    let word = u64::from_le_bytes([a0, a1, b0, b1, c0, c1, d0, d1]);
    // The leading zeros are the low bytes that read '0' (all but the last one for zero).
    let zeros = ((word ^ u64::from_le_bytes([b'0'; 8])).trailing_zeros() / 8).min(7);
    Some((word >> (8 * zeros), 8 - zeros as usize))
}

/// Appends `;received=` and an IPv4 address in dotted decimal, then `;rport=` and the port
/// when one is given: one copy from a stack buffer, each octet (with its dot) and the port's
/// digits stored there as one word whose bytes past the text the next word overwrites or
/// the length cuts off. (Inlined: with no zeroing and one store per octet, the buffer costs
/// its callers' frames less than a call.)
#[inline(always)]
fn push_received_v4(out: &mut Vec<u8>, octets: [u8; 4], rport: Option<u16>) {
    const PREFIX: &[u8] = b";received=";
    // Room for the prefix, four octets of up to three digits and three dots, `;rport=`, five
    // digits, and the spare bytes the last word writes past its text.
    const ROOM: usize = PREFIX.len() + 15 + 7 + 8;
    // The prefix in place from the start (one copy of a constant).
    const START: [u8; ROOM] = {
        let mut buf = [0u8; ROOM];
        let mut i = 0;
        while i < PREFIX.len() {
            buf[i] = PREFIX[i];
            i += 1;
        }
        buf
    };
    let mut buf = START;
    /// Stores `word` at `at` (within `buf` whenever `at` is a length written so far).
    fn put(buf: &mut [u8; ROOM], at: usize, word: u64) {
        if let Some(dst) = buf.get_mut(at..).and_then(|b| b.first_chunk_mut::<8>()) {
            *dst = word.to_le_bytes();
        }
    }
    let [o0, o1, o2, o3] = octets.map(|o| DOTTED[usize::from(o)]);
    // (Two bits of digit count: the lengths are then known to be within `ROOM`, with no
    // bounds check in `put` or cut in `push_prefix`.)
    let digits = |o: u64| (o >> 56) as usize & 3;
    // The first octet without its dot.
    put(&mut buf, PREFIX.len(), o0 >> 8);
    let mut len = PREFIX.len() + digits(o0);
    for o in [o1, o2, o3] {
        put(&mut buf, len, o);
        len += 1 + digits(o);
    }
    if let Some((digits, n)) = rport.and_then(|port| decimal8(u32::from(port))) {
        put(&mut buf, len, u64::from_le_bytes(*b";rport=\0"));
        put(&mut buf, len + 7, digits);
        len += 7 + n;
    }
    push_prefix(out, &buf, len);
}

/// Appends `n` in decimal. Every response carries several numbers, and `write!` through
/// `core::fmt` cost ~2,000 instructions per response in callgrind; a dozen lines here avoid both
/// that and a dependency (itoa). Two digits per division.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = n;
    while n >= 100 {
        let pair = usize::try_from(n % 100).unwrap_or(0) * 2;
        n /= 100;
        at -= 2;
        if let (Some(dst), Some(src)) = (buf.get_mut(at..at + 2), DIGITS2.get(pair..pair + 2)) {
            dst.copy_from_slice(src);
        }
    }
    if n >= 10 {
        let pair = usize::try_from(n).unwrap_or(0) * 2;
        at -= 2;
        if let (Some(dst), Some(src)) = (buf.get_mut(at..at + 2), DIGITS2.get(pair..pair + 2)) {
            dst.copy_from_slice(src);
        }
    } else {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + n as u8;
        }
    }
    out.extend_from_slice(buf.get(at..).unwrap_or_default());
}

/// Day of month, month and year of `days` since 1970-01-01 (civil-from-days, Howard
/// Hinnant's algorithm).
fn civil(days: u64) -> (i64, i64, i64) {
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (day, month, yoe + era * 400 + i64::from(month <= 2))
}

/// Appends the RFC 1123 date (`Sat, 13 Nov 2010 23:29:00 GMT`, §20.17) for Unix seconds.
pub fn write_http_date(out: &mut Vec<u8>, unix_secs: u64) {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (day, month, year) = civil(days);
    // Four-digit years (until 9999) as one fixed-width text, without `core::fmt` (its
    // ~2,000 instructions ran once a second per engine).
    if !(0..10_000).contains(&year) {
        write_http_date_fmt(out, days, secs, day, month, year);
        return;
    }
    let pair = |n: i64| PAIRS[usize::try_from(n % 100).unwrap_or(0)];
    let [w0, w1, w2] = *DAYS[usize::try_from(days % 7).unwrap_or(0)];
    let [d0, d1] = pair(day);
    let [m0, m1, m2] = *MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    let [c0, c1] = pair(year / 100);
    let [y0, y1] = pair(year);
    out.extend_from_slice(&[
        w0, w1, w2, b',', b' ', d0, d1, b' ', m0, m1, m2, b' ', c0, c1, y0, y1, b' ',
    ]);
    push_clock(out, secs);
}

/// [`write_http_date`] through `core::fmt`, for the years it does not write itself (from
/// 10000 on).
#[cold]
#[inline(never)]
fn write_http_date_fmt(out: &mut Vec<u8>, days: u64, secs: u64, day: i64, month: i64, year: i64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let _ = write!(
        out,
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[usize::try_from(days % 7).unwrap_or(0)],
        MONTHS[usize::try_from(month - 1).unwrap_or(0)],
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
}

/// Appends `HH:MM:SS GMT` for the seconds of a day.
fn push_clock(out: &mut Vec<u8>, secs: u64) {
    let pair = |n: u64| PAIRS[usize::try_from(n % 100).unwrap_or(0)];
    let [h0, h1] = pair(secs / 3600);
    let [m0, m1] = pair((secs / 60) % 60);
    let [s0, s1] = pair(secs % 60);
    out.extend_from_slice(&[h0, h1, b':', m0, m1, b':', s0, s1, b' ', b'G', b'M', b'T']);
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals() {
        let powers = (0..20).flat_map(|e| {
            let p = 10u64.pow(e);
            [p - 1, p, p + 1]
        });
        for n in (0..100_000)
            .chain(powers)
            .chain([65_535, 4_294_967_295, u64::MAX])
        {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for n in (0..100_000u32)
            .chain((0..10).flat_map(|e| {
                let p = 10u32.pow(e);
                [p - 1, p, p + 1]
            }))
            .chain([99_999_999, 4_294_967_295])
        {
            let got = decimal8(n).map(|(digits, len)| digits.to_le_bytes()[..len].to_vec());
            let want = (n < 100_000_000).then(|| n.to_string().into_bytes());
            assert_eq!(got, want, "{n}");
        }
        for ip in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [1, 22, 133, 9],
            [10, 0, 100, 99],
        ] {
            let mut out = Vec::new();
            push_received_v4(&mut out, ip, None);
            let want = format!(";received={}", std::net::Ipv4Addr::from(ip));
            assert_eq!(String::from_utf8(out.clone()).unwrap(), want);
            for port in 0..=u16::MAX {
                out.clear();
                push_received_v4(&mut out, ip, Some(port));
                let want = format!(";received={};rport={port}", std::net::Ipv4Addr::from(ip));
                assert_eq!(String::from_utf8(out.clone()).unwrap(), want);
            }
        }
        for o in 0..=255u8 {
            let mut out = Vec::new();
            push_received_v4(&mut out, [o, o, 7, o], None);
            let want = format!(";received={o}.{o}.7.{o}");
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    use super::*;
    use crate::sip::{parse_datagram, Limits, Message};

    #[test]
    fn http_dates() {
        let table: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (1_289_690_940, "Sat, 13 Nov 2010 23:29:00 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 GMT"),
        ];
        for (secs, want) in table {
            let mut out = Vec::new();
            write_http_date(&mut out, *secs);
            assert_eq!(std::str::from_utf8(&out).unwrap(), *want);
        }
        // Every day of four centuries, at a moving time of day, and the years past 9999
        // (through `core::fmt`), against `core::fmt` directly.
        let samples = (0..150_000u64)
            .map(|d| d * 86_400 + (d * 7_919) % 86_400)
            .chain([253_402_300_799, 253_402_300_800, 1 << 40, u64::MAX / 2]);
        for secs in samples {
            let mut out = Vec::new();
            write_http_date(&mut out, secs);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                reference_http_date(secs),
                "{secs}"
            );
        }
    }

    /// `civil` against a calendar counted one day at a time (Gregorian leap years).
    #[test]
    fn civil_counts_every_day() {
        let (mut day, mut month, mut year) = (1, 1, 1970);
        for days in 0..150_000u64 {
            assert_eq!(civil(days), (day, month, year), "{days}");
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
    }

    /// The date through `core::fmt` from the civil date (the oracle of `write_http_date`'s
    /// digit pairs; the civil date itself is checked against the known dates above).
    fn reference_http_date(unix_secs: u64) -> String {
        let days = unix_secs / 86_400;
        let (day, month, year) = civil(days);
        let mut out = Vec::new();
        write_http_date_fmt(&mut out, days, unix_secs % 86_400, day, month, year);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn copies_headers_and_sets_received() {
        let req = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;received=1.2.3.4;branch=z9hG4bK1;rport, SIP/2.0/UDP proxy;branch=z9hG4bK0\r\n\
v: SIP/2.0/UDP third;branch=z9hG4bKx\r\n\
From: <sip:a@example.com>;tag=f\r\nTo: <sip:a@example.com>\r\nCall-ID: c1\r\nCSeq: 2 REGISTER\r\n\
Content-Length: 0\r\n\r\n";
        let Ok(Message::Request(r)) = parse_datagram(req, &Limits::default()) else {
            panic!()
        };
        let mut out = Vec::new();
        let mut w = ResponseWriter::new(
            &mut out,
            StatusCode::OK,
            None,
            &r,
            b"t0",
            Some("203.0.113.9:4444".parse().unwrap()),
        );
        w.contact(b"sip:a@10.0.0.1", 60, b";q=0.5");
        w.contact(b"sip:b@10.0.0.1", 0, b"");
        w.contact(b"sip:c@10.0.0.1", u32::MAX, b";x");
        let len = w.finish(b"");
        assert_eq!(len, out.len());
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=203.0.113.9;rport=4444, SIP/2.0/UDP proxy;branch=z9hG4bK0\r\nVia: SIP/2.0/UDP third;branch=z9hG4bKx\r\n"), "{text}");
        assert!(text.contains("To: <sip:a@example.com>;tag=t0\r\n"));
        assert!(text.contains(
            "Contact: <sip:a@10.0.0.1>;expires=60;q=0.5\r\n\
             Contact: <sip:b@10.0.0.1>;expires=0\r\n\
             Contact: <sip:c@10.0.0.1>;expires=4294967295;x\r\n"
        ));
        // The response parses and keeps the dialog identifiers.
        let Ok(Message::Response(resp)) = parse_datagram(&out, &Limits::default()) else {
            panic!("{text}")
        };
        assert_eq!(resp.call_id().unwrap(), b"c1");
        assert_eq!(resp.cseq().unwrap().seq, 2);
        assert_eq!(resp.vias().count(), 3);
        assert_eq!(resp.to().unwrap().tag(), Some(&b"t0"[..]));
    }

    /// A fixed ending in one copy is what its lines and `finish` write.
    #[test]
    fn finish_with_is_lines_then_finish() {
        let req = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1\r\n\
From: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n";
        let Ok(Message::Request(r)) = parse_datagram(req, &Limits::default()) else {
            panic!()
        };
        let (mut want, mut got) = (b"x".to_vec(), b"x".to_vec());
        let mut w = ResponseWriter::new(&mut want, StatusCode::OK, None, &r, b"t", None);
        w.raw(|out| out.extend_from_slice(b"Supported: path\r\n"));
        let want_len = w.finish(b"");
        let w = ResponseWriter::new(&mut got, StatusCode::OK, None, &r, b"t", None);
        let got_len = w.finish_with(b"Supported: path\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((got, got_len), (want, want_len));
    }

    /// The writer as it was before the copying fast paths (one header at a time, the top Via
    /// always split again): every response must come out byte for byte the same.
    fn reference(
        out: &mut Vec<u8>,
        status: StatusCode,
        reason: Option<&str>,
        req: &Request<'_>,
        to_tag: &[u8],
        received: Option<SocketAddr>,
    ) {
        let start = out.len();
        let reason = reason.unwrap_or_else(|| status.reason());
        out.extend_from_slice(b"SIP/2.0 ");
        push_decimal(out, u64::from(status.0));
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut top = true;
        for h in req.headers().iter().filter(|h| h.name == HeaderName::Via) {
            out.extend_from_slice(b"Via: ");
            if top {
                top = false;
                let mut values = CommaSplit::new(h.value);
                let first = values.next().unwrap_or_default();
                reference_top_via(out, first, req.top_via().and_then(Result::ok), received);
                for v in values {
                    out.extend_from_slice(b", ");
                    out.extend_from_slice(v);
                }
            } else {
                out.extend_from_slice(h.value);
            }
            out.extend_from_slice(b"\r\n");
        }
        for h in req.headers() {
            match h.name {
                HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    out.extend_from_slice(h.name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(h.value);
                    out.extend_from_slice(b"\r\n");
                }
                HeaderName::To => {
                    out.extend_from_slice(b"To: ");
                    out.extend_from_slice(h.value);
                    let has_tag = req.to().is_ok_and(|t| t.tag().is_some());
                    if !has_tag && !to_tag.is_empty() {
                        out.extend_from_slice(b";tag=");
                        out.extend_from_slice(to_tag);
                    }
                    out.extend_from_slice(b"\r\n");
                }
                _ => {}
            }
        }
        let _ = start;
    }

    fn reference_top_via(
        out: &mut Vec<u8>,
        value: &[u8],
        parsed: Option<Via<'_>>,
        received: Option<SocketAddr>,
    ) {
        let (Some(source), Some(via)) = (received, parsed.or_else(|| Via::parse(value).ok()))
        else {
            out.extend_from_slice(value);
            return;
        };
        // Everything before the parameters, then the parameters minus received/rport.
        let params_at = via.raw.len() - via.params.raw().len();
        out.extend_from_slice(via.raw.get(..params_at).unwrap_or_default());
        let mut rport = false;
        for seg in via.params.segments() {
            let name = seg.get(1..).unwrap_or_default();
            let name = name.split(|&b| b == b'=').next().unwrap_or_default();
            let name = crate::sip::trim_lws(name);
            if name.eq_ignore_ascii_case(b"received") {
                continue;
            }
            if name.eq_ignore_ascii_case(b"rport") {
                rport = true;
                continue;
            }
            out.extend_from_slice(seg);
        }
        out.extend_from_slice(b";received=");
        match source.ip() {
            std::net::IpAddr::V4(ip) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    push_decimal(out, u64::from(octet));
                }
            }
            ip @ std::net::IpAddr::V6(_) => {
                let _ = write!(out, "{ip}");
            }
        }
        if rport {
            out.extend_from_slice(b";rport=");
            push_decimal(out, u64::from(source.port()));
        }
    }

    fn corpus_messages() -> Vec<Vec<u8>> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/sip-corpus");
        let mut files = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "dat" || e == "sip") {
                    files.push(std::fs::read(path).unwrap());
                }
            }
        }
        assert!(files.len() > 20, "corpus present");
        files
    }

    #[test]
    fn fast_paths_write_what_the_reference_writes() {
        let crafted: [&[u8]; 20] = [
            b"OPTIONS sip:example.com SIP/2.0\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nFrom: <sip:u@example.com>;tag=a\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1;rport\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nVia: SIP/2.0/UDP g;branch=z9hG4bK-0\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1;rport\r\nFrom: <sip:u@example.com>;tag=a\r\nFrom: <sip:v@example.com>;tag=b\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\nv: SIP/2.0/TCP late;rport\r\nCSeq: 2 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nCSeq: 1 REGISTER\r\nt: <sip:u@example.com>\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1;rport\r\nf: <sip:u@example.com>;tag=a\r\ni: c@h\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h ;branch=z9hG4bK-1 ; rport ;x\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;RPORT;branch=z9hG4bK-1;received=1.2.3.4;rport=1\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;rportx=1;receivedx;r;rp;branch=z9hG4bK-1;ttl=3\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h:5070\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;received=\"a;rport\";branch=z9hG4bK-1;rport\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1;Received = 9.9.9.9 ;x=\"q\"\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TLS [2001:db8::2];rport;branch=z9hG4bK-1;maddr=[2001:db8::3]\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nv: SIP/2.0/UDP h;RPort;Received=1.1.1.1;branch=z9hG4bK-1 ; rport = 7;x\r\nf: <sip:u@example.com>;tag=a\r\nt: <sip:u@example.com>;tag=b\r\ni: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia:  SIP/2.0/UDP h;branch=z9hG4bK-1 , SIP/2.0/TCP p;branch=z9hG4bK-0,,\r\nVia: SIP/2.0/UDP q\r\nFrom:<sip:u@example.com>;tag=a\r\nTo : <sip:u@example.com>\r\nCall-ID: c@h \r\nCSeq:\t1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1;rport\nFrom: <sip:u@example.com>;tag=a\nTo: <sip:u@example.com>\nCall-ID: c@h\nCSeq: 1 REGISTER\n\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1;\r\n  rport\r\nFROM: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>;\r\n tag=x\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-1;received=[::1];rport=9\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\nVia: SIP/2.0/UDP late\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: broken via;;\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;x=\"a;rport,b\";branch=z9hG4bK-1,SIP/2.0/UDP g\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: \"T\" <sip:u@example.com>\r\nCall-ID: c@h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1;rport\r\nFrom: <sip:u@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\nTo: <sip:v@example.com>\r\nCall-ID: c@h\r\nCall-ID: d@h\r\nCSeq: 1 OPTIONS\r\n\r\n",
        ];
        let mut messages: Vec<Vec<u8>> = crafted.iter().map(|m| m.to_vec()).collect();
        messages.extend(corpus_messages());
        let sources: [Option<SocketAddr>; 4] = [
            None,
            Some("203.0.113.9:4444".parse().unwrap()),
            Some("10.0.0.1:5060".parse().unwrap()),
            Some("[2001:db8::7]:5062".parse().unwrap()),
        ];
        let mut compared = 0;
        let mut no_via = false;
        for m in &messages {
            let Ok(Message::Request(r)) = parse_datagram(m, &Limits::default()) else {
                continue;
            };
            no_via |= r.header(HeaderName::Via).is_none();
            for (status, reason) in [
                (StatusCode::OK, None),
                (StatusCode::OK, Some("Fine")),
                (StatusCode::BAD_REQUEST, Some("Bad CSeq")),
                (StatusCode::UNAUTHORIZED, None),
                (StatusCode(299), None),
            ] {
                for tag in [&b""[..], b"0123456789abcdef"] {
                    for source in sources {
                        let mut want = b"prefix".to_vec();
                        reference(&mut want, status, reason, &r, tag, source);
                        let mut got = b"prefix".to_vec();
                        let _ = ResponseWriter::new(&mut got, status, reason, &r, tag, source);
                        assert_eq!(
                            String::from_utf8_lossy(&got),
                            String::from_utf8_lossy(&want),
                            "{}",
                            String::from_utf8_lossy(m)
                        );
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 1000, "{compared}");
        assert!(no_via, "a request without a Via compared");
    }

    /// The short value's one copy against the value and CRLF: every length to 20, every
    /// place in the request to its end, followed by CRLF, by another line end or by nothing.
    #[test]
    fn short_line_is_the_value_and_crlf() {
        for after in [&b"\r\n"[..], b"\n", b"\r", b" \r\n", b""] {
            for len in 0..=20 {
                for place in 0..=24 {
                    let mut raw = vec![b'x'; place];
                    raw.extend((0..len).map(|i| b'0' + i as u8));
                    raw.extend_from_slice(after);
                    raw.extend(std::iter::repeat_n(b'y', 24 - place));
                    for cut in [raw.len(), place + len + after.len(), place + len] {
                        let raw = &raw[..cut];
                        let value = &raw[place..place + len];
                        let mut got = b"p".to_vec();
                        push_short_line(&mut got, raw, value);
                        let want = [&b"p"[..], value, b"\r\n"].concat();
                        assert_eq!(got, want, "{len} {place} {after:?} {cut}");
                    }
                }
            }
        }
        // A value that is not a piece of `raw`.
        let mut got = Vec::new();
        push_short_line(
            &mut got,
            b"7 REGISTER\r\n0123456789",
            &b"7 REGISTER\r\n"[..10],
        );
        assert_eq!(got, b"7 REGISTER\r\n");
    }

    #[test]
    fn via_shapes_known_from_parsing() {
        let cut = |v: &'static str| Via::parse(v.as_bytes()).unwrap().without_rport();
        let h = b"SIP/2.0/UDP h;branch=z9hG4bK1";
        assert_eq!(
            cut("SIP/2.0/UDP h;branch=z9hG4bK1;rport"),
            Some((&h[..], true))
        );
        assert_eq!(cut("SIP/2.0/UDP h;branch=z9hG4bK1"), Some((&h[..], false)));
        assert_eq!(
            cut("SIP/2.0/UDP h;branch=z9hG4bK1;RPort"),
            Some((&h[..], true))
        );
        let other = b"SIP/2.0/UDP h;branch=z9hG4bK1;xrport";
        assert_eq!(
            cut("SIP/2.0/UDP h;branch=z9hG4bK1;xrport"),
            Some((&other[..], false))
        );
        for general in [
            "SIP/2.0/UDP h;rport;branch=z9hG4bK1",
            "SIP/2.0/UDP h;branch=z9hG4bK1;rport=5060",
            "SIP/2.0/UDP h;branch=z9hG4bK1; rport",
            "SIP/2.0/UDP h;branch=z9hG4bK1;received=192.0.2.1",
            "SIP/2.0/UDP h;rport;branch=z9hG4bK1;rport",
        ] {
            assert_eq!(cut(general), None, "{general}");
        }
    }

    proptest::proptest! {
        /// Requests whose From, To, Call-ID and CSeq lines come in any order, spelled in usual
        /// and unusual ways, with other lines among them: the usual path (the four in order,
        /// consecutive or not) and the general pass write what the reference writes.
        #[test]
        fn adjacent_lines_write_what_the_reference_writes(
            // Mostly the usual order and spellings, where the run is taken.
            lines in proptest::prop_oneof![
                proptest::strategy::Just(vec![4usize, 0, 1, 2, 3, 5]),
                proptest::strategy::Just(vec![0usize, 1, 2, 3]),
                proptest::strategy::Strategy::prop_shuffle(
                    proptest::sample::subsequence(&[0usize, 1, 2, 3, 4, 5][..], 4..=6)
                ),
            ],
            spellings in proptest::collection::vec(
                proptest::prop_oneof![3 => proptest::strategy::Just(0usize), 1 => 0usize..4],
                6,
            ),
            tag in proptest::bool::ANY,
        ) {
            const SPELLED: [[&str; 4]; 6] = [
                ["From: <sip:u@example.com>;tag=a", "f: <sip:u@example.com>;tag=a",
                 "From:  <sip:u@example.com>;tag=a ", "FROM: <sip:u@example.com>;tag=a"],
                ["To: <sip:u@example.com>", "To: <sip:u@example.com>;tag=b",
                 "t: <sip:u@example.com>", "To:<sip:u@example.com>"],
                ["Call-ID: c@h", "i: c@h", "Call-ID: c@h ", "call-id: c@h"],
                ["CSeq: 7 REGISTER", "CSeq:  7 REGISTER", "CSeq: 7 REGISTER\t", "cseq: 7 REGISTER"],
                ["Max-Forwards: 70", "Expires: 60", "Via: SIP/2.0/UDP g;branch=z9hG4bK-0",
                 "X-Pad: From: x"],
                ["Contact: <sip:u@192.0.2.1>", "User-Agent: t", "Supported: path", "X: y"],
            ];
            let mut m = String::from(
                "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1;rport\r\n",
            );
            for &l in &lines {
                m.push_str(SPELLED[l][spellings[l]]);
                m.push_str("\r\n");
            }
            m.push_str("Content-Length: 0\r\n\r\n");
            let tag: &[u8] = if tag { b"0123456789abcdef" } else { b"t1" };
            if let Ok(Message::Request(r)) = parse_datagram(m.as_bytes(), &Limits::default()) {
                let source = Some("203.0.113.9:4444".parse().unwrap());
                let mut want = Vec::new();
                reference(&mut want, StatusCode::OK, None, &r, tag, source);
                let mut got = Vec::new();
                let _ = ResponseWriter::new(&mut got, StatusCode::OK, None, &r, tag, source);
                proptest::prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "{}", m);
            }
        }

        #[test]
        fn via_fast_path_matches_the_general_copy(
            params in proptest::collection::vec(proptest::sample::select(&[
                ";rport", ";RPORT", "; rport", ";rport=5", ";received=192.0.2.1", ";Received",
                ";branch=z9hG4bK1", ";x=\"a;rport\"", ";lr", ";rportx", ";xrport", " ", ";",
            ][..]), 0..5),
        ) {
            let value = format!("SIP/2.0/UDP h:5060{}", params.concat());
            if let Ok(via) = Via::parse(value.as_bytes()) {
                if let Some((head, rport)) = via.without_rport() {
                    let mut general = Vec::new();
                    let general_rport = copy_without_received_rport(&mut general, &via);
                    proptest::prop_assert_eq!((head, rport), (&general[..], general_rport), "{}", value);
                }
            }
        }
    }
}
