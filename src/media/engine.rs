//! The media engine: port pool, pacing threads, prompts and tones, shared
//! by every call.

use super::g711::Transcoder;
use super::leg::Leg;
use super::pacer::{Pacer, PacerStats};
use super::ports::PortPool;
use super::prompt::PromptLibrary;
use super::sdp::LocalMedia;
use super::tones::Tones;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address RTP sockets bind to and SDP advertises.
    pub address: IpAddr,
    pub port_min: u16,
    pub port_max: u16,
    pub rtp_timeout: Duration,
    /// The same while the peer holds (we only receive, or nothing flows).
    pub rtp_hold_timeout: Duration,
    pub pacer_threads: usize,
    /// Run the pacers with real-time priority (needs root/CAP_SYS_NICE).
    pub realtime_pacer: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port in the configured range")]
    NoPorts,
    #[error("RTP socket: {0}")]
    Io(#[from] std::io::Error),
}

pub struct MediaEngine {
    config: MediaConfig,
    ports: PortPool,
    pacers: Vec<Arc<Pacer>>,
    next_pacer: AtomicUsize,
    next_id: AtomicU64,
    transcoder: Arc<Transcoder>,
    pub prompts: Arc<PromptLibrary>,
    pub tones: Tones,
}

impl MediaEngine {
    pub fn new(config: MediaConfig, prompts: PromptLibrary) -> std::io::Result<MediaEngine> {
        let threads = config.pacer_threads.max(1);
        let pacers = (0..threads)
            .map(|i| Pacer::spawn(format!("rtp-pacer-{i}"), config.realtime_pacer).map(Arc::new))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(MediaEngine {
            ports: PortPool::new(config.address, config.port_min, config.port_max),
            config,
            pacers,
            next_pacer: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            transcoder: Arc::new(Transcoder::new()),
            prompts: Arc::new(prompts),
            tones: Tones::new(),
        })
    }

    /// Opens a leg on the next free port. Must run inside the tokio
    /// runtime (the leg's receive task is spawned on it).
    pub fn open_leg(&self) -> Result<Leg, MediaError> {
        let socket = self.ports.bind().ok_or(MediaError::NoPorts)?;
        let i = self.next_pacer.fetch_add(1, Ordering::Relaxed) % self.pacers.len();
        let pacer = self.pacers.get(i).cloned().ok_or(MediaError::NoPorts)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(Leg::open(
            id,
            socket,
            pacer,
            self.transcoder.clone(),
            self.config.rtp_timeout,
            self.config.rtp_hold_timeout,
        )?)
    }

    /// Our side of an SDP negotiation for `leg`.
    pub fn local_media(&self, leg: &Leg, version: u64) -> LocalMedia {
        LocalMedia {
            address: self.config.address,
            port: leg.local_addr().port(),
            session_id: leg.local_addr().port().into(),
            version,
        }
    }

    pub fn pacer_stats(&self) -> Vec<Arc<PacerStats>> {
        self.pacers.iter().map(|p| p.stats.clone()).collect()
    }
}
