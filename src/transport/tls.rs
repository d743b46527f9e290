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

/// Client-certificate policy (mutual TLS).
#[derive(Clone, Debug, Default)]
pub struct ClientAuth {
    /// PEM file of the CAs that sign client certificates; None = no client certificates.
    pub ca: Option<std::path::PathBuf>,
    /// Refuse clients without a certificate (otherwise a certificate is optional but must be
    /// valid when presented).
    pub required: bool,
}

fn pem_err(path: &Path, e: &dyn std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn client_verifier(
    auth: &ClientAuth,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, TlsError> {
    let Some(path) = &auth.ca else {
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| pem_err(path, &e))? {
        roots.add(cert.map_err(|e| pem_err(path, &e))?)?;
    }
    if roots.is_empty() {
        return Err(pem_err(path, &"no CA certificate found"));
    }
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(provider::default_provider()),
    );
    let builder = if auth.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map(Some).map_err(|e| TlsError::Pem {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

impl ServerTls {
    /// From PEM files (certificate chain and private key).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Self::from_pem_files_with(cert, key, &ClientAuth::default())
    }

    /// From PEM files, with a client-certificate policy.
    pub fn from_pem_files_with(
        cert: &Path,
        key: &Path,
        client: &ClientAuth,
    ) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_err(cert, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| pem_err(cert, &e))?;
        if chain.is_empty() {
            return Err(pem_err(cert, &"no certificate found"));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, &e))?;
        Self::build(chain, key, client)
    }

    /// A self-signed certificate for `localhost` and the given names, generated now.
    pub fn self_signed(names: &[String]) -> Result<Self, TlsError> {
        Self::self_signed_with(names, &ClientAuth::default())
    }

    /// A self-signed certificate, with a client-certificate policy.
    pub fn self_signed_with(names: &[String], client: &ClientAuth) -> Result<Self, TlsError> {
        let mut all = vec!["localhost".to_owned()];
        all.extend(names.iter().cloned());
        let ck = rcgen::generate_simple_self_signed(all)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
            .map_err(|e| TlsError::Generate(e.to_owned()))?;
        Self::build(vec![ck.cert.der().clone()], key, client)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client: &ClientAuth,
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
        let builder =
            ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match client_verifier(client)? {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key)?;
        config.ticketer = provider::Ticketer::new()?;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(64 * 1024);
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
            certificate,
        })
    }
}

/// How a TLS client (the load generator, the tests) checks the server's certificate.
#[derive(Clone, Debug)]
pub enum ServerCheck {
    /// Against the CA certificates in this PEM file.
    Ca(std::path::PathBuf),
    /// Exactly this certificate (DER), e.g. a self-signed registrar under test.
    Pinned(Vec<u8>),
    /// Any certificate: benchmarking only (the handshake signatures are still verified).
    Any,
}

/// A rustls client configuration with the `ring` provider; `resume` keeps TLS session
/// resumption (tickets) on.
pub fn client_config(
    check: &ServerCheck,
    resume: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()?;
    let mut config = match check {
        ServerCheck::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| pem_err(path, &e))? {
                roots.add(cert.map_err(|e| pem_err(path, &e))?)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerCheck::Pinned(der) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                pinned: Some(der.clone()),
            }))
            .with_no_client_auth(),
        ServerCheck::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { pinned: None }))
            .with_no_client_auth(),
    };
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// Accepts the pinned certificate (or any, without a pin); handshake signatures are checked.
#[derive(Debug)]
struct Verifier {
    pinned: Option<Vec<u8>>,
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match &self.pinned {
            Some(p) if p.as_slice() != end_entity.as_ref() => Err(rustls::Error::General(
                "server certificate differs from the pinned one".into(),
            )),
            _ => Ok(rustls::client::danger::ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &provider::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &provider::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        provider::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
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

    /// Runs a handshake between `server` and a rustls client in memory.
    fn handshake(server: &Arc<ServerConfig>, client: rustls::ClientConfig) -> Result<(), String> {
        let mut s = ServerConnection::new(Arc::clone(server)).map_err(|e| e.to_string())?;
        let name =
            rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let mut c =
            rustls::ClientConnection::new(Arc::new(client), name).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                s.read_tls(&mut rd).map_err(|e| e.to_string())?;
            }
            s.process_new_packets().map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).map_err(|e| e.to_string())?;
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                c.read_tls(&mut rd).map_err(|e| e.to_string())?;
            }
            c.process_new_packets().map_err(|e| e.to_string())?;
            if !s.is_handshaking() && !c.is_handshaking() {
                return Ok(());
            }
        }
        Err("handshake did not finish".into())
    }

    #[test]
    fn mutual_tls_requires_a_certificate_from_the_ca() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(vec![]).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let client_key = KeyPair::generate().unwrap();
        let client_cert = CertificateParams::new(vec!["phone-1".into()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();

        let policy = ClientAuth {
            ca: Some(dir.path().join("ca.pem")),
            required: true,
        };
        let server = ServerTls::self_signed_with(&[], &policy).unwrap();
        let insecure = || {
            rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Verifier { pinned: None }))
        };
        let no_cert = insecure().with_no_client_auth();
        assert!(
            handshake(&server.config, no_cert).is_err(),
            "a client without a certificate is refused"
        );
        let key = PrivateKeyDer::try_from(client_key.serialize_der()).unwrap();
        let with_cert = insecure()
            .with_client_auth_cert(vec![client_cert.der().clone()], key)
            .unwrap();
        handshake(&server.config, with_cert).expect("a certificate from the CA is accepted");
        let optional = ServerTls::self_signed_with(
            &[],
            &ClientAuth {
                required: false,
                ..policy
            },
        )
        .unwrap();
        handshake(&optional.config, insecure().with_no_client_auth())
            .expect("optional client auth");
    }
}
