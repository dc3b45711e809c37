//! The WebSocket frames: what the server sends besides logged events (`ready`, `pong`,
//! `typing`, `error`, `resync_required`), what a client may send, and the close codes.

use serde::Deserialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Close codes of the contract.
pub const CLOSE_SHUTDOWN: CloseCode = CloseCode::Away; // 1001
pub const CLOSE_PROTOCOL: CloseCode = CloseCode::Protocol; // 1002
pub const CLOSE_BINARY: CloseCode = CloseCode::Unsupported; // 1003
pub const CLOSE_BAD_DATA: CloseCode = CloseCode::Invalid; // 1007: text that is not UTF-8
pub const CLOSE_POLICY: CloseCode = CloseCode::Policy; // 1008: flooding
pub const CLOSE_TOO_BIG: CloseCode = CloseCode::Size; // 1009
pub const CLOSE_SLOW: CloseCode = CloseCode::Again; // 1013: queue overflow, resume with since
pub const CLOSE_SERVER_ERROR: CloseCode = CloseCode::Error; // 1011: the log could not be read
pub const CLOSE_TOKEN_EXPIRED: CloseCode = CloseCode::Library(4001);

/// `ready`: the first frame of every socket.
pub fn ready(user_id: i64, seq: i64, heartbeat_ms: u128) -> Utf8Bytes {
    json!({"type": "ready", "payload": {"user_id": user_id, "seq": seq, "heartbeat_interval_ms": heartbeat_ms}})
        .to_string()
        .into()
}

pub fn pong() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"type":"pong"}"#)
}

/// `resync_required`: events after the client's cursor are gone; the stream goes on after
/// `seq`, which the client takes as its cursor once it has refetched its state.
pub fn resync_required(seq: i64) -> Utf8Bytes {
    json!({"type": "resync_required", "payload": {"seq": seq}})
        .to_string()
        .into()
}

pub fn error(code: &str, detail: &str) -> Utf8Bytes {
    json!({"type": "error", "payload": {"code": code, "detail": detail}})
        .to_string()
        .into()
}

/// What a client may send.
#[derive(Debug, PartialEq)]
pub enum ClientFrame {
    Ping,
    Typing { chat_id: i64 },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

/// Parses a client text frame, or gives the `error` frame to answer with.
pub fn parse(text: &str) -> Result<ClientFrame, Utf8Bytes> {
    let raw: Raw = serde_json::from_str(text).map_err(|_| {
        error(
            "invalid_frame",
            "frames are JSON objects with a string `type`",
        )
    })?;
    match raw.kind.as_str() {
        "ping" => Ok(ClientFrame::Ping),
        "typing" => raw
            .payload
            .as_ref()
            .and_then(|p| p.get("chat_id"))
            .and_then(|id| id.as_i64())
            .filter(|id| *id > 0)
            .map(|chat_id| ClientFrame::Typing { chat_id })
            .ok_or_else(|| {
                error(
                    "validation_error",
                    "typing needs payload.chat_id, a positive integer",
                )
            }),
        _ => Err(error(
            "unknown_type",
            "client frames are `ping` and `typing`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_or_explain() {
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping));
        assert_eq!(
            parse(r#"{"type":"typing","payload":{"chat_id":7}}"#),
            Ok(ClientFrame::Typing { chat_id: 7 })
        );
        for bad in [
            "",
            "null",
            "[]",
            r#"{"type":1}"#,
            r#"{"type":"typing"}"#,
            r#"{"type":"typing","payload":{"chat_id":"7"}}"#,
            r#"{"type":"nope"}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.as_str().contains(r#""type":"error""#),
                "{bad}: {}",
                err.as_str()
            );
        }
    }
}
