//! PostgreSQL access: the connection pool, applying `schema.sql`, and the embedded cluster.
//!
//! Queries live next to the code that owns them (`http/*`, `events`); this module only hands
//! out connections and keeps the schema current.

pub mod embedded;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

/// The one schema, compiled into the binary so the runtime image needs no files.
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");

/// The schema version this build writes (the last `INSERT INTO schema_version` in schema.sql).
pub const SCHEMA_VERSION: i32 = 1;

/// Key of the advisory lock that serialises schema application across processes.
const SCHEMA_LOCK_KEY: i64 = 0x7274_6368_6174; // "rtchat"

/// How long a request waits for a free pooled connection before answering 503: long enough
/// to ride out a burst, short enough that clients are not left hanging when PostgreSQL is gone.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// How long opening a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the pool. Connections are opened lazily, on first use.
pub fn pool(database_url: &str, size: usize) -> Result<Pool, String> {
    let mut pg = tokio_postgres::Config::from_str(database_url)
        .map_err(|e| format!("DATABASE_URL: cannot parse: {e}"))?;
    pg.connect_timeout(CONNECT_TIMEOUT);
    if pg.get_application_name().is_none() {
        pg.application_name("rtchat");
    }
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(POOL_WAIT),
            create: Some(CONNECT_TIMEOUT),
            recycle: Some(CONNECT_TIMEOUT),
        })
        .build()
        .map_err(|e| format!("cannot build the connection pool: {e}"))
}

/// Applies `schema.sql` in one transaction, under an advisory lock.
pub async fn apply_schema(pool: &Pool) -> Result<(), String> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK_KEY])
        .await
        .map_err(|e| e.to_string())?;
    let has_table: bool = tx
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let newest: Option<i32> = if has_table {
        tx.query_one("SELECT max(version) FROM schema_version", &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0)
    } else {
        None
    };
    if let Some(v) = newest.filter(|v| *v > SCHEMA_VERSION) {
        return Err(format!(
            "the database has schema version {v}, newer than this build's {SCHEMA_VERSION}: upgrade rtchat"
        ));
    }
    tx.batch_execute(SCHEMA_SQL)
        .await
        .map_err(|e| format!("schema.sql: {e}"))?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(())
}
