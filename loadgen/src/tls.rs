//! Stream links: plain TCP or TLS (all of the generator's rustls use is here), nonblocking,
//! with SIP framing by Content-Length (`sipreg::sip::frame_stream`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use sipreg::transport::tls::ServerCheck;

/// A client configuration: verifying against `ca` when given, else accepting any certificate
/// (the registrar's one rustls module builds it: `sipreg::transport::tls::client_config`).
pub fn client_config(ca: Option<&Path>, resume: bool) -> Result<Arc<ClientConfig>> {
    let check = match ca {
        Some(p) => ServerCheck::Ca(p.to_path_buf()),
        None => ServerCheck::Any,
    };
    Ok(sipreg::transport::tls::client_config(&check, resume)?)
}

/// One connection to the target.
pub struct Stream {
    sock: TcpStream,
    tls: Option<ClientConnection>,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    pub closed: bool,
}

impl Stream {
    pub fn new(sock: TcpStream, tls: Option<&Arc<ClientConfig>>) -> Result<Self> {
        sock.set_nodelay(true)?;
        sock.set_nonblocking(true)?;
        let tls = match tls {
            Some(c) => Some(ClientConnection::new(
                Arc::clone(c),
                ServerName::try_from("localhost")?,
            )?),
            None => None,
        };
        Ok(Self {
            sock,
            tls,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            closed: false,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.sock.local_addr().ok()
    }

    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    pub fn queue(&mut self, bytes: &[u8]) {
        match self.tls.as_mut() {
            Some(t) => {
                let _ = t.writer().write_all(bytes);
            }
            None => self.outbuf.extend_from_slice(bytes),
        }
    }

    pub fn flush(&mut self) {
        if let Some(t) = self.tls.as_mut() {
            while t.wants_write() {
                if t.write_tls(&mut self.outbuf).is_err() {
                    break;
                }
            }
        }
        crate::worker::push(&mut self.sock, &mut self.outbuf);
    }

    /// Appends every complete response now available.
    pub fn receive(&mut self, out: &mut Vec<Vec<u8>>) {
        let mut raw = Vec::new();
        match crate::worker::drain(&mut self.sock, &mut raw) {
            Ok(open) => self.closed |= !open,
            Err(_) => self.closed = true,
        }
        match self.tls.as_mut() {
            Some(t) => {
                let mut rest = raw.as_slice();
                while !rest.is_empty() {
                    match t.read_tls(&mut rest) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if t.process_new_packets().is_err() {
                                self.closed = true;
                                break;
                            }
                        }
                    }
                }
                let mut chunk = [0u8; 16 * 1024];
                while let Ok(n) = t.reader().read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    self.inbuf.extend_from_slice(&chunk[..n]);
                }
                self.flush();
            }
            None => self.inbuf.extend_from_slice(&raw),
        }
        let limits = sipreg::sip::Limits::default();
        loop {
            match sipreg::sip::frame_stream(&self.inbuf, &limits) {
                Ok(sipreg::sip::Status::Complete(n)) => {
                    let msg: Vec<u8> = self.inbuf.drain(..n).collect();
                    let start = msg
                        .iter()
                        .position(|&b| b != b'\r' && b != b'\n')
                        .unwrap_or(msg.len());
                    if start < msg.len() {
                        out.push(msg[start..].to_vec());
                    }
                }
                Ok(sipreg::sip::Status::Partial) => break,
                Err(_) => {
                    // The target sent something unframeable: count it and resynchronise.
                    out.push(std::mem::take(&mut self.inbuf));
                    break;
                }
            }
        }
    }
}
