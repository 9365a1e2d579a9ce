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
    if half.is_empty() || half.len() > 8 {
        return None;
    }
    half.bytes()
        .try_fold(0u64, |value, digit| Some(value << 4 | hex_value(digit)?))
}

fn hex_value(digit: u8) -> Option<u64> {
    let value = match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => return None,
    };
    Some(u64::from(value))
}

/// Formats like PostgreSQL does (`%X/%X`), e.g. for `/status` and
/// `SHOW pgrelay.last_lsn`.
pub fn format_lsn(lsn: u64) -> String {
    lsn_text(lsn).as_str().to_owned()
}

/// An LSN as [`format_lsn`] writes it, on the stack: the text runs behind
/// every write a client commits (its `pgrelay.last_lsn`), where `format!`
/// cost more than the rest of the message.
pub struct LsnText {
    bytes: [u8; 17],
    len: usize,
}

impl LsnText {
    pub fn as_str(&self) -> &str {
        // Hex digits and '/' only.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    /// At most 8 digits: `value` is one 32-bit half.
    fn push_hex(&mut self, value: u64) {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let significant = 64 - value.leading_zeros() as usize;
        let digits = significant.div_ceil(4).max(1);
        for i in (0..digits).rev() {
            let nibble = (value >> (4 * i)) & 0xF;
            self.push(DIGITS[nibble as usize]);
        }
    }
}

pub fn lsn_text(lsn: u64) -> LsnText {
    let mut text = LsnText {
        bytes: [0; 17],
        len: 0,
    };
    text.push_hex(lsn >> 32);
    text.push(b'/');
    text.push_hex(lsn & 0xFFFF_FFFF);
    text
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
    fn formats_as_printf_does() {
        let mut value = 1u64;
        let mut samples = vec![0, u64::MAX, 0xFFFF_FFFF, 0x1_0000_0000];
        for _ in 0..200 {
            // A spread of magnitudes and digits (an LCG).
            value = value
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            samples.push(value >> (value % 64));
        }
        for lsn in samples {
            let expected = format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF);
            assert_eq!(format_lsn(lsn), expected);
            assert_eq!(parse_lsn(&expected), Some(lsn));
        }
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
            "0/ 1",
            "0/1g",
            "0/\u{e9}",
        ] {
            assert_eq!(parse_lsn(text), None, "{text:?}");
        }
    }
}
