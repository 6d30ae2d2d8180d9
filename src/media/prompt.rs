//! Prompts: WAV files rendered ahead of time, loaded once at start-up,
//! converted to 8 kHz mono and pre-encoded to µ-law and A-law, so playing
//! one costs a slice copy per packet.

use super::g711::Law;
use super::resample::{downmix, to_8k};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct Prompt {
    pub name: String,
    /// 8 kHz mono linear samples (for tests, level checks, transcoding).
    pub pcm: Arc<[i16]>,
    ulaw: Arc<[u8]>,
    alaw: Arc<[u8]>,
}

impl Prompt {
    pub fn from_pcm(name: &str, pcm: Vec<i16>) -> Prompt {
        let ulaw: Vec<u8> = pcm.iter().map(|&s| Law::Ulaw.encode(s)).collect();
        let alaw: Vec<u8> = pcm.iter().map(|&s| Law::Alaw.encode(s)).collect();
        Prompt {
            name: name.to_string(),
            pcm: pcm.into(),
            ulaw: ulaw.into(),
            alaw: alaw.into(),
        }
    }

    pub fn encoded(&self, law: Law) -> &[u8] {
        match law {
            Law::Ulaw => &self.ulaw,
            Law::Alaw => &self.alaw,
        }
    }

    pub fn len_samples(&self) -> usize {
        self.pcm.len()
    }

    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.pcm.len() as u64 * 125)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct PromptError {
    pub file: PathBuf,
    pub message: String,
}

const RATES: [u32; 4] = [8000, 16000, 44100, 48000];

/// Reads a WAV file: 8/16/44.1/48 kHz, mono or stereo, integer PCM (8, 16,
/// 24 or 32 bits) or 32-bit float. Anything else is an error naming the
/// file and the problem.
pub fn load_wav(path: &Path, name: &str) -> Result<Prompt, PromptError> {
    let err = |message: String| PromptError {
        file: path.to_path_buf(),
        message,
    };
    let mut reader =
        hound::WavReader::open(path).map_err(|e| err(format!("cannot read WAV: {e}")))?;
    let spec = reader.spec();
    if !RATES.contains(&spec.sample_rate) {
        return Err(err(format!(
            "sample rate {} Hz is not supported (use 8000, 16000, 44100 or 48000)",
            spec.sample_rate
        )));
    }
    if !(1..=2).contains(&spec.channels) {
        return Err(err(format!(
            "{} channels: only mono or stereo",
            spec.channels
        )));
    }
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = (1i64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| err(format!("corrupt sample data: {e}")))?
        }
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| err(format!("corrupt sample data: {e}")))?,
        (fmt, bits) => return Err(err(format!("{bits}-bit {fmt:?} samples are not supported"))),
    };
    if samples.is_empty() {
        return Err(err("no audio in file".into()));
    }
    let mono = downmix(&samples, spec.channels);
    let at_8k = to_8k(&mono, spec.sample_rate);
    let pcm: Vec<i16> = at_8k
        .iter()
        .map(|&v| (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    Ok(Prompt::from_pcm(name, pcm))
}

/// Every prompt the configuration uses, by name.
#[derive(Debug, Default, Clone)]
pub struct PromptLibrary {
    prompts: HashMap<String, Arc<Prompt>>,
}

impl PromptLibrary {
    /// Loads `<dir>/<name>.wav` for each name; collects every error.
    pub fn load<'a>(
        dir: &Path,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<PromptLibrary, Vec<PromptError>> {
        let mut lib = PromptLibrary::default();
        let mut errors = Vec::new();
        for name in names {
            if lib.prompts.contains_key(name) {
                continue;
            }
            let path = dir.join(format!("{name}.wav"));
            match load_wav(&path, name) {
                Ok(p) => {
                    lib.prompts.insert(name.to_string(), Arc::new(p));
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(lib)
        } else {
            Err(errors)
        }
    }

    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.name.clone(), Arc::new(prompt));
    }

    pub fn get(&self, name: &str) -> Option<Arc<Prompt>> {
        self.prompts.get(name).cloned()
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, bits: u16, n: usize) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..n * usize::from(channels) {
            let v = ((i as f64 * 0.05).sin() * 8000.0) as i32;
            w.write_sample(if bits == 8 { v >> 8 } else { v }).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn accepted_formats_become_8k_mono() {
        let dir = tempfile::tempdir().unwrap();
        for (rate, ch) in [(8000, 1), (16000, 2), (44100, 1), (48000, 2)] {
            let p = dir.path().join(format!("p{rate}.wav"));
            write_wav(&p, rate, ch, 16, rate as usize);
            let prompt = load_wav(&p, "p").unwrap();
            assert!(
                (prompt.len_samples() as i64 - 8000).abs() <= 1,
                "{rate}/{ch}: {}",
                prompt.len_samples()
            );
            assert_eq!(prompt.encoded(Law::Ulaw).len(), prompt.len_samples());
        }
    }

    #[test]
    fn refusals_name_the_file_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("odd.wav");
        write_wav(&p, 22050, 1, 16, 100);
        let e = load_wav(&p, "odd").unwrap_err();
        assert!(e.to_string().contains("odd.wav"));
        assert!(e.to_string().contains("22050"));
        let q = dir.path().join("bad.wav");
        std::fs::write(&q, b"RIFF....nonsense").unwrap();
        assert!(
            load_wav(&q, "bad")
                .unwrap_err()
                .to_string()
                .contains("bad.wav")
        );
        let errs = PromptLibrary::load(dir.path(), ["missing", "odd"]).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].to_string().contains("missing.wav"));
    }
}
