//! PostgreSQL access: the connection pool and the embedded cluster.
//!
//! Every statement lives in `store/` (the schema's migration included); this module only
//! hands out connections.

pub mod embedded;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

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
