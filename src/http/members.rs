//! `/chats/{chat_id}/members`: the creator adds users to a group; a member leaves or the
//! creator removes them. Membership changes are events, so a replay reproduces access.

use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body};
use crate::events::{EventType, Outbox};
use crate::http::chats::{check_users_exist, load_chat, load_view, lock_chat, MAX_GROUP_MEMBERS};
use crate::http::{no_content, ok, Ctx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMembersBody {
    #[serde(deserialize_with = "crate::http::json_integers")]
    user_ids: Vec<i64>,
}

/// `POST /chats/{chat_id}/members`: new members get `create_chat`, existing ones `update_chat`.
pub async fn add_members(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let chat_id = ctx.path_id("chat_id")?;
    let body: AddMembersBody = ctx.json()?;
    let mut ids = body.user_ids;
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(ApiError::field("user_ids", "must name at least one user"));
    }
    if ids.len() > MAX_GROUP_MEMBERS {
        return Err(ApiError::field(
            "user_ids",
            "a group takes at most 1000 members",
        ));
    }
    if ids.iter().any(|id| *id <= 0) {
        return Err(ApiError::field("user_ids", "ids must be positive"));
    }

    let mut client = ctx.state.db().await?;
    let tx = client.transaction().await?;
    let locked = lock_chat(&tx, chat_id, caller.user_id).await?;
    if locked.kind != "group" {
        return Err(ApiError::Forbidden(
            "members can only be added to group chats",
        ));
    }
    if locked.creator_id != caller.user_id {
        return Err(ApiError::Forbidden(
            "only the chat's creator may add members",
        ));
    }
    let new: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !locked.members.contains(id))
        .collect();
    if locked.members.len() + new.len() > MAX_GROUP_MEMBERS {
        return Err(ApiError::field(
            "user_ids",
            "a group takes at most 1000 members",
        ));
    }
    check_users_exist(&tx, &new, "user_ids").await?;
    let mut outbox = Outbox::default();
    if !new.is_empty() {
        let statement = tx
            .prepare_cached(
                "INSERT INTO chat_members (chat_id, user_id) SELECT $1, unnest($2::bigint[])",
            )
            .await?;
        tx.execute(&statement, &[&chat_id, &new]).await?;
        let statement = tx
            .prepare_cached("UPDATE chats SET updated_at = now() WHERE id = $1")
            .await?;
        tx.execute(&statement, &[&chat_id]).await?;
        let chat = load_chat(&tx, chat_id).await?;
        outbox.add(EventType::CreateChat, &new, &chat)?;
        outbox.add(EventType::UpdateChat, &locked.members, &chat)?;
    }
    ctx.state.commit(tx, outbox).await?;
    ok(&load_view(&client, chat_id, caller.user_id).await?)
}

/// `DELETE /chats/{chat_id}/members/{user_id}`: a member leaves, or the creator removes
/// them. The removed user gets `delete_chat`, the rest `update_chat`.
pub async fn remove_member(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let chat_id = ctx.path_id("chat_id")?;
    let user_id = ctx.path_id("user_id")?;
    let mut client = ctx.state.db().await?;
    let tx = client.transaction().await?;
    let locked = lock_chat(&tx, chat_id, caller.user_id).await?;
    if user_id != caller.user_id && locked.creator_id != caller.user_id {
        return Err(ApiError::Forbidden(
            "only the chat's creator may remove other members",
        ));
    }
    if locked.kind != "group" {
        return Err(ApiError::Forbidden(
            "nobody leaves a private chat: its creator may delete it",
        ));
    }
    if !locked.members.contains(&user_id) {
        return Err(ApiError::NotFound("member"));
    }
    let statement = tx
        .prepare_cached("DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2")
        .await?;
    tx.execute(&statement, &[&chat_id, &user_id]).await?;
    let statement = tx
        .prepare_cached("UPDATE chats SET updated_at = now() WHERE id = $1")
        .await?;
    tx.execute(&statement, &[&chat_id]).await?;
    let chat = load_chat(&tx, chat_id).await?;
    let rest: Vec<i64> = locked
        .members
        .iter()
        .copied()
        .filter(|id| *id != user_id)
        .collect();
    let mut outbox = Outbox::default();
    outbox.add(EventType::DeleteChat, &[user_id], &json!({ "id": chat_id }))?;
    outbox.add(EventType::UpdateChat, &rest, &chat)?;
    ctx.state.commit(tx, outbox).await?;
    no_content()
}
