//! Message framing and the header index (RFC 3261 §7, §18.3, §20.14).

use super::header::{offset_in, CSeq, ContactParts, Contacts, HeaderName, NameAddr, Via, Vias};
use super::lines::LineEnds;
use super::uri::{Uri, UriMemo};
use super::{
    find, is_token, is_wsp, parse_delta_saturating, parse_u32, trim_lws, Error, Limits, Method,
    Status, StatusCode,
};

/// One header line: its name (classified and raw) and its value, trimmed of surrounding LWS
/// (folded continuation lines stay inside the value).
#[derive(Clone, Copy, Debug)]
pub struct Header<'b> {
    /// Classified name (compact forms mapped to the long form).
    pub name: HeaderName,
    /// The name as written, or `None` when it is written as `name` is spelled
    /// ([`HeaderName::as_str`]): the usual line's index entry is one word shorter to write.
    spelled: Option<&'b [u8]>,
    /// The value.
    pub value: &'b [u8],
}

impl<'b> Header<'b> {
    /// A header line named `raw_name` as written.
    pub fn new(name: HeaderName, raw_name: &'b [u8], value: &'b [u8]) -> Self {
        Self {
            name,
            spelled: Some(raw_name),
            value,
        }
    }

    /// The name as written.
    pub fn raw_name(&self) -> &'b [u8] {
        self.spelled.unwrap_or(self.name.as_str().as_bytes())
    }
}

/// A parsed message.
#[derive(Debug)]
pub enum Message<'b> {
    /// A request.
    Request(Request<'b>),
    /// A response.
    Response(Response<'b>),
}

/// The header lines of a message. A `Vec` rather than an inline `SmallVec`: with mimalloc one
/// allocation per message costs less than SmallVec's per-push bookkeeping, and the message
/// stays small to move (measured: no-auth REGISTER 17,433 -> 17,132 instructions).
type Index<'b> = Vec<Header<'b>>;

/// What parsing keeps from one message for the next: the header index's allocation, so that
/// once it has grown to the largest message seen, parsing a message allocates nothing, and the
/// last Request-URI read, so that the next request naming it has it compared, not read.
#[derive(Debug, Default)]
pub struct Scratch {
    index: Vec<Header<'static>>,
    request_uri: UriMemo,
}

impl Scratch {
    /// Takes back the header index of a message that is done with (the message is left with
    /// no header lines).
    pub fn reclaim(&mut self, msg: &mut Message<'_>) {
        let headers = match msg {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        };
        self.index = recycle(std::mem::take(headers));
    }

    fn take<'b>(&mut self) -> Index<'b> {
        recycle(std::mem::take(&mut self.index))
    }
}

/// The allocation of `index`, emptied, for lines that borrow another buffer. Collecting an
/// empty vector's items in place keeps its allocation (std reuses the buffer of a
/// `vec::IntoIter` whose items have the same layout; `scratch_keeps_its_allocation` checks
/// it): written without `unsafe`, it compiles to three stores.
// (`filter_map` to `None` is the point: no line is kept, only the allocation, and the items'
// lifetime changes.)
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'b>(mut index: Index<'_>) -> Index<'b> {
    index.clear();
    index.into_iter().filter_map(|_| None).collect()
}

/// Position in the index of the first line of each header name (`NONE` when absent), so a
/// lookup of a single-valued header does not walk the index. Every position fits: a message
/// has at most [`MAX_LINES`] header lines.
#[derive(Clone, Copy, Debug)]
struct First([u16; HeaderName::COUNT]);

/// The most header lines a message may have whatever [`Limits::max_headers`] says (their
/// positions are kept in u16; a 64 KiB datagram holds at most ~22,000 lines).
const MAX_LINES: usize = First::NONE as usize;

impl First {
    const NONE: u16 = u16::MAX;

    /// Where the first line of `name` is (past the end of the index when it is absent:
    /// `NONE` is `MAX_LINES`, one past the last position an index can have).
    fn get(&self, name: HeaderName) -> usize {
        self.0
            .get(name as usize)
            .map_or(usize::MAX, |&i| usize::from(i))
    }
}

/// One pass over the header lines: where each name first appears and how many lines it has,
/// for the lookups, the mandatory-header checks and Content-Length.
#[derive(Clone, Copy, Debug)]
struct Census {
    first: First,
    /// Lines per name (at most [`MAX_LINES`], so they fit).
    count: [u16; HeaderName::COUNT],
}

impl Census {
    fn of(headers: &[Header<'_>]) -> Self {
        // (Filled where it is returned, not in two arrays copied into it at the end.)
        let mut census = Self {
            first: First([First::NONE; HeaderName::COUNT]),
            count: [0u16; HeaderName::COUNT],
        };
        // Last line first: the position a name keeps is the last one written, its first
        // line's, with no test of whether it was seen; a count is one add to memory.
        // (Positions and counts are below `MAX_LINES`, so they fit.)
        let mut i = headers.len() as u16;
        for h in headers.iter().rev() {
            i = i.wrapping_sub(1);
            if let Some(slot) = census.first.0.get_mut(h.name as usize) {
                *slot = i;
            }
            if let Some(n) = census.count.get_mut(h.name as usize) {
                *n = n.wrapping_add(1);
            }
        }
        census
    }

    /// The lines of `headers` that can hold `name`: its one line when it appears once, from
    /// its first line on when it repeats, none when it is absent.
    fn lines<'h, 'b>(&self, headers: &'h [Header<'b>], name: HeaderName) -> &'h [Header<'b>] {
        if !self.has(name) {
            return &[];
        }
        let from = headers.get(self.first.get(name)..).unwrap_or_default();
        if !self.repeats(name) {
            from.get(..1).unwrap_or_default()
        } else {
            from
        }
    }

    /// How many lines `name` has.
    fn count(&self, name: HeaderName) -> u16 {
        self.count.get(name as usize).copied().unwrap_or_default()
    }

    fn has(&self, name: HeaderName) -> bool {
        self.count(name) != 0
    }

    fn repeats(&self, name: HeaderName) -> bool {
        self.count(name) > 1
    }
}

/// A request: views over the receive buffer.
#[derive(Debug)]
pub struct Request<'b> {
    raw: &'b [u8],
    method: Method<'b>,
    uri: &'b [u8],
    version: &'b [u8],
    headers: Index<'b>,
    census: Census,
    body: &'b [u8],
    defect: Option<Error>,
    parsed: Parsed<'b>,
}

/// Views parsed once during validation and reused by the accessors.
#[derive(Clone, Copy, Debug, Default)]
struct Parsed<'b> {
    cseq: Option<CSeq<'b>>,
    from: Option<NameAddr<'b>>,
    to: Option<NameAddr<'b>>,
    top_via: Option<Via<'b>>,
    request_uri: Option<Uri<'b>>,
}

/// A response: views over the receive buffer.
#[derive(Debug)]
pub struct Response<'b> {
    raw: &'b [u8],
    status: StatusCode,
    reason: &'b [u8],
    headers: Index<'b>,
    census: Census,
    body: &'b [u8],
    defect: Option<Error>,
    parsed: Parsed<'b>,
}

/// Shared header accessors of requests and responses.
macro_rules! header_accessors {
    () => {
        /// Every header line, in order.
        pub fn headers(&self) -> &[Header<'b>] {
            &self.headers
        }

        /// The first value of `name`.
        pub fn header(&self, name: HeaderName) -> Option<&'b [u8]> {
            // (The census was taken of these lines, or they were taken back and there is
            // none: a line at its position is a line of that name.)
            self.headers
                .get(self.census.first.get(name))
                .map(|h| h.value)
        }

        /// How many header lines `name` has.
        pub fn line_count(&self, name: HeaderName) -> usize {
            usize::from(self.census.count(name))
        }

        /// Every value of `name`, in order (one per header line).
        pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = &'b [u8]> + '_ {
            self.census
                .lines(&self.headers, name)
                .iter()
                .filter(move |h| h.name == name)
                .map(|h| h.value)
        }

        /// The body (for datagrams without Content-Length: the rest of the datagram).
        pub fn body(&self) -> &'b [u8] {
            self.body
        }

        /// The whole message, excluding octets after it in a datagram.
        pub fn as_bytes(&self) -> &'b [u8] {
            self.raw
        }

        /// The first semantic defect found while indexing, if any.
        pub fn defect(&self) -> Option<Error> {
            self.defect
        }

        /// The Call-ID value.
        pub fn call_id(&self) -> Result<&'b [u8], Error> {
            self.header(HeaderName::CallId)
                .ok_or(Error::MissingHeader("Call-ID"))
        }

        /// The CSeq header.
        pub fn cseq(&self) -> Result<CSeq<'b>, Error> {
            if let Some(c) = self.parsed.cseq {
                return Ok(c);
            }
            // (The index's values are trimmed.)
            CSeq::parse_trimmed(
                self.header(HeaderName::CSeq)
                    .ok_or(Error::MissingHeader("CSeq"))?,
            )
        }

        /// The From header.
        pub fn from(&self) -> Result<NameAddr<'b>, Error> {
            if let Some(f) = self.parsed.from {
                return Ok(f);
            }
            NameAddr::parse(
                self.header(HeaderName::From)
                    .ok_or(Error::MissingHeader("From"))?,
            )
        }

        /// The To header.
        pub fn to(&self) -> Result<NameAddr<'b>, Error> {
            if let Some(t) = self.parsed.to {
                return Ok(t);
            }
            NameAddr::parse(
                self.header(HeaderName::To)
                    .ok_or(Error::MissingHeader("To"))?,
            )
        }

        /// The top Via value, if any (`Some(Err)` when it is malformed).
        pub fn top_via(&self) -> Option<Result<Via<'b>, Error>> {
            if let Some(v) = self.parsed.top_via {
                return Some(Ok(v));
            }
            self.vias().next()
        }

        /// The From header as validation parsed it, borrowed (no copy of the view); `None`
        /// when validation stopped before it ([`Self::from`] then parses it again).
        pub fn parsed_from(&self) -> Option<&NameAddr<'b>> {
            self.parsed.from.as_ref()
        }

        /// The CSeq as validation parsed it, borrowed (no copy, no `Result` to unwrap); `None`
        /// when validation stopped before it ([`Self::cseq`] then parses it again).
        pub fn parsed_cseq(&self) -> Option<&CSeq<'b>> {
            self.parsed.cseq.as_ref()
        }

        /// The To header as validation parsed it, borrowed; `None` when validation stopped
        /// before it ([`Self::to`] then parses it again).
        pub fn parsed_to(&self) -> Option<&NameAddr<'b>> {
            self.parsed.to.as_ref()
        }

        /// The top Via as validation parsed it, borrowed; `None` when validation stopped
        /// before it or there is none ([`Self::top_via`] tells which).
        pub fn parsed_top_via(&self) -> Option<&Via<'b>> {
            self.parsed.top_via.as_ref()
        }

        /// Every Via value (across header lines and commas), top first.
        pub fn vias(&self) -> Vias<'b, '_> {
            super::header::vias(self.census.lines(&self.headers, HeaderName::Via))
        }

        /// Every Contact value (across header lines and commas).
        pub fn contacts(&self) -> Contacts<'b, '_> {
            super::header::contacts(self.census.lines(&self.headers, HeaderName::Contact))
        }

        /// The one Contact value of the usual request — a single Contact line holding one
        /// `<uri>` that the URI parse's one pass reads, with valid parameters
        /// and no LWS — parsed without the walk over values that
        /// [`Self::contacts`] makes, and answered as what a registrar keeps of it (the
        /// [`ContactAddr::parts`](super::ContactAddr::parts) of what that walk yields). `None`
        /// for any other shape or an error in its parameters: then [`Self::contacts`] says
        /// what there is.
        pub fn sole_contact(&self) -> Option<ContactParts<'b>> {
            // One Contact line: the census's count says so, its first line is the one (what
            // `Census::lines` answers, without building the slice of lines).
            if self.census.count(HeaderName::Contact) != 1 {
                return None;
            }
            let line = self
                .headers
                .get(self.census.first.get(HeaderName::Contact))?;
            // A desk phone's contact usually repeats its From's user and its top Via's
            // sent-by: those are compared rather than read again.
            match (&self.parsed.from, &self.parsed.top_via) {
                (Some(from), Some(via)) => {
                    super::header::whole_usual_contact_like(line.value, &from.uri, via.host)
                }
                _ => super::header::whole_usual_contact(line.value),
            }
        }
    };
}

impl<'b> Request<'b> {
    header_accessors!();

    /// The method token.
    pub fn method(&self) -> Method<'b> {
        self.method
    }

    /// The Request-URI as written.
    pub fn uri(&self) -> &'b [u8] {
        self.uri
    }

    /// The Request-URI parsed (kept from validation when it succeeded).
    pub fn request_uri(&self) -> Result<Uri<'b>, Error> {
        match self.parsed.request_uri {
            Some(u) => Ok(u),
            None => Uri::parse(self.uri),
        }
    }

    /// The Request-URI as validation parsed it, borrowed; `None` when it did not parse
    /// ([`Self::request_uri`] then says why).
    pub fn parsed_request_uri(&self) -> Option<&Uri<'b>> {
        self.parsed.request_uri.as_ref()
    }

    /// The SIP-Version token (not checked by the parser: the engine answers 505).
    pub fn version(&self) -> &'b [u8] {
        self.version
    }

    /// The Expires header (delta-seconds; overlarge values saturate to `u32::MAX`).
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        match self.header(HeaderName::Expires) {
            None => Ok(None),
            Some(v) => parse_delta_saturating(v).map(Some).ok_or(Error::BadExpires),
        }
    }

    /// The Max-Forwards header.
    pub fn max_forwards(&self) -> Result<Option<u32>, Error> {
        match self.header(HeaderName::MaxForwards) {
            None => Ok(None),
            Some(v) => parse_u32(v).map(Some).ok_or(Error::BadMaxForwards),
        }
    }
}

impl<'b> Response<'b> {
    header_accessors!();

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason phrase (may be empty or non-ASCII UTF-8).
    pub fn reason(&self) -> &'b [u8] {
        self.reason
    }
}

/// A header section that is complete: the start line and the header lines.
struct Head<'b> {
    start: &'b [u8],
    /// Offset of the first body byte.
    body_at: usize,
    /// The header lines, built here in a local (a `Vec` is three words to move into the
    /// message; pushing through the message's enum costs loads and stores per line).
    headers: Index<'b>,
}

/// Scans the start line and headers. `Partial` when the header section is not complete yet.
/// With `eof` (datagrams) a missing empty line after the last complete header line ends the
/// header section (RFC 4475 baddn.dat is published that way).
///
/// Each line is first tried as the usual one ([`usual_line`]); any other goes to
/// [`other_line`]. Out of line: inlined into its caller the loop's state spilled to the stack.
#[inline(never)]
fn scan_head<'b>(
    buf: &'b [u8],
    limits: &Limits,
    eof: bool,
    scratch: &mut Scratch,
) -> Result<Status<Head<'b>>, Error> {
    // (Taken here: a local, not the argument's memory, to push to.)
    let mut headers = scratch.take();
    let mut line_ends = LineEnds::new(buf);
    let Some(nl) = line_ends.next() else {
        return if eof || buf.len() > limits.max_message_size {
            Err(if buf.len() > limits.max_message_size {
                Error::TooLarge
            } else {
                Error::BadStartLine
            })
        } else {
            Ok(Status::Partial)
        };
    };
    // (As a slice pattern: one length check for the CR and the line.)
    let start = match buf.get(..nl) {
        Some([start @ .., b'\r']) | Some(start) => start,
        None => &[],
    };
    // (The index is grown only out of line and passed there by value: no `reserve` or
    // `push` with its own grow call is inlined here.)
    if headers.capacity() - headers.len() < 16 {
        headers = reserved(headers);
    }
    let max_lines = limits.max_headers.min(MAX_LINES);
    // Where the current line starts.
    let mut pos = nl + 1;
    // A header line into the index (a macro: the index stays a local of this loop).
    macro_rules! push_line {
        ($h:expr) => {{
            let h = $h;
            if headers.len() >= max_lines {
                return Err(Error::TooManyHeaders);
            }
            if headers.len() < headers.capacity() {
                headers.push(h);
            } else {
                // (Growing out of line: no register is kept across a call that the usual
                // line never makes.)
                headers = push_grown(headers, h.name, h.spelled, h.value);
            }
        }};
    }
    let body_at = loop {
        if pos > limits.max_message_size {
            return Err(Error::TooLarge);
        }
        let Some(nl) = line_ends.next() else {
            if eof
                && buf
                    .get(pos..)
                    .unwrap_or_default()
                    .iter()
                    .all(|&b| b == b'\r')
            {
                break buf.len();
            }
            return if eof {
                Err(Error::NoHeaderEnd)
            } else {
                Ok(Status::Partial)
            };
        };
        // (The range always holds; a failed one answers an error rather than an empty
        // slice, which costs a branch instead of conditional moves.)
        let Some(line) = buf.get(pos..nl) else {
            return Err(Error::BadHeader);
        };
        if let Some(h) = usual_line(line) {
            push_line!(h);
        } else if matches!(line, b"" | b"\r") {
            break nl + 1;
        } else {
            match other_line(line)? {
                Other::Header(h) => push_line!(h),
                Other::Folded(line) => {
                    // Folding: the continuation belongs to the last header's value (§7.3.1).
                    let Some(h) = headers.last_mut() else {
                        return Err(Error::BadHeader);
                    };
                    unfold(buf, h, pos + line.len());
                }
            }
        }
        // (A datagram whose last header line ends the buffer, with no empty line after it,
        // ends where the next line end is looked for and none is found.)
        pos = nl + 1;
    };
    Ok(Status::Complete(Head {
        start,
        body_at,
        headers,
    }))
}

/// The usual header line, `Name: value` CRLF with the name as RFC 3261 spells it (see
/// [`canonical_name`]), one space after the colon and nothing to trim around the value: its
/// header, read without the steps of the general path ([`other_line`]), which answers the
/// same for it. `line` is the line with its CR, without the LF.
#[inline(always)]
fn usual_line(line: &[u8]) -> Option<Header<'_>> {
    // The CR and the value's last byte behind one length check.
    let [.., z, b'\r'] = *line else {
        return None;
    };
    if z <= b' ' {
        return None;
    }
    let (name, len) = canonical_name(line)?;
    // (The colon was compared with the name: one length check for the space and the value,
    // which makes the space's byte and the value's first in bounds.)
    let value = line.get(len + 2..line.len() - 1)?;
    // (The value's first byte read from the line: an empty value's is the CR, which fails
    // the test too, so the value is not tested for being empty on its own.)
    if line.get(len + 1) != Some(&b' ') || line.get(len + 2).is_none_or(|&a| a <= b' ') {
        return None;
    }
    // (Its name is spelled as `name` is.)
    Some(Header {
        name,
        spelled: None,
        value,
    })
}

/// Pushes a header to a full index (after growing it). The header comes in its fields, which
/// are passed in registers: a `Header` argument would be built in memory on every line. The
/// index is taken and given back by value: a reference to it would keep it in memory through
/// the header loop.
#[cold]
#[inline(never)]
fn push_grown<'b>(
    mut headers: Index<'b>,
    name: HeaderName,
    spelled: Option<&'b [u8]>,
    value: &'b [u8],
) -> Index<'b> {
    headers.push(Header {
        name,
        spelled,
        value,
    });
    headers
}

/// The index with room for 16 more lines (by value, as [`push_grown`]).
#[cold]
#[inline(never)]
fn reserved(mut headers: Index<'_>) -> Index<'_> {
    headers.reserve(16);
    headers
}

/// What a header line other than the usual one and the empty one is.
enum Other<'b> {
    /// A header line.
    Header(Header<'b>),
    /// A continuation line (without its line end) of the header before it.
    Folded(&'b [u8]),
}

/// Any header line but the usual one and the empty one (`line` without its LF): a header, or
/// a continuation of the last header's value. Out of line: the header loop keeps its
/// registers for the usual line.
#[cold]
#[inline(never)]
fn other_line(line: &[u8]) -> Result<Other<'_>, Error> {
    let line = strip_cr(line);
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Ok(Other::Folded(line));
    }
    let (name, name_len, colon) = match canonical_name(line) {
        Some((name, len)) => (name, len, len),
        None => scan_name(line)?,
    };
    let (Some(raw_name), Some(after_colon)) = (line.get(..name_len), line.get(colon + 1..)) else {
        return Err(Error::BadHeader);
    };
    Ok(Other::Header(Header::new(
        name,
        raw_name,
        header_value(after_colon),
    )))
}

/// A header line that starts with a name as RFC 3261 spells it, directly followed by the
/// colon (how phones write them): the name and its length, with no byte-by-byte token scan
/// and no case-folding classification. Anything else (compact or differently cased names,
/// white space before the colon, unknown names) is `None` and takes the general path.
#[inline(always)]
fn canonical_name(line: &[u8]) -> Option<(HeaderName, usize)> {
    // Each comparison has a constant length, so it compiles to a few word compares.
    macro_rules! first_of {
        ($($text:literal => $name:ident),+ $(,)?) => {{
            $(
                if line.starts_with($text) {
                    return Some((HeaderName::$name, $text.len() - 1));
                }
            )+
            None
        }};
    }
    match line.first()? {
        b'V' => first_of!(b"Via:" => Via),
        b'F' => first_of!(b"From:" => From),
        b'T' => first_of!(b"To:" => To),
        // (A request has four of these: told apart by their second byte first, so Call-ID and
        // CSeq take one compare each, not a walk past the others.)
        b'C' => match line.get(1)? {
            b'a' => first_of!(b"Call-ID:" => CallId),
            b'S' => first_of!(b"CSeq:" => CSeq),
            _ => first_of!(
                b"Contact:" => Contact,
                b"Content-Length:" => ContentLength,
                b"Content-Type:" => ContentType,
            ),
        },
        b'E' => first_of!(b"Expires:" => Expires),
        b'M' => first_of!(b"Max-Forwards:" => MaxForwards, b"Min-Expires:" => MinExpires),
        b'U' => first_of!(b"User-Agent:" => UserAgent, b"Unsupported:" => Unsupported),
        b'A' => first_of!(b"Allow:" => Allow, b"Authorization:" => Authorization),
        b'S' => first_of!(b"Supported:" => Supported, b"Server:" => Server),
        b'R' => first_of!(
            b"Route:" => Route,
            b"Record-Route:" => RecordRoute,
            b"Require:" => Require,
            b"Retry-After:" => RetryAfter,
        ),
        b'P' => first_of!(
            b"Path:" => Path,
            b"Proxy-Require:" => ProxyRequire,
            b"Proxy-Authorization:" => ProxyAuthorization,
        ),
        b'W' => first_of!(b"WWW-Authenticate:" => WwwAuthenticate),
        b'D' => first_of!(b"Date:" => Date),
        _ => None,
    }
}

/// The general form of a header line's start: a token, optional white space, the colon.
/// Returns the classified name, the name's length and the colon's position. Out of line: the
/// header loop keeps its registers for the canonical names.
#[cold]
#[inline(never)]
fn scan_name(line: &[u8]) -> Result<(HeaderName, usize, usize), Error> {
    // One pass finds the end of the name and checks it is a token.
    let name_len = line
        .iter()
        .position(|&b| !is_token(b))
        .unwrap_or(line.len());
    let colon = name_len
        + line
            .get(name_len..)
            .unwrap_or_default()
            .iter()
            .position(|&b| !is_wsp(b))
            .unwrap_or(line.len());
    if name_len == 0 || line.get(colon) != Some(&b':') {
        return Err(Error::BadHeader);
    }
    let name = HeaderName::from_token(line.get(..name_len).unwrap_or_default());
    Ok((name, name_len, colon))
}

/// A header line's value after the colon, trimmed of LWS: the usual single space after the
/// colon is stepped over first, so `trim_lws` usually finds nothing to trim.
fn header_value(after_colon: &[u8]) -> &[u8] {
    trim_lws(after_colon.strip_prefix(b" ").unwrap_or(after_colon))
}

/// Extends the value of header `h` over a continuation line ending at `to`: from after the
/// colon of its first line (the first colon after its name). Out of line: folding is rare.
#[cold]
#[inline(never)]
fn unfold<'b>(buf: &'b [u8], h: &mut Header<'b>, to: usize) {
    let value = match h.spelled {
        Some(raw_name) => {
            let name_end = offset_in(buf, raw_name) + raw_name.len();
            let after_name = buf.get(name_end..to).unwrap_or_default();
            after_name
                .get(find(b':', after_name).map_or(after_name.len(), |c| c + 1)..)
                .unwrap_or_default()
        }
        // The usual line (`Name: value`): its value starts after the colon and the space,
        // which the trim would take off, and is never empty.
        None => buf.get(offset_in(buf, h.value)..to).unwrap_or_default(),
    };
    h.value = trim_lws(value);
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_trailing_wsp(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |p| p + 1);
    s.get(..end).unwrap_or_default()
}

/// Content-Length: `Ok(None)` when absent, an error when malformed or conflicting.
fn content_length(headers: &[Header<'_>], census: &Census) -> Result<Option<usize>, Error> {
    let value = |h: &Header<'_>| {
        parse_u32(h.value)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or(Error::BadContentLength)
    };
    if !census.repeats(HeaderName::ContentLength) {
        // Absent or on one line (the usual message): no walk.
        return headers
            .get(census.first.get(HeaderName::ContentLength))
            .map(value)
            .transpose();
    }
    let mut found: Option<usize> = None;
    for h in census
        .lines(headers, HeaderName::ContentLength)
        .iter()
        .filter(|h| h.name == HeaderName::ContentLength)
    {
        let v = value(h)?;
        match found {
            Some(prev) if prev != v => return Err(Error::ConflictingContentLength),
            _ => found = Some(v),
        }
    }
    Ok(found)
}

/// Length of leading CRLFs (RFC 3261 §7.5: ignored before a start line).
fn leading_crlf(buf: &[u8]) -> usize {
    // (The usual message starts with its method: one compare.)
    if !matches!(buf.first(), Some(b'\r' | b'\n')) {
        return 0;
    }
    buf.iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len())
}

/// Parses one UDP datagram. Octets after Content-Length are ignored (RFC 4475 §3.1.1.8);
/// without Content-Length the body is the rest of the datagram (§18.3). A bad, conflicting or
/// too large Content-Length is a defect of the request (answered 400), not a parse failure.
pub fn parse_datagram<'b>(buf: &'b [u8], limits: &Limits) -> Result<Message<'b>, Error> {
    parse_datagram_with(buf, limits, &mut Scratch::default())
}

/// [`parse_datagram`] with the header index's allocation taken from `scratch` (give it back
/// with [`Scratch::reclaim`]).
pub fn parse_datagram_with<'b>(
    buf: &'b [u8],
    limits: &Limits,
    scratch: &mut Scratch,
) -> Result<Message<'b>, Error> {
    let mut slot = None;
    parse_datagram_into(buf, limits, scratch, &mut slot)?;
    // (Filled whenever the parse succeeds.)
    slot.ok_or(Error::Empty)
}

/// [`parse_datagram_with`] building the message in the caller's `slot` (untouched on a
/// failure), returned borrowed: a message is several hundred bytes, which a return by value
/// copies once more.
pub fn parse_datagram_into<'b, 's>(
    buf: &'b [u8],
    limits: &Limits,
    scratch: &mut Scratch,
    slot: &'s mut Option<Message<'b>>,
) -> Result<&'s mut Message<'b>, Error> {
    let skip = leading_crlf(buf);
    let buf = buf.get(skip..).unwrap_or_default();
    if buf.is_empty() {
        return Err(Error::Empty);
    }
    let Status::Complete(head) = scan_head(buf, limits, true, scratch)? else {
        return Err(Error::NoHeaderEnd);
    };
    let available = buf.len().saturating_sub(head.body_at);
    // (Taken here, not by the scan: returned with the scan's result it was copied twice more.)
    let census = Census::of(&head.headers);
    let (body_len, defect) = match content_length(&head.headers, &census) {
        Ok(Some(n)) if n <= available => (n, None),
        Ok(Some(_)) => (available, Some(Error::Truncated)),
        Ok(None) => (available, None),
        Err(e) => (available, Some(e)),
    };
    let end = head.body_at + body_len;
    if end > limits.max_message_size {
        return Err(Error::TooLarge);
    }
    Message::build(
        slot,
        buf.get(..end).unwrap_or_default(),
        head,
        &census,
        defect,
        &mut scratch.request_uri,
    )
}

/// Parses the first message of a stream buffer (RFC 3261 §18.3: Content-Length frames stream
/// messages and is mandatory there). Leading CRLFs are skipped and counted in the consumed
/// length. `Partial` until the whole message is buffered.
pub fn parse_stream<'b>(
    buf: &'b [u8],
    limits: &Limits,
) -> Result<Status<(Message<'b>, usize)>, Error> {
    parse_stream_with(buf, limits, &mut Scratch::default())
}

/// [`parse_stream`] with the header index's allocation taken from `scratch` (give it back with
/// [`Scratch::reclaim`]).
pub fn parse_stream_with<'b>(
    buf: &'b [u8],
    limits: &Limits,
    scratch: &mut Scratch,
) -> Result<Status<(Message<'b>, usize)>, Error> {
    let mut slot = None;
    Ok(match parse_stream_into(buf, limits, scratch, &mut slot)? {
        Status::Complete((_, n)) => match slot {
            Some(msg) => Status::Complete((msg, n)),
            // (Filled whenever the parse is complete.)
            None => return Err(Error::Empty),
        },
        Status::Partial => Status::Partial,
    })
}

/// [`parse_stream_with`] building the message in the caller's `slot`, returned borrowed (see
/// [`parse_datagram_into`]).
pub fn parse_stream_into<'b, 's>(
    buf: &'b [u8],
    limits: &Limits,
    scratch: &mut Scratch,
    slot: &'s mut Option<Message<'b>>,
) -> Result<Status<(&'s mut Message<'b>, usize)>, Error> {
    let skip = leading_crlf(buf);
    let msg = buf.get(skip..).unwrap_or_default();
    if msg.is_empty() {
        return Ok(Status::Partial);
    }
    let Status::Complete(head) = scan_head(msg, limits, false, scratch)? else {
        return Ok(Status::Partial);
    };
    let census = Census::of(&head.headers);
    let len = content_length(&head.headers, &census)?.ok_or(Error::MissingContentLength)?;
    let end = head.body_at.checked_add(len).ok_or(Error::TooLarge)?;
    if end > limits.max_message_size {
        return Err(Error::TooLarge);
    }
    let Some(raw) = msg.get(..end) else {
        return Ok(Status::Partial);
    };
    let parsed = Message::build(slot, raw, head, &census, None, &mut scratch.request_uri)?;
    Ok(Status::Complete((parsed, skip + end)))
}

/// Length (including leading CRLFs) of the first complete message in a stream buffer.
pub fn frame_stream(buf: &[u8], limits: &Limits) -> Result<Status<usize>, Error> {
    Ok(match parse_stream(buf, limits)? {
        Status::Complete((_, n)) => Status::Complete(n),
        Status::Partial => Status::Partial,
    })
}

/// RFC 5626 §4.4.1 keepalives at the front of a stream buffer:
/// `Complete(Some(4))` for a CRLFCRLF ping (answer with CRLF), `Complete(Some(2))` for a lone
/// CRLF (a pong or stray line break: skip it), `Partial` when the bytes so far are a prefix of a
/// ping, `Complete(None)` when the buffer does not start with a keepalive.
pub fn keepalive_len(buf: &[u8]) -> Status<Option<usize>> {
    if buf.starts_with(b"\r\n\r\n") {
        return Status::Complete(Some(4));
    }
    if b"\r\n\r\n".starts_with(buf) && !buf.is_empty() {
        return Status::Partial;
    }
    if buf.starts_with(b"\r\n") {
        return Status::Complete(Some(2));
    }
    Status::Complete(None)
}

impl<'b> Message<'b> {
    /// Parses the start line and builds the message over `raw` (its header index is full) in
    /// `slot`, where the views validation parses are written in place. A Request-URI is read
    /// through `request_uri`, which remembers the last one.
    fn build<'s>(
        slot: &'s mut Option<Self>,
        raw: &'b [u8],
        head: Head<'b>,
        census: &Census,
        defect: Option<Error>,
        request_uri: &mut UriMemo,
    ) -> Result<&'s mut Self, Error> {
        let body = raw.get(head.body_at..).unwrap_or_default();
        if head.start.starts_with(b"SIP/") {
            let rest = head.start.get(4..).unwrap_or_default(); // after "SIP/"
                                                                // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
            let sp = find(b' ', rest).ok_or(Error::BadStartLine)?;
            let after = rest.get(sp + 1..).unwrap_or_default();
            let (code, reason) = match find(b' ', after) {
                Some(i) => (
                    after.get(..i).unwrap_or_default(),
                    after.get(i + 1..).unwrap_or_default(),
                ),
                None => (after, &b""[..]),
            };
            if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
                return Err(Error::BadStatusCode);
            }
            let status = parse_u32(code)
                .and_then(|c| u16::try_from(c).ok())
                .ok_or(Error::BadStatusCode)?;
            if !(100..=699).contains(&status) {
                return Err(Error::BadStatusCode);
            }
            let msg = slot.insert(Message::Response(Response {
                raw,
                status: StatusCode(status),
                reason,
                headers: head.headers,
                census: *census,
                body,
                defect: None,
                parsed: Parsed::default(),
            }));
            if let Message::Response(resp) = msg {
                resp.defect = defect
                    .or_else(|| common_defect(census))
                    .or_else(|| resp.cseq().err());
            }
            return Ok(msg);
        }
        let (method, middle, version, trailing_ws) = match usual_request_line(head.start) {
            Some(parts) => parts,
            None => request_line(head.start)?,
        };
        let uri = trim_lws(middle);
        let msg = slot.insert(Message::Request(Request {
            raw,
            method: Method(method),
            uri,
            version,
            headers: head.headers,
            census: *census,
            body,
            defect: None,
            parsed: Parsed::default(),
        }));
        if let Message::Request(req) = msg {
            // Parsed here (into its slot), reported in validation's order. A URI with white
            // space inside never parses, so only a failed one is searched for it.
            let uri_error = request_uri.parse_into(uri, &mut req.parsed.request_uri);
            // Extra SP between elements, or white space inside the URI (RFC 4475
            // §3.1.2.8-3.1.2.10).
            let mut defect = defect;
            if trailing_ws
                || uri.len() != middle.len()
                || uri.is_empty()
                || (uri_error.is_some() && uri.iter().any(|&b| b == b' ' || b == b'\t'))
            {
                defect = defect.or(Some(Error::BadStartLine));
            }
            req.defect = defect
                .or_else(|| common_defect(census))
                .or_else(|| request_defect(req, uri_error));
        }
        Ok(msg)
    }
}

/// The parts of a request line: the method, what lies between the two SPs around the
/// Request-URI, the version, and whether trailing white space was cut.
type RequestLine<'b> = (&'b [u8], &'b [u8], &'b [u8], bool);

/// The usual request line, `REGISTER <uri> SIP/2.0`: its parts as [`request_line`] finds them,
/// with no search for the SPs and no trailing white space to cut.
#[inline(always)]
fn usual_request_line(start: &[u8]) -> Option<RequestLine<'_>> {
    // (Split at both fixed parts first: one length check each, the compares on arrays.)
    let (method_sp, rest) = start.split_first_chunk::<9>()?;
    let (middle, sp_version) = rest.split_last_chunk::<8>()?;
    if method_sp != b"REGISTER " || sp_version != b" SIP/2.0" {
        return None;
    }
    let ([method @ .., _], [_, version @ ..]) = (method_sp, sp_version);
    Some((method, middle, version, false))
}

/// The parts of a request line (`Method SP Request-URI SP SIP-Version`, RFC 3261 §7.1).
/// Trailing white space is cut and reported: a defect (RFC 4475 §3.1.2.10), not a reason to
/// drop the request.
fn request_line(line: &[u8]) -> Result<RequestLine<'_>, Error> {
    let start = trim_trailing_wsp(line);
    let trailing_ws = start.len() != line.len();
    // The method is a token ended by SP: one pass finds and checks it.
    let sp1 = start
        .iter()
        .position(|&b| !is_token(b))
        .filter(|&i| i > 0 && start.get(i) == Some(&b' '))
        .ok_or(Error::BadStartLine)?;
    let sp2 = start
        .iter()
        .rposition(|&b| b == b' ')
        .ok_or(Error::BadStartLine)?;
    let method = start.get(..sp1).unwrap_or_default();
    let version = start.get(sp2 + 1..).unwrap_or_default();
    if sp2 <= sp1 {
        return Err(Error::BadStartLine);
    }
    if !version.starts_with(b"SIP/") || version.len() < 5 {
        return Err(Error::BadStartLine);
    }
    let middle = start.get(sp1 + 1..sp2).unwrap_or_default();
    Ok((method, middle, version, trailing_ws))
}

/// Checks the headers every message needs: at least one Via, exactly one From, To, Call-ID
/// and CSeq (§8.1.1, RFC 4475 §3.3.1, §3.3.8), at most one Max-Forwards, from the census's
/// counts.
fn common_defect(census: &Census) -> Option<Error> {
    // The usual message, answered from the counts at once: one line of each of these, at
    // least one Via and at most one Max-Forwards.
    let c = |name| census.count(name);
    let once = (c(HeaderName::From) ^ 1)
        | (c(HeaderName::To) ^ 1)
        | (c(HeaderName::CallId) ^ 1)
        | (c(HeaderName::CSeq) ^ 1);
    if once == 0 && c(HeaderName::Via) != 0 && c(HeaderName::MaxForwards) <= 1 {
        return None;
    }
    defect_named(census)
}

/// [`common_defect`] naming the header at fault, in the order of the checks.
#[cold]
fn defect_named(census: &Census) -> Option<Error> {
    if !census.has(HeaderName::Via) {
        return Some(Error::MissingHeader("Via"));
    }
    for (name, text) in [
        (HeaderName::From, "From"),
        (HeaderName::To, "To"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
    ] {
        if !census.has(name) {
            return Some(Error::MissingHeader(text));
        }
        if census.repeats(name) {
            return Some(Error::DuplicateHeader(text));
        }
    }
    if census.repeats(HeaderName::MaxForwards) {
        return Some(Error::DuplicateHeader("Max-Forwards"));
    }
    None
}

/// Validates a request's mandatory parts, keeping the views it parsed for the accessors.
/// `uri_error` is why the Request-URI (parsed with the request line) did not parse.
fn request_defect(req: &mut Request<'_>, uri_error: Option<Error>) -> Option<Error> {
    // Every Via value must parse; the top one is kept. Views are parsed into their slots
    // (each is 100-200 bytes: a copy per view shows in the instruction count). The usual
    // request has one Via line holding one value: when that line parses whole, it is all
    // there is to check (as `vias` would find: see `whole_via`).
    let via_lines = req.census.lines(&req.headers, HeaderName::Via);
    // (Written straight from the parse's result: an `Option` in between is one more copy.)
    if let [line] = via_lines {
        // (The index's values are trimmed.)
        if let Ok(v) = Via::parse_trimmed(line.value) {
            req.parsed.top_via = Some(v);
        }
    }
    if req.parsed.top_via.is_none() {
        for via in super::header::vias(via_lines) {
            match via {
                Ok(v) if req.parsed.top_via.is_none() => req.parsed.top_via = Some(v),
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
    }
    if uri_error.is_some() {
        return uri_error;
    }
    let cseq = match req.cseq() {
        Ok(c) => c,
        Err(e) => return Some(e),
    };
    req.parsed.cseq = Some(cseq);
    // (Compared inline: `!=` on the methods is a `memcmp` call.)
    if !crate::bytes::same(cseq.method.0, req.method.0) {
        return Some(Error::CSeqMethodMismatch);
    }
    let Some(from) = req.header(HeaderName::From) else {
        return Some(Error::MissingHeader("From"));
    };
    let Some(to) = req.header(HeaderName::To) else {
        return Some(Error::MissingHeader("To"));
    };
    let from_value = from;
    // The usual From names its user at the Request-URI's host: that host is compared.
    let from = match req.parsed.request_uri.as_ref() {
        Some(uri) => NameAddr::parse_at_host(from_value, uri),
        None => NameAddr::parse(from_value),
    };
    let from = match from {
        Ok(f) => req.parsed.from.insert(f),
        Err(e) => return Some(e),
    };
    // The usual To is its From without the tag: then it is read off the From's view.
    if let Some(t) = from.without_params(from_value, to) {
        req.parsed.to = Some(t);
        return None;
    }
    match NameAddr::parse_like(to, &from.uri) {
        Ok(t) => req.parsed.to = Some(t),
        Err(e) => return Some(e),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Contact;

    const REG: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds7;rport\r\n\
Max-Forwards: 70\r\n\
From: Bob <sip:bob@example.com>;tag=456248\r\n\
To: Bob <sip:bob@example.com>\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Expires: 7200\r\n\
Content-Length: 0\r\n\r\n";

    fn req(buf: &[u8]) -> Request<'_> {
        match parse_datagram(buf, &Limits::default()) {
            Ok(Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn mandatory_headers_counted() {
        let lines = [
            "Via: SIP/2.0/UDP h",
            "From: <sip:a@b>;tag=1",
            "To: <sip:a@b>",
            "Call-ID: c",
            "CSeq: 1 OPTIONS",
            "Max-Forwards: 70",
        ];
        let defect = |skip: Option<usize>, twice: Option<usize>| {
            let mut msg = String::from("OPTIONS sip:x SIP/2.0\r\n");
            for (i, line) in lines.iter().enumerate() {
                if skip != Some(i) {
                    msg.push_str(line);
                    msg.push_str("\r\n");
                }
                if twice == Some(i) {
                    msg.push_str(&line.replace("tag=1", "tag=2").replace(": c", ": d"));
                    msg.push_str("\r\n");
                }
            }
            msg.push_str("Content-Length: 0\r\n\r\n");
            req(msg.as_bytes()).defect()
        };
        assert_eq!(defect(None, None), None);
        let names = ["Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards"];
        for (i, name) in names.into_iter().enumerate() {
            let missing = (i < 5).then_some(Error::MissingHeader(name));
            assert_eq!(defect(Some(i), None), missing, "{name} missing");
            // Two Vias are fine; every other one of these at most once.
            let duplicate = (i > 0).then_some(Error::DuplicateHeader(name));
            assert_eq!(defect(None, Some(i)), duplicate, "{name} twice");
        }
    }

    /// Up to `MAX_LINES` header lines whatever `max_headers` says: lookups and duplicate
    /// checks work up to the last one, one line more is too many.
    #[test]
    fn header_lines_up_to_u16_positions() {
        let tail: &[&[u8]] = &[
            b"Via: SIP/2.0/UDP h\r\n",
            b"From: <sip:a@b>;tag=1\r\n",
            b"To: <sip:a@b>\r\n",
            b"Call-ID: c\r\n",
            b"CSeq: 1 OPTIONS\r\n",
        ];
        let message = |fillers: usize, last: &[u8]| {
            let mut msg = b"OPTIONS sip:x SIP/2.0\r\n".to_vec();
            for _ in 0..fillers {
                msg.extend_from_slice(b"X: y\r\n");
            }
            tail.iter().for_each(|line| msg.extend_from_slice(line));
            msg.extend_from_slice(last);
            msg.extend_from_slice(b"\r\n");
            msg
        };
        let limits = Limits {
            max_headers: 100_000,
            max_message_size: 1 << 20,
            ..Limits::default()
        };
        let fillers = MAX_LINES - tail.len() - 1;
        let msg = message(fillers, b"Content-Length: 0\r\n");
        let Ok(Message::Request(r)) = parse_datagram(&msg, &limits) else {
            panic!("not a request");
        };
        assert_eq!(r.headers().len(), MAX_LINES);
        assert_eq!(r.call_id().unwrap(), b"c");
        assert_eq!(r.header(HeaderName::ContentLength), Some(&b"0"[..]));
        assert_eq!(r.header(HeaderName::Expires), None);
        assert_eq!(r.headers_named(HeaderName::Via).count(), 1);
        assert_eq!(r.defect(), None);
        // A second From as the very last line is still a duplicate.
        let msg = message(fillers, b"f: <sip:z@b>;tag=2\r\n");
        let Ok(Message::Request(r)) = parse_datagram(&msg, &limits) else {
            panic!("not a request");
        };
        assert_eq!(r.defect(), Some(Error::DuplicateHeader("From")));
        let msg = message(fillers + 1, b"Content-Length: 0\r\n");
        assert_eq!(
            parse_datagram(&msg, &limits).unwrap_err(),
            Error::TooManyHeaders
        );
    }

    /// A datagram may end right after its last header line (no empty line), or after a
    /// stray CR; anything else after it is an unterminated header section.
    #[test]
    fn datagram_ends_after_its_last_header_line() {
        let whole = req(REG);
        let cut = &REG[..REG.len() - 2];
        for tail in [&b""[..], b"\r", b"\r\r"] {
            let msg = [cut, tail].concat();
            let r = req(&msg);
            assert_eq!(r.headers().len(), whole.headers().len());
            assert_eq!(r.defect(), None);
            assert_eq!(r.body(), b"");
        }
        let limits = Limits::default();
        assert_eq!(
            parse_datagram(&[cut, b"x"].concat(), &limits).unwrap_err(),
            Error::NoHeaderEnd
        );
        let small = Limits {
            max_message_size: cut.len() - 1,
            ..limits
        };
        assert_eq!(parse_datagram(cut, &small).unwrap_err(), Error::TooLarge);
        let exact = Limits {
            max_message_size: cut.len(),
            ..limits
        };
        assert!(parse_datagram(cut, &exact).is_ok());
    }

    #[test]
    fn indexes_a_register() {
        let r = req(REG);
        assert_eq!(r.method(), Method::REGISTER);
        assert_eq!(r.uri(), b"sip:example.com");
        assert_eq!(r.version(), b"SIP/2.0");
        assert_eq!(r.headers().len(), 9);
        assert_eq!(r.call_id().unwrap(), b"843817637684230@998sdasdh09");
        assert_eq!(r.cseq().unwrap().seq, 1826);
        assert_eq!(r.expires().unwrap(), Some(7200));
        assert_eq!(r.max_forwards().unwrap(), Some(70));
        assert_eq!(r.defect(), None);
        assert!(r.body().is_empty());
        assert_eq!(r.as_bytes().len(), REG.len());
    }

    #[test]
    fn compact_forms_folding_and_case() {
        let msg = b"REGISTER sip:example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
f: <sip:a@example.com>;tag=1\r\nt: <sip:a@example.com>\r\ni: abc\r\nCSEQ: 1\r\n  REGISTER\r\n\
m: <sip:a@h>\r\nl: 0\r\n\r\n";
        let r = req(msg);
        assert_eq!(r.defect(), None, "{:?}", r.defect());
        assert_eq!(r.call_id().unwrap(), b"abc");
        let cseq = r.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (1, Method::REGISTER));
        // The borrowed view validation kept is the one the general parse gives.
        let general = CSeq::parse(r.header(HeaderName::CSeq).unwrap()).unwrap();
        assert_eq!(r.parsed_cseq(), Some(&general));
        assert_eq!(r.contacts().count(), 1);
        assert_eq!(r.header(HeaderName::CSeq).unwrap(), b"1\r\n  REGISTER");
    }

    #[test]
    fn folded_values() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nSubject \t: one\r\n two\r\n\tthree \r\n\
Organization:\r\n  acme:corp\r\nX-Empty:   \r\nContent-Length: 0\r\n\r\n";
        let r = req(msg);
        let values: Vec<_> = r.headers().iter().skip(5).map(|h| h.value).collect();
        assert_eq!(
            values,
            [&b"one\r\n two\r\n\tthree"[..], b"acme:corp", b"", b"0"]
        );
    }

    /// A continuation of the usual line (whose index entry keeps no raw name to find the colon
    /// by) extends its value as it does the value of a line the general path reads.
    #[test]
    fn folded_usual_lines_read_as_general_ones() {
        let first_lines: [&[u8]; 3] = [b"Via: a", b"Via: a b;c=d", b"Contact: <sip:x@y>"];
        let continuations: [&[u8]; 5] = [b" b", b"\t b ", b"  ,c", b" \t", b" b\r\n\tc "];
        for first in first_lines {
            for more in continuations {
                let value = |first: &[u8]| {
                    let mut msg = b"OPTIONS sip:x SIP/2.0\r\n".to_vec();
                    for line in [first, more, b"Content-Length: 0", b""] {
                        msg.extend_from_slice(line);
                        msg.extend_from_slice(b"\r\n");
                    }
                    let r = req(&msg);
                    let h = r.headers()[0];
                    (h.value.to_vec(), h.raw_name().to_vec())
                };
                let usual = value(first);
                // The same line with two spaces after the colon takes the general path.
                let text = String::from_utf8_lossy(first);
                let general = value(text.replacen(':', ":  ", 1).as_bytes());
                assert_eq!(
                    usual,
                    general,
                    "{text:?} {:?}",
                    String::from_utf8_lossy(more)
                );
                assert!(usual_line(&[first, b"\r"].concat()).is_some(), "{text:?}");
            }
        }
    }

    #[test]
    fn bare_lf_line_ends() {
        let lf: Vec<u8> = REG.iter().copied().filter(|&b| b != b'\r').collect();
        let r = req(&lf);
        assert_eq!(r.defect(), None);
        assert_eq!(r.headers().len(), 9);
    }

    #[test]
    fn datagram_content_length_rules() {
        let with_body = |cl: &str, body: &str| {
            format!("OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n{cl}\r\n{body}")
        };
        let m = with_body("Content-Length: 3\r\n", "abcTRAILING");
        assert_eq!(req(m.as_bytes()).body(), b"abc");
        let m = with_body("", "rest of it");
        assert_eq!(req(m.as_bytes()).body(), b"rest of it");
        let m = with_body("Content-Length: 99\r\n", "abc");
        assert_eq!(req(m.as_bytes()).defect(), Some(Error::Truncated));
        let m = with_body("Content-Length: -3\r\n", "abc");
        assert_eq!(req(m.as_bytes()).defect(), Some(Error::BadContentLength));
        let m = with_body("Content-Length: 3\r\nl: 2\r\n", "abc");
        assert_eq!(
            req(m.as_bytes()).defect(),
            Some(Error::ConflictingContentLength)
        );
    }

    #[test]
    fn values_across_lines_in_order() {
        let msg = b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a\r\n\
Contact: <sip:1@x>, <sip:2@x>\r\nFrom: <sip:a@b>;tag=1\r\nVia: SIP/2.0/UDP b, SIP/2.0/UDP c\r\n\
To: <sip:a@b>\r\nm: <sip:3@x>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nExpires: 60\r\n\r\n";
        let r = req(msg);
        let hosts: Vec<_> = r.vias().map(|v| v.unwrap().host).collect();
        assert_eq!(hosts, [&b"a"[..], b"b", b"c"]);
        assert_eq!(r.contacts().count(), 3);
        assert_eq!(r.headers_named(HeaderName::Via).count(), 2);
        assert_eq!(
            r.headers_named(HeaderName::Expires).collect::<Vec<_>>(),
            [b"60"]
        );
        assert_eq!(r.headers_named(HeaderName::Route).count(), 0);
        assert_eq!(r.defect(), None);
    }

    #[test]
    fn request_lines() {
        // (request line, Err(parse error) or Ok((method, uri, version, defect)))
        type Parts = (&'static str, &'static str, &'static str, Option<Error>);
        let bad = Some(Error::BadStartLine);
        let cases: &[(&str, Result<Parts, Error>)] = &[
            (
                "REGISTER sip:x SIP/2.0",
                Ok(("REGISTER", "sip:x", "SIP/2.0", None)),
            ),
            ("FOO sip:x SIP/3.0", Ok(("FOO", "sip:x", "SIP/3.0", None))),
            (
                "REGISTER  sip:x SIP/2.0",
                Ok(("REGISTER", "sip:x", "SIP/2.0", bad)),
            ),
            (
                "REGISTER sip:x  SIP/2.0",
                Ok(("REGISTER", "sip:x", "SIP/2.0", bad)),
            ),
            (
                "REGISTER sip:x SIP/2.0 ",
                Ok(("REGISTER", "sip:x", "SIP/2.0", bad)),
            ),
            (
                "REGISTER sip:a b SIP/2.0",
                Ok(("REGISTER", "sip:a b", "SIP/2.0", bad)),
            ),
            (
                "REGISTER sip:a\tb SIP/2.0",
                Ok(("REGISTER", "sip:a\tb", "SIP/2.0", bad)),
            ),
            (" REGISTER sip:x SIP/2.0", Err(Error::BadStartLine)),
            ("REG\tISTER sip:x SIP/2.0", Err(Error::BadStartLine)),
            ("RE@GISTER sip:x SIP/2.0", Err(Error::BadStartLine)),
            ("REGISTER\tsip:x SIP/2.0", Err(Error::BadStartLine)),
            ("REGISTER sip:x", Err(Error::BadStartLine)),
            ("REGISTER sip:x HTTP/1.1", Err(Error::BadStartLine)),
            ("REGISTER sip:x SIP/", Err(Error::BadStartLine)),
            ("REGISTER", Err(Error::BadStartLine)),
        ];
        for (line, want) in cases {
            let msg = format!(
                "{line}\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\n\
                 Call-ID: c\r\nCSeq: 1 {}\r\nContent-Length: 0\r\n\r\n",
                line.split(' ').next().unwrap_or_default()
            );
            let got = match parse_datagram(msg.as_bytes(), &Limits::default()) {
                Ok(Message::Request(r)) => Ok((
                    String::from_utf8_lossy(r.method().0).into_owned(),
                    String::from_utf8_lossy(r.uri()).into_owned(),
                    String::from_utf8_lossy(r.version()).into_owned(),
                    r.defect(),
                )),
                Ok(Message::Response(_)) => panic!("{line}: a response"),
                Err(e) => Err(e),
            };
            let want = want.map(|(m, u, v, d)| (m.to_owned(), u.to_owned(), v.to_owned(), d));
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn lexical_errors() {
        let limits = Limits::default();
        assert_eq!(parse_datagram(b"", &limits).unwrap_err(), Error::Empty);
        assert_eq!(
            parse_datagram(b"\r\n\r\n", &limits).unwrap_err(),
            Error::Empty
        );
        assert_eq!(
            parse_datagram(b"garbage\r\n\r\n", &limits).unwrap_err(),
            Error::BadStartLine
        );
        assert_eq!(
            parse_datagram(b"OPTIONS sip:x SIP/2.0\r\nNoColonHere\r\n\r\n", &limits).unwrap_err(),
            Error::BadHeader
        );
        assert_eq!(
            parse_datagram(b"OPTIONS sip:x SIP/2.0\r\n folded-first\r\n\r\n", &limits).unwrap_err(),
            Error::BadHeader
        );
        assert_eq!(
            parse_datagram(b"SIP/2.0 4294967301 Big\r\n\r\n", &limits).unwrap_err(),
            Error::BadStatusCode
        );
        assert_eq!(
            parse_datagram(b"SIP/2.0 099 X\r\n\r\n", &limits).unwrap_err(),
            Error::BadStatusCode
        );
        let small = Limits {
            max_message_size: 64,
            ..limits
        };
        assert_eq!(parse_datagram(REG, &small).unwrap_err(), Error::TooLarge);
        let few = Limits {
            max_headers: 3,
            ..limits
        };
        assert_eq!(
            parse_datagram(REG, &few).unwrap_err(),
            Error::TooManyHeaders
        );
        // A stream fails as soon as one line too many arrives, before its header section is
        // complete (a flood of header lines is not buffered up to max_message_size).
        let head = &REG[..REG.len() - 40];
        assert!(matches!(parse_stream(head, &limits), Ok(Status::Partial)));
        assert_eq!(parse_stream(head, &few).unwrap_err(), Error::TooManyHeaders);
    }

    #[test]
    fn semantic_defects() {
        let cases: &[(&str, &str, Error)] = &[
            (
                "Call-ID: x\r\n",
                "Call-ID: y\r\n",
                Error::DuplicateHeader("Call-ID"),
            ),
            (
                "CSeq: 1826 REGISTER\r\n",
                "CSeq: 1826 INVITE\r\n",
                Error::CSeqMethodMismatch,
            ),
            (
                "CSeq: 1826 REGISTER\r\n",
                "CSeq: 4294967296 REGISTER\r\n",
                Error::BadCSeq,
            ),
            (
                "To: Bob <sip:bob@example.com>\r\n",
                "",
                Error::MissingHeader("To"),
            ),
            (
                "Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds7;rport\r\n",
                "Via: SIP/2.0/UDP 192.0.2.4;;,;,,\r\n",
                Error::BadVia,
            ),
            (
                "From: Bob <sip:bob@example.com>;tag=456248\r\n",
                "From: \"Bob <sip:bob@example.com>;tag=456248\r\n",
                Error::BadNameAddr,
            ),
        ];
        for (from, to, want) in cases {
            let text = String::from_utf8(REG.to_vec()).unwrap();
            let text = if from.starts_with("Call-ID") {
                text.replace("Content-Length", &format!("{to}Content-Length"))
            } else {
                text.replace(from, to)
            };
            assert_eq!(req(text.as_bytes()).defect(), Some(*want), "{to}");
        }
        let spaced =
            String::from_utf8(REG.to_vec())
                .unwrap()
                .replacen("REGISTER sip", "REGISTER  sip", 1);
        assert_eq!(req(spaced.as_bytes()).defect(), Some(Error::BadStartLine));
    }

    #[test]
    fn stream_framing_every_split() {
        let mut two = REG.to_vec();
        two.extend_from_slice(b"\r\n\r\n");
        two.extend_from_slice(REG);
        let limits = Limits::default();
        for split in 0..REG.len() {
            assert_eq!(
                frame_stream(&REG[..split], &limits).unwrap(),
                Status::Partial,
                "at {split}"
            );
        }
        assert_eq!(
            frame_stream(&two, &limits).unwrap(),
            Status::Complete(REG.len())
        );
        let rest = &two[REG.len()..];
        assert_eq!(
            frame_stream(rest, &limits).unwrap(),
            Status::Complete(rest.len())
        );
        let no_cl = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n";
        assert_eq!(
            frame_stream(no_cl, &limits).unwrap_err(),
            Error::MissingContentLength
        );
        let huge = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(frame_stream(huge, &limits).unwrap_err(), Error::TooLarge);
        let endless = vec![b'a'; 70_000];
        assert_eq!(
            frame_stream(&endless, &limits).unwrap_err(),
            Error::TooLarge
        );
    }

    #[test]
    fn keepalives() {
        assert_eq!(
            keepalive_len(b"\r\n\r\nREGISTER"),
            Status::Complete(Some(4))
        );
        assert_eq!(keepalive_len(b"\r\nREG"), Status::Complete(Some(2)));
        assert_eq!(keepalive_len(b"\r\n"), Status::Partial);
        assert_eq!(keepalive_len(b"\r\n\r"), Status::Partial);
        assert_eq!(keepalive_len(b"\r"), Status::Partial);
        assert_eq!(keepalive_len(b"REGISTER"), Status::Complete(None));
        assert_eq!(keepalive_len(b""), Status::Complete(None));
    }

    #[test]
    fn responses() {
        let msg = b"SIP/2.0 100 \r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let Ok(Message::Response(r)) = parse_datagram(msg, &Limits::default()) else {
            panic!()
        };
        assert_eq!(r.status(), StatusCode(100));
        assert_eq!(r.reason(), b"");
        assert_eq!(r.defect(), None);
    }

    /// A single Via line that parses whole is taken as the top Via without the general walk
    /// over its values: the result (top Via and defect) must be what that walk finds.
    #[test]
    fn single_via_line_matches_the_value_walk() {
        for value in [
            "SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds7;rport",
            "SIP/2.0/UDP h;branch=z9hG4bK1, SIP/2.0/TCP g;branch=z9hG4bK2",
            "SIP/2.0/UDP h;branch=z9hG4bK1,SIP/2.0/UDP",
            "SIP/2.0/UDP h;branch=\"a,b\"",
            "SIP/2.0/UDP h ; branch = z9hG4bK1",
            "SIP / 2.0 / UDP h:5060",
            "SIP/2.0/UDP [2001:db8::1]:5060;received=192.0.2.1",
            "SIP/2.0/UDP h;rport=;branch=z9hG4bK1",
            "SIP/2.0/UDP h:99999",
            "SIP/2.0/UDP",
            ",",
            " , ",
            "garbage",
        ] {
            let msg = format!(
                "OPTIONS sip:x SIP/2.0\r\nVia: {value}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\n\
                 Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            let r = req(msg.as_bytes());
            let walk: Vec<_> = r.vias().collect();
            let want_defect = walk.iter().find_map(|v| v.as_ref().err().copied());
            assert_eq!(r.defect(), want_defect, "{value}");
            let want_top = match walk.first() {
                Some(Ok(v)) => Some(format!("{v:?}")),
                _ => None,
            };
            let top = r.parsed_top_via().map(|v| format!("{v:?}"));
            assert_eq!(top, want_top, "{value}");
        }
    }

    /// The usual single contact is taken without the walk over values: it must be what the
    /// walk yields, and any other shape must be left to the walk.
    #[test]
    fn sole_contact_matches_the_value_walk() {
        for (value, usual) in [
            (
                "<sip:bob@192.0.2.4:5060;transport=udp>;+sip.instance=\"<urn:uuid:1>\";expires=60",
                true,
            ),
            ("<sip:bob@192.0.2.4>", true),
            ("<sip:bob@192.0.2.4>;q=0.5;reg-id=1", true),
            ("<sip:bob@192.0.2.4>;expires=60;x;Q=1;y=\"a;q=2\"", true),
            // (A bad q or reg-id is the contact's error: left to the walk, which finds it.)
            ("<sip:bob@192.0.2.4>;q=x", false),
            ("<sip:bob@192.0.2.4>;reg-id=x", false),
            ("<sip:bob@192.0.2.4>;expires=soon", false),
            ("<sip:bob@192.0.2.4>;expires=", false),
            ("<sip:bob@192.0.2.4>, <sip:bob@192.0.2.5>", false),
            ("<sip:bob@192.0.2.4>,", true),
            ("Bob <sip:bob@192.0.2.4>", false),
            ("sip:bob@192.0.2.4", false),
            ("<sip:bob@192.0.2.4> ;expires=60", false),
            ("<sip:bob@192.0.2.4;lr>;x=\"a,b\"", true),
            ("*", false),
            ("<bad uri>", false),
            ("<>", false),
        ] {
            let msg = format!(
                "REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\n\
                 To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: {value}\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            let r = req(msg.as_bytes());
            let walk = walk_parts(&r);
            match r.sole_contact() {
                Some(c) => assert_eq!(walk, [sole_parts(c)], "{value}"),
                None => assert!(!usual, "{value}: the usual shape left to the walk"),
            }
            assert_eq!(r.sole_contact().is_some(), usual, "{value}");
            if value.contains("=x") || value.contains("soon") {
                assert!(walk[0].starts_with("Err"), "{value}: {walk:?}");
            }
        }
        // Two Contact lines: the walk's business.
        let two = String::from_utf8_lossy(REG).replace(
            "Contact: <sip:bob@192.0.2.4>\r\n",
            "Contact: <sip:bob@192.0.2.4>\r\nContact: <sip:bob@192.0.2.5>\r\n",
        );
        assert_eq!(req(two.as_bytes()).contacts().count(), 2);
        assert!(req(two.as_bytes()).sole_contact().is_none());
        assert!(req(REG).sole_contact().is_some());
        // No Contact line, and one in compact form among other lines.
        let none = String::from_utf8_lossy(REG).replace("Contact: <sip:bob@192.0.2.4>\r\n", "");
        assert_eq!(req(none.as_bytes()).contacts().count(), 0);
        assert!(req(none.as_bytes()).sole_contact().is_none());
        let compact = String::from_utf8_lossy(REG).replace("Contact:", "X-A: 1\r\nm:");
        let r = req(compact.as_bytes());
        let sole = r.sole_contact().map(sole_parts);
        assert_eq!(walk_parts(&r), Vec::from_iter(sole));
    }

    /// What the walk over a request's contacts yields, each address as what a registrar keeps
    /// of it ([`ContactAddr::parts`](crate::sip::ContactAddr::parts)), for comparison with
    /// [`sole_parts`].
    fn walk_parts(r: &Request<'_>) -> Vec<String> {
        r.contacts()
            .map(|c| match c {
                Ok(Contact::Addr(a)) => format!("{:?}", a.parts()),
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// [`Request::sole_contact`]'s answer as [`walk_parts`] writes the walk's.
    fn sole_parts(c: ContactParts<'_>) -> String {
        format!("{:?}", Ok::<_, Error>(c))
    }

    /// The header index's allocation goes from message to message through a `Scratch` (the
    /// engine parses every request this way: no allocation per request).
    #[test]
    fn scratch_keeps_its_allocation() {
        let limits = Limits::default();
        let mut scratch = Scratch::default();
        let index_of = |m: &Message<'_>| match m {
            Message::Request(r) => (r.headers().as_ptr() as usize, r.headers().len()),
            Message::Response(r) => (r.headers().as_ptr() as usize, r.headers().len()),
        };
        let mut first = parse_datagram_with(REG, &limits, &mut scratch).unwrap();
        let (at, lines) = index_of(&first);
        assert_eq!(lines, 9);
        scratch.reclaim(&mut first);
        assert_eq!(index_of(&first).1, 0, "the message gave its lines back");
        let Message::Request(r) = &first else {
            panic!("a request")
        };
        assert_eq!(
            r.header(HeaderName::CallId),
            None,
            "no line left to look up"
        );
        assert_eq!(r.headers_named(HeaderName::Via).count(), 0);
        let response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\n\
                         To: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n";
        for buf in [REG, &response[..]] {
            let mut msg = parse_datagram_with(buf, &limits, &mut scratch).unwrap();
            assert_eq!(index_of(&msg).0, at, "same allocation");
            scratch.reclaim(&mut msg);
        }
        let mut stream = REG.to_vec();
        stream.extend_from_slice(REG);
        let Ok(Status::Complete((mut msg, n))) = parse_stream_with(&stream, &limits, &mut scratch)
        else {
            panic!("a stream message")
        };
        assert_eq!((index_of(&msg), n), ((at, 9), REG.len()));
        scratch.reclaim(&mut msg);
        // A message parsed afresh after a failure still parses (the index is allocated anew).
        assert!(parse_datagram_with(b"junk", &limits, &mut scratch).is_err());
        assert!(parse_datagram_with(REG, &limits, &mut scratch).is_ok());
    }

    fn exercise(buf: &[u8]) {
        let limits = Limits::default();
        if let Ok(Message::Request(r)) = parse_datagram(buf, &limits) {
            let _ = (r.call_id(), r.cseq(), r.expires(), r.max_forwards());
            for v in r.vias() {
                let _ = v.map(|v| (v.branch(), v.rport(), v.received()));
            }
            // The sole usual contact is what the walk yields.
            if let Some(c) = r.sole_contact() {
                assert_eq!(walk_parts(&r), [sole_parts(c)]);
            }
            for c in r.contacts() {
                if let Ok(Contact::Addr(a)) = c {
                    let _ = (
                        a.expires(),
                        a.q(),
                        a.instance(),
                        a.reg_id(),
                        a.other_params().count(),
                    );
                    let mut aor = String::new();
                    let _ = a.name_addr.uri.write_aor(&mut aor);
                    assert!(
                        a.name_addr.uri.equivalent(&a.name_addr.uri)
                            || a.name_addr.uri.scheme() == crate::sip::Scheme::Other
                    );
                }
            }
            if let (Ok(from), Ok(to)) = (r.from(), r.to()) {
                let _ = (from.tag(), to.tag());
            }
            let _ = Uri::parse(r.uri());
        }
        let _ = parse_stream(buf, &limits);
        let _ = frame_stream(buf, &limits);
        let _ = keepalive_len(buf);
    }

    #[test]
    fn canonical_names_cover_every_known_name() {
        for name in HeaderName::ALL {
            let text = name.as_str();
            let line = format!("{text}: v");
            let expected = (name != HeaderName::Other).then_some((name, text.len()));
            assert_eq!(canonical_name(line.as_bytes()), expected, "{line}");
        }
    }

    proptest::proptest! {
        /// Wherever the canonical fast path answers, it answers what the general scan does.
        #[test]
        fn canonical_names_agree_with_the_general_scan(
            pick in 0..HeaderName::COUNT,
            lower in proptest::bool::ANY,
            cut in 0usize..24,
            junk in "[ \t:a-zA-Z;-]{0,4}",
        ) {
            let mut line = HeaderName::ALL[pick].as_str().to_owned();
            if lower {
                line.make_ascii_lowercase();
            }
            line.truncate(cut);
            line.push_str(&junk);
            line.push_str(": value");
            if let Some((name, len)) = canonical_name(line.as_bytes()) {
                proptest::prop_assert_eq!(scan_name(line.as_bytes()), Ok((name, len, len)), "{}", line);
            }
        }
    }

    #[test]
    fn usual_request_line_is_what_the_general_path_finds() {
        let at = |line: &[u8], p: RequestLine<'_>| {
            let off = |s: &[u8]| (s.as_ptr() as usize - line.as_ptr() as usize, s.len());
            (off(p.0), off(p.1), off(p.2), p.3)
        };
        for (line, usual) in [
            (&b"REGISTER sip:example.com SIP/2.0"[..], true),
            (b"REGISTER sip:a SIP/2.0", true),
            (b"REGISTER  sip:a SIP/2.0", true),
            (b"REGISTER sip:a  SIP/2.0", true),
            (b"REGISTER x SIP/2.0", true),
            (b"REGISTER  SIP/2.0", true),
            (b"REGISTER SIP/2.0", false),
            (b"REGISTER sip:a SIP/2.0 ", false),
            (b"REGISTER sip:a SIP/2.00", false),
            (b"REGISTER sip:a SIP/3.0", false),
            (b"REGISTER\tsip:a SIP/2.0", false),
            (b"INVITE sip:a SIP/2.0", false),
            (b"REGISTERS sip:a SIP/2.0", false),
            (b"REGISTER", false),
            (b"", false),
        ] {
            let text = String::from_utf8_lossy(line);
            assert_eq!(usual_request_line(line).is_some(), usual, "{text:?}");
            if let Some(fast) = usual_request_line(line) {
                let general = request_line(line).expect("the general path reads it");
                assert_eq!(at(line, fast), at(line, general), "{text:?}");
            }
        }
    }

    proptest::proptest! {
        /// Wherever the usual request line's path answers, it answers what the general path
        /// does.
        #[test]
        fn usual_request_line_agrees_with_the_general_path(
            uri in "[ \tsipa:@.]{0,8}",
            tail in proptest::sample::select(vec![" SIP/2.0", "  SIP/2.0", " SIP/2.0 ", "SIP/2.0", " SIP/2.1"]),
        ) {
            let line = format!("REGISTER {uri}{tail}");
            let line = line.as_bytes();
            if let Some(fast) = usual_request_line(line) {
                let general = request_line(line);
                proptest::prop_assert_eq!(Ok(fast), general);
            }
        }
    }

    proptest::proptest! {
        /// Every value the index holds has no LWS at either end (CSeq and the top Via are
        /// parsed from it untrimmed, as `parse_trimmed`): with LWS, folding and an empty value
        /// around the usual and the general lines, the views are those of the whole parse.
        #[test]
        fn index_values_are_trimmed(
            pad in proptest::collection::vec(proptest::sample::select(
                &["", " ", "\t", "  ", "\r\n ", "\r\n\t", " \r\n  "][..]
            ), 6),
        ) {
            let msg = format!(
                "REGISTER sip:example.com SIP/2.0\r\n\
                 Via:{}SIP/2.0/UDP h:5060;branch=z9hG4bK-1{}\r\n\
                 CSeq:{}1 REGISTER{}\r\n\
                 X-Empty:{}\r\n\
                 From: <sip:a@example.com>;tag=1\r\n\
                 To: <sip:a@example.com>\r\n\
                 Call-ID: c\r\n\
                 Max-Forwards:{}70\r\n\r\n",
                pad[0], pad[1], pad[2], pad[3], pad[4], pad[5]
            );
            let req = req(msg.as_bytes());
            for h in req.headers() {
                proptest::prop_assert_eq!(trim_lws(h.value), h.value, "{:?}", msg);
            }
            let cseq = req.header(HeaderName::CSeq).unwrap_or_default();
            proptest::prop_assert_eq!(req.cseq(), CSeq::parse(cseq));
            let via = req.header(HeaderName::Via).unwrap_or_default();
            proptest::prop_assert_eq!(
                format!("{:?}", req.parsed_top_via()),
                format!("{:?}", Via::parse(via).ok().as_ref())
            );
        }
    }

    /// The usual line's header as the general path reads it: name, raw name and value, each
    /// as its place in the line.
    fn general_header(line: &[u8]) -> Option<(HeaderName, &[u8], usize, usize)> {
        let at = |s: &[u8]| (s.as_ptr() as usize - line.as_ptr() as usize, s.len());
        match other_line(line) {
            Ok(Other::Header(h)) => {
                // (The raw name is where the line starts.)
                assert_eq!(at(h.raw_name()).0, 0);
                let (v, vl) = at(h.value);
                Some((h.name, h.raw_name(), v, vl))
            }
            _ => None,
        }
    }

    /// (The usual line's raw name is its name's own spelling, not a place in the line: its
    /// text is compared.)
    fn fast_header(line: &[u8]) -> Option<(HeaderName, &[u8], usize, usize)> {
        let at = |s: &[u8]| (s.as_ptr() as usize - line.as_ptr() as usize, s.len());
        usual_line(line).map(|h| {
            let (v, vl) = at(h.value);
            (h.name, h.raw_name(), v, vl)
        })
    }

    #[test]
    fn usual_line_reads_what_the_general_path_reads() {
        for (line, usual) in [
            (&b"Via: SIP/2.0/UDP h\r"[..], true),
            (b"Content-Length: 0\r", true),
            (b"To: x\r", true),
            (b"Call-ID: a b\r", true),
            (b"Max-Forwards: 70\r", true),
            (b"X-Other: 1\r", false),
            (b"Via: SIP/2.0/UDP h", false),
            (b"Via:SIP/2.0/UDP h\r", false),
            (b"Via:  SIP/2.0/UDP h\r", false),
            (b"Via: SIP/2.0/UDP h \r", false),
            (b"Via: SIP/2.0/UDP h\t\r", false),
            (b"Via: x\r\r", false),
            (b"Via: xy\r", true),
            (b"Via:  \r", false),
            (b"Via: \r", false),
            (b"Via:\r", false),
            (b"Via : x\r", false),
            (b"via: x\r", false),
            (b"v: x\r", false),
            (b"Via: \x01\r", false),
            (b"Via: \x01x\x7f\r", false),
            (b"Via: x\x80\r", true),
            (b"\r", false),
            (b"", false),
            (b" x\r", false),
        ] {
            let text = String::from_utf8_lossy(line);
            assert_eq!(usual_line(line).is_some(), usual, "{text:?}");
            if usual {
                assert_eq!(fast_header(line), general_header(line), "{text:?}");
            }
        }
    }

    proptest::proptest! {
        /// Wherever the usual line's path answers, it answers what the general path does.
        #[test]
        fn usual_line_agrees_with_the_general_path(
            pick in 0..HeaderName::COUNT,
            lower in proptest::bool::ANY,
            sep in proptest::sample::select(vec![": ", ":", ":  ", " : ", ":\t", ": \t"]),
            value in "[ \t\ra-z;=\x01\x7f\u{e9}]{0,6}",
            cr in proptest::bool::ANY,
        ) {
            let mut line = HeaderName::ALL[pick].as_str().to_owned();
            if lower {
                line.make_ascii_lowercase();
            }
            line.push_str(sep);
            line.push_str(&value);
            if cr {
                line.push('\r');
            }
            let line = line.as_bytes();
            if let Some(fast) = fast_header(line) {
                proptest::prop_assert_eq!(Some(fast), general_header(line));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn header_value_is_the_trimmed_value(after_colon in "[ \t\r\na]{0,5}") {
            let s = after_colon.as_bytes();
            proptest::prop_assert_eq!(header_value(s), trim_lws(s));
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(buf in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            exercise(&buf);
        }

        #[test]
        fn never_panics_on_mutated_registers(pos in 0usize..REG.len(), byte in proptest::num::u8::ANY, cut in 0usize..REG.len()) {
            let mut m = REG.to_vec();
            m[pos] = byte;
            exercise(&m);
            exercise(&m[..cut]);
        }

        /// parse -> write a 200 -> parse keeps Via, From, To, Call-ID and CSeq.
        #[test]
        fn response_round_trip(user in "[a-z]{1,12}", tag in "[a-zA-Z0-9]{1,10}", cseq in 0u32..u32::MAX, call in "[a-zA-Z0-9.@-]{1,40}", branch in "[a-z0-9]{1,16}") {
            let msg = format!("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{branch}\r\nVia: SIP/2.0/TCP proxy;branch=z9hG4bKp\r\nFrom: <sip:{user}@example.com>;tag={tag}\r\nTo: <sip:{user}@example.com>\r\nCall-ID: {call}\r\nCSeq: {cseq} REGISTER\r\nContent-Length: 0\r\n\r\n");
            let Ok(Message::Request(r)) = parse_datagram(msg.as_bytes(), &Limits::default()) else { panic!("{msg}") };
            proptest::prop_assert_eq!(r.defect(), None);
            // The CSeq validation kept is the one the general parse gives.
            let general = CSeq::parse(r.header(HeaderName::CSeq).unwrap_or_default());
            proptest::prop_assert_eq!(r.parsed_cseq(), general.as_ref().ok());
            let mut out = Vec::new();
            let mut w = crate::sip::ResponseWriter::new(&mut out, StatusCode::OK, None, &r, b"xyz", None);
            w.contact(b"sip:a@b", 1, b"");
            w.finish(b"");
            let Ok(Message::Response(resp)) = parse_datagram(&out, &Limits::default()) else { panic!() };
            proptest::prop_assert_eq!(resp.call_id().unwrap(), r.call_id().unwrap());
            proptest::prop_assert_eq!(resp.cseq().unwrap(), r.cseq().unwrap());
            proptest::prop_assert_eq!(resp.from().unwrap().tag(), r.from().unwrap().tag());
            proptest::prop_assert_eq!(resp.to().unwrap().tag(), Some(&b"xyz"[..]));
            let vias: Vec<_> = resp.vias().map(|v| v.unwrap().raw).collect();
            let want: Vec<_> = r.vias().map(|v| v.unwrap().raw).collect();
            proptest::prop_assert_eq!(vias, want);
        }

        /// Any split of two back-to-back messages frames the same two messages.
        #[test]
        fn stream_splits_frame_identically(split in 0usize..(2 * REG.len())) {
            let mut two = REG.to_vec();
            two.extend_from_slice(REG);
            let limits = Limits::default();
            let mut buf = Vec::new();
            let mut lens = Vec::new();
            for chunk in [&two[..split.min(two.len())], &two[split.min(two.len())..]] {
                buf.extend_from_slice(chunk);
                while let Ok(Status::Complete(n)) = frame_stream(&buf, &limits) {
                    lens.push(n);
                    buf.drain(..n);
                }
            }
            proptest::prop_assert_eq!(lens, vec![REG.len(), REG.len()]);
        }
    }
}
