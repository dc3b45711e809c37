//! Configuration: every setting comes from an environment variable, read once at start-up.
//!
//! The names `RTCHAT_ADDR`, `DATABASE_URL` and `JWT_SECRET` are part of the public contract;
//! everything else is `RTCHAT_*`. A bad value is an error that names the variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One documented setting: the variable, its default and what it does. `--help` prints these.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every variable rtchat reads, in the order `--help` and the README list them.
pub const SETTINGS: &[Setting] = &[
    Setting { name: "RTCHAT_ADDR", default: "0.0.0.0:8000", help: "listen address" },
    Setting { name: "DATABASE_URL", default: "(embedded)", help: "PostgreSQL URL or key=value string; unset starts a private PostgreSQL under RTCHAT_DATA_DIR/postgres" },
    Setting { name: "JWT_SECRET", default: "(random)", help: "HS256 signing secret; unset generates one per process, so tokens die with it" },
    Setting { name: "RTCHAT_DATA_DIR", default: "./data", help: "where the embedded PostgreSQL keeps its files" },
    Setting { name: "RTCHAT_TOKEN_TTL_SECS", default: "1800", help: "access token lifetime in seconds" },
    Setting { name: "RTCHAT_REFRESH_TTL_DAYS", default: "30", help: "refresh token (login session) lifetime in days" },
    Setting { name: "RTCHAT_DB_POOL_SIZE", default: "16", help: "PostgreSQL connections per process" },
    Setting { name: "RTCHAT_MAX_CONNECTIONS", default: "10000", help: "open TCP connections (HTTP and WebSocket) per process; more wait in the accept queue" },
    Setting { name: "RTCHAT_HEARTBEAT_SECS", default: "25", help: "WebSocket ping interval; a client silent for two intervals is dropped" },
    Setting { name: "RTCHAT_WS_QUEUE", default: "1024", help: "frames queued per socket before a slow reader is closed with 1013" },
    Setting { name: "RTCHAT_SWEEP_SECS", default: "5", help: "how often sockets are checked against the log, in case a cross-process hint was lost" },
    Setting { name: "RTCHAT_EVENT_RETENTION_DAYS", default: "30", help: "how long the event log keeps events for `since` replay" },
    Setting { name: "RTCHAT_SHUTDOWN_GRACE_SECS", default: "10", help: "how long shutdown waits for in-flight requests" },
    Setting { name: "RTCHAT_LOG", default: "info", help: "log filter (tracing EnvFilter syntax)" },
];

/// The validated configuration of one rtchat process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP listener binds.
    pub addr: SocketAddr,
    /// `None` means: start the embedded PostgreSQL.
    pub database_url: Option<Secret>,
    /// `None` means: generate a random secret at start (with a loud warning).
    pub jwt_secret: Option<Secret>,
    /// Root of the embedded PostgreSQL's files.
    pub data_dir: PathBuf,
    /// Lifetime of an access token.
    pub token_ttl: Duration,
    /// Lifetime of a login session (its refresh tokens).
    pub refresh_ttl: Duration,
    /// Maximum PostgreSQL connections in the pool.
    pub db_pool_size: usize,
    /// Maximum open TCP connections; the accept loop waits when they are all in use.
    pub max_connections: usize,
    /// Interval of server pings on WebSockets.
    pub heartbeat: Duration,
    /// Frames a socket may have queued before it is closed as a slow reader.
    pub ws_queue: usize,
    /// How often connected users are compared with the log (the safety net for lost hints).
    pub sweep_interval: Duration,
    /// How long events are kept for replay.
    pub event_retention: Duration,
    /// Deadline for draining HTTP on shutdown.
    pub shutdown_grace: Duration,
    /// tracing filter.
    pub log_filter: String,
}

/// A setting that could not be used, naming the variable.
#[derive(Debug)]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        Ok(Config {
            addr: parse(&get, "RTCHAT_ADDR", "0.0.0.0:8000")?,
            database_url: get("DATABASE_URL").map(Secret::new),
            jwt_secret: match get("JWT_SECRET") {
                Some(s) if s.len() < 16 => {
                    return Err(ConfigError {
                        variable: "JWT_SECRET",
                        message: "must be at least 16 characters (try `openssl rand -hex 32`)"
                            .into(),
                    })
                }
                other => other.map(Secret::new),
            },
            data_dir: PathBuf::from(get("RTCHAT_DATA_DIR").unwrap_or_else(|| "./data".into())),
            token_ttl: Duration::from_secs(ranged(
                &get,
                "RTCHAT_TOKEN_TTL_SECS",
                1800,
                10,
                86_400 * 30,
            )?),
            refresh_ttl: Duration::from_secs(
                86_400 * ranged(&get, "RTCHAT_REFRESH_TTL_DAYS", 30, 1, 3650)?,
            ),
            db_pool_size: ranged(&get, "RTCHAT_DB_POOL_SIZE", 16, 1, 1000)? as usize,
            max_connections: ranged(&get, "RTCHAT_MAX_CONNECTIONS", 10_000, 1, 1_000_000)? as usize,
            heartbeat: Duration::from_secs(ranged(&get, "RTCHAT_HEARTBEAT_SECS", 25, 1, 3600)?),
            ws_queue: ranged(&get, "RTCHAT_WS_QUEUE", 1024, 1, 1_000_000)? as usize,
            sweep_interval: Duration::from_secs(ranged(&get, "RTCHAT_SWEEP_SECS", 5, 1, 3600)?),
            event_retention: Duration::from_secs(
                86_400 * ranged(&get, "RTCHAT_EVENT_RETENTION_DAYS", 30, 1, 3650)?,
            ),
            shutdown_grace: Duration::from_secs(ranged(
                &get,
                "RTCHAT_SHUTDOWN_GRACE_SECS",
                10,
                0,
                3600,
            )?),
            log_filter: get("RTCHAT_LOG").unwrap_or_else(|| "info".into()),
        })
    }

    /// A configuration for tests: everything default, with the given database.
    pub fn for_tests(database_url: &str) -> Config {
        let mut config = Config::from_lookup(|_| None).expect("defaults are valid");
        config.database_url = Some(Secret::new(database_url));
        config.jwt_secret = Some(Secret::new("test-secret-test-secret-test-secret"));
        config.addr = "127.0.0.1:0".parse().expect("valid address");
        config
    }

    /// The text of `rtchat --help`.
    pub fn help() -> String {
        let mut out = String::from(
            "rtchat: a real-time chat backend on PostgreSQL\n\nUsage: rtchat [--help]\n\nConfiguration comes from environment variables:\n\n",
        );
        for s in SETTINGS {
            out.push_str(&format!(
                "  {:<30} default {:<14} {}\n",
                s.name, s.default, s.help
            ));
        }
        out
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&'static str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<T, ConfigError> {
    let raw = get(name).unwrap_or_else(|| default.to_string());
    raw.trim().parse().map_err(|_| ConfigError {
        variable: name,
        message: format!("cannot parse {raw:?}"),
    })
}

fn ranged(
    get: &impl Fn(&'static str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let value: u64 = parse(get, name, &default.to_string())?;
    if value < min || value > max {
        return Err(ConfigError {
            variable: name,
            message: format!("{value} is outside {min}..={max}"),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = Config::from_lookup(|k| (k == "RTCHAT_DB_POOL_SIZE").then(|| "lots".into()))
            .unwrap_err();
        assert_eq!(err.variable, "RTCHAT_DB_POOL_SIZE");
        let err =
            Config::from_lookup(|k| (k == "RTCHAT_WS_QUEUE").then(|| "0".into())).unwrap_err();
        assert_eq!(err.variable, "RTCHAT_WS_QUEUE");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let config = Config::from_lookup(|k| match k {
            "JWT_SECRET" => Some("super-secret-value-123".into()),
            "DATABASE_URL" => Some("postgres://u:hunter2@db/x".into()),
            _ => None,
        })
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("super-secret-value-123"));
        assert!(!shown.contains("hunter2"));
    }
}
