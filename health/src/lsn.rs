//! WAL positions as PostgreSQL prints them (`pg_lsn`: `X/Y`, two 32-bit
//! hex halves) and as the monitor keeps them (`u64`, so that byte lag is a
//! subtraction).

/// Parses PostgreSQL's `pg_lsn` text form. `None` for anything else: a
/// malformed value from a server is data we refuse, not a panic.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((parse_half(high)? << 32) | parse_half(low)?)
}

fn parse_half(half: &str) -> Option<u64> {
    // from_str_radix alone would accept a leading '+'.
    if half.is_empty() || half.len() > 8 || !half.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(half, 16).ok()
}

/// Formats like PostgreSQL does (`%X/%X`), e.g. for `/status` and
/// `SHOW pgrelay.last_lsn`.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_postgres_text() {
        for (text, value) in [
            ("0/0", 0),
            ("0/3000060", 0x300_0060),
            ("16/B374D848", 0x16_B374_D848),
            ("FFFFFFFF/FFFFFFFF", u64::MAX),
        ] {
            assert_eq!(parse_lsn(text), Some(value), "{text}");
            assert_eq!(format_lsn(value), text);
        }
        assert_eq!(
            parse_lsn("0/3000060".to_lowercase().as_str()),
            Some(0x300_0060)
        );
    }

    #[test]
    fn rejects_anything_else() {
        for text in [
            "",
            "/",
            "0/",
            "/0",
            "0",
            "g/0",
            "+1/0",
            "1/-0",
            "123456789/0",
            "0/0/0",
        ] {
            assert_eq!(parse_lsn(text), None, "{text:?}");
        }
    }
}
