//! Rows to records and back, in PostgreSQL's types (every integer a
//! BIGINT).

use super::super::StoreError;
use super::super::records::{CallbackRecord, CallbackState, ContactRecord};
use std::collections::BTreeMap;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

pub(super) fn attrs_json(a: &BTreeMap<String, String>) -> String {
    serde_json::to_string(a).unwrap_or_else(|_| "{}".into())
}

fn attrs_parse(s: &str) -> BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn status_of(v: Option<i64>) -> Option<u16> {
    v.and_then(|s| u16::try_from(s).ok())
}

pub(super) fn callback(r: &Row) -> Result<CallbackRecord, StoreError> {
    let state: String = r.try_get("state")?;
    let attrs: String = r.try_get("attributes")?;
    Ok(CallbackRecord {
        id: r.try_get("id")?,
        contact_id: r.try_get("contact_id")?,
        initial_contact_id: r.try_get("initial_contact_id")?,
        queue: r.try_get("queue")?,
        number: r.try_get("number")?,
        initial_start_ms: r.try_get("initial_start_ms")?,
        created_ms: r.try_get("created_ms")?,
        not_before_ms: r.try_get("not_before_ms")?,
        expires_ms: r.try_get("expires_ms")?,
        max_retries: u32_of(r.try_get("max_retries")?),
        retry_interval_s: r.try_get::<_, i64>("retry_interval_s")?.max(0) as u64,
        attempts: u32_of(r.try_get("attempts")?),
        // An unknown state can only come from a newer version: treat it as
        // stopped rather than dial it.
        state: CallbackState::parse(&state).unwrap_or(CallbackState::Stopped),
        state_ms: r.try_get("state_ms")?,
        last_outcome: r.try_get("last_outcome")?,
        agent: r.try_get("agent")?,
        attributes: attrs_parse(&attrs),
    })
}

pub(super) fn contact(r: &Row) -> Result<ContactRecord, StoreError> {
    let attrs: String = r.try_get("attributes")?;
    Ok(ContactRecord {
        id: r.try_get("id")?,
        initial_contact_id: r.try_get("initial_contact_id")?,
        previous_contact_id: r.try_get("previous_contact_id")?,
        initiation: r.try_get("initiation")?,
        queue: r.try_get("queue")?,
        agent: r.try_get("agent")?,
        customer_number: r.try_get("customer_number")?,
        dialled: r.try_get("dialled")?,
        caller_id_used: r.try_get("caller_id_used")?,
        call_id: r.try_get("call_id")?,
        attempt: r.try_get::<_, Option<i64>>("attempt")?.map(u32_of),
        outcome: r.try_get("outcome")?,
        sip_status: status_of(r.try_get("sip_status")?),
        ring_ms: r.try_get("ring_ms")?,
        initiated_ms: r.try_get("initiated_ms")?,
        enqueued_ms: r.try_get("enqueued_ms")?,
        offered_ms: r.try_get("offered_ms")?,
        connected_ms: r.try_get("connected_ms")?,
        connected_to_agent_ms: r.try_get("connected_to_agent_ms")?,
        disconnected_ms: r.try_get("disconnected_ms")?,
        disconnect_reason: r.try_get("disconnect_reason")?,
        attributes: attrs_parse(&attrs),
    })
}

/// Columns every contact write may fill in, never clear (as in SQLite's
/// `contact_rows`: a caller's task saving its record does not wipe the
/// time the dispatcher recorded an offer).
const FILLED: &str = "previous_contact_id = COALESCE($2, previous_contact_id),
    queue = COALESCE($3, queue), agent = COALESCE($4, agent),
    customer_number = COALESCE($5, customer_number), dialled = COALESCE($6, dialled),
    caller_id_used = COALESCE($7, caller_id_used), call_id = COALESCE($8, call_id),
    attempt = COALESCE($9, attempt), outcome = COALESCE($10, outcome),
    sip_status = COALESCE($11, sip_status), ring_ms = COALESCE($12, ring_ms),
    enqueued_ms = COALESCE($13, enqueued_ms), offered_ms = COALESCE($14, offered_ms),
    connected_ms = COALESCE($15, connected_ms),
    connected_to_agent_ms = COALESCE($16, connected_to_agent_ms),
    disconnected_ms = COALESCE($17, disconnected_ms),
    disconnect_reason = COALESCE($18, disconnect_reason),
    attributes = CASE WHEN $19::text = '{}' THEN attributes ELSE $19::text END";

pub(super) async fn write_contact(
    tx: &deadpool_postgres::Transaction<'_>,
    c: &ContactRecord,
    node: &str,
) -> Result<(), StoreError> {
    let attributes = attrs_json(&c.attributes);
    let attempt = c.attempt.map(i64::from);
    let sip_status = c.sip_status.map(i64::from);
    let filled: [&(dyn ToSql + Sync); 19] = [
        &c.id,
        &c.previous_contact_id,
        &c.queue,
        &c.agent,
        &c.customer_number,
        &c.dialled,
        &c.caller_id_used,
        &c.call_id,
        &attempt,
        &c.outcome,
        &sip_status,
        &c.ring_ms,
        &c.enqueued_ms,
        &c.offered_ms,
        &c.connected_ms,
        &c.connected_to_agent_ms,
        &c.disconnected_ms,
        &c.disconnect_reason,
        &attributes,
    ];
    if !c.is_update() {
        tx.execute(
            "INSERT INTO contacts (id, initial_contact_id, initiation, initiated_ms, node)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            &[
                &c.id,
                &c.initial_contact_id,
                &c.initiation,
                &c.initiated_ms,
                &node,
            ],
        )
        .await?;
    }
    tx.execute(
        &format!("UPDATE contacts SET {FILLED} WHERE id = $1"),
        &filled,
    )
    .await?;
    Ok(())
}
