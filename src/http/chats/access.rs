//! Who may write to a chat, and in what order: visibility is checked before any lock (so a
//! stranger never queues on a chat's lock, where message sends queue too), then the writer
//! takes its turn in this process (`gate`), then the chat's row lock with a bounded wait
//! (`store::chats::lock_chat`).

use deadpool_postgres::GenericClient;

use crate::error::ApiResult;
use crate::gate::Turn;
use crate::state::AppState;
use crate::store::chats::{member_access, ChatAccess, LOCK_WAIT};
use crate::store::members;

/// The members of a chat, ascending (for `ws::session`, which answers with `ApiError`).
pub async fn chat_members(client: &impl GenericClient, chat_id: i64) -> ApiResult<Vec<i64>> {
    Ok(members::chat_members(client, chat_id).await?)
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
