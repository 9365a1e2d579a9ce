//! Human-friendly durations ("250ms", "1.5s") and byte sizes ("16MB").
//!
//! Both are parsed with exact integer arithmetic rather than through `f64`,
//! so "0.1s" is exactly 100ms and a size never picks up a rounding byte.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Duration units, longest spelling first so "min" wins over "m" and "ms"
/// over "m" when matching suffixes.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("min", 60 * NANOS_PER_SEC),
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("d", 86_400 * NANOS_PER_SEC),
];

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// Size units as PostgreSQL spells them (1024-based, like `shared_buffers`),
/// largest first so `Display` picks the most readable exact unit.
const SIZE_UNITS: &[(&str, u64)] = &[("TB", TIB), ("GB", GIB), ("MB", MIB), ("kB", KIB), ("B", 1)];

/// Parses a duration such as "250ms", "2s", "1.5s", "100us", "5m" or "1h".
///
/// A unit is mandatory: a bare "5" is far too easy to misread as seconds when
/// the author meant milliseconds, so it is rejected with a hint instead.
/// Accepted units: ns, us (or µs), ms, s, m (or min), h, d. Whitespace between
/// number and unit is allowed.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(
            "expected a duration such as \"1s\" or \"250ms\", found an empty string".into(),
        );
    }
    let (number, unit) = split_number(text);
    if number.is_empty() {
        return Err(format!(
            "invalid duration \"{text}\": expected a number followed by a unit, such as \"1s\""
        ));
    }
    let unit = unit.trim_start();
    if unit.is_empty() {
        return Err(format!(
            "duration \"{text}\" needs a unit, such as \"{number}s\" or \"{number}ms\""
        ));
    }
    let Some(&(_, scale)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!(
            "invalid duration \"{text}\": unknown unit \"{unit}\" (expected one of ns, us, ms, s, m, h, d)"
        ));
    };
    let nanos = scale_decimal(number, scale)
        .map_err(|reason| format!("invalid duration \"{text}\": {reason}"))?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC)
        .map_err(|_| format!("duration \"{text}\" is too large"))?;
    // The remainder is below one second, so it always fits in u32.
    let sub_nanos = u32::try_from(nanos % NANOS_PER_SEC)
        .map_err(|_| format!("duration \"{text}\" is too large"))?;
    Ok(Duration::new(secs, sub_nanos))
}

/// A number of bytes. Kept as its own type so a size can never be confused
/// with a count or a duration in a struct full of integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn from_kb(kb: u64) -> Self {
        Self(kb * KIB)
    }

    pub const fn from_mb(mb: u64) -> Self {
        Self(mb * MIB)
    }

    pub const fn from_gb(gb: u64) -> Self {
        Self(gb * GIB)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Saturates instead of failing: on a 32-bit target a size beyond the
    /// address space is effectively "unlimited", which is what callers want.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    /// Accepts "16MB", "64kB", "512B", "1GB", "1TB" with the unit in any case
    /// and optional whitespace before it. A bare number means bytes, matching
    /// what a TOML integer means for the same key.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (number, unit) = split_number(text);
        if number.is_empty() {
            return Err(format!(
                "invalid size \"{text}\": expected a number followed by a unit, such as \"16MB\""
            ));
        }
        let unit = unit.trim_start();
        let scale = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|&(_, scale)| scale)
                .ok_or_else(|| {
                    format!(
                        "invalid size \"{text}\": unknown unit \"{unit}\" (expected one of B, kB, MB, GB, TB)"
                    )
                })?
        };
        let bytes = scale_decimal(number, u128::from(scale))
            .map_err(|reason| format!("invalid size \"{text}\": {reason}"))?;
        u64::try_from(bytes)
            .map(ByteSize)
            .map_err(|_| format!("size \"{text}\" is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// Prints the largest unit that represents the value exactly, so that
    /// the output parses back to the same number ("64MB", "1536B").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &(name, scale) in SIZE_UNITS {
            if self.0 != 0 && self.0.is_multiple_of(scale) {
                return write!(f, "{}{name}", self.0 / scale);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Splits "1.5 s" into ("1.5", " s"): the leading run of digits and dots.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// Fractional digits beyond this contribute less than one nanosecond even
/// for the largest unit, and dropping them keeps the arithmetic in `u128`.
const MAX_FRACTION_DIGITS: usize = 18;

/// Multiplies a decimal literal ("12", "1.5") by `scale`, truncating any
/// fraction of the base unit. The error is the reason, ready for a message.
fn scale_decimal(number: &str, scale: u128) -> Result<u128, &'static str> {
    const MALFORMED: &str = "not a valid number";
    const TOO_LARGE: &str = "too large";
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only(whole) || !digits_only(fraction) {
        return Err(MALFORMED);
    }
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    let whole_part = whole
        .parse::<u128>()
        .ok()
        .and_then(|w| w.checked_mul(scale))
        .ok_or(TOO_LARGE)?;
    let denominator = 10u128.pow(fraction.len() as u32);
    let fraction_part = fraction
        .parse::<u128>()
        .map_err(|_| MALFORMED)?
        .checked_mul(scale)
        .ok_or(TOO_LARGE)?
        / denominator;
    whole_part.checked_add(fraction_part).ok_or(TOO_LARGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(&str, Duration)] = &[
            ("250ms", Duration::from_millis(250)),
            ("2s", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.1s", Duration::from_millis(100)),
            ("100us", Duration::from_micros(100)),
            ("100µs", Duration::from_micros(100)),
            ("7ns", Duration::from_nanos(7)),
            ("5m", Duration::from_secs(300)),
            ("5min", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86_400)),
            ("10 s", Duration::from_secs(10)),
            (" 3s ", Duration::from_secs(3)),
            ("0s", Duration::ZERO),
            ("1.0000000001s", Duration::from_secs(1)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input).as_ref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn duration_errors() {
        let cases: &[(&str, &str)] = &[
            ("5", "needs a unit, such as \"5s\""),
            ("", "empty string"),
            ("s", "expected a number"),
            ("-1s", "expected a number"),
            ("1x", "unknown unit \"x\""),
            ("1S", "unknown unit \"S\""),
            ("1.s", "not a valid number"),
            ("1.2.3s", "not a valid number"),
            ("99999999999999999999999h", "too large"),
        ];
        for (input, fragment) in cases {
            let err = parse_duration(input).expect_err(input);
            assert!(err.contains(fragment), "{input}: {err}");
        }
    }

    #[test]
    fn sizes() {
        let cases: &[(&str, u64)] = &[
            ("16MB", 16 * MIB),
            ("64kB", 64 * KIB),
            ("64KB", 64 * KIB),
            ("64kb", 64 * KIB),
            ("512B", 512),
            ("1GB", GIB),
            ("1TB", TIB),
            ("1 gb", GIB),
            ("1.5kB", 1536),
            ("0.3kB", 307),
            ("1024", 1024),
            ("0B", 0),
        ];
        for (input, expected) in cases {
            assert_eq!(
                input.parse::<ByteSize>(),
                Ok(ByteSize(*expected)),
                "{input}"
            );
        }
    }

    #[test]
    fn size_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "expected a number"),
            ("MB", "expected a number"),
            ("-1MB", "expected a number"),
            ("16XB", "unknown unit \"XB\""),
            ("16MiB", "unknown unit"),
            ("1..0MB", "not a valid number"),
            ("100000000TB", "too large"),
        ];
        for (input, fragment) in cases {
            let err = input.parse::<ByteSize>().expect_err(input);
            assert!(err.contains(fragment), "{input}: {err}");
        }
    }

    #[test]
    fn size_display_round_trips() {
        for text in ["16MB", "64kB", "1536B", "1GB", "2TB", "0B"] {
            let size: ByteSize = text.parse().expect(text);
            assert_eq!(size.to_string(), text);
        }
        assert_eq!(ByteSize::from_mb(64).as_usize(), 64 * 1024 * 1024);
    }
}
