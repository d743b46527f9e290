//! Every use of rustls (0.23, `ring` provider) lives here: the shared `ServerConfig` (TLS 1.2
//! and 1.3, session tickets and an in-memory resumption cache, certificate from PEM files or a
//! self-signed one generated at start) and [`TlsSession`], a buffer-in / buffer-out wrapper of
//! `ServerConnection` that the runtime drives with whatever I/O it uses.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use sha2::{Digest, Sha256};

/// A TLS setup problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or decoding a PEM file failed.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rustls refused the certificate/key or the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// Generating the self-signed certificate failed.
    #[error("tls: self-signed certificate: {0}")]
    Generate(String),
}

/// The server configuration and the SHA-256 fingerprint of its leaf certificate.
pub struct ServerTls {
    /// Shared by every connection of every shard.
    pub config: Arc<ServerConfig>,
    /// Hex SHA-256 of the leaf certificate (logged at start).
    pub fingerprint: String,
    /// The leaf certificate (DER), e.g. for tests that pin it.
    pub certificate: CertificateDer<'static>,
}

impl ServerTls {
    /// From PEM files (certificate chain and private key).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_err = |path: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_err(cert, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| pem_err(cert, &e))?;
        if chain.is_empty() {
            return Err(pem_err(cert, &"no certificate found"));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, &e))?;
        Self::build(chain, key)
    }

    /// A self-signed certificate for `localhost` and the given names, generated now.
    pub fn self_signed(names: &[String]) -> Result<Self, TlsError> {
        let mut all = vec!["localhost".to_owned()];
        all.extend(names.iter().cloned());
        let ck = rcgen::generate_simple_self_signed(all)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
            .map_err(|e| TlsError::Generate(e.to_owned()))?;
        Self::build(vec![ck.cert.der().clone()], key)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let certificate = chain
            .first()
            .cloned()
            .ok_or(TlsError::Generate("empty chain".into()))?;
        let fingerprint = Sha256::digest(certificate.as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
                .with_no_client_auth()
                .with_single_cert(chain, key)?;
        config.ticketer = provider::Ticketer::new()?;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(64 * 1024);
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
            certificate,
        })
    }
}

/// One TLS server session over caller-owned buffers.
pub struct TlsSession {
    conn: ServerConnection,
}

impl TlsSession {
    /// A new session.
    pub fn new(config: &Arc<ServerConfig>) -> Result<Self, TlsError> {
        Ok(Self {
            conn: ServerConnection::new(Arc::clone(config))?,
        })
    }

    /// Feeds ciphertext received from the peer and appends any plaintext to `plaintext`.
    pub fn receive(&mut self, mut ciphertext: &[u8], plaintext: &mut Vec<u8>) -> io::Result<()> {
        while !ciphertext.is_empty() {
            let n = self.conn.read_tls(&mut ciphertext)?;
            if n == 0 {
                break;
            }
            self.conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let mut chunk = [0u8; 4096];
            loop {
                match self.conn.reader().read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => plaintext.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Queues plaintext to send.
    pub fn send(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(plaintext)
    }

    /// Appends the ciphertext to put on the wire (handshake records and application data).
    pub fn take_output(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(out)?;
        }
        Ok(())
    }

    /// Still handshaking.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_and_pem_errors() {
        let tls = ServerTls::self_signed(&["registrar.example.com".into()]).unwrap();
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        let mut s = TlsSession::new(&tls.config).unwrap();
        assert!(s.is_handshaking());
        let mut plain = Vec::new();
        assert!(s
            .receive(b"\x16\x03\x01\x00\x05garbage-not-tls", &mut plain)
            .is_err());
        let e = ServerTls::from_pem_files(Path::new("/nonexistent/cert.pem"), Path::new("/x"))
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("/nonexistent/cert.pem"), "{e}");
    }
}
