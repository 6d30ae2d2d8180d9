//! Callback hours through the real binary: a callback left while its
//! queue's callback hours are closed waits, with an agent free, until they
//! open — a few seconds ahead, in an IANA time zone — and is then offered
//! and dialled; the API says when it will be dialled.

mod common;

use common::agent::{Agent, Answer};
use common::centre::{Opts, ani_flow, eventually, leave_callback, start_opts};
use common::http::get_json;
use common::trunk::Trunk;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use std::time::Duration;

/// An IANA zone where it is around noon now, so that a window starting a
/// few seconds from now does not cross midnight.
fn noon_zone(now: Timestamp) -> String {
    let utc_hour = now.to_zoned(TimeZone::UTC).hour() as i32;
    let k = 12 - utc_hour; // local = UTC + k hours, -11..=12
    match k {
        0 => "Etc/GMT".to_string(),
        // The Etc zones' signs are POSIX ones: Etc/GMT-3 is UTC+3.
        k if k > 0 => format!("Etc/GMT-{k}"),
        k => format!("Etc/GMT+{}", -k),
    }
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

#[test]
fn a_callback_outside_its_hours_is_dialled_only_when_they_open() {
    let now = Timestamp::now();
    let zone = noon_zone(now);
    let tz = TimeZone::get(&zone).expect("zone");
    let open = (now + SignedDuration::from_secs(8)).to_zoned(tz.clone());
    let open_at = open.round(jiff::Unit::Second).expect("round");
    let close_at = open_at.checked_add(SignedDuration::from_mins(30)).unwrap();
    let window = format!(
        "callback_hours = [\"mon-sun {}-{}\"]\ntime_zone = \"{zone}\"",
        open_at.strftime("%H:%M:%S"),
        close_at.strftime("%H:%M:%S"),
    );
    let open_ms = open_at.timestamp().as_millisecond();
    let mut trunk = Trunk::bind();
    let gw = start_opts(
        Some(&[("ani", &ani_flow("callbacks", 0, 2, 60))]),
        &trunk.addr.to_string(),
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
        &Opts {
            callbacks: &window,
            ..Opts::default()
        },
    );
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    leave_callback(&gw, "4000", "+12015550188");
    assert!(now_ms() < open_ms, "the test set the window too close");
    let list = get_json(gw.http.unwrap(), "/api/callbacks");
    let cb = &list[0];
    assert_eq!(cb["number"], "+12015550188");
    assert_eq!(
        cb["dial_at_ms"].as_i64(),
        Some(open_ms),
        "the API says it will be dialled when the hours open: {cb}"
    );
    // Alice is free, the callback is due, but the hours are closed.
    let early = (open_ms - now_ms() - 500).max(0) as u64;
    assert!(
        alice
            .offer(Duration::from_millis(early), Answer::Accept(0))
            .is_none(),
        "not offered before its callback hours"
    );
    assert!(trunk.invites.is_empty());
    let offer = alice
        .offer(Duration::from_secs(15), Answer::Accept(0))
        .expect("offered once the hours open");
    assert!(now_ms() >= open_ms, "offered at or after the opening");
    let invite = trunk
        .next_invite(486, Duration::from_secs(15))
        .expect("dialled");
    assert!(
        invite.uri.to_string().starts_with("sip:+12015550188@"),
        "{}",
        invite.uri
    );
    drop(offer);
    assert!(eventually(Duration::from_secs(5), || {
        get_json(gw.http.unwrap(), "/api/callbacks")[0]["state"] == "failed"
    }));
}
