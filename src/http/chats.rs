//! `/chats` and `/chats/{chat_id}`: create (private chats de-duplicated), list by recent
//! activity, read, update and delete chats. `access` admits a write to a chat.

mod access;

use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body, FieldError};
use crate::http::users::{DEFAULT_PAGE, MAX_PAGE};
use crate::http::{created, double_option, no_content, ok, Ctx};
use crate::store::chats::{self as store, Created, NewChat, MAX_CREATE_ATTEMPTS};
use crate::store::events::{EventType, Outbox};
use crate::store::members::check_users_exist;

pub use access::{admit, chat_members};

/// Longest chat title, in characters.
pub const MAX_TITLE_CHARS: usize = 128;
/// Most members of a group, creator included.
pub const MAX_GROUP_MEMBERS: usize = 1000;

/// A title, trimmed; blank means none. 422 when too long or with control characters, judged
/// on the title as sent so that `openapi.yaml` states the rule exactly.
fn clean_title(title: Option<String>) -> ApiResult<Option<String>> {
    let Some(title) = title else { return Ok(None) };
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::field("title", "must be at most 128 characters"));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::field(
            "title",
            "must not contain control characters",
        ));
    }
    let title = title.trim();
    Ok((!title.is_empty()).then(|| title.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateChatBody {
    #[serde(rename = "type")]
    kind: ChatKind,
    #[serde(default)]
    title: Option<String>,
    #[serde(deserialize_with = "crate::http::json_integers")]
    participant_ids: Vec<i64>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum ChatKind {
    Private,
    Group,
}

/// `POST /chats`: 201 with the new chat, or 200 with the existing private chat of the pair.
pub async fn create_chat(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let body: CreateChatBody = ctx.json()?;
    let title = clean_title(body.title)?;
    let mut others: Vec<i64> = body
        .participant_ids
        .into_iter()
        .filter(|id| *id != caller.user_id)
        .collect();
    others.sort_unstable();
    others.dedup();
    match body.kind {
        ChatKind::Private if others.len() != 1 => {
            return Err(ApiError::field(
                "participant_ids",
                "a private chat needs exactly one other user",
            ))
        }
        ChatKind::Group if others.len() > MAX_GROUP_MEMBERS - 1 => {
            return Err(ApiError::field(
                "participant_ids",
                "a group takes at most 999 other users",
            ))
        }
        _ => {}
    }
    if others.iter().any(|id| *id <= 0) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "participant_ids",
            "ids must be positive",
        )]));
    }

    ctx.state.limits.writes.check(&caller.user_id)?;
    let mut client = ctx.state.db().await?;
    check_users_exist(&client, &others, "participant_ids").await?;
    let mut members = others;
    members.push(caller.user_id);
    members.sort_unstable();
    let new = NewChat {
        private: body.kind == ChatKind::Private,
        title: title.as_deref(),
        creator_id: caller.user_id,
        members: &members,
    };
    // A private pair's chat may be deleted by its creator between our finding it and reading
    // it; then the pair has no chat any more and the next attempt creates one.
    for _ in 0..MAX_CREATE_ATTEMPTS {
        let tx = client.transaction().await?;
        match store::create(&tx, &new).await? {
            Created::New { chat, view } => {
                let mut outbox = Outbox::default();
                outbox.add(EventType::CreateChat, &members, &chat)?;
                ctx.state.delivery.commit(tx, outbox).await?;
                return created(&view);
            }
            Created::Existing(view) => return ok(&view),
            Created::Vanished => continue,
            // A genuine token whose user is gone (a restored database keeps older tokens
            // valid until they expire): the answer `GET /auth/me` gives it, not a 500.
            Created::CreatorGone => {
                return Err(ApiError::Unauthorized("the token's user no longer exists"))
            }
        }
    }
    Err(ApiError::ServerBusy(crate::error::CHAT_BUSY))
}

/// `GET /chats?limit=&before=`: the caller's chats, most recent activity first.
pub async fn list_chats(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let limit = ctx.query_int("limit", 1, MAX_PAGE)?.unwrap_or(DEFAULT_PAGE);
    let before = ctx.query_int("before", 1, i64::MAX)?;
    let client = ctx.state.db().await?;
    let (chats, has_more) = store::list_views(&client, caller.user_id, before, limit).await?;
    ok(&json!({ "chats": chats, "has_more": has_more }))
}

/// `GET /chats/{chat_id}`
pub async fn get_chat(ctx: Ctx, chat_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let client = ctx.state.db().await?;
    ok(&store::load_view(&client, chat_id, caller.user_id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateChatBody {
    #[serde(default, deserialize_with = "double_option")]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    is_active: Option<Option<bool>>,
}

/// `PATCH /chats/{chat_id}`: the creator changes the title or the active flag; members get
/// `update_chat` unless nothing changed.
pub async fn update_chat(ctx: Ctx, chat_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let body: UpdateChatBody = ctx.json()?;
    let is_active = match body.is_active {
        Some(None) => {
            return Err(ApiError::field(
                "is_active",
                "must be true or false, not null",
            ))
        }
        Some(Some(v)) => Some(v),
        None => None,
    };
    let title = match body.title {
        Some(t) => Some(clean_title(t)?),
        None => None,
    };

    let limits = &ctx.state.limits;
    limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |access| {
        access.may_change()?;
        Ok(limits.chat_changes.check(&chat_id)?)
    })
    .await?;
    let tx = admitted.client.transaction().await?;
    let locked = store::lock_chat(&tx, &admitted.access).await?;
    // Checked again under the lock: the creator may have left since (see `remove_member`).
    locked.access.may_change()?;
    let title = title.as_ref().map(Option::as_deref);
    let mut outbox = Outbox::default();
    if store::update(&tx, chat_id, title, is_active).await? {
        let chat = store::load_chat(&tx, chat_id).await?;
        outbox.add(EventType::UpdateChat, &locked.members, &chat)?;
    }
    ctx.state.delivery.commit(tx, outbox).await?;
    ok(&store::load_view(&admitted.client, chat_id, caller.user_id).await?)
}

/// `DELETE /chats/{chat_id}`: the creator deletes the chat and its messages; former members
/// get `delete_chat`.
pub async fn delete_chat(ctx: Ctx, chat_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    ctx.state.limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |access| {
        Ok(access.may_delete()?)
    })
    .await?;
    let tx = admitted.client.transaction().await?;
    let locked = store::lock_chat(&tx, &admitted.access).await?;
    locked.access.may_delete()?;
    let mut outbox = Outbox::default();
    outbox.add(
        EventType::DeleteChat,
        &locked.members,
        &json!({ "id": chat_id }),
    )?;
    store::delete(&tx, chat_id).await?;
    ctx.state.delivery.commit(tx, outbox).await?;
    no_content()
}
