//! RFC 3261 §10.3 "Processing REGISTER Requests", steps 1-8, applied strictly, plus the UAS
//! answers for other methods (§8.2.1: OPTIONS 200, known methods 405, unknown methods 501).
//!
//! A REGISTER is applied atomically: every contact is checked against the AOR's current
//! bindings first (step 7's Call-ID/CSeq rule, §10.3 step 6's wildcard rule, the max-contacts
//! limit) and only then are the changes made, under the store's per-AOR lock. Either all of a
//! request's contacts take effect or none does. The 200 OK is written under the same lock, so it
//! lists exactly the bindings the request left behind (step 8).

use smallvec::SmallVec;

use super::remote::{self, Pending, RemoteWrite, Resume, Waiting};
use super::{Engine, EngineConfig, Error, Meta, Transport};
use crate::auth::{Failure, Verdict};
use crate::bytes::same;
use crate::sip::{
    self, Contact, ContactFields, ContactParts, HeaderName, Method, Request, Scheme, StatusCode,
    Uri,
};
use crate::store::{AorKey, Binding, Bindings, ContactPart, RequestPart, UserAgent, UserAgentId};
use crate::time::Instant;

/// What happened to a request that did not fail.
pub(super) enum Done {
    /// A response was written into the engine's output buffer.
    Sent,
    /// No response is due (ACK).
    Drop,
    /// The request waits for the shared location service (`Engine::handle_remote`).
    Pending,
}

/// A failure plus, for 420, the unsupported option tags.
pub(super) type Failed = (Error, SmallVec<[u8; 32]>);

fn fail(e: Error) -> Failed {
    (e, SmallVec::new())
}

/// Option tags we support (RFC 3327 Path).
const SUPPORTED: &[&[u8]] = &[b"path"];

/// Methods RFC 3261 and its common extensions define: a registrar "recognizes" them (405), any
/// other method is unknown (501), RFC 3261 §8.2.1 / RFC 4475 §3.1.1.2.
const KNOWN_METHODS: &[&[u8]] = &[
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"PRACK",
    b"UPDATE",
    b"INFO",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"REFER",
    b"MESSAGE",
    b"PUBLISH",
];

/// Processes a request whose response starts at `start` in the engine's output buffer;
/// `user_agent` is its User-Agent as the store keeps it, when the scanner check found them equal.
pub(super) fn dispatch(
    eng: &mut Engine,
    now: Instant,
    meta: &Meta,
    req: &Request<'_>,
    start: usize,
    user_agent: Option<UserAgentId>,
) -> Result<Done, Failed> {
    if let Some(defect) = req.defect() {
        return Err(fail(Error::Parse(defect)));
    }
    if !same(req.version(), b"SIP/2.0") {
        return Err(fail(Error::VersionNotSupported));
    }
    let method = req.method();
    if method == Method::ACK {
        return Ok(Done::Drop);
    }
    // RFC 4475 §3.3.2/§3.3.3: a Request-URI scheme we never accept is 416, whatever the method.
    // The view validation kept is borrowed, not copied.
    let reparsed;
    let ruri = match req.parsed_request_uri() {
        Some(u) => u,
        None => {
            reparsed = req.request_uri().map_err(|e| fail(e.into()))?;
            &reparsed
        }
    };
    if !matches!(ruri.scheme(), Scheme::Sip | Scheme::Sips) {
        return Err(fail(Error::UnsupportedUriScheme));
    }
    // §8.2.2.3 (and §10.3 step 2 for REGISTER): Require must only name extensions we support.
    // Most requests carry none: the header index answers that without setting up the walk.
    if req.header(HeaderName::Require).is_some() {
        let unsupported = unsupported_required(req);
        if !unsupported.is_empty() && method != Method::CANCEL {
            return Err((Error::BadExtension, unsupported));
        }
    }
    if method == Method::OPTIONS {
        let mut w = eng.writer(now, meta, req, StatusCode::OK, None);
        w.header("Allow", super::error::ALLOW.as_bytes());
        w.header("Accept", b"application/sdp");
        w.header("Supported", b"path");
        w.finish(b"");
        return Ok(Done::Sent);
    }
    if method != Method::REGISTER {
        let known = KNOWN_METHODS.contains(&method.0);
        return Err(fail(if known {
            Error::MethodNotAllowed
        } else {
            Error::NotImplemented
        }));
    }
    register(eng, now, meta, req, ruri, start, Run::First(user_agent))
}

/// The option tags of `req`'s Require headers that we do not support, joined by `, ` (for the
/// 420's Unsupported header).
#[cold]
#[inline(never)]
fn unsupported_required(req: &Request<'_>) -> SmallVec<[u8; 32]> {
    let mut unsupported = SmallVec::new();
    for value in req.headers_named(HeaderName::Require) {
        for tag in split_tokens(value) {
            if !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)) {
                if !unsupported.is_empty() {
                    unsupported.extend_from_slice(b", ");
                }
                unsupported.extend_from_slice(tag);
            }
        }
    }
    unsupported
}

/// Runs a REGISTER again once the shared location service answered (see `remote.rs`):
/// authentication is not repeated, and the state it is planned against is now confirmed.
pub(super) fn resume(
    eng: &mut Engine,
    now: Instant,
    meta: &Meta,
    req: &Request<'_>,
    resume: Resume,
) -> Result<Done, Failed> {
    let ruri = req.request_uri().map_err(|e| fail(e.into()))?;
    register(eng, now, meta, req, &ruri, 0, Run::Resumed(resume))
}

/// One checked contact of the request.
struct Wanted<'b> {
    /// The contact's URI as written, a valid URI (parsed again only to compare it with a
    /// contact whose text differs).
    contact: &'b [u8],
    params: Echo<'b>,
    /// The interval asked for (clamped in step 7).
    expires: u32,
    /// The contact's fields as read (its `q`, `+sip.instance` and `reg-id` kept; copied whole).
    fields: ContactFields<'b>,
}

/// Which run of a REGISTER [`register`] makes.
enum Run {
    /// The first, right after the scanner check, with its User-Agent as the store keeps it
    /// when the check found the two equal.
    First(Option<UserAgentId>),
    /// Again, once the shared location service answered: the scanner check's answer was for
    /// the first run (other requests were checked since), so the header's text is packed.
    Resumed(Resume),
}

fn register<'b>(
    eng: &mut Engine,
    now: Instant,
    meta: &Meta,
    req: &Request<'b>,
    ruri: &Uri<'_>,
    start: usize,
    run: Run,
) -> Result<Done, Failed> {
    let (user_agent, resume) = match run {
        Run::First(user_agent) => (user_agent, None),
        Run::Resumed(resume) => (None, Some(resume)),
    };
    let shared = eng.shared.clone();
    let policy = eng.policy.clone();
    let cfg = &policy.config;

    // Step 1: the Request-URI names a domain we serve. It carries no headers (§19.1.5,
    // RFC 4475 §3.1.2.11).
    if ruri.has_headers() {
        return Err(fail(Error::Parse(sip::Error::BadUri)));
    }
    if !policy.serves(ruri.host()) {
        return Err(fail(Error::DomainNotServed));
    }

    // Steps 3-4: authenticate, then authorise the user for the AOR (below, once it is known).
    let reparsed_cseq;
    let cseq = match req.parsed_cseq() {
        Some(c) => c,
        None => {
            reparsed_cseq = req.cseq().map_err(|e| fail(e.into()))?;
            &reparsed_cseq
        }
    };
    if cseq.method != Method::REGISTER {
        return Err(fail(Error::Parse(sip::Error::CSeqMethodMismatch)));
    }
    let call_id = req.call_id().map_err(|e| fail(e.into()))?;
    let reparsed;
    let to = match req.parsed_to() {
        Some(t) => t,
        None => {
            reparsed = req.to().map_err(|e| fail(e.into()))?;
            &reparsed
        }
    };

    let resumed_user = resume.as_ref().map(|r| r.user.clone());
    let user = match (&resumed_user, shared.auth.as_ref()) {
        (Some(user), _) => user.as_deref(),
        (None, None) => None,
        (None, Some(auth)) => {
            let ip = meta.source.ip();
            let selected = auth.select(req.headers_named(HeaderName::Authorization));
            let claimed = selected.username();
            // A locked user or source gets the same 401 as a wrong password (no oracle).
            let verdict = if shared.guard.locked(&policy.guard, now, claimed, ip) {
                eng.stats.lockouts += 1;
                Verdict::Challenge {
                    stale: false,
                    failure: Failure::WrongResponse,
                }
            } else {
                auth.verify_selected(now, ip, req.method().0, req.uri(), req.body(), selected)
            };
            match verdict {
                Verdict::Authenticated { user } => Some(user),
                Verdict::Challenge { stale, failure } => {
                    eng.stats.challenges += 1;
                    if matches!(failure, Failure::WrongResponse | Failure::UnknownUser) {
                        eng.stats.auth_failures += 1;
                        shared.guard.record_failure(&policy.guard, now, claimed, ip);
                        // One line per failure for fail2ban (tuning/fail2ban/).
                        tracing::warn!(
                            target: "sipreg::auth",
                            "auth failure: ip={} port={} user={:?} realm={:?} reason={:?}",
                            ip,
                            meta.source.port(),
                            String::from_utf8_lossy(claimed.unwrap_or_default()),
                            auth.config().realm,
                            failure
                        );
                    }
                    let mut w = eng.writer(now, meta, req, StatusCode::UNAUTHORIZED, None);
                    w.raw(|out| auth.write_challenge(now, ip, stale, out));
                    w.finish(b"");
                    return Ok(Done::Sent);
                }
                Verdict::BadRequest(why) => return Err(fail(Error::BadAuthorization(why))),
            }
        }
    };

    // Step 5: the AOR from To, canonicalised; it must belong to a domain we serve.
    if !matches!(to.uri.scheme(), Scheme::Sip | Scheme::Sips) {
        return Err(fail(Error::ToNotSipUri));
    }
    // The usual REGISTER names the domain in both: the Request-URI's host passed step 1.
    if !same(to.uri.host(), ruri.host()) && !policy.serves(to.uri.host()) {
        return Err(fail(Error::AorNotFound));
    }
    // The AOR: usually the To URI's own text, otherwise written into the engine's scratch.
    eng.aor.clear();
    let aor_as_written = to
        .uri
        .aor_or_write(&mut eng.aor)
        .map_err(|_| fail(Error::AorNotFound))?;
    if let Some(user) = user {
        if !cfg.allow_third_party && !user_matches(to.uri.user().unwrap_or_default(), user) {
            return Err(fail(Error::Forbidden));
        }
    }

    // Step 6: collect and check the contacts.
    let header_expires = req.expires().map_err(|e| fail(e.into()))?;
    // A contact's interval when it names none.
    let default_expires = header_expires.unwrap_or(cfg.default_expires);
    let mut wanted: SmallVec<[Wanted<'_>; 4]> = SmallVec::new();
    let mut joined = Joined::new();
    let mut wildcard = false;
    // A contact as the registrar keeps it, its parameters valid.
    let mut take = |c: ContactParts<'b>| {
        let mut params = Echo::One(b"");
        c.other_params(|p| params.push(p, &mut joined));
        let f = c.fields;
        wanted.push(Wanted {
            contact: c.contact,
            params,
            expires: f.expires.unwrap_or(default_expires),
            fields: f,
        });
    };
    // The usual request's one contact without the walk over values (the same contact).
    if let Some(contact) = req.sole_contact() {
        take(contact);
    } else {
        for contact in req.contacts() {
            // Matched by reference: `?` on a result would move the whole contact view.
            match &contact {
                Err(e) => return Err(fail((*e).into())),
                Ok(Contact::Star) => wildcard = true,
                Ok(Contact::Addr(c)) => take(c.parts().map_err(|e| fail(e.into()))?),
            }
        }
    }
    if wildcard && (!wanted.is_empty() || header_expires != Some(0)) {
        return Err(fail(Error::InvalidWildcard));
    }
    // Step 7: expiry. A non-zero interval below the minimum rejects the whole request (423);
    // longer ones are clamped to the maximum.
    for w in &mut wanted {
        if w.expires != 0 && w.expires < cfg.min_expires {
            return Err(fail(Error::IntervalTooBrief(cfg.min_expires)));
        }
        w.expires = w.expires.min(cfg.max_expires);
    }

    // Path and Supported through the header index (each lookup starts at the
    // name's first line; most requests carry neither Path nor Supported).
    let mut path = PathHeaders::default();
    for value in req.headers_named(HeaderName::Path) {
        path.push(value);
    }
    let echo_path = req
        .headers_named(HeaderName::Supported)
        .any(|v| split_tokens(v).any(|t| t.eq_ignore_ascii_case(b"path")));
    let now_secs = secs(now);
    let flow = meta.conn.filter(|_| meta.transport != Transport::Udp);
    let node = eng.remote.as_ref().map(|r| r.settings.node);
    let common = Common {
        joined: &joined,
        request: RequestPart {
            call_id,
            cseq: cseq.seq,
            path: path.joined(),
            source: meta.source,
            transport: meta.transport.to_store(),
            conn: flow.map(|c| node.map_or(c.0, |node| remote::flow_id(node, c.0))),
            // The header read again only when the scanner check did not find its stored value.
            user_agent: match user_agent {
                Some(stored) => UserAgent::Stored(stored),
                None => UserAgent::Text(req.header(HeaderName::UserAgent).unwrap_or_default()),
            },
            registered_at: now_secs,
        },
    };

    let update = Update {
        wildcard,
        wanted: &wanted,
        call_id,
        cseq: cseq.seq,
        common: &common,
    };
    let reply = Reply {
        now,
        meta,
        req,
        echo_path,
    };
    if eng.remote.is_some() {
        let aor = AorKey::from_text(aor_as_written.unwrap_or(eng.aor.as_bytes()));
        return remote_register(eng, &reply, aor, &update, flow.is_some(), resume, user);
    }

    // Steps 7-8 under the AOR's lock: check everything, apply everything, list the result.
    // The AOR by its text (no key allocation for an existing one); the scratch string is
    // borrowed out of the engine meanwhile.
    let scratch = std::mem::take(&mut eng.aor);
    let aor = aor_as_written.unwrap_or(scratch.as_bytes());
    // The outcome (whether bindings were stored, or the error) written from inside, the
    // closure returning nothing: the store then carries no `Result` of the closure's through
    // its own steps. One local for both keeps the closure's environment small.
    let mut outcome = Ok(false);
    shared.store.modify_text(aor, now, |bindings| {
        let total = shared.store.binding_count();
        outcome = update.apply(bindings, cfg, Some(total)).map(|changed| {
            reply.write_ok(eng, bindings.iter());
            changed.stored
        });
    });
    let stored = match outcome {
        Ok(stored) => stored,
        Err(e) => {
            eng.aor = scratch;
            eng.out.truncate(start);
            return Err(fail(e));
        }
    };
    let track = match (stored, flow) {
        (true, Some(conn)) => Some((conn, AorKey::from_text(aor))),
        _ => None,
    };
    eng.aor = scratch;
    if let Some((conn, aor)) = track {
        eng.track_flow(conn, aor);
    }
    Ok(Done::Sent)
}

/// What the 200 OK of a REGISTER needs besides the bindings.
struct Reply<'r, 'b> {
    now: Instant,
    meta: &'r Meta,
    req: &'r Request<'b>,
    echo_path: bool,
}

impl Reply<'_, '_> {
    /// Step 8: 200 OK listing every current binding with its remaining time.
    fn write_ok<'a>(&self, eng: &mut Engine, bindings: impl Iterator<Item = &'a Binding>) {
        let now_secs = secs(self.now);
        // (A REGISTER's answer: counted as one.)
        let mut w = eng.writer_inline(self.now, self.meta, self.req, StatusCode::OK, None, true);
        let mut params: SmallVec<[u8; 128]> = SmallVec::new();
        for b in bindings {
            let b = b.reply_parts(now_secs);
            let Some(q) = b.q else {
                w.contact(b.contact, b.remaining, b.params);
                continue;
            };
            params.clear();
            write_q(&mut params, q);
            params.extend_from_slice(b.params);
            w.contact(b.contact, b.remaining, &params);
        }
        if self.echo_path {
            for value in self.req.headers_named(HeaderName::Path) {
                w.header("Path", value);
            }
        }
        w.finish_with(b"Supported: path\r\nContent-Length: 0\r\n\r\n");
        eng.stats.registered += 1;
    }
}

/// Steps 6-7 of one request, ready to run against an AOR's bindings.
struct Update<'u, 'b> {
    wildcard: bool,
    wanted: &'u [Wanted<'b>],
    call_id: &'b [u8],
    cseq: u32,
    common: &'u Common<'u>,
}

/// What [`Update::apply`] did.
#[derive(Clone, Copy, Default)]
struct Changed {
    /// Anything at all.
    any: bool,
    /// Bindings were stored (inserted or refreshed) by this request.
    stored: bool,
}

impl Update<'_, '_> {
    /// Checks everything (Call-ID/CSeq, wildcard, max contacts and, with `total`, the global
    /// binding limit), then applies everything. Either all of the request takes effect or
    /// nothing does.
    fn apply(
        &self,
        bindings: &mut Bindings<'_>,
        cfg: &EngineConfig,
        total: Option<usize>,
    ) -> Result<Changed, Error> {
        if self.wildcard {
            check_wildcard(bindings, self.call_id, self.cseq)?;
            let any = !bindings.is_empty();
            bindings.clear();
            return Ok(Changed { any, stored: false });
        }
        match self.wanted {
            [] => Ok(Changed::default()),
            [w] => self.apply_one(w, bindings, cfg, total),
            _ => self.apply_many(bindings, cfg, total),
        }
    }

    /// [`Update::apply_many`] for a request with one contact (the usual REGISTER): the same
    /// step, checks and changes in the same order, without a list of steps.
    fn apply_one(
        &self,
        w: &Wanted<'_>,
        bindings: &mut Bindings<'_>,
        cfg: &EngineConfig,
        total: Option<usize>,
    ) -> Result<Changed, Error> {
        // An AOR without bindings (a new one: the usual REGISTER of a phone's first start)
        // has nothing to match: its step is the expiry's alone, what `step_of` answers there.
        let step = match (bindings.is_empty(), w.expires) {
            (true, 0) => Step::Keep,
            (true, _) => Step::Insert,
            (false, _) => step_of(bindings, w, false, self.call_id, self.cseq)?,
        };
        let mut tally = Tally::default();
        tally.count(step);
        let evictions = tally.evictions(bindings.len(), cfg, total)?;
        match step {
            Step::Refresh(idx) => self.common.replace(bindings, idx, w),
            Step::Remove(idx) => bindings.remove(idx),
            Step::Keep | Step::Insert => {}
        }
        // Usually none: no call.
        if evictions > 0 {
            evict(bindings, evictions);
        }
        if step == Step::Insert {
            self.common.push(bindings, w);
        }
        Ok(tally.changed(evictions))
    }

    /// [`Update::apply`] for any number of contacts: a plan first, then its steps.
    fn apply_many(
        &self,
        bindings: &mut Bindings<'_>,
        cfg: &EngineConfig,
        total: Option<usize>,
    ) -> Result<Changed, Error> {
        // Filled in place: a `Plan` returned through `Result` is moved twice.
        let mut plan = Plan::default();
        plan_updates(&mut plan, bindings, self.wanted, self.call_id, self.cseq)?;
        let evictions = plan.tally.evictions(bindings.len(), cfg, total)?;
        apply(bindings, self.wanted, &plan, evictions, self.common);
        Ok(plan.tally.changed(evictions))
    }
}

/// Steps 7-8 against the shared location service: plan against the version this shard saw
/// last, then compare-and-set (see `remote.rs`). Only a plan made against a state the service
/// just confirmed is answered; anything else waits for the service.
fn remote_register(
    eng: &mut Engine,
    reply: &Reply<'_, '_>,
    aor: AorKey,
    update: &Update<'_, '_>,
    over_flow: bool,
    resume: Option<Resume>,
    user: Option<&[u8]>,
) -> Result<Done, Failed> {
    let policy = eng.policy.clone();
    let Some(remote) = eng.remote.as_mut() else {
        return Err(fail(Error::LocationUnavailable));
    };
    let (version, mut list) = remote.take_state(&aor, reply.now);
    let (max_attempts, has_room) = (remote.settings.max_attempts, remote.has_room());
    // `apply` changes nothing unless it succeeds with a change: on any other outcome `list`
    // is still the state taken from the cache.
    let outcome = update.apply(&mut Bindings::detached(&mut list), &policy.config, None);
    let confirmed = resume.is_some();
    let attempts = resume.as_ref().map_or(0, |r| r.attempts);
    let answer: Option<Result<Done, Failed>> = match outcome {
        Err(e) if confirmed => Some(Err(fail(e))),
        Ok(changed) if confirmed && !changed.any => {
            reply.write_ok(eng, list.iter());
            Some(Ok(Done::Sent))
        }
        _ if attempts >= max_attempts || (!confirmed && !has_room) => {
            Some(Err(fail(Error::LocationUnavailable)))
        }
        _ => None,
    };
    let Some(remote) = eng.remote.as_mut() else {
        return Err(fail(Error::LocationUnavailable));
    };
    if let Some(answer) = answer {
        remote.put_back(aor, (version, list));
        return answer;
    }
    let changed = outcome.ok().filter(|c| c.any);
    let write = changed.map(|_| {
        let v = remote.new_version();
        (v, RemoteWrite::for_bindings(v, &list))
    });
    // The AOR's state if the op commits: the new one, or (a confirmation) the same.
    let writing = (write.as_ref().map_or(version, |w| w.0), list);
    let req = reply.req;
    let dest = match req.top_via() {
        Some(Ok(via)) => super::response_destination(reply.meta, &via),
        _ => reply.meta.source,
    };
    // The answer if the op commits, rendered now; a failed plan is re-planned on the reply.
    let ready = outcome.is_ok().then(|| {
        let start = eng.out.len();
        reply.write_ok(eng, writing.1.iter());
        eng.stats.uncount_ok();
        let bytes = eng.out.get(start..).unwrap_or_default().to_vec();
        eng.out.truncate(start);
        bytes
    });
    let Some(remote) = eng.remote.as_mut() else {
        return Err(fail(Error::LocationUnavailable));
    };
    let token = resume.as_ref().map(|r| r.token);
    let pending = Pending {
        aor,
        waiting: Waiting::Request {
            bytes: req.as_bytes().to_vec(),
            meta: *reply.meta,
            dest,
            user: user.map(<[u8]>::to_vec),
        },
        attempts: attempts + 1,
        stores_flow: over_flow && changed.is_some_and(|c| c.stored),
        writing: Some(writing),
        ready,
    };
    let write = write.map(|w| w.1);
    remote.submit(token, version, write, pending);
    Ok(Done::Pending)
}

/// §10.3 step 6 for `*`: every binding is removed, unless one has the request's Call-ID with a
/// CSeq not lower than the request's, which aborts the whole request.
fn check_wildcard(bindings: &Bindings<'_>, call_id: &[u8], cseq: u32) -> Result<(), Error> {
    for b in bindings.iter() {
        if b.call_id() == call_id && cseq <= b.cseq() {
            return Err(Error::OutOfOrder);
        }
    }
    Ok(())
}

/// What a request does with one of its contacts, decided before anything changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Nothing: a retransmission of the request that stored it (same Call-ID and CSeq,
    /// answered again without a second update), a contact repeated later in the request (the
    /// last one wins), or the removal of a contact that is not bound.
    Keep,
    /// Refresh the existing binding at this index.
    Refresh(usize),
    /// Remove the existing binding at this index.
    Remove(usize),
    /// A new binding.
    Insert,
}

/// What a request will do to an AOR's bindings, decided before anything changes.
#[derive(Default)]
struct Plan {
    /// One step per wanted contact.
    steps: SmallVec<[Step; 4]>,
    tally: Tally,
}

/// How many existing bindings a request's steps refresh and remove, and how many they insert.
#[derive(Clone, Copy, Default)]
struct Tally {
    inserts: usize,
    refreshes: usize,
    removals: usize,
}

impl Tally {
    fn count(&mut self, step: Step) {
        match step {
            Step::Insert => self.inserts += 1,
            Step::Refresh(_) => self.refreshes += 1,
            Step::Remove(_) => self.removals += 1,
            Step::Keep => {}
        }
    }

    /// Existing bindings this request refreshes or removes (they are not eviction candidates).
    fn touched(&self) -> usize {
        self.refreshes + self.removals
    }

    /// The limits against an AOR with `len` bindings: how many of its oldest untouched
    /// bindings to evict to stay within max contacts (with `evict_oldest`), or 503 when that
    /// is not allowed or not enough, or when `total` (the store's binding count) would pass
    /// the global limit.
    fn evictions(
        &self,
        len: usize,
        cfg: &EngineConfig,
        total: Option<usize>,
    ) -> Result<usize, Error> {
        let mut count = len + self.inserts - self.removals;
        let mut evictions = 0;
        while count > cfg.max_contacts {
            if !cfg.evict_oldest || evictions >= len - self.touched() {
                return Err(Error::TooManyBindings);
            }
            evictions += 1;
            count -= 1;
        }
        if let Some(total) = total {
            if self.inserts > evictions + self.removals
                && total + self.inserts - evictions - self.removals > cfg.max_bindings
            {
                return Err(Error::TooManyBindings);
            }
        }
        Ok(evictions)
    }

    /// What the steps and `evictions` did.
    fn changed(&self, evictions: usize) -> Changed {
        Changed {
            any: self.inserts + self.refreshes + self.removals + evictions > 0,
            stored: self.inserts + self.refreshes > 0,
        }
    }
}

/// Fills `plan` (empty when called) with one step per wanted contact.
fn plan_updates(
    plan: &mut Plan,
    bindings: &Bindings<'_>,
    wanted: &[Wanted<'_>],
    call_id: &[u8],
    cseq: u32,
) -> Result<(), Error> {
    for (i, w) in wanted.iter().enumerate() {
        // The same contact twice in one request: the last one wins, the earlier is ignored.
        let repeated = wanted
            .get(i + 1..)
            .unwrap_or_default()
            .iter()
            .any(|o| same_contact(o, w));
        let step = step_of(bindings, w, repeated, call_id, cseq)?;
        plan.tally.count(step);
        plan.steps.push(step);
    }
    Ok(())
}

/// The step for contact `w` (`repeated`: the request names it again later). A binding of
/// the request's Call-ID with a higher CSeq fails the whole request.
fn step_of(
    bindings: &Bindings<'_>,
    w: &Wanted<'_>,
    repeated: bool,
    call_id: &[u8],
    cseq: u32,
) -> Result<Step, Error> {
    // The matching binding is checked as the search finds it (not looked up again by index).
    let found = bindings
        .iter()
        .enumerate()
        .find(|(_, b)| binding_matches(b, w));
    let mut replay = false;
    if let Some((_, b)) = found {
        if b.call_id() == call_id {
            if cseq < b.cseq() {
                return Err(Error::OutOfOrder);
            }
            replay = cseq == b.cseq();
        }
    }
    if repeated || replay {
        return Ok(Step::Keep);
    }
    Ok(match (found.map(|(idx, _)| idx), w.expires) {
        (Some(idx), 0) => Step::Remove(idx),
        (Some(idx), _) => Step::Refresh(idx),
        (None, 0) => Step::Keep,
        (None, _) => Step::Insert,
    })
}

/// A contact's parameters to echo, in the order they are handed over: the request's own bytes
/// while they come in one piece (the usual contact, without `expires` or `q`, hands them over
/// whole), otherwise joined at the end of the request's [`Joined`] buffer (a range of it here:
/// a `Wanted` then needs no drop and moves in fewer bytes).
#[derive(Clone, Copy)]
enum Echo<'b> {
    One(&'b [u8]),
    Joined(usize, usize),
}

/// The joined parameters of a request's contacts, one after another.
type Joined = SmallVec<[u8; 128]>;

impl<'b> Echo<'b> {
    /// Appends the next parameters. Contacts are read one after another: this one's pieces are
    /// the last ones in `joined`.
    fn push(&mut self, p: &'b [u8], joined: &mut Joined) {
        match *self {
            Self::One([]) => *self = Self::One(p),
            Self::One(s) => {
                let start = joined.len();
                joined.extend_from_slice(s);
                joined.extend_from_slice(p);
                *self = Self::Joined(start, joined.len());
            }
            Self::Joined(start, _) => {
                joined.extend_from_slice(p);
                *self = Self::Joined(start, joined.len());
            }
        }
    }

    /// Everything pushed, in order (`joined`: the buffer given to `push`).
    fn bytes<'a>(&self, joined: &'a [u8]) -> &'a [u8]
    where
        'b: 'a,
    {
        match *self {
            Self::One(s) => s,
            Self::Joined(start, end) => joined.get(start..end).unwrap_or_default(),
        }
    }
}

/// What every binding stored by one request shares.
struct Common<'r> {
    /// The buffer of the contacts' joined parameters (see [`Echo`]).
    joined: &'r [u8],
    /// The request's part of each binding (registered now).
    request: RequestPart<'r>,
}

impl Common<'_> {
    /// The contact's own part of its binding.
    fn contact<'a>(&'a self, w: &'a Wanted<'a>) -> ContactPart<'a> {
        ContactPart {
            contact: w.contact,
            params: w.params.bytes(self.joined),
            expires_at: self.request.registered_at.saturating_add(w.expires),
            q: w.fields.q,
            instance: w.fields.instance,
            reg_id: w.fields.reg_id,
        }
    }

    /// Adds the binding of contact `w`.
    fn push(&self, bindings: &mut Bindings<'_>, w: &Wanted<'_>) {
        bindings.push_parts(&self.request, &self.contact(w));
    }

    /// Replaces binding `idx` with the binding of contact `w`.
    fn replace(&self, bindings: &mut Bindings<'_>, idx: usize, w: &Wanted<'_>) {
        bindings.replace_parts(idx, &self.request, &self.contact(w));
    }
}

fn apply(
    bindings: &mut Bindings<'_>,
    wanted: &[Wanted<'_>],
    plan: &Plan,
    evictions: usize,
    common: &Common<'_>,
) {
    // Refreshes first (indices stay valid), then removals from the highest index down, then
    // evictions of the oldest untouched bindings, then inserts. Each pass only when the plan
    // has such steps.
    if plan.tally.refreshes > 0 {
        for (w, step) in wanted.iter().zip(&plan.steps) {
            if let Step::Refresh(idx) = *step {
                common.replace(bindings, idx, w);
            }
        }
    }
    if plan.tally.removals > 0 {
        let mut removals: SmallVec<[usize; 4]> = plan
            .steps
            .iter()
            .filter_map(|step| match *step {
                Step::Remove(idx) => Some(idx),
                _ => None,
            })
            .collect();
        removals.sort_unstable_by(|a, b| b.cmp(a));
        removals.dedup();
        for idx in removals {
            bindings.remove(idx);
        }
    }
    evict(bindings, evictions);
    if plan.tally.inserts > 0 {
        for (w, step) in wanted.iter().zip(&plan.steps) {
            if *step == Step::Insert {
                common.push(bindings, w);
            }
        }
    }
}

/// Removes the `n` oldest bindings, one at a time.
fn evict(bindings: &mut Bindings<'_>, mut n: usize) {
    while n > 0 {
        let Some(oldest) = bindings.oldest() else {
            break;
        };
        bindings.remove(oldest);
        n -= 1;
    }
}

/// Binding identity: RFC 5626 §6 (`+sip.instance` and `reg-id`) when both sides carry an
/// instance, otherwise RFC 3261 §19.1.4 URI equality (§10.3 step 7).
fn binding_matches(b: &Binding, w: &Wanted<'_>) -> bool {
    if let (Some(bi), Some(wi)) = (b.instance(), w.fields.instance) {
        return bi == wi && b.reg_id() == w.fields.reg_id;
    }
    contacts_equal(b.contact(), w.contact)
}

/// §19.1.4 equality of two contacts' URIs given as their (valid) text.
fn contacts_equal(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        // A refresh sends the contact as it did before: the comparison is the URI with itself.
        return equals_itself(a);
    }
    match (Uri::parse(a), Uri::parse(b)) {
        (Ok(a), Ok(b)) => uri_equal(&a, &b),
        _ => false,
    }
}

/// `uri_equal(u, u)` for the URI of `text`. §19.1.4 equality is reflexive except for a URI
/// that repeats a parameter with different values (each occurrence is compared with the first
/// one of its name), which takes at least two parameters: with one `;` at most in the whole
/// text, the answer is yes without parsing.
fn equals_itself(text: &[u8]) -> bool {
    text.iter().filter(|&&b| b == b';').count() <= 1
        || Uri::parse(text).is_ok_and(|u| uri_equal(&u, &u))
}

fn same_contact(a: &Wanted<'_>, b: &Wanted<'_>) -> bool {
    match (a.fields.instance, b.fields.instance) {
        (Some(x), Some(y)) => x == y && a.fields.reg_id == b.fields.reg_id,
        _ => contacts_equal(a.contact, b.contact),
    }
}

/// §19.1.4 for sip/sips/tel; other schemes (mailto:, RFC 3665 §2.2) compare case-insensitively
/// as a whole.
fn uri_equal(a: &Uri<'_>, b: &Uri<'_>) -> bool {
    match (a.scheme(), b.scheme()) {
        (Scheme::Other, _) | (_, Scheme::Other) => a.raw().eq_ignore_ascii_case(b.raw()),
        _ => a.equivalent(b),
    }
}

/// Does the AOR's user part (as written, possibly %-escaped) name the authenticated user?
fn user_matches(aor_user: &[u8], user: &[u8]) -> bool {
    let mut rest = user;
    let mut i = 0;
    while let Some(&c) = aor_user.get(i) {
        let decoded = if c == b'%' {
            let hex = aor_user
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    i += 2;
                    v
                }
                None => return false,
            }
        } else {
            c
        };
        match rest.split_first() {
            Some((&first, tail)) if first == decoded => rest = tail,
            _ => return false,
        }
        i += 1;
    }
    rest.is_empty()
}

/// Comma-separated tokens of an option-tag list (Require, Supported), LWS trimmed.
fn split_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The Path header values of a request joined with ", " (RFC 3327 §5.3: stored with the
/// binding).
#[derive(Default)]
struct PathHeaders {
    joined: SmallVec<[u8; 128]>,
}

impl PathHeaders {
    /// Adds the next Path value.
    fn push(&mut self, value: &[u8]) {
        if !self.joined.is_empty() {
            self.joined.extend_from_slice(b", ");
        }
        self.joined.extend_from_slice(value);
    }

    fn joined(&self) -> &[u8] {
        &self.joined
    }
}

/// `;q=` with the shortest decimal form of a value in thousandths (1000 -> "1", 500 -> "0.5").
fn write_q(out: &mut SmallVec<[u8; 128]>, q: u16) {
    out.extend_from_slice(b";q=");
    if q >= 1000 {
        out.push(b'1');
        return;
    }
    out.extend_from_slice(b"0.");
    let digits = [q / 100, (q / 10) % 10, q % 10];
    let len = digits.iter().rposition(|&d| d != 0).map_or(1, |p| p + 1);
    for d in digits.iter().take(len) {
        out.push(b'0' + u8::try_from(*d).unwrap_or(0));
    }
}

/// Whole seconds as the store's coarse tick (u32 seconds since the Unix epoch: good to 2106).
fn secs(now: Instant) -> u32 {
    u32::try_from(now.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewBinding;

    #[test]
    fn require_checked_only_when_the_index_has_one() {
        // Whether the index finds a Require line decides whether the lines are walked: it
        // must find one exactly when the walk would see a value.
        for (extra, want) in [
            ("", &b""[..]),
            ("Require: path\r\n", b""),
            ("Require: path, foo\r\n", b"foo"),
            ("require: foo\r\n", b"foo"),
            ("REQUIRE : foo,bar\r\n", b"foo, bar"),
            ("Require: path\r\nSubject: x\r\nRequire: baz\r\n", b"baz"),
            ("Proxy-Require: foo\r\n", b""),
            ("Subject: Require: foo\r\n", b""),
        ] {
            let msg = format!(
                "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr\r\n\
                 From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n{extra}\
                 Call-ID: r1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
            );
            let Ok(sip::Message::Request(req)) =
                sip::parse_datagram(msg.as_bytes(), &sip::Limits::default())
            else {
                panic!("{msg}");
            };
            assert_eq!(
                req.header(HeaderName::Require).is_some(),
                req.headers_named(HeaderName::Require).next().is_some(),
                "{extra}"
            );
            assert_eq!(&unsupported_required(&req)[..], want, "{extra}");
        }
    }

    /// URIs to compare in pairs, spelled in the ways §19.1.4 cares about.
    const URIS: &[&[u8]] = &[
        b"sip:alice@atlanta.com",
        b"sip:alice@AtLanTa.CoM",
        b"SIP:alice@atlanta.com",
        b"sip:ALICE@atlanta.com",
        b"sip:%61lice@atlanta.com",
        b"sip:alice@atlanta.com:5060",
        b"sip:alice@atlanta.com:5061",
        b"sips:alice@atlanta.com",
        b"sip:alice:pw@atlanta.com",
        b"sip:alice@atlanta.com;transport=udp",
        b"sip:alice@atlanta.com;transport=UDP",
        b"sip:alice@atlanta.com;transport=tcp",
        b"sip:alice@atlanta.com;user=phone",
        b"sip:alice@atlanta.com;ttl=15",
        b"sip:alice@atlanta.com;method=REGISTER",
        b"sip:alice@atlanta.com;maddr=239.255.255.1",
        b"sip:alice@atlanta.com;lr",
        b"sip:alice@atlanta.com;foo=bar",
        b"sip:alice@atlanta.com;foo=BAR",
        b"sip:alice@atlanta.com;foo=b%61r",
        b"sip:alice@atlanta.com;foo=bar;lr",
        b"sip:alice@atlanta.com;lr;foo=bar",
        b"sip:alice@atlanta.com;foo=1;foo=2",
        b"sip:alice@atlanta.com;foo=1;FOO=1",
        b"sip:alice@atlanta.com;foo=1;foo=2;transport=udp",
        b"sip:alice@atlanta.com;a;A",
        b"sip:alice@atlanta.com;a=\"\";a",
        b"sip:alice@atlanta.com;a=x;a",
        b"sip:alice@atlanta.com?subject=x",
        b"sip:alice@atlanta.com?Subject=x",
        b"sip:alice@atlanta.com?subject=x&priority=urgent",
        b"sip:alice@atlanta.com?priority=urgent&subject=x",
        b"sip:alice@[2001:db8::1]:5060",
        b"sip:alice@[2001:DB8::1]:5060",
        b"sip:atlanta.com",
        b"tel:+1-212-555-0101",
        b"tel:+1-212-555-0101;phone-context=x",
        b"mailto:alice@atlanta.com",
        b"MAILTO:Alice@Atlanta.com",
    ];

    fn wanted<'b>(uri: Uri<'b>, instance: Option<&'b [u8]>) -> Wanted<'b> {
        Wanted {
            contact: uri.raw(),
            params: Echo::One(b""),
            expires: 3600,
            fields: ContactFields {
                instance,
                ..ContactFields::default()
            },
        }
    }

    fn stored(contact: &[u8], instance: Option<&[u8]>) -> Binding {
        Binding::pack(&NewBinding {
            instance,
            ..stored_nb(contact)
        })
    }

    fn stored_nb(contact: &[u8]) -> NewBinding<'_> {
        NewBinding {
            contact,
            params: b"",
            call_id: b"c",
            cseq: 1,
            expires_at: 100,
            q: None,
            instance: None,
            reg_id: None,
            path: b"",
            source: "192.0.2.1:5060".parse().unwrap(),
            transport: crate::store::Transport::Udp,
            conn: None,
            user_agent: b"",
            registered_at: 0,
        }
    }

    /// Matching a stored binding gives exactly the §19.1.4 comparison of the stored URI with
    /// the request's, byte-identical contacts (the refresh shortcut) included.
    #[test]
    fn binding_matching_is_uri_comparison() {
        for a in URIS {
            let b_parsed = Uri::parse(a).unwrap();
            assert_eq!(equals_itself(a), uri_equal(&b_parsed, &b_parsed));
            for c in URIS {
                let w_uri = Uri::parse(c).unwrap();
                let want = uri_equal(&Uri::parse(a).unwrap(), &w_uri);
                let got = binding_matches(&stored(a, None), &wanted(w_uri, None));
                assert_eq!(
                    got,
                    want,
                    "{} vs {}",
                    String::from_utf8_lossy(a),
                    String::from_utf8_lossy(c)
                );
            }
        }
        // The shortcut counts `;` in the whole text: one in the user part or the headers too.
        for text in [
            &b"sip:a;b@atlanta.com;foo=1"[..],
            b"sip:a;b@atlanta.com;foo=1;foo=2",
            b"sip:a@atlanta.com;foo=1?h=a;b",
            b"sip:a@atlanta.com;foo=1;foo=2?h=a",
        ] {
            let u = Uri::parse(text).unwrap();
            assert_eq!(equals_itself(text), uri_equal(&u, &u));
        }
        // Repeated parameters with different values: not even equal to themselves.
        let odd = Uri::parse(b"sip:alice@atlanta.com;foo=1;foo=2").unwrap();
        assert!(!binding_matches(
            &stored(odd.raw(), None),
            &wanted(odd, None)
        ));
        // RFC 5626 instances decide when both sides carry one.
        let u = Uri::parse(b"sip:alice@atlanta.com").unwrap();
        assert!(binding_matches(
            &stored(b"sip:bob@x", Some(b"<urn:a>")),
            &wanted(u, Some(b"<urn:a>"))
        ));
        assert!(!binding_matches(
            &stored(u.raw(), Some(b"<urn:a>")),
            &wanted(u, Some(b"<urn:b>"))
        ));
        assert!(binding_matches(
            &stored(u.raw(), Some(b"<urn:a>")),
            &wanted(u, None)
        ));
    }

    /// The plan as it was before the steps: matches and replay flags side by side.
    fn reference_plan(
        bindings: &Bindings<'_>,
        wanted: &[Wanted<'_>],
        call_id: &[u8],
        cseq: u32,
    ) -> Result<(Vec<Step>, usize, usize, usize), Error> {
        let (mut matches, mut replays) = (Vec::new(), Vec::new());
        let (mut inserts, mut refreshes, mut removals) = (0, 0, 0);
        for (i, w) in wanted.iter().enumerate() {
            let repeated = wanted[i + 1..].iter().any(|o| same_contact(o, w));
            let found = bindings.iter().position(|b| binding_matches(b, w));
            let mut replay = false;
            if let Some(idx) = found {
                let b = bindings.get(idx).unwrap();
                if b.call_id() == call_id {
                    if cseq < b.cseq() {
                        return Err(Error::OutOfOrder);
                    }
                    replay = cseq == b.cseq();
                }
            }
            if !repeated && !replay {
                match (found, w.expires) {
                    (Some(_), 0) => removals += 1,
                    (Some(_), _) => refreshes += 1,
                    (None, 0) => {}
                    (None, _) => inserts += 1,
                }
            }
            matches.push(if repeated { None } else { found });
            replays.push(repeated || replay);
        }
        // What the old `apply` did with each contact.
        let steps = wanted
            .iter()
            .zip(matches.iter().zip(&replays))
            .map(|(w, (found, replay))| match (found, replay, w.expires) {
                (_, true, _) => Step::Keep,
                (Some(idx), false, 0) => Step::Remove(*idx),
                (Some(idx), false, _) => Step::Refresh(*idx),
                (None, false, 0) => Step::Keep,
                (None, false, _) => Step::Insert,
            })
            .collect();
        Ok((steps, inserts, refreshes, removals))
    }

    /// The steps decide exactly what matches and replay flags decided.
    #[test]
    fn plan_steps_are_the_reference_plan() {
        let contacts: [&[u8]; 3] = [b"sip:a@h", b"sip:b@h", b"sip:A@H;transport=udp"];
        let stored = |contact: &[u8], call_id: &[u8], cseq: u32| {
            Binding::pack(&NewBinding {
                call_id,
                cseq,
                ..stored_nb(contact)
            })
        };
        let lists: Vec<Vec<Binding>> = vec![
            vec![],
            vec![stored(b"sip:a@h", b"c1", 5)],
            vec![stored(b"sip:a@h", b"c1", 5), stored(b"sip:b@h", b"c2", 3)],
            vec![stored(b"sip:b@h", b"c1", 7), stored(b"sip:c@h", b"c1", 5)],
        ];
        let mut compared = 0;
        for list in &lists {
            let mut list: crate::store::BindingList = list.iter().cloned().collect();
            let bindings = Bindings::detached(&mut list);
            // Up to three contacts, each one of the URIs with expires 0 or 60.
            for n in 0..=3u32 {
                for pick in 0..6u32.pow(n) {
                    let wanted: Vec<Wanted<'_>> = (0..n)
                        .map(|k| {
                            let choice = pick / 6u32.pow(k) % 6;
                            let uri = Uri::parse(contacts[(choice / 2) as usize]).unwrap();
                            let mut w = wanted(uri, None);
                            w.expires = if choice % 2 == 0 { 0 } else { 60 };
                            w
                        })
                        .collect();
                    for call_id in [&b"c1"[..], b"c2", b"c9"] {
                        for cseq in [3, 5, 6] {
                            let want = reference_plan(&bindings, &wanted, call_id, cseq);
                            let mut p = Plan::default();
                            let got =
                                plan_updates(&mut p, &bindings, &wanted, call_id, cseq).map(|()| {
                                    let t = p.tally;
                                    (p.steps.to_vec(), t.inserts, t.refreshes, t.removals)
                                });
                            assert_eq!(got, want);
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > 2000, "{compared}");
    }

    /// One contact through `apply_one` (and, with no bindings, `apply_new`) does what the
    /// general plan-then-apply does with it:
    /// the same outcome and the same bindings left, for every stored list, contact, expiry,
    /// Call-ID/CSeq, contact limit (reject or evict) and global limit tried.
    #[test]
    fn one_contact_is_the_general_path() {
        let contacts: [&[u8]; 3] = [b"sip:a@h", b"sip:b@h", b"sip:A@H;transport=udp"];
        let stored = |contact: &[u8], call_id: &[u8], cseq: u32, at: u32| {
            Binding::pack(&NewBinding {
                call_id,
                cseq,
                registered_at: at,
                expires_at: at + 100,
                ..stored_nb(contact)
            })
        };
        let lists: Vec<Vec<Binding>> = vec![
            vec![],
            vec![stored(b"sip:a@h", b"c1", 5, 10)],
            vec![
                stored(b"sip:b@h", b"c2", 3, 20),
                stored(b"sip:a@h", b"c1", 5, 10),
            ],
            vec![
                stored(b"sip:b@h", b"c1", 7, 5),
                stored(b"sip:c@h", b"c1", 5, 30),
            ],
        ];
        let common = |call_id: &'static [u8], cseq: u32| Common {
            joined: b"",
            request: RequestPart {
                call_id,
                cseq,
                path: b"",
                source: "192.0.2.9:5060".parse().unwrap(),
                transport: crate::store::Transport::Udp,
                conn: None,
                user_agent: UserAgent::Text(b"UA"),
                registered_at: 50,
            },
        };
        let mut compared = 0;
        let mut outcomes = Vec::new();
        for list in &lists {
            for (contact, expires) in contacts.iter().flat_map(|c| [(c, 0), (c, 60)]) {
                let w = [Wanted {
                    expires,
                    ..wanted(Uri::parse(contact).unwrap(), None)
                }];
                for (call_id, cseq) in [(&b"c1"[..], 3), (b"c1", 5), (b"c1", 6), (b"c9", 1)] {
                    let common = common(call_id, cseq);
                    let update = Update {
                        wildcard: false,
                        wanted: &w,
                        call_id,
                        cseq,
                        common: &common,
                    };
                    for (max_contacts, evict_oldest) in
                        [(1, false), (1, true), (2, true), (10, false)]
                    {
                        let cfg = EngineConfig {
                            max_contacts,
                            evict_oldest,
                            max_bindings: 4,
                            ..EngineConfig::default()
                        };
                        for total in [None, Some(0), Some(4)] {
                            let run = |many: bool| {
                                let mut l: crate::store::BindingList =
                                    list.iter().cloned().collect();
                                let mut b = Bindings::detached(&mut l);
                                let got = if many {
                                    update.apply_many(&mut b, &cfg, total)
                                } else {
                                    update.apply(&mut b, &cfg, total)
                                };
                                (got.map(|c| (c.any, c.stored)), l.to_vec())
                            };
                            let want = run(true);
                            assert_eq!(run(false), want);
                            outcomes.push(want.0);
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 4 * 6 * 4 * 4 * 3);
        // Inserts and refreshes, removals, no-ops, 503 for the limits and out-of-order all seen.
        for o in [
            Ok((true, true)),
            Ok((true, false)),
            Ok((false, false)),
            Err(Error::TooManyBindings),
            Err(Error::OutOfOrder),
        ] {
            assert!(outcomes.contains(&o), "{o:?}");
        }
    }

    /// Echoed parameters come out as the pieces joined one after another, whatever the pieces,
    /// for each of the contacts sharing one buffer.
    #[test]
    fn echo_is_concatenation() {
        let pieces: [&[u8]; 5] = [
            b"",
            b";a",
            b";b=\"x;y\"",
            b"",
            b";+sip.instance=\"<urn:x>\"",
        ];
        let mut joined = Joined::new();
        let mut echoes = Vec::new();
        for n in 0..=4usize {
            for pick in 0..5usize.pow(n as u32) {
                let mut echo = Echo::One(b"");
                let mut want: Vec<u8> = Vec::new();
                for k in 0..n {
                    let p = pieces[pick / 5usize.pow(k as u32) % 5];
                    echo.push(p, &mut joined);
                    want.extend_from_slice(p);
                }
                assert_eq!(echo.bytes(&joined), &want[..]);
                echoes.push((echo, want));
            }
        }
        // Later contacts leave the earlier ones' parameters as they were.
        for (echo, want) in &echoes {
            assert_eq!(echo.bytes(&joined), &want[..]);
        }
    }

    #[test]
    fn q_rendering() {
        for (q, text) in [
            (1000, ";q=1"),
            (500, ";q=0.5"),
            (0, ";q=0."),
            (123, ";q=0.123"),
            (70, ";q=0.07"),
        ] {
            let mut out = SmallVec::new();
            write_q(&mut out, q);
            let expected = if q == 0 { ";q=0.0" } else { text };
            assert_eq!(std::str::from_utf8(&out).unwrap(), expected, "q={q}");
        }
    }

    #[test]
    fn user_matching_decodes_escapes() {
        assert!(user_matches(b"bob", b"bob"));
        assert!(user_matches(b"b%6Fb", b"bob"));
        assert!(!user_matches(b"bob", b"bobby"));
        assert!(!user_matches(b"bobby", b"bob"));
        assert!(!user_matches(b"Bob", b"bob"));
        assert!(!user_matches(b"b%zzb", b"bob"));
        assert!(!user_matches(b"%", b"%"));
    }

    #[test]
    fn option_tags_split() {
        let tags: Vec<&[u8]> = split_tokens(b" path ,outbound,, gruu").collect();
        assert_eq!(tags, vec![&b"path"[..], b"outbound", b"gruu"]);
    }
}
