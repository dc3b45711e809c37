//! process leases: each process's row, renewed on a timer, and the count of live ones.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use crate::store::StoreResult;

/// Renews the lease of `process_id` for `ttl`, forgets lapsed leases (but those with presence
/// rows, see `store::presence::reap`), and counts the live
/// leases of the other processes.
pub async fn renew(
    client: &impl GenericClient,
    process_id: i64,
    ttl: Duration,
) -> StoreResult<usize> {
    let statement = client
        .prepare_cached(
            "WITH mine AS (
                 INSERT INTO process_leases (process_id, expires_at)
                 VALUES ($1, now() + make_interval(secs => $2))
                 ON CONFLICT ON CONSTRAINT process_leases_pkey
                 DO UPDATE SET expires_at = EXCLUDED.expires_at
             ), lapsed AS (
                 DELETE FROM process_leases l WHERE expires_at < now() AND process_id <> $1
                 -- A lapsed process's presence rows are deleted with its lease by the
                 -- presence reaper, which sets their users' last_seen_at to its expiry.
                 AND NOT EXISTS (SELECT 1 FROM presence_sockets p WHERE p.process_id = l.process_id)
             )
             SELECT count(*) FROM process_leases WHERE expires_at >= now() AND process_id <> $1",
        )
        .await?;
    let others: i64 = client
        .query_one(&statement, &[&process_id, &ttl.as_secs_f64()])
        .await?
        .get(0);
    Ok(others.max(0) as usize)
}

/// Gives up the lease of `process_id`.
pub async fn delete(client: &impl GenericClient, process_id: i64) -> StoreResult<()> {
    client
        .execute(
            "DELETE FROM process_leases WHERE process_id = $1",
            &[&process_id],
        )
        .await?;
    Ok(())
}
