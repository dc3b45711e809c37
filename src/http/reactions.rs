//! `/chats/{chat_id}/messages/{message_id}/reactions/{emoji}`: a member adds (PUT) or takes
//! back (DELETE) an emoji on a message; members get `reaction` exactly when the set changed.

use hyper::Response;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::chats::admit;
use crate::http::{no_content, Ctx};
use crate::store::chats::lock_chat;
use crate::store::events::{EventType, Outbox};
use crate::store::reactions::{self as store, Reacted};

/// Longest emoji, in bytes of UTF-8: a flag or a family with skin tones is 25-28 bytes; more
/// is text, not an emoji, and every page repeats it per message.
pub const MAX_EMOJI_BYTES: usize = 32;

/// The emoji of a path segment as sent: strictly percent-decoded (a `%` not followed by two
/// hex digits is refused, not passed through), UTF-8, 1..=`MAX_EMOJI_BYTES` bytes, without
/// whitespace or control characters; else 422 naming `emoji`.
pub fn emoji_from_path(raw: &str) -> ApiResult<String> {
    let bad = |why: &str| ApiError::field("emoji", why.to_string());
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(b) = input.next() {
        if b != b'%' {
            bytes.push(b);
            continue;
        }
        let hex = |d: Option<u8>| d.and_then(|d| (d as char).to_digit(16));
        match (hex(input.next()), hex(input.next())) {
            (Some(hi), Some(lo)) => bytes.push((hi * 16 + lo) as u8),
            _ => return Err(bad("is not valid percent-encoding")),
        }
    }
    let emoji = String::from_utf8(bytes).map_err(|_| bad("is not valid UTF-8"))?;
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return Err(bad("must be 1..32 bytes of UTF-8"));
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain whitespace or control characters"));
    }
    Ok(emoji)
}

/// The `reaction` payload.
fn payload(
    chat_id: i64,
    message_id: i64,
    user_id: i64,
    emoji: &str,
    added: bool,
    count: i64,
) -> serde_json::Value {
    json!({
        "chat_id": chat_id,
        "message_id": message_id,
        "user_id": user_id,
        "emoji": emoji,
        "added": added,
        "count": count,
    })
}

/// `PUT .../reactions/{emoji}`: a member of an active chat adds the emoji (again: nothing
/// changes, nothing is sent). Counts as a message against the caller's rate limit.
pub async fn add_reaction(
    ctx: Ctx,
    chat_id: i64,
    message_id: i64,
    emoji: String,
) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    ctx.state.limits.messages.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |access| {
        Ok(access.may_react()?)
    })
    .await?;
    let tx = admitted.client.transaction().await?;
    // The chat's lock serialises the reactions of its messages: each count an event reports
    // is read under it, so concurrent adds report 1, 2, 3... with no count twice.
    let locked = lock_chat(&tx, &admitted.access).await?;
    locked.access.may_react()?;
    let mut outbox = Outbox::default();
    match store::add(&tx, chat_id, message_id, caller.user_id, &emoji).await? {
        Reacted::Added(count) => {
            let payload = payload(chat_id, message_id, caller.user_id, &emoji, true, count);
            outbox.add(EventType::Reaction, &locked.members, &payload)?;
        }
        Reacted::Unchanged => {}
        Reacted::TooMany => return Err(ApiError::TooManyReactions),
    }
    ctx.state.delivery.commit(tx, outbox).await?;
    no_content()
}

/// `DELETE .../reactions/{emoji}`: a member takes their emoji back (one they do not have:
/// nothing changes, nothing is sent), in an inactive chat too.
pub async fn remove_reaction(
    ctx: Ctx,
    chat_id: i64,
    message_id: i64,
    emoji: String,
) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    ctx.state.limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |_| Ok(())).await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    let mut outbox = Outbox::default();
    if let Some(count) = store::remove(&tx, chat_id, message_id, caller.user_id, &emoji).await? {
        let payload = payload(chat_id, message_id, caller.user_id, &emoji, false, count);
        outbox.add(EventType::Reaction, &locked.members, &payload)?;
    }
    ctx.state.delivery.commit(tx, outbox).await?;
    no_content()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> String {
        match emoji_from_path(raw) {
            Err(ApiError::Validation(fields)) => {
                assert_eq!(fields[0].field, "emoji", "{raw}");
                fields[0].message.clone()
            }
            other => panic!("{raw}: expected 422, got {other:?}"),
        }
    }

    #[test]
    fn emoji_are_strictly_percent_decoded_and_bounded() {
        assert_eq!(emoji_from_path("%F0%9F%91%8D").unwrap(), "👍");
        assert_eq!(emoji_from_path("%f0%9f%91%8d").unwrap(), "👍");
        assert_eq!(emoji_from_path("ok").unwrap(), "ok");
        assert_eq!(
            emoji_from_path("a+b").unwrap(),
            "a+b",
            "+ is not a space in a path"
        );
        let eight = "%F0%9F%98%80".repeat(8);
        assert_eq!(emoji_from_path(&eight).unwrap().len(), 32);
        assert!(refused(&format!("{eight}a")).contains("32"));
        assert!(refused("").contains("32"));
        for bad in ["%ZZ", "%", "%4", "a%2", "%%41"] {
            assert!(refused(bad).contains("percent"), "{bad}");
        }
        for bad in ["%C3", "%FF", "%ED%A0%80"] {
            assert!(refused(bad).contains("UTF-8"), "{bad}");
        }
        for bad in [
            "%20",
            "a%0Ab",
            "%00",
            "%09",
            "%E2%80%A8",
            "%C2%85",
            "%7F",
            "%E3%80%80",
        ] {
            assert!(refused(bad).contains("whitespace"), "{bad}");
        }
    }
}
