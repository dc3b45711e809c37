//! The group commit's one statement: a batch of message sends through
//! `rtchat_send_messages` (schema.sql), which writes each message, appends its
//! `new_message` event and answers each send, in one transaction of its own.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::events::{Appended, EventType};
use super::{StoreError, StoreResult};

/// One send as the handler validated it.
#[derive(Debug)]
pub struct NewMessage {
    pub chat_id: i64,
    pub sender_id: i64,
    pub text: String,
    pub client_id: Option<String>,
    /// A message of the same chat, checked under the chat lock.
    pub reply_to: Option<i64>,
    /// Ascending, without duplicates; each must be a member, checked under the chat lock.
    pub mentions: Vec<i64>,
}

/// How a send ended.
#[derive(Debug)]
pub enum Sent {
    /// A new message; its `new_message` event is committed and handed to the sockets.
    Created { id: i64, created_at: DateTime<Utc> },
    /// This sender sent this `client_id` to this chat before: the original's id.
    Repeat(i64),
    /// The chat does not exist or the sender is not a member.
    NotFound,
    /// The chat is inactive.
    Inactive,
    /// `reply_to` is not a message of this chat.
    BadReplyTo,
    /// These mentioned ids are not members of the chat.
    BadMentions(Vec<i64>),
}

/// Commits one batch; returns each send's outcome in the batch's order, and the committed
/// events for the hub. An `Err` means the statement failed, so nothing of the batch was
/// written (or, for `Unavailable`, the connection broke and the outcome is unknown).
pub async fn send_messages(
    client: &impl GenericClient,
    messages: &[NewMessage],
) -> StoreResult<(Vec<Result<Sent, StoreError>>, Vec<Appended>)> {
    let chats: Vec<i64> = messages.iter().map(|m| m.chat_id).collect();
    let senders: Vec<i64> = messages.iter().map(|m| m.sender_id).collect();
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    let client_ids: Vec<Option<&str>> = messages.iter().map(|m| m.client_id.as_deref()).collect();
    let reply_tos: Vec<Option<i64>> = messages.iter().map(|m| m.reply_to).collect();
    let mention_counts: Vec<i32> = messages.iter().map(|m| m.mentions.len() as i32).collect();
    let mentions: Vec<i64> = messages
        .iter()
        .flat_map(|m| m.mentions.iter().copied())
        .collect();

    let statement = client
        .prepare_cached(
            "SELECT ord, status, message_id, created_at, payload, users, seqs, bad_mentions
             FROM rtchat_send_messages($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &chats,
                &senders,
                &texts,
                &client_ids,
                &reply_tos,
                &mention_counts,
                &mentions,
            ],
        )
        .await?;

    // Committed: from here on nothing may fail the batch (a retry would send it twice). A
    // send the function did not answer, which it always does, gets a 500 of its own.
    let mut outcomes: Vec<Result<Sent, StoreError>> = messages
        .iter()
        .map(|_| {
            Err(StoreError::Bug(
                "rtchat_send_messages did not answer this send".into(),
            ))
        })
        .collect();
    let mut appended = Vec::new();
    for row in &rows {
        let Some(slot) = usize::try_from(row.get::<_, i32>(0) - 1)
            .ok()
            .and_then(|i| outcomes.get_mut(i))
        else {
            continue;
        };
        *slot = Ok(match row.get::<_, &str>(1) {
            "created" => {
                let users: Vec<i64> = row.get(5);
                let seqs: Vec<i64> = row.get(6);
                appended.push(Appended {
                    kind: EventType::NewMessage.as_str(),
                    payload: row.get::<_, &str>(4).into(),
                    deliveries: users.into_iter().zip(seqs).collect(),
                });
                Sent::Created {
                    id: row.get(2),
                    created_at: row.get(3),
                }
            }
            "repeat" => Sent::Repeat(row.get(2)),
            "inactive" => Sent::Inactive,
            "bad_reply_to" => Sent::BadReplyTo,
            "bad_mentions" => {
                Sent::BadMentions(row.get::<_, Option<Vec<i64>>>(7).unwrap_or_default())
            }
            _ => Sent::NotFound,
        });
    }
    Ok((outcomes, appended))
}
