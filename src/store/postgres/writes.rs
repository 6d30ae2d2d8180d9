//! Callback writes, each one transaction that locks the row, checks its
//! state (the lifecycle's `from` states) and, for the writes of an offer
//! or a dial, this node's lease: a node whose lease ran out (it stalled,
//! or lost the database, long enough for another node to take over) can
//! neither ring an agent with the callback nor dial its customer, nor
//! overwrite what the node that took over wrote. This is the fencing the
//! lease needs: the INVITE to the customer leaves only after
//! `begin_attempt` committed under a live lease.

use super::super::StoreError;
use super::super::records::{CallbackRecord, CallbackState, NewCallback};
use super::{Ctx, NOW, rows};
use deadpool_postgres::Transaction;

/// The common arguments of a state write.
pub(super) struct Write {
    id: String,
    from: Vec<CallbackState>,
    /// Detail, agent or outcome, depending on the write.
    text: String,
    now_ms: i64,
}

impl Write {
    pub(super) fn new(id: &str, from: &[CallbackState], text: &str, now_ms: i64) -> Write {
        Write {
            id: id.to_string(),
            from: from.to_vec(),
            text: text.to_string(),
            now_ms,
        }
    }
}

/// Whether a write from `from` to `to` belongs to an offer or a dial in
/// flight, and so needs this node's live lease. Writes that only end a
/// waiting callback (stop, expire, refuse) may come from any node: the
/// API answers on every node, and the lifecycle already forbids them
/// mid-dial.
pub(crate) fn fenced(from: &[CallbackState], to: CallbackState) -> bool {
    use CallbackState as S;
    matches!(to, S::Offered | S::Dialing)
        || (!from.is_empty() && from.iter().all(|s| matches!(s, S::Offered | S::Dialing)))
}

/// Locks the callback's row and checks state and lease.
async fn locked(
    tx: &Transaction<'_>,
    ctx: &Ctx,
    w: &Write,
    fence: bool,
) -> Result<CallbackRecord, StoreError> {
    let st = tx
        .prepare_cached(&format!(
            "SELECT *, (lease_node IS NOT DISTINCT FROM $2 AND lease_expires_ms > {NOW}) AS mine
             FROM callbacks WHERE id = $1 FOR UPDATE"
        ))
        .await?;
    let row = tx
        .query_opt(&st, &[&w.id, &&*ctx.node])
        .await?
        .ok_or_else(|| StoreError::NotFound(w.id.clone()))?;
    let rec = rows::callback(&row)?;
    if !w.from.contains(&rec.state) {
        let want: Vec<&str> = w.from.iter().map(|s| s.as_str()).collect();
        return Err(StoreError::WrongState(
            rec.id,
            rec.state.as_str().into(),
            want.join("|"),
        ));
    }
    let mine: Option<bool> = row.try_get("mine")?;
    if fence && mine != Some(true) {
        let holder: Option<String> = row.try_get("lease_node")?;
        return Err(StoreError::LeaseLost(
            rec.id,
            holder.unwrap_or_else(|| "nobody".into()),
        ));
    }
    Ok(rec)
}

/// The lease after a write: cleared once the callback is finished (or
/// handed back), extended while this node works on it, else untouched.
#[derive(Clone, Copy)]
enum Lease {
    Keep = 0,
    Extend = 1,
    Clear = 2,
}

fn lease_after(to: CallbackState, fence: bool, handed_back: bool) -> Lease {
    if handed_back || !to.is_pending() {
        Lease::Clear
    } else if fence {
        Lease::Extend
    } else {
        Lease::Keep
    }
}

async fn event(
    tx: &Transaction<'_>,
    id: &str,
    at: i64,
    state: CallbackState,
    detail: &str,
) -> Result<(), StoreError> {
    let st = tx
        .prepare_cached(
            "INSERT INTO callback_events (callback_id, at_ms, state, detail) VALUES ($1, $2, $3, $4)",
        )
        .await?;
    tx.execute(&st, &[&id, &at, &state.as_str(), &detail])
        .await?;
    Ok(())
}

/// Updates the callback row: state and time always; attempts, agent,
/// outcome and not-before when given; the lease as `lease_after` says.
#[allow(clippy::too_many_arguments)]
async fn update(
    tx: &Transaction<'_>,
    ctx: &Ctx,
    id: &str,
    to: CallbackState,
    now_ms: i64,
    attempts: Option<i64>,
    agent: Option<&str>,
    outcome: Option<&str>,
    not_before_ms: Option<i64>,
    lease: Lease,
) -> Result<CallbackRecord, StoreError> {
    let st = tx
        .prepare_cached(&format!(
            "UPDATE callbacks SET state = $2, state_ms = $3,
                 attempts = COALESCE($4, attempts), agent = COALESCE($5, agent),
                 last_outcome = COALESCE($6, last_outcome),
                 not_before_ms = COALESCE($7, not_before_ms),
                 lease_node = CASE WHEN $8::bigint = 2 THEN NULL ELSE lease_node END,
                 lease_expires_ms = CASE $8::bigint WHEN 2 THEN NULL
                     WHEN 1 THEN {NOW} + $9::bigint ELSE lease_expires_ms END
             WHERE id = $1 RETURNING *"
        ))
        .await?;
    let row = tx
        .query_one(
            &st,
            &[
                &id,
                &to.as_str(),
                &now_ms,
                &attempts,
                &agent,
                &outcome,
                &not_before_ms,
                &(lease as i64),
                &ctx.lease_ms,
            ],
        )
        .await?;
    rows::callback(&row)
}

pub(super) async fn insert_callback(
    ctx: &Ctx,
    cb: &NewCallback,
) -> Result<CallbackRecord, StoreError> {
    let mut c = ctx.client().await?;
    let tx = c.transaction().await?;
    let state = if cb.not_before_ms > cb.created_ms {
        CallbackState::Scheduled
    } else {
        CallbackState::Queued
    };
    let dedupe_key = cb.dedupe.then(|| format!("{}\n{}", cb.queue, cb.number));
    let inserted = tx
        .query_one(
            "INSERT INTO callbacks (id, contact_id, initial_contact_id, queue, number, initial_start_ms,
                 created_ms, not_before_ms, expires_ms, max_retries, retry_interval_s, attempts, state,
                 state_ms, attributes, dedupe_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $7, $13, $14) RETURNING *",
            &[
                &cb.id,
                &cb.contact_id,
                &cb.initial_contact_id,
                &cb.queue,
                &cb.number,
                &cb.initial_start_ms,
                &cb.created_ms,
                &cb.not_before_ms,
                &cb.expires_ms,
                &i64::from(cb.max_retries),
                &(cb.retry_interval_s.min(i64::MAX as u64) as i64),
                &state.as_str(),
                &rows::attrs_json(&cb.attributes),
                &dedupe_key,
            ],
        )
        .await;
    let row = match inserted {
        Err(e)
            if cb.dedupe
                && e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            return Err(StoreError::Duplicate(cb.queue.clone(), cb.number.clone()));
        }
        other => other?,
    };
    event(&tx, &cb.id, cb.created_ms, state, "created").await?;
    tx.commit().await?;
    rows::callback(&row)
}

pub(super) async fn transition(
    ctx: &Ctx,
    w: Write,
    to: CallbackState,
) -> Result<CallbackRecord, StoreError> {
    let fence = fenced(&w.from, to);
    let mut c = ctx.client().await?;
    let tx = c.transaction().await?;
    locked(&tx, ctx, &w, fence).await?;
    let lease = lease_after(to, fence, false);
    let rec = update(&tx, ctx, &w.id, to, w.now_ms, None, None, None, None, lease).await?;
    event(&tx, &w.id, w.now_ms, to, &w.text).await?;
    tx.commit().await?;
    Ok(rec)
}

pub(super) async fn begin_attempt(ctx: &Ctx, w: Write) -> Result<CallbackRecord, StoreError> {
    let to = CallbackState::Dialing;
    let mut c = ctx.client().await?;
    let tx = c.transaction().await?;
    let rec = locked(&tx, ctx, &w, true).await?;
    let n = i64::from(rec.attempts) + 1;
    let agent = w.text.as_str();
    let lease = lease_after(to, true, false);
    let rec = update(
        &tx,
        ctx,
        &w.id,
        to,
        w.now_ms,
        Some(n),
        Some(agent),
        None,
        None,
        lease,
    )
    .await?;
    let st = tx
        .prepare_cached(
            "INSERT INTO attempts (callback_id, n, agent, started_ms, node) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (callback_id, n) DO UPDATE SET agent = $3, started_ms = $4, node = $5,
                 ended_ms = NULL, outcome = NULL, sip_status = NULL",
        )
        .await?;
    tx.execute(&st, &[&w.id, &n, &agent, &w.now_ms, &&*ctx.node])
        .await?;
    event(
        &tx,
        &w.id,
        w.now_ms,
        to,
        &format!("attempt {n} by {agent} on {}", ctx.node),
    )
    .await?;
    tx.commit().await?;
    Ok(rec)
}

pub(super) async fn end_attempt(
    ctx: &Ctx,
    w: Write,
    sip_status: Option<u16>,
    next: CallbackState,
    not_before_ms: i64,
) -> Result<CallbackRecord, StoreError> {
    let fence = fenced(&w.from, next);
    let mut c = ctx.client().await?;
    let tx = c.transaction().await?;
    let rec = locked(&tx, ctx, &w, fence).await?;
    let n = i64::from(rec.attempts);
    let status = sip_status.map(i64::from);
    let st = tx
        .prepare_cached(
            "UPDATE attempts SET ended_ms = $3, outcome = $4, sip_status = $5 WHERE callback_id = $1 AND n = $2",
        )
        .await?;
    tx.execute(&st, &[&w.id, &n, &w.now_ms, &w.text, &status])
        .await?;
    let lease = lease_after(next, fence, false);
    let rec = update(
        &tx,
        ctx,
        &w.id,
        next,
        w.now_ms,
        None,
        None,
        Some(&w.text),
        Some(not_before_ms),
        lease,
    )
    .await?;
    event(
        &tx,
        &w.id,
        w.now_ms,
        next,
        &format!("attempt {n}: {}", w.text),
    )
    .await?;
    tx.commit().await?;
    Ok(rec)
}

pub(super) async fn release(
    ctx: &Ctx,
    w: Write,
    to: CallbackState,
) -> Result<CallbackRecord, StoreError> {
    let fence = fenced(&w.from, to);
    let mut c = ctx.client().await?;
    let tx = c.transaction().await?;
    let rec = locked(&tx, ctx, &w, fence).await?;
    let mut attempts = None;
    if rec.state == CallbackState::Dialing {
        // The dial cut short by shutdown is not counted.
        let n = i64::from(rec.attempts);
        tx.execute(
            "DELETE FROM attempts WHERE callback_id = $1 AND n = $2",
            &[&w.id, &n],
        )
        .await?;
        attempts = Some((n - 1).max(0));
    }
    let lease = lease_after(to, fence, true);
    let rec = update(
        &tx, ctx, &w.id, to, w.now_ms, attempts, None, None, None, lease,
    )
    .await?;
    event(&tx, &w.id, w.now_ms, to, &w.text).await?;
    tx.commit().await?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CallbackState as S;

    #[test]
    fn offers_and_dials_are_fenced_waiting_callbacks_are_not() {
        assert!(fenced(&[S::Scheduled, S::Queued], S::Offered), "offer");
        assert!(fenced(&[S::Offered], S::Dialing), "dial");
        assert!(fenced(&[S::Offered], S::Queued), "unoffer");
        assert!(fenced(&[S::Dialing], S::Queued), "retry");
        assert!(fenced(&[S::Dialing], S::Connected), "answered");
        assert!(fenced(&[S::Offered, S::Dialing], S::Queued), "release");
        assert!(!fenced(&[S::Scheduled, S::Queued, S::Offered], S::Stopped));
        assert!(!fenced(&[S::Scheduled, S::Queued], S::Expired));
        assert!(!fenced(&[S::Scheduled], S::Queued), "routable");
    }
}
