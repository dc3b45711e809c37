//! message search: full-text search over the messages of a user's chats, newest first, in
//! one bounded statement (`search.sql`, served by `messages_text_search_idx`).

use std::time::Duration;

use deadpool_postgres::GenericClient;

use crate::model::Message;
use crate::store::messages::{message_from_row, with_reactions, MESSAGE_COLUMNS};
use crate::store::{StoreError, StoreResult};

/// The statement, kept in its own file so `bench/search-explain.sh` explains exactly it.
const SEARCH_SQL: &str = include_str!("search.sql");

/// Why a search that ran out of its `statement_timeout` answers `server_busy`.
pub const SEARCH_TOO_SLOW: &str =
    "the search took too long: add words or narrow it to one chat, then retry";

/// What to look for.
pub struct Search<'a> {
    pub caller: i64,
    /// Narrows to one chat of the caller's (`NotFound` if it is not); `None`: all of them.
    pub chat_id: Option<i64>,
    /// The words, as `words` split them: each must occur, the last as a prefix.
    pub words: &'a [String],
    /// Only messages with a smaller id (`i64::MAX`: from the newest).
    pub before: i64,
    pub limit: i64,
    /// The statement's time limit.
    pub timeout: Duration,
}

/// Splits `q` into its words: runs of Unicode letters and digits; everything else separates
/// them, so nothing of `q` but letters and digits ever reaches the tsquery.
pub fn words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The tsquery text for `words`: each a quoted lexeme, all required, the last a prefix.
/// The words hold letters and digits only, so quoting is all the tsquery syntax they need; a
/// quote or backslash is still doubled, should a caller ever pass one.
pub fn tsquery(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\\', "\\\\").replace('\'', "''")))
        .collect();
    let mut query = quoted.join(" & ");
    if !query.is_empty() {
        query.push_str(":*");
    }
    query
}

/// Up to `limit` messages matching `search` in the chats `caller` is a member of now, newest
/// first; and whether more follow. `NotFound` when `chat_id` is not one of theirs; `TooSlow`
/// when the statement ran out of its time.
pub async fn search(
    client: &mut deadpool_postgres::Object,
    search: &Search<'_>,
) -> StoreResult<(Vec<Message>, bool)> {
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached(
            "SELECT coalesce(array_agg(chat_id), '{}') FROM chat_members
             WHERE user_id = $1 AND ($2::bigint IS NULL OR chat_id = $2)",
        )
        .await?;
    let chats: Vec<i64> = tx
        .query_one(&statement, &[&search.caller, &search.chat_id])
        .await?
        .get(0);
    if chats.is_empty() {
        return match search.chat_id {
            Some(_) => Err(StoreError::NotFound("chat")),
            None => Ok((Vec::new(), false)),
        };
    }
    // A custom plan each time: a generic plan cannot know how many messages the chats hold
    // or the words match, and the best plan (the GIN index for a rare word, walking ids newest
    // first for a common one) depends on both.
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}; SET LOCAL plan_cache_mode = force_custom_plan",
        search.timeout.as_millis().max(1)
    ))
    .await?;
    let sql = SEARCH_SQL.replace("{columns}", MESSAGE_COLUMNS);
    let statement = tx.prepare_cached(&sql).await?;
    let rows = tx
        .query(
            &statement,
            &[
                &chats,
                &tsquery(search.words),
                &search.before,
                &(search.limit + 1),
            ],
        )
        .await
        .map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) => {
                StoreError::TooSlow(SEARCH_TOO_SLOW)
            }
            _ => StoreError::from(e),
        })?;
    let has_more = rows.len() as i64 > search.limit;
    let mut messages: Vec<Message> = rows
        .iter()
        .take(search.limit as usize)
        .map(message_from_row)
        .collect();
    with_reactions(&tx, Some(search.caller), &mut messages).await?;
    tx.commit().await?;
    Ok((messages, has_more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits() {
        assert_eq!(words("Привет, мир!"), ["Привет", "мир"]);
        assert_eq!(
            words("a&b|!c:*'d\"e\\f(g)<->h%i_j"),
            ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
        );
        assert!(words("%_&|!:*'\"\\()<-> ").is_empty());
        assert_eq!(words("x2 ٣"), ["x2", "٣"]);
    }

    #[test]
    fn the_tsquery_quotes_each_word_and_prefixes_the_last() {
        assert_eq!(tsquery(&words("hello wor")), "'hello' & 'wor':*");
        assert_eq!(tsquery(&["it's".into()]), "'it''s':*");
        assert_eq!(tsquery(&["a\\".into()]), "'a\\\\':*");
        assert_eq!(tsquery(&[]), "");
    }
}
