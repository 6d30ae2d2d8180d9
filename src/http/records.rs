//! Contact records: queried by time range, number, queue and contact (its
//! whole chain), a page at a time, as a JSON array or JSON lines (one
//! record per line, for export).

use super::Shared;
use super::error::{ApiError, ErrorBody, Query};
use super::page::{self, MAX_LIMIT};
use crate::store::{ContactRecord, Order, RecordFilter};
use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

/// A JSON-lines page may be longer: it is for export.
pub const MAX_JSONL_LIMIT: usize = 10_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// Initiated at or after: epoch ms, or RFC 3339 (`2026-11-20T09:00:00Z`,
    /// `2026-11-20T09:00:00+01:00`, `2026-11-20`).
    since: Option<String>,
    /// Initiated before; same forms as `since`.
    until: Option<String>,
    /// The customer's number, E.164.
    number: Option<String>,
    queue: Option<String>,
    /// Every record of this contact's chain (sharing its initial contact).
    contact_id: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    order: Option<String>,
    /// `json` (an array, the default) or `jsonl` (one record per line).
    format: Option<String>,
    /// Rows per page: 1–1000 as JSON, 1–10000 as JSON lines (default 100).
    limit: Option<usize>,
    /// From the previous page's `X-Next-Cursor` header.
    cursor: Option<String>,
}

/// Contact records: inbound calls, callbacks, agent legs and dial
/// attempts, chained by `initial_contact_id` and `previous_contact_id`.
#[utoipa::path(get, path = "/api/records", tag = "records", params(RecordQuery),
    security(("token" = [])),
    responses((status = 200, description = "A page of records",
            headers(("x-next-cursor" = String, description = "Present when another page follows"),
                ("link" = String, description = "RFC 8288 rel=\"next\"")),
            content((Vec<ContactRecord> = "application/json"), (String = "application/x-ndjson"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(ctx): Shared,
    Query(q): Query<RecordQuery>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let jsonl = match q.format.as_deref() {
        None | Some("json") => false,
        Some("jsonl") | Some("ndjson") => true,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format must be \"json\" or \"jsonl\", not {f:?}"
            )));
        }
    };
    let order = match q.order.as_deref() {
        None | Some("desc") => Order::NewestFirst,
        Some("asc") => Order::OldestFirst,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "order must be \"asc\" or \"desc\", not {o:?}"
            )));
        }
    };
    let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|t| {
                parse_time(t).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} must be epoch milliseconds or an RFC 3339 date or time, not {t:?}"
                    ))
                })
            })
            .transpose()
    };
    let filter = RecordFilter {
        since_ms: time("since", &q.since)?,
        until_ms: time("until", &q.until)?,
        number: q.number,
        queue: q.queue,
        contact_id: q.contact_id,
        order,
    };
    let limit = page::limit(q.limit, if jsonl { MAX_JSONL_LIMIT } else { MAX_LIMIT })?;
    // The cursor is only valid for the order it was made in.
    let list = match order {
        Order::NewestFirst => "records",
        Order::OldestFirst => "records-asc",
    };
    let after = page::decode(list, q.cursor.as_deref())?;
    let page = ctx
        .app
        .centre
        .db(move |s| s.records(&filter, after.as_ref(), limit))
        .await?;
    let headers = page::headers(list, page.next.as_ref(), &uri);
    if !jsonl {
        return Ok((headers, axum::Json(page.items)).into_response());
    }
    let mut body = String::new();
    for r in &page.items {
        if let Ok(line) = serde_json::to_string(r) {
            body.push_str(&line);
            body.push('\n');
        }
    }
    let mut resp = (headers, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

/// Epoch milliseconds, or an RFC 3339 date-time (`Z` or a numeric
/// offset; fractions of a second allowed) or full date (midnight UTC).
/// Every field is checked against its range before any arithmetic, so no
/// query string can overflow it.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    // Exactly `width` ASCII digits.
    let num = |t: &str, width: usize| -> Option<i64> {
        (t.len() == width && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if !(1..=12).contains(&m) || !(1..=days_in_month(y, m)).contains(&day) {
        return None;
    }
    let days = days_from_civil(y, m, day);
    let Some(time) = time else {
        return Some(days * 86_400_000);
    };
    let (clock, offset_min) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        let (oh, om) = (num(oh, 2)?, num(om, 2)?);
        if oh > 23 || om > 59 {
            return None;
        }
        (c, sign * (oh * 60 + om))
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    let mut t = hms.split(':');
    let (h, mi) = (num(t.next()?, 2)?, num(t.next()?, 2)?);
    let sec = match t.next() {
        Some(x) => num(x, 2)?,
        None => 0,
    };
    // 60: a leap second.
    if t.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let ms = match frac {
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let digits: String = f.chars().take(3).collect();
            num(&format!("{digits:0<3}"), 3)?
        }
        Some(_) => return None,
        None => 0,
    };
    Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + sec * 1000 + ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_as_epoch_ms_or_rfc_3339() {
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.25Z"),
            Some(1_700_000_000_250)
        );
        assert_eq!(parse_time("2000-03-01"), Some(951_868_800_000));
        assert_eq!(parse_time("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_time("2023-11-14T22:13Z"), Some(1_699_999_980_000));
        for bad in [
            "",
            "yesterday",
            "2023-13-01",
            "2023-11-14T25:00Z",
            "2023-1-1",
            "2023-11-14T10:00",
            "2023-02-29",
            "2023-04-31",
            "2023-11-14T10:00:00+999999999999999999:00",
            "2023-11-14T10:00:00-24:00",
            "2023-11-14T10:00:00.12xZ",
            "2023-11-14T10:00:00.Z",
            "+2023-11-14",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
