//! The credentials file (htdigest style), parsed from text (the runtime reads the file).
//!
//! One entry per line; `#` starts a comment line; blank lines are ignored:
//!
//! ```text
//! user:realm:<32 hex>                      MD5 HA1 (htdigest compatible)
//! user:realm:<hex>:SHA-256                 HA1 for that algorithm (also :MD5, :SHA-512-256)
//! user:realm:plain:<password>              development form: every HA1 derived at load
//! ```
//!
//! The password of the `plain:` form is the rest of the line (it may contain `:`). A user may
//! have several lines, one per algorithm; `-sess` algorithms use their base algorithm's HA1.
//! Only HA1s are kept in memory, never passwords.

use std::collections::HashMap;

use super::digest::{ha1, unhex, Hash};
use super::Algorithm;

/// An error in the credentials file, naming the file and the line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {message}")]
pub struct CredentialsError {
    /// File name as given.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

const BASES: [Algorithm; 3] = [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256];

fn base_index(alg: Algorithm) -> usize {
    match alg.base() {
        Algorithm::Sha256 => 1,
        Algorithm::Sha512_256 => 2,
        _ => 0,
    }
}

/// A realm and the user's HA1 per base algorithm (MD5, SHA-256, SHA-512-256).
type RealmHa1s = (Box<[u8]>, [Option<Hash>; 3]);

/// HA1s per user, realm and base algorithm. Keyed by user so that a lookup borrows the
/// request's bytes (no allocation); a user rarely has more than one realm.
#[derive(Default)]
pub struct Credentials {
    users: HashMap<Box<[u8]>, Vec<RealmHa1s>, foldhash::fast::RandomState>,
    entries: usize,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.users.len())
            .finish()
    }
}

impl Credentials {
    /// No users.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses the file's text; `file_name` is used in error messages.
    pub fn parse(text: &str, file_name: &str) -> Result<Self, CredentialsError> {
        let mut creds = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            let err = |message: String| CredentialsError {
                file: file_name.to_owned(),
                line: i + 1,
                message,
            };
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, ':');
            let (Some(user), Some(realm), Some(rest)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(err(
                    "expected user:realm:HA1 or user:realm:plain:password".into()
                ));
            };
            if user.is_empty() || realm.is_empty() {
                return Err(err("empty user or realm".into()));
            }
            let realms = creds.users.entry(user.as_bytes().into()).or_default();
            let idx = match realms.iter().position(|(r, _)| **r == *realm.as_bytes()) {
                Some(idx) => idx,
                None => {
                    realms.push((realm.as_bytes().into(), [None; 3]));
                    creds.entries += 1;
                    realms.len() - 1
                }
            };
            let Some((_, entry)) = realms.get_mut(idx) else {
                continue;
            };
            let mut set = |alg: Algorithm, h: Hash| -> Result<(), CredentialsError> {
                let slot = &mut entry[base_index(alg)];
                if slot.is_some() {
                    return Err(err(format!(
                        "duplicate {} entry for {user}@{realm}",
                        alg.name()
                    )));
                }
                *slot = Some(h);
                Ok(())
            };
            if let Some(password) = rest.strip_prefix("plain:") {
                for alg in BASES {
                    set(
                        alg,
                        ha1(alg, user.as_bytes(), realm.as_bytes(), password.as_bytes()),
                    )?;
                }
                continue;
            }
            let (hex, alg) = match rest.split_once(':') {
                Some((hex, name)) => {
                    let alg = Algorithm::parse(name.trim().as_bytes())
                        .filter(|a| a.base() == *a)
                        .ok_or_else(|| {
                            err(format!(
                                "unknown algorithm {name:?} (MD5, SHA-256, SHA-512-256)"
                            ))
                        })?;
                    (hex, alg)
                }
                None => (rest, Algorithm::Md5),
            };
            let hex = hex.trim();
            let h = unhex(hex.as_bytes())
                .filter(|h| h.as_bytes().len() * 2 == alg.hex_len())
                .ok_or_else(|| {
                    err(format!(
                        "HA1 must be {} hex digits for {}",
                        alg.hex_len(),
                        alg.name()
                    ))
                })?;
            set(alg, h)?;
        }
        Ok(creds)
    }

    /// Number of (user, realm) entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// HA1 (binary) for (user, realm) and the algorithm's base.
    pub fn ha1(&self, user: &[u8], realm: &[u8], alg: Algorithm) -> Option<&[u8]> {
        self.lookup(user, realm, alg).map(Hash::as_bytes)
    }

    pub(crate) fn lookup(&self, user: &[u8], realm: &[u8], alg: Algorithm) -> Option<&Hash> {
        self.users
            .get(user)?
            .iter()
            .find(|(r, _)| **r == *realm)
            .and_then(|(_, hs)| hs[base_index(alg)].as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form() {
        let text = "# users\n\nalice:example.com:939e7578ed9e3c518a452acee763bce9\r\n\
bob:example.com:plain:pa:ss word\n\
carol:example.com:7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232:SHA-256\n\
carol:example.com:939E7578ED9E3C518A452ACEE763BCE9:MD5\n";
        let c = Credentials::parse(text, "users.txt").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.ha1(b"alice", b"example.com", Algorithm::Md5)
                .map(<[u8]>::len),
            Some(16)
        );
        assert!(c.ha1(b"alice", b"example.com", Algorithm::Sha256).is_none());
        let bob = c
            .ha1(b"bob", b"example.com", Algorithm::Sha256Sess)
            .unwrap();
        assert_eq!(
            bob,
            ha1(Algorithm::Sha256, b"bob", b"example.com", b"pa:ss word").as_bytes()
        );
        assert!(c.ha1(b"carol", b"example.com", Algorithm::Sha256).is_some());
        assert!(c.ha1(b"carol", b"other", Algorithm::Md5).is_none());
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("ok:r:plain:x\nbroken\n", 2, "expected user:realm"),
            ("a:r:abc\n", 1, "32 hex digits"),
            (
                "a:r:939e7578ed9e3c518a452acee763bce9:SHA-1\n",
                1,
                "unknown algorithm",
            ),
            (
                "a:r:939e7578ed9e3c518a452acee763bce9:SHA-256\n",
                1,
                "64 hex digits",
            ),
            (
                "#c\na:r:plain:x\na:r:939e7578ed9e3c518a452acee763bce9\n",
                3,
                "duplicate MD5",
            ),
            (":r:plain:x\n", 1, "empty user"),
        ];
        for (text, line, msg) in cases {
            let e = Credentials::parse(text, "users.txt").unwrap_err();
            assert_eq!(e.line, *line, "{text:?}");
            assert!(
                e.to_string().starts_with(&format!("users.txt:{line}: ")),
                "{e}"
            );
            assert!(e.message.contains(msg), "{e}");
        }
    }
}
