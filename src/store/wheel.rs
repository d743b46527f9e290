//! Expiry timer wheels: one-second slots in a ring covering the longest binding lifetime.
//!
//! Scheduling an expiry pushes `(aor, at)` into slot `at % len`. The store keeps about one entry
//! per AOR, at or before its earliest expiry: a refresh pushes nothing (the old entry fires
//! first, finds nothing expired and reschedules at the AOR's new earliest expiry), so the
//! wheel's size follows the number of AORs, not the refresh rate. Several wheels (picked by AOR
//! hash) keep the locks uncontended. Sweeping never holds a wheel lock while it touches the
//! map. The locks are the map's own kind (`dashmap::RwLock`, parking): no poisoning to
//! check on each lock and unlock.

use dashmap::RwLock;

use super::{aor_hash, wheel_index, AorKey};

struct Wheel {
    slots: Vec<Vec<(AorKey, u32)>>,
    /// First second not swept yet; `None` until something is scheduled.
    next: Option<u32>,
    entries: usize,
}

pub(super) struct Wheels {
    wheels: Vec<RwLock<Wheel>>,
    len: u32,
}

impl Wheels {
    pub(super) fn new(max_expires: u32, count: usize) -> Self {
        let len = max_expires.saturating_add(2).max(2);
        let wheels = (0..count.max(1))
            .map(|_| {
                RwLock::new(Wheel {
                    slots: (0..len).map(|_| Vec::new()).collect(),
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
        let Some(wheel) = self.wheels.get(wheel_index(hash, self.wheels.len())) else {
            return;
        };
        let mut w = wheel.write();
        w.next = Some(w.next.map_or(at, |n| n.min(at)));
        let slot = usize::try_from(at % self.len).unwrap_or(0);
        if let Some(s) = w.slots.get_mut(slot) {
            s.push((aor, at));
            w.entries += 1;
        }
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
                    let Some(entries) = w.slots.get_mut(slot) else {
                        continue;
                    };
                    let before = entries.len();
                    entries.retain(|(aor, at)| {
                        if *at <= now {
                            due.push(aor.clone());
                            false
                        } else {
                            true
                        }
                    });
                    let removed = before - entries.len();
                    w.entries -= removed;
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
