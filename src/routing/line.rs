//! One queue's line: its contacts in order of place (original start,
//! then enqueue time, then id), with the ones an agent could take now kept
//! apart from the ones still waiting out a delay or retry interval.
//!
//! The router asks three things many times a second: who is first in line
//! for a free agent, where a contact stands, and when the next contact
//! becomes routable. Answering them by scanning every queued contact made
//! each routing step O(queued) and a restart with 100,000 callbacks
//! O(queued²) (over a minute); ordered sets make the first an O(log n)
//! walk from the front, the last a look at the front of `later`.

use super::router::{ContactKind, Ms, QueuedContact};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A contact's place: the routing order of SPEC.md (oldest original start
/// first; ties on enqueue time, then id).
pub(super) type Place = (Ms, Ms, Arc<str>);

fn place_of(c: &QueuedContact) -> Place {
    (c.initial_start, c.enqueued, Arc::from(c.id.as_str()))
}

fn kind_index(kind: ContactKind) -> usize {
    match kind {
        ContactKind::Voice => 0,
        ContactKind::Callback => 1,
    }
}

#[derive(Debug, Default)]
pub(super) struct Line {
    /// Every contact of the queue, offered ones included.
    all: BTreeSet<Place>,
    /// Not offered and eligible when last promoted, per kind (voice,
    /// callback): a queue whose callback window is closed skips the
    /// callbacks without walking them.
    ready: [BTreeSet<Place>; 2],
    /// Not offered, not yet eligible: by eligible time.
    later: BTreeSet<(Ms, Place)>,
}

impl Line {
    pub(super) fn len(&self) -> usize {
        self.all.len()
    }

    /// Adds a contact (not offered: it waits in `later` until promoted).
    pub(super) fn insert(&mut self, c: &QueuedContact) {
        let p = place_of(c);
        if c.offered_to.is_none() {
            self.later.insert((c.eligible, p.clone()));
        }
        self.all.insert(p);
    }

    pub(super) fn remove(&mut self, c: &QueuedContact) {
        let p = place_of(c);
        self.withhold(c);
        self.all.remove(&p);
    }

    /// The contact is being offered: no other agent may take it.
    pub(super) fn withhold(&mut self, c: &QueuedContact) {
        let p = place_of(c);
        if !self.ready[kind_index(c.kind)].remove(&p) {
            self.later.remove(&(c.eligible, p));
        }
    }

    /// The offer failed: the contact is back in line with its place.
    pub(super) fn offer_back(&mut self, c: &QueuedContact) {
        self.later.insert((c.eligible, place_of(c)));
    }

    /// Moves contacts whose eligible time has come to `ready`; `kind` tells
    /// each one's kind and whether it is a callback's initial delay that
    /// ended: those are added to `scheduled_over`.
    pub(super) fn promote(
        &mut self,
        now: Ms,
        kind: impl Fn(&str) -> Option<(ContactKind, bool)>,
        scheduled_over: &mut Vec<String>,
    ) {
        while let Some(first) = self.later.first() {
            if first.0 > now {
                break;
            }
            let Some((_, p)) = self.later.pop_first() else {
                break;
            };
            if let Some((k, scheduled)) = kind(&p.2) {
                if scheduled {
                    scheduled_over.push(p.2.to_string());
                }
                self.ready[kind_index(k)].insert(p);
            }
        }
    }

    /// Whether no contact of this queue could be taken now.
    pub(super) fn nothing_ready(&self) -> bool {
        self.ready.iter().all(BTreeSet::is_empty)
    }

    /// Contacts of `kind` an agent could take, in order of place.
    pub(super) fn ready(&self, kind: ContactKind) -> impl Iterator<Item = &Place> {
        self.ready[kind_index(kind)].iter()
    }

    /// Not offered and not yet eligible, earliest eligible first.
    pub(super) fn later(&self) -> impl Iterator<Item = &(Ms, Place)> {
        self.later.iter()
    }

    /// Every contact in order of place.
    pub(super) fn places(&self) -> impl Iterator<Item = &Place> {
        self.all.iter()
    }

    /// 1-based place `c` holds, or would hold if it joined now: one behind
    /// everyone who started earlier (or at the same time and joined
    /// first). Walks from the front: O(position).
    pub(super) fn position(&self, initial_start: Ms, id: &str, enqueued: Option<Ms>) -> usize {
        let bound: Place = (initial_start, enqueued.unwrap_or(Ms::MAX), Arc::from(id));
        1 + self.all.range(..bound).count()
    }
}
