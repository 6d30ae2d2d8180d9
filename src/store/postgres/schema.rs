//! The PostgreSQL schema, as versioned migrations applied in order at
//! start-up (and by `callgate migrate`). `schema_migrations` records each
//! one applied; an advisory lock makes nodes starting together apply each
//! exactly once. Never edit one that shipped: add another.

use super::super::StoreError;
use tokio_postgres::Client;

/// Key of the advisory lock held while migrating (any constant unique to
/// callgate: "callgate" in ASCII).
const LOCK_KEY: i64 = 0x63_616c_6c67_6174;

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the SQLite schema as of its version 3, with integers as BIGINT,
    // plus what several nodes need: a lease on each callback (holder,
    // expiry by the database's clock, a counter bumped by every claim) and
    // the nodes' heartbeats.
    r#"
CREATE TABLE callbacks (
    id TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL,
    initial_contact_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    number TEXT NOT NULL,
    initial_start_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    not_before_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    max_retries BIGINT NOT NULL,
    retry_interval_s BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    state_ms BIGINT NOT NULL,
    last_outcome TEXT,
    agent TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    dedupe_key TEXT,
    lease_node TEXT,
    lease_expires_ms BIGINT,
    lease_epoch BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX callbacks_pending ON callbacks(state, initial_start_ms, created_ms);
CREATE INDEX callbacks_number ON callbacks(queue, number, state);
CREATE INDEX callbacks_page ON callbacks(created_ms, id);
CREATE INDEX callbacks_claimable ON callbacks(queue, initial_start_ms, created_ms, id)
    WHERE state IN ('scheduled', 'queued', 'offered', 'dialing');
CREATE INDEX callbacks_lease ON callbacks(lease_node) WHERE lease_node IS NOT NULL;
CREATE UNIQUE INDEX callbacks_dedupe ON callbacks(dedupe_key)
    WHERE dedupe_key IS NOT NULL
      AND state IN ('scheduled', 'queued', 'offered', 'dialing');
CREATE TABLE callback_events (
    seq BIGSERIAL PRIMARY KEY,
    callback_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX callback_events_cb ON callback_events(callback_id, seq);
CREATE TABLE attempts (
    callback_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    agent TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT,
    outcome TEXT,
    sip_status BIGINT,
    node TEXT,
    PRIMARY KEY (callback_id, n)
);
CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    initial_contact_id TEXT NOT NULL,
    previous_contact_id TEXT,
    initiation TEXT NOT NULL,
    queue TEXT,
    agent TEXT,
    customer_number TEXT,
    dialled TEXT,
    caller_id_used TEXT,
    call_id TEXT,
    attempt BIGINT,
    outcome TEXT,
    sip_status BIGINT,
    ring_ms BIGINT,
    initiated_ms BIGINT NOT NULL,
    enqueued_ms BIGINT,
    offered_ms BIGINT,
    connected_ms BIGINT,
    connected_to_agent_ms BIGINT,
    disconnected_ms BIGINT,
    disconnect_reason TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    -- The node that wrote it first: at start-up a node closes only its
    -- own records a crash cut short, never another node's live calls.
    node TEXT
);
CREATE INDEX contacts_initial ON contacts(initial_contact_id);
CREATE INDEX contacts_page ON contacts(initiated_ms, id);
CREATE INDEX contacts_number ON contacts(customer_number, initiated_ms);
CREATE INDEX contacts_queue ON contacts(queue, initiated_ms);
CREATE INDEX contacts_agent_time ON contacts(connected_to_agent_ms) WHERE connected_to_agent_ms IS NOT NULL;
CREATE INDEX contacts_connected ON contacts(connected_ms) WHERE connected_ms IS NOT NULL;
CREATE INDEX contacts_ended ON contacts(disconnected_ms) WHERE disconnected_ms IS NOT NULL;
CREATE INDEX contacts_open ON contacts(node) WHERE disconnected_ms IS NULL;
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    sip TEXT NOT NULL,
    http TEXT NOT NULL,
    version TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    seen_ms BIGINT NOT NULL
);
"#,
];

/// Applies the migrations not yet applied; returns the schema version.
pub(super) async fn migrate(client: &mut Client) -> Result<usize, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY,
                applied_ms BIGINT NOT NULL
            )",
        )
        .await?;
    let tx = client.transaction().await?;
    // Nodes starting at once queue here; the second finds the work done.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    let done: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let done = usize::try_from(done).unwrap_or(usize::MAX);
    if done > MIGRATIONS.len() {
        return Err(StoreError::Worker(format!(
            "the database has schema version {done}; this callgate knows {}: refusing to run an older version on it",
            MIGRATIONS.len()
        )));
    }
    // One transaction for all: PostgreSQL's DDL is transactional, so a
    // failed migration leaves the schema as it was.
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms)
             VALUES ($1, (extract(epoch from clock_timestamp()) * 1000)::bigint)",
            &[&(i as i64 + 1)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(MIGRATIONS.len())
}
