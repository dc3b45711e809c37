//! reactions: a member's emoji on a message, added and taken back one at a time, under the
//! chat's lock (so the counts events report follow one another with no repeat).

use deadpool_postgres::GenericClient;

use crate::store::{StoreError, StoreResult};

/// Most distinct emoji on one message: what a message row can show, and a bound on what each
/// message adds to every page and event that carries its `reactions`.
pub const MAX_EMOJI_PER_MESSAGE: i64 = 20;

/// What adding a reaction did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reacted {
    /// The reaction is new; the emoji's count after it.
    Added(i64),
    /// The user had this reaction already: nothing changed.
    Unchanged,
    /// The message has `MAX_EMOJI_PER_MESSAGE` other emoji already: nothing changed.
    TooMany,
}

/// `NotFound` unless `message_id` is a message of `chat_id`.
async fn check_message(tx: &impl GenericClient, chat_id: i64, message_id: i64) -> StoreResult<()> {
    let statement = tx
        .prepare_cached("SELECT 1 FROM messages WHERE id = $1 AND chat_id = $2")
        .await?;
    tx.query_opt(&statement, &[&message_id, &chat_id])
        .await?
        .ok_or(StoreError::NotFound("message"))?;
    Ok(())
}

/// The count of one emoji on a message.
async fn count(tx: &impl GenericClient, message_id: i64, emoji: &str) -> StoreResult<i64> {
    let statement = tx
        .prepare_cached(
            "SELECT count(*) FROM message_reactions WHERE message_id = $1 AND emoji = $2",
        )
        .await?;
    Ok(tx
        .query_one(&statement, &[&message_id, &emoji])
        .await?
        .get(0))
}

/// Adds `user_id`'s `emoji` to a message of the chat the transaction `tx` has locked (every
/// reaction change of the message holds that lock, so what this reads stays true until
/// commit).
pub async fn add(
    tx: &impl GenericClient,
    chat_id: i64,
    message_id: i64,
    user_id: i64,
    emoji: &str,
) -> StoreResult<Reacted> {
    check_message(tx, chat_id, message_id).await?;
    let statement = tx
        .prepare_cached(
            "SELECT count(DISTINCT emoji), coalesce(bool_or(emoji = $2), false),
                    coalesce(bool_or(emoji = $2 AND user_id = $3), false)
             FROM message_reactions WHERE message_id = $1",
        )
        .await?;
    let row = tx
        .query_one(&statement, &[&message_id, &emoji, &user_id])
        .await?;
    let (distinct, present, mine): (i64, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if mine {
        return Ok(Reacted::Unchanged);
    }
    if !present && distinct >= MAX_EMOJI_PER_MESSAGE {
        return Ok(Reacted::TooMany);
    }
    let statement = tx
        .prepare_cached(
            "INSERT INTO message_reactions (message_id, emoji, user_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    if tx
        .execute(&statement, &[&message_id, &emoji, &user_id])
        .await?
        == 0
    {
        return Ok(Reacted::Unchanged);
    }
    Ok(Reacted::Added(count(tx, message_id, emoji).await?))
}

/// Takes `user_id`'s `emoji` off a message of the chat `tx` has locked: the emoji's count
/// after it, or `None` when the user had no such reaction (nothing changed).
pub async fn remove(
    tx: &impl GenericClient,
    chat_id: i64,
    message_id: i64,
    user_id: i64,
    emoji: &str,
) -> StoreResult<Option<i64>> {
    check_message(tx, chat_id, message_id).await?;
    let statement = tx
        .prepare_cached(
            "DELETE FROM message_reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
        )
        .await?;
    if tx
        .execute(&statement, &[&message_id, &emoji, &user_id])
        .await?
        == 0
    {
        return Ok(None);
    }
    Ok(Some(count(tx, message_id, emoji).await?))
}
