//! The JSON shapes of the contract (User, Chat, Message): one definition serves REST
//! responses and WebSocket payloads alike. The store reads them from rows; the one shape built
//! elsewhere, the `new_message` payload of `rtchat_send_messages` in schema.sql, must equal
//! `Message` key for key (tests/api/wire.rs holds them together), `my_reactions` aside: only
//! GET responses carry that, the caller's own.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use tokio_postgres::Row;

/// RFC 3339 UTC with `Z` and microseconds, as the contract shows.
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// `{id, email, name, created_at}`.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The columns `User::from_row` reads from `users`.
pub const USER_COLUMNS: &str = "id, email, name, created_at";

impl User {
    pub fn from_row(row: &Row) -> User {
        User {
            id: row.get("id"),
            email: row.get("email"),
            name: row.get("name"),
            created_at: row.get("created_at"),
        }
    }
}

/// `{id, chat_id, sender_id, text, created_at, edited_at, client_id, reply_to, mentions,
/// reactions}`, and `my_reactions` in GET responses for the caller.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: i64,
    pub chat_id: i64,
    pub sender_id: i64,
    pub text: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub edited_at: Option<DateTime<Utc>>,
    pub client_id: Option<String>,
    /// A message of the same chat (which may have been deleted since).
    pub reply_to: Option<i64>,
    /// Ascending, without duplicates.
    pub mentions: Vec<i64>,
    /// In the order each emoji was first added.
    pub reactions: Vec<ReactionCount>,
    /// The caller's own emoji, in the order of `reactions`: only in GET responses for the
    /// caller, never in event payloads (which every member shares).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_reactions: Option<Vec<String>>,
}

/// One emoji of a message's `reactions`: `{emoji, count}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
}

/// `{id, type, title, creator_id, is_active, participant_ids, created_at, updated_at}`:
/// the payload of `create_chat` and `update_chat`.
#[derive(Debug, Clone, Serialize)]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: Option<String>,
    pub creator_id: i64,
    pub is_active: bool,
    /// Ascending.
    pub participant_ids: Vec<i64>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// A chat as its member sees it in GET responses: the chat plus their unread state.
#[derive(Debug, Clone, Serialize)]
pub struct ChatView {
    #[serde(flatten)]
    pub chat: Chat,
    pub last_message: Option<Message>,
    pub unread_count: i64,
    /// Of the `unread_count` messages, those that mention the caller.
    pub unread_mentions: i64,
    pub last_read_message_id: Option<i64>,
}
