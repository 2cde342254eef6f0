//! A destination's request for one delivery: its templates rendered with each value escaped for
//! where it stands: percent-encoded in the path and query, typed in JSON bodies, checked in
//! headers. Pure.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::destination::{BodyTemplate, Destination, Method};
use super::template::{Formats, Macros, MissingPolicy, Template, Values};

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RenderedRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Headers from the destination's templates (signing and idempotency headers are added when
    /// sending).
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<String>,
    /// Its content type.
    pub content_type: Option<String>,
}

/// The result of rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Render {
    /// Send this.
    Request(RenderedRequest),
    /// The missing-value policy says not to send: these macros had no value.
    Skip(Vec<&'static str>),
}

/// Percent-encode everything but RFC 3986 unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Header values drop control characters (no header injection) and percent-encode non-ASCII
/// ones (HTTP header values are ASCII).
fn header_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| !c.is_control()) {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Render a destination's request for one delivery's values.
#[must_use]
pub fn render(destination: &Destination, values: &Values) -> Render {
    let config = &destination.config;
    let (formats, policy) = (config.formats, config.missing);
    let mut skipped: Vec<&'static str> = Vec::new();
    let mut url = destination.url.origin.clone();
    let path = destination.url.path.render(values, formats, component);
    skipped.extend(&path.missing);
    url.push_str(&path.text);
    let query = render_pairs(&destination.url.query, values, formats, policy, &mut skipped);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    let mut headers = Vec::new();
    for (name, template) in &destination.headers {
        let rendered = template.render(values, formats, header_value);
        if !rendered.missing.is_empty() {
            skipped.extend(&rendered.missing);
            if policy == MissingPolicy::Drop {
                continue;
            }
        }
        headers.push((name.clone(), rendered.text));
    }
    let (body, content_type) = match (&config.body, config.method) {
        (Some(BodyTemplate::Json { template }), Method::Post) => {
            let value =
                render_json(template, values, (formats, policy, config.macros()), &mut skipped)
                    .unwrap_or(Value::Null);
            (Some(value.to_string()), Some("application/json".to_owned()))
        }
        (Some(BodyTemplate::Form { template }), Method::Post) => {
            let pairs: Vec<(String, Template)> = template
                .split('&')
                .filter(|p| !p.is_empty())
                .filter_map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    Template::parse_in(value, config.macros()).ok().map(|t| (name.to_owned(), t))
                })
                .collect();
            let body = render_pairs(&pairs, values, formats, policy, &mut skipped);
            (Some(body), Some("application/x-www-form-urlencoded".to_owned()))
        }
        _ => (None, None),
    };
    if policy == MissingPolicy::Skip && !skipped.is_empty() {
        skipped.sort_unstable();
        skipped.dedup();
        return Render::Skip(skipped);
    }
    Render::Request(RenderedRequest {
        method: match config.method {
            Method::Get => "GET".to_owned(),
            Method::Post => "POST".to_owned(),
        },
        url,
        headers,
        body,
        content_type,
    })
}

fn render_pairs(
    pairs: &[(String, Template)],
    values: &Values,
    formats: Formats,
    policy: MissingPolicy,
    skipped: &mut Vec<&'static str>,
) -> String {
    let mut out = String::new();
    for (name, template) in pairs {
        let rendered = template.render(values, formats, component);
        if !rendered.missing.is_empty() {
            skipped.extend(&rendered.missing);
            if policy == MissingPolicy::Drop {
                continue;
            }
        }
        if !out.is_empty() {
            out.push('&');
        }
        let _ = write!(out, "{name}={}", rendered.text);
    }
    out
}

/// Render a JSON template; `None` means "drop this value".
fn render_json(
    template: &Value,
    values: &Values,
    how: (Formats, MissingPolicy, Macros),
    skipped: &mut Vec<&'static str>,
) -> Option<Value> {
    let (formats, policy, macros) = how;
    match template {
        Value::String(text) => {
            let Ok(parsed) = Template::parse_in(text, macros) else {
                return Some(template.clone());
            };
            if let Some(name) = parsed.single_macro() {
                return match values.get(name) {
                    Some(value) => Some(value.json(formats)),
                    None => {
                        skipped.push(name);
                        (policy != MissingPolicy::Drop).then_some(Value::Null)
                    }
                };
            }
            let rendered = parsed.render(values, formats, str::to_owned);
            if !rendered.missing.is_empty() {
                skipped.extend(&rendered.missing);
                if policy == MissingPolicy::Drop {
                    return None;
                }
            }
            Some(Value::String(rendered.text))
        }
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(|v| render_json(v, values, how, skipped)).collect(),
        )),
        Value::Object(map) => Some(Value::Object(
            map.iter()
                .filter_map(|(k, v)| render_json(v, values, how, skipped).map(|v| (k.clone(), v)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use chrono::DateTime;

    use crate::dispatch::destination::DestinationConfig;
    use crate::dispatch::template::{MacroValue, TemplateError};

    fn destination(doc: serde_json::Value) -> Destination {
        serde_json::from_value::<DestinationConfig>(doc).unwrap().validate().unwrap()
    }

    fn values() -> Values {
        let mut v = Values::new();
        v.insert("app_id", MacroValue::Int(42));
        v.insert("did_win", MacroValue::Bool(true));
        v.insert("transaction_id", MacroValue::Str("a b&c=d/é".to_owned()));
        v.insert("revenue_min", MacroValue::Float(0.5));
        v.insert(
            "received_at",
            MacroValue::Time(DateTime::from_timestamp_millis(1_700_000_000_123).unwrap()),
        );
        v
    }

    fn request(render: Render) -> RenderedRequest {
        match render {
            Render::Request(r) => r,
            Render::Skip(m) => panic!("skipped: {m:?}"),
        }
    }

    #[test]
    fn parsing_rejects_unknown_macros_and_unbalanced_braces_and_keeps_escaped_ones() {
        assert!(
            matches!(Template::parse("{nope}"), Err(TemplateError::UnknownMacro(name, _)) if name == "nope")
        );
        assert_eq!(Template::parse("a{app_id"), Err(TemplateError::Unbalanced(1)));
        assert_eq!(Template::parse("a}b"), Err(TemplateError::Unbalanced(1)));
        let literal = Template::parse("{{app_id}}").unwrap();
        assert_eq!(literal.render(&values(), Formats::default(), str::to_owned).text, "{app_id}");
    }

    #[test]
    fn an_alert_destination_takes_alert_macros_only_and_no_postback_filters() {
        let alert = |doc: serde_json::Value| {
            serde_json::from_value::<DestinationConfig>(doc).unwrap().validate()
        };
        let d = alert(json!({
            "name": "n", "method": "POST", "url": "https://p.example/?m={metric}",
            "body": {"format": "json", "template": {"text": "{summary}", "seen": "{observed}"}},
            "filters": {"alerts": true}
        }))
        .unwrap();
        let mut v = Values::new();
        v.insert("metric", MacroValue::Str("postbacks".to_owned()));
        v.insert("summary", MacroValue::Str("fell".to_owned()));
        v.insert("observed", MacroValue::Float(2.5));
        let sent = request(render(&d, &v));
        assert_eq!(sent.url, "https://p.example/?m=postbacks");
        let body: serde_json::Value = serde_json::from_str(&sent.body.unwrap()).unwrap();
        assert_eq!(body, json!({"text": "fell", "seen": 2.5}));
        let postback_macro = alert(json!({"name": "n", "url": "https://p.example/?v={fine_value}",
                                          "filters": {"alerts": true}}))
        .unwrap_err();
        assert_eq!(postback_macro.field, "url");
        assert!(postback_macro.message.contains("unknown macro {fine_value}"));
        let postback_filter = alert(json!({"name": "n", "url": "https://p.example/",
                                           "filters": {"alerts": true, "windows": [0]}}))
        .unwrap_err();
        assert_eq!(postback_filter.field, "filters.windows");
        // And a postback destination does not know the alert macros.
        assert!(alert(json!({"name": "n", "url": "https://p.example/?m={metric}"})).is_err());
    }

    #[test]
    fn url_values_are_percent_encoded_and_formats_apply() {
        let d = destination(json!({
            "name": "n",
            "url": "https://p.example/a/{transaction_id}?tx={transaction_id}&won={did_win}&at={received_at}&v={revenue_min}",
            "formats": {"booleans": "one_zero", "timestamps": "unix_millis"}
        }));
        assert_eq!(
            request(render(&d, &values())).url,
            "https://p.example/a/a%20b%26c%3Dd%2F%C3%A9?tx=a%20b%26c%3Dd%2F%C3%A9&won=1&at=1700000000123&v=0.5"
        );
    }

    #[test]
    fn json_keeps_types_for_whole_macros_and_interpolates_text() {
        let d = destination(json!({
            "name": "n", "method": "POST", "url": "https://p.example/",
            "formats": {"timestamps": "rfc3339"},
            "body": {"format": "json", "template": {
                "app": "{app_id}", "won": "{did_win}", "at": "{received_at}", "text": "{app_id}-{did_win}",
                "missing": "{campaign_id}", "nested": ["{revenue_min}", {"tx": "{transaction_id}"}]
            }}
        }));
        let body: serde_json::Value =
            serde_json::from_str(&request(render(&d, &values())).body.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"app": 42, "won": true, "at": "2023-11-14T22:13:20.123Z", "text": "42-true",
                   "missing": null, "nested": [0.5, {"tx": "a b&c=d/é"}]})
        );
    }

    #[test]
    fn the_missing_value_policy_drops_or_skips() {
        let doc = |missing: &str| {
            json!({"name": "n", "method": "POST", "url": "https://p.example/?a={app_id}&c={campaign_id}",
                   "headers": {"X-C": "{campaign_id}"}, "missing": missing,
                   "body": {"format": "form", "template": "a={app_id}&c={campaign_id}"}})
        };
        let empty = request(render(&destination(doc("empty")), &values()));
        assert_eq!(empty.url, "https://p.example/?a=42&c=");
        assert_eq!(empty.body.as_deref(), Some("a=42&c="));
        assert_eq!(empty.headers, vec![("X-C".to_owned(), String::new())]);
        let dropped = request(render(&destination(doc("drop")), &values()));
        assert_eq!(dropped.url, "https://p.example/?a=42");
        assert_eq!(dropped.body.as_deref(), Some("a=42"));
        assert!(dropped.headers.is_empty());
        assert_eq!(render(&destination(doc("skip")), &values()), Render::Skip(vec!["campaign_id"]));
    }

    #[test]
    fn header_values_lose_control_characters_and_stay_ascii() {
        let d = destination(
            json!({"name": "n", "url": "https://p.example/", "headers": {"X-T": "{transaction_id}"}}),
        );
        let mut v = values();
        v.insert("transaction_id", MacroValue::Str("a\r\nInjected: é".to_owned()));
        assert_eq!(
            request(render(&d, &v)).headers,
            vec![("X-T".to_owned(), "aInjected: %C3%A9".to_owned())]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_survives_a_query_parameter(text in "\\PC{0,40}") {
            let d = destination(json!({"name": "n", "url": "https://p.example/?t={transaction_id}"}));
            let mut v = values();
            v.insert("transaction_id", MacroValue::Str(text.clone()));
            let url = request(render(&d, &v)).url;
            let query = url.split_once('?').unwrap().1;
            proptest::prop_assert!(query[2..].bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
            let decoded: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            proptest::prop_assert_eq!(decoded, vec![("t".to_owned(), text)]);
        }
    }
}

#[cfg(test)]
mod documentation {
    #[test]
    fn the_readme_lists_every_macro() {
        let readme = include_str!("../../README.md");
        let alerts = &readme[readme.find("### Alert macros").expect("an alert macros section")..];
        for (name, _) in super::super::template::MACROS {
            assert!(
                readme.contains(&format!("| `{{{name}}}` |")),
                "README.md does not list {{{name}}}"
            );
        }
        for (name, _) in super::super::template::ALERT_MACROS {
            assert!(
                alerts.contains(&format!("| `{{{name}}}` |")),
                "README.md's alert macros do not list {{{name}}}"
            );
        }
    }
}
