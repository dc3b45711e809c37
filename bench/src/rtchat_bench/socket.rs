//! Client WebSockets: one task per socket that checks every durable frame's `seq` (the next
//! one, or it counts a duplicate or a gap), records POST-to-receipt latency of
//! `new_message` frames, reconnects with `since` when told to (storm) or when the server
//! closes it (slow readers), and can stop reading on command (slow consumers).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::net::{tcp_connect, Target, CONNECT_TIMEOUT};
use super::setup::User;

/// Client read buffer: our frames are small, and 20,000 sockets with tungstenite's default
/// 128 KiB would cost the generator 2.5 GB.
const CLIENT_READ_BUFFER: usize = 4 * 1024;

/// The receive buffer of a socket that plays a slow reader: a small window makes the
/// server's side back up within seconds instead of after megabytes.
const SLOW_RECV_BUFFER: u32 = 4 * 1024;

/// Reconnect backoff bounds (with jitter), as a well-behaved client would do.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Latencies above this are clamped (they are failures anyway).
const MAX_LATENCY_US: u64 = 120_000_000;

/// The epoch of every timestamp the generator puts into a message text.
pub fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since `epoch()`.
pub fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// A latency histogram in microseconds, sharded so thousands of socket tasks rarely meet
/// on one lock.
pub struct Latency {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Latency {
    pub fn new() -> Latency {
        Latency {
            shards: (0..16)
                .map(|_| {
                    Mutex::new(
                        Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                            .expect("valid histogram bounds"),
                    )
                })
                .collect(),
        }
    }

    pub fn record(&self, shard: usize, us: u64) {
        let mut h = self.shards[shard % self.shards.len()]
            .lock()
            .expect("histogram lock");
        let _ = h.record(us.clamp(1, MAX_LATENCY_US));
    }

    /// All shards merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds");
        for shard in &self.shards {
            let _ = all.add(&*shard.lock().expect("histogram lock"));
        }
        all
    }

    pub fn reset(&self) {
        for shard in &self.shards {
            shard.lock().expect("histogram lock").reset();
        }
    }
}

/// What every socket shares with the scenario: counters and the receipt histogram.
pub struct Shared {
    /// Receipt latency of `new_message` frames (from the intended send time in the text).
    pub latency: Latency,
    /// Whether receipts are recorded into `latency` now.
    pub recording: AtomicBool,
    /// `new_message` frames received on all sockets.
    pub deliveries: AtomicU64,
    /// `now_us()` of the last `new_message` receipt.
    pub last_receipt_us: AtomicU64,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            latency: Latency::new(),
            recording: AtomicBool::new(false),
            deliveries: AtomicU64::new(0),
            last_receipt_us: AtomicU64::new(0),
        })
    }
}

/// What the scenario tells all its sockets at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Control {
    /// Increment: every socket drops its connection (no close handshake) and reconnects.
    pub generation: u64,
    /// While set, dropped sockets wait before reconnecting (so a backlog builds up).
    pub hold: bool,
    /// While set, sockets made slow stop reading.
    pub pause_slow: bool,
    /// Close and end.
    pub stop: bool,
}

/// One socket's state, read by the scenario while it runs and at the end.
#[derive(Default)]
pub struct SocketState {
    /// The seq of the first `ready` (-1 until then): the baseline for expected events.
    pub ready_seq: AtomicI64,
    /// The last durable seq seen (-1 until the first `ready`).
    pub last_seq: AtomicI64,
    /// `new_message` frames.
    pub messages: AtomicU64,
    /// Frames whose seq was at or below the last one seen.
    pub duplicates: AtomicU64,
    /// Seqs skipped over (a frame whose seq jumped ahead).
    pub gaps: AtomicU64,
    /// Successful handshakes (each followed by `ready`).
    pub connects: AtomicU64,
    /// Connection attempts that failed.
    pub failed_attempts: AtomicU64,
    /// Closes (or EOFs) the server initiated, e.g. 1013 for a slow reader.
    pub server_closes: AtomicU64,
    /// `resync_required` frames (never expected here).
    pub resyncs: AtomicU64,
    /// `presence` frames, and those of them that said offline.
    pub presence: AtomicU64,
    pub presence_offline: AtomicU64,
    /// Set while a connection is open and `ready` arrived.
    pub connected: AtomicBool,
    /// Set when this socket gave up (no connection within the deadline).
    pub gave_up: AtomicBool,
}

impl SocketState {
    fn new() -> SocketState {
        let s = SocketState::default();
        s.ready_seq.store(-1, Ordering::Relaxed);
        s.last_seq.store(-1, Ordering::Relaxed);
        s
    }

    /// Durable events seen since the first `ready`.
    pub fn events_since_ready(&self) -> i64 {
        self.last_seq.load(Ordering::Relaxed) - self.ready_seq.load(Ordering::Relaxed)
    }
}

/// How one socket is made.
pub struct SocketSpec {
    pub user: Arc<User>,
    pub target: Target,
    pub source: Option<IpAddr>,
    /// Plays a slow reader when `Control::pause_slow` is set.
    pub slow: bool,
    /// Index of the chat its user is in (into the scenario's chat list), if any.
    pub chat: Option<usize>,
}

/// A running socket: its spec, its state, its task.
pub struct ClientSocket {
    pub spec: Arc<SocketSpec>,
    pub state: Arc<SocketState>,
    pub task: tokio::task::JoinHandle<()>,
}

type Ws = WebSocketStream<TcpStream>;

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    seq: Option<i64>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ReadyPayload {
    seq: i64,
}

#[derive(Deserialize)]
struct MessagePayload<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// The text the generator sends: its intended send time, so any receiver can compute the
/// latency without a shared table.
pub fn message_text(intended_us: u64, pad: usize) -> String {
    let mut text = format!("bench {intended_us}");
    if pad > 0 {
        text.push(' ');
        text.extend(std::iter::repeat_n('x', pad.min(4000)));
    }
    text
}

fn intended_us(text: &str) -> Option<u64> {
    text.strip_prefix("bench ")?.split(' ').next()?.parse().ok()
}

/// Connects `specs` with at most `parallel` handshakes at once; returns when every socket
/// got its `ready` or gave up (`deadline`).
pub async fn connect_all(
    specs: Vec<SocketSpec>,
    shared: &Arc<Shared>,
    control: &watch::Receiver<Control>,
    ping_every: Duration,
    parallel: usize,
    deadline: Duration,
) -> Vec<ClientSocket> {
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let sockets: Vec<ClientSocket> = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let spec = Arc::new(spec);
            let state = Arc::new(SocketState::new());
            let task = tokio::spawn(run_socket(
                i,
                spec.clone(),
                state.clone(),
                shared.clone(),
                control.clone(),
                gate.clone(),
                ping_every,
                deadline,
            ));
            ClientSocket { spec, state, task }
        })
        .collect();
    // Each socket's deadline starts at its first attempt; allow for the queue before it
    // (at least 100 handshakes/s, far below what the server does).
    let queue = Duration::from_secs(sockets.len() as u64 / 100 + 1);
    wait_until(deadline + queue, || {
        sockets.iter().all(|s| {
            s.state.connected.load(Ordering::Relaxed) || s.state.gave_up.load(Ordering::Relaxed)
        })
    })
    .await;
    sockets
}

/// Polls `done` every 10 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `stop` and waits (bounded) for the socket tasks to close.
pub async fn stop_all(control: &watch::Sender<Control>, sockets: Vec<ClientSocket>) {
    control.send_modify(|c| c.stop = true);
    for s in sockets {
        let abort = s.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), s.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_socket(
    index: usize,
    spec: Arc<SocketSpec>,
    state: Arc<SocketState>,
    shared: Arc<Shared>,
    mut control: watch::Receiver<Control>,
    gate: Arc<Semaphore>,
    ping_every: Duration,
    deadline: Duration,
) {
    let mut generation = control.borrow().generation;
    let mut backoff = MIN_BACKOFF;
    loop {
        // Connect (with since after the first time), retrying until the deadline, which
        // starts at the first attempt: waiting for the handshake gate is not failing.
        let mut started = None;
        let ws = loop {
            if control.borrow().stop {
                return;
            }
            let since = match state.last_seq.load(Ordering::Relaxed) {
                -1 => None,
                seq => Some(seq),
            };
            let attempt = {
                let _permit = gate.acquire().await.expect("never closed");
                started.get_or_insert_with(Instant::now);
                connect(&spec, since).await
            };
            match attempt {
                Ok(ws) => break ws,
                Err(_) => {
                    state.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    if started.is_some_and(|t| t.elapsed() > deadline) {
                        state.gave_up.store(true, Ordering::Relaxed);
                        return;
                    }
                    tokio::time::sleep(jitter(backoff, index)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        state.connects.fetch_add(1, Ordering::Relaxed);
        let end = serve(
            index,
            &spec,
            &state,
            &shared,
            &mut control,
            ws,
            ping_every,
            generation,
        )
        .await;
        state.connected.store(false, Ordering::Relaxed);
        match end {
            End::Stop => return,
            End::Dropped(new_generation) => {
                generation = new_generation;
                backoff = MIN_BACKOFF;
                // Everyone drops at once; while `hold` is set nobody comes back yet.
                while control.borrow().hold && !control.borrow().stop {
                    if control.changed().await.is_err() {
                        return;
                    }
                }
            }
            End::ServerClosed => {
                state.server_closes.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(jitter(backoff, index)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// A delay between `base` and twice it, spread by socket index.
fn jitter(base: Duration, index: usize) -> Duration {
    let spread = (index as u64).wrapping_mul(2654435761) % 1000;
    base + base * spread as u32 / 1000
}

async fn connect(spec: &SocketSpec, since: Option<i64>) -> Result<Ws, String> {
    let recv_buffer = spec.slow.then_some(SLOW_RECV_BUFFER);
    let stream = tcp_connect(spec.target.addr, spec.source, recv_buffer).await?;
    let mut url = format!(
        "ws://{}/ws/notif?token={}",
        spec.target.authority, spec.user.token
    );
    if let Some(since) = since {
        url.push_str(&format!("&since={since}"));
    }
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let (ws, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

enum End {
    Stop,
    /// Told to drop; the new control generation.
    Dropped(u64),
    /// The server closed the socket or it failed.
    ServerClosed,
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    index: usize,
    spec: &SocketSpec,
    state: &SocketState,
    shared: &Shared,
    control: &mut watch::Receiver<Control>,
    mut ws: Ws,
    ping_every: Duration,
    generation: u64,
) -> End {
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + jitter(ping_every, index) / 2,
        ping_every,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let c = *control.borrow();
        if c.stop {
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            return End::Stop;
        }
        if c.generation != generation {
            return End::Dropped(c.generation); // dropping `ws` closes the TCP connection
        }
        if c.pause_slow && spec.slow {
            // A reader that stopped reading: hold the socket, touch nothing.
            if control.changed().await.is_err() {
                return End::Stop;
            }
            continue;
        }
        tokio::select! {
            changed = control.changed() => {
                if changed.is_err() {
                    return End::Stop;
                }
            }
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => on_frame(index, state, shared, text.as_str()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return End::ServerClosed,
                Some(Ok(_)) => {} // pings are answered by tungstenite while we read
            },
            _ = ping.tick() => {
                if ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await.is_err() {
                    return End::ServerClosed;
                }
            }
        }
    }
}

fn on_frame(index: usize, state: &SocketState, shared: &Shared, text: &str) {
    let Ok(frame) = serde_json::from_str::<Frame>(text) else {
        return;
    };
    if frame.kind == "ready" {
        let Some(ready) = frame
            .payload
            .and_then(|p| serde_json::from_str::<ReadyPayload>(p.get()).ok())
        else {
            return;
        };
        if state.ready_seq.load(Ordering::Relaxed) == -1 {
            state.ready_seq.store(ready.seq, Ordering::Relaxed);
            state.last_seq.store(ready.seq, Ordering::Relaxed);
        }
        state.connected.store(true, Ordering::Relaxed);
        return;
    }
    if frame.kind == "resync_required" {
        state.resyncs.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if frame.kind == "presence" {
        state.presence.fetch_add(1, Ordering::Relaxed);
        if frame
            .payload
            .is_some_and(|p| p.get().contains(r#""online":false"#))
        {
            state.presence_offline.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let Some(seq) = frame.seq else {
        return; // pong, typing, error: ephemeral
    };
    let last = state.last_seq.load(Ordering::Relaxed);
    if seq <= last {
        state.duplicates.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if seq > last + 1 {
        state
            .gaps
            .fetch_add((seq - last - 1) as u64, Ordering::Relaxed);
    }
    state.last_seq.store(seq, Ordering::Relaxed);
    if frame.kind == "new_message" {
        state.messages.fetch_add(1, Ordering::Relaxed);
        let now = now_us();
        shared.deliveries.fetch_add(1, Ordering::Relaxed);
        shared.last_receipt_us.fetch_max(now, Ordering::Relaxed);
        if shared.recording.load(Ordering::Relaxed) {
            if let Some(sent) = frame
                .payload
                .and_then(|p| serde_json::from_str::<MessagePayload>(p.get()).ok())
                .and_then(|m| intended_us(&m.text))
            {
                shared.latency.record(index, now.saturating_sub(sent));
            }
        }
    }
}
