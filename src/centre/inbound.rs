//! An inbound call: the number's flow, then (for a voice transfer) waiting
//! in the queue with hold music or the queue's customer flow until an
//! agent takes the call, then the caller's half of the bridge.

use super::{BridgeEvent, Centre, QueueSignal, now_ms};
use crate::call::uas::InboundCall;
use crate::call::{EndReason, Session};
use crate::flow::{Contact, Mode, Outcome};
use crate::media::tones::Tone;
use crate::routing::{ContactKind, QueuedContact};
use crate::store::{ContactRecord, OpenRecord, initiation};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{Instrument, info, warn};

/// Runs a call to one of the contact centre's numbers.
pub async fn run(centre: Arc<Centre>, mut call: InboundCall, flow_name: &str) {
    let Some(flow) = centre.flows.get(flow_name) else {
        call.reject(500, Some("Flow not loaded"), &[]);
        drop(call);
        return;
    };
    let ani = call
        .caller_user()
        .and_then(|u| crate::phone::normalize_signalled(&u, centre.country));
    let contact = Contact::new_inbound(&call.dialled(), ani.clone());
    // Every line logged for this contact carries its id, and the agent's
    // name once one takes it.
    let span = tracing::info_span!("contact", contact = %contact.id, agent = tracing::field::Empty);
    run_contact(centre, call, flow, contact, ani)
        .instrument(span)
        .await;
}

async fn run_contact(
    centre: Arc<Centre>,
    mut call: InboundCall,
    flow: Arc<crate::flow::Flow>,
    mut contact: Contact,
    ani: Option<String>,
) {
    info!(flow = %flow.name, caller = ?ani, "inbound contact");
    // Written now and at each milestone, so a crash mid-call still leaves
    // a record (closed as "interrupted" at the next start), and closed
    // however the call ends.
    let mut record = OpenRecord::open(
        &centre.records,
        ContactRecord {
            id: contact.id.clone(),
            initial_contact_id: contact.initial_id.clone(),
            initiation: initiation::INBOUND.into(),
            customer_number: ani,
            dialled: Some(contact.dialled.clone()),
            call_id: Some(call.call_id().to_string()),
            initiated_ms: now_ms(),
            ..ContactRecord::default()
        },
    );
    call.ring();
    let reason = match call.answer() {
        Err(r) => r,
        Ok(()) => {
            record.connected_ms = Some(now_ms());
            record.save();
            let outcome = centre
                .run_flow(flow, &mut call.session, &mut contact, Mode::Call)
                .await;
            info!(contact = %contact.id, ?outcome, "flow finished");
            match outcome {
                Outcome::Queued { queue } => {
                    record.queue = Some(queue.clone());
                    wait_in_queue(
                        &centre,
                        &mut call.session,
                        &mut contact,
                        &queue,
                        &mut record,
                    )
                    .await
                }
                Outcome::Ended(r) => r,
                _ => {
                    call.hangup();
                    EndReason::LocalHangup
                }
            }
        }
    };
    record.queue = record.queue.take().or(contact.working_queue.clone());
    record.attributes = contact.attributes.clone();
    record.disconnected_ms = Some(now_ms());
    let reason = call
        .session
        .ended
        .map(|r| r.as_str())
        .unwrap_or(reason.as_str());
    info!(reason, queue = ?record.queue, "contact ended");
    record.disconnect_reason = Some(reason.to_string());
}

enum QueueEvent {
    Signal(Option<QueueSignal>),
    /// What the caller hears ended: the call ended, or the queue flow left
    /// the queue (a callback was arranged, or it disconnected).
    Activity(Result<Outcome, EndReason>),
}

/// Plays the queue's customer flow, or hold music, for as long as the
/// caller waits.
async fn queue_activity(
    centre: &Centre,
    session: &mut Session,
    contact: &mut Contact,
    queue: &str,
) -> Result<Outcome, EndReason> {
    let q = centre.queue(queue).cloned();
    let flow = q
        .as_ref()
        .and_then(|q| q.customer_queue_flow.as_deref())
        .and_then(|f| centre.flows.get(f));
    if let Some(flow) = flow {
        let outcome = centre.run_flow(flow, session, contact, Mode::Call).await;
        return match outcome {
            Outcome::Ended(r) => Err(r),
            // A voice transfer to the queue the caller is already in:
            // keep waiting with hold music.
            Outcome::Queued { .. } | Outcome::Finished => hold_music(centre, session, queue).await,
            other => Ok(other),
        };
    }
    hold_music(centre, session, queue).await
}

async fn hold_music(
    centre: &Centre,
    session: &mut Session,
    queue: &str,
) -> Result<Outcome, EndReason> {
    session.play(centre.hold_music(queue), true);
    loop {
        session.wait(None, false, None).await?;
    }
}

async fn wait_in_queue(
    centre: &Arc<Centre>,
    session: &mut Session,
    contact: &mut Contact,
    queue: &str,
    record: &mut OpenRecord,
) -> EndReason {
    let now = now_ms();
    let qc = QueuedContact {
        id: contact.id.clone(),
        queue: queue.to_string(),
        kind: ContactKind::Voice,
        initial_start: crate::flow::context::epoch_ms(contact.initial_start),
        enqueued: now,
        eligible: now,
        offered_to: None,
        scheduled: false,
    };
    let enqueued = centre.router.lock().enqueue(qc);
    if let Err(e) = enqueued {
        // The flow checked capacity; another caller took the last place.
        info!(queue, error = %e, "queue full: reorder tone");
        let tone = centre.media.tones.get(Tone::Reorder);
        let token = session.play(vec![tone], true);
        let _ = session
            .wait(
                token,
                false,
                Some(std::time::Instant::now() + Duration::from_secs(3)),
            )
            .await;
        session.hangup();
        return EndReason::LocalHangup;
    }
    record.enqueued_ms = Some(now);
    record.queue = Some(queue.to_string());
    record.save();
    let (tx, mut rx) = mpsc::unbounded_channel();
    centre.register_waiting(&contact.id, tx);
    centre.wake.notify_one();
    info!(contact = %contact.id, queue, "waiting in queue");
    let event = {
        let activity = queue_activity(centre, session, contact, queue);
        tokio::select! {
            s = rx.recv() => QueueEvent::Signal(s),
            a = activity => QueueEvent::Activity(a),
        }
    };
    match event {
        QueueEvent::Activity(result) => {
            centre.withdraw(&contact.id);
            match result {
                Err(r) => {
                    info!(contact = %contact.id, "caller left the queue");
                    r
                }
                Ok(_) => {
                    session.hangup();
                    EndReason::LocalHangup
                }
            }
        }
        QueueEvent::Signal(None) => {
            session.hangup();
            EndReason::Failure
        }
        QueueEvent::Signal(Some(QueueSignal::Connect {
            agent,
            agent_events,
            reply,
        })) => {
            // Keep the music going while the agent hears the whisper.
            session.play(centre.hold_music(queue), true);
            let link = session.leg.as_ref().map(|l| l.link());
            let (btx, mut brx) = mpsc::unbounded_channel();
            if reply.send(link.map(|l| (l, btx))).is_err() {
                warn!("agent side went away before the bridge");
            }
            tracing::Span::current().record("agent", agent.as_str());
            record.agent = Some(agent.clone());
            record.connected_to_agent_ms = Some(now_ms());
            record.save();
            info!(contact = %contact.id, agent = %agent, "connected to agent");
            // The caller's half of the bridge: until one side hangs up.
            let ended = tokio::select! {
                e = brx.recv() => {
                    let _ = e;
                    session.hangup();
                    EndReason::LocalHangup
                }
                r = async { loop { if let Err(r) = session.wait(None, false, None).await { return r; } } } => {
                    let _ = agent_events.send(BridgeEvent::HungUp);
                    r
                }
            };
            ended
        }
    }
}
