//! `/ws/notif`: authenticating and upgrading the request, then handing the socket to its
//! session task (`session`). The frames themselves are in `protocol`.

pub(crate) mod protocol;
mod session;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::conn::{ClientIo, ConnectionSlot};
use crate::delivery::{CapReached, QueueBounds};
use crate::error::{ApiError, ApiResult, Body};
use crate::http::{parse_query, request_token};
use crate::logging::RequestUser;
use crate::state::AppState;

/// Largest client message or frame accepted (client frames are tiny: ping, typing).
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// tungstenite's default read buffer is 128 KiB per socket, most of an idle socket's memory.
/// Client frames are tiny (ping, typing), and a larger one still reads fine in several
/// chunks, so a small buffer costs no CPU and keeps idle sockets cheap.
const READ_BUFFER: usize = 512;

/// Outgoing bytes are flushed once this many are buffered (and after every batch).
const WRITE_BUFFER: usize = 16 * 1024;

/// A socket whose unsent bytes grow past this is failing to read; writes then error.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;

pub(super) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
}

/// `GET /ws/notif?token=&since=`: 401 before the handshake for a bad token, 422 for a bad
/// `since`, else 101 and a session task.
pub async fn upgrade(
    state: Arc<AppState>,
    mut req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let query = parse_query(req.uri().query());
    let token = request_token(req.headers(), &query)
        .ok_or(ApiError::Unauthorized("a token is required"))?;
    let caller = state.auth.verify(token)?;
    crate::http::trust_session(&state, caller.session_id)?;
    if let Some(user) = req.extensions().get::<RequestUser>() {
        user.set(caller.user_id);
    }
    let since = match query.iter().rev().find(|(k, _)| k == "since") {
        None => None,
        Some((_, raw)) => Some(
            raw.trim()
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| ApiError::field("since", "must be a non-negative integer"))?,
        ),
    };

    let headers = req.headers();
    let is_upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers
        .get(SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers
        .get(SEC_WEBSOCKET_KEY)
        .filter(|_| is_upgrade && version_ok)
    else {
        return Err(ApiError::UpgradeRequired);
    };
    let accept = derive_accept_key(key.as_bytes());
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    if state.delivery.socket_count() >= state.config.max_sockets {
        return Err(ApiError::ServerBusy(crate::error::SOCKETS_FULL));
    }
    // The slot is taken now, before the 101: checked and counted at once, so concurrent
    // handshakes cannot all pass the caps (the check above is only the cheap early answer).
    let bounds = QueueBounds {
        frames: state.config.ws_queue,
        bytes: state.config.ws_queue_bytes,
    };
    let subscription = match state.delivery.subscribe(
        caller.user_id,
        caller.session_id,
        bounds,
        state.config.max_sockets,
        state.config.max_sockets_per_user,
    ) {
        Ok(subscription) => subscription,
        Err(CapReached::User) => return Err(ApiError::TooManySockets),
        Err(CapReached::Process) => return Err(ApiError::ServerBusy(crate::error::SOCKETS_FULL)),
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    // The socket holds its connection's slot until it closes.
    let slot = req.extensions_mut().remove::<ConnectionSlot>();
    let session_state = state.clone();
    let task = async move {
        let _slot = slot;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            // The subscription is dropped with the task: the slot is free again.
            Err(e) => return tracing::debug!(error = %e, "upgrade failed"),
        };
        // The bare TcpStream, not hyper's boxed IO. Its unread bytes are a slice of hyper's
        // 8-16 KiB read buffer, which `Upgraded` kept alive until its first read: after the
        // session's first database query, so thousands of them when sockets connect at once
        // (and RSS stays at that peak). Copied out here, the buffer is freed at the upgrade.
        match upgraded.downcast::<ClientIo>() {
            Ok(parts) => {
                let read = parts.read_buf.to_vec();
                // Now: `parts` would hold it to the end of this arm, the socket's life.
                drop(parts.read_buf);
                let io = parts.io.into_tcp();
                session::run(session_state, caller, since, subscription, io, read).await;
            }
            // Not expected (the accept loop serves plain TCP); boxed, so that this path
            // does not size every socket's task.
            Err(upgraded) => {
                let io = TokioIo::new(upgraded);
                Box::pin(session::run(
                    session_state,
                    caller,
                    since,
                    subscription,
                    io,
                    Vec::new(),
                ))
                .await;
            }
        }
    };
    // Tracked separately: hyper's graceful shutdown forgets upgraded connections.
    state.sessions.spawn(task);

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header"),
    );
    Ok(response)
}
