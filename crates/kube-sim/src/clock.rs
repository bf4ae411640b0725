//! The simulated clock: every timestamp kube-sim writes comes from here, so tests can replay months of backups.
//!
//! The clock runs at real speed from a settable origin; `set` and `advance` move the origin.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

/// Shared handle to the simulated clock; cheap to clone.
#[derive(Clone, Debug)]
pub struct SimClock {
    inner: Arc<Mutex<Origin>>,
}

#[derive(Debug)]
struct Origin {
    sim: DateTime<Utc>,
    real: Instant,
}

impl SimClock {
    /// A clock that starts at `start` (or at the real time when `None`).
    pub fn new(start: Option<DateTime<Utc>>) -> Self {
        let sim = start.unwrap_or_else(Utc::now);
        SimClock {
            inner: Arc::new(Mutex::new(Origin {
                sim,
                real: Instant::now(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Origin> {
        // A poisoned clock still holds a valid origin; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current simulated time.
    pub fn now(&self) -> DateTime<Utc> {
        let o = self.lock();
        let elapsed =
            chrono::Duration::from_std(o.real.elapsed()).unwrap_or(chrono::Duration::zero());
        o.sim + elapsed
    }

    /// Jump to `at`; the clock keeps running from there.
    pub fn set(&self, at: DateTime<Utc>) {
        let mut o = self.lock();
        o.sim = at;
        o.real = Instant::now();
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let now = self.now();
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
        self.set(now + by);
    }

    /// RFC 3339 with second precision and `Z`, as Kubernetes writes metav1.Time.
    pub fn now_rfc3339(&self) -> String {
        self.now().to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// RFC 3339 with microseconds, as Kubernetes writes metav1.MicroTime (events.k8s.io eventTime).
    pub fn now_micro(&self) -> String {
        self.now().to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_then_advance_moves_the_simulated_time() {
        let start: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().expect("valid time");
        let c = SimClock::new(Some(start));
        assert!(c.now() >= start && c.now() < start + chrono::Duration::seconds(5));
        c.advance(Duration::from_secs(86_400));
        assert_eq!(c.now_rfc3339()[..10], *"2025-01-02");
        let later: DateTime<Utc> = "2026-03-04T05:06:07Z".parse().expect("valid time");
        c.set(later);
        assert_eq!(&c.now_rfc3339()[..16], "2026-03-04T05:06");
    }
}
