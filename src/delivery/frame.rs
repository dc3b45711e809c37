//! The text of the frames delivery hands to sockets: a durable event's, built from a
//! template once per event, and the ephemeral ones (`typing`, `presence`).

use serde_json::json;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// `{"type":"` and `","seq":`.
const HEAD_LEN: usize = 17;
/// `,"payload":` and `}`.
const TAIL_LEN: usize = 12;

/// One event's frame text without its seq: `{"type":"<kind>","seq":` and
/// `,"payload":<payload>}`, written once per event, so that each recipient's frame is one
/// allocation of exactly its size and three copies (no formatting machinery: that runs
/// once per recipient). Byte for byte `events::frame(kind, seq, payload)`.
pub struct FrameTemplate {
    head: String,
    tail: String,
}

impl FrameTemplate {
    pub fn new(kind: &str, payload: &str) -> FrameTemplate {
        let mut head = String::with_capacity(HEAD_LEN + kind.len());
        head.push_str(r#"{"type":""#);
        head.push_str(kind);
        head.push_str(r#"","seq":"#);
        let mut tail = String::with_capacity(TAIL_LEN + payload.len());
        tail.push_str(r#","payload":"#);
        tail.push_str(payload);
        tail.push('}');
        FrameTemplate { head, tail }
    }

    /// The frame of this event for the recipient's `seq`.
    pub fn frame(&self, seq: i64) -> Utf8Bytes {
        let mut digits = [0u8; 20];
        let seq = decimal(seq, &mut digits);
        let mut text = String::with_capacity(self.head.len() + seq.len() + self.tail.len());
        text.push_str(&self.head);
        // Byte by byte: cheaper than checking the digits are UTF-8 as a `&str`.
        text.extend(seq.iter().map(|&digit| char::from(digit)));
        text.push_str(&self.tail);
        // Exact capacity: `Bytes` takes the buffer over without allocating again.
        debug_assert_eq!(text.len(), text.capacity());
        Utf8Bytes::from(text)
    }
}

/// `n` in decimal (ASCII), written at the end of `buf` (two digits per step).
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    const PAIRS: &[u8; 200] = b"\
        0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut rest = n.unsigned_abs();
    let mut at = buf.len();
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + rest as u8;
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// `typing`: `user_id` is typing in `chat_id` (ephemeral, not logged).
pub fn typing_frame(chat_id: i64, user_id: i64) -> Utf8Bytes {
    json!({"type": "typing", "payload": {"chat_id": chat_id, "user_id": user_id}})
        .to_string()
        .into()
}

/// `presence`: `user_id` went online or offline (ephemeral, not logged); `last_seen_at` is
/// null while online.
pub fn presence_frame(
    user_id: i64,
    online: bool,
    last_seen_at: Option<&chrono::DateTime<chrono::Utc>>,
) -> Utf8Bytes {
    let last_seen_at = last_seen_at
        .filter(|_| !online)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    json!({
        "type": "presence",
        "payload": {"user_id": user_id, "online": online, "last_seen_at": last_seen_at},
    })
    .to_string()
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events;

    #[test]
    fn frames_are_byte_identical_to_events_frame() {
        let seqs = [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            999_999_999,
            1_000_000_000,
            i64::MAX,
            -1,
            -10,
            i64::MIN,
        ];
        let payloads = [
            r#"{}"#,
            r#"{"id":1,"chat_id":2,"text":"héllo \"x\" ✓ 𝄞","sent_at":"2026-01-01T00:00:00Z"}"#,
            "",
            "null",
        ];
        let kinds = ["new_message", "read", "delete_chat", ""];
        for kind in kinds {
            for payload in payloads {
                let template = FrameTemplate::new(kind, payload);
                assert_eq!(template.head.len(), template.head.capacity());
                assert_eq!(template.tail.len(), template.tail.capacity());
                for seq in seqs {
                    let expected = events::frame(kind, seq, payload);
                    assert_eq!(template.frame(seq).as_str(), expected);
                }
            }
        }
        let mut digits = [0u8; 20];
        let powers = (0..19).flat_map(|p| {
            let x = 10i64.pow(p);
            [x - 1, x, x + 1, -x + 1, -x, -x - 1]
        });
        for n in (-2000..2000)
            .chain(powers)
            .chain([i64::MAX, i64::MAX - 1, i64::MIN, i64::MIN + 1])
        {
            assert_eq!(decimal(n, &mut digits), n.to_string().as_bytes());
        }
    }
}
