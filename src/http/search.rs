//! `GET /search/messages`: full-text search over the messages of the caller's chats.

use hyper::Response;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::users::MAX_PAGE;
use crate::http::{ok, Ctx};
use crate::store::search::{search, words, Search};

/// `q`: 1..=200 characters (the contract's bound), enough for any sentence a person types
/// into a search box.
pub const MAX_QUERY_CHARS: usize = 200;
/// Words in `q`: each is one more GIN lookup (and a prefix may expand to thousands of
/// lexemes), so a query of hundreds of short words could cost seconds; ten words narrow a
/// search as far as anyone needs.
pub const MAX_QUERY_WORDS: usize = 10;

/// Results per page when `limit` is absent (the contract's 20: a search box shows a screenful,
/// and each result costs a recheck of its text).
pub const DEFAULT_SEARCH_PAGE: i64 = 20;

/// `GET /search/messages?q=&chat_id=&before=&limit=`: newest first; `has_more` says whether
/// older matches follow (page on with `before` = the last id). Rate limited per user (the
/// searches limiter), before anything else is read.
pub async fn search_messages(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    ctx.state.limits.searches.check(&caller.user_id)?;
    let limit = ctx
        .query_int("limit", 1, MAX_PAGE)?
        .unwrap_or(DEFAULT_SEARCH_PAGE);
    let before = ctx.query_int("before", 0, i64::MAX)?.unwrap_or(i64::MAX);
    let chat_id = ctx.query_int("chat_id", 1, i64::MAX)?;
    let q = ctx
        .query_str("q")
        .ok_or_else(|| ApiError::field("q", "is required"))?;
    let n = q.chars().count();
    if n == 0 || n > MAX_QUERY_CHARS {
        return Err(ApiError::field("q", "must be 1..200 characters"));
    }
    let words = words(q);
    if words.is_empty() {
        return Err(ApiError::field(
            "q",
            "must contain a word (letters or digits)",
        ));
    }
    if words.len() > MAX_QUERY_WORDS {
        return Err(ApiError::field("q", "must have at most 10 words"));
    }
    let mut client = ctx.state.db().await?;
    let (messages, has_more) = search(
        &mut client,
        &Search {
            caller: caller.user_id,
            chat_id,
            words: &words,
            before,
            limit,
            timeout: ctx.state.config.search_timeout,
        },
    )
    .await?;
    ok(&json!({ "messages": messages, "has_more": has_more }))
}
