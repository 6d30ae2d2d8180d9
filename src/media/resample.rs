//! Conversion of prompt audio to 8 kHz mono: channel mixing and a
//! windowed-sinc resampler. Runs once per prompt at start-up, so it favours
//! quality over speed.

use std::f64::consts::PI;

/// Zero crossings of the sinc kernel on each side.
const ZERO_CROSSINGS: f64 = 16.0;
/// Pass band edge at the output: just below 8 kHz's Nyquist frequency.
const CUTOFF_HZ: f64 = 3600.0;

fn blackman(x: f64) -> f64 {
    // x in [-1, 1]
    let t = (x + 1.0) / 2.0;
    0.42 - 0.5 * (2.0 * PI * t).cos() + 0.08 * (4.0 * PI * t).cos()
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// Resamples mono `input` at `from_hz` to 8000 Hz.
pub fn to_8k(input: &[f32], from_hz: u32) -> Vec<f32> {
    if from_hz == 8000 {
        return input.to_vec();
    }
    let from = f64::from(from_hz);
    let ratio = from / 8000.0;
    // Normalised cut-off in cycles per input sample; the kernel is scaled
    // so its DC gain is 1.
    let fc = CUTOFF_HZ / from;
    let half = (ZERO_CROSSINGS / (2.0 * fc)).ceil() as i64;
    let out_len = ((input.len() as f64) / ratio).floor() as usize;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let x = n as f64 * ratio;
        let center = x.floor() as i64;
        let mut acc = 0.0f64;
        for k in (center - half)..=(center + half) {
            let Some(&s) = usize::try_from(k).ok().and_then(|i| input.get(i)) else {
                continue;
            };
            let t = x - k as f64;
            let w = blackman((t / half as f64).clamp(-1.0, 1.0));
            acc += f64::from(s) * 2.0 * fc * sinc(2.0 * fc * t) * w;
        }
        out.push(acc as f32);
    }
    out
}

/// Averages interleaved channels into one.
pub fn downmix(interleaved: &[f32], channels: u16) -> Vec<f32> {
    let ch = usize::from(channels.max(1));
    interleaved
        .chunks(ch)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, rate: u32, secs: f64) -> Vec<f32> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| (0.5 * (2.0 * PI * hz * i as f64 / f64::from(rate)).sin()) as f32)
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn passband_kept_and_aliases_removed() {
        for rate in [16000, 44100, 48000] {
            let pass = to_8k(&tone(1000.0, rate, 0.5), rate);
            assert!(
                (pass.len() as i64 - 4000).abs() <= 1,
                "{rate}: {}",
                pass.len()
            );
            // Middle section, away from edge effects.
            let r = rms(&pass[500..3500]);
            assert!((r - 0.3535).abs() < 0.01, "{rate}: 1 kHz rms {r}");
            // 6 kHz would alias to 2 kHz without filtering.
            let stop = to_8k(&tone(6000.0, rate, 0.5), rate);
            assert!(rms(&stop[500..3500]) < 0.005, "{rate}: 6 kHz leaked");
        }
    }

    #[test]
    fn downmix_averages() {
        assert_eq!(downmix(&[1.0, 0.0, 0.5, 0.5], 2), vec![0.5, 0.5]);
        assert_eq!(downmix(&[0.25, 0.75], 1), vec![0.25, 0.75]);
    }
}
