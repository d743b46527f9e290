//! The serialised form of one binding (on disk in `persist`, in Redis values in `remote`): key = AOR text, 0x00, the binding id (8 bytes, big endian);
//! value = a versioned, length-prefixed encoding of every field. Decoding never panics: garbage
//! or an unknown version is an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::store::{AorKey, Binding, NewBinding, Transport};

const VERSION: u8 = 1;
const F_INSTANCE: u8 = 1 << 2;
const F_REG_ID: u8 = 1 << 3;
const F_CONN: u8 = 1 << 4;
const F_V6: u8 = 1 << 5;
const NO_Q: u16 = u16::MAX;

/// Why a stored record could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The record ends early or a length points past it.
    #[error("truncated record")]
    Truncated,
    /// A version this build does not know.
    #[error("unknown record version {0}")]
    Version(u8),
    /// The key has no AOR/id separator or the AOR is not UTF-8.
    #[error("malformed key")]
    Key,
}

/// The key of one binding.
pub(crate) fn key(aor: &AorKey, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(aor.as_bytes().len() + 9);
    k.extend_from_slice(aor.as_bytes());
    k.push(0);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The AOR of a key.
pub(crate) fn key_aor(key: &[u8]) -> Result<&str, DecodeError> {
    let aor = key
        .len()
        .checked_sub(9)
        .and_then(|n| key.get(..n))
        .filter(|_| key.len() >= 9 && key.get(key.len() - 9) == Some(&0))
        .ok_or(DecodeError::Key)?;
    std::str::from_utf8(aor).map_err(|_| DecodeError::Key)
}

/// Encodes a stored binding.
pub(crate) fn encode(b: &Binding, out: &mut Vec<u8>) {
    let source = b.source();
    let mut flags = match b.transport() {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
    };
    let instance = b.instance();
    flags |= if instance.is_some() { F_INSTANCE } else { 0 };
    flags |= if b.reg_id().is_some() { F_REG_ID } else { 0 };
    flags |= if b.conn().is_some() { F_CONN } else { 0 };
    flags |= if source.is_ipv6() { F_V6 } else { 0 };
    out.push(VERSION);
    out.extend_from_slice(&b.expires_at().to_le_bytes());
    out.extend_from_slice(&b.registered_at().to_le_bytes());
    out.extend_from_slice(&b.cseq().to_le_bytes());
    out.extend_from_slice(&b.q().unwrap_or(NO_Q).to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&source.port().to_le_bytes());
    match source.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    if let Some(r) = b.reg_id() {
        out.extend_from_slice(&r.to_le_bytes());
    }
    if let Some(c) = b.conn() {
        out.extend_from_slice(&c.to_le_bytes());
    }
    for s in [
        b.contact(),
        b.params(),
        b.call_id(),
        instance.unwrap_or_default(),
        b.path(),
        b.user_agent(),
    ] {
        // Every field is bounded by the SIP message size (<= 65535).
        let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(s.get(..usize::from(len)).unwrap_or(s));
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.take(N)?.try_into().map_err(|_| DecodeError::Truncated)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }
    fn str(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// Decodes a stored binding (borrowing from `value`).
pub(crate) fn decode(value: &[u8]) -> Result<NewBinding<'_>, DecodeError> {
    let mut r = Reader(value);
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let expires_at = r.u32()?;
    let registered_at = r.u32()?;
    let cseq = r.u32()?;
    let q = r.u16()?;
    let flags = r.u8()?;
    let port = r.u16()?;
    let ip = if flags & F_V6 != 0 {
        IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))
    } else {
        IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))
    };
    let reg_id = if flags & F_REG_ID != 0 {
        Some(r.u32()?)
    } else {
        None
    };
    let conn = if flags & F_CONN != 0 {
        Some(u64::from_le_bytes(r.array()?))
    } else {
        None
    };
    let contact = r.str()?;
    let params = r.str()?;
    let call_id = r.str()?;
    let instance = r.str()?;
    let path = r.str()?;
    let user_agent = r.str()?;
    Ok(NewBinding {
        contact,
        params,
        call_id,
        cseq,
        expires_at,
        q: (q != NO_Q).then_some(q),
        instance: (flags & F_INSTANCE != 0).then_some(instance),
        reg_id,
        path,
        source: SocketAddr::new(ip, port),
        transport: match flags & 3 {
            1 => Transport::Tcp,
            2 => Transport::Tls,
            _ => Transport::Udp,
        },
        conn,
        user_agent,
        registered_at,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::{Store, StoreConfig};
    use crate::time::Instant;

    fn stored(b: &NewBinding<'_>) -> Binding {
        let store = Store::new(&StoreConfig::default());
        let aor = AorKey::new("sip:a@b");
        store.load(&aor, b, Instant::from_secs(1));
        store
            .lookup(&aor, Instant::from_secs(1), |it| it.next().cloned())
            .flatten()
            .unwrap()
    }

    #[test]
    fn every_field_round_trips() {
        let long = vec![b'x'; 3000];
        let cases = [
            NewBinding {
                contact: b"sip:alice@192.0.2.1:5060;transport=tcp",
                params: b";+sip.instance=\"<urn:uuid:1>\";reg-id=1;foo=bar",
                call_id: b"a84b4c76e66710",
                cseq: 4_000_000_000,
                expires_at: 1_700_003_600,
                q: Some(500),
                instance: Some(b"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"),
                reg_id: Some(7),
                path: b"<sip:edge.example.com;lr>",
                source: "[2001:db8::7]:40000".parse().unwrap(),
                transport: Transport::Tls,
                conn: Some(0x0102_0304_0506_0708),
                user_agent: b"Softphone/1.0",
                registered_at: 1_700_000_000,
            },
            NewBinding {
                contact: &long,
                params: b"",
                call_id: b"",
                cseq: 0,
                expires_at: 2,
                q: None,
                instance: None,
                reg_id: None,
                path: b"",
                source: "192.0.2.9:5060".parse().unwrap(),
                transport: Transport::Udp,
                conn: None,
                user_agent: b"",
                registered_at: 0,
            },
        ];
        for nb in cases {
            let b = stored(&nb);
            let mut buf = Vec::new();
            encode(&b, &mut buf);
            let d = decode(&buf).unwrap();
            assert_eq!(d.contact, nb.contact);
            assert_eq!(d.params, nb.params);
            assert_eq!(d.call_id, nb.call_id);
            assert_eq!(
                (d.cseq, d.expires_at, d.registered_at, d.q, d.reg_id, d.conn),
                (
                    nb.cseq,
                    nb.expires_at,
                    nb.registered_at,
                    nb.q,
                    nb.reg_id,
                    nb.conn
                )
            );
            assert_eq!(d.instance, nb.instance);
            assert_eq!(d.path, nb.path);
            assert_eq!((d.source, d.transport), (nb.source, nb.transport));
            assert_eq!(d.user_agent, nb.user_agent);
            // Truncations are errors, never panics.
            for n in 0..buf.len() {
                assert_eq!(decode(&buf[..n]).err(), Some(DecodeError::Truncated), "{n}");
            }
        }
        let aor = AorKey::new("sip:alice@example.com");
        let k = key(&aor, 42);
        assert_eq!(key_aor(&k), Ok("sip:alice@example.com"));
        assert_eq!(key_aor(b"short"), Err(DecodeError::Key));
        assert_eq!(decode(&[9, 0, 0]).err(), Some(DecodeError::Version(9)));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            let _ = key_aor(&bytes);
        }
    }
}
