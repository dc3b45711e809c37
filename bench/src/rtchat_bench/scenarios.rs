//! The scenarios. Each sets up its own users and chats, connects its sockets, applies load,
//! waits (bounded) for every expected frame, checks by `seq` that nothing was lost or
//! duplicated, and returns table rows.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::load::{self, LoadResult, Pace, Work};
use super::net::{SourceIps, Target};
use super::report::{thousands, total_rss_kb, CpuProbe, Row};
use super::setup::{Chat, Setup};
use super::socket::{
    connect_all, now_us, stop_all, wait_until, ClientSocket, Control, Shared, SocketSpec,
};

/// Everything a scenario needs.
pub struct Bench {
    /// Where sockets connect (round-robin).
    pub socket_targets: Vec<Target>,
    /// Where REST load goes (round-robin).
    pub send_targets: Vec<Target>,
    pub sources: Arc<SourceIps>,
    pub setup: Setup,
    pub probe: CpuProbe,
    /// HTTP connections of a REST load.
    pub connections: usize,
    /// Application-level ping interval of every socket.
    pub ping_every: Duration,
    /// Handshakes in flight at once while connecting.
    pub connect_parallel: usize,
    /// How long a socket may take to (re)connect before it counts as failed.
    pub connect_deadline: Duration,
    /// How long to wait for the last frames after the load stopped.
    pub drain: Duration,
}

/// Lost and duplicated frames over a set of sockets, by `seq` and by count.
#[derive(Debug, Default, Clone, Copy)]
pub struct Check {
    pub lost: u64,
    pub duplicated: u64,
    /// Sockets that never (re)connected within the deadline.
    pub failed_sockets: u64,
    /// `resync_required` frames.
    pub resyncs: u64,
}

impl Bench {
    pub(super) fn specs(&self, chats: &[Chat], slow_per_chat: usize) -> Vec<SocketSpec> {
        let mut specs = Vec::new();
        for (ci, chat) in chats.iter().enumerate() {
            let n = chat.members.len();
            for (mi, user) in chat.members.iter().enumerate() {
                specs.push(SocketSpec {
                    user: user.clone(),
                    target: self.socket_targets[specs.len() % self.socket_targets.len()].clone(),
                    source: self.sources.pick(),
                    slow: mi >= n - slow_per_chat.min(n),
                    chat: Some(ci),
                });
            }
        }
        specs
    }

    pub(super) async fn connect(
        &self,
        specs: Vec<SocketSpec>,
        shared: &Arc<Shared>,
        control: &watch::Receiver<Control>,
    ) -> (Vec<ClientSocket>, f64) {
        let started = Instant::now();
        let sockets = connect_all(
            specs,
            shared,
            control,
            self.ping_every,
            self.connect_parallel,
            self.connect_deadline,
        )
        .await;
        (sockets, started.elapsed().as_secs_f64())
    }

    pub(super) fn server_rss_kb(&self) -> u64 {
        total_rss_kb(&self.probe.servers)
    }

    pub(super) async fn load(
        &self,
        pace: Pace,
        duration: Duration,
        work: Work,
        tag: &str,
    ) -> Result<LoadResult, String> {
        load::run(
            &self.send_targets,
            &self.sources,
            self.connections,
            pace,
            duration,
            work,
            &format!("{}-{tag}", self.setup.run_id),
        )
        .await
    }
}

/// Waits until every live socket got `expected(chat)` messages, bounded by `limit`.
pub(super) async fn drain(sockets: &[ClientSocket], expected: &[u64], limit: Duration) -> bool {
    wait_until(limit, || {
        sockets.iter().all(|s| {
            s.state.gave_up.load(Ordering::Relaxed)
                || s.spec.chat.is_none_or(|c| {
                    s.state.messages.load(Ordering::Relaxed) >= expected[c]
                        && s.state.events_since_ready() >= expected[c] as i64
                })
        })
    })
    .await
}

/// Compares what each socket got with what was acknowledged for its chat.
pub(super) fn verify(sockets: &[ClientSocket], expected: &[u64]) -> Check {
    let mut check = Check::default();
    for s in sockets {
        let st = &s.state;
        check.resyncs += st.resyncs.load(Ordering::Relaxed);
        if st.gave_up.load(Ordering::Relaxed) || st.ready_seq.load(Ordering::Relaxed) < 0 {
            check.failed_sockets += 1;
            continue;
        }
        let want = s.spec.chat.map(|c| expected[c]).unwrap_or(0);
        let got = st.messages.load(Ordering::Relaxed);
        let gaps = st.gaps.load(Ordering::Relaxed);
        check.lost += want.saturating_sub(got).max(gaps);
        check.duplicated += st.duplicates.load(Ordering::Relaxed) + got.saturating_sub(want);
        // By seq: the user's events since `ready` are exactly its chat's messages.
        let events = st.events_since_ready().max(0) as u64;
        if events != want && got == want {
            check.lost += want.saturating_sub(events);
            check.duplicated += events.saturating_sub(want);
        }
    }
    check
}

pub(super) fn apply(row: Row, check: Check) -> Row {
    let mut row = row;
    row.lost = check.lost;
    row.duplicated = check.duplicated;
    row = row
        .metric("failed_sockets", check.failed_sockets)
        .metric("resyncs", check.resyncs);
    if check.failed_sockets > 0 {
        row = row.note(format!("{} sockets failed", check.failed_sockets));
    }
    row
}

pub(super) fn load_notes(row: Row, r: &LoadResult) -> Row {
    let mut row = row
        .metric("sent_ok", r.ok)
        .metric("rate_limited", r.rate_limited)
        .metric("bad_status", r.bad_status)
        .metric("failed_requests", r.failed)
        .metric("dropped_late", r.not_started);
    if r.rate_limited + r.bad_status + r.failed + r.not_started > 0 {
        row = row.note(format!(
            "errors: {} 429, {} other status, {} failed, {} dropped late",
            r.rate_limited, r.bad_status, r.failed, r.not_started
        ));
    }
    row
}

fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// `fanout`: chats of each size, every member's socket connected; for each rate of `rates`
/// (messages/s, `max`, or `N%` of this size's max): POST-to-receipt latency on every member
/// socket, deliveries/s, and the seq check (cumulative over the size's rates).
pub async fn fanout(
    bench: &Bench,
    sizes: &[usize],
    sockets_per_size: usize,
    rates: &[String],
    duration: Duration,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &size in sizes {
        let size = size.clamp(2, 1000);
        let n_chats = (sockets_per_size / size).max(1);
        let chats = Arc::new(bench.setup.chats_of(n_chats, size).await?);
        let shared = Shared::new();
        let (control_tx, control_rx) = watch::channel(Control::default());
        let (sockets, connect_secs) = bench
            .connect(bench.specs(&chats, 0), &shared, &control_rx)
            .await;
        let mut expected = vec![0u64; chats.len()];
        let mut last_max = None;
        for (i, spec) in rates.iter().enumerate() {
            let pace = parse_rate(spec, last_max)?;
            shared.latency.reset();
            shared.recording.store(true, Ordering::Relaxed);
            let deliveries_before = shared.deliveries.load(Ordering::Relaxed);
            let cpu_before = bench.probe.sample();
            let rss_before = bench.server_rss_kb();
            let start_us = now_us();
            let result = bench
                .load(
                    pace,
                    duration,
                    Work::Send {
                        chats: chats.clone(),
                        pad: 0,
                    },
                    &format!("f{size}-{i}"),
                )
                .await?;
            for (e, a) in expected.iter_mut().zip(&result.acked) {
                *e += a;
            }
            let drained = drain(&sockets, &expected, bench.drain).await;
            shared.recording.store(false, Ordering::Relaxed);
            let cpu_after = bench.probe.sample();
            let rss_after = bench.server_rss_kb();
            if matches!(pace, Pace::Closed) {
                last_max = Some(result.throughput());
            }
            let deliveries = shared.deliveries.load(Ordering::Relaxed) - deliveries_before;
            let span = (shared
                .last_receipt_us
                .load(Ordering::Relaxed)
                .max(start_us + 1)
                - start_us) as f64
                / 1e6;
            let check = verify(&sockets, &expected);
            let latency = shared.latency.merged();
            let mut row = Row::new(
                "fanout",
                format!(
                    "{size} members × {n_chats} chats, {}",
                    pace_case(pace, spec)
                ),
            );
            row.throughput = Some(deliveries as f64 / span);
            row.unit = "deliveries/s".into();
            let cpu = bench.probe.per_op(cpu_before, cpu_after, deliveries as f64);
            let cpu_msg = bench.probe.per_op(cpu_before, cpu_after, result.ok as f64);
            row = row
                .latency(&latency)
                .metric("chat_size", size)
                .metric("chats", n_chats)
                .metric("sockets", sockets.len())
                .metric("connect_secs", connect_secs)
                .metric("persisted_msg_per_s", result.throughput())
                .metric("deliveries", deliveries)
                .metric("post_p50_ms", ms(&result.latency, 0.5))
                .metric("post_p99_ms", ms(&result.latency, 0.99))
                .metric("cpu_per_delivery", cpu.clone())
                .metric("cpu_per_message", cpu_msg)
                .metric("server_rss_kb_before", rss_before)
                .metric("server_rss_kb_after", rss_after)
                .metric("drained", drained)
                .note(format!(
                    "{} msg/s, POST p99 {:.1} ms",
                    thousands(result.throughput()),
                    ms(&result.latency, 0.99)
                ));
            if let Some(us) = cpu["server_us"].as_f64() {
                row = row.note(format!(
                    "CPU/delivery: server {us} µs, pg {} µs",
                    cpu["postgres_us"]
                        .as_f64()
                        .map(|v| v.to_string())
                        .unwrap_or("?".into())
                ));
            }
            rows.push(load_notes(apply(row, check), &result));
        }
        stop_all(&control_tx, sockets).await;
    }
    Ok(rows)
}

/// A rate in a series: a number, `max` (closed loop), or `N%` of the last max.
pub fn parse_rate(spec: &str, last_max: Option<f64>) -> Result<Pace, String> {
    let spec = spec.trim();
    if spec == "max" {
        return Ok(Pace::Closed);
    }
    if let Some(pct) = spec.strip_suffix('%') {
        let pct: f64 = pct.parse().map_err(|_| format!("bad rate {spec}"))?;
        let max = last_max.ok_or_else(|| format!("{spec}: run `max` before a percentage"))?;
        return Ok(Pace::Open {
            rate: (max * pct / 100.0).max(1.0),
        });
    }
    let rate: f64 = spec.parse().map_err(|_| format!("bad rate {spec}"))?;
    Ok(Pace::Open { rate })
}

fn pace_case(pace: Pace, spec: &str) -> String {
    match pace {
        Pace::Closed => "max (closed loop)".into(),
        Pace::Open { rate } if spec.ends_with('%') => {
            format!("{spec} of max = {} /s", thousands(rate))
        }
        Pace::Open { rate } => format!("{} /s offered", thousands(rate)),
    }
}

/// `send`: REST message sends into 2-member chats (no sockets): messages/s persisted and
/// POST latency, at each rate of `rates`.
pub async fn send(
    bench: &Bench,
    rates: &[String],
    chats: usize,
    duration: Duration,
) -> Result<Vec<Row>, String> {
    let chats = Arc::new(bench.setup.chats_of(chats.max(1), 2).await?);
    let mut rows = Vec::new();
    let mut last_max = None;
    for (i, spec) in rates.iter().enumerate() {
        let pace = parse_rate(spec, last_max)?;
        let before = bench.probe.sample();
        let r = bench
            .load(
                pace,
                duration,
                Work::Send {
                    chats: chats.clone(),
                    pad: 0,
                },
                &format!("s{i}"),
            )
            .await?;
        let after = bench.probe.sample();
        if matches!(pace, Pace::Closed) {
            last_max = Some(r.throughput());
        }
        let cpu = bench.probe.per_op(before, after, r.ok as f64);
        let mut row = Row::new("send", pace_case(pace, spec));
        row.throughput = Some(r.throughput());
        row.unit = "msg/s".into();
        row = row
            .latency(&r.latency)
            .metric("chats", chats.len())
            .metric("connections", bench.connections)
            .metric("cpu_per_message", cpu.clone());
        if let Some(us) = cpu["server_us"].as_f64() {
            row = row.note(format!(
                "CPU/msg: server {us} µs, pg {} µs",
                cpu["postgres_us"]
                    .as_f64()
                    .map(|v| v.to_string())
                    .unwrap_or("?".into())
            ));
        }
        rows.push(load_notes(row, &r));
    }
    Ok(rows)
}

/// `get`: an authenticated GET (default `/auth/me`) at each rate of `rates`.
pub async fn get(
    bench: &Bench,
    path: &str,
    expect: Option<u16>,
    rates: &[String],
    users: usize,
    duration: Duration,
) -> Result<Vec<Row>, String> {
    let tokens: Vec<String> = bench
        .setup
        .users(users.max(1))
        .await?
        .iter()
        .map(|u| u.token.clone())
        .collect();
    let tokens = Arc::new(tokens);
    let mut rows = Vec::new();
    let mut last_max = None;
    for spec in rates {
        let pace = parse_rate(spec, last_max)?;
        let before = bench.probe.sample();
        let work = Work::Get {
            path: path.to_string(),
            tokens: tokens.clone(),
            expect,
        };
        let r = bench.load(pace, duration, work, "g").await?;
        let after = bench.probe.sample();
        if matches!(pace, Pace::Closed) {
            last_max = Some(r.throughput());
        }
        let cpu = bench.probe.per_op(before, after, r.ok as f64);
        let mut row = Row::new("get", format!("{path}, {}", pace_case(pace, spec)));
        row.throughput = Some(r.throughput());
        row.unit = "req/s".into();
        row = row
            .latency(&r.latency)
            .metric("cpu_per_request", cpu.clone());
        if let Some(us) = cpu["server_us"].as_f64() {
            let cores = cpu["server_cpu_s"].as_f64().unwrap_or(0.0) / r.elapsed.max(1e-9);
            row = row
                .note(format!(
                    "CPU/req: server {us} µs ({} req/s per server core), pg {} µs",
                    thousands(if us > 0.0 { 1e6 / us } else { 0.0 }),
                    cpu["postgres_us"]
                        .as_f64()
                        .map(|v| v.to_string())
                        .unwrap_or("?".into())
                ))
                .metric("server_cores_busy", cores);
        }
        rows.push(load_notes(row, &r));
    }
    Ok(rows)
}

/// `idle`: N authenticated sockets held open with pings; server RSS per socket.
pub async fn idle(bench: &Bench, n: usize, hold: Duration) -> Result<Vec<Row>, String> {
    let users = bench.setup.users(n).await?;
    let specs: Vec<SocketSpec> = users
        .into_iter()
        .enumerate()
        .map(|(i, user)| SocketSpec {
            user,
            target: bench.socket_targets[i % bench.socket_targets.len()].clone(),
            source: bench.sources.pick(),
            slow: false,
            chat: None,
        })
        .collect();
    let shared = Shared::new();
    let (control_tx, control_rx) = watch::channel(Control::default());
    let cpu_before = bench.probe.sample();
    let rss_before = bench.server_rss_kb();
    let (sockets, connect_secs) = bench.connect(specs, &shared, &control_rx).await;
    let cpu_connected = bench.probe.sample();
    // Let allocators settle, then hold with pings.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = bench.server_rss_kb();
    tokio::time::sleep(hold).await;
    let rss_end = bench.server_rss_kb();
    let cpu_end = bench.probe.sample();
    let open = sockets
        .iter()
        .filter(|s| s.state.connected.load(Ordering::Relaxed))
        .count();
    let check = verify(&sockets, &[]);
    // Per socket that is actually open (failed ones cost the server nothing).
    let per_socket_kb = rss_end.saturating_sub(rss_before) as f64 / open.max(1) as f64;
    let mut row = Row::new("idle", format!("{n} sockets"));
    row.throughput = Some(n as f64 / connect_secs.max(1e-9));
    row.unit = "connects/s".into();
    let held_secs = hold.as_secs_f64() + 2.0;
    row = row
        .metric("sockets", n)
        .metric("open_at_end", open)
        .metric("server_rss_kb_before", rss_before)
        .metric("server_rss_kb_connected", rss_connected)
        .metric("server_rss_kb_end", rss_end)
        .metric("server_rss_kb_per_socket", per_socket_kb)
        .metric("connect_secs", connect_secs)
        .metric(
            "cpu_per_connect",
            bench.probe.per_op(cpu_before, cpu_connected, n as f64),
        )
        .metric(
            "server_cpu_idle_percent",
            (cpu_end.server - cpu_connected.server) / held_secs * 100.0,
        )
        .note(format!(
            "server RSS {:.1} KB/socket ({} → {} MB); {open}/{n} open after {:.0} s",
            per_socket_kb,
            rss_before / 1024,
            rss_end / 1024,
            held_secs
        ));
    let mut row = apply(row, check);
    if open < n {
        row = row.note(format!("{} sockets dropped while idle", n - open));
        row.metrics.insert("dropped_idle".into(), json!(n - open));
    }
    stop_all(&control_tx, sockets).await;
    Ok(vec![row])
}
