//! Listing what is stored, a page at a time. Pages are keyset cursors (the
//! sort key of the last row sent), not offsets: a page is as cheap at row
//! 1,000,000 as at row 1, and rows written meanwhile neither repeat nor
//! go missing between pages.

use super::StoreError;
use super::records::{CallbackRecord, CallbackState, ContactRecord};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params_from_iter};

/// Where the next page starts: after the row with this sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub ms: i64,
    pub id: String,
}

/// One page of rows and, when more follow, where the next one starts.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// Which contact records: all conditions must hold.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Initiated at or after (epoch ms).
    pub since_ms: Option<i64>,
    /// Initiated before (epoch ms).
    pub until_ms: Option<i64>,
    /// The customer's number (E.164).
    pub number: Option<String>,
    pub queue: Option<String>,
    /// The whole chain of this contact: every record sharing its initial
    /// contact id.
    pub contact_id: Option<String>,
    pub order: Order,
}

/// Which callbacks, newest first.
#[derive(Debug, Clone, Default)]
pub struct CallbackFilter {
    pub state: Option<CallbackState>,
    /// Only callbacks still owed a call.
    pub pending: bool,
    pub queue: Option<String>,
    pub number: Option<String>,
}

type Where = super::where_clause::Where<Value>;

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// Runs `sql` (which must select the sort columns) for `limit` rows plus
/// one, to tell whether another page follows.
fn page<T>(
    conn: &Connection,
    sql: &str,
    w: &Where,
    limit: usize,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    key: impl Fn(&T) -> Cursor,
) -> Result<Page<T>, StoreError> {
    let limit = limit.max(1);
    let mut params = w.params.clone();
    params.push(Value::Integer(limit as i64 + 1));
    let sql = format!("{sql} LIMIT ?{}", params.len());
    let mut stmt = conn.prepare(&sql)?;
    let mut items = stmt
        .query_map(params_from_iter(params.iter()), row)?
        .collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(&key)
    } else {
        None
    };
    Ok(Page { items, next })
}

pub fn records(
    conn: &Connection,
    f: &RecordFilter,
    after: Option<&Cursor>,
    limit: usize,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<ContactRecord>,
) -> Result<Page<ContactRecord>, StoreError> {
    let mut w = Where::default();
    if let Some(t) = f.since_ms {
        w.add("initiated_ms >= ?", [Value::Integer(t)]);
    }
    if let Some(t) = f.until_ms {
        w.add("initiated_ms < ?", [Value::Integer(t)]);
    }
    if let Some(n) = &f.number {
        w.add("customer_number = ?", [text(n)]);
    }
    if let Some(q) = &f.queue {
        w.add("queue = ?", [text(q)]);
    }
    if let Some(id) = &f.contact_id {
        // The chain: every record with the initial contact id of `id`
        // (which may itself be an initial contact id).
        w.add(
            "initial_contact_id IN (SELECT initial_contact_id FROM contacts WHERE id = ? UNION SELECT ?)",
            [text(id), text(id)],
        );
    }
    w.after("initiated_ms", after, f.order);
    let dir = match f.order {
        Order::NewestFirst => "DESC",
        Order::OldestFirst => "ASC",
    };
    let sql = format!(
        "SELECT * FROM contacts {} ORDER BY initiated_ms {dir}, id {dir}",
        w.clause()
    );
    page(conn, &sql, &w, limit, row, |r| Cursor {
        ms: r.initiated_ms,
        id: r.id.clone(),
    })
}

pub fn callbacks(
    conn: &Connection,
    f: &CallbackFilter,
    after: Option<&Cursor>,
    limit: usize,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<CallbackRecord>,
) -> Result<Page<CallbackRecord>, StoreError> {
    let mut w = Where::default();
    if let Some(s) = f.state {
        w.add("state = ?", [text(s.as_str())]);
    }
    if f.pending {
        w.add(&format!("state IN {}", super::sqlite::pending_sql()), []);
    }
    if let Some(q) = &f.queue {
        w.add("queue = ?", [text(q)]);
    }
    if let Some(n) = &f.number {
        w.add("number = ?", [text(n)]);
    }
    w.after("created_ms", after, Order::NewestFirst);
    let sql = format!(
        "SELECT * FROM callbacks {} ORDER BY created_ms DESC, id DESC",
        w.clause()
    );
    page(conn, &sql, &w, limit, row, |r| Cursor {
        ms: r.created_ms,
        id: r.id.clone(),
    })
}

/// Per queue since a time: contacts connected to an agent (handled),
/// callers who hung up waiting (abandoned) and callbacks whose customer
/// answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub handled: u64,
    pub abandoned: u64,
    pub callbacks_connected: u64,
}

/// `DayCounts` of every queue with any, since `since_ms`.
pub fn day_counts(
    conn: &Connection,
    since_ms: i64,
) -> Result<std::collections::HashMap<String, DayCounts>, StoreError> {
    let mut out: std::collections::HashMap<String, DayCounts> = Default::default();
    // Each count reads the index on its own timestamp.
    type Set = fn(&mut DayCounts, u64);
    let queries: [(&str, Set); 3] = [
        (
            "SELECT queue, COUNT(*) FROM contacts WHERE connected_to_agent_ms >= ?1
               AND initiation IN ('inbound', 'callback') AND queue IS NOT NULL GROUP BY queue",
            |d, n| d.handled = n,
        ),
        (
            // Waited in the queue and hung up before an agent took the call.
            "SELECT queue, COUNT(*) FROM contacts WHERE disconnected_ms >= ?1
               AND initiation = 'inbound' AND enqueued_ms IS NOT NULL AND connected_to_agent_ms IS NULL
               AND disconnect_reason IN ('remote hung up', 'caller cancelled') AND queue IS NOT NULL GROUP BY queue",
            |d, n| d.abandoned = n,
        ),
        (
            "SELECT queue, COUNT(*) FROM contacts WHERE connected_ms >= ?1
               AND initiation = 'dial_attempt' AND queue IS NOT NULL GROUP BY queue",
            |d, n| d.callbacks_connected = n,
        ),
    ];
    for (sql, set) in queries {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([since_ms], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        for row in rows {
            let (queue, n) = row?;
            set(out.entry(queue).or_default(), n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::initiation;
    use crate::store::{SqliteStore, Store};

    fn rec(id: &str, initial: &str, kind: &str, at: i64) -> ContactRecord {
        ContactRecord {
            id: id.into(),
            initial_contact_id: initial.into(),
            initiation: kind.into(),
            initiated_ms: at,
            queue: Some(if at % 2 == 0 { "even" } else { "odd" }.into()),
            customer_number: Some(format!("+1201555{:04}", at % 3)),
            ..ContactRecord::default()
        }
    }

    fn all_pages(s: &SqliteStore, f: &RecordFilter, limit: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let p = s.records(f, after.as_ref(), limit).unwrap();
            assert!(p.items.len() <= limit);
            ids.extend(p.items.into_iter().map(|r| r.id));
            match p.next {
                Some(c) => after = Some(c),
                None => return ids,
            }
        }
    }

    #[test]
    fn record_pages_cover_every_match_once_in_order() {
        let s = SqliteStore::in_memory().unwrap();
        // Equal timestamps too: the id breaks ties.
        let batch: Vec<ContactRecord> = (0..57)
            .map(|i| {
                rec(
                    &format!("c{i:02}"),
                    &format!("c{i:02}"),
                    initiation::INBOUND,
                    i / 3,
                )
            })
            .collect();
        s.upsert_contacts(&batch).unwrap();
        let newest: Vec<String> = (0..57).rev().map(|i| format!("c{i:02}")).collect();
        assert_eq!(all_pages(&s, &RecordFilter::default(), 10), newest);
        let oldest = RecordFilter {
            order: Order::OldestFirst,
            ..RecordFilter::default()
        };
        let mut asc = newest.clone();
        asc.reverse();
        assert_eq!(all_pages(&s, &oldest, 7), asc);
        // A time range, a queue and a number together.
        let f = RecordFilter {
            since_ms: Some(4),
            until_ms: Some(12),
            queue: Some("even".into()),
            number: Some("+12015550000".into()),
            order: Order::OldestFirst,
            ..RecordFilter::default()
        };
        let want: Vec<String> = batch
            .iter()
            .filter(|r| (4..12).contains(&r.initiated_ms) && r.initiated_ms % 6 == 0)
            .map(|r| r.id.clone())
            .collect();
        assert!(!want.is_empty());
        assert_eq!(all_pages(&s, &f, 2), want);
    }

    #[test]
    fn a_contact_id_brings_its_whole_chain() {
        let s = SqliteStore::in_memory().unwrap();
        let mut cb = rec("cb", "in", initiation::CALLBACK, 2);
        cb.previous_contact_id = Some("in".into());
        s.upsert_contacts(&[
            rec("in", "in", initiation::INBOUND, 1),
            cb,
            rec("leg", "in", initiation::AGENT_LEG, 3),
            rec("att", "in", initiation::DIAL_ATTEMPT, 4),
            rec("other", "other", initiation::INBOUND, 5),
        ])
        .unwrap();
        for id in ["in", "cb", "att"] {
            let f = RecordFilter {
                contact_id: Some(id.into()),
                order: Order::OldestFirst,
                ..RecordFilter::default()
            };
            assert_eq!(all_pages(&s, &f, 10), ["in", "cb", "leg", "att"], "{id}");
        }
        let none = RecordFilter {
            contact_id: Some("nope".into()),
            ..RecordFilter::default()
        };
        assert!(all_pages(&s, &none, 10).is_empty());
    }

    #[test]
    fn day_counts_by_queue() {
        let s = SqliteStore::in_memory().unwrap();
        let at = |r: ContactRecord, f: fn(&mut ContactRecord)| {
            let mut r = r;
            r.queue = Some("q".into());
            f(&mut r);
            r
        };
        s.upsert_contacts(&[
            // Handled: an inbound call and a callback put through today.
            at(rec("a", "a", initiation::INBOUND, 100), |r| {
                r.enqueued_ms = Some(100);
                r.connected_to_agent_ms = Some(150);
            }),
            at(rec("b", "x", initiation::CALLBACK, 10), |r| {
                r.connected_to_agent_ms = Some(120);
            }),
            // Handled yesterday: not counted.
            at(rec("c", "c", initiation::INBOUND, 10), |r| {
                r.enqueued_ms = Some(10);
                r.connected_to_agent_ms = Some(20);
            }),
            // Abandoned: waited, then the caller hung up.
            at(rec("d", "d", initiation::INBOUND, 100), |r| {
                r.enqueued_ms = Some(100);
                r.disconnected_ms = Some(130);
                r.disconnect_reason = Some("remote hung up".into());
            }),
            // Left the queue for a callback: not abandoned.
            at(rec("e", "e", initiation::INBOUND, 100), |r| {
                r.enqueued_ms = Some(100);
                r.disconnected_ms = Some(130);
                r.disconnect_reason = Some("gateway hung up".into());
            }),
            // A dial the customer answered.
            at(rec("f", "x", initiation::DIAL_ATTEMPT, 110), |r| {
                r.connected_ms = Some(115);
            }),
        ])
        .unwrap();
        let counts = s.day_counts(100).unwrap();
        assert_eq!(
            counts.get("q"),
            Some(&DayCounts {
                handled: 2,
                abandoned: 1,
                callbacks_connected: 1
            })
        );
    }
}
