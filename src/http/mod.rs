//! The HTTP edge shared by every handler: the request context (`Ctx`) that reads the bounded
//! body, the caller's token, path ids and query parameters, and the JSON response helpers.
//! One file per resource beside it holds the handlers.

pub mod auth;
pub mod chats;
pub mod cors;
pub mod docs;
pub mod events;
pub mod health;
pub mod members;
pub mod messages;
pub mod presence;
pub mod reactions;
pub mod reads;
pub mod search;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::Caller;
pub use crate::error::json_response;
use crate::error::{ApiError, ApiResult, Body, FieldError};
use crate::logging::RequestUser;
use crate::revocation::Untrusted;
use crate::state::AppState;

/// Request bodies over this many bytes answer 413 (the contract's 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a handler gets besides its path parameters (which the router parses into
/// `router::Endpoint` and passes as arguments): shared state, the request head, its (bounded)
/// body and the parsed query string.
pub struct Ctx {
    pub state: Arc<AppState>,
    pub parts: hyper::http::request::Parts,
    pub body: Bytes,
    pub query: Vec<(String, String)>,
    /// The client's address (behind trusted proxies, the forwarded one).
    pub client_addr: std::net::IpAddr,
}

/// A body must arrive within this time of its head. Without a bound, a client that
/// announces a body and never sends it holds a handler and its connection forever (hyper's
/// header-read timeout only covers the head). Ten seconds is the head's allowance too, and
/// takes the largest body (64 KiB) at 6.5 KB/s.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a request body, refusing anything over `MAX_BODY_BYTES` without buffering it, and
/// anything slower than `BODY_READ_TIMEOUT`.
pub async fn read_body(body: Incoming) -> ApiResult<Bytes> {
    let read = Limited::new(body, MAX_BODY_BYTES).collect();
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Err(_) => Err(ApiError::RequestTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES))
        }
        Ok(Err(e)) => Err(ApiError::InvalidJson(format!(
            "the body could not be read: {e}"
        ))),
    }
}

/// Parses a query string into pairs (percent-decoded, `+` as space).
pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The token of a request: `Authorization: Bearer` wins over `?token=`.
pub fn request_token<'a>(
    headers: &'a hyper::HeaderMap,
    query: &'a [(String, String)],
) -> Option<&'a str> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
}

impl Ctx {
    /// The authenticated caller, or 401 (503 while revocations may be missing).
    pub fn caller(&self) -> ApiResult<Caller> {
        let token = request_token(&self.parts.headers, &self.query)
            .ok_or(ApiError::Unauthorized("a bearer token is required"))?;
        let caller = self.state.auth.verify(token)?;
        trust_session(&self.state, caller.session_id)?;
        self.log_user(caller.user_id);
        Ok(caller)
    }

    /// Names the user this request acts for in its access log line.
    pub fn log_user(&self, user_id: i64) {
        if let Some(user) = self.parts.extensions.get::<RequestUser>() {
            user.set(user_id);
        }
    }

    /// The body as JSON of type `T`: 415 for another content type, 400 for malformed JSON,
    /// 422 naming the field for wrong types, missing or unknown fields.
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        if !self.content_type_is(&["application/json"]) && self.has_content_type() {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&self.body)
    }

    /// Whether the request carries a Content-Type header.
    pub fn has_content_type(&self) -> bool {
        self.parts.headers.contains_key(CONTENT_TYPE)
    }

    /// Whether the Content-Type is one of `types` (parameters such as charset ignored;
    /// `application/*+json` counts as JSON).
    pub fn content_type_is(&self, types: &[&str]) -> bool {
        let Some(value) = self
            .parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        types.iter().any(|t| essence == *t)
            || (types.contains(&"application/json")
                && essence.starts_with("application/")
                && essence.ends_with("+json"))
    }

    /// An optional integer query parameter within `min..=max`: out of range or not a number
    /// is 422, never a silent clamp.
    pub fn query_int(&self, name: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        let Some(raw) = self.query_str(name) else {
            return Ok(None);
        };
        match raw.trim().parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::field(
                name,
                format!("must be an integer in {min}..{max}"),
            )),
        }
    }

    /// The last value of a query parameter (the same name twice: the last wins).
    pub fn query_str(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses JSON into `T`, naming the failing field in the 422.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson("the body is empty".into()));
    }
    // Syntax first, so a truncated document is 400 even where its start already has the
    // wrong shape (serde would report the shape first).
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    // Every body of the contract is an object, but serde also reads a struct from an array
    // of its fields in order (`["hi"]` would send a message). The syntax is valid, so the
    // first byte that is not whitespace tells the top-level type.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::field("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(path, inner)
    })?;
    de.end().map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok(value)
}

fn json_error(path: String, e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = e.to_string();
    // The syntax was checked first, so "expected value" here is serde_json reading an enum
    // (`type`) from something that is neither a string nor an object, such as `null`: a
    // wrong type, not malformed JSON.
    let wrong_enum = e.classify() == Category::Syntax && message.starts_with("expected value");
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io if !wrong_enum => {
            ApiError::InvalidJson(message)
        }
        _ => {
            let message = if wrong_enum {
                "invalid type: expected a string".to_string()
            } else {
                message
            };
            // serde reports a missing, unknown or duplicate field at the parent's path; name
            // the field.
            let named = message.split('`').nth(1).filter(|_| {
                ["missing field", "unknown field", "duplicate field"]
                    .iter()
                    .any(|kind| message.starts_with(kind))
            });
            let field = match (named, path.as_str()) {
                (Some(name), "." | "") => name.to_string(),
                (Some(name), parent) => format!("{parent}.{name}"),
                (None, "." | "") => "body".to_string(),
                (None, p) => p.to_string(),
            };
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string();
            ApiError::Validation(vec![FieldError::new(field, message)])
        }
    }
}

/// 200 with a JSON body.
pub fn ok(value: &impl Serialize) -> ApiResult<Response<Body>> {
    Ok(json_response(StatusCode::OK, value))
}

/// 201 with a JSON body.
pub fn created(value: &impl Serialize) -> ApiResult<Response<Body>> {
    Ok(json_response(StatusCode::CREATED, value))
}

/// 204 with no body.
pub fn no_content() -> ApiResult<Response<Body>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// A non-JSON response (HTML, YAML, JavaScript, metrics text).
pub fn static_response(content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Accepts `null` as an explicit value: `None` = absent, `Some(None)` = null.
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

/// An integer field that also takes JSON numbers like `42.0`: JSON (and JSON Schema, which
/// `openapi.yaml` uses) has one number type, where `42.0` is the integer 42. A fraction, or a
/// value outside 64 bits, is still a 422.
pub fn json_integer<'de, D>(de: D) -> Result<i64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    de.deserialize_any(IntegerVisitor)
}

/// `json_integer` for every element of an array.
pub fn json_integers<'de, D>(de: D) -> Result<Vec<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(serde::Deserialize)]
    struct Integer(#[serde(deserialize_with = "json_integer")] i64);
    let integers: Vec<Integer> = serde::Deserialize::deserialize(de)?;
    Ok(integers.into_iter().map(|Integer(i)| i).collect())
}

struct IntegerVisitor;

impl serde::de::Visitor<'_> for IntegerVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a 64-bit integer")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        // -2^63 is exact in f64; 2^63 (the first value past i64::MAX) is too.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
            Ok(v as i64)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
        }
    }
}

/// Whether a verified token's session may be trusted: 401 if it was revoked; 503 while this
/// process may have missed a revocation (its LISTEN connection is down), which says
/// `shutting_down` once shutdown has stopped the listener for good.
pub fn trust_session(state: &AppState, session_id: i64) -> ApiResult<()> {
    match state.revoked.check(session_id) {
        Err(Untrusted::CatchingUp) if state.shutdown.is_cancelled() => Err(ApiError::ShuttingDown),
        other => Ok(other?),
    }
}

/// The handlers' way to a pooled connection (here, at the edge, since its error is the
/// HTTP one).
impl AppState {
    /// A pooled connection, or 503.
    pub async fn db(&self) -> Result<deadpool_postgres::Object, ApiError> {
        Ok(self.pool.get().await?)
    }
}
