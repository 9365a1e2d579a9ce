//! Reading whole messages during login, when the proxy talks to one peer
//! at a time and latency does not matter. After login the pump takes over.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wire::frame::{FrameError, FrameHeader};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
}

/// Reads at least one more byte into `buf`; end of stream is an error here
/// because login always expects an answer.
pub async fn read_more<S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> io::Result<()> {
    buf.reserve(1024);
    match stream.read_buf(buf).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

/// Reads one tagged message and removes it from `buf`: returns the tag and
/// the body (without header).
pub async fn read_message<S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<(u8, BytesMut), ReadError> {
    loop {
        if let Some(header) = FrameHeader::parse(buf)? {
            if header.len > max {
                return Err(ReadError::TooLarge {
                    len: header.len,
                    max,
                });
            }
            if buf.len() >= header.len {
                let mut frame = buf.split_to(header.len);
                frame.advance(crate::wire::HEADER_LEN);
                return Ok((header.tag, frame));
            }
            buf.reserve(header.len - buf.len());
        }
        read_more(stream, buf).await?;
    }
}
