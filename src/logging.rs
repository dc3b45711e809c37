//! Log output: the filter (`RTCHAT_LOG`), the line format (`RTCHAT_LOG_FORMAT`: text for
//! people, one JSON object per line for log pipelines), and the ids that tie a request's log
//! line to the client's view of it (`X-Request-Id`) and to the user it authenticated as.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-12-01T21:34:32.454059Z  INFO message key=value ...`, for people.
    Text,
    /// `{"ts", "level", "target", "msg", ...fields}`, one object per line, for pipelines.
    Json,
}

impl LogFormat {
    /// `RTCHAT_LOG_FORMAT`'s value; the error names the values it takes.
    pub fn parse(value: &str) -> Result<LogFormat, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("takes `text` or `json`".into()),
        }
    }
}

/// Whether `filter` is a valid `RTCHAT_LOG` (tracing `EnvFilter` syntax); the error says why.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Logs to stdout as text, one line per event, filtered by `filter` (`RTCHAT_LOG`).
pub fn init_logging(filter: &str) {
    init_logging_as(filter, LogFormat::Text);
}

/// Logs to stdout in `format`, one line per event, filtered by `filter` (`RTCHAT_LOG`; an
/// invalid one logs at info). A second call changes nothing (tests start many servers).
pub fn init_logging_as(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
    };
}

/// The `RTCHAT_LOG_FORMAT=json` line: the event's fields beside `ts`, `level`, `target` and
/// `msg`, with numbers and booleans as JSON numbers and booleans. A field named like one of
/// those four is written as `field.<name>`, so it never hides them.
struct JsonLines;

/// The keys every JSON line starts with.
const JSON_KEYS: &[&str] = &["ts", "level", "target", "msg"];

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        // Events from the `log` crate (tokio-postgres) carry their real target here.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        // Written pair by pair, not as a map (which sorts its keys), so that the four keys
        // come first on every line.
        let head = [
            ("ts", Value::String(ts)),
            ("level", meta.level().as_str().into()),
            ("target", meta.target().into()),
            ("msg", fields.message.take().unwrap_or_default().into()),
        ];
        let rest = fields.values.into_iter().map(|(name, value)| {
            if JSON_KEYS.contains(&name.as_str()) {
                (format!("field.{name}"), value)
            } else {
                (name, value)
            }
        });
        let pairs: Vec<String> = head
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .chain(rest)
            .map(|(name, value)| format!("{}:{value}", Value::String(name)))
            .collect();
        writeln!(writer, "{{{}}}", pairs.join(","))
    }
}

/// An event's fields as JSON values, its message apart.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    values: Vec<(String, Value)>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
            }
            // tracing-log's own fields: the metadata already says where the event came from.
            name if name.starts_with("log.") => {}
            name => self.values.push((name.to_string(), value)),
        }
    }
}

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.put(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

/// A duration in milliseconds rounded to 0.01, as the access and socket lines show it.
pub fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 100_000.0).round() / 100.0
}

/// The longest `X-Request-Id` a client may supply (a UUID is 36 characters; a trace id 32).
pub const MAX_REQUEST_ID: usize = 64;

/// Hands out request ids: this process's random prefix and a counter, 16 hex digits in all,
/// so ids from several processes behind one proxy do not collide.
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: rand::random(),
            next: AtomicU64::new(1),
        }
    }
}

impl RequestIds {
    /// The client's own id when it is sane (1..=`MAX_REQUEST_ID` characters of
    /// `[A-Za-z0-9._-]`, so that it is safe in a log line and a header), else a new one.
    pub fn for_request(&self, supplied: Option<&[u8]>) -> String {
        match supplied {
            Some(id) if is_sane_request_id(id) => String::from_utf8_lossy(id).into_owned(),
            _ => {
                // Wraps after 2^32 requests; with the prefix the ids stay unique for a day
                // at 50,000 requests per second, long enough to find a line.
                let n = self.next.fetch_add(1, Ordering::Relaxed) as u32;
                format!("{:08x}{n:08x}", self.prefix)
            }
        }
    }
}

/// Whether a supplied `X-Request-Id` may be used as it is.
fn is_sane_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The user a request authenticated as, for its access log line: the router puts one in the
/// request's extensions and the handler's token check fills it in.
#[derive(Clone, Default)]
pub struct RequestUser(Arc<AtomicI64>);

impl RequestUser {
    /// No user yet (user ids start at 1).
    const UNKNOWN: i64 = 0;

    pub fn set(&self, user_id: i64) {
        self.0.store(user_id, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|id| *id != Self::UNKNOWN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supplied_request_ids_are_kept_only_when_sane() {
        let ids = RequestIds::default();
        assert_eq!(ids.for_request(Some(b"abc-123_x.y")), "abc-123_x.y");
        let long = "a".repeat(MAX_REQUEST_ID);
        assert_eq!(ids.for_request(Some(long.as_bytes())), long);
        for bad in [
            &b""[..],
            b"has space",
            b"new\nline",
            &[b'a'; MAX_REQUEST_ID + 1],
        ] {
            let id = ids.for_request(Some(bad));
            assert_eq!(id.len(), 16, "{bad:?} replaced by a generated id: {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        let (a, b) = (ids.for_request(None), ids.for_request(None));
        assert_ne!(a, b, "each request its own id");
        assert_eq!(a[..8], b[..8], "one prefix per process");
    }

    #[test]
    fn log_formats_are_text_or_json() {
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(" JSON "), Ok(LogFormat::Json));
        assert!(LogFormat::parse("yaml").is_err());
    }

    #[test]
    fn durations_are_rounded_to_hundredths_of_a_millisecond() {
        use std::time::Duration;
        assert_eq!(millis(Duration::from_nanos(1_234_567)), 1.23);
        assert_eq!(millis(Duration::from_nanos(1_235_001)), 1.24);
        assert_eq!(millis(Duration::from_secs(2)), 2000.0);
    }
}
