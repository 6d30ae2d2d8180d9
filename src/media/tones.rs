//! Call-progress tones, generated once as looping prompts (North American
//! cadences, ITU-T E.180 Supplement 2): ringback 440+480 Hz 2 s on / 4 s
//! off, reorder (fast busy) 480+620 Hz 0.25 s on / 0.25 s off, busy
//! 480+620 Hz 0.5 s / 0.5 s.

use super::prompt::Prompt;
use std::f64::consts::PI;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Ringback,
    Reorder,
    Busy,
}

fn cycle(f1: f64, f2: f64, on_ms: usize, off_ms: usize) -> Vec<i16> {
    let on = on_ms * 8;
    let off = off_ms * 8;
    // Each component at about -13 dBm0, the usual level for these tones.
    let amp = 0.11 * 32767.0;
    let mut v: Vec<i16> = (0..on)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (amp * ((2.0 * PI * f1 * t).sin() + (2.0 * PI * f2 * t).sin())) as i16
        })
        .collect();
    v.extend(std::iter::repeat_n(0i16, off));
    v
}

/// The three tones, built once and shared by every leg.
#[derive(Debug, Clone)]
pub struct Tones {
    pub ringback: Arc<Prompt>,
    pub reorder: Arc<Prompt>,
    pub busy: Arc<Prompt>,
}

impl Tones {
    pub fn new() -> Tones {
        Tones {
            ringback: Arc::new(Prompt::from_pcm(
                "tone:ringback",
                cycle(440.0, 480.0, 2000, 4000),
            )),
            reorder: Arc::new(Prompt::from_pcm(
                "tone:reorder",
                cycle(480.0, 620.0, 250, 250),
            )),
            busy: Arc::new(Prompt::from_pcm("tone:busy", cycle(480.0, 620.0, 500, 500))),
        }
    }

    pub fn get(&self, tone: Tone) -> Arc<Prompt> {
        match tone {
            Tone::Ringback => self.ringback.clone(),
            Tone::Reorder => self.reorder.clone(),
            Tone::Busy => self.busy.clone(),
        }
    }
}

impl Default for Tones {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadences() {
        let t = Tones::new();
        assert_eq!(t.ringback.len_samples(), 6 * 8000);
        assert_eq!(t.reorder.len_samples(), 4000);
        // on part is loud, off part silent
        assert!(t.reorder.pcm[..2000].iter().any(|s| s.abs() > 5000));
        assert!(t.reorder.pcm[2000..].iter().all(|s| *s == 0));
    }
}
