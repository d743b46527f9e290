//! The engine's one error type and its ONE mapping to a SIP response.
//!
//! Every way a request can fail ends up here as an [`Error`]; [`Error::status`] and
//! [`Error::write_extra_headers`] are the only places that decide the status code, reason phrase
//! and the extra headers (Min-Expires, Unsupported, Allow, Retry-After) the failure needs.
//! A 401 challenge is not an error: it is a normal outcome written by the engine.

use crate::sip::{self, StatusCode};

/// Methods this registrar implements (the `Allow` header of 405/501 responses and OPTIONS).
pub(crate) const ALLOW: &str = "REGISTER, OPTIONS";

/// Seconds a client is asked to wait by `Retry-After` on 503.
pub(crate) const RETRY_AFTER_SECS: u32 = 30;

/// `Retry-After` when the shared location service is unreachable: short, since the node
/// recovers by itself as soon as Redis answers again.
pub(crate) const LOCATION_RETRY_AFTER_SECS: u32 = 5;

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The message is malformed (RFC 3261 §8.2.2, §21.4.1 400).
    Parse(sip::Error),
    /// The Authorization header is malformed.
    BadAuthorization(&'static str),
    /// `SIP/x.y` other than 2.0 (§21.5.6 505).
    VersionNotSupported,
    /// Request-URI scheme is not sip/sips (§21.4.12 416).
    UnsupportedUriScheme,
    /// Request-URI host is not one of our domains (§10.3 step 1).
    DomainNotServed,
    /// The To header does not hold a SIP/SIPS AOR (RFC 4475 §3.3.4: 400).
    ToNotSipUri,
    /// The AOR is not valid for the domain of the Request-URI (§10.3 step 5: 404).
    AorNotFound,
    /// `Require` lists option tags we do not support (§10.3 step 2, §21.4.15 420).
    BadExtension,
    /// The authenticated user may not register this AOR (§10.3 step 4: 403).
    Forbidden,
    /// `Contact: *` with other contacts or a non-zero Expires (§10.3 step 6: 400).
    InvalidWildcard,
    /// A non-zero expiry below the minimum (§10.3 step 7, §21.4.18 423). Carries Min-Expires.
    IntervalTooBrief(u32),
    /// Same Call-ID with a lower CSeq than the stored binding (§10.3 step 7: "the request fails").
    OutOfOrder,
    /// The AOR already has the maximum number of bindings (503 + Retry-After).
    TooManyBindings,
    /// The shard is behind on its queue (503 + Retry-After).
    Overloaded,
    /// The shared location service (Redis) did not answer in time, is unreachable, or the
    /// request lost too many races on its AOR (503 + a short Retry-After). Nothing was written.
    LocationUnavailable,
    /// The request is larger than the configured limit (§21.4.11 413 / §21.5.9 513).
    MessageTooLarge,
    /// A known method other than REGISTER/OPTIONS (§8.2.1 405).
    MethodNotAllowed,
    /// An unknown method (§8.2.1 501).
    NotImplemented,
}

impl Error {
    /// Status code and reason phrase of the response for this error.
    pub fn status(self) -> (StatusCode, &'static str) {
        match self {
            Self::Parse(e) => (StatusCode::BAD_REQUEST, e.message()),
            Self::BadAuthorization(why) => (StatusCode::BAD_REQUEST, why),
            Self::VersionNotSupported => (
                StatusCode::VERSION_NOT_SUPPORTED,
                "SIP Version Not Supported",
            ),
            Self::UnsupportedUriScheme => {
                (StatusCode::UNSUPPORTED_URI_SCHEME, "Unsupported URI Scheme")
            }
            Self::DomainNotServed => (StatusCode::NOT_FOUND, "Domain Not Served Here"),
            Self::ToNotSipUri => (StatusCode::BAD_REQUEST, "To Is Not A SIP Address-of-Record"),
            Self::AorNotFound => (StatusCode::NOT_FOUND, "Not Found"),
            Self::BadExtension => (StatusCode::BAD_EXTENSION, "Bad Extension"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "Forbidden"),
            Self::InvalidWildcard => (StatusCode::BAD_REQUEST, "Invalid Wildcard Contact"),
            Self::IntervalTooBrief(_) => (StatusCode::INTERVAL_TOO_BRIEF, "Interval Too Brief"),
            Self::OutOfOrder => (StatusCode::BAD_REQUEST, "CSeq Out Of Order"),
            Self::TooManyBindings => (StatusCode::SERVICE_UNAVAILABLE, "Too Many Bindings"),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "Overloaded"),
            Self::LocationUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Location Service Unavailable",
            ),
            Self::MessageTooLarge => (StatusCode(513), "Message Too Large"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            Self::NotImplemented => (StatusCode::NOT_IMPLEMENTED, "Not Implemented"),
        }
    }

    /// Headers this failure adds to its response. `unsupported` is the comma-separated list of
    /// unsupported option tags (for 420).
    pub(crate) fn write_extra_headers(self, w: &mut sip::ResponseWriter<'_>, unsupported: &[u8]) {
        match self {
            Self::IntervalTooBrief(min) => {
                w.header_fmt("Min-Expires", format_args!("{min}"));
            }
            Self::BadExtension => {
                w.header("Unsupported", unsupported);
            }
            Self::TooManyBindings | Self::Overloaded => {
                w.header_fmt("Retry-After", format_args!("{RETRY_AFTER_SECS}"));
            }
            Self::LocationUnavailable => {
                w.header_fmt("Retry-After", format_args!("{LOCATION_RETRY_AFTER_SECS}"));
            }
            Self::MethodNotAllowed | Self::NotImplemented => {
                w.header("Allow", ALLOW.as_bytes());
            }
            _ => {}
        }
    }
}

impl From<sip::Error> for Error {
    fn from(e: sip::Error) -> Self {
        Self::Parse(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (code, reason) = self.status();
        write!(f, "{} {reason}", code.0)?;
        if let Self::IntervalTooBrief(min) = self {
            f.write_fmt(format_args!(" (Min-Expires {min})"))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_table() {
        let table: &[(Error, u16)] = &[
            (Error::Parse(sip::Error::BadCSeq), 400),
            (Error::BadAuthorization("x"), 400),
            (Error::VersionNotSupported, 505),
            (Error::UnsupportedUriScheme, 416),
            (Error::DomainNotServed, 404),
            (Error::ToNotSipUri, 400),
            (Error::AorNotFound, 404),
            (Error::BadExtension, 420),
            (Error::Forbidden, 403),
            (Error::InvalidWildcard, 400),
            (Error::IntervalTooBrief(60), 423),
            (Error::OutOfOrder, 400),
            (Error::TooManyBindings, 503),
            (Error::Overloaded, 503),
            (Error::LocationUnavailable, 503),
            (Error::MessageTooLarge, 513),
            (Error::MethodNotAllowed, 405),
            (Error::NotImplemented, 501),
        ];
        for (e, code) in table {
            assert_eq!(e.status().0 .0, *code, "{e:?}");
            assert!(!e.status().1.is_empty());
        }
        assert_eq!(
            Error::IntervalTooBrief(60).to_string(),
            "423 Interval Too Brief (Min-Expires 60)"
        );
    }
}
