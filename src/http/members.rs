//! `/chats/{chat_id}/members`: the creator adds users to a group; a member leaves or the
//! creator removes them. Membership changes are events, so a replay reproduces access. A
//! creator who leaves hands the group to its longest-standing member; the last member to
//! leave deletes it.

use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body};
use crate::events::{EventType, Outbox};
use crate::http::chats::{
    admit, check_users_exist, load_chat, load_view, lock_chat, MAX_GROUP_MEMBERS,
};
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

    const NOT_GROUP: ApiError = ApiError::Forbidden("members can only be added to group chats");
    const NOT_CREATOR: ApiError = ApiError::Forbidden("only the chat's creator may add members");
    let limits = &ctx.state.limits;
    limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |access| {
        if access.kind != "group" {
            return Err(NOT_GROUP);
        }
        if access.creator_id != caller.user_id {
            return Err(NOT_CREATOR);
        }
        limits.chat_changes.check(&chat_id)
    })
    .await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    // Checked again under the lock: the creator may have left since.
    if locked.creator_id != caller.user_id {
        return Err(NOT_CREATOR);
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
    ctx.state.delivery.commit(tx, outbox).await?;
    ok(&load_view(&admitted.client, chat_id, caller.user_id).await?)
}

/// `DELETE /chats/{chat_id}/members/{user_id}`: a member leaves, or the creator removes
/// them. The removed user gets `delete_chat`, the rest `update_chat`. When the creator leaves,
/// the member who joined earliest becomes the creator (the same `update_chat` shows it), so
/// the group stays manageable; when the last member leaves, the group is deleted.
pub async fn remove_member(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let chat_id = ctx.path_id("chat_id")?;
    let user_id = ctx.path_id("user_id")?;
    const NOT_CREATOR: ApiError =
        ApiError::Forbidden("only the chat's creator may remove other members");
    const NOT_GROUP: ApiError =
        ApiError::Forbidden("nobody leaves a private chat: its creator may delete it");
    let limits = &ctx.state.limits;
    limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |access| {
        if user_id != caller.user_id && access.creator_id != caller.user_id {
            return Err(NOT_CREATOR);
        }
        if access.kind != "group" {
            return Err(NOT_GROUP);
        }
        // Leaving is always possible; removing others is a change of the chat like any other.
        if user_id == caller.user_id {
            Ok(())
        } else {
            limits.chat_changes.check(&chat_id)
        }
    })
    .await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    if user_id != caller.user_id && locked.creator_id != caller.user_id {
        return Err(NOT_CREATOR);
    }
    if !locked.members.contains(&user_id) {
        return Err(ApiError::NotFound("member"));
    }
    let statement = tx
        .prepare_cached("DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2")
        .await?;
    tx.execute(&statement, &[&chat_id, &user_id]).await?;
    let rest: Vec<i64> = locked
        .members
        .iter()
        .copied()
        .filter(|id| *id != user_id)
        .collect();
    let mut outbox = Outbox::default();
    outbox.add(EventType::DeleteChat, &[user_id], &json!({ "id": chat_id }))?;
    if rest.is_empty() {
        // Nobody could ever see or manage it again.
        let statement = tx.prepare_cached("DELETE FROM chats WHERE id = $1").await?;
        tx.execute(&statement, &[&chat_id]).await?;
    } else {
        // A leaving creator hands over to the longest-standing member (earliest joined_at;
        // the lower id among those who joined together, such as the group's first members).
        let statement = tx
            .prepare_cached(
                "UPDATE chats SET updated_at = now(),
                     creator_id = CASE WHEN creator_id = $2 THEN (
                         SELECT user_id FROM chat_members WHERE chat_id = $1
                         ORDER BY joined_at, user_id LIMIT 1) ELSE creator_id END
                 WHERE id = $1",
            )
            .await?;
        tx.execute(&statement, &[&chat_id, &user_id]).await?;
        let chat = load_chat(&tx, chat_id).await?;
        outbox.add(EventType::UpdateChat, &rest, &chat)?;
    }
    ctx.state.delivery.commit(tx, outbox).await?;
    no_content()
}
