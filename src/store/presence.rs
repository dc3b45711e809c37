//! presence: which process holds sockets of which user (`presence_sockets`), `last_seen_at`,
//! and who is told about whom. Every statement takes whole batches (arrays), never a row per
//! socket.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use deadpool_postgres::GenericClient;

use crate::store::StoreResult;

/// A user's presence as the database has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub user_id: i64,
    /// Some process with a live lease holds a socket of the user.
    pub live: bool,
    /// When the user's last socket closed (null if never connected).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Seconds since `last_seen_at`, by the database's clock (so processes whose clocks
    /// differ still agree on when a grace period ends).
    pub offline_for: Option<f64>,
}

/// Applies one tick's transitions of `process_id` (whose lease lasts `lease_ttl`), in one
/// transaction: rows for the users who
/// got their first socket here, none for those whose last socket here closed, and their
/// `last_seen_at` = when it closed (`closed_ago` seconds before now, parallel to `closed`).
/// Asynchronous commit: a row lost to a database crash is written again by the resync that
/// follows every reconnect, so waiting for the WAL flush buys nothing.
pub async fn apply(
    client: &mut Client,
    process_id: i64,
    lease_ttl: Duration,
    opened: &[i64],
    closed: &[i64],
    closed_ago: &[f64],
) -> StoreResult<()> {
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    ensure_lease(&tx, process_id, lease_ttl).await?;
    if !opened.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO presence_sockets (process_id, user_id)
                 SELECT $1, u FROM unnest($2::bigint[]) u
                 ON CONFLICT ON CONSTRAINT presence_sockets_pkey DO NOTHING",
            )
            .await?;
        tx.execute(&insert, &[&process_id, &opened]).await?;
    }
    if !closed.is_empty() {
        let delete = tx
            .prepare_cached(
                "DELETE FROM presence_sockets WHERE process_id = $1 AND user_id = ANY($2)",
            )
            .await?;
        tx.execute(&delete, &[&process_id, &closed]).await?;
        seen(&tx, closed, closed_ago).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Creates the lease of `process_id` if it has none: rows never exist without their
/// process's lease, which `reap` would take for a crashed process's. The first batch may come
/// before the lease task's first renewal, and a process that stalled past its lease comes
/// back with its lease reaped.
async fn ensure_lease(
    client: &impl GenericClient,
    process_id: i64,
    lease_ttl: Duration,
) -> StoreResult<()> {
    let lease = client
        .prepare_cached(
            "INSERT INTO process_leases (process_id, expires_at)
             VALUES ($1, now() + make_interval(secs => $2))
             ON CONFLICT ON CONSTRAINT process_leases_pkey DO NOTHING",
        )
        .await?;
    client
        .execute(&lease, &[&process_id, &lease_ttl.as_secs_f64()])
        .await?;
    Ok(())
}

/// Sets `last_seen_at` of `users` to `ago` seconds before now (parallel arrays; a user
/// named twice takes the later), unless it is later already. Every close writes it, whether
/// or not the user still has sockets elsewhere: the latest close wins, which is the last
/// socket's when the user goes offline, with no lock between processes closing at once
/// (while a socket is open the value is not shown). Rows are written in ascending user order,
/// so that two batches never wait for each other in a cycle.
async fn seen(client: &impl GenericClient, users: &[i64], ago: &[f64]) -> StoreResult<()> {
    let upsert = client
        .prepare_cached(
            "INSERT INTO presence_last_seen (user_id, last_seen_at)
             SELECT u, max(now() - make_interval(secs => a))
             FROM unnest($1::bigint[], $2::float8[]) AS t (u, a)
             WHERE EXISTS (SELECT 1 FROM users WHERE id = u)
             GROUP BY u ORDER BY u
             ON CONFLICT ON CONSTRAINT presence_last_seen_pkey
             DO UPDATE SET last_seen_at = greatest(presence_last_seen.last_seen_at, EXCLUDED.last_seen_at)",
        )
        .await?;
    client.execute(&upsert, &[&users, &ago]).await?;
    Ok(())
}

/// Makes the rows of `process_id` exactly `users` (after a lost write, a reconnect, or
/// a database that lost rows): the users whose rows it added or deleted. A deleted row's user
/// was last seen now.
pub async fn resync(
    client: &mut Client,
    process_id: i64,
    lease_ttl: Duration,
    users: &[i64],
) -> StoreResult<Vec<i64>> {
    let tx = client.transaction().await?;
    ensure_lease(&tx, process_id, lease_ttl).await?;
    let gone: Vec<i64> = tx
        .query(
            // NOT IN a subquery is hashed; `NOT (user_id = ANY($2))` would scan the array
            // once per row (thousands by thousands).
            "DELETE FROM presence_sockets
             WHERE process_id = $1 AND user_id NOT IN (SELECT unnest($2::bigint[]))
             RETURNING user_id",
            &[&process_id, &users],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let added: Vec<i64> = tx
        .query(
            "INSERT INTO presence_sockets (process_id, user_id)
             SELECT $1, u FROM unnest($2::bigint[]) u
             ON CONFLICT ON CONSTRAINT presence_sockets_pkey DO NOTHING
             RETURNING user_id",
            &[&process_id, &users],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !gone.is_empty() {
        seen(&tx, &gone, &vec![0.0; gone.len()]).await?;
    }
    tx.commit().await?;
    Ok(gone.into_iter().chain(added).collect())
}

/// How many rows `process_id` has (compared with what the process believes it wrote).
pub async fn own_rows(client: &impl GenericClient, process_id: i64) -> StoreResult<usize> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM presence_sockets WHERE process_id = $1",
            &[&process_id],
        )
        .await?
        .get(0);
    Ok(n.max(0) as usize)
}

/// Key of the advisory lock the reapers take (see `reap`).
const REAP_LOCK_KEY: i64 = 0x7274_6368_6174_7072; // "rtchatpr"

/// Deletes the rows of every process without a live lease (a crashed or stalled process),
/// and the lapsed leases that held them; their users were last seen when the lease expired
/// (or now, for rows whose lease is gone altogether). The users whose rows were deleted.
/// Processes reaping at once delete each row once: the second waits, then finds it gone.
pub async fn reap(client: &mut Client) -> StoreResult<Vec<i64>> {
    let tx = client.transaction().await?;
    // One reaper at a time: two deleting the same rows in different orders could deadlock.
    // The others skip this round (the rows are gone by their next).
    let reaping: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&REAP_LOCK_KEY])
        .await?
        .get(0);
    if !reaping {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            "DELETE FROM presence_sockets p
             WHERE NOT EXISTS (SELECT 1 FROM process_leases l
                               WHERE l.process_id = p.process_id AND l.expires_at >= now())
             RETURNING p.user_id,
                 extract(epoch FROM now() - coalesce(
                     (SELECT l.expires_at FROM process_leases l
                      WHERE l.process_id = p.process_id), now()))::float8",
            &[],
        )
        .await?;
    let users: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let ago: Vec<f64> = rows.iter().map(|r| r.get::<_, f64>(1).max(0.0)).collect();
    if !users.is_empty() {
        seen(&tx, &users, &ago).await?;
        tx.execute(
            "DELETE FROM process_leases l WHERE l.expires_at < now()
             AND NOT EXISTS (SELECT 1 FROM presence_sockets p WHERE p.process_id = l.process_id)",
            &[],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(users)
}

/// The presence of `users` (unknown ids are left out).
pub async fn states(client: &impl GenericClient, users: &[i64]) -> StoreResult<Vec<Stored>> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT u.id, {LIVE} AS live, s.last_seen_at,
                    extract(epoch FROM now() - s.last_seen_at)::float8
             FROM users u LEFT JOIN presence_last_seen s ON s.user_id = u.id
             WHERE u.id = ANY($1)"
        ))
        .await?;
    let rows = client.query(&statement, &[&users]).await?;
    Ok(rows.iter().map(stored).collect())
}

/// Whether user `u` has a row. Not joined with the leases: a row goes only when its process
/// closes the socket or when a reaper deletes it (`reap`), and both set `last_seen_at`; so a
/// user turns offline only with a `last_seen_at` to start the grace period from. A lease that
/// merely looks lapsed (every process after a long database outage, before its next renewal)
/// takes nobody offline.
const LIVE: &str = "EXISTS (SELECT 1 FROM presence_sockets p WHERE p.user_id = u.id)";

fn stored(r: &tokio_postgres::Row) -> Stored {
    Stored {
        user_id: r.get(0),
        live: r.get(1),
        last_seen_at: r.get(2),
        offline_for: r.get(3),
    }
}

/// Every user with a row (the presence task's periodic comparison with its view).
pub async fn live_users(client: &impl GenericClient) -> StoreResult<Vec<i64>> {
    let rows = client
        .query("SELECT DISTINCT user_id FROM presence_sockets", &[])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every user online now or within `grace` of their last close, over all processes: what a
/// process (re)starting its view of presence begins from. It reads every `last_seen_at` (no
/// index on it, which every close would have to update): it runs only when a process starts
/// or its listener reconnects.
pub async fn online(client: &impl GenericClient, grace: Duration) -> StoreResult<Vec<i64>> {
    let rows = client
        .query(
            "SELECT user_id FROM presence_sockets
             UNION
             SELECT user_id FROM presence_last_seen
             WHERE last_seen_at > now() - make_interval(secs => $1)",
            &[&grace.as_secs_f64()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// `(subject, watcher)` for each of `subjects` and each of `watchers` who shares a chat of at
/// most `max_members` members with them (a subject never watches themselves).
pub async fn audience(
    client: &impl GenericClient,
    subjects: &[i64],
    watchers: &[i64],
    max_members: i64,
) -> StoreResult<Vec<(i64, i64)>> {
    let statement = client
        .prepare_cached(
            // The watchers (every user with a socket on the process, thousands) are joined,
            // not compared with `= ANY`: that would scan the array once per row.
            "SELECT DISTINCT m1.user_id, m2.user_id
             FROM chat_members m1
             JOIN chat_members m2 ON m2.chat_id = m1.chat_id AND m2.user_id <> m1.user_id
             JOIN unnest($2::bigint[]) w (id) ON w.id = m2.user_id
             WHERE m1.user_id = ANY($1)
               AND (SELECT count(*) FROM (SELECT 1 FROM chat_members c
                                          WHERE c.chat_id = m1.chat_id LIMIT $3::bigint + 1) s) <= $3::bigint",
        )
        .await?;
    let rows = client
        .query(&statement, &[&subjects, &watchers, &max_members])
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The presence of those of `users` whom `caller` may see: the caller and whoever shares a
/// chat with them (any chat, of any size). Online also while within `grace` of the last
/// close, as the frames say: offline is announced only after it.
pub async fn visible(
    client: &impl GenericClient,
    caller: i64,
    users: &[i64],
    grace: Duration,
) -> StoreResult<Vec<Stored>> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT u.id, {LIVE} OR coalesce(s.last_seen_at > now() - make_interval(secs => $3), false),
                    s.last_seen_at, NULL::float8
             FROM users u LEFT JOIN presence_last_seen s ON s.user_id = u.id
             WHERE u.id = ANY($2)
               AND (u.id = $1 OR EXISTS (
                   SELECT 1 FROM chat_members a JOIN chat_members b ON b.chat_id = a.chat_id
                   WHERE a.user_id = $1 AND b.user_id = u.id))"
        ))
        .await?;
    let rows = client
        .query(&statement, &[&caller, &users, &grace.as_secs_f64()])
        .await?;
    Ok(rows.iter().map(stored).collect())
}
