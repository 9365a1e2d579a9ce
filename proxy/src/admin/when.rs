//! Times as operators read them: one zone (UTC) everywhere, to the
//! second, with how long ago, so the page, `/status` and the console never
//! disagree with each other or with the browser's time zone. Pure: "now"
//! is a parameter. `page.js` mirrors [`utc_text`] and [`ago_text`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// A wall-clock instant that serializes as RFC 3339 in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(pub SystemTime);

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&rfc3339(self.0))
    }
}

/// `2026-12-02T01:57:42Z`: a UTC timestamp to the second.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let (date, time) = civil(at);
    format!("{date}T{time}Z")
}

/// `2026-12-02 01:57:42 UTC`: the same instant for people.
pub fn utc_text(at: SystemTime) -> String {
    let (date, time) = civil(at);
    format!("{date} {time} UTC")
}

/// `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`; `just now` under a
/// second, and for a `then` after `now` (clocks of two hosts disagree).
pub fn ago_text(then: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(then).unwrap_or(Duration::ZERO).as_secs();
    match secs {
        0 => "just now".to_owned(),
        1..120 => format!("{secs} s ago"),
        120..7_200 => format!("{} min ago", secs / 60),
        7_200..172_800 => format!("{} h ago", secs / 3_600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// `2026-12-02 01:57:42 UTC (5 s ago)`.
pub fn when_text(at: SystemTime, now: SystemTime) -> String {
    format!("{} ({})", utc_text(at), ago_text(at, now))
}

/// `("2026-12-02", "01:57:42")` in UTC (Howard Hinnant's civil date).
fn civil(at: SystemTime) -> (String, String) {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            rest / 3_600,
            rest % 3_600 / 60,
            rest % 60
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(at(1_796_176_662)), "2026-12-02T01:57:42Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(at(1_796_176_662)), "2026-12-02 01:57:42 UTC");
        let json = serde_json::to_string(&Stamp(at(0))).expect("json");
        assert_eq!(json, "\"1970-01-01T00:00:00Z\"");
    }

    #[test]
    fn ago_is_short_and_never_negative() {
        let now = at(1_000_000);
        let cases = [
            (0, "just now"),
            (1, "1 s ago"),
            (119, "119 s ago"),
            (120, "2 min ago"),
            (7_199, "119 min ago"),
            (7_200, "2 h ago"),
            (172_799, "47 h ago"),
            (172_800, "2 d ago"),
        ];
        for (before, text) in cases {
            assert_eq!(ago_text(at(1_000_000 - before), now), text, "{before} s");
        }
        assert_eq!(ago_text(at(1_000_005), now), "just now", "a clock ahead");
        assert_eq!(
            when_text(at(999_995), now),
            "1970-01-12 13:46:35 UTC (5 s ago)"
        );
    }
}
