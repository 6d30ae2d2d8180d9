//! What a crash, a restart or a hostile network does to calls and
//! callbacks, through the real binary.

mod common;

use common::Gateway;
use common::caller::Caller;
use common::centre::{contacts, eventually, start};
use std::time::Duration;

const WAIT: &str = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\nmode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"e\"\n[blocks.e]\ntype = \"disconnect\"\n";

/// A call cut by kill -9 leaves a record (written when the call began,
/// updated as it went), closed as "interrupted" at the next start.
#[test]
fn kill_9_mid_call_leaves_a_truthful_record() {
    let mut gw = start(
        Some(&[("wait", WAIT)]),
        "127.0.0.1:5994",
        "[[numbers]]\nnumber = \"2002\"\nflow = \"wait\"\n",
    );
    let mut caller = Caller::dial(&gw, "2002");
    caller.rtp.send_silence(caller.to, 10);
    assert!(
        eventually(Duration::from_secs(5), || contacts(&gw)
            .iter()
            .any(|c| c.3.as_deref() == Some("support"))),
        "the record shows the caller queued while the call is up: {:?}",
        contacts(&gw)
    );
    gw.kill9();
    let config = std::fs::read_to_string(&gw.config_path).expect("config");
    let gw2 = Gateway::start_with_config(tempfile::tempdir().expect("tempdir"), &config);
    let records = contacts(&gw);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.2, "inbound");
    assert_eq!(r.3.as_deref(), Some("support"));
    assert_eq!(r.6.as_deref(), Some("interrupted"), "{r:?}");
    drop(gw2);
}
