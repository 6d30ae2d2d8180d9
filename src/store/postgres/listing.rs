//! Listing what is stored, a page at a time, in PostgreSQL's dialect: the
//! same keyset cursors and filters as `store::query` (see there for why).

use super::super::StoreError;
use super::super::query::{CallbackFilter, Cursor, DayCounts, Order, Page, RecordFilter};
use super::super::records::{CallbackRecord, CallbackState, ContactRecord};
use super::rows;
use std::collections::HashMap;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

type Param = Box<dyn ToSql + Sync + Send>;

type Where = super::super::where_clause::Where<Param>;

fn param(v: impl ToSql + Sync + Send + 'static) -> Param {
    Box::new(v)
}

impl super::super::where_clause::SqlParam for Param {
    const MARK: char = '$';
    fn int(v: i64) -> Self {
        Box::new(v)
    }
    fn text(v: String) -> Self {
        Box::new(v)
    }
}

async fn page<T>(
    client: &Client,
    sql: &str,
    mut w: Where,
    limit: usize,
    row: impl Fn(&tokio_postgres::Row) -> Result<T, StoreError>,
    key: impl Fn(&T) -> Cursor,
) -> Result<Page<T>, StoreError> {
    let limit = limit.max(1);
    w.params.push(Box::new(limit as i64 + 1));
    let sql = format!("{sql} LIMIT ${}", w.params.len());
    let params: Vec<&(dyn ToSql + Sync)> = w
        .params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let found = client.query(&sql, &params).await?;
    let mut items = found.iter().map(row).collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(&key)
    } else {
        None
    };
    Ok(Page { items, next })
}

pub(super) async fn records(
    client: &Client,
    f: &RecordFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page<ContactRecord>, StoreError> {
    let mut w = Where::default();
    if let Some(t) = f.since_ms {
        w.add("initiated_ms >= ?", vec![param(t)]);
    }
    if let Some(t) = f.until_ms {
        w.add("initiated_ms < ?", vec![param(t)]);
    }
    if let Some(n) = &f.number {
        w.add("customer_number = ?", vec![param(n.clone())]);
    }
    if let Some(q) = &f.queue {
        w.add("queue = ?", vec![param(q.clone())]);
    }
    if let Some(id) = &f.contact_id {
        w.add(
            "initial_contact_id IN (SELECT initial_contact_id FROM contacts WHERE id = ? UNION SELECT ?::text)",
            vec![param(id.clone()), param(id.clone())],
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
    page(client, &sql, w, limit, rows::contact, |r| Cursor {
        ms: r.initiated_ms,
        id: r.id.clone(),
    })
    .await
}

pub(super) async fn callbacks(
    client: &Client,
    f: &CallbackFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page<CallbackRecord>, StoreError> {
    let mut w = Where::default();
    if let Some(s) = f.state {
        w.add("state = ?", vec![param(s.as_str().to_string())]);
    }
    if f.pending {
        let pending: Vec<String> = CallbackState::PENDING
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        w.add("state = ANY(?)", vec![param(pending)]);
    }
    if let Some(q) = &f.queue {
        w.add("queue = ?", vec![param(q.clone())]);
    }
    if let Some(n) = &f.number {
        w.add("number = ?", vec![param(n.clone())]);
    }
    w.after("created_ms", after, Order::NewestFirst);
    let sql = format!(
        "SELECT * FROM callbacks {} ORDER BY created_ms DESC, id DESC",
        w.clause()
    );
    page(client, &sql, w, limit, rows::callback, |r| Cursor {
        ms: r.created_ms,
        id: r.id.clone(),
    })
    .await
}

/// Per queue since `since_ms`, as `store::query::day_counts`.
pub(super) async fn day_counts(
    client: &Client,
    since_ms: i64,
) -> Result<HashMap<String, DayCounts>, StoreError> {
    let mut out: HashMap<String, DayCounts> = HashMap::new();
    type Set = fn(&mut DayCounts, u64);
    let queries: [(&str, Set); 3] = [
        (
            "SELECT queue, COUNT(*) FROM contacts WHERE connected_to_agent_ms >= $1
               AND initiation IN ('inbound', 'callback') AND queue IS NOT NULL GROUP BY queue",
            |d, n| d.handled = n,
        ),
        (
            "SELECT queue, COUNT(*) FROM contacts WHERE disconnected_ms >= $1
               AND initiation = 'inbound' AND enqueued_ms IS NOT NULL AND connected_to_agent_ms IS NULL
               AND disconnect_reason IN ('remote hung up', 'caller cancelled') AND queue IS NOT NULL GROUP BY queue",
            |d, n| d.abandoned = n,
        ),
        (
            "SELECT queue, COUNT(*) FROM contacts WHERE connected_ms >= $1
               AND initiation = 'dial_attempt' AND queue IS NOT NULL GROUP BY queue",
            |d, n| d.callbacks_connected = n,
        ),
    ];
    for (sql, set) in queries {
        for r in client.query(sql, &[&since_ms]).await? {
            let queue: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            set(out.entry(queue).or_default(), n.max(0) as u64);
        }
    }
    Ok(out)
}
