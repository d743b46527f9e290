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
                let mut chunk = [0u8; 16 * 1024];
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
                    // Take the plaintext out after every record batch: rustls refuses more
                    // TLS input once its received-plaintext buffer is full, and bytes left in
                    // `rest` would be lost (a stall of every transaction on the connection).
                    while let Ok(n) = t.reader().read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        self.inbuf.extend_from_slice(&chunk[..n]);
                    }
                }
                if !rest.is_empty() && !self.closed {
                    // Cannot happen after draining the plaintext; counted as a broken link
                    // rather than silently dropping responses.
                    self.closed = true;
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

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    use sipreg::transport::tls::{ServerTls, TlsSession};

    use super::*;

    /// A TLS server that answers the first bytes it receives with `burst` responses at once.
    fn bursting_server(burst: usize) -> SocketAddr {
        let tls = ServerTls::self_signed(&[]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut session = TlsSession::new(&tls.config).unwrap();
            let mut buf = vec![0u8; 65536];
            let mut plain = Vec::new();
            let mut out = Vec::new();
            let mut answered = false;
            loop {
                let Ok(n) = sock.read(&mut buf) else { return };
                if n == 0 {
                    return;
                }
                session.receive(&buf[..n], &mut plain).unwrap();
                if !plain.is_empty() && !answered {
                    answered = true;
                    for i in 0..burst {
                        let msg = format!(
                            "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK-{i:x}-1\r\n\
                             Call-ID: c{i}\r\nCSeq: 1 REGISTER\r\nX-Pad: {}\r\n\
                             Content-Length: 0\r\n\r\n",
                            "p".repeat(200)
                        );
                        session.send(msg.as_bytes()).unwrap();
                        // Encrypt as we go (rustls bounds its unsent plaintext), but write the
                        // whole burst with one call below.
                        session.take_output(&mut out).unwrap();
                    }
                }
                session.take_output(&mut out).unwrap();
                sock.write_all(&out).unwrap();
                out.clear();
            }
        });
        addr
    }

    #[test]
    fn a_burst_larger_than_the_plaintext_buffer_is_not_lost() {
        // 200 x ~330 bytes: several times rustls' 16 KiB received-plaintext limit, arriving
        // in one read.
        let burst = 200;
        let addr = bursting_server(burst);
        let config = client_config(None, true).unwrap();
        let sock = TcpStream::connect(addr).unwrap();
        let mut st = Stream::new(sock, Some(&config)).unwrap();
        st.queue(b"REGISTER sip:example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n");
        let mut got = Vec::new();
        let until = Instant::now() + Duration::from_secs(5);
        while got.len() < burst && Instant::now() < until {
            st.flush();
            // Let the whole burst reach the socket so that one read returns all of it.
            std::thread::sleep(Duration::from_millis(50));
            st.receive(&mut got);
        }
        assert_eq!(got.len(), burst, "closed: {}", st.closed);
        assert!(got.iter().all(|m| m.starts_with(b"SIP/2.0 200 OK\r\n")));
    }
}
