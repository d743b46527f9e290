//! A small test user agent over UDP, TCP or TLS (rustls, pinned to the server's certificate),
//! using the crate's own parser and digest code.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use sipreg::sip::{self, Contact, HeaderName, Message};
use sipreg::transport::tls::ServerCheck;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub raw: String,
}

impl Reply {
    fn parse(bytes: &[u8]) -> Self {
        let Ok(Message::Response(r)) = sip::parse_datagram(bytes, &sip::Limits::default()) else {
            panic!("not a response: {}", String::from_utf8_lossy(bytes));
        };
        Self {
            code: r.status().0,
            raw: String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    pub fn headers(&self, name: &str) -> Vec<String> {
        self.raw
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    pub fn header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .raw
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(n, _)| n.to_owned())
            .collect();
        names.sort();
        names
    }

    /// (uri, expires) of every Contact.
    pub fn contacts(&self) -> Vec<(String, u32)> {
        let Ok(Message::Response(r)) =
            sip::parse_datagram(self.raw.as_bytes(), &sip::Limits::default())
        else {
            return Vec::new();
        };
        r.contacts()
            .filter_map(|c| match c {
                Ok(Contact::Addr(a)) => Some((
                    String::from_utf8_lossy(a.name_addr.uri.raw()).into_owned(),
                    a.expires().ok().flatten().unwrap_or(0),
                )),
                _ => None,
            })
            .collect()
    }
}

/// Reads `n` complete responses from a stream.
pub fn read_replies(s: &mut impl Read, n: usize) -> Vec<Reply> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < n {
        let framed = sip::frame_stream(&buf, &sip::Limits::default());
        match framed {
            Ok(sip::Status::Complete(len)) => {
                let msg: Vec<u8> = buf.drain(..len).collect();
                let start = msg
                    .iter()
                    .position(|&b| b != b'\r' && b != b'\n')
                    .unwrap_or(0);
                out.push(Reply::parse(&msg[start..]));
                continue;
            }
            Ok(sip::Status::Partial) => {}
            Err(e) => panic!("bad stream from server: {e}"),
        }
        let k = match s.read(&mut chunk) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("reply within the timeout: {e}"),
        };
        assert!(k > 0, "connection closed while waiting for a reply");
        buf.extend_from_slice(&chunk[..k]);
    }
    out
}

enum Link {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// A test user agent.
pub struct Ua {
    user: String,
    link: Link,
    cseq: u32,
    call_id: String,
    nc: u32,
}

impl Ua {
    fn new(user: &str, link: Link) -> Self {
        Self {
            user: user.into(),
            link,
            cseq: 0,
            call_id: format!("{user}-{}", std::process::id()),
            nc: 0,
        }
    }

    /// Another Call-ID (another phone of the same user).
    pub fn set_call_id(&mut self, call_id: &str) {
        call_id.clone_into(&mut self.call_id);
    }

    pub fn udp(user: &str, server: SocketAddr) -> Self {
        Self::udp_from(user, server, "127.0.0.1")
    }

    /// A UDP user agent with its own loopback source address (127.0.0.0/8 is all loopback).
    pub fn udp_from(user: &str, server: SocketAddr, ip: &str) -> Self {
        let s = UdpSocket::bind((ip, 0)).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        Self::new(user, Link::Udp(s, server))
    }

    pub fn tcp(user: &str, server: SocketAddr) -> Self {
        let s = TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        Self::new(user, Link::Tcp(s))
    }

    pub fn tls(user: &str, server: SocketAddr, cert: Vec<u8>) -> Self {
        let config =
            sipreg::transport::tls::client_config(&ServerCheck::Pinned(cert), true).unwrap();
        let conn =
            ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
        let s = TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        Self::new(user, Link::Tls(Box::new(StreamOwned::new(conn, s))))
    }

    fn transport(&self) -> &str {
        match self.link {
            Link::Udp(..) => "UDP",
            Link::Tcp(_) => "TCP",
            Link::Tls(_) => "TLS",
        }
    }

    pub fn build(&self, cseq: u32, contacts: &[&str], expires: Option<u32>) -> Vec<u8> {
        self.build_with(cseq, contacts, expires, &[])
    }

    pub fn build_with(
        &self,
        cseq: u32,
        contacts: &[&str],
        expires: Option<u32>,
        extra: &[&str],
    ) -> Vec<u8> {
        let mut m = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/{} 127.0.0.1:5060;branch=z9hG4bK-{}-{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{u}@example.com>;tag=t{u}\r\nTo: <sip:{u}@example.com>\r\n\
             Call-ID: {}\r\nCSeq: {cseq} REGISTER\r\n",
            self.transport(),
            self.call_id,
            self.call_id,
            u = self.user
        );
        for c in contacts {
            m.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            m.push_str(&format!("Expires: {e}\r\n"));
        }
        for h in extra {
            m.push_str(h);
            m.push_str("\r\n");
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m.into_bytes()
    }

    /// Sends without waiting; returns whether an answer came within `wait`.
    pub fn send_maybe(&mut self, msg: &[u8], wait: Duration) -> Option<Reply> {
        let Link::Udp(s, server) = &self.link else {
            panic!("UDP only")
        };
        s.send_to(msg, *server).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 65536];
        let r = s.recv(&mut buf).ok().map(|n| Reply::parse(&buf[..n]));
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        r
    }

    pub fn send(&mut self, msg: &[u8]) -> Reply {
        match &mut self.link {
            Link::Udp(s, server) => {
                s.send_to(msg, *server).unwrap();
                let mut buf = vec![0u8; 65536];
                let n = loop {
                    match s.recv(&mut buf) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => panic!("UDP reply within the timeout: {e}"),
                    }
                };
                Reply::parse(&buf[..n])
            }
            Link::Tcp(s) => {
                s.write_all(msg).unwrap();
                read_replies(s, 1).remove(0)
            }
            Link::Tls(s) => {
                s.write_all(msg).unwrap();
                s.flush().unwrap();
                read_replies(s, 1).remove(0)
            }
        }
    }

    pub fn register(&mut self, contacts: &[&str], expires: Option<u32>) -> Reply {
        self.cseq += 1;
        let msg = self.build(self.cseq, contacts, expires);
        self.send(&msg)
    }

    /// Answers the `alg` challenge of `challenge` and sends the REGISTER again.
    pub fn authenticate(
        &mut self,
        challenge: &Reply,
        alg: &str,
        password: &str,
        contacts: &[&str],
        expires: Option<u32>,
    ) -> Reply {
        let www = challenge
            .headers("WWW-Authenticate")
            .into_iter()
            .find(|v| v.contains(&format!("algorithm={alg}")))
            .unwrap_or_else(|| panic!("no {alg} challenge: {}", challenge.raw));
        let ch = sipreg::auth::parse_challenge(www.as_bytes()).unwrap();
        self.nc += 1;
        let mut value = Vec::new();
        sipreg::auth::write_authorization(
            &mut value,
            &ch,
            self.user.as_bytes(),
            password.as_bytes(),
            b"REGISTER",
            b"sip:example.com",
            b"deadbeef",
            self.nc,
            b"",
        );
        let auth = format!("Authorization: {}", String::from_utf8_lossy(&value));
        self.cseq += 1;
        let msg = self.build_with(self.cseq, contacts, expires, &[&auth]);
        self.send(&msg)
    }
}

#[allow(dead_code)]
fn header_name_is_used(_: HeaderName) {}
