//! linphonec (Debian `linphone-cli`, liblinphone 5.1) as a real softphone
//! in tests.
//!
//! How it is driven:
//! - `HOME` is a temp dir holding `.local/share/linphone` (liblinphone
//!   keeps its databases there and misbehaves without it);
//! - `linphonec -c RC [-a]`: the rc file sets a free SIP port (UDP and
//!   TCP), a free even RTP port, video off, and lists every codec this
//!   build knows with only PCMU and PCMA enabled (listing just those two
//!   is not enough: liblinphone appends the missing ones *enabled*);
//!   `-a` answers incoming calls;
//! - commands go to stdin, one per line, and are answered on stdout:
//!   `soundcard use files` (no sound card here: send the `play` WAV,
//!   looped, and write what is heard to the `record` WAV; without a
//!   `play` WAV linphonec sends no RTP at all, only STUN, so a call
//!   outliving callgate's `rtp.timeout_s` needs one: `tone_wav`), `register
//!   <identity> <proxy> <password>` (then `status register` prints
//!   `registered, identity=…` once the 200 arrived), `call <uri>` (→
//!   `Call N with <uri> connected.`, `Media streams established …`),
//!   a line of digits during a call (sent as RFC 4733 events, one per
//!   second), `terminate` (→ `Call N with … ended`), `quit`;
//! - linphonec itself hangs up after 30 s without RTP (`nortp_timeout`).

use super::tools::{self, terminate};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether linphonec can be run (see `tools::require`).
pub fn available() -> bool {
    tools::require("linphonec", "linphone-cli")
}

/// Codecs this liblinphone build knows, as (mime, rate, channels).
const CODECS: &[(&str, u32, u32)] = &[
    ("PCMU", 8000, 1),
    ("PCMA", 8000, 1),
    ("opus", 48000, 2),
    ("speex", 16000, 1),
    ("speex", 8000, 1),
    ("speex", 32000, 1),
    ("GSM", 8000, 1),
    ("G722", 8000, 1),
    ("G729", 8000, 1),
    ("G726-16", 8000, 1),
    ("G726-24", 8000, 1),
    ("G726-32", 8000, 1),
    ("G726-40", 8000, 1),
    ("AAL2-G726-16", 8000, 1),
    ("AAL2-G726-24", 8000, 1),
    ("AAL2-G726-32", 8000, 1),
    ("AAL2-G726-40", 8000, 1),
    ("L16", 44100, 2),
    ("L16", 44100, 1),
];

#[derive(Default)]
pub struct Options {
    /// Answer incoming calls (`-a`).
    pub auto_answer: bool,
    /// WAV played to the far end (`play`); silence when `None`.
    pub play_wav: Option<PathBuf>,
    /// Record what is heard to `<dir>/heard.wav` (`record`).
    pub record: bool,
}

pub struct Linphonec {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
    /// Output before this offset was already matched by `expect`.
    cursor: usize,
    /// SIP address (UDP and TCP).
    pub sip: SocketAddr,
    pub rtp_port: u16,
    pub dir: tempfile::TempDir,
}

impl Linphonec {
    pub fn start(opts: Options) -> Linphonec {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".local/share/linphone")).expect("linphone home");
        let sip_port = tools::free_udp_tcp_port();
        let rtp_port = super::even_udp_port();
        let rc = dir.path().join("linphonerc");
        std::fs::write(&rc, rc_text(sip_port, rtp_port)).expect("write rc");
        let mut cmd = Command::new(tools::find("linphonec").expect("linphonec installed"));
        cmd.arg("-c").arg(&rc);
        if opts.auto_answer {
            cmd.arg("-a");
        }
        let mut child = cmd
            .env("HOME", &home)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn linphonec");
        let output = tools::collect_output(&mut child, "linphonec");
        let stdin = child.stdin.take().expect("stdin");
        let mut lp = Linphonec {
            child,
            stdin,
            output,
            cursor: 0,
            sip: ([127, 0, 0, 1], sip_port).into(),
            rtp_port,
            dir,
        };
        lp.send("soundcard use files");
        lp.expect(
            "Using wav files instead of soundcard",
            Duration::from_secs(15),
        )
        .unwrap_or_else(|e| panic!("linphonec did not start: {e}"));
        if let Some(wav) = &opts.play_wav {
            lp.send(&format!("play {}", wav.display()));
        }
        if opts.record {
            let heard = lp.dir.path().join("heard.wav");
            lp.send(&format!("record {}", heard.display()));
        }
        lp
    }

    /// Everything linphonec printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Writes one command line to linphonec's stdin.
    pub fn send(&mut self, line: &str) {
        let _ = writeln!(self.stdin, "{line}");
        let _ = self.stdin.flush();
    }

    /// Waits for `needle` in output not matched before; returns the line.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.expect_any(&[needle], timeout)
    }

    /// Waits for any of `needles`; returns the line holding the first one
    /// to appear.
    pub fn expect_any(&mut self, needles: &[&str], timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.output();
            let rest = out.get(self.cursor..).unwrap_or_default();
            if let Some((at, n)) = needles
                .iter()
                .filter_map(|n| rest.find(n).map(|at| (at, n.len())))
                .min()
            {
                let start = rest[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = rest[at..].find('\n').map_or(rest.len(), |i| at + i);
                let line = rest[start..end].to_string();
                self.cursor += at + n;
                return Ok(line);
            }
            if Instant::now() >= deadline {
                return Err(format!("no {needles:?} within {timeout:?}; output:\n{out}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Registers `identity` (e.g. `sip:alice@127.0.0.1:5060`) through
    /// `proxy` (e.g. `sip:127.0.0.1:5060;transport=udp`); `Ok` once
    /// linphonec reports the registration as done.
    pub fn register(&mut self, identity: &str, proxy: &str, password: &str) -> Result<(), String> {
        self.send(&format!("register {identity} {proxy} {password}"));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.send("status register");
            match self.expect_any(
                &[
                    "registered, identity=",
                    "registration in progress",
                    "unregistered",
                    " failed",
                ],
                Duration::from_secs(3),
            ) {
                Ok(l) if l.contains("registered, identity=") && !l.contains("unregistered") => {
                    return Ok(());
                }
                Ok(l) if l.contains(" failed") => return Err(l),
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(format!("not registered; output:\n{}", self.output()));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Calls `uri` and waits until media is established.
    pub fn call(&mut self, uri: &str) -> Result<(), String> {
        self.send(&format!("call {uri}"));
        // liblinphone's own log lines say "-error-": match linphonec's
        // call-state lines only.
        self.expect_any(
            &[" connected.", " ended", " error.", " declined"],
            Duration::from_secs(20),
        )
        .and_then(|l| {
            if l.contains("connected.") {
                Ok(())
            } else {
                Err(l)
            }
        })?;
        self.expect("Media streams established", Duration::from_secs(10))
            .map(|_| ())
    }

    /// Waits until an incoming call is connected (with `auto_answer`).
    pub fn wait_connected(&mut self, timeout: Duration) -> Result<String, String> {
        self.expect("connected.", timeout)
    }

    /// Sends DTMF digits (RFC 4733) in the current call.
    pub fn send_digits(&mut self, digits: &str) {
        self.send(digits);
    }

    /// Hangs up the current call and waits for it to end.
    pub fn terminate(&mut self) -> Result<String, String> {
        self.send("terminate");
        self.expect("ended", Duration::from_secs(10))
    }

    /// What the rc file holds now (linphonec writes the account it
    /// registered into `[proxy_0]` / `[auth_info_0]`).
    pub fn rc(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("linphonerc")).unwrap_or_default()
    }

    /// The recording made with `record`.
    pub fn heard_wav(&self) -> PathBuf {
        self.dir.path().join("heard.wav")
    }

    /// The samples of the `record` WAV (8 kHz mono) once linphonec has
    /// stopped writing it (its size held still for 300 ms; the header is
    /// finished after the data, so an early read comes up short).
    pub fn heard(&self) -> Vec<i16> {
        let path = self.heard_wav();
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut last = size();
        let _ = tools::poll(Duration::from_secs(5), || {
            std::thread::sleep(Duration::from_millis(300));
            let now = size();
            let still = now == last && now > 44;
            last = now;
            still.then_some(())
        });
        hound::WavReader::open(&path)
            .map(|mut r| r.samples::<i16>().map_while(Result::ok).collect())
            .unwrap_or_default()
    }
}

impl Drop for Linphonec {
    fn drop(&mut self) {
        self.send("quit");
        terminate(&mut self.child, Duration::from_secs(3), false);
    }
}

fn rc_text(sip_port: u16, rtp_port: u16) -> String {
    let mut rc = format!(
        "[sip]\nsip_port={sip_port}\nsip_tcp_port={sip_port}\nsip_tls_port=0\n\
         register_only_when_network_is_up=0\nregister_only_when_upnp_is_ok=0\n\
         guess_hostname=0\ncontact=sip:linphone@127.0.0.1\ninc_timeout=60\n\
         [rtp]\naudio_rtp_port={rtp_port}\nnortp_timeout=30\n\
         [video]\nenabled=0\ncapture=0\ndisplay=0\n\
         [sound]\necho_cancellation=0\n"
    );
    for (i, (mime, rate, ch)) in CODECS.iter().enumerate() {
        let enabled = u8::from(i < 2);
        rc.push_str(&format!(
            "[audio_codec_{i}]\nmime={mime}\nrate={rate}\nchannels={ch}\nenabled={enabled}\n"
        ));
    }
    rc
}

/// A quiet 2 s tone (8 kHz mono) for `Options::play_wav`: what linphonec
/// sends, looped, as its microphone.
pub fn tone_wav(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create tone WAV");
    for i in 0..8000 * 2 {
        let t = f64::from(i) / 8000.0;
        let s = (2000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16;
        w.write_sample(s).expect("sample");
    }
    w.finalize().expect("finalize tone WAV");
}

/// Seconds of audio in a WAV file (0 when it cannot be read).
pub fn wav_secs(path: &Path) -> f64 {
    hound::WavReader::open(path)
        .map(|r| f64::from(r.duration()) / f64::from(r.spec().sample_rate.max(1)))
        .unwrap_or(0.0)
}
