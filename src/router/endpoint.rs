//! The endpoint a request names: its route with the path ids parsed once (422 naming the
//! first bad one), and the method as the handlers take it.

use hyper::Method;

use super::Route;
use crate::error::{ApiError, ApiResult};

/// A matched route with its path parameters parsed, once, into owned values: what a handler
/// gets instead of looking parameters up by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Index,
    Docs,
    DocsAsset { file: String },
    StaticAsset { file: String },
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
    User { user_id: i64 },
    Chats,
    Chat { chat_id: i64 },
    Members { chat_id: i64 },
    Member { chat_id: i64, user_id: i64 },
    Messages { chat_id: i64 },
    Message { chat_id: i64, message_id: i64 },
    Reaction(ReactionPath),
    Read { chat_id: i64 },
    Events,
    WsNotif,
    Reads { chat_id: i64 },
    Unread,
    SearchMessages,
    Presence,
}

/// What a reaction path names: a message of a chat, and the emoji (percent-decoded and
/// checked, see `http::reactions::emoji_from_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionPath {
    pub chat_id: i64,
    pub message_id: i64,
    pub emoji: String,
}

impl Endpoint {
    /// The endpoint of `route` with the parameters its template matched; 422 naming the first
    /// id (in path order) that is not a positive 64-bit integer.
    pub fn parse(route: Route, params: &matchit::Params<'_, '_>) -> ApiResult<Endpoint> {
        let id = |name: &str| path_id(name, params.get(name).unwrap_or(""));
        let file = || params.get("file").unwrap_or("").to_string();
        use Endpoint as E;
        Ok(match route {
            Route::Index => E::Index,
            Route::Docs => E::Docs,
            Route::DocsAsset => E::DocsAsset { file: file() },
            Route::StaticAsset => E::StaticAsset { file: file() },
            Route::OpenApi => E::OpenApi,
            Route::Healthz => E::Healthz,
            Route::Readyz => E::Readyz,
            Route::Metrics => E::Metrics,
            Route::Register => E::Register,
            Route::Login => E::Login,
            Route::Refresh => E::Refresh,
            Route::Logout => E::Logout,
            Route::Me => E::Me,
            Route::Users => E::Users,
            Route::User => E::User {
                user_id: id("user_id")?,
            },
            Route::Chats => E::Chats,
            Route::Chat => E::Chat {
                chat_id: id("chat_id")?,
            },
            Route::Members => E::Members {
                chat_id: id("chat_id")?,
            },
            Route::Member => E::Member {
                chat_id: id("chat_id")?,
                user_id: id("user_id")?,
            },
            Route::Messages => E::Messages {
                chat_id: id("chat_id")?,
            },
            Route::Message => E::Message {
                chat_id: id("chat_id")?,
                message_id: id("message_id")?,
            },
            // The ids first, in path order, then the emoji.
            Route::Reaction => E::Reaction(ReactionPath {
                chat_id: id("chat_id")?,
                message_id: id("message_id")?,
                emoji: crate::http::reactions::emoji_from_path(params.get("emoji").unwrap_or(""))?,
            }),
            Route::Read => E::Read {
                chat_id: id("chat_id")?,
            },
            Route::Events => E::Events,
            Route::WsNotif => E::WsNotif,
            Route::Reads => E::Reads {
                chat_id: id("chat_id")?,
            },
            Route::Unread => E::Unread,
            Route::SearchMessages => E::SearchMessages,
            Route::Presence => E::Presence,
        })
    }
}

/// A positive 64-bit id from the path as sent (not percent-decoded), or 422 naming it.
fn path_id(name: &str, raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::field(name, "must be a positive 64-bit integer"))
}

/// The methods a handler takes (HEAD is answered as GET, OPTIONS by the CORS preflight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    pub(super) fn of(method: &Method) -> Option<Verb> {
        match *method {
            Method::GET => Some(Verb::Get),
            Method::POST => Some(Verb::Post),
            Method::PUT => Some(Verb::Put),
            Method::PATCH => Some(Verb::Patch),
            Method::DELETE => Some(Verb::Delete),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::table;

    fn endpoint(path: &str) -> ApiResult<Endpoint> {
        let matched = table().at(path).expect("a route");
        Endpoint::parse(*matched.value, &matched.params)
    }

    fn refused_field(r: ApiResult<Endpoint>) -> String {
        match r {
            Err(ApiError::Validation(fields)) => fields[0].field.clone(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn path_ids_are_parsed_once_into_the_endpoint() {
        assert_eq!(
            endpoint("/chats/7/messages/9").unwrap(),
            Endpoint::Message {
                chat_id: 7,
                message_id: 9
            }
        );
        assert_eq!(
            endpoint("/chats/9223372036854775807").unwrap(),
            Endpoint::Chat { chat_id: i64::MAX }
        );
        assert_eq!(
            endpoint("/docs/x.js").unwrap(),
            Endpoint::DocsAsset {
                file: "x.js".into()
            }
        );
        for bad in ["0", "-1", "abc", "9223372036854775808", "%31", "1.0", " 1"] {
            assert_eq!(refused_field(endpoint(&format!("/chats/{bad}"))), "chat_id");
            assert_eq!(refused_field(endpoint(&format!("/users/{bad}"))), "user_id");
        }
        // Rust's integer parsing takes a leading plus, as `Ctx::path_id` did.
        assert_eq!(
            endpoint("/chats/+1").unwrap(),
            Endpoint::Chat { chat_id: 1 }
        );
        // The first bad id in path order is named, as the handlers named it.
        assert_eq!(refused_field(endpoint("/chats/x/members/y")), "chat_id");
        assert_eq!(refused_field(endpoint("/chats/1/members/y")), "user_id");
        assert_eq!(refused_field(endpoint("/chats/1/messages/0")), "message_id");
        // A reaction path: the ids first, in path order, then the emoji, percent-decoded.
        assert_eq!(
            endpoint("/chats/7/messages/9/reactions/%F0%9F%91%8D").unwrap(),
            Endpoint::Reaction(ReactionPath {
                chat_id: 7,
                message_id: 9,
                emoji: "👍".into()
            })
        );
        assert_eq!(
            refused_field(endpoint("/chats/x/messages/0/reactions/%ZZ")),
            "chat_id"
        );
        assert_eq!(
            refused_field(endpoint("/chats/1/messages/0/reactions/%ZZ")),
            "message_id"
        );
        assert_eq!(
            refused_field(endpoint("/chats/1/messages/9/reactions/%ZZ")),
            "emoji"
        );
    }
}
