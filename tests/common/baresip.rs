//! baresip (Debian `baresip-core`, 1.0) as a real softphone in tests.
//!
//! How it is driven:
//! - headless, with its own config directory (`baresip -f DIR`): the
//!   `config` file there binds SIP to `127.0.0.1:<free port>`
//!   (`sip_listen`, `net_interface 127.0.0.1`), loads only `g711`,
//!   `aufile` (audio source: a WAV, padded to `source_secs` because baresip
//!   ends the call when the file runs out), `sndfile` (records what it sent
//!   and heard to `rec/dump-*-{enc,dec}.wav`, when `record` is set), `menu`
//!   (the commands) and `ctrl_tcp` on a free port; no `stdio` UI and no
//!   sound card; `-t` stops it after `max_secs` even if the test dies;
//! - `accounts` is empty: accounts are added with `uanew` over ctrl_tcp, so
//!   the REGISTER's outcome arrives as an event on our connection;
//! - ctrl_tcp speaks netstrings (`LEN:JSON,`) both ways. Commands are
//!   `{"command":"dial","params":"sip:7000@…","token":"t1"}`; responses
//!   `{"response":true,"ok":true,"data":"…","token":"t1"}`; events
//!   `{"event":true,"type":"CALL_ESTABLISHED","class":"call",
//!   "accountaor":"sip:alice@…","id":"<Call-ID>","param":"…"}`. Types seen
//!   with 1.0: REGISTERING, REGISTER_OK, REGISTER_FAIL, UNREGISTERING,
//!   CALL_INCOMING, CALL_RINGING, CALL_LOCAL_SDP, CALL_REMOTE_SDP,
//!   CALL_RTPESTAB, CALL_ESTABLISHED, CALL_CLOSED, SHUTDOWN, EXIT;
//! - commands used: `uanew <account line>`, `uadel <aor>`, `dial <uri>`,
//!   `sndcode <digits>` (RFC 4733 at the negotiated telephone-event PT, one
//!   digit every ~240 ms), `hold`, `resume`, `accept`, `hangup`, `quit`.

use super::tools::{self, poll, terminate};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether baresip can be run (see `tools::require`).
pub fn available() -> bool {
    tools::require("baresip", "baresip-core")
}

/// The account line of a callgate agent (what a user puts in baresip's
/// `accounts` file, or after `/uanew`).
pub fn account_line(user: &str, secret: &str, registrar: SocketAddr, transport: &str) -> String {
    format!(
        "<sip:{user}@{registrar};transport={transport}>;auth_pass={secret};answermode=auto;audio_codecs=PCMU,PCMA"
    )
}

pub struct Options {
    /// WAV sent as the phone's microphone (any rate, mono); a 440 Hz tone
    /// when `None`. Padded with silence to `source_secs`.
    pub source_wav: Option<PathBuf>,
    pub source_secs: u32,
    /// Record sent and received audio with the `sndfile` module.
    pub record: bool,
    /// baresip quits on its own after this long (`-t`).
    pub max_secs: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            source_wav: None,
            source_secs: 60,
            record: false,
            max_secs: 240,
        }
    }
}

pub struct Baresip {
    child: Child,
    ctrl: TcpStream,
    messages: Receiver<Value>,
    events: VecDeque<Value>,
    output: Arc<Mutex<String>>,
    token: u64,
    /// SIP address (UDP and TCP).
    pub sip: SocketAddr,
    /// The RTP port of its calls (`rtp_ports` is this port and the next).
    pub rtp_port: u16,
    pub dir: tempfile::TempDir,
}

impl Baresip {
    pub fn start(opts: Options) -> Baresip {
        let dir = tempfile::tempdir().expect("tempdir");
        let sip_port = tools::free_udp_tcp_port();
        let ctrl_port = tools::free_tcp_port();
        let rtp_port = super::even_udp_port();
        let source = dir.path().join("source.wav");
        write_source(&source, opts.source_wav.as_deref(), opts.source_secs);
        let rec = dir.path().join("rec");
        std::fs::create_dir_all(&rec).expect("rec dir");
        let sndfile = if opts.record {
            format!("module sndfile.so\nsnd_path {}\n", rec.display())
        } else {
            String::new()
        };
        let config = format!(
            "poll_method epoll\n\
             net_interface 127.0.0.1\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             call_local_timeout 60\n\
             call_max_calls 4\n\
             audio_source aufile,{src}\n\
             audio_alert aufile,{src}\n\
             ausrc_srate 8000\n\
             auplay_srate 8000\n\
             rtp_stats no\n\
             rtp_ports {rtp_port}-{rtp_end}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             {sndfile}\
             module_tmp account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
             ringback_disabled yes\n\
             statmode_default off\n",
            src = source.display(),
            rtp_end = rtp_port + 1,
        );
        std::fs::write(dir.path().join("config"), config).expect("write config");
        std::fs::write(dir.path().join("accounts"), "").expect("write accounts");
        let mut child = Command::new(tools::find("baresip").expect("baresip installed"))
            .arg("-f")
            .arg(dir.path())
            .arg("-t")
            .arg(opts.max_secs.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baresip");
        let output = tools::collect_output(&mut child, "baresip");
        let ctrl_addr: SocketAddr = ([127, 0, 0, 1], ctrl_port).into();
        let ctrl = poll(Duration::from_secs(10), || {
            if !matches!(child.try_wait(), Ok(None)) {
                return Some(Err(()));
            }
            TcpStream::connect_timeout(&ctrl_addr, Duration::from_millis(200))
                .ok()
                .map(Ok)
        });
        let Some(Ok(ctrl)) = ctrl else {
            std::thread::sleep(Duration::from_millis(100));
            let out = output.lock().map(|o| o.clone()).unwrap_or_default();
            terminate(&mut child, Duration::from_secs(1), false);
            panic!("baresip did not open ctrl_tcp on {ctrl_addr}; output:\n{out}");
        };
        let reader = ctrl.try_clone().expect("clone ctrl socket");
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            while let Some(frame) = read_netstring(&mut r) {
                match serde_json::from_slice::<Value>(&frame) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("baresip ctrl_tcp: bad JSON ({e})"),
                }
            }
        });
        Baresip {
            child,
            ctrl,
            messages,
            events: VecDeque::new(),
            output,
            token: 0,
            sip: ([127, 0, 0, 1], sip_port).into(),
            rtp_port,
            dir,
        }
    }

    /// Everything baresip printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Runs a command; `Ok(data)` or `Err(data)` from its response.
    pub fn command(&mut self, command: &str, params: &str) -> Result<String, String> {
        self.token += 1;
        let token = format!("t{}", self.token);
        let mut msg = serde_json::json!({ "command": command, "token": token });
        if !params.is_empty() {
            msg["params"] = Value::String(params.to_string());
        }
        let body = msg.to_string();
        let frame = format!("{}:{body},", body.len());
        self.ctrl
            .write_all(frame.as_bytes())
            .map_err(|e| format!("ctrl_tcp write: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("no response to {command} within 10 s"))?;
            let v = match self.messages.recv_timeout(left) {
                Ok(v) => v,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("ctrl_tcp closed; output:\n{}", self.output()));
                }
            };
            if v["event"].as_bool() == Some(true) {
                self.events.push_back(v);
            } else if v["token"].as_str() == Some(token.as_str()) {
                let data = v["data"].as_str().unwrap_or_default().to_string();
                return if v["ok"].as_bool() == Some(true) {
                    Ok(data)
                } else {
                    Err(data)
                };
            }
        }
    }

    /// The next event of type `kind` (earlier events of other types are
    /// consumed), or `None` after `timeout`.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Option<Value> {
        self.wait_any(&[kind], timeout)
    }

    /// The next event of any of `kinds`.
    pub fn wait_any(&mut self, kinds: &[&str], timeout: Duration) -> Option<Value> {
        let is = |v: &Value| kinds.iter().any(|k| v["type"].as_str() == Some(k));
        while let Some(v) = self.events.pop_front() {
            if is(&v) {
                return Some(v);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let v = self.messages.recv_timeout(left).ok()?;
            if v["event"].as_bool() == Some(true) && is(&v) {
                return Some(v);
            }
        }
    }

    /// Adds an account (`account_line`) and waits for its registration:
    /// `Ok(aor)` on REGISTER_OK, `Err` with the failure event or output.
    pub fn register(&mut self, account: &str) -> Result<String, String> {
        self.command("uanew", account)?;
        match self.wait_any(&["REGISTER_OK", "REGISTER_FAIL"], Duration::from_secs(15)) {
            Some(v) if v["type"] == "REGISTER_OK" => {
                Ok(v["accountaor"].as_str().unwrap_or_default().to_string())
            }
            Some(v) => Err(format!("{v}\n{}", self.output())),
            None => Err(format!("no registration outcome\n{}", self.output())),
        }
    }

    /// Removes an account (unregisters it).
    pub fn unregister(&mut self, aor: &str) -> Result<String, String> {
        self.command("uadel", aor)
    }

    /// Dials `uri` and waits until the call is established; `Ok(Call-ID)`.
    pub fn dial(&mut self, uri: &str) -> Result<String, String> {
        self.command("dial", uri)?;
        self.wait_established()
    }

    /// Waits for CALL_ESTABLISHED (an answered outgoing call or an incoming
    /// one answered by `answermode=auto`); `Ok(Call-ID)`.
    pub fn wait_established(&mut self) -> Result<String, String> {
        match self.wait_any(
            &["CALL_ESTABLISHED", "CALL_CLOSED"],
            Duration::from_secs(20),
        ) {
            Some(v) if v["type"] == "CALL_ESTABLISHED" => {
                Ok(v["id"].as_str().unwrap_or_default().to_string())
            }
            Some(v) => Err(format!("call closed: {v}")),
            None => Err(format!("call not established\n{}", self.output())),
        }
    }

    /// Sends DTMF digits as RFC 4733 events in the current call.
    pub fn send_digits(&mut self, digits: &str) -> Result<String, String> {
        self.command("sndcode", digits)
    }

    pub fn hold(&mut self) -> Result<String, String> {
        self.command("hold", "")
    }

    pub fn resume(&mut self) -> Result<String, String> {
        self.command("resume", "")
    }

    pub fn hangup(&mut self) -> Result<String, String> {
        self.command("hangup", "")
    }

    /// The recordings of the last call (`record`): what baresip sent
    /// (`…-enc.wav`) and what it heard (`…-dec.wav`).
    pub fn recordings(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("rec"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        let last = |suffix: &str| {
            files
                .iter()
                .rev()
                .find(|p| p.to_string_lossy().ends_with(suffix))
                .cloned()
        };
        (last("-enc.wav"), last("-dec.wav"))
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        // Ask politely (it unregisters), without waiting for an answer.
        let quit = r#"{"command":"quit"}"#;
        let _ = write!(self.ctrl, "{}:{quit},", quit.len());
        terminate(&mut self.child, Duration::from_secs(3), false);
    }
}

/// One netstring frame (`LEN:DATA,`), or `None` at end of stream.
fn read_netstring(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut len = Vec::new();
    r.read_until(b':', &mut len).ok()?;
    let n: usize = std::str::from_utf8(len.strip_suffix(b":")?)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut data = vec![0; n + 1];
    r.read_exact(&mut data).ok()?;
    (data.pop() == Some(b',')).then_some(data)
}

/// An 8 kHz mono 16-bit WAV of `secs`: `from` (resampled by nearest
/// sample, first channel) or a 440 Hz tone, padded with silence.
fn write_source(path: &Path, from: Option<&Path>, secs: u32) {
    let total = 8000 * secs as usize;
    let mut samples: Vec<i16> = match from {
        Some(p) => {
            let mut r = hound::WavReader::open(p).expect("open source WAV");
            let spec = r.spec();
            let all: Vec<i16> = r.samples::<i16>().map_while(Result::ok).collect();
            let ch = usize::from(spec.channels.max(1));
            let step = f64::from(spec.sample_rate) / 8000.0;
            (0..)
                .map(|i| (f64::from(i) * step) as usize * ch)
                .take_while(|&j| j < all.len())
                .map(|j| all[j])
                .collect()
        }
        None => (0..total)
            .map(|i| {
                let t = i as f64 / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect(),
    };
    samples.resize(total.max(samples.len()), 0);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create source WAV");
    for s in samples {
        w.write_sample(s).expect("write sample");
    }
    w.finalize().expect("finalize WAV");
}
