//! A circuit breaker per destination, so a partner that keeps failing is left alone for a while
//! instead of tying up workers. Pure state machine; time is an argument.
//!
//! Closed: send. After 5 failures in a row it opens for 30 s, doubling on each reopening up to
//! 10 min. When the pause is over one request probes (half-open): success closes it, failure
//! reopens it. While open, deliveries simply wait; nothing is lost.

/// Failures in a row that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 5;
const FIRST_PAUSE_MS: i64 = 30_000;
const LONGEST_PAUSE_MS: i64 = 600_000;

/// One destination's breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaker {
    failures: u32,
    open_until_ms: Option<i64>,
    /// When it last opened: requests started before then were already in flight and their
    /// failures say nothing new.
    opened_at_ms: Option<i64>,
    reopenings: u32,
    probing: bool,
}

impl Breaker {
    /// How many requests may start now: unlimited (`None`) when closed, 1 for a probe, 0 while
    /// open or while a probe is out.
    #[must_use]
    pub fn allowance(&self, now_ms: i64) -> Option<u32> {
        match self.open_until_ms {
            None => None,
            Some(until) if now_ms < until => Some(0),
            Some(_) if self.probing => Some(0),
            Some(_) => Some(1),
        }
    }

    /// A probe has been sent.
    pub fn probe_started(&mut self) {
        if self.open_until_ms.is_some() {
            self.probing = true;
        }
    }

    /// An attempt succeeded.
    pub fn success(&mut self) {
        *self = Self::default();
    }

    /// An attempt started at `started_at_ms` failed at `now_ms`. While open, only the probe's
    /// result counts: requests that were already in flight when the breaker opened finish later,
    /// and their failures neither reopen it nor lengthen the pause.
    pub fn failure(&mut self, started_at_ms: i64, now_ms: i64) {
        if self.opened_at_ms.is_some_and(|opened| started_at_ms <= opened) {
            return;
        }
        self.failures += 1;
        self.probing = false;
        if self.open_until_ms.is_some() || self.failures >= FAILURES_TO_OPEN {
            let pause = (FIRST_PAUSE_MS << self.reopenings.min(5)).min(LONGEST_PAUSE_MS);
            self.open_until_ms = Some(now_ms + pause);
            self.opened_at_ms = Some(now_ms);
            self.reopenings += 1;
        }
    }

    /// Whether it is open (sending paused or probing).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.open_until_ms.is_some()
    }

    /// `closed`, `open` or `probing`, as shown to operators.
    #[must_use]
    pub fn state_name(&self) -> &'static str {
        match (self.open_until_ms, self.probing) {
            (None, _) => "closed",
            (Some(_), true) => "probing",
            (Some(_), false) => "open",
        }
    }

    /// While open, when the pause ends (unix ms).
    #[must_use]
    pub fn open_until_ms(&self) -> Option<i64> {
        self.open_until_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_five_failures_probes_and_backs_off() {
        let mut b = Breaker::default();
        for i in 0..4 {
            b.failure(i, i);
            assert_eq!(b.allowance(i), None, "still closed");
        }
        b.failure(10, 10);
        assert_eq!(b.allowance(11), Some(0));
        assert_eq!(b.allowance(10 + 30_000), Some(1), "probe after 30 s");
        b.probe_started();
        assert_eq!(b.allowance(10 + 30_001), Some(0), "one probe at a time");
        b.failure(30_010, 40_000);
        assert_eq!(b.allowance(40_000 + 59_999), Some(0), "reopened for 60 s");
        assert_eq!(b.allowance(40_000 + 60_000), Some(1));
        b.success();
        assert_eq!(b.allowance(40_000 + 60_001), None);
        assert!(!b.is_open());
    }

    #[test]
    fn failures_of_requests_in_flight_when_it_opened_do_not_reopen_it() {
        // A partner failing everything at concurrency 4: 8 requests started together at 0.
        let mut b = Breaker::default();
        for i in 0..8 {
            b.failure(0, 100 + i);
        }
        assert_eq!(b.open_until_ms(), Some(104 + 30_000), "opened once, by the fifth failure");
        // Three more from the same wave finish during the pause: ignored.
        for i in 0..3 {
            b.failure(50, 200 + i);
        }
        assert_eq!(b.open_until_ms(), Some(104 + 30_000));
        assert_eq!(b.allowance(104 + 30_000), Some(1), "one probe after the documented 30 s");
        b.probe_started();
        b.failure(104 + 30_000, 104 + 30_500);
        assert_eq!(
            b.open_until_ms(),
            Some(104 + 30_500 + 60_000),
            "the probe's failure doubles it once"
        );
    }

    #[test]
    fn the_pause_never_exceeds_ten_minutes() {
        let mut b = Breaker::default();
        let mut now = 0;
        for _ in 0..20 {
            b.failure(now, now);
            now += 1;
        }
        assert_eq!(b.allowance(now + 600_000), Some(1));
    }
}
