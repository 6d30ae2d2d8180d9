//! One call leg's media: an RTP socket, what it plays, what it hears.
//!
//! The shared state is touched by three parties: the pacer thread (next
//! packet to send), the leg's receive task (incoming RTP, DTMF, relaying
//! to a bridged leg) and the call logic through `Leg` (play this, bridge
//! that). A short mutex section each; never two legs' locks at once.

use super::bridge::RelayClock;
use super::dtmf::{DtmfReceiver, EventPayload, event_packets};
use super::g711::{Law, Transcoder};
use super::pacer::Pacer;
use super::playback::Playback;
use super::prompt::Prompt;
use super::rtp_out::RtpOut;
use super::rtp_packet::{self, RtpIn};
use super::sdp::MediaParams;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, mpsc};

/// What a leg reports to the call that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    Dtmf(char),
    /// A non-looping `play` finished (its token).
    PlaybackDone(u64),
    /// No RTP for the configured time while the peer should be sending.
    RtpTimeout,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub relayed_in: u64,
    pub dtmf_digits: u64,
    pub latched: Option<SocketAddr>,
}

enum OutItem {
    Event(bool, EventPayload),
    /// One packet of ordinary audio between two digits.
    Gap,
}

struct LegState {
    params: Option<MediaParams>,
    remote: Option<SocketAddr>,
    latched: bool,
    /// The socket is connect()ed to `remote` (done once latched): each
    /// send skips the route lookup, and the kernel drops datagrams from
    /// any other source before they wake us.
    connected: bool,
    out: RtpOut,
    playback: Playback,
    next_token: u64,
    dtmf_out: VecDeque<OutItem>,
    dtmf_rx: DtmfReceiver,
    bridge: Option<Arc<LegShared>>,
    relay_clock: RelayClock,
    /// What this leg plays while its bridged partner's peer holds.
    hold_music: Vec<Arc<Prompt>>,
    /// Playing `hold_music` in place of the relay right now.
    cover: Option<Playback>,
    last_rx: Instant,
    timed_out: bool,
    stats: LegStats,
    /// Incoming audio decoded for an analyser (answering-machine
    /// detection), while one listens. Bounded: a stalled reader loses
    /// audio, never memory.
    tap: Option<mpsc::Sender<Vec<i16>>>,
}

/// Packets of decoded audio a tap holds at most (5 s of 20 ms packets).
const TAP_PACKETS: usize = 250;

pub struct LegShared {
    id: u64,
    local: SocketAddr,
    socket: std::net::UdpSocket,
    state: Mutex<LegState>,
    events: mpsc::UnboundedSender<LegEvent>,
    closed: AtomicBool,
    close: Notify,
    transcoder: Arc<Transcoder>,
    rtp_timeout: Duration,
    rtp_hold_timeout: Duration,
    /// The peer holds this leg (see `Direction::held_by_peer`): read by
    /// the bridged partner's pacer without taking this leg's lock.
    held: AtomicBool,
}

/// What the pacer should do for one tick of a leg.
pub struct Tick {
    /// Length and destination (`None`: the socket is connected to it).
    pub send: Option<(usize, Option<SocketAddr>)>,
    pub period: Duration,
}

impl LegShared {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn send_raw(&self, data: &[u8], dest: Option<SocketAddr>) -> std::io::Result<usize> {
        match dest {
            Some(d) => self.socket.send_to(data, d),
            None => self.socket.send(data),
        }
    }

    /// Builds this leg's next packet into `buf` (pacer thread). Also where
    /// the RTP timeout is noticed: the pacer visits every leg each ptime
    /// and already holds its state, so the receive task needs no timer,
    /// and packets it discards (wrong source, unknown payload type) cannot
    /// keep a dead call alive.
    pub fn tick(&self, buf: &mut [u8], now: Instant) -> Tick {
        let mut st = self.state.lock();
        let Some(params) = st.params else {
            return Tick {
                send: None,
                period: Duration::from_millis(20),
            };
        };
        // A peer holding the call may send nothing for as long as it
        // holds (RFC 6337 §5.3): then only the hold timeout applies.
        let limit = if params.direction.held_by_peer() {
            Some(self.rtp_hold_timeout)
        } else if params.direction.we_receive() {
            Some(self.rtp_timeout)
        } else {
            None
        };
        if let Some(limit) = limit
            && !st.timed_out
            && now.saturating_duration_since(st.last_rx) >= limit
        {
            st.timed_out = true;
            let _ = self.events.send(LegEvent::RtpTimeout);
        }
        let period = Duration::from_millis(u64::from(params.ptime_ms));
        let samples = params.samples_per_packet();
        let dest = match st.remote {
            Some(d) if params.direction.we_send() => d,
            _ => {
                st.out.skip(samples);
                return Tick { send: None, period };
            }
        };
        let mut payload = [0u8; 480];
        let partner_held = st.bridge.as_ref().map(|b| b.held.load(Ordering::Relaxed));
        let (pt, stamp, len) = match partner_held {
            // The other leg's packets are relayed as they arrive.
            Some(false) => {
                if st.cover.take().is_some() {
                    // Back from hold: the relay picks up our clock.
                    st.relay_clock.reset();
                    st.out.mark_next();
                }
                return Tick { send: None, period };
            }
            // The other side holds: this side hears hold music instead of
            // dead air (a phone hearing nothing hangs up: linphone after
            // 30 s), until the bridge resumes on unhold.
            Some(true) => {
                if st.cover.is_none() {
                    st.cover = Some(Playback::prompts(st.hold_music.clone(), 0, true));
                    st.out.mark_next();
                }
                let n = (samples as usize).min(payload.len());
                if let Some(cover) = st.cover.as_mut() {
                    cover.fill(params.law, &mut payload[..n]);
                }
                (params.pt, st.out.audio(samples), n)
            }
            None => self.own_media(&mut st, params, samples, &mut payload),
        };
        let ssrc = st.out.ssrc;
        st.stats.tx_packets += 1;
        let to = (!st.connected).then_some(dest);
        drop(st);
        let send = rtp_packet::write(
            buf,
            stamp.marker,
            pt,
            stamp.seq,
            stamp.ts,
            ssrc,
            &payload[..len],
        )
        .map(|n| (n, to));
        Tick { send, period }
    }

    /// The next packet of what this leg plays itself: a queued DTMF event,
    /// else its prompts (or silence). (payload type, stamp, length)
    fn own_media(
        &self,
        st: &mut LegState,
        params: MediaParams,
        samples: u32,
        payload: &mut [u8; 480],
    ) -> (u8, super::rtp_out::Stamp, usize) {
        let item = st.dtmf_out.pop_front();
        match (item, params.dtmf_pt) {
            (Some(OutItem::Event(first, ev)), Some(dtmf_pt)) => {
                let mut p = [0u8; 4];
                ev.write(&mut p);
                payload[..4].copy_from_slice(&p);
                (dtmf_pt, st.out.event(first, samples), 4)
            }
            _ => {
                let n = (samples as usize).min(payload.len());
                let finished = st.playback.fill(params.law, &mut payload[..n]);
                if let Some(token) = finished {
                    let _ = self.events.send(LegEvent::PlaybackDone(token));
                }
                (params.pt, st.out.audio(samples), n)
            }
        }
    }

    /// One datagram arrived on the leg's socket (receive task).
    fn on_datagram(&self, data: &[u8], from: SocketAddr, now: Instant) {
        let Some(pkt) = rtp_packet::parse(data) else {
            return;
        };
        let mut st = self.state.lock();
        let Some(params) = st.params else { return };
        let is_audio = pkt.payload_type == params.pt;
        let is_event = Some(pkt.payload_type) == params.dtmf_pt;
        if !is_audio && !is_event {
            // Comfort noise and anything not negotiated: ignored.
            return;
        }
        if !st.latched {
            // Symmetric RTP (RFC 4961): answer to where packets come from,
            // which is right behind NAT; then stick to it so a stray
            // sender can't take the stream over.
            st.remote = Some(from);
            st.latched = true;
            st.stats.latched = Some(from);
            st.connected = self.socket.connect(from).is_ok();
        } else if st.remote != Some(from) {
            return;
        }
        st.last_rx = now;
        st.timed_out = false;
        st.stats.rx_packets += 1;
        if is_event
            && let Some(d) =
                st.dtmf_rx
                    .on_packet(pkt.ssrc, pkt.timestamp, pkt.marker, pkt.payload, now)
        {
            st.stats.dtmf_digits += 1;
            let _ = self.events.send(LegEvent::Dtmf(d.digit));
        }
        if is_audio && let Some(tap) = &st.tap {
            let pcm = pkt.payload.iter().map(|&c| params.law.decode(c)).collect();
            if tap.try_send(pcm).is_err() {
                st.tap = None;
            }
        }
        let Some(peer) = st.bridge.clone() else {
            return;
        };
        if params.direction.held_by_peer() {
            // Whatever a holding peer sends (its own music, comfort noise)
            // is not relayed: the other side hears the queue's music.
            return;
        }
        let law = params.law;
        drop(st);
        peer.relay_in(&pkt, if is_event { None } else { Some(law) });
    }

    /// Sends a packet received on the bridged leg out of this one.
    /// `law` is the incoming audio's law; `None` for a telephone-event.
    fn relay_in(&self, pkt: &RtpIn<'_>, law: Option<Law>) {
        let mut st = self.state.lock();
        let Some(params) = st.params else { return };
        let Some(dest) = st.remote.filter(|_| params.direction.we_send()) else {
            return;
        };
        if st.cover.take().is_some() {
            // The other side's peer sends again: its hold is over (a held
            // leg relays nothing), so the music stops here rather than at
            // the next tick, and the relay starts a new talkspurt.
            st.relay_clock.reset();
            st.out.mark_next();
        }
        let pt = match law {
            Some(_) => params.pt,
            None => match params.dtmf_pt {
                Some(pt) => pt,
                None => return,
            },
        };
        let mut payload = [0u8; 1200];
        let n = pkt.payload.len().min(payload.len());
        payload[..n].copy_from_slice(&pkt.payload[..n]);
        if let Some(from) = law {
            self.transcoder
                .translate(from, params.law, &mut payload[..n]);
        }
        let next_ts = st.out.next_ts();
        let (ts, marker) = st.relay_clock.map(pkt, next_ts);
        let samples = if law.is_some() {
            n as u32
        } else {
            params.samples_per_packet()
        };
        let stamp = st.out.relay(ts, samples, marker);
        let ssrc = st.out.ssrc;
        st.stats.relayed_in += 1;
        st.stats.tx_packets += 1;
        let to = (!st.connected).then_some(dest);
        drop(st);
        let mut buf = [0u8; 1300];
        if let Some(len) = rtp_packet::write(
            &mut buf,
            stamp.marker,
            pt,
            stamp.seq,
            stamp.ts,
            ssrc,
            &payload[..n],
        ) {
            let _ = self.send_raw(&buf[..len], to);
        }
    }
}

/// Dissolves a UDP socket's association (connect with AF_UNSPEC,
/// connect(2)): it receives from anyone again.
fn disconnect(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC is a valid argument
    // of that size; the descriptor is open for the socket's lifetime.
    unsafe {
        let mut sa: libc::sockaddr = std::mem::zeroed();
        sa.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(
            socket.as_raw_fd(),
            &sa,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        );
    }
}

/// A cloneable reference to a leg, for the task that bridges two calls it
/// does not both own. Holding one does not keep the leg open.
#[derive(Clone)]
pub struct LegLink(Arc<LegShared>);

impl LegLink {
    /// See `Leg::bridge`.
    pub fn bridge(&self, other: &LegLink) {
        for (a, b) in [(&self.0, &other.0), (&other.0, &self.0)] {
            let mut st = a.state.lock();
            st.bridge = Some(b.clone());
            st.playback = Playback::Silence;
            st.cover = None;
            st.relay_clock.reset();
        }
    }

    /// What this leg plays while it is bridged and the other leg's peer
    /// holds (the queue's hold music); silence packets if empty.
    pub fn set_hold_music(&self, prompts: Vec<Arc<Prompt>>) {
        self.0.state.lock().hold_music = prompts;
    }

    pub fn unbridge(&self) {
        let peer = {
            let mut st = self.0.state.lock();
            st.out.mark_next();
            st.cover = None;
            st.bridge.take()
        };
        if let Some(p) = peer {
            let mut st = p.state.lock();
            st.bridge = None;
            st.cover = None;
            st.out.mark_next();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// The call's handle on a leg. Dropping it closes the leg.
pub struct Leg {
    shared: Arc<LegShared>,
    events: mpsc::UnboundedReceiver<LegEvent>,
    pacer: Arc<Pacer>,
    registered: bool,
}

impl Leg {
    pub(crate) fn open(
        id: u64,
        socket: std::net::UdpSocket,
        pacer: Arc<Pacer>,
        transcoder: Arc<Transcoder>,
        rtp_timeout: Duration,
        rtp_hold_timeout: Duration,
    ) -> std::io::Result<Leg> {
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        // Registered for readability only: with write interest too, every
        // packet the pacer sends would wake the reactor when the kernel
        // frees its buffer (sock_wfree → EPOLLOUT), which measured as a
        // third of the CPU spent on sending.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(std::io::Error::other("media legs need a tokio runtime"));
        }
        let clone = socket.try_clone()?;
        // SAFETY: `clone` is a std UdpSocket that owns its descriptor; the
        // AsyncFd takes ownership of it, so the descriptor stays open and
        // refers to the same socket for the AsyncFd's whole life.
        let recv = unsafe { AsyncFd::register_with_interest(clone, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(LegShared {
            id,
            local,
            socket,
            state: Mutex::new(LegState {
                params: None,
                remote: None,
                latched: false,
                connected: false,
                out: RtpOut::new(),
                playback: Playback::Silence,
                next_token: 1,
                dtmf_out: VecDeque::new(),
                dtmf_rx: DtmfReceiver::new(),
                bridge: None,
                relay_clock: RelayClock::default(),
                hold_music: Vec::new(),
                cover: None,
                last_rx: Instant::now(),
                timed_out: false,
                stats: LegStats::default(),
                tap: None,
            }),
            events: tx,
            closed: AtomicBool::new(false),
            close: Notify::new(),
            transcoder,
            rtp_timeout,
            rtp_hold_timeout,
            held: AtomicBool::new(false),
        });
        tokio::spawn(receive_loop(shared.clone(), recv));
        Ok(Leg {
            shared,
            events: rx,
            pacer,
            registered: false,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// Applies a (re)negotiated SDP: codec, destination, direction. A new
    /// destination is latched afresh from the next packets.
    pub fn set_params(&mut self, params: MediaParams) {
        {
            let mut st = self.shared.state.lock();
            let changed_dest = st.params.map(|p| p.remote) != Some(params.remote);
            st.params = Some(params);
            if changed_dest {
                st.remote = params.remote;
                st.latched = false;
                if std::mem::take(&mut st.connected) {
                    // Packets from the new address must reach us to be
                    // latched afresh.
                    disconnect(&self.shared.socket);
                }
            }
            st.relay_clock.reset();
            st.out.mark_next();
            st.last_rx = Instant::now();
            st.timed_out = false;
            self.shared
                .held
                .store(params.direction.held_by_peer(), Ordering::Relaxed);
        }
        if !self.registered {
            self.pacer.add(self.shared.clone());
            self.registered = true;
        }
    }

    pub fn params(&self) -> Option<MediaParams> {
        self.shared.state.lock().params
    }

    /// Whether the peer holds this leg (its last offer or answer was
    /// sendonly or inactive).
    pub fn is_held(&self) -> bool {
        self.shared.held.load(Ordering::Relaxed)
    }

    /// Plays prompts in order (looping the list if asked); returns the
    /// token its `PlaybackDone` will carry.
    pub fn play(&self, prompts: Vec<Arc<Prompt>>, looping: bool) -> u64 {
        let mut st = self.shared.state.lock();
        let token = st.next_token;
        st.next_token += 1;
        st.playback = Playback::prompts(prompts, token, looping);
        token
    }

    pub fn stop_playback(&self) {
        self.shared.state.lock().playback = Playback::Silence;
    }

    pub fn is_playing(&self) -> bool {
        self.shared.state.lock().playback.is_playing()
    }

    /// Queues RFC 4733 events for `digits`, 100 ms each, 60 ms apart.
    pub fn send_dtmf(&self, digits: &str) {
        let mut st = self.shared.state.lock();
        let samples = st.params.map(|p| p.samples_per_packet()).unwrap_or(160) as u16;
        for d in digits.chars() {
            for (first, ev) in event_packets(d, 800, samples, 10) {
                st.dtmf_out.push_back(OutItem::Event(first, ev));
            }
            for _ in 0..3 {
                st.dtmf_out.push_back(OutItem::Gap);
            }
        }
    }

    /// Connects two legs: from now on each relays what it receives to the
    /// other, and neither plays anything of its own.
    pub fn bridge(&self, other: &Leg) {
        self.link().bridge(&other.link());
    }

    pub fn unbridge(&self) {
        self.link().unbridge();
    }

    /// See `LegLink::set_hold_music`.
    pub fn set_hold_music(&self, prompts: Vec<Arc<Prompt>>) {
        self.link().set_hold_music(prompts);
    }

    /// A handle for bridging this leg from another task.
    /// The peer's audio from now on, decoded to linear PCM, until the
    /// receiver is dropped (or falls behind by more than 5 s).
    pub fn tap_audio(&self) -> mpsc::Receiver<Vec<i16>> {
        let (tx, rx) = mpsc::channel(TAP_PACKETS);
        self.shared.state.lock().tap = Some(tx);
        rx
    }

    /// Stops a tap.
    pub fn untap_audio(&self) {
        self.shared.state.lock().tap = None;
    }

    pub fn link(&self) -> LegLink {
        LegLink(self.shared.clone())
    }

    pub async fn next_event(&mut self) -> Option<LegEvent> {
        self.events.recv().await
    }

    pub fn try_event(&mut self) -> Option<LegEvent> {
        self.events.try_recv().ok()
    }

    pub fn stats(&self) -> LegStats {
        self.shared.state.lock().stats
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.unbridge();
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.close.notify_one();
    }
}

async fn recv_from(
    socket: &AsyncFd<std::net::UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        let mut guard = socket.readable().await?;
        match guard.try_io(|s| s.get_ref().recv_from(buf)) {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

async fn receive_loop(shared: Arc<LegShared>, socket: AsyncFd<std::net::UdpSocket>) {
    let mut buf = vec![0u8; 2048];
    // One waiter for the whole life of the leg, not one per packet.
    let closing = shared.close.notified();
    tokio::pin!(closing);
    while !shared.is_closed() {
        tokio::select! {
            r = recv_from(&socket, &mut buf) => match r {
                Ok((n, from)) => {
                    shared.on_datagram(buf.get(..n).unwrap_or_default(), from, Instant::now());
                }
                Err(_) => {
                    // ICMP unreachable from a peer that went away, etc.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            _ = &mut closing => break,
        }
    }
}
