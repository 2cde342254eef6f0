//! Routing rules: which postbacks a destination receives and how fast its deliveries may go.
//! Written by users as part of a destination; read by the store when it writes deliveries in a
//! postback's transaction and when it claims them. Pure.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which postbacks a destination receives. Empty lists mean "any".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
#[schema(as = Filters)]
pub struct DestinationFilters {
    /// App Store IDs.
    #[serde(default)]
    pub apps: Vec<i64>,
    /// Ad network IDs.
    #[serde(default)]
    pub ad_networks: Vec<String>,
    /// Conversion windows.
    #[serde(default)]
    pub windows: Vec<i64>,
    /// `skadnetwork` / `adattributionkit`.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Also forward invalid and unverifiable postbacks (default: valid only).
    #[serde(default)]
    pub include_invalid: bool,
    /// Only winning postbacks.
    #[serde(default)]
    pub winning_only: bool,
    /// Also forward postbacks verified with development keys (default: not).
    #[serde(default)]
    pub include_development: bool,
    /// Only postbacks whose value decodes to one of these events (checked when sending, with
    /// the schema in effect then; others are marked `skipped`).
    #[serde(default)]
    pub events: Vec<String>,
    /// An alert destination: it gets the anomalies data-quality monitoring finds (for the apps
    /// and ad networks of the two filters above), and no postbacks.
    #[serde(default)]
    pub alerts: bool,
}

/// What the write-time filters look at in a postback.
#[derive(Debug, Clone, Copy)]
pub struct PostbackFacts<'a> {
    /// Advertised app.
    pub app_id: i64,
    /// Ad network.
    pub ad_network_id: &'a str,
    /// Conversion window.
    pub window: i64,
    /// `skadnetwork` / `adattributionkit`.
    pub protocol: &'a str,
    /// `valid`, `invalid` or `unverifiable`.
    pub outcome: &'a str,
    /// Winning attribution.
    pub did_win: bool,
    /// Verified with a development key.
    pub development: bool,
}

impl DestinationFilters {
    /// Whether a postback gets a delivery to this destination. Every filter but `events` is
    /// decided here, when the postback is stored; `events` needs the schema and is decided when
    /// sending.
    #[must_use]
    pub fn admits(&self, p: &PostbackFacts<'_>) -> bool {
        !self.alerts
            && (self.apps.is_empty() || self.apps.contains(&p.app_id))
            && (self.ad_networks.is_empty()
                || self.ad_networks.iter().any(|n| n == p.ad_network_id))
            && (self.windows.is_empty() || self.windows.contains(&p.window))
            && (self.protocols.is_empty() || self.protocols.iter().any(|n| n == p.protocol))
            && (self.include_invalid || p.outcome == "valid")
            && (!self.winning_only || p.did_win)
            && (self.include_development || !p.development)
    }

    /// Whether an anomaly of this app and network gets an alert delivery to this destination.
    #[must_use]
    pub fn admits_anomaly(&self, app_id: i64, ad_network_id: &str) -> bool {
        self.alerts
            && (self.apps.is_empty() || self.apps.contains(&app_id))
            && (self.ad_networks.is_empty() || self.ad_networks.iter().any(|n| n == ad_network_id))
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may go at once after a quiet period.
    #[serde(default = "default_burst")]
    pub burst: f64,
}

fn default_burst() -> f64 {
    1.0
}

/// Per-attempt timeout when a destination sets none, in milliseconds.
#[must_use]
pub fn default_timeout_ms() -> u64 {
    10_000
}

/// Requests in flight at once when a destination sets no limit.
#[must_use]
pub fn default_concurrency() -> u32 {
    4
}

/// The part of a stored destination document the store acts on; the rest (templates, signing,
/// retries) belongs to the dispatcher. Unknown keys are ignored: this is a view of the document.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeliveryRules {
    /// Which postbacks get a delivery.
    #[serde(default)]
    pub filters: DestinationFilters,
    /// Requests per second, if limited.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Requests in flight at once, across every receiver.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    /// Per-attempt timeout in milliseconds (a claim's lease outlives it).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// What a token bucket allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenGrant {
    /// Requests that may start now.
    pub room: i64,
    /// Tokens (in thousandths) in the bucket now, before spending.
    pub available_milli: i64,
    /// When nothing may start because of the rate: milliseconds until the next token.
    pub wait_ms: Option<i64>,
}

impl RateLimit {
    /// Refill a bucket that held `tokens_milli` thousandths of a token at `tokens_at_ms` up to
    /// `now_ms`, and say how many of `room` requests (the concurrency room left) may start.
    #[must_use]
    pub fn take(&self, tokens_milli: i64, tokens_at_ms: i64, now_ms: i64, room: i64) -> TokenGrant {
        let per_ms = self.per_second / 1000.0;
        let burst_milli = (self.burst * 1000.0).round() as i64;
        let elapsed = (now_ms - tokens_at_ms).max(0) as f64;
        let refilled = (tokens_milli as f64 + elapsed * per_ms * 1000.0).min(burst_milli as f64);
        let available_milli = refilled as i64;
        let room = room.min(available_milli / 1000);
        let wait_ms = (room == 0 && available_milli < 1000 && per_ms > 0.0)
            .then(|| (((1000 - available_milli) as f64) / (per_ms * 1000.0)).ceil() as i64);
        TokenGrant { room, available_milli, wait_ms }
    }
}

/// Whether a destination failing continuously since `failing_since_ms` has failed for too long
/// at `now_ms` (`disable_after_ms`: the destination's limit; `None` or 0: never), and the reason
/// it is then disabled with.
#[must_use]
pub fn failing_too_long(
    failing_since_ms: i64,
    now_ms: i64,
    disable_after_ms: Option<i64>,
) -> Option<String> {
    let after = disable_after_ms.filter(|ms| *ms > 0)?;
    (now_ms - failing_since_ms >= after).then(|| {
        format!(
            "every attempt failed for {} minutes (since {}); disabled after {} minutes",
            (now_ms - failing_since_ms) / 60_000,
            chrono::DateTime::from_timestamp_millis(failing_since_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            after / 60_000,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_destination_gets_anomalies_of_its_apps_and_networks_and_no_postbacks() {
        let facts = PostbackFacts {
            app_id: 1,
            ad_network_id: "net.a",
            window: 0,
            protocol: "skadnetwork",
            outcome: "valid",
            did_win: true,
            development: false,
        };
        let postbacks = DestinationFilters::default();
        assert!(postbacks.admits(&facts));
        assert!(!postbacks.admits_anomaly(1, "net.a"));
        let alerts = DestinationFilters {
            alerts: true,
            apps: vec![1],
            ad_networks: vec!["net.a".to_owned()],
            ..DestinationFilters::default()
        };
        assert!(!alerts.admits(&facts));
        assert!(alerts.admits_anomaly(1, "net.a"));
        assert!(!alerts.admits_anomaly(2, "net.a"));
        assert!(!alerts.admits_anomaly(1, "net.b"));
    }

    #[test]
    fn a_run_of_failures_disables_only_once_it_is_long_enough() {
        let hour = 3_600_000;
        assert_eq!(failing_too_long(0, hour - 1, Some(hour)), None);
        let reason = failing_too_long(0, hour, Some(hour)).unwrap();
        assert!(
            reason.contains("failed for 60 minutes") && reason.contains("after 60 minutes"),
            "{reason}"
        );
        assert_eq!(failing_too_long(0, 100 * hour, Some(0)), None, "0 means never");
        assert_eq!(failing_too_long(0, 100 * hour, None), None);
    }

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst_and_says_when_the_next_token_comes() {
        let limit = RateLimit { per_second: 2.0, burst: 3.0 };
        // Empty at t=0: nothing now, the next token in 500 ms.
        assert_eq!(
            limit.take(0, 0, 0, 4),
            TokenGrant { room: 0, available_milli: 0, wait_ms: Some(500) }
        );
        // 1.25 s later: 2.5 tokens, two requests may go.
        assert_eq!(
            limit.take(0, 0, 1250, 4),
            TokenGrant { room: 2, available_milli: 2500, wait_ms: None }
        );
        // Long idle: capped at the burst; the concurrency room still bounds.
        assert_eq!(limit.take(0, 0, 60_000, 2).room, 2);
        assert_eq!(limit.take(0, 0, 60_000, 9).available_milli, 3000);
    }
}
