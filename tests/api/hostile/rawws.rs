//! A WebSocket spoken by hand over TCP, for frames no client library would send: any FIN,
//! RSV bits, opcode, mask and declared length on the way in; server frames parsed and
//! checked (unmasked; text frames JSON with a `type`) on the way out.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::gen;
use super::{Arena, CASE_TIMEOUT};

/// Opcodes (RFC 6455 5.2).
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CONTINUATION: u8 = 0x0;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// A client frame as bytes: any FIN, RSV bits, opcode, mask or declared length.
pub fn frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: &[u8],
    masked: bool,
    declared: Option<u64>,
) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0xf)];
    let len = declared.unwrap_or(payload.len() as u64);
    let mask_bit = if masked { 0x80 } else { 0 };
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend((len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend(len.to_be_bytes());
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend(key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend(payload);
    }
    out
}

/// A well-formed, masked, final frame.
pub fn whole(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, payload, true, None)
}

/// A close payload: code and reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [code.to_be_bytes().as_slice(), reason].concat()
}

/// How a raw socket ended.
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum End {
    /// A close frame with this code (None: an empty close frame).
    Closed(Option<u16>),
    /// The connection ended without a close frame.
    Dropped,
    /// Still open when we stopped waiting.
    Open,
}

/// A WebSocket spoken by hand over TCP.
pub struct RawWs {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buf: Vec<u8>,
    /// Text frames the server sent.
    pub texts: Vec<String>,
}

impl RawWs {
    /// Handshakes with alice's token and reads the `ready` frame.
    pub async fn connect(arena: &Arena) -> RawWs {
        let stream = tokio::net::TcpStream::connect(arena.app.addr)
            .await
            .expect("connect");
        let (reader, mut writer) = stream.into_split();
        let request = format!(
            "GET /ws/notif?token={} HTTP/1.1\r\nHost: rtchat\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            arena.alice.token
        );
        writer
            .write_all(request.as_bytes())
            .await
            .expect("write the handshake");
        let mut ws = RawWs {
            reader,
            writer,
            buf: Vec::new(),
            texts: Vec::new(),
        };
        let head_end = loop {
            if let Some(at) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                ws.fill(CASE_TIMEOUT).await,
                "the handshake answer ended early: {}",
                gen::show(&ws.buf)
            );
        };
        assert!(
            ws.buf.starts_with(b"HTTP/1.1 101"),
            "no 101: {}",
            gen::show(&ws.buf)
        );
        ws.buf.drain(..head_end);
        match ws.next_frame(CASE_TIMEOUT).await {
            Some((TEXT, payload)) => {
                let ready: Value = serde_json::from_slice(&payload).expect("ready is JSON");
                assert_eq!(ready["type"], "ready", "{ready}");
            }
            other => panic!("expected ready, got {other:?}"),
        }
        ws.texts.clear();
        ws
    }

    /// Reads more bytes; false when the connection ended (or nothing came in `wait`).
    pub async fn fill(&mut self, wait: Duration) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(wait, self.reader.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            _ => false,
        }
    }

    /// The next server frame `(opcode, payload)`, or None if the socket ended or went quiet.
    /// Server frames are checked: unmasked, and text frames JSON with a string `type`.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((opcode, payload, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                if opcode == TEXT {
                    let text = String::from_utf8(payload.clone()).expect("server text is UTF-8");
                    let value: Value = serde_json::from_str(&text).expect("server frames are JSON");
                    assert!(value["type"].is_string(), "a frame without a type: {text}");
                    if value["type"] == "error" {
                        assert!(
                            value["payload"]["code"].is_string()
                                && value["payload"]["detail"].is_string(),
                            "an error frame without code and detail: {text}"
                        );
                    }
                    self.texts.push(text);
                }
                return Some((opcode, payload));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.fill(left).await {
                return None;
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        // The server may close first: a write error is an outcome, read below.
        let _ = self.writer.write_all(bytes).await;
    }

    /// Reads until the socket ends, or `wait` passes with it open.
    pub async fn ended(&mut self, wait: Duration) -> End {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await {
                Some((CLOSE, payload)) => {
                    return End::Closed(
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
                    )
                }
                Some(_) => continue,
                None if tokio::time::Instant::now() >= deadline => return End::Open,
                None => return End::Dropped,
            }
        }
    }

    /// Sends a ping frame of ours (`{"type":"ping"}`) and waits for its pong, proving the
    /// socket still serves.
    pub async fn still_serves(&mut self, what: &str) {
        self.send(&whole(TEXT, br#"{"type":"ping"}"#)).await;
        loop {
            match self.next_frame(CASE_TIMEOUT).await {
                Some((TEXT, payload)) if payload == br#"{"type":"pong"}"# => return,
                Some((CLOSE, payload)) => panic!("{what}: closed instead: {}", gen::show(&payload)),
                Some(_) => continue,
                None => panic!("{what}: no pong; the socket ended or hung"),
            }
        }
    }
}

/// Parses one unmasked server frame off the front of `buf`.
pub fn parse_server_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "the server masked a frame");
    let opcode = buf[0] & 0xf;
    let (len, header) = match buf[1] & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = buf.get(header..header + len)?.to_vec();
    Some((opcode, payload, header + len))
}
