//! Writing contact records. A record is written at each milestone, by
//! whoever knows it: a full write inserts or updates, a partial update
//! (`ContactRecord::update`) only updates. Either way a column is only
//! ever filled in, never cleared (`COALESCE`): a caller's task saving its
//! record does not wipe the time the dispatcher recorded an offer.

use super::StoreError;
use super::records::ContactRecord;
use rusqlite::{Connection, params};

/// Columns every write may fill in.
const FILLED: &str = "previous_contact_id = COALESCE(?2, previous_contact_id),
    queue = COALESCE(?3, queue), agent = COALESCE(?4, agent),
    customer_number = COALESCE(?5, customer_number), dialled = COALESCE(?6, dialled),
    caller_id_used = COALESCE(?7, caller_id_used), call_id = COALESCE(?8, call_id),
    attempt = COALESCE(?9, attempt), outcome = COALESCE(?10, outcome),
    sip_status = COALESCE(?11, sip_status), ring_ms = COALESCE(?12, ring_ms),
    enqueued_ms = COALESCE(?13, enqueued_ms), offered_ms = COALESCE(?14, offered_ms),
    connected_ms = COALESCE(?15, connected_ms),
    connected_to_agent_ms = COALESCE(?16, connected_to_agent_ms),
    disconnected_ms = COALESCE(?17, disconnected_ms),
    disconnect_reason = COALESCE(?18, disconnect_reason),
    attributes = CASE WHEN ?19 = '{}' THEN attributes ELSE ?19 END";

pub fn write(conn: &Connection, c: &ContactRecord) -> Result<(), StoreError> {
    let attributes = serde_json::to_string(&c.attributes).unwrap_or_else(|_| "{}".to_string());
    let filled = params![
        c.id,
        c.previous_contact_id,
        c.queue,
        c.agent,
        c.customer_number,
        c.dialled,
        c.caller_id_used,
        c.call_id,
        c.attempt,
        c.outcome,
        c.sip_status,
        c.ring_ms,
        c.enqueued_ms,
        c.offered_ms,
        c.connected_ms,
        c.connected_to_agent_ms,
        c.disconnected_ms,
        c.disconnect_reason,
        attributes,
    ];
    if c.is_update() {
        conn.prepare_cached(&format!("UPDATE contacts SET {FILLED} WHERE id = ?1"))?
            .execute(filled)?;
        return Ok(());
    }
    // The row exists from here on; then fill in the rest.
    conn.prepare_cached(
        "INSERT INTO contacts (id, initial_contact_id, initiation, initiated_ms)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT(id) DO NOTHING",
    )?
    .execute(params![
        c.id,
        c.initial_contact_id,
        c.initiation,
        c.initiated_ms
    ])?;
    conn.prepare_cached(&format!("UPDATE contacts SET {FILLED} WHERE id = ?1"))?
        .execute(filled)?;
    Ok(())
}

/// At start-up: records of contacts a crash cut short are closed as
/// "interrupted" at `now_ms`. A callback's record stays open while the
/// callback is pending (it is still a live contact) unless its customer
/// had answered; every other open record (an inbound call, an agent leg,
/// a dial attempt, a finished callback) was cut short.
pub fn close_interrupted(conn: &Connection, now_ms: i64) -> Result<usize, StoreError> {
    let n = conn.execute(
        &format!(
            "UPDATE contacts SET disconnected_ms = ?1, disconnect_reason = 'interrupted'
             WHERE disconnected_ms IS NULL AND (
                 initiation <> 'callback'
                 OR connected_ms IS NOT NULL
                 OR id NOT IN (SELECT id FROM callbacks WHERE state IN {}))",
            super::sqlite::pending_sql()
        ),
        params![now_ms],
    )?;
    Ok(n)
}
