//! login sessions and their refresh tokens: create, rotate, revoke, load the revoked, prune.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use crate::store::StoreResult;

/// Sessions deleted per statement, so retention never holds long locks or builds one huge
/// transaction (each session takes its refresh tokens with it, up to ~48 a day of its life).
const PRUNE_BATCH: u64 = 1000;

/// A new login session of `user_id` that can be refreshed for `lifetime`; returns its id.
pub async fn create(
    client: &impl GenericClient,
    user_id: i64,
    lifetime: Duration,
) -> StoreResult<i64> {
    let statement = client
        .prepare_cached(
            "INSERT INTO sessions (user_id, expires_at) VALUES ($1, now() + make_interval(secs => $2)) RETURNING id",
        )
        .await?;
    Ok(client
        .query_one(&statement, &[&user_id, &lifetime.as_secs_f64()])
        .await?
        .get(0))
}

/// Stores a refresh token of `session_id`, by its hash.
pub async fn add_refresh_token(
    client: &impl GenericClient,
    session_id: i64,
    token_hash: &[u8],
) -> StoreResult<()> {
    let statement = client
        .prepare_cached("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .await?;
    client
        .execute(&statement, &[&token_hash, &session_id])
        .await?;
    Ok(())
}

/// The session a refresh token was presented for.
pub struct Refreshed {
    pub session_id: i64,
    pub user_id: i64,
    /// Neither revoked nor expired.
    pub live: bool,
}

/// Marks an unused refresh token used and reads its session; `None` when the token is
/// unknown or was used before. One statement, so two concurrent refreshes with the same
/// token cannot both succeed.
pub async fn use_refresh_token(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> StoreResult<Option<Refreshed>> {
    let statement = client
        .prepare_cached(
            "WITH token AS (
                 UPDATE refresh_tokens SET used_at = now()
                 WHERE token_hash = $1 AND used_at IS NULL
                 RETURNING session_id
             )
             SELECT s.id, s.user_id, s.revoked_at IS NULL AND s.expires_at > now() AS live
             FROM sessions s JOIN token t ON t.session_id = s.id",
        )
        .await?;
    Ok(client
        .query_opt(&statement, &[&token_hash])
        .await?
        .map(|row| Refreshed {
            session_id: row.get(0),
            user_id: row.get(1),
            live: row.get(2),
        }))
}

/// Revokes the session of a refresh token (presented again after its use: stolen, or a
/// broken client); returns the session, if the token was known.
pub async fn revoke_by_refresh_token(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> StoreResult<Vec<i64>> {
    let statement = client
        .prepare_cached(
            "UPDATE sessions SET revoked_at = coalesce(revoked_at, now())
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)
             RETURNING id",
        )
        .await?;
    Ok(client
        .query(&statement, &[&token_hash])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Revokes `session_id` of `user_id`, or with `all` every live session of theirs; returns
/// the sessions this revoked (not those revoked before).
pub async fn revoke(
    client: &impl GenericClient,
    user_id: i64,
    session_id: i64,
    all: bool,
) -> StoreResult<Vec<i64>> {
    let statement = client
        .prepare_cached(
            "UPDATE sessions SET revoked_at = now()
             WHERE user_id = $1 AND revoked_at IS NULL AND ($2 OR id = $3)
             RETURNING id",
        )
        .await?;
    Ok(client
        .query(&statement, &[&user_id, &all, &session_id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The sessions revoked within the last `within`.
pub async fn revoked_within(
    client: &impl GenericClient,
    within: Duration,
) -> StoreResult<Vec<i64>> {
    let statement = client
        .prepare_cached(
            "SELECT id FROM sessions
             WHERE revoked_at IS NOT NULL AND revoked_at > now() - make_interval(secs => $1)",
        )
        .await?;
    Ok(client
        .query(&statement, &[&within.as_secs_f64()])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Deletes the sessions that expired or were revoked more than `ended` ago, with their
/// refresh tokens (by the foreign key's cascade), `PRUNE_BATCH` per statement; returns how
/// many sessions went.
pub async fn prune(client: &impl GenericClient, ended: Duration) -> StoreResult<u64> {
    let statement = client
        .prepare_cached(&format!(
            "DELETE FROM sessions WHERE id = ANY(ARRAY(
                 SELECT id FROM sessions
                 WHERE expires_at < now() - make_interval(secs => $1)
                    OR revoked_at < now() - make_interval(secs => $1)
                 LIMIT {PRUNE_BATCH}))"
        ))
        .await?;
    let mut pruned = 0;
    loop {
        let n = client.execute(&statement, &[&ended.as_secs_f64()]).await?;
        pruned += n;
        if n < PRUNE_BATCH {
            return Ok(pruned);
        }
    }
}
