//! The table of every setting: its variable, default and meaning. The parser takes its
//! defaults from here, `rtchat --help` prints it, and the README's table is it rendered.

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
    Setting { name: "JWT_SECRET", default: "(generated)", help: "HS256 secret, at least 16 characters, the same on every process; unset: with the embedded PostgreSQL, generated once into `RTCHAT_DATA_DIR/jwt_secret` (mode 0600) and reused, so tokens survive restarts; with `DATABASE_URL`, random per process (tokens die with it, and other processes reject them)" },
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
    Setting { name: "RTCHAT_PRESENCE_GRACE_SECS", default: "5", help: "a user whose last socket (over all processes) closed is announced offline only after this long without one, so a reconnect does not flap; the same on every process. A SIGKILLed process's users are announced offline within 4 × `RTCHAT_LEASE_RENEW_SECS` + this (25 s with the defaults)" },
    Setting { name: "RTCHAT_RATE_MESSAGES_PER_SEC", default: "10", help: "message sends and edits, and read cursor moves, per user per second, sustained" },
    Setting { name: "RTCHAT_RATE_MESSAGES_BURST", default: "30", help: "message sends and edits, and read cursor moves, per user in a burst" },
    Setting { name: "RTCHAT_RATE_TYPING_PER_SEC", default: "2", help: "typing frames per user per second (bursts of 5; also one per chat per 2 s)" },
    Setting { name: "RTCHAT_RATE_WRITES_PER_SEC", default: "5", help: "chat writes per user per second, sustained: creating, changing and deleting chats, adding and removing members, deleting messages (sends, edits and marking read count as messages)" },
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
    Setting { name: "RTCHAT_LOG_FORMAT", default: "text", help: "log line format: `text`, or `json` (one object per line with `ts`, `level`, `target`, `msg` and the fields); another value is warned about and logs text" },
    Setting { name: "RTCHAT_DB_CONNECT_TIMEOUT_SECS", default: "30", help: "how long the first database connection at start is retried (with backoff, each failure logged with the host and the cause) before rtchat exits with an error" },
    Setting { name: "RTCHAT_RATE_SEARCHES_PER_SEC", default: "2", help: "message searches (`GET /search/messages`) per user per second, sustained, in bursts of 10: each may hold a database connection for up to `RTCHAT_SEARCH_TIMEOUT_MS`" },
    Setting { name: "RTCHAT_SEARCH_TIMEOUT_MS", default: "2000", help: "longest a message search (`GET /search/messages`) may run in PostgreSQL; past it the search answers 503 `server_busy` instead of holding a pooled connection" },
];
