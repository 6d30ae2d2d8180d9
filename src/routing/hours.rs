//! Weekly windows in local time: a queue's hours of operation and its
//! callback hours (`"mon-fri 09:00-17:00"`, `"sat 10:00-14:00:30"`), in a
//! time zone that is either an IANA name (`"America/New_York"`, daylight
//! saving included) or a fixed UTC offset. An empty window is always open.
//!
//! Sans-IO: every question takes the time (epoch ms) it is asked about.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Days 0 = Monday … 6 = Sunday.
    days: Vec<u8>,
    /// Seconds since local midnight, [start, end).
    start: u32,
    end: u32,
}

#[derive(Debug, Clone)]
pub struct Hours {
    spans: Vec<Span>,
    zone: TimeZone,
}

impl Default for Hours {
    fn default() -> Hours {
        Hours {
            spans: Vec::new(),
            zone: TimeZone::UTC,
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Looking further than a week plus a day finds nothing new.
const HORIZON_DAYS: i64 = 8;

fn day(s: &str) -> Option<u8> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .map(|i| i as u8)
}

/// `HH:MM` or `HH:MM:SS`, up to `24:00`.
fn seconds(s: &str) -> Option<u32> {
    let mut parts = s.split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let sec: u32 = match parts.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || m >= 60 || sec >= 60 {
        return None;
    }
    let total = h * 3600 + m * 60 + sec;
    (total <= 86_400).then_some(total)
}

impl Span {
    pub fn parse(s: &str) -> Result<Span, String> {
        let err = || format!("{s:?} is not like \"mon-fri 09:00-17:00\"");
        let (days, times) = s.trim().split_once(' ').ok_or_else(err)?;
        let days = match days.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a).ok_or_else(err)?, day(b).ok_or_else(err)?);
                if a <= b {
                    (a..=b).collect()
                } else {
                    (a..7).chain(0..=b).collect()
                }
            }
            None => vec![day(days).ok_or_else(err)?],
        };
        let (t0, t1) = times.trim().split_once('-').ok_or_else(err)?;
        let (start, end) = (seconds(t0).ok_or_else(err)?, seconds(t1).ok_or_else(err)?);
        if start >= end {
            return Err(format!("{s:?}: the end must be after the start"));
        }
        Ok(Span { days, start, end })
    }
}

/// An IANA time zone name, from the system's database or the copy built
/// in (so a machine without tzdata still knows every zone).
pub fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| format!("{name:?} is not an IANA time zone"))
}

impl Hours {
    /// Local time at a fixed offset from UTC.
    pub fn new(spans: Vec<Span>, utc_offset_min: i32) -> Hours {
        let offset = Offset::from_seconds(utc_offset_min.saturating_mul(60)).unwrap_or(Offset::UTC);
        Hours::in_zone(spans, TimeZone::fixed(offset))
    }

    pub fn in_zone(spans: Vec<Span>, zone: TimeZone) -> Hours {
        Hours { spans, zone }
    }

    /// Always open.
    pub fn is_always(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// Open at `t` (a queue without hours is always open).
    pub fn is_open(&self, t: SystemTime) -> bool {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.is_open_ms(ms)
    }

    pub fn is_open_ms(&self, ms: i64) -> bool {
        if self.spans.is_empty() {
            return true;
        }
        let Ok(ts) = Timestamp::from_millisecond(ms) else {
            return false;
        };
        let local = ts.to_zoned(self.zone.clone());
        let weekday = local.weekday().to_monday_zero_offset() as u8;
        let second =
            local.hour() as u32 * 3600 + local.minute() as u32 * 60 + local.second() as u32;
        self.spans
            .iter()
            .any(|s| s.days.contains(&weekday) && second >= s.start && second < s.end)
    }

    /// The first moment at or after `ms` when the window is open: `ms`
    /// itself when open (or always open), else the start of the next span.
    pub fn next_open_ms(&self, ms: i64) -> i64 {
        if self.is_open_ms(ms) {
            return ms;
        }
        let Ok(ts) = Timestamp::from_millisecond(ms) else {
            return ms;
        };
        let today = ts.to_zoned(self.zone.clone()).date();
        (0..=HORIZON_DAYS)
            .filter_map(|d| today.checked_add(jiff::Span::new().days(d)).ok())
            .flat_map(|date| self.starts_on(date))
            .filter(|&start| start > ms)
            .min()
            .unwrap_or(ms)
    }

    /// Epoch ms of each span starting on local `date`. A start that falls
    /// in a daylight-saving gap moves forward with the clocks (jiff's
    /// "compatible" rule, as RFC 5545 does for calendar events).
    fn starts_on(&self, date: Date) -> Vec<i64> {
        let weekday = date.weekday().to_monday_zero_offset() as u8;
        self.spans
            .iter()
            .filter(|s| s.days.contains(&weekday) && s.start < 86_400)
            .filter_map(|s| {
                let (h, m, sec) = (s.start / 3600, s.start / 60 % 60, s.start % 60);
                let dt = date.at(h as i8, m as i8, sec as i8, 0);
                let z = self.zone.to_ambiguous_zoned(dt).compatible().ok()?;
                Some(z.timestamp().as_millisecond())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(days_since_epoch: u64, hh: u64, mm: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(days_since_epoch * 86_400 + hh * 3600 + mm * 60)
    }

    fn ms(t: SystemTime) -> i64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
    }

    #[test]
    fn weekday_spans_and_offsets() {
        // 1970-01-05 was a Monday (day 4 since the epoch).
        let h = Hours::new(
            vec![
                Span::parse("mon-fri 09:00-17:00").unwrap(),
                Span::parse("sat 10:00-14:00").unwrap(),
            ],
            0,
        );
        assert!(h.is_open(at(4, 9, 0)));
        assert!(!h.is_open(at(4, 17, 0)));
        assert!(!h.is_open(at(4, 8, 59)));
        assert!(h.is_open(at(9, 10, 30)), "Saturday");
        assert!(!h.is_open(at(10, 11, 0)), "Sunday");
        // UTC-5: Monday 08:30 UTC is 03:30 local: closed; 14:30 UTC is 09:30.
        let ny = Hours::new(vec![Span::parse("mon-fri 09:00-17:00").unwrap()], -300);
        assert!(!ny.is_open(at(4, 8, 30)));
        assert!(ny.is_open(at(4, 14, 30)));
        assert!(Hours::default().is_open(at(10, 3, 0)));
    }

    #[test]
    fn wrapping_day_ranges_seconds_and_errors() {
        let s = Span::parse("fri-mon 00:00-24:00").unwrap();
        assert_eq!(s.days, vec![4, 5, 6, 0]);
        let s = Span::parse("mon 09:00:30-09:01").unwrap();
        assert_eq!((s.start, s.end), (32_430, 32_460));
        assert!(Span::parse("weekdays 9-5").is_err());
        assert!(Span::parse("mon 17:00-09:00").is_err());
        assert!(Span::parse("mon 25:00-26:00").is_err());
        assert!(Span::parse("mon 09:00:60-10:00").is_err());
        assert!(Span::parse("mon 09:00:00:00-10:00").is_err());
    }

    #[test]
    fn next_open_is_now_or_the_next_span_start() {
        let h = Hours::new(vec![Span::parse("mon-fri 09:00-17:00").unwrap()], 0);
        let open = ms(at(4, 10, 0));
        assert_eq!(h.next_open_ms(open), open, "open now");
        // Monday 21:00 → Tuesday 09:00; Friday 18:00 → Monday 09:00.
        assert_eq!(h.next_open_ms(ms(at(4, 21, 0))), ms(at(5, 9, 0)));
        assert_eq!(h.next_open_ms(ms(at(8, 18, 0))), ms(at(11, 9, 0)));
        assert_eq!(h.next_open_ms(ms(at(4, 8, 0))), ms(at(4, 9, 0)));
        assert_eq!(Hours::default().next_open_ms(5), 5, "always open");
    }

    #[test]
    fn iana_zones_follow_daylight_saving() {
        let ny = zone("America/New_York").unwrap();
        let h = Hours::in_zone(vec![Span::parse("mon-sun 09:00-17:00").unwrap()], ny);
        // 2026-01-15 (EST, UTC-5): 09:00 local is 14:00 UTC.
        let winter: Timestamp = "2026-01-15T14:00:00Z".parse().unwrap();
        assert!(h.is_open_ms(winter.as_millisecond()));
        assert!(!h.is_open_ms(winter.as_millisecond() - 1));
        // 2026-07-15 (EDT, UTC-4): 09:00 local is 13:00 UTC.
        let summer: Timestamp = "2026-07-15T13:00:00Z".parse().unwrap();
        assert!(h.is_open_ms(summer.as_millisecond()));
        // 21:00 local on 2026-03-07 (EST) → 09:00 on the 8th, which is EDT.
        let evening: Timestamp = "2026-03-08T02:00:00Z".parse().unwrap();
        let next: Timestamp = "2026-03-08T13:00:00Z".parse().unwrap();
        assert_eq!(
            h.next_open_ms(evening.as_millisecond()),
            next.as_millisecond()
        );
        assert!(zone("Mars/Olympus_Mons").is_err());
    }
}
