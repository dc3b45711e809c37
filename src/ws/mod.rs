//! `/ws/notif`: the WebSocket upgrade and the per-socket session.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::error::{ApiError, ApiResult, Body};
use crate::state::AppState;

/// Upgrades `GET /ws/notif` after authenticating.
pub async fn upgrade(_state: Arc<AppState>, _req: Request<Incoming>) -> ApiResult<Response<Body>> {
    Err(ApiError::NotFound("socket"))
}
