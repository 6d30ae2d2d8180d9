//! Cursor pagination, the same on every list: `?limit=N` (default 100)
//! and `?cursor=C` from the previous page. The body stays a JSON array
//! (or JSON lines); when more rows follow, the response says where in
//! `Link: <…&cursor=C>; rel="next"` (RFC 8288) and `X-Next-Cursor: C`.
//! A cursor is opaque: the sort key of the last row sent and the list it
//! belongs to, so rows added meanwhile neither repeat nor go missing.

use super::error::ApiError;
use crate::store::Cursor;
use axum::http::{HeaderMap, HeaderValue, Uri, header};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The response header carrying the next page's cursor.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// `limit` checked: 1..=`max`.
pub fn limit(limit: Option<usize>, max: usize) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_LIMIT.min(max)) {
        n @ 1.. if n <= max => Ok(n),
        n => Err(ApiError::bad_request(format!(
            "limit must be between 1 and {max}, not {n}"
        ))),
    }
}

/// The text of a cursor for `list`.
pub fn encode(list: &str, c: &Cursor) -> String {
    hex::encode(format!("{list}\n{}\n{}", c.ms, c.id))
}

/// A cursor given back, checked to belong to `list`.
pub fn decode(list: &str, text: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    let bad = || ApiError::bad_request(format!("cursor {text:?} is not one of this list's"));
    let bytes = hex::decode(text).map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = s.splitn(3, '\n');
    let (Some(l), Some(ms), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if l != list {
        return Err(bad());
    }
    let ms = ms.parse().map_err(|_| bad())?;
    Ok(Some(Cursor {
        ms,
        id: id.to_string(),
    }))
}

/// `Link` and `X-Next-Cursor` for the page after `next`, built from the
/// request's own path and query (with its cursor replaced).
pub fn headers(list: &str, next: Option<&Cursor>, uri: &Uri) -> HeaderMap {
    let mut h = HeaderMap::new();
    let Some(next) = next else { return h };
    let cursor = encode(list, next);
    let mut query: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("cursor="))
        .map(str::to_string)
        .collect();
    query.push(format!("cursor={cursor}"));
    let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.join("&"));
    if let (Ok(link), Ok(c)) = (HeaderValue::from_str(&link), HeaderValue::from_str(&cursor)) {
        h.insert(header::LINK, link);
        h.insert(NEXT_CURSOR, c);
    }
    h
}

/// A page of an in-memory list already sorted by `key`: the rows after
/// `after`, at most `limit`, and the cursor of the last one when more
/// follow.
pub fn slice<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> Cursor,
    after: Option<&Cursor>,
    limit: usize,
) -> (Vec<T>, Option<Cursor>) {
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|t| {
            after.is_none_or(|a| {
                let k = key(t);
                (k.ms, &k.id) > (a.ms, &a.id)
            })
        })
        .collect();
    let next = if rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(&key)
    } else {
        None
    };
    (rest, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_their_list() {
        let c = Cursor {
            ms: 17,
            id: "a\nb".into(),
        };
        let text = encode("records", &c);
        assert_eq!(decode("records", Some(&text)).unwrap(), Some(c));
        assert!(decode("callbacks", Some(&text)).is_err());
        assert!(decode("records", Some("zz")).is_err());
        assert!(decode("records", Some(&hex::encode("records\nx\ny"))).is_err());
        assert_eq!(decode("records", None).unwrap(), None);
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(limit(None, MAX_LIMIT).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(7), MAX_LIMIT).unwrap(), 7);
        assert!(limit(Some(0), MAX_LIMIT).is_err());
        assert!(limit(Some(MAX_LIMIT + 1), MAX_LIMIT).is_err());
    }

    #[test]
    fn pages_of_a_sorted_list_cover_it_once() {
        let items: Vec<u32> = (0..25).collect();
        let key = |n: &u32| Cursor {
            ms: 0,
            id: format!("{n:03}"),
        };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = slice(items.clone(), key, after.as_ref(), 10);
            seen.extend(page);
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn the_next_link_keeps_the_query_and_replaces_the_cursor() {
        let uri: Uri = "/api/records?queue=q&cursor=old&limit=2".parse().unwrap();
        let c = Cursor {
            ms: 5,
            id: "x".into(),
        };
        let h = headers("records", Some(&c), &uri);
        let link = h[header::LINK].to_str().unwrap();
        let cursor = encode("records", &c);
        assert_eq!(
            link,
            format!("</api/records?queue=q&limit=2&cursor={cursor}>; rel=\"next\"")
        );
        assert_eq!(h[NEXT_CURSOR].to_str().unwrap(), cursor);
        assert!(headers("records", None, &uri).is_empty());
    }
}
