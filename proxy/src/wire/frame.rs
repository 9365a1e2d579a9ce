/// Tag byte plus the 4-byte length that follows it.
pub const HEADER_LEN: usize = 5;

/// The header of a tagged message. `len` counts the whole frame, tag
/// included, so a frame occupies `buf[..len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub tag: u8,
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field is smaller than itself: the stream is not PostgreSQL
    /// or is out of sync, and cannot be resynchronised.
    #[error("invalid message length {0}")]
    BadLength(u32),
}

impl FrameHeader {
    /// Reads the header at the start of `buf`; `Ok(None)` if fewer than five
    /// bytes are there yet.
    pub fn parse(buf: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let declared = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        if declared < 4 {
            return Err(FrameError::BadLength(declared));
        }
        Ok(Some(FrameHeader {
            tag: header[0],
            len: declared as usize + 1,
        }))
    }

    /// The body length (after tag and length).
    pub fn body_len(&self) -> usize {
        self.len - HEADER_LEN
    }
}

/// A complete frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub tag: u8,
    pub body: &'a [u8],
    /// Bytes the whole frame occupies.
    pub len: usize,
}

/// The complete frame at the start of `buf`, if it has fully arrived.
pub fn split_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, FrameError> {
    let Some(header) = FrameHeader::parse(buf)? else {
        return Ok(None);
    };
    Ok(buf.get(HEADER_LEN..header.len).map(|body| Frame {
        tag: header.tag,
        body,
        len: header.len,
    }))
}

/// A frame with `tag` and `body`, for tests.
#[cfg(test)]
pub fn test_frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![tag];
    f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_waits_for_more_bytes() {
        assert_eq!(FrameHeader::parse(b"Z\0\0"), Ok(None));
        let h = FrameHeader::parse(b"Z\0\0\0\x05I")
            .expect("valid")
            .expect("complete");
        assert_eq!(h, FrameHeader { tag: b'Z', len: 6 });
        assert_eq!(h.body_len(), 1);
    }

    #[test]
    fn rejects_lengths_below_four() {
        assert_eq!(
            FrameHeader::parse(b"Q\0\0\0\x03"),
            Err(FrameError::BadLength(3))
        );
    }

    #[test]
    fn split_frame_needs_the_whole_body() {
        assert_eq!(split_frame(b"Z\0\0\0\x05"), Ok(None));
        let f = split_frame(b"Z\0\0\0\x05Ixx")
            .expect("ok")
            .expect("complete");
        assert_eq!((f.tag, f.body, f.len), (b'Z', &b"I"[..], 6));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut state: u32 = 0x1234_5678;
        for _ in 0..10_000 {
            let mut buf = [0u8; 12];
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            let n = (state as usize) % 13;
            let _ = split_frame(&buf[..n]);
        }
    }
}
