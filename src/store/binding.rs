//! Compact binding storage: every string of a binding packed into one allocation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Transport a binding was registered over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
}

/// A binding to insert or update (borrowed; the store copies it into compact form).
#[derive(Clone, Copy, Debug)]
pub struct NewBinding<'a> {
    /// Contact URI without `<>`, uri-parameters included.
    pub contact: &'a [u8],
    /// Raw contact-params to echo (each with its leading `;`).
    pub params: &'a [u8],
    /// Call-ID of the request that stored it.
    pub call_id: &'a [u8],
    /// CSeq of that request.
    pub cseq: u32,
    /// Expiry, Unix seconds.
    pub expires_at: u32,
    /// q in thousandths.
    pub q: Option<u16>,
    /// `+sip.instance` (RFC 5626).
    pub instance: Option<&'a [u8]>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<u32>,
    /// Path header values, joined (RFC 3327).
    pub path: &'a [u8],
    /// Where the REGISTER came from.
    pub source: SocketAddr,
    /// Over which transport.
    pub transport: Transport,
    /// The stream connection (flow) it came over.
    pub conn: Option<u64>,
    /// User-Agent header.
    pub user_agent: &'a [u8],
    /// When first stored with this content, Unix seconds.
    pub registered_at: u32,
}

const CONTACT: usize = 0;
const PARAMS: usize = 1;
const CALL_ID: usize = 2;
const INSTANCE: usize = 3;
const PATH: usize = 4;
const STRINGS: usize = 6; // ... and USER_AGENT = 5, whose end is the end of `data`

const FLAG_V6: u8 = 1 << 2;
const FLAG_REG_ID: u8 = 1 << 3;
const FLAG_INSTANCE: u8 = 1 << 4;
const FLAG_CONN: u8 = 1 << 5;
const NO_Q: u16 = u16::MAX;

/// A stored binding (72 bytes + one heap block holding its strings).
#[derive(Clone, PartialEq, Eq)]
pub struct Binding {
    /// contact | params | call_id | instance | path | user_agent
    data: Box<[u8]>,
    /// End offsets of the first five strings in `data`.
    ends: [u16; STRINGS - 1],
    q: u16,
    cseq: u32,
    expires_at: u32,
    registered_at: u32,
    reg_id: u32,
    conn: u64,
    ip: [u8; 16],
    port: u16,
    /// bits 0-1 transport, then the FLAG_* bits.
    flags: u8,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("contact", &String::from_utf8_lossy(self.contact()))
            .field("call_id", &String::from_utf8_lossy(self.call_id()))
            .field("cseq", &self.cseq)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Each string is capped at 65 535 bytes (messages are smaller than that anyway).
fn cap(s: &[u8]) -> &[u8] {
    s.get(..s.len().min(usize::from(u16::MAX)))
        .unwrap_or_default()
}

impl Binding {
    pub(crate) fn pack(b: &NewBinding<'_>) -> Self {
        let parts = [
            cap(b.contact),
            cap(b.params),
            cap(b.call_id),
            cap(b.instance.unwrap_or_default()),
            cap(b.path),
            cap(b.user_agent),
        ];
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u16; STRINGS - 1];
        for (i, part) in parts.iter().enumerate() {
            data.extend_from_slice(part);
            if let Some(end) = ends.get_mut(i) {
                *end = u16::try_from(data.len()).unwrap_or(u16::MAX);
            }
        }
        let (ip, v6) = match b.source.ip() {
            IpAddr::V4(v4) => {
                let mut ip = [0u8; 16];
                ip[..4].copy_from_slice(&v4.octets());
                (ip, false)
            }
            IpAddr::V6(v6) => (v6.octets(), true),
        };
        let transport = match b.transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        };
        let mut flags = transport;
        if v6 {
            flags |= FLAG_V6;
        }
        if b.reg_id.is_some() {
            flags |= FLAG_REG_ID;
        }
        if b.instance.is_some() {
            flags |= FLAG_INSTANCE;
        }
        if b.conn.is_some() {
            flags |= FLAG_CONN;
        }
        Self {
            data: data.into_boxed_slice(),
            ends,
            q: b.q.map_or(NO_Q, |q| q.min(1000)),
            cseq: b.cseq,
            expires_at: b.expires_at,
            registered_at: b.registered_at,
            reg_id: b.reg_id.unwrap_or(0),
            conn: b.conn.unwrap_or(0),
            ip,
            port: b.source.port(),
            flags,
        }
    }

    fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).map_or(0, |&e| usize::from(e))
        };
        let end = self
            .ends
            .get(i)
            .map_or(self.data.len(), |&e| usize::from(e));
        self.data.get(start..end).unwrap_or_default()
    }

    /// Contact URI (uri-parameters included, no `<>`).
    pub fn contact(&self) -> &[u8] {
        self.part(CONTACT)
    }

    /// Contact-params to echo.
    pub fn params(&self) -> &[u8] {
        self.part(PARAMS)
    }

    /// Call-ID of the request that stored it.
    pub fn call_id(&self) -> &[u8] {
        self.part(CALL_ID)
    }

    /// CSeq of the request that stored it.
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// Expiry, Unix seconds.
    pub fn expires_at(&self) -> u32 {
        self.expires_at
    }

    /// q in thousandths.
    pub fn q(&self) -> Option<u16> {
        (self.q != NO_Q).then_some(self.q)
    }

    /// `+sip.instance`.
    pub fn instance(&self) -> Option<&[u8]> {
        (self.flags & FLAG_INSTANCE != 0).then(|| self.part(INSTANCE))
    }

    /// `reg-id`.
    pub fn reg_id(&self) -> Option<u32> {
        (self.flags & FLAG_REG_ID != 0).then_some(self.reg_id)
    }

    /// Path header values (joined).
    pub fn path(&self) -> &[u8] {
        self.part(PATH)
    }

    /// User-Agent.
    pub fn user_agent(&self) -> &[u8] {
        self.part(STRINGS - 1)
    }

    /// Source address of the REGISTER.
    pub fn source(&self) -> SocketAddr {
        let ip = if self.flags & FLAG_V6 != 0 {
            IpAddr::V6(Ipv6Addr::from(self.ip))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.ip[0], self.ip[1], self.ip[2], self.ip[3],
            ))
        };
        SocketAddr::new(ip, self.port)
    }

    /// Transport.
    pub fn transport(&self) -> Transport {
        match self.flags & 3 {
            1 => Transport::Tcp,
            2 => Transport::Tls,
            _ => Transport::Udp,
        }
    }

    /// The flow (stream connection).
    pub fn conn(&self) -> Option<u64> {
        (self.flags & FLAG_CONN != 0).then_some(self.conn)
    }

    /// When first stored, Unix seconds.
    pub fn registered_at(&self) -> u32 {
        self.registered_at
    }

    /// A stable identifier (FNV-1a of contact and instance), for management operations.
    pub fn id(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in self
            .contact()
            .iter()
            .chain(self.instance().unwrap_or_default())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// Seconds left at `now_secs` (0 when expired).
    pub fn remaining(&self, now_secs: u32) -> u32 {
        self.expires_at.saturating_sub(now_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(source: &str, instance: Option<&'static [u8]>) -> NewBinding<'static> {
        NewBinding {
            contact: b"sip:u1@192.0.2.44:5060;transport=udp",
            params: b";+sip.instance=\"<urn:x>\";video",
            call_id: b"0123456789abcdef0123456789abcdef",
            cseq: 42,
            expires_at: 1_700_003_600,
            q: Some(500),
            instance,
            reg_id: Some(1),
            path: b"<sip:edge.example.com;lr>",
            source: source.parse().unwrap(),
            transport: Transport::Tls,
            conn: Some(0),
            user_agent: b"Yealink SIP-T46S 66.86.0.15",
            registered_at: 1_700_000_000,
        }
    }

    #[test]
    fn packing_round_trips_every_field() {
        for (source, instance) in [
            ("192.0.2.44:5060", Some(&b"<urn:x>"[..])),
            ("[2001:db8::1]:5061", None),
        ] {
            let n = sample(source, instance);
            let b = Binding::pack(&n);
            assert_eq!(b.contact(), n.contact);
            assert_eq!(b.params(), n.params);
            assert_eq!(b.call_id(), n.call_id);
            assert_eq!(b.cseq(), 42);
            assert_eq!(b.expires_at(), n.expires_at);
            assert_eq!(b.q(), Some(500));
            assert_eq!(b.instance(), instance);
            assert_eq!(b.reg_id(), Some(1));
            assert_eq!(b.path(), n.path);
            assert_eq!(b.source(), n.source);
            assert_eq!(b.transport(), Transport::Tls);
            assert_eq!(b.conn(), Some(0));
            assert_eq!(b.user_agent(), n.user_agent);
            assert_eq!(b.registered_at(), n.registered_at);
            assert_eq!(b.remaining(1_700_003_000), 600);
            assert_eq!(b.remaining(1_800_000_000), 0);
        }
        let empty = NewBinding {
            params: b"",
            q: None,
            instance: None,
            reg_id: None,
            path: b"",
            conn: None,
            user_agent: b"",
            transport: Transport::Udp,
            ..sample("10.0.0.1:1", None)
        };
        let b = Binding::pack(&empty);
        assert_eq!(
            (b.q(), b.instance(), b.reg_id(), b.conn()),
            (None, None, None, None)
        );
        assert_eq!(b.transport(), Transport::Udp);
        assert_eq!(b.user_agent(), b"");
        assert_eq!(b.contact(), empty.contact);
    }

    #[test]
    fn binding_stays_compact() {
        assert!(size_of::<Binding>() <= 72, "{}", size_of::<Binding>());
    }
}
