//! Report queries: parsed and checked without touching the database.
//!
//! Parameters arrive as a list of pairs (a query string, or CLI flags); anything unknown or
//! malformed is refused with the parameter named. Dimensions come from a closed list and map to
//! column names fixed in code, so request text never reaches SQL except as a bound value.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::aggregate::{AggregateFilter, DateType};

/// The longest range a report may cover, in days.
pub const MAX_RANGE_DAYS: i64 = 400;

/// What rows can be grouped by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The arrival or estimated install day (per `date_type`).
    Day,
    /// The ISO week (Monday) of that day.
    Week,
    /// The month of that day.
    Month,
    /// Ad network.
    AdNetworkId,
    /// Source identifier (4.0, AdAttributionKit) or campaign (earlier versions), optionally
    /// rolled up to its last `digits` digits.
    SourceIdentifier,
    /// Conversion window.
    Window,
    /// `click` (fidelity 1) or `view` (fidelity 0).
    Fidelity,
    /// Protocol and version.
    Version,
    /// Decoded event (a postback whose value means several events counts in each).
    Event,
    /// Fine value 0-63, or none.
    FineValue,
    /// Coarse value, or none.
    CoarseValue,
    /// Crowd-anonymity tier hint.
    Tier,
}

impl Dimension {
    /// Every dimension.
    pub const ALL: [Self; 12] = [
        Self::Day,
        Self::Week,
        Self::Month,
        Self::AdNetworkId,
        Self::SourceIdentifier,
        Self::Window,
        Self::Fidelity,
        Self::Version,
        Self::Event,
        Self::FineValue,
        Self::CoarseValue,
        Self::Tier,
    ];

    /// The parameter spelling.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::AdNetworkId => "ad_network_id",
            Self::SourceIdentifier => "source_identifier",
            Self::Window => "window",
            Self::Fidelity => "fidelity",
            Self::Version => "version",
            Self::Event => "event",
            Self::FineValue => "fine_value",
            Self::CoarseValue => "coarse_value",
            Self::Tier => "tier",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == text)
    }
}

/// A checked report query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// The app.
    pub app_id: i64,
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// Arrival or estimated install day.
    pub date_type: DateType,
    /// Grouping, in order.
    pub group_by: Vec<Dimension>,
    /// Source identifiers rolled up to their last 2, 3 or 4 digits.
    pub digits: Option<u8>,
    /// AggregateFilter.
    pub filters: AggregateFilter,
    /// Include fine and coarse histograms in every row.
    pub histograms: bool,
}

/// A parameter that is missing, unknown or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct QueryError {
    /// The parameter at fault.
    pub parameter: String,
    /// What is wrong with it.
    pub message: String,
}

fn error(parameter: &str, message: impl Into<String>) -> QueryError {
    QueryError { parameter: parameter.to_owned(), message: message.into() }
}

/// Every parameter a report accepts (`format` is read by the caller, not here).
const KNOWN: [&str; 16] = [
    "app_id",
    "from",
    "to",
    "date_type",
    "group_by",
    "digits",
    "format",
    "include",
    "ad_network_id",
    "source_identifier",
    "window",
    "fidelity",
    "version",
    "did_win",
    "redownload",
    "development",
];

fn values<'a>(pairs: &'a [(String, String)], name: &str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(k, _)| k == name)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, QueryError> {
    let mut found = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.trim());
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(error(name, "given more than once")),
    }
}

fn date(pairs: &[(String, String)], name: &str) -> Result<NaiveDate, QueryError> {
    let text = single(pairs, name)?.ok_or_else(|| error(name, "required (a date YYYY-MM-DD)"))?;
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| error(name, format!("expected a date YYYY-MM-DD, got {text:?}")))
}

fn bools(pairs: &[(String, String)], name: &str) -> Result<Vec<bool>, QueryError> {
    values(pairs, name)
        .map(|v| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(error(name, format!("expected true or false, got {other:?}"))),
        })
        .collect()
}

impl ReportQuery {
    /// Parse and check report parameters.
    ///
    /// # Errors
    /// [`QueryError`] naming the first parameter that is missing, unknown or malformed: an
    /// unknown dimension, `from` after `to`, a range over 400 days, and so on.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, QueryError> {
        if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return Err(error(unknown, format!("unknown parameter; known: {}", KNOWN.join(", "))));
        }
        let app = single(pairs, "app_id")?
            .ok_or_else(|| error("app_id", "required (the App Store ID)"))?;
        let app_id = app
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| error("app_id", format!("expected an App Store ID, got {app:?}")))?;
        let (from, to) = (date(pairs, "from")?, date(pairs, "to")?);
        if from > to {
            return Err(error("from", format!("{from} is after `to` ({to})")));
        }
        if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
            return Err(error(
                "to",
                format!(
                    "a report covers at most {MAX_RANGE_DAYS} days, this range has {}",
                    (to - from).num_days() + 1
                ),
            ));
        }
        let date_type = match single(pairs, "date_type")? {
            None | Some("install") => DateType::Install,
            Some("arrival") => DateType::Arrival,
            Some(other) => {
                return Err(error(
                    "date_type",
                    format!("expected arrival or install, got {other:?}"),
                ));
            }
        };
        let mut group_by = Vec::new();
        for name in values(pairs, "group_by") {
            let dimension = Dimension::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Dimension::ALL.iter().map(|d| d.name()).collect();
                error(
                    "group_by",
                    format!("unknown dimension {name:?}; known: {}", known.join(", ")),
                )
            })?;
            if !group_by.contains(&dimension) {
                group_by.push(dimension);
            }
        }
        let dates = group_by
            .iter()
            .filter(|d| matches!(d, Dimension::Day | Dimension::Week | Dimension::Month))
            .count();
        if dates > 1 {
            return Err(error("group_by", "group by at most one of day, week and month"));
        }
        let digits = match single(pairs, "digits")? {
            None => None,
            Some(d @ ("2" | "3" | "4")) => Some(d.parse::<u8>().unwrap_or(4)),
            Some(other) => {
                return Err(error("digits", format!("expected 2, 3 or 4, got {other:?}")));
            }
        };
        if digits.is_some() && !group_by.contains(&Dimension::SourceIdentifier) {
            return Err(error("digits", "only applies when grouping by source_identifier"));
        }
        let histograms = match single(pairs, "include")? {
            None => false,
            Some("histograms") => true,
            Some(other) => {
                return Err(error("include", format!("expected histograms, got {other:?}")));
            }
        };
        let windows = values(pairs, "window")
            .map(|w| match w {
                "0" | "1" | "2" => Ok(w.parse::<i64>().unwrap_or(0)),
                other => Err(error("window", format!("expected 0, 1 or 2, got {other:?}"))),
            })
            .collect::<Result<_, _>>()?;
        let interaction = values(pairs, "fidelity")
            .map(|f| match f {
                "1" | "click" => Ok("click".to_owned()),
                "0" | "view" => Ok("view".to_owned()),
                other => {
                    Err(error("fidelity", format!("expected 0, 1, view or click, got {other:?}")))
                }
            })
            .collect::<Result<_, _>>()?;
        let source_identifier = values(pairs, "source_identifier")
            .map(|s| {
                if (2..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(s.to_owned())
                } else {
                    Err(error("source_identifier", format!("expected 2-4 digits, got {s:?}")))
                }
            })
            .collect::<Result<_, _>>()?;
        let development = bools(pairs, "development")?;
        Ok(Self {
            app_id,
            from,
            to,
            date_type,
            group_by,
            digits,
            histograms,
            filters: AggregateFilter {
                ad_network_id: values(pairs, "ad_network_id").map(str::to_owned).collect(),
                source_identifier,
                window: windows,
                interaction,
                version: values(pairs, "version").map(str::to_owned).collect(),
                did_win: bools(pairs, "did_win")?,
                redownload: bools(pairs, "redownload")?,
                development: if development.is_empty() { vec![false] } else { development },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ReportQuery, QueryError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        ReportQuery::parse(&pairs)
    }

    #[test]
    fn a_full_query_parses_with_lists_in_either_form() {
        let q = parse("app_id=7&from=2026-10-01&to=2026-10-31&date_type=arrival&group_by=day,ad_network_id&group_by=source_identifier&digits=2&ad_network_id=a&ad_network_id=b,c&window=0,1&fidelity=click&did_win=true&include=histograms").unwrap();
        assert_eq!(
            q.group_by,
            [Dimension::Day, Dimension::AdNetworkId, Dimension::SourceIdentifier]
        );
        assert_eq!(q.filters.ad_network_id, ["a", "b", "c"]);
        assert_eq!(q.filters.window, [0, 1]);
        assert_eq!(q.filters.interaction, ["click"]);
        assert_eq!(q.filters.development, [false], "production only unless asked");
        assert_eq!((q.digits, q.histograms, q.date_type), (Some(2), true, DateType::Arrival));
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            ("from=2026-10-01&to=2026-10-02", "app_id"),
            ("app_id=x&from=2026-10-01&to=2026-10-02", "app_id"),
            ("app_id=1&from=2026-10-05&to=2026-10-02", "from"),
            ("app_id=1&from=2025-01-01&to=2026-10-02", "to"),
            ("app_id=1&from=2026-10-01&to=2026-10-02&group_by=country", "group_by"),
            ("app_id=1&from=2026-10-01&to=2026-10-02&group_by=day,week", "group_by"),
            ("app_id=1&from=2026-10-01&to=2026-10-02&digits=2", "digits"),
            ("app_id=1&from=2026-10-01&to=2026-10-02&window=3", "window"),
            ("app_id=1&from=2026-10-01&to=2026-10-02&did_win=maybe", "did_win"),
            ("app_id=1&from=2026-10-01&to=2026-10-02&colour=red", "colour"),
            ("app_id=1&from=2026-10-01&to=2026-10-02&source_identifier=12345", "source_identifier"),
            ("app_id=1&from=10/01/2026&to=2026-10-02", "from"),
            ("app_id=1&from=2026-10-01&to=2026-10-02&date_type=today", "date_type"),
        ];
        for (query, parameter) in cases {
            assert_eq!(parse(query).unwrap_err().parameter, parameter, "{query}");
        }
    }

    #[test]
    fn four_hundred_days_is_the_longest_range() {
        assert!(parse("app_id=1&from=2025-01-01&to=2026-02-04").is_ok());
        assert!(parse("app_id=1&from=2025-01-01&to=2026-02-05").is_err());
    }
}
