//! Offering a contact to an agent: ring the agent's phone; once they
//! answer, play the agent whisper, then either bridge the waiting caller
//! or dial the customer back (the dialer half of a callback).

use super::{BridgeEvent, Centre, QueueSignal, now_ms};
use crate::call::uac::{DialOutcome, DialSpec, OutboundCall, asserted_identity};
use crate::call::{EndReason, Session};
use crate::dialer::scheduler::{self, AfterAttempt};
use crate::flow::{Contact, Outcome};
use crate::media::tones::Tone;
use crate::routing::{ContactKind, Offer, QueuedContact};
use crate::sip::message::{HeaderName, Uri};
use crate::sip::transport::{Peer, TransportKind};
use crate::store::{CallbackState, ContactRecord};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info, warn};

pub fn spawn(centre: Arc<Centre>, offer: Offer) {
    let span = tracing::info_span!("offer", agent = %offer.agent, contact = %offer.contact, queue = %offer.queue);
    tokio::spawn(async move { run(centre, offer).await }.instrument(span));
}

/// Where to reach an agent: the most recently registered binding. The
/// Request-URI is the Contact exactly as registered (phones add parameters
/// they expect back); the INVITE itself goes back the way the REGISTER
/// came (see `binding_peer`).
fn agent_target(centre: &Centre, agent: &str) -> Option<(Uri, Peer)> {
    let now = std::time::Instant::now();
    let b = centre
        .bindings
        .of(agent, now)
        .into_iter()
        .max_by_key(|b| b.registered_at)?;
    let uri = b.contact.uri.clone();
    Some((uri.clone(), binding_peer(&uri, &b.source)))
}

/// An offer goes to the address the REGISTER came from (its flow, RFC
/// 5626 §5.3: the UDP source or the TCP connection), never to the
/// Contact's host. A Contact is only what the phone wrote: an agent could
/// write the trunk's address there and have callgate INVITE the trunk
/// with a premium-rate Request-URI (toll fraud, issue 9). The source is
/// also where a phone behind NAT is reachable.
pub fn binding_peer(_uri: &Uri, source: &Peer) -> Peer {
    *source
}

async fn run(centre: Arc<Centre>, offer: Offer) {
    let cancel = centre.register_offer(&offer.contact);
    let Some((uri, peer)) = agent_target(&centre, &offer.agent) else {
        warn!("agent has no registered phone");
        centre.end_offer(&offer.contact);
        offer_failed(&centre, &offer, false).await;
        return;
    };
    let queue = centre.queue(&offer.queue).cloned();
    let spec = DialSpec {
        uri,
        peer,
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
            centre.end_offer(&offer.contact);
            offer_failed(&centre, &offer, false).await;
            return;
        }
    };
    let timeout = Duration::from_secs(centre.config.routing.offer_timeout_s);
    // The offer timeout runs from the INVITE, not from the first 180.
    let abandon = async {
        tokio::select! {
            _ = cancel => {}
            _ = tokio::time::sleep(timeout) => {}
        }
    };
    let outcome = agent.wait_answer(timeout, abandon).await;
    centre.end_offer(&offer.contact);
    match outcome {
        DialOutcome::Answered => {}
        DialOutcome::Cancelled if centre.router.lock().contact(&offer.contact).is_none() => {
            info!("contact left while the agent's phone rang: offer cancelled");
            agent.finish();
            centre.wake.notify_one();
            return;
        }
        other => {
            info!(outcome = ?other, "agent did not take the offer");
            agent.finish();
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
        agent.hangup();
        agent.finish();
        centre.router.lock().contact_ended(&offer.agent, now_ms());
        centre.wake.notify_one();
        return;
    };
    info!("agent accepted");
    match contact.kind {
        ContactKind::Voice => connect_caller(&centre, &mut agent, &contact, queue.as_ref()).await,
        ContactKind::Callback => call_back(&centre, &mut agent, contact, queue.as_ref()).await,
    }
    agent.finish();
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
        let (id, agent) = (offer.contact.clone(), offer.agent.clone());
        let now = now_ms();
        let r = centre
            .db(move |s| {
                s.transition(
                    &id,
                    &[CallbackState::Offered],
                    CallbackState::Queued,
                    &format!("{agent} did not take the offer"),
                    now,
                )
            })
            .await;
        if let Err(e) = r {
            warn!(error = %e, "callback state not updated");
        }
    }
    centre.wake.notify_one();
}

/// The agent whisper: the queue's agent whisper flow, or the built-in one
/// ("… who has been waiting N minutes").
async fn whisper(
    centre: &Centre,
    session: &mut Session,
    flow: Option<&str>,
    default: &str,
    contact: &mut Contact,
) -> Result<(), EndReason> {
    if let Some(flow) = flow.and_then(|f| centre.flows.get(f)) {
        let outcome = centre.run_flow(&flow, session, contact, true).await;
        return match outcome {
            Outcome::Ended(r) => Err(r),
            _ => Ok(()),
        };
    }
    let items = vec![
        default.to_string(),
        "number:wait_minutes".into(),
        "minutes".into(),
    ];
    let vars = crate::flow::speech::Variables {
        wait_minutes: contact.waited_secs(SystemTime::now()) / 60,
        queue_position: None,
        contacts_in_queue: None,
    };
    match crate::flow::speech::resolve(&items, &centre.media.prompts, contact, &vars) {
        Ok(audio) => {
            session.play_and_wait(audio, false).await?;
        }
        Err(e) => warn!(error = %e, "whisper prompts missing"),
    }
    Ok(())
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
    let flow = queue.and_then(|q| q.agent_whisper_flow.clone());
    let whispered = tokio::select! {
        r = whisper(centre, &mut agent.session, flow.as_deref(), "agent_whisper_inbound", &mut whisper_contact) => r,
        _ = arx.recv() => Err(EndReason::RemoteHangup),
    };
    if whispered.is_err() || caller_leg.is_closed() {
        let _ = caller_events.send(BridgeEvent::HungUp);
        agent.hangup();
        return;
    }
    if let Some(l) = agent.session.leg.as_ref() {
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

/// The dialer: the agent has accepted a callback; after the agent whisper,
/// call the customer. Only the dial counts as an attempt: an agent who
/// hangs up during the whisper leaves the callback as it was.
async fn call_back(
    centre: &Arc<Centre>,
    agent: &mut OutboundCall,
    contact: QueuedContact,
    queue: Option<&crate::config::QueueConfig>,
) {
    let agent_user = agent_name(centre, &contact);
    let id = contact.id.clone();
    let cid = id.clone();
    let cb = match centre.db(move |s| s.callback(&cid)).await {
        Ok(Some(cb)) => cb,
        other => {
            warn!(result = ?other.map(|_| ()), "callback record unavailable");
            agent.hangup();
            return;
        }
    };
    // Checked again before the dial: whatever stored this number, only
    // one the rules allow now is dialled; the agent is released at once.
    if let Err(e) = centre.dial_rules.check(&cb.number) {
        warn!(callback = %id, reason = %e, "callback refused by the dial rules: failed");
        let (cid, now) = (id.clone(), now_ms());
        let reason = format!("refused by the dial rules: {e}");
        let r = centre
            .db(move |s| {
                s.transition(
                    &cid,
                    &[CallbackState::Offered],
                    CallbackState::Failed,
                    &reason,
                    now,
                )
            })
            .await;
        if let Err(e) = r {
            warn!(error = %e, "callback state not updated");
        }
        agent.hangup();
        return;
    }
    let mut whisper_contact = contact_for_whisper(&contact);
    whisper_contact.attributes = cb.attributes.clone();
    let flow = queue.and_then(|q| q.agent_whisper_flow.clone());
    if whisper(
        centre,
        &mut agent.session,
        flow.as_deref(),
        "agent_whisper_callback",
        &mut whisper_contact,
    )
    .await
    .is_err()
    {
        info!(callback = %id, "agent hung up during the whisper: callback back in the queue");
        let now = now_ms();
        let cid = id.clone();
        let r = centre
            .db(move |s| {
                s.transition(
                    &cid,
                    &[CallbackState::Offered],
                    CallbackState::Queued,
                    "agent hung up before the customer was dialled",
                    now,
                )
            })
            .await;
        if r.is_ok() {
            let requeued = centre.router.lock().requeue(contact, now, now);
            if let Err(e) = requeued {
                warn!(error = %e, "callback not requeued");
            }
        }
        return;
    }
    let (cid, who) = (id.clone(), agent_user.clone());
    let now = now_ms();
    let cb = match centre.db(move |s| s.begin_attempt(&cid, &who, now)).await {
        Ok(cb) => cb,
        Err(e) => {
            warn!(error = %e, "callback cannot be dialled");
            agent.hangup();
            return;
        }
    };
    info!(callback = %id, attempt = cb.attempts, number = %cb.number, "callback attempt");
    let mut record = ContactRecord {
        id: cb.contact_id.clone(),
        initial_contact_id: cb.initial_contact_id.clone(),
        initiation: "callback".into(),
        queue: Some(cb.queue.clone()),
        agent: Some(agent_user.clone()),
        customer_number: Some(cb.number.clone()),
        caller_id_used: queue.and_then(|q| q.caller_id_number.clone()),
        initiated_ms: cb.created_ms,
        enqueued_ms: Some(cb.created_ms),
        attributes: cb.attributes.clone(),
        ..ContactRecord::default()
    };
    let outcome = dial_customer(centre, agent, &cb, queue, &mut record).await;
    let decision = scheduler::after_attempt(&cb, outcome, &centre.retry, now_ms());
    let now = now_ms();
    let (next, not_before, text, status) = match &decision {
        AfterAttempt::Connected => (
            CallbackState::Connected,
            cb.not_before_ms,
            "connected".to_string(),
            Some(200),
        ),
        AfterAttempt::Retry {
            not_before,
            outcome: o,
        } => (
            CallbackState::Queued,
            *not_before,
            o.clone(),
            sip_status(outcome),
        ),
        AfterAttempt::Fail { outcome: o } => (
            CallbackState::Failed,
            cb.not_before_ms,
            o.clone(),
            sip_status(outcome),
        ),
    };
    info!(callback = %id, decision = ?decision, "attempt finished");
    let cid = id.clone();
    let t = text.clone();
    let updated = centre
        .db(move |s| s.end_attempt(&cid, &t, status, next, not_before, now))
        .await;
    match (&decision, updated) {
        (AfterAttempt::Retry { not_before, .. }, Ok(_)) => {
            let requeued = centre.router.lock().requeue(contact, *not_before, now);
            if let Err(e) = requeued {
                warn!(error = %e, "callback not requeued");
            }
        }
        (_, Err(e)) => warn!(error = %e, "callback state not updated"),
        _ => {}
    }
    record.disconnected_ms = Some(now_ms());
    record.disconnect_reason.get_or_insert(text);
    centre.record(record).await;
}

fn sip_status(o: DialOutcome) -> Option<u16> {
    match o {
        DialOutcome::Answered => Some(200),
        DialOutcome::NoAnswer(s) | DialOutcome::Failed(s) => Some(s),
        DialOutcome::Cancelled => None,
    }
}

async fn dial_customer(
    centre: &Arc<Centre>,
    agent: &mut OutboundCall,
    cb: &crate::store::CallbackRecord,
    queue: Option<&crate::config::QueueConfig>,
    record: &mut ContactRecord,
) -> DialOutcome {
    // The last line of defence against toll fraud: whatever put this
    // number here, only numbers passing the rules are dialled.
    if let Err(e) = centre.dial_rules.check(&cb.number) {
        warn!(number = %cb.number, error = %e, "refusing to dial");
        agent.hangup();
        return DialOutcome::Failed(403);
    }
    let cfg = &centre.config.dialer;
    let Ok(uri) = Uri::parse(&cfg.uri_template.replace("{number}", &cb.number)) else {
        warn!("dialer.uri_template does not make a valid URI");
        agent.hangup();
        return DialOutcome::Failed(500);
    };
    let Ok(target) = cfg.target.parse() else {
        agent.hangup();
        return DialOutcome::Failed(500);
    };
    let peer = match cfg.transport {
        crate::config::Transport::Udp => Peer::udp(target),
        crate::config::Transport::Tcp => Peer::tcp(target, None),
    };
    let display = queue.and_then(|q| q.caller_id_name.clone());
    let number = queue
        .and_then(|q| q.caller_id_number.clone())
        .unwrap_or_else(|| "callgate".into());
    let host = centre.sip.local.sent_by(TransportKind::Udp, &target);
    let spec = DialSpec {
        uri,
        peer,
        from_display: display.clone(),
        from_user: number.clone(),
        asserted_identity: Some(asserted_identity(display.as_deref(), &number, &host)),
        extra_headers: vec![],
        credentials: cfg.auth_user.clone().zip(cfg.auth_password.clone()),
    };
    // Ringback for the agent while the customer's phone rings.
    agent
        .session
        .play(vec![centre.media.tones.get(Tone::Ringback)], true);
    let mut customer = match OutboundCall::dial(centre.sip.clone(), centre.media.clone(), &spec) {
        Ok(c) => c,
        Err(_) => {
            agent.hangup();
            return DialOutcome::Failed(503);
        }
    };
    record.call_id = Some(customer.call_id().to_string());
    let ring = Duration::from_secs(cfg.ring_timeout_s);
    let outcome = {
        // If the agent hangs up while the customer's phone rings, give up.
        let agent_gone = async {
            loop {
                if agent.session.wait(None, false, None).await.is_err() {
                    return;
                }
            }
        };
        customer.wait_answer(ring, agent_gone).await
    };
    if outcome != DialOutcome::Answered {
        customer.finish();
        if agent.session.ended.is_none() {
            // Tell the agent, then release them.
            if let Some(p) = centre.media.prompts.get("callback_no_answer_agent") {
                let _ = agent.session.play_and_wait(vec![p], false).await;
            }
            agent.hangup();
        }
        return outcome;
    }
    record.connected_ms = Some(now_ms());
    info!(number = %cb.number, "customer answered");
    // The customer hears the outbound whisper, then the agent.
    let mut c = Contact::new_inbound("", Some(cb.number.clone()));
    c.id = cb.id.clone();
    c.initial_start = crate::flow::context::from_epoch_ms(cb.initial_start_ms);
    c.attributes = cb.attributes.clone();
    let flow = queue.and_then(|q| q.outbound_whisper_flow.clone());
    let whispered = match flow.as_deref().and_then(|f| centre.flows.get(f)) {
        Some(flow) => {
            match centre
                .run_flow(&flow, &mut customer.session, &mut c, true)
                .await
            {
                Outcome::Ended(r) => Err(r),
                _ => Ok(()),
            }
        }
        None => match centre.media.prompts.get("customer_whisper") {
            Some(p) => customer
                .session
                .play_and_wait(vec![p], false)
                .await
                .map(|_| ()),
            None => Ok(()),
        },
    };
    if whispered.is_err() || agent.session.ended.is_some() {
        // Answered, so it counts as connected even if a side left early.
        customer.hangup();
        agent.hangup();
        customer.finish();
        record.disconnect_reason = Some("ended during the whisper".into());
        return DialOutcome::Answered;
    }
    if let (Some(a), Some(cl)) = (agent.session.leg.as_ref(), customer.session.leg.as_ref()) {
        a.link().bridge(&cl.link());
    }
    info!("customer and agent bridged");
    loop {
        tokio::select! {
            r = agent.session.wait(None, false, None) => if r.is_err() { customer.hangup(); record.disconnect_reason = Some("agent hung up".into()); break; },
            r = customer.session.wait(None, false, None) => if r.is_err() { agent.hangup(); record.disconnect_reason = Some("customer hung up".into()); break; },
        }
    }
    customer.finish();
    DialOutcome::Answered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> Peer {
        Peer::udp(s.parse().unwrap())
    }

    #[test]
    fn offers_go_to_the_registering_flow_never_the_contact_host() {
        let src = peer("203.0.113.5:40000");
        for contact in [
            "sip:alice@192.168.1.10:5060",
            "sip:alice@198.51.100.7:5062",
            "sip:alice@198.51.100.7:5062;ob",
            "sip:alice@phone.example.com",
            // Issue 9: the trunk in the Contact.
            "sip:+19005550100@127.0.0.1:5080;user=phone",
        ] {
            let uri = Uri::parse(contact).unwrap();
            assert_eq!(binding_peer(&uri, &src), src, "{contact}");
        }
        let tcp = Peer::tcp("203.0.113.5:40000".parse().unwrap(), Some(3));
        let direct = Uri::parse("sip:alice@198.51.100.7:5062").unwrap();
        assert_eq!(binding_peer(&direct, &tcp), tcp, "TCP: same connection");
    }
}
