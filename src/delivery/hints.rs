//! The NOTIFY payloads (hints) between processes: what one says, and reading one. Event
//! hints, the common kind, are read by hand; anything else goes through serde.

use serde::{Deserialize, Serialize};

/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; batches are split below that.
const MAX_PAYLOAD: usize = 7000;

/// The most one `[user,seq],` pair of an event hint can take, and how many go in one.
const MAX_PAIR_LEN: usize = 44;
pub(super) const PAIRS_PER_HINT: usize = (MAX_PAYLOAD - 100) / MAX_PAIR_LEN;

/// The most one `user,` of a presence hint can take, and how many go in one.
const MAX_USER_LEN: usize = 21;
pub(super) const USERS_PER_HINT: usize = (MAX_PAYLOAD - 100) / MAX_USER_LEN;

/// One NOTIFY payload.
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
pub(super) struct Hint {
    /// The sending process, which ignores its own hints (its hub delivered already).
    pub(super) o: u64,
    /// `(user_id, seq)`: these users have events up to these seqs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) e: Vec<(i64, i64)>,
    /// Revoked login sessions: their tokens stop working, their sockets close.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) r: Vec<i64>,
    /// `(chat_id, user_id)`: this user is typing in this chat. By reference: the receiver
    /// reads the chat's members itself (a list of a large group's members would not fit in
    /// a NOTIFY).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) y: Vec<(i64, i64)>,
    /// Users whose sockets opened or closed, or whose crashed process was reaped: their
    /// presence over all processes may have changed (each process reads it itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) p: Vec<i64>,
}

/// The sending process of a hint, read from its start without parsing the rest: `Hint`
/// serialises `o` first (`{"o":123,...`). `None` if the payload does not start that way
/// (then only the full parse can tell).
pub(super) fn origin(payload: &str) -> Option<u64> {
    let rest = payload.strip_prefix(r#"{"o":"#)?;
    let end = rest.find([',', '}'])?;
    rest[..end].parse().ok()
}

/// A hint from its text. Event hints, the common kind (one pair per recipient), are read
/// by hand in the exact form `take_payloads` writes (`{"o":N,"e":[[user,seq],...]}`);
/// anything else goes through serde.
pub(super) fn parse_hint(payload: &str) -> Option<Hint> {
    parse_events_hint(payload).or_else(|| serde_json::from_str(payload).ok())
}

pub(super) fn parse_events_hint(payload: &str) -> Option<Hint> {
    let rest = payload.strip_prefix(r#"{"o":"#)?;
    let (origin, rest) = rest.split_once(',')?;
    let (o, end) = json_uint(origin.as_bytes(), 0)?;
    if end != origin.len() {
        return None;
    }
    let body = rest
        .strip_prefix(r#""e":["#)?
        .strip_suffix("]}")?
        .as_bytes();
    let mut e = Vec::with_capacity(body.len() / 8);
    let mut at = 0;
    loop {
        // `[user,seq]`, then `,` or the end.
        if body.get(at) != Some(&b'[') {
            return None;
        }
        let (user, next) = json_int(body, at + 1)?;
        if body.get(next) != Some(&b',') {
            return None;
        }
        let (seq, next) = json_int(body, next + 1)?;
        if body.get(next) != Some(&b']') {
            return None;
        }
        e.push((user, seq));
        at = next + 1;
        match body.get(at) {
            None => break,
            Some(b',') => at += 1,
            Some(_) => return None,
        }
    }
    Some(Hint {
        o,
        e,
        ..Hint::default()
    })
}

/// The JSON unsigned integer at `at` as serde_json writes a `u64` (digits, no leading
/// zeros) and where it ends.
fn json_uint(text: &[u8], start: usize) -> Option<(u64, usize)> {
    let mut at = start;
    let mut value: u64 = 0;
    while let Some(&digit) = text.get(at).filter(|b| b.is_ascii_digit()) {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
        at += 1;
    }
    let len = at - start;
    if len == 0 || (len > 1 && text[start] == b'0') {
        return None;
    }
    Some((value, at))
}

/// The JSON integer at `at` as serde_json writes an `i64` (no sign but `-`, no leading
/// zeros) and where it ends.
fn json_int(text: &[u8], at: usize) -> Option<(i64, usize)> {
    let negative = text.get(at) == Some(&b'-');
    let (magnitude, end) = json_uint(text, at + usize::from(negative))?;
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude)?
    } else {
        i64::try_from(magnitude).ok()?
    };
    Some((value, end))
}
