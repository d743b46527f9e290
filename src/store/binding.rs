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

/// The fields of a [`NewBinding`] that every contact of one request shares: a request with
/// several contacts makes them once, and a binding is packed from them and its contact's own
/// [`ContactPart`] without a `NewBinding` copied together first.
#[derive(Clone, Copy, Debug)]
pub struct RequestPart<'a> {
    /// [`NewBinding::call_id`].
    pub call_id: &'a [u8],
    /// [`NewBinding::cseq`].
    pub cseq: u32,
    /// [`NewBinding::path`].
    pub path: &'a [u8],
    /// [`NewBinding::source`].
    pub source: SocketAddr,
    /// [`NewBinding::transport`].
    pub transport: Transport,
    /// [`NewBinding::conn`].
    pub conn: Option<u64>,
    /// [`NewBinding::user_agent`], as its text or as the value the store already keeps.
    pub user_agent: UserAgent<'a>,
    /// [`NewBinding::registered_at`].
    pub registered_at: u32,
}

/// A request's User-Agent as the packing of its bindings takes it.
#[derive(Clone, Copy, Debug)]
pub enum UserAgent<'a> {
    /// The header's text, looked up (and added) in the store's User-Agent table when packed.
    Text(&'a [u8]),
    /// A value the table holds, found equal to the header by the caller: packed as its id,
    /// without a second compare.
    Stored(UserAgentId),
}

/// The id of a User-Agent value the store's table holds: only the table makes one (through
/// [`StoredUserAgent::id`]), so a binding packed with it always names a real value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserAgentId(u32);

impl UserAgent<'_> {
    /// The id a binding keeps (the table's id of the text, or the stored value's).
    #[inline(always)]
    pub(crate) fn id(self) -> u32 {
        match self {
            Self::Text(text) => intern::id(text),
            Self::Stored(stored) => stored.0,
        }
    }
}

/// A User-Agent value of the store's table with its id. Ids are never reassigned and values
/// never change, so the pair stays true for the life of the process: a caller that finds a
/// request's User-Agent equal to [`Self::value`] (the engine's scanner check, which compares it
/// anyway) can hand the packing [`UserAgent::Stored`] instead of the text.
#[derive(Clone, Copy, Debug)]
pub struct StoredUserAgent {
    value: &'static [u8],
    id: u32,
}

impl StoredUserAgent {
    /// The empty User-Agent (id 0, always in the table).
    pub const EMPTY: Self = Self { value: b"", id: 0 };

    /// The value as the table holds it (at most 96 bytes: a longer header never equals it).
    pub fn value(self) -> &'static [u8] {
        self.value
    }

    /// Its id, as a binding keeps it.
    pub fn id(self) -> UserAgentId {
        UserAgentId(self.id)
    }

    /// The value this thread looked up last in the table (the last User-Agent packed), when
    /// it is `ua` (one compare).
    pub fn last_if(ua: &[u8]) -> Option<Self> {
        let (id, value) = intern::last();
        crate::bytes::same(value, ua).then_some(Self { value, id })
    }
}

/// The fields of a [`NewBinding`] that are its contact's own (see [`RequestPart`]).
#[derive(Clone, Copy, Debug)]
pub struct ContactPart<'a> {
    /// [`NewBinding::contact`].
    pub contact: &'a [u8],
    /// [`NewBinding::params`].
    pub params: &'a [u8],
    /// [`NewBinding::expires_at`].
    pub expires_at: u32,
    /// [`NewBinding::q`].
    pub q: Option<u16>,
    /// [`NewBinding::instance`].
    pub instance: Option<&'a [u8]>,
    /// [`NewBinding::reg_id`].
    pub reg_id: Option<u32>,
}

impl<'a> NewBinding<'a> {
    /// The binding as its request's part and its contact's.
    pub fn parts(&self) -> (RequestPart<'a>, ContactPart<'a>) {
        (
            RequestPart {
                call_id: self.call_id,
                cseq: self.cseq,
                path: self.path,
                source: self.source,
                transport: self.transport,
                conn: self.conn,
                user_agent: UserAgent::Text(self.user_agent),
                registered_at: self.registered_at,
            },
            ContactPart {
                contact: self.contact,
                params: self.params,
                expires_at: self.expires_at,
                q: self.q,
                instance: self.instance,
                reg_id: self.reg_id,
            },
        )
    }
}

// Packed layout of a binding: one heap block, fixed header then variable parts.
//   0  flags u8         transport (2 bits) | FLAG_*
//   1  cseq u32         5  expires_at u32     9  registered_at u32
//  13  port u16        15  q u16 (NO_Q)      17  user agent id u32 (interned)
//  21  lengths u16 x 6: contact, params, call_id, path, instance, aor
//  33  where the instance starts in the block, u32
//  37  the strings but the AOR — the instance only when it is not a piece of the params —,
//      then ip (4 or 16 bytes), reg_id u32 and conn u64 when flagged, then the AOR. The
//      strings first: they start at a constant offset, so the contact and params (read for
//      every 200 OK) are found without decoding the flags; the rest is found from the end.
//      The usual contact's `+sip.instance` is the value of one of the params it echoes: it is
//      kept once, as its place in them. The AOR's text (empty outside the store) is the
//      store's key: the map holds no key of its own (see `super::Entry`).
const HEADER: usize = 37;
/// The length slot of the instance.
const INSTANCE_LEN_AT: usize = 29;
/// The length slot of the AOR.
const AOR_LEN_AT: usize = 31;
/// The instance's offset in the block.
const INSTANCE_AT: usize = 33;
const FLAG_V6: u8 = 1 << 2;
const FLAG_REG_ID: u8 = 1 << 3;
const FLAG_INSTANCE: u8 = 1 << 4;
const FLAG_CONN: u8 = 1 << 5;
const NO_Q: u16 = u16::MAX;

/// A stored binding: a 16-byte handle to one packed heap block (about 110 bytes for a typical
/// UDP phone), so that a single-contact AOR costs a small map slot plus two allocations.
#[derive(Clone, PartialEq, Eq)]
pub struct Binding {
    data: Box<[u8]>,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("contact", &String::from_utf8_lossy(self.contact()))
            .field("call_id", &String::from_utf8_lossy(self.call_id()))
            .field("cseq", &self.cseq())
            .field("expires_at", &self.expires_at())
            .finish_non_exhaustive()
    }
}

/// The longest string a binding holds: lengths are stored in 16 bits. No string of a request
/// is longer, because a message is not (the configuration refuses a larger
/// `limits.max_message_size`).
pub const MAX_TEXT: usize = u16::MAX as usize;

/// Each string capped at [`MAX_TEXT`] bytes (a bound for the packing, never reached by a
/// request's strings: two AORs are never known by one text).
pub(super) fn cap(s: &[u8]) -> &[u8] {
    s.get(..s.len().min(MAX_TEXT)).unwrap_or_default()
}

fn u16_at(d: &[u8], at: usize) -> u16 {
    d.get(at..at + 2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    d.get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// What a [`NewBinding`] packs into: its variable parts and the packed size.
struct Fields<'a> {
    /// Contact, params, Call-ID, path and instance, each at most [`MAX_TEXT`] bytes.
    strings: [&'a [u8]; 5],
    /// The instance is a piece of the params (the same bytes in memory, as the request's view
    /// of the usual contact's `+sip.instance` is a piece of its view of the params): it is
    /// not stored on its own.
    in_params: bool,
    /// Where the instance starts in the block.
    instance_at: u32,
    flags: u8,
    /// The packed size, the AOR included.
    len: usize,
}

impl<'a> Fields<'a> {
    /// The fields of the binding of `r` and `c` stored with an AOR text of `aor_len` bytes.
    fn of(r: &RequestPart<'a>, c: &ContactPart<'a>, aor_len: usize) -> Self {
        let strings = [
            cap(c.contact),
            cap(c.params),
            cap(r.call_id),
            cap(r.path),
            cap(c.instance.unwrap_or_default()),
        ];
        let [contact, params, call_id, path, instance] = strings;
        // Within the (capped) params: from where they start, no further than they end.
        let off = instance
            .as_ptr()
            .addr()
            .wrapping_sub(params.as_ptr().addr());
        let in_params = off <= params.len() && instance.len() <= params.len() - off;
        let before = contact.len() + params.len() + call_id.len() + path.len();
        let (instance_at, own) = if in_params {
            (HEADER + contact.len() + off, 0)
        } else {
            (HEADER + before, instance.len())
        };
        let ip_len = if r.source.is_ipv4() { 4 } else { 16 };
        let mut flags = match r.transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        };
        if ip_len == 16 {
            flags |= FLAG_V6;
        }
        if c.reg_id.is_some() {
            flags |= FLAG_REG_ID;
        }
        if c.instance.is_some() {
            flags |= FLAG_INSTANCE;
        }
        if r.conn.is_some() {
            flags |= FLAG_CONN;
        }
        let len = HEADER
            + ip_len
            + if c.reg_id.is_some() { 4 } else { 0 }
            + if r.conn.is_some() { 8 } else { 0 }
            + aor_len
            + before
            + own;
        Self {
            strings,
            in_params,
            // At most five strings of 16-bit lengths in: always fits.
            instance_at: u32::try_from(instance_at).unwrap_or(u32::MAX),
            flags,
            len,
        }
    }

    /// Hands the packed bytes, in order, to `put`: `self.len` of them in all with the AOR's
    /// length `aor_len`, all but the AOR's text itself (the caller's to add, or to keep). The
    /// fixed-size parts go as arrays (their copies need no `memcpy` call), empty strings not at
    /// all.
    fn emit(
        &self,
        r: &RequestPart<'_>,
        c: &ContactPart<'_>,
        ua: u32,
        aor_len: usize,
        mut put: impl FnMut(&[u8]),
    ) {
        let mut head = [0u8; HEADER];
        head[0] = self.flags;
        head[1..5].copy_from_slice(&r.cseq.to_le_bytes());
        head[5..9].copy_from_slice(&c.expires_at.to_le_bytes());
        head[9..13].copy_from_slice(&r.registered_at.to_le_bytes());
        head[13..15].copy_from_slice(&r.source.port().to_le_bytes());
        head[15..17].copy_from_slice(&c.q.map_or(NO_Q, |q| q.min(1000)).to_le_bytes());
        head[17..21].copy_from_slice(&ua.to_le_bytes());
        for (i, s) in self.strings.iter().enumerate() {
            let len = u16::try_from(s.len()).unwrap_or(u16::MAX).to_le_bytes();
            head[21 + 2 * i..23 + 2 * i].copy_from_slice(&len);
        }
        let aor_len = u16::try_from(aor_len).unwrap_or(u16::MAX).to_le_bytes();
        head[AOR_LEN_AT..AOR_LEN_AT + 2].copy_from_slice(&aor_len);
        head[INSTANCE_AT..INSTANCE_AT + 4].copy_from_slice(&self.instance_at.to_le_bytes());
        put(&head);
        let [contact, params, call_id, path, instance] = self.strings;
        let own = if self.in_params { &[][..] } else { instance };
        for s in [contact, params, call_id, path, own] {
            if !s.is_empty() {
                put(s);
            }
        }
        match r.source.ip() {
            IpAddr::V4(v4) => put(&v4.octets()),
            IpAddr::V6(v6) => put(&v6.octets()),
        }
        if let Some(r) = c.reg_id {
            put(&r.to_le_bytes());
        }
        if let Some(c) = r.conn {
            put(&c.to_le_bytes());
        }
    }
}

impl Binding {
    /// A binding held outside the store (no AOR text).
    pub(crate) fn pack(b: &NewBinding<'_>) -> Self {
        Self::pack_for(b, b"")
    }

    /// A binding of the AOR `aor` (canonical text, capped at 65 535 bytes like every string).
    pub(super) fn pack_for(b: &NewBinding<'_>, aor: &[u8]) -> Self {
        let (r, c) = b.parts();
        Self::pack_parts(&r, &c, aor)
    }

    /// [`Binding::pack_for`] of the binding of `r` and `c`.
    pub(super) fn pack_parts(r: &RequestPart<'_>, c: &ContactPart<'_>, aor: &[u8]) -> Self {
        let aor = cap(aor);
        let fields = Fields::of(r, c, aor.len());
        let mut d = Vec::with_capacity(fields.len);
        fields.emit(r, c, r.user_agent.id(), aor.len(), |s| {
            d.extend_from_slice(s)
        });
        d.extend_from_slice(aor);
        Self {
            data: d.into_boxed_slice(),
        }
    }

    /// Makes this binding what [`Binding::pack_for`] makes of `b` with this binding's AOR.
    #[cfg(test)]
    pub(crate) fn repack(&mut self, b: &NewBinding<'_>) {
        let (r, c) = b.parts();
        self.repack_parts(&r, &c);
    }

    /// Makes this binding what [`Binding::pack_parts`] makes of `r` and `c` with this
    /// binding's AOR, in place when the packed size is unchanged (a refresh: same contact,
    /// Call-ID and addresses), without a new allocation and, when the User-Agent is the stored
    /// one, without looking it up again.
    pub(super) fn repack_parts(&mut self, r: &RequestPart<'_>, c: &ContactPart<'_>) {
        let aor_len = self.aor().len();
        let fields = Fields::of(r, c, aor_len);
        if fields.len != self.data.len() {
            *self = Self::pack_parts(r, c, self.aor());
            return;
        }
        let ua = match r.user_agent {
            UserAgent::Stored(stored) => stored.0,
            UserAgent::Text(text) => {
                let old_ua = u32_at(&self.data, 17);
                if crate::bytes::same(intern::get(old_ua), intern::cut(text)) {
                    old_ua
                } else {
                    intern::id(text)
                }
            }
        };
        // Everything up to the AOR, which stays as it is.
        let mut at = 0;
        fields.emit(r, c, ua, aor_len, |s| {
            if let Some(dst) = self.data.get_mut(at..at + s.len()) {
                dst.copy_from_slice(s);
            }
            at += s.len();
        });
    }

    fn flags(&self) -> u8 {
        self.data.first().copied().unwrap_or(0)
    }

    fn ip_len(&self) -> usize {
        if self.flags() & FLAG_V6 != 0 {
            16
        } else {
            4
        }
    }

    fn aor_len(&self) -> usize {
        usize::from(u16_at(&self.data, AOR_LEN_AT))
    }

    /// The AOR's text (the block's last bytes; empty outside the store).
    pub(super) fn aor(&self) -> &[u8] {
        let at = self.data.len().saturating_sub(self.aor_len());
        self.data.get(at..).unwrap_or_default()
    }

    /// Offset of the address: the address, reg_id and conn come before the AOR at the end.
    fn ip_at(&self) -> usize {
        let f = self.flags();
        let tail = self.ip_len()
            + if f & FLAG_REG_ID != 0 { 4 } else { 0 }
            + if f & FLAG_CONN != 0 { 8 } else { 0 }
            + self.aor_len();
        self.data.len().saturating_sub(tail)
    }

    fn part(&self, i: usize) -> &[u8] {
        let mut start = HEADER;
        for j in 0..i {
            start += usize::from(u16_at(&self.data, 21 + 2 * j));
        }
        let len = usize::from(u16_at(&self.data, 21 + 2 * i));
        self.data.get(start..start + len).unwrap_or_default()
    }

    /// What a 200 OK's Contact line of this binding reads at `now_secs`, from one read of the
    /// header: the contact and params come first in the block, so one bounds check finds both
    /// (each accessor on its own would read the header and check its bounds again).
    pub fn reply_parts(&self, now_secs: u32) -> ReplyParts<'_> {
        // Every block holds its header; a shorter one (never packed) reads as all zeros.
        let head: &[u8; HEADER] = self.data.first_chunk().unwrap_or(&[0; HEADER]);
        let contact = usize::from(u16_at(head, 21));
        let params = usize::from(u16_at(head, 23));
        let (contact, params) = self
            .data
            .get(HEADER..HEADER + contact + params)
            .and_then(|both| both.split_at_checked(contact))
            .unwrap_or_default();
        let q = u16_at(head, 15);
        ReplyParts {
            contact,
            params,
            q: (q != NO_Q).then_some(q),
            remaining: u32_at(head, 5).saturating_sub(now_secs),
        }
    }

    /// Contact URI (uri-parameters included, no `<>`).
    pub fn contact(&self) -> &[u8] {
        self.reply_parts(0).contact
    }

    /// Contact-params to echo.
    pub fn params(&self) -> &[u8] {
        self.reply_parts(0).params
    }

    /// Call-ID of the request that stored it.
    pub fn call_id(&self) -> &[u8] {
        self.part(2)
    }

    /// CSeq of the request that stored it.
    pub fn cseq(&self) -> u32 {
        u32_at(&self.data, 1)
    }

    /// Expiry, Unix seconds.
    pub fn expires_at(&self) -> u32 {
        u32_at(&self.data, 5)
    }

    /// q in thousandths.
    pub fn q(&self) -> Option<u16> {
        self.reply_parts(0).q
    }

    /// `+sip.instance`.
    pub fn instance(&self) -> Option<&[u8]> {
        if self.flags() & FLAG_INSTANCE == 0 {
            return None;
        }
        let at = usize::try_from(u32_at(&self.data, INSTANCE_AT)).unwrap_or(usize::MAX);
        let len = usize::from(u16_at(&self.data, INSTANCE_LEN_AT));
        Some(
            self.data
                .get(at..at.saturating_add(len))
                .unwrap_or_default(),
        )
    }

    /// `reg-id`.
    pub fn reg_id(&self) -> Option<u32> {
        (self.flags() & FLAG_REG_ID != 0).then(|| u32_at(&self.data, self.ip_at() + self.ip_len()))
    }

    /// Path header values (joined).
    pub fn path(&self) -> &[u8] {
        self.part(3)
    }

    /// User-Agent (interned; see `intern`).
    pub fn user_agent(&self) -> &'static [u8] {
        intern::get(u32_at(&self.data, 17))
    }

    /// Source address of the REGISTER.
    pub fn source(&self) -> SocketAddr {
        let ip = self
            .data
            .get(self.ip_at()..self.ip_at() + self.ip_len())
            .unwrap_or_default();
        let ip = match <[u8; 16]>::try_from(ip) {
            Ok(v6) => IpAddr::V6(Ipv6Addr::from(v6)),
            Err(_) => match <[u8; 4]>::try_from(ip) {
                Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
                Err(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
        };
        SocketAddr::new(ip, u16_at(&self.data, 13))
    }

    /// Transport.
    pub fn transport(&self) -> Transport {
        match self.flags() & 3 {
            1 => Transport::Tcp,
            2 => Transport::Tls,
            _ => Transport::Udp,
        }
    }

    /// The flow (stream connection).
    pub fn conn(&self) -> Option<u64> {
        let f = self.flags();
        if f & FLAG_CONN == 0 {
            return None;
        }
        // The eight bytes before the AOR.
        let at = self.data.len().saturating_sub(8 + self.aor_len());
        let b = self.data.get(at..at + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// When first stored, Unix seconds.
    pub fn registered_at(&self) -> u32 {
        u32_at(&self.data, 9)
    }

    /// A stable identifier (hash of contact and instance), for management operations.
    pub fn id(&self) -> u64 {
        super::stable_hash(&[self.contact(), self.instance().unwrap_or_default()])
    }

    /// Seconds left at `now_secs` (0 when expired).
    pub fn remaining(&self, now_secs: u32) -> u32 {
        self.reply_parts(now_secs).remaining
    }
}

/// What a 200 OK lists of a binding (see [`Binding::reply_parts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyParts<'a> {
    /// [`Binding::contact`].
    pub contact: &'a [u8],
    /// [`Binding::params`].
    pub params: &'a [u8],
    /// [`Binding::q`].
    pub q: Option<u16>,
    /// [`Binding::remaining`] at the time asked for.
    pub remaining: u32,
}

/// User-Agent interning: a handful of distinct values cover millions of phones, so bindings
/// keep a 4-byte id. Bounded (a client cannot grow it without limit): past `MAX` distinct
/// values, or for values longer than `MAX_LEN`, the stored User-Agent is cut to `MAX_LEN` bytes
/// and further new values map to id 0 (empty).
mod intern {
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};

    thread_local! {
        /// The id this thread looked up last, with its stored value. Ids are never reassigned
        /// and values never change, so the pair stays true: phones of one model register one
        /// after another, and their User-Agent is then found (and read back) without the
        /// table's lock.
        static LAST: Cell<(u32, &'static [u8])> = const { Cell::new((0, b"")) };
    }

    const MAX: usize = 16_384;
    const MAX_LEN: usize = 96;

    #[derive(Default)]
    struct Table {
        ids: HashMap<&'static [u8], u32, foldhash::fast::RandomState>,
        values: Vec<&'static [u8]>,
    }

    fn table() -> &'static RwLock<Table> {
        static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
        TABLE.get_or_init(|| {
            RwLock::new(Table {
                ids: HashMap::default(),
                values: vec![b""],
            })
        })
    }

    /// The part of a User-Agent that is kept.
    pub(super) fn cut(ua: &[u8]) -> &[u8] {
        ua.get(..ua.len().min(MAX_LEN)).unwrap_or_default()
    }

    /// The id of a User-Agent. Always inlined (plain `#[inline]` left it a call in the
    /// packing): the usual value, this thread's last one, is found with one comparison; the
    /// table lookup stays out of line.
    #[inline(always)]
    pub(super) fn id(ua: &[u8]) -> u32 {
        let ua = cut(ua);
        if ua.is_empty() {
            return 0;
        }
        let (last, value) = LAST.get();
        if crate::bytes::same(value, ua) {
            return last;
        }
        lookup(ua)
    }

    /// [`id`] through the shared table (adding the value when it is new).
    #[inline(never)]
    fn lookup(ua: &[u8]) -> u32 {
        let found = {
            let t = table()
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t.ids.get_key_value(ua).map(|(&v, &id)| (id, v))
        };
        let (id, stored) = found.unwrap_or_else(|| insert(ua));
        LAST.set((id, stored));
        id
    }

    /// Adds a value (or finds it, when another thread just added it); `(0, b"")` when the
    /// table is full.
    fn insert(ua: &[u8]) -> (u32, &'static [u8]) {
        let mut t = table()
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((&v, &id)) = t.ids.get_key_value(ua) {
            return (id, v);
        }
        if t.values.len() >= MAX {
            return (0, b"");
        }
        // Leaked on purpose: at most MAX x MAX_LEN bytes (1.5 MiB) for the process lifetime.
        let stored: &'static [u8] = Box::leak(ua.to_vec().into_boxed_slice());
        let id = u32::try_from(t.values.len()).unwrap_or(0);
        t.values.push(stored);
        t.ids.insert(stored, id);
        (id, stored)
    }

    /// The id this thread looked up last, with its value.
    pub(super) fn last() -> (u32, &'static [u8]) {
        LAST.get()
    }

    pub(super) fn get(id: u32) -> &'static [u8] {
        let (last, value) = LAST.get();
        if id == last {
            return value;
        }
        let t = table()
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        usize::try_from(id)
            .ok()
            .and_then(|i| t.values.get(i).copied())
            .unwrap_or_default()
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
    fn repacking_makes_what_packing_makes() {
        let base = sample("192.0.2.44:5060", Some(b"<urn:x>"));
        let variants = [
            NewBinding {
                cseq: 43,
                expires_at: 1_700_007_200,
                registered_at: 1_700_003_600,
                ..base
            },
            NewBinding {
                user_agent: b"Another UA 1.0",
                ..base
            },
            NewBinding {
                user_agent: b"",
                ..base
            },
            NewBinding {
                call_id: b"0123456789abcdef0123456789abcdeX",
                q: None,
                ..base
            },
            NewBinding {
                source: "192.0.2.45:5062".parse().unwrap(),
                transport: Transport::Udp,
                ..base
            },
            NewBinding {
                contact: b"sip:u1@192.0.2.44:5060;transport=tcp",
                ..base
            },
            NewBinding {
                source: "[2001:db8::1]:5060".parse().unwrap(),
                ..base
            },
            NewBinding {
                reg_id: None,
                conn: None,
                instance: None,
                ..base
            },
            NewBinding {
                user_agent: &[b'x'; 200],
                ..base
            },
        ];
        for v in &variants {
            for from in [&base, v] {
                let mut b = Binding::pack(from);
                b.repack(v);
                assert_eq!(b, Binding::pack(v), "{v:?}");
                assert_eq!(b.user_agent(), intern::cut(v.user_agent));
            }
        }
    }

    /// At most 65 535 bytes of `s`.
    fn cut(s: &[u8]) -> &[u8] {
        &s[..s.len().min(65_535)]
    }

    /// The packing written piece by piece: header, every string (each capped on its own; empty
    /// ones included; the instance only when its bytes are not inside the params), then
    /// address, reg-id, flow.
    fn reference_pack(b: &NewBinding<'_>) -> Vec<u8> {
        let (contact, params, call_id, path) =
            (cut(b.contact), cut(b.params), cut(b.call_id), cut(b.path));
        let instance = b.instance.map(cut);
        // (Without an instance, the empty one is placed as any other: its place is never read.)
        let i = instance.unwrap_or_default();
        let inside = params.as_ptr_range();
        let in_params = (inside.start <= i.as_ptr() && i.as_ptr_range().end <= inside.end)
            .then(|| i.as_ptr() as usize - params.as_ptr() as usize);
        let strings = contact.len() + params.len() + call_id.len() + path.len();
        let instance_at = match in_params {
            Some(at) => 37 + contact.len() + at,
            None => 37 + strings,
        };
        let mut head = [0u8; HEADER];
        head[0] = match b.transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        } | u8::from(b.source.is_ipv6()) << 2
            | u8::from(b.reg_id.is_some()) << 3
            | u8::from(instance.is_some()) << 4
            | u8::from(b.conn.is_some()) << 5;
        head[1..5].copy_from_slice(&b.cseq.to_le_bytes());
        head[5..9].copy_from_slice(&b.expires_at.to_le_bytes());
        head[9..13].copy_from_slice(&b.registered_at.to_le_bytes());
        head[13..15].copy_from_slice(&b.source.port().to_le_bytes());
        head[15..17].copy_from_slice(&b.q.map_or(NO_Q, |q| q.min(1000)).to_le_bytes());
        head[17..21].copy_from_slice(&intern::id(b.user_agent).to_le_bytes());
        let instance = instance.unwrap_or_default();
        for (i, s) in [contact, params, call_id, path, instance]
            .iter()
            .enumerate()
        {
            head[21 + 2 * i..23 + 2 * i].copy_from_slice(&(s.len() as u16).to_le_bytes());
        }
        head[33..37].copy_from_slice(&(instance_at as u32).to_le_bytes());
        let mut d = head.to_vec();
        for s in [contact, params, call_id, path] {
            d.extend_from_slice(s);
        }
        if in_params.is_none() {
            d.extend_from_slice(instance);
        }
        match b.source.ip() {
            IpAddr::V4(v4) => d.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => d.extend_from_slice(&v6.octets()),
        }
        if let Some(r) = b.reg_id {
            d.extend_from_slice(&r.to_le_bytes());
        }
        if let Some(c) = b.conn {
            d.extend_from_slice(&c.to_le_bytes());
        }
        d
    }

    /// Every kind of binding against the reference layout, the instance in the params (the
    /// usual contact's) or not, and read back.
    #[test]
    fn packing_writes_the_reference_layout() {
        let long = [b'p'; 70_000];
        let usual = b";+sip.instance=\"<urn:x>\";video";
        for source in ["192.0.2.44:5060", "[2001:db8::1]:5061", "0.0.0.0:0"] {
            for (reg_id, conn) in [
                (None, None),
                (Some(7), None),
                (None, Some(9)),
                (Some(1), Some(u64::MAX)),
            ] {
                for (params, path, q) in [
                    (&b""[..], &b""[..], None),
                    (&b";video"[..], &b"<sip:p;lr>"[..], Some(1000)),
                    (&usual[..], &b""[..], None),
                    (&long[..], &long[..5], Some(2000)),
                ] {
                    // Apart from the params, then pieces of them: the first bytes, the
                    // last ones (past the cap for the long params: stored on their own), the
                    // empty piece at their end, and the usual one.
                    let n = params.len();
                    let pieces = [
                        None,
                        Some(&b"<urn:x>"[..]),
                        Some(&b""[..]),
                        params.get(..n.min(3)),
                        params.get(n.saturating_sub(3)..),
                        params.get(n..),
                        params.get(16..23),
                        long.get(65_530..65_535),
                        long.get(65_530..65_536),
                    ];
                    for instance in pieces {
                        let n = NewBinding {
                            params,
                            path,
                            q,
                            instance,
                            reg_id,
                            conn,
                            ..sample(source, None)
                        };
                        let b = Binding::pack(&n);
                        assert_eq!(&b.data[..], &reference_pack(&n)[..], "{n:?}");
                        assert_eq!(
                            (b.params(), b.path(), b.instance()),
                            (cut(params), path, instance.map(cut))
                        );
                        let mut r = Binding::pack(&sample("192.0.2.9:1", None));
                        r.repack(&n);
                        assert_eq!(r, b);
                    }
                }
            }
        }
        // The usual contact's instance is kept once.
        let within = NewBinding {
            params: usual,
            instance: usual.get(16..23),
            ..sample("192.0.2.44:5060", None)
        };
        let apart = NewBinding {
            instance: Some(b"<urn:x>"),
            ..within
        };
        assert_eq!(within.instance, apart.instance);
        let (within, apart) = (Binding::pack(&within), Binding::pack(&apart));
        assert_eq!(within.data.len() + 7, apart.data.len());
        assert_eq!(within.instance(), apart.instance());
        assert_eq!(within.id(), apart.id());
    }

    /// The 200 OK's one read of a binding gives what was packed and what the single accessors
    /// give, on every shape: with and without q, instance, params, path, flow; IPv6; expired,
    /// expiring now and not; contact and params at and past the cap; with an AOR.
    #[test]
    fn reply_parts_read_what_was_packed() {
        let long = [b'c'; 70_000];
        let usual = b";+sip.instance=\"<urn:x>\";video";
        for source in ["192.0.2.44:5060", "[2001:db8::1]:5061"] {
            for (contact, params, path, q) in [
                (&b"sip:u1@192.0.2.44:5060"[..], &b""[..], &b""[..], None),
                (
                    &b"sip:u1@192.0.2.44:5060"[..],
                    &usual[..],
                    &b""[..],
                    Some(0),
                ),
                (
                    &b"sip:a@b"[..],
                    &b";video"[..],
                    &b"<sip:p;lr>"[..],
                    Some(1000),
                ),
                (&b""[..], &b""[..], &b""[..], Some(2000)),
                (&long[..], &b";x"[..], &long[..3], Some(500)),
                (&b"sip:a@b"[..], &long[..], &b""[..], None),
                (&long[..], &long[..], &long[..], Some(1)),
                (&long[..65_535], &long[..65_535], &b""[..], None),
            ] {
                for instance in [None, params.get(16..23), Some(&b"<urn:y>"[..])] {
                    for (reg_id, conn) in [(None, None), (Some(3), Some(u64::MAX))] {
                        let n = NewBinding {
                            contact,
                            params,
                            path,
                            q,
                            instance,
                            reg_id,
                            conn,
                            ..sample(source, None)
                        };
                        for aor in [&b""[..], b"sip:alice@example.com"] {
                            let b = Binding::pack_for(&n, aor);
                            for now in [0, n.expires_at - 1, n.expires_at, u32::MAX] {
                                let parts = b.reply_parts(now);
                                let want = ReplyParts {
                                    contact: cut(contact),
                                    params: cut(params),
                                    q: q.map(|q| q.min(1000)),
                                    remaining: n.expires_at.saturating_sub(now),
                                };
                                assert_eq!(parts, want, "{n:?} {now}");
                                assert_eq!(
                                    (b.contact(), b.params(), b.q(), b.remaining(now)),
                                    (want.contact, want.params, want.q, want.remaining)
                                );
                                assert_eq!((b.call_id(), b.path()), (n.call_id, cut(path)));
                            }
                        }
                    }
                }
            }
        }
    }

    /// A binding packed for an AOR is the binding packed without one, with the AOR's length in
    /// its slot and its text (capped) at the end; every accessor reads what it reads without
    /// it, and a repack (in place or not) keeps the AOR.
    #[test]
    fn packing_for_an_aor_appends_it() {
        let long = [b'a'; 70_000];
        for source in ["192.0.2.44:5060", "[2001:db8::1]:5061"] {
            for (reg_id, conn) in [
                (None, None),
                (Some(7), Some(9)),
                (Some(1), None),
                (None, Some(u64::MAX)),
            ] {
                let n = NewBinding {
                    reg_id,
                    conn,
                    ..sample(source, Some(b"<urn:x>"))
                };
                let plain = Binding::pack(&n);
                assert_eq!(plain.aor(), b"");
                for aor in [&b""[..], b"sip:alice@example.com", &long[..]] {
                    let kept = &aor[..aor.len().min(65_535)];
                    let b = Binding::pack_for(&n, aor);
                    assert_eq!(b.aor(), kept);
                    let mut want = plain.data.to_vec();
                    want[AOR_LEN_AT..AOR_LEN_AT + 2]
                        .copy_from_slice(&(kept.len() as u16).to_le_bytes());
                    want.extend_from_slice(kept);
                    assert_eq!(&b.data[..], &want[..]);
                    assert_eq!(
                        (b.contact(), b.params(), b.call_id(), b.instance(), b.path()),
                        (
                            plain.contact(),
                            plain.params(),
                            plain.call_id(),
                            plain.instance(),
                            plain.path()
                        )
                    );
                    assert_eq!(
                        (b.source(), b.reg_id(), b.conn(), b.transport(), b.q()),
                        (n.source, reg_id, conn, n.transport, n.q)
                    );
                    assert_eq!(
                        (b.cseq(), b.expires_at(), b.registered_at(), b.user_agent()),
                        (n.cseq, n.expires_at, n.registered_at, n.user_agent)
                    );
                    assert_eq!(b.id(), plain.id());
                    // Another size (a new block), then the same size (in place).
                    let mut r = Binding::pack_for(&sample("192.0.2.9:1", None), aor);
                    r.repack(&n);
                    assert_eq!(r, b);
                    let later = NewBinding { cseq: 50, ..n };
                    r.repack(&later);
                    assert_eq!(r, Binding::pack_for(&later, aor));
                }
            }
        }
    }

    /// The per-thread last-value cache gives the ids and values the shared table gives, on
    /// every thread, whichever value each thread saw last.
    #[test]
    fn interning_agrees_across_threads() {
        let (a, b) = (
            intern::id(b"intern test UA one"),
            intern::id(b"intern test UA two"),
        );
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(intern::id(b"intern test UA one"), a);
        assert_eq!(intern::get(b), b"intern test UA two");
        assert_eq!(intern::get(a), b"intern test UA one");
        assert_eq!(intern::id(b""), 0);
        assert_eq!(intern::get(0), b"");
        let long = [b'u'; 200];
        let cut = intern::id(&long);
        assert_eq!(intern::get(cut), intern::cut(&long));
        assert_eq!(intern::id(intern::cut(&long)), cut);
        std::thread::scope(|scope| {
            for order in [[a, b], [b, a]] {
                scope.spawn(move || {
                    for id in order {
                        let value = intern::get(id);
                        assert_eq!(intern::id(value), id);
                        assert_eq!(intern::get(id), value);
                    }
                    assert_eq!(
                        intern::id(b"intern test UA three"),
                        intern::id(b"intern test UA three")
                    );
                });
            }
        });
        assert_eq!(intern::get(a), b"intern test UA one");
        assert_eq!(intern::id(b"intern test UA two"), b);
    }

    #[test]
    fn binding_stays_compact() {
        assert_eq!(size_of::<Binding>(), 16);
        // A typical UDP phone: 37-byte contact, 32-byte Call-ID, interned User-Agent.
        let phone = NewBinding {
            params: b"",
            q: None,
            instance: None,
            reg_id: None,
            path: b"",
            conn: None,
            transport: Transport::Udp,
            ..sample("192.0.2.44:5060", None)
        };
        let b = Binding::pack(&phone);
        assert_eq!(
            b.data.len(),
            HEADER + 4 + phone.contact.len() + phone.call_id.len()
        );
        assert_eq!(b.user_agent(), phone.user_agent);
    }
}
