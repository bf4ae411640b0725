//! The exec protocol's WebSocket frames, read straight off the upgraded connection (`postgres|mysql download`).
//!
//! A general WebSocket reader (tungstenite) zero-fills a 128 KiB read buffer before every read, reads the whole
//! frame into it, and hands the payload over for the caller to copy once more. A download's payload is the dump,
//! so [`ExecFrames`] parses only the frame headers (through a small read-ahead buffer) and reads each payload
//! directly into the caller's memory: the kernel's copy out of the socket (or rustls' out of its plaintext
//! buffer) is the only one before the file write.
//!
//! It speaks what the exec protocol needs of RFC 6455 on the client side: binary messages, possibly fragmented,
//! whose first byte is the channel; pings answered with a masked pong; close. A masked or malformed server frame
//! is an error rather than something to guess around.

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader};

/// Read-ahead for frame headers: a header read also brings in the start of its payload, and a payload read
/// larger than this bypasses the buffer.
const READ_AHEAD: usize = 16 * 1024;

/// Opcodes of RFC 6455, section 5.2.
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A piece of one channel's data: `len` bytes follow, to be taken with [`ExecFrames::read`] or
/// [`ExecFrames::skip`] before the next [`ExecFrames::next_part`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub channel: u8,
    pub len: u64,
    /// The last piece of its message.
    pub end: bool,
}

/// The data message in progress, which continuation frames extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    None,
    /// A binary message whose channel byte has not arrived yet.
    Start,
    Channel(u8),
    /// A text message: not part of the exec protocol, so it is read and dropped.
    Text,
}

/// Exec-protocol frames over `S`, a connection already upgraded to WebSocket.
pub struct ExecFrames<S> {
    io: BufReader<S>,
    message: Message,
    /// Payload bytes of the current frame not yet taken.
    remaining: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ExecFrames<S> {
    pub fn new(io: S) -> ExecFrames<S> {
        ExecFrames {
            io: BufReader::with_capacity(READ_AHEAD, io),
            message: Message::None,
            remaining: 0,
        }
    }

    /// The next piece of channel data; control frames on the way are handled here. `None` when the server closed
    /// the stream (close frame, or the connection ended between frames).
    pub async fn next_part(&mut self) -> Result<Option<Part>, String> {
        self.skip().await?;
        loop {
            let Some(header) = self.header().await? else {
                return Ok(None);
            };
            self.remaining = header.len;
            match header.opcode {
                CLOSE => return Ok(None),
                PING => {
                    let mut payload = vec![0; header.len as usize];
                    self.read_exact(&mut payload).await?;
                    self.send(PONG, &payload)
                        .await
                        .map_err(|e| format!("answering the server's ping failed: {e}"))?;
                    continue;
                }
                PONG => {
                    self.skip().await?;
                    continue;
                }
                BINARY | TEXT if self.message != Message::None => {
                    return Err("a new message began before the last one ended".into());
                }
                BINARY => self.message = Message::Start,
                TEXT => self.message = Message::Text,
                CONTINUATION if self.message == Message::None => {
                    return Err("a continuation frame without a message to continue".into());
                }
                CONTINUATION => {}
                other => return Err(format!("unknown frame opcode {other:#x}")),
            }
            if self.message == Message::Start && self.remaining > 0 {
                let mut channel = [0u8];
                self.read_exact(&mut channel).await?;
                self.message = Message::Channel(channel[0]);
            }
            let message = self.message;
            if header.fin {
                self.message = Message::None;
            }
            match message {
                Message::Channel(channel) => {
                    return Ok(Some(Part {
                        channel,
                        len: self.remaining,
                        end: header.fin,
                    }));
                }
                // Text, or a binary message with no bytes yet: nothing for the caller.
                _ => self.skip().await?,
            }
        }
    }

    /// Reads up to `buf.len()` bytes of the current part; 0 once it is all taken.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self
            .io
            .read(&mut buf[..want])
            .await
            .map_err(|e| format!("reading the exec stream failed: {e}"))?;
        if n == 0 {
            return Err("the connection ended inside a frame".into());
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Hands what is left of the current part to `take`, a few KiB at a time.
    pub async fn each(&mut self, mut take: impl FnMut(&[u8])) -> Result<(), String> {
        let mut scratch = [0u8; 4096];
        loop {
            match self.read(&mut scratch).await? {
                0 => return Ok(()),
                n => take(&scratch[..n]),
            }
        }
    }

    /// Drops what is left of the current part.
    pub async fn skip(&mut self) -> Result<(), String> {
        self.each(|_| {}).await
    }

    /// Sends a close frame: the command has ended and its result is known, so a failure here changes nothing.
    pub async fn close(&mut self) {
        let _ = self.send(CLOSE, &[]).await;
    }

    /// Reads exactly `buf.len()` bytes of the current part (an error if it holds fewer).
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let mut at = 0;
        while at < buf.len() {
            match self.read(&mut buf[at..]).await? {
                0 => return Err("a frame ended before the bytes it was read for".into()),
                n => at += n,
            }
        }
        Ok(())
    }

    /// The next frame's header; `None` if the connection ended cleanly before it.
    async fn header(&mut self) -> Result<Option<Header>, String> {
        let broke = |e: std::io::Error| format!("reading the exec stream failed: {e}");
        let mut start = [0u8; 2];
        let n = self.io.read(&mut start).await.map_err(broke)?;
        match n {
            0 => return Ok(None),
            1 => {
                self.io.read_exact(&mut start[1..]).await.map_err(broke)?;
            }
            _ => {}
        }
        let fin = start[0] & 0x80 != 0;
        let opcode = start[0] & 0x0F;
        if start[0] & 0x70 != 0 {
            return Err("the server set reserved bits of a frame (no extension was agreed)".into());
        }
        if start[1] & 0x80 != 0 {
            return Err("the server sent a masked frame, which RFC 6455 forbids".into());
        }
        let len = match start[1] & 0x7F {
            126 => u64::from(self.io.read_u16().await.map_err(broke)?),
            127 => self.io.read_u64().await.map_err(broke)?,
            short => u64::from(short),
        };
        if len >> 63 != 0 {
            return Err("a frame length with its top bit set".into());
        }
        if opcode & 0x8 != 0 && (len > 125 || !fin) {
            return Err(format!(
                "a control frame ({opcode:#x}) that is fragmented or longer than 125 bytes"
            ));
        }
        Ok(Some(Header { fin, opcode, len }))
    }

    /// Writes one unfragmented frame, masked as a client's must be.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        debug_assert!(payload.len() <= 125, "only control frames are sent");
        let mut mask = [0u8; 4];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut mask)
            .map_err(|_| std::io::Error::other("no random bytes for the frame's mask"))?;
        let mut frame = Vec::with_capacity(6 + payload.len());
        frame.push(0x80 | opcode);
        frame.push(0x80 | payload.len() as u8);
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        let io = self.io.get_mut();
        io.write_all(&frame).await?;
        io.flush().await
    }
}

struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::DuplexStream;

    /// A server frame (unmasked).
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 0xFFFF => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    fn channel(channel: u8, data: &[u8]) -> Vec<u8> {
        let mut payload = vec![channel];
        payload.extend_from_slice(data);
        frame(true, BINARY, &payload)
    }

    /// The reader over `wire`, with the server's end (to see what the client sent back).
    async fn reader(wire: &[u8]) -> (ExecFrames<DuplexStream>, DuplexStream) {
        let (client, mut server) = tokio::io::duplex(wire.len() + 1024);
        server.write_all(wire).await.unwrap();
        (ExecFrames::new(client), server)
    }

    /// Every part until the end, with its bytes read in `step`-sized reads.
    async fn drain(
        frames: &mut ExecFrames<DuplexStream>,
        step: usize,
    ) -> Result<Vec<(u8, Vec<u8>, bool)>, String> {
        let mut parts = Vec::new();
        while let Some(part) = frames.next_part().await? {
            let mut data = Vec::new();
            let mut buf = vec![0; step];
            loop {
                let n = frames.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            assert_eq!(data.len() as u64, part.len);
            parts.push((part.channel, data, part.end));
        }
        Ok(parts)
    }

    #[tokio::test]
    async fn payloads_of_every_length_class_arrive_whole_on_their_channel() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mid: Vec<u8> = (0..1_000u32).map(|i| (i % 7) as u8).collect();
        let mut wire = channel(1, b"hi");
        wire.extend(channel(2, &mid));
        wire.extend(channel(1, &big));
        wire.extend(channel(3, b"{}"));
        for step in [1, 7, 65_536] {
            let (mut frames, server) = reader(&wire).await;
            drop(server);
            let parts = drain(&mut frames, step).await.unwrap();
            assert_eq!(
                parts,
                vec![
                    (1, b"hi".to_vec(), true),
                    (2, mid.clone(), true),
                    (1, big.clone(), true),
                    (3, b"{}".to_vec(), true),
                ],
                "step {step}"
            );
        }
    }

    #[tokio::test]
    async fn a_fragmented_message_keeps_its_channel_and_a_ping_inside_it_gets_a_masked_pong() {
        let mut wire = frame(false, BINARY, &[3, b'{']);
        wire.extend(frame(true, PING, b"are you there"));
        wire.extend(frame(false, CONTINUATION, b"\"a\":"));
        wire.extend(frame(true, CONTINUATION, b"1}"));
        wire.extend(frame(true, CLOSE, &[]));
        wire.extend(channel(1, b"after the close"));
        let (mut frames, mut server) = reader(&wire).await;
        let parts = drain(&mut frames, 64).await.unwrap();
        assert_eq!(
            parts,
            vec![
                (3, b"{".to_vec(), false),
                (3, b"\"a\":".to_vec(), false),
                (3, b"1}".to_vec(), true),
            ]
        );
        let mut pong = [0u8; 6 + 13];
        server.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong[0], 0x80 | PONG);
        assert_eq!(pong[1], 0x80 | 13, "masked, 13 bytes");
        let unmasked: Vec<u8> = pong[6..]
            .iter()
            .zip(pong[2..6].iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        assert_eq!(unmasked, b"are you there");
    }

    #[tokio::test]
    async fn a_binary_message_whose_channel_comes_in_a_later_fragment() {
        let mut wire = frame(false, BINARY, &[]);
        wire.extend(frame(true, CONTINUATION, &[1, b'x']));
        wire.extend(frame(true, TEXT, b"not the protocol"));
        wire.extend(channel(2, b""));
        let (mut frames, server) = reader(&wire).await;
        drop(server);
        let parts = drain(&mut frames, 64).await.unwrap();
        assert_eq!(parts, vec![(1, b"x".to_vec(), true), (2, Vec::new(), true)]);
    }

    #[tokio::test]
    async fn malformed_frames_are_errors_that_say_what_was_wrong() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x82, 0x81, 1, 2, 3, 4, 5], "masked"),
            (vec![0xC2, 0x01, 1], "reserved bits"),
            (frame(true, CONTINUATION, b"x"), "continuation"),
            (
                [frame(false, BINARY, &[1]), channel(1, b"y")].concat(),
                "new message",
            ),
            (frame(false, PING, b""), "control frame"),
            (vec![0x89, 126, 0, 200], "control frame"),
            (vec![0x83, 0x00], "opcode"),
            (vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1], "top bit"),
            (vec![0x82, 0x05, 1, b'a'], "ended inside a frame"),
            (vec![0x82], "failed"),
        ];
        for (wire, expected) in cases {
            let (mut frames, server) = reader(&wire).await;
            drop(server);
            let err = drain(&mut frames, 64).await.unwrap_err();
            assert!(err.contains(expected), "{wire:02x?}: {err}");
        }
    }

    #[tokio::test]
    async fn close_sends_a_masked_close_frame() {
        let (mut frames, mut server) = reader(&[]).await;
        frames.close().await;
        let mut sent = [0u8; 6];
        server.read_exact(&mut sent).await.unwrap();
        assert_eq!(sent[..2], [0x80 | CLOSE, 0x80]);
    }
}
