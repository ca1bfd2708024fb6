//! The milter protocol on the wire (version 6, as Postfix and Sendmail speak it): packets of a
//! 4-byte big-endian length, a command or reply code, and the payload. Read through one buffer
//! per connection (a body chunk is read once, then appended to the message), replies gathered
//! and written in one system call when the MTA waits for them.

use std::io;
use std::ops::Range;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Commands from the MTA.
pub mod cmd {
    pub const ABORT: u8 = b'A';
    pub const BODY: u8 = b'B';
    pub const CONNECT: u8 = b'C';
    pub const MACRO: u8 = b'D';
    pub const BODY_END: u8 = b'E';
    pub const HELO: u8 = b'H';
    pub const QUIT_NC: u8 = b'K';
    pub const HEADER: u8 = b'L';
    pub const MAIL: u8 = b'M';
    pub const EOH: u8 = b'N';
    pub const OPTNEG: u8 = b'O';
    pub const QUIT: u8 = b'Q';
    pub const RCPT: u8 = b'R';
    pub const DATA: u8 = b'T';
    pub const UNKNOWN: u8 = b'U';
}

/// Replies and modification requests to the MTA.
pub mod reply {
    pub const ACCEPT: u8 = b'a';
    pub const REPLACE_BODY: u8 = b'b';
    pub const CONTINUE: u8 = b'c';
    pub const ADD_HEADER: u8 = b'h';
    pub const CHANGE_HEADER: u8 = b'm';
    pub const OPTNEG: u8 = b'O';
    pub const TEMPFAIL: u8 = b't';
}

/// Modifications a milter may ask for (negotiated).
pub mod action {
    pub const ADD_HEADER: u32 = 0x01;
    pub const REPLACE_BODY: u32 = 0x02;
    pub const CHANGE_HEADER: u32 = 0x10;
}

/// Protocol options: stages the MTA need not send, stages it need not wait a reply for.
pub mod opt {
    pub const NO_CONNECT: u32 = 0x01;
    pub const NO_HELO: u32 = 0x02;
    pub const NOREPLY_HEADER: u32 = 0x80;
    pub const NO_UNKNOWN: u32 = 0x100;
    pub const NO_DATA: u32 = 0x200;
    pub const NOREPLY_MAIL: u32 = 0x4000;
    pub const NOREPLY_RCPT: u32 = 0x8000;
    pub const NOREPLY_EOH: u32 = 0x40000;
    pub const NOREPLY_BODY: u32 = 0x80000;
    pub const LEADING_SPACE: u32 = 0x10_0000;
}

/// The protocol version we speak.
pub const VERSION: u32 = 6;

/// The largest packet accepted. The MTA sends body chunks of at most 65 535 bytes unless a
/// larger size is negotiated (we do not); a header field can be longer (Postfix's
/// `header_size_limit` is 100 KiB by default). A longer packet ends the connection (the MTA
/// then applies its `milter_default_action`).
pub const MAX_PACKET: usize = 1024 * 1024;

/// The most the MTA accepts in one body replacement packet.
pub const BODY_CHUNK: usize = 65_535;

const READ_SIZE: usize = 64 * 1024;

/// One milter connection: its stream, the bytes read and not yet handled, the replies not yet
/// written.
pub struct Conn<S> {
    io: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Replies,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S) -> Conn<S> {
        Conn {
            io,
            buf: vec![0; READ_SIZE + 5],
            start: 0,
            end: 0,
            out: Replies(Vec::with_capacity(1024)),
        }
    }

    /// The next packet: its code and where its payload is (see [`Conn::payload`]). `None`
    /// when the MTA closed the connection between packets.
    pub async fn read(&mut self) -> io::Result<Option<(u8, Range<usize>)>> {
        if !self.fill(4).await? {
            return if self.start == self.end {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        let b = &self.buf[self.start..self.start + 4];
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        // Judged before waiting for the rest: a peer announcing too much is not waited for.
        if len == 0 || len > MAX_PACKET {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("milter packet of {len} bytes"),
            ));
        }
        if !self.fill(4 + len).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let code = self.buf[self.start + 4];
        let payload = self.start + 5..self.start + 4 + len;
        self.start += 4 + len;
        Ok(Some((code, payload)))
    }

    /// Read until `n` bytes are buffered; false if the stream ended first.
    async fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        // Room for the whole packet, the bytes already read moved to the front.
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let want = n.max(READ_SIZE);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        while self.end < n {
            let got = self.io.read(&mut self.buf[self.end..]).await?;
            if got == 0 {
                return Ok(false);
            }
            self.end += got;
        }
        Ok(true)
    }

    /// The payload of the packet [`Conn::read`] returned last, and the replies.
    pub fn payload(&mut self, at: Range<usize>) -> (&[u8], &mut Replies) {
        (&self.buf[at], &mut self.out)
    }

    /// The replies gathered so far.
    pub fn replies(&mut self) -> &mut Replies {
        &mut self.out
    }

    /// Write the replies gathered so far, in one go.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.0.is_empty() {
            return Ok(());
        }
        self.io.write_all(&self.out.0).await?;
        self.io.flush().await?;
        self.out.0.clear();
        // A large body replacement does not stay allocated with the connection.
        if self.out.0.capacity() > 4 * READ_SIZE {
            self.out.0 = Vec::with_capacity(1024);
        }
        Ok(())
    }
}

/// Replies waiting to be written.
#[derive(Default)]
pub struct Replies(Vec<u8>);

impl Replies {
    /// A packet of `code` whose payload is `parts` one after the other.
    fn packet(&mut self, code: u8, parts: &[&[u8]]) {
        let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        self.0
            .extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        self.0.push(code);
        for p in parts {
            self.0.extend_from_slice(p);
        }
    }

    /// A reply without payload (continue, accept, tempfail).
    pub fn status(&mut self, code: u8) {
        self.packet(code, &[]);
    }

    /// Our side of the negotiation.
    pub fn negotiate(&mut self, actions: u32, opts: u32) {
        self.packet(
            reply::OPTNEG,
            &[
                &VERSION.to_be_bytes(),
                &actions.to_be_bytes(),
                &opts.to_be_bytes(),
            ],
        );
    }

    /// The new body, in packets the MTA accepts.
    pub fn replace_body(&mut self, body: &[u8]) {
        self.0.reserve(body.len() + body.len() / BODY_CHUNK * 5 + 5);
        for chunk in body.chunks(BODY_CHUNK) {
            self.packet(reply::REPLACE_BODY, &[chunk]);
        }
    }

    /// A header field appended to the message. Names and values hold no NUL (it ends them on
    /// the wire): one is cut there.
    pub fn add_header(&mut self, name: &[u8], value: &[u8]) {
        self.packet(
            reply::ADD_HEADER,
            &[until_nul(name), b"\0", until_nul(value), b"\0"],
        );
    }

    /// The `index`-th (from 1) field named `name` given `value`, or deleted if `value` is
    /// empty.
    pub fn change_header(&mut self, index: u32, name: &[u8], value: &[u8]) {
        self.packet(
            reply::CHANGE_HEADER,
            &[
                &index.to_be_bytes(),
                until_nul(name),
                b"\0",
                until_nul(value),
                b"\0",
            ],
        );
    }
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.split(|&c| c == 0).next().unwrap_or(b)
}

/// The NUL-terminated strings of a payload (a last one without its NUL included).
pub fn strings(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let payload = payload.strip_suffix(b"\0").unwrap_or(payload);
    payload
        .split(|&c| c == 0)
        .filter(move |_| !payload.is_empty())
}

/// The three numbers of the MTA's negotiation packet: version, actions, options.
pub fn negotiation(payload: &[u8]) -> Option<(u32, u32, u32)> {
    let n = |i: usize| {
        payload
            .get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    Some((n(0)?, n(4)?, n(8)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn packet(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(code);
        v.extend_from_slice(payload);
        v
    }

    /// Packets come out whole and in order however the stream cuts them, and larger than
    /// the read size too.
    #[test]
    fn packets_are_read_whole_across_reads() {
        let big = vec![b'x'; 200_000];
        let mut stream = packet(cmd::MAIL, b"<a@b.example>\0");
        stream.extend(packet(cmd::BODY, &big));
        stream.extend(packet(cmd::BODY_END, b""));
        for cut in [1, 3, 5, 7, 4096, 70_000] {
            let mut b = tokio_test_io(&stream, cut);
            let got = block_on(async {
                let mut conn = Conn::new(&mut b);
                let mut got = Vec::new();
                while let Some((code, at)) = conn.read().await.expect("read") {
                    got.push((code, conn.payload(at).0.to_vec()));
                }
                got
            });
            assert_eq!(got.len(), 3, "cut {cut}");
            assert_eq!(got[0], (cmd::MAIL, b"<a@b.example>\0".to_vec()));
            assert_eq!(got[1].0, cmd::BODY);
            assert!(got[1].1 == big, "cut {cut}");
            assert_eq!(got[2], (cmd::BODY_END, Vec::new()));
        }
    }

    #[test]
    fn a_truncated_or_oversized_packet_is_an_error() {
        for stream in [
            packet(cmd::MAIL, b"abc")[..6].to_vec(),
            vec![0, 0],
            ((MAX_PACKET + 1) as u32).to_be_bytes().to_vec(),
            vec![0, 0, 0, 0, b'M'],
        ] {
            let mut b = tokio_test_io(&stream, 4096);
            let r = block_on(async { Conn::new(&mut b).read().await.map(|p| p.is_some()) });
            assert!(r.is_err(), "{stream:?}: {r:?}");
        }
    }

    #[test]
    fn replies_are_framed_and_a_large_body_cut_in_chunks() {
        let mut r = Replies::default();
        r.status(reply::CONTINUE);
        r.add_header(b"X-Trackless", b" pixels=1");
        r.change_header(2, b"X-Trackless", b"");
        r.replace_body(&vec![b'y'; 70_000]);
        let mut want = packet(reply::CONTINUE, b"");
        want.extend(packet(reply::ADD_HEADER, b"X-Trackless\0 pixels=1\0"));
        want.extend(packet(reply::CHANGE_HEADER, b"\0\0\0\x02X-Trackless\0\0"));
        want.extend(packet(reply::REPLACE_BODY, &vec![b'y'; BODY_CHUNK]));
        want.extend(packet(
            reply::REPLACE_BODY,
            &vec![b'y'; 70_000 - BODY_CHUNK],
        ));
        assert!(r.0 == want);
    }

    #[test]
    fn strings_and_negotiation_are_read_from_payloads() {
        let s: Vec<&[u8]> = strings(b"<a@b>\0SIZE=10\0").collect();
        assert_eq!(s, vec![&b"<a@b>"[..], b"SIZE=10"]);
        assert_eq!(strings(b"").count(), 0);
        assert_eq!(strings(b"x").collect::<Vec<_>>(), vec![&b"x"[..]]);
        assert_eq!(
            negotiation(&[0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff]),
            Some((6, 0x1ff, 0x1fffff))
        );
        assert_eq!(negotiation(&[0, 0, 0, 6]), None);
    }

    /// A stream that hands out `data` at most `cut` bytes per read and swallows writes.
    fn tokio_test_io(data: &[u8], cut: usize) -> Chunked {
        Chunked {
            data: data.to_vec(),
            at: 0,
            cut,
        }
    }

    struct Chunked {
        data: Vec<u8>,
        at: usize,
        cut: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            let n = self.cut.min(buf.remaining()).min(self.data.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Chunked {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }
}
