//! chats: create (private pairs de-duplicated), read as a member sees them, list, update, delete; the rules of who may see, send, edit and manage a chat.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::model::{Chat, ChatView, Message};
use crate::store::members::chat_members;
use crate::store::messages::with_reactions_each;
use crate::store::{StoreError, StoreResult};

mod rules;

pub use rules::ChatAccess;

/// How long a chat write waits for its turn: first behind the other writers of the chat in
/// this process, then for the row lock in PostgreSQL (`lock_timeout`: other processes and the
/// send batches). Long enough for dozens of ordinary writes of a 1,000-member chat ahead of
/// it; past it the write answers 503 `server_busy` instead of keeping a pooled connection
/// that every other request may be waiting for.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Unread counts (`unread_count`, `unread_mentions`, and each chat's share of `GET /unread`)
/// stop counting here, so a huge backlog costs a bounded scan.
pub const MAX_UNREAD_COUNT: i64 = 10_000;
/// Attempts of one private chat creation. Another attempt is needed only when the pair's chat
/// was deleted between two statements of the previous one; five such deletes in a row mean
/// someone deletes it as fast as it appears, and the create gives up (`server_busy`).
pub const MAX_CREATE_ATTEMPTS: usize = 5;

/// The columns `chat_from_row` reads, with participants aggregated in ascending order, from
/// `chats c`.
const CHAT_COLUMNS: &str = "c.id, c.type, c.title, c.creator_id, c.is_active, c.created_at, c.updated_at, \
     ARRAY(SELECT m.user_id FROM chat_members m WHERE m.chat_id = c.id ORDER BY m.user_id) AS participant_ids";

fn chat_from_row(row: &Row) -> Chat {
    Chat {
        id: row.get("id"),
        kind: row.get("type"),
        title: row.get("title"),
        creator_id: row.get("creator_id"),
        is_active: row.get("is_active"),
        participant_ids: row.get("participant_ids"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// The chat `chat_id` if `caller` is a member, read without a lock; `NotFound` otherwise
/// (also when it does not exist: a stranger learns nothing).
pub async fn member_access(
    client: &impl GenericClient,
    chat_id: i64,
    caller: i64,
) -> StoreResult<ChatAccess> {
    let statement = client
        .prepare_cached(
            "SELECT c.type, c.creator_id, c.is_active FROM chats c
             JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $2
             WHERE c.id = $1",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&chat_id, &caller])
        .await?
        .ok_or(StoreError::NotFound("chat"))?;
    Ok(ChatAccess {
        chat_id,
        caller,
        kind: row.get(0),
        creator_id: row.get(1),
        is_active: row.get(2),
    })
}

/// A chat row locked for the rest of the transaction: the caller's access as it is under the
/// lock, and the members read after the lock.
pub struct LockedChat {
    pub access: ChatAccess,
    /// Ascending.
    pub members: Vec<i64>,
}

/// Bounds every lock wait of the rest of the transaction `client` by `LOCK_WAIT`; a wait that
/// runs out fails with SQLSTATE 55P03, which is `StoreError::Busy`.
pub async fn bound_lock_waits(client: &impl GenericClient) -> StoreResult<()> {
    client
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = {}",
            LOCK_WAIT.as_millis()
        ))
        .await?;
    Ok(())
}

/// Locks the chat `access` saw (the first lock of every chat write, see `events`), after
/// bounding the wait, and reads its members. `NotFound` if the chat went, or the caller
/// stopped being a member, since `access` was read.
pub async fn lock_chat(
    client: &impl GenericClient,
    access: &ChatAccess,
) -> StoreResult<LockedChat> {
    bound_lock_waits(client).await?;
    let statement = client
        .prepare_cached(
            "SELECT type, creator_id, is_active FROM chats WHERE id = $1 FOR NO KEY UPDATE",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&access.chat_id])
        .await?
        .ok_or(StoreError::NotFound("chat"))?;
    // Read in a new statement, after the lock: membership changes take the same lock, so
    // this sees all of them.
    let members = chat_members(client, access.chat_id).await?;
    if !members.contains(&access.caller) {
        return Err(StoreError::NotFound("chat"));
    }
    Ok(LockedChat {
        access: ChatAccess {
            chat_id: access.chat_id,
            caller: access.caller,
            kind: row.get(0),
            creator_id: row.get(1),
            is_active: row.get(2),
        },
        members,
    })
}

/// The chat as the event payload shows it.
pub async fn load_chat(client: &impl GenericClient, chat_id: i64) -> StoreResult<Chat> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {CHAT_COLUMNS} FROM chats c WHERE c.id = $1"
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&chat_id])
        .await?
        .ok_or(StoreError::NotFound("chat"))?;
    Ok(chat_from_row(&row))
}

/// The select list of a `ChatView` for member `$1`; the query joins `chats c` and
/// `chat_members cm` (the caller's row).
fn view_select() -> String {
    format!(
        "SELECT {CHAT_COLUMNS}, cm.last_read_message_id,
            lm.id AS lm_id, lm.sender_id AS lm_sender_id, lm.text AS lm_text,
            lm.created_at AS lm_created_at, lm.edited_at AS lm_edited_at, lm.client_id AS lm_client_id,
            lm.reply_to AS lm_reply_to, lm.mentions AS lm_mentions,
            (SELECT count(*) FROM (
                SELECT 1 FROM messages u
                WHERE u.chat_id = c.id AND u.id > coalesce(cm.last_read_message_id, 0) AND u.sender_id <> $1
                LIMIT {MAX_UNREAD_COUNT}) unread) AS unread_count,
            (SELECT count(*) FROM (
                SELECT 1 FROM message_mentions mm
                WHERE mm.user_id = $1 AND mm.chat_id = c.id
                  AND mm.message_id > coalesce(cm.last_read_message_id, 0)
                LIMIT {MAX_UNREAD_COUNT}) mentioned) AS unread_mentions
         FROM chat_members cm
         JOIN chats c ON c.id = cm.chat_id
         LEFT JOIN LATERAL (
             SELECT * FROM messages m WHERE m.chat_id = c.id ORDER BY m.id DESC LIMIT 1
         ) lm ON true"
    )
}

fn view_from_row(row: &Row) -> ChatView {
    let chat = chat_from_row(row);
    let last_message = row.get::<_, Option<i64>>("lm_id").map(|id| Message {
        id,
        chat_id: chat.id,
        sender_id: row.get("lm_sender_id"),
        text: row.get("lm_text"),
        created_at: row.get("lm_created_at"),
        edited_at: row.get("lm_edited_at"),
        client_id: row.get("lm_client_id"),
        reply_to: row.get("lm_reply_to"),
        mentions: row.get("lm_mentions"),
        reactions: Vec::new(),
        my_reactions: None,
    });
    ChatView {
        chat,
        last_message,
        unread_count: row.get("unread_count"),
        unread_mentions: row.get("unread_mentions"),
        last_read_message_id: row.get("last_read_message_id"),
    }
}

/// The chat as member `user_id` sees it; `NotFound` if they are not a member.
pub async fn load_view(
    client: &impl GenericClient,
    chat_id: i64,
    user_id: i64,
) -> StoreResult<ChatView> {
    let statement = client
        .prepare_cached(&format!(
            "{} WHERE cm.user_id = $1 AND cm.chat_id = $2",
            view_select()
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&user_id, &chat_id])
        .await?
        .ok_or(StoreError::NotFound("chat"))?;
    let mut view = view_from_row(&row);
    with_reactions_each(client, Some(user_id), view.last_message.as_mut()).await?;
    Ok(view)
}

/// One page of `user_id`'s chats, most recent activity first, after the chat `before` (one of
/// theirs, else `Invalid` on `before`); and whether more follow.
pub async fn list_views(
    client: &impl GenericClient,
    user_id: i64,
    before: Option<i64>,
    limit: i64,
) -> StoreResult<(Vec<ChatView>, bool)> {
    if let Some(before) = before {
        if !crate::store::members::is_member(client, before, user_id).await? {
            return Err(StoreError::Invalid {
                field: "before",
                message: "is not one of your chats".into(),
            });
        }
    }
    let statement = client
        .prepare_cached(&format!(
            "{} WHERE cm.user_id = $1
               AND ($2::bigint IS NULL OR (c.last_activity_at, c.id) <
                    (SELECT b.last_activity_at, b.id FROM chats b WHERE b.id = $2))
             ORDER BY c.last_activity_at DESC, c.id DESC
             LIMIT $3",
            view_select()
        ))
        .await?;
    let rows = client
        .query(&statement, &[&user_id, &before, &(limit + 1)])
        .await?;
    let has_more = rows.len() as i64 > limit;
    let mut views: Vec<ChatView> = rows
        .iter()
        .take(limit as usize)
        .map(view_from_row)
        .collect();
    let last_messages = views.iter_mut().filter_map(|v| v.last_message.as_mut());
    with_reactions_each(client, Some(user_id), last_messages).await?;
    Ok((views, has_more))
}

/// A chat to create: its members (the creator among them, ascending) and, for a private
/// chat, nothing else: its key is the pair.
pub struct NewChat<'a> {
    pub private: bool,
    pub title: Option<&'a str>,
    pub creator_id: i64,
    pub members: &'a [i64],
}

/// What one attempt of `create` did.
pub enum Created {
    /// The chat is created in the transaction, which the caller commits: the chat as events
    /// show it, and as its creator sees it (read before the commit: once committed, a member
    /// may delete it at once, and the answer is still the chat this request created).
    New { chat: Chat, view: ChatView },
    /// The pair's private chat exists already, as the creator sees it; nothing was written.
    Existing(ChatView),
    /// The pair's private chat was deleted while this attempt looked at it: try again in a
    /// new transaction, at most `MAX_CREATE_ATTEMPTS` times.
    Vanished,
    /// The creator's user row is gone (a token outliving its user, as after a restore).
    CreatorGone,
}

/// One attempt at creating `new` in the transaction `tx` (whose lock waits are bounded).
pub async fn create(tx: &impl GenericClient, new: &NewChat<'_>) -> StoreResult<Created> {
    bound_lock_waits(tx).await?;
    let (kind, private_key) = if new.private {
        let pair = format!("{}:{}", new.members[0], new.members[1]);
        ("private", Some(pair))
    } else {
        ("group", None)
    };
    // A concurrent creation of the same private pair waits on the unique key here, then does
    // nothing; the existing chat is then read below.
    let statement = tx
        .prepare_cached(
            "INSERT INTO chats (type, title, creator_id, private_key) VALUES ($1, $2, $3, $4)
             ON CONFLICT ON CONSTRAINT chats_private_key_key DO NOTHING RETURNING id",
        )
        .await?;
    let inserted = match tx
        .query_opt(
            &statement,
            &[&kind, &new.title, &new.creator_id, &private_key],
        )
        .await
    {
        Ok(row) => row,
        Err(e) if e.as_db_error().and_then(|db| db.constraint()) == Some("chats_creator_fkey") => {
            return Ok(Created::CreatorGone)
        }
        Err(e) => return Err(e.into()),
    };
    let Some(row) = inserted else {
        // A new statement, so a new snapshot: it sees a delete committed since the insert
        // found the conflict.
        let statement = tx
            .prepare_cached(&format!(
                "{} WHERE cm.user_id = $1 AND c.private_key = $2",
                view_select()
            ))
            .await?;
        let existing = tx
            .query_opt(&statement, &[&new.creator_id, &private_key])
            .await?;
        return Ok(match existing {
            Some(row) => {
                let mut view = view_from_row(&row);
                let last_message = view.last_message.as_mut();
                with_reactions_each(tx, Some(new.creator_id), last_message).await?;
                Created::Existing(view)
            }
            None => Created::Vanished,
        });
    };
    let chat_id: i64 = row.get(0);
    crate::store::members::insert(tx, chat_id, new.members).await?;
    let chat = load_chat(tx, chat_id).await?;
    let view = load_view(tx, chat_id, new.creator_id).await?;
    Ok(Created::New { chat, view })
}

/// Sets the title (`Some(None)` clears it) and the active flag where given; whether anything
/// changed (nothing is written otherwise).
pub async fn update(
    tx: &impl GenericClient,
    chat_id: i64,
    title: Option<Option<&str>>,
    is_active: Option<bool>,
) -> StoreResult<bool> {
    let statement = tx
        .prepare_cached(
            "UPDATE chats SET
                 title = CASE WHEN $2 THEN $3::text ELSE title END,
                 is_active = coalesce($4::boolean, is_active),
                 updated_at = now()
             WHERE id = $1
               AND ((($2 AND title IS DISTINCT FROM $3)) OR ($4::boolean IS NOT NULL AND is_active <> $4::boolean))",
        )
        .await?;
    let changed = tx
        .execute(
            &statement,
            &[&chat_id, &title.is_some(), &title.flatten(), &is_active],
        )
        .await?;
    Ok(changed > 0)
}

/// Deletes the chat with its members and messages.
pub async fn delete(tx: &impl GenericClient, chat_id: i64) -> StoreResult<()> {
    let statement = tx.prepare_cached("DELETE FROM chats WHERE id = $1").await?;
    tx.execute(&statement, &[&chat_id]).await?;
    Ok(())
}
