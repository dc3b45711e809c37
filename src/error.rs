//! `ApiError`: the one error type at the HTTP edge, and the one place where a failure
//! becomes a status code and the JSON envelope `{"detail", "code"}` of the contract.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::store::StoreError;

/// The response body type of every rtchat response.
pub type Body = Full<bytes::Bytes>;

/// One failed field of a request, as listed in a 422 body.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything that can go wrong while answering a request.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the body is not JSON (or not the form it claims to be).
    InvalidJson(String),
    /// 401: missing, malformed, wrongly signed or expired token.
    Unauthorized(&'static str),
    /// 401 on login: wrong email or password.
    InvalidCredentials,
    /// 403: the caller may see the resource but their role forbids the action.
    Forbidden(&'static str),
    /// 403: the chat is inactive and takes no messages.
    ChatInactive,
    /// 404: unknown path, or a resource the caller may not see.
    NotFound(&'static str),
    /// 405, with the methods the path does allow.
    MethodNotAllowed(&'static [hyper::Method]),
    /// 409: the email is registered already.
    EmailTaken,
    /// 410: `since` is older than the retained event log (or events after it are missing);
    /// the log goes on after `seq`, the client's new cursor.
    ResyncRequired { seq: i64 },
    /// 426: `/ws/notif` without a WebSocket handshake.
    UpgradeRequired,
    /// 413: the body is over the limit.
    PayloadTooLarge(usize),
    /// 408: the body did not arrive within `BODY_READ_TIMEOUT` of the head.
    RequestTimeout,
    /// 415: a Content-Type the endpoint does not read.
    UnsupportedMediaType,
    /// 422: the request is well-formed but its values are not acceptable.
    Validation(Vec<FieldError>),
    /// 429 on `/ws/notif`: the user has the most sockets allowed open already.
    TooManySockets,
    /// 429, with how long to wait.
    RateLimited(Duration),
    /// 503: the database cannot be reached (pool timeout, connection refused or closed,
    /// PostgreSQL shutting down, out of resources) or asks for a retry (serialization
    /// failure, deadlock). Nothing else: a bug is `Internal`.
    Unavailable(String),
    /// 500: a bug or an unexpected database failure. The message is logged, never sent.
    Internal(String),
    /// 503 `unavailable`, with `Retry-After`: this process's LISTEN connection is down, so it
    /// may have missed a logout elsewhere and cannot trust a token until it has caught up.
    CatchingUp,
    /// 503 `server_busy`, with `Retry-After`: this process cannot take the request now, and
    /// says why: it holds its maximum of WebSocket sessions (`RTCHAT_MAX_SOCKETS`), a chat
    /// write waited its bounded time for its turn (others are changing the same chat) and gave
    /// up rather than hold a pooled connection longer, the password hashers are all busy, or a
    /// search ran out of its statement timeout (`RTCHAT_SEARCH_TIMEOUT_MS`).
    ServerBusy(&'static str),
    /// 503: this process is shutting down; another process (or this one restarted) answers.
    ShuttingDown,
    /// 414: the request target is longer than `router::MAX_URI_BYTES`.
    UriTooLong(usize),
    /// 431: more request headers than `router::MAX_HEADERS`, or more than
    /// `router::MAX_HEADER_BYTES` of them.
    HeadersTooLarge(String),
    /// 422 `too_many_reactions`: a new emoji on a message that has the most distinct emoji
    /// allowed (`store::reactions::MAX_EMOJI_PER_MESSAGE`).
    TooManyReactions,
}

impl ApiError {
    /// A 422 for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ChatInactive => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::EmailTaken => StatusCode::CONFLICT,
            ApiError::ResyncRequired { .. } => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited(_) | ApiError::TooManySockets => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ServerBusy(_) | ApiError::ShuttingDown | ApiError::CatchingUp => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyReactions => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::ChatInactive => "chat_inactive",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::EmailTaken => "email_taken",
            ApiError::ResyncRequired { .. } => "resync_required",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::UpgradeRequired => "upgrade_required",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation_error",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::TooManySockets => "too_many_sockets",
            ApiError::Unavailable(_) | ApiError::CatchingUp => "unavailable",
            ApiError::Internal(_) => "internal_error",
            ApiError::ServerBusy(_) => "server_busy",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::UriTooLong(_) => "uri_too_long",
            ApiError::HeadersTooLarge(_) => "request_header_fields_too_large",
            ApiError::TooManyReactions => "too_many_reactions",
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::InvalidJson(why) => format!("the body is not valid JSON: {why}"),
            ApiError::Unauthorized(why) => (*why).to_string(),
            ApiError::InvalidCredentials => "wrong email or password".into(),
            ApiError::Forbidden(why) => (*why).to_string(),
            ApiError::ChatInactive => "the chat is inactive and takes no messages".into(),
            ApiError::NotFound(what) => format!("{what} not found"),
            ApiError::MethodNotAllowed(_) => "method not allowed on this path".into(),
            ApiError::EmailTaken => "this email is registered already".into(),
            ApiError::ResyncRequired { .. } => {
                "`since` is older than the kept event log: refetch your state over REST".into()
            }
            ApiError::PayloadTooLarge(limit) => format!("the body is over {limit} bytes"),
            ApiError::RequestTimeout => "the request body did not arrive in time".into(),
            ApiError::UpgradeRequired => "this endpoint takes a WebSocket handshake".into(),
            ApiError::UnsupportedMediaType => "send the body as application/json".into(),
            ApiError::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.message),
                _ => "the request has invalid fields".into(),
            },
            ApiError::RateLimited(_) => "too many requests: slow down".into(),
            ApiError::TooManySockets => {
                "too many open sockets for this user: close one first".into()
            }
            ApiError::Unavailable(_) => "the database is unavailable, try again".into(),
            ApiError::Internal(_) => "internal error".into(),
            ApiError::ServerBusy(why) => (*why).to_string(),
            ApiError::CatchingUp => {
                "this server lost its database notifications and is catching up with sessions \
                 ended elsewhere: retry shortly"
                    .into()
            }
            ApiError::ShuttingDown => "the server is shutting down: try again".into(),
            ApiError::UriTooLong(limit) => format!("the request target is over {limit} bytes"),
            ApiError::HeadersTooLarge(why) => why.clone(),
            ApiError::TooManyReactions => format!(
                "the message has {} different reactions already: add one of those",
                crate::store::reactions::MAX_EMOJI_PER_MESSAGE
            ),
        }
    }

    /// The response for this error: the one place where statuses, codes and headers are chosen.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        match &self {
            ApiError::Internal(why) => tracing::error!(error = %why, "internal error"),
            ApiError::Unavailable(why) => tracing::warn!(error = %why, "database unavailable"),
            _ => {}
        }
        let mut body = json!({ "detail": self.detail(), "code": self.code() });
        if let ApiError::Validation(errors) = &self {
            body["errors"] = errors
                .iter()
                .map(|e| json!({ "field": e.field, "message": e.message }))
                .collect();
        }
        if let ApiError::TooManyReactions = &self {
            // Every 422 names its field, so clients handle it like the other 422s.
            body["errors"] = json!([{ "field": "emoji", "message": self.detail() }]);
        }
        if let ApiError::ResyncRequired { seq } = &self {
            body["seq"] = json!(seq);
        }
        let mut response = json_response(status, &body);
        let headers = response.headers_mut();
        match &self {
            // RFC 9110 15.5.2: a 401 carries a challenge, wrong passwords included.
            ApiError::Unauthorized(_) | ApiError::InvalidCredentials => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed(methods) => {
                headers.insert(
                    ALLOW,
                    HeaderValue::from_str(&allow(methods)).expect("method names are ASCII"),
                );
            }
            ApiError::UpgradeRequired => {
                headers.insert(
                    hyper::header::UPGRADE,
                    HeaderValue::from_static("websocket"),
                );
            }
            ApiError::RateLimited(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            ApiError::ServerBusy(_) | ApiError::CatchingUp => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        debug_assert!(response.headers().contains_key(CONTENT_TYPE));
        response
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError::from(StoreError::from(e))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ApiError::from(StoreError::from(e))
    }
}

/// The store's answers, as the HTTP edge gives them.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Forbidden(why) => ApiError::Forbidden(why),
            StoreError::ChatInactive => ApiError::ChatInactive,
            StoreError::EmailTaken => ApiError::EmailTaken,
            StoreError::Invalid { field, message } => ApiError::field(field, message),
            StoreError::ResyncRequired { seq } => ApiError::ResyncRequired { seq },
            StoreError::Busy => ApiError::ServerBusy(CHAT_BUSY),
            StoreError::Unavailable(why) => ApiError::Unavailable(why),
            StoreError::Bug(why) => ApiError::Internal(why),
            StoreError::TooSlow(why) => ApiError::ServerBusy(why),
        }
    }
}

/// A limiter's refusal: 429 with how long to wait.
impl From<crate::limits::RateLimited> for ApiError {
    fn from(e: crate::limits::RateLimited) -> Self {
        ApiError::RateLimited(e.0)
    }
}

/// A login not admitted: 429 at its limit, else the store's answer.
impl From<crate::limits::LoginRefused> for ApiError {
    fn from(e: crate::limits::LoginRefused) -> Self {
        match e {
            crate::limits::LoginRefused::RateLimited(limited) => limited.into(),
            crate::limits::LoginRefused::Store(e) => e.into(),
        }
    }
}

/// A refused token: 401 saying why.
impl From<crate::auth::TokenError> for ApiError {
    fn from(e: crate::auth::TokenError) -> Self {
        ApiError::Unauthorized(e.reason())
    }
}

/// Signing or hashing failed: 503 when the hashers are busy, else a bug.
impl From<crate::auth::CredentialError> for ApiError {
    fn from(e: crate::auth::CredentialError) -> Self {
        match e {
            crate::auth::CredentialError::Busy => ApiError::ServerBusy(HASHERS_BUSY),
            crate::auth::CredentialError::Bug(why) => ApiError::Internal(why),
        }
    }
}

/// A session that may not be trusted: 401 when it ended, 503 while revocations may be
/// missing.
impl From<crate::revocation::Untrusted> for ApiError {
    fn from(e: crate::revocation::Untrusted) -> Self {
        match e {
            crate::revocation::Untrusted::Ended => ApiError::Unauthorized("the session has ended"),
            crate::revocation::Untrusted::CatchingUp => ApiError::CatchingUp,
        }
    }
}

/// A chat write's turn did not come in its bounded wait.
impl From<crate::gate::TurnTimedOut> for ApiError {
    fn from(_: crate::gate::TurnTimedOut) -> Self {
        ApiError::ServerBusy(CHAT_BUSY)
    }
}

/// Why a chat write answers `server_busy`: it waited its bounded time for its turn.
pub const CHAT_BUSY: &str = "busy with other changes to the same chat: retry shortly";
/// Why a WebSocket upgrade answers `server_busy`: the process holds its maximum of sockets.
pub const SOCKETS_FULL: &str = "the server holds its maximum of sockets: try again later";

/// Why a login or registration answers `server_busy`: the password hashers' queue is full.
pub const HASHERS_BUSY: &str = "too many password checks in progress: retry shortly";

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("our response types always serialise");
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The `Allow` value for a route allowing `methods`: those, HEAD wherever GET is, and
/// OPTIONS (the CORS preflight), which every route answers.
pub fn allow(methods: &[hyper::Method]) -> String {
    let mut listed = Vec::with_capacity(methods.len() + 2);
    for method in methods {
        listed.push(method.as_str());
        if *method == hyper::Method::GET {
            listed.push(hyper::Method::HEAD.as_str());
        }
    }
    listed.push(hyper::Method::OPTIONS.as_str());
    listed.join(", ")
}

/// The result type of every handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests;
