//! The macro values of one delivery: the stored postback, its decoding and the delivery, or the
//! anomaly of an alert. Pure.

use base64::Engine as _;
use chrono::DateTime;

use super::template::{MacroValue, Values};
use crate::domain::quality::{Metric, console_path};
use crate::schema::{DecodeStatus, Decoded};
use crate::skan::day_from_number;
use crate::store::{StoredAnomaly, StoredPostback};

/// Everything an alert template may use for one anomaly; `console_url` is where the console is
/// served (`https://receiver.example`), for the link.
#[must_use]
pub fn alert_values(anomaly: &StoredAnomaly, delivery_key: &str, console_url: &str) -> Values {
    let day = |n: i64| MacroValue::Str(day_from_number(n).to_string());
    let metric = Metric::from_name(&anomaly.metric);
    let label: &str = match metric {
        Some(m) => m.label(),
        None => &anomaly.metric,
    };
    let show = |x: f64| metric.map_or_else(|| format!("{x:.3}"), |m| m.show(x));
    let mut v = Values::new();
    v.insert("anomaly_id", MacroValue::Int(anomaly.id));
    v.insert("delivery_id", MacroValue::Str(delivery_key.to_owned()));
    v.insert("app_id", MacroValue::Int(anomaly.app_id));
    v.insert("ad_network_id", MacroValue::Str(anomaly.ad_network_id.clone()));
    v.insert("metric", MacroValue::Str(anomaly.metric.clone()));
    v.insert("metric_label", MacroValue::Str(label.to_owned()));
    v.insert("day", day(anomaly.day));
    v.insert("expected", MacroValue::Float(anomaly.expected));
    v.insert("expected_low", MacroValue::Float(anomaly.expected_low));
    v.insert("expected_high", MacroValue::Float(anomaly.expected_high));
    v.insert("observed", MacroValue::Float(anomaly.observed));
    v.insert("score", MacroValue::Float(anomaly.score));
    v.insert("baseline_from", day(anomaly.baseline_from));
    v.insert("baseline_to", day(anomaly.baseline_to));
    v.insert("baseline_days", MacroValue::Int(anomaly.baseline_days));
    v.insert("partial_day", MacroValue::Bool(anomaly.partial_day));
    if let Some(at) = DateTime::from_timestamp_millis(anomaly.detected_at) {
        v.insert("detected_at", MacroValue::Time(at));
    }
    let day_text = day_from_number(anomaly.day);
    v.insert(
        "summary",
        MacroValue::Str(format!(
            "App {app}, {network}: {label} was {observed} on {day_text}{so_far}; usually \
             {low} to {high} (expected {expected}, from {days} days since {from}).",
            app = anomaly.app_id,
            network = anomaly.ad_network_id,
            observed = show(anomaly.observed),
            so_far = if anomaly.partial_day { " so far" } else { "" },
            low = show(anomaly.expected_low),
            high = show(anomaly.expected_high),
            expected = show(anomaly.expected),
            days = anomaly.baseline_days,
            from = day_from_number(anomaly.baseline_from),
        )),
    );
    v.insert(
        "link",
        MacroValue::Str(format!(
            "{}{}",
            console_url.trim_end_matches('/'),
            console_path(anomaly.app_id, day_text)
        )),
    );
    v
}

/// Everything a template may use for one delivery.
#[must_use]
pub fn values(
    postback: &StoredPostback,
    decoded: Option<&Decoded>,
    delivery_key: &str,
    raw: &[u8],
) -> Values {
    let mut v = Values::new();
    let mut put = |name: &'static str, value: Option<MacroValue>| {
        if let Some(value) = value {
            v.insert(name, value);
        }
    };
    let text = |s: &str| Some(MacroValue::Str(s.to_owned()));
    let opt_text = |s: &Option<String>| s.as_deref().map(|s| MacroValue::Str(s.to_owned()));
    let time = |ms: i64| DateTime::from_timestamp_millis(ms).map(MacroValue::Time);
    put("postback_id", Some(MacroValue::Int(postback.id)));
    put("delivery_id", Some(MacroValue::Str(delivery_key.to_owned())));
    put("dedup_key", text(&postback.dedup_key));
    put("protocol", text(&postback.protocol));
    put("version", opt_text(&postback.version));
    put("ad_network_id", text(&postback.ad_network_id));
    put("app_id", Some(MacroValue::Int(postback.app_id)));
    put("transaction_id", text(&postback.transaction_id));
    put("source_identifier", opt_text(&postback.source_identifier));
    put("campaign_id", postback.campaign_id.map(MacroValue::Int));
    put("source_app_id", postback.source_app_id.map(MacroValue::Int));
    put("source_domain", opt_text(&postback.source_domain));
    put("window", Some(MacroValue::Int(postback.window)));
    put("fine_value", postback.fine_value.map(MacroValue::Int));
    put("coarse_value", opt_text(&postback.coarse_value));
    put(
        "conversion_value",
        postback
            .fine_value
            .map(|f| MacroValue::Str(f.to_string()))
            .or_else(|| opt_text(&postback.coarse_value)),
    );
    put("fidelity_type", postback.fidelity_type.map(MacroValue::Int));
    let interaction = postback.interaction.clone().or_else(|| match postback.fidelity_type {
        Some(1) => Some("click".to_owned()),
        Some(0) => Some("view".to_owned()),
        _ => None,
    });
    put("interaction", opt_text(&interaction));
    put(
        "redownload",
        postback.conversion_type.as_deref().map(|c| MacroValue::Bool(c == "redownload")),
    );
    put("conversion_type", opt_text(&postback.conversion_type));
    put("did_win", Some(MacroValue::Bool(postback.did_win)));
    put("tier", postback.tier_hint.map(MacroValue::Int));
    put("signature_outcome", text(&postback.outcome));
    put("development", Some(MacroValue::Bool(postback.development)));
    put("unsigned_mismatch", Some(MacroValue::Bool(postback.unsigned_mismatch)));
    put("country_code", opt_text(&postback.country_code));
    if let Some(d) = decoded {
        let status = match d.status {
            DecodeStatus::Mapped => "mapped",
            DecodeStatus::Unmapped => "unmapped",
            DecodeStatus::NoValue => "no_value",
            DecodeStatus::NoSchema => "no_schema",
        };
        put("decode_status", text(status));
        put("label", opt_text(&d.label));
        if !d.events.is_empty() {
            let names: Vec<&str> = d.events.iter().map(|e| &*e.name).collect();
            put("event_names", text(&names.join(",")));
        }
        if let Some(r) = &d.revenue {
            put("revenue_min", Some(MacroValue::Float(r.min)));
            put("revenue_max", r.max.map(MacroValue::Float));
        }
        put("revenue_currency", d.currency.as_deref().map(|c| MacroValue::Str(c.to_owned())));
        put("schema_version", d.schema_version.map(MacroValue::Int));
    }
    put("received_at", time(postback.first_received_at_ms));
    put("install_from", time(postback.install_from_ms));
    put("install_to", time(postback.install_to_ms));
    put("install_day", text(&day_from_number(postback.install_day).to_string()));
    put("raw_postback", Some(MacroValue::Str(String::from_utf8_lossy(raw).into_owned())));
    put(
        "raw_postback_base64",
        Some(MacroValue::Str(base64::engine::general_purpose::STANDARD.encode(raw))),
    );
    v
}
