//! `/chats` and `/chats/{chat_id}`: create (private chats de-duplicated), list by recent
//! activity, read, update and delete chats. `access` holds the shared helpers that admit a
//! write to a chat and lock it.

mod access;

use deadpool_postgres::GenericClient;
use hyper::Response;
use serde::Deserialize;
use serde_json::json;
use tokio_postgres::Row;

use crate::error::{ApiError, ApiResult, Body, FieldError};
use crate::events::{EventType, Outbox};
use crate::http::users::{DEFAULT_PAGE, MAX_PAGE};
use crate::http::{created, double_option, no_content, ok, Ctx};
use crate::model::{Chat, ChatView, Message, CHAT_COLUMNS};

pub use access::{admit, bound_lock_waits, chat_members, is_member, lock_chat, LockedChat};

/// Longest chat title, in characters.
pub const MAX_TITLE_CHARS: usize = 128;
/// Most members of a group, creator included.
pub const MAX_GROUP_MEMBERS: usize = 1000;
/// Unread counts stop counting here, so a huge backlog costs a bounded scan.
pub const MAX_UNREAD_COUNT: i64 = 10_000;
/// Attempts of one private chat creation. Another attempt is needed only when the pair's chat
/// was deleted between two statements of the previous one; five such deletes in a row mean
/// someone deletes it as fast as it appears, and the create answers 503 `server_busy`.
const MAX_CREATE_ATTEMPTS: usize = 5;

/// The chat as the event payload shows it.
pub async fn load_chat(client: &impl GenericClient, chat_id: i64) -> ApiResult<Chat> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {CHAT_COLUMNS} FROM chats c WHERE c.id = $1"
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&chat_id])
        .await?
        .ok_or(ApiError::NotFound("chat"))?;
    Ok(Chat::from_row(&row))
}

/// The select list of a `ChatView` for member `$1`; the query joins `chats c` and
/// `chat_members cm` (the caller's row).
fn view_select() -> String {
    format!(
        "SELECT {CHAT_COLUMNS}, cm.last_read_message_id,
            lm.id AS lm_id, lm.sender_id AS lm_sender_id, lm.text AS lm_text,
            lm.created_at AS lm_created_at, lm.edited_at AS lm_edited_at, lm.client_id AS lm_client_id,
            (SELECT count(*) FROM (
                SELECT 1 FROM messages u
                WHERE u.chat_id = c.id AND u.id > coalesce(cm.last_read_message_id, 0) AND u.sender_id <> $1
                LIMIT {MAX_UNREAD_COUNT}) unread) AS unread_count
         FROM chat_members cm
         JOIN chats c ON c.id = cm.chat_id
         LEFT JOIN LATERAL (
             SELECT * FROM messages m WHERE m.chat_id = c.id ORDER BY m.id DESC LIMIT 1
         ) lm ON true"
    )
}

fn view_from_row(row: &Row) -> ChatView {
    let chat = Chat::from_row(row);
    let last_message = row.get::<_, Option<i64>>("lm_id").map(|id| Message {
        id,
        chat_id: chat.id,
        sender_id: row.get("lm_sender_id"),
        text: row.get("lm_text"),
        created_at: row.get("lm_created_at"),
        edited_at: row.get("lm_edited_at"),
        client_id: row.get("lm_client_id"),
    });
    ChatView {
        chat,
        last_message,
        unread_count: row.get("unread_count"),
        last_read_message_id: row.get("last_read_message_id"),
    }
}

/// The chat as member `user_id` sees it; 404 if they are not a member.
pub async fn load_view(
    client: &impl GenericClient,
    chat_id: i64,
    user_id: i64,
) -> ApiResult<ChatView> {
    let statement = client
        .prepare_cached(&format!(
            "{} WHERE cm.user_id = $1 AND cm.chat_id = $2",
            view_select()
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&user_id, &chat_id])
        .await?
        .ok_or(ApiError::NotFound("chat"))?;
    Ok(view_from_row(&row))
}

/// Checks that every id in `ids` is a registered user; 422 on `field` naming the unknown ones.
pub async fn check_users_exist(
    client: &impl GenericClient,
    ids: &[i64],
    field: &str,
) -> ApiResult<()> {
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
        Err(ApiError::field(
            field,
            format!("unknown user ids: {}", unknown.join(", ")),
        ))
    }
}

/// A title, trimmed; blank means none. 422 when too long or with control characters, judged
/// on the title as sent so that `openapi.yaml` states the rule exactly.
fn clean_title(title: Option<String>) -> ApiResult<Option<String>> {
    let Some(title) = title else { return Ok(None) };
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::field("title", "must be at most 128 characters"));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::field(
            "title",
            "must not contain control characters",
        ));
    }
    let title = title.trim();
    Ok((!title.is_empty()).then(|| title.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateChatBody {
    #[serde(rename = "type")]
    kind: ChatKind,
    #[serde(default)]
    title: Option<String>,
    #[serde(deserialize_with = "crate::http::json_integers")]
    participant_ids: Vec<i64>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum ChatKind {
    Private,
    Group,
}

/// `POST /chats`: 201 with the new chat, or 200 with the existing private chat of the pair.
pub async fn create_chat(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let body: CreateChatBody = ctx.json()?;
    let title = clean_title(body.title)?;
    let mut others: Vec<i64> = body
        .participant_ids
        .into_iter()
        .filter(|id| *id != caller.user_id)
        .collect();
    others.sort_unstable();
    others.dedup();
    match body.kind {
        ChatKind::Private if others.len() != 1 => {
            return Err(ApiError::field(
                "participant_ids",
                "a private chat needs exactly one other user",
            ))
        }
        ChatKind::Group if others.len() > MAX_GROUP_MEMBERS - 1 => {
            return Err(ApiError::field(
                "participant_ids",
                "a group takes at most 999 other users",
            ))
        }
        _ => {}
    }
    if others.iter().any(|id| *id <= 0) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "participant_ids",
            "ids must be positive",
        )]));
    }

    ctx.state.limits.writes.check(&caller.user_id)?;
    let mut client = ctx.state.db().await?;
    check_users_exist(&client, &others, "participant_ids").await?;
    let mut members = others.clone();
    members.push(caller.user_id);
    members.sort_unstable();
    let (kind, private_key) = match body.kind {
        ChatKind::Private => ("private", Some(format!("{}:{}", members[0], members[1]))),
        ChatKind::Group => ("group", None),
    };

    // A private pair's chat may be deleted by its creator between our finding it and reading
    // it; then the pair has no chat any more and the next attempt creates one.
    for _ in 0..MAX_CREATE_ATTEMPTS {
        let tx = client.transaction().await?;
        bound_lock_waits(&tx).await?;
        // A concurrent creation of the same private pair waits on the unique key here, then
        // does nothing; the existing chat is then returned below.
        let statement = tx
            .prepare_cached(
                "INSERT INTO chats (type, title, creator_id, private_key) VALUES ($1, $2, $3, $4)
                 ON CONFLICT ON CONSTRAINT chats_private_key_key DO NOTHING RETURNING id",
            )
            .await?;
        let inserted = tx
            .query_opt(&statement, &[&kind, &title, &caller.user_id, &private_key])
            .await
            .map_err(|e| {
                // A genuine token whose user is gone (a restored database keeps older tokens
                // valid until they expire): the answer `GET /auth/me` gives it, not a 500.
                let db = e.as_db_error();
                if db.is_some_and(|db| db.constraint() == Some("chats_creator_fkey")) {
                    ApiError::Unauthorized("the token's user no longer exists")
                } else {
                    ApiError::from(e)
                }
            })?;
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
                .query_opt(&statement, &[&caller.user_id, &private_key])
                .await?;
            drop(tx);
            match existing {
                Some(row) => return ok(&view_from_row(&row)),
                None => continue,
            }
        };
        let chat_id: i64 = row.get(0);
        let statement = tx
            .prepare_cached(
                "INSERT INTO chat_members (chat_id, user_id) SELECT $1, unnest($2::bigint[])",
            )
            .await?;
        tx.execute(&statement, &[&chat_id, &members]).await?;
        let chat = load_chat(&tx, chat_id).await?;
        // Read before the commit: once committed, a member may delete it at once, and the
        // answer is still the chat this request created.
        let view = load_view(&tx, chat_id, caller.user_id).await?;
        let mut outbox = Outbox::default();
        outbox.add(EventType::CreateChat, &members, &chat)?;
        ctx.state.delivery.commit(tx, outbox).await?;
        return created(&view);
    }
    Err(ApiError::ServerBusy(crate::error::CHAT_BUSY))
}

/// `GET /chats?limit=&before=`: the caller's chats, most recent activity first.
pub async fn list_chats(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let limit = ctx.query_int("limit", 1, MAX_PAGE)?.unwrap_or(DEFAULT_PAGE);
    let before = ctx.query_int("before", 1, i64::MAX)?;
    let client = ctx.state.db().await?;
    if let Some(before) = before {
        if !is_member(&client, before, caller.user_id).await? {
            return Err(ApiError::field("before", "is not one of your chats"));
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
        .query(&statement, &[&caller.user_id, &before, &(limit + 1)])
        .await?;
    let has_more = rows.len() as i64 > limit;
    let chats: Vec<ChatView> = rows
        .iter()
        .take(limit as usize)
        .map(view_from_row)
        .collect();
    ok(&json!({ "chats": chats, "has_more": has_more }))
}

/// `GET /chats/{chat_id}`
pub async fn get_chat(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let chat_id = ctx.path_id("chat_id")?;
    let client = ctx.state.db().await?;
    ok(&load_view(&client, chat_id, caller.user_id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateChatBody {
    #[serde(default, deserialize_with = "double_option")]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    is_active: Option<Option<bool>>,
}

/// `PATCH /chats/{chat_id}`: the creator changes the title or the active flag; members get
/// `update_chat` unless nothing changed.
pub async fn update_chat(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let chat_id = ctx.path_id("chat_id")?;
    let body: UpdateChatBody = ctx.json()?;
    let is_active = match body.is_active {
        Some(None) => {
            return Err(ApiError::field(
                "is_active",
                "must be true or false, not null",
            ))
        }
        Some(Some(v)) => Some(v),
        None => None,
    };
    let title = match body.title {
        Some(t) => Some(clean_title(t)?),
        None => None,
    };

    const NOT_CREATOR: ApiError = ApiError::Forbidden("only the chat's creator may change it");
    let limits = &ctx.state.limits;
    limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |access| {
        if access.creator_id != caller.user_id {
            return Err(NOT_CREATOR);
        }
        limits.chat_changes.check(&chat_id)
    })
    .await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    // Checked again under the lock: the creator may have left since (see `remove_member`).
    if locked.creator_id != caller.user_id {
        return Err(NOT_CREATOR);
    }
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
            &[
                &chat_id,
                &title.is_some(),
                &title.clone().flatten(),
                &is_active,
            ],
        )
        .await?
        > 0;
    let mut outbox = Outbox::default();
    if changed {
        let chat = load_chat(&tx, chat_id).await?;
        outbox.add(EventType::UpdateChat, &locked.members, &chat)?;
    }
    ctx.state.delivery.commit(tx, outbox).await?;
    ok(&load_view(&admitted.client, chat_id, caller.user_id).await?)
}

/// `DELETE /chats/{chat_id}`: the creator deletes the chat and its messages; former members
/// get `delete_chat`.
pub async fn delete_chat(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let chat_id = ctx.path_id("chat_id")?;
    const NOT_CREATOR: ApiError = ApiError::Forbidden("only the chat's creator may delete it");
    ctx.state.limits.writes.check(&caller.user_id)?;
    let mut admitted = admit(&ctx.state, chat_id, caller.user_id, |access| {
        if access.creator_id != caller.user_id {
            return Err(NOT_CREATOR);
        }
        Ok(())
    })
    .await?;
    let tx = admitted.client.transaction().await?;
    let locked = lock_chat(&tx, &admitted.access).await?;
    if locked.creator_id != caller.user_id {
        return Err(NOT_CREATOR);
    }
    let mut outbox = Outbox::default();
    outbox.add(
        EventType::DeleteChat,
        &locked.members,
        &json!({ "id": chat_id }),
    )?;
    let statement = tx.prepare_cached("DELETE FROM chats WHERE id = $1").await?;
    tx.execute(&statement, &[&chat_id]).await?;
    ctx.state.delivery.commit(tx, outbox).await?;
    no_content()
}
