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

mod settings;
pub use settings::{Setting, SETTINGS};

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
    /// Writer tasks committing batches of message sends (src/delivery/writers.rs).
    pub send_writers: usize,
    /// Frames a socket may have queued before it is closed as a slow reader.
    pub ws_queue: usize,
    /// How often connected users are compared with the log (the safety net for lost hints).
    pub sweep_interval: Duration,
    /// How long events are kept for replay.
    pub event_retention: Duration,
    /// Deadline for draining HTTP on shutdown.
    pub shutdown_grace: Duration,
    /// WebSocket sessions per process, and per user per process.
    pub max_sockets: usize,
    pub max_sockets_per_user: usize,
    /// Rate limits (see `limits`).
    pub rate_messages_per_sec: f64,
    pub rate_messages_burst: f64,
    pub rate_typing_per_sec: f64,
    pub rate_login_per_email: i32,
    pub rate_login_per_addr: i32,
    pub rate_register_per_addr: f64,
    pub rate_register_per_email: f64,
    /// `None` allows every origin.
    pub cors_origins: Option<Vec<String>>,
    /// Proxies whose `X-Forwarded-For` is believed: `(network, prefix length)`.
    pub trusted_proxies: Vec<(std::net::IpAddr, u8)>,
    /// tracing filter.
    pub log_filter: String,
    /// Failed logins per email from all addresses together, per window (see `limits`).
    pub rate_login_per_email_global: i32,
    /// How often this process renews its lease (src/leases.rs).
    pub lease_renew: Duration,
    /// Bytes of frames a socket may have queued before it is closed as a slow reader.
    pub ws_queue_bytes: usize,
    /// How long a connection may take to send a request head, counted from its start and
    /// from each response, and how long a response write may make no progress (silent, slow,
    /// idle keep-alive and non-reading clients would hold connection slots).
    pub header_read_timeout: Duration,
    /// Chat writes per user (see `limits`): creating, changing and deleting chats, member
    /// changes, message deletes.
    pub rate_writes_per_sec: f64,
    pub rate_writes_burst: f64,
    /// Changes of one chat (title, activity, members): each writes an event per member.
    pub rate_chat_changes_per_min: f64,
    pub rate_chat_changes_burst: f64,
    /// The `statement_timeout` of a message search.
    pub search_timeout: Duration,
    /// Message searches per user per second (see `limits`).
    pub rate_searches_per_sec: f64,
    /// How long a user's last socket must stay closed before they are announced offline
    /// (src/delivery/presence.rs); the same on every process.
    pub presence_grace: Duration,
    /// Failures a test injects into the delivery tasks; nothing else sets them.
    #[doc(hidden)]
    pub faults: Faults,
    /// `text` or `json` (`RTCHAT_LOG_FORMAT`); like `log_filter`, a bad value is warned
    /// about at start, not refused.
    pub log_format: String,
    /// How long the first database connection is retried at start.
    pub db_connect_timeout: Duration,
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
            addr: parse(&get, "RTCHAT_ADDR")?,
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
            data_dir: PathBuf::from(
                get("RTCHAT_DATA_DIR").unwrap_or_else(|| default_of("RTCHAT_DATA_DIR").into()),
            ),
            token_ttl: Duration::from_secs(ranged(&get, "RTCHAT_TOKEN_TTL_SECS", 10, 86_400 * 30)?),
            refresh_ttl: Duration::from_secs(
                86_400 * ranged(&get, "RTCHAT_REFRESH_TTL_DAYS", 1, 3650)?,
            ),
            db_pool_size: ranged(&get, "RTCHAT_DB_POOL_SIZE", 1, 1000)? as usize,
            max_connections: ranged(&get, "RTCHAT_MAX_CONNECTIONS", 1, 1_000_000)? as usize,
            heartbeat: Duration::from_secs(ranged(&get, "RTCHAT_HEARTBEAT_SECS", 1, 3600)?),
            send_writers: ranged(&get, "RTCHAT_SEND_WRITERS", 1, 16)? as usize,
            ws_queue: ranged(&get, "RTCHAT_WS_QUEUE", 1, 1_000_000)? as usize,
            sweep_interval: Duration::from_secs(ranged(&get, "RTCHAT_SWEEP_SECS", 1, 3600)?),
            event_retention: Duration::from_secs(
                86_400 * ranged(&get, "RTCHAT_EVENT_RETENTION_DAYS", 1, 3650)?,
            ),
            shutdown_grace: Duration::from_secs(ranged(
                &get,
                "RTCHAT_SHUTDOWN_GRACE_SECS",
                0,
                3600,
            )?),
            max_sockets: ranged(&get, "RTCHAT_MAX_SOCKETS", 1, 10_000_000)? as usize,
            max_sockets_per_user: ranged(&get, "RTCHAT_MAX_SOCKETS_PER_USER", 1, 100_000)? as usize,
            rate_messages_per_sec: ranged(&get, "RTCHAT_RATE_MESSAGES_PER_SEC", 1, 1_000_000)?
                as f64,
            rate_register_per_email: ranged(&get, "RTCHAT_RATE_REGISTER_PER_EMAIL", 1, 1_000_000)?
                as f64,
            rate_messages_burst: ranged(&get, "RTCHAT_RATE_MESSAGES_BURST", 1, 1_000_000)? as f64,
            rate_typing_per_sec: ranged(&get, "RTCHAT_RATE_TYPING_PER_SEC", 1, 1_000_000)? as f64,
            rate_login_per_email: ranged(&get, "RTCHAT_RATE_LOGIN_PER_EMAIL", 1, 1_000_000)? as i32,
            rate_login_per_addr: ranged(&get, "RTCHAT_RATE_LOGIN_PER_ADDR", 1, 1_000_000)? as i32,
            rate_register_per_addr: ranged(&get, "RTCHAT_RATE_REGISTER_PER_ADDR", 1, 1_000_000)?
                as f64,
            cors_origins: match get("RTCHAT_CORS_ORIGINS") {
                None => None,
                Some(list) if list.trim() == "*" => None,
                Some(list) => Some(
                    list.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_string())
                        .filter(|o| !o.is_empty())
                        .collect(),
                ),
            },
            trusted_proxies: match get("RTCHAT_TRUSTED_PROXIES") {
                None => Vec::new(),
                Some(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        parse_cidr(p).ok_or_else(|| ConfigError {
                            variable: "RTCHAT_TRUSTED_PROXIES",
                            message: format!("{p:?} is not an IP address or CIDR"),
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            log_filter: get("RTCHAT_LOG").unwrap_or_else(|| default_of("RTCHAT_LOG").into()),
            rate_login_per_email_global: ranged(
                &get,
                "RTCHAT_RATE_LOGIN_PER_EMAIL_GLOBAL",
                1,
                1_000_000,
            )? as i32,
            lease_renew: Duration::from_secs(ranged(&get, "RTCHAT_LEASE_RENEW_SECS", 1, 60)?),
            ws_queue_bytes: ranged(&get, "RTCHAT_WS_QUEUE_BYTES", 1024, 1 << 30)? as usize,
            header_read_timeout: Duration::from_secs(ranged(
                &get,
                "RTCHAT_HEADER_TIMEOUT_SECS",
                1,
                3600,
            )?),
            rate_writes_per_sec: ranged(&get, "RTCHAT_RATE_WRITES_PER_SEC", 1, 1_000_000)? as f64,
            rate_writes_burst: ranged(&get, "RTCHAT_RATE_WRITES_BURST", 1, 1_000_000)? as f64,
            rate_chat_changes_per_min: ranged(
                &get,
                "RTCHAT_RATE_CHAT_CHANGES_PER_MIN",
                1,
                1_000_000,
            )? as f64,
            rate_chat_changes_burst: ranged(&get, "RTCHAT_RATE_CHAT_CHANGES_BURST", 1, 1_000_000)?
                as f64,
            search_timeout: Duration::from_millis(ranged(
                &get,
                "RTCHAT_SEARCH_TIMEOUT_MS",
                1,
                600_000,
            )?),
            rate_searches_per_sec: ranged(&get, "RTCHAT_RATE_SEARCHES_PER_SEC", 1, 1_000_000)?
                as f64,
            presence_grace: Duration::from_secs(ranged(
                &get,
                "RTCHAT_PRESENCE_GRACE_SECS",
                0,
                3600,
            )?),
            faults: Faults::default(),
            log_format: get("RTCHAT_LOG_FORMAT")
                .unwrap_or_else(|| default_of("RTCHAT_LOG_FORMAT").into()),
            db_connect_timeout: Duration::from_secs(ranged(
                &get,
                "RTCHAT_DB_CONNECT_TIMEOUT_SECS",
                1,
                3600,
            )?),
        })
    }

    /// A configuration for tests: everything default, with the given database.
    pub fn for_tests(database_url: &str) -> Config {
        let mut config = Config::from_lookup(|_| None).expect("defaults are valid");
        config.database_url = Some(Secret::new(database_url));
        config.jwt_secret = Some(Secret::new("test-secret-test-secret-test-secret"));
        config.addr = "127.0.0.1:0".parse().expect("valid address");
        // Every test registers and logs in from 127.0.0.1: limits that matter get their own
        // tests with their own settings.
        config.rate_messages_per_sec = 100_000.0;
        config.rate_messages_burst = 100_000.0;
        config.rate_typing_per_sec = 100_000.0;
        config.rate_login_per_email = 100_000;
        config.rate_login_per_addr = 100_000;
        config.rate_register_per_addr = 100_000.0;
        config.rate_register_per_email = 100_000.0;
        config.rate_login_per_email_global = 100_000;
        config.rate_writes_per_sec = 100_000.0;
        config.rate_writes_burst = 100_000.0;
        config.rate_chat_changes_per_min = 100_000.0;
        config.rate_chat_changes_burst = 100_000.0;
        config.rate_searches_per_sec = 100_000.0;
        config
    }

    /// The README's configuration table, rendered from `SETTINGS` (a test keeps the README's
    /// copy equal to it).
    pub fn settings_table() -> String {
        let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
        for s in SETTINGS {
            let default = if s.default.starts_with('(') {
                s.default.to_string()
            } else {
                format!("`{}`", s.default)
            };
            out.push_str(&format!("| `{}` | {} | {} |\n", s.name, default, s.help));
        }
        out
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

/// `10.0.0.0/8`, `::1`, `192.168.1.7` → (network, prefix length).
fn parse_cidr(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a.parse::<std::net::IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a = text.parse::<std::net::IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// Whether `ip` lies in the network `(net, len)`.
pub fn in_network(ip: std::net::IpAddr, (net, len): (std::net::IpAddr, u8)) -> bool {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The default of setting `name`, from `SETTINGS`: the one place defaults are written.
fn default_of(name: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.default)
        .expect("every variable the parser reads is in SETTINGS")
}

/// Setting `name` parsed as `T`, or its default from `SETTINGS`.
fn parse<T: std::str::FromStr>(
    get: &impl Fn(&'static str) -> Option<String>,
    name: &'static str,
) -> Result<T, ConfigError> {
    let raw = get(name).unwrap_or_else(|| default_of(name).to_string());
    raw.trim().parse().map_err(|_| ConfigError {
        variable: name,
        message: format!("cannot parse {raw:?}"),
    })
}

/// Setting `name` as an integer in `min..=max`, or its default from `SETTINGS`.
fn ranged(
    get: &impl Fn(&'static str) -> Option<String>,
    name: &'static str,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let value: u64 = parse(get, name)?;
    if value < min || value > max {
        return Err(ConfigError {
            variable: name,
            message: format!("{value} is outside {min}..={max}"),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests;

/// Failures a test injects into delivery's tasks, to prove that they are supervised (a task
/// that dies is restarted). Shared by the clones of a `Config`; nothing but tests sets them.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct Faults(std::sync::Arc<FaultFlags>);

#[derive(Debug, Default)]
struct FaultFlags {
    writer_panic: std::sync::atomic::AtomicBool,
    listener_panic: tokio::sync::Notify,
}

impl Faults {
    /// The send writer that takes the next batch panics before writing it.
    pub fn panic_next_send_writer(&self) {
        self.0
            .writer_panic
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The listener panics before it handles its next hint (or at once if it is waiting).
    pub fn panic_listener(&self) {
        self.0.listener_panic.notify_one();
    }

    /// Whether the writer taking a batch now must panic (clears the request).
    pub fn take_writer_panic(&self) -> bool {
        let flag = &self.0.writer_panic;
        flag.load(std::sync::atomic::Ordering::Relaxed)
            && flag.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Completes when a test asked the listener to panic.
    pub async fn listener_panicked(&self) {
        self.0.listener_panic.notified().await;
    }
}
