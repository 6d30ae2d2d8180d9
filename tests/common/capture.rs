//! Packet capture of what a peer receives on the wire (tcpdump on the
//! loopback interface), and a small pcap reader.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether tcpdump can be run; with `CI=true` its absence is a failure.
pub fn available() -> bool {
    let found = Command::new("tcpdump").arg("--version").output().is_ok();
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("tcpdump is not installed but CI=true: install the tcpdump package");
    }
    if !found {
        eprintln!("SKIPPED: tcpdump not installed");
        return false;
    }
    super::raw_sockets("tcpdump")
}

pub struct Capture {
    child: Child,
    pub file: PathBuf,
}

impl Capture {
    /// Captures UDP packets to `port` on loopback into `file`.
    pub fn start(file: &Path, port: u16) -> Capture {
        Self::start_ports(file, &[port])
    }

    /// Captures UDP packets to any of `ports`.
    pub fn start_ports(file: &Path, ports: &[u16]) -> Capture {
        let filter = ports
            .iter()
            .map(|p| format!("dst port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        Self::start_filter(file, &format!("udp and ({filter})"))
    }

    /// Captures what matches a tcpdump filter expression on loopback
    /// (`"port 5060 or port 5080"`: both directions, UDP and TCP).
    pub fn start_filter(file: &Path, filter: &str) -> Capture {
        // --immediate-mode: without it libpcap hands packets over in
        // blocks (up to a second late) and a block pending at SIGINT is
        // lost, so a short exchange right before `stop` went missing.
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "--immediate-mode", "-U", "-n", "-w"])
            .arg(file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpdump");
        // Wait for "listening on lo" so no packet is missed.
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.contains("listening on") => break,
                Ok(l) => assert!(!l.contains("ermission"), "tcpdump cannot capture: {l}"),
                Err(_) => assert!(Instant::now() < deadline, "tcpdump did not start"),
            }
        }
        Capture {
            child,
            file: file.to_path_buf(),
        }
    }

    /// Stops the capture and returns the UDP payloads captured.
    pub fn stop(self) -> Vec<Vec<u8>> {
        self.stop_by_port().into_iter().map(|(_, p)| p).collect()
    }

    /// Stops the capture; (destination port, UDP payload) of each packet.
    pub fn stop_by_port(self) -> Vec<(u16, Vec<u8>)> {
        udp_packets(&self.stop_raw())
    }

    /// Stops the capture and returns the pcap file's bytes.
    pub fn stop_raw(mut self) -> Vec<u8> {
        std::thread::sleep(Duration::from_millis(200));
        // SIGINT makes tcpdump flush and close the file.
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// UDP payloads of every IPv4 packet in a pcap file.
pub fn udp_payloads(data: &[u8]) -> Vec<Vec<u8>> {
    udp_packets(data).into_iter().map(|(_, p)| p).collect()
}

/// (destination port, UDP payload) of every IPv4 packet in a pcap file.
pub fn udp_packets(data: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    if data.len() < 24 {
        return out;
    }
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let le = matches!(magic, 0xa1b2c3d4 | 0xa1b23c4d);
    let rd = |b: &[u8]| -> u32 {
        let a: [u8; 4] = b.try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = rd(&data[20..24]);
    let link_len = match link {
        1 => 14,   // Ethernet (loopback on Linux)
        113 => 16, // Linux cooked
        276 => 20, // Linux cooked v2
        0 => 4,    // BSD loopback
        _ => return out,
    };
    let mut off = 24;
    while off + 16 <= data.len() {
        let incl = rd(&data[off + 8..off + 12]) as usize;
        let pkt_start = off + 16;
        let Some(pkt) = data.get(pkt_start..pkt_start + incl) else {
            break;
        };
        off = pkt_start + incl;
        let Some(ip) = pkt.get(link_len..) else {
            continue;
        };
        if ip.first().map(|b| b >> 4) != Some(4) {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip.get(9) != Some(&17) {
            continue;
        }
        if let Some(udp) = ip.get(ihl..)
            && let (Some(port), Some(payload)) = (udp.get(2..4), udp.get(8..))
        {
            out.push((u16::from_be_bytes([port[0], port[1]]), payload.to_vec()));
        }
    }
    out
}
