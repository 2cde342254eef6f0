//! What to do after a delivery attempt: done, retry when, or give up. Pure: the random draw and
//! the time are arguments.
//!
//! Success is any 2xx. Timeouts, connection errors, 408, 429 and 5xx (but 501) are retried on the
//! destination's schedule with ±20 % jitter; after a 429 or a timeout the next try waits at least a
//! minute, and a `Retry-After` answer is honoured between the scheduled delay and twice it (at
//! most a day). 410 Gone means the partner removed the endpoint: the destination is disabled.
//! Every other answer, redirects included (they are never followed), is final. After the last
//! scheduled retry a delivery is dead; a manual retry gets one attempt.

use std::time::Duration;

/// What an attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// An HTTP answer.
    Http {
        /// Status code.
        status: u16,
        /// `Retry-After`, when given and understood.
        retry_after: Option<Duration>,
    },
    /// No answer in time.
    Timeout,
    /// The connection could not be made or broke.
    Connection(String),
    /// The destination's address is private and not allowed, or the request could not be built:
    /// retrying cannot help.
    Refused(String),
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Delivered.
    Delivered,
    /// Try again at this time (unix ms).
    Retry {
        /// When.
        at_ms: i64,
    },
    /// Give up.
    Dead {
        /// Why.
        reason: String,
    },
    /// Give up and disable the destination.
    DisableDestination {
        /// Why.
        reason: String,
    },
}

/// Whether an attempt's failure says the partner is in trouble (it counts towards the circuit
/// breaker): no answer, a broken connection, 408, 429 or a 5xx. A 4xx is about the request and
/// says nothing of the partner's health.
#[must_use]
pub fn troubles_partner(result: &AttemptResult) -> bool {
    match result {
        AttemptResult::Timeout | AttemptResult::Connection(_) => true,
        AttemptResult::Http { status, .. } => *status == 408 || *status == 429 || *status >= 500,
        AttemptResult::Refused(_) => false,
    }
}

/// Longest wait a `Retry-After` can impose.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);
/// Least wait after a 429 or a timeout.
const OVERLOAD_FLOOR: Duration = Duration::from_secs(60);
/// Jitter: the delay is multiplied by a factor in [1 - JITTER, 1 + JITTER].
const JITTER: f64 = 0.2;

/// Decide after attempt number `attempt` (1 for the first).
///
/// `schedule` holds the delays before each retry, `random` is uniform in [0, 1).
#[must_use]
pub fn decide(
    result: &AttemptResult,
    attempt: u32,
    schedule: &[u64],
    manual: bool,
    random: f64,
    now_ms: i64,
) -> Decision {
    let (retryable, floor, retry_after, what) = match result {
        AttemptResult::Http { status, .. } if (200..300).contains(status) => {
            return Decision::Delivered;
        }
        AttemptResult::Http { status: 410, .. } => {
            return Decision::DisableDestination {
                reason: "the partner answered 410 Gone: the endpoint no longer exists".to_owned(),
            };
        }
        AttemptResult::Http { status, retry_after } => {
            let retryable = *status == 408 || *status == 429 || (*status >= 500 && *status != 501);
            let floor = if *status == 429 { OVERLOAD_FLOOR } else { Duration::ZERO };
            let what = if (300..400).contains(status) {
                format!("HTTP {status} (redirects are not followed)")
            } else {
                format!("HTTP {status}")
            };
            (retryable, floor, *retry_after, what)
        }
        AttemptResult::Timeout => (true, OVERLOAD_FLOOR, None, "timed out".to_owned()),
        AttemptResult::Connection(e) => {
            (true, Duration::ZERO, None, format!("connection failed: {e}"))
        }
        AttemptResult::Refused(e) => return Decision::Dead { reason: e.clone() },
    };
    if !retryable {
        return Decision::Dead { reason: format!("{what}: not retried") };
    }
    if manual {
        return Decision::Dead { reason: format!("{what}: manual attempt failed") };
    }
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    let Some(&base) = schedule.get(index) else {
        return Decision::Dead { reason: format!("{what}: gave up after {attempt} attempts") };
    };
    let base = Duration::from_secs(base);
    let jittered = base.mul_f64(1.0 - JITTER + 2.0 * JITTER * random.clamp(0.0, 1.0));
    let mut delay = jittered.max(floor);
    if let Some(asked) = retry_after {
        let ceiling = (base * 2).max(floor).min(RETRY_AFTER_MAX).max(base);
        delay = asked.clamp(base, ceiling).max(floor);
    }
    Decision::Retry { at_ms: now_ms + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2) }
}

/// Read a `Retry-After` value: delay seconds or an HTTP date (relative to `now`). A date in the
/// past means "now"; anything else unreadable is ignored.
#[must_use]
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().to_utc();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    const SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

    fn http(status: u16) -> AttemptResult {
        AttemptResult::Http { status, retry_after: None }
    }

    #[test]
    fn any_2xx_is_delivered() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(decide(&http(status), 1, &SCHEDULE, false, 0.5, 0), Decision::Delivered);
        }
    }

    #[test]
    fn retryable_failures_follow_the_schedule_without_jitter_at_the_midpoint() {
        for (attempt, secs) in SCHEDULE.iter().enumerate() {
            let attempt = u32::try_from(attempt).unwrap() + 1;
            assert_eq!(
                decide(&http(503), attempt, &SCHEDULE, false, 0.5, 1_000),
                Decision::Retry { at_ms: 1_000 + i64::try_from(*secs).unwrap() * 1000 },
                "attempt {attempt}"
            );
        }
        assert!(matches!(decide(&http(503), 8, &SCHEDULE, false, 0.5, 0), Decision::Dead { .. }));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let lowest = decide(&http(500), 2, &SCHEDULE, false, 0.0, 0);
        let highest = decide(&http(500), 2, &SCHEDULE, false, 0.999_999, 0);
        assert_eq!(lowest, Decision::Retry { at_ms: 240_000 });
        assert!(
            matches!(highest, Decision::Retry { at_ms } if (359_000..=360_000).contains(&at_ms))
        );
    }

    #[test]
    fn timeouts_and_429_wait_at_least_a_minute() {
        assert_eq!(
            decide(&AttemptResult::Timeout, 1, &SCHEDULE, false, 0.5, 0),
            Decision::Retry { at_ms: 60_000 }
        );
        assert_eq!(
            decide(&http(429), 1, &SCHEDULE, false, 0.5, 0),
            Decision::Retry { at_ms: 60_000 }
        );
        assert_eq!(
            decide(&http(502), 1, &SCHEDULE, false, 0.5, 0),
            Decision::Retry { at_ms: 5_000 }
        );
    }

    #[test]
    fn retry_after_is_honoured_within_the_scheduled_delay_and_twice_it() {
        let asked = |secs| AttemptResult::Http {
            status: 503,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            decide(&asked(400), 2, &SCHEDULE, false, 0.5, 0),
            Decision::Retry { at_ms: 400_000 }
        );
        assert_eq!(
            decide(&asked(10), 2, &SCHEDULE, false, 0.5, 0),
            Decision::Retry { at_ms: 300_000 }
        );
        assert_eq!(
            decide(&asked(99_999), 2, &SCHEDULE, false, 0.5, 0),
            Decision::Retry { at_ms: 600_000 }
        );
    }

    #[test]
    fn other_4xx_and_redirects_are_final_and_410_disables() {
        for status in [400, 401, 403, 404, 422, 301, 302, 501] {
            assert!(
                matches!(decide(&http(status), 1, &SCHEDULE, false, 0.5, 0), Decision::Dead { .. }),
                "{status}"
            );
        }
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(
                    decide(&http(status), 1, &SCHEDULE, false, 0.5, 0),
                    Decision::Retry { .. }
                ),
                "{status}"
            );
        }
        assert!(matches!(
            decide(&http(410), 1, &SCHEDULE, false, 0.5, 0),
            Decision::DisableDestination { .. }
        ));
        assert!(matches!(
            decide(&AttemptResult::Refused("x".into()), 1, &SCHEDULE, false, 0.5, 0),
            Decision::Dead { .. }
        ));
    }

    #[test]
    fn a_manual_attempt_is_not_retried_and_an_empty_schedule_gives_one_try() {
        assert!(matches!(decide(&http(503), 1, &SCHEDULE, true, 0.5, 0), Decision::Dead { .. }));
        assert!(matches!(decide(&http(503), 1, &[], false, 0.5, 0), Decision::Dead { .. }));
    }

    proptest::proptest! {
        #[test]
        fn retries_are_always_in_the_future_and_bounded(
            status in 100u16..600, attempt in 1u32..30, random in 0.0f64..1.0, retry_after in proptest::option::of(0u64..10_000_000),
        ) {
            let result = AttemptResult::Http { status, retry_after: retry_after.map(Duration::from_secs) };
            if let Decision::Retry { at_ms } = decide(&result, attempt, &SCHEDULE, false, random, 1_000_000) {
                proptest::prop_assert!(at_ms > 1_000_000 || SCHEDULE[usize::try_from(attempt).unwrap() - 1] == 0);
                proptest::prop_assert!(at_ms <= 1_000_000 + 2 * 36_000_000 + 1);
            }
        }
    }
}
