//! Expiry timer wheels: one-second slots in a ring covering the longest binding lifetime.
//!
//! Scheduling an expiry appends `(aor, at)` to slot `at % len`, the AOR named by its partition
//! and its hash in that partition's table (the map holds no key to share: the sweep finds the
//! AOR by probing, see `Store::expire`). The store keeps about one entry per AOR, at or before
//! its earliest expiry: a refresh pushes nothing (the old entry fires
//! first, finds nothing expired and reschedules at the AOR's new earliest expiry), so the
//! wheel's size follows the number of AORs, not the refresh rate. Several wheels (picked by AOR
//! hash) keep the locks uncontended. Sweeping never holds a wheel lock while it touches the
//! map. The locks are the map's own kind (`dashmap::RwLock`, parking): no poisoning to
//! check on each lock and unlock.
//!
//! A slot is a list of entries linked by index, newest first (a new entry goes in front; the
//! sweep hands the due ones over in the order they were scheduled). The entries live in chunks
//! of [`CHUNK`] that never move; a swept entry goes to a free list and is reused by the next
//! one scheduled. So a slot costs 4 bytes (a `Vec` per slot cost 24 plus its slack),
//! scheduling allocates only when no entry is free (one chunk per [`CHUNK`] entries while the
//! wheel grows, never in steady state), and growth never copies the entries already scheduled.

use dashmap::RwLock;

use super::wheel_index;

/// Entries per chunk (24 bytes each).
const CHUNK: usize = 256;

/// No entry (an empty slot, the end of a list).
const NIL: u32 = u32::MAX;

struct Entry {
    /// The AOR's table hash and partition (meaningless while on the free list).
    hash: u64,
    part: u32,
    at: u32,
    /// The next entry of its slot (or of the free list).
    next: u32,
}

/// A slot's list: its newest entry (each links to the one scheduled before it), [`NIL`] when
/// empty. Newest first, so that scheduling only links the new entry in front (no walk to the
/// last one, no second entry to update); the sweep hands the due ones over oldest first.
type Slot = u32;

const EMPTY: Slot = NIL;

struct Wheel {
    slots: Box<[Slot]>,
    /// Entry `i` is `chunks[i / CHUNK][i % CHUNK]`. Arrays, not slices: the index within a
    /// chunk needs no bounds check.
    chunks: Vec<Box<[Entry; CHUNK]>>,
    /// Unused entries, linked through `next`.
    free: u32,
    /// First second not swept yet; `None` until something is scheduled.
    next: Option<u32>,
    entries: usize,
}

/// Entry `i` of a wheel's chunks.
fn entry(chunks: &mut [Box<[Entry; CHUNK]>], i: u32) -> Option<&mut Entry> {
    let i = usize::try_from(i).ok()?;
    chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
}

impl Wheel {
    /// Adds a chunk of entries to the free list (none when every index is taken: `u32::MAX`
    /// entries, 96 GiB).
    #[inline(never)]
    fn grow(&mut self) {
        let first = self.chunks.len() * CHUNK;
        let Some(end) = u32::try_from(first + CHUNK).ok().filter(|&e| e < NIL) else {
            return;
        };
        // Entry `first + k` links to the next one; the last one to the old free list. The
        // links are counted in u32 (`end + 1` fits): one plain range, collected without a check
        // per entry (its length is known), the last link set after.
        let start = end - u32::try_from(CHUNK).unwrap_or(0);
        let mut chunk: Box<[Entry]> = (start + 1..end + 1)
            .map(|next| Entry {
                hash: 0,
                part: 0,
                at: 0,
                next,
            })
            .collect();
        if let Some(last) = chunk.last_mut() {
            last.next = self.free;
        }
        // CHUNK entries: the conversion always succeeds.
        let Ok(chunk) = chunk.try_into() else {
            return;
        };
        self.chunks.push(chunk);
        self.free = start;
    }

    /// Adds `(part, hash, at)` to slot `slot` (in front: see [`Slot`]).
    fn push(&mut self, slot: usize, part: u32, hash: u64, at: u32) {
        if self.free == NIL {
            self.grow();
        }
        let i = self.free;
        let Some(e) = entry(&mut self.chunks, i) else {
            return;
        };
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        self.free = e.next;
        *e = Entry {
            hash,
            part,
            at,
            next: std::mem::replace(s, i),
        };
        self.entries += 1;
    }

    /// Moves the AORs of slot `slot`'s entries due at `now` into `due` (in the order they were
    /// scheduled) and frees those entries; the others stay, in order.
    fn sweep(&mut self, slot: usize, now: u32, due: &mut Vec<(usize, u64)>) {
        let Some(&first) = self.slots.get(slot) else {
            return;
        };
        let start = due.len();
        // The entries kept, in the list's order (newest first): the first and the last one.
        let (mut kept, mut last) = (EMPTY, NIL);
        let mut at = first;
        while let Some(e) = entry(&mut self.chunks, at) {
            let i = at;
            at = e.next;
            if e.at <= now {
                due.push((usize::try_from(e.part).unwrap_or(usize::MAX), e.hash));
                e.next = self.free;
                self.free = i;
                self.entries -= 1;
                continue;
            }
            e.next = NIL;
            match entry(&mut self.chunks, last) {
                Some(prev) => prev.next = i,
                None => kept = i,
            }
            last = i;
        }
        if let Some(s) = self.slots.get_mut(slot) {
            *s = kept;
        }
        // Walked newest first: the due ones oldest first.
        if let Some(swept) = due.get_mut(start..) {
            swept.reverse();
        }
    }
}

pub(super) struct Wheels {
    /// A power of two of them (an AOR's wheel is picked by masking its hash).
    wheels: Vec<RwLock<Wheel>>,
    /// `wheels.len() - 1`, kept: the mask needs no saturating subtraction per entry.
    mask: usize,
    len: u32,
}

impl Wheels {
    pub(super) fn new(max_expires: u32, count: usize) -> Self {
        let len = max_expires.saturating_add(2).max(2);
        let wheels = (0..count.max(1).next_power_of_two())
            .map(|_| {
                RwLock::new(Wheel {
                    slots: (0..len).map(|_| EMPTY).collect(),
                    chunks: Vec::new(),
                    free: NIL,
                    next: None,
                    entries: 0,
                })
            })
            .collect::<Vec<_>>();
        let mask = wheels.len().saturating_sub(1);
        Self { wheels, mask, len }
    }

    /// Schedules a sweep of the AOR with table hash `hash` in partition `part` at `at`.
    pub(super) fn schedule(&self, part: usize, hash: u64, at: u32) {
        // Partitions are counted in u32 (the store's are a few hundred).
        let part = u32::try_from(part).unwrap_or(u32::MAX);
        let Some(wheel) = self.wheels.get(wheel_index(hash, self.mask)) else {
            return;
        };
        let mut w = wheel.write();
        // Written only when earlier (usually not: the AORs' expiries lie ahead of the sweep).
        if w.next.is_none_or(|n| at < n) {
            w.next = Some(at);
        }
        let slot = usize::try_from(at % self.len).unwrap_or(0);
        w.push(slot, part, hash, at);
    }

    /// Calls `f` with the partition and table hash of each entry due at or before `now`.
    pub(super) fn drain_due(&self, now: u32, mut f: impl FnMut(usize, u64)) {
        let mut due: Vec<(usize, u64)> = Vec::new();
        for wheel in &self.wheels {
            {
                let mut w = wheel.write();
                let Some(next) = w.next else { continue };
                if next > now {
                    continue;
                }
                // Sweep at most one full turn of the ring, however long ago `next` was.
                let turns = (now - next).min(self.len - 1);
                for s in (now - turns)..=now {
                    let slot = usize::try_from(s % self.len).unwrap_or(0);
                    w.sweep(slot, now, &mut due);
                }
                w.next = (w.entries > 0).then_some(now + 1);
            }
            for (part, hash) in due.drain(..) {
                f(part, hash);
            }
        }
    }

    /// Pending entries in all wheels.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.wheels.iter().map(|w| w.read().entries).sum()
    }

    /// The first second not swept yet, when anything is scheduled.
    pub(super) fn next_due(&self) -> Option<u32> {
        self.wheels.iter().filter_map(|w| w.read().next).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An AOR as the wheels name it: partition and table hash.
    type AorKey = (usize, u64);

    impl Wheels {
        fn schedule_aor(&self, aor: &AorKey, at: u32) {
            self.schedule(aor.0, aor.1, at);
        }

        fn drain_aors(&self, now: u32, mut f: impl FnMut(&AorKey)) {
            self.drain_due(now, |part, hash| f(&(part, hash)));
        }
    }

    /// The wheels as they were: a `Vec` per slot, swept with `retain`.
    struct Reference {
        slots: Vec<Vec<(AorKey, u32)>>,
        len: u32,
    }

    impl Reference {
        fn schedule(&mut self, aor: &AorKey, at: u32) {
            let slot = (at % self.len) as usize;
            self.slots[slot].push((*aor, at));
        }

        /// The AORs due at `now`, sweeping the slots `from..=now` (as `drain_due` does).
        fn drain(&mut self, from: u32, now: u32) -> Vec<AorKey> {
            let mut due = Vec::new();
            let turns = (now - from).min(self.len - 1);
            for s in (now - turns)..=now {
                self.slots[(s % self.len) as usize].retain(|(aor, at)| {
                    if *at <= now {
                        due.push(*aor);
                        false
                    } else {
                        true
                    }
                });
            }
            due
        }

        fn len(&self) -> usize {
            self.slots.iter().map(Vec::len).sum()
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Schedule AOR `n` this many seconds from now.
        Schedule(u8, u32),
        /// Advance the clock and sweep.
        Drain(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), 0..40u32).prop_map(|(n, d)| Op::Schedule(n, d)),
            1 => (0..30u32).prop_map(Op::Drain),
        ]
    }

    proptest! {
        /// One wheel on a short ring (entries a turn or more ahead share slots with due ones)
        /// answers every sweep with the AORs, in the order, that the per-slot `Vec`s gave, and
        /// keeps the same number of entries; chunks fill, empty and are reused on the way.
        #[test]
        fn linked_slots_sweep_like_vecs(ops in prop::collection::vec(op(), 0..1500)) {
            let wheels = Wheels::new(8, 1);
            let mut reference = Reference {
                slots: (0..wheels.len).map(|_| Vec::new()).collect(),
                len: wheels.len,
            };
            let aors: Vec<AorKey> = (0..=255u64).map(|n| ((n % 7) as usize, n.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
            let mut now = 1000u32;
            for op in ops {
                match op {
                    Op::Schedule(n, d) => {
                        let aor = &aors[usize::from(n)];
                        wheels.schedule_aor(aor, now + d);
                        reference.schedule(aor, now + d);
                    }
                    Op::Drain(d) => {
                        let next = wheels.next_due();
                        now += d;
                        let mut got = Vec::new();
                        wheels.drain_aors(now, |aor| got.push(*aor));
                        let want = match next {
                            Some(next) if next <= now => reference.drain(next, now),
                            _ => Vec::new(),
                        };
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(wheels.len(), reference.len());
            }
        }
    }

    /// Entries past a chunk boundary and entries reused from the free list keep their slots'
    /// order.
    #[test]
    fn chunks_fill_and_entries_are_reused() {
        let wheels = Wheels::new(10, 1);
        let aor = |n: usize| (n % 5, n as u64);
        for n in 0..CHUNK * 2 + 3 {
            wheels.schedule_aor(&aor(n), 100 + (n % 3) as u32);
        }
        assert_eq!(wheels.len(), CHUNK * 2 + 3);
        let mut got = Vec::new();
        wheels.drain_aors(100, |a| got.push(*a));
        let want: Vec<AorKey> = (0..CHUNK * 2 + 3).filter(|n| n % 3 == 0).map(aor).collect();
        assert_eq!(got, want);
        // The freed entries are used again before any new chunk.
        let chunks = wheels.wheels[0].read().chunks.len();
        for n in 0..want.len() {
            wheels.schedule_aor(&aor(1000 + n), 104);
        }
        assert_eq!(wheels.wheels[0].read().chunks.len(), chunks);
        got.clear();
        wheels.drain_aors(104, |a| got.push(*a));
        // Slots 101 and 102 in the order scheduled, then 104.
        let mut want: Vec<AorKey> = (0..CHUNK * 2 + 3).filter(|n| n % 3 == 1).map(aor).collect();
        want.extend((0..CHUNK * 2 + 3).filter(|n| n % 3 == 2).map(aor));
        want.extend(
            (0..CHUNK * 2 + 3)
                .filter(|n| n % 3 == 0)
                .enumerate()
                .map(|(k, _)| aor(1000 + k)),
        );
        assert_eq!(got, want);
        assert_eq!(wheels.len(), 0);
    }
}
