//! The scenarios. Each sets up its own users and chats, connects its sockets, applies load,
//! waits (bounded) for every expected frame, checks by `seq` that nothing was lost or
//! duplicated, and returns table rows.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;
use tokio::sync::{watch, Semaphore};

use super::load::{self, LoadResult, Pace, Work};
use super::net::{HttpPool, SourceIps, Target};
use super::report::{thousands, total_rss_kb, CpuProbe, Row};
use super::setup::{to_bytes, Chat, Setup};
use super::socket::{
    connect_all, message_text, now_us, stop_all, wait_until, ClientSocket, Control, Shared,
    SocketSpec,
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
    fn specs(&self, chats: &[Chat], slow_per_chat: usize) -> Vec<SocketSpec> {
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

    async fn connect(
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

    fn server_rss_kb(&self) -> u64 {
        total_rss_kb(&self.probe.servers)
    }

    async fn load(
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
async fn drain(sockets: &[ClientSocket], expected: &[u64], limit: Duration) -> bool {
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
fn verify(sockets: &[ClientSocket], expected: &[u64]) -> Check {
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

fn apply(row: Row, check: Check) -> Row {
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

fn load_notes(row: Row, r: &LoadResult) -> Row {
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
    let per_socket_kb = rss_end.saturating_sub(rss_before) as f64 / n.max(1) as f64;
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

/// Sends `per_chat` messages into every chat over REST; returns the acked count per chat.
async fn send_each(bench: &Bench, chats: &[Chat], per_chat: usize, tag: &str) -> Vec<u64> {
    let pool = Arc::new(HttpPool::new(
        bench.send_targets[0].clone(),
        bench.sources.clone(),
        bench.connections.clamp(1, 64),
    ));
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for (ci, chat) in chats.iter().enumerate() {
        for k in 0..per_chat {
            let pool = pool.clone();
            let gate = gate.clone();
            let token = chat.members[k % chat.members.len()].token.clone();
            let path = format!("/chats/{}/messages", chat.id);
            let body = to_bytes(&json!({
                "text": message_text(now_us(), 0),
                "client_id": format!("{}-{tag}-{ci}-{k}", bench.setup.run_id),
            }));
            tasks.push((
                ci,
                tokio::spawn(async move {
                    let _permit = gate.acquire().await.expect("never closed");
                    pool.call(Method::POST, &path, Some(&token), Some(body))
                        .await
                }),
            ));
        }
    }
    let mut acked = vec![0u64; chats.len()];
    for (ci, task) in tasks {
        if let Ok(Ok(r)) = task.await {
            if r.status == 201 {
                acked[ci] += 1;
            }
        }
    }
    acked
}

/// `storm`: every socket drops at once, a backlog is written while they are away, then they
/// all reconnect with `since`; time until all are back and caught up, and the seq check.
pub async fn storm(
    bench: &Bench,
    n: usize,
    chat_size: usize,
    backlog: usize,
    live_rate: f64,
) -> Result<Vec<Row>, String> {
    let chat_size = chat_size.clamp(2, 1000);
    let n_chats = (n / chat_size).max(1);
    let chats = Arc::new(bench.setup.chats_of(n_chats, chat_size).await?);
    let shared = Shared::new();
    let (control_tx, control_rx) = watch::channel(Control::default());
    let (sockets, connect_secs) = bench
        .connect(bench.specs(&chats, 0), &shared, &control_rx)
        .await;

    // One live message per chat first: the ordinary path works before the storm.
    let mut expected = send_each(bench, &chats, 1, "pre").await;
    drain(&sockets, &expected, bench.drain).await;

    // Everyone drops; a backlog builds up while they are away.
    control_tx.send_modify(|c| {
        c.generation += 1;
        c.hold = true;
    });
    wait_until(Duration::from_secs(10), || {
        sockets
            .iter()
            .all(|s| !s.state.connected.load(Ordering::Relaxed))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let backlog_acked = send_each(bench, &chats, backlog, "backlog").await;
    for (e, b) in expected.iter_mut().zip(&backlog_acked) {
        *e += b;
    }
    let backlog_events: u64 = backlog_acked.iter().sum::<u64>() * chat_size as u64;

    // All at once: back with `since`, while live messages keep coming.
    let cpu_before = bench.probe.sample();
    let released = Instant::now();
    control_tx.send_modify(|c| c.hold = false);
    let live_secs = 3.0;
    let live = if live_rate > 0.0 {
        let chats = chats.clone();
        let targets = bench.send_targets.clone();
        let sources = bench.sources.clone();
        let connections = bench.connections.min(32);
        let tag = format!("{}-live", bench.setup.run_id);
        Some(tokio::spawn(async move {
            load::run(
                &targets,
                &sources,
                connections,
                Pace::Open { rate: live_rate },
                Duration::from_secs_f64(live_secs),
                Work::Send { chats, pad: 0 },
                &tag,
            )
            .await
        }))
    } else {
        None
    };
    let deadline = bench.connect_deadline + Duration::from_secs(30);
    let mut all_back = None;
    let caught_up = {
        let backlog_expected = expected.clone();
        wait_until(deadline, || {
            let back = sockets.iter().all(|s| {
                s.state.connects.load(Ordering::Relaxed) >= 2
                    || s.state.gave_up.load(Ordering::Relaxed)
            });
            if back && all_back.is_none() {
                all_back = Some(released.elapsed().as_secs_f64());
            }
            back && sockets.iter().all(|s| {
                s.state.gave_up.load(Ordering::Relaxed)
                    || s.spec.chat.is_none_or(|c| {
                        s.state.messages.load(Ordering::Relaxed) >= backlog_expected[c]
                    })
            })
        })
        .await
    };
    let caught_up_secs = released.elapsed().as_secs_f64();
    let cpu_after = bench.probe.sample();
    let mut live_sent = 0;
    if let Some(live) = live {
        let r = live.await.map_err(|e| e.to_string())??;
        live_sent = r.ok;
        for (e, a) in expected.iter_mut().zip(&r.acked) {
            *e += a;
        }
    }
    let drained = drain(&sockets, &expected, bench.drain).await;
    let check = verify(&sockets, &expected);
    let failed_attempts: u64 = sockets
        .iter()
        .map(|s| s.state.failed_attempts.load(Ordering::Relaxed))
        .sum();
    let mut row = Row::new(
        "storm",
        format!("{} sockets, chats of {chat_size}", sockets.len()),
    );
    row.throughput = Some(sockets.len() as f64 / caught_up_secs.max(1e-9));
    row.unit = "sockets caught up/s".into();
    row = row
        .metric("sockets", sockets.len())
        .metric("connect_secs", connect_secs)
        .metric("all_reconnected_secs", all_back)
        .metric(
            "all_caught_up_secs",
            if caught_up {
                Some(caught_up_secs)
            } else {
                None
            },
        )
        .metric("backlog_events", backlog_events)
        .metric("live_messages", live_sent)
        .metric("failed_attempts", failed_attempts)
        .metric("drained", drained)
        .metric(
            "cpu_per_reconnect",
            bench
                .probe
                .per_op(cpu_before, cpu_after, sockets.len() as f64),
        )
        .note(format!(
            "all back in {} s, caught up in {} ({} backlog events{}); {} failed attempts",
            all_back.map(|s| format!("{s:.2}")).unwrap_or("–".into()),
            if caught_up {
                format!("{caught_up_secs:.2} s")
            } else {
                "NOT within the deadline".into()
            },
            thousands(backlog_events as f64),
            if live_sent > 0 {
                format!(", {live_sent} live msgs during")
            } else {
                String::new()
            },
            failed_attempts
        ));
    let row = apply(row, check);
    stop_all(&control_tx, sockets).await;
    Ok(vec![row])
}

/// `slow`: a baseline fan-out, then the same with `fraction` of sockets not reading: the
/// others' latency compared, server RSS over time, then the slow ones resume with `since`
/// and everyone is checked by seq.
pub async fn slow(
    bench: &Bench,
    n: usize,
    chat_size: usize,
    fraction: f64,
    rate: f64,
    duration: Duration,
    pad: usize,
) -> Result<Vec<Row>, String> {
    let chat_size = chat_size.clamp(2, 1000);
    let n_chats = (n / chat_size).max(1);
    let slow_per_chat = ((chat_size as f64 * fraction).round() as usize).clamp(1, chat_size - 1);
    let chats = Arc::new(bench.setup.chats_of(n_chats, chat_size).await?);
    let specs = bench.specs(&chats, slow_per_chat);
    let (slow_specs, fast_specs): (Vec<_>, Vec<_>) = specs.into_iter().partition(|s| s.slow);
    let fast_shared = Shared::new();
    let slow_shared = Shared::new();
    let (control_tx, control_rx) = watch::channel(Control::default());
    let (mut sockets, _) = bench.connect(fast_specs, &fast_shared, &control_rx).await;
    let (slow_sockets, _) = bench.connect(slow_specs, &slow_shared, &control_rx).await;
    let n_slow = slow_sockets.len();
    sockets.extend(slow_sockets);

    // Samples server RSS every 250 ms while a phase runs.
    async fn phase(
        bench: &Bench,
        chats: &Arc<Vec<Chat>>,
        rate: f64,
        duration: Duration,
        pad: usize,
        tag: &str,
    ) -> Result<(LoadResult, u64, u64, u64), String> {
        let pids = bench.probe.servers.clone();
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let sampler = tokio::spawn(async move {
            let (mut min, mut max) = (u64::MAX, 0u64);
            loop {
                let rss = total_rss_kb(&pids);
                min = min.min(rss);
                max = max.max(rss);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop_rx.changed() => break,
                }
            }
            (min, max)
        });
        let r = bench
            .load(
                Pace::Open { rate },
                duration,
                Work::Send {
                    chats: chats.clone(),
                    pad,
                },
                tag,
            )
            .await?;
        let _ = stop_tx.send(true);
        let (min, max) = sampler.await.unwrap_or((0, 0));
        Ok((r, min, max, total_rss_kb(&bench.probe.servers)))
    }

    let mut expected = vec![0u64; chats.len()];
    let mut rows = Vec::new();
    for (label, paused) in [
        ("baseline, all reading", false),
        ("slow readers paused", true),
    ] {
        control_tx.send_modify(|c| c.pause_slow = paused);
        fast_shared.latency.reset();
        fast_shared.recording.store(true, Ordering::Relaxed);
        let (r, rss_min, rss_max, rss_end) = phase(
            bench,
            &chats,
            rate,
            duration,
            pad,
            if paused { "slow" } else { "base" },
        )
        .await?;
        // Readers must have everything of this phase before it is measured.
        for (e, a) in expected.iter_mut().zip(&r.acked) {
            *e += a;
        }
        let fast: Vec<&ClientSocket> = sockets.iter().filter(|s| !s.spec.slow).collect();
        wait_until(bench.drain, || {
            fast.iter().all(|s| {
                s.state.gave_up.load(Ordering::Relaxed)
                    || s.spec
                        .chat
                        .is_none_or(|c| s.state.messages.load(Ordering::Relaxed) >= expected[c])
            })
        })
        .await;
        fast_shared.recording.store(false, Ordering::Relaxed);
        let latency = fast_shared.latency.merged();
        let mut row = Row::new(
            "slow",
            format!("{label} ({n_slow} of {} slow)", sockets.len()),
        );
        row.throughput = Some(latency.len() as f64 / duration.as_secs_f64());
        row.unit = "deliveries/s to readers".into();
        row = row
            .latency(&latency)
            .metric("rate", rate)
            .metric("server_rss_kb_min", rss_min)
            .metric("server_rss_kb_max", rss_max)
            .metric("server_rss_kb_end", rss_end);
        if !bench.probe.servers.is_empty() {
            row = row.note(format!(
                "server RSS {}–{} MB",
                rss_min / 1024,
                rss_max / 1024
            ));
        }
        rows.push(load_notes(row, &r));
    }

    // The slow ones read again: whatever the server closed comes back with `since`.
    control_tx.send_modify(|c| c.pause_slow = false);
    let drained = drain(&sockets, &expected, bench.drain + Duration::from_secs(20)).await;
    let closed_slow: u64 = sockets
        .iter()
        .filter(|s| s.spec.slow)
        .map(|s| s.state.server_closes.load(Ordering::Relaxed).min(1))
        .sum();
    let check = verify(&sockets, &expected);
    if let Some(last) = rows.last_mut() {
        let row = std::mem::replace(last, Row::new("", ""));
        *last = apply(row, check)
            .metric("slow_sockets_closed_by_server", closed_slow)
            .metric("drained", drained)
            .note(format!(
                "{closed_slow}/{n_slow} slow sockets closed by the server, all resumed with since"
            ));
    }
    stop_all(&control_tx, sockets).await;
    Ok(rows)
}
