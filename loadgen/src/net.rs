//! Batch UDP I/O on connected sockets (sendmmsg/recvmmsg) and poll(2): the libc calls std
//! does not offer.
#![allow(unsafe_code)]

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Duration;

const BATCH: usize = 64;
const BUF: usize = 8 * 1024;

/// Reusable receive buffers (`Default` is an empty placeholder that receives nothing).
#[derive(Default)]
pub struct RecvBatch {
    bufs: Vec<u8>,
}

impl RecvBatch {
    pub fn new() -> Self {
        Self {
            bufs: vec![0; BATCH * BUF],
        }
    }

    /// Calls `f` on every datagram the socket has now, in place. Fails only when the kernel
    /// reports the target unreachable (ICMP port unreachable on the connected socket:
    /// ECONNREFUSED).
    pub fn recv_each(&mut self, sock: &UdpSocket, mut f: impl FnMut(&[u8])) -> std::io::Result<()> {
        if self.bufs.len() < BATCH * BUF {
            // The empty placeholder left by `mem::take`: never used for I/O.
            return Ok(());
        }
        loop {
            // SAFETY: plain C structs, all-zero is valid; pointers are set below.
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for i in 0..BATCH {
                iov[i] = libc::iovec {
                    iov_base: self.bufs[i * BUF..].as_mut_ptr().cast(),
                    iov_len: BUF,
                };
                msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: msgs/iov point into self.bufs, alive for the call.
            let n = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                return refused();
            }
            if n == 0 {
                return Ok(());
            }
            let n = n as usize;
            for (i, m) in msgs.iter().enumerate().take(n) {
                let len = (m.msg_len as usize).min(BUF);
                if let Some(d) = self.bufs.get(i * BUF..i * BUF + len) {
                    f(d);
                }
            }
            if n < BATCH {
                return Ok(());
            }
        }
    }
}

/// The last OS error if it says the connected target is unreachable (ECONNREFUSED), else `Ok`.
fn refused() -> std::io::Result<()> {
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ECONNREFUSED) {
        Err(e)
    } else {
        Ok(())
    }
}

/// Sends each `(socket index, bytes)` on its connected socket, batching consecutive ones.
/// Fails only when the kernel reports the target unreachable (ECONNREFUSED); other send
/// errors (a full buffer) show up as retransmissions and timeouts.
pub fn send_batch(socks: &[UdpSocket], batch: &[(usize, &[u8])]) -> std::io::Result<()> {
    let mut i = 0;
    while i < batch.len() {
        let sock = batch[i].0;
        let Some(s) = socks.get(sock) else {
            return Ok(());
        };
        // SAFETY: plain C structs, all-zero is valid; pointers are set below.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let mut n = 0;
        while n < BATCH && i + n < batch.len() && batch[i + n].0 == sock {
            let bytes = batch[i + n].1;
            iov[n] = libc::iovec {
                iov_base: bytes.as_ptr().cast_mut().cast(),
                iov_len: bytes.len(),
            };
            msgs[n].msg_hdr.msg_iov = &raw mut iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
            n += 1;
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: msgs point at iovecs and at byte slices borrowed for the call.
            let rc = unsafe {
                libc::sendmmsg(
                    s.as_raw_fd(),
                    msgs[sent..].as_mut_ptr(),
                    (n - sent) as u32,
                    0,
                )
            };
            if rc < 0 {
                refused()?;
            }
            if rc <= 0 {
                // A full socket buffer: the loss is visible as retransmissions/timeouts.
                break;
            }
            sent += rc as usize;
        }
        i += n;
    }
    Ok(())
}

/// Waits until one of `fds` is readable or `timeout` passes.
pub fn poll_readable(fds: &[i32], timeout: Duration) {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = i32::try_from(timeout.as_millis())
        .unwrap_or(1)
        .max(if timeout.is_zero() { 0 } else { 1 });
    // SAFETY: `p` is a valid array of pollfd for the call.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
}

/// CPU time (user + system) of this process so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Pins the calling thread to a CPU (best effort).
pub fn pin(core: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set);
    }
}

/// The echo responder: recvmmsg/sendmmsg batches of 64; each datagram is answered with a 200
/// that copies Via, From, To, Call-ID and CSeq — the same reply size class as a registrar's.
/// Runs until the process ends (or `stop` is set).
pub fn echo(
    listen: std::net::SocketAddr,
    stop: Option<&std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(listen)?;
    let fd = sock.as_raw_fd();
    let mut bufs = vec![0u8; BATCH * BUF];
    let mut replies: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1024)).collect();
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut names: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
    loop {
        if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            return Ok(());
        }
        poll_readable(&[fd], Duration::from_millis(100));
        // SAFETY: plain C structs, all-zero is valid; pointers are set below.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iov[i] = libc::iovec {
                iov_base: bufs[i * BUF..].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&raw mut names[i]).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
        }
        // SAFETY: every pointer refers to buffers alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        let n = n as usize;
        let mut out: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let mut oiov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut k = 0;
        for i in 0..n {
            let len = (msgs[i].msg_len as usize).min(BUF);
            if !crate::msgs::respond(&bufs[i * BUF..i * BUF + len], None, &mut replies[k]) {
                continue;
            }
            oiov[k] = libc::iovec {
                iov_base: replies[k].as_mut_ptr().cast(),
                iov_len: replies[k].len(),
            };
            out[k].msg_hdr.msg_iov = &raw mut oiov[k];
            out[k].msg_hdr.msg_iovlen = 1;
            out[k].msg_hdr.msg_name = (&raw mut names[i]).cast();
            out[k].msg_hdr.msg_namelen = msgs[i].msg_hdr.msg_namelen;
            k += 1;
        }
        // SAFETY: `out` points at replies and names alive for the call.
        unsafe { libc::sendmmsg(fd, out.as_mut_ptr(), k as u32, 0) };
    }
}
