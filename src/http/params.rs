//! Query parameters every list shares: the page size, the limit+1 rule that says whether there
//! is a next page, and times given as RFC 3339 or a date.

use super::error::ApiError;

/// Largest page a list answers.
const MAX_PAGE: i64 = 1000;
/// Page size when none is asked for.
const DEFAULT_PAGE: i64 = 100;

/// A page size `limit` (1-1000, default 100); the row count to fetch is one more, so the store's
/// answer tells whether another page follows.
pub(crate) fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("must be 1-{MAX_PAGE}, got {limit}"),
            Some("limit"),
        ));
    }
    Ok(limit)
}

/// Cut `rows` (fetched with `limit + 1`) to the page and say where the next one starts.
pub(crate) fn paginate<T, C>(
    mut rows: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> C,
) -> (Vec<T>, Option<C>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(cursor_of);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// An RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC) as unix ms; errors name `field`.
pub(crate) fn parse_time(text: &str, field: &str) -> Result<i64, ApiError> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis()));
    }
    Err(ApiError::bad_request(
        "invalid_parameter",
        format!("expected an RFC 3339 time or a YYYY-MM-DD date, got {text:?}"),
        Some(field),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_cut_at_its_limit_and_names_the_next_cursor() {
        assert_eq!(paginate(vec![5, 4, 3], 2, |r| *r), (vec![5, 4], Some(4)));
        assert_eq!(paginate(vec![5, 4], 2, |r| *r), (vec![5, 4], None));
        assert!(page_size(Some(0)).is_err() && page_size(Some(1001)).is_err());
        assert_eq!(page_size(None).ok(), Some(100));
        assert_eq!(parse_time("1970-01-02", "since").ok(), Some(86_400_000));
        assert!(parse_time("yesterday", "since").is_err());
    }
}
