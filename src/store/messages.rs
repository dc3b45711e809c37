//! messages: history pages, edit, delete, read cursors, and the reaction counts every
//! Message carries (the send batch is `rtchat_send_messages`).

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::model::{Message, ReactionCount};
use crate::store::{StoreError, StoreResult};

/// The columns `message_from_row` reads.
pub(crate) const MESSAGE_COLUMNS: &str =
    "id, chat_id, sender_id, text, created_at, edited_at, client_id, reply_to, mentions";

/// A message as its row has it; its `reactions` are filled by `with_reactions`.
pub(crate) fn message_from_row(row: &Row) -> Message {
    Message {
        id: row.get("id"),
        chat_id: row.get("chat_id"),
        sender_id: row.get("sender_id"),
        text: row.get("text"),
        created_at: row.get("created_at"),
        edited_at: row.get("edited_at"),
        client_id: row.get("client_id"),
        reply_to: row.get("reply_to"),
        mentions: row.get("mentions"),
        reactions: Vec::new(),
        my_reactions: None,
    }
}

/// Fills `reactions` of these messages (and, for a `caller`, `my_reactions`) with one query
/// for all of them, whatever their number: a page, a chat list's last messages, search hits.
pub async fn with_reactions(
    client: &impl GenericClient,
    caller: Option<i64>,
    messages: &mut [Message],
) -> StoreResult<()> {
    with_reactions_each(client, caller, messages.iter_mut()).await
}

/// `with_reactions` for messages that are not in one slice (the `last_message` of chat views).
pub async fn with_reactions_each<'a>(
    client: &impl GenericClient,
    caller: Option<i64>,
    messages: impl IntoIterator<Item = &'a mut Message>,
) -> StoreResult<()> {
    let mut messages: Vec<&mut Message> = messages.into_iter().collect();
    for message in messages.iter_mut() {
        message.reactions.clear();
        message.my_reactions = caller.map(|_| Vec::new());
    }
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    // The primary key (message_id, emoji, user_id) serves `message_id = ANY`; min(id) is when
    // the emoji was first added, the order of `reactions`.
    let statement = client
        .prepare_cached(
            "SELECT message_id, emoji, count(*), coalesce(bool_or(user_id = $2), false)
             FROM message_reactions WHERE message_id = ANY($1)
             GROUP BY message_id, emoji
             ORDER BY message_id, min(id)",
        )
        .await?;
    let rows = client.query(&statement, &[&ids, &caller]).await?;
    let index: HashMap<i64, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i))
        .collect();
    for row in &rows {
        let Some(&i) = index.get(&row.get::<_, i64>(0)) else {
            continue;
        };
        let message = &mut messages[i];
        let emoji: String = row.get(1);
        if row.get::<_, bool>(3) {
            if let Some(mine) = message.my_reactions.as_mut() {
                mine.push(emoji.clone());
            }
        }
        message.reactions.push(ReactionCount {
            emoji,
            count: row.get(2),
        });
    }
    Ok(())
}

/// The message `id` as it is now; `NotFound` once deleted.
pub async fn get(client: &impl GenericClient, id: i64) -> StoreResult<Message> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&id])
        .await?
        .ok_or(StoreError::NotFound("message"))?;
    let mut message = message_from_row(&row);
    with_reactions(client, None, std::slice::from_mut(&mut message)).await?;
    Ok(message)
}

/// Where a page of history lies.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    /// The messages just before this id (`i64::MAX`: the latest).
    Before(i64),
    /// The messages just after this id.
    After(i64),
}

/// Up to `limit` messages of `chat_id` (no membership check) on the given side of the cursor,
/// ascending by id, with their reactions as `caller` sees them; and whether more lie beyond
/// the page in the paging direction.
pub async fn page(
    client: &impl GenericClient,
    chat_id: i64,
    caller: i64,
    page: Page,
    limit: i64,
) -> StoreResult<(Vec<Message>, bool)> {
    let (sql, cursor) = match page {
        Page::After(after) => (
            format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3"),
            after,
        ),
        Page::Before(before) => (
            format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
            before,
        ),
    };
    let statement = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&statement, &[&chat_id, &cursor, &(limit + 1)])
        .await?;
    let has_more = rows.len() as i64 > limit;
    let mut messages: Vec<Message> = rows
        .iter()
        .take(limit as usize)
        .map(message_from_row)
        .collect();
    if let Page::Before(_) = page {
        messages.reverse();
    }
    with_reactions(client, Some(caller), &mut messages).await?;
    Ok((messages, has_more))
}

/// The sender of a message of this chat; `NotFound` if there is none.
pub async fn sender(
    client: &impl GenericClient,
    chat_id: i64,
    message_id: i64,
) -> StoreResult<i64> {
    let statement = client
        .prepare_cached("SELECT sender_id FROM messages WHERE id = $1 AND chat_id = $2")
        .await?;
    Ok(client
        .query_opt(&statement, &[&message_id, &chat_id])
        .await?
        .ok_or(StoreError::NotFound("message"))?
        .get(0))
}

/// Replaces the text and/or the mentions (`None`: unchanged) of a message of the locked chat,
/// keeping `message_mentions` in step; the message as it is then, reactions included.
/// `mentions` are ascending, without duplicates, and members (the caller checked them under
/// the lock).
pub async fn edit(
    tx: &impl GenericClient,
    chat_id: i64,
    message_id: i64,
    text: Option<&str>,
    mentions: Option<&[i64]>,
) -> StoreResult<Message> {
    let statement = tx
        .prepare_cached(&format!(
            "UPDATE messages SET text = coalesce($3, text), mentions = coalesce($4, mentions),
                 edited_at = now()
             WHERE id = $1 AND chat_id = $2
             RETURNING {MESSAGE_COLUMNS}"
        ))
        .await?;
    let row = tx
        .query_one(&statement, &[&message_id, &chat_id, &text, &mentions])
        .await?;
    let mut message = message_from_row(&row);
    if let Some(mentions) = mentions {
        // The difference only: rows of users still mentioned stay as they are.
        let statement = tx
            .prepare_cached(
                "DELETE FROM message_mentions WHERE message_id = $1 AND user_id <> ALL($2)",
            )
            .await?;
        tx.execute(&statement, &[&message_id, &mentions]).await?;
        let statement = tx
            .prepare_cached(
                "INSERT INTO message_mentions (user_id, chat_id, message_id)
                 SELECT u, $2, $1 FROM unnest($3::bigint[]) AS u WHERE u <> $4
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        tx.execute(
            &statement,
            &[&message_id, &chat_id, &mentions, &message.sender_id],
        )
        .await?;
    }
    with_reactions(tx, None, std::slice::from_mut(&mut message)).await?;
    Ok(message)
}

/// Deletes a message of the locked chat.
pub async fn delete(tx: &impl GenericClient, chat_id: i64, message_id: i64) -> StoreResult<()> {
    let statement = tx
        .prepare_cached("DELETE FROM messages WHERE id = $1 AND chat_id = $2")
        .await?;
    tx.execute(&statement, &[&message_id, &chat_id]).await?;
    Ok(())
}

/// Moves `user_id`'s read cursor in the locked chat forward to `message_id` (never back);
/// whether it moved. `Invalid` on `message_id` unless it is a message of this chat.
pub async fn move_read_cursor(
    tx: &impl GenericClient,
    chat_id: i64,
    user_id: i64,
    message_id: i64,
) -> StoreResult<bool> {
    let in_chat = match sender(tx, chat_id, message_id).await {
        Ok(_) => true,
        Err(StoreError::NotFound(_)) => false,
        Err(e) => return Err(e),
    };
    if message_id <= 0 || !in_chat {
        return Err(StoreError::Invalid {
            field: "message_id",
            message: "is not a message of this chat".into(),
        });
    }
    let statement = tx
        .prepare_cached(
            "UPDATE chat_members SET last_read_message_id = $3
             WHERE chat_id = $1 AND user_id = $2
               AND (last_read_message_id IS NULL OR last_read_message_id < $3)",
        )
        .await?;
    let moved = tx
        .execute(&statement, &[&chat_id, &user_id, &message_id])
        .await?;
    Ok(moved > 0)
}
