//! Parsing of `Authorization` and `WWW-Authenticate` Digest values (RFC 7616 §3.3-3.4,
//! RFC 3261 §25.1 `digest-response`, `challenge`).
//!
//! Quoted-string values are returned without their quotes; quoted-pairs stay escaped (no
//! client we know escapes inside these values, and the hash input then is the text as sent).
//! Robustness: a missing comma between two parameters (as printed in RFC 3665 §2.1 F3) is
//! tolerated; folded lines are white space; parameter names are case-insensitive.

use super::{Algorithm, Error, Qop};

/// Parsed Digest credentials of an Authorization header, borrowing the value.
#[derive(Clone, Copy, Debug, Default)]
pub struct DigestResponse<'a> {
    /// `username`.
    pub username: &'a [u8],
    /// `realm`.
    pub realm: &'a [u8],
    /// `nonce`.
    pub nonce: &'a [u8],
    /// `uri` (digest-uri).
    pub uri: &'a [u8],
    /// `response` (hex request-digest).
    pub response: &'a [u8],
    /// `algorithm` (absent = MD5).
    pub algorithm: Option<Algorithm>,
    /// `cnonce`.
    pub cnonce: Option<&'a [u8]>,
    /// `nc` (8 hex digits).
    pub nc: Option<&'a [u8]>,
    /// `qop`.
    pub qop: Option<Qop>,
    /// `opaque`.
    pub opaque: Option<&'a [u8]>,
    /// `userhash=true` (RFC 7616 §3.4.4).
    pub userhash: bool,
}

/// A parsed Digest challenge (WWW-Authenticate value).
#[derive(Clone, Copy, Debug)]
pub struct Challenge<'a> {
    /// `realm`.
    pub realm: &'a [u8],
    /// `nonce`.
    pub nonce: &'a [u8],
    /// `opaque`.
    pub opaque: Option<&'a [u8]>,
    /// `algorithm` (MD5 when absent).
    pub algorithm: Algorithm,
    /// `qop` offers `auth`.
    pub qop_auth: bool,
    /// `qop` offers `auth-int`.
    pub qop_auth_int: bool,
    /// `stale=true`.
    pub stale: bool,
    /// `userhash=true`.
    pub userhash: bool,
}

/// Iterates `name=value` parameters after the scheme.
struct ParamIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_lws(s: &[u8]) -> &[u8] {
    let n = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    s.get(n..).unwrap_or_default()
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut s = skip_lws(self.rest);
        while let Some(rest) = s.strip_prefix(b",") {
            s = skip_lws(rest);
        }
        if s.is_empty() {
            return None;
        }
        let name_len = s
            .iter()
            .position(|&b| !super::is_token_byte(b))
            .unwrap_or(s.len());
        let name = s.get(..name_len).unwrap_or_default();
        let after = skip_lws(s.get(name_len..).unwrap_or_default());
        let Some(after) = after.strip_prefix(b"=").filter(|_| !name.is_empty()) else {
            self.failed = true;
            return Some(Err(Error::Malformed("expected name=value")));
        };
        let after = skip_lws(after);
        let (value, rest) = if let Some(q) = after.strip_prefix(b"\"") {
            let mut escaped = false;
            let mut end = None;
            for (i, &b) in q.iter().enumerate() {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                self.failed = true;
                return Some(Err(Error::Malformed("unterminated quoted string")));
            };
            (
                q.get(..end).unwrap_or_default(),
                q.get(end + 1..).unwrap_or_default(),
            )
        } else {
            let len = after
                .iter()
                .position(|&b| b == b',' || is_lws(b))
                .unwrap_or(after.len());
            if len == 0 {
                self.failed = true;
                return Some(Err(Error::Malformed("empty parameter value")));
            }
            (
                after.get(..len).unwrap_or_default(),
                after.get(len..).unwrap_or_default(),
            )
        };
        self.rest = rest;
        Some(Ok((name, value)))
    }
}

/// Splits `Digest <params>`; `UnsupportedScheme` for any other scheme.
fn digest_params(value: &[u8]) -> Result<ParamIter<'_>, Error> {
    let v = skip_lws(value);
    let scheme_len = v.iter().position(|&b| is_lws(b)).unwrap_or(v.len());
    let scheme = v.get(..scheme_len).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case(b"Digest") {
        return Err(Error::UnsupportedScheme);
    }
    Ok(ParamIter {
        rest: v.get(scheme_len..).unwrap_or_default(),
        failed: false,
    })
}

fn parse_qop_value(v: &[u8]) -> Result<Qop, Error> {
    if v.eq_ignore_ascii_case(b"auth") {
        Ok(Qop::Auth)
    } else if v.eq_ignore_ascii_case(b"auth-int") {
        Ok(Qop::AuthInt)
    } else {
        Err(Error::BadQop)
    }
}

/// Parses an Authorization (or Proxy-Authorization) value.
pub fn parse_authorization(value: &[u8]) -> Result<DigestResponse<'_>, Error> {
    let mut r = DigestResponse::default();
    let mut seen = [false; 5]; // username, realm, nonce, uri, response
    for p in digest_params(value)? {
        let (name, v) = p?;
        let lower = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if lower(b"username") {
            r.username = v;
            seen[0] = true;
        } else if lower(b"realm") {
            r.realm = v;
            seen[1] = true;
        } else if lower(b"nonce") {
            r.nonce = v;
            seen[2] = true;
        } else if lower(b"uri") {
            r.uri = v;
            seen[3] = true;
        } else if lower(b"response") {
            r.response = v;
            seen[4] = true;
        } else if lower(b"algorithm") {
            r.algorithm = Some(Algorithm::parse(v).ok_or(Error::UnknownAlgorithm)?);
        } else if lower(b"cnonce") {
            r.cnonce = Some(v);
        } else if lower(b"nc") {
            // RFC 7616 says 8 hex digits; sofia-sip's test data sends 9 ("000000002"). The
            // hash covers nc as sent, so any short hex string that fits u32 is accepted.
            let digits = v.iter().skip_while(|&&d| d == b'0').count();
            if v.is_empty() || v.len() > 16 || digits > 8 || !v.iter().all(u8::is_ascii_hexdigit) {
                return Err(Error::Malformed("nc must be hexadecimal"));
            }
            r.nc = Some(v);
        } else if lower(b"qop") {
            r.qop = Some(parse_qop_value(v)?);
        } else if lower(b"opaque") {
            r.opaque = Some(v);
        } else if lower(b"userhash") {
            r.userhash = v.eq_ignore_ascii_case(b"true");
        }
    }
    const NAMES: [&str; 5] = ["username", "realm", "nonce", "uri", "response"];
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(Error::MissingField(NAMES[i]));
    }
    if r.qop.is_some() && (r.cnonce.is_none() || r.nc.is_none()) {
        return Err(Error::MissingField("cnonce/nc"));
    }
    Ok(r)
}

/// Parses a WWW-Authenticate (or Proxy-Authenticate) Digest value.
pub fn parse_challenge(value: &[u8]) -> Result<Challenge<'_>, Error> {
    let mut c = Challenge {
        realm: b"",
        nonce: b"",
        opaque: None,
        algorithm: Algorithm::Md5,
        qop_auth: false,
        qop_auth_int: false,
        stale: false,
        userhash: false,
    };
    let (mut realm, mut nonce) = (false, false);
    for p in digest_params(value)? {
        let (name, v) = p?;
        let lower = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if lower(b"realm") {
            c.realm = v;
            realm = true;
        } else if lower(b"nonce") {
            c.nonce = v;
            nonce = true;
        } else if lower(b"opaque") {
            c.opaque = Some(v);
        } else if lower(b"algorithm") {
            c.algorithm = Algorithm::parse(v).ok_or(Error::UnknownAlgorithm)?;
        } else if lower(b"qop") {
            for q in v.split(|&b| b == b',') {
                match parse_qop_value(skip_lws(q).trim_ascii_end()) {
                    Ok(Qop::Auth) => c.qop_auth = true,
                    Ok(Qop::AuthInt) => c.qop_auth_int = true,
                    Err(_) => {}
                }
            }
        } else if lower(b"stale") {
            c.stale = v.eq_ignore_ascii_case(b"true");
        } else if lower(b"userhash") {
            c.userhash = v.eq_ignore_ascii_case(b"true");
        }
    }
    if !realm {
        return Err(Error::MissingField("realm"));
    }
    if !nonce {
        return Err(Error::MissingField("nonce"));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_forms() {
        let r = parse_authorization(
            b"Digest username=\"bob\",realm=\"atlanta.example.com\"\r\n nonce=\"ea9c\", opaque=\"\",\r\n uri=\"sips:ss2.biloxi.example.com\",\r\n response=\"dfe5\", QOP=auth, nc=00000001, cnonce=\"x\", algorithm=sha-256",
        )
        .unwrap();
        assert_eq!(r.username, b"bob");
        assert_eq!(r.realm, b"atlanta.example.com");
        assert_eq!(r.nonce, b"ea9c");
        assert_eq!(r.opaque, Some(&b""[..]));
        assert_eq!(r.qop, Some(Qop::Auth));
        assert_eq!(r.algorithm, Some(Algorithm::Sha256));
        // RFC 3665 2.1 F3 as printed: no comma between realm and nonce.
        let f3 = b"Digest username=\"bob\", realm=\"atlanta.example.com\"\r\n nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"\",\r\n uri=\"sips:ss2.biloxi.example.com\",\r\n response=\"dfe56131d1958046689d83306477ecc\"";
        assert_eq!(
            parse_authorization(f3).unwrap().nonce,
            b"ea9c8e88df84f1cec4341ae6cbe5a359"
        );
    }

    #[test]
    fn authorization_errors() {
        let cases: &[(&[u8], Error)] = &[
            (b"NoOneKnowsThisScheme opaque-data=here", Error::UnsupportedScheme),
            (b"Basic QWxhZGRpbjpvcGVu", Error::UnsupportedScheme),
            (b"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\"", Error::MissingField("response")),
            (b"Digest username=\"a", Error::Malformed("unterminated quoted string")),
            (b"Digest username", Error::Malformed("expected name=value")),
            (b"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", algorithm=SHA-1", Error::UnknownAlgorithm),
            (b"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", qop=auth", Error::MissingField("cnonce/nc")),
            (b"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", qop=auth, nc=1x, cnonce=\"c\"", Error::Malformed("nc must be hexadecimal")),
            (b"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", qop=foo", Error::BadQop),
        ];
        for (value, want) in cases {
            assert_eq!(
                parse_authorization(value).unwrap_err(),
                *want,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn challenges() {
        let c = parse_challenge(b"Digest realm=\"atlanta.example.com\", qop=\"auth,auth-int\",\r\n nonce=\"ea9c\",\r\n opaque=\"\", stale=FALSE, algorithm=MD5").unwrap();
        assert_eq!(
            (c.realm, c.nonce),
            (&b"atlanta.example.com"[..], &b"ea9c"[..])
        );
        assert!(c.qop_auth && c.qop_auth_int && !c.stale);
        assert_eq!(c.algorithm, Algorithm::Md5);
        let c = parse_challenge(b"digest realm=r, nonce=n, stale=true, algorithm=SHA-512-256-sess")
            .unwrap();
        assert!(c.stale);
        assert_eq!(c.algorithm, Algorithm::Sha512_256Sess);
        assert_eq!(
            parse_challenge(b"Digest nonce=\"n\"").unwrap_err(),
            Error::MissingField("realm")
        );
    }
}
