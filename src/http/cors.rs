//! CORS: browsers on other origins may call the API (tokens are bearer tokens, never
//! cookies, so no credentials mode); `RTCHAT_CORS_ORIGINS` narrows the allowed origins.
//! Also the client address behind trusted proxies, used by the per-address limits.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN, VARY,
};
use hyper::{Method, Response, StatusCode};

use crate::config::{in_network, Config};
use crate::error::Body;

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Request headers a browser may send cross-origin.
const ALLOWED_HEADERS: &str = "authorization, content-type";

/// Response headers a cross-origin script may read.
const EXPOSED_HEADERS: &str = "retry-after, www-authenticate, allow, x-request-id";

/// The `Access-Control-Allow-Origin` value for this request, if its origin is allowed.
fn allowed_origin(config: &Config, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    match &config.cors_origins {
        None => Some(HeaderValue::from_static("*")),
        Some(list) => {
            let text = origin.to_str().ok()?;
            list.iter().any(|o| o == text).then(|| origin.clone())
        }
    }
}

/// Adds the CORS headers of a normal (non-preflight) response.
pub fn decorate(config: &Config, request: &HeaderMap, response: &mut Response<Body>) {
    let h = response.headers_mut();
    if config.cors_origins.is_some() {
        h.append(VARY, HeaderValue::from_static("origin"));
    }
    if let Some(origin) = allowed_origin(config, request) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
}

/// The answer to a preflight `OPTIONS` on a route allowing `methods`.
pub fn preflight(config: &Config, request: &HeaderMap, methods: &[Method]) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let allow = crate::error::allow(methods);
    let h = response.headers_mut();
    h.insert(
        hyper::header::ALLOW,
        HeaderValue::from_str(&allow).expect("method names are ASCII"),
    );
    if let Some(origin) = allowed_origin(config, request) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_str(&allow).expect("ASCII"),
        );
        let asked = request.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            asked.unwrap_or(HeaderValue::from_static(ALLOWED_HEADERS)),
        );
        h.insert(
            ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
    }
    if config.cors_origins.is_some() {
        h.append(VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
/// untrusted address in `X-Forwarded-For` (read from the right, as each proxy appends).
pub fn client_addr(config: &Config, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let trusted = |ip: IpAddr| {
        config
            .trusted_proxies
            .iter()
            .any(|net| in_network(ip, *net))
    };
    let peer = peer.ip();
    if !trusted(peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted(*ip))
        .unwrap_or(peer)
}
