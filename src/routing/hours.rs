//! Hours of operation of a queue: `"mon-fri 09:00-17:00"`, `"sat
//! 10:00-14:00"`, in local time given as a fixed UTC offset. A queue
//! without hours is always open.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Days 0 = Monday … 6 = Sunday.
    days: Vec<u8>,
    /// Minutes since midnight, [start, end).
    start: u16,
    end: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hours {
    spans: Vec<Span>,
    utc_offset_min: i32,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Option<u8> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .map(|i| i as u8)
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
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
        let (start, end) = (minutes(t0).ok_or_else(err)?, minutes(t1).ok_or_else(err)?);
        if start >= end {
            return Err(format!("{s:?}: the end must be after the start"));
        }
        Ok(Span { days, start, end })
    }
}

impl Hours {
    pub fn new(spans: Vec<Span>, utc_offset_min: i32) -> Hours {
        Hours {
            spans,
            utc_offset_min,
        }
    }

    /// Open at `t` (a queue without hours is always open).
    pub fn is_open(&self, t: SystemTime) -> bool {
        if self.spans.is_empty() {
            return true;
        }
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
            + i64::from(self.utc_offset_min) * 60;
        let days = secs.div_euclid(86_400);
        // 1970-01-01 was a Thursday (day 3 with Monday = 0).
        let weekday = ((days + 3).rem_euclid(7)) as u8;
        let minute = (secs.rem_euclid(86_400) / 60) as u16;
        self.spans
            .iter()
            .any(|s| s.days.contains(&weekday) && minute >= s.start && minute < s.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(days_since_epoch: u64, hh: u64, mm: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(days_since_epoch * 86_400 + hh * 3600 + mm * 60)
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
    fn wrapping_day_ranges_and_errors() {
        let s = Span::parse("fri-mon 00:00-24:00").unwrap();
        assert_eq!(s.days, vec![4, 5, 6, 0]);
        assert!(Span::parse("weekdays 9-5").is_err());
        assert!(Span::parse("mon 17:00-09:00").is_err());
        assert!(Span::parse("mon 25:00-26:00").is_err());
    }
}
