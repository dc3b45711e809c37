//! The scenarios that disrupt sockets: a reconnect storm (everyone drops and comes back
//! with `since`) and slow consumers (some stop reading). Both end with the seq check of
//! every socket, the disrupted ones included.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;
use tokio::sync::{watch, Semaphore};

use super::load::{self, LoadResult, Pace, Work};
use super::net::HttpPool;
use super::report::{thousands, total_rss_kb, Row};
use super::scenarios::{apply, drain, load_notes, verify, Bench};
use super::setup::{to_bytes, Chat};
use super::socket::{message_text, now_us, stop_all, wait_until, ClientSocket, Control, Shared};

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
    drop_at: Option<u64>,
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

    // Several generators (one process holds at most ~20,000 sockets) storm together.
    if let Some(at) = drop_at {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let wait = (at as f64 - now).clamp(0.0, 600.0);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
    // The first connects' presence frames come at the presence task's pace (and across
    // processes by hint): counted before the drop once they stopped arriving for a second,
    // so that `presence_frames_storm` is the storm's own.
    let presence_now = || -> u64 {
        sockets
            .iter()
            .map(|s| s.state.presence.load(Ordering::Relaxed))
            .sum()
    };
    let mut presence_before = presence_now();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = presence_now();
        if now == presence_before {
            break;
        }
        presence_before = now;
    }
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
    // Presence frames received over the whole run (the first connects included), and
    // since the drop: a storm whose sockets come back within the grace period adds none.
    let presence: u64 = sockets
        .iter()
        .map(|s| s.state.presence.load(Ordering::Relaxed))
        .sum();
    let presence_offline: u64 = sockets
        .iter()
        .map(|s| s.state.presence_offline.load(Ordering::Relaxed))
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
        .metric("presence_frames", presence)
        .metric("presence_frames_storm", presence - presence_before)
        .metric("presence_offline_frames", presence_offline)
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
