//! Destinations: where and how normalized postbacks are forwarded.
//!
//! The same JSON document is used by the API, the CLI and the settings file:
//!
//! ```json
//! {
//!   "name": "network-a installs",
//!   "method": "GET",
//!   "url": "https://postbacks.network-a.example/skan?app={app_id}&cv={fine_value}&won={did_win}",
//!   "formats": { "booleans": "one_zero", "timestamps": "unix_seconds" },
//!   "missing": "drop",
//!   "filters": { "apps": [525463029], "windows": [0], "winning_only": true }
//! }
//! ```
//!
//! Pure: validation only, no I/O (address checks against private ranges happen in the sender).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::template::{ALERT_MACROS, MACROS, Macros, Template, TemplateError};
pub use super::template::{BooleanFormat, Formats, MissingPolicy, TimestampFormat};
use crate::domain::routing;
pub use crate::domain::routing::{DestinationFilters, PostbackFacts, RateLimit};

/// HTTP method of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET with everything in the URL (the MMP convention for ad networks).
    #[default]
    Get,
    /// POST with a JSON or form body.
    Post,
}

/// How a body template is written and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum BodyTemplate {
    /// A JSON document; a string that is exactly `"{macro}"` becomes the macro's typed value,
    /// other strings interpolate.
    Json {
        /// The document.
        #[schema(value_type = Object)]
        template: serde_json::Value,
    },
    /// `key={macro}&key2=literal` sent as `application/x-www-form-urlencoded`.
    Form {
        /// The form template.
        template: String,
    },
}

/// Standard Webhooks signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// `whsec_` secrets; each signs, so a partner can rotate keys.
    pub secrets: Vec<String>,
}

fn default_true() -> bool {
    true
}

fn default_schedule() -> Vec<u64> {
    vec![5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]
}

fn default_disable_after_secs() -> u64 {
    5 * 24 * 3600
}

/// A destination as written by users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Unique name.
    pub name: String,
    /// Whether deliveries are sent (pending ones wait while disabled).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// GET or POST.
    #[serde(default)]
    pub method: Method,
    /// URL template; `{macro}` only in the path and query (scheme and host are fixed).
    pub url: String,
    /// Body template (POST).
    #[serde(default)]
    pub body: Option<BodyTemplate>,
    /// Header templates.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Value formats.
    #[serde(default)]
    pub formats: Formats,
    /// Macros without a value.
    #[serde(default)]
    pub missing: MissingPolicy,
    /// Which postbacks.
    #[serde(default)]
    pub filters: DestinationFilters,
    /// Standard Webhooks signing.
    #[serde(default)]
    pub signing: Option<Signing>,
    /// Per-attempt timeout in milliseconds (100-30000).
    #[serde(default = "routing::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Seconds to wait before each retry; the first attempt is immediate, and after the last
    /// retry a delivery is dead. Default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    #[serde(default = "default_schedule")]
    pub retry_schedule_secs: Vec<u64>,
    /// Requests per second (default: unlimited).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Requests in flight at once, across every receiver sharing the database.
    #[serde(default = "routing::default_concurrency")]
    pub max_concurrency: u32,
    /// Disable the destination after it has failed continuously for this long (0: never).
    #[serde(default = "default_disable_after_secs")]
    pub disable_after_secs: u64,
}

/// A configuration problem, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DestinationError {
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> DestinationError {
    DestinationError { field: field.into(), message: message.into() }
}

/// The checked, parsed form of a destination.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The document it came from.
    pub config: DestinationConfig,
    /// The URL template, split at the query.
    pub url: UrlTemplate,
    /// Header name and value templates.
    pub headers: Vec<(String, Template)>,
    /// Decoded signing keys.
    pub keys: Vec<Vec<u8>>,
}

/// A URL template: fixed scheme and host, templated path and query parameters.
#[derive(Debug, Clone)]
pub struct UrlTemplate {
    /// `scheme://host[:port]`, no macros.
    pub origin: String,
    /// The path, with macros.
    pub path: Template,
    /// Query parameters: literal name, value template.
    pub query: Vec<(String, Template)>,
    /// The host as written.
    pub host: url::Host,
}

fn template(field: &str, text: &str, macros: Macros) -> Result<Template, DestinationError> {
    Template::parse_in(text, macros).map_err(|e: TemplateError| invalid(field, e.to_string()))
}

impl DestinationConfig {
    /// The macros its templates may name: an alert destination's are the anomaly's.
    #[must_use]
    pub fn macros(&self) -> Macros {
        if self.filters.alerts { ALERT_MACROS } else { MACROS }
    }

    /// Check everything and parse the templates.
    ///
    /// # Errors
    /// [`DestinationError`] naming the field: name, URL (scheme, templated host, unknown macro),
    /// body and method mismatch, header names and templates, signing secrets, limits.
    pub fn validate(self) -> Result<Destination, DestinationError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(invalid("name", "give a name of 1-200 characters"));
        }
        let macros = self.macros();
        if self.filters.alerts {
            check_alert_filters(&self.filters)?;
        }
        let url = parse_url(&self.url, macros)?;
        if let Some(body) = &self.body {
            if self.method == Method::Get {
                return Err(invalid("body", "a GET destination has no body; use method POST"));
            }
            match body {
                BodyTemplate::Json { template: value } => {
                    check_json_template(value, "body.template", macros)?
                }
                BodyTemplate::Form { template: text } => {
                    for (i, pair) in text.split('&').filter(|p| !p.is_empty()).enumerate() {
                        let (_, value) = pair.split_once('=').unwrap_or((pair, ""));
                        template(&format!("body.template[{i}]"), value, macros)?;
                    }
                }
            }
        }
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(field, "not a valid header name"));
            }
            let lower = name.to_ascii_lowercase();
            if ["host", "content-length", "transfer-encoding", "connection"]
                .contains(&lower.as_str())
                || lower.starts_with("webhook-")
            {
                return Err(invalid(field, "this header is set by skan-receiver"));
            }
            if value.contains(['\r', '\n']) {
                return Err(invalid(field, "header values cannot contain line breaks"));
            }
            headers.push((name.clone(), template(&field, value, macros)?));
        }
        let mut keys = Vec::new();
        if let Some(signing) = &self.signing {
            if signing.secrets.is_empty() || signing.secrets.len() > 10 {
                return Err(invalid("signing.secrets", "give 1 to 10 whsec_ secrets"));
            }
            for (i, secret) in signing.secrets.iter().enumerate() {
                keys.push(
                    super::signing::decode_secret(secret)
                        .map_err(|m| invalid(format!("signing.secrets[{i}]"), m))?,
                );
            }
        }
        if !(100..=30_000).contains(&self.timeout_ms) {
            return Err(invalid("timeout_ms", "must be 100-30000 milliseconds"));
        }
        if self.retry_schedule_secs.len() > 20
            || self.retry_schedule_secs.iter().any(|s| *s > 7 * 24 * 3600)
        {
            return Err(invalid(
                "retry_schedule_secs",
                "at most 20 retries, each at most 7 days apart",
            ));
        }
        if let Some(limit) = self.rate_limit
            && !((0.001..=10_000.0).contains(&limit.per_second)
                && (1.0..=10_000.0).contains(&limit.burst))
        {
            return Err(invalid("rate_limit", "per_second must be 0.001-10000 and burst 1-10000"));
        }
        if !(1..=256).contains(&self.max_concurrency) {
            return Err(invalid("max_concurrency", "must be 1-256"));
        }
        if self.filters.protocols.iter().any(|p| p != "skadnetwork" && p != "adattributionkit") {
            return Err(invalid("filters.protocols", "use skadnetwork or adattributionkit"));
        }
        if self.filters.windows.iter().any(|w| !(0..=2).contains(w)) {
            return Err(invalid("filters.windows", "windows are 0, 1 and 2"));
        }
        Ok(Destination { url, headers, keys, config: self })
    }
}

/// An alert destination gets anomalies, which have no window, protocol, outcome or events: a
/// postback filter there would be silently meaningless, so it is refused.
fn check_alert_filters(filters: &DestinationFilters) -> Result<(), DestinationError> {
    let postback_only = [
        ("windows", !filters.windows.is_empty()),
        ("protocols", !filters.protocols.is_empty()),
        ("events", !filters.events.is_empty()),
        ("include_invalid", filters.include_invalid),
        ("winning_only", filters.winning_only),
        ("include_development", filters.include_development),
    ];
    match postback_only.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(invalid(
            format!("filters.{name}"),
            "an alert destination gets anomalies, not postbacks; only apps and ad_networks \
             filter them",
        )),
        None => Ok(()),
    }
}

fn parse_url(text: &str, macros: Macros) -> Result<UrlTemplate, DestinationError> {
    let field = "url";
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| invalid(field, "expected http:// or https:// followed by a host"))?;
    if scheme != "http" && scheme != "https" {
        return Err(invalid(field, format!("scheme {scheme:?} is not http or https")));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains(['{', '}']) {
        return Err(invalid(
            field,
            "the scheme and host cannot contain macros; put them in the path or query",
        ));
    }
    if authority.contains('@') {
        return Err(invalid(field, "credentials in the URL are not allowed; use a header"));
    }
    let origin = format!("{scheme}://{authority}");
    let parsed =
        url::Url::parse(&origin).map_err(|e| invalid(field, format!("not a valid URL: {e}")))?;
    let host = parsed.host().map(|h| h.to_owned()).ok_or_else(|| invalid(field, "no host"))?;
    let rest = &rest[authority_end..];
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.contains('#') || query.contains('#') {
        return Err(invalid(field, "a fragment is never sent; remove the #"));
    }
    let path = template(field, if path.is_empty() { "/" } else { path }, macros)?;
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name.contains(['{', '}']) {
            return Err(invalid(
                field,
                format!("query parameter names cannot contain macros ({name:?})"),
            ));
        }
        params.push((name.to_owned(), template(field, value, macros)?));
    }
    Ok(UrlTemplate { origin, path, query: params, host })
}

fn check_json_template(
    value: &serde_json::Value,
    field: &str,
    macros: Macros,
) -> Result<(), DestinationError> {
    match value {
        serde_json::Value::String(text) => template(field, text, macros).map(|_| ()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_json_template(v, &format!("{field}[{i}]"), macros)),
        serde_json::Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check_json_template(v, &format!("{field}.{k}"), macros)),
        _ => Ok(()),
    }
}

/// The macro names, for documentation and error messages.
#[must_use]
pub fn macro_names() -> Vec<&'static str> {
    MACROS.iter().map(|(name, _)| *name).collect()
}
