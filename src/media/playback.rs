//! What a leg is playing: a queue of prompts (optionally looping), or
//! silence. Produces one packet's worth of encoded audio at a time.

use super::g711::Law;
use super::prompt::Prompt;
use std::sync::Arc;

#[derive(Debug, Default)]
pub enum Playback {
    #[default]
    Silence,
    Prompts {
        items: Vec<Arc<Prompt>>,
        index: usize,
        pos: usize,
        token: u64,
        looping: bool,
    },
}

impl Playback {
    pub fn prompts(items: Vec<Arc<Prompt>>, token: u64, looping: bool) -> Playback {
        if items.iter().all(|p| p.len_samples() == 0) {
            return Playback::Silence;
        }
        Playback::Prompts {
            items,
            index: 0,
            pos: 0,
            token,
            looping,
        }
    }

    pub fn is_playing(&self) -> bool {
        matches!(self, Playback::Prompts { .. })
    }

    /// Fills `out` with the next frame. Returns the token of a
    /// non-looping playback that ended within this frame (the rest of the
    /// frame is silence).
    pub fn fill(&mut self, law: Law, out: &mut [u8]) -> Option<u64> {
        let mut written = 0;
        let mut finished = None;
        if let Playback::Prompts {
            items,
            index,
            pos,
            token,
            looping,
        } = self
        {
            while written < out.len() {
                let Some(item) = items.get(*index) else {
                    if *looping {
                        *index = 0;
                        *pos = 0;
                        continue;
                    }
                    finished = Some(*token);
                    break;
                };
                let data = item.encoded(law);
                let take = (out.len() - written).min(data.len().saturating_sub(*pos));
                if let (Some(dst), Some(src)) = (
                    out.get_mut(written..written + take),
                    data.get(*pos..*pos + take),
                ) {
                    dst.copy_from_slice(src);
                }
                written += take;
                *pos += take;
                if *pos >= data.len() {
                    *index += 1;
                    *pos = 0;
                }
            }
        }
        if let Some(rest) = out.get_mut(written..) {
            rest.fill(law.silence());
        }
        if finished.is_some() {
            *self = Playback::Silence;
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(n: usize, v: i16) -> Arc<Prompt> {
        Arc::new(Prompt::from_pcm("p", vec![v; n]))
    }

    #[test]
    fn sequence_spans_frames_then_reports_end() {
        let a = prompt(100, 1000);
        let b = prompt(100, -1000);
        let mut pb = Playback::prompts(vec![a.clone(), b.clone()], 7, false);
        let mut f = [0u8; 160];
        assert_eq!(pb.fill(Law::Ulaw, &mut f), None);
        assert_eq!(f[99], a.encoded(Law::Ulaw)[0]);
        assert_eq!(f[100], b.encoded(Law::Ulaw)[0]);
        assert_eq!(pb.fill(Law::Ulaw, &mut f), Some(7));
        assert_eq!(f[40], 0xFF, "silence after the end");
        assert!(!pb.is_playing());
        assert_eq!(pb.fill(Law::Ulaw, &mut f), None);
    }

    #[test]
    fn looping_never_ends() {
        let mut pb = Playback::prompts(vec![prompt(50, 500)], 1, true);
        let mut f = [0u8; 160];
        for _ in 0..10 {
            assert_eq!(pb.fill(Law::Alaw, &mut f), None);
            assert!(f.iter().all(|&c| c == Law::Alaw.encode(500)));
        }
    }
}
