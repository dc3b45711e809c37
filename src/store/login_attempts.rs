//! login attempt counters shared by every process (fixed windows per key).

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::store::StoreResult;

/// The limit of each kind of key (the part of the key before its `:`).
pub struct Limits {
    pub per_pair: i32,
    pub per_email: i32,
    pub per_addr: i32,
}

/// One key of a login attempt, as `count` left it.
pub struct Count {
    pub key: String,
    /// The key's attempts in its window, this one included; `None` when the key was at its
    /// limit, so the attempt was not counted under it.
    pub attempts: Option<i32>,
    /// The start of the window the attempt was counted in (`None` as for `attempts`).
    pub window_start: Option<DateTime<Utc>>,
    /// How long the key's window has to run, in seconds.
    pub remaining_secs: f64,
}

/// Counts an attempt under every one of `keys` (sorted, so two logins counting the same keys
/// lock them in the same order) for the current `window`. A key's count goes up only where
/// it is under its limit (or its window is over, which starts a new one); a key at its limit
/// is left as it is and reported with no count.
pub async fn count(
    client: &impl GenericClient,
    keys: &[String],
    window: Duration,
    limits: &Limits,
) -> StoreResult<Vec<Count>> {
    let statement = client
        .prepare_cached(
            "WITH counted AS (
                 INSERT INTO login_attempts AS la (key, window_start, attempts)
                 SELECT k, now(), 1 FROM unnest($1::text[]) AS k ORDER BY k
                 ON CONFLICT ON CONSTRAINT login_attempts_pkey DO UPDATE SET
                     attempts = CASE WHEN la.window_start < now() - make_interval(secs => $2)
                                     THEN 1 ELSE la.attempts + 1 END,
                     window_start = CASE WHEN la.window_start < now() - make_interval(secs => $2)
                                         THEN now() ELSE la.window_start END
                 WHERE la.window_start < now() - make_interval(secs => $2)
                    OR la.attempts < CASE split_part(la.key, ':', 1)
                                         WHEN 'pair' THEN $3::int WHEN 'email' THEN $4::int ELSE $5::int END
                 RETURNING la.key, la.attempts, la.window_start
             )
             SELECT k, c.attempts, c.window_start,
                    extract(epoch FROM coalesce(c.window_start, old.window_start, now())
                                       + make_interval(secs => $2) - now())::float8
             FROM unnest($1::text[]) AS k
             LEFT JOIN counted c ON c.key = k
             LEFT JOIN login_attempts old ON old.key = k",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &keys,
                &window.as_secs_f64(),
                &limits.per_pair,
                &limits.per_email,
                &limits.per_addr,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Count {
            key: row.get(0),
            attempts: row.get(1),
            window_start: row.get(2),
            remaining_secs: row.get(3),
        })
        .collect())
}

/// Takes back one attempt of each `keys[i]`, if its window is still `windows[i]`.
pub async fn refund(
    client: &impl GenericClient,
    keys: &[String],
    windows: &[DateTime<Utc>],
) -> StoreResult<()> {
    let statement = client
        .prepare_cached(
            "UPDATE login_attempts la SET attempts = la.attempts - 1
             FROM unnest($1::text[], $2::timestamptz[]) AS r(k, w)
             WHERE la.key = r.k AND la.window_start = r.w AND la.attempts > 0",
        )
        .await?;
    client.execute(&statement, &[&keys, &windows]).await?;
    Ok(())
}

/// Forgets counters whose `window` has passed; returns how many.
pub async fn prune(client: &impl GenericClient, window: Duration) -> StoreResult<u64> {
    let statement = client
        .prepare_cached(
            "DELETE FROM login_attempts WHERE window_start < now() - make_interval(secs => $1)",
        )
        .await?;
    Ok(client.execute(&statement, &[&window.as_secs_f64()]).await?)
}
