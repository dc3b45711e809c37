//! chat membership: add, remove (with the creator's hand-over), read.

use deadpool_postgres::GenericClient;

use crate::model::Chat;
use crate::store::chats::{delete, load_chat};
use crate::store::{StoreError, StoreResult};

/// The members of a chat, ascending.
pub async fn chat_members(client: &impl GenericClient, chat_id: i64) -> StoreResult<Vec<i64>> {
    let statement = client
        .prepare_cached("SELECT user_id FROM chat_members WHERE chat_id = $1 ORDER BY user_id")
        .await?;
    Ok(client
        .query(&statement, &[&chat_id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Whether `user_id` is a member of `chat_id` (no lock).
pub async fn is_member(
    client: &impl GenericClient,
    chat_id: i64,
    user_id: i64,
) -> StoreResult<bool> {
    let statement = client
        .prepare_cached("SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $2")
        .await?;
    Ok(client
        .query_opt(&statement, &[&chat_id, &user_id])
        .await?
        .is_some())
}

/// Checks that every id in `ids` is a registered user; `Invalid` on `field` naming the
/// unknown ones.
pub async fn check_users_exist(
    client: &impl GenericClient,
    ids: &[i64],
    field: &'static str,
) -> StoreResult<()> {
    let statement = client
        .prepare_cached("SELECT array_agg(id) FROM users WHERE id = ANY($1)")
        .await?;
    let found: Vec<i64> = client
        .query_one(&statement, &[&ids])
        .await?
        .get::<_, Option<Vec<i64>>>(0)
        .unwrap_or_default();
    let unknown: Vec<String> = ids
        .iter()
        .filter(|id| !found.contains(id))
        .map(i64::to_string)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field,
            message: format!("unknown user ids: {}", unknown.join(", ")),
        })
    }
}

/// Makes `users` members of `chat_id` (none of them may be one already).
pub async fn insert(tx: &impl GenericClient, chat_id: i64, users: &[i64]) -> StoreResult<()> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO chat_members (chat_id, user_id) SELECT $1, unnest($2::bigint[])",
        )
        .await?;
    tx.execute(&statement, &[&chat_id, &users]).await?;
    Ok(())
}

/// Adds `new` users (none a member yet) to the locked chat; the chat as it is then.
pub async fn add(tx: &impl GenericClient, chat_id: i64, new: &[i64]) -> StoreResult<Chat> {
    insert(tx, chat_id, new).await?;
    let statement = tx
        .prepare_cached("UPDATE chats SET updated_at = now() WHERE id = $1")
        .await?;
    tx.execute(&statement, &[&chat_id]).await?;
    load_chat(tx, chat_id).await
}

/// Removes `user_id` from the locked chat, whose other members are `rest`. When the creator
/// leaves, the longest-standing member (earliest `joined_at`; the lower id among those who
/// joined together, such as the group's first members) becomes the creator, so the group
/// stays manageable; when nobody is left, the chat is deleted, since nobody could ever see or
/// manage it again. The chat as it is then, or `None` once deleted.
pub async fn remove(
    tx: &impl GenericClient,
    chat_id: i64,
    user_id: i64,
    rest: &[i64],
) -> StoreResult<Option<Chat>> {
    let statement = tx
        .prepare_cached("DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2")
        .await?;
    tx.execute(&statement, &[&chat_id, &user_id]).await?;
    if rest.is_empty() {
        delete(tx, chat_id).await?;
        return Ok(None);
    }
    let statement = tx
        .prepare_cached(
            "UPDATE chats SET updated_at = now(),
                 creator_id = CASE WHEN creator_id = $2 THEN (
                     SELECT user_id FROM chat_members WHERE chat_id = $1
                     ORDER BY joined_at, user_id LIMIT 1) ELSE creator_id END
             WHERE id = $1",
        )
        .await?;
    tx.execute(&statement, &[&chat_id, &user_id]).await?;
    Ok(Some(load_chat(tx, chat_id).await?))
}
