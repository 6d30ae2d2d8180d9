//! Contact records are written at every milestone of every contact
//! (initiated, enqueued, connected, disconnected) so that a crash leaves a
//! truthful record. They must not cost a call a fsync each, nor make it
//! wait: a dedicated thread takes them over a channel and writes whatever
//! has queued up in one transaction (several milestones of one contact
//! coalesce: what a later write sets wins, what it leaves unset stays). A kill -9 loses at most the batch being
//! written (milliseconds); `flush` waits for everything sent before it.

use super::{ContactRecord, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use tracing::warn;

/// Records written per transaction at most.
const MAX_BATCH: usize = 1024;

enum Msg {
    Write(Box<ContactRecord>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Where contact records are sent. Cheap to clone.
#[derive(Clone)]
pub struct RecordWriter {
    tx: Sender<Msg>,
}

impl RecordWriter {
    /// Starts the writer thread; it ends when every handle is dropped.
    pub fn spawn(store: Arc<dyn Store>) -> RecordWriter {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("records".into())
            .spawn(move || run(store, rx));
        if let Err(e) = spawned {
            warn!(error = %e, "no record writer thread: contact records are not written");
        }
        RecordWriter { tx }
    }

    /// Queues `rec`: a whole record (inserted, or filling in the stored
    /// one), or a partial update (`ContactRecord::update`) of a stored one.
    pub fn write(&self, rec: ContactRecord) {
        if self.tx.send(Msg::Write(Box::new(rec))).is_err() {
            warn!("record writer gone: contact record not written");
        }
    }

    /// Resolves once every record written before it is committed.
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// The record of a contact in progress: written when opened, at each
/// `save`, and closed when dropped however the contact ends (a task
/// cancelled at shutdown included) — "gateway shut down" unless a reason
/// was set.
pub struct OpenRecord {
    rec: ContactRecord,
    writer: RecordWriter,
}

impl OpenRecord {
    pub fn open(writer: &RecordWriter, rec: ContactRecord) -> OpenRecord {
        writer.write(rec.clone());
        OpenRecord {
            rec,
            writer: writer.clone(),
        }
    }

    /// Writes the record as it now stands (a milestone).
    pub fn save(&self) {
        self.writer.write(self.rec.clone());
    }
}

impl std::ops::Deref for OpenRecord {
    type Target = ContactRecord;
    fn deref(&self) -> &ContactRecord {
        &self.rec
    }
}

impl std::ops::DerefMut for OpenRecord {
    fn deref_mut(&mut self) -> &mut ContactRecord {
        &mut self.rec
    }
}

impl Drop for OpenRecord {
    fn drop(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.rec.disconnected_ms.get_or_insert(now);
        self.rec
            .disconnect_reason
            .get_or_insert_with(|| "gateway shut down".into());
        self.writer.write(std::mem::take(&mut self.rec));
    }
}

fn run(store: Arc<dyn Store>, rx: Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        let mut batch: Vec<ContactRecord> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Write(rec) => match index.get(&rec.id) {
                    Some(&i) => {
                        let older = std::mem::take(&mut batch[i]);
                        batch[i] = older.merge(*rec);
                    }
                    None => {
                        index.insert(rec.id.clone(), batch.len());
                        batch.push(*rec);
                    }
                },
                Msg::Flush(done) => flushes.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty()
            && let Err(e) = store.upsert_contacts(&batch)
        {
            warn!(error = %e, records = batch.len(), "could not write contact records");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn rec(id: &str, reason: Option<&str>) -> ContactRecord {
        ContactRecord {
            id: id.into(),
            initial_contact_id: id.into(),
            initiation: "inbound".into(),
            initiated_ms: 1,
            disconnect_reason: reason.map(str::to_string),
            ..ContactRecord::default()
        }
    }

    #[tokio::test]
    async fn milestones_coalesce_and_flush_waits_for_the_commit() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let w = RecordWriter::spawn(store.clone());
        for i in 0..2000 {
            w.write(rec(&format!("c{}", i % 100), None));
        }
        w.write(rec("c7", Some("done")));
        w.flush().await;
        assert_eq!(store.contacts(10_000).unwrap().len(), 100);
        let c7 = store.contact("c7").unwrap().unwrap();
        assert_eq!(
            c7.disconnect_reason.as_deref(),
            Some("done"),
            "the last write wins"
        );
    }

    #[tokio::test]
    async fn partial_updates_fill_in_and_never_clear() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let w = RecordWriter::spawn(store.clone());
        w.write(rec("a", None));
        w.flush().await;
        // The dispatcher records the offer; then the caller's task saves
        // its record without it, in the same batch and in the next.
        w.write(ContactRecord {
            offered_ms: Some(7),
            ..ContactRecord::update("a")
        });
        w.write(ContactRecord {
            enqueued_ms: Some(5),
            ..rec("a", None)
        });
        w.flush().await;
        w.write(ContactRecord {
            connected_to_agent_ms: Some(9),
            ..rec("a", None)
        });
        // An update of a record that does not exist writes nothing.
        w.write(ContactRecord {
            offered_ms: Some(1),
            ..ContactRecord::update("ghost")
        });
        w.flush().await;
        let a = store.contact("a").unwrap().unwrap();
        assert_eq!(
            (a.enqueued_ms, a.offered_ms, a.connected_to_agent_ms),
            (Some(5), Some(7), Some(9))
        );
        assert_eq!(a.initiation, "inbound");
        assert!(store.contact("ghost").unwrap().is_none());
    }
}
