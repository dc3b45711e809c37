//! `/chats/{chat_id}/members`: the creator adds users to a group; a member leaves or the
//! creator removes them. Membership changes are events, so a replay reproduces access. A
//! creator who leaves hands the group to its longest-standing member; the last member to
//! leave deletes it.

use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::chats::{admit, MAX_GROUP_MEMBERS};
use crate::http::{no_content, ok, Ctx};
use crate::store::chats::{load_view, lock_chat};
use crate::store::events::{EventType, Outbox};
use crate::store::members::{self as store, check_users_exist};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMembersBody {
    #[serde(deserialize_with = "crate::http::json_integers")]
    user_ids: Vec<i64>,
}

/// `POST /chats/{chat_id}/members`: new members get `create_chat`, existing ones `update_chat`.
pub async fn add_members(ctx: Ctx, chat_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
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

    let limits = &ctx.state.limits;
    limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |access| {
        access.may_add_members()?;
        Ok(limits.chat_changes.check(&chat_id)?)
    })
    .await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    // Checked again under the lock: the creator may have left since.
    locked.access.may_add_members()?;
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
        let chat = store::add(&tx, chat_id, &new).await?;
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
pub async fn remove_member(ctx: Ctx, chat_id: i64, user_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let limits = &ctx.state.limits;
    limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |access| {
        access.may_remove(user_id)?;
        // Leaving is always possible; removing others is a change of the chat like any other.
        if user_id == caller.user_id {
            Ok(())
        } else {
            Ok(limits.chat_changes.check(&chat_id)?)
        }
    })
    .await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    locked.access.may_remove(user_id)?;
    if !locked.members.contains(&user_id) {
        return Err(ApiError::NotFound("member"));
    }
    let rest: Vec<i64> = locked
        .members
        .iter()
        .copied()
        .filter(|id| *id != user_id)
        .collect();
    let mut outbox = Outbox::default();
    outbox.add(EventType::DeleteChat, &[user_id], &json!({ "id": chat_id }))?;
    if let Some(chat) = store::remove(&tx, chat_id, user_id, &rest).await? {
        outbox.add(EventType::UpdateChat, &rest, &chat)?;
    }
    ctx.state.delivery.commit(tx, outbox).await?;
    no_content()
}
