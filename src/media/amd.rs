//! Answering-machine detection, sans-IO: fed the first seconds of what the
//! called party sends (linear PCM, 8 kHz), it says whether a person or a
//! machine answered, the way Asterisk's app_amd does. A person says a word
//! or two ("Hello?") and waits for an answer; a voicemail greeting talks
//! on ("Hi, you've reached … please leave a message after the tone"), or
//! says nothing at first while the system cues up.
//!
//! Frames of 20 ms are classed as voice or silence by their mean absolute
//! amplitude. Voice lasting `min_word_ms` is a word; `between_words_ms` of
//! silence ends one. Then, as in app_amd:
//! - silence for `initial_silence_ms` before any word → machine;
//! - voice adding up to `greeting_ms` → machine (a long greeting);
//! - `max_words` words → machine;
//! - one word longer than `max_word_ms` → machine;
//! - `after_greeting_silence_ms` of silence after a short greeting → human;
//! - nothing decided after `total_ms` → not sure (treated as a person:
//!   hanging up on a customer is worse than bridging a machine).

/// Samples per 20 ms frame at 8 kHz.
const FRAME: usize = 160;
const FRAME_MS: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdConfig {
    pub initial_silence_ms: u32,
    pub greeting_ms: u32,
    pub after_greeting_silence_ms: u32,
    pub total_ms: u32,
    pub min_word_ms: u32,
    pub between_words_ms: u32,
    pub max_words: u32,
    pub max_word_ms: u32,
    /// Mean absolute amplitude (16-bit linear) below which a frame is
    /// silence.
    pub silence_threshold: u32,
}

impl Default for AmdConfig {
    /// app_amd's defaults, except four words rather than two, and 80 ms
    /// rather than 50 between words: "Hello, who's this?" is a person, and
    /// a pause inside a word is not two words. (Chosen on the TTS corpus of
    /// `tests/amd_greetings.rs`, in the middle of the range that classifies
    /// all of it right: 4-5 words at 50-80 ms.)
    fn default() -> AmdConfig {
        AmdConfig {
            initial_silence_ms: 2500,
            greeting_ms: 1500,
            after_greeting_silence_ms: 800,
            total_ms: 5000,
            min_word_ms: 100,
            between_words_ms: 80,
            max_words: 4,
            max_word_ms: 5000,
            silence_threshold: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Human(&'static str),
    Machine(&'static str),
    /// Nothing decided within the analysis time.
    NotSure,
}

impl Verdict {
    pub fn is_machine(self) -> bool {
        matches!(self, Verdict::Machine(_))
    }

    /// How the log and the contact record name it (app_amd's causes).
    pub fn cause(self) -> &'static str {
        match self {
            Verdict::Human(c) | Verdict::Machine(c) => c,
            Verdict::NotSure => "TOOLONG",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Amd {
    cfg: AmdConfig,
    /// Samples not yet making a whole frame.
    pending: Vec<i16>,
    elapsed_ms: u32,
    voice_ms: u32,
    consecutive_voice_ms: u32,
    silence_ms: u32,
    words: u32,
    in_word: bool,
    in_greeting: bool,
    verdict: Option<Verdict>,
}

impl Amd {
    pub fn new(cfg: AmdConfig) -> Amd {
        Amd {
            cfg,
            pending: Vec::with_capacity(FRAME),
            elapsed_ms: 0,
            voice_ms: 0,
            consecutive_voice_ms: 0,
            silence_ms: 0,
            words: 0,
            in_word: false,
            in_greeting: false,
            verdict: None,
        }
    }

    /// Words heard so far.
    pub fn words(&self) -> u32 {
        self.words
    }

    /// Feeds audio as it arrives; the verdict once there is one (it never
    /// changes afterwards).
    pub fn feed(&mut self, pcm: &[i16]) -> Option<Verdict> {
        for &s in pcm {
            if self.verdict.is_some() {
                break;
            }
            self.pending.push(s);
            if self.pending.len() == FRAME {
                let energy = mean_abs(&self.pending);
                self.pending.clear();
                self.verdict = self.frame(energy);
            }
        }
        self.verdict
    }

    /// Time passed with no audio at all (a peer that sends nothing while
    /// silent): counts as silence.
    pub fn silence(&mut self, ms: u32) -> Option<Verdict> {
        let frames = ms / FRAME_MS;
        for _ in 0..frames {
            if self.verdict.is_some() {
                break;
            }
            self.verdict = self.frame(0);
        }
        self.verdict
    }

    /// The analysis time is over without a verdict.
    pub fn finish(&mut self) -> Verdict {
        *self.verdict.get_or_insert(Verdict::NotSure)
    }

    fn frame(&mut self, energy: u32) -> Option<Verdict> {
        let c = self.cfg;
        self.elapsed_ms += FRAME_MS;
        if energy < c.silence_threshold {
            self.consecutive_voice_ms = 0;
            self.silence_ms += FRAME_MS;
            if self.silence_ms >= c.between_words_ms {
                self.in_word = false;
            }
            if !self.in_greeting && self.silence_ms >= c.initial_silence_ms {
                return Some(Verdict::Machine("INITIALSILENCE"));
            }
            if self.in_greeting && self.silence_ms >= c.after_greeting_silence_ms {
                return Some(Verdict::Human("HUMAN"));
            }
        } else {
            self.silence_ms = 0;
            self.consecutive_voice_ms += FRAME_MS;
            self.voice_ms += FRAME_MS;
            if self.consecutive_voice_ms >= c.min_word_ms && !self.in_word {
                self.words += 1;
                self.in_word = true;
            }
            if self.words >= c.max_words {
                return Some(Verdict::Machine("MAXWORDS"));
            }
            if self.consecutive_voice_ms >= c.max_word_ms {
                return Some(Verdict::Machine("MAXWORDLENGTH"));
            }
            if self.in_greeting && self.voice_ms >= c.greeting_ms {
                return Some(Verdict::Machine("LONGGREETING"));
            }
            if self.voice_ms >= c.min_word_ms {
                self.in_greeting = true;
            }
        }
        (self.elapsed_ms >= c.total_ms).then_some(Verdict::NotSure)
    }
}

fn mean_abs(frame: &[i16]) -> u32 {
    let sum: u64 = frame.iter().map(|s| u64::from(s.unsigned_abs())).sum();
    (sum / frame.len().max(1) as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of a 400 Hz tone at a speaking level (voice) or of quiet.
    fn tone(ms: u32) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| ((i as f64 * 400.0 * std::f64::consts::TAU / 8000.0).sin() * 6000.0) as i16)
            .collect()
    }

    fn quiet(ms: u32) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| if i % 2 == 0 { 40 } else { -40 })
            .collect()
    }

    fn classify(parts: &[Vec<i16>]) -> Verdict {
        let mut amd = Amd::new(AmdConfig::default());
        for p in parts {
            if let Some(v) = amd.feed(p) {
                return v;
            }
        }
        amd.finish()
    }

    #[test]
    fn a_short_hello_then_silence_is_a_person() {
        let v = classify(&[quiet(400), tone(450), quiet(1000)]);
        assert_eq!(v, Verdict::Human("HUMAN"));
    }

    #[test]
    fn a_long_greeting_many_words_or_initial_silence_is_a_machine() {
        assert_eq!(
            classify(&[quiet(300), tone(1700), quiet(1000)]),
            Verdict::Machine("LONGGREETING")
        );
        let words: Vec<Vec<i16>> = (0..5).flat_map(|_| [tone(200), quiet(120)]).collect();
        assert_eq!(classify(&words), Verdict::Machine("MAXWORDS"));
        assert_eq!(classify(&[quiet(3000)]), Verdict::Machine("INITIALSILENCE"));
        let mut amd = Amd::new(AmdConfig::default());
        assert_eq!(amd.silence(2600), Some(Verdict::Machine("INITIALSILENCE")));
    }

    #[test]
    fn undecided_is_not_sure_and_a_verdict_sticks() {
        let mut amd = Amd::new(AmdConfig::default());
        assert_eq!(amd.feed(&quiet(1000)), None);
        assert_eq!(amd.finish(), Verdict::NotSure);
        let mut amd = Amd::new(AmdConfig::default());
        let first = amd.feed(&[quiet(300), tone(300), quiet(900)].concat());
        assert_eq!(first, Some(Verdict::Human("HUMAN")));
        assert_eq!(amd.feed(&tone(3000)), first, "decided once");
        assert_eq!(amd.words(), 1);
    }
}
