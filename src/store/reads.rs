//! read state: every member's read cursor in a chat, and a user's unread totals over their
//! active chats.

use deadpool_postgres::GenericClient;
use serde::Serialize;

use crate::store::chats::MAX_UNREAD_COUNT;
use crate::store::StoreResult;

/// One member's read cursor, as `GET /chats/{id}/reads` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ReadCursor {
    pub user_id: i64,
    /// `None` while they never read.
    pub last_read_message_id: Option<i64>,
}

/// Every current member's read cursor in `chat_id`, ascending by user id (no membership
/// check). A group has at most `MAX_GROUP_MEMBERS` (1,000) members, so this is one bounded
/// page: a primary-key range of `chat_members`.
pub async fn chat_reads(client: &impl GenericClient, chat_id: i64) -> StoreResult<Vec<ReadCursor>> {
    let statement = client
        .prepare_cached(
            "SELECT user_id, last_read_message_id FROM chat_members
             WHERE chat_id = $1 ORDER BY user_id",
        )
        .await?;
    Ok(client
        .query(&statement, &[&chat_id])
        .await?
        .iter()
        .map(|row| ReadCursor {
            user_id: row.get(0),
            last_read_message_id: row.get(1),
        })
        .collect())
}

/// `GET /unread`: totals over the caller's active chats, each chat counted as its Chat view
/// counts it (`unread_count` and `unread_mentions`, each capped at `MAX_UNREAD_COUNT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnreadTotals {
    /// Messages by others after the read cursors.
    pub messages: i64,
    /// Chats with at least one such message.
    pub chats: i64,
    /// Those messages that mention the caller.
    pub mentions: i64,
}

/// `user_id`'s unread totals, in one statement. For each of their chats it costs two index
/// range scans after the read cursor (`messages_chat_id_sender_idx` for messages,
/// `message_mentions_pkey` for mentions), each stopping at `MAX_UNREAD_COUNT` rows: a user in
/// K chats pays K pairs of probes plus the unread rows counted, never the rows already read.
pub async fn unread_totals(client: &impl GenericClient, user_id: i64) -> StoreResult<UnreadTotals> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT coalesce(sum(u.messages), 0)::bigint,
                    count(*) FILTER (WHERE u.messages > 0),
                    coalesce(sum(u.mentions), 0)::bigint
             FROM chat_members cm
             JOIN chats c ON c.id = cm.chat_id AND c.is_active
             CROSS JOIN LATERAL (
                 SELECT (SELECT count(*) FROM (
                             SELECT 1 FROM messages m
                             WHERE m.chat_id = cm.chat_id
                               AND m.id > coalesce(cm.last_read_message_id, 0)
                               AND m.sender_id <> $1
                             LIMIT {MAX_UNREAD_COUNT}) x) AS messages,
                        (SELECT count(*) FROM (
                             SELECT 1 FROM message_mentions mm
                             WHERE mm.user_id = $1 AND mm.chat_id = cm.chat_id
                               AND mm.message_id > coalesce(cm.last_read_message_id, 0)
                             LIMIT {MAX_UNREAD_COUNT}) y) AS mentions
                 -- Not flattened into the outer query, where the message count would be
                 -- computed twice (once for the sum, once for the filter).
                 OFFSET 0
             ) u
             WHERE cm.user_id = $1"
        ))
        .await?;
    let row = client.query_one(&statement, &[&user_id]).await?;
    Ok(UnreadTotals {
        messages: row.get(0),
        chats: row.get(1),
        mentions: row.get(2),
    })
}
