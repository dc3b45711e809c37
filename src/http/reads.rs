//! Read state: `GET /chats/{chat_id}/reads` (every member's read cursor, for "seen by") and
//! `GET /unread` (the caller's unread totals, for a badge).

use hyper::Response;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::{ok, Ctx};
use crate::store::reads::{chat_reads, unread_totals};

/// `GET /chats/{chat_id}/reads`: every current member's cursor, ascending by user id, in one
/// page (a group has at most `MAX_GROUP_MEMBERS` members); 404 unless the caller is one.
pub async fn list_reads(ctx: Ctx, chat_id: i64) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let client = ctx.state.db().await?;
    // The list is every member: the caller is among them exactly when they may see it.
    let reads = chat_reads(&client, chat_id).await?;
    if !reads.iter().any(|r| r.user_id == caller.user_id) {
        return Err(ApiError::NotFound("chat"));
    }
    ok(&json!({ "reads": reads }))
}

/// `GET /unread`: `{messages, chats, mentions}` over the caller's active chats.
pub async fn get_unread(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let client = ctx.state.db().await?;
    ok(&unread_totals(&client, caller.user_id).await?)
}
