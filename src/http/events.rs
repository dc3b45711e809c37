//! `GET /events`: the caller's event log over REST, for clients without a socket.

use hyper::Response;
use serde_json::value::RawValue;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::{ok, Ctx};
use crate::store::events;

/// Events per page: default and most.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 100;

/// `GET /events?since=&limit=`
pub async fn list_events(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let since = ctx.query_int("since", 0, i64::MAX)?.unwrap_or(0);
    let limit = ctx
        .query_int("limit", 1, MAX_LIMIT)?
        .unwrap_or(DEFAULT_LIMIT);
    let client = ctx.state.db().await?;
    let (stored, has_more) = events::read_since(&client, caller.user_id, since, limit).await?;
    let frames = stored
        .into_iter()
        .map(|e| RawValue::from_string(e.frame))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(format!("stored event is not JSON: {e}")))?;
    ok(&serde_json::json!({ "events": frames, "has_more": has_more }))
}
