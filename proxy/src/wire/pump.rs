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
    fn take_prefix(&mut self) -> Vec<u8> {
        Vec::new()
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
        self.held = false;
    }

    /// Drops the held frame (the owner answered it itself) and goes on.
    pub fn skip_head(&mut self) {
        if let Ok(Some(header)) = FrameHeader::parse(&self.buf) {
            self.discard = header.len;
        }
        self.held = false;
    }

    /// Drops `len` bytes from the held frame on (frames the owner
    /// answered itself) and goes on.
    pub fn skip(&mut self, len: usize) {
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
        self.buf.advance(self.ready);
        self.ready = 0;
    }

    /// The reader is gone: what was scanned and not yet written, if it
    /// ends on a frame boundary (no frame is still streaming through), so
    /// the owner can deliver it before answering for the reader itself.
    /// Unscanned bytes (a frame cut off mid-way) are dropped.
    pub fn take_scanned(&mut self) -> Option<BytesMut> {
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

    /// True when nothing read is waiting to be written or scanned.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.passthrough == 0
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
                Poll::Pending => return Poll::Pending,
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

    fn make_room(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE {
            self.buf = BytesMut::new();
        }
        if self.buf.capacity() == 0 && self.want == 0 {
            // A new or idle side starts small: most clients between
            // requests never need the full chunk.
            self.buf.reserve(FIRST_CHUNK);
            return;
        }
        let wanted = self.want.max(READ_CHUNK / 4);
        if self.buf.capacity() - self.buf.len() < wanted {
            self.buf.reserve(self.want.max(READ_CHUNK));
        }
        self.want = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::test_frame as frame;
    use std::future::poll_fn;
    use tokio::io::AsyncWriteExt;

    /// Forwards everything, swallows `X`, stops on `S`, needs `Q` whole and
    /// records what it saw.
    #[derive(Default)]
    struct Recorder {
        seen: Vec<(u8, usize)>,
    }

    impl Inspect for Recorder {
        fn need(&self, header: FrameHeader) -> Need {
            match header.tag {
                b'Q' => Need::Whole,
                b'A' => Need::Prefix(4),
                _ => Need::Header,
            }
        }
        fn inspect(&mut self, header: FrameHeader, frame: &mut [u8], _: &[u8]) -> Verdict {
            self.seen.push((header.tag, frame.len()));
            match header.tag {
                b'X' => Verdict::Swallow,
                b'S' => Verdict::Stop,
                b'A' => {
                    frame[5..9].copy_from_slice(&7u32.to_be_bytes());
                    Verdict::Forward
                }
                _ => Verdict::Forward,
            }
        }
    }

    /// Forwards everything and, once it has seen a `Z`, asks the pump not
    /// to read on.
    #[derive(Default)]
    struct UntilReady {
        ready: bool,
    }

    impl Inspect for UntilReady {
        fn need(&self, _: FrameHeader) -> Need {
            Need::Header
        }
        fn inspect(&mut self, header: FrameHeader, _: &mut [u8], _: &[u8]) -> Verdict {
            self.ready |= header.tag == b'Z';
            Verdict::Forward
        }
        fn may_stop_reading(&self) -> bool {
            self.ready
        }
    }

    #[tokio::test]
    async fn a_drained_pump_stops_before_reading_what_follows() {
        let mut input = frame(b'D', b"row");
        input.extend(frame(b'Z', b"I"));
        let (mut feed, mut reader) = tokio::io::duplex(1024);
        feed.write_all(&input).await.expect("feed");
        let mut out: Vec<u8> = Vec::new();
        let mut side = UntilReady::default();
        let mut pump = Pump::new(1 << 20);
        let first =
            poll_fn(|cx| pump.poll_pump(cx, Pin::new(&mut reader), Pin::new(&mut out), &mut side))
                .await;
        assert!(matches!(first, Ok(PumpEvent::Drained)), "{first:?}");
        assert_eq!(out, input, "everything read was written first");
        // A notice arriving later is read once the caller reads on.
        let notice = frame(b'N', b"late");
        feed.write_all(&notice).await.expect("feed");
        side.ready = false;
        drop(feed);
        let second =
            poll_fn(|cx| pump.poll_pump(cx, Pin::new(&mut reader), Pin::new(&mut out), &mut side))
                .await;
        assert!(matches!(second, Ok(PumpEvent::Eof)), "{second:?}");
        assert_eq!(&out[input.len()..], &notice[..]);
    }

    async fn run(input: Vec<u8>, max: usize) -> (Result<PumpEvent, PumpError>, Vec<u8>, Recorder) {
        let (mut feed, mut reader) = tokio::io::duplex(1024);
        let mut out: Vec<u8> = Vec::new();
        let mut rec = Recorder::default();
        let writer_task = tokio::spawn(async move {
            // Dribble the input in small pieces to exercise partial frames.
            for chunk in input.chunks(7) {
                if feed.write_all(chunk).await.is_err() {
                    return; // the pump stopped reading (e.g. it refused a frame)
                }
            }
        });
        let mut pump = Pump::new(max);
        let result =
            poll_fn(|cx| pump.poll_pump(cx, Pin::new(&mut reader), Pin::new(&mut out), &mut rec))
                .await;
        drop(reader);
        writer_task.await.expect("feeder");
        (result, out, rec)
    }

    #[tokio::test]
    async fn forwards_bytes_unchanged_across_partial_reads() {
        let mut input = frame(b'Q', b"select 1\0");
        input.extend(frame(b'D', &[0xff; 5000]));
        input.extend(frame(b'd', b"copy\xe9data"));
        let (result, out, rec) = run(input.clone(), 1 << 20).await;
        assert_eq!(result.expect("pump"), PumpEvent::Eof);
        assert_eq!(out, input);
        assert_eq!(rec.seen, vec![(b'Q', 14), (b'D', 5), (b'd', 5)]);
    }

    #[tokio::test]
    async fn puts_a_prefix_ahead_of_a_frame_once() {
        struct PrefixZ(u32);
        impl Inspect for PrefixZ {
            fn need(&self, _: FrameHeader) -> Need {
                Need::Header
            }
            fn inspect(&mut self, header: FrameHeader, _: &mut [u8], _: &[u8]) -> Verdict {
                self.0 += 1;
                match header.tag {
                    b'Z' => Verdict::ForwardPrefixed,
                    _ => Verdict::Forward,
                }
            }
            fn take_prefix(&mut self) -> Vec<u8> {
                frame(b'S', b"k\0v\0")
            }
        }
        let mut input = frame(b'C', b"INSERT 0 1\0");
        input.extend(frame(b'Z', b"I"));
        input.extend(frame(b'D', b"row"));
        let mut reader = &input[..];
        let mut out: Vec<u8> = Vec::new();
        let mut inspector = PrefixZ(0);
        let mut pump = Pump::new(1 << 20);
        let event = futures_lite_poll(|cx| {
            pump.poll_pump(
                cx,
                Pin::new(&mut reader),
                Pin::new(&mut out),
                &mut inspector,
            )
        });
        assert_eq!(event, Some(PumpEvent::Eof));
        let mut expected = frame(b'C', b"INSERT 0 1\0");
        expected.extend(frame(b'S', b"k\0v\0"));
        expected.extend(frame(b'Z', b"I"));
        expected.extend(frame(b'D', b"row"));
        assert_eq!(out, expected);
        assert_eq!(
            inspector.0, 3,
            "each frame inspected once, the prefix never"
        );
    }

    #[tokio::test]
    async fn swallows_and_stops_where_told() {
        let mut input = frame(b'Q', b"x\0");
        input.extend(frame(b'X', b""));
        input.extend(frame(b'P', b"y"));
        input.extend(frame(b'S', b""));
        input.extend(frame(b'Q', b"never\0"));
        let (result, out, _) = run(input, 1 << 20).await;
        assert_eq!(result.expect("pump"), PumpEvent::Stopped);
        let mut expected = frame(b'Q', b"x\0");
        expected.extend(frame(b'P', b"y"));
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn holds_a_frame_until_resumed_or_skipped() {
        struct HoldQ(usize);
        impl Inspect for HoldQ {
            fn need(&self, _: FrameHeader) -> Need {
                Need::Whole
            }
            fn inspect(&mut self, header: FrameHeader, _: &mut [u8], _: &[u8]) -> Verdict {
                if header.tag == b'Q' && self.0 > 0 {
                    self.0 -= 1;
                    Verdict::Hold
                } else {
                    Verdict::Forward
                }
            }
        }
        let mut input = frame(b'P', b"a");
        input.extend(frame(b'Q', b"one\0"));
        input.extend(frame(b'Q', b"two\0"));
        let mut reader = &input[..];
        let mut out: Vec<u8> = Vec::new();
        let mut pump = Pump::new(1 << 20);
        let mut inspector = HoldQ(2);
        let step = |pump: &mut Pump,
                    out: &mut Vec<u8>,
                    reader: &mut &[u8],
                    inspector: &mut HoldQ| {
            futures_lite_poll(|cx| pump.poll_pump(cx, Pin::new(reader), Pin::new(out), inspector))
        };
        assert_eq!(
            step(&mut pump, &mut out, &mut reader, &mut inspector),
            Some(PumpEvent::Held)
        );
        assert_eq!(
            out,
            frame(b'P', b"a"),
            "bytes before the held frame are written"
        );
        assert_eq!(pump.head(), &frame(b'Q', b"one\0")[..]);
        pump.skip_head();
        assert_eq!(
            step(&mut pump, &mut out, &mut reader, &mut inspector),
            Some(PumpEvent::Held)
        );
        assert_eq!(pump.head(), &frame(b'Q', b"two\0")[..]);
        pump.resume();
        assert_eq!(
            step(&mut pump, &mut out, &mut reader, &mut inspector),
            Some(PumpEvent::Eof)
        );
        let mut expected = frame(b'P', b"a");
        expected.extend(frame(b'Q', b"two\0"));
        assert_eq!(
            out, expected,
            "the skipped frame is gone, the resumed one forwarded"
        );
    }

    /// Polls once with a no-op waker; `None` if pending.
    fn futures_lite_poll<T>(
        mut f: impl FnMut(&mut Context<'_>) -> Poll<Result<T, PumpError>>,
    ) -> Option<T> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match f(&mut cx) {
            Poll::Ready(r) => Some(r.expect("pump")),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn rewrites_a_prefix_in_place() {
        let input = frame(b'A', b"\0\0\0\x01chan\0payload\0");
        let (_, out, _) = run(input, 1 << 20).await;
        assert_eq!(&out[5..9], &7u32.to_be_bytes());
        assert_eq!(&out[9..], b"chan\0payload\0");
    }

    #[tokio::test]
    async fn refuses_whole_frames_beyond_the_limit() {
        let input = frame(b'Q', &[b'a'; 2000]);
        let (result, out, _) = run(input, 1000).await;
        assert!(matches!(
            result,
            Err(PumpError::TooLarge {
                len: 2005,
                max: 1000
            })
        ));
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn streams_frames_larger_than_the_limit_when_not_needed_whole() {
        let input = frame(b'D', &[1u8; 300_000]);
        let (result, out, _) = run(input.clone(), 1000).await;
        assert_eq!(result.expect("pump"), PumpEvent::Eof);
        assert_eq!(out, input);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any sequence of frames, cut into reads of any size, comes out
        /// byte for byte, and the inspector sees each frame exactly once.
        /// (The recorder swallows X, stops at S and rewrites A, so those
        /// tags are left out here; their handling has tests of its own.)
        #[test]
        fn forwards_any_frames_cut_anywhere(
            frames in proptest::collection::vec(
                (proptest::sample::select(b"QPBEDdcfZTHKN".to_vec()), proptest::collection::vec(proptest::num::u8::ANY, 0..3000)),
                0..40,
            ),
        ) {
            let input: Vec<u8> = frames.iter().flat_map(|(t, b)| frame(*t, b)).collect();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let (result, out, rec) = runtime.block_on(run(input.clone(), 1 << 20));
            proptest::prop_assert_eq!(result.expect("pump"), PumpEvent::Eof);
            proptest::prop_assert_eq!(out, input);
            let tags: Vec<u8> = rec.seen.iter().map(|(t, _)| *t).collect();
            proptest::prop_assert_eq!(tags, frames.iter().map(|(t, _)| *t).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn adds_bytes_behind_a_forwarded_frame() {
        struct Adder;
        impl Inspect for Adder {
            fn need(&self, _: FrameHeader) -> Need {
                Need::Header
            }
            fn inspect(&mut self, header: FrameHeader, _: &mut [u8], _: &[u8]) -> Verdict {
                if header.tag == b'S' {
                    Verdict::ForwardThen(b"+extra+")
                } else {
                    Verdict::Forward
                }
            }
        }
        let mut input = frame(b'S', b"");
        input.extend(frame(b'd', &[7; 40_000]));
        input.extend(frame(b'S', b""));
        let (mut feed, mut reader) = tokio::io::duplex(1 << 20);
        feed.write_all(&input).await.expect("feed");
        drop(feed);
        let mut out: Vec<u8> = Vec::new();
        let mut pump = Pump::new(1 << 20);
        let result =
            poll_fn(|cx| pump.poll_pump(cx, Pin::new(&mut reader), Pin::new(&mut out), &mut Adder))
                .await;
        assert_eq!(result.expect("pump"), PumpEvent::Eof);
        let mut expected = frame(b'S', b"");
        expected.extend_from_slice(b"+extra+");
        expected.extend(frame(b'd', &[7; 40_000]));
        expected.extend(frame(b'S', b""));
        expected.extend_from_slice(b"+extra+");
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn a_bad_length_is_an_error() {
        let (result, _, _) = run(b"Q\0\0\0\x01".to_vec(), 1000).await;
        assert!(matches!(
            result,
            Err(PumpError::Frame(FrameError::BadLength(1)))
        ));
    }
}
