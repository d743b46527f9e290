//! Zero-copy SIP message parsing and response writing (RFC 3261 §7, §20, §25).
//!
//! Contract: [`parse_datagram`] and [`parse_stream`] index a message in place — start line and
//! every header line as `(name, value)` slices of the caller's buffer, in a `Vec` whose
//! allocation a [`Scratch`] carries from message to message (`parse_*_with`: no allocation
//! per message). Typed views ([`NameAddr`], [`Contact`], [`Via`], [`CSeq`], [`Uri`]) parse on
//! demand from those slices. Lexical failures (no start line, a line
//! without a colon, a broken Content-Length) are errors; semantic defects of a well-framed
//! request (missing or duplicated mandatory headers, CSeq out of range, CSeq method mismatch) are
//! recorded in [`Request::defect`] so that a 400 with a precise reason can still be sent.
//!
//! Robustness rules (RFC 4475, RFC 5118): bare LF is accepted as a line end; header folding
//! (CRLF followed by SP/HT) is whitespace inside a value; header names are case-insensitive and
//! compact forms are recognised; on datagrams, octets after Content-Length are ignored and a
//! missing Content-Length means "the rest of the datagram"; on streams Content-Length is
//! mandatory. Line ends are found 64 bytes at a time with SSE2 compares (`lines`); searches
//! inside values use `memchr`.

mod header;
mod lines;
mod parse;
mod uri;
mod write;

pub use header::{
    CSeq, Contact, ContactAddr, ContactFields, ContactParts, Contacts, HeaderName, NameAddr,
    Params, Values, Via, Vias,
};
pub use parse::{
    frame_stream, keepalive_len, parse_datagram, parse_datagram_into, parse_datagram_with,
    parse_stream, parse_stream_into, parse_stream_with, Header, Message, Request, Response,
    Scratch,
};
pub use uri::{Scheme, Uri};
pub use write::{write_http_date, ResponseWriter};

/// Parser limits. Over a limit the parser returns a specific error, never panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (start line + headers + body), bytes. Default 65 535.
    pub max_message_size: usize,
    /// Header lines per message. Default 128 (never more than 65,535, whatever is set).
    pub max_headers: usize,
    /// Contact values per message. Default 32.
    pub max_contacts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 65_535,
            max_headers: 128,
            max_contacts: 32,
        }
    }
}

/// Why a message (or one of its headers) could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No bytes, or only line breaks.
    Empty,
    /// Larger than [`Limits::max_message_size`].
    TooLarge,
    /// More header lines than [`Limits::max_headers`].
    TooManyHeaders,
    /// More Contact values than [`Limits::max_contacts`].
    TooManyContacts,
    /// The request or status line is malformed.
    BadStartLine,
    /// A header line is malformed (no colon, bad name).
    BadHeader,
    /// The header section never ends (no empty line) in a datagram.
    NoHeaderEnd,
    /// Content-Length is not a number.
    BadContentLength,
    /// Several different Content-Length values.
    ConflictingContentLength,
    /// A stream message without Content-Length.
    MissingContentLength,
    /// A datagram shorter than its Content-Length says.
    Truncated,
    /// A mandatory header is missing.
    MissingHeader(&'static str),
    /// A header that may appear once appears several times.
    DuplicateHeader(&'static str),
    /// CSeq is malformed or its number exceeds 2^32-1.
    BadCSeq,
    /// The CSeq method differs from the request method.
    CSeqMethodMismatch,
    /// A URI is malformed.
    BadUri,
    /// A Via value is malformed.
    BadVia,
    /// A From/To/Contact value is malformed.
    BadNameAddr,
    /// A Contact value is malformed (or `*` mixed with others).
    BadContact,
    /// Expires is not a number.
    BadExpires,
    /// Max-Forwards is not a number.
    BadMaxForwards,
    /// A response status code is not three digits 100-699.
    BadStatusCode,
    /// A `q` value outside 0-1.
    BadQValue,
}

impl Error {
    /// A short static description (used as the reason phrase of a 400).
    pub fn message(self) -> &'static str {
        match self {
            Self::Empty => "Empty Message",
            Self::TooLarge => "Message Too Large",
            Self::TooManyHeaders => "Too Many Headers",
            Self::TooManyContacts => "Too Many Contacts",
            Self::BadStartLine => "Malformed Start Line",
            Self::BadHeader => "Malformed Header",
            Self::NoHeaderEnd => "Header Section Not Terminated",
            Self::BadContentLength => "Bad Content-Length",
            Self::ConflictingContentLength => "Conflicting Content-Length",
            Self::MissingContentLength => "Missing Content-Length",
            Self::Truncated => "Body Shorter Than Content-Length",
            Self::MissingHeader(h) => match h {
                "Via" => "Missing Via",
                "From" => "Missing From",
                "To" => "Missing To",
                "Call-ID" => "Missing Call-ID",
                "CSeq" => "Missing CSeq",
                _ => "Missing Header",
            },
            Self::DuplicateHeader(h) => match h {
                "From" => "Duplicate From",
                "To" => "Duplicate To",
                "Call-ID" => "Duplicate Call-ID",
                "CSeq" => "Duplicate CSeq",
                "Max-Forwards" => "Duplicate Max-Forwards",
                "Expires" => "Duplicate Expires",
                _ => "Duplicate Header",
            },
            Self::BadCSeq => "Bad CSeq",
            Self::CSeqMethodMismatch => "CSeq Method Mismatch",
            Self::BadUri => "Malformed URI",
            Self::BadVia => "Malformed Via",
            Self::BadNameAddr => "Malformed Address",
            Self::BadContact => "Malformed Contact",
            Self::BadExpires => "Bad Expires",
            Self::BadMaxForwards => "Bad Max-Forwards",
            Self::BadStatusCode => "Bad Status Code",
            Self::BadQValue => "Bad q Value",
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

/// Incomplete stream input is not an error: more bytes are needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole item.
    Complete(T),
    /// Need more bytes.
    Partial,
}

/// A response status code (open newtype).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 100 Trying.
    pub const TRYING: Self = Self(100);
    /// 200 OK.
    pub const OK: Self = Self(200);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthorized.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not Found.
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// 413 Request Entity Too Large.
    pub const REQUEST_ENTITY_TOO_LARGE: Self = Self(413);
    /// 416 Unsupported URI Scheme.
    pub const UNSUPPORTED_URI_SCHEME: Self = Self(416);
    /// 420 Bad Extension.
    pub const BAD_EXTENSION: Self = Self(420);
    /// 423 Interval Too Brief.
    pub const INTERVAL_TOO_BRIEF: Self = Self(423);
    /// 500 Server Internal Error.
    pub const SERVER_INTERNAL_ERROR: Self = Self(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// 505 Version Not Supported.
    pub const VERSION_NOT_SUPPORTED: Self = Self(505);
    /// 513 Message Too Large.
    pub const MESSAGE_TOO_LARGE: Self = Self(513);

    /// The standard reason phrase ("" when unknown).
    pub fn reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Request Entity Too Large",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            423 => "Interval Too Brief",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            _ => "",
        }
    }
}

/// A request method token (case-sensitive, RFC 3261 §7.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method<'b>(pub &'b [u8]);

impl Method<'static> {
    /// REGISTER.
    pub const REGISTER: Self = Self(b"REGISTER");
    /// OPTIONS.
    pub const OPTIONS: Self = Self(b"OPTIONS");
    /// INVITE.
    pub const INVITE: Self = Self(b"INVITE");
    /// ACK.
    pub const ACK: Self = Self(b"ACK");
    /// BYE.
    pub const BYE: Self = Self(b"BYE");
    /// CANCEL.
    pub const CANCEL: Self = Self(b"CANCEL");
}

impl std::fmt::Debug for Method<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Method({})", String::from_utf8_lossy(self.0))
    }
}

/// SP or HT.
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// SP, HT, CR or LF: linear white space, folding included.
pub(crate) fn is_lws(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear white space (SP, HT, CR, LF — folding included) from both ends.
pub(crate) fn trim_lws(s: &[u8]) -> &[u8] {
    // Most values (everything the header index holds) have nothing to trim: their ends are
    // above SP, where no LWS byte is (one comparison each instead of four).
    if s.first().is_some_and(|&b| b > b' ') && s.last().is_some_and(|&b| b > b' ') {
        return s;
    }
    let Some(start) = s.iter().position(|b| !is_lws(b)) else {
        return &[];
    };
    let end = s.iter().rposition(|b| !is_lws(b)).unwrap_or(start);
    s.get(start..=end).unwrap_or_default()
}

/// A 256-entry table of the bytes for which `$e` (over `$b`) holds, built at compile time.
macro_rules! byte_table {
    (|$b:ident| $e:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            t[i] = $e;
            i += 1;
        }
        t
    }};
}
pub(crate) use byte_table;

/// RFC 3261 token characters (§25.1), as a lookup table (the hottest check of the parser).
const TOKEN: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
    ));

/// Is `b` an RFC 3261 token character?
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Index of the first `needle` in `hay`. Most haystacks the parser searches are a few bytes
/// (a user part, a host:port, a parameter, a header name): there memchr's set-up and dispatch
/// cost more than looking at each byte, so only longer haystacks go to memchr.
#[inline]
pub(crate) fn find(needle: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() < 16 {
        hay.iter().position(|&b| b == needle)
    } else {
        memchr::memchr(needle, hay)
    }
}

/// ASCII case-insensitive equality, like `<[u8]>::eq_ignore_ascii_case` but without a branch
/// per byte: where `b` has a letter, bit 0x20 (the case bit) is ignored on both sides, every
/// other byte must be equal. The hot comparisons are short names (headers, parameters).
pub(crate) fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).fold(true, |same, (&x, &y)| {
            let case = u8::from((y | 0x20).wrapping_sub(b'a') < 26) << 5;
            same & ((x | case) == (y | case))
        })
}

/// Characters of a hostname or IPv4 address (alphanumeric, `.`, `-`, `_`).
const HOST: [bool; 256] =
    byte_table!(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));

/// Length of the run of hostname characters `s` starts with.
pub(crate) fn host_len(s: &[u8]) -> usize {
    run_len(s, &HOST)
}

/// Length of the run of token characters `s` starts with.
pub(crate) fn token_len(s: &[u8]) -> usize {
    run_len(s, &TOKEN)
}

/// Whether `s` is a non-empty run of token characters (its [`token_len`] is its length). Tags
/// and branches are mostly 8 to 16 letters, digits, `-` and `.`: such text is classified at
/// once as its first and last eight bytes (which overlap); other lengths, and text with other
/// token characters (or none), are read by the table.
#[inline(always)]
pub(crate) fn is_token_text(s: &[u8]) -> bool {
    if let (Some(block), true) = (ends_block(s), s.len() <= 16) {
        if plain_token_bits(block) == 0xFFFF {
            return true;
        }
    }
    !s.is_empty() && token_len(s) == s.len()
}

/// The first and the last eight bytes of `s` as one 16-byte block (they overlap when `s` is
/// shorter than 16 bytes), for classifying text of 8 to 16 bytes at once; `None` below 8.
#[inline(always)]
pub(crate) fn ends_block(s: &[u8]) -> Option<[u8; 16]> {
    let (head, tail) = (s.first_chunk::<8>()?, s.last_chunk::<8>()?);
    let mut block = [0; 16];
    let (low, high) = block.split_at_mut(8);
    low.copy_from_slice(head);
    high.copy_from_slice(tail);
    Some(block)
}

/// A bit per byte of `block` (the lowest for its first byte) that is a letter, a digit, `-` or
/// `.`: token characters, not all of them ([`plain_mask`]).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn plain_token_bits(block: [u8; 16]) -> u32 {
    let x = safe_arch::m128i::from(block);
    // The mask has 16 bits: the i32 is never negative.
    safe_arch::move_mask_i8_m128i(plain_mask(x, 0x20)) as u32
}

/// All ones in each byte of `x` that is a letter (upper-case ones only with `case` 0x20:
/// letters are compared with that bit set), a digit, `-` or `.`; zeros elsewhere. By SSE2
/// compares, two ranges and one byte: letters `a..=z`, and `-..=9` without `/`. A byte is
/// within `lo..=lo + width` when its distance above `lo`, wrapping and then moved down by 128
/// (an add and a signed compare: SSE2 has no unsigned one), is below `width + 1 - 128`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(crate) fn plain_mask(x: safe_arch::m128i, case: u8) -> safe_arch::m128i {
    use safe_arch::{
        add_i8_m128i, bitandnot_m128i, cmp_eq_mask_i8_m128i, cmp_lt_mask_i8_m128i, m128i,
    };
    let within = |x: m128i, lo: u8, width: u8| {
        let d = add_i8_m128i(x, splat(0x80u8.wrapping_sub(lo)));
        cmp_lt_mask_i8_m128i(d, splat((width + 1) ^ 0x80))
    };
    let letters = within(x | splat(case), b'a', 25);
    letters | bitandnot_m128i(cmp_eq_mask_i8_m128i(x, splat(b'/')), within(x, b'-', 12))
}

/// `b` in every byte of an SSE2 register.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(crate) fn splat(b: u8) -> safe_arch::m128i {
    safe_arch::set_splat_i8_m128i(i8::from_ne_bytes([b]))
}

/// [`plain_token_bits`] on other targets.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn plain_token_bits(block: [u8; 16]) -> u32 {
    block.iter().rev().fold(0, |bits, &b| {
        bits << 1 | u32::from(b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    })
}

/// Length of the run of bytes of `class` that `s` starts with: four bytes per step with one
/// branch, then byte by byte (hosts, tokens and parameter values are mostly 3-30 bytes).
#[inline]
pub(crate) fn run_len(s: &[u8], class: &[bool; 256]) -> usize {
    let is = |b: u8| class[usize::from(b)];
    let mut n = 0;
    while let Some(&[a, b, c, d]) = s.get(n..n + 4) {
        let (a, b, c) = (is(a), is(b), is(c));
        if !(a & b & c & is(d)) {
            // The run ends among these four: its members before the first other byte.
            return n + usize::from(a) + usize::from(a & b) + usize::from(a & b & c);
        }
        n += 4;
    }
    while s.get(n).is_some_and(|&b| is(b)) {
        n += 1;
    }
    n
}

/// The run of ASCII digits `s` starts with, summed while it is found: its length and, when it
/// has 1 to `keep` digits, its value (`keep` at most 9, so the sum fits in u32). An empty or
/// longer run has no value here; its caller hands it to [`parse_u32`].
#[inline(always)]
pub(crate) fn digit_run(s: &[u8], keep: usize) -> (usize, Option<u32>) {
    let (mut n, mut sum) = (0, 0u32);
    while let Some(&d) = s.get(n).filter(|d| d.is_ascii_digit()) {
        if n < keep {
            sum = sum * 10 + u32::from(d - b'0');
        }
        n += 1;
    }
    (n, (1..=keep).contains(&n).then_some(sum))
}

/// Parses a decimal number of at most u32 range; `None` on junk or overflow.
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.len() > 20 {
        return None;
    }
    u32::try_from(sum_digits(s)?).ok()
}

/// Parses delta-seconds: all digits; values above u32::MAX saturate (RFC 4475 §3.1.2.4 lets a
/// registrar treat overlarge expiry values as out of range rather than malformed).
pub(crate) fn parse_delta_saturating(s: &[u8]) -> Option<u32> {
    Some(u32::try_from(sum_digits(s)?).unwrap_or(u32::MAX))
}

/// The value of a non-empty run of decimal digits, in one pass (digits checked while summed);
/// past u64 range the sum saturates, so anything past u32 range stays past it. `None` when
/// `s` is empty or holds anything else.
#[inline]
fn sum_digits(s: &[u8]) -> Option<u64> {
    // The usual number (an expiry, a length, a hop count) has at most nine digits: summed in
    // u32 with no saturation to check, as [`sum_digits_general`] would sum it.
    if s.len() > 9 {
        return sum_digits_general(s);
    }
    // One digit (the usual Content-Length, 0) without the loop.
    if let [d] = *s {
        let d = d.wrapping_sub(b'0');
        return (d <= 9).then_some(u64::from(d));
    }
    // Four digits (an expiry of 3600) as one word, without a step per digit.
    if let Some(&word) = s.first_chunk::<4>().filter(|_| s.len() == 4) {
        return four_digits(word).map(u64::from);
    }
    let mut v = 0u32;
    for &d in s {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u32::from(d);
    }
    (!s.is_empty()).then_some(u64::from(v))
}

/// The value of four ASCII digits, `None` when any byte is not one. The four bytes as one
/// little-endian word: each byte is a digit when its high nibble is 3 both before and after
/// adding 6 (0x30-0x39; no carry between bytes, each is at most 0x3F there), and the digits are
/// paired into tens, then into hundreds.
#[inline(always)]
fn four_digits(bytes: [u8; 4]) -> Option<u32> {
    const HIGH: u32 = 0xF0F0_F0F0;
    const ZEROS: u32 = 0x3030_3030;
    let word = u32::from_le_bytes(bytes);
    if word & HIGH != ZEROS || word.wrapping_add(0x0606_0606) & HIGH != ZEROS {
        return None;
    }
    let d = word - ZEROS;
    // Bytes 0 and 2: the first and the third digit times ten plus the next one.
    let pairs = (d * 10 + (d >> 8)) & 0x00FF_00FF;
    Some((pairs & 0xFF) * 100 + (pairs >> 16))
}

/// [`sum_digits`] for any length.
fn sum_digits_general(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.saturating_mul(10).saturating_add(u64::from(d - b'0'));
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_equality_matches_std() {
        let words: &[&[u8]] = &[
            b"",
            b"a",
            b"A",
            b"Via",
            b"vIA",
            b"via",
            b"vib",
            b"Call-ID",
            b"call-id",
            b"call\rid",
            b"CALL-ID",
            b"call_id",
            b"tag",
            b"TAG",
            b"t@g",
            b"t`g",
            b"[g",
            b"{g",
            b"x\xe9",
            b"X\xc9",
            b"1",
            b"\x11",
            b"q",
            b"Q",
            b"+sip.instance",
            b"+SIP.INSTANCE",
            b"+sip\x0einstance",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    eq_ignore_case(a, b),
                    a.eq_ignore_ascii_case(b),
                    "{:?} {:?}",
                    String::from_utf8_lossy(a),
                    String::from_utf8_lossy(b)
                );
            }
        }
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                assert_eq!(eq_ignore_case(&[x], &[y]), [x].eq_ignore_ascii_case(&[y]));
            }
        }
    }

    #[test]
    fn find_short_and_long() {
        for len in [0usize, 1, 5, 31, 32, 33, 100] {
            for at in 0..len {
                let mut hay = vec![b'a'; len];
                hay[at] = b':';
                assert_eq!(find(b':', &hay), Some(at));
            }
            assert_eq!(find(b':', &vec![b'a'; len]), None);
        }
    }

    #[test]
    fn byte_class_checks() {
        assert_eq!(host_len(b"pc33.atlanta-1_x.com"), 20);
        assert_eq!(host_len(b"a b"), 1);
        assert_eq!(host_len(b"ab:5"), 2);
        assert_eq!(host_len(b""), 0);
        // Every length around the four-byte steps, the run broken anywhere.
        for len in 0..20 {
            for cut in 0..=len {
                let mut s = vec![b'a'; len];
                if let Some(b) = s.get_mut(cut) {
                    *b = b':';
                }
                assert_eq!(host_len(&s), cut.min(len), "{len} {cut}");
            }
        }
    }

    /// Token text of every length up to past 16, with every byte at every place, answers as
    /// the table's run does (through the overlapping halves or the table).
    #[test]
    fn token_texts_match_the_table_at_every_length() {
        let text = b"a73kszlfl-Z9.q1-xY.0";
        for len in 0..=text.len() {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = text[..len].to_vec();
                    s[at] = b;
                    let want = !s.is_empty() && token_len(&s) == s.len();
                    assert_eq!(is_token_text(&s), want, "{s:?}");
                }
            }
            assert_eq!(is_token_text(&text[..len]), len > 0);
        }
    }

    /// The letters, digits, `-` and `.` classified at once are token characters, and all of
    /// them, for every byte at every place.
    #[test]
    fn plain_token_bits_match_the_table() {
        for at in 0..16 {
            for b in 0..=255u8 {
                let mut block = *b"a0-.zZ9xy.-q1Am5";
                block[at] = b;
                let want = block.iter().enumerate().fold(0, |bits, (i, &c)| {
                    let plain = c.is_ascii_alphanumeric() || c == b'-' || c == b'.';
                    bits | u32::from(plain && is_token(c)) << i
                });
                assert_eq!(plain_token_bits(block), want, "{b} at {at}");
            }
        }
    }

    #[test]
    fn digit_runs() {
        for (s, keep, want) in [
            (&b""[..], 5, (0, None)),
            (b"x1", 5, (0, None)),
            (b"0", 5, (1, Some(0))),
            (b"5060;x", 5, (4, Some(5060))),
            (b"65535", 5, (5, Some(65535))),
            (b"005060", 5, (6, None)),
            (b"999999999 REGISTER", 9, (9, Some(999_999_999))),
            (b"4294967295 REGISTER", 9, (10, None)),
        ] {
            assert_eq!(digit_run(s, keep), want, "{s:?}");
        }
    }

    proptest::proptest! {
        /// Runs measured four bytes per step agree with a byte-by-byte count, wherever and
        /// however often they are broken.
        #[test]
        fn runs_match_position(
            s in proptest::collection::vec(proptest::sample::select(
                vec![b'a', b'Z', b'7', b'.', b'-', b'!', b':', b' ', 0x80]
            ), 0..24),
        ) {
            for class in [&HOST, &TOKEN] {
                let want = s.iter().position(|&b| !class[usize::from(b)]).unwrap_or(s.len());
                proptest::prop_assert_eq!(run_len(&s, class), want, "{:?}", s);
            }
        }
    }

    proptest::proptest! {
        /// Token text read at once answers as the table's run, however it is broken.
        #[test]
        fn token_texts_match_the_run(
            s in proptest::collection::vec(proptest::sample::select(
                vec![b'a', b'Z', b'7', b'.', b'-', b'!', b'_', b'~', b':', b';', b' ', b'/', 0x80]
            ), 0..24),
        ) {
            proptest::prop_assert_eq!(
                is_token_text(&s), !s.is_empty() && token_len(&s) == s.len(), "{:?}", s
            );
        }
    }

    proptest::proptest! {
        /// The short numbers' sum is the general one, on digits and on anything else.
        #[test]
        fn short_sums_match_the_general_sum(
            s in proptest::collection::vec(proptest::sample::select(
                vec![b'0', b'1', b'5', b'9', b'/', b':', b' ', b'a', 0x80]
            ), 0..24),
            digits in "[0-9]{0,22}",
        ) {
            proptest::prop_assert_eq!(sum_digits(&s), sum_digits_general(&s));
            let d = digits.as_bytes();
            proptest::prop_assert_eq!(sum_digits(d), sum_digits_general(d));
        }
    }

    #[test]
    fn four_digit_words_match_the_general_sum() {
        // Every byte at every place among digits (and among the digits' neighbours), and every
        // four-digit number.
        for at in 0..4 {
            for b in 0..=255u8 {
                for fill in [b'0', b'9', b'5', b'/', b':'] {
                    let mut s = [fill; 4];
                    s[at] = b;
                    assert_eq!(sum_digits(&s), sum_digits_general(&s), "{s:?}");
                }
            }
        }
        for n in 0..10_000u32 {
            let s = format!("{n:04}");
            assert_eq!(sum_digits(s.as_bytes()), Some(u64::from(n)), "{s}");
        }
    }

    #[test]
    fn one_byte_sums_match_the_general_sum() {
        for b in 0..=255u8 {
            assert_eq!(sum_digits(&[b]), sum_digits_general(&[b]), "{b}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"007"), Some(7));
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"1a"), None);
        assert_eq!(parse_u32(b"99999999999999999999"), None);
        assert_eq!(parse_u32(b"00000000000000000042"), Some(42));
        assert_eq!(parse_u32(b"000000000000000000042"), None); // over 20 characters
        assert_eq!(parse_u32(b"4294967296x"), None);
        assert_eq!(parse_u32(b"36893488147419103232"), None);
        assert_eq!(
            parse_delta_saturating(b"10000000000000000000000"),
            Some(u32::MAX)
        );
        assert_eq!(parse_delta_saturating(b"0003600"), Some(3600));
        assert_eq!(parse_delta_saturating(b"-1"), None);
    }

    #[test]
    fn lws_trim() {
        assert_eq!(trim_lws(b" \r\n\tabc \r\n "), b"abc");
        assert_eq!(trim_lws(b"  "), b"");
        assert_eq!(trim_lws(b"a"), b"a");
        assert_eq!(trim_lws(b"a b"), b"a b");
        assert_eq!(trim_lws(b"a "), b"a");
        assert_eq!(trim_lws(b"\ta"), b"a");
        assert_eq!(trim_lws(b""), b"");
        // Control bytes below SP are not LWS: kept at either end.
        assert_eq!(trim_lws(b"\x01a\x0b"), b"\x01a\x0b");
        assert_eq!(trim_lws(b" \x01 "), b"\x01");
        assert_eq!(trim_lws(b"\x1fa "), b"\x1fa");
    }

    #[test]
    fn status_reasons() {
        assert_eq!(
            StatusCode::INTERVAL_TOO_BRIEF.reason(),
            "Interval Too Brief"
        );
        assert_eq!(StatusCode(299).reason(), "");
        assert_eq!(
            Error::MissingHeader("Call-ID").to_string(),
            "Missing Call-ID"
        );
    }

    #[test]
    fn delta_seconds_saturate() {
        use super::parse_delta_saturating as delta;
        assert_eq!(delta(b"3600"), Some(3600));
        assert_eq!(delta(b"0"), Some(0));
        assert_eq!(delta(b"0000000000000000000000007"), Some(7));
        assert_eq!(delta(b"4294967295"), Some(u32::MAX));
        assert_eq!(delta(b"4294967296"), Some(u32::MAX));
        assert_eq!(delta(b"99999999999999999999999999999999"), Some(u32::MAX));
        assert_eq!(delta(b""), None);
        assert_eq!(delta(b"12a"), None);
        assert_eq!(delta(b"99999999999999999999999999x"), None);
        assert_eq!(delta(b" 1"), None);
    }
}
#[cfg(test)]
mod corpus_tests;
