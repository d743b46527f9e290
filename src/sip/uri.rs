//! SIP/SIPS/tel URIs (RFC 3261 §19.1, RFC 3966): zero-copy parsing, §19.1.4 comparison and
//! address-of-record canonicalisation (§10.3 step 5).

use std::fmt::Write as _;

use super::header::{
    host_port_prefix, offset_in, port_after, starts_with_words, walk_plain, Params,
};
use super::{byte_table, eq_ignore_case, find, host_len, run_len, Error};

/// URI scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:`
    Tel,
    /// Any other scheme (kept opaque).
    Other,
}

/// A URI view: the text and where its parts lie in it. For `Other` schemes only
/// [`Uri::scheme`] and [`Uri::raw`] are meaningful.
///
/// The parts are kept as offsets into the text rather than as slices of their own: the view
/// moves through `Result`s, name-addrs and contacts, and at 48 bytes it copies in a third of
/// the moves a view of seven slices takes. Only parsing builds one, so every part is a piece
/// of `raw`.
#[derive(Clone, Copy)]
pub struct Uri<'b> {
    raw: &'b [u8],
    /// End of the user part, which starts at `rest_at` (with [`USER`]).
    user_end: u32,
    /// End of the password, which starts after `user_end` (with [`PASSWORD`]).
    password_end: u32,
    host_start: u32,
    host_end: u32,
    /// The uri-parameters; a `?` and the headers follow them when they end before `raw` does.
    params_start: u32,
    params_end: u32,
    port: Option<u16>,
    scheme: Scheme,
    /// Offset of the text after the scheme's colon (sip, sips and tel).
    rest_at: u8,
    /// [`USER`], [`PASSWORD`], [`AOR_WRITTEN`], [`PLAIN`].
    flags: u8,
}

/// [`Uri::flags`]: the URI has a user part.
const USER: u8 = 1;
/// [`Uri::flags`]: the URI has a password.
const PASSWORD: u8 = 2;
/// [`Uri::flags`]: the one-pass parse read the URI ([`Uri::is_plain`]).
const PLAIN: u8 = 8;
/// [`Uri::flags`]: the text up to the end of the host is the canonical address-of-record (the
/// one-pass parse saw a lower-case `sip:`/`sips:`, a literal user part or none, no password, a
/// host without upper-case letters and no port).
const AOR_WRITTEN: u8 = 4;

impl std::fmt::Debug for Uri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uri")
            .field("scheme", &self.scheme)
            .field("raw", &self.raw)
            .field("user", &self.user())
            .field("password", &self.password())
            .field("host", &self.host())
            .field("port", &self.port)
            .field("params", &self.params())
            .field("headers", &self.headers())
            .finish()
    }
}

/// A length or offset within a URI's text as stored in the view (the text is at most
/// `u32::MAX` bytes long: `Uri::parse` checks).
fn at32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'b> Uri<'b> {
    /// Scheme.
    #[inline]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The whole URI as written.
    #[inline]
    pub fn raw(&self) -> &'b [u8] {
        self.raw
    }

    /// The text from `start` to `end`.
    #[inline]
    fn part(&self, start: u32, end: u32) -> &'b [u8] {
        self.raw
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// User part (escapes kept), for sip/sips; the number for tel.
    #[inline]
    pub fn user(&self) -> Option<&'b [u8]> {
        (self.flags & USER != 0).then(|| self.part(u32::from(self.rest_at), self.user_end))
    }

    /// Password (discouraged, §19.1.1).
    #[inline]
    pub fn password(&self) -> Option<&'b [u8]> {
        (self.flags & PASSWORD != 0)
            .then(|| self.part(self.user_end.saturating_add(1), self.password_end))
    }

    /// Host (IPv6 references keep their brackets); empty for tel and other schemes.
    #[inline]
    pub fn host(&self) -> &'b [u8] {
        self.part(self.host_start, self.host_end)
    }

    /// Whether the usual sip/sips URI's one-pass parse read it: then its text holds only
    /// user, host, port and plain parameter characters, none of them `>`, `"`, `,` or white
    /// space.
    #[inline]
    pub(crate) fn is_plain(&self) -> bool {
        self.flags & PLAIN != 0
    }

    /// Explicit port.
    #[inline]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// uri-parameters.
    #[inline]
    pub fn params(&self) -> Params<'b> {
        Params::new(self.part(self.params_start, self.params_end))
    }

    /// Headers after `?` (escapes kept).
    #[inline]
    pub fn headers(&self) -> &'b [u8] {
        self.raw
            .get(self.params_end as usize + 1..)
            .unwrap_or_default()
    }

    /// Whether headers follow a `?` (`!self.headers().is_empty()`, read from the offsets
    /// without building the slice).
    #[inline]
    pub fn has_headers(&self) -> bool {
        (self.params_end as usize) + 1 < self.raw.len()
    }

    /// This view over `raw` instead of its own text: the same parts when `raw` holds the same
    /// bytes (see [`UriMemo`]).
    #[inline(always)]
    fn over<'c>(&self, raw: &'c [u8]) -> Uri<'c> {
        Uri {
            raw,
            user_end: self.user_end,
            password_end: self.password_end,
            host_start: self.host_start,
            host_end: self.host_end,
            params_start: self.params_start,
            params_end: self.params_end,
            port: self.port,
            scheme: self.scheme,
            rest_at: self.rest_at,
            flags: self.flags,
        }
    }

    /// Parses a URI. Non-SIP schemes only need a valid `scheme:` prefix. Text longer than
    /// `u32::MAX` bytes is not a URI.
    pub fn parse(raw: &'b [u8]) -> Result<Self, Error> {
        // The usual `sip:` URI read in the one pass here; anything else (and a `sip:` URI the
        // one pass does not read) out of line, where the general parse's state does not crowd
        // this path's registers.
        if let (Ok(len), Some(p)) = (u32::try_from(raw.len()), raw.first_chunk::<4>()) {
            if eq_ignore_case(p, b"sip:") {
                let mut uri = Self::unread(raw, len, Scheme::Sip, 4);
                if uri.sip_plain(raw.get(4..).unwrap_or_default(), p == b"sip:") {
                    return Ok(uri);
                }
            }
        }
        Self::parse_general(raw)
    }

    /// [`Uri::parse`] of any URI.
    #[inline(never)]
    fn parse_general(raw: &'b [u8]) -> Result<Self, Error> {
        let Ok(len) = u32::try_from(raw.len()) else {
            return Err(Error::BadUri);
        };
        let (scheme, rest_at, written_lower) = match raw.first_chunk::<4>() {
            // The common case first: no scan for the colon, no scheme syntax check.
            Some(p) if eq_ignore_case(p, b"sip:") => (Scheme::Sip, 4, p == b"sip:"),
            _ => {
                let colon = find(b':', raw).ok_or(Error::BadUri)?;
                let scheme_text = raw.get(..colon).unwrap_or_default();
                let valid_scheme = scheme_text.first().is_some_and(u8::is_ascii_alphabetic)
                    && scheme_text
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
                if !valid_scheme {
                    return Err(Error::BadUri);
                }
                let scheme = if eq_ignore_case(scheme_text, b"sip") {
                    Scheme::Sip
                } else if eq_ignore_case(scheme_text, b"sips") {
                    Scheme::Sips
                } else if eq_ignore_case(scheme_text, b"tel") {
                    Scheme::Tel
                } else {
                    Scheme::Other
                };
                (scheme, colon + 1, scheme_text == b"sips")
            }
        };
        let rest = raw.get(rest_at..).unwrap_or_default();
        // (Only sip, sips and tel use `rest_at`: their colon is at 3 or 4.)
        let rest_at = u8::try_from(rest_at).unwrap_or(0);
        let mut uri = Self::unread(raw, len, scheme, rest_at);
        // (A `sip:` URI here is one the one pass in `parse` did not read.)
        if scheme == Scheme::Sips && uri.sip_plain(rest, written_lower) {
            return Ok(uri);
        }
        let seen = classify(rest);
        if rest.is_empty() || seen & BAD != 0 {
            return Err(Error::BadUri);
        }
        match scheme {
            Scheme::Other => {}
            Scheme::Tel => {
                let semi = find(b';', rest).unwrap_or(rest.len());
                uri.flags = USER;
                uri.user_end = at32(usize::from(rest_at) + semi);
                uri.params_start = uri.user_end;
            }
            Scheme::Sip | Scheme::Sips => {
                // The user part may contain ';' and '?' (RFC 4475 §3.1.1.2, §3.1.1.9) but not an
                // unescaped '@', and headers cannot contain '@': userinfo ends at the last '@'.
                // Each search below runs only when `classify` saw its character.
                let last_at = if seen & AT == 0 {
                    None
                } else {
                    memchr::memrchr(b'@', rest)
                };
                // (What the plain attempt set and this one does not.)
                uri.flags = 0;
                if !uri.sip_after_scheme(rest, last_at, seen) {
                    return Err(Error::BadUri);
                }
            }
        }
        Ok(uri)
    }

    /// Fills the fields of the usual sip/sips URI from `rest` (the text after the scheme),
    /// in one pass over it, without `classify`: an optional user part of literal characters
    /// ended by `@`, host, port and plain parameters ([`Params::is_plain`]), nothing else.
    /// The host, port and plain parameters hold no `@` or `?` (that `@` is the last one, there
    /// are no headers), literal user characters no `:` or `%` (no password, no escapes), and
    /// none of them is a character `classify` calls bad: where this answers true the general
    /// parse finds the same fields. False says nothing about validity. `written_lower`: the
    /// scheme is written in lower case (for [`AOR_WRITTEN`]).
    fn sip_plain(&mut self, rest: &'b [u8], written_lower: bool) -> bool {
        self.sip_plain_end(rest, written_lower) == Some(0)
    }

    /// [`Uri::sip_plain`] of the text `rest` starts with: how much of `rest` is left after
    /// the parts it reads (the parameters end where one does not start with `;`). `None`
    /// when the parts it reads are malformed.
    #[inline(always)]
    fn sip_plain_end(&mut self, rest: &'b [u8], written_lower: bool) -> Option<usize> {
        let (host, lower, run) = user_run(rest);
        // (Offsets by index arithmetic: `parse` checked that they fit in u32.)
        let base = usize::from(self.rest_at);
        let (host_at, host_port) = match rest.get(run) {
            Some(b'@') if run > 0 => {
                self.flags = USER;
                self.user_end = (base + run) as u32;
                let after = rest.get(run + 1..).unwrap_or_default();
                (run + 1, host_port_cased(after))
            }
            _ if host > 0 => {
                let (host, after) = rest.split_at(host);
                (0, port_after(host, after).map(|(h, p, a)| (h, p, a, lower)))
            }
            _ => (0, host_port_prefix(rest).map(|(h, p, a)| (h, p, a, false))),
        };
        let (host, port, params, lower) = host_port?;
        self.plain_from_host(host_at, (host, port, params), written_lower && lower)
    }

    /// The rest of [`Uri::sip_plain_end`] once the host (at `host_at` in the text after the
    /// scheme), the port and the text after them are read: the fields set, the parameters
    /// walked. `lower`: the scheme and the host are written in lower case.
    #[inline(always)]
    fn plain_from_host(
        &mut self,
        host_at: usize,
        (host, port, params): (&[u8], Option<u16>, &'b [u8]),
        lower: bool,
    ) -> Option<usize> {
        // (Offsets by index arithmetic: `parse` checked that they fit in u32.)
        let base = usize::from(self.rest_at);
        self.host_start = (base + host_at) as u32;
        self.host_end = (base + host_at + host.len()) as u32;
        self.port = port;
        // (`params` runs to the end of `raw`.)
        self.params_start = (self.raw.len() - params.len()) as u32;
        self.flags |= if lower && port.is_none() {
            PLAIN | AOR_WRITTEN
        } else {
            PLAIN
        };
        if params.is_empty() {
            return Some(0);
        }
        walk_plain(usual_transport(params), false, |_, _| {}).map(<[u8]>::len)
    }

    /// A URI of `raw` (`len` bytes) whose parts are not read yet: each empty at the end of the
    /// text, the scheme's text ending at `rest_at`.
    #[inline(always)]
    fn unread(raw: &'b [u8], len: u32, scheme: Scheme, rest_at: u8) -> Self {
        Self {
            raw,
            user_end: 0,
            password_end: 0,
            host_start: len,
            host_end: len,
            params_start: len,
            params_end: len,
            port: None,
            scheme,
            rest_at,
            flags: 0,
        }
    }

    /// The usual URI of a name-addr read from `inner`, the text after its `<`, in the one pass
    /// [`Uri::parse`] makes over a `sip:` URI: that URI, the text up to the first `>`, and
    /// where that `>` is, when the one pass reads all of the text before it (its characters are
    /// never `>`: the `>` after it is the first one). `None` leaves the text to the search for
    /// the `>` and [`Uri::parse`], which then finds the same URI where this finds one.
    pub(crate) fn parse_bracketed(inner: &'b [u8]) -> Option<(Self, usize)> {
        let len = u32::try_from(inner.len()).ok()?;
        let p = inner.first_chunk::<4>()?;
        if !eq_ignore_case(p, b"sip:") {
            return None;
        }
        let mut uri = Self::unread(inner, len, Scheme::Sip, 4);
        let left = uri.sip_plain_end(inner.get(4..).unwrap_or_default(), p == b"sip:")?;
        uri.bracketed_at(inner.len() - left)
    }

    /// The URI read so far ending at `gt`, when the text has a `>` there.
    #[inline(always)]
    fn bracketed_at(mut self, gt: usize) -> Option<(Self, usize)> {
        if self.raw.get(gt) != Some(&b'>') {
            return None;
        }
        self.raw = self.raw.get(..gt)?;
        self.params_end = gt as u32;
        Some((self, gt))
    }

    /// [`Uri::parse_bracketed`] of a URI that usually repeats the scheme and user part of
    /// `known` (a contact's user is usually its From's) and names the host `host` with a port
    /// (a desk phone's contact is usually at its top Via's sent-by): then those parts are
    /// compared, not read. The same answer as [`Uri::parse_bracketed`] in every case.
    #[inline(always)]
    pub(crate) fn parse_bracketed_like(
        inner: &'b [u8],
        known: &Uri<'_>,
        host: &[u8],
    ) -> Option<(Self, usize)> {
        match Self::bracketed_known(inner, known, host) {
            Some(read) => Some(read),
            None => Self::parse_bracketed(inner),
        }
    }

    /// [`Uri::parse_bracketed_like`] when `inner` starts with `known`'s text up to its host
    /// (`sip:`, a user part, `@`), then `host` and a `:`; `None` otherwise (which says nothing
    /// about the text).
    ///
    /// What the one pass reads there: the one-pass parse read `known`'s user part, so it is
    /// literal user characters, and so are host characters: its run ends at the `@` after
    /// it. `host` was read as a host ends (at a byte that cannot continue it; a `:` cannot)
    /// and the port is read as the one pass reads it. With a port the URI is no
    /// address-of-record as written, whatever the case of its scheme and host.
    #[inline(always)]
    fn bracketed_known(inner: &'b [u8], known: &Uri<'_>, host: &[u8]) -> Option<(Self, usize)> {
        if known.flags & (PLAIN | USER) != PLAIN | USER || known.scheme != Scheme::Sip {
            return None;
        }
        let userinfo = known.raw.get(..known.host_start as usize)?;
        let len = u32::try_from(inner.len()).ok()?;
        let after = inner.get(userinfo.len()..)?;
        if !starts_with_words(inner, userinfo)
            || !starts_with_words(after, host)
            || after.get(host.len()) != Some(&b':')
        {
            return None;
        }
        let mut uri = Self::unread(inner, len, Scheme::Sip, 4);
        uri.flags = USER;
        uri.user_end = known.user_end;
        let (host, after_host) = after.split_at_checked(host.len())?;
        let host_port = port_after(host, after_host)?;
        // (The user part and its `@` follow the four bytes of the scheme.)
        let left = uri.plain_from_host(userinfo.len() - 4, host_port, false)?;
        uri.bracketed_at(inner.len() - left)
    }

    /// [`Uri::parse_bracketed`] of the usual URI of a name-addr naming a user at the host of
    /// `known`: `sip:`, a user part and `@`, then that host and the `>` (a REGISTER's From
    /// names its user at the registrar's domain, the Request-URI's host). The host is compared,
    /// not read. `None` for any other text, which says nothing about it.
    ///
    /// What the one pass reads there: the user part as it reads it; `known`'s host, read by the
    /// one pass as lower-case host characters with no port (its [`AOR_WRITTEN`]), is a host
    /// run that the `>` ends, with no port or parameters after it: with the lower-case scheme
    /// the URI is the address-of-record as written.
    #[inline(always)]
    pub(crate) fn parse_bracketed_at_host(
        inner: &'b [u8],
        known: &Uri<'_>,
    ) -> Option<(Self, usize)> {
        let host = known.host();
        if known.flags & (PLAIN | AOR_WRITTEN) != PLAIN | AOR_WRITTEN || host.is_empty() {
            return None;
        }
        let len = u32::try_from(inner.len()).ok()?;
        let rest = inner.strip_prefix(b"sip:")?;
        let (_, _, run) = user_run(rest);
        let after = match rest.get(run..) {
            Some([b'@', after @ ..]) if run > 0 => after,
            _ => return None,
        };
        // (`bracketed_at` checks the `>`.)
        if !starts_with_words(after, host) {
            return None;
        }
        // (Offsets by index arithmetic: `len` fits in u32.)
        let host_start = 4 + run + 1;
        let gt = host_start + host.len();
        let mut uri = Self::unread(inner, len, Scheme::Sip, 4);
        uri.flags = USER | PLAIN | AOR_WRITTEN;
        uri.user_end = (4 + run) as u32;
        uri.host_start = host_start as u32;
        uri.host_end = gt as u32;
        uri.params_start = gt as u32;
        uri.bracketed_at(gt)
    }

    /// Fills the fields of a sip/sips URI from `rest` (the text after the scheme), where
    /// userinfo ends at `at` and `seen` is `classify(rest)`. False when the text is not such
    /// a URI.
    fn sip_after_scheme(&mut self, rest: &'b [u8], at: Option<usize>, seen: u8) -> bool {
        let after_user = match at {
            Some(at) => {
                let userinfo = rest.get(..at).unwrap_or_default();
                let user_len = match find_if(seen & COLON, b':', userinfo) {
                    Some(c) => {
                        self.flags |= PASSWORD;
                        self.password_end = at32(usize::from(self.rest_at) + at);
                        c
                    }
                    None => at,
                };
                let user = userinfo.get(..user_len).unwrap_or_default();
                if user.is_empty() || (seen & PERCENT != 0 && !valid_escapes(user)) {
                    return false;
                }
                self.flags |= USER;
                self.user_end = at32(usize::from(self.rest_at) + user_len);
                rest.get(at + 1..).unwrap_or_default()
            }
            None => rest,
        };
        let q = find_if(seen & QUERY, b'?', after_user).unwrap_or(after_user.len());
        let host_part = after_user.get(..q).unwrap_or_default();
        self.params_end = at32(offset_in(self.raw, host_part) + host_part.len());
        // Only parameters may follow the host and port.
        let Some((host, port, params)) = host_port_prefix(host_part) else {
            return false;
        };
        if !params.is_empty() && params.first() != Some(&b';') {
            return false;
        }
        self.host_start = at32(offset_in(self.raw, host));
        self.host_end = at32(offset_in(self.raw, host) + host.len());
        self.port = port;
        self.params_start = at32(offset_in(self.raw, params));
        (params.is_empty() || Params::new(params).validate())
            && (seen & PERCENT == 0 || valid_escapes(self.headers()))
    }

    /// RFC 3261 §19.1.4 equality for sip/sips (and exact comparison of tel numbers): scheme,
    /// user and password case-sensitive after unescaping, host case-insensitive, an explicit
    /// port differs from an absent one, `user`/`ttl`/`method`/`maddr`/`transport` must match when
    /// either side has them, other parameters only when both sides have them, headers must all
    /// match. Other schemes compare case-insensitively as a whole.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        match self.scheme {
            Scheme::Other => return self.raw.eq_ignore_ascii_case(other.raw),
            Scheme::Tel => {
                return unescaped_eq(
                    self.user().unwrap_or_default(),
                    other.user().unwrap_or_default(),
                    false,
                )
            }
            Scheme::Sip | Scheme::Sips => {}
        }
        let opt_eq = |a: Option<&[u8]>, b: Option<&[u8]>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => unescaped_eq(a, b, false),
            _ => false,
        };
        if !opt_eq(self.user(), other.user())
            || !opt_eq(self.password(), other.password())
            || !unescaped_eq(self.host(), other.host(), true)
            || self.port != other.port
        {
            return false;
        }
        const MUST_MATCH: [&[u8]; 5] = [b"user", b"ttl", b"method", b"maddr", b"transport"];
        let (params, other_params) = (self.params(), other.params());
        for (name, value) in params.iter() {
            match other_params.get(name) {
                Some(v)
                    if !unescaped_eq(value.unwrap_or_default(), v.unwrap_or_default(), true) =>
                {
                    return false
                }
                Some(_) => {}
                None if MUST_MATCH.iter().any(|m| m.eq_ignore_ascii_case(name)) => return false,
                None => {}
            }
        }
        for (name, _) in other_params.iter() {
            if params.get(name).is_none() && MUST_MATCH.iter().any(|m| m.eq_ignore_ascii_case(name))
            {
                return false;
            }
        }
        headers_equal(self.headers(), other.headers())
    }

    /// Appends the canonical address-of-record: `sip:user@host[:port]` with scheme and host
    /// lower-cased, the user unescaped and re-escaped canonically (only characters that need it,
    /// upper-case hex), parameters and headers dropped; `tel:number` for tel URIs. Err for
    /// other schemes.
    pub fn write_aor(&self, out: &mut String) -> Result<(), Error> {
        if let Some(text) = self.aor_or_write(out)? {
            // ASCII: each byte is its own char.
            out.extend(text.iter().map(|&b| char::from(b)));
        }
        Ok(())
    }

    /// [`Uri::write_aor`] without the copy where it can be avoided: usually the URI's own text
    /// up to the end of its host is already the canonical AOR, and that text (ASCII) is
    /// returned; otherwise the AOR is appended to `out` and the answer is `None`.
    pub fn aor_or_write(&self, out: &mut String) -> Result<Option<&'b [u8]>, Error> {
        match self.aor_as_written() {
            Some(text) => Ok(Some(text)),
            None => self.write_aor_general(out).map(|()| None),
        }
    }

    /// The start of `raw` when it is the canonical address-of-record: scheme and host already
    /// lower-case, a user part that needs no re-escaping, no password, no port. The one-pass
    /// parse knows that as it goes ([`AOR_WRITTEN`]); other URIs are checked part by part.
    #[inline]
    fn aor_as_written(&self) -> Option<&'b [u8]> {
        if self.flags & AOR_WRITTEN != 0 {
            return self.raw.get(..self.host_end as usize);
        }
        self.aor_as_written_general()
    }

    /// [`Uri::aor_as_written`] checked part by part (all of it is ASCII: literal user
    /// characters, a parsed host).
    #[inline(never)]
    fn aor_as_written_general(&self) -> Option<&'b [u8]> {
        // (The scheme compared as one word, without a call.)
        let scheme_written = match self.scheme {
            Scheme::Sip => self.raw.first_chunk::<4>() == Some(b"sip:"),
            Scheme::Sips => self.raw.first_chunk::<5>() == Some(b"sips:"),
            Scheme::Tel | Scheme::Other => return None,
        };
        if self.flags & PASSWORD != 0 || self.port.is_some() || !scheme_written {
            return None;
        }
        // The host follows the scheme, or the user part and its '@'.
        let host_at = match self.user() {
            Some(user) if literal_user(user) => self.user_end.saturating_add(1),
            Some(_) => return None,
            None => u32::from(self.rest_at),
        };
        if self.host_start != host_at || !no_upper(self.host()) {
            return None;
        }
        self.raw.get(..self.host_end as usize)
    }

    /// [`Uri::write_aor`] built piece by piece.
    fn write_aor_general(&self, out: &mut String) -> Result<(), Error> {
        match self.scheme {
            Scheme::Sip => out.push_str("sip:"),
            Scheme::Sips => out.push_str("sips:"),
            Scheme::Tel => {
                out.push_str("tel:");
                canonical_user(self.user().unwrap_or_default(), out);
                return Ok(());
            }
            Scheme::Other => return Err(Error::BadUri),
        }
        if let Some(user) = self.user() {
            canonical_user(user, out);
            out.push('@');
        }
        // A parsed host is ASCII: pushed byte by byte, lowercased, without a UTF-8 check.
        let host = self.host();
        out.reserve(host.len());
        out.extend(host.iter().map(|&b| char::from(b.to_ascii_lowercase())));
        if let Some(port) = self.port {
            let _ = write!(out, ":{port}");
        }
        Ok(())
    }
}

/// The last Request-URI a parse read and its view, so that the next request naming the same
/// URI — a registrar's requests name its domain, `sip:example.com`, nearly every time — has
/// its text compared, not read again: the view of the same bytes is the same view (a `Uri` is
/// its text and offsets into it, and [`Uri::parse`] reads nothing but the text).
#[derive(Clone, Copy, Debug)]
pub(crate) struct UriMemo {
    /// The text, its first `len` bytes.
    text: [u8; Self::CAP],
    /// How many bytes of `text` the URI has; past `CAP` when nothing is remembered (then no
    /// text matches, the empty one included).
    len: usize,
    /// The view of that text, without the text.
    view: Uri<'static>,
}

impl Default for UriMemo {
    fn default() -> Self {
        Self {
            text: [0; Self::CAP],
            len: usize::MAX,
            view: Uri::unread(&[], 0, Scheme::Other, 0),
        }
    }
}

impl UriMemo {
    /// The longest text remembered (a domain's URI is usually far shorter).
    const CAP: usize = 48;

    /// [`Uri::parse`] of `raw` written into `slot` (left as it is on a failure, which is
    /// answered): the remembered view when `raw` is the remembered text, written there in
    /// place (not through a `Result` first); any other text parsed, and remembered when it
    /// parses and fits.
    #[inline(always)]
    pub(crate) fn parse_into<'b>(
        &mut self,
        raw: &'b [u8],
        slot: &mut Option<Uri<'b>>,
    ) -> Option<Error> {
        match self.text.get(..self.len) {
            Some(text) if crate::bytes::same(text, raw) => {
                *slot = Some(self.view.over(raw));
                None
            }
            _ => match self.parse_new(raw) {
                Ok(uri) => {
                    *slot = Some(uri);
                    None
                }
                Err(e) => Some(e),
            },
        }
    }

    /// [`Uri::parse`] of a text not remembered (out of line).
    #[inline(never)]
    fn parse_new<'b>(&mut self, raw: &'b [u8]) -> Result<Uri<'b>, Error> {
        let uri = Uri::parse(raw)?;
        if let Some(text) = self.text.get_mut(..raw.len()) {
            text.copy_from_slice(raw);
            self.len = raw.len();
            self.view = uri.over(&[]);
        }
        Ok(uri)
    }
}

/// `params` past a first `;transport=udp` (or `tcp`, `tls`) as a contact's URI usually writes
/// it, when a `>`, a `;` or the end follows: the parameter the plain walk would read there
/// (neither byte continues its value), without the scans of its name and value.
#[inline(always)]
fn usual_transport(params: &[u8]) -> &[u8] {
    // (Its 14 bytes as two overlapping words, `;transpo` and `port=udp`, compared whole: array
    // patterns compile to a compare per byte.)
    let word = |at: usize| params.get(at..).and_then(<[u8]>::first_chunk::<8>);
    if let (Some(name), Some(value), Some(rest)) = (word(0), word(6), params.get(14..)) {
        if name == b";transpo"
            && (value == b"port=udp" || value == b"port=tcp" || value == b"port=tls")
            && matches!(rest.first(), None | Some(b'>' | b';'))
        {
            return rest;
        }
    }
    params
}

/// The run of literal user characters `rest` (a URI's text after its scheme) starts with, as
/// the one pass reads it: host characters are literal user characters too, so the run of them
/// is read first — the host unless an `@` (maybe after other user characters) ends a user
/// part. Its length, whether it has no upper-case letter, and the length of the whole run.
#[inline(always)]
fn user_run(rest: &[u8]) -> (usize, bool, usize) {
    let (host, lower) = host_run(rest);
    let run = match rest.get(host) {
        None | Some(b'@') => host,
        Some(_) => host + run_len(rest.get(host..).unwrap_or_default(), &USER_LITERAL),
    };
    (host, lower, run)
}

/// Characters of a host name without upper-case letters.
const LOWER_HOST: [bool; 256] = byte_table!(|b| b.is_ascii_lowercase()
    || b.is_ascii_digit()
    || matches!(b, b'.' | b'-' | b'_'));

/// [`host_len`] of `s`, and whether that run holds no upper-case letter: the lower-case run
/// inline, an upper-case letter continued through a call.
#[inline(always)]
fn host_run(s: &[u8]) -> (usize, bool) {
    let n = lower_host_len(s);
    match s.get(n) {
        Some(b) if b.is_ascii_uppercase() => {
            (n + upper_host_len(s.get(n..).unwrap_or_default()), false)
        }
        _ => (n, true),
    }
}

/// The run of [`LOWER_HOST`] characters `s` starts with.
#[inline(always)]
fn lower_host_len(s: &[u8]) -> usize {
    host_chars_len(s, 0, |rest| run_len(rest, &LOWER_HOST))
}

/// [`host_len`] of `s` (host characters of either case).
#[inline(always)]
pub(crate) fn any_host_len(s: &[u8]) -> usize {
    host_chars_len(s, 0x20, host_len)
}

/// The run of host characters `s` starts with, upper-case letters among them when `case` is
/// 0x20 (the case bit), not when it is 0; `run` reads such a run. A host (or user part)
/// usually ends within 16 bytes: when `s` has them, they are classified at once, and `run`
/// reads on only after 16 of them; text of 8 to 15 bytes is classified as its first and its
/// last eight (which overlap), shorter text read by `run`.
#[inline(always)]
fn host_chars_len(s: &[u8], case: u8, run: impl FnOnce(&[u8]) -> usize) -> usize {
    if let Some(block) = s.first_chunk::<16>() {
        return match (!host_bits(*block, case)).trailing_zeros() as usize {
            16 => 16 + run(s.get(16..).unwrap_or_default()),
            n => n,
        };
    }
    let Some(block) = super::ends_block(s) else {
        return run(s);
    };
    let bits = host_bits(block, case);
    // A bit per byte of `s`: the last eight's bits moved to where those bytes are. None is
    // set from `s.len()` on, so the run is at most that long.
    let bits = bits & 0xff | (bits >> 8) << (s.len() - 8);
    (!bits).trailing_zeros() as usize
}

/// A bit per byte of `block` that is a host character (the lowest bit for its first byte):
/// alphanumeric, `.`, `-` or `_`, upper-case letters only with `case` 0x20 (letters are
/// compared with that bit set). By SSE2 compares ([`plain_mask`] and one for `_`).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn host_bits(block: [u8; 16], case: u8) -> u32 {
    use super::{plain_mask, splat};
    use safe_arch::{cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i};
    let x = m128i::from(block);
    let bits = plain_mask(x, case) | cmp_eq_mask_i8_m128i(x, splat(b'_'));
    // The mask has 16 bits: the i32 is never negative.
    move_mask_i8_m128i(bits) as u32
}

/// [`host_bits`] on other targets.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn host_bits(block: [u8; 16], case: u8) -> u32 {
    block.iter().rev().fold(0, |bits, &b| {
        let b = if b.is_ascii_uppercase() { b | case } else { b };
        bits << 1 | u32::from(LOWER_HOST[usize::from(b)])
    })
}

/// [`host_len`] once an upper-case letter interrupted the lower-case run (out of line).
#[inline(never)]
fn upper_host_len(s: &[u8]) -> usize {
    host_len(s)
}

/// A host, its port, the text after them, and whether the host holds no upper-case letter.
type CasedHostPort<'s> = (&'s [u8], Option<u16>, &'s [u8], bool);

/// [`host_port_prefix`] and whether the host holds no upper-case letter (false for an IPv6
/// reference, which is not looked at for that).
#[inline(always)]
fn host_port_cased(s: &[u8]) -> Option<CasedHostPort<'_>> {
    let (n, lower) = host_run(s);
    if n == 0 {
        return host_port_prefix(s).map(|(h, p, a)| (h, p, a, false));
    }
    let (host, after) = s.split_at(n);
    port_after(host, after).map(|(h, p, a)| (h, p, a, lower))
}

/// Byte classes `classify` reports for the text after a URI's scheme.
const BAD: u8 = 1; // a control character, SP or DEL: never inside a URI
const COLON: u8 = 2;
const QUERY: u8 = 4;
const PERCENT: u8 = 8;
const AT: u8 = 16;

const URI_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            0..=b' ' | 0x7f => BAD,
            b':' => COLON,
            b'?' => QUERY,
            b'%' => PERCENT,
            b'@' => AT,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// One pass over a URI's text: the classes of the characters it contains. Most URIs
/// (`sip:alice@example.com`) have no `:`, `?` or `%`, so the searches for them are
/// skipped; the pass has no early exit so it compiles to a short branch-free loop.
fn classify(s: &[u8]) -> u8 {
    s.iter()
        .fold(0, |seen, &b| seen | URI_CLASS[usize::from(b)])
}

/// [`find`], skipped when `classify` did not see the needle (`seen_bit` is 0).
fn find_if(seen_bit: u8, needle: u8, hay: &[u8]) -> Option<usize> {
    if seen_bit == 0 {
        None
    } else {
        find(needle, hay)
    }
}

/// `%HH` sequences are well formed.
fn valid_escapes(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = find(b'%', s.get(i..).unwrap_or_default()) {
        i += off;
        match s.get(i + 1..i + 3) {
            Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
            _ => return false,
        }
    }
    true
}

/// Iterates the bytes of `s` with `%HH` decoded.
fn unescaped(s: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *s.get(i)?;
        if b == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                i += 3;
                return Some(v);
            }
        }
        i += 1;
        Some(b)
    })
}

fn unescaped_eq(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    let mut x = unescaped(a);
    let mut y = unescaped(b);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) if p == q || (ignore_case && p.eq_ignore_ascii_case(&q)) => {}
            _ => return false,
        }
    }
}

/// Headers compare as unordered sets of `name=value`, all of which must match (§19.1.4).
fn headers_equal(a: &[u8], b: &[u8]) -> bool {
    let items = |s: &[u8]| s.split(|&c| c == b'&').filter(|i| !i.is_empty()).count();
    if items(a) != items(b) {
        return false;
    }
    a.split(|&c| c == b'&')
        .filter(|i| !i.is_empty())
        .all(|item| {
            let (name, value) = match find(b'=', item) {
                Some(eq) => (
                    item.get(..eq).unwrap_or_default(),
                    item.get(eq + 1..).unwrap_or_default(),
                ),
                None => (item, &b""[..]),
            };
            b.split(|&c| c == b'&').any(|other| {
                let (n, v) = match find(b'=', other) {
                    Some(eq) => (
                        other.get(..eq).unwrap_or_default(),
                        other.get(eq + 1..).unwrap_or_default(),
                    ),
                    None => (other, &b""[..]),
                };
                unescaped_eq(name, n, true) && unescaped_eq(value, v, false)
            })
        })
}

/// Characters a canonical user part keeps literally (unreserved and user-unreserved, §25.1).
const USER_LITERAL: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'-' | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')'
            | b'&'
            | b'='
            | b'+'
            | b'$'
            | b','
            | b';'
            | b'?'
            | b'/'
    ));

/// Bytes a lower-case host may hold (a parsed host is ASCII).
const NOT_UPPER: [bool; 256] = byte_table!(|b| !b.is_ascii_uppercase());

/// No ASCII upper-case letter in `s`. Eight bytes per step as one word (the words covering
/// `s`) when they are all ASCII: a byte below 0x80 plus 0x3f has its top bit set from `A` on,
/// plus 0x25 from past `Z` on, and no sum carries into the next byte. Shorter or non-ASCII
/// text byte by byte.
fn no_upper(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOP: u64 = 0x80 * ONES;
    if let Some(words) = crate::bytes::covering_words(s) {
        let (bytes, upper) = words.fold((0, 0), |(bytes, upper), w| {
            let up = w.wrapping_add(0x3f * ONES) & !w.wrapping_add(0x25 * ONES);
            (bytes | w, upper | up)
        });
        if bytes & TOP == 0 {
            return upper & TOP == 0;
        }
    }
    run_len(s, &NOT_UPPER) == s.len()
}

/// A user part that is already canonical: nothing escaped and nothing to escape.
fn literal_user(user: &[u8]) -> bool {
    run_len(user, &USER_LITERAL) == user.len()
}

/// user-unreserved and unreserved characters (§25.1) stay literal; everything else is escaped.
fn canonical_user(user: &[u8], out: &mut String) {
    // The common case: nothing escaped and nothing to escape, the user part is copied as is
    // (byte by byte: literal characters are ASCII, a UTF-8 check would cost more).
    if literal_user(user) {
        out.reserve(user.len());
        out.extend(user.iter().map(|&b| char::from(b)));
        return;
    }
    for b in unescaped(user) {
        if USER_LITERAL[usize::from(b)] {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::header::split_host_port;

    #[test]
    fn parses_sip_uris() {
        let u = Uri::parse(
            b"sips:alice:pw@Atlanta.com:5061;transport=tcp;lr?subject=project%20x&priority=urgent",
        )
        .unwrap();
        assert_eq!(u.scheme(), Scheme::Sips);
        assert_eq!(u.user(), Some(&b"alice"[..]));
        assert_eq!(u.password(), Some(&b"pw"[..]));
        assert_eq!(u.host(), b"Atlanta.com");
        assert_eq!(u.port(), Some(5061));
        assert_eq!(u.params().get(b"lr"), Some(None));
        assert_eq!(u.headers(), b"subject=project%20x&priority=urgent");
        let u = Uri::parse(b"sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host(), b"example.com");
        let u = Uri::parse(b"sip:[2001:db8::10:5070]").unwrap();
        assert_eq!((u.host(), u.port()), (&b"[2001:db8::10:5070]"[..], None));
        let u = Uri::parse(b"sip:[2001:db8::10]:5070;transport=udp").unwrap();
        assert_eq!((u.host(), u.port()), (&b"[2001:db8::10]"[..], Some(5070)));
        let u = Uri::parse(b"tel:+1-972-555-2222;phone-context=x").unwrap();
        assert_eq!(u.user(), Some(&b"+1-972-555-2222"[..]));
        assert_eq!(u.params().raw(), b";phone-context=x");
        let u = Uri::parse(b"sip:u:@h").unwrap();
        assert_eq!((u.user(), u.password()), (Some(&b"u"[..]), Some(&b""[..])));
        let u = Uri::parse(b"mailto:bob@biloxi.example.com").unwrap();
        assert_eq!(u.scheme(), Scheme::Other);
        assert_eq!(
            (u.user(), u.host(), u.headers()),
            (None, &b""[..], &b""[..])
        );
        for bad in [
            &b"sip:2001:db8::10"[..],
            b"sip:",
            b"<sip:a@b>",
            b"sip:a@b c",
            b"nocolon",
            b"sip:a@",
            b"sip:%zz@h",
            b"sip:h:70000",
            b"1sip:a@b",
        ] {
            assert!(Uri::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// The word-wise upper-case check answers as the byte table does: every byte at every
    /// place of every length up to 20.
    #[test]
    fn no_upper_matches_table() {
        for len in 1..=20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let want = s.iter().all(|&b| NOT_UPPER[usize::from(b)]);
                    assert_eq!(no_upper(&s), want, "{b:#x} at {at} of {len}");
                }
            }
        }
        assert!(no_upper(b""));
        assert!(!no_upper(b"example.coM\xe9"));
        assert!(no_upper(b"example.com\xe9\xc9"));
    }

    /// The equal and non-equal examples of RFC 3261 §19.1.4.
    #[test]
    fn rfc3261_19_1_4_examples() {
        let equal: &[(&[u8], &[u8])] = &[
            (
                b"sip:%61lice@atlanta.com;transport=TCP",
                b"sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            (
                b"sip:carol@chicago.com",
                b"sip:carol@chicago.com;newparam=5",
            ),
            (
                b"sip:carol@chicago.com",
                b"sip:carol@chicago.com;security=on",
            ),
            (
                b"sip:carol@chicago.com;newparam=5",
                b"sip:carol@chicago.com;security=on",
            ),
            (
                b"sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                b"sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                b"sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                b"sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ];
        for (a, b) in equal {
            let (x, y) = (Uri::parse(a).unwrap(), Uri::parse(b).unwrap());
            assert!(
                x.equivalent(&y) && y.equivalent(&x),
                "{} == {}",
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            );
        }
        let different: &[(&[u8], &[u8])] = &[
            (
                b"SIP:ALICE@AtLanTa.CoM;Transport=udp",
                b"sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            (b"sip:bob@biloxi.com", b"sip:bob@biloxi.com:5060"),
            (b"sip:bob@biloxi.com", b"sip:bob@biloxi.com;transport=udp"),
            (
                b"sip:bob@biloxi.com",
                b"sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                b"sip:carol@chicago.com",
                b"sip:carol@chicago.com?Subject=next%20meeting",
            ),
            (b"sip:bob@phone21.boxesbybob.com", b"sip:bob@192.0.2.4"),
            (b"sip:bob@biloxi.com", b"sips:bob@biloxi.com"),
        ];
        for (a, b) in different {
            let (x, y) = (Uri::parse(a).unwrap(), Uri::parse(b).unwrap());
            assert!(
                !x.equivalent(&y) && !y.equivalent(&x),
                "{} != {}",
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn aor_canonicalisation() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"SIP:Bob@BILOXI.example.COM;transport=tcp?x=y",
                "sip:Bob@biloxi.example.com",
            ),
            (b"sips:b%6fb@example.com:5061", "sips:bob@example.com:5061"),
            (
                b"sip:null-%00-null@example.com",
                "sip:null-%00-null@example.com",
            ),
            (b"sip:example.com", "sip:example.com"),
            (b"tel:+15551234;phone-context=x", "tel:+15551234"),
        ];
        for (raw, want) in cases {
            let mut s = String::new();
            Uri::parse(raw).unwrap().write_aor(&mut s).unwrap();
            assert_eq!(&s, want);
        }
        let mut s = String::new();
        assert!(Uri::parse(b"isbn:2983792873")
            .unwrap()
            .write_aor(&mut s)
            .is_err());
    }

    proptest::proptest! {
        #[test]
        fn aor_as_written_matches_general(
            scheme in proptest::sample::select(vec!["sip:", "SIPS:", "sips:", "Sip:", "tel:"]),
            parts in proptest::collection::vec(proptest::sample::select(PIECES), 0..12),
        ) {
            let text = format!("{scheme}{}", parts.concat());
            if let Ok(uri) = Uri::parse(text.as_bytes()) {
                let (mut got, mut want) = (String::new(), String::new());
                let got_r = uri.write_aor(&mut got);
                let want_r = uri.write_aor_general(&mut want);
                proptest::prop_assert_eq!((got_r, &got), (want_r, &want), "{}", text);
                // The text handed over without a copy is that AOR, in ASCII.
                let mut out = String::new();
                if let Ok(Some(text)) = uri.aor_or_write(&mut out) {
                    proptest::prop_assert!(text.is_ascii() && out.is_empty());
                    proptest::prop_assert_eq!(text, want.as_bytes());
                }
                proptest::prop_assert_eq!(uri.aor_as_written(), uri.aor_as_written_general());
                proptest::prop_assert_eq!(uri.has_headers(), !uri.headers().is_empty());
            }
        }
    }

    #[test]
    fn aor_as_written_cases() {
        let uri = Uri::parse(b"sip:bob@example.com;lr").unwrap();
        assert_eq!(uri.aor_as_written(), Some(&b"sip:bob@example.com"[..]));
        // (as written, known while parsing)
        for (raw, as_written, known) in [
            (&b"sip:Bob@EXAMPLE.com"[..], false, false),
            (b"sip:b%6fb@example.com", false, false),
            (b"sip:bob:pw@example.com", false, false),
            (b"sip:bob@example.com:5060", false, false),
            (b"SIP:bob@example.com", false, false),
            (b"sips:bob@example.com?x=y", true, false),
            (b"sip:example.com", true, true),
            (b"sips:example.com;lr", true, true),
            (b"sip:Bob@example.com", true, true),
            (b"sip:bob@Example.com", false, false),
            (b"sip:bob@[::1]", true, false),
            (b"sip:bob@[::A]", false, false),
            (b"sip:u;x=1@h;lr", true, true),
            (b"sip:bob@example.com?", true, false),
            (b"sip:bob@example.com;lr?x=y", true, false),
        ] {
            let uri = Uri::parse(raw).unwrap();
            let text = String::from_utf8_lossy(raw);
            assert_eq!(uri.aor_as_written().is_some(), as_written, "{text}");
            assert_eq!(uri.flags & AOR_WRITTEN != 0, known, "{text}");
            assert_eq!(uri.aor_as_written(), uri.aor_as_written_general(), "{text}");
            assert_eq!(uri.has_headers(), raw.ends_with(b"?x=y"), "{text}");
            assert_eq!(uri.has_headers(), !uri.headers().is_empty(), "{text}");
        }
    }

    proptest::proptest! {
        /// The one-pass parse's claim that the text is the AOR agrees with the check part by
        /// part.
        #[test]
        fn aor_written_flag_matches_general(
            scheme in proptest::sample::select(vec!["sip:", "SIP:", "sips:", "Sips:", "sIp:"]),
            parts in proptest::collection::vec(proptest::sample::select(&[
                "u1", "Bob", "@", "h.example", "H", ":", "5060", "[::1]", "[::A]", ";lr",
                ";transport=udp", "?x=y", "%41", "_", "-", ".", ";", "=", "!",
            ][..]), 0..8),
        ) {
            let text = format!("{scheme}{}", parts.concat());
            if let Ok(uri) = Uri::parse(text.as_bytes()) {
                proptest::prop_assert_eq!(uri.aor_as_written(), uri.aor_as_written_general(), "{}", text);
            }
        }
    }

    /// A URI's parts as the view's accessors give them, for comparisons.
    #[derive(Debug)]
    #[allow(dead_code)] // (read through Debug)
    struct Parts<'a> {
        scheme: Scheme,
        raw: &'a [u8],
        user: Option<&'a [u8]>,
        password: Option<&'a [u8]>,
        host: &'a [u8],
        port: Option<u16>,
        params: &'a [u8],
        headers: &'a [u8],
    }

    fn parts<'a>(u: &Uri<'a>) -> Parts<'a> {
        Parts {
            scheme: u.scheme(),
            raw: u.raw(),
            user: u.user(),
            password: u.password(),
            host: u.host(),
            port: u.port(),
            params: u.params().raw(),
            headers: u.headers(),
        }
    }

    fn parse_parts(raw: &[u8]) -> Result<Parts<'_>, Error> {
        Uri::parse(raw).map(|u| parts(&u))
    }

    /// The sip/sips parse before `classify` (every search run unconditionally): the oracle for
    /// the differential test below.
    fn reference_parse(raw: &[u8]) -> Result<Parts<'_>, Error> {
        let lower = raw.to_ascii_lowercase();
        let skip = if lower.starts_with(b"sip:") {
            4
        } else if lower.starts_with(b"sips:") {
            5
        } else {
            return parse_parts(raw); // other schemes did not change
        };
        let rest = &raw[skip..];
        if rest.is_empty() || rest.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(Error::BadUri);
        }
        let mut uri = Parts {
            scheme: if skip == 4 { Scheme::Sip } else { Scheme::Sips },
            raw,
            user: None,
            password: None,
            host: b"",
            port: None,
            params: b"",
            headers: b"",
        };
        let after_user = match rest.iter().rposition(|&b| b == b'@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let (user, password) = match userinfo.iter().position(|&b| b == b':') {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if user.is_empty() || !valid_escapes(user) {
                    return Err(Error::BadUri);
                }
                uri.user = Some(user);
                uri.password = password;
                &rest[at + 1..]
            }
            None => rest,
        };
        let q = after_user
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(after_user.len());
        uri.headers = after_user.get(q + 1..).unwrap_or_default();
        let host_part = &after_user[..q];
        let semi = if host_part.first() == Some(&b'[') {
            find(b']', host_part)
                .and_then(|close| find(b';', &host_part[close..]).map(|s| s + close))
        } else {
            find(b';', host_part)
        }
        .unwrap_or(host_part.len());
        let (host, port) = split_host_port(&host_part[..semi]).ok_or(Error::BadUri)?;
        uri.host = host;
        uri.port = port;
        uri.params = &host_part[semi..];
        if !Params::new(uri.params).validate() || !valid_escapes(uri.headers) {
            return Err(Error::BadUri);
        }
        Ok(uri)
    }

    /// A URI read to its `>` in one pass: the URI [`Uri::parse`] makes of the text up to the
    /// first `>`, where the one pass answers at all.
    fn check_bracketed(text: &[u8]) -> Option<usize> {
        let (uri, gt) = Uri::parse_bracketed(text)?;
        assert_eq!(text.iter().position(|&b| b == b'>'), Some(gt));
        let parsed = Uri::parse(&text[..gt]).unwrap();
        let lossy = String::from_utf8_lossy(text);
        assert_eq!(
            format!("{:?}", parts(&uri)),
            format!("{:?}", parts(&parsed)),
            "{lossy}"
        );
        assert_eq!(uri.flags, parsed.flags, "{lossy}");
        Some(gt)
    }

    #[test]
    fn bracketed_uris() {
        for (text, read) in [
            (&b"sip:a@b>"[..], Some(7)),
            (
                b"sip:u1@192.0.2.10:5060;transport=udp>;+sip.instance=\"<urn:x>\"",
                Some(36),
            ),
            (b"SIP:A@B;lr>;tag=1", Some(10)),
            (b"sip:example.com>", Some(15)),
            (b"sip:[::1]:5060>", Some(14)),
            (b"sip:a@b>>", Some(7)),
            (b"sip:a@b", None),
            (b"sip:a@b?x=y>", None),
            (b"sip:a@b >", None),
            (b"sip:a@b;x=\"y\">", None),
            (b"sips:a@b>", None),
            (b"tel:1>", None),
            (b"sip:>", None),
            (b"sip:a@>", None),
            (b"sip:a@b:99999>", None),
            (b"sip:a@b;>", None),
            (b"sip:a%41@b>", None),
            (b"sip:a@b;transport=udp>", Some(21)),
            (b"sip:a@b;transport=tcp;lr>", Some(24)),
            (b"sip:a@b;transport=tls", None),
            (b"sip:a@b;transport=udpx>", Some(22)),
            (b"sip:a@b;transport=udp:>", Some(22)),
            (b"sip:a@b;transport=udp,>", None),
            (b"sip:a@b;transport=udp;>", None),
            (b"sip:a@b;transport=UDP>", Some(21)),
        ] {
            assert_eq!(
                check_bracketed(text),
                read,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn bracketed_matches_search_and_parse(
            scheme in proptest::sample::select(vec!["sip:", "SIP:", "sips:", "tel:", ""]),
            parts in proptest::collection::vec(proptest::sample::select(&[
                "u1", "B", "@", "h.example", ":", "5060", "[::1]", ";lr", ";transport=udp",
                "?x=y", "%41", ">", ">", ";tag=1", "\"", " ", "=", ";", "!", ",", "]",
                ";transport=udp", ";transport=tls", "x", ":", "[",
            ][..]), 0..10),
        ) {
            let text = format!("{scheme}{}", parts.concat());
            check_bracketed(text.as_bytes());
        }
    }

    /// The 16 bytes classified at once agree with the tables for every byte at every place.
    #[test]
    fn host_bits_match_the_tables() {
        let any_case = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_');
        for at in 0..16 {
            for b in 0..=255u8 {
                let mut block = *b"a0-._zZ9xy.-q1_m";
                block[at] = b;
                let bits = |class: &dyn Fn(u8) -> bool| {
                    block
                        .iter()
                        .enumerate()
                        .fold(0, |bits, (i, &c)| bits | u32::from(class(c)) << i)
                };
                let lower = bits(&|c| LOWER_HOST[usize::from(c)]);
                assert_eq!(host_bits(block, 0), lower, "{b} at {at}");
                assert_eq!(host_bits(block, 0x20), bits(&any_case), "{b} at {at}");
            }
        }
    }

    /// Runs of every length up to past 16, cut by every byte at every place, as the table's
    /// run reads them (through the 16-byte block, the overlapping halves, or the table).
    #[test]
    fn host_runs_match_the_tables_at_every_length() {
        let text = b"a0-._zz9xy.-q1_mabcd.";
        for len in 0..=text.len() {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = text[..len].to_vec();
                    s[at] = b;
                    assert_eq!(lower_host_len(&s), run_len(&s, &LOWER_HOST), "{s:?}");
                    assert_eq!(any_host_len(&s), host_len(&s), "{s:?}");
                }
            }
            assert_eq!(lower_host_len(&text[..len]), len);
        }
    }

    proptest::proptest! {
        #[test]
        fn lower_host_len_matches_run_len(
            run in proptest::collection::vec(proptest::sample::select(&b"azAZ09.-_"[..]), 0..36),
            stop in proptest::prelude::any::<u8>(),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
        ) {
            let s = [&run[..], &[stop], &tail].concat();
            for s in [&s[..], &run] {
                proptest::prop_assert_eq!(lower_host_len(s), run_len(s, &LOWER_HOST));
                proptest::prop_assert_eq!(any_host_len(s), host_len(s));
            }
        }
    }

    /// A URI read like a known one is the URI read without it: the same parts, flags and
    /// end. Whether the comparison answered (not the fallback).
    fn check_bracketed_like(text: &[u8], known: &[u8], host: &[u8]) -> bool {
        let Ok(known) = Uri::parse(known) else {
            return false;
        };
        let lossy = String::from_utf8_lossy(text);
        let show = |r: Option<(Uri<'_>, usize)>| {
            r.map(|(u, gt)| (format!("{:?}", parts(&u)), u.flags, gt))
        };
        assert_eq!(
            show(Uri::parse_bracketed_like(text, &known, host)),
            show(Uri::parse_bracketed(text)),
            "{lossy}"
        );
        Uri::bracketed_known(text, &known, host).is_some()
    }

    #[test]
    fn bracketed_like_known_uris() {
        let usual = &b"sip:u1@192.0.2.10:5060;transport=udp>;+sip.instance=\"<urn:x>\""[..];
        for (text, known, host, compared) in [
            (usual, &b"sip:u1@example.com"[..], &b"192.0.2.10"[..], true),
            (usual, b"sip:u1@example.com;lr", b"192.0.2.10", true),
            (usual, b"SIP:u1@example.com", b"192.0.2.10", false),
            (
                b"SIP:u1@192.0.2.10:5060>",
                b"SIP:u1@example.com",
                b"192.0.2.10",
                true,
            ),
            (usual, b"sips:u1@example.com", b"192.0.2.10", false),
            (usual, b"sip:u@example.com", b"192.0.2.10", false),
            (usual, b"sip:u1@example.com", b"192.0.2.1", false),
            (usual, b"sip:u1@example.com", b"192.0.2.10:5060", false),
            (usual, b"sip:example.com", b"192.0.2.10", false),
            (usual, b"sip:u1:pw@example.com", b"192.0.2.10", false),
            (usual, b"sip:u1@EXAMPLE.com", b"192.0.2.10", true),
            (usual, b"sip:u1@example.com:5060", b"192.0.2.10", true),
            (
                b"sip:u1@192.0.2.10>",
                b"sip:u1@example.com",
                b"192.0.2.10",
                false,
            ),
            (
                b"sip:u1@192.0.2.100:5060>",
                b"sip:u1@h",
                b"192.0.2.10",
                false,
            ),
            (
                b"sip:u1@192.0.2.10:99999>",
                b"sip:u1@h",
                b"192.0.2.10",
                false,
            ),
            (
                b"sip:u1@192.0.2.10:50600>",
                b"sip:u1@h",
                b"192.0.2.10",
                true,
            ),
            (
                b"sip:u1@192.0.2.10:65536>",
                b"sip:u1@h",
                b"192.0.2.10",
                false,
            ),
            (
                b"sip:u1@192.0.2.10:5060x>",
                b"sip:u1@h",
                b"192.0.2.10",
                false,
            ),
            (b"sip:u1@192.0.2.10:5060", b"sip:u1@h", b"192.0.2.10", false),
            (
                b"sip:u1@192.0.2.10:5060 >",
                b"sip:u1@h",
                b"192.0.2.10",
                false,
            ),
            (
                b"sip:u1@192.0.2.10:5060;lr>",
                b"sip:u1@h",
                b"192.0.2.10",
                true,
            ),
            (
                b"sip:u1@192.0.2.10:5060;lr;x=\"y\">",
                b"sip:u1@h",
                b"192.0.2.10",
                false,
            ),
            (
                b"sip:u1@192.0.2.10:5060?x=y>",
                b"sip:u1@h",
                b"192.0.2.10",
                false,
            ),
            (b"sip:u1@[::1]:5060>", b"sip:u1@h", b"[::1]", true),
            (b"sip:u1@[::1]:5060>", b"sip:u1@h", b"[::1", false),
            (b"sip:u1@H:1>", b"sip:u1@h", b"H", true),
            (b"sip:u;x=1@h:1>", b"sip:u;x=1@h", b"h", true),
            (b"sip:u1@:5060>", b"sip:u1@h", b"", false),
            (b"sip:u1@h:5060>", b"sip:u%41@h", b"h", false),
            (b"sip:u1@h:5060>", b"tel:+1", b"h", false),
            (b"sip:u1@", b"sip:u1@h", b"h", false),
        ] {
            assert_eq!(
                check_bracketed_like(text, known, host),
                compared,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn bracketed_like_matches_parse_bracketed(
            scheme in proptest::sample::select(vec!["sip:", "SIP:", "sips:", ""]),
            user in proptest::sample::select(vec!["u1", "u", "u1;x", "U1", "u%41", "u1:pw", ""]),
            known_user in proptest::sample::select(vec!["u1", "u", "u1;x", "u%41", "u1:pw", ""]),
            host in proptest::sample::select(vec!["h", "h.example", "H", "[::1]", "192.0.2.10", ""]),
            hint in proptest::sample::select(vec!["h", "h.example", "H", "[::1]", "192.0.2.10", "", "h.ex"]),
            parts in proptest::collection::vec(proptest::sample::select(&[
                ":5060", ":1", ":99999", ":", "5", ">", ";lr", ";transport=udp", "?x=y", "@",
                "\"", " ", ";", "x", ">;tag=1",
            ][..]), 0..6),
        ) {
            let at = if user.is_empty() { "" } else { "@" };
            let text = format!("{scheme}{user}{at}{host}{}", parts.concat());
            let known_at = if known_user.is_empty() { "" } else { "@" };
            let known = format!("sip:{known_user}{known_at}example.com");
            check_bracketed_like(text.as_bytes(), known.as_bytes(), hint.as_bytes());
        }
    }

    const PIECES: &[&str] = &[
        "a",
        "Bob",
        "1",
        "5060",
        "@",
        ":",
        ";",
        "?",
        "%",
        "%2",
        "%4A",
        "[",
        "]",
        "::1",
        ".",
        "-",
        "=",
        "&",
        " ",
        "\t",
        "\x7f",
        "\"",
        "<",
        "lr",
        "transport=tcp",
        "x.com",
        "é",
        "!",
        "u1@",
        "a@b",
        "udp",
    ];

    #[test]
    fn plain_user_part_agrees_with_reference() {
        for text in [
            &b"sip:u1@192.0.2.10:5060;transport=udp"[..],
            b"sip:alice@example.com",
            b"sip:u@h!x@y",
            b"sip:u@h;p=\"a@b\"",
            b"sip:u@h;p=a@b",
            b"sip:u;x=1@h;lr",
            b"sip:u@[::1]:5060;lr",
            b"sip:u@[::1@]",
            b"sip:u@h:5060@x",
            b"sip:u@h?x=a@b",
            b"sip:u%41@h",
            b"sip:u:pw@h",
            b"sip:@h",
            b"sip:u@",
            b"sip:u@@h",
            b"sip:example.com",
            b"sip:h;lr",
            b"sip:+49?x;y=1@h:5060;lr",
            b"sip:u:5060@h",
            b"sip:h:5060;x=%41",
            b"sip:[::1];lr",
            b"sip:h:99999",
        ] {
            let got = format!("{:?}", parse_parts(text));
            let want = format!("{:?}", reference_parse(text));
            assert_eq!(got, want, "{}", String::from_utf8_lossy(text));
        }
    }

    proptest::proptest! {
        /// Texts near the usual shape, where the one-pass parse answers or gives up.
        #[test]
        fn plain_parse_matches_reference(
            scheme in proptest::sample::select(vec!["sip:", "sips:"]),
            parts in proptest::collection::vec(proptest::sample::select(&[
                "u1", "+49", "?", ";", "=", "@", "h.example", ":", "5060", "99999", "[::1]",
                "%41", "lr", "transport=udp", ",", "*", "_", ":pw", "\"", " ", ";transport=tcp",
            ][..]), 0..8),
        ) {
            let text = format!("{scheme}{}", parts.concat());
            let got = format!("{:?}", parse_parts(text.as_bytes()));
            let want = format!("{:?}", reference_parse(text.as_bytes()));
            proptest::prop_assert_eq!(got, want, "{}", text);
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_matches_reference(
            scheme in proptest::sample::select(vec!["sip:", "SIPS:", "sip:", "tel:", "x-y:"]),
            parts in proptest::collection::vec(proptest::sample::select(PIECES), 0..12),
        ) {
            let text = format!("{scheme}{}", parts.concat());
            let got = format!("{:?}", parse_parts(text.as_bytes()));
            let want = format!("{:?}", reference_parse(text.as_bytes()));
            proptest::prop_assert_eq!(got, want, "{}", text);
        }
    }

    /// Every field of a view (its text by content), for comparing views made two ways.
    fn all_fields(u: &Uri<'_>) -> String {
        format!(
            "{:?} {} {} {} {} {} {} {:?} {:?} {} {}",
            u.raw,
            u.user_end,
            u.password_end,
            u.host_start,
            u.host_end,
            u.params_start,
            u.params_end,
            u.port,
            u.scheme,
            u.rest_at,
            u.flags
        )
    }

    /// The memo answers each text of a sequence as `Uri::parse` does, whatever it remembers
    /// from the texts before: `texts` indexes `pool` (repeats, texts of one length that
    /// differ in a byte, texts that fail, are empty, or are longer than the memo holds).
    fn check_memo(pool: &[Vec<u8>], texts: &[usize]) {
        let mut memo = UriMemo::default();
        for &i in texts {
            let text = &pool[i % pool.len()];
            // (A copy: the view must be of this text, not of the remembered one.)
            let owned = text.clone();
            let mut slot = None;
            let got = match memo.parse_into(&owned, &mut slot) {
                None => Ok(all_fields(&slot.unwrap())),
                Some(e) => {
                    assert!(slot.is_none());
                    Err(e)
                }
            };
            let want = Uri::parse(&owned).map(|u| all_fields(&u));
            assert_eq!(got, want, "{}", String::from_utf8_lossy(text));
            if let Some(u) = slot {
                assert_eq!(u.raw().as_ptr(), owned.as_ptr());
            }
        }
    }

    const MEMO_POOL: &[&[u8]] = &[
        b"sip:example.com",
        b"sip:examplf.com",
        b"sip:example.com;lr",
        b"SIP:Example.COM",
        b"sips:example.com:5061",
        b"sip:u1@example.com;transport=tcp?x=y",
        b"tel:+15551234",
        b"mailto:a@b",
        b"sip:",
        b"",
        b"x",
        b"sip:a b",
        b"sip:%zz@h",
        b"sip:registrar.a-very-long-provider-domain.example.net",
        b"sip:registrar.a-very-long-provider-domain.example.nex",
        b"sip:exactly-forty-eight-bytes-of-text.example.co",
        b"sip:exactly-forty-eight-bytes-of-text.example.cO",
    ];

    #[test]
    fn memo_answers_as_parse() {
        assert_eq!(MEMO_POOL[15].len(), UriMemo::CAP);
        let pool: Vec<Vec<u8>> = MEMO_POOL.iter().map(|t| t.to_vec()).collect();
        // Each text after each other, twice in a row.
        let mut texts = Vec::new();
        for i in 0..pool.len() {
            for j in 0..pool.len() {
                texts.extend([i, i, j, j, i]);
            }
        }
        check_memo(&pool, &texts);
    }

    proptest::proptest! {
        #[test]
        fn memo_matches_parse(
            parts in proptest::collection::vec(proptest::sample::select(PIECES), 0..8),
            scheme in proptest::sample::select(vec!["sip:", "SIPS:", "tel:", "x:", ""]),
            // Texts of the same length: the first with one byte changed.
            edits in proptest::collection::vec((0usize..64, proptest::num::u8::ANY), 0..3),
            other in proptest::collection::vec(proptest::sample::select(PIECES), 0..8),
            texts in proptest::collection::vec(0usize..5, 1..12),
        ) {
            let first = format!("{scheme}{}", parts.concat()).into_bytes();
            let mut pool = vec![first.clone(), format!("{scheme}{}", other.concat()).into_bytes()];
            for (at, byte) in edits {
                let mut edited = first.clone();
                if let Some(b) = edited.get_mut(at % first.len().max(1)) {
                    *b = byte;
                }
                pool.push(edited);
            }
            check_memo(&pool, &texts);
        }
    }

    /// Where the URI read at a known host answers, it is what the one pass reads (every field,
    /// flags included); it answers for the usual From of each known host.
    fn check_at_host(text: &[u8], known: &Uri<'_>) -> bool {
        let Some((uri, gt)) = Uri::parse_bracketed_at_host(text, known) else {
            return false;
        };
        let lossy = String::from_utf8_lossy(text);
        let (want, want_gt) = Uri::parse_bracketed(text).expect(&lossy);
        assert_eq!(gt, want_gt, "{lossy}");
        assert_eq!(all_fields(&uri), all_fields(&want), "{lossy}");
        true
    }

    const AT_HOST_KNOWN: &[&[u8]] = &[
        b"sip:example.com",
        b"sip:u1@example.com;lr",
        b"sips:example.com",
        b"sip:Example.com",
        b"SIP:example.com",
        b"sip:example.com:5060",
        b"sip:[::1]",
        b"sip:e",
        b"sip:a%41@example.com",
        b"tel:+1555",
    ];

    #[test]
    fn at_host_reads_what_the_one_pass_reads() {
        for known in AT_HOST_KNOWN {
            let known = Uri::parse(known).unwrap();
            let host = String::from_utf8_lossy(known.host()).into_owned();
            let usual = format!("sip:u123@{host}>;tag=1");
            // Only a known host the one pass read as lower case, without a port, is taken.
            assert_eq!(
                check_at_host(usual.as_bytes(), &known),
                known.flags & AOR_WRITTEN != 0,
                "{usual}"
            );
            for text in [
                format!("sip:u123@{host}>"),
                format!("sip:Bob.Smith+1@{host}>"),
                format!("sip:u;x=1?y@{host}>"),
                format!("sip:@{host}>"),
                format!("sip:{host}>"),
                format!("sip:u@{host}x>"),
                format!("sip:u@{host}:5060>"),
                format!("sip:u@{host};lr>"),
                format!("sip:u@{host}"),
                format!("sip:u@@{host}>"),
                format!("sip:u%41@{host}>"),
                format!("SIP:u@{host}>"),
                format!("sips:u@{host}>"),
                format!("sip:u@{}>", host.to_uppercase()),
                format!("sip:u@{}>", &host[..host.len().saturating_sub(1)]),
            ] {
                check_at_host(text.as_bytes(), &known);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn at_host_matches_one_pass(
            known in proptest::sample::select(AT_HOST_KNOWN),
            user in proptest::collection::vec(proptest::sample::select(PIECES), 0..4),
            tail in proptest::collection::vec(proptest::sample::select(PIECES), 0..3),
        ) {
            let known = Uri::parse(known).unwrap();
            let host = String::from_utf8_lossy(known.host()).into_owned();
            let text = format!("sip:{}@{host}{}>", user.concat(), tail.concat());
            check_at_host(text.as_bytes(), &known);
        }
    }

    /// Where a first `;transport=` parameter is passed over, the walk over the parameters
    /// leaves the same text as the walk from past it, having read one parameter there: every
    /// three-byte value of some transport letters and delimiters, before each ending.
    #[test]
    fn usual_transport_is_what_the_walk_reads() {
        let alphabet = b"udptcls\";>U =@";
        for &a in alphabet {
            for &b in alphabet {
                for &c in alphabet {
                    for end in ["", ">", ";lr", ">;x", "x", ",", "\"", "p"] {
                        let mut params = b";transport=".to_vec();
                        params.extend([a, b, c]);
                        params.extend(end.as_bytes());
                        let rest = usual_transport(&params);
                        if rest.len() == params.len() {
                            continue;
                        }
                        let lossy = String::from_utf8_lossy(&params);
                        let skipped = &params[..params.len() - rest.len()];
                        let mut read = Vec::new();
                        let left = walk_plain(skipped, false, |n, v| read.push((n, v)));
                        assert_eq!(left, Some(&b""[..]), "{lossy}");
                        assert_eq!(
                            read,
                            [(&b"transport"[..], Some(&params[11..14]))],
                            "{lossy}"
                        );
                        assert_eq!(
                            walk_plain(&params, false, |_, _| {}),
                            walk_plain(rest, false, |_, _| {}),
                            "{lossy}"
                        );
                    }
                }
            }
        }
    }
}
