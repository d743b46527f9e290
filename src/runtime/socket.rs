//! Socket setup and the raw pieces both backends share: SO_REUSEPORT sockets, IP_PKTINFO
//! control messages (so replies leave from the address a request arrived on when bound to a
//! wildcard address), batch message headers, CPU pinning.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, UdpSocket,
};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

/// Room for one IP_PKTINFO or IPV6_PKTINFO control message.
pub(crate) const CONTROL_LEN: usize = 128;

/// A UDP socket bound with SO_REUSEPORT (one per shard and address), nonblocking. On a
/// wildcard address the destination address of each datagram is requested (IP_PKTINFO).
pub(crate) fn udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.[rw]mem_max (see tuning/).
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    if addr.ip().is_unspecified() {
        set_pktinfo(&s, addr.is_ipv6())?;
    }
    // Kernel receive timestamps: how long a datagram waited in the socket queue tells when a
    // shard falls behind (overload -> 503 instead of an unbounded backlog).
    set_int(&s, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Turns a boolean socket option on.
fn set_int(s: &Socket, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: valid fd, option value is a c_int that lives across the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A TCP listener with SO_REUSEPORT, nonblocking.
pub(crate) fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

fn set_pktinfo(s: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        set_int(s, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
    } else {
        set_int(s, libc::IPPROTO_IP, libc::IP_PKTINFO)
    }
}

/// Pins the calling thread to one CPU (best effort; logs nothing).
pub(crate) fn pin_to_core(core: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) == 0
    }
}

/// Storage for a socket address in a msghdr.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    pub(crate) fn zeroed() -> Self {
        // SAFETY: all-zero is a valid sockaddr_in6.
        unsafe { zeroed() }
    }

    /// Fills from `addr`; returns the length to put in `msg_namelen`.
    pub(crate) fn set(&mut self, addr: SocketAddr) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                self.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                self.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        (self as *mut Self).cast()
    }
}

/// Decodes a sockaddr written by the kernel (`len` bytes at `ptr`).
///
/// # Safety
/// `ptr` must point to at least `len` readable bytes holding a sockaddr.
pub(crate) unsafe fn read_addr(ptr: *const u8, len: usize) -> Option<SocketAddr> {
    if len >= size_of::<libc::sockaddr_in6>() {
        // SAFETY: caller guarantees `len` readable bytes; read_unaligned tolerates alignment.
        let a: libc::sockaddr_in6 = unsafe { std::ptr::read_unaligned(ptr.cast()) };
        if i32::from(a.sin6_family) == libc::AF_INET6 {
            return Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )));
        }
    }
    if len >= size_of::<libc::sockaddr_in>() {
        // SAFETY: as above.
        let a: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(ptr.cast()) };
        if i32::from(a.sin_family) == libc::AF_INET {
            return Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )));
        }
    }
    None
}

/// What the control messages of a received datagram say.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Received {
    /// Its destination address (IP_PKTINFO / IPV6_PKTINFO; wildcard-bound sockets).
    pub(crate) local: Option<IpAddr>,
    /// When the kernel received it, ns since the Unix epoch (SO_TIMESTAMPNS).
    pub(crate) at_ns: Option<u64>,
}

/// Reads the destination address and the kernel receive time of a datagram.
///
/// # Safety
/// `msg` must describe a control buffer the kernel filled (msg_control/msg_controllen valid).
pub(crate) unsafe fn read_control(msg: &libc::msghdr) -> Received {
    let mut r = Received::default();
    // SAFETY: CMSG_* walk the control buffer the caller vouches for.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                r.local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
            } else if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                r.local = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            } else if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
                let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
                r.at_ns = Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    r
}

/// Writes a control message choosing `from` as the source address into `control` and points
/// `msg` at it.
///
/// # Safety
/// `control` must stay alive and unmoved until the kernel has consumed `msg`.
pub(crate) unsafe fn write_pktinfo(
    msg: &mut libc::msghdr,
    control: &mut [u8; CONTROL_LEN],
    from: IpAddr,
) {
    control.fill(0);
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: the control buffer is CONTROL_LEN bytes, larger than CMSG_SPACE of either
    // pktinfo struct; CMSG_FIRSTHDR returns its start.
    unsafe {
        match from {
            IpAddr::V4(ip) => {
                let space = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize;
                msg.msg_controllen = space;
                let cmsg = libc::CMSG_FIRSTHDR(msg);
                (*cmsg).cmsg_level = libc::IPPROTO_IP;
                (*cmsg).cmsg_type = libc::IP_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as usize;
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
            }
            IpAddr::V6(ip) => {
                let space = libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as usize;
                msg.msg_controllen = space;
                let cmsg = libc::CMSG_FIRSTHDR(msg);
                (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
                (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as usize;
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
            }
        }
    }
}

/// A nonblocking eventfd used to wake a shard (shutdown).
pub(crate) struct EventFd(std::os::fd::OwnedFd);

impl EventFd {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor we own.
        Ok(Self(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    }

    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    pub(crate) fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), (&raw mut v).cast(), 8) };
    }

    pub(crate) fn fd(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_addr_round_trips_through_read_addr() {
        let cases: [SocketAddr; 4] = [
            "127.0.0.1:5060".parse().unwrap(),
            "203.0.113.9:1".parse().unwrap(),
            "[::1]:5061".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new(
                "fe80::1:2".parse().unwrap(),
                65535,
                0x1234,
                3,
            )),
        ];
        for addr in cases {
            let mut raw = RawAddr::zeroed();
            let len = raw.set(addr) as usize;
            let expected = if addr.is_ipv4() {
                size_of::<libc::sockaddr_in>()
            } else {
                size_of::<libc::sockaddr_in6>()
            };
            assert_eq!(len, expected, "{addr}");
            // SAFETY: `raw` holds `len` initialised bytes.
            let back = unsafe { read_addr(raw.as_mut_ptr().cast(), len) };
            assert_eq!(back, Some(addr));
            // SAFETY: as above; a shorter length than the family needs is refused.
            assert_eq!(unsafe { read_addr(raw.as_mut_ptr().cast(), 4) }, None);
        }
        // An unknown family decodes to nothing.
        let raw = [0u8; 32];
        // SAFETY: 32 readable bytes.
        assert_eq!(unsafe { read_addr(raw.as_ptr(), raw.len()) }, None);
    }

    /// Against the kernel: a wildcard-bound socket learns the destination address and the
    /// receive time of a datagram, and a reply sent with `write_pktinfo` leaves from the address
    /// asked for.
    #[test]
    fn pktinfo_and_timestamp_from_the_kernel() {
        let server = udp("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        // 127.0.0.2, not the address the kernel would pick for a reply by itself (127.0.0.1).
        let asked = Ipv4Addr::new(127, 0, 0, 2);
        client.send_to(b"ping", (asked, port)).unwrap();

        let mut data = [0u8; 64];
        let mut control = [0u64; CONTROL_LEN / 8];
        let mut name = RawAddr::zeroed();
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: plain C struct, all-zero is valid.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = name.as_mut_ptr();
        msg.msg_namelen = size_of::<RawAddr>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = CONTROL_LEN;
        let mut n = -1;
        for _ in 0..200 {
            // SAFETY: every pointer in `msg` refers to a live local buffer of the stated size.
            n = unsafe { libc::recvmsg(server.as_raw_fd(), &raw mut msg, 0) };
            if n >= 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(n, 4, "datagram received");
        // SAFETY: the kernel filled `msg_controllen` bytes of `control`.
        let got = unsafe { read_control(&msg) };
        assert_eq!(got.local, Some(IpAddr::V4(asked)));
        let at = got.at_ns.expect("SO_TIMESTAMPNS");
        assert!(
            at + 1_000_000_000 >= before && at <= before + 5_000_000_000,
            "{at} vs {before}"
        );
        // SAFETY: the kernel wrote `msg_namelen` bytes of the source address.
        let source = unsafe { read_addr(name.as_mut_ptr().cast(), msg.msg_namelen as usize) };
        assert_eq!(source, Some(client.local_addr().unwrap()));

        // The reply, with the source address chosen through IP_PKTINFO.
        let mut reply = *b"pong";
        let mut dest = RawAddr::zeroed();
        let mut out_control = [0u8; CONTROL_LEN];
        let mut out_iov = libc::iovec {
            iov_base: reply.as_mut_ptr().cast(),
            iov_len: reply.len(),
        };
        // SAFETY: plain C struct, all-zero is valid.
        let mut out: libc::msghdr = unsafe { zeroed() };
        out.msg_namelen = dest.set(client.local_addr().unwrap());
        out.msg_name = dest.as_mut_ptr();
        out.msg_iov = &raw mut out_iov;
        out.msg_iovlen = 1;
        // SAFETY: `out_control` outlives the sendmsg below.
        unsafe { write_pktinfo(&mut out, &mut out_control, IpAddr::V4(asked)) };
        // SAFETY: every pointer in `out` refers to a live local buffer.
        let sent = unsafe { libc::sendmsg(server.as_raw_fd(), &raw const out, 0) };
        assert_eq!(sent, 4, "{}", io::Error::last_os_error());
        let mut buf = [0u8; 16];
        let (len, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"pong");
        assert_eq!(from, SocketAddr::from((asked, port)));
    }
}
