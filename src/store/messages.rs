//! messages: history pages, edit, delete, read cursors (the send batch is `rtchat_send_messages`).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::model::Message;
use crate::store::{StoreError, StoreResult};

/// The columns `message_from_row` reads.
pub(crate) const MESSAGE_COLUMNS: &str =
    "id, chat_id, sender_id, text, created_at, edited_at, client_id";

pub(crate) fn message_from_row(row: &Row) -> Message {
    Message {
        id: row.get("id"),
        chat_id: row.get("chat_id"),
        sender_id: row.get("sender_id"),
        text: row.get("text"),
        created_at: row.get("created_at"),
        edited_at: row.get("edited_at"),
        client_id: row.get("client_id"),
    }
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
    Ok(message_from_row(&row))
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
/// ascending by id; and whether more lie beyond the page in the paging direction.
pub async fn page(
    client: &impl GenericClient,
    chat_id: i64,
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

/// Replaces the text of a message of the locked chat; the message as it is then.
pub async fn edit(
    tx: &impl GenericClient,
    chat_id: i64,
    message_id: i64,
    text: &str,
) -> StoreResult<Message> {
    let statement = tx
        .prepare_cached(&format!(
            "UPDATE messages SET text = $3, edited_at = now() WHERE id = $1 AND chat_id = $2
             RETURNING {MESSAGE_COLUMNS}"
        ))
        .await?;
    let row = tx
        .query_one(&statement, &[&message_id, &chat_id, &text])
        .await?;
    Ok(message_from_row(&row))
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
