//! One load worker: its users, its sockets (connected UDP sockets driven with
//! sendmmsg/recvmmsg, or TCP/TLS connections), its in-flight transactions and timers.
//!
//! Open loop: request N is scheduled at `start + N / rate` and its latency counts from that
//! scheduled time, so a stalled target cannot hide queueing delay (coordinated omission).
//! Closed loop: `max_in_flight` transactions outstanding. UDP transactions are retransmitted
//! per RFC 3261 Timer E (T1 doubling up to T2 = 4 s) and time out at Timer F (64 x T1).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sipreg::auth::Algorithm;

use crate::msgs::{self, Cached, Kind, Register};
use crate::net;
use crate::stats::{histogram, Counters, Snapshot};
use crate::tls;
use crate::users::User;

/// Transport to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// Run parameters shared by all workers.
#[derive(Clone)]
pub struct Plan {
    pub target: SocketAddr,
    pub transport: Transport,
    /// Request kinds with weights (percent).
    pub mix: Vec<(Kind, u32)>,
    pub users: Arc<Vec<User>>,
    /// Total requests per second over all workers; 0 = closed loop.
    pub rate: f64,
    /// Outstanding transactions per worker.
    pub max_in_flight: usize,
    pub duration: Duration,
    pub expires: u32,
    pub t1: Duration,
    pub timer_f: Duration,
    /// UDP sockets (source ports) per worker.
    pub sockets: usize,
    /// TCP/TLS connections per worker (0 = one per user).
    pub connections: usize,
    pub prefer: Algorithm,
    pub tls_resume: bool,
    pub tls_ca: Option<std::path::PathBuf>,
    /// Each user sends exactly one request (storm).
    pub once: bool,
    /// Register every user (unmeasured) before the measured phase (Re-Registration Rate).
    pub preregister: bool,
    pub workers: usize,
}

struct Ua {
    user: usize,
    call_id: String,
    cseq: u32,
    challenge: Option<Cached>,
    busy: bool,
}

struct Txn {
    ua: usize,
    kind: Kind,
    generation: u32,
    scheduled: Instant,
    first_sent: Instant,
    last_sent: Instant,
    interval: Duration,
    authed: bool,
    /// Answered a challenge received within this transaction (a second 401 is final).
    fresh: bool,
    link: usize,
    bytes: Vec<u8>,
    live: bool,
}

enum Links {
    Udp(Vec<UdpSocket>),
    Stream(Vec<tls::Stream>),
}

/// Totals a worker returns.
pub struct Totals {
    pub counters: Counters,
    pub latency: hdrhistogram::Histogram<u64>,
}

pub fn run(
    index: usize,
    plan: &Plan,
    users: std::ops::Range<usize>,
    tx: &Sender<Snapshot>,
    barrier: Option<&Barrier>,
) -> Result<Totals> {
    // Call-IDs unique per run: a later run must not look like an out-of-order request of an
    // earlier one (RFC 3261 §10.3 step 7).
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut uas: Vec<Ua> = users
        .map(|u| Ua {
            user: u,
            call_id: format!("lg{index}-{u}-{:x}-{run_id:x}", std::process::id()),
            cseq: 0,
            challenge: None,
            busy: false,
        })
        .collect();
    let arrive = || {
        if let Some(b) = barrier {
            b.wait();
        }
    };
    if uas.is_empty() {
        arrive();
        return Ok(Totals {
            counters: Counters::default(),
            latency: histogram(),
        });
    }
    let links = match connect(plan, uas.len()) {
        Ok(l) => l,
        Err(e) => {
            arrive();
            return Err(e);
        }
    };
    // Local addresses asked once (getsockname per request would cost a syscall each).
    let locals = match &links {
        Links::Udp(s) => s.iter().map(|s| s.local_addr().ok()).collect::<Vec<_>>(),
        Links::Stream(s) => s.iter().map(tls::Stream::local_addr).collect(),
    }
    .into_iter()
    .map(|a| a.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))))
    .collect();
    let mut w = Worker {
        plan,
        links,
        locals,
        responses: Vec::new(),
        slots: Vec::new(),
        free: Vec::new(),
        timers: BinaryHeap::new(),
        generation: 0,
        in_flight: 0,
        second: Counters::default(),
        second_hist: histogram(),
        total: Counters::default(),
        total_hist: histogram(),
        rng: 0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1),
        branch: String::new(),
        recv: net::RecvBatch::new(),
        send: Vec::new(),
        refused: 0,
    };
    if plan.preregister {
        // RFC 7502 Re-Registration Rate: bind every AOR first (closed loop, unmeasured), then
        // measure refreshes of those bindings. Every worker reaches the barrier, even after an
        // error, so the main thread cannot wait forever.
        let pre = w.phase(
            &mut uas,
            &Phase {
                mix: &[(Kind::Register, 100)],
                rate: 0.0,
                once: true,
                duration: plan.timer_f.max(plan.duration) * 4,
                report: None,
            },
        );
        w.second = Counters::default();
        w.second_hist.reset();
        let failed = w.total.failures();
        let codes = format!("{:?}", w.total.failed);
        let timeouts = w.total.timeouts;
        w.total = Counters::default();
        w.total_hist.reset();
        arrive();
        pre?;
        if failed > 0 {
            bail!(
                "pre-registration: {failed} of the users could not register \
                 (final codes {codes}, {timeouts} timeouts)"
            );
        }
    }
    w.phase(
        &mut uas,
        &Phase {
            mix: &plan.mix,
            rate: plan.rate / plan.workers.max(1) as f64,
            once: plan.once,
            duration: plan.duration,
            report: Some(tx),
        },
    )?;
    Ok(Totals {
        counters: w.total,
        latency: w.total_hist,
    })
}

/// One stretch of traffic of a worker.
struct Phase<'a> {
    mix: &'a [(Kind, u32)],
    /// This worker's requests per second (0 = closed loop).
    rate: f64,
    /// Each user agent sends exactly one request.
    once: bool,
    duration: Duration,
    /// Where per-second snapshots go (`None`: unmeasured).
    report: Option<&'a Sender<Snapshot>>,
}

fn connect(plan: &Plan, users: usize) -> Result<Links> {
    match plan.transport {
        Transport::Udp => {
            let bind: SocketAddr = if plan.target.is_ipv6() {
                "[::1]:0".parse()?
            } else {
                "127.0.0.1:0".parse()?
            };
            let bind = if plan.target.ip().is_loopback() {
                bind
            } else if plan.target.is_ipv6() {
                "[::]:0".parse()?
            } else {
                "0.0.0.0:0".parse()?
            };
            let mut socks = Vec::new();
            for _ in 0..plan.sockets.max(1) {
                let s = UdpSocket::bind(bind)?;
                s.connect(plan.target)
                    .with_context(|| format!("cannot reach {}", plan.target))?;
                s.set_nonblocking(true)?;
                socks.push(s);
            }
            Ok(Links::Udp(socks))
        }
        Transport::Tcp | Transport::Tls => {
            let n = if plan.connections == 0 {
                users
            } else {
                plan.connections.min(users)
            };
            let config = (plan.transport == Transport::Tls)
                .then(|| tls::client_config(plan.tls_ca.as_deref(), plan.tls_resume))
                .transpose()?;
            let mut streams = Vec::with_capacity(n);
            for _ in 0..n {
                let sock = TcpStream::connect_timeout(&plan.target, Duration::from_secs(5))
                    .with_context(|| format!("cannot connect to {}", plan.target))?;
                streams.push(tls::Stream::new(sock, config.as_ref())?);
            }
            Ok(Links::Stream(streams))
        }
    }
}

struct Worker<'p> {
    plan: &'p Plan,
    links: Links,
    /// Local address of each link (Via sent-by and Contact).
    locals: Vec<SocketAddr>,
    /// Responses of stream links, reused.
    responses: Vec<Vec<u8>>,
    slots: Vec<Txn>,
    free: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    generation: u32,
    in_flight: usize,
    second: Counters,
    second_hist: hdrhistogram::Histogram<u64>,
    total: Counters,
    total_hist: hdrhistogram::Histogram<u64>,
    rng: u64,
    branch: String,
    recv: net::RecvBatch,
    /// (slot) waiting to be sent this turn.
    send: Vec<usize>,
    /// ICMP port-unreachable reports (ECONNREFUSED) not yet counted.
    refused: u64,
}

impl Worker<'_> {
    fn phase(&mut self, uas: &mut [Ua], p: &Phase<'_>) -> Result<()> {
        let plan = self.plan;
        let w = self;
        let start = Instant::now();
        let deadline = start + p.duration;
        let per_worker_rate = p.rate;
        let mut issued: u64 = 0;
        let mut cursor = 0usize;
        let mut next_report = start + Duration::from_secs(1);
        let mut second_no = 0u64;
        let mut done_once = 0usize;
        loop {
            let now = Instant::now();
            // A storm sends every user's request even when the generator falls behind its
            // schedule (a late loop must not drop the last users at the deadline).
            let sending = if p.once {
                done_once < uas.len()
            } else {
                now < deadline
            };
            if !sending && w.in_flight == 0 {
                break;
            }
            if !sending && now > deadline + plan.timer_f.min(Duration::from_secs(5)) {
                w.expire_all();
                break;
            }
            // Start new transactions: due by the schedule (open loop) or up to the window
            // (closed).
            let mut started = 0;
            while sending && started < 64 && w.in_flight < plan.max_in_flight {
                let scheduled = if per_worker_rate > 0.0 {
                    let at = start + Duration::from_secs_f64(issued as f64 / per_worker_rate);
                    if at > now {
                        break;
                    }
                    at
                } else {
                    now
                };
                // Next idle user agent (one transaction per UA at a time).
                let Some(ua) = (0..uas.len())
                    .map(|k| (cursor + k) % uas.len())
                    .find(|&k| !uas[k].busy)
                else {
                    break;
                };
                cursor = (ua + 1) % uas.len();
                let kind = w.pick(p.mix);
                w.start(uas, ua, kind, scheduled, now);
                issued += 1;
                started += 1;
                if p.once {
                    done_once += 1;
                    if done_once >= uas.len() {
                        break;
                    }
                }
            }
            w.flush_sends();
            let got = w.receive(uas, now);
            w.fire_timers(uas, now);
            w.flush_sends();
            if w.refused > 0 {
                let n = std::mem::take(&mut w.refused);
                w.count(|c| c.unreachable += n);
                if w.total.completed == 0 && w.total.unexpected == 0 {
                    bail!(
                        "{}: unreachable (ICMP port unreachable: nothing listens on that UDP port)",
                        plan.target
                    );
                }
            }
            if now >= next_report {
                second_no += 1;
                w.snapshot(p.report, second_no);
                next_report += Duration::from_secs(1);
            }
            if got == 0 && started == 0 {
                w.wait(Duration::from_micros(if per_worker_rate > 0.0 {
                    200
                } else {
                    1000
                }));
            }
        }
        w.snapshot(p.report, second_no + 1);
        Ok(())
    }

    /// Sends this second's counters and latency to the main thread and starts a new second.
    fn snapshot(&mut self, report: Option<&Sender<Snapshot>>, second: u64) {
        let counters = std::mem::take(&mut self.second);
        let latency = std::mem::replace(&mut self.second_hist, histogram());
        if let Some(tx) = report {
            let _ = tx.send(Snapshot {
                second,
                counters,
                latency,
            });
        }
    }

    fn pick(&mut self, mix: &[(Kind, u32)]) -> Kind {
        let total: u32 = mix.iter().map(|(_, w)| w).sum();
        if mix.len() == 1 || total == 0 {
            return mix.first().map_or(Kind::Register, |(k, _)| *k);
        }
        // xorshift64: uniform enough for a traffic mix, and free of a dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let mut x = (self.rng % u64::from(total)) as u32;
        for (k, w) in mix {
            if x < *w {
                return *k;
            }
            x -= w;
        }
        Kind::Register
    }

    fn local(&self, link: usize) -> SocketAddr {
        self.locals
            .get(link)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn link_count(&self) -> usize {
        self.locals.len()
    }

    fn start(&mut self, uas: &mut [Ua], ua: usize, kind: Kind, scheduled: Instant, now: Instant) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Txn {
                ua: 0,
                kind,
                generation: 0,
                scheduled,
                first_sent: now,
                last_sent: now,
                interval: self.plan.t1,
                authed: false,
                fresh: false,
                link: 0,
                bytes: Vec::with_capacity(768),
                live: false,
            });
            self.slots.len() - 1
        });
        self.generation = self.generation.wrapping_add(1);
        let link = ua % self.link_count().max(1);
        let u = &mut uas[ua];
        u.busy = true;
        // A new registration starts unauthenticated; other kinds reuse the cached challenge
        // (nc grows), as phones do.
        if kind == Kind::Register || kind == Kind::AuthFail {
            u.challenge = None;
        }
        let t = &mut self.slots[slot];
        *t = Txn {
            ua,
            kind,
            generation: self.generation,
            scheduled,
            first_sent: now,
            last_sent: now,
            interval: self.plan.t1,
            authed: false,
            fresh: false,
            link,
            bytes: std::mem::take(&mut t.bytes),
            live: true,
        };
        self.in_flight += 1;
        self.second.attempted += 1;
        self.total.attempted += 1;
        self.build(uas, slot);
        self.send.push(slot);
        let deadline = now + self.plan.timer_f;
        let first = if self.plan.transport == Transport::Udp {
            now + self.plan.t1
        } else {
            deadline
        };
        self.timers
            .push(Reverse((first.min(deadline), slot, self.generation)));
    }

    fn build(&mut self, uas: &mut [Ua], slot: usize) {
        let plan = self.plan;
        let local = self.local(self.slots[slot].link);
        let t = &mut self.slots[slot];
        let u = &mut uas[t.ua];
        let user = &plan.users[u.user];
        u.cseq += 1;
        let password = if t.kind == Kind::AuthFail {
            "wrong-password"
        } else {
            user.password.as_str()
        };
        if let Some(c) = u.challenge.as_mut() {
            c.nc += 1;
            t.authed = true;
        }
        msgs::write_branch(&mut self.branch, slot as u32, t.generation);
        let transport = match plan.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        };
        msgs::build(
            &mut t.bytes,
            &Register {
                kind: t.kind,
                transport,
                local,
                user: &user.name,
                domain: &user.domain,
                call_id: &u.call_id,
                cseq: u.cseq,
                branch: &self.branch,
                expires: plan.expires,
                auth: u.challenge.as_ref().map(|c| (c, password)),
            },
        );
    }

    fn flush_sends(&mut self) {
        if self.send.is_empty() {
            return;
        }
        let slots = std::mem::take(&mut self.send);
        match &mut self.links {
            Links::Udp(socks) => {
                let batch: Vec<(usize, &[u8])> = slots
                    .iter()
                    .filter_map(|&s| self.slots.get(s))
                    .map(|t| (t.link, t.bytes.as_slice()))
                    .collect();
                if net::send_batch(socks, &batch).is_err() {
                    self.refused += 1;
                }
            }
            Links::Stream(streams) => {
                for &s in &slots {
                    if let Some(t) = self.slots.get(s) {
                        if let Some(st) = streams.get_mut(t.link) {
                            st.queue(&t.bytes);
                        }
                    }
                }
                for st in streams.iter_mut() {
                    st.flush();
                }
            }
        }
        self.send = slots;
        self.send.clear();
    }

    /// Reads every available response; returns how many were handled. UDP datagrams are
    /// handled in place in the receive buffers (no copy, no allocation).
    fn receive(&mut self, uas: &mut [Ua], now: Instant) -> usize {
        // The links and buffers are moved out while responses are handled (`on_response`
        // needs the worker mutably and never touches the links); both are put back below.
        let links = std::mem::replace(&mut self.links, Links::Udp(Vec::new()));
        let mut handled = 0;
        match &links {
            Links::Udp(socks) => {
                let mut recv = std::mem::take(&mut self.recv);
                for s in socks {
                    let r = recv.recv_each(s, |bytes| {
                        handled += 1;
                        self.on_response(uas, bytes, now);
                    });
                    if r.is_err() {
                        self.refused += 1;
                    }
                }
                self.recv = recv;
            }
            Links::Stream(_) => {}
        }
        self.links = links;
        if let Links::Stream(streams) = &mut self.links {
            let mut responses = std::mem::take(&mut self.responses);
            for st in streams.iter_mut() {
                st.receive(&mut responses);
            }
            for r in &responses {
                self.on_response(uas, r, now);
            }
            handled += responses.len();
            responses.clear();
            self.responses = responses;
        }
        handled
    }

    fn on_response(&mut self, uas: &mut [Ua], bytes: &[u8], now: Instant) {
        let Some(a) = msgs::classify(bytes, self.plan.prefer) else {
            self.count(|c| c.unexpected += 1);
            return;
        };
        let Some((slot, generation)) = a.branch else {
            self.count(|c| c.unexpected += 1);
            return;
        };
        let slot = slot as usize;
        let live = self
            .slots
            .get(slot)
            .is_some_and(|t| t.live && t.generation == generation);
        if !live {
            // A late or duplicate answer to one of our transactions (a retransmission was
            // answered too, or the answer came after Timer F): ours, but no longer awaited.
            if slot < self.slots.len() {
                self.count(|c| c.late += 1);
            } else {
                self.count(|c| c.unexpected += 1);
            }
            return;
        }
        if a.code < 200 {
            return;
        }
        let (kind, authed, fresh, ua) = {
            let t = &self.slots[slot];
            (t.kind, t.authed, t.fresh, t.ua)
        };
        // A first challenge, or a new one to credentials built from a cached (possibly stale,
        // RFC 7616 §3.3 `stale=true`) nonce, is answered once within the transaction.
        if (a.code == 401 || a.code == 407) && !fresh && kind != Kind::Malformed {
            if let Some(c) = a.challenge {
                // Answer the challenge within the same transaction (RFC 6076 Registration
                // Request Delay runs from the first REGISTER to the final answer).
                self.count(|c| c.challenges += 1);
                uas[ua].challenge = Some(c);
                self.generation = self.generation.wrapping_add(1);
                let g = self.generation;
                if let Some(t) = self.slots.get_mut(slot) {
                    t.generation = g;
                    t.fresh = true;
                    t.interval = self.plan.t1;
                    t.last_sent = now;
                }
                self.build(uas, slot);
                self.send.push(slot);
                let deadline = self.slots[slot].first_sent + self.plan.timer_f;
                let next = if self.plan.transport == Transport::Udp {
                    now + self.plan.t1
                } else {
                    deadline
                };
                self.timers.push(Reverse((next.min(deadline), slot, g)));
                return;
            }
        }
        if a.code == 401 && authed && kind != Kind::AuthFail {
            // A stale or rejected nonce: drop it so the next request starts over.
            uas[ua].challenge = None;
        }
        let success = match kind {
            Kind::AuthFail => a.code == 401 || a.code == 403,
            Kind::Malformed => (400..500).contains(&a.code),
            _ => a.code == 200,
        };
        self.finish(uas, slot, if success { None } else { Some(a.code) }, now);
    }

    fn finish(&mut self, uas: &mut [Ua], slot: usize, failure: Option<u16>, now: Instant) {
        let Some(t) = self.slots.get_mut(slot) else {
            return;
        };
        t.live = false;
        let latency = now
            .saturating_duration_since(t.scheduled)
            .as_micros()
            .max(1) as u64;
        let ua = t.ua;
        uas[ua].busy = false;
        self.in_flight -= 1;
        self.free.push(slot);
        match failure {
            None => {
                self.count(|c| c.completed += 1);
                let _ = self.second_hist.record(latency.min(60_000_000));
                let _ = self.total_hist.record(latency.min(60_000_000));
            }
            Some(code) => self.count(|c| *c.failed.entry(code).or_default() += 1),
        }
    }

    fn fire_timers(&mut self, uas: &mut [Ua], now: Instant) {
        while let Some(Reverse((at, slot, generation))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(t) = self.slots.get_mut(slot) else {
                continue;
            };
            if !t.live || t.generation != generation {
                continue;
            }
            if now >= t.first_sent + self.plan.timer_f {
                t.live = false;
                uas[t.ua].busy = false;
                uas[t.ua].challenge = None;
                self.in_flight -= 1;
                self.free.push(slot);
                self.count(|c| c.timeouts += 1);
                continue;
            }
            // Timer E: retransmit, doubling up to T2.
            t.interval = (t.interval * 2).min(Duration::from_secs(4));
            t.last_sent = now;
            let next = (now + t.interval).min(t.first_sent + self.plan.timer_f);
            self.timers.push(Reverse((next, slot, generation)));
            self.send.push(slot);
            self.count(|c| c.retransmissions += 1);
        }
    }

    fn expire_all(&mut self) {
        let left = self.slots.iter().filter(|t| t.live).count() as u64;
        self.count(|c| c.timeouts += left);
        for t in &mut self.slots {
            t.live = false;
        }
        self.in_flight = 0;
    }

    fn count(&mut self, f: impl Fn(&mut Counters)) {
        f(&mut self.second);
        f(&mut self.total);
    }

    fn wait(&self, timeout: Duration) {
        let fds: Vec<i32> = match &self.links {
            Links::Udp(s) => s.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect(),
            Links::Stream(s) => s.iter().map(tls::Stream::fd).collect(),
        };
        net::poll_readable(&fds, timeout);
    }
}

/// Reads every byte a stream has now (used by `tls::Stream` for plain TCP).
pub fn drain(sock: &mut TcpStream, out: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return Ok(false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes as much of `out` as the socket takes now.
pub fn push(sock: &mut TcpStream, out: &mut Vec<u8>) {
    while !out.is_empty() {
        match sock.write(out) {
            Ok(0) => return,
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
