//! Header names and typed header views (RFC 3261 §7.3, §20, §25.1).
//!
//! Views borrow the header value; they parse on demand and never allocate.

use std::sync::LazyLock;

use memchr::{memchr2, memchr3};

use super::lines::find2;
use super::parse::Header;
use super::uri::{any_host_len, Uri};
use super::{
    digit_run, eq_ignore_case, find, is_lws, is_token, is_token_text, is_wsp,
    parse_delta_saturating, parse_u32, token_len, trim_lws, Error, Method,
};

/// Header names the registrar cares about; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    /// Via (v).
    Via,
    /// From (f).
    From,
    /// To (t).
    To,
    /// Call-ID (i).
    CallId,
    /// CSeq.
    CSeq,
    /// Contact (m).
    Contact,
    /// Expires.
    Expires,
    /// Min-Expires.
    MinExpires,
    /// Content-Length (l).
    ContentLength,
    /// Content-Type (c).
    ContentType,
    /// Max-Forwards.
    MaxForwards,
    /// Require.
    Require,
    /// Proxy-Require.
    ProxyRequire,
    /// Supported (k).
    Supported,
    /// Unsupported.
    Unsupported,
    /// Authorization.
    Authorization,
    /// Proxy-Authorization.
    ProxyAuthorization,
    /// WWW-Authenticate.
    WwwAuthenticate,
    /// User-Agent.
    UserAgent,
    /// Server.
    Server,
    /// Path (RFC 3327).
    Path,
    /// Allow.
    Allow,
    /// Date.
    Date,
    /// Route.
    Route,
    /// Record-Route.
    RecordRoute,
    /// Retry-After.
    RetryAfter,
    /// Any other header.
    Other,
}

impl HeaderName {
    /// Number of variants (`Other` included), for tables indexed by name.
    pub(crate) const COUNT: usize = Self::Other as usize + 1;

    /// Every variant, in declaration order (`ALL[n as usize] == n`).
    pub(crate) const ALL: [Self; Self::COUNT] = [
        Self::Via,
        Self::From,
        Self::To,
        Self::CallId,
        Self::CSeq,
        Self::Contact,
        Self::Expires,
        Self::MinExpires,
        Self::ContentLength,
        Self::ContentType,
        Self::MaxForwards,
        Self::Require,
        Self::ProxyRequire,
        Self::Supported,
        Self::Unsupported,
        Self::Authorization,
        Self::ProxyAuthorization,
        Self::WwwAuthenticate,
        Self::UserAgent,
        Self::Server,
        Self::Path,
        Self::Allow,
        Self::Date,
        Self::Route,
        Self::RecordRoute,
        Self::RetryAfter,
        Self::Other,
    ];
}

/// Each name's long form as `folded_words`, computed once instead of per header line.
static FOLDED_NAMES: LazyLock<[[u64; 3]; HeaderName::COUNT]> =
    LazyLock::new(|| HeaderName::ALL.map(|n| folded_words(n.as_str().as_bytes())));

impl HeaderName {
    /// Classifies a header name: case-insensitive, compact forms included (RFC 3261 §7.3.3).
    /// Names that are not tokens are `Other`.
    pub fn parse(name: &[u8]) -> Self {
        if name.iter().all(|&b| is_token(b)) {
            Self::from_token(name)
        } else {
            Self::Other
        }
    }

    /// [`HeaderName::parse`] for a name already known to be a token (the parser checks that
    /// while it looks for the colon). Dispatches on (length, first letter), then compares the
    /// whole name as at most three machine words.
    pub(crate) fn from_token(name: &[u8]) -> Self {
        let Some(&first) = name.first() else {
            return Self::Other;
        };
        let candidate = match (name.len(), first.to_ascii_lowercase()) {
            (1, c) => {
                return match c {
                    b'v' => Self::Via,
                    b'f' => Self::From,
                    b't' => Self::To,
                    b'i' => Self::CallId,
                    b'm' => Self::Contact,
                    b'l' => Self::ContentLength,
                    b'c' => Self::ContentType,
                    b'k' => Self::Supported,
                    _ => Self::Other,
                }
            }
            (2, b't') => Self::To,
            (3, b'v') => Self::Via,
            (4, b'c') => Self::CSeq,
            (4, b'd') => Self::Date,
            (4, b'f') => Self::From,
            (4, b'p') => Self::Path,
            (5, b'a') => Self::Allow,
            (5, b'r') => Self::Route,
            (6, b's') => Self::Server,
            (7, b'c') => match name.get(1).map(u8::to_ascii_lowercase) {
                Some(b'a') => Self::CallId,
                _ => Self::Contact,
            },
            (7, b'e') => Self::Expires,
            (7, b'r') => Self::Require,
            (9, b's') => Self::Supported,
            (10, b'u') => Self::UserAgent,
            (11, b'm') => Self::MinExpires,
            (11, b'r') => Self::RetryAfter,
            (11, b'u') => Self::Unsupported,
            (12, b'c') => Self::ContentType,
            (12, b'm') => Self::MaxForwards,
            (12, b'r') => Self::RecordRoute,
            (13, b'a') => Self::Authorization,
            (13, b'p') => Self::ProxyRequire,
            (14, b'c') => Self::ContentLength,
            (16, b'w') => Self::WwwAuthenticate,
            (19, b'p') => Self::ProxyAuthorization,
            _ => return Self::Other,
        };
        if FOLDED_NAMES.get(candidate as usize) == Some(&folded_words(name)) {
            candidate
        } else {
            Self::Other
        }
    }

    /// The canonical long form ("" for `Other`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Via => "Via",
            Self::From => "From",
            Self::To => "To",
            Self::CallId => "Call-ID",
            Self::CSeq => "CSeq",
            Self::Contact => "Contact",
            Self::Expires => "Expires",
            Self::MinExpires => "Min-Expires",
            Self::ContentLength => "Content-Length",
            Self::ContentType => "Content-Type",
            Self::MaxForwards => "Max-Forwards",
            Self::Require => "Require",
            Self::ProxyRequire => "Proxy-Require",
            Self::Supported => "Supported",
            Self::Unsupported => "Unsupported",
            Self::Authorization => "Authorization",
            Self::ProxyAuthorization => "Proxy-Authorization",
            Self::WwwAuthenticate => "WWW-Authenticate",
            Self::UserAgent => "User-Agent",
            Self::Server => "Server",
            Self::Path => "Path",
            Self::Allow => "Allow",
            Self::Date => "Date",
            Self::Route => "Route",
            Self::RecordRoute => "Record-Route",
            Self::RetryAfter => "Retry-After",
            Self::Other => "",
        }
    }
}

/// A header name as up to three 8-byte words (overlapping for lengths that are not multiples
/// of 8) with bit 0x20 set in every byte. Two names of the same length have equal words exactly
/// when they are equal ignoring ASCII case, provided both are tokens and one is made of letters
/// and `-` (every known name is): setting 0x20 maps only `A-Z` onto `a-z`, and the only other
/// byte it maps onto `-` is CR, which no token contains.
fn folded_words(s: &[u8]) -> [u64; 3] {
    const CASE: u64 = 0x2020_2020_2020_2020;
    let w8 = |at: usize| {
        s.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let w4 = |at: usize| {
        s.get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
    };
    let n = s.len();
    let words = match n {
        0..=3 => [s.iter().fold(0, |w, &b| w << 8 | u64::from(b)), 0, 0],
        4..=7 => [w4(0), w4(n - 4), 0],
        8..=16 => [w8(0), w8(n - 8), 0],
        _ => [w8(0), w8(8), w8(n - 8)],
    };
    words.map(|w| w | CASE)
}

/// Splits a header value at commas that are outside quoted strings and `<...>` (§7.3.1).
/// Yields trimmed, non-empty items; an unterminated quote or bracket yields the rest as one item
/// (its parser then reports the error).
pub(crate) struct CommaSplit<'b> {
    rest: &'b [u8],
}

impl<'b> CommaSplit<'b> {
    pub(crate) fn new(value: &'b [u8]) -> Self {
        Self { rest: value }
    }
}

impl<'b> Iterator for CommaSplit<'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let cut = comma_at(self.rest);
            let item = trim_lws(self.rest.get(..cut).unwrap_or_default());
            self.rest = self.rest.get(cut + 1..).unwrap_or_default();
            if !item.is_empty() {
                return Some(item);
            }
            // An empty item between commas is skipped (",," is not a value).
        }
    }
}

/// Index of the first comma outside quoted strings and `<...>` (`s.len()` when none). Most
/// header lines hold one value: without any comma one search answers. Otherwise it jumps
/// between the bytes that change state with memchr instead of looking at every byte.
fn comma_at(s: &[u8]) -> usize {
    let Some(first_comma) = memchr::memchr(b',', s) else {
        return s.len();
    };
    if memchr3(b'"', b'<', b'>', s.get(..first_comma).unwrap_or_default()).is_none() {
        // Nothing before it can quote or bracket it.
        return first_comma;
    }
    let mut i = 0;
    let mut angle = false;
    loop {
        let rest = s.get(i..).unwrap_or_default();
        let found = if angle {
            memchr2(b'>', b'"', rest)
        } else {
            memchr3(b',', b'"', b'<', rest)
        };
        let Some(off) = found else {
            return s.len();
        };
        i += off;
        match s.get(i) {
            Some(b',') => return i,
            Some(b'<') => angle = true,
            Some(b'>') => angle = false,
            _ => match closing_quote(rest.get(off..).unwrap_or_default()) {
                Some(close) => i += close,
                None => return s.len(),
            },
        }
        i += 1;
    }
}

/// Raw `;name[=value]` parameters (header params or URI params), parsed lazily.
#[derive(Clone, Copy, Debug, Default)]
pub struct Params<'b> {
    raw: &'b [u8],
}

impl<'b> Params<'b> {
    /// Wraps raw parameter text (starting with `;`, or empty).
    pub(crate) fn new(raw: &'b [u8]) -> Self {
        Self { raw }
    }

    /// The raw text, e.g. `;tag=1;lr`.
    pub fn raw(&self) -> &'b [u8] {
        self.raw
    }

    /// `Some(None)` for a valueless parameter, `Some(Some(v))` with a value (quotes kept),
    /// `None` when absent. Names compare case-insensitively.
    pub fn get(&self, name: &[u8]) -> Option<Option<&'b [u8]>> {
        self.iter()
            .find(|(n, _)| eq_ignore_case(n, name))
            .map(|(_, v)| v)
    }

    /// Every `(name, value)` pair in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'b [u8], Option<&'b [u8]>)> + 'b {
        self.segments()
            .map(|seg| split_param(seg.get(1..).unwrap_or_default()))
    }

    /// Each parameter's raw text including its leading `;`.
    pub(crate) fn segments(&self) -> impl Iterator<Item = &'b [u8]> + 'b {
        let mut rest = self.raw;
        std::iter::from_fn(move || {
            let start = rest.iter().position(|&b| b == b';')?;
            let after = rest.get(start + 1..).unwrap_or_default();
            let len = param_end(after);
            let seg = rest.get(start..start + 1 + len).unwrap_or_default();
            rest = after.get(len..).unwrap_or_default();
            Some(seg)
        })
    }

    /// Checks the parameter syntax: `;` token [ `=` (token | quoted-string | [IPv6]) ], with
    /// LWS allowed around `;` and `=`. One pass over the bytes (this runs for every From, To,
    /// Contact, Via and URI).
    #[inline]
    pub(crate) fn validate(&self) -> bool {
        self.is_plain() || self.scan(|_, _| {})
    }

    /// Parameters written without LWS and quoted strings (`;transport=udp`), each `;` token
    /// [ `=` token or IPv6 reference characters ]: valid, checked with fewer steps than
    /// [`Params::scan`]. False does not mean invalid.
    #[inline(always)]
    pub(crate) fn is_plain(&self) -> bool {
        walk_plain(self.raw, false, |_, _| {}).is_some_and(<[u8]>::is_empty)
    }

    /// [`Params::validate`], handing each `(name, value)` to `visit` on the way (as
    /// [`Params::iter`] yields them), so callers pick out the parameters they need in the same
    /// pass. `visit` may have seen a prefix of the parameters when the answer is false.
    pub(crate) fn scan(&self, mut visit: impl FnMut(&'b [u8], Option<&'b [u8]>)) -> bool {
        let mut rest = trim_lws(self.raw);
        while let Some(after) = rest.strip_prefix(b";") {
            let after = skip_lws(after);
            let name_len = token_len(after);
            if name_len == 0 {
                return false;
            }
            let name = after.get(..name_len).unwrap_or_default();
            rest = skip_lws(after.get(name_len..).unwrap_or_default());
            let Some(value) = rest.strip_prefix(b"=") else {
                visit(name, None);
                continue;
            };
            let value = skip_lws(value);
            let len = if value.first() == Some(&b'"') {
                match closing_quote(value) {
                    Some(close) => close + 1,
                    None => return false,
                }
            } else {
                unquoted_value_len(value)
            };
            if len == 0 {
                return false;
            }
            visit(name, Some(value.get(..len).unwrap_or_default()));
            rest = skip_lws(value.get(len..).unwrap_or_default());
        }
        rest.is_empty()
    }
}

/// Walks the parameters `s` starts with, written without LWS — `;` token [ `=` value ], the
/// value token characters or an IPv6 reference, or with `quoted` also a quoted string —
/// handing each `(name, value)` to `visit`. Returns the text after the last one; `None` when
/// one is malformed (an empty name or value, an unclosed quote). The short form of
/// [`Params::scan`] for the usual parameters.
#[inline(always)]
pub(crate) fn walk_plain<'b>(
    s: &'b [u8],
    quoted: bool,
    mut visit: impl FnMut(&'b [u8], Option<&'b [u8]>),
) -> Option<&'b [u8]> {
    let mut rest = s;
    while let Some(after) = rest.strip_prefix(b";") {
        let name_len = token_len(after);
        if name_len == 0 {
            return None;
        }
        let name = after.get(..name_len).unwrap_or_default();
        rest = after.get(name_len..).unwrap_or_default();
        let value = match rest.strip_prefix(b"=") {
            Some(value) => {
                let len = match value.first() {
                    Some(b'"') if quoted => closing_quote(value)? + 1,
                    _ => unquoted_value_len(value),
                };
                if len == 0 {
                    return None;
                }
                rest = value.get(len..).unwrap_or_default();
                Some(value.get(..len).unwrap_or_default())
            }
            None => None,
        };
        visit(name, value);
    }
    Some(rest)
}

/// Length of the unquoted parameter value `s` starts with: token characters, or those of an
/// IPv6 reference (`maddr=[::1]`).
fn unquoted_value_len(s: &[u8]) -> usize {
    s.iter()
        .position(|&b| !is_token(b) && !matches!(b, b':' | b'[' | b']'))
        .unwrap_or(s.len())
}

/// `s` without leading LWS.
fn skip_lws(s: &[u8]) -> &[u8] {
    match s.first() {
        Some(b) if is_lws(b) => {
            let n = s.iter().position(|b| !is_lws(b)).unwrap_or(s.len());
            s.get(n..).unwrap_or_default()
        }
        _ => s,
    }
}

/// Length of one parameter (up to the next `;` outside quotes).
fn param_end(s: &[u8]) -> usize {
    let mut i = 0;
    loop {
        let rest = s.get(i..).unwrap_or_default();
        // Most parameters are a few bytes: a byte loop beats memchr's set-up there.
        let found = if rest.len() < 16 {
            rest.iter().position(|&b| b == b';' || b == b'"')
        } else {
            memchr2(b';', b'"', rest)
        };
        let Some(off) = found else {
            return s.len();
        };
        i += off;
        if s.get(i) == Some(&b';') {
            return i;
        }
        match closing_quote(s.get(i..).unwrap_or_default()) {
            Some(close) => i += close + 1,
            None => return s.len(),
        }
    }
}

fn split_param(p: &[u8]) -> (&[u8], Option<&[u8]>) {
    match find(b'=', p) {
        Some(eq) => (
            trim_lws(p.get(..eq).unwrap_or_default()),
            Some(trim_lws(p.get(eq + 1..).unwrap_or_default())),
        ),
        None => (trim_lws(p), None),
    }
}

/// CSeq: sequence number (≤ 2^32-1) and method (§20.16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'b> {
    /// Sequence number.
    pub seq: u32,
    /// Method.
    pub method: Method<'b>,
}

impl<'b> CSeq<'b> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(value: &'b [u8]) -> Result<Self, Error> {
        Self::parse_trimmed(trim_lws(value))
    }

    /// [`CSeq::parse`] of a value without LWS at either end (as a header index holds it).
    pub(crate) fn parse_trimmed(value: &'b [u8]) -> Result<Self, Error> {
        // The digits are summed while they are found; nine always fit in u32 (more are left to
        // `parse_u32`, which rejects values past its range).
        let (split, seq) = digit_run(value, 9);
        // A registrar's usual CSeq: the number, one space, REGISTER (compared as an array: a
        // word and a byte, where a slice pattern compares byte by byte).
        let tail = value
            .get(split..)
            .and_then(|t| <&[u8; 9]>::try_from(t).ok());
        if let (Some(seq), true) = (seq, tail == Some(b" REGISTER")) {
            return Ok(Self {
                seq,
                method: Method(value.get(split + 1..).unwrap_or_default()),
            });
        }
        Self::parse_general(value, split, seq)
    }

    /// [`CSeq::parse`] of any other trimmed `value`, whose digits end at `split` (`seq` their
    /// value when [`digit_run`] kept it).
    #[inline(never)]
    fn parse_general(value: &'b [u8], split: usize, seq: Option<u32>) -> Result<Self, Error> {
        if split == value.len() {
            return Err(Error::BadCSeq);
        }
        let seq = match seq {
            Some(seq) => seq,
            None => parse_u32(value.get(..split).unwrap_or_default()).ok_or(Error::BadCSeq)?,
        };
        // (`value` is trimmed: only LWS before the method can remain.)
        let method = skip_lws(value.get(split..).unwrap_or_default());
        // A registrar's usual method is known to be a token without looking at each byte.
        if method.is_empty() || (method != b"REGISTER" && !method.iter().all(|&b| is_token(b))) {
            return Err(Error::BadCSeq);
        }
        if !value
            .get(split)
            .is_some_and(|&b| is_wsp(b) || b == b'\r' || b == b'\n')
        {
            return Err(Error::BadCSeq);
        }
        Ok(Self {
            seq,
            method: Method(method),
        })
    }
}

/// Offset of `part` (a subslice) within `whole`.
pub(crate) fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

/// `name-addr` or `addr-spec` with header parameters (From, To, Contact; §20.10, §20.20).
#[derive(Clone, Copy, Debug)]
pub struct NameAddr<'b> {
    /// Display name as written (quotes kept), if any.
    pub display: Option<&'b [u8]>,
    /// The URI.
    pub uri: Uri<'b>,
    /// Header parameters (after `>`, or after the URI in addr-spec form).
    pub params: Params<'b>,
    /// Whether the URI was enclosed in `<>`.
    pub bracketed: bool,
    /// The first `tag` parameter's value, picked out while the parameters are validated.
    tag: Option<&'b [u8]>,
}

impl<'b> NameAddr<'b> {
    /// Parses one value.
    pub fn parse(value: &'b [u8]) -> Result<Self, Error> {
        Self::parse_visiting(value, None, |_, _| {})
    }

    /// [`NameAddr::parse`] where the URI may be the very text of `known` (a REGISTER's To
    /// usually repeats its From): then `known` is taken as the parse of it — the same bytes
    /// give the same view — instead of parsing it again.
    pub(crate) fn parse_like(value: &'b [u8], known: &Uri<'b>) -> Result<Self, Error> {
        Self::parse_visiting(value, Some(known), |_, _| {})
    }

    /// [`NameAddr::parse`] of a value whose URI usually names a user at the host of `known`
    /// (see [`Uri::parse_bracketed_at_host`]; a REGISTER's From at its Request-URI's host):
    /// the same answer, that URI's host compared rather than read.
    pub(crate) fn parse_at_host(value: &'b [u8], known: &Uri<'_>) -> Result<Self, Error> {
        if let Some(inner) = trim_lws(value).strip_prefix(b"<") {
            if let Some(read) = Uri::parse_bracketed_at_host(inner, known) {
                return Self::bracketed(None, inner, read, |_, _| {});
            }
        }
        Self::parse(value)
    }

    /// What [`NameAddr::parse`] makes of `text` when `text` is the text of `value` — which
    /// parsed as `self` — up to where its header parameters start: `self` without them (a
    /// REGISTER's To usually names its From's address without the From's tag), found with one
    /// comparison instead of a parse. `None` for any other text, and for a `self` without
    /// parameters or not bracketed.
    ///
    /// The name-addr before the parameters is read from that text alone, the same bytes in
    /// both, and the parse of `text` finds no parameters after the `>` (at most LWS, which it
    /// trims).
    #[inline(always)]
    pub(crate) fn without_params(&self, value: &'b [u8], text: &'b [u8]) -> Option<Self> {
        let params = self.params.raw();
        if !self.bracketed
            || params.is_empty()
            || offset_in(value, params) != text.len()
            || !starts_with_words(value, text)
        {
            return None;
        }
        Some(Self {
            params: Params::default(),
            tag: None,
            ..*self
        })
    }

    /// [`NameAddr::parse`], handing each header parameter to `visit` while they are validated.
    fn parse_visiting(
        value: &'b [u8],
        known: Option<&Uri<'b>>,
        mut visit: impl FnMut(&'b [u8], Option<&'b [u8]>),
    ) -> Result<Self, Error> {
        let v = trim_lws(value);
        // The usual From and To: a `<` and a URI the one pass reads, here; a display name, an
        // addr-spec or another URI out of line, where their state does not crowd this path.
        if let Some(inner) = v.strip_prefix(b"<") {
            if let Some(read) = Self::read_bracketed(inner, known) {
                return Self::bracketed(None, inner, read, &mut visit);
            }
        }
        Self::parse_general(v, known, visit)
    }

    /// The URI after a `<` (`inner`, the text after it) and where the `>` after it is, when
    /// that URI is read in the pass that finds its end.
    #[inline(always)]
    fn read_bracketed(inner: &'b [u8], known: Option<&Uri<'b>>) -> Option<(Uri<'b>, usize)> {
        match known {
            // The usual To repeats its From's URI: when that URI has no `>` in it (the one-pass
            // parse read it) and the text starts with it and a `>`, that `>` is the first one,
            // found without the search.
            Some(k)
                if k.is_plain()
                    && inner.get(k.raw().len()) == Some(&b'>')
                    && starts_with_words(inner, k.raw()) =>
            {
                Some((*k, k.raw().len()))
            }
            // Otherwise the usual URI is read in the pass that finds its end.
            _ => Uri::parse_bracketed(inner),
        }
    }

    /// The name-addr whose URI [`NameAddr::read_bracketed`] read from `inner`: its header
    /// parameters validated (handed to `visit`) and its tag picked out.
    #[inline(always)]
    fn bracketed(
        display: Option<&'b [u8]>,
        inner: &'b [u8],
        (uri, gt): (Uri<'b>, usize),
        visit: impl FnMut(&'b [u8], Option<&'b [u8]>),
    ) -> Result<Self, Error> {
        // (`inner` ends where its trimmed value ends: only LWS before the parameters can be
        // there to skip, none after them to trim.)
        let params = Params::new(skip_lws(inner.get(gt + 1..).unwrap_or_default()));
        let tag = first_tag(params, visit)?;
        Ok(Self {
            display,
            uri,
            params,
            bracketed: true,
            tag,
        })
    }

    /// [`NameAddr::parse_visiting`] of any (trimmed) value `v`.
    #[inline(never)]
    fn parse_general(
        v: &'b [u8],
        known: Option<&Uri<'b>>,
        mut visit: impl FnMut(&'b [u8], Option<&'b [u8]>),
    ) -> Result<Self, Error> {
        let parse_uri = |text: &'b [u8]| match known {
            Some(uri) if uri.raw() == text => Ok(*uri),
            _ => Uri::parse(text).map_err(|_| Error::BadNameAddr),
        };
        let (display, rest) = match v.first() {
            Some(b'<') => (None, v),
            _ => display_name(v)?,
        };
        if let Some(inner) = rest.strip_prefix(b"<") {
            // (Without a display name, the one pass did not read the URI.)
            if display.is_some() {
                if let Some(read) = Self::read_bracketed(inner, known) {
                    return Self::bracketed(display, inner, read, &mut visit);
                }
            }
            // (One byte looked for as either of two.)
            let gt = find2(b'>', b'>', inner).ok_or(Error::BadNameAddr)?;
            let uri_text = inner.get(..gt).unwrap_or_default();
            let params = Params::new(trim_lws(inner.get(gt + 1..).unwrap_or_default()));
            let tag = first_tag(params, &mut visit)?;
            // The URI after the parameters, mapped into the result: then no copy of it is kept
            // across their walk or made by `?` (either failing is the same error). No LWS inside
            // the brackets (RFC 4475 §3.1.2.14): `Uri::parse` rejects it.
            return parse_uri(uri_text).map(|uri| Self {
                display,
                uri,
                params,
                bracketed: true,
                tag,
            });
        }
        // addr-spec: parameters after the URI are header parameters; the URI itself cannot
        // contain ';', '?' or ',' here (§20.10), so such a value must be bracketed.
        let semi = find(b';', rest).unwrap_or(rest.len());
        let uri_text = trim_lws(rest.get(..semi).unwrap_or_default());
        // (LWS inside the URI is rejected by `Uri::parse`.)
        if uri_text.is_empty() || memchr3(b'?', b'<', b'>', uri_text).is_some() {
            return Err(Error::BadNameAddr);
        }
        let uri = parse_uri(uri_text)?;
        let params = Params::new(rest.get(semi..).unwrap_or_default());
        let tag = first_tag(params, &mut visit)?;
        Ok(Self {
            display,
            uri,
            params,
            bracketed: false,
            tag,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'b [u8]> {
        self.tag
    }
}

/// `text.starts_with(prefix)`, compared inline ([`crate::bytes::same`]) where the library's
/// compare is a call.
#[inline(always)]
pub(crate) fn starts_with_words(text: &[u8], prefix: &[u8]) -> bool {
    text.get(..prefix.len())
        .is_some_and(|t| crate::bytes::same(t, prefix))
}

/// A name-addr's display name (quoted or tokens) and the text from its `<` on; `None` and the
/// whole value for an addr-spec (no `<`).
#[inline(never)]
fn display_name(v: &[u8]) -> Result<(Option<&[u8]>, &[u8]), Error> {
    if v.first() == Some(&b'"') {
        let end = closing_quote(v).ok_or(Error::BadNameAddr)?;
        let rest = trim_lws(v.get(end + 1..).unwrap_or_default());
        if rest.first() != Some(&b'<') {
            return Err(Error::BadNameAddr);
        }
        return Ok((Some(v.get(..=end).unwrap_or_default()), rest));
    }
    let Some(lt) = v.iter().position(|&b| b == b'<') else {
        return Ok((None, v));
    };
    // (A byte loop: the '<' is nearly always after a short display name.)
    let name = trim_lws(v.get(..lt).unwrap_or_default());
    // Unquoted display name: tokens separated by LWS (§25.1).
    if !name
        .iter()
        .all(|&b| is_token(b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Err(Error::BadNameAddr);
    }
    Ok((
        (!name.is_empty()).then_some(name),
        v.get(lt..).unwrap_or_default(),
    ))
}

/// Validates header parameters and returns the first `tag`'s value (as `Params::get` would),
/// handing every parameter to `visit` on the way. The usual parameters inline, any others
/// through a call.
#[inline(always)]
fn first_tag<'b>(
    params: Params<'b>,
    mut visit: impl FnMut(&'b [u8], Option<&'b [u8]>),
) -> Result<Option<&'b [u8]>, Error> {
    // The usual From's parameters: `;tag=` and a token, nothing else; the usual To's: none.
    let raw = params.raw();
    if raw.is_empty() {
        return Ok(None);
    }
    if let (Some(name), Some(value)) = (raw.get(1..4), raw.strip_prefix(b";tag=")) {
        if is_token_text(value) {
            visit(name, Some(value));
            return Ok(Some(value));
        }
    }
    first_tag_general(params, visit)
}

/// [`first_tag`] for any parameters.
#[inline(never)]
fn first_tag_general<'b>(
    params: Params<'b>,
    mut visit: impl FnMut(&'b [u8], Option<&'b [u8]>),
) -> Result<Option<&'b [u8]>, Error> {
    let mut tag = None;
    let valid = params.scan(|name, value| {
        if tag.is_none() && eq_ignore_case(name, b"tag") {
            tag = Some(value);
        }
        visit(name, value);
    });
    if valid {
        Ok(tag.flatten())
    } else {
        Err(Error::BadNameAddr)
    }
}

/// Index of the quote closing the quoted string that starts at `s[0]`.
fn closing_quote(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        i += find2(b'"', b'\\', s.get(i..)?)?;
        if s.get(i) == Some(&b'"') {
            return Some(i);
        }
        i += 2; // a quoted-pair: skip the escaped byte
    }
}

/// [`closing_quote`] of a quoted string that ends `s` (a contact's usual `+sip.instance`,
/// `"<urn:uuid:...>"`, is its last parameter): `s.len() - 1` when `s` ends with a `"` and holds
/// no other `"` and no `\` after its first byte, found without the search. `None` for any
/// other text (which says nothing about it) and for quoted strings of other lengths than 18 to
/// 50 bytes.
#[inline(always)]
fn quote_ending(s: &[u8]) -> Option<usize> {
    let inner = s.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.len() > 48 {
        return None;
    }
    // Three blocks of 16 cover the 16 to 48 bytes between the quotes (overlapping; the middle
    // one is the first again when the first and the last cover them).
    let (first, last) = (inner.first_chunk::<16>()?, inner.last_chunk::<16>()?);
    let middle = inner
        .get(16..)
        .and_then(<[u8]>::first_chunk::<16>)
        .unwrap_or(first);
    let found = quote_bits(*first) | quote_bits(*middle) | quote_bits(*last);
    (found == 0).then(|| s.len() - 1)
}

/// A bit per byte of `block` that is a `"` or a `\` (by SSE2 compares).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn quote_bits(block: [u8; 16]) -> u32 {
    use super::splat;
    use safe_arch::{cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i};
    let x = m128i::from(block);
    let found = cmp_eq_mask_i8_m128i(x, splat(b'"')) | cmp_eq_mask_i8_m128i(x, splat(b'\\'));
    // The mask has 16 bits: the i32 is never negative.
    move_mask_i8_m128i(found) as u32
}

/// [`quote_bits`] on other targets.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn quote_bits(block: [u8; 16]) -> u32 {
    block
        .iter()
        .rev()
        .fold(0, |bits, &b| bits << 1 | u32::from(b == b'"' || b == b'\\'))
}

/// One Contact value (§20.10).
// A short-lived view over the request, never stored: boxing the address would allocate per
// contact.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Contact<'b> {
    /// `*` (remove all bindings).
    Star,
    /// An address with contact parameters.
    Addr(ContactAddr<'b>),
}

/// A contact address; `name_addr.params` are the contact-params.
#[derive(Clone, Copy, Debug)]
pub struct ContactAddr<'b> {
    /// The address and its contact parameters.
    pub name_addr: NameAddr<'b>,
    /// `expires`, `q`, `+sip.instance`, `reg-id`, found while the parameters were validated.
    fields: Result<ContactFields<'b>, Error>,
    /// No `expires` or `q` parameter: the other parameters are all of them.
    all_other: bool,
}

impl<'b> ContactAddr<'b> {
    /// The `expires` contact parameter (overlarge values saturate to `u32::MAX`).
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        match self.name_addr.params.get(b"expires") {
            None => Ok(None),
            Some(Some(v)) => parse_delta_saturating(v).map(Some).ok_or(Error::BadExpires),
            Some(None) => Err(Error::BadExpires),
        }
    }

    /// The `q` parameter in thousandths (0..=1000).
    pub fn q(&self) -> Result<Option<u16>, Error> {
        match self.name_addr.params.get(b"q") {
            None => Ok(None),
            Some(Some(v)) => parse_q(v).map(Some).ok_or(Error::BadQValue),
            Some(None) => Err(Error::BadQValue),
        }
    }

    /// The `+sip.instance` value without its quotes (RFC 5626 §4.1).
    pub fn instance(&self) -> Option<&'b [u8]> {
        let v = self.name_addr.params.get(b"+sip.instance").flatten()?;
        Some(unquoted(v))
    }

    /// The `reg-id` parameter (RFC 5626 §4.2).
    pub fn reg_id(&self) -> Result<Option<u32>, Error> {
        match self.name_addr.params.get(b"reg-id") {
            None => Ok(None),
            Some(v) => v.and_then(parse_u32).map(Some).ok_or(Error::BadContact),
        }
    }

    /// Wraps a parsed address, reading its contact parameters.
    pub fn new(name_addr: NameAddr<'b>) -> Self {
        let mut reader = FieldsReader::default();
        for (name, value) in name_addr.params.iter() {
            reader.take(name, value);
        }
        reader.finish(name_addr)
    }

    /// `expires`, `q`, `+sip.instance` and `reg-id` (read once, when the contact was parsed).
    pub fn fields(&self) -> Result<ContactFields<'b>, Error> {
        self.fields
    }

    /// [`ContactAddr::fields`], handing every other parameter but `expires` and `q` (those of
    /// [`ContactAddr::other_params`]) to `other`: all of them as one slice when the contact
    /// has neither.
    pub fn fields_and_params(
        &self,
        other: impl FnMut(&'b [u8]),
    ) -> Result<ContactFields<'b>, Error> {
        let parts = self.parts()?;
        parts.other_params(other);
        Ok(parts.fields)
    }

    /// What a registrar keeps of the contact, or the error its parameters had.
    pub fn parts(&self) -> Result<ContactParts<'b>, Error> {
        Ok(ContactParts {
            contact: self.name_addr.uri.raw(),
            fields: self.fields?,
            params: self.name_addr.params,
            all_other: self.all_other,
        })
    }

    /// Contact parameters other than `expires` and `q`, raw with their leading `;`.
    pub fn other_params(&self) -> impl Iterator<Item = &'b [u8]> + 'b {
        other_params(self.name_addr.params)
    }
}

/// What a registrar keeps of a contact address whose parameters are valid: its URI's text, the
/// parameters it interprets and the others, to echo. A request's sole usual contact is
/// answered in this form ([`crate::sip::Request::sole_contact`]), without the display name,
/// tag and flags of a whole [`ContactAddr`] that the registrar would only copy out of it.
#[derive(Clone, Copy, Debug)]
pub struct ContactParts<'b> {
    /// The contact's URI as written (it parsed: [`Uri::parse`] of it reads the URI again; the
    /// registrar compares URIs only when a stored contact's text differs, and the usual
    /// contact's parts then need not be carried from the parse to the store).
    pub contact: &'b [u8],
    /// `expires`, `q`, `+sip.instance` and `reg-id`.
    pub fields: ContactFields<'b>,
    /// All the contact parameters.
    params: Params<'b>,
    /// No `expires` or `q` parameter: `params` are all other parameters.
    all_other: bool,
}

impl<'b> ContactParts<'b> {
    /// Hands every contact parameter but `expires` and `q` (raw, with its leading `;`) to
    /// `other`: all of them as one slice when the contact has neither.
    pub fn other_params(&self, mut other: impl FnMut(&'b [u8])) {
        if self.all_other {
            other(self.params.raw());
        } else {
            other_params(self.params).for_each(other);
        }
    }
}

/// Contact parameters other than `expires` and `q`, raw with their leading `;`.
fn other_params<'b>(params: Params<'b>) -> impl Iterator<Item = &'b [u8]> + 'b {
    params.segments().filter(|seg| {
        let (name, _) = split_param(seg.get(1..).unwrap_or_default());
        !eq_ignore_case(name, b"expires") && !eq_ignore_case(name, b"q")
    })
}

/// The contact parameters a registrar interprets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContactFields<'b> {
    /// `expires` (overlarge values saturate to `u32::MAX`).
    pub expires: Option<u32>,
    /// `q` in thousandths.
    pub q: Option<u16>,
    /// `+sip.instance` without quotes.
    pub instance: Option<&'b [u8]>,
    /// `reg-id`.
    pub reg_id: Option<u32>,
}

/// Reads a contact's parameters one at a time (the first error wins, as in a loop that stops).
#[derive(Default)]
struct FieldsReader<'b> {
    fields: ContactFields<'b>,
    error: Option<Error>,
    /// An `expires` or `q` parameter was seen.
    special: bool,
}

impl<'b> FieldsReader<'b> {
    /// [`FieldsReader::take`] with the usual contact's one parameter, `+sip.instance`, read
    /// without the call (what [`ContactFields::take`] does with it).
    #[inline(always)]
    fn take_usual(&mut self, name: &[u8], value: Option<&'b [u8]>) {
        if eq_ignore_case(name, b"+sip.instance") {
            self.fields.instance = value.map(unquoted);
        } else {
            self.take(name, value);
        }
    }

    fn take(&mut self, name: &[u8], value: Option<&'b [u8]>) {
        match self.fields.take(name, value) {
            Ok(special) => self.special |= special,
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    fn finish(self, name_addr: NameAddr<'b>) -> ContactAddr<'b> {
        ContactAddr {
            name_addr,
            fields: self.error.map_or(Ok(self.fields), Err),
            all_other: !self.special,
        }
    }

    /// [`ContactAddr::parts`] of the contact `finish` would make of `uri`, `params` and a tag
    /// (`None` for its error; the tag is not kept).
    #[inline(always)]
    fn parts(
        self,
        uri: Uri<'b>,
        params: Params<'b>,
        _tag: Option<&'b [u8]>,
    ) -> Option<ContactParts<'b>> {
        if self.error.is_some() {
            return None;
        }
        Some(ContactParts {
            contact: uri.raw(),
            fields: self.fields,
            params,
            all_other: !self.special,
        })
    }
}

impl<'b> ContactFields<'b> {
    /// Takes one contact parameter (a later one overrides an earlier one of the same name).
    /// `Ok(true)` for `expires` and `q`, which are not kept among the other parameters.
    fn take(&mut self, name: &[u8], value: Option<&'b [u8]>) -> Result<bool, Error> {
        if eq_ignore_case(name, b"expires") {
            self.expires = Some(
                value
                    .and_then(parse_delta_saturating)
                    .ok_or(Error::BadExpires)?,
            );
            return Ok(true);
        }
        if eq_ignore_case(name, b"q") {
            self.q = Some(value.and_then(parse_q).ok_or(Error::BadQValue)?);
            return Ok(true);
        }
        if eq_ignore_case(name, b"+sip.instance") {
            self.instance = value.map(unquoted);
        } else if eq_ignore_case(name, b"reg-id") {
            self.reg_id = Some(value.and_then(parse_u32).ok_or(Error::BadContact)?);
        }
        Ok(false)
    }
}

/// A parameter value without the quotes around it, if any.
fn unquoted(v: &[u8]) -> &[u8] {
    v.strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths.
fn parse_q(v: &[u8]) -> Option<u16> {
    let (int, frac) = match find(b'.', v) {
        Some(dot) => (v.get(..dot)?, v.get(dot + 1..)?),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, &d) in frac.iter().enumerate() {
        thousandths += u16::from(d - b'0') * [100, 10, 1][i];
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// One Via value (§20.42).
#[derive(Clone, Copy, Debug)]
pub struct Via<'b> {
    /// Transport token (UDP, TCP, TLS, SCTP, WS, or unknown).
    pub transport: &'b [u8],
    /// sent-by host (IPv6 references keep their brackets).
    pub host: &'b [u8],
    /// sent-by port.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params<'b>,
    /// The whole value.
    pub raw: &'b [u8],
    /// The first `rport` parameter, picked out while the parameters are validated.
    rport: Option<Option<&'b [u8]>>,
    /// Where the value ends once a trailing bare `;rport` is cut off (its whole length when
    /// there is none), when it has no `received` and no other `rport`: the common shape, whose
    /// top Via a response writes without walking its parameters again. `None` otherwise.
    plain_end: Option<usize>,
}

impl<'b> Via<'b> {
    /// Parses `SIP / 2.0 / transport LWS sent-by *( ; via-params )`.
    pub fn parse(value: &'b [u8]) -> Result<Self, Error> {
        Self::parse_trimmed(trim_lws(value))
    }

    /// [`Via::parse`] of a value without LWS at either end (as a header index holds it).
    pub(crate) fn parse_trimmed(raw: &'b [u8]) -> Result<Self, Error> {
        let (transport, rest) = Self::sent_protocol(raw)?;
        // sent-by is read where it starts; LWS may follow it, then only parameters.
        let (host, port, after) = host_port_prefix(rest).ok_or(Error::BadVia)?;
        // (The usual parameters start right after sent-by, with `;`: nothing to skip there.)
        let (params, (rport, plain_end)) = match Self::usual_params(raw, after) {
            Some(read) => (Params::new(after), read),
            None => Self::other_params(raw, after)?,
        };
        Ok(Self {
            transport,
            host,
            port,
            params,
            raw,
            rport,
            plain_end,
        })
    }

    /// The parameters most Vias carry, `;branch=` and a token, maybe followed by a bare
    /// `;rport` that ends them, read without the general walk: the first `rport` and
    /// `plain_end` as [`Via::scan_params`] finds them. `None` for any other parameters.
    fn usual_params(raw: &'b [u8], params: &'b [u8]) -> Option<ViaParams<'b>> {
        let value = params.strip_prefix(b";branch=")?;
        // A token, maybe followed by `;rport` (not a token character: the token ends there).
        let (branch, rport) = match value.split_last_chunk::<6>() {
            // (Compared as two words, not byte by byte.)
            Some((branch, rport)) if crate::bytes::same(rport, b";rport") => (branch, Some(rport)),
            _ => (value, None),
        };
        if !is_token_text(branch) {
            return None;
        }
        Some(match rport {
            None => (None, plain_end(raw, false, 0, None)),
            Some(rport) => (Some(None), Some(offset_in(raw, rport))),
        })
    }

    /// The parameters of any other Via, `after` its sent-by: LWS, then only parameters,
    /// validated by [`Via::scan_params`]. Out of line: the usual ones take `usual_params`.
    #[inline(never)]
    fn other_params(raw: &'b [u8], after: &'b [u8]) -> Result<(Params<'b>, ViaParams<'b>), Error> {
        let after = skip_lws(after);
        if !after.is_empty() && after.first() != Some(&b';') {
            return Err(Error::BadVia);
        }
        let params = Params::new(after);
        Ok((params, Self::scan_params(raw, params)?))
    }

    /// Validates the parameters, picking out the first `rport` and `plain_end` (out of line:
    /// the usual parameters take `usual_params`).
    #[inline(never)]
    fn scan_params(raw: &'b [u8], params: Params<'b>) -> Result<ViaParams<'b>, Error> {
        let mut rport = None;
        let (mut rports, mut received) = (0u32, false);
        // Where the last parameter seen starts when it is a bare `rport`.
        let mut bare_rport_last = None;
        let valid = params.scan(|name, value| {
            bare_rport_last = None;
            if name.first().is_some_and(|b| b | 0x20 == b'r') {
                if eq_ignore_case(name, b"rport") {
                    rports += 1;
                    rport = rport.or(Some(value));
                    if value.is_none() {
                        bare_rport_last = Some(offset_in(raw, name));
                    }
                } else if eq_ignore_case(name, b"received") {
                    received = true;
                }
            }
        });
        if !valid {
            return Err(Error::BadVia);
        }
        Ok((rport, plain_end(raw, received, rports, bare_rport_last)))
    }

    /// The value without a trailing bare `;rport`, when it has no `received` and no other
    /// `rport` (see `plain_end`).
    pub(crate) fn without_rport(&self) -> Option<(&'b [u8], bool)> {
        let end = self.plain_end?;
        Some((self.raw.get(..end)?, end < self.raw.len()))
    }

    /// `SIP / version / transport` at the start of a Via value: the transport and the rest
    /// (LWS-trimmed). The usual `SIP/2.0/` without white space is recognised at once.
    fn sent_protocol(raw: &'b [u8]) -> Result<(&'b [u8], &'b [u8]), Error> {
        // The usual `SIP/2.0/UDP ` (TCP, TLS) as two words, without the transport's scan.
        let head = raw.first_chunk::<8>();
        let transport = raw.get(8..12).and_then(|t| <&[u8; 4]>::try_from(t).ok());
        if let (true, Some(t)) = (head == Some(b"SIP/2.0/"), transport) {
            if t == b"UDP " || t == b"TCP " || t == b"TLS " {
                // (Past the SP the four bytes end with: usually sent-by starts there.)
                let (transport, rest) = (raw.get(8..11), raw.get(12..));
                return Ok((
                    transport.unwrap_or_default(),
                    skip_lws(rest.unwrap_or_default()),
                ));
            }
        }
        if let Some(after) = raw
            .get(..8)
            .filter(|p| eq_ignore_case(p, b"SIP/2.0/"))
            .and(raw.get(8..))
        {
            let end = token_len(after);
            if end > 0 {
                let transport = after.get(..end).unwrap_or_default();
                // (`raw` is trimmed: only LWS before sent-by can remain.)
                return Ok((transport, skip_lws(after.get(end..).unwrap_or_default())));
            }
        }
        Self::sent_protocol_general(raw)
    }

    /// [`Via::sent_protocol`] with white space or another protocol version (out of line).
    #[inline(never)]
    fn sent_protocol_general(raw: &'b [u8]) -> Result<(&'b [u8], &'b [u8]), Error> {
        let mut rest = raw;
        let mut parts: [&[u8]; 3] = [b"", b"", b""];
        for (i, part) in parts.iter_mut().enumerate() {
            rest = trim_lws(rest);
            let end = rest
                .iter()
                .position(|&b| !is_token(b))
                .unwrap_or(rest.len());
            *part = rest.get(..end).unwrap_or_default();
            rest = trim_lws(rest.get(end..).unwrap_or_default());
            if i < 2 {
                rest = rest.strip_prefix(b"/").ok_or(Error::BadVia)?;
            }
        }
        let [proto, version, transport] = parts;
        if !eq_ignore_case(proto, b"SIP") || version.is_empty() || transport.is_empty() {
            return Err(Error::BadVia);
        }
        Ok((transport, rest))
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'b [u8]> {
        self.params.get(b"branch").flatten()
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'b [u8]> {
        self.params.get(b"received").flatten()
    }

    /// Has an `rport` parameter (RFC 3581), with a value or without: answered without reading
    /// the value, as [`Via::rport`] does.
    pub fn has_rport(&self) -> bool {
        self.rport.is_some()
    }

    /// `rport` (RFC 3581): `Some(None)` when present without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.rport
            .map(|v| v.and_then(parse_u32).and_then(|p| u16::try_from(p).ok()))
    }
}

/// A Via's first `rport` parameter and its `plain_end`.
type ViaParams<'b> = (Option<Option<&'b [u8]>>, Option<usize>);

/// `Via::plain_end` from what the parameters held: whether `received` appeared, how many
/// `rport`s, and where the last parameter starts when it is a bare `rport`.
fn plain_end(
    raw: &[u8],
    received: bool,
    rports: u32,
    bare_rport_last: Option<usize>,
) -> Option<usize> {
    match (received, rports, bare_rport_last) {
        (false, 0, _) => Some(raw.len()),
        // One bare `;rport`, written exactly so, that ends the value.
        (false, 1, Some(at)) if at + 5 == raw.len() && at > 0 => {
            raw.get(at - 1).filter(|&&b| b == b';').map(|_| at - 1)
        }
        _ => None,
    }
}

/// `host [ ":" port ]` with IPv6 references; host must be non-empty and hostname-ish.
#[cfg(test)]
pub(crate) fn split_host_port(s: &[u8]) -> Option<(&[u8], Option<u16>)> {
    match host_port_prefix(s)? {
        (host, port, b"") => Some((host, port)),
        _ => None,
    }
}

/// The `host [ ":" port ]` (IPv6 references kept bracketed; the host non-empty and
/// hostname-ish) that `s` starts with, and the text after it (not checked): one
/// pass, where a search for the end of the host-port (`;` in a Via or URI) would look at
/// the same bytes again.
/// The hostname form inline, an IPv6 reference through a call.
#[inline(always)]
pub(crate) fn host_port_prefix(s: &[u8]) -> Option<(&[u8], Option<u16>, &[u8])> {
    let (host, after) = if s.first() == Some(&b'[') {
        ipv6_reference(s)?
    } else {
        // The host runs to its first non-hostname character.
        s.split_at(any_host_len(s))
    };
    port_after(host, after)
}

/// The IPv6 reference `s` starts with (brackets kept) and the text after it.
#[inline(never)]
fn ipv6_reference(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let close = find(b']', s)?;
    let host = s.get(..=close)?;
    let inner = host.get(1..host.len() - 1)?;
    if inner.is_empty()
        || !inner
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    {
        return None;
    }
    Some((host, s.get(close + 1..)?))
}

/// [`host_port_prefix`] once the host is known to end where `after` starts: the host checked
/// to be non-empty, the port read. Always inlined: called, it hands its result back through
/// memory.
#[inline(always)]
pub(crate) fn port_after<'s>(
    host: &'s [u8],
    after: &'s [u8],
) -> Option<(&'s [u8], Option<u16>, &'s [u8])> {
    if host.is_empty() {
        return None;
    }
    let Some(digits) = after.strip_prefix(b":") else {
        return Some((host, None, after));
    };
    // The usual port, four digits, read as one word.
    if let Some(port) = four_digit_port(digits) {
        return Some((host, Some(port), digits.get(4..).unwrap_or_default()));
    }
    // A port has at most five digits (more only with leading zeros, left to `parse_u32`).
    let (n, port) = digit_run(digits, 5);
    let (digits, rest) = digits.split_at(n);
    let port = match port {
        Some(port) => port,
        None => parse_u32(digits)?,
    };
    Some((host, Some(u16::try_from(port).ok()?), rest))
}

/// The value of the four digits `s` starts with when exactly four do (what [`digit_run`] sums
/// for such text), `None` otherwise. The four bytes as one little-endian word: each byte is a
/// digit when its high nibble is 3 both before and after adding 6 (0x30-0x39, no carry once
/// the high nibbles are 3), and the digits are paired into tens, then into hundreds.
#[inline(always)]
fn four_digit_port(s: &[u8]) -> Option<u16> {
    const HIGH: u32 = 0xF0F0_F0F0;
    const ZEROS: u32 = 0x3030_3030;
    let word = u32::from_le_bytes(*s.first_chunk::<4>()?);
    if word & HIGH != ZEROS
        || word.wrapping_add(0x0606_0606) & HIGH != ZEROS
        || s.get(4).is_some_and(u8::is_ascii_digit)
    {
        return None;
    }
    let d = word - ZEROS;
    // Bytes 0 and 2: the first and the third digit times ten plus the next one.
    let pairs = (d * 10 + (d >> 8)) & 0x00FF_00FF;
    u16::try_from((pairs & 0xFF) * 100 + (pairs >> 16)).ok()
}

/// Iterator over every value of one header name, across header lines and comma-separated
/// values (§7.3.1), each parsed by `parse`. A header line with no value at all is an error.
pub struct Values<'b, 'h, T> {
    headers: std::slice::Iter<'h, Header<'b>>,
    name: HeaderName,
    current: Option<CommaSplit<'b>>,
    parse: fn(&'b [u8]) -> Result<T, Error>,
    /// Parses the usual first value of the text left, without the comma search first, and moves
    /// the text past its comma; `None` leaves the value to the general path. (It returns the
    /// iterator's item so that it is written where `next` returns it.)
    first: Option<FirstValue<'b, T>>,
    empty: Error,
}

/// See [`Values`]'s `first`.
type FirstValue<'b, T> = fn(&mut &'b [u8]) -> Option<Result<T, Error>>;

impl<'b, T> Iterator for Values<'b, '_, T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // (A line read to its end is passed over without calls.)
            if let Some(split) = self.current.as_mut().filter(|split| !split.rest.is_empty()) {
                if let Some(first) = self.first {
                    let value = first(&mut split.rest);
                    if value.is_some() {
                        return value;
                    }
                }
                if let Some(item) = split.next() {
                    return Some((self.parse)(item));
                }
            }
            let name = self.name;
            let h = self.headers.find(|h| h.name == name)?;
            if trim_lws(h.value).iter().all(|&b| b == b',' || is_wsp(b)) {
                return Some(Err(self.empty));
            }
            self.current = Some(CommaSplit::new(h.value));
        }
    }
}

/// Every Contact value of a message (`*` included).
pub type Contacts<'b, 'h> = Values<'b, 'h, Contact<'b>>;

/// Every Via value of a message, top first.
pub type Vias<'b, 'h> = Values<'b, 'h, Via<'b>>;

/// The usual Via line holds one value: when the text left parses whole as one Via it is that
/// value (such text has no comma outside a quoted string, where `comma_at` skips it too), with
/// no comma search; anything else takes the split.
fn whole_via<'b>(rest: &mut &'b [u8]) -> Option<Result<Via<'b>, Error>> {
    let via = Via::parse(rest).ok()?;
    *rest = &[];
    Some(Ok(via))
}

/// What a registrar keeps ([`ContactAddr::parts`]) of the contact of a Contact line holding one
/// usual contact value ([`parse_usual_contact`]) whose URI [`Uri::parse_bracketed`] reads,
/// `None` when the line holds anything else or the contact's parameters have an error (the
/// walk over the values then says what there is). Out of line: a request's sole contact is
/// usually read by [`whole_usual_contact_like`].
#[inline(never)]
pub(crate) fn whole_usual_contact(value: &[u8]) -> Option<ContactParts<'_>> {
    read_usual_contact(
        &mut &*value,
        true,
        Uri::parse_bracketed,
        FieldsReader::parts,
    )
}

/// [`whole_usual_contact`] of a contact whose URI usually repeats the scheme and user part of
/// `known` and names `host` with a port (see [`Uri::parse_bracketed_like`]): the same answer.
pub(crate) fn whole_usual_contact_like<'b>(
    value: &'b [u8],
    known: &Uri<'_>,
    host: &[u8],
) -> Option<ContactParts<'b>> {
    let uri_of = |inner| Uri::parse_bracketed_like(inner, known, host);
    read_usual_contact(&mut &*value, true, uri_of, FieldsReader::parts)
}

/// The usual contact value — `<uri>` and parameters without LWS or a display name — parsed in
/// the one pass that also finds its end: then the text after it is empty or starts with the
/// comma [`CommaSplit`] would cut at, and the contact is what [`parse_contact`] makes of the
/// item before it; `rest` moves past that comma. `None` (any other shape, or an error) leaves
/// `rest` to the general path.
#[inline(always)]
fn parse_usual_contact<'b>(rest: &mut &'b [u8]) -> Option<Result<Contact<'b>, Error>> {
    // The usual URI read to its `>` in one pass (without a quote inside the brackets: that
    // would hide the `>` from the comma split), any other searched for first.
    let uri_of = |inner| Uri::parse_bracketed(inner).or_else(|| unusual_bracketed(inner));
    read_usual_contact(rest, false, uri_of, |reader, uri, params, tag| {
        Some(Ok(Contact::Addr(reader.finish(NameAddr {
            display: None,
            uri,
            params,
            bracketed: true,
            tag,
        }))))
    })
}

/// The URI of a usual contact that [`Uri::parse_bracketed`] leaves (out of line): the text up
/// to the first `>` (without a quote before it) parsed, and where that `>` is.
#[inline(never)]
fn unusual_bracketed(inner: &[u8]) -> Option<(Uri<'_>, usize)> {
    let gt = find2(b'>', b'"', inner).filter(|&i| inner.get(i) == Some(&b'>'))?;
    Some((Uri::parse(inner.get(..gt)?).ok()?, gt))
}

/// [`parse_usual_contact`] answering `wrap` of the contact's pieces — its parameters as read,
/// its URI, its parameters and its first `tag` — with `whole`, `None` when text is left after
/// it. `uri_of` reads the URI from the text after the `<`, answering it and where its `>` is.
/// (An unusual URI is parsed before the parameters are read: either failing leaves the value
/// to the general path.)
#[inline(always)]
fn read_usual_contact<'b, R>(
    rest: &mut &'b [u8],
    whole: bool,
    uri_of: impl FnOnce(&'b [u8]) -> Option<(Uri<'b>, usize)>,
    wrap: impl FnOnce(FieldsReader<'b>, Uri<'b>, Params<'b>, Option<&'b [u8]>) -> Option<R>,
) -> Option<R> {
    let inner = skip_lws(rest).strip_prefix(b"<")?;
    let (uri, gt) = uri_of(inner)?;
    let params = inner.get(gt + 1..).unwrap_or_default();
    let mut reader = FieldsReader::default();
    let mut tag = None;
    // A desk phone's usual first parameter (RFC 5626), its name written as the RFC spells it:
    // taken as the walk takes it, without the scan of the name and its comparison.
    let first = match params.strip_prefix(b";+sip.instance=") {
        Some(value) if value.first() == Some(&b'"') => {
            let len = match quote_ending(value) {
                Some(end) => end + 1,
                None => closing_quote(value)? + 1,
            };
            reader.fields.instance = value.get(..len).map(unquoted);
            value.get(len..).unwrap_or_default()
        }
        _ => params,
    };
    let at = walk_plain(first, true, |name, value| {
        if tag.is_none() && eq_ignore_case(name, b"tag") {
            tag = Some(value);
        }
        reader.take_usual(name, value);
    })?;
    let after = match at {
        [] => at,
        [b',', after @ ..] => after,
        _ => return None,
    };
    if whole && !after.is_empty() {
        return None;
    }
    let params = Params::new(params.get(..params.len() - at.len()).unwrap_or_default());
    *rest = after;
    wrap(reader, uri, params, tag.flatten())
}

fn parse_contact(item: &[u8]) -> Result<Contact<'_>, Error> {
    if item == b"*" {
        return Ok(Contact::Star);
    }
    // The contact parameters are read in the pass that validates them.
    let mut reader = FieldsReader::default();
    let name_addr = NameAddr::parse_visiting(item, None, |name, value| reader.take(name, value))
        .map_err(|_| Error::BadContact)?;
    Ok(Contact::Addr(reader.finish(name_addr)))
}

pub(crate) fn contacts<'b, 'h>(headers: &'h [Header<'b>]) -> Contacts<'b, 'h> {
    Values {
        headers: headers.iter(),
        name: HeaderName::Contact,
        current: None,
        parse: parse_contact,
        first: Some(parse_usual_contact),
        empty: Error::BadContact,
    }
}

pub(crate) fn vias<'b, 'h>(headers: &'h [Header<'b>]) -> Vias<'b, 'h> {
    Values {
        headers: headers.iter(),
        name: HeaderName::Via,
        current: None,
        parse: Via::parse,
        first: Some(whole_via),
        empty: Error::BadVia,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every classified name: (long form, compact form, name).
    #[test]
    fn all_names_in_order() {
        for (i, name) in HeaderName::ALL.into_iter().enumerate() {
            assert_eq!(name as usize, i);
        }
    }

    const NAMES: &[(&str, Option<u8>, HeaderName)] = &[
        ("Via", Some(b'v'), HeaderName::Via),
        ("From", Some(b'f'), HeaderName::From),
        ("To", Some(b't'), HeaderName::To),
        ("Call-ID", Some(b'i'), HeaderName::CallId),
        ("CSeq", None, HeaderName::CSeq),
        ("Contact", Some(b'm'), HeaderName::Contact),
        ("Expires", None, HeaderName::Expires),
        ("Min-Expires", None, HeaderName::MinExpires),
        ("Content-Length", Some(b'l'), HeaderName::ContentLength),
        ("Content-Type", Some(b'c'), HeaderName::ContentType),
        ("Max-Forwards", None, HeaderName::MaxForwards),
        ("Require", None, HeaderName::Require),
        ("Proxy-Require", None, HeaderName::ProxyRequire),
        ("Supported", Some(b'k'), HeaderName::Supported),
        ("Unsupported", None, HeaderName::Unsupported),
        ("Authorization", None, HeaderName::Authorization),
        ("Proxy-Authorization", None, HeaderName::ProxyAuthorization),
        ("WWW-Authenticate", None, HeaderName::WwwAuthenticate),
        ("User-Agent", None, HeaderName::UserAgent),
        ("Server", None, HeaderName::Server),
        ("Path", None, HeaderName::Path),
        ("Allow", None, HeaderName::Allow),
        ("Date", None, HeaderName::Date),
        ("Route", None, HeaderName::Route),
        ("Record-Route", None, HeaderName::RecordRoute),
        ("Retry-After", None, HeaderName::RetryAfter),
    ];

    #[test]
    fn fields_and_params_in_one_pass() {
        for v in [
            &b"<sip:a@b>;expires=60;q=0.5;+sip.instance=\"<urn:x;y>\";reg-id=1;x;y=2"[..],
            b"<sip:a@b>;Expires=1;EXPIRES=2;foo",
            b"<sip:a@b>",
            b"<sip:a@b>;q=2",
            b"<sip:a@b>;reg-id=x;q=2",
            b"<sip:a@b>;q=2;reg-id=x",
            b"<sip:a@b> ; x = 1 ; +sip.instance = \"<urn:z>\" ;reg-id=7",
            b"sip:a@b;expires=0;x",
            b"<sip:a@b>;expires;q=1",
        ] {
            let Ok(Contact::Addr(c)) = parse_contact(v) else {
                panic!("{v:?}");
            };
            let mut other = Vec::new();
            let got = c.fields_and_params(|p| other.extend_from_slice(p));
            assert_eq!(got, c.fields());
            if got.is_ok() {
                assert_eq!(other, c.other_params().collect::<Vec<_>>().concat());
            }
            // Read while validating = read by iterating the parameters afterwards.
            let again = ContactAddr::new(c.name_addr);
            assert_eq!(again.fields(), c.fields(), "{v:?}");
        }
    }

    #[test]
    fn picked_parameters_agree_with_get() {
        for v in [
            &b"<sip:a@b>;tag=1"[..],
            b"<sip:a@b>;TAG=x;tag=y",
            b"<sip:a@b>;tag;tag=y",
            b"<sip:a@b> ; tag = \"q;t\" ;x",
            b"sip:a@b;x=1;Tag=2",
            b"<sip:a@b;tag=uri>",
            b"\"A\" <sip:a@b>",
        ] {
            let n = NameAddr::parse(v).unwrap();
            assert_eq!(n.tag(), n.params.get(b"tag").flatten(), "{v:?}");
        }
        for v in [
            &b"SIP/2.0/UDP h;rport"[..],
            b"SIP/2.0/UDP h;branch=z9hG4bK1;RPORT=5070;rport=1",
            b"SIP/2.0/UDP h;rport=x",
            b"SIP/2.0/UDP h;received=1.2.3.4",
            b"SIP/2.0/UDP h ; rport = 99999",
        ] {
            let via = Via::parse(v).unwrap();
            let want = via
                .params
                .get(b"rport")
                .map(|v| v.and_then(parse_u32).and_then(|p| u16::try_from(p).ok()));
            assert_eq!(via.rport(), want, "{v:?}");
            assert_eq!(via.has_rport(), want.is_some(), "{v:?}");
        }
    }

    #[test]
    fn plain_tag_agrees_with_general_scan() {
        for raw in [
            &b";tag=a73kszlfl"[..],
            b";tag=1",
            b";tag=",
            b";tag",
            b";TAG=x",
            b";tag=x;tag=y",
            b";tag=a:b",
            b";tag=a b",
            b";tag=\"q\"",
            b";tag=x ",
            b";tag=x;",
            b";tag=x\xe9",
            b";tagx=1",
            b"",
        ] {
            let [fast, general] = tag_scans(raw);
            assert_eq!(fast, general, "{}", String::from_utf8_lossy(raw));
        }
    }

    /// A parameter walk's answer and the parameters it visited.
    type TagScan<'b> = (
        Result<Option<&'b [u8]>, Error>,
        Vec<(&'b [u8], Option<&'b [u8]>)>,
    );

    /// `first_tag` (with its fast path) and `first_tag_general` over the same parameters.
    fn tag_scans(raw: &[u8]) -> [TagScan<'_>; 2] {
        let params = Params::new(raw);
        let (mut fast, mut general) = (Vec::new(), Vec::new());
        let got = first_tag(params, |n, v| fast.push((n, v)));
        let want = first_tag_general(params, |n, v| general.push((n, v)));
        [(got, fast), (want, general)]
    }

    proptest::proptest! {
        #[test]
        fn plain_tag_matches_general_scan(
            parts in proptest::collection::vec(proptest::sample::select(
                &[";", "tag", "TAG", "=", "x", "a73", " ", "\"", ":", "é", "[", ","][..]
            ), 0..8),
        ) {
            let raw = parts.concat();
            let [fast, general] = tag_scans(raw.as_bytes());
            proptest::prop_assert_eq!(fast, general, "{:?}", raw);
        }
    }

    proptest::proptest! {
        #[test]
        fn usual_via_params_match_scan(
            parts in proptest::collection::vec(proptest::sample::select(
                &[";", "branch", "=", "z9hG4bK-1", "rport", "RPORT", "received", "5060", " ",
                  "\"", ":", "[", "é", "z9hG4bK", "z9hG4b", "x", "\t", ";branch=", ";rport"][..]
            ), 0..8),
        ) {
            // (What follows sent-by, LWS included: the usual parameters are read there
            // without the LWS skip and the `;` check the other path makes.)
            let value = format!("SIP/2.0/UDP h:5060{}", parts.concat());
            let raw = value.as_bytes();
            let after = &raw[18..];
            if let Some(usual) = Via::usual_params(raw, after) {
                let other = Via::other_params(raw, after).map(|(p, read)| (p.raw(), read));
                proptest::prop_assert_eq!(Ok((after, usual)), other, "{:?}", value);
            }
        }
    }

    /// A bracketed name-addr's parameters are the text after its `>`, trimmed of LWS (read
    /// with only the LWS before them skipped: its value is trimmed first), through every path.
    #[test]
    fn name_addr_params_are_the_trimmed_rest() {
        let known = Uri::parse(b"sip:example.com").unwrap();
        for value in [
            "<sip:bob@example.com>;tag=a73kszlfl",
            "<sip:bob@example.com> ;tag=a73kszlfl",
            "<sip:bob@example.com>\t ;tag=a73kszlfl;x=1 \t",
            " <sip:bob@example.com>;tag=1\r\n ",
            "<sip:bob@example.com> \r\n ;tag=1",
            "<sip:bob@example.com>",
            "<sip:bob@example.com>  ",
            "Bob <sip:bob@example.com> ;tag=1 ",
            "\"Bob\" <sip:bob@example.com:5060> ;tag=1",
            "<sips:bob@example.com>\t;tag=1",
        ] {
            let trimmed = trim_lws(value.as_bytes());
            let gt = trimmed.iter().position(|&b| b == b'>').unwrap();
            let want = trim_lws(&trimmed[gt + 1..]);
            for got in [
                NameAddr::parse(value.as_bytes()),
                NameAddr::parse_at_host(value.as_bytes(), &known),
                NameAddr::parse_like(value.as_bytes(), &known),
            ] {
                assert_eq!(got.map(|n| n.params.raw()), Ok(want), "{value:?}");
            }
        }
    }

    /// A Via's usual parameters, read where sent-by ends, answer as the other path (LWS
    /// skipped, a `;` required, the general walk) answers; the whole parse keeps them as
    /// that path would.
    #[test]
    fn usual_via_params_match_other_params() {
        for after in [
            ";branch=z9hG4bK-1",
            ";branch=z9hG4bK-1;rport",
            " ;branch=z9hG4bK-1",
            "\t;branch=z9hG4bK-1;rport",
            " \t ;branch=a;rport",
            ";branch=",
            ";branch=;rport",
            ";branch=a b",
            ";rport;branch=a",
            "x;branch=a",
            "",
            " ",
        ] {
            let value = format!("SIP/2.0/UDP h:5060{after}");
            // (Trimmed as the parse trims it.)
            let raw = trim_lws(value.as_bytes());
            let after = &raw[18..];
            let other = Via::other_params(raw, after).map(|(p, read)| (p.raw(), read));
            if let Some(usual) = Via::usual_params(raw, after) {
                assert_eq!(Ok((after, usual)), other, "{value:?}");
            }
            let parsed = Via::parse(raw).map(|v| (v.params.raw(), (v.rport, v.plain_end)));
            assert_eq!(parsed, other, "{value:?}");
        }
    }

    proptest::proptest! {
        /// The usual sent-protocol read as words answers as the general read does.
        #[test]
        fn sent_protocol_matches_general(
            parts in proptest::collection::vec(proptest::sample::select(&[
                "SIP/2.0/", "sip/2.0/", "SIP", "/", "2.0", "UDP", "TCP", "TLS", "WS", "udp", " ",
                "\t", "h", "x", ";", "SIP/2.0/UDP ", "SIP/2.0/TCP h",
            ][..]), 0..6),
        ) {
            let raw = parts.concat();
            let raw = trim_lws(raw.as_bytes());
            proptest::prop_assert_eq!(
                Via::sent_protocol(raw),
                Via::sent_protocol_general(raw),
                "{:?}", String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn usual_sent_protocols() {
        for raw in [
            &b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1"[..],
            b"SIP/2.0/TCP h",
            b"SIP/2.0/TLS  h",
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDP ",
            b"SIP/2.0/UDPX h",
            b"SIP/2.0/WS h",
            b"sip/2.0/udp h",
        ] {
            assert_eq!(
                Via::sent_protocol(raw),
                Via::sent_protocol_general(raw),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn usual_via_params() {
        for (value, usual) in [
            (&b"SIP/2.0/UDP h;branch=z9hG4bK-1-1;rport"[..], true),
            (b"SIP/2.0/UDP h;branch=z9hG4bK-1-1", true),
            (b"SIP/2.0/UDP h;branch=z9hG4bK-1-1;rport=5", false),
            (b"SIP/2.0/UDP h;branch=z9hG4bK-1-1;rport;x", false),
            (b"SIP/2.0/UDP h;branch;rport", false),
            (b"SIP/2.0/UDP h;branch=a:b", false),
            (b"SIP/2.0/UDP h;branch=z9hG4bK", true),
            (b"SIP/2.0/UDP h;branch=z9hG4bK;rport", true),
            (b"SIP/2.0/UDP h;branch=z9hG4bK:x", false),
            (b"SIP/2.0/UDP h;branch=z9hG4b;rport", true),
            (b"SIP/2.0/UDP h;branch=Z9HG4BK-1", true),
            (b"SIP/2.0/UDP h;received=1.2.3.4;branch=a", false),
        ] {
            let via = Via::parse(value).unwrap();
            let params = via.params.raw();
            assert_eq!(
                Via::usual_params(via.raw, params).is_some(),
                usual,
                "{}",
                String::from_utf8_lossy(value)
            );
            let scanned = Via::scan_params(via.raw, via.params).unwrap();
            assert_eq!((via.rport, via.plain_end), scanned);
        }
        // A trailing `;rport` with any one byte changed is not taken for it.
        for at in 0..6 {
            for b in [b'x', b'-', b'.', b'R', b'P'] {
                let mut value = b"SIP/2.0/UDP h;branch=z9hG4bK-1-1;rport".to_vec();
                let len = value.len();
                value[len - 6 + at] = b;
                let Ok(via) = Via::parse(&value) else {
                    continue;
                };
                let scanned = Via::scan_params(via.raw, via.params).unwrap();
                assert_eq!(
                    (via.rport, via.plain_end),
                    scanned,
                    "{}",
                    String::from_utf8_lossy(&value)
                );
            }
        }
    }

    #[test]
    fn plain_params() {
        for (raw, plain, valid) in [
            (&b";transport=udp;lr"[..], true, true),
            (b";maddr=[::1]", true, true),
            (b"", true, true),
            (b"; lr", false, true),
            (b";x=\"a b\"", false, true),
            (b";x=", false, false),
            (b";;", false, false),
        ] {
            let params = Params::new(raw);
            assert_eq!(params.is_plain(), plain, "{}", String::from_utf8_lossy(raw));
            assert_eq!(params.validate(), valid, "{}", String::from_utf8_lossy(raw));
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_params_are_valid(
            parts in proptest::collection::vec(proptest::sample::select(
                &[";", "transport", "=", "udp", "lr", " ", "\"", ":", "[", "]", "é", ","][..]
            ), 0..10),
        ) {
            let raw = parts.concat();
            let params = Params::new(raw.as_bytes());
            if params.is_plain() {
                proptest::prop_assert!(params.scan(|_, _| {}), "{:?}", raw);
            }
        }
    }

    #[test]
    fn header_names() {
        let table: &[(&[u8], HeaderName)] = &[
            (b"via", HeaderName::Via),
            (b"V", HeaderName::Via),
            (b"i", HeaderName::CallId),
            (b"CALL-id", HeaderName::CallId),
            (b"m", HeaderName::Contact),
            (b"l", HeaderName::ContentLength),
            (b"k", HeaderName::Supported),
            (b"www-authenticate", HeaderName::WwwAuthenticate),
            (b"C%6Fntact", HeaderName::Other),
            (b"x", HeaderName::Other),
            (b"Contacts", HeaderName::Other),
        ];
        for (raw, want) in table {
            assert_eq!(
                HeaderName::parse(raw),
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
        for &(long, compact, name) in NAMES {
            assert_eq!(name.as_str(), long);
            assert_eq!(HeaderName::parse(long.as_bytes()), name, "{long}");
            assert_eq!(
                HeaderName::parse(long.to_ascii_uppercase().as_bytes()),
                name
            );
            assert_eq!(
                HeaderName::parse(long.to_ascii_lowercase().as_bytes()),
                name
            );
            // Same length and first letter, one byte different: not this header.
            let mut near = long.as_bytes().to_vec();
            if let Some(last) = near.last_mut() {
                *last = b'#';
            }
            assert_eq!(HeaderName::parse(&near), HeaderName::Other, "{long}");
            if let Some(c) = compact {
                assert_eq!(HeaderName::parse(&[c]), name);
                assert_eq!(HeaderName::parse(&[c.to_ascii_uppercase()]), name);
            }
        }
        // Not tokens: never a known name (CR would fold onto '-').
        assert_eq!(HeaderName::parse(b"Call\rID"), HeaderName::Other);
        assert_eq!(HeaderName::parse(b"Call ID"), HeaderName::Other);
        assert_eq!(HeaderName::parse(b"Via\0"), HeaderName::Other);
        // Lengths around the word boundaries, one byte off anywhere: not the header.
        for &(long, _, name) in NAMES {
            for i in 0..long.len() {
                let mut near = long.as_bytes().to_vec();
                near[i] ^= 0x01;
                let got = HeaderName::parse(&near);
                assert!(got != name, "{long} with byte {i} changed");
            }
        }
        for c in b'a'..=b'z' {
            let known = NAMES.iter().any(|&(_, compact, _)| compact == Some(c));
            assert_eq!(
                HeaderName::parse(&[c]) != HeaderName::Other,
                known,
                "{}",
                c as char
            );
        }
    }

    /// The Contact values of header lines with these values, as the usual-contact path and the
    /// general path alone read them (each item's `Debug` text, after an error as well).
    fn contact_walks(values: &[&[u8]]) -> [Vec<String>; 2] {
        let headers: Vec<Header<'_>> = values
            .iter()
            .map(|&value| Header::new(HeaderName::Contact, b"Contact", value))
            .collect();
        let general = Values {
            first: None,
            ..contacts(&headers)
        };
        [contacts(&headers), general].map(|walk| walk.take(8).map(|c| format!("{c:?}")).collect())
    }

    #[test]
    fn usual_contacts_read_as_the_general_path_reads_them() {
        for v in [
            &br#"<sip:u1@192.0.2.10:5060;transport=udp>;+sip.instance="<urn:uuid:1>""#[..],
            b"<sip:a@b>",
            b"<sip:a@b>,<sip:c@d>;expires=0, <sip:e@f>;q=0.5",
            b"<sip:a@b>;tag=1;TAG=2;x",
            b"<sip:a@b>;tag;tag=2",
            b"<sip:a@b>;expires=soon,<sip:c@d>",
            b"<sip:a@b>;q=2;reg-id=x",
            br#"<sip:a@b>;x="a,b\"c";y,<sip:c@d>"#,
            br#"<sip:a@b>;x="open,<sip:c@d>"#,
            b"<sip:a\"x>,y\"@b>",
            b"<mailto:a\"b>;x,<sip:c@d>",
            b"<sip:a@b;x=1,2>;y=3,<sip:c@d>",
            b"<sip:a@b> ;x,<sip:c@d>",
            b"<sip:a@b>;x ,<sip:c@d>",
            b"<sip:a@b>,,<sip:c@d>,",
            b"<sip:a@b>, ,",
            b"<sip:a@b>;=1",
            b"<sip:a@b>;x=",
            b"<sip:a@b>junk,<sip:c@d>",
            b"<sip:a@b>;x<y>,<sip:c@d>",
            b"<sip:a@b",
            b"<bad>;x,<sip:c@d>",
            b"<sip:a@b>;maddr=[::1];lr",
            br#"<sip:a@b>;+sip.instance="<urn:x>";expires=60;q=0.5"#,
            br#"<sip:a@b>;+sip.instance="open"#,
            br#"<sip:a@b>;+sip.instance="x";+sip.instance="y""#,
            br#"<sip:a@b>;+sip.instance="""#,
            br#"<sip:a@b>;+sip.instance="a\"b,c",<sip:c@d>"#,
            br#"<sip:a@b>;+sip.instance=x;tag=1"#,
            br#"<sip:a@b>;+sip.instance="x"junk"#,
            br#"<sip:a@b>;+sip.instance="x" ,<sip:c@d>"#,
            br#"<sip:a@b>;+SIP.INSTANCE="x";tag=1"#,
            br#"<sip:a@b>;+sip.instance;tag=1"#,
            br#"<sip:a@b>;+sip.instance="x",<sip:c@d>;+sip.instance="y""#,
            b"\"A\" <sip:a@b>,<sip:c@d>",
            b"sip:a@b;x,<sip:c@d>",
            b"*",
            b",",
        ] {
            let [usual, general] = contact_walks(&[v, b"<sip:x@y>"]);
            assert_eq!(usual, general, "{}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn usual_contacts_take_the_one_pass() {
        for (value, rest) in [
            (
                &br#"<sip:u1@192.0.2.10:5060;transport=udp>;+sip.instance="<urn:uuid:1>""#[..],
                &b""[..],
            ),
            (b"<sip:a@b>;expires=0, <sip:c@d>", b" <sip:c@d>"),
            (b" <sip:c@d>;q=0.5;x=\"a,b\",", b""),
        ] {
            let mut left = value;
            assert!(parse_usual_contact(&mut left).is_some(), "{value:?}");
            assert_eq!(left, rest);
        }
        for value in [
            &b"\"A\" <sip:a@b>"[..],
            b"<sip:a@b> ;x",
            b"<sip:a\"b>",
            b"sip:a@b",
            b"<sip:a@b>;x=\"open",
        ] {
            assert!(parse_usual_contact(&mut &*value).is_none(), "{value:?}");
        }
    }

    /// Up to `n` pieces of `from`, joined.
    fn pieces(
        from: &[&'static str],
        n: usize,
    ) -> impl proptest::strategy::Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(from.to_vec()), 0..n)
            .prop_map(|p| p.concat())
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]
        #[test]
        fn usual_contacts_match_general_path(
            free in pieces(&[
                "<", ">", "\"", "\\", ",", ";", "=", " ", "\r\n ", "*", "sip:", "a@b",
                "u1@192.0.2.10:5060", "mailto:x", "x", "tag", "q", "0.5", "expires", "60",
                "+sip.instance", "reg-id", "1", "[::1]", "<sip:a@b>", "<sip:c@d;lr>",
            ], 14),
            // Values shaped like contacts: `<`, URI-ish text, `>`, parameter-ish text.
            items in proptest::collection::vec((
                proptest::sample::select(vec!["", " ", "\"A\" ", ","]),
                pieces(&["sip:", "a@b", "mailto:", "\"", ",", ";", "=", ">", "x", "1"], 5),
                pieces(&[
                    ";", "x", "=", "\"", ",", "<", ">", " ", "1", "tag", "q", "0.5", "expires",
                    "+sip.instance", "reg-id", "\\", ";+sip.instance=\"",
                ], 8),
            ), 1..4),
        ) {
            let shaped: String = items
                .iter()
                .map(|(lead, uri, params)| format!("{lead}<{uri}>{params}"))
                .collect::<Vec<_>>()
                .join(",");
            for value in [&free, &shaped] {
                let [usual, general] = contact_walks(&[value.as_bytes(), b"<sip:x@y>;q=1"]);
                proptest::prop_assert_eq!(usual, general, "{:?}", value);
            }
        }
    }

    #[test]
    fn comma_split_respects_quotes_and_brackets() {
        let items: Vec<&[u8]> =
            CommaSplit::new(br#""Doe, John" <sip:j@a;x=1,2>;q=1 , <sip:b@c>,, sip:d@e"#).collect();
        assert_eq!(
            items,
            vec![
                &br#""Doe, John" <sip:j@a;x=1,2>;q=1"#[..],
                b"<sip:b@c>",
                b"sip:d@e"
            ]
        );
        let items: Vec<&[u8]> = CommaSplit::new(br#""a\"," <sip:x@y>"#).collect();
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(br#""Bob \"B\"" <sip:bob@example.com;transport=tcp>;tag=a1;x"#)
            .unwrap();
        assert_eq!(n.display.unwrap(), br#""Bob \"B\"""#);
        assert_eq!(n.uri.raw(), b"sip:bob@example.com;transport=tcp");
        assert_eq!(n.tag(), Some(&b"a1"[..]));
        assert!(n.bracketed);
        let n = NameAddr::parse(b"sip:+1972@gw1.example.net;unknownparam").unwrap();
        assert_eq!(n.uri.raw(), b"sip:+1972@gw1.example.net");
        assert_eq!(n.params.get(b"unknownparam"), Some(None));
        let n = NameAddr::parse(b"Bob Smith<sip:b@h>").unwrap();
        assert_eq!(n.display.unwrap(), b"Bob Smith");
        for bad in [
            &b"\"unterminated <sip:a@b>"[..],
            b"< sip:t.watson@example.org >",
            b"Bell, Alexander <sip:a@b>",
            b"sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            b"<sip:a@b",
            b"<sip:a@b>junk",
            b"",
        ] {
            assert!(
                NameAddr::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn contact_params() {
        let n = NameAddr::parse(
            br#"<sip:a@b>;expires=60;q=0.5;+sip.instance="<urn:uuid:1>";reg-id=2;foo=bar;video"#,
        )
        .unwrap();
        let c = ContactAddr::new(n);
        let f = c.fields().unwrap();
        assert_eq!(
            (f.expires, f.q, f.instance, f.reg_id),
            (Some(60), Some(500), Some(&b"<urn:uuid:1>"[..]), Some(2))
        );
        assert_eq!(c.expires().unwrap(), Some(60));
        assert_eq!(c.q().unwrap(), Some(500));
        assert_eq!(c.instance(), Some(&b"<urn:uuid:1>"[..]));
        assert_eq!(c.reg_id().unwrap(), Some(2));
        let others: Vec<&[u8]> = c.other_params().collect();
        assert_eq!(
            others,
            vec![
                &br#";+sip.instance="<urn:uuid:1>""#[..],
                b";reg-id=2",
                b";foo=bar",
                b";video"
            ]
        );
        for (q, want) in [
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("0.123", Some(123)),
            ("0", Some(0)),
            ("1.5", None),
            ("0.1234", None),
            ("2", None),
            ("x", None),
        ] {
            assert_eq!(parse_q(q.as_bytes()), want, "{q}");
        }
        let big = ContactAddr::new(NameAddr::parse(b"<sip:a@b>;expires=280297596632815").unwrap());
        assert_eq!(big.expires().unwrap(), Some(u32::MAX));
        let bad = ContactAddr::new(NameAddr::parse(b"<sip:a@b>;expires=soon").unwrap());
        assert_eq!(bad.expires(), Err(Error::BadExpires));
    }

    #[test]
    fn vias() {
        let v = Via::parse(b"SIP / 2.0 / UDP first.example.com: 4000;ttl=16;maddr=224.2.0.1;branch=z9hG4bKa7c6a8dlze.1").unwrap_err();
        assert_eq!(v, Error::BadVia, "LWS inside sent-by port is not allowed");
        let v =
            Via::parse(b"SIP / 2.0 / UDP first.example.com:4000;ttl=16;branch=z9hG4bKa").unwrap();
        assert_eq!(
            (v.transport, v.host, v.port),
            (&b"UDP"[..], &b"first.example.com"[..], Some(4000))
        );
        assert_eq!(v.branch(), Some(&b"z9hG4bKa"[..]));
        let v =
            Via::parse(b"SIP/2.0/TCP [2001:db8::9:1];received=[2001:db8::9:255];rport").unwrap();
        assert_eq!(v.host, b"[2001:db8::9:1]");
        assert_eq!(v.received(), Some(&b"[2001:db8::9:255]"[..]));
        assert_eq!(v.rport(), Some(None));
        let v = Via::parse(b"SIP/2.0/UNKNOWN h;rport=5070").unwrap();
        assert_eq!(v.rport(), Some(Some(5070)));
        for bad in [
            &b"SIP/2.0/UDP 192.0.2.15;;"[..],
            b"SIP/2.0 h",
            b"HTTP/1.1/TCP h",
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDP h:99999",
        ] {
            assert!(Via::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn cseq() {
        assert_eq!(
            CSeq::parse(b"0009 REGISTER").unwrap(),
            CSeq {
                seq: 9,
                method: Method::REGISTER
            }
        );
        assert_eq!(
            CSeq::parse(b"7 register").unwrap().method,
            Method(b"register")
        );
        for bad in [
            &b"REGISTER"[..],
            b"1",
            b"1REGISTER",
            b"36893488147419103232 REGISTER",
            b"-1 REGISTER",
            b"1 REGISTER\0",
            b"1 REG ISTER",
        ] {
            assert_eq!(
                CSeq::parse(bad),
                Err(Error::BadCSeq),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// The previous CSeq parse (the digits found first, then summed): the oracle for summing
    /// them while they are found.
    fn reference_cseq(value: &[u8]) -> Result<CSeq<'_>, Error> {
        let value = trim_lws(value);
        let split = value
            .iter()
            .position(|&b| !b.is_ascii_digit())
            .ok_or(Error::BadCSeq)?;
        let seq = parse_u32(&value[..split]).ok_or(Error::BadCSeq)?;
        let method = skip_lws(&value[split..]);
        if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
            return Err(Error::BadCSeq);
        }
        if !value
            .get(split)
            .is_some_and(|&b| is_wsp(b) || b == b'\r' || b == b'\n')
        {
            return Err(Error::BadCSeq);
        }
        Ok(CSeq {
            seq,
            method: Method(method),
        })
    }

    proptest::proptest! {
        #[test]
        fn cseq_matches_reference(
            parts in proptest::collection::vec(proptest::sample::select(&[
                "0", "1", "9", "12345", "4294967295", "4294967296", "000000000007", " ", "\t",
                "\r\n ", "REGISTER", "register", "INVITE", "-", "é", "@", ""
            ][..]), 0..6),
        ) {
            let text = parts.concat();
            proptest::prop_assert_eq!(
                CSeq::parse(text.as_bytes()),
                reference_cseq(text.as_bytes()),
                "{:?}", text
            );
        }
    }

    /// The previous host/port split (colon first, then every host byte checked): the oracle
    /// for `split_host_port`'s one-pass version.
    fn reference_split_host_port(s: &[u8]) -> Option<(&[u8], Option<u16>)> {
        if s.first() == Some(&b'[') {
            return split_host_port(s); // the IPv6 branch did not change
        }
        let colon = s.iter().position(|&b| b == b':').unwrap_or(s.len());
        let (host, port) = s.split_at(colon);
        let host_char = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
        if host.is_empty() || !host.iter().all(host_char) {
            return None;
        }
        let port = match port {
            b"" => None,
            p => Some(u16::try_from(parse_u32(p.strip_prefix(b":")?)?).ok()?),
        };
        Some((host, port))
    }

    proptest::proptest! {
        #[test]
        fn split_host_port_matches_reference(
            parts in proptest::collection::vec(proptest::sample::select(
                &["a", "B9", ".", "-", "_", ":", "5060", "65536", "0", "007", "", " ", "@", "[", "]", "é", "::1"][..]
            ), 0..8),
        ) {
            let text = parts.concat();
            proptest::prop_assert_eq!(
                split_host_port(text.as_bytes()),
                reference_split_host_port(text.as_bytes()),
                "{}", text
            );
        }
    }

    /// The previous Via sent-by split (search the first `;`, trim, then `split_host_port`):
    /// the oracle for reading the host-port where it starts.
    fn reference_via_sent_by(rest: &[u8]) -> Option<(&[u8], Option<u16>, &[u8])> {
        let semi = find(b';', rest).unwrap_or(rest.len());
        let (host, port) = split_host_port(trim_lws(&rest[..semi]))?;
        Some((host, port, &rest[semi..]))
    }

    proptest::proptest! {
        #[test]
        fn via_sent_by_matches_reference(
            parts in proptest::collection::vec(proptest::sample::select(
                &["a", "B9", ".", "-", ":", "5060", "65536", "", " ", "\r\n ", ";", "rport",
                  "=", "[", "]", "::1", "é", "\t"][..]
            ), 0..10),
        ) {
            let rest = parts.concat();
            let value = format!("SIP/2.0/UDP {rest}");
            let got = Via::parse(value.as_bytes()).ok().map(|v| (v.host, v.port, v.params.raw()));
            let want = reference_via_sent_by(trim_lws(&value.as_bytes()[12..]))
                .filter(|(_, _, params)| Params::new(params).validate());
            proptest::prop_assert_eq!(got, want, "{:?}", value);
        }
    }

    /// `comma_at` as a byte-by-byte state machine: the oracle for its search-jumping version.
    fn reference_comma_at(s: &[u8]) -> usize {
        let mut angle = false;
        let mut i = 0;
        while let Some(&b) = s.get(i) {
            match b {
                b',' if !angle => return i,
                b'<' if !angle => angle = true,
                b'>' if angle => angle = false,
                b'"' => match closing_quote(&s[i..]) {
                    Some(close) => i += close,
                    None => return s.len(),
                },
                _ => {}
            }
            i += 1;
        }
        s.len()
    }

    proptest::proptest! {
        #[test]
        fn comma_at_matches_reference(
            parts in proptest::collection::vec(proptest::sample::select(
                &[",", "\"", "\\\\", "<", ">", "a", "sip:x@y", ";q=1", " "][..]
            ), 0..14),
        ) {
            let text = parts.concat();
            proptest::prop_assert_eq!(comma_at(text.as_bytes()), reference_comma_at(text.as_bytes()), "{}", text);
        }
    }

    /// Every Via value through the comma split (the walk before a line that parses whole was
    /// taken as one value): the oracle for `vias`.
    fn reference_vias<'b>(headers: &[Header<'b>]) -> Vec<Result<Via<'b>, Error>> {
        Values {
            first: None,
            ..super::vias(headers)
        }
        .collect()
    }

    proptest::proptest! {
        #[test]
        fn vias_match_the_comma_split(
            lines in proptest::collection::vec(
                (proptest::bool::ANY, proptest::collection::vec(proptest::sample::select(
                    &["SIP/2.0/UDP h", "SIP / 2.0 / TCP [::1]:5", ";branch=z9hG4bK1", ";rport",
                      ";x=\"a,b\"", ";x=\"<\"", ",", ", ", " ", "\"", "\\", "<", ">", ":5060",
                      ";received=1.2.3.4", ""][..]
                ), 0..6)),
                0..4,
            ),
        ) {
            let texts: Vec<(bool, String)> =
                lines.into_iter().map(|(via, parts)| (via, parts.concat())).collect();
            let headers: Vec<Header<'_>> = texts
                .iter()
                .map(|(via, text)| {
                    let name = if *via { HeaderName::Via } else { HeaderName::Other };
                    Header::new(name, b"Via", text.as_bytes())
                })
                .collect();
            let got = format!("{:?}", super::vias(&headers).collect::<Vec<_>>());
            let want = format!("{:?}", reference_vias(&headers));
            proptest::prop_assert_eq!(got, want, "{:?}", texts);
        }
    }

    #[test]
    fn vias_across_lines_and_commas() {
        let lines: [&[u8]; 4] = [
            b"SIP/2.0/UDP a;branch=z9hG4bK1;rport",
            b"SIP/2.0/UDP b;x=\"1,2\", SIP/2.0/TCP c",
            b" , ",
            b"SIP/2.0/UDP d",
        ];
        let headers: Vec<Header<'_>> = lines
            .iter()
            .map(|value| Header::new(HeaderName::Via, b"Via", value))
            .collect();
        let hosts: Vec<_> = super::vias(&headers).map(|v| v.map(|v| v.host)).collect();
        assert_eq!(
            hosts,
            [
                Ok(&b"a"[..]),
                Ok(b"b"),
                Ok(b"c"),
                Err(Error::BadVia),
                Ok(b"d")
            ]
        );
        assert_eq!(
            format!("{:?}", super::vias(&headers).collect::<Vec<_>>()),
            format!("{:?}", reference_vias(&headers))
        );
    }

    proptest::proptest! {
        /// A To read like its From is the To read on its own, whether the From's URI was read
        /// by the one-pass parse or not.
        #[test]
        fn parse_like_matches_parse(
            from in proptest::collection::vec(proptest::sample::select(NAME_ADDR_PIECES), 1..6),
            to in proptest::collection::vec(proptest::sample::select(NAME_ADDR_PIECES), 0..6),
        ) {
            let from = format!("<sip:{}>", from.concat());
            if let Ok(from) = NameAddr::parse(from.as_bytes()) {
                let raw = String::from_utf8_lossy(from.uri.raw()).into_owned();
                for to in [format!("<{raw}{}", to.concat()), format!("<{}", to.concat())] {
                    proptest::prop_assert_eq!(
                        format!("{:?}", NameAddr::parse_like(to.as_bytes(), &from.uri)),
                        format!("{:?}", NameAddr::parse(to.as_bytes())),
                        "{}", to
                    );
                }
            }
        }
    }

    proptest::proptest! {
        /// A From read at its Request-URI's host is the From read on its own.
        #[test]
        fn parse_at_host_matches_parse(
            known in proptest::sample::select(vec![
                "sip:example.com", "sip:h.x", "sip:a@h.x", "sip:H.x", "sip:h.x:5060", "sip:[::1]",
            ]),
            display in proptest::sample::select(vec!["", "Bob ", " "]),
            user in proptest::collection::vec(proptest::sample::select(NAME_ADDR_PIECES), 0..3),
            rest in proptest::collection::vec(proptest::sample::select(NAME_ADDR_PIECES), 0..4),
        ) {
            let known = Uri::parse(known.as_bytes()).unwrap();
            let host = String::from_utf8_lossy(known.host()).into_owned();
            let value = format!("{display}<sip:{}@{host}{}", user.concat(), rest.concat());
            proptest::prop_assert_eq!(
                format!("{:?}", NameAddr::parse_at_host(value.as_bytes(), &known)),
                format!("{:?}", NameAddr::parse(value.as_bytes())),
                "{}", value
            );
        }
    }

    /// Where the quoted string ending the text is taken at once, it is where the search finds
    /// its closing quote; it is taken for every quoted string of 18 to 50 bytes without a
    /// quote or backslash inside. Every length to 60, with a `"` or `\` at every place, and a
    /// text after the string.
    #[test]
    fn quote_ending_is_the_closing_quote() {
        for len in 0..=60 {
            let mut plain = vec![b'a'; len];
            if let Some(first) = plain.first_mut() {
                *first = b'"';
            }
            if let Some(last) = plain.last_mut() {
                *last = b'"';
            }
            let want = (18..=50).contains(&len).then(|| len - 1);
            assert_eq!(quote_ending(&plain), want, "{len}");
            let mut texts = vec![plain.clone(), [&plain[..], b";x"].concat()];
            for at in 0..len {
                for b in [b'"', b'\\', b'<', 0] {
                    let mut t = plain.clone();
                    t[at] = b;
                    texts.push(t);
                }
            }
            for t in texts {
                if let Some(end) = quote_ending(&t) {
                    assert_eq!(
                        Some(end),
                        closing_quote(&t),
                        "{}",
                        String::from_utf8_lossy(&t)
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn quote_ending_matches_closing_quote(
            body in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'"', b'\\', b'>', b'-']), 0..60),
        ) {
            let text = [&b"\""[..], &body, b"\""].concat();
            if let Some(end) = quote_ending(&text) {
                proptest::prop_assert_eq!(Some(end), closing_quote(&text));
            }
        }
    }

    /// A name-addr read off another's view without its parameters is the parse of that text;
    /// every cut of the value (and the cut with a byte changed) is tried, so the one cut it
    /// answers for is among them.
    fn check_without_params(value: &[u8]) {
        let Ok(from) = NameAddr::parse(value) else {
            return;
        };
        let lossy = String::from_utf8_lossy(value);
        let mut answered = false;
        for cut in 0..=value.len() {
            let mut changed = value[..cut].to_vec();
            if let Some(last) = changed.last_mut() {
                *last ^= 1;
            }
            for text in [&value[..cut], &changed[..]] {
                if let Some(view) = from.without_params(value, text) {
                    answered |= text == &value[..cut];
                    assert_eq!(
                        format!("{view:?}"),
                        format!("{:?}", NameAddr::parse(text).unwrap()),
                        "{lossy} cut at {cut}"
                    );
                }
            }
        }
        assert_eq!(
            answered,
            from.bracketed && !from.params.raw().is_empty(),
            "{lossy}"
        );
    }

    #[test]
    fn without_params_is_the_parse_of_the_text_before_them() {
        for value in [
            &b"<sip:u1@example.com>;tag=a73kszlfl"[..],
            b"\"Bob\" <sip:bob@example.com;transport=tcp> ;tag=1;x",
            b"Bob <sip:bob@example.com>;tag=1",
            b"<sip:bob@example.com>",
            b"sip:bob@example.com;tag=1",
            b"<sip:a@b;lr>>;tag=1",
            b"<tel:+1>;tag=1",
            b"<sip:a@b?x=y> \t;tag=\"q\"",
        ] {
            check_without_params(value);
        }
    }

    proptest::proptest! {
        #[test]
        fn without_params_matches_parse(
            display in proptest::sample::select(vec!["", "Bob ", "\"B b\" ", " "]),
            uri in proptest::collection::vec(proptest::sample::select(NAME_ADDR_PIECES), 1..6),
            params in proptest::collection::vec(proptest::sample::select(NAME_ADDR_PIECES), 0..4),
        ) {
            let value = format!("{display}<sip:{}{}", uri.concat(), params.concat());
            check_without_params(value.as_bytes());
        }
    }

    const NAME_ADDR_PIECES: &[&str] = &[
        "a", "@", "h.x", ">", ";tag=1", ";lr", ":5060", "?x=y", "\"", " ", ",", "%41", "=", ";",
        "B", "[::1]",
    ];

    /// The four-digit port read as a word answers as the digit run does, for every byte at
    /// every place, and for the usual ports.
    #[test]
    fn four_digit_ports_match_digit_run() {
        let want = |s: &[u8]| match digit_run(s, 5) {
            (4, Some(v)) => u16::try_from(v).ok(),
            _ => None,
        };
        for base in [
            &b"5060"[..],
            b"0000",
            b"9999",
            b"5061;x",
            b"1234>",
            b"00001",
        ] {
            for at in 0..base.len().min(5) {
                for b in 0..=255u8 {
                    let mut s = base.to_vec();
                    s[at] = b;
                    assert_eq!(four_digit_port(&s), want(&s), "{s:?}");
                }
            }
        }
        for s in [&b""[..], b"1", b"12", b"123", b"12345", b"1234", b"65535"] {
            assert_eq!(four_digit_port(s), want(s), "{s:?}");
        }
    }

    #[test]
    fn starts_with_words_matches_starts_with() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=40 {
            for at in 0..n {
                let mut prefix = text[..n].to_vec();
                assert!(starts_with_words(&text, &prefix));
                prefix[at] ^= 1;
                assert!(!starts_with_words(&text, &prefix), "{n} {at}");
            }
            assert!(!starts_with_words(&text[..n], &text[..(n + 1).min(40)]) || n == 40);
        }
    }

    #[test]
    fn whole_usual_contact_is_the_usual_contact_with_nothing_after() {
        for value in [
            &b"<sip:bob@192.0.2.4:5060;transport=udp>;+sip.instance=\"<urn:uuid:1>\""[..],
            b"<sip:bob@192.0.2.4>",
            b"<sip:bob@192.0.2.4>,",
            b"<sip:bob@192.0.2.4>, <sip:bob@192.0.2.5>",
            b"<sip:bob@192.0.2.4>;q=x",
            b"<sip:bob@192.0.2.4>;expires=60;x",
            b"<sip:bob@192.0.2.4> ;expires=60",
            b"<sip:bob@192.0.2.4;lr>;x=\"a,b\"",
            b"<sip:bob@192.0.2.4>;+sip.instance=\"<urn:uuid:1>",
            b"<tel:+1>;tag=1",
            b"Bob <sip:bob@192.0.2.4>",
            b"<>",
            b"*",
            b"",
        ] {
            // (What a registrar keeps of it: no answer for an error in its parameters, nor for
            // a URI the one pass does not read.)
            let one_pass = value
                .strip_prefix(b"<")
                .and_then(Uri::parse_bracketed)
                .is_some();
            let mut rest = value;
            let general = match parse_usual_contact(&mut rest) {
                Some(Ok(Contact::Addr(c))) if rest.is_empty() && one_pass => c.parts().ok(),
                _ => None,
            };
            assert_eq!(
                format!("{:?}", whole_usual_contact(value)),
                format!("{general:?}"),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn parse_like_reuses_only_the_same_text() {
        let from = NameAddr::parse(b"<sip:Bob@Example.com;transport=tcp>;tag=1").unwrap();
        for to in [
            &b"<sip:Bob@Example.com;transport=tcp>"[..],
            b"\"Bob\" <sip:Bob@Example.com;transport=tcp>;x=1",
            b"sip:Bob@Example.com;tag=2",
            b"<sip:bob@example.com;transport=tcp>",
            b"<sip:Bob@Example.com;transport=tcp;lr>",
            b"<sip:Bob@Example.com;transport=tcp",
            b"<sip:Bob@Example.com:5060>",
            b"<sip:Bob@Example.com;transport=tcp>>",
            b"<sip:Bob@Example.com;transport=tcp>;tag=2>",
            b"<sip:Bob@Example.com;transport=tcpx>",
            b"<sip:Bob@Example.com;transport=tc>",
            b"<sip:Bob@Example.com;transport=tcp",
        ] {
            assert_eq!(
                format!("{:?}", NameAddr::parse_like(to, &from.uri)),
                format!("{:?}", NameAddr::parse(to)),
                "{}",
                String::from_utf8_lossy(to)
            );
        }
    }
}
