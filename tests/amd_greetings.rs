//! Answering-machine detection on TTS greetings: 24 people picking up
//! ("Hello?") and 24 voicemail greetings, rendered with espeak-ng in six
//! voices, sent through G.711 µ-law as on the line. Prints the confusion
//! matrix; each way must be at least 90 % right.

mod common;

use callgate::media::amd::{Amd, AmdConfig, Verdict};
use callgate::media::g711::Law;
use common::greetings::{HUMAN, MACHINE, available, render};

/// What the detector says about `pcm`, fed 20 ms packets as RTP brings
/// them.
fn classify(pcm: &[i16]) -> Verdict {
    let mut amd = Amd::new(AmdConfig::default());
    for frame in pcm.chunks(160) {
        let line: Vec<i16> = frame
            .iter()
            .map(|&s| Law::Ulaw.decode(Law::Ulaw.encode(s)))
            .collect();
        if let Some(v) = amd.feed(&line) {
            return v;
        }
    }
    amd.finish()
}

#[test]
fn confusion_matrix_on_tts_greetings() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut matrix = [[0usize; 2]; 2]; // [truth][said machine]
    let mut wrong = Vec::new();
    for (truth, texts) in [(0usize, &HUMAN[..]), (1, &MACHINE[..])] {
        for (i, text) in texts.iter().enumerate() {
            // People answer after 0.3-1 s; machines after 0.2-1.2 s.
            let lead = if truth == 0 {
                300 + (i as u32 * 70) % 700
            } else {
                200 + (i as u32 * 90) % 1000
            };
            let pcm =
                render(dir.path(), truth * 100 + i, text, lead, 3000).expect("espeak-ng renders");
            let v = classify(&pcm);
            let said_machine = usize::from(v.is_machine());
            matrix[truth][said_machine] += 1;
            if said_machine != truth {
                wrong.push(format!("{text:?} → {v:?}"));
            }
        }
    }
    println!("AMD confusion matrix (rows: truth; columns: verdict)");
    println!("            human  machine");
    println!("human       {:5}  {:7}", matrix[0][0], matrix[0][1]);
    println!("machine     {:5}  {:7}", matrix[1][0], matrix[1][1]);
    for w in &wrong {
        println!("misclassified: {w}");
    }
    let humans = matrix[0][0] as f64 / HUMAN.len() as f64;
    let machines = matrix[1][1] as f64 / MACHINE.len() as f64;
    assert!(humans >= 0.9, "people recognised: {humans:.2}: {wrong:?}");
    assert!(
        machines >= 0.9,
        "machines recognised: {machines:.2}: {wrong:?}"
    );
}
