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

/// The first wait before retrying the first connection; doubled after each failure.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The longest wait between attempts: a database that comes up is noticed within this time,
/// and a down one costs one log line per this time.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Where `database_url` points, for log lines: host(s) and port(s), never the password.
pub fn target(database_url: &str) -> String {
    let Ok(pg) = tokio_postgres::Config::from_str(database_url) else {
        return "(unparsable DATABASE_URL)".into();
    };
    let ports = pg.get_ports();
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            // One port for all hosts, or one each; none is PostgreSQL's default.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    if hosts.is_empty() {
        "localhost:5432".into()
    } else {
        hosts.join(",")
    }
}

/// Waits until the pool opens a connection, trying again with backoff for up to `timeout`:
/// at start the database may still be coming up beside rtchat (compose, systemd, a restart of
/// both). Each failure is one warning naming `target` and the cause; giving up is an error
/// that says both.
pub async fn wait_for_database(pool: &Pool, target: &str, timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut wait = FIRST_RETRY;
    let mut attempt = 1u32;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let cause = match tokio::time::timeout(left, pool.get()).await {
            Ok(Ok(_)) => return Ok(()),
            // The pool's own wrapper says only that creating a connection failed.
            Ok(Err(deadpool_postgres::PoolError::Backend(e))) => causes(&e),
            Ok(Err(e)) => causes(&e),
            Err(_) => "timed out".to_string(),
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(format!(
                "cannot connect to PostgreSQL at {target} within {} s (RTCHAT_DB_CONNECT_TIMEOUT_SECS): {cause}",
                timeout.as_secs()
            ));
        }
        tracing::warn!(
            host = target,
            attempt,
            retry_in_ms = wait.min(left).as_millis() as u64,
            cause = %cause,
            "cannot connect to PostgreSQL yet"
        );
        tokio::time::sleep(wait.min(left)).await;
        wait = (wait * 2).min(MAX_RETRY);
        attempt += 1;
    }
}

/// An error and its sources, each once (`a: b: c`): the outer error may say only what
/// failed, and its source why.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = inner.source();
    }
    text
}
