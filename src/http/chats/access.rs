//! Who may write to a chat, and in what order: visibility is checked before any lock (so a
//! stranger never queues on a chat's lock, where message sends queue too), then the writer
//! takes its turn in this process (`gate`), then the chat's row lock with a bounded wait.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use crate::error::{ApiError, ApiResult};
use crate::gate::Turn;
use crate::state::AppState;

/// How long a chat write waits for its turn: first behind the other writers of the chat in
/// this process, then for the row lock in PostgreSQL (`lock_timeout`: other processes and the
/// send batches). Long enough for dozens of ordinary writes of a 1,000-member chat ahead of
/// it; past it the write answers 503 `server_busy` instead of keeping a pooled connection
/// that every other request may be waiting for.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// A chat as its member saw it before any lock was taken.
pub struct ChatAccess {
    pub chat_id: i64,
    pub caller: i64,
    pub kind: String,
    pub creator_id: i64,
}

/// The chat `chat_id` if `caller` is a member, read without a lock; 404 otherwise (also when
/// it does not exist).
pub async fn member_access(
    client: &impl GenericClient,
    chat_id: i64,
    caller: i64,
) -> ApiResult<ChatAccess> {
    let statement = client
        .prepare_cached(
            "SELECT c.type, c.creator_id FROM chats c
             JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $2
             WHERE c.id = $1",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&chat_id, &caller])
        .await?
        .ok_or(ApiError::NotFound("chat"))?;
    Ok(ChatAccess {
        chat_id,
        caller,
        kind: row.get(0),
        creator_id: row.get(1),
    })
}

/// A chat row locked for the rest of the transaction, with its members read after the lock.
pub struct LockedChat {
    pub kind: String,
    pub creator_id: i64,
    pub is_active: bool,
    /// Ascending.
    pub members: Vec<i64>,
}

/// Bounds every lock wait of the rest of the transaction `client` by `LOCK_WAIT`; a wait that
/// runs out fails with SQLSTATE 55P03, which answers 503 `server_busy`.
pub async fn bound_lock_waits(client: &impl GenericClient) -> ApiResult<()> {
    client
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = {}",
            LOCK_WAIT.as_millis()
        ))
        .await?;
    Ok(())
}

/// Locks the chat `access` saw (the first lock of every chat write, see `events`), after
/// bounding the wait, and reads its members. 404 if the chat went, or the caller stopped being
/// a member, since `access` was read.
pub async fn lock_chat(client: &impl GenericClient, access: &ChatAccess) -> ApiResult<LockedChat> {
    bound_lock_waits(client).await?;
    let statement = client
        .prepare_cached(
            "SELECT type, creator_id, is_active FROM chats WHERE id = $1 FOR NO KEY UPDATE",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&access.chat_id])
        .await?
        .ok_or(ApiError::NotFound("chat"))?;
    // Read in a new statement, after the lock: membership changes take the same lock, so
    // this sees all of them.
    let members = chat_members(client, access.chat_id).await?;
    if !members.contains(&access.caller) {
        return Err(ApiError::NotFound("chat"));
    }
    Ok(LockedChat {
        kind: row.get(0),
        creator_id: row.get(1),
        is_active: row.get(2),
        members,
    })
}

/// The members of a chat, ascending.
pub async fn chat_members(client: &impl GenericClient, chat_id: i64) -> ApiResult<Vec<i64>> {
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
pub async fn is_member(client: &impl GenericClient, chat_id: i64, user_id: i64) -> ApiResult<bool> {
    let statement = client
        .prepare_cached("SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $2")
        .await?;
    Ok(client
        .query_opt(&statement, &[&chat_id, &user_id])
        .await?
        .is_some())
}

/// A write let through to a chat: the caller is a member, it is the write's turn in this
/// process, and `client` was taken from the pool after the turn came.
pub struct Admitted<'a> {
    pub access: ChatAccess,
    pub client: deadpool_postgres::Object,
    /// Held until the handler is done (after its commit).
    _turn: Turn<'a, i64>,
}

/// Admits a write of `caller` to `chat_id`: checks visibility without a lock (404), lets
/// `check` refuse it (role, per-chat limits) before it queues, then waits for its turn
/// holding no pooled connection, and only then takes one.
pub async fn admit<'a>(
    state: &'a AppState,
    chat_id: i64,
    caller: i64,
    check: impl FnOnce(&ChatAccess) -> ApiResult<()>,
) -> ApiResult<Admitted<'a>> {
    let access = {
        let client = state.db().await?;
        member_access(&client, chat_id, caller).await?
    };
    check(&access)?;
    let turn = state.limits.chat_turns.turn(chat_id, LOCK_WAIT).await?;
    let client = state.db().await?;
    Ok(Admitted {
        access,
        client,
        _turn: turn,
    })
}
