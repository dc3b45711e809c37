//! users: registration, lookup and search by name prefix or whole email.

use deadpool_postgres::GenericClient;

use crate::model::{User, USER_COLUMNS};
use crate::store::{StoreError, StoreResult};

/// Registers a user; `EmailTaken` when the email's key (or, for an account from before
/// keys, see `identity`, the address as typed) is registered already.
pub async fn register(
    client: &impl GenericClient,
    email: &str,
    email_key: &str,
    name: &str,
    password_hash: &str,
) -> StoreResult<User> {
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO users (email, email_key, name, password_hash) VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
        ))
        .await?;
    match client
        .query_one(&statement, &[&email, &email_key, &name, &password_hash])
        .await
    {
        Ok(row) => Ok(User::from_row(&row)),
        Err(e) if is_email_taken(&e) => Err(StoreError::EmailTaken),
        Err(e) => Err(e.into()),
    }
}

/// The id and password hash of the account an email logs in to: by its key, or by the exact
/// (case-insensitive) address for the accounts from before keys that share a key with an
/// older one (see `identity`); the exact match wins.
pub async fn find_login(
    client: &impl GenericClient,
    email_key: &str,
    email: &str,
) -> StoreResult<Option<(i64, String)>> {
    let statement = client
        .prepare_cached(
            "SELECT id, password_hash FROM users
             WHERE email_key = $1 OR lower(email) = lower($2)
             ORDER BY lower(email) = lower($2) DESC, id
             LIMIT 1",
        )
        .await?;
    let row = client.query_opt(&statement, &[&email_key, &email]).await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// The user with `id`, if any.
pub async fn get(client: &impl GenericClient, id: i64) -> StoreResult<Option<User>> {
    let statement = client
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .await?;
    Ok(client
        .query_opt(&statement, &[&id])
        .await?
        .as_ref()
        .map(User::from_row))
}

/// Users whose lowercased name starts with `lowered` or whose email is `lowered` (both
/// case-insensitive), by id. The whole-email match is on `lower(email)`, not `email_key`:
/// the key folds more than lowercase does (`ß` is `ss`) and accounts from before keys may
/// have none, so it would find other users than the contract's "exact, case-insensitive";
/// `users_email_key` (on `lower(email)`) serves it.
pub async fn search(
    client: &impl GenericClient,
    lowered: &str,
    limit: i64,
) -> StoreResult<Vec<User>> {
    // LIKE wildcards in the name prefix are matched literally.
    let pattern = format!(
        "{}%",
        lowered
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let statement = client
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE lower(name) LIKE $1 OR lower(email) = $3
             ORDER BY id LIMIT $2"
        ))
        .await?;
    let rows = client
        .query(&statement, &[&pattern, &limit, &lowered])
        .await?;
    Ok(rows.iter().map(User::from_row).collect())
}

/// Up to `limit` accounts without an email key (registered before keys existed) with ids
/// above `after`, oldest first: their ids and emails.
pub async fn without_email_key(
    client: &impl GenericClient,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<(i64, String)>> {
    let rows = client
        .query(
            "SELECT id, email FROM users WHERE email_key IS NULL AND id > $1 ORDER BY id LIMIT $2",
            &[&after, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Gives accounts their email keys (`ids[i]` gets `keys[i]`); returns how many got one.
/// Within the batch the oldest of a key wins (DISTINCT ON ... ORDER BY id); against the
/// table, a key held already stays with its holder and the account stays without.
/// `EmailTaken` when a concurrent registration took one of the keys meanwhile (the batch
/// may be given again: its NOT EXISTS then sees it).
pub async fn give_email_keys(
    client: &impl GenericClient,
    ids: &[i64],
    keys: &[String],
) -> StoreResult<u64> {
    let given = client
        .execute(
            "UPDATE users u SET email_key = b.key
             FROM (SELECT DISTINCT ON (key) id, key
                   FROM unnest($1::bigint[], $2::text[]) AS x(id, key)
                   ORDER BY key, id) b
             WHERE u.id = b.id AND u.email_key IS NULL
               AND NOT EXISTS (SELECT 1 FROM users o WHERE o.email_key = b.key)",
            &[&ids, &keys],
        )
        .await;
    match given {
        Ok(n) => Ok(n),
        Err(e) if is_email_taken(&e) => Err(StoreError::EmailTaken),
        Err(e) => Err(e.into()),
    }
}

/// Whether `e` says the email is registered already: under its key, or (an account from
/// before keys) as typed.
fn is_email_taken(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            && matches!(
                db.constraint(),
                Some("users_email_key_unique" | "users_email_key")
            )
    })
}
