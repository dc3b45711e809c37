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
    Setting { name: "DATABASE_URL", default: "(embedded)", help: "PostgreSQL URL or `key=value` string; unset starts a private PostgreSQL under `RTCHAT_DATA_DIR/postgres`" },
    Setting { name: "JWT_SECRET", default: "(random)", help: "HS256 secret, at least 16 characters; unset generates one per process (tokens die with it, and other processes reject them)" },
    Setting { name: "RTCHAT_DATA_DIR", default: "./data", help: "where the embedded PostgreSQL keeps its files" },
    Setting { name: "RTCHAT_LOG", default: "info", help: "log filter (tracing `EnvFilter` syntax)" },
    Setting { name: "RTCHAT_TOKEN_TTL_SECS", default: "1800", help: "access token lifetime" },
    Setting { name: "RTCHAT_REFRESH_TTL_DAYS", default: "30", help: "login session (refresh token) lifetime" },
    Setting { name: "RTCHAT_DB_POOL_SIZE", default: "16", help: "PostgreSQL connections per process" },
    Setting { name: "RTCHAT_MAX_CONNECTIONS", default: "19000", help: "open TCP connections per process, WebSockets included; more wait in the kernel's accept queue. The default fits a 20,000 open-file limit; rtchat raises its soft limit to the hard one at start and warns when the setting does not fit" },
    Setting { name: "RTCHAT_HEADER_TIMEOUT_SECS", default: "10", help: "a connection must send each request head within this time of connecting or of its previous response, and a response write may make no progress for no longer, else the connection is closed (silent, slow, idle keep-alive and non-reading clients would otherwise hold connection slots)" },
    Setting { name: "RTCHAT_MAX_SOCKETS", default: "18000", help: "WebSocket sessions per process (more: 503 `server_busy`); they count among `RTCHAT_MAX_CONNECTIONS`, so keep it below that (rtchat warns otherwise)" },
    Setting { name: "RTCHAT_MAX_SOCKETS_PER_USER", default: "20", help: "WebSocket sessions per user per process (more: 429 `too_many_sockets`)" },
    Setting { name: "RTCHAT_HEARTBEAT_SECS", default: "25", help: "WebSocket ping interval; silent for two intervals = dropped" },
    Setting { name: "RTCHAT_WS_QUEUE", default: "1024", help: "frames queued per socket before a slow reader is closed with 1013" },
    Setting { name: "RTCHAT_WS_QUEUE_BYTES", default: "65536", help: "bytes of frames queued per socket (besides `RTCHAT_WS_QUEUE` frames) before a slow reader is closed with 1013. An empty queue always takes one frame, whatever its size. Worst case per process with the defaults: 18,000 sockets × 64 KiB = 1.1 GiB of queued frames (only if every queued frame is distinct: a message's frame is shared by its recipient's sockets), plus each socket's 16 KiB write buffer" },
    Setting { name: "RTCHAT_SEND_WRITERS", default: "1", help: "tasks committing batches of message sends (group commit), each for its share of the chats on its own database connection: 1 has the lowest latency, 2 the most throughput on 2 cores" },
    Setting { name: "RTCHAT_SWEEP_SECS", default: "5", help: "how often sockets are checked against the log, in case a cross-process hint was lost" },
    Setting { name: "RTCHAT_EVENT_RETENTION_DAYS", default: "30", help: "how long events are kept for `since` replay" },
    Setting { name: "RTCHAT_SHUTDOWN_GRACE_SECS", default: "10", help: "how long shutdown waits for in-flight requests" },
    Setting { name: "RTCHAT_LEASE_RENEW_SECS", default: "5", help: "how often a process renews its row in `process_leases` (a lease lapses after 3 missed renewals); the rate limits are shared evenly among the processes with a live lease" },
    Setting { name: "RTCHAT_RATE_MESSAGES_PER_SEC", default: "10", help: "message sends and edits per user per second, sustained" },
    Setting { name: "RTCHAT_RATE_MESSAGES_BURST", default: "30", help: "message sends and edits per user in a burst" },
    Setting { name: "RTCHAT_RATE_TYPING_PER_SEC", default: "2", help: "typing frames per user per second (bursts of 5; also one per chat per 2 s)" },
    Setting { name: "RTCHAT_RATE_WRITES_PER_SEC", default: "5", help: "chat writes per user per second, sustained: creating, changing and deleting chats, adding and removing members, deleting messages, marking read (sends and edits count as messages)" },
    Setting { name: "RTCHAT_RATE_WRITES_BURST", default: "20", help: "chat writes per user in a burst" },
    Setting { name: "RTCHAT_RATE_CHAT_CHANGES_PER_MIN", default: "30", help: "changes of one chat's title, activity or members per minute, sustained, whoever makes them (each is one event per member: 1,000 log rows in a full group); leaving is never limited" },
    Setting { name: "RTCHAT_RATE_CHAT_CHANGES_BURST", default: "5", help: "changes of one chat in a burst" },
    Setting { name: "RTCHAT_RATE_LOGIN_PER_EMAIL", default: "10", help: "failed logins per email from one client address (IPv6: one /64) per 5 minutes, across all processes; a correct password does not count" },
    Setting { name: "RTCHAT_RATE_LOGIN_PER_EMAIL_GLOBAL", default: "100", help: "failed logins per email from all addresses together per 5 minutes, across all processes: stops distributed guessing; once reached, the email is locked for the rest of the window" },
    Setting { name: "RTCHAT_RATE_LOGIN_PER_ADDR", default: "50", help: "failed logins per client address (IPv6: one /64), over all emails, per 5 minutes, across all processes" },
    Setting { name: "RTCHAT_RATE_REGISTER_PER_ADDR", default: "20", help: "registrations per client address per hour" },
    Setting { name: "RTCHAT_RATE_REGISTER_PER_EMAIL", default: "5", help: "registration attempts per email per hour (each tells whether the email is taken)" },
    Setting { name: "RTCHAT_CORS_ORIGINS", default: "*", help: "comma-separated origins allowed to call the API from browsers" },
    Setting { name: "RTCHAT_TRUSTED_PROXIES", default: "(none)", help: "proxy addresses or CIDRs whose `X-Forwarded-For` names the client" },
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
    /// changes, message deletes, read cursors.
    pub rate_writes_per_sec: f64,
    pub rate_writes_burst: f64,
    /// Changes of one chat (title, activity, members): each writes an event per member.
    pub rate_chat_changes_per_min: f64,
    pub rate_chat_changes_burst: f64,
    /// Failures a test injects into the delivery tasks; nothing else sets them.
    #[doc(hidden)]
    pub faults: Faults,
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
            faults: Faults::default(),
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
mod tests {
    use super::*;

    #[test]
    fn every_numeric_setting_is_read_by_the_parser_with_its_tabled_default() {
        let defaults = Config::from_lookup(|_| None).expect("the tabled defaults are valid");
        assert_eq!(
            defaults.db_pool_size.to_string(),
            default_of("RTCHAT_DB_POOL_SIZE")
        );
        for setting in SETTINGS {
            if setting.default.parse::<u64>().is_err() {
                continue;
            }
            let err = Config::from_lookup(|k| (k == setting.name).then(|| "bogus".into()))
                .expect_err(setting.name);
            assert_eq!(
                err.variable, setting.name,
                "the parser reads {}",
                setting.name
            );
        }
    }

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
    fn trusted_proxies_parse_as_cidrs() {
        let config = Config::from_lookup(|k| {
            (k == "RTCHAT_TRUSTED_PROXIES").then(|| "10.0.0.0/8, ::1".into())
        })
        .unwrap();
        assert!(in_network(
            "10.1.2.3".parse().unwrap(),
            config.trusted_proxies[0]
        ));
        assert!(!in_network(
            "11.1.2.3".parse().unwrap(),
            config.trusted_proxies[0]
        ));
        assert!(in_network(
            "::1".parse().unwrap(),
            config.trusted_proxies[1]
        ));
        let err = Config::from_lookup(|k| (k == "RTCHAT_TRUSTED_PROXIES").then(|| "nope".into()))
            .unwrap_err();
        assert_eq!(err.variable, "RTCHAT_TRUSTED_PROXIES");
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
