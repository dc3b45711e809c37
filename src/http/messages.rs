//! `/chats/{chat_id}/messages` and `/chats/{chat_id}/read`: send (idempotent by
//! `client_id`), page through history, edit, delete, and move the read cursor.

use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use crate::delivery::{NewMessage, SendError, Sent};
use crate::error::{ApiError, ApiResult, Body};
use crate::http::chats::admit;
use crate::http::users::{DEFAULT_PAGE, MAX_PAGE};
use crate::http::{created, no_content, ok, Ctx};
use crate::model::Message;
use crate::store::chats::lock_chat;
use crate::store::events::{EventType, Outbox};
use crate::store::members::is_member;
use crate::store::messages::{self as store, Page};

/// Message text: 1..=4096 characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// `client_id`: 1..=64 characters (a UUID is 36).
pub const MAX_CLIENT_ID_CHARS: usize = 64;
/// Most ids in `mentions`, as sent: more than a screen of names is a broadcast, not a mention,
/// and each costs a membership check and an index row.
pub const MAX_MENTIONS: usize = 50;

/// `mentions` as stored: at most `MAX_MENTIONS` as sent (422 before the database is asked),
/// then ascending without duplicates. Membership is checked under the chat lock.
fn clean_mentions(mut mentions: Vec<i64>) -> ApiResult<Vec<i64>> {
    if mentions.len() > MAX_MENTIONS {
        return Err(ApiError::field("mentions", "must hold at most 50 user ids"));
    }
    mentions.sort_unstable();
    mentions.dedup();
    Ok(mentions)
}

/// The 422 for mentioned ids that are not members of the chat, naming them.
fn not_members(ids: &[i64]) -> ApiError {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    ApiError::field(
        "mentions",
        format!("not members of this chat: {}", ids.join(", ")),
    )
}

/// An optional integer field (`null` = absent) that takes JSON numbers like `42.0`, as
/// `json_integer` does.
fn json_integer_opt<'de, D>(de: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Integer(#[serde(deserialize_with = "crate::http::json_integer")] i64);
    Ok(Option::<Integer>::deserialize(de)?.map(|Integer(i)| i))
}

fn check_text(text: &str) -> ApiResult<()> {
    if text.trim().is_empty() {
        return Err(ApiError::field("text", "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::field("text", "must be at most 4096 characters"));
    }
    // PostgreSQL's text cannot hold U+0000: without this check it would be a 500.
    if text.contains('\0') {
        return Err(ApiError::field("text", "must not contain NUL characters"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    text: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "json_integer_opt")]
    reply_to: Option<i64>,
    #[serde(default, deserialize_with = "crate::http::json_integers")]
    mentions: Vec<i64>,
}

/// `POST /chats/{chat_id}/messages`: 201 with the new message, or 200 with the original
/// when this sender already sent this `client_id` (and then no second event).
pub async fn send_message(ctx: Ctx, chat_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let body: SendBody = ctx.json()?;
    ctx.state.limits.messages.check(&caller.user_id)?;
    check_text(&body.text)?;
    if let Some(id) = &body.client_id {
        let n = id.chars().count();
        if n == 0 || n > MAX_CLIENT_ID_CHARS || id.chars().any(char::is_control) {
            return Err(ApiError::field(
                "client_id",
                "must be 1..64 printable characters",
            ));
        }
    }
    let mentions = clean_mentions(body.mentions)?;

    // Group commit: the send joins the next batch (src/delivery/writers.rs,
    // rtchat_send_messages in schema.sql), which also hands its event to the sockets.
    let sent = ctx
        .state
        .delivery
        .send(NewMessage {
            chat_id,
            sender_id: caller.user_id,
            text: body.text.clone(),
            client_id: body.client_id.clone(),
            reply_to: body.reply_to,
            mentions: mentions.clone(),
        })
        .await
        .map_err(|e| match e {
            SendError::Store(e) => ApiError::from(e),
            SendError::ShuttingDown => ApiError::ShuttingDown,
        })?;
    match sent {
        Sent::NotFound => Err(ApiError::NotFound("chat")),
        Sent::Inactive => Err(ApiError::ChatInactive),
        Sent::BadReplyTo => Err(ApiError::field("reply_to", "is not a message of this chat")),
        Sent::BadMentions(ids) => Err(not_members(&ids)),
        Sent::Repeat(id) => {
            // The original, as it is now (it may have been edited since).
            let client = ctx.state.db().await?;
            ok(&store::get(&client, id).await?)
        }
        Sent::Created { id, created_at } => created(&Message {
            id,
            chat_id,
            sender_id: caller.user_id,
            text: body.text,
            created_at,
            edited_at: None,
            client_id: body.client_id,
            reply_to: body.reply_to,
            mentions,
            reactions: Vec::new(),
            my_reactions: None,
        }),
    }
}

/// `GET /chats/{chat_id}/messages?before=&after=&limit=`: ascending by id; no cursor is the
/// latest page; `has_more` says whether more lie beyond the page in the paging direction.
pub async fn list_messages(ctx: Ctx, chat_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let limit = ctx.query_int("limit", 1, MAX_PAGE)?.unwrap_or(DEFAULT_PAGE);
    let before = ctx.query_int("before", 0, i64::MAX)?;
    let after = ctx.query_int("after", 0, i64::MAX)?;
    if before.is_some() && after.is_some() {
        return Err(ApiError::field(
            "after",
            "give either before or after, not both",
        ));
    }
    let client = ctx.state.db().await?;
    if !is_member(&client, chat_id, caller.user_id).await? {
        return Err(ApiError::NotFound("chat"));
    }
    let page = match (before, after) {
        (_, Some(after)) => Page::After(after),
        (before, None) => Page::Before(before.unwrap_or(i64::MAX)),
    };
    let (messages, has_more) = store::page(&client, chat_id, caller.user_id, page, limit).await?;
    ok(&json!({ "messages": messages, "has_more": has_more }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    #[serde(default, deserialize_with = "some_string")]
    text: Option<String>,
    #[serde(default, deserialize_with = "some_integers")]
    mentions: Option<Vec<i64>>,
}

/// `text` given (`null` is a wrong type, not "absent").
fn some_string<'de, D>(de: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    String::deserialize(de).map(Some)
}

/// `mentions` given (an array of integers; `null` is a wrong type, not "absent").
fn some_integers<'de, D>(de: D) -> Result<Option<Vec<i64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    crate::http::json_integers(de).map(Some)
}

/// `PATCH /chats/{chat_id}/messages/{message_id}`: the sender edits the text, the mentions or
/// both (an absent field is unchanged); `update_message`.
pub async fn edit_message(ctx: Ctx, chat_id: i64, message_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let body: EditBody = ctx.json()?;
    ctx.state.limits.messages.check(&caller.user_id)?;
    if body.text.is_none() && body.mentions.is_none() {
        return Err(ApiError::field("body", "give text, mentions or both"));
    }
    if let Some(text) = &body.text {
        check_text(text)?;
    }
    let mentions = body.mentions.map(clean_mentions).transpose()?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |_| Ok(())).await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    let sender = store::sender(&tx, chat_id, message_id).await?;
    locked.access.may_edit(sender)?;
    if let Some(mentions) = &mentions {
        // Members as of the lock, which every membership change takes too.
        let strangers: Vec<i64> = mentions
            .iter()
            .copied()
            .filter(|id| locked.members.binary_search(id).is_err())
            .collect();
        if !strangers.is_empty() {
            return Err(not_members(&strangers));
        }
    }
    let message = store::edit(
        &tx,
        chat_id,
        message_id,
        body.text.as_deref(),
        mentions.as_deref(),
    )
    .await?;
    let mut outbox = Outbox::default();
    outbox.add(EventType::UpdateMessage, &locked.members, &message)?;
    ctx.state.delivery.commit(tx, outbox).await?;
    ok(&message)
}

/// `DELETE /chats/{chat_id}/messages/{message_id}`: the sender or the chat's creator;
/// `delete_message {id, chat_id}`.
pub async fn delete_message(ctx: Ctx, chat_id: i64, message_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    ctx.state.limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |_| Ok(())).await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    let sender = store::sender(&tx, chat_id, message_id).await?;
    locked.access.may_delete_message(sender)?;
    store::delete(&tx, chat_id, message_id).await?;
    let mut outbox = Outbox::default();
    outbox.add(
        EventType::DeleteMessage,
        &locked.members,
        &json!({ "id": message_id, "chat_id": chat_id }),
    )?;
    ctx.state.delivery.commit(tx, outbox).await?;
    no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    #[serde(deserialize_with = "crate::http::json_integer")]
    message_id: i64,
}

/// Chats up to this many members send `read` to every member; larger ones only to the
/// reader's own sockets (their other devices sync), and others ask `GET /chats/{id}/reads`.
/// Every read is an event per recipient: with everyone reading, a chat of N members writes
/// N² log rows, which at 1,000 members is a million rows for one round of reading; at 100 it
/// is 10,000, and "seen by" in a chat that small is worth it (the contract's 100).
pub const MAX_READ_FANOUT_MEMBERS: usize = 100;

/// `POST /chats/{chat_id}/read`: moves the caller's read cursor forward (never back); when it
/// moved, `read` goes to every member, or only to the reader past `MAX_READ_FANOUT_MEMBERS`.
/// Rate limited like sends (the message limiter): a client marks read about as often as
/// messages arrive, and each read may be an event per member.
pub async fn mark_read(ctx: Ctx, chat_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let body: ReadBody = ctx.json()?;
    ctx.state.limits.messages.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |_| Ok(())).await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    let moved = store::move_read_cursor(&tx, chat_id, caller.user_id, body.message_id).await?;
    let mut outbox = Outbox::default();
    if moved {
        let payload =
            json!({ "chat_id": chat_id, "user_id": caller.user_id, "message_id": body.message_id });
        let recipients = if locked.members.len() > MAX_READ_FANOUT_MEMBERS {
            std::slice::from_ref(&caller.user_id)
        } else {
            locked.members.as_slice()
        };
        outbox.add(EventType::Read, recipients, &payload)?;
    }
    ctx.state.delivery.commit(tx, outbox).await?;
    no_content()
}
