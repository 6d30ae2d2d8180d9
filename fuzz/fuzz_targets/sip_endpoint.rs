//! Messages through the whole SIP endpoint (rate limit, parser,
//! validation, transaction layer, registrar with digest authentication,
//! call routing), as the SIP core task feeds it, with a clock that moves
//! between messages so that transaction timers fire.
//!
//! Input: messages separated by a line `--next--`; an odd-length input is
//! fed as TCP stream messages, an even one as UDP datagrams.

#![no_main]

use callgate::config::{Overrides, load_str};
use callgate::endpoint::{Endpoint, Output};
use callgate::registrar::Bindings;
use callgate::sip::transport::Peer;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[sip]
listen = ["192.0.2.10:5060"]

[security]
max_requests_per_source_per_s = 0

[[agents]]
user = "alice"
secret = "alice-secret"
"#;

const SEPARATOR: &[u8] = b"\r\n--next--\r\n";

fn config() -> &'static callgate::config::Config {
    static CONFIG_CELL: OnceLock<callgate::config::Config> = OnceLock::new();
    CONFIG_CELL.get_or_init(|| {
        load_str(CONFIG, Path::new("fuzz.toml"), &Overrides::default())
            .unwrap_or_else(|e| panic!("fuzz config: {e}"))
    })
}

fn split<'a>(mut data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        parts.push(&data[..at]);
        data = &data[at + SEPARATOR.len()..];
    }
    parts.push(data);
    parts
}

fuzz_target!(|data: &[u8]| {
    let stream = data.len() % 2 == 1;
    let start = Instant::now();
    let mut endpoint = Endpoint::new(config(), Bindings::new(), start);
    let addr: SocketAddr = "192.0.2.1:5070"
        .parse()
        .unwrap_or(SocketAddr::from(([0; 4], 0)));
    let peer = if stream {
        Peer::tcp(addr, Some(1))
    } else {
        Peer::udp(addr)
    };
    let mut now = start;
    for (i, msg) in split(data).into_iter().enumerate() {
        let outputs = if stream {
            endpoint.on_stream_message(msg, peer, now)
        } else {
            endpoint.on_datagram(msg, peer, now)
        };
        for o in outputs {
            if let Output::NewCall {
                call, tx, request, ..
            } = o
            {
                // What the core does at capacity: refuse with 503.
                let _ = endpoint.refuse_call(call, tx, &request, 503, Some(10), now);
            }
        }
        now += Duration::from_millis(300 * (i as u64 + 1));
        if endpoint.next_timeout().is_some_and(|t| t <= now) {
            let _ = endpoint.on_timeout(now);
        }
    }
    // Let every transaction run out.
    now += Duration::from_secs(64);
    let _ = endpoint.on_timeout(now);
    endpoint.housekeeping(now);
});
