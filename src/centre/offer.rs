//! Offering a contact to an agent: ring the agent's phone; once they
//! answer, play the agent whisper, then either bridge the waiting caller
//! or hand over to the dialer, which calls the customer back.

use super::agent_leg::AgentLeg;
use super::{BridgeEvent, Centre, QueueSignal, now_ms};
use crate::call::uac::{DialOutcome, DialSpec, OutboundCall};
use crate::call::{EndReason, Session};
use crate::dialer::CallBack;
use crate::dialer::scheduler::AfterAttempt;
use crate::flow::Contact;
use crate::flow::whisper::whisper;
use crate::routing::{ContactKind, Offer, QueuedContact};
use crate::sip::message::{HeaderName, Uri};
use crate::sip::transport::Peer;
use crate::store::CallbackRecord;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info, warn};

/// Rings `offer.agent`; `callback` is the stored callback when the offer is
/// one (as the dispatcher's Offered write returned it).
pub fn spawn(centre: Arc<Centre>, offer: Offer, callback: Option<CallbackRecord>) {
    let span = tracing::info_span!("offer", agent = %offer.agent, contact = %offer.contact, queue = %offer.queue, call_id = tracing::field::Empty);
    // Cut short by shutdown, the offer's calls hang up as they drop; a
    // callback offered or being dialled goes back to its queue, the dial
    // not counted.
    let release = callback.as_ref().map(|cb| cb.id.clone());
    let (c, s) = (centre.clone(), span.clone());
    let cleanup = async move {
        if let Some(id) = release {
            match c.dialer.book.release(&id, now_ms()).await {
                Ok(_) => info!(callback = %id, "callback released at shutdown"),
                // Connected (or finished) meanwhile: nothing to give back.
                Err(e) => info!(callback = %id, error = %e, "callback not released"),
            }
        }
    }
    .instrument(s);
    centre.tasks.spawn_with_cleanup(
        run(centre.clone(), offer, callback).instrument(span),
        cleanup,
    );
}
/// Where to reach an agent: the most recently registered binding. The
/// Request-URI is the Contact exactly as registered (phones add parameters
/// they expect back); the INVITE goes back the way the REGISTER came, or
/// through the proxies of its Path (`Binding::next_hop`: never to a host
/// the phone merely wrote in its Contact, issue 9).
fn agent_target(centre: &Centre, agent: &str) -> Option<(Uri, Peer, Vec<String>)> {
    let now = std::time::Instant::now();
    let b = centre
        .bindings
        .of(agent, now)
        .into_iter()
        .max_by_key(|b| b.registered_at)?;
    let (peer, route) = b.next_hop();
    Some((b.contact.uri.clone(), peer, route))
}

async fn run(centre: Arc<Centre>, offer: Offer, callback: Option<CallbackRecord>) {
    let cancel = centre.register_offer(&offer.contact);
    let mut leg = AgentLeg::open(&centre, &offer, callback.as_ref());
    let Some((uri, peer, route)) = agent_target(&centre, &offer.agent) else {
        warn!("agent has no registered phone");
        leg.failed("agent has no registered phone");
        centre.end_offer(&offer.contact);
        offer_failed(&centre, &offer, false).await;
        return;
    };
    let queue = centre.queue(&offer.queue).cloned();
    let spec = DialSpec {
        uri,
        peer,
        route,
        from_display: Some(format!(
            "{} {}",
            match offer.kind {
                ContactKind::Voice => "Call",
                ContactKind::Callback => "Callback",
            },
            offer.queue
        )),
        from_user: "callgate".into(),
        asserted_identity: None,
        extra_headers: vec![
            (
                HeaderName::Other("X-Callgate-Contact".into()),
                offer.contact.clone(),
            ),
            (
                HeaderName::Other("X-Callgate-Queue".into()),
                offer.queue.clone(),
            ),
        ],
        credentials: None,
    };
    let mut agent = match OutboundCall::dial(centre.sip.clone(), centre.media.clone(), &spec) {
        Ok(a) => a,
        Err(_) => {
            leg.failed("could not call the agent's phone");
            centre.end_offer(&offer.contact);
            offer_failed(&centre, &offer, false).await;
            return;
        }
    };
    leg.dialled(agent.call_id());
    let timeout = Duration::from_secs(centre.config.routing.offer_timeout_s);
    // The offer timeout runs from the INVITE, not from the first 180.
    let abandon = async {
        tokio::select! {
            _ = cancel => {}
            _ = tokio::time::sleep(timeout) => {}
        }
    };
    let outcome = agent.wait_answer(timeout, abandon).await;
    leg.rang(&centre, outcome);
    centre.end_offer(&offer.contact);
    match outcome {
        DialOutcome::Answered => {}
        DialOutcome::Cancelled if centre.router.lock().contact(&offer.contact).is_none() => {
            info!("contact left while the agent's phone rang: offer cancelled");
            drop(agent);
            centre.wake.notify_one();
            return;
        }
        other => {
            info!(outcome = ?other, "agent did not take the offer");
            drop(agent);
            offer_failed(&centre, &offer, true).await;
            return;
        }
    }
    let accepted = centre
        .router
        .lock()
        .offer_accepted(&offer.agent, &offer.contact, now_ms());
    let Some(contact) = accepted else {
        info!("contact gone by the time the agent answered");
        leg.end("contact gone before the agent answered");
        agent.hangup();
        drop(agent);
        centre.router.lock().contact_ended(&offer.agent, now_ms());
        centre.wake.notify_one();
        return;
    };
    info!("agent accepted");
    let waited = (now_ms() - contact.eligible.max(contact.enqueued)).max(0) as f64 / 1000.0;
    let kind = match contact.kind {
        ContactKind::Voice => "voice",
        ContactKind::Callback => "callback",
    };
    centre
        .histograms
        .queue_wait
        .observe(&[&contact.queue, kind], waited);
    match (contact.kind, callback) {
        (ContactKind::Callback, Some(cb)) => {
            call_back(
                &centre,
                &mut agent,
                (&offer.agent, leg.id()),
                contact,
                cb,
                queue.as_ref(),
            )
            .await
        }
        _ => connect_caller(&centre, &mut agent, &contact, queue.as_ref()).await,
    }
    leg.hung_up(agent.session.ended);
    drop(agent);
    centre.router.lock().contact_ended(&offer.agent, now_ms());
    centre.wake.notify_one();
}

/// The agent missed or declined; a callback goes back to queued with no
/// attempt used.
async fn offer_failed(centre: &Arc<Centre>, offer: &Offer, missed: bool) {
    centre
        .router
        .lock()
        .offer_failed(&offer.agent, &offer.contact, missed, now_ms());
    if offer.kind == ContactKind::Callback {
        let why = format!("{} did not take the offer", offer.agent);
        if let Err(e) = centre
            .dialer
            .book
            .unoffer(&offer.contact, &why, now_ms())
            .await
        {
            warn!(error = %e, "callback state not updated");
        }
    }
    centre.wake.notify_one();
}

fn contact_for_whisper(c: &QueuedContact) -> Contact {
    let mut contact = Contact::new_inbound("", None);
    contact.id = c.id.clone();
    contact.initial_start = crate::flow::context::from_epoch_ms(c.initial_start);
    contact.working_queue = Some(c.queue.clone());
    contact
}

/// Waits until one side of a bridge hangs up and ends the other.
async fn bridged(
    session: &mut Session,
    other: &mpsc::UnboundedSender<BridgeEvent>,
    events: &mut mpsc::UnboundedReceiver<BridgeEvent>,
) {
    tokio::select! {
        _ = events.recv() => session.hangup(),
        _ = async { loop { if session.wait(None, false, None).await.is_err() { return; } } } => {
            let _ = other.send(BridgeEvent::HungUp);
        }
    }
}

async fn connect_caller(
    centre: &Arc<Centre>,
    agent: &mut OutboundCall,
    contact: &QueuedContact,
    queue: Option<&crate::config::QueueConfig>,
) {
    let Some(caller) = centre.take_waiting(&contact.id) else {
        info!("caller gone before the bridge");
        agent.hangup();
        return;
    };
    let (atx, mut arx) = mpsc::unbounded_channel();
    let (reply_tx, reply_rx) = oneshot::channel();
    let sent = caller.send(QueueSignal::Connect {
        agent: agent_name(centre, contact),
        agent_events: atx,
        reply: reply_tx,
    });
    let Ok(Some((caller_leg, caller_events))) = (if sent.is_ok() {
        reply_rx.await
    } else {
        Ok(None)
    }) else {
        info!("caller gone before the bridge");
        agent.hangup();
        return;
    };
    let mut whisper_contact = contact_for_whisper(contact);
    let flow = queue
        .and_then(|q| q.agent_whisper_flow.as_deref())
        .and_then(|f| centre.flows.get(f));
    let whispered = tokio::select! {
        r = whisper(
            centre.as_ref(),
            &mut agent.session,
            flow,
            &["agent_whisper_inbound", "number:wait_minutes", "minutes"],
            &mut whisper_contact,
        ) => r,
        _ = arx.recv() => Err(EndReason::RemoteHangup),
    };
    if whispered.is_err() || caller_leg.is_closed() {
        let _ = caller_events.send(BridgeEvent::HungUp);
        agent.hangup();
        return;
    }
    if let Some(l) = agent.session.leg.as_ref() {
        // Whoever is left waiting while the other holds hears the queue's
        // hold music; the bridge resumes on unhold (issue 13 item 6).
        let music = queue
            .map(|q| centre.hold_music(&q.name))
            .unwrap_or_default();
        l.set_hold_music(music.clone());
        caller_leg.set_hold_music(music);
        l.link().bridge(&caller_leg);
    }
    info!("caller and agent bridged");
    bridged(&mut agent.session, &caller_events, &mut arx).await;
}

fn agent_name(centre: &Centre, contact: &QueuedContact) -> String {
    centre
        .router
        .lock()
        .agents()
        .find(|a| matches!(&a.status, crate::routing::AgentStatus::OnContact { contact: c } if *c == contact.id))
        .map(|a| a.name.clone())
        .unwrap_or_default()
}

/// The agent accepted a callback: the dialer takes it from the whisper to
/// the end of the conversation; the router learns what became of it.
async fn call_back(
    centre: &Arc<Centre>,
    agent: &mut OutboundCall,
    (agent_name, agent_leg): (&str, &str),
    contact: QueuedContact,
    cb: CallbackRecord,
    queue: Option<&crate::config::QueueConfig>,
) {
    let dialer = &centre.dialer;
    match dialer
        .call_back(centre.as_ref(), agent, (agent_name, agent_leg), cb, queue)
        .await
    {
        CallBack::AgentLeft => {
            let now = now_ms();
            if let Err(e) = centre.router.lock().requeue(contact, now, now) {
                warn!(error = %e, "callback not requeued");
            }
        }
        CallBack::Attempted { decision, record } => {
            if let AfterAttempt::Retry { not_before, .. } = decision {
                let requeued = centre.router.lock().requeue(contact, not_before, now_ms());
                if let Err(e) = requeued {
                    warn!(error = %e, "callback not requeued");
                }
            }
            centre.record(*record);
        }
        CallBack::Refused | CallBack::Abandoned => {}
    }
}
