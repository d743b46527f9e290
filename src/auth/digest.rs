//! The Digest hash computations (RFC 2617 §3.2.2, RFC 7616 §3.4) for every algorithm, on
//! stack buffers (no allocation), shared by the server's verification and the client side.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

use super::{Algorithm, Qop};

/// A digest value: up to 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hash {
    bytes: [u8; 32],
    len: usize,
}

impl Hash {
    pub(crate) fn from_slice(s: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; 32];
        bytes.get_mut(..s.len())?.copy_from_slice(s);
        Some(Self {
            bytes,
            len: s.len(),
        })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Lower-case hex into a stack buffer.
    pub(crate) fn hex(&self) -> Hex {
        let mut out = Hex {
            bytes: [0u8; 64],
            len: self.len * 2,
        };
        for (i, b) in self.as_bytes().iter().enumerate() {
            out.bytes[2 * i] = HEX[usize::from(b >> 4)];
            out.bytes[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of a [`Hash`].
#[derive(Clone, Copy)]
pub(crate) struct Hex {
    bytes: [u8; 64],
    len: usize,
}

impl Hex {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// Decodes hex (either case) into a [`Hash`].
pub(crate) fn unhex(s: &[u8]) -> Option<Hash> {
    if !s.len().is_multiple_of(2) || s.len() > 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *bytes.get_mut(i)? = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(Hash {
        bytes,
        len: s.len() / 2,
    })
}

/// One hash function, fed with `:`-joined parts.
pub(crate) fn hash(alg: Algorithm, parts: &[&[u8]]) -> Hash {
    fn run<D: Digest>(parts: &[&[u8]]) -> Hash {
        let mut d = D::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                d.update(b":");
            }
            d.update(p);
        }
        let out = d.finalize();
        Hash::from_slice(out.as_slice()).unwrap_or(Hash {
            bytes: [0; 32],
            len: 0,
        })
    }
    match alg.base() {
        Algorithm::Sha256 => run::<Sha256>(parts),
        // RFC 7616 / RFC 8760 name FIPS 180-4 SHA-512/256 (its own initial values). The values
        // printed in RFC 7616 §3.9.2 come from a truncated SHA-512 instead (erratum 4897).
        Algorithm::Sha512_256 => run::<Sha512_256>(parts),
        _ => run::<Md5>(parts),
    }
}

/// HA1 = H(username:realm:password) — the stored credential of the base algorithm.
pub(crate) fn ha1(alg: Algorithm, user: &[u8], realm: &[u8], password: &[u8]) -> Hash {
    hash(alg, &[user, realm, password])
}

/// The inputs of a response computation.
pub(crate) struct Inputs<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) nonce: &'a [u8],
    pub(crate) cnonce: &'a [u8],
    pub(crate) nc: &'a [u8],
    pub(crate) qop: Option<Qop>,
    pub(crate) method: &'a [u8],
    pub(crate) uri: &'a [u8],
    pub(crate) body: &'a [u8],
}

/// The request-digest from the stored (base) HA1 (RFC 7616 §3.4.1-3.4.3, RFC 2617 §3.2.2.1).
pub(crate) fn response(base_ha1: &Hash, i: &Inputs<'_>) -> Hash {
    let ha1 = if i.alg.is_sess() {
        hash(i.alg, &[base_ha1.hex().as_bytes(), i.nonce, i.cnonce])
    } else {
        *base_ha1
    };
    let ha2 = match i.qop {
        Some(Qop::AuthInt) => {
            let body = hash(i.alg, &[i.body]);
            hash(i.alg, &[i.method, i.uri, body.hex().as_bytes()])
        }
        _ => hash(i.alg, &[i.method, i.uri]),
    };
    match i.qop {
        Some(q) => hash(
            i.alg,
            &[
                ha1.hex().as_bytes(),
                i.nonce,
                i.nc,
                i.cnonce,
                q.name().as_bytes(),
                ha2.hex().as_bytes(),
            ],
        ),
        None => hash(
            i.alg,
            &[ha1.hex().as_bytes(), i.nonce, ha2.hex().as_bytes()],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = hash(
            Algorithm::Md5,
            &[b"Mufasa", b"testrealm@host.com", b"Circle Of Life"],
        );
        assert_eq!(h.hex().as_bytes(), b"939e7578ed9e3c518a452acee763bce9");
        assert!(unhex(h.hex().as_bytes()) == Some(h));
        assert!(unhex(b"zz").is_none());
        assert!(unhex(b"abc").is_none());
    }

    #[test]
    fn sha512_256_is_fips_not_truncated_sha512() {
        use sha2::Sha512;
        let fips = hash(Algorithm::Sha512_256, &[b"abc"]);
        // FIPS 180-4 SHA-512/256("abc").
        assert_eq!(
            fips.hex().as_bytes(),
            b"53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
        let truncated = Sha512::digest(b"abc");
        assert_ne!(fips.as_bytes(), &truncated[..32]);
    }
}
