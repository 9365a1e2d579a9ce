//! Moves messages from one socket to another without decoding them.
//!
//! A `Pump` reads whatever the socket has, walks the complete frames in
//! place, shows the inspector only the frames (or frame prefixes) it asked
//! for, and writes the whole run out with one `write` call. A frame larger
//! than the buffer is streamed through in pieces unless the inspector needs
//! it whole; then `max_whole` bounds how much the pump will buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{FrameError, FrameHeader, HEADER_LEN};

/// Reads are made into at least this much free space.
const READ_CHUNK: usize = 16 * 1024;
/// The first read of an empty, unallocated buffer: enough for a typical
/// request, little for a client that sends nothing for long.
const FIRST_CHUNK: usize = 1024;
/// A buffer that grew past this for one large message is given back once
/// it is empty, so an idle session holds little memory.
const SHRINK_ABOVE: usize = 256 * 1024;
/// Rounds of read/write before yielding to other tasks on this thread.
const ROUNDS_PER_POLL: usize = 32;

/// How much of a frame the inspector must see before it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Tag and length are enough.
    Header,
    /// The first `n` body bytes (fewer if the frame is shorter).
    Prefix(usize),
    /// The complete frame, buffered (bounded by `max_whole`).
    Whole,
}

/// What to do with an inspected frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    /// Forward the frame, then these bytes (a request of the proxy's own,
    /// sent right behind the client's so it costs no extra round trip).
    ForwardThen(&'static [u8]),
    /// Forward what [`Inspect::take_prefix`] gives, then the frame (a
    /// message of the proxy's own whose content is known only now).
    ForwardPrefixed,
    /// Drop the frame; the pump goes on.
    Swallow,
    /// Drop the frame and return [`PumpEvent::Stopped`] once everything
    /// before it has been written.
    Stop,
    /// Leave the frame unread and return [`PumpEvent::Held`] once
    /// everything before it has been written; the owner decides what to do
    /// with it and calls [`Pump::resume`] or [`Pump::skip_head`].
    Hold,
    /// The inspector needs to see more of what follows the frame before it
    /// decides: the pump reads more and inspects the same frame again. The
    /// inspector bounds this itself by how much `ahead` it accepts.
    Wait,
}

/// The decisions a pump asks of its owner, one frame at a time.
pub trait Inspect {
    fn need(&self, header: FrameHeader) -> Need;
    /// `frame` starts at the tag and holds at least what `need` asked for;
    /// it may be changed in place (the length must stay the same). `ahead`
    /// is whatever has been read after `frame` so far (the rest of this
    /// frame, then later frames).
    fn inspect(&mut self, header: FrameHeader, frame: &mut [u8], ahead: &[u8]) -> Verdict;
    /// The bytes to send ahead of a frame judged
    /// [`Verdict::ForwardPrefixed`].
    fn take_prefix(&mut self) -> BytesMut {
        BytesMut::new()
    }
    /// Whether the pump may end with [`PumpEvent::Drained`] instead of
    /// reading once it has written everything it read: the caller is
    /// about to stop using the reader (a connection going back to its
    /// pool), and the read would only find nothing and register a wakeup
    /// nobody waits for.
    fn may_stop_reading(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpEvent {
    /// The reader closed and everything read was written.
    Eof,
    /// The inspector returned [`Verdict::Stop`].
    Stopped,
    /// The inspector returned [`Verdict::Hold`]; the held frame is at the
    /// head of the buffer.
    Held,
    /// Everything read was written and [`Inspect::may_stop_reading`] said
    /// not to read on. Unlike `Pending`, no wakeup is registered: the
    /// caller must poll again (reading) unless it stops using the reader.
    Drained,
}

#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("read failed: {0}")]
    Read(#[source] io::Error),
    #[error("write failed: {0}")]
    Write(#[source] io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
}

/// Why the pump's last poll returned `Pending`, as long as nothing else
/// changed it since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// For the reader, with nothing else to do: polled again, the pump
    /// goes straight to reading.
    Reader,
    /// For the writer, to yield, or it did not return `Pending`; or the
    /// pump was changed since.
    Unknown,
}

#[derive(Debug)]
pub struct Pump {
    buf: BytesMut,
    /// `buf[..ready]` has been scanned and waits to be written.
    ready: usize,
    /// Bytes of a frame being streamed through that have not arrived yet.
    passthrough: usize,
    /// Bytes to add once the frame being streamed through is complete.
    after_passthrough: Option<&'static [u8]>,
    /// Bytes of a swallowed frame still to drop once `ready` is zero.
    discard: usize,
    stop_after_discard: bool,
    /// A frame is held at the head of the buffer.
    held: bool,
    /// Free space the next read must have (a whole frame being buffered).
    want: usize,
    max_whole: usize,
    eof: bool,
    /// Written since the writer was last flushed.
    unflushed: bool,
    waiting: Waiting,
}

impl Pump {
    pub fn new(max_whole: usize) -> Pump {
        Pump {
            buf: BytesMut::new(),
            ready: 0,
            passthrough: 0,
            after_passthrough: None,
            discard: 0,
            stop_after_discard: false,
            held: false,
            want: 0,
            max_whole,
            eof: false,
            unflushed: false,
            waiting: Waiting::Unknown,
        }
    }

    /// Starts with bytes that were already read (e.g. messages a client
    /// pipelined behind its startup packet).
    pub fn with_bytes(max_whole: usize, bytes: &[u8]) -> Pump {
        let mut pump = Pump::new(max_whole);
        pump.buf.extend_from_slice(bytes);
        pump
    }

    /// Goes on after a hold; the held frame is inspected again.
    pub fn resume(&mut self) {
        self.waiting = Waiting::Unknown;
        self.held = false;
    }

    /// Drops the held frame (the owner answered it itself) and goes on.
    pub fn skip_head(&mut self) {
        self.waiting = Waiting::Unknown;
        if let Ok(Some(header)) = FrameHeader::parse(&self.buf) {
            self.discard = header.len;
        }
        self.held = false;
    }

    /// Drops `len` bytes from the held frame on (frames the owner
    /// answered itself) and goes on.
    pub fn skip(&mut self, len: usize) {
        self.waiting = Waiting::Unknown;
        self.discard = len;
        self.held = false;
    }

    /// Everything read from the held frame on.
    pub fn held(&self) -> &[u8] {
        if self.held { &self.buf[..] } else { &[] }
    }

    /// The held frame, complete (holds are only for frames the inspector
    /// saw whole).
    pub fn head(&self) -> &[u8] {
        match FrameHeader::parse(&self.buf) {
            Ok(Some(header)) if self.held => self.buf.get(..header.len).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Drops what was scanned but not written (its destination is gone);
    /// what was not scanned yet stays.
    pub fn discard_ready(&mut self) {
        self.waiting = Waiting::Unknown;
        self.buf.advance(self.ready);
        self.ready = 0;
    }

    /// The reader is gone: what was scanned and not yet written, if it
    /// ends on a frame boundary (no frame is still streaming through), so
    /// the owner can deliver it before answering for the reader itself.
    /// Unscanned bytes (a frame cut off mid-way) are dropped.
    pub fn take_scanned(&mut self) -> Option<BytesMut> {
        self.waiting = Waiting::Unknown;
        if self.passthrough > 0 {
            return None;
        }
        let scanned = self.buf.split_to(self.ready);
        self.ready = 0;
        self.buf.clear();
        Some(scanned)
    }

    /// A frame is being streamed through and has not all arrived.
    pub fn mid_frame(&self) -> bool {
        self.passthrough > 0
    }

    /// Whether the last [`Pump::poll_pump`] returned `Pending` waiting
    /// only for the reader, and nothing changed the pump since. Whether
    /// the reader's wakeup still stands is the caller's to know: nothing
    /// else may have read from it since.
    pub fn waits_to_read(&self) -> bool {
        self.waiting == Waiting::Reader
    }

    /// Forgets why the last poll returned `Pending`: the reader may have
    /// been used elsewhere since.
    pub fn forget_waiting(&mut self) {
        self.waiting = Waiting::Unknown;
    }

    /// True when nothing read is waiting to be written or scanned.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.passthrough == 0
    }

    /// Empty, and nothing of a swallowed frame is still to come: the
    /// pump may serve another connection as it is.
    pub fn is_clear(&self) -> bool {
        self.is_empty() && self.discard == 0
    }

    /// Waits for the reader's next bytes without scanning or writing any
    /// (there is nowhere to write them yet): `true` once something is
    /// buffered, `false` at end of stream.
    pub fn poll_fill<R>(
        &mut self,
        cx: &mut Context<'_>,
        reader: Pin<&mut R>,
    ) -> Poll<io::Result<bool>>
    where
        R: AsyncRead + ?Sized,
    {
        self.waiting = Waiting::Unknown;
        if !self.buf.is_empty() {
            return Poll::Ready(Ok(true));
        }
        if self.eof {
            return Poll::Ready(Ok(false));
        }
        match tokio_util::io::poll_read_buf(reader, cx, &mut self.buf) {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                Poll::Ready(Ok(false))
            }
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(true)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The tag of the first buffered message, if one has begun.
    pub fn first_tag(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    /// Gives the buffer's memory back now if it is no more than a first
    /// chunk (a client that has sent little or nothing: cheap to allocate
    /// again, and most idle clients are such).
    pub fn release_small(&mut self) {
        if self.buf.capacity() <= FIRST_CHUNK {
            self.release_memory();
        }
    }

    /// Whether the buffer holds memory that [`Pump::release_memory`] could
    /// give back.
    pub fn holds_memory(&self) -> bool {
        self.buf.capacity() > 0
    }

    /// Gives the buffer's memory back while nothing is in it: a client
    /// between transactions costs little.
    pub fn release_memory(&mut self) {
        self.waiting = Waiting::Unknown;
        if self.is_empty() && self.ready == 0 {
            self.buf = BytesMut::new();
        }
    }

    /// Drives the pump until it blocks, the reader closes, or the inspector
    /// stops it.
    pub fn poll_pump<R, W, I>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
        inspector: &mut I,
    ) -> Poll<Result<PumpEvent, PumpError>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
        I: Inspect + ?Sized,
    {
        self.waiting = Waiting::Unknown;
        for _ in 0..ROUNDS_PER_POLL {
            if self.ready > 0 {
                match writer.as_mut().poll_write(cx, &self.buf[..self.ready]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(PumpError::Write(io::ErrorKind::WriteZero.into())));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.buf.advance(n);
                        self.ready -= n;
                        self.unflushed = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(PumpError::Write(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.unflushed {
                // TLS holds records the socket did not take yet until it
                // is flushed; a plain socket is flushed at once.
                match writer.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(PumpError::Write(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.discard > 0 && !self.buf.is_empty() {
                let n = self.discard.min(self.buf.len());
                self.buf.advance(n);
                self.discard -= n;
            }
            if self.discard == 0 && self.stop_after_discard {
                self.stop_after_discard = false;
                return Poll::Ready(Ok(PumpEvent::Stopped));
            }
            if self.held {
                return Poll::Ready(Ok(PumpEvent::Held));
            }
            if self.discard == 0 && !self.held && !self.buf.is_empty() {
                self.scan(inspector)?;
                if self.ready > 0 || self.discard > 0 || self.held {
                    continue;
                }
            }
            if self.eof {
                return Poll::Ready(Ok(PumpEvent::Eof));
            }
            if self.buf.is_empty() && inspector.may_stop_reading() {
                return Poll::Ready(Ok(PumpEvent::Drained));
            }
            self.make_room();
            match tokio_util::io::poll_read_buf(reader.as_mut(), cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(PumpError::Read(e))),
                Poll::Pending => {
                    self.waiting = Waiting::Reader;
                    return Poll::Pending;
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Walks frames from `ready` on, extending `ready` over everything that
    /// may be forwarded, until a frame is incomplete or must be dropped.
    fn scan<I: Inspect + ?Sized>(&mut self, inspector: &mut I) -> Result<(), PumpError> {
        loop {
            let available = self.buf.len() - self.ready;
            if available == 0 {
                return Ok(());
            }
            if self.passthrough > 0 {
                let n = self.passthrough.min(available);
                self.ready += n;
                self.passthrough -= n;
                if self.passthrough == 0
                    && let Some(bytes) = self.after_passthrough.take()
                {
                    self.insert_at_ready(bytes);
                }
                continue;
            }
            let Some(header) = FrameHeader::parse(&self.buf[self.ready..])? else {
                return Ok(());
            };
            let need = match inspector.need(header) {
                Need::Header => HEADER_LEN,
                Need::Prefix(n) => (HEADER_LEN + n).min(header.len),
                Need::Whole if header.len > self.max_whole => {
                    return Err(PumpError::TooLarge {
                        len: header.len,
                        max: self.max_whole,
                    });
                }
                Need::Whole => header.len,
            };
            if available < need {
                self.want = need - available;
                return Ok(());
            }
            let (frame, ahead) = self.buf[self.ready..].split_at_mut(need);
            match inspector.inspect(header, frame, ahead) {
                Verdict::Forward if available >= header.len => self.ready += header.len,
                Verdict::Forward => {
                    self.ready += available;
                    self.passthrough = header.len - available;
                }
                Verdict::ForwardPrefixed => {
                    let prefix = inspector.take_prefix();
                    self.insert_at_ready(&prefix);
                    let available = self.buf.len() - self.ready;
                    self.ready += header.len.min(available);
                    self.passthrough = header.len.saturating_sub(available);
                }
                Verdict::ForwardThen(bytes) if available >= header.len => {
                    self.ready += header.len;
                    self.insert_at_ready(bytes);
                }
                Verdict::ForwardThen(bytes) => {
                    self.ready += available;
                    self.passthrough = header.len - available;
                    self.after_passthrough = Some(bytes);
                }
                Verdict::Swallow if available >= header.len => {
                    // Dropped where it lies, so that what comes before and
                    // after it leaves in one write (a write's COMMIT and the
                    // acknowledgement held back behind its LSN capture: one
                    // packet to the client, not two).
                    self.remove_at_ready(header.len);
                }
                verdict @ (Verdict::Swallow | Verdict::Stop) => {
                    self.discard = header.len;
                    self.stop_after_discard = verdict == Verdict::Stop;
                    return Ok(());
                }
                Verdict::Hold => {
                    self.held = true;
                    return Ok(());
                }
                Verdict::Wait => {
                    self.want = READ_CHUNK;
                    return Ok(());
                }
            }
        }
    }

    /// Puts `bytes` into the stream at `ready`, ahead of anything read but
    /// not yet scanned (usually nothing, so usually no copy).
    fn insert_at_ready(&mut self, bytes: &[u8]) {
        let unscanned = self.buf[self.ready..].to_vec();
        self.buf.truncate(self.ready);
        self.buf.extend_from_slice(bytes);
        self.buf.extend_from_slice(&unscanned);
        self.ready += bytes.len();
    }

    /// Drops the `len` bytes at `ready` (all in the buffer).
    fn remove_at_ready(&mut self, len: usize) {
        if self.ready == 0 {
            self.buf.advance(len);
            return;
        }
        let end = self.ready + len;
        self.buf.copy_within(end.., self.ready);
        self.buf.truncate(self.buf.len() - len);
    }

    /// Before every read: nearly always there is room already, so only
    /// that check is inlined.
    #[inline]
    fn make_room(&mut self) {
        let wanted = self.want.max(READ_CHUNK / 4);
        let roomy = self.buf.capacity() - self.buf.len() >= wanted;
        if roomy && self.buf.capacity() <= SHRINK_ABOVE {
            self.want = 0;
            return;
        }
        self.resize_for_read(wanted);
    }

    #[cold]
    fn resize_for_read(&mut self, wanted: usize) {
        if self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE {
            self.buf = BytesMut::new();
        }
        if self.buf.capacity() == 0 && self.want == 0 {
            // A new or idle side starts small: most clients between
            // requests never need the full chunk.
            self.buf.reserve(FIRST_CHUNK);
            return;
        }
        if self.buf.capacity() - self.buf.len() < wanted {
            let more = self.want.max(READ_CHUNK);
            if self.buf.is_empty() {
                // Growing an empty buffer in place would copy its old
                // allocation's bytes for nothing.
                self.buf = BytesMut::with_capacity(more);
            } else {
                self.buf.reserve(more);
            }
        }
        self.want = 0;
    }
}

#[cfg(test)]
mod tests;
