//! The io_uring backend (the `io-uring` crate used directly).
//!
//! - Setup: SINGLE_ISSUER + DEFER_TASKRUN where the kernel has them, else COOP_TASKRUN, else
//!   plain; the ring is created and used only by its shard thread.
//! - UDP: ONE multishot `RecvMsg` per socket (arming more wakes every armed entry per datagram),
//!   drawing from a provided buffer ring; each completion carries source address, IP_PKTINFO
//!   and payload. Replies are `SendMsg` SQEs submitted once per completion batch, from reusable
//!   send slots.
//! - Streams: multishot `PollAdd` readiness for listeners and connections (one-shot POLLOUT
//!   while a connection has unsent bytes); the shared worker does the nonblocking reads and
//!   writes, as with epoll.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::types::{BufRingEntry, CancelBuilder, Fd, Fixed, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::socket::{read_addr, read_control, write_pktinfo, EventFd, RawAddr, CONTROL_LEN};
use super::worker::{Interest, Shard, TOKEN_LISTENER, TOKEN_UDP, TOKEN_WAKE};

const TAG_SEND: u64 = 5 << 56;
const TAG_CANCEL: u64 = 6 << 56;
/// Marks the one-shot POLLOUT poll of a connection token.
const WRITE_BIT: u64 = 1 << 55;
// Connection slots (bits 32.. of a token, below MAX_CONNECTIONS_PER_SHARD) never reach it.
const _: () = assert!(
    (crate::config::MAX_CONNECTIONS_PER_SHARD as u64) << 32 <= WRITE_BIT,
    "connection slots would collide with WRITE_BIT"
);
const KIND_MASK: u64 = 0xff << 56;

const BGID: u16 = 7;
/// Provided buffers per shard (a power of two) and their size: 256 x 16 KiB.
const BUF_COUNT: u16 = 256;
const BUF_SIZE: usize = 16 * 1024;
const RING_ENTRIES: u32 = 1024;

fn build_ring() -> io::Result<IoUring> {
    let attempts: [fn(&mut io_uring::Builder); 3] = [
        |b| {
            b.setup_single_issuer().setup_defer_taskrun();
        },
        |b| {
            b.setup_coop_taskrun();
        },
        |_| {},
    ];
    let mut last = io::Error::other("io_uring setup failed");
    for configure in attempts {
        let mut builder = IoUring::builder();
        configure(&mut builder);
        match builder.build(RING_ENTRIES) {
            Ok(ring) => return Ok(ring),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Checks that io_uring works here with everything this backend uses.
pub(crate) fn probe() -> Result<(), String> {
    let ring = build_ring().map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => "kernel without io_uring (ENOSYS)".to_owned(),
        Some(libc::EPERM) => {
            "io_uring blocked (EPERM: seccomp or kernel.io_uring_disabled)".to_owned()
        }
        _ => format!("io_uring setup failed: {e}"),
    })?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("io_uring probe failed: {e}"))?;
    for (code, name) in [
        (opcode::RecvMsgMulti::CODE, "RecvMsgMulti"),
        (opcode::SendMsg::CODE, "SendMsg"),
        (opcode::PollAdd::CODE, "PollAdd"),
        (opcode::PollRemove::CODE, "PollRemove"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("io_uring opcode {name} unsupported"));
        }
    }
    let ring_buf = BufRing::new(8, 64).map_err(|e| format!("buffer ring allocation: {e}"))?;
    // SAFETY: the ring memory outlives the registration (unregistered right below).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(ring_buf.base as u64, 8, BGID, 0)
    }
    .map_err(|e| format!("provided buffer rings unsupported: {e}"))?;
    let _ = ring.submitter().unregister_buf_ring(BGID);
    Ok(())
}

/// A provided buffer ring: page-aligned entries (mmap) plus the buffers they describe.
struct BufRing {
    base: *mut BufRingEntry,
    map_len: usize,
    entries: u16,
    buf_size: usize,
    bufs: Vec<u8>,
    tail: u16,
}

impl BufRing {
    fn new(entries: u16, buf_size: usize) -> io::Result<Self> {
        let map_len = usize::from(entries) * size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping; checked for MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut ring = Self {
            base: ptr.cast(),
            map_len,
            entries,
            buf_size,
            bufs: vec![0; usize::from(entries) * buf_size],
            tail: 0,
        };
        for bid in 0..entries {
            ring.push(bid);
        }
        ring.publish();
        Ok(ring)
    }

    fn push(&mut self, bid: u16) {
        let idx = usize::from(self.tail & (self.entries - 1));
        let addr = self.bufs[usize::from(bid) * self.buf_size..].as_mut_ptr() as u64;
        // SAFETY: idx < entries, inside the mapping.
        let entry = unsafe { &mut *self.base.add(idx) };
        entry.set_addr(addr);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes pushed buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field of the first entry, which the kernel reads atomically.
        unsafe {
            let tail = BufRingEntry::tail(self.base).cast_mut();
            (*tail.cast::<AtomicU16>()).store(self.tail, Ordering::Release);
        }
    }

    fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buf_size;
        &self.bufs[start..start + len.min(self.buf_size)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}

/// One in-flight UDP reply: everything sendmsg points at, at a stable address.
struct SendSlot {
    msg: libc::msghdr,
    iov: libc::iovec,
    addr: RawAddr,
    control: [u8; CONTROL_LEN],
    data: Vec<u8>,
}

struct Udp {
    /// Index of the socket in the ring's registered file table (no file reference counting per
    /// SQE, which a multi-threaded process otherwise pays on every SendMsg).
    fixed: u32,
    /// The template the multishot receive uses (name and control lengths).
    msg: Box<libc::msghdr>,
    armed: bool,
}

/// The io_uring driver of one shard. Field order matters: the ring is dropped first.
pub(crate) struct Driver {
    ring: IoUring,
    bufs: BufRing,
    udp: Vec<Udp>,
    /// Boxed: a slot's address must not change while its SendMsg is in flight, even when the
    /// Vec grows.
    #[allow(clippy::vec_box)]
    slots: Vec<Box<SendSlot>>,
    free_slots: Vec<usize>,
    /// Read polls armed for listeners and connections, to re-arm when one ends.
    polls: HashMap<u64, RawFd>,
    waker: Arc<EventFd>,
    cqes: Vec<(u64, i32, u32)>,
}

impl Driver {
    pub(crate) fn new(shard: &Shard, waker: &Arc<EventFd>) -> io::Result<Self> {
        let ring = build_ring()?;
        let bufs = BufRing::new(BUF_COUNT, BUF_SIZE)?;
        // SAFETY: `bufs` lives in the driver as long as the ring (dropped after it).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.base as u64, BUF_COUNT, BGID, 0)?
        };
        let fds: Vec<RawFd> = shard.udp.iter().map(AsRawFd::as_raw_fd).collect();
        if !fds.is_empty() {
            ring.submitter().register_files(&fds)?;
        }
        let udp = (0..fds.len())
            .map(|i| {
                // SAFETY: plain C struct, all-zero is valid.
                let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
                msg.msg_namelen = size_of::<RawAddr>() as libc::socklen_t;
                msg.msg_controllen = CONTROL_LEN;
                Udp {
                    fixed: u32::try_from(i).unwrap_or(u32::MAX),
                    msg,
                    armed: false,
                }
            })
            .collect();
        let mut d = Self {
            ring,
            bufs,
            udp,
            slots: Vec::new(),
            free_slots: Vec::new(),
            polls: HashMap::new(),
            waker: Arc::clone(waker),
            cqes: Vec::with_capacity(256),
        };
        for i in 0..d.udp.len() {
            d.arm_recv(i)?;
        }
        for (i, l) in shard.listeners.iter().enumerate() {
            d.arm_poll(
                l.socket.as_raw_fd(),
                TOKEN_LISTENER | i as u64,
                libc::POLLIN as u32,
                true,
            )?;
        }
        d.arm_poll(waker.fd(), TOKEN_WAKE, libc::POLLIN as u32, true)?;
        Ok(d)
    }

    fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        // SAFETY: every SQE we build points at memory owned by the driver or the shard's
        // sockets, alive until its completion (see the field comments).
        while unsafe { self.ring.submission().push(sqe) }.is_err() {
            self.ring.submit()?;
        }
        Ok(())
    }

    fn arm_recv(&mut self, i: usize) -> io::Result<()> {
        let Some(u) = self.udp.get_mut(i) else {
            return Ok(());
        };
        u.armed = true;
        let sqe = opcode::RecvMsgMulti::new(Fixed(u.fixed), &raw const *u.msg, BGID)
            .build()
            .user_data(TOKEN_UDP | i as u64);
        self.push(&sqe)
    }

    fn arm_poll(&mut self, fd: RawFd, token: u64, events: u32, multi: bool) -> io::Result<()> {
        if multi {
            self.polls.insert(token, fd);
        }
        let sqe = opcode::PollAdd::new(Fd(fd), events)
            .multi(multi)
            .build()
            .user_data(token);
        self.push(&sqe)
    }

    fn cancel(&mut self, token: u64) -> io::Result<()> {
        let sqe = opcode::PollRemove::new(token).build().user_data(TAG_CANCEL);
        self.push(&sqe)
    }

    fn on_recv(&mut self, shard: &mut Shard, i: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            if let Some(u) = self.udp.get_mut(i) {
                u.armed = false;
            }
        }
        if res < 0 {
            if res != -libc::ENOBUFS {
                tracing::debug!(error = %io::Error::from_raw_os_error(-res), "udp receive failed");
            }
            return;
        }
        let Some(bid) = cqueue::buffer_select(flags) else {
            return;
        };
        let Some(u) = self.udp.get(i) else { return };
        let buf = self.bufs.buffer(bid, usize::try_from(res).unwrap_or(0));
        if let Ok(out) = RecvMsgOut::parse(buf, &u.msg) {
            if !out.is_payload_truncated() {
                let name = out.name_data();
                // SAFETY: name_data is the kernel-written sockaddr of `name.len()` bytes.
                let source = unsafe { read_addr(name.as_ptr(), name.len()) };
                // The control bytes sit at an arbitrary offset of the provided buffer: copy them
                // to an 8-byte aligned buffer before walking the cmsg headers.
                let control = out.control_data();
                let mut aligned = [0u64; CONTROL_LEN / 8];
                let len = control.len().min(CONTROL_LEN);
                // SAFETY: `aligned` is CONTROL_LEN bytes; `len` bytes are copied into it.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        control.as_ptr(),
                        aligned.as_mut_ptr().cast::<u8>(),
                        len,
                    )
                };
                // SAFETY: a msghdr describing the copied control bytes, read only.
                let received = unsafe {
                    let mut m: libc::msghdr = std::mem::zeroed();
                    m.msg_control = aligned.as_mut_ptr().cast();
                    m.msg_controllen = len;
                    read_control(&m)
                };
                if let Some(source) = source {
                    shard.on_datagram(i, source, received, out.payload_data());
                }
            }
        }
        self.bufs.push(bid);
    }

    fn queue_sends(&mut self, shard: &Shard) -> io::Result<()> {
        for s in &shard.sends {
            let Some(u) = self.udp.get(s.socket) else {
                continue;
            };
            let fixed = u.fixed;
            let idx = match self.free_slots.pop() {
                Some(i) => i,
                None => {
                    self.slots.push(Box::new(SendSlot {
                        // SAFETY: plain C structs, all-zero is valid.
                        msg: unsafe { std::mem::zeroed() },
                        iov: libc::iovec {
                            iov_base: std::ptr::null_mut(),
                            iov_len: 0,
                        },
                        addr: RawAddr::zeroed(),
                        control: [0; CONTROL_LEN],
                        data: Vec::with_capacity(1024),
                    }));
                    self.slots.len() - 1
                }
            };
            let slot = &mut self.slots[idx];
            slot.data.clear();
            slot.data.extend_from_slice(&shard.send_buf[s.start..s.end]);
            slot.iov = libc::iovec {
                iov_base: slot.data.as_mut_ptr().cast(),
                iov_len: slot.data.len(),
            };
            let namelen = slot.addr.set(s.dest);
            // SAFETY: plain C struct, all-zero is valid.
            slot.msg = unsafe { std::mem::zeroed() };
            slot.msg.msg_name = slot.addr.as_mut_ptr();
            slot.msg.msg_namelen = namelen;
            slot.msg.msg_iov = &raw mut slot.iov;
            slot.msg.msg_iovlen = 1;
            if let Some(from) = s.from {
                // SAFETY: the control buffer lives in the boxed slot until the completion.
                unsafe { write_pktinfo(&mut slot.msg, &mut slot.control, from) };
            }
            let sqe = opcode::SendMsg::new(Fixed(fixed), &raw const slot.msg)
                .build()
                .user_data(TAG_SEND | idx as u64);
            self.push(&sqe)?;
        }
        Ok(())
    }

    fn apply_interest(&mut self, shard: &Shard) -> io::Result<()> {
        let read = (libc::POLLIN | libc::POLLRDHUP) as u32;
        for &(fd, token, interest) in &shard.interest {
            match interest {
                Interest::Add { write } => {
                    self.arm_poll(fd, token, read, true)?;
                    if write {
                        self.arm_poll(fd, token | WRITE_BIT, libc::POLLOUT as u32, false)?;
                    }
                }
                Interest::Modify { write: true } => {
                    self.arm_poll(fd, token | WRITE_BIT, libc::POLLOUT as u32, false)?
                }
                Interest::Modify { write: false } => self.cancel(token | WRITE_BIT)?,
                Interest::Remove => {
                    self.polls.remove(&token);
                    // Every request still on the fd, whatever its user data: a poll left armed
                    // would keep the socket open inside the ring after its fd is closed.
                    let sqe = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
                        .build()
                        .user_data(TAG_CANCEL);
                    self.push(&sqe)?;
                    self.cancel(token)?;
                    self.cancel(token | WRITE_BIT)?;
                }
            }
        }
        Ok(())
    }
}

impl super::Driver for Driver {
    fn turn(&mut self, shard: &mut Shard, timeout: Duration) -> io::Result<()> {
        let ts = Timespec::from(timeout);
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        shard.begin_batch();
        self.cqes.clear();
        self.cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let cqes = std::mem::take(&mut self.cqes);
        let mut returned = false;
        for &(data, res, flags) in &cqes {
            match data & KIND_MASK {
                TOKEN_UDP => {
                    self.on_recv(shard, (data & 0xffff) as usize, res, flags);
                    returned = true;
                }
                TAG_SEND => {
                    let idx = (data & 0xffff_ffff) as usize;
                    if res < 0 {
                        shard.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    self.free_slots.push(idx);
                }
                TAG_CANCEL => {}
                TOKEN_WAKE => {
                    self.waker.drain();
                    if !cqueue::more(flags) {
                        self.arm_poll(self.waker.fd(), TOKEN_WAKE, libc::POLLIN as u32, true)?;
                    }
                }
                _ => {
                    if res == -libc::ECANCELED || res == -libc::ENOENT {
                        continue;
                    }
                    let ev = u32::try_from(res).unwrap_or(0);
                    let is_write = data & WRITE_BIT != 0;
                    let token = data & !WRITE_BIT;
                    let readable = !is_write
                        && (res < 0
                            || ev
                                & (libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLRDHUP)
                                    as u32
                                != 0);
                    let writable = is_write && res >= 0;
                    shard.on_ready(token, readable, writable);
                    if !is_write && !cqueue::more(flags) {
                        if let Some(&fd) = self.polls.get(&token) {
                            self.arm_poll(
                                fd,
                                token,
                                (libc::POLLIN | libc::POLLRDHUP) as u32,
                                true,
                            )?;
                        }
                    }
                }
            }
        }
        self.cqes = cqes;
        if returned {
            self.bufs.publish();
        }
        for i in 0..self.udp.len() {
            if !self.udp[i].armed {
                self.arm_recv(i)?;
            }
        }
        self.queue_sends(shard)?;
        self.apply_interest(shard)?;
        // Replies alone ride on the next turn's submit-and-wait (one io_uring_enter per batch
        // instead of two; the worker loop comes straight back here). Stream interest changes
        // are submitted now, before `end_batch` closes the sockets they cancel, and so is
        // everything on the final, non-waiting turns of a graceful stop.
        if !shard.interest.is_empty() || timeout.is_zero() {
            self.ring.submit()?;
        }
        shard.end_batch();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_CONNECTIONS_PER_SHARD;
    use crate::runtime::worker::conn_token;

    #[test]
    fn connection_tokens_leave_kind_and_write_bits_alone() {
        for (slot, generation) in [
            (0, 0),
            (1, u32::MAX),
            (4095, 7),
            (MAX_CONNECTIONS_PER_SHARD - 1, u32::MAX),
        ] {
            let token = conn_token(slot, generation);
            assert_eq!(token & WRITE_BIT, 0, "slot {slot}");
            assert_eq!(
                token & KIND_MASK,
                super::super::worker::TOKEN_CONN,
                "slot {slot}"
            );
            let marked = token | WRITE_BIT;
            assert_ne!(marked & KIND_MASK, TAG_SEND);
            assert_eq!(marked & !WRITE_BIT, token);
        }
    }

    #[test]
    fn buffer_ring_wraps_and_bounds_buffers() {
        let Ok(mut ring) = BufRing::new(8, 64) else {
            eprintln!("SKIP: mmap for the buffer ring failed");
            return;
        };
        assert_eq!(ring.tail, 8, "all buffers provided at start");
        for bid in [3, 5, 7, 0, 1, 2, 4, 6, 3] {
            ring.push(bid);
        }
        assert_eq!(ring.tail, 17);
        // Entry (17 - 1) & 7 = 0 now describes buffer 3.
        // SAFETY: index 0 is inside the 8-entry mapping.
        let entry = unsafe { &*ring.base };
        assert_eq!(entry.bid(), 3);
        assert_eq!(entry.len(), 64);
        assert_eq!(entry.addr(), ring.bufs[3 * 64..].as_ptr() as u64);
        assert_eq!(ring.buffer(2, 10).len(), 10);
        assert_eq!(
            ring.buffer(7, 1000).len(),
            64,
            "a buffer never reads past its end"
        );
    }
}
