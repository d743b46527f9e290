//! The fallback backend: epoll readiness, recvmmsg/sendmmsg batches for UDP, nonblocking
//! reads and writes for streams. Used where io_uring is unavailable, and as a test oracle.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::socket::{read_addr, read_control, write_pktinfo, EventFd, RawAddr, CONTROL_LEN};
use super::worker::{Interest, Shard, TOKEN_LISTENER, TOKEN_UDP, TOKEN_WAKE};

/// Datagrams per recvmmsg/sendmmsg call.
const BATCH: usize = 32;
/// Receive buffer per datagram (a UDP SIP message larger than this is dropped).
const RECV_BUF: usize = 16 * 1024;
/// recvmmsg calls per socket per wakeup (fairness between sockets and streams).
const RECV_ROUNDS: usize = 8;

/// Buffers for one batch; pointers are (re)set right before each syscall.
struct Batch {
    bufs: Vec<u8>,
    iov: Vec<libc::iovec>,
    names: Vec<RawAddr>,
    control: Vec<[u8; CONTROL_LEN]>,
    msgs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new(buf_len: usize) -> Self {
        // SAFETY: mmsghdr/iovec are plain C structs; all-zero is valid (null pointers, zero
        // lengths) and every pointer is set before use.
        let zero_msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let zero_iov: libc::iovec = unsafe { std::mem::zeroed() };
        Self {
            bufs: vec![0; BATCH * buf_len],
            iov: vec![zero_iov; BATCH],
            names: vec![RawAddr::zeroed(); BATCH],
            control: vec![[0; CONTROL_LEN]; BATCH],
            msgs: vec![zero_msg; BATCH],
        }
    }
}

/// The epoll driver of one shard.
pub(crate) struct Driver {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
    rx: Batch,
    tx: Batch,
    waker: Arc<EventFd>,
    udp_fds: Vec<RawFd>,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Driver {
    pub(crate) fn new(shard: &Shard, waker: &Arc<EventFd>) -> io::Result<Self> {
        // SAFETY: plain syscall; the fd is owned right away.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epfd is a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(epfd) };
        let d = Self {
            epoll,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
            rx: Batch::new(RECV_BUF),
            tx: Batch::new(0),
            waker: Arc::clone(waker),
            udp_fds: shard.udp.iter().map(AsRawFd::as_raw_fd).collect(),
        };
        for (i, fd) in d.udp_fds.clone().into_iter().enumerate() {
            d.ctl(
                libc::EPOLL_CTL_ADD,
                fd,
                TOKEN_UDP | i as u64,
                libc::EPOLLIN as u32,
            )?;
        }
        for (i, l) in shard.listeners.iter().enumerate() {
            d.ctl(
                libc::EPOLL_CTL_ADD,
                l.socket.as_raw_fd(),
                TOKEN_LISTENER | i as u64,
                libc::EPOLLIN as u32,
            )?;
        }
        d.ctl(
            libc::EPOLL_CTL_ADD,
            waker.fd(),
            TOKEN_WAKE,
            libc::EPOLLIN as u32,
        )?;
        Ok(d)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: valid epoll fd and a live event struct.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &raw mut ev) }).map(|_| ())
    }

    fn recv_udp(&mut self, shard: &mut Shard, socket: usize) {
        let Some(&fd) = self.udp_fds.get(socket) else {
            return;
        };
        for _ in 0..RECV_ROUNDS {
            let rx = &mut self.rx;
            for i in 0..BATCH {
                rx.iov[i] = libc::iovec {
                    iov_base: rx.bufs[i * RECV_BUF..].as_mut_ptr().cast(),
                    iov_len: RECV_BUF,
                };
                let hdr = &mut rx.msgs[i].msg_hdr;
                hdr.msg_name = rx.names[i].as_mut_ptr();
                hdr.msg_namelen = size_of::<RawAddr>() as libc::socklen_t;
                hdr.msg_iov = &raw mut rx.iov[i];
                hdr.msg_iovlen = 1;
                hdr.msg_control = rx.control[i].as_mut_ptr().cast();
                hdr.msg_controllen = CONTROL_LEN;
                hdr.msg_flags = 0;
            }
            // SAFETY: every mmsghdr points into buffers owned by `rx`, alive for the call.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    rx.msgs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n <= 0 {
                return;
            }
            for i in 0..usize::try_from(n).unwrap_or(0) {
                let m = &rx.msgs[i];
                if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    continue; // larger than our receive buffer: dropped
                }
                // SAFETY: the kernel wrote msg_namelen bytes of address into names[i].
                let source = unsafe {
                    read_addr(
                        (&raw const rx.names[i]).cast(),
                        m.msg_hdr.msg_namelen as usize,
                    )
                };
                // SAFETY: the kernel filled the control buffer msg_hdr points at.
                let received = unsafe { read_control(&m.msg_hdr) };
                let len = (m.msg_len as usize).min(RECV_BUF);
                let data = &rx.bufs[i * RECV_BUF..i * RECV_BUF + len];
                if let Some(source) = source {
                    shard.on_datagram(socket, source, received, data);
                }
            }
            if usize::try_from(n).unwrap_or(0) < BATCH {
                return;
            }
        }
    }

    fn send_udp(&mut self, shard: &Shard) {
        let mut i = 0;
        while i < shard.sends.len() {
            let socket = shard.sends[i].socket;
            let Some(&fd) = self.udp_fds.get(socket) else {
                return;
            };
            let tx = &mut self.tx;
            let mut n = 0;
            while n < BATCH && i + n < shard.sends.len() && shard.sends[i + n].socket == socket {
                let s = &shard.sends[i + n];
                let bytes = &shard.send_buf[s.start..s.end];
                tx.iov[n] = libc::iovec {
                    iov_base: bytes.as_ptr().cast_mut().cast(),
                    iov_len: bytes.len(),
                };
                let namelen = tx.names[n].set(s.dest);
                let hdr = &mut tx.msgs[n].msg_hdr;
                hdr.msg_name = tx.names[n].as_mut_ptr();
                hdr.msg_namelen = namelen;
                hdr.msg_iov = &raw mut tx.iov[n];
                hdr.msg_iovlen = 1;
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
                if let Some(from) = s.from {
                    // SAFETY: tx.control[n] lives in `self.tx` until sendmmsg returns.
                    unsafe { write_pktinfo(hdr, &mut tx.control[n], from) };
                }
                n += 1;
            }
            let mut sent = 0;
            while sent < n {
                // SAFETY: msgs[sent..n] point into `tx` and `shard.send_buf`, both alive.
                let rc = unsafe {
                    libc::sendmmsg(
                        fd,
                        tx.msgs[sent..].as_mut_ptr(),
                        (n - sent) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc <= 0 {
                    // Full socket buffer or a per-packet error: count and drop the rest.
                    let lost = (n - sent) as u64;
                    shard
                        .stats
                        .send_errors
                        .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
                sent += usize::try_from(rc).unwrap_or(n);
            }
            i += n;
        }
    }

    fn apply_interest(&mut self, shard: &Shard) {
        for &(fd, token, interest) in &shard.interest {
            let read = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
            let result = match interest {
                Interest::Add { write } => self.ctl(
                    libc::EPOLL_CTL_ADD,
                    fd,
                    token,
                    read | if write { libc::EPOLLOUT as u32 } else { 0 },
                ),
                Interest::Modify { write } => self.ctl(
                    libc::EPOLL_CTL_MOD,
                    fd,
                    token,
                    read | if write { libc::EPOLLOUT as u32 } else { 0 },
                ),
                Interest::Remove => self.ctl(libc::EPOLL_CTL_DEL, fd, token, 0),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "epoll_ctl failed");
            }
        }
    }
}

impl super::Driver for Driver {
    fn turn(&mut self, shard: &mut Shard, timeout: Duration) -> io::Result<()> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the events buffer is valid for `len` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        shard.begin_batch();
        for i in 0..usize::try_from(n).unwrap_or(0) {
            let ev = self.events[i];
            let (token, flags) = (ev.u64, ev.events);
            match token & (0xff << 56) {
                TOKEN_UDP => self.recv_udp(shard, (token & 0xffff) as usize),
                TOKEN_WAKE => self.waker.drain(),
                _ => {
                    let readable = flags
                        & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP)
                            as u32
                        != 0;
                    let writable = flags & libc::EPOLLOUT as u32 != 0;
                    shard.on_ready(token, readable, writable);
                }
            }
        }
        self.send_udp(shard);
        self.apply_interest(shard);
        shard.end_batch();
        Ok(())
    }
}
