//! When did the install happen? An interval estimated from when the postback arrived.
//!
//! Apple never says when the install was. It sends a postback after the conversion window closes
//! plus a random delay, so the install lies in an interval before the arrival (SPEC.md §3.3):
//!
//! | postback | window closes after first launch | then sent after | install lies in |
//! |---|---|---|---|
//! | 4.0 / AdAttributionKit window 0 | 0-48 h (48 h, earlier if locked) | 24-48 h | [arrival − 96 h, arrival − 24 h] |
//! | window 1 | 48-168 h (days 3-7) | 24-144 h | [arrival − 312 h, arrival − 72 h] |
//! | window 2 | 168-840 h (days 8-35) | 24-144 h | [arrival − 984 h, arrival − 192 h] |
//! | 1.0-3.0 (one postback) | 24 h timer after the last value update, assumed within 24 h of install | 0-24 h | [arrival − 72 h, arrival − 24 h] |
//!
//! The interval's midpoint is the point estimate, and its UTC day the *estimated install day*
//! reports group by. (AppsFlyer's published formula, arrival − 48 h − 36 h for window 0, assumes
//! no lock; this interval also covers locked windows, so its midpoint is 24 h later.) First launch
//! is taken as the install time.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// The estimated install interval of a postback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallEstimate {
    /// Earliest possible install.
    pub from: DateTime<Utc>,
    /// Latest possible install.
    pub to: DateTime<Utc>,
}

impl InstallEstimate {
    /// The midpoint of the interval.
    #[must_use]
    pub fn midpoint(&self) -> DateTime<Utc> {
        self.from + (self.to - self.from) / 2
    }

    /// The UTC day of the midpoint.
    #[must_use]
    pub fn day(&self) -> NaiveDate {
        self.midpoint().date_naive()
    }
}

/// Estimate the install interval from the arrival time and the window.
///
/// `multi_window` is true for SKAdNetwork 4.0 and AdAttributionKit (three windows), false for
/// earlier versions (one postback, 24-hour timer).
#[must_use]
pub fn estimate_install(arrival: DateTime<Utc>, window: u8, multi_window: bool) -> InstallEstimate {
    let (earliest_before, latest_before) = match (multi_window, window) {
        (false, _) => (72, 24),
        (true, 0) => (48 + 48, 24),
        (true, 1) => (168 + 144, 48 + 24),
        (true, _) => (840 + 144, 168 + 24),
    };
    InstallEstimate {
        from: arrival - Duration::hours(earliest_before),
        to: arrival - Duration::hours(latest_before),
    }
}

/// Days since 1970-01-01 of a UTC date, the integer form dates are stored and grouped in.
#[must_use]
pub fn day_number(day: NaiveDate) -> i64 {
    (day - NaiveDate::default()).num_days()
}

/// The UTC date of a day number.
#[must_use]
pub fn day_from_number(days: i64) -> NaiveDate {
    NaiveDate::default() + Duration::days(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn window_zero_installs_lie_one_to_four_days_before_arrival() {
        let e = estimate_install(at("2026-11-10T12:00:00Z"), 0, true);
        assert_eq!(e.from, at("2026-11-06T12:00:00Z"));
        assert_eq!(e.to, at("2026-11-09T12:00:00Z"));
        assert_eq!(e.midpoint(), at("2026-11-08T00:00:00Z"));
        assert_eq!(e.day(), NaiveDate::from_ymd_opt(2026, 11, 8).unwrap());
    }

    #[test]
    fn later_windows_reach_further_back() {
        let arrival = at("2026-11-30T00:00:00Z");
        let w1 = estimate_install(arrival, 1, true);
        let w2 = estimate_install(arrival, 2, true);
        assert_eq!((arrival - w1.to).num_hours(), 72);
        assert_eq!((arrival - w1.from).num_hours(), 312);
        assert_eq!((arrival - w2.to).num_hours(), 192);
        assert_eq!((arrival - w2.from).num_hours(), 984);
        assert!(w2.midpoint() < w1.midpoint());
    }

    #[test]
    fn single_postback_versions_use_the_timer_rule() {
        let e = estimate_install(at("2026-11-10T00:00:00Z"), 0, false);
        assert_eq!((e.to - e.from).num_hours(), 48);
        assert_eq!(e.midpoint(), at("2026-11-08T00:00:00Z"));
    }

    #[test]
    fn day_numbers_round_trip() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(day_from_number(day_number(day)), day);
        assert_eq!(day_number(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
    }
}
