//! A scripted caller and a fake clock for unit tests of flows: the engine
//! runs exactly as on a call, with every action recorded and every input
//! (keys, end of playback, passing time, callback results) given by the
//! test.

use crate::flow::context::Contact;
use crate::flow::engine::{Action, FlowEngine, Input, Mode, Outcome};
use crate::flow::env::{CallbackRefusal, CallbackRequest, FlowEnv, QueueMetrics};
use crate::flow::load::{Flow, validate};
use crate::flow::model::FlowFile;
use crate::media::prompt::{Prompt, PromptLibrary};
use crate::media::tones::{Tone, Tones};
use crate::phone::DialRules;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::References;

fn prompt_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("prompts")
}

/// Queues test flows may name.
pub const QUEUES: [&str; 3] = ["support", "callbacks", "sales"];

/// A flow from TOML text (`type` defaults to inbound), checked as a flow
/// file would be against the shipped prompts and `QUEUES`.
pub fn flow(text: &str) -> Arc<Flow> {
    flow_named("test", text)
}

pub fn flow_named(name: &str, text: &str) -> Arc<Flow> {
    let head = text.split('[').next().unwrap_or_default();
    let text = if head.contains("type =") {
        text.to_string()
    } else {
        format!("type = \"inbound\"\n{text}")
    };
    let file: FlowFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let flow = Flow {
        name: name.into(),
        file: PathBuf::from(format!("{name}.toml")),
        flow_type: file.flow_type,
        start: file.start,
        blocks: file.blocks,
    };
    let dir = prompt_dir();
    let refs = References {
        prompt_dir: &dir,
        queues: QUEUES.iter().map(|q| q.to_string()).collect(),
    };
    let problems = validate(&flow, &refs);
    assert!(problems.is_empty(), "test flow is invalid: {problems:?}");
    Arc::new(flow)
}

/// The contact centre, as configured by the test.
pub struct FakeEnv {
    pub prompts: PromptLibrary,
    pub tones: Tones,
    pub metrics: HashMap<String, QueueMetrics>,
    pub full: HashSet<String>,
    pub rules: DialRules,
    pub flows: HashMap<String, Arc<Flow>>,
    pub callback_hours: HashMap<String, crate::routing::hours::Hours>,
}

impl Default for FakeEnv {
    fn default() -> Self {
        let mut prompts = PromptLibrary::default();
        for e in std::fs::read_dir(prompt_dir())
            .expect("prompts dir")
            .flatten()
        {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "wav")
                && let Some(stem) = p.file_stem()
            {
                prompts.insert(Prompt::from_pcm(&stem.to_string_lossy(), vec![0; 160]));
            }
        }
        FakeEnv {
            prompts,
            tones: Tones::new(),
            metrics: HashMap::new(),
            full: HashSet::new(),
            rules: DialRules::default(),
            flows: HashMap::new(),
            callback_hours: HashMap::new(),
        }
    }
}

impl FlowEnv for FakeEnv {
    fn metrics(&self, queue: &str, _: &Contact, _: SystemTime) -> QueueMetrics {
        self.metrics.get(queue).copied().unwrap_or_default()
    }
    fn queue_full(&self, queue: &str) -> bool {
        self.full.contains(queue)
    }
    fn dial_rules(&self) -> &DialRules {
        &self.rules
    }
    fn prompts(&self) -> &PromptLibrary {
        &self.prompts
    }
    fn tone(&self, tone: Tone) -> Arc<Prompt> {
        self.tones.get(tone)
    }
    fn flow(&self, name: &str) -> Option<Arc<Flow>> {
        self.flows.get(name).cloned()
    }
    fn callback_hours(&self, queue: &str) -> crate::routing::hours::Hours {
        self.callback_hours.get(queue).cloned().unwrap_or_default()
    }
}

/// One flow run with a scripted caller.
pub struct Run {
    pub engine: FlowEngine,
    pub env: FakeEnv,
    pub now: Instant,
    /// The prompt names of each Play, in order.
    plays: Vec<Vec<String>>,
    pub stops: usize,
    pub hangups: usize,
    pub callbacks: Vec<CallbackRequest>,
}

impl Run {
    pub fn start(flow: Arc<Flow>) -> Run {
        Self::start_env(flow, FakeEnv::default(), Mode::Call, |_| {})
    }

    pub fn start_with(flow: Arc<Flow>, setup: impl FnOnce(&mut Contact)) -> Run {
        Self::start_env(flow, FakeEnv::default(), Mode::Call, setup)
    }

    pub fn start_env(
        flow: Arc<Flow>,
        env: FakeEnv,
        mode: Mode,
        setup: impl FnOnce(&mut Contact),
    ) -> Run {
        let t0 = Instant::now();
        // The call began (and the flow starts) at a fixed wall time; a
        // test may move the contact's start earlier (a callback's wait).
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut contact = Contact::new_inbound("2000", Some("+12015550100".into()));
        contact.initial_start = wall;
        setup(&mut contact);
        let mut run = Run {
            engine: FlowEngine::new(flow, contact, mode, t0, wall),
            env,
            now: t0,
            plays: Vec::new(),
            stops: 0,
            hangups: 0,
            callbacks: Vec::new(),
        };
        run.engine.start(&run.env, t0);
        run.pump();
        run
    }

    fn pump(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            match a {
                Action::Play { audio, .. } => self
                    .plays
                    .push(audio.iter().map(|p| p.name.clone()).collect()),
                Action::StopPlayback => self.stops += 1,
                Action::CreateCallback(req) => self.callbacks.push(*req),
                Action::Hangup => self.hangups += 1,
            }
        }
    }

    fn input(&mut self, i: Input) {
        self.engine.handle(i, &self.env, self.now);
        self.pump();
    }

    pub fn playback_done(&mut self) {
        self.input(Input::PlaybackDone);
    }

    pub fn key(&mut self, k: char) {
        self.input(Input::Digit(k));
    }

    pub fn keys(&mut self, ks: &str) {
        for k in ks.chars() {
            self.key(k);
        }
    }

    pub fn callback_result(&mut self, r: Result<&str, CallbackRefusal>) {
        self.input(Input::CallbackCreated(r.map(str::to_string)));
    }

    /// Moves the fake clock on, firing the engine's timer each time it
    /// falls due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.engine.timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.engine.handle_timeout(&self.env, self.now);
            self.pump();
        }
        self.now = end;
    }

    pub fn advance_secs(&mut self, s: u64) {
        self.advance(Duration::from_secs(s));
    }

    /// Seconds from the start until the engine's timer.
    pub fn timer_in(&self) -> Option<Duration> {
        self.engine.timeout().map(|t| t - self.now)
    }

    /// The prompts of the last Play.
    pub fn played(&self) -> Vec<String> {
        self.plays.last().cloned().unwrap_or_default()
    }

    pub fn played_all(&self) -> &[Vec<String>] {
        &self.plays
    }

    pub fn current(&self) -> &str {
        self.engine.current()
    }

    pub fn path(&self) -> Vec<&str> {
        self.engine.visited.iter().map(String::as_str).collect()
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.engine.outcome()
    }

    pub fn hung_up(&self) -> bool {
        self.hangups == 1 && self.engine.outcome() == Some(&Outcome::Disconnected)
    }

    pub fn contact(&self) -> &Contact {
        self.engine.contact()
    }

    pub fn attr(&self, k: &str) -> Option<&str> {
        self.contact().attributes.get(k).map(String::as_str)
    }
}
