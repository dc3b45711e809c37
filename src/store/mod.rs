//! The store: every SQL statement of the server, one file per aggregate, and `StoreError`,
//! which says what went wrong in the words of the data (not found, forbidden, conflict,
//! unavailable...) and knows nothing of HTTP; the HTTP edge builds its own error from it.

pub mod chats;
pub mod events;
pub mod leases;
pub mod login_attempts;
pub mod members;
pub mod messages;
pub mod presence;
pub mod reactions;
pub mod reads;
pub mod schema;
pub mod search;
pub mod sends;
pub mod sessions;
pub mod users;

use std::fmt;

/// What a store operation can answer besides its result.
#[derive(Debug)]
pub enum StoreError {
    /// The thing does not exist, or the caller may not see it (the edge answers the same).
    NotFound(&'static str),
    /// The caller may see the thing, but their role forbids the action.
    Forbidden(&'static str),
    /// The chat is inactive and takes no messages.
    ChatInactive,
    /// The email is registered already.
    EmailTaken,
    /// A value that the data makes invalid (an unknown user id, a message of another chat).
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The event log no longer holds what follows `since`: the reader refetches its state and
    /// goes on after `seq`.
    ResyncRequired { seq: i64 },
    /// A bounded wait for a row lock ran out (`lock_timeout`): nothing was changed.
    Busy,
    /// PostgreSQL cannot be reached, or asked for a retry (serialization failure, deadlock).
    Unavailable(String),
    /// A fault of rtchat's own (a wrong row count or column type, a broken invariant).
    Bug(String),
    /// A statement ran out of its own `statement_timeout` (a search), and says why.
    TooSlow(&'static str),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound(what) => write!(f, "{what} not found"),
            StoreError::Forbidden(why) => f.write_str(why),
            StoreError::ChatInactive => f.write_str("the chat is inactive"),
            StoreError::EmailTaken => f.write_str("the email is registered already"),
            StoreError::Invalid { field, message } => write!(f, "{field}: {message}"),
            StoreError::ResyncRequired { seq } => write!(f, "resync required after {seq}"),
            StoreError::Busy => f.write_str("a lock wait ran out"),
            StoreError::Unavailable(why) => write!(f, "database unavailable: {why}"),
            StoreError::Bug(why) => write!(f, "store bug: {why}"),
            StoreError::TooSlow(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StoreError {}

/// The result type of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // No SQLSTATE: either the connection is gone (closed, refused, reset, timed out)
            // or rtchat asked for something wrong (a row count, a column type, a parameter):
            // a bug, which a retry would only repeat.
            return if is_outage(&e) {
                StoreError::Unavailable(format!("database: {e}"))
            } else {
                StoreError::Bug(format!("database: {e} ({e:?})"))
            };
        };
        let code = db.code().code();
        // lock_not_available: a write's `lock_timeout` ran out.
        if code == "55P03" {
            return StoreError::Busy;
        }
        // Class 08 (connection exception), 57 (operator intervention: shutdown, restart),
        // 53 (insufficient resources): PostgreSQL is going or gone, the request may be
        // retried. 40001/40P01 (serialization failure, deadlock) are retryable too.
        if code.starts_with("08")
            || code.starts_with("57")
            || code.starts_with("53")
            || code == "40001"
            || code == "40P01"
        {
            StoreError::Unavailable(format!("database: {} ({code})", db.message()))
        } else {
            StoreError::Bug(format!("database: {} ({code})", db.message()))
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        // No free connection within the pool's wait, or none could be opened (refused,
        // timed out, rejected by PostgreSQL): either way the database is out of reach.
        StoreError::Unavailable(format!("pool: {e}"))
    }
}

/// Whether an error without a SQLSTATE means the database cannot be reached. tokio-postgres
/// does not expose its error kinds: a closed connection says so, an I/O failure carries the
/// `io::Error` (kinds of a broken or refused connection, unlike the `InvalidInput` of an
/// encoding or parsing bug), and its connect timeout has neither, only its message.
fn is_outage(e: &tokio_postgres::Error) -> bool {
    use std::io::ErrorKind::*;
    if e.is_closed() || e.to_string() == "timeout waiting for server" {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | BrokenPipe
                    | TimedOut
                    | UnexpectedEof
                    | AddrNotAvailable
                    | HostUnreachable
                    | NetworkUnreachable
                    | NetworkDown
                    | NotFound // a Unix socket path that is gone
            );
        }
        source = cause.source();
    }
    false
}

/// Whether the database answers on this connection (readiness).
pub async fn ping(client: &impl deadpool_postgres::GenericClient) -> StoreResult<()> {
    client.batch_execute("SELECT 1").await?;
    Ok(())
}
