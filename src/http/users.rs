//! `/users`: search by name prefix or whole email, and look one up.

use hyper::Response;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::{ok, Ctx};
use crate::store::users;

/// Page size bounds for lists (the contract's 1..100).
pub const MAX_PAGE: i64 = 100;
pub const DEFAULT_PAGE: i64 = 50;
/// Longest search text accepted (an email's longest).
const MAX_QUERY_CHARS: usize = 254;

/// `GET /users?q=&limit=`: users whose name starts with `q` or whose email is `q`, both
/// case-insensitive. Never an email prefix: that would let anyone list the address book.
pub async fn list_users(ctx: Ctx) -> ApiResult<Response<Body>> {
    ctx.caller()?;
    let limit = ctx.query_int("limit", 1, MAX_PAGE)?.unwrap_or(DEFAULT_PAGE);
    let raw = ctx.query_str("q").unwrap_or("");
    if raw.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::field("q", "must be at most 254 characters"));
    }
    // Nothing stored contains them, and PostgreSQL rejects U+0000 (which would be a 500).
    if raw.chars().any(char::is_control) {
        return Err(ApiError::field("q", "must not contain control characters"));
    }
    let client = ctx.state.db().await?;
    let users = users::search(&client, &raw.trim().to_lowercase(), limit).await?;
    ok(&json!({ "users": users }))
}

/// `GET /users/{user_id}`
pub async fn get_user(ctx: Ctx, id: i64) -> ApiResult<Response<Body>> {
    ctx.caller()?;
    let client = ctx.state.db().await?;
    let user = users::get(&client, id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    ok(&user)
}
