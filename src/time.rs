//! Time as the sans-IO core sees it: a value passed in by the caller, never read from a clock.
//!
//! [`Instant`] counts milliseconds since the Unix epoch. Wall-clock based (rather than monotonic)
//! because the same values are used for digest nonce timestamps shared between nodes and for
//! binding expiry that must survive a restart. The runtime produces it from the system clock;
//! tests fabricate it.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time: milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The Unix epoch.
    pub const ZERO: Self = Self(0);

    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// From whole seconds since the Unix epoch.
    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (truncated).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl Sub<Duration> for Instant {
    type Output = Self;
    fn sub(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({}.{:03}s)", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(10);
        assert_eq!((t + Duration::from_millis(1500)).as_millis(), 11_500);
        assert_eq!((t - Duration::from_secs(20)), Instant::ZERO);
        assert_eq!(t.saturating_since(Instant::from_secs(12)), Duration::ZERO);
        assert_eq!(
            Instant::from_secs(12).saturating_since(t),
            Duration::from_secs(2)
        );
        assert_eq!(Instant::from_secs(u64::MAX).as_millis(), u64::MAX);
    }
}
