//! The route table: every path rtchat serves, the methods each allows, and the handler each
//! (route, method) pair runs. A path miss is 404; a method miss is 405 with `Allow`. HEAD is
//! answered as GET is (hyper drops the body), and the request head's own limits are checked
//! first, so their errors come in the JSON envelope.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, UPGRADE};
use hyper::{Method, Request, Response};

use crate::error::{ApiError, ApiResult, Body};
use crate::http;
use crate::logging::{millis, RequestUser};
use crate::state::AppState;

mod endpoint;

pub use endpoint::Endpoint;
use endpoint::Verb;

/// The most request headers taken. Browsers send about 15 and proxies add a few; a client
/// with more gets 431 here, in the envelope, up to hyper's own limit (`server.rs`), past
/// which hyper answers a bare 431.
pub const MAX_HEADERS: usize = 100;

/// The most bytes of header names and values taken (nginx's default allows 4 lines of 8 KiB;
/// a token is under 1 KiB). Beyond hyper's read buffer (about 400 KB) hyper answers a bare 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The longest request target (path and query) taken: the longest legitimate one, a query
/// token or a list of ids, is under 2 KiB. hyper itself answers a bare 414 past 64 KiB.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Every route. The path templates are in `ROUTES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Index,
    Docs,
    DocsAsset,
    StaticAsset,
    OpenApi,
    Healthz,
    Readyz,
    Metrics,
    Register,
    Login,
    Refresh,
    Logout,
    Me,
    Users,
    User,
    Chats,
    Chat,
    Members,
    Member,
    Messages,
    Message,
    Reaction,
    Read,
    Events,
    WsNotif,
    Reads,
    Unread,
    SearchMessages,
    Presence,
}

/// Path templates (matchit syntax) and their routes.
pub const ROUTES: &[(&str, Route)] = &[
    ("/", Route::Index),
    ("/docs", Route::Docs),
    ("/docs/{file}", Route::DocsAsset),
    ("/static/{file}", Route::StaticAsset),
    ("/openapi.yaml", Route::OpenApi),
    ("/healthz", Route::Healthz),
    ("/readyz", Route::Readyz),
    ("/metrics", Route::Metrics),
    ("/auth/register", Route::Register),
    ("/auth/login", Route::Login),
    ("/auth/refresh", Route::Refresh),
    ("/auth/logout", Route::Logout),
    ("/auth/me", Route::Me),
    ("/users", Route::Users),
    ("/users/{user_id}", Route::User),
    ("/chats", Route::Chats),
    ("/chats/{chat_id}", Route::Chat),
    ("/chats/{chat_id}/members", Route::Members),
    ("/chats/{chat_id}/members/{user_id}", Route::Member),
    ("/chats/{chat_id}/messages", Route::Messages),
    ("/chats/{chat_id}/messages/{message_id}", Route::Message),
    (
        "/chats/{chat_id}/messages/{message_id}/reactions/{emoji}",
        Route::Reaction,
    ),
    ("/chats/{chat_id}/read", Route::Read),
    ("/events", Route::Events),
    ("/ws/notif", Route::WsNotif),
    ("/chats/{chat_id}/reads", Route::Reads),
    ("/unread", Route::Unread),
    ("/search/messages", Route::SearchMessages),
    ("/presence", Route::Presence),
];

impl Route {
    /// The methods this route answers (what a 405's `Allow` lists).
    pub fn methods(self) -> &'static [Method] {
        use Route::*;
        match self {
            Index | Docs | DocsAsset | StaticAsset | OpenApi | Healthz | Readyz | Metrics | Me
            | Users | User | Events | WsNotif | Reads | Unread | SearchMessages | Presence => {
                &[Method::GET]
            }
            Register | Login | Refresh | Logout | Members | Read => &[Method::POST],
            Chats | Messages => &[Method::GET, Method::POST],
            Chat => &[Method::GET, Method::PATCH, Method::DELETE],
            Member => &[Method::DELETE],
            Message => &[Method::PATCH, Method::DELETE],
            Reaction => &[Method::PUT, Method::DELETE],
        }
    }

    /// The template this route was registered with (a bounded metrics label).
    pub fn template(self) -> &'static str {
        ROUTES
            .iter()
            .find(|(_, r)| *r == self)
            .map(|(p, _)| *p)
            .expect("every route is in ROUTES")
    }
}

/// The most of a path the access log shows: a path may be up to `MAX_URI_BYTES` long (and
/// up to hyper's 64 KiB when it is refused), which would make one request a huge log line.
const MAX_LOGGED_PATH: usize = 512;

/// The path as the access log shows it, cut at `MAX_LOGGED_PATH` bytes.
fn logged(path: &str) -> std::borrow::Cow<'_, str> {
    if path.len() <= MAX_LOGGED_PATH {
        return path.into();
    }
    let mut end = MAX_LOGGED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...({} bytes)", &path[..end], path.len()).into()
}

/// Refuses a request head over rtchat's limits: too long a target, too many or too large
/// headers.
fn check_head(req: &Request<Incoming>) -> Result<(), ApiError> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + req.uri().authority().map_or(0, |a| a.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong(MAX_URI_BYTES));
    }
    let headers = req.headers();
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::HeadersTooLarge(format!(
            "the request has more than {MAX_HEADERS} header fields"
        )));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge(format!(
            "the request headers are over {MAX_HEADER_BYTES} bytes"
        )));
    }
    Ok(())
}

pub(crate) fn table() -> &'static matchit::Router<Route> {
    static TABLE: OnceLock<matchit::Router<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut router = matchit::Router::new();
        for (path, route) in ROUTES {
            router
                .insert(*path, *route)
                .expect("route templates do not conflict");
        }
        router
    })
}

/// Answers one request: route, run, log, count. Never fails; errors become responses.
pub async fn handle(
    state: Arc<AppState>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = state
        .request_ids
        .for_request(req.headers().get(REQUEST_ID).map(|v| v.as_bytes()));
    let user = RequestUser::default();
    req.extensions_mut().insert(user.clone());
    let client = http::cors::client_addr(&state.config, peer, req.headers());
    let request_headers = req.headers().clone();
    let method = req.method().clone();
    // The path only: query strings carry tokens and are never logged.
    let path = req.uri().path().to_string();
    let (label, response) = match (check_head(&req), table().at(&path)) {
        (Err(e), _) => ("unmatched", e.into_response()),
        (Ok(()), Err(_)) => ("unmatched", ApiError::NotFound("path").into_response()),
        (Ok(()), Ok(matched)) => {
            let route = *matched.value;
            let endpoint = Endpoint::parse(route, &matched.params);
            let response = if req.method() == Method::OPTIONS {
                http::cors::preflight(&state.config, req.headers(), route.methods())
            } else {
                match dispatch(state.clone(), route, endpoint, req, client).await {
                    Ok(response) => response,
                    Err(e) => e.into_response(),
                }
            };
            (route.template(), response)
        }
    };
    let mut response = response;
    http::cors::decorate(&state.config, &request_headers, &mut response);
    response.headers_mut().insert(
        REQUEST_ID,
        HeaderValue::from_str(&request_id).expect("request ids are checked header-safe"),
    );
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe(label, method.as_str(), status, elapsed.as_secs_f64());
    tracing::info!(
        target: "rtchat::access",
        method = %method,
        path = %logged(&path),
        status,
        duration_ms = millis(elapsed),
        request_id = %request_id,
        client = %client,
        user_id = user.get(),
        "request"
    );
    response
}

/// The request id header: taken from the client when sane, else generated; on every
/// response, and in the access log line, so a client's report finds the server's line.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Runs the handler of `(endpoint, method)`. A path id that did not parse answers 422 after
/// the caller's token is checked, as every handler with ids checks the token first.
async fn dispatch(
    state: Arc<AppState>,
    route: Route,
    endpoint: ApiResult<Endpoint>,
    mut req: Request<Incoming>,
    client_addr: IpAddr,
) -> ApiResult<Response<Body>> {
    let mut method = req.method().clone();
    if method == Method::HEAD && route.methods().contains(&Method::GET) {
        // The GET handler answers: hyper sends its status and headers, Content-Length
        // included, without the body. Never a WebSocket handshake (RFC 6455 takes GET only):
        // `/ws/notif` answers what a GET without one gets.
        method = Method::GET;
        *req.method_mut() = Method::GET;
        req.headers_mut().remove(UPGRADE);
    }
    let verb = match Verb::of(&method) {
        Some(verb) if route.methods().contains(&method) => verb,
        _ => return Err(ApiError::MethodNotAllowed(route.methods())),
    };
    if route == Route::WsNotif {
        return crate::ws::upgrade(state, req).await;
    }
    let (parts, body) = req.into_parts();
    let body = http::read_body(body).await?;
    let query = http::parse_query(parts.uri.query());
    let ctx = Ctx {
        state,
        parts,
        body,
        query,
        client_addr,
    };
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(e) => {
            ctx.caller()?;
            return Err(e);
        }
    };

    use http::*;
    use Endpoint::*;
    use Verb::*;
    match (endpoint, verb) {
        (Index, Get) => docs::index(ctx).await,
        (Docs, Get) => docs::docs_page(ctx).await,
        (DocsAsset { file }, Get) => docs::docs_asset(ctx, &file).await,
        (StaticAsset { file }, Get) => docs::static_asset(ctx, &file).await,
        (OpenApi, Get) => docs::openapi(ctx).await,
        (Healthz, Get) => health::healthz(ctx).await,
        (Readyz, Get) => health::readyz(ctx).await,
        (Metrics, Get) => health::metrics(ctx).await,
        (Register, Post) => auth::register(ctx).await,
        (Login, Post) => auth::login(ctx).await,
        (Refresh, Post) => auth::refresh(ctx).await,
        (Logout, Post) => auth::logout(ctx).await,
        (Me, Get) => auth::me(ctx).await,
        (Users, Get) => users::list_users(ctx).await,
        (User { user_id }, Get) => users::get_user(ctx, user_id).await,
        (Chats, Get) => chats::list_chats(ctx).await,
        (Chats, Post) => chats::create_chat(ctx).await,
        (Chat { chat_id }, Get) => chats::get_chat(ctx, chat_id).await,
        (Chat { chat_id }, Patch) => chats::update_chat(ctx, chat_id).await,
        (Chat { chat_id }, Delete) => chats::delete_chat(ctx, chat_id).await,
        (Members { chat_id }, Post) => members::add_members(ctx, chat_id).await,
        (Member { chat_id, user_id }, Delete) => {
            members::remove_member(ctx, chat_id, user_id).await
        }
        (Messages { chat_id }, Get) => messages::list_messages(ctx, chat_id).await,
        (Messages { chat_id }, Post) => messages::send_message(ctx, chat_id).await,
        (
            Message {
                chat_id,
                message_id,
            },
            Patch,
        ) => messages::edit_message(ctx, chat_id, message_id).await,
        (
            Message {
                chat_id,
                message_id,
            },
            Delete,
        ) => messages::delete_message(ctx, chat_id, message_id).await,
        (Reaction(r), Put) => reactions::add_reaction(ctx, r.chat_id, r.message_id, r.emoji).await,
        (Reaction(r), Delete) => {
            reactions::remove_reaction(ctx, r.chat_id, r.message_id, r.emoji).await
        }
        (Read { chat_id }, Post) => messages::mark_read(ctx, chat_id).await,
        (Events, Get) => events::list_events(ctx).await,
        (Reads { chat_id }, Get) => reads::list_reads(ctx, chat_id).await,
        (Unread, Get) => reads::get_unread(ctx).await,
        (SearchMessages, Get) => search::search_messages(ctx).await,
        (Presence, Get) => presence::get_presence(ctx).await,
        (WsNotif, Get) => unreachable!("upgraded above"),
        // What `Route::methods` refuses, refused above; listed so that a new endpoint or
        // method cannot compile without an answer.
        (
            Index
            | Docs
            | DocsAsset { .. }
            | StaticAsset { .. }
            | OpenApi
            | Healthz
            | Readyz
            | Metrics
            | Me
            | Users
            | User { .. }
            | Events
            | WsNotif
            | Reads { .. }
            | Unread
            | SearchMessages
            | Presence,
            Post | Put | Patch | Delete,
        )
        | (
            Register | Login | Refresh | Logout | Members { .. } | Read { .. },
            Get | Put | Patch | Delete,
        )
        | (Chats | Messages { .. }, Put | Patch | Delete)
        | (Chat { .. }, Post | Put)
        | (Member { .. }, Get | Post | Put | Patch)
        | (Message { .. }, Get | Post | Put)
        | (Reaction(_), Get | Post | Patch) => Err(ApiError::MethodNotAllowed(route.methods())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_cuts_long_paths() {
        assert_eq!(logged("/chats/1"), "/chats/1");
        let long = format!("/{}", "é".repeat(2000));
        let shown = logged(&long);
        assert!(shown.len() < MAX_LOGGED_PATH + 32, "{}", shown.len());
        assert!(
            shown.ends_with(&format!("...({} bytes)", long.len())),
            "{shown}"
        );
    }

    #[test]
    fn allow_lists_head_with_get_and_options_everywhere() {
        assert_eq!(
            crate::error::allow(&[Method::GET, Method::POST]),
            "GET, HEAD, POST, OPTIONS"
        );
        assert_eq!(crate::error::allow(&[Method::DELETE]), "DELETE, OPTIONS");
    }
}
