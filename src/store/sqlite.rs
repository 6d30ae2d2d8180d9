//! The embedded SQLite store: one file in the data directory, WAL mode,
//! `synchronous = FULL` so a committed callback survives even a power cut.

use super::query::{self, CallbackFilter, Cursor, DayCounts, Page, RecordFilter};
use super::records::{Attempt, CallbackRecord, CallbackState, ContactRecord, NewCallback};
use super::{Store, StoreError, contact_rows};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Versioned migrations, applied in order at start-up; `user_version`
/// records how many have run. Never edit one that shipped: add another.
const MIGRATIONS: &[&str] = &[
    // 1: the original schema.
    r#"
CREATE TABLE IF NOT EXISTS callbacks (
    id TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL,
    initial_contact_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    number TEXT NOT NULL,
    initial_start_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    not_before_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    max_retries INTEGER NOT NULL,
    retry_interval_s INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    state_ms INTEGER NOT NULL,
    last_outcome TEXT,
    agent TEXT,
    attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS callbacks_pending ON callbacks(state, initial_start_ms, created_ms);
CREATE INDEX IF NOT EXISTS callbacks_number ON callbacks(queue, number, state);
CREATE TABLE IF NOT EXISTS callback_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    callback_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS callback_events_cb ON callback_events(callback_id, seq);
CREATE TABLE IF NOT EXISTS attempts (
    callback_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    agent TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    outcome TEXT,
    sip_status INTEGER,
    PRIMARY KEY (callback_id, n)
);
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY,
    initial_contact_id TEXT NOT NULL,
    initiation TEXT NOT NULL,
    queue TEXT,
    agent TEXT,
    customer_number TEXT,
    dialled TEXT,
    caller_id_used TEXT,
    call_id TEXT,
    initiated_ms INTEGER NOT NULL,
    enqueued_ms INTEGER,
    connected_ms INTEGER,
    disconnected_ms INTEGER,
    disconnect_reason TEXT,
    attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS contacts_initial ON contacts(initial_contact_id);
CREATE INDEX IF NOT EXISTS contacts_time ON contacts(initiated_ms);
"#,
    // 2: one pending callback per number and queue where the queue
    // dedupes, enforced by the database (a check-then-insert races).
    r#"
ALTER TABLE callbacks ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX callbacks_dedupe ON callbacks(dedupe_key)
    WHERE dedupe_key IS NOT NULL
      AND state IN ('scheduled', 'queued', 'offered', 'dialing');
"#,
    // 3: contact records chained like Amazon Connect's (previous contact,
    // agent legs, dial attempts with outcome, SIP status and ring time;
    // offered and connected-to-agent times), and indexes for paging and
    // for the queries by number, queue and day.
    r#"
ALTER TABLE contacts ADD COLUMN previous_contact_id TEXT;
ALTER TABLE contacts ADD COLUMN attempt INTEGER;
ALTER TABLE contacts ADD COLUMN outcome TEXT;
ALTER TABLE contacts ADD COLUMN sip_status INTEGER;
ALTER TABLE contacts ADD COLUMN ring_ms INTEGER;
ALTER TABLE contacts ADD COLUMN offered_ms INTEGER;
ALTER TABLE contacts ADD COLUMN connected_to_agent_ms INTEGER;
-- Until now an inbound record's connected_ms was the agent's answer.
UPDATE contacts SET connected_to_agent_ms = connected_ms
    WHERE initiation = 'inbound' AND connected_ms IS NOT NULL;
UPDATE contacts SET previous_contact_id = initial_contact_id
    WHERE initiation = 'callback' AND initial_contact_id <> id;
DROP INDEX IF EXISTS contacts_time;
CREATE INDEX contacts_page ON contacts(initiated_ms, id);
CREATE INDEX contacts_number ON contacts(customer_number, initiated_ms);
CREATE INDEX contacts_queue ON contacts(queue, initiated_ms);
CREATE INDEX contacts_agent_time ON contacts(connected_to_agent_ms) WHERE connected_to_agent_ms IS NOT NULL;
CREATE INDEX contacts_connected ON contacts(connected_ms) WHERE connected_ms IS NOT NULL;
CREATE INDEX contacts_ended ON contacts(disconnected_ms) WHERE disconnected_ms IS NOT NULL;
CREATE INDEX callbacks_page ON callbacks(created_ms, id);
"#,
    // 4: small facts about the database itself (which dial rules last
    // checked every pending callback).
    r#"
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Expiry is looked for every few seconds: from the index, not by reading
-- every pending callback.
CREATE INDEX callbacks_expiry ON callbacks(expires_ms)
    WHERE state IN ('scheduled', 'queued');
"#,
];

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn attrs_json(a: &BTreeMap<String, String>) -> String {
    serde_json::to_string(a).unwrap_or_else(|_| "{}".into())
}

fn attrs_parse(s: &str) -> BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn callback_from_row(r: &Row<'_>) -> rusqlite::Result<CallbackRecord> {
    let state: String = r.get("state")?;
    let attrs: String = r.get("attributes")?;
    Ok(CallbackRecord {
        id: r.get("id")?,
        contact_id: r.get("contact_id")?,
        initial_contact_id: r.get("initial_contact_id")?,
        queue: r.get("queue")?,
        number: r.get("number")?,
        initial_start_ms: r.get("initial_start_ms")?,
        created_ms: r.get("created_ms")?,
        not_before_ms: r.get("not_before_ms")?,
        expires_ms: r.get("expires_ms")?,
        max_retries: r.get("max_retries")?,
        retry_interval_s: r.get::<_, i64>("retry_interval_s")?.max(0) as u64,
        attempts: r.get("attempts")?,
        // An unknown state can only come from a newer version's database:
        // treat it as stopped rather than dial it.
        state: CallbackState::parse(&state).unwrap_or(CallbackState::Stopped),
        state_ms: r.get("state_ms")?,
        last_outcome: r.get("last_outcome")?,
        agent: r.get("agent")?,
        attributes: attrs_parse(&attrs),
    })
}

fn contact_from_row(r: &Row<'_>) -> rusqlite::Result<ContactRecord> {
    let attrs: String = r.get("attributes")?;
    Ok(ContactRecord {
        id: r.get("id")?,
        initial_contact_id: r.get("initial_contact_id")?,
        previous_contact_id: r.get("previous_contact_id")?,
        initiation: r.get("initiation")?,
        queue: r.get("queue")?,
        agent: r.get("agent")?,
        customer_number: r.get("customer_number")?,
        dialled: r.get("dialled")?,
        caller_id_used: r.get("caller_id_used")?,
        call_id: r.get("call_id")?,
        attempt: r.get("attempt")?,
        outcome: r.get("outcome")?,
        sip_status: r.get("sip_status")?,
        ring_ms: r.get("ring_ms")?,
        initiated_ms: r.get("initiated_ms")?,
        enqueued_ms: r.get("enqueued_ms")?,
        offered_ms: r.get("offered_ms")?,
        connected_ms: r.get("connected_ms")?,
        connected_to_agent_ms: r.get("connected_to_agent_ms")?,
        disconnected_ms: r.get("disconnected_ms")?,
        disconnect_reason: r.get("disconnect_reason")?,
        attributes: attrs_parse(&attrs),
    })
}

/// The SQL set of pending states, derived from the one list in records.rs
/// so a new pending state cannot be forgotten by the queries.
pub(super) fn pending_sql() -> String {
    let states: Vec<String> = CallbackState::PENDING
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", states.join(","))
}

impl SqliteStore {
    /// Opens (creating if needed) `<dir>/callgate.sqlite3`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Worker(format!("creating {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("callgate.sqlite3"))?;
        Self::init(conn)
    }

    #[cfg(test)]
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    /// Brings the schema up to date, one migration per transaction.
    fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
        let done: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let done = usize::try_from(done).unwrap_or(usize::MAX);
        if done > MIGRATIONS.len() {
            return Err(StoreError::Worker(format!(
                "the database has schema version {done}; this callgate knows {}: refusing to run an older version on it",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn init(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        Self::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// A write that expects the callback in one of `from` finds it elsewhere
    /// (stopped, expired or dialled meanwhile): refused, nothing written.
    fn check_state(rec: &CallbackRecord, from: &[CallbackState]) -> Result<(), StoreError> {
        if from.contains(&rec.state) {
            return Ok(());
        }
        let want: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        Err(StoreError::WrongState(
            rec.id.clone(),
            rec.state.as_str().into(),
            want.join("|"),
        ))
    }

    fn get(conn: &Connection, id: &str) -> Result<Option<CallbackRecord>, StoreError> {
        Ok(conn
            .query_row(
                "SELECT * FROM callbacks WHERE id = ?1",
                params![id],
                callback_from_row,
            )
            .optional()?)
    }

    fn event(
        conn: &Connection,
        id: &str,
        at: i64,
        state: CallbackState,
        detail: &str,
    ) -> Result<(), StoreError> {
        conn.execute(
            "INSERT INTO callback_events (callback_id, at_ms, state, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, at, state.as_str(), detail],
        )?;
        Ok(())
    }
}

impl Store for SqliteStore {
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    fn insert_callback(&self, cb: &NewCallback) -> Result<CallbackRecord, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let state = if cb.not_before_ms > cb.created_ms {
            CallbackState::Scheduled
        } else {
            CallbackState::Queued
        };
        let dedupe_key = cb.dedupe.then(|| format!("{}\n{}", cb.queue, cb.number));
        let inserted = tx.execute(
            "INSERT INTO callbacks (id, contact_id, initial_contact_id, queue, number, initial_start_ms, created_ms, not_before_ms, expires_ms, max_retries, retry_interval_s, attempts, state, state_ms, attributes, dedupe_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?7, ?13, ?14)",
            params![
                cb.id,
                cb.contact_id,
                cb.initial_contact_id,
                cb.queue,
                cb.number,
                cb.initial_start_ms,
                cb.created_ms,
                cb.not_before_ms,
                cb.expires_ms,
                cb.max_retries,
                cb.retry_interval_s as i64,
                state.as_str(),
                attrs_json(&cb.attributes),
                dedupe_key,
            ],
        );
        match inserted {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE && cb.dedupe =>
            {
                return Err(StoreError::Duplicate(cb.queue.clone(), cb.number.clone()));
            }
            other => other?,
        };
        Self::event(&tx, &cb.id, cb.created_ms, state, "created")?;
        let rec = Self::get(&tx, &cb.id)?.ok_or_else(|| StoreError::NotFound(cb.id.clone()))?;
        tx.commit()?;
        Ok(rec)
    }

    fn callback(&self, id: &str) -> Result<Option<CallbackRecord>, StoreError> {
        Self::get(&self.conn.lock(), id)
    }

    fn pending_callbacks(&self) -> Result<Vec<CallbackRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT * FROM callbacks WHERE state IN {} ORDER BY initial_start_ms, created_ms, id",
            pending_sql()
        ))?;
        let rows = stmt.query_map([], callback_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn expiring_callbacks(&self, now_ms: i64) -> Result<Vec<CallbackRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT * FROM callbacks WHERE state IN ('scheduled', 'queued') AND expires_ms <= ?1",
        )?;
        let rows = stmt.query_map([now_ms], callback_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn transition(
        &self,
        id: &str,
        from: &[CallbackState],
        to: CallbackState,
        detail: &str,
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let rec = Self::get(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        Self::check_state(&rec, from)?;
        tx.execute(
            "UPDATE callbacks SET state = ?2, state_ms = ?3 WHERE id = ?1",
            params![id, to.as_str(), now_ms],
        )?;
        Self::event(&tx, id, now_ms, to, detail)?;
        let rec = Self::get(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        tx.commit()?;
        Ok(rec)
    }

    fn begin_attempt(
        &self,
        id: &str,
        agent: &str,
        from: &[CallbackState],
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let rec = Self::get(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        Self::check_state(&rec, from)?;
        let n = rec.attempts + 1;
        tx.execute(
            "UPDATE callbacks SET state = 'dialing', state_ms = ?2, attempts = ?3, agent = ?4 WHERE id = ?1",
            params![id, now_ms, n, agent],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO attempts (callback_id, n, agent, started_ms) VALUES (?1, ?2, ?3, ?4)",
            params![id, n, agent, now_ms],
        )?;
        Self::event(
            &tx,
            id,
            now_ms,
            CallbackState::Dialing,
            &format!("attempt {n} by {agent}"),
        )?;
        let rec = Self::get(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        tx.commit()?;
        Ok(rec)
    }

    fn end_attempt(
        &self,
        id: &str,
        outcome: &str,
        sip_status: Option<u16>,
        from: &[CallbackState],
        next: CallbackState,
        not_before_ms: i64,
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let rec = Self::get(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        Self::check_state(&rec, from)?;
        tx.execute(
            "UPDATE attempts SET ended_ms = ?3, outcome = ?4, sip_status = ?5 WHERE callback_id = ?1 AND n = ?2",
            params![id, rec.attempts, now_ms, outcome, sip_status],
        )?;
        tx.execute(
            "UPDATE callbacks SET state = ?2, state_ms = ?3, last_outcome = ?4, not_before_ms = ?5 WHERE id = ?1",
            params![id, next.as_str(), now_ms, outcome, not_before_ms],
        )?;
        Self::event(
            &tx,
            id,
            now_ms,
            next,
            &format!("attempt {}: {outcome}", rec.attempts),
        )?;
        let rec = Self::get(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        tx.commit()?;
        Ok(rec)
    }

    fn release(
        &self,
        id: &str,
        from: &[CallbackState],
        to: CallbackState,
        detail: &str,
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let rec = Self::get(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        Self::check_state(&rec, from)?;
        if rec.state == CallbackState::Dialing {
            tx.execute(
                "DELETE FROM attempts WHERE callback_id = ?1 AND n = ?2",
                params![id, rec.attempts],
            )?;
            tx.execute(
                "UPDATE callbacks SET attempts = attempts - 1 WHERE id = ?1 AND attempts > 0",
                params![id],
            )?;
        }
        tx.execute(
            "UPDATE callbacks SET state = ?2, state_ms = ?3 WHERE id = ?1",
            params![id, to.as_str(), now_ms],
        )?;
        Self::event(&tx, id, now_ms, to, detail)?;
        let rec = Self::get(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        tx.commit()?;
        Ok(rec)
    }

    fn callbacks_page(
        &self,
        filter: &CallbackFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<CallbackRecord>, StoreError> {
        query::callbacks(&self.conn.lock(), filter, after, limit, callback_from_row)
    }

    fn callback_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt =
            conn.prepare("SELECT state, COUNT(*) FROM callbacks GROUP BY state ORDER BY state")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare("SELECT n, agent, started_ms, ended_ms, outcome, sip_status FROM attempts WHERE callback_id = ?1 ORDER BY n")?;
        let rows = stmt.query_map(params![id], |r| {
            Ok(Attempt {
                n: r.get(0)?,
                agent: r.get(1)?,
                started_ms: r.get(2)?,
                ended_ms: r.get(3)?,
                outcome: r.get(4)?,
                sip_status: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn history(&self, id: &str) -> Result<Vec<(i64, String, String)>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT at_ms, state, detail FROM callback_events WHERE callback_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn upsert_contacts(&self, batch: &[ContactRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        for c in batch {
            contact_rows::write(&tx, c)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn close_interrupted_contacts(&self, now_ms: i64) -> Result<usize, StoreError> {
        contact_rows::close_interrupted(&self.conn.lock(), now_ms)
    }

    fn contact(&self, id: &str) -> Result<Option<ContactRecord>, StoreError> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                "SELECT * FROM contacts WHERE id = ?1",
                params![id],
                contact_from_row,
            )
            .optional()?)
    }

    fn contacts(&self, limit: usize) -> Result<Vec<ContactRecord>, StoreError> {
        let page = self.records(&RecordFilter::default(), None, limit)?;
        Ok(page.items)
    }

    fn records(
        &self,
        filter: &RecordFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<ContactRecord>, StoreError> {
        query::records(&self.conn.lock(), filter, after, limit, contact_from_row)
    }

    fn day_counts(&self, since_ms: i64) -> Result<HashMap<String, DayCounts>, StoreError> {
        query::day_counts(&self.conn.lock(), since_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_cb(id: &str, start: i64) -> NewCallback {
        NewCallback {
            id: id.into(),
            contact_id: format!("c-{id}"),
            initial_contact_id: format!("i-{id}"),
            queue: "cbq".into(),
            number: "+12015550123".into(),
            initial_start_ms: start,
            created_ms: 1000,
            not_before_ms: 1000 + 99_000,
            expires_ms: 1000 + 7 * 86_400_000,
            max_retries: 2,
            retry_interval_s: 600,
            attributes: BTreeMap::from([("k".to_string(), "v".to_string())]),
            dedupe: false,
        }
    }

    #[test]
    fn one_pending_callback_per_number_where_the_queue_dedupes() {
        let s = SqliteStore::in_memory().unwrap();
        let dedupe = |id: &str| NewCallback {
            dedupe: true,
            ..new_cb(id, 1)
        };
        s.insert_callback(&dedupe("a")).unwrap();
        assert!(matches!(
            s.insert_callback(&dedupe("b")),
            Err(StoreError::Duplicate(..))
        ));
        assert!(s.callback("b").unwrap().is_none(), "nothing written");
        // Without dedupe the queue takes several.
        s.insert_callback(&new_cb("c", 1)).unwrap();
        // Once the first is finished, the number may have a new one.
        s.transition(
            "a",
            &[CallbackState::Scheduled],
            CallbackState::Stopped,
            "stop",
            2,
        )
        .unwrap();
        s.insert_callback(&dedupe("d")).unwrap();
    }

    #[test]
    fn a_released_dial_is_not_counted() {
        let s = SqliteStore::in_memory().unwrap();
        s.insert_callback(&new_cb("a", 1)).unwrap();
        s.transition(
            "a",
            &[CallbackState::Scheduled],
            CallbackState::Offered,
            "o",
            2,
        )
        .unwrap();
        s.begin_attempt("a", "alice", &[CallbackState::Offered], 3)
            .unwrap();
        let r = s
            .release(
                "a",
                &[CallbackState::Dialing],
                CallbackState::Queued,
                "shutdown",
                4,
            )
            .unwrap();
        assert_eq!((r.state, r.attempts), (CallbackState::Queued, 0));
        assert!(s.attempts("a").unwrap().is_empty());
        assert!(matches!(
            s.release(
                "a",
                &[CallbackState::Dialing],
                CallbackState::Queued,
                "again",
                5
            ),
            Err(StoreError::WrongState(..))
        ));
    }

    #[test]
    fn migrations_run_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        // Reopening runs nothing again (the ALTER TABLE would fail).
        let s = SqliteStore::open(dir.path()).unwrap();
        s.insert_callback(&new_cb("a", 1)).unwrap();
        drop(s);
        let conn = Connection::open(dir.path().join("callgate.sqlite3")).unwrap();
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .unwrap();
        drop(conn);
        assert!(SqliteStore::open(dir.path()).is_err());
    }

    #[test]
    fn migration_3_keeps_earlier_records_and_their_meaning() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A database as version 2 left it.
            let mut conn = Connection::open(dir.path().join("callgate.sqlite3")).unwrap();
            for sql in &MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(
                "INSERT INTO contacts (id, initial_contact_id, initiation, initiated_ms, connected_ms)
                 VALUES ('in', 'in', 'inbound', 1, 5), ('cb', 'in', 'callback', 2, NULL);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        let inbound = s.contact("in").unwrap().unwrap();
        assert_eq!(inbound.connected_to_agent_ms, Some(5));
        let cb = s.contact("cb").unwrap().unwrap();
        assert_eq!(cb.previous_contact_id.as_deref(), Some("in"));
    }

    #[test]
    fn lifecycle_with_attempts_and_history() {
        let s = SqliteStore::in_memory().unwrap();
        let r = s.insert_callback(&new_cb("a", 500)).unwrap();
        assert_eq!(r.state, CallbackState::Scheduled);
        assert_eq!(r.attributes.get("k").map(String::as_str), Some("v"));
        assert_eq!(s.pending_callbacks().unwrap().len(), 1);
        s.transition(
            "a",
            &[CallbackState::Scheduled],
            CallbackState::Queued,
            "initial delay over",
            100_000,
        )
        .unwrap();
        assert!(matches!(
            s.transition(
                "a",
                &[CallbackState::Scheduled],
                CallbackState::Queued,
                "again",
                100_001
            ),
            Err(StoreError::WrongState(..))
        ));
        s.transition(
            "a",
            &[CallbackState::Queued],
            CallbackState::Offered,
            "offered to alice",
            100_002,
        )
        .unwrap();
        assert!(matches!(
            s.begin_attempt("a", "alice", &[CallbackState::Queued], 100_009),
            Err(StoreError::WrongState(..))
        ));
        let r = s
            .begin_attempt("a", "alice", &[CallbackState::Offered], 100_010)
            .unwrap();
        assert_eq!((r.state, r.attempts), (CallbackState::Dialing, 1));
        let r = s
            .end_attempt(
                "a",
                "no answer",
                Some(487),
                &[CallbackState::Dialing],
                CallbackState::Queued,
                700_010,
                130_000,
            )
            .unwrap();
        assert_eq!(
            (r.state, r.not_before_ms, r.last_outcome.as_deref()),
            (CallbackState::Queued, 700_010, Some("no answer"))
        );
        let att = s.attempts("a").unwrap();
        assert_eq!(att.len(), 1);
        assert_eq!(att[0].sip_status, Some(487));
        let h: Vec<String> = s
            .history("a")
            .unwrap()
            .into_iter()
            .map(|(_, st, _)| st)
            .collect();
        assert_eq!(
            h,
            vec!["scheduled", "queued", "offered", "dialing", "queued"]
        );
    }

    #[test]
    fn pending_in_line_order_and_finished_excluded() {
        let s = SqliteStore::in_memory().unwrap();
        s.insert_callback(&new_cb("late", 900)).unwrap();
        s.insert_callback(&new_cb("early", 100)).unwrap();
        s.insert_callback(&new_cb("done", 50)).unwrap();
        s.transition(
            "done",
            &CallbackState::PENDING,
            CallbackState::Stopped,
            "api",
            2000,
        )
        .unwrap();
        let ids: Vec<String> = s
            .pending_callbacks()
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, vec!["early", "late"]);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            s.insert_callback(&new_cb("x", 1)).unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.pending_callbacks().unwrap().len(), 1);
    }

    #[test]
    fn contact_records_upsert() {
        let s = SqliteStore::in_memory().unwrap();
        let mut c = ContactRecord {
            id: "c1".into(),
            initial_contact_id: "c1".into(),
            initiation: "inbound".into(),
            initiated_ms: 5,
            ..Default::default()
        };
        s.upsert_contacts(std::slice::from_ref(&c)).unwrap();
        c.disconnected_ms = Some(9);
        c.disconnect_reason = Some("caller hung up".into());
        s.upsert_contacts(std::slice::from_ref(&c)).unwrap();
        let back = s.contact("c1").unwrap().unwrap();
        assert_eq!(back.disconnect_reason.as_deref(), Some("caller hung up"));
        assert_eq!(s.contacts(10).unwrap().len(), 1);
    }
}
