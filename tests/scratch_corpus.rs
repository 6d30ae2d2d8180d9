use callgate::config::Config;
use callgate::endpoint::{Endpoint, Output};
use callgate::registrar::Bindings;
use callgate::sip::transport::Peer;
use std::time::Instant;

#[test]
fn dump() {
    let now = Instant::now();
    let mut e = Endpoint::new(&Config::default(), Bindings::new(), now);
    for dir in ["../shared/corpus/rfc4475", "../shared/corpus/rfc5118"] {
        let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        for p in v {
            if p.extension().is_some_and(|e| e == "sha256") { continue; }
            let data = std::fs::read(&p).unwrap();
            let out = e.on_datagram(&data, Peer::udp("127.0.0.1:5099".parse().unwrap()), now);
            let lines: Vec<String> = out.iter().map(|o| match o { Output::Transmit { data, .. } => String::from_utf8_lossy(data).lines().next().unwrap_or("").to_string() }).collect();
            println!("{:32} {:?}", p.file_name().unwrap().to_string_lossy(), lines);
        }
    }
}
