//! The contact record of an agent leg: one per offer ringing an agent's
//! phone, chained to the contact offered (its previous contact), with
//! the Call-ID, how the phone answered (outcome, SIP status, ring time)
//! and how the leg ended. A dial attempt made from it points back at it.

use super::{Centre, now_ms};
use crate::call::EndReason;
use crate::call::uac::DialOutcome;
use crate::dialer::book::{outcome_name, sip_status};
use crate::routing::Offer;
use crate::store::{CallbackRecord, ContactRecord, OpenRecord, initiation};
use std::time::Instant;

pub struct AgentLeg {
    rec: OpenRecord,
    sent: Option<Instant>,
}

impl AgentLeg {
    /// Opens the record as the offer begins.
    pub fn open(centre: &Centre, offer: &Offer, callback: Option<&CallbackRecord>) -> AgentLeg {
        let now = now_ms();
        let rec = OpenRecord::open(
            &centre.records,
            ContactRecord {
                id: uuid::Uuid::new_v4().to_string(),
                initial_contact_id: callback
                    .map(|c| c.initial_contact_id.clone())
                    .unwrap_or_else(|| offer.contact.clone()),
                previous_contact_id: Some(offer.contact.clone()),
                initiation: initiation::AGENT_LEG.into(),
                queue: Some(offer.queue.clone()),
                agent: Some(offer.agent.clone()),
                customer_number: callback.map(|c| c.number.clone()),
                initiated_ms: now,
                offered_ms: Some(now),
                ..ContactRecord::default()
            },
        );
        AgentLeg { rec, sent: None }
    }

    pub fn id(&self) -> &str {
        &self.rec.id
    }

    /// The INVITE left (the offer's span learns its Call-ID).
    pub fn dialled(&mut self, call_id: &str) {
        tracing::Span::current().record("call_id", call_id);
        self.sent = Some(Instant::now());
        self.rec.call_id = Some(call_id.to_string());
        self.rec.save();
    }

    /// The phone answered, or did not.
    pub fn rang(&mut self, centre: &Centre, outcome: DialOutcome) {
        if let Some(sent) = self.sent {
            let secs = sent.elapsed().as_secs_f64();
            self.rec.ring_ms = Some((secs * 1000.0) as i64);
            centre.histograms.ring.observe(&["agent"], secs);
        }
        self.rec.outcome = Some(outcome_name(outcome).into());
        self.rec.sip_status = sip_status(outcome);
        if outcome == DialOutcome::Answered {
            self.rec.connected_ms = Some(now_ms());
            self.rec.save();
        } else {
            self.end(outcome_name(outcome));
        }
    }

    /// The leg never rang (no phone registered, no media or transport).
    pub fn failed(&mut self, why: &str) {
        self.rec.outcome = Some("failed".into());
        self.end(why);
    }

    /// The conversation (or what the agent heard of it) is over.
    pub fn hung_up(&mut self, ended: Option<EndReason>) {
        self.end(match ended {
            Some(EndReason::RemoteHangup) => "agent hung up",
            Some(r) => r.as_str(),
            None => "gateway hung up",
        });
    }

    pub fn end(&mut self, reason: &str) {
        self.rec.disconnected_ms.get_or_insert_with(now_ms);
        self.rec
            .disconnect_reason
            .get_or_insert_with(|| reason.to_string());
    }
}
