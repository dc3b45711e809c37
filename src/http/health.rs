//! Operations endpoints: liveness, readiness (the database answers, delivery works) and
//! Prometheus metrics.

use std::time::Duration;

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::{json_response, ok, static_response, Ctx};
use crate::metrics::Gauges;

/// Readiness fails if the database does not answer within this time.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up.
pub async fn healthz(_ctx: Ctx) -> ApiResult<Response<Body>> {
    ok(&json!({ "status": "ok" }))
}

/// `GET /readyz`: the database is reachable, the cross-process listener is up and no
/// delivery task failed for good.
pub async fn readyz(ctx: Ctx) -> ApiResult<Response<Body>> {
    let check = async {
        let client = ctx.state.db().await?;
        crate::store::ping(&client).await.map_err(ApiError::from)
    };
    if let Err(why) = ctx.state.delivery.ready() {
        return Ok(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "detail": why, "code": "not_ready" }),
        ));
    }
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(_)) => ok(&json!({ "status": "ok" })),
        _ => Ok(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "detail": "the database is not reachable", "code": "not_ready" }),
        )),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(ctx: Ctx) -> ApiResult<Response<Body>> {
    let delivery = &ctx.state.delivery;
    let gauges = Gauges {
        send_queue: delivery.send_queue_depth(),
        listening: delivery.listening(),
        revoked: ctx.state.revoked.size(),
        online_users: delivery.online_users(),
        presence_frames: delivery.presence_frames(),
    };
    let text = ctx.state.metrics.render(
        ctx.state.pool.status(),
        delivery.socket_count(),
        delivery.frames_queued(),
        &gauges,
    );
    Ok(static_response(
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    ))
}
