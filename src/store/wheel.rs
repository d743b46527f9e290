//! Expiry timer wheels: one-second slots in a ring covering the longest binding lifetime.
//!
//! Scheduling an expiry appends `(aor, at)` to slot `at % len`. The store keeps about one entry
//! per AOR, at or before its earliest expiry: a refresh pushes nothing (the old entry fires
//! first, finds nothing expired and reschedules at the AOR's new earliest expiry), so the
//! wheel's size follows the number of AORs, not the refresh rate. Several wheels (picked by AOR
//! hash) keep the locks uncontended. Sweeping never holds a wheel lock while it touches the
//! map. The locks are the map's own kind (`dashmap::RwLock`, parking): no poisoning to
//! check on each lock and unlock.
//!
//! A slot is a list of entries linked by index, first to last (the order they were
//! scheduled in). The entries live in chunks of [`CHUNK`] that never move; a swept entry goes
//! to a free list and is reused by the next one scheduled. So a slot costs 8 bytes (a `Vec`
//! per slot cost 24 plus its slack), scheduling allocates only when no entry is free (one
//! chunk per [`CHUNK`] entries while the wheel grows, never in steady state), and growth never
//! copies the entries already scheduled.

use dashmap::RwLock;

use super::{aor_hash, wheel_index, AorKey};

/// Entries per chunk (24 bytes each).
const CHUNK: usize = 256;

/// No entry (an empty slot, the end of a list).
const NIL: u32 = u32::MAX;

struct Entry {
    /// `None` while on the free list.
    aor: Option<AorKey>,
    at: u32,
    /// The next entry of its slot (or of the free list).
    next: u32,
}

/// A slot's list: its first and last entry, [`NIL`] when empty.
#[derive(Clone, Copy)]
struct Slot {
    first: u32,
    last: u32,
}

const EMPTY: Slot = Slot {
    first: NIL,
    last: NIL,
};

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
        // Entry `first + k` links to the next one; the last one to the old free list.
        let chunk: Box<[Entry]> = (first + 1..first + CHUNK)
            .map(|n| u32::try_from(n).unwrap_or(NIL))
            .chain([self.free])
            .map(|next| Entry {
                aor: None,
                at: 0,
                next,
            })
            .collect();
        // CHUNK entries: the conversion always succeeds.
        let Ok(chunk) = chunk.try_into() else {
            return;
        };
        self.chunks.push(chunk);
        self.free = end - u32::try_from(CHUNK).unwrap_or(0);
    }

    /// Appends `(aor, at)` to slot `slot`.
    fn push(&mut self, slot: usize, aor: AorKey, at: u32) {
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
            aor: Some(aor),
            at,
            next: NIL,
        };
        let last = std::mem::replace(&mut s.last, i);
        match entry(&mut self.chunks, last) {
            Some(prev) => prev.next = i,
            None => s.first = i,
        }
        self.entries += 1;
    }

    /// Moves the AORs of slot `slot`'s entries due at `now` into `due` (in the slot's order)
    /// and frees those entries; the others stay, in order.
    fn sweep(&mut self, slot: usize, now: u32, due: &mut Vec<AorKey>) {
        let Some(&Slot { first, .. }) = self.slots.get(slot) else {
            return;
        };
        let mut kept = EMPTY;
        let mut at = first;
        while let Some(e) = entry(&mut self.chunks, at) {
            let i = at;
            at = e.next;
            if e.at <= now {
                due.extend(e.aor.take());
                e.next = self.free;
                self.free = i;
                self.entries -= 1;
                continue;
            }
            e.next = NIL;
            match entry(&mut self.chunks, kept.last) {
                Some(prev) => prev.next = i,
                None => kept.first = i,
            }
            kept.last = i;
        }
        if let Some(s) = self.slots.get_mut(slot) {
            *s = kept;
        }
    }
}

pub(super) struct Wheels {
    /// A power of two of them (an AOR's wheel is picked by masking its hash).
    wheels: Vec<RwLock<Wheel>>,
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
            .collect();
        Self { wheels, len }
    }

    pub(super) fn schedule(&self, aor: &AorKey, at: u32) {
        self.schedule_hashed(aor.clone(), aor_hash(aor.as_bytes()), at);
    }

    /// [`Wheels::schedule`] with the AOR's [`aor_hash`] already at hand.
    pub(super) fn schedule_hashed(&self, aor: AorKey, hash: u64, at: u32) {
        let Some(wheel) = self
            .wheels
            .get(wheel_index(hash, self.wheels.len().saturating_sub(1)))
        else {
            return;
        };
        let mut w = wheel.write();
        w.next = Some(w.next.map_or(at, |n| n.min(at)));
        let slot = usize::try_from(at % self.len).unwrap_or(0);
        w.push(slot, aor, at);
    }

    /// Calls `f` for each AOR with an entry due at or before `now`.
    pub(super) fn drain_due(&self, now: u32, mut f: impl FnMut(&AorKey)) {
        let mut due: Vec<AorKey> = Vec::new();
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
            for aor in due.drain(..) {
                f(&aor);
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

    /// The wheels as they were: a `Vec` per slot, swept with `retain`.
    struct Reference {
        slots: Vec<Vec<(AorKey, u32)>>,
        len: u32,
    }

    impl Reference {
        fn schedule(&mut self, aor: &AorKey, at: u32) {
            let slot = (at % self.len) as usize;
            self.slots[slot].push((aor.clone(), at));
        }

        /// The AORs due at `now`, sweeping the slots `from..=now` (as `drain_due` does).
        fn drain(&mut self, from: u32, now: u32) -> Vec<AorKey> {
            let mut due = Vec::new();
            let turns = (now - from).min(self.len - 1);
            for s in (now - turns)..=now {
                self.slots[(s % self.len) as usize].retain(|(aor, at)| {
                    if *at <= now {
                        due.push(aor.clone());
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
            let aors: Vec<AorKey> = (0..=255).map(|n| AorKey::new(&format!("sip:{n}@x"))).collect();
            let mut now = 1000u32;
            for op in ops {
                match op {
                    Op::Schedule(n, d) => {
                        let aor = &aors[usize::from(n)];
                        wheels.schedule(aor, now + d);
                        reference.schedule(aor, now + d);
                    }
                    Op::Drain(d) => {
                        let next = wheels.next_due();
                        now += d;
                        let mut got = Vec::new();
                        wheels.drain_due(now, |aor| got.push(aor.clone()));
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
        let aor = |n: usize| AorKey::new(&format!("sip:{n}@x"));
        for n in 0..CHUNK * 2 + 3 {
            wheels.schedule(&aor(n), 100 + (n % 3) as u32);
        }
        assert_eq!(wheels.len(), CHUNK * 2 + 3);
        let mut got = Vec::new();
        wheels.drain_due(100, |a| got.push(a.clone()));
        let want: Vec<AorKey> = (0..CHUNK * 2 + 3).filter(|n| n % 3 == 0).map(aor).collect();
        assert_eq!(got, want);
        // The freed entries are used again before any new chunk.
        let chunks = wheels.wheels[0].read().chunks.len();
        for n in 0..want.len() {
            wheels.schedule(&aor(1000 + n), 104);
        }
        assert_eq!(wheels.wheels[0].read().chunks.len(), chunks);
        got.clear();
        wheels.drain_due(104, |a| got.push(a.clone()));
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
