//! The router: which waiting contact goes to which free agent, and when.
//! Sans-IO: contacts, agents, queues and the current time (ms since the
//! epoch) in; "offer contact C to agent A" out. Every ordering rule of
//! SPEC.md lives here and is unit-tested with a fake clock.
//!
//! Rules: for a free agent, the lowest priority number of their routing
//! profile wins; within one priority, the contact with the oldest initial
//! start time across all those queues (a callback keeps its original
//! call's start); a queue's delay holds a contact back from that profile's
//! agents until it has waited that long in the queue. Ties break on
//! enqueue time, then contact id. The longest-idle available agent is
//! served first.

use super::hours::Hours;
use super::line::Line;
use super::wait::WaitEstimate;
use std::collections::{BTreeMap, HashMap};

pub type Ms = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    Voice,
    Callback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedContact {
    pub id: String,
    pub queue: String,
    pub kind: ContactKind,
    /// Start of the original call: the place in line.
    pub initial_start: Ms,
    /// When it entered this queue.
    pub enqueued: Ms,
    /// Not routable before this (a callback's initial delay or retry
    /// interval).
    pub eligible: Ms,
    /// The agent whose phone is ringing with it, if any.
    pub offered_to: Option<String>,
    /// A callback still in its initial delay ("scheduled" in the
    /// database until `eligible`); reported by `take_promoted` when over.
    pub scheduled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AgentStatus {
    Offline,
    Available,
    /// An offer is ringing.
    Reserved {
        contact: String,
    },
    OnContact {
        contact: String,
    },
    AfterContactWork {
        until: Ms,
    },
    /// Did not answer (or declined) an offer.
    Missed {
        until: Option<Ms>,
    },
}

impl AgentStatus {
    pub fn name(&self) -> &'static str {
        match self {
            AgentStatus::Offline => "offline",
            AgentStatus::Available => "available",
            AgentStatus::Reserved { .. } => "reserved",
            AgentStatus::OnContact { .. } => "on_contact",
            AgentStatus::AfterContactWork { .. } => "after_contact_work",
            AgentStatus::Missed { .. } => "missed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AgentState {
    pub name: String,
    pub profile: Option<String>,
    pub status: AgentStatus,
    /// When the status last changed (for "longest idle").
    pub since: Ms,
    pub acw_ms: Ms,
    /// Registered with at least one phone.
    pub registered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileEntry {
    pub queue: String,
    pub priority: u32,
    pub delay_ms: Ms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub agent: String,
    pub contact: String,
    pub queue: String,
    pub kind: ContactKind,
    pub initial_start: Ms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    #[error("queue is full")]
    Full,
    #[error("unknown queue")]
    UnknownQueue,
    #[error("contact already queued")]
    Duplicate,
    #[error("unknown agent")]
    UnknownAgent,
}

/// Per-queue figures for the API, dashboard and Check queue status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueSnapshot {
    pub name: String,
    pub max_contacts: usize,
    pub contacts: usize,
    pub voice_waiting: usize,
    pub callbacks_waiting: usize,
    /// Callbacks whose initial delay or retry interval is still running.
    pub callbacks_scheduled: usize,
    pub offered: usize,
    pub oldest_initial_start: Option<Ms>,
    pub agents_available: usize,
    pub agents_online: usize,
    /// Agents serving the queue, by state name (`AgentStatus::name`).
    pub agents_by_state: std::collections::BTreeMap<&'static str, usize>,
}

#[derive(Debug, Default)]
pub struct Router {
    max_contacts: HashMap<String, usize>,
    profiles: HashMap<String, Vec<ProfileEntry>>,
    agents: BTreeMap<String, AgentState>,
    contacts: HashMap<String, QueuedContact>,
    /// Per queue: its contacts in order of place (an index over
    /// `contacts`, changed only together with it).
    lines: HashMap<String, Line>,
    /// How long a missed agent stays missed (None: until the API says).
    missed_for: Option<Ms>,
    /// Per queue: when its callbacks may be dialled (absent: any time).
    windows: HashMap<String, Hours>,
    /// Per queue: the estimate of time-to-agent.
    waits: HashMap<String, WaitEstimate>,
    /// Each contact's position when it joined its queue (for the wait
    /// estimate's samples).
    joined_at: HashMap<String, usize>,
    /// Callbacks whose delay or retry interval ran out since the last
    /// `take_promoted`.
    promoted: Vec<String>,
}

impl Router {
    pub fn new(missed_for: Option<Ms>) -> Router {
        Router {
            missed_for,
            ..Router::default()
        }
    }

    pub fn add_queue(&mut self, name: &str, max_contacts: usize) {
        self.max_contacts.insert(name.to_string(), max_contacts);
        self.lines.entry(name.to_string()).or_default();
    }

    /// Callbacks of `queue` are offered only within `window`.
    pub fn set_callback_window(&mut self, queue: &str, window: Hours) {
        if !window.is_always() {
            self.windows.insert(queue.to_string(), window);
        }
    }

    /// When a callback of `queue` not routable before `eligible` can be
    /// dialled, as seen at `now`: the later of the two, moved to the next
    /// opening of the queue's callback window.
    pub fn dial_at(&self, queue: &str, eligible: Ms, now: Ms) -> Ms {
        let t = eligible.max(now);
        self.windows.get(queue).map_or(t, |w| w.next_open_ms(t))
    }

    /// A contact that may be offered at `now` as far as time goes: past its
    /// eligible time, and a callback within its queue's window.
    fn due(&self, c: &QueuedContact, now: Ms) -> bool {
        c.eligible <= now
            && (c.kind != ContactKind::Callback
                || self.windows.get(&c.queue).is_none_or(|w| w.is_open_ms(now)))
    }

    /// The queue's wait estimate (cold when nothing was observed yet).
    pub fn wait_estimate(&self, queue: &str) -> WaitEstimate {
        self.waits.get(queue).copied().unwrap_or_default()
    }

    pub fn add_profile(&mut self, name: &str, mut entries: Vec<ProfileEntry>) {
        entries.sort_by_key(|e| e.priority);
        self.profiles.insert(name.to_string(), entries);
    }

    pub fn add_agent(&mut self, name: &str, profile: Option<&str>, acw_ms: Ms, now: Ms) {
        self.agents.insert(
            name.to_string(),
            AgentState {
                name: name.to_string(),
                profile: profile.map(str::to_string),
                status: AgentStatus::Offline,
                since: now,
                acw_ms,
                registered: false,
            },
        );
    }

    pub fn agents(&self) -> impl Iterator<Item = &AgentState> {
        self.agents.values()
    }

    pub fn agent(&self, name: &str) -> Option<&AgentState> {
        self.agents.get(name)
    }

    pub fn contact(&self, id: &str) -> Option<&QueuedContact> {
        self.contacts.get(id)
    }

    pub fn contacts(&self) -> impl Iterator<Item = &QueuedContact> {
        self.contacts.values()
    }

    pub fn queue_names(&self) -> impl Iterator<Item = &str> {
        self.max_contacts.keys().map(String::as_str)
    }

    fn set_status(&mut self, agent: &str, status: AgentStatus, now: Ms) {
        if let Some(a) = self.agents.get_mut(agent)
            && a.status != status
        {
            a.status = status;
            a.since = now;
        }
    }

    /// Contacts in a queue, waiting or offered, calls and callbacks alike.
    pub fn queue_len(&self, queue: &str) -> usize {
        self.lines.get(queue).map_or(0, Line::len)
    }

    pub fn is_full(&self, queue: &str) -> bool {
        match self.max_contacts.get(queue) {
            Some(&max) => self.queue_len(queue) >= max,
            None => true,
        }
    }

    /// Adds a contact; refused when the queue is full (the size limit
    /// counts waiting calls and callbacks together).
    pub fn enqueue(&mut self, c: QueuedContact) -> Result<(), RouterError> {
        self.enqueue_inner(c, false)
    }

    /// Adds a contact that already holds a place (a callback restored at
    /// start-up, or returning after a failed attempt): never refused for
    /// size, so nobody loses a promised callback.
    pub fn restore(&mut self, c: QueuedContact) -> Result<(), RouterError> {
        self.enqueue_inner(c, true)
    }

    fn enqueue_inner(&mut self, c: QueuedContact, force: bool) -> Result<(), RouterError> {
        if !self.max_contacts.contains_key(&c.queue) {
            return Err(RouterError::UnknownQueue);
        }
        if self.contacts.contains_key(&c.id) {
            return Err(RouterError::Duplicate);
        }
        if !force && self.is_full(&c.queue) {
            return Err(RouterError::Full);
        }
        let line = self.lines.entry(c.queue.clone()).or_default();
        let place = line.position(c.initial_start, &c.id, Some(c.enqueued));
        line.insert(&c);
        self.joined_at.insert(c.id.clone(), place);
        self.contacts.insert(c.id.clone(), c);
        Ok(())
    }

    /// `restore` for many contacts at once (start-up): each one's place is
    /// taken in one walk of its queue afterwards, not by counting from the
    /// front for each (O(n²) for 100,000 callbacks). Returns the ids that
    /// could not be restored, with the reason.
    pub fn restore_all(
        &mut self,
        cs: impl IntoIterator<Item = QueuedContact>,
    ) -> Vec<(String, RouterError)> {
        let mut refused = Vec::new();
        let mut added: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut queues: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for c in cs {
            if !self.max_contacts.contains_key(&c.queue) {
                refused.push((c.id, RouterError::UnknownQueue));
                continue;
            }
            if self.contacts.contains_key(&c.id) {
                refused.push((c.id, RouterError::Duplicate));
                continue;
            }
            self.lines.entry(c.queue.clone()).or_default().insert(&c);
            added.insert(c.id.clone());
            queues.insert(c.queue.clone());
            self.contacts.insert(c.id.clone(), c);
        }
        for q in queues {
            let Some(line) = self.lines.get(&q) else {
                continue;
            };
            for (i, p) in line.places().enumerate() {
                if added.contains(&*p.2) {
                    self.joined_at.insert(p.2.to_string(), i + 1);
                }
            }
        }
        refused
    }

    /// Takes a contact out (caller hung up, callback stopped, expired).
    /// An agent it was being offered to is released as available.
    pub fn remove(&mut self, id: &str, now: Ms) -> Option<QueuedContact> {
        let c = self.contacts.remove(id)?;
        self.joined_at.remove(id);
        if let Some(line) = self.lines.get_mut(&c.queue) {
            line.remove(&c);
        }
        if let Some(agent) = &c.offered_to
            && matches!(self.agents.get(agent).map(|a| &a.status), Some(AgentStatus::Reserved { contact }) if contact == id)
        {
            self.set_status(agent, AgentStatus::Available, now);
        }
        Some(c)
    }

    /// Registration changes: offline without a binding, available when one
    /// appears (unless busy).
    pub fn set_registered(&mut self, agent: &str, registered: bool, now: Ms) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        a.registered = registered;
        let status = a.status.clone();
        match (registered, status) {
            (true, AgentStatus::Offline) => self.set_status(agent, AgentStatus::Available, now),
            (
                false,
                AgentStatus::Available
                | AgentStatus::Missed { .. }
                | AgentStatus::AfterContactWork { .. },
            ) => self.set_status(agent, AgentStatus::Offline, now),
            _ => {}
        }
    }

    /// The API's "set state": available or offline (busy states refuse).
    pub fn set_available(
        &mut self,
        agent: &str,
        available: bool,
        now: Ms,
    ) -> Result<(), RouterError> {
        let a = self.agents.get(agent).ok_or(RouterError::UnknownAgent)?;
        let target = match (available, a.registered) {
            (true, true) => AgentStatus::Available,
            (true, false) | (false, _) => AgentStatus::Offline,
        };
        if matches!(
            a.status,
            AgentStatus::Reserved { .. } | AgentStatus::OnContact { .. }
        ) {
            return Ok(());
        }
        self.set_status(agent, target, now);
        Ok(())
    }

    fn entries(&self, agent: &AgentState) -> &[ProfileEntry] {
        agent
            .profile
            .as_deref()
            .and_then(|p| self.profiles.get(p))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The contact `agent` should get now, if any: per priority level of
    /// their profile, the first in line of each queue that is due and past
    /// the entry's delay, and of those the one with the best place.
    fn best_for(&self, agent: &AgentState, now: Ms) -> Option<&QueuedContact> {
        let entries = self.entries(agent);
        let mut i = 0;
        while i < entries.len() {
            let prio = entries.get(i)?.priority;
            let level = entries.iter().skip(i).take_while(|e| e.priority == prio);
            let mut best: Option<&QueuedContact> = None;
            let mut width = 0;
            for e in level {
                width += 1;
                let Some(line) = self.lines.get(&e.queue) else {
                    continue;
                };
                let window_open = self.windows.get(&e.queue).is_none_or(|w| w.is_open_ms(now));
                for kind in [ContactKind::Voice, ContactKind::Callback] {
                    if kind == ContactKind::Callback && !window_open {
                        continue;
                    }
                    for p in line.ready(kind) {
                        if best.is_some_and(|b| place(b) <= (p.0, p.1, &*p.2)) {
                            break;
                        }
                        let Some(c) = self.contacts.get(&*p.2) else {
                            continue;
                        };
                        if c.offered_to.is_none()
                            && c.eligible <= now
                            && now - c.enqueued.max(c.eligible) >= e.delay_ms
                        {
                            best = Some(c);
                            break;
                        }
                    }
                }
            }
            i += width;
            if best.is_some() {
                return best;
            }
        }
        None
    }

    /// Offers for every available agent that has a contact to take,
    /// longest-idle agent first. Agents become reserved, contacts offered.
    pub fn assign(&mut self, now: Ms) -> Vec<Offer> {
        self.tick(now);
        // Most events (a REGISTER, a call ending) find nobody waiting:
        // then there is no need to look at every agent.
        if self.lines.values().all(Line::nothing_ready) {
            return Vec::new();
        }
        let mut free: Vec<(Ms, String)> = self
            .agents
            .values()
            .filter(|a| a.status == AgentStatus::Available && a.registered)
            .map(|a| (a.since, a.name.clone()))
            .collect();
        free.sort();
        let mut offers = Vec::new();
        for (_, name) in free {
            let Some(agent) = self.agents.get(&name) else {
                continue;
            };
            let Some(c) = self.best_for(agent, now) else {
                continue;
            };
            let offer = Offer {
                agent: name.clone(),
                contact: c.id.clone(),
                queue: c.queue.clone(),
                kind: c.kind,
                initial_start: c.initial_start,
            };
            if let Some(c) = self.contacts.get_mut(&offer.contact) {
                if let Some(line) = self.lines.get_mut(&c.queue) {
                    line.withhold(c);
                }
                c.offered_to = Some(name.clone());
            }
            self.set_status(
                &name,
                AgentStatus::Reserved {
                    contact: offer.contact.clone(),
                },
                now,
            );
            offers.push(offer);
        }
        offers
    }

    /// The agent answered: the contact leaves the queue.
    pub fn offer_accepted(&mut self, agent: &str, contact: &str, now: Ms) -> Option<QueuedContact> {
        let c = self.contacts.remove(contact);
        let place = self.joined_at.remove(contact);
        if let Some(c) = &c {
            if let Some(line) = self.lines.get_mut(&c.queue) {
                line.remove(c);
            }
            // Time-to-agent counts from when the contact could first be
            // offered: a callback's initial delay or retry interval is not
            // waiting in line.
            let waited = now - c.enqueued.max(c.eligible);
            self.waits
                .entry(c.queue.clone())
                .or_default()
                .observe(waited, place.unwrap_or(1));
        }
        self.set_status(
            agent,
            AgentStatus::OnContact {
                contact: contact.to_string(),
            },
            now,
        );
        c
    }

    /// The offer failed. `missed`: the agent didn't answer or declined
    /// (marked missed); otherwise (their phone failed) they stay available.
    /// The contact goes back with its place: ordering is by initial start.
    pub fn offer_failed(&mut self, agent: &str, contact: &str, missed: bool, now: Ms) {
        if let Some(c) = self.contacts.get_mut(contact)
            && c.offered_to.as_deref() == Some(agent)
        {
            c.offered_to = None;
            if let Some(line) = self.lines.get_mut(&c.queue) {
                line.offer_back(c);
            }
        }
        let status = if missed {
            AgentStatus::Missed {
                until: self.missed_for.map(|d| now + d),
            }
        } else {
            AgentStatus::Available
        };
        if matches!(
            self.agents.get(agent).map(|a| &a.status),
            Some(AgentStatus::Reserved { .. })
        ) {
            self.set_status(agent, status, now);
        }
    }

    /// A contact that was accepted comes back to its queue (a callback
    /// whose customer did not answer), keeping its place, not routable
    /// before `eligible`.
    pub fn requeue(
        &mut self,
        mut c: QueuedContact,
        eligible: Ms,
        now: Ms,
    ) -> Result<(), RouterError> {
        c.offered_to = None;
        c.eligible = eligible;
        c.enqueued = now;
        c.scheduled = false;
        self.restore(c)
    }

    /// The agent's contact ended: after-contact work, then available.
    pub fn contact_ended(&mut self, agent: &str, now: Ms) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        let acw = a.acw_ms;
        let status = if !a.registered {
            AgentStatus::Offline
        } else if acw > 0 {
            AgentStatus::AfterContactWork { until: now + acw }
        } else {
            AgentStatus::Available
        };
        self.set_status(agent, status, now);
    }

    /// Callbacks whose initial delay ran out since the last call (not
    /// retries: those were "queued" all along).
    pub fn take_promoted(&mut self) -> Vec<String> {
        std::mem::take(&mut self.promoted)
    }

    /// Time-driven transitions: after-contact work and missed periods end;
    /// contacts whose delay or retry interval ran out become routable.
    pub fn tick(&mut self, now: Ms) {
        let contacts = &self.contacts;
        let first = self.promoted.len();
        for line in self.lines.values_mut() {
            line.promote(
                now,
                |id| contacts.get(id).map(|c| (c.kind, c.scheduled)),
                &mut self.promoted,
            );
        }
        for id in self.promoted.get(first..).unwrap_or_default() {
            if let Some(c) = self.contacts.get_mut(id) {
                c.scheduled = false;
            }
        }
        let due: Vec<String> = self
            .agents
            .values()
            .filter(|a| match a.status {
                AgentStatus::AfterContactWork { until } => until <= now,
                AgentStatus::Missed { until: Some(until) } => until <= now,
                _ => false,
            })
            .map(|a| a.name.clone())
            .collect();
        for name in due {
            let registered = self.agents.get(&name).is_some_and(|a| a.registered);
            let s = if registered {
                AgentStatus::Available
            } else {
                AgentStatus::Offline
            };
            self.set_status(&name, s, now);
        }
    }

    /// When `assign` may have something new to do without any event: an
    /// agent's timer ends, a contact becomes eligible or passes a delay.
    pub fn next_deadline(&self, now: Ms) -> Option<Ms> {
        let agent_times = self.agents.values().filter_map(|a| match a.status {
            AgentStatus::AfterContactWork { until } => Some(until),
            AgentStatus::Missed { until } => until,
            _ => None,
        });
        // Per queue: the delays its profile entries hold contacts back by.
        let mut delays: HashMap<&str, Vec<Ms>> = HashMap::new();
        for e in self.profiles.values().flatten().filter(|e| e.delay_ms > 0) {
            delays.entry(e.queue.as_str()).or_default().push(e.delay_ms);
        }
        let mut contact_times: Vec<Ms> = Vec::new();
        for (queue, line) in &self.lines {
            let window = self.windows.get(queue);
            // The first to become eligible, and the first callback to
            // (its window's next opening; later eligible opens no sooner).
            // (One already due was not promoted yet: wake at once.)
            contact_times.extend(line.later().next().map(|(t, _)| (*t).max(now + 1)));
            if window.is_some() {
                let first_cb = line.later().find(|(_, p)| {
                    self.contacts
                        .get(&*p.2)
                        .is_some_and(|c| c.kind == ContactKind::Callback)
                });
                contact_times.extend(first_cb.map(|(t, _)| self.dial_at(queue, *t, now)));
                if line.ready(ContactKind::Callback).next().is_some() {
                    contact_times.push(self.dial_at(queue, now, now));
                }
            }
            // Contacts sitting out a delay: when each passes it.
            let Some(ds) = delays.get(queue.as_str()) else {
                continue;
            };
            let ready = line
                .ready(ContactKind::Voice)
                .chain(line.ready(ContactKind::Callback));
            for p in ready.chain(line.later().map(|(_, p)| p)) {
                if let Some(c) = self.contacts.get(&*p.2) {
                    let base = c.enqueued.max(c.eligible);
                    contact_times.extend(ds.iter().map(|d| base + d));
                }
            }
        }
        agent_times.chain(contact_times).filter(|t| *t > now).min()
    }

    /// 1-based position a contact with `initial_start` has (or would have,
    /// joining now) in `queue`.
    pub fn position(&self, queue: &str, initial_start: Ms, id: &str) -> usize {
        let enqueued = self
            .contacts
            .get(id)
            .filter(|c| c.queue == queue)
            .map(|c| c.enqueued);
        self.lines
            .get(queue)
            .map_or(1, |l| l.position(initial_start, id, enqueued))
    }

    pub fn snapshot(&self, queue: &str, now: Ms) -> QueueSnapshot {
        let mut s = QueueSnapshot {
            name: queue.to_string(),
            max_contacts: self.max_contacts.get(queue).copied().unwrap_or(0),
            ..QueueSnapshot::default()
        };
        let line = self.lines.get(queue);
        let in_line = line
            .into_iter()
            .flat_map(|l| l.places())
            .filter_map(|p| self.contacts.get(&*p.2));
        for c in in_line {
            s.contacts += 1;
            if c.offered_to.is_some() {
                s.offered += 1;
            } else if c.kind == ContactKind::Callback && !self.due(c, now) {
                s.callbacks_scheduled += 1;
            } else if c.kind == ContactKind::Callback {
                s.callbacks_waiting += 1;
            } else {
                s.voice_waiting += 1;
            }
            s.oldest_initial_start = Some(
                s.oldest_initial_start
                    .map_or(c.initial_start, |o| o.min(c.initial_start)),
            );
        }
        for a in self.agents.values() {
            let serves = self.entries(a).iter().any(|e| e.queue == queue);
            if serves {
                *s.agents_by_state.entry(a.status.name()).or_default() += 1;
            }
            if serves && a.status != AgentStatus::Offline {
                s.agents_online += 1;
                if a.status == AgentStatus::Available {
                    s.agents_available += 1;
                }
            }
        }
        s
    }
}

/// A contact's place in line, for comparing without allocating.
fn place(c: &QueuedContact) -> (Ms, Ms, &str) {
    (c.initial_start, c.enqueued, c.id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Ms = 60_000;

    fn router() -> Router {
        let mut r = Router::new(Some(30_000));
        r.add_queue("sales", 10);
        r.add_queue("support", 10);
        r.add_queue("callbacks", 3);
        r.add_profile(
            "all",
            vec![
                ProfileEntry {
                    queue: "sales".into(),
                    priority: 1,
                    delay_ms: 0,
                },
                ProfileEntry {
                    queue: "support".into(),
                    priority: 1,
                    delay_ms: 0,
                },
                ProfileEntry {
                    queue: "callbacks".into(),
                    priority: 2,
                    delay_ms: 0,
                },
            ],
        );
        r
    }

    fn contact(id: &str, queue: &str, kind: ContactKind, start: Ms, enq: Ms) -> QueuedContact {
        QueuedContact {
            id: id.into(),
            queue: queue.into(),
            kind,
            initial_start: start,
            enqueued: enq,
            eligible: enq,
            offered_to: None,
            scheduled: false,
        }
    }

    fn online(r: &mut Router, name: &str, profile: &str, now: Ms) {
        r.add_agent(name, Some(profile), 0, now);
        r.set_registered(name, true, now);
    }

    #[test]
    fn equal_priority_oldest_first_across_queues() {
        let mut r = router();
        r.enqueue(contact(
            "s1",
            "sales",
            ContactKind::Voice,
            10 * MIN,
            10 * MIN,
        ))
        .unwrap();
        r.enqueue(contact(
            "p1",
            "support",
            ContactKind::Voice,
            9 * MIN,
            11 * MIN,
        ))
        .unwrap();
        online(&mut r, "alice", "all", 12 * MIN);
        let o = r.assign(12 * MIN);
        assert_eq!(o.len(), 1);
        assert_eq!(
            o[0].contact, "p1",
            "support's contact is older by initial start"
        );
        assert_eq!(
            r.agent("alice").unwrap().status,
            AgentStatus::Reserved {
                contact: "p1".into()
            }
        );
    }

    #[test]
    fn priority_beats_age() {
        let mut r = router();
        r.enqueue(contact("cb", "callbacks", ContactKind::Callback, MIN, MIN))
            .unwrap();
        r.enqueue(contact(
            "v",
            "sales",
            ContactKind::Voice,
            30 * MIN,
            30 * MIN,
        ))
        .unwrap();
        online(&mut r, "alice", "all", 31 * MIN);
        assert_eq!(r.assign(31 * MIN)[0].contact, "v");
        // With no inbound contact left, callbacks are worked.
        online(&mut r, "bob", "all", 31 * MIN);
        assert_eq!(r.assign(31 * MIN)[0].contact, "cb");
    }

    #[test]
    fn callback_keeps_the_original_calls_start_time() {
        // A call at 10:00 asked for a callback at 10:05; another call came
        // in at 10:02 and waits in the same queue. The callback goes first.
        let mut r = Router::new(None);
        r.add_queue("q", 10);
        r.add_profile(
            "p",
            vec![ProfileEntry {
                queue: "q".into(),
                priority: 1,
                delay_ms: 0,
            }],
        );
        let t10_00 = 600 * MIN;
        r.enqueue(contact(
            "call_10_02",
            "q",
            ContactKind::Voice,
            t10_00 + 2 * MIN,
            t10_00 + 2 * MIN,
        ))
        .unwrap();
        r.enqueue(contact(
            "cb_10_05",
            "q",
            ContactKind::Callback,
            t10_00,
            t10_00 + 5 * MIN,
        ))
        .unwrap();
        online(&mut r, "alice", "p", t10_00 + 6 * MIN);
        assert_eq!(r.assign(t10_00 + 6 * MIN)[0].contact, "cb_10_05");
        assert_eq!(r.position("q", t10_00, "cb_10_05"), 1);
    }

    #[test]
    fn delay_holds_a_contact_back() {
        let mut r = Router::new(None);
        r.add_queue("q", 10);
        r.add_profile(
            "late",
            vec![ProfileEntry {
                queue: "q".into(),
                priority: 1,
                delay_ms: 30_000,
            }],
        );
        r.enqueue(contact("c", "q", ContactKind::Voice, 0, 0))
            .unwrap();
        online(&mut r, "overflow", "late", 0);
        assert!(r.assign(29_999).is_empty());
        assert_eq!(r.next_deadline(29_999), Some(30_000));
        assert_eq!(r.assign(30_000)[0].contact, "c");
    }

    #[test]
    fn callback_not_routable_before_eligible() {
        let mut r = router();
        let mut c = contact("cb", "callbacks", ContactKind::Callback, 0, 0);
        c.eligible = 99_000;
        r.enqueue(c).unwrap();
        online(&mut r, "alice", "all", 0);
        assert!(r.assign(98_999).is_empty());
        assert_eq!(r.snapshot("callbacks", 98_999).callbacks_scheduled, 1);
        assert_eq!(r.assign(99_000).len(), 1);
    }

    #[test]
    fn missed_agent_and_place_kept() {
        let mut r = router();
        r.enqueue(contact("old", "sales", ContactKind::Voice, 0, 0))
            .unwrap();
        r.enqueue(contact("new", "sales", ContactKind::Voice, 5, 5))
            .unwrap();
        online(&mut r, "alice", "all", 10);
        online(&mut r, "bob", "all", 20);
        let offers = r.assign(30);
        // alice idle longest: gets the oldest contact; bob the next.
        assert_eq!(
            (offers[0].agent.as_str(), offers[0].contact.as_str()),
            ("alice", "old")
        );
        assert_eq!(
            (offers[1].agent.as_str(), offers[1].contact.as_str()),
            ("bob", "new")
        );
        // alice doesn't answer: missed; "old" goes back ahead of everyone.
        r.offer_failed("alice", "old", true, 40);
        assert_eq!(
            r.agent("alice").unwrap().status,
            AgentStatus::Missed {
                until: Some(30_040)
            }
        );
        r.offer_failed("bob", "new", true, 41);
        online(&mut r, "carol", "all", 50);
        assert_eq!(r.assign(60)[0].contact, "old");
        // missed agents come back after the configured time
        r.tick(30_041);
        assert_eq!(r.agent("alice").unwrap().status, AgentStatus::Available);
    }

    #[test]
    fn longest_idle_agent_first_and_ties_by_name() {
        let mut r = router();
        online(&mut r, "zed", "all", 5);
        online(&mut r, "amy", "all", 5);
        online(&mut r, "bea", "all", 1);
        r.enqueue(contact("c", "sales", ContactKind::Voice, 0, 0))
            .unwrap();
        assert_eq!(r.assign(10)[0].agent, "bea");
        r.enqueue(contact("d", "sales", ContactKind::Voice, 0, 0))
            .unwrap();
        assert_eq!(r.assign(10)[0].agent, "amy", "equal idle: by name");
    }

    #[test]
    fn equal_start_times_break_on_enqueue_then_id() {
        let mut r = router();
        r.enqueue(contact("b", "sales", ContactKind::Voice, 0, 2))
            .unwrap();
        r.enqueue(contact("a", "support", ContactKind::Voice, 0, 2))
            .unwrap();
        r.enqueue(contact("c", "sales", ContactKind::Voice, 0, 1))
            .unwrap();
        online(&mut r, "x", "all", 0);
        online(&mut r, "y", "all", 1);
        online(&mut r, "z", "all", 2);
        let order: Vec<String> = r.assign(5).into_iter().map(|o| o.contact).collect();
        assert_eq!(order, vec!["c", "a", "b"]);
    }

    #[test]
    fn size_limit_counts_calls_and_callbacks() {
        let mut r = router();
        r.enqueue(contact("v", "callbacks", ContactKind::Voice, 0, 0))
            .unwrap();
        r.enqueue(contact("c1", "callbacks", ContactKind::Callback, 0, 0))
            .unwrap();
        r.enqueue(contact("c2", "callbacks", ContactKind::Callback, 0, 0))
            .unwrap();
        assert!(r.is_full("callbacks"));
        assert_eq!(
            r.enqueue(contact("c3", "callbacks", ContactKind::Callback, 0, 0)),
            Err(RouterError::Full)
        );
        // A returning callback keeps its promise even when the queue filled.
        r.restore(contact("c0", "callbacks", ContactKind::Callback, 0, 0))
            .unwrap();
        assert_eq!(r.queue_len("callbacks"), 4);
        assert_eq!(
            r.enqueue(contact("x", "nope", ContactKind::Voice, 0, 0)),
            Err(RouterError::UnknownQueue)
        );
    }

    #[test]
    fn agents_outside_profile_or_offline_get_nothing() {
        let mut r = router();
        r.add_profile(
            "sales_only",
            vec![ProfileEntry {
                queue: "sales".into(),
                priority: 1,
                delay_ms: 0,
            }],
        );
        online(&mut r, "s", "sales_only", 0);
        r.add_agent("off", Some("all"), 0, 0);
        r.enqueue(contact("p", "support", ContactKind::Voice, 0, 0))
            .unwrap();
        assert!(r.assign(1).is_empty());
        r.set_registered("off", true, 2);
        assert_eq!(r.assign(3)[0].agent, "off");
    }

    #[test]
    fn caller_hanging_up_releases_the_ringing_agent() {
        let mut r = router();
        online(&mut r, "alice", "all", 0);
        r.enqueue(contact("v", "sales", ContactKind::Voice, 0, 0))
            .unwrap();
        r.assign(1);
        assert!(r.remove("v", 2).is_some());
        assert_eq!(r.agent("alice").unwrap().status, AgentStatus::Available);
    }

    #[test]
    fn after_contact_work_then_available() {
        let mut r = router();
        r.add_agent("alice", Some("all"), 10_000, 0);
        r.set_registered("alice", true, 0);
        r.enqueue(contact("v", "sales", ContactKind::Voice, 0, 0))
            .unwrap();
        let o = r.assign(1);
        r.offer_accepted("alice", &o[0].contact, 2);
        assert_eq!(r.queue_len("sales"), 0);
        r.contact_ended("alice", 100);
        assert_eq!(
            r.agent("alice").unwrap().status,
            AgentStatus::AfterContactWork { until: 10_100 }
        );
        r.enqueue(contact("w", "sales", ContactKind::Voice, 0, 0))
            .unwrap();
        assert!(r.assign(10_099).is_empty());
        assert_eq!(r.next_deadline(10_099), Some(10_100));
        assert_eq!(r.assign(10_100).len(), 1);
    }

    #[test]
    fn requeued_callback_keeps_place_and_waits_retry_interval() {
        let mut r = router();
        online(&mut r, "alice", "all", 0);
        r.enqueue(contact("cb", "callbacks", ContactKind::Callback, 100, 100))
            .unwrap();
        let o = r.assign(200);
        let c = r.offer_accepted("alice", &o[0].contact, 201).unwrap();
        r.contact_ended("alice", 300);
        r.requeue(c, 300 + 10 * MIN, 300).unwrap();
        r.enqueue(contact(
            "later",
            "callbacks",
            ContactKind::Callback,
            200,
            400,
        ))
        .unwrap();
        assert_eq!(r.assign(500)[0].contact, "later", "cb not eligible yet");
        r.contact_ended("alice", 600);
        r.offer_failed("alice", "later", false, 601);
        assert_eq!(
            r.assign(300 + 10 * MIN)[0].contact,
            "cb",
            "then first again by initial start"
        );
    }

    #[test]
    fn callbacks_wait_for_their_window_and_calls_do_not() {
        let mut r = router();
        // Callback hours 09:00-17:00 UTC every day; the epoch day 4 is a
        // Monday, so t(h) is Monday at h o'clock.
        let t = |h: i64| 4 * 86_400_000 + h * 3_600_000;
        let span = crate::routing::hours::Span::parse("mon-sun 09:00-17:00").unwrap();
        r.set_callback_window("callbacks", Hours::new(vec![span], 0));
        r.enqueue(contact(
            "cb",
            "callbacks",
            ContactKind::Callback,
            t(7),
            t(7),
        ))
        .unwrap();
        r.enqueue(contact("call", "support", ContactKind::Voice, t(8), t(8)))
            .unwrap();
        online(&mut r, "alice", "all", t(8));
        let first = r.assign(t(8));
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0].contact, "call",
            "the older callback is outside its hours"
        );
        r.offer_accepted("alice", "call", t(8));
        r.contact_ended("alice", t(8));
        assert!(r.assign(t(8)).is_empty(), "still closed");
        assert_eq!(r.snapshot("callbacks", t(8)).callbacks_scheduled, 1);
        assert_eq!(r.dial_at("callbacks", t(7), t(8)), t(9));
        assert_eq!(
            r.next_deadline(t(8)),
            Some(t(9)),
            "the dispatcher wakes at the opening"
        );
        assert_eq!(
            r.assign(t(9))[0].contact,
            "cb",
            "dialled once the window opens"
        );
        assert_eq!(r.dial_at("support", t(7), t(8)), t(8), "no window: now");
    }

    #[test]
    fn restoring_many_at_once_keeps_line_order_and_places() {
        let mut r = router();
        r.enqueue(contact(
            "v",
            "support",
            ContactKind::Voice,
            5 * MIN,
            5 * MIN,
        ))
        .unwrap();
        // Out of order, one duplicate, one for a queue that is gone; the
        // size limit does not apply to a restored callback.
        let batch = [("c3", 3), ("c1", 1), ("c4", 7), ("c2", 2)]
            .map(|(id, m)| contact(id, "support", ContactKind::Callback, m * MIN, 0));
        let mut extra = contact("x", "gone", ContactKind::Callback, 0, 0);
        extra.eligible = 0;
        let refused = r.restore_all(
            batch
                .into_iter()
                .chain([contact("v", "support", ContactKind::Voice, 0, 0), extra]),
        );
        assert_eq!(
            refused,
            vec![
                ("v".to_string(), RouterError::Duplicate),
                ("x".to_string(), RouterError::UnknownQueue)
            ]
        );
        assert_eq!(r.queue_len("support"), 5);
        let places: Vec<usize> = ["c1", "c2", "c3", "v", "c4"]
            .iter()
            .map(|id| r.position("support", r.contact(id).unwrap().initial_start, id))
            .collect();
        assert_eq!(places, [1, 2, 3, 4, 5]);
        online(&mut r, "alice", "all", 10 * MIN);
        online(&mut r, "bob", "all", 10 * MIN);
        let order: Vec<String> = r.assign(10 * MIN).into_iter().map(|o| o.contact).collect();
        assert_eq!(order, ["c1", "c2"], "oldest original start first");
        // c2 is declined by bob: back in line, ahead of c3 again.
        r.offer_failed("bob", "c2", false, 10 * MIN);
        r.offer_accepted("alice", "c1", 10 * MIN);
        assert_eq!(r.assign(10 * MIN)[0].contact, "c2");
        assert_eq!(r.position("support", 3 * MIN, "c3"), 2);
    }

    #[test]
    fn a_callbacks_initial_delay_ending_is_reported_once_and_retries_are_not() {
        let mut r = router();
        let mut cb = contact("cb", "callbacks", ContactKind::Callback, 0, 0);
        cb.eligible = 10 * MIN;
        cb.scheduled = true;
        r.enqueue(cb).unwrap();
        r.tick(10 * MIN - 1);
        assert!(r.take_promoted().is_empty(), "still in its delay");
        assert_eq!(r.next_deadline(10 * MIN - 1), Some(10 * MIN));
        r.tick(10 * MIN);
        assert_eq!(r.take_promoted(), ["cb"]);
        r.tick(11 * MIN);
        assert!(r.take_promoted().is_empty(), "reported once");
        // Offered, answered, customer did not answer: back with a retry
        // interval, which is not an initial delay.
        online(&mut r, "alice", "all", 11 * MIN);
        assert_eq!(r.assign(11 * MIN)[0].contact, "cb");
        let c = r.offer_accepted("alice", "cb", 11 * MIN).unwrap();
        r.requeue(c, 20 * MIN, 12 * MIN).unwrap();
        r.tick(20 * MIN);
        assert!(r.take_promoted().is_empty());
        r.contact_ended("alice", 20 * MIN);
        assert_eq!(r.assign(20 * MIN)[0].contact, "cb");
    }

    #[test]
    fn time_to_agent_feeds_the_wait_estimate_per_place() {
        let mut r = router();
        assert_eq!(r.wait_estimate("support").samples(), 0);
        r.enqueue(contact("a", "support", ContactKind::Voice, 0, 0))
            .unwrap();
        r.enqueue(contact("b", "support", ContactKind::Voice, 1, 1_000))
            .unwrap();
        online(&mut r, "alice", "all", 0);
        // "b" joined second and reached alice 61 s later: 30.5 s a place.
        r.assign(2_000);
        r.offer_accepted("alice", "a", 2_000);
        r.contact_ended("alice", 61_000);
        assert_eq!(r.assign(61_000)[0].contact, "b");
        r.offer_accepted("alice", "b", 62_000);
        let w = r.wait_estimate("support");
        assert_eq!(w.samples(), 2);
        // a: 2 s at place 1; then b: 2 + (30.5 - 2) / 4 = 9.125 s.
        assert_eq!(w.per_place_s(), Some(9.125));
        assert_eq!(r.wait_estimate("sales").samples(), 0, "per queue");
    }
}
