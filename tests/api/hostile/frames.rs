//! WebSocket client frames after a good handshake: random text (JSON and not) that must be
//! answered with `error` frames while the socket stays open; and, written byte for byte on a
//! raw socket, oversized frames (1009), binary (1003), fragmentation, control frames, a flood
//! (1008), invalid UTF-8, protocol violations and random bytes — each must end or keep the
//! socket cleanly, never take the server down.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::gen::{self, Gen, BROKEN_VALUES, EDGE_VALUES};
use super::rawws::*;
use super::{Arena, CASE_TIMEOUT};

/// The largest client message the server takes (16 KiB).
const MAX_MESSAGE: usize = 16 * 1024;
/// Client frames per socket per 10 s before 1008.
const FRAME_BUDGET: usize = 100;
/// Sockets open at once: under the per-user socket limit.
const SOCKETS_AT_ONCE: usize = 4;

/// A hand-made frame sequence and how the socket must end (None: either way, the server
/// only has to survive it).
struct FrameCase {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Option<Expected>,
}

#[derive(Clone, Copy, Debug)]
enum Expected {
    /// Closed with this code.
    Code(u16),
    /// Ended, one way or another.
    Ends,
    /// Still serving: a ping after it gets its pong.
    Serves,
}

fn frame_cases() -> Vec<FrameCase> {
    let ping = br#"{"type":"ping"}"#;
    let big = vec![b'a'; MAX_MESSAGE + 1];
    let json_big = format!(
        "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
        "p".repeat(MAX_MESSAGE)
    );
    let case = |name, bytes, expect| FrameCase {
        name,
        bytes,
        expect,
    };
    let flood: Vec<u8> = (0..FRAME_BUDGET + 50)
        .flat_map(|_| whole(TEXT, ping))
        .collect();
    let pings: Vec<u8> = (0..FRAME_BUDGET + 50)
        .flat_map(|_| whole(PING, b""))
        .collect();
    let half_e_acute = "{\"type\":\"ping\",\"x\":\"é\"}".as_bytes().to_vec();
    let split = half_e_acute.iter().position(|b| *b == 0xc3).expect("é") + 1;
    vec![
        case(
            "a text frame over 16 KiB",
            whole(TEXT, &big),
            Some(Expected::Code(1009)),
        ),
        case(
            "a JSON ping over 16 KiB",
            whole(TEXT, json_big.as_bytes()),
            Some(Expected::Code(1009)),
        ),
        case(
            "a header declaring 2^63-1 bytes",
            frame(true, 0, TEXT, b"x", true, Some(i64::MAX as u64)),
            Some(Expected::Code(1009)),
        ),
        case(
            "a header declaring 1 MiB",
            frame(true, 0, TEXT, b"", true, Some(1 << 20)),
            Some(Expected::Code(1009)),
        ),
        case(
            "fragments adding up to over 16 KiB",
            [
                frame(false, 0, TEXT, &big[..9000], true, None),
                frame(true, 0, CONTINUATION, &big[..9000], true, None),
            ]
            .concat(),
            Some(Expected::Code(1009)),
        ),
        case(
            "a binary frame",
            whole(BINARY, b"\x00\x01"),
            Some(Expected::Code(1003)),
        ),
        case(
            "an empty binary frame",
            whole(BINARY, b""),
            Some(Expected::Code(1003)),
        ),
        case(
            "a huge binary frame",
            whole(BINARY, &big),
            Some(Expected::Ends),
        ),
        case(
            "a fragmented ping message",
            [
                frame(false, 0, TEXT, b"{\"type\":", true, None),
                frame(false, 0, CONTINUATION, b"\"pi", true, None),
                frame(true, 0, CONTINUATION, b"ng\"}", true, None),
            ]
            .concat(),
            Some(Expected::Serves),
        ),
        case(
            "a control frame between fragments",
            [
                frame(false, 0, TEXT, b"{\"type\":", true, None),
                whole(PING, b"between"),
                frame(true, 0, CONTINUATION, b"\"ping\"}", true, None),
            ]
            .concat(),
            Some(Expected::Serves),
        ),
        case(
            "a UTF-8 character split across fragments",
            [
                frame(false, 0, TEXT, &half_e_acute[..split], true, None),
                frame(true, 0, CONTINUATION, &half_e_acute[split..], true, None),
            ]
            .concat(),
            Some(Expected::Serves),
        ),
        case(
            "an empty text frame",
            whole(TEXT, b""),
            Some(Expected::Serves),
        ),
        case(
            "a ping with 125 bytes",
            whole(PING, &[b'x'; 125]),
            Some(Expected::Serves),
        ),
        case(
            "an unsolicited pong",
            whole(PONG, b"hi"),
            Some(Expected::Serves),
        ),
        case(
            "deep nesting in a frame",
            whole(
                TEXT,
                format!("{}{}", "[".repeat(8000), "]".repeat(8000)).as_bytes(),
            ),
            Some(Expected::Serves),
        ),
        case(
            "deep nesting in the payload",
            whole(
                TEXT,
                format!(
                    "{{\"type\":\"typing\",\"payload\":{}1{}}}",
                    "[".repeat(7000),
                    "]".repeat(7000)
                )
                .as_bytes(),
            ),
            Some(Expected::Serves),
        ),
        case("a flood of text frames", flood, Some(Expected::Code(1008))),
        case("a flood of ping frames", pings, Some(Expected::Code(1008))),
        case(
            "invalid UTF-8 in a text frame",
            whole(TEXT, b"{\"type\":\"\xff\xfe\"}"),
            Some(Expected::Ends),
        ),
        case(
            "an overlong NUL in a text frame",
            whole(TEXT, b"\xc0\x80"),
            Some(Expected::Ends),
        ),
        case(
            "a UTF-16 surrogate in a text frame",
            whole(TEXT, b"\xed\xa0\x80"),
            Some(Expected::Ends),
        ),
        case(
            "invalid UTF-8 across fragments",
            [
                frame(false, 0, TEXT, b"\xe2\x82", true, None),
                frame(true, 0, CONTINUATION, b"x", true, None),
            ]
            .concat(),
            Some(Expected::Ends),
        ),
        case(
            "a continuation with nothing to continue",
            frame(true, 0, CONTINUATION, ping, true, None),
            Some(Expected::Ends),
        ),
        case(
            "a new message inside a fragmented one",
            [frame(false, 0, TEXT, b"{", true, None), whole(TEXT, ping)].concat(),
            Some(Expected::Ends),
        ),
        case(
            "an unmasked frame",
            frame(true, 0, TEXT, ping, false, None),
            Some(Expected::Ends),
        ),
        case(
            "RSV1 without an extension",
            frame(true, 4, TEXT, ping, true, None),
            Some(Expected::Ends),
        ),
        case(
            "RSV3",
            frame(true, 1, TEXT, ping, true, None),
            Some(Expected::Ends),
        ),
        case(
            "reserved data opcode 3",
            frame(true, 0, 0x3, ping, true, None),
            Some(Expected::Ends),
        ),
        case(
            "reserved control opcode 0xB",
            frame(true, 0, 0xB, b"", true, None),
            Some(Expected::Ends),
        ),
        case(
            "a ping over 125 bytes",
            whole(PING, &[b'x'; 126]),
            Some(Expected::Ends),
        ),
        case(
            "a fragmented ping",
            frame(false, 0, PING, b"x", true, None),
            Some(Expected::Ends),
        ),
        case(
            "a close with a 1-byte payload",
            whole(CLOSE, b"\x03"),
            Some(Expected::Ends),
        ),
        case(
            "a close with code 999",
            whole(CLOSE, &close_payload(999, b"")),
            Some(Expected::Ends),
        ),
        case(
            "a close with code 1005",
            whole(CLOSE, &close_payload(1005, b"")),
            Some(Expected::Ends),
        ),
        case(
            "a close with code 5000",
            whole(CLOSE, &close_payload(5000, b"")),
            Some(Expected::Ends),
        ),
        case(
            "a close with an invalid UTF-8 reason",
            whole(CLOSE, &close_payload(1000, b"\xff")),
            Some(Expected::Ends),
        ),
        case(
            "a normal close",
            whole(CLOSE, &close_payload(1000, b"bye")),
            Some(Expected::Ends),
        ),
        case(
            "frames after a close",
            [whole(CLOSE, &close_payload(1000, b"")), whole(TEXT, ping)].concat(),
            Some(Expected::Ends),
        ),
        case(
            "a 16-bit length for 5 bytes",
            frame(true, 0, TEXT, b"hello", true, None)
                .into_iter()
                .take(1)
                .chain([0xfe, 0x00, 0x05, 1, 2, 3, 4])
                .chain(*b"hello")
                .collect(),
            None,
        ),
        case("half a frame header", vec![0x81], None),
    ]
}

#[tokio::test]
async fn hostile_websocket_frames_close_cleanly_and_never_hurt_the_server() {
    let arena = Arena::new().await;
    stream_sockets(frame_cases(), |case| {
        let arena = &arena;
        async move {
            let mut ws = RawWs::connect(arena).await;
            ws.send(&case.bytes).await;
            let what = format!("{} ({})", case.name, gen::show(&case.bytes));
            match case.expect {
                Some(Expected::Code(code)) => {
                    let end = ws.ended(CASE_TIMEOUT).await;
                    assert_eq!(
                        end,
                        End::Closed(Some(code)),
                        "{what}: frames {:?}",
                        ws.texts
                    );
                }
                Some(Expected::Ends) => {
                    let end = ws.ended(CASE_TIMEOUT).await;
                    assert_ne!(end, End::Open, "{what}: the socket did not end");
                }
                Some(Expected::Serves) => ws.still_serves(&what).await,
                None => {
                    let _ = ws.ended(Duration::from_millis(500)).await;
                }
            }
        }
    })
    .await;
    arena.still_works("the hand-made frames").await;

    // Random frames and random bytes after the handshake.
    let mut g = Gen::new("raw frames");
    let mut cases = Vec::new();
    for _ in 0..gen::cases(100) / 2 {
        let bytes = if g.chance(0.3) {
            g.bytes(300)
        } else {
            (0..1 + g.below(4))
                .flat_map(|_| {
                    let payload = g.bytes(200);
                    let declared = g.chance(0.1).then(|| g.rng.gen_range(0..1u64 << 20));
                    frame(
                        g.chance(0.8),
                        if g.chance(0.1) { g.rng_byte() } else { 0 },
                        if g.chance(0.5) { TEXT } else { g.rng_byte() },
                        &payload,
                        g.chance(0.9),
                        declared,
                    )
                })
                .collect()
        };
        cases.push(bytes);
    }
    stream_sockets(cases, |bytes| {
        let arena = &arena;
        async move {
            let mut ws = RawWs::connect(arena).await;
            ws.send(&bytes).await;
            // Whatever comes back must be well-formed; an incomplete frame may keep it open.
            let _ = ws.ended(Duration::from_millis(500)).await;
        }
    })
    .await;
    arena.still_works("the random frames").await;
}

/// A random client text frame: JSON of any shape, frames of the protocol with random
/// payloads, or not JSON at all; cut to the largest frame the server takes (over it is 1009,
/// tested above), which may cut JSON short: one more kind of garbage.
fn random_text(g: &mut Gen, chat: i64) -> String {
    let mut text = any_text(g, chat);
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn any_text(g: &mut Gen, chat: i64) -> String {
    match g.below(8) {
        0 | 1 => serde_json::to_string(&g.value(3)).expect("serialises"),
        2 | 3 => {
            let kind = g.pick(&[
                "ping",
                "typing",
                "typing",
                "pong",
                "ready",
                "error",
                "",
                "PING",
                "new_message",
            ]);
            let payload = match g.below(4) {
                0 => g.value(2),
                1 => json!({ "chat_id": g.int() }),
                2 => json!({ "chat_id": chat }),
                _ => Value::Null,
            };
            json!({ "type": kind, "payload": payload }).to_string()
        }
        4 => {
            let raw = String::from_utf8_lossy(g.pick(EDGE_VALUES).as_bytes()).to_string();
            format!("{{\"type\":\"typing\",\"payload\":{{\"chat_id\":{raw}}}}}")
        }
        5 => String::from_utf8_lossy(g.pick(BROKEN_VALUES)).to_string(),
        6 => g.string(),
        _ => format!(
            "{{\"type\":\"ping\",\"type\":\"typing\",\"payload\":{{\"chat_id\":{chat}}},\"x\":{}}}",
            g.int()
        ),
    }
}

#[tokio::test]
async fn random_text_frames_get_error_frames_and_the_socket_stays_open() {
    let arena = Arena::new().await;
    let mut g = Gen::new("text frames");
    // Batches of ten random frames and a ping, within the frame budget of a socket.
    let per_socket = 4;
    let batches: Vec<Vec<String>> = (0..gen::cases(100).div_ceil(10))
        .map(|_| (0..10).map(|_| random_text(&mut g, arena.chat)).collect())
        .collect();
    let sockets: Vec<Vec<Vec<String>>> = batches.chunks(per_socket).map(|c| c.to_vec()).collect();
    let url = format!(
        "ws://{}/ws/notif?token={}",
        arena.app.addr, arena.alice.token
    );
    stream_sockets(sockets, |socket_batches| {
        let url = url.clone();
        async move {
            let (mut ws, _) =
                tokio::time::timeout(CASE_TIMEOUT, tokio_tungstenite::connect_async(url))
                    .await
                    .expect("connect in time")
                    .expect("handshake");
            let ready = ws.next().await;
            assert!(
                matches!(ready, Some(Ok(Message::Text(_)))),
                "ready: {ready:?}"
            );
            for batch in socket_batches {
                for text in &batch {
                    ws.send(Message::Text(text.as_str().into()))
                        .await
                        .expect("send");
                }
                ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
                    .await
                    .expect("send");
                let what = format!("the frames {batch:?}");
                loop {
                    let frame = tokio::time::timeout(CASE_TIMEOUT, ws.next())
                        .await
                        .unwrap_or_else(|_| panic!("{what}: no pong within {CASE_TIMEOUT:?}"));
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        other => panic!("{what}: the socket ended or sent {other:?}"),
                    };
                    let value: Value = serde_json::from_str(&text).expect("server frames are JSON");
                    match value["type"].as_str() {
                        Some("pong") => break,
                        Some("error") => assert!(
                            value["payload"]["code"].is_string()
                                && value["payload"]["detail"].is_string(),
                            "{what}: {text}"
                        ),
                        Some(_) => {}
                        None => panic!("{what}: a frame without a type: {text}"),
                    }
                }
            }
            let _ = ws.close(None).await;
        }
    })
    .await;
    arena.still_works("the random text frames").await;
}

/// Runs socket sessions `SOCKETS_AT_ONCE` at a time.
async fn stream_sockets<T, F, Fut>(items: Vec<T>, run: F)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures_util::stream::iter(items)
        .map(run)
        .buffer_unordered(SOCKETS_AT_ONCE)
        .collect::<Vec<()>>()
        .await;
}
