//! Delivery's metrics: plain relaxed atomics that the sockets, the hub's callers and the
//! delivery tasks bump on their hot paths (no lock, no map, no allocation), rendered by
//! hand as Prometheus text at scrape time, which only reads them.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// What a socket is sent: the durable event types, then the ephemeral frames.
/// `rtchat_ws_frames_total{type}` keeps one counter per variant, indexed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    CreateChat,
    UpdateChat,
    DeleteChat,
    NewMessage,
    UpdateMessage,
    DeleteMessage,
    Read,
    Reaction,
    Ready,
    Typing,
    Presence,
    Pong,
    ResyncRequired,
    Error,
    /// A durable event type this list does not name yet (still counted, never lost).
    Other,
}

impl FrameType {
    const ALL: [FrameType; 15] = [
        FrameType::CreateChat,
        FrameType::UpdateChat,
        FrameType::DeleteChat,
        FrameType::NewMessage,
        FrameType::UpdateMessage,
        FrameType::DeleteMessage,
        FrameType::Read,
        FrameType::Reaction,
        FrameType::Ready,
        FrameType::Typing,
        FrameType::Presence,
        FrameType::Pong,
        FrameType::ResyncRequired,
        FrameType::Error,
        FrameType::Other,
    ];

    /// The `type` label: the frame's `type` field.
    pub fn label(self) -> &'static str {
        match self {
            FrameType::CreateChat => "create_chat",
            FrameType::UpdateChat => "update_chat",
            FrameType::DeleteChat => "delete_chat",
            FrameType::NewMessage => "new_message",
            FrameType::UpdateMessage => "update_message",
            FrameType::DeleteMessage => "delete_message",
            FrameType::Read => "read",
            FrameType::Reaction => "reaction",
            FrameType::Ready => "ready",
            FrameType::Typing => "typing",
            FrameType::Presence => "presence",
            FrameType::Pong => "pong",
            FrameType::ResyncRequired => "resync_required",
            FrameType::Error => "error",
            FrameType::Other => "other",
        }
    }

    /// The frame type of a durable event's `type` (as the log stores it). Once per event,
    /// not per recipient: the hub and the listener carry the result with the frame.
    pub fn of_event(kind: &str) -> FrameType {
        match kind {
            "create_chat" => FrameType::CreateChat,
            "update_chat" => FrameType::UpdateChat,
            "delete_chat" => FrameType::DeleteChat,
            "new_message" => FrameType::NewMessage,
            "update_message" => FrameType::UpdateMessage,
            "delete_message" => FrameType::DeleteMessage,
            "read" => FrameType::Read,
            "reaction" => FrameType::Reaction,
            _ => FrameType::Other,
        }
    }
}

/// Close codes the server sends (`ws::protocol`), one counter each.
const CLOSE_CODES: [u16; 9] = [1001, 1002, 1003, 1007, 1008, 1009, 1011, 1013, 4001];

/// How a socket ended, for `rtchat_ws_closes_total{code}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The server closed it with this code.
    Code(u16),
    /// The client closed it, or the network did (end of stream, reset, a failed write).
    Client,
    /// The server dropped it without a close frame: the client stopped answering pings, or
    /// a write made no progress for the write timeout.
    Timeout,
}

impl Closed {
    fn index(self) -> usize {
        match self {
            Closed::Code(code) => CLOSE_CODES
                .iter()
                .position(|c| *c == code)
                .unwrap_or(CLOSE_LABELS.len() - 1),
            Closed::Client => CLOSE_CODES.len(),
            Closed::Timeout => CLOSE_CODES.len() + 1,
        }
    }
}

/// The `code` labels: `CLOSE_CODES`, then `client`, `timeout`, and `other` for a code not
/// listed (kept, so that a new one is counted before it is named here).
const CLOSE_LABELS: [&str; 12] = [
    "1001", "1002", "1003", "1007", "1008", "1009", "1011", "1013", "4001", "client", "timeout",
    "other",
];

/// Where a pushed event's latency is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Origin {
    /// Committed by this process: from right after its commit.
    Local,
    /// Committed by another process: from the arrival of its hint here (the commit's time
    /// is on another clock).
    Remote,
}

/// A moment on a process-wide clock in microseconds, wrapping every 71 minutes (latencies
/// are far shorter). Four bytes, so that a queued push carries it and stays 48 bytes, as
/// it was before: every socket's queue holds blocks of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp(u32);

impl Stamp {
    pub fn now() -> Stamp {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(Instant::now);
        // Truncation is the wrap.
        Stamp(epoch.elapsed().as_micros() as u32)
    }

    /// Microseconds from `self` to `later`.
    pub fn micros_until(self, later: Stamp) -> u64 {
        u64::from(later.0.wrapping_sub(self.0))
    }
}

/// Commit → socket write, in microseconds: sub-millisecond to 10 s (a write that takes
/// longer times out and drops the socket).
const LATENCY_BOUNDS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// Sends per batch: powers of two up to the writers' `MAX_BATCH` (128).
const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128];

/// Events per replay: empty, then by decades.
const REPLAY_BOUNDS: &[u64] = &[0, 1, 10, 100, 1_000, 10_000, 100_000];

/// A histogram as fixed buckets of atomics: one bucket increment and one sum addition per
/// observation; the cumulative counts and `_count` are summed up at scrape.
pub struct Histogram {
    /// Upper bounds (inclusive, `le`), ascending, in the observed unit.
    bounds: &'static [u64],
    /// One per bound, then `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The series of one histogram; `labels` is `key="value",` or empty, and `scale` turns
    /// the observed unit into the exposed one (1e6 for microseconds as seconds).
    fn render(&self, out: &mut String, name: &str, labels: &str, scale: f64) {
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Relaxed);
            let le = *bound as f64 / scale;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.buckets[self.bounds.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum.load(Relaxed) as f64 / scale;
        let braces = |labels: &str| {
            if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.trim_end_matches(','))
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// The counters and histograms of delivery, shared by `Delivery`, its tasks and the
/// socket sessions.
pub struct DeliveryMetrics {
    frames: [AtomicU64; FrameType::ALL.len()],
    closes: [AtomicU64; CLOSE_LABELS.len()],
    /// By `Origin`.
    latency: [Histogram; 2],
    batches: Histogram,
    replays: Histogram,
    sweep_missing: AtomicU64,
    listener_reconnects: AtomicU64,
    /// Whether the LISTEN connection was ever up: the next time it comes up is a reconnect.
    listened: AtomicBool,
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        DeliveryMetrics {
            frames: Default::default(),
            closes: Default::default(),
            latency: [
                Histogram::new(LATENCY_BOUNDS_US),
                Histogram::new(LATENCY_BOUNDS_US),
            ],
            batches: Histogram::new(BATCH_BOUNDS),
            replays: Histogram::new(REPLAY_BOUNDS),
            sweep_missing: AtomicU64::new(0),
            listener_reconnects: AtomicU64::new(0),
            listened: AtomicBool::new(false),
        }
    }
}

/// What a scrape reads from elsewhere in the process (each once per scrape).
pub struct Gauges {
    /// Sends waiting in the writers' queues.
    pub send_queue: usize,
    /// Whether the LISTEN connection is up.
    pub listening: bool,
    /// Entries in the revoked-session cache.
    pub revoked: usize,
    /// Users online over all processes, as this process's presence view knows them.
    pub online_users: usize,
    /// Presence frames queued to this process's sockets so far (the presence task's own
    /// counter, shown as it is).
    pub presence_frames: u64,
}

impl DeliveryMetrics {
    /// A frame was written to a socket.
    pub fn frame(&self, kind: FrameType) {
        self.frames[kind as usize].fetch_add(1, Relaxed);
    }

    /// Pushed frames written to a socket (flushed) at `now`, stamped at their commit or
    /// hint.
    pub fn written(&self, stamps: &[(Stamp, Origin)], now: Stamp) {
        for (stamp, origin) in stamps {
            self.latency[*origin as usize].observe(stamp.micros_until(now));
        }
    }

    /// A socket ended.
    pub fn closed(&self, how: Closed) {
        self.closes[how.index()].fetch_add(1, Relaxed);
    }

    /// A batch of `sends` message sends was committed (or failed) together.
    pub fn batch(&self, sends: usize) {
        self.batches.observe(sends as u64);
    }

    /// A socket connected with `since` replayed `events` events.
    pub fn replayed(&self, events: u64) {
        self.replays.observe(events);
    }

    /// The sweep found `events` events that sockets should have had by now (a lost hint or
    /// push: each such socket reads the log).
    pub fn sweep_missing(&self, events: u64) {
        if events > 0 {
            self.sweep_missing.fetch_add(events, Relaxed);
        }
    }

    /// The LISTEN connection is up (again).
    pub fn listening(&self) {
        if self.listened.swap(true, Relaxed) {
            self.listener_reconnects.fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text of these metrics and of `gauges`.
    pub fn render(&self, out: &mut String, gauges: &Gauges) {
        help(
            out,
            "rtchat_ws_frames_total",
            "counter",
            "frames written to WebSocket sockets, by frame type (durable events and ephemeral frames)",
        );
        for (kind, count) in FrameType::ALL.iter().zip(&self.frames) {
            let _ = writeln!(
                out,
                "rtchat_ws_frames_total{{type=\"{}\"}} {}",
                kind.label(),
                count.load(Relaxed)
            );
        }
        help(
            out,
            "rtchat_ws_closes_total",
            "counter",
            "WebSocket sockets ended, by close code the server sent; client: closed by the client or the network; timeout: dropped by the server (no pong, a stuck write)",
        );
        for (label, count) in CLOSE_LABELS.iter().zip(&self.closes) {
            let _ = writeln!(
                out,
                "rtchat_ws_closes_total{{code=\"{label}\"}} {}",
                count.load(Relaxed)
            );
        }
        help(
            out,
            "rtchat_ws_delivery_latency_seconds",
            "histogram",
            "pushed event frames from their commit (origin=local) or from their hint's arrival (origin=remote: committed by another process) to their write on the socket; replays and log catch-ups are not included",
        );
        for (origin, histogram) in ["local", "remote"].iter().zip(&self.latency) {
            histogram.render(
                out,
                "rtchat_ws_delivery_latency_seconds",
                &format!("origin=\"{origin}\","),
                1e6,
            );
        }
        help(
            out,
            "rtchat_send_batch_size",
            "histogram",
            "message sends committed per batch (group commit)",
        );
        self.batches.render(out, "rtchat_send_batch_size", "", 1.0);
        gauge(
            out,
            "rtchat_send_queue_depth",
            "message sends waiting for a send writer",
            gauges.send_queue as u64,
        );
        counter(
            out,
            "rtchat_ws_replays_total",
            "sockets that connected with since and replayed the log",
            self.replays.count(),
        );
        help(
            out,
            "rtchat_ws_replay_events",
            "histogram",
            "events replayed per socket that connected with since",
        );
        self.replays.render(out, "rtchat_ws_replay_events", "", 1.0);
        counter(
            out,
            "rtchat_sweep_missing_events_total",
            "events the sweep found a socket still lacking one interval after they were logged (a lost hint or push; should stay 0)",
            self.sweep_missing.load(Relaxed),
        );
        gauge(
            out,
            "rtchat_listener_up",
            "1 while the LISTEN connection for other processes' hints is up, else 0",
            u64::from(gauges.listening),
        );
        counter(
            out,
            "rtchat_listener_reconnects_total",
            "times the LISTEN connection came up again after it was lost",
            self.listener_reconnects.load(Relaxed),
        );
        gauge(
            out,
            "rtchat_revoked_sessions",
            "entries in the revoked-session cache",
            gauges.revoked as u64,
        );
        gauge(
            out,
            "rtchat_online_users",
            "users online over all processes, as this process knows them (in their grace period included): every process reports about the same number, so take the max, not the sum",
            gauges.online_users as u64,
        );
        counter(
            out,
            "rtchat_presence_frames_total",
            "presence frames queued to this process's sockets",
            gauges.presence_frames,
        );
    }
}

/// `# HELP` and `# TYPE` of a family.
pub(super) fn help(out: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(out, "# HELP {name} {text}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(super) fn counter(out: &mut String, name: &str, text: &str, value: u64) {
    help(out, name, "counter", text);
    let _ = writeln!(out, "{name} {value}");
}

pub(super) fn gauge(out: &mut String, name: &str, text: &str, value: u64) {
    help(out, name, "gauge", text);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_types_index_their_counters_and_name_the_event_types() {
        for (i, kind) in FrameType::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
        }
        for kind in &FrameType::ALL[..7] {
            assert_eq!(FrameType::of_event(kind.label()), *kind);
        }
        assert_eq!(FrameType::of_event("something_new"), FrameType::Other);
    }

    #[test]
    fn close_codes_have_their_labels() {
        for (i, code) in CLOSE_CODES.iter().enumerate() {
            assert_eq!(Closed::Code(*code).index(), i);
            assert_eq!(CLOSE_LABELS[i], code.to_string());
        }
        assert_eq!(CLOSE_LABELS[Closed::Client.index()], "client");
        assert_eq!(CLOSE_LABELS[Closed::Timeout.index()], "timeout");
        assert_eq!(CLOSE_LABELS[Closed::Code(1234).index()], "other");
    }

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let h = Histogram::new(&[1, 10]);
        for v in [0, 1, 2, 10, 11, 100] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\",", 1.0);
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"1\"} 2\n\
             x_bucket{a=\"b\",le=\"10\"} 4\n\
             x_bucket{a=\"b\",le=\"+Inf\"} 6\n\
             x_sum{a=\"b\"} 124\n\
             x_count{a=\"b\"} 6\n"
        );
        let mut out = String::new();
        Histogram::new(&[250]).render(&mut out, "y", "", 1e6);
        assert!(out.starts_with("y_bucket{le=\"0.00025\"} 0\n"), "{out}");
        assert!(out.ends_with("y_sum 0\ny_count 0\n"), "{out}");
    }

    #[test]
    fn stamps_measure_across_the_wrap() {
        assert_eq!(Stamp(u32::MAX - 4).micros_until(Stamp(5)), 10);
        let now = Stamp::now();
        assert!(now.micros_until(Stamp::now()) < 60_000_000);
    }
}
