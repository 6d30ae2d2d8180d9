//! Greetings rendered with espeak-ng for answering-machine detection: what
//! a person says on picking up ("Hello?") and voicemail greetings, in
//! several voices and speeds, as 8 kHz linear PCM with the silence a phone
//! line carries before and after.

use std::path::Path;
use std::process::Command;

/// What people say when they pick up.
pub const HUMAN: [&str; 24] = [
    "Hello?",
    "Hello.",
    "Hi.",
    "Yes?",
    "Hello, yes?",
    "Hey.",
    "Yeah?",
    "Hello, Sam speaking.",
    "Good morning.",
    "Hi there.",
    "Speaking.",
    "Hello, who's this?",
    "Yes, hello.",
    "Hi, it's Dana.",
    "Hello? Hello?",
    "This is Chris.",
    "Yep?",
    "Go ahead.",
    "Morning!",
    "Hiya.",
    "Hello, Jones.",
    "Yes, speaking.",
    "Hi!",
    "Hello, this is Pat.",
];

/// Voicemail greetings.
pub const MACHINE: [&str; 24] = [
    "Hi, you've reached John Smith. I can't come to the phone right now. Please leave a message after the tone.",
    "Hello, you have reached the voicemail of Maria Garcia. Please leave your name and number and I will call you back.",
    "The person you are calling is not available. Please leave a message after the beep.",
    "Hi, this is Dave. Leave a message.",
    "You've reached the Johnson residence. We're not home right now, so leave a message and we'll get back to you.",
    "Thank you for calling Acme Plumbing. Our office is closed. Please leave a message with your name and number.",
    "Hey, it's Kim. Sorry I missed you, leave me a message and I'll call you back.",
    "The number you have dialed is not available. At the tone, please record your message.",
    "Hi, you've reached Tom and Lisa. We can't take your call right now. Please leave a message.",
    "Hello. I am not available to take your call. Please leave a detailed message after the tone.",
    "This is Alex. I'm away from my desk. Leave your name, number and a brief message and I'll return your call.",
    "You have reached five five five, zero one two three. Please leave a message.",
    "Hi there, this is Sarah's phone. Text me or leave a voicemail.",
    "Welcome to the voice mailbox of Robert Lee. Record your message at the tone. When you are finished, hang up.",
    "Hello, you've reached Doctor Patel's office. If this is an emergency, hang up and dial nine one one.",
    "Hi, this is Mike from sales. I'm on another call. Please leave your message and I'll get back to you shortly.",
    "We're sorry, the subscriber you are trying to reach is not available. Please leave a message after the tone.",
    "Hi! You've got Jenny. Do your thing at the beep.",
    "Good day. You have reached the Brown family. Please leave a message and we will return your call as soon as possible.",
    "This mailbox belongs to Chris Evans. Please leave a message.",
    "Hello, this is Anna. I can't answer the phone right now, but if you leave a message, I'll call you back.",
    "Thanks for calling. Nobody is available to take your call. Please leave a message after the tone.",
    "Hey, you reached Marcus. Leave a message, or better yet, send me a text.",
    "Hello, you have reached extension four two one. Please leave a message after the tone.",
];

/// espeak-ng voices and speeds the corpus cycles through.
const VOICES: [(&str, u32); 6] = [
    ("en-us", 160),
    ("en-gb", 150),
    ("en-us+f3", 170),
    ("en-gb-scotland", 145),
    ("en-us+m3", 180),
    ("en-029", 155),
];

/// Renders `text` (voice chosen by `i`) to 8 kHz mono PCM, with `lead_ms`
/// of line noise before and `tail_ms` after. None when espeak-ng or sox
/// is missing.
pub fn render(dir: &Path, i: usize, text: &str, lead_ms: u32, tail_ms: u32) -> Option<Vec<i16>> {
    let (voice, speed) = VOICES[i % VOICES.len()];
    let raw = dir.join(format!("g{i}_raw.wav"));
    let out = dir.join(format!("g{i}.wav"));
    let ok = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    // Telephone band and level: 300-3400 Hz, peaks at -6 dBFS.
    let ok = Command::new("sox")
        .arg(&raw)
        .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
        .arg(&out)
        .args(["sinc", "300-3400", "gain", "-n", "-6"])
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let speech = super::rtp::read_wav(&out);
    let mut seed = (i as u32).wrapping_mul(2_654_435_761);
    let mut noise = |ms: u32| -> Vec<i16> {
        (0..ms * 8)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((seed >> 16) % 61) as i16 - 30
            })
            .collect()
    };
    let mut pcm = noise(lead_ms);
    pcm.extend(speech);
    pcm.extend(noise(tail_ms));
    Some(pcm)
}

/// Whether the corpus can be rendered here (under CI=true a missing tool
/// fails the test instead).
pub fn available() -> bool {
    let have = |t: &str| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have("espeak-ng") && have("sox") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "espeak-ng and sox are needed (apt-get install -y espeak-ng sox)"
    );
    eprintln!("skipped: espeak-ng or sox not installed");
    false
}
