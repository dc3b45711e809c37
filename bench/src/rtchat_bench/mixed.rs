//! `mixed`: the traffic of a chat app that uses the v2 features, closed-loop: of every 20
//! requests 10 are sends (some replying to, some mentioning), 5 reactions (added or taken
//! back), 3 read-cursor moves, 1 message search and 1 unread total. Every member's socket is
//! connected; at the end each socket must have every message of its chat and a consecutive
//! seq up to its user's latest (the `reaction` and `read` events included), checked against
//! `GET /events` so nothing lost at the tail goes unnoticed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::net::HttpConn;
use super::report::{thousands, Row};
use super::scenarios::{apply, drain, Bench, Check};
use super::setup::{lossy, to_bytes, Chat};
use super::socket::{message_text, now_us, stop_all, Control, Latency, Shared};

/// The kinds of request, in the order of their rows.
const KINDS: [&str; 5] = ["send", "reaction", "read", "search", "unread"];
/// Which kind the n-th request of a worker is: a cycle of 20 (10 sends, 5 reactions, 3 reads,
/// 1 search, 1 unread), interleaved so every kind runs all through the load.
const CYCLE: [usize; 20] = [0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 2, 0, 1, 0, 4, 0, 1, 2, 0, 0];
/// Words the messages are made of, and what searches look for (a prefix of one of them).
const WORDS: [&str; 8] = [
    "hello",
    "world",
    "привет",
    "мир",
    "release",
    "deploy",
    "lunch",
    "meeting",
];
/// The reactions used, percent-encoded for the path.
const EMOJI: [&str; 4] = ["%F0%9F%91%8D", "%E2%9D%A4", "%F0%9F%98%82", "%F0%9F%8E%89"];

/// Per kind: answers as expected, other answers, and latency.
struct Tally {
    ok: [AtomicU64; 5],
    bad: [AtomicU64; 5],
    latency: Vec<Latency>,
}

/// `mixed`: `sockets` members in chats of `chat_size`, `duration` of closed-loop load over
/// `bench.connections` connections.
pub async fn mixed(
    bench: &Bench,
    sockets: usize,
    chat_size: usize,
    duration: Duration,
) -> Result<Vec<Row>, String> {
    let chat_size = chat_size.clamp(2, 100);
    let n_chats = (sockets / chat_size).max(1);
    let chats = Arc::new(bench.setup.chats_of(n_chats, chat_size).await?);
    // A first message per chat, so reactions and reads have something to point at.
    let last_ids: Arc<Vec<AtomicI64>> = Arc::new((0..n_chats).map(|_| AtomicI64::new(0)).collect());
    for (i, chat) in chats.iter().enumerate() {
        let body = json!({"text": "hello world"});
        let r = bench
            .setup
            .rest
            .call_patiently(
                Method::POST,
                &format!("/chats/{}/messages", chat.id),
                Some(&chat.members[0].token),
                Some(to_bytes(&body)),
            )
            .await?;
        if r.status != 201 {
            return Err(format!("first message: {} {}", r.status, lossy(&r.body)));
        }
        last_ids[i].store(message_id(&r.body).unwrap_or(0), Ordering::Relaxed);
    }

    let shared = Shared::new();
    let (control_tx, control_rx) = watch::channel(Control::default());
    let (sockets_open, connect_secs) = bench
        .connect(bench.specs(&chats, 0), &shared, &control_rx)
        .await;

    let tally = Arc::new(Tally {
        ok: Default::default(),
        bad: Default::default(),
        latency: (0..KINDS.len()).map(|_| Latency::new()).collect(),
    });
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..n_chats).map(|_| AtomicU64::new(1)).collect());
    let cpu_before = bench.probe.sample();
    let start_us = now_us();
    let end_us = start_us + duration.as_micros() as u64;
    let mut workers = Vec::new();
    for w in 0..bench.connections {
        let target = bench.send_targets[w % bench.send_targets.len()].clone();
        let source = bench.sources.pick();
        let (chats, last_ids, tally, acked) = (
            chats.clone(),
            last_ids.clone(),
            tally.clone(),
            acked.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut conn = HttpConn::connect(&target, source).await?;
            let mut n = w as u64;
            while now_us() < end_us {
                if !conn.is_usable() {
                    conn = HttpConn::connect(&target, None).await?;
                }
                let kind = CYCLE[(n % CYCLE.len() as u64) as usize];
                let ci = ((n / 7) % chats.len() as u64) as usize;
                let chat = &chats[ci];
                let member = &chat.members[((n / 3) % chat.members.len() as u64) as usize];
                let last = last_ids[ci].load(Ordering::Relaxed);
                let (method, path, body, want) = request(kind, n, chat, last, w);
                let began = now_us();
                let reply = conn.call(method, &path, Some(&member.token), body).await;
                let took = now_us().saturating_sub(began);
                match reply {
                    Ok(r) if r.status == want => {
                        tally.ok[kind].fetch_add(1, Ordering::Relaxed);
                        tally.latency[kind].record(w, took);
                        if kind == 0 {
                            acked[ci].fetch_add(1, Ordering::Relaxed);
                            if let Some(id) = message_id(&r.body) {
                                last_ids[ci].fetch_max(id, Ordering::Relaxed);
                            }
                        }
                    }
                    _ => {
                        tally.bad[kind].fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += STRIDE;
            }
            Ok::<(), String>(())
        }));
    }
    for w in workers {
        w.await.map_err(|e| e.to_string())??;
    }
    let elapsed = (now_us() - start_us) as f64 / 1e6;
    let expected: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    // The first message was sent before the sockets connected: it is not theirs to receive.
    let live: Vec<u64> = expected.iter().map(|e| e - 1).collect();
    let drained = drain(&sockets_open, &live, bench.drain).await;
    let cpu_after = bench.probe.sample();
    let mut check = tail_check(bench, &sockets_open, &live).await;
    check.failed_sockets += sockets_open
        .iter()
        .filter(|s| s.state.gave_up.load(Ordering::Relaxed))
        .count() as u64;

    let total: u64 = tally.ok.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let bad: u64 = tally.bad.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let cpu = bench.probe.per_op(cpu_before, cpu_after, total as f64);
    let mut row = Row::new(
        "mixed",
        format!("{chat_size} members × {n_chats} chats, max (closed loop)"),
    );
    row.throughput = Some(total as f64 / elapsed.max(1e-9));
    row.unit = "req/s".into();
    row = row
        .metric("sockets", sockets_open.len())
        .metric("connect_secs", connect_secs)
        .metric("requests", total)
        .metric("unexpected_status", bad)
        .metric("cpu_per_request", cpu.clone())
        .metric("drained", drained)
        .metric("failed", bad > 0);
    for (k, name) in KINDS.iter().enumerate() {
        let h = tally.latency[k].merged();
        let ok = tally.ok[k].load(Ordering::Relaxed);
        row = row
            .metric(&format!("{name}_per_s"), ok as f64 / elapsed.max(1e-9))
            .metric(
                &format!("{name}_p50_ms"),
                h.value_at_quantile(0.5) as f64 / 1e3,
            )
            .metric(
                &format!("{name}_p99_ms"),
                h.value_at_quantile(0.99) as f64 / 1e3,
            )
            .note(format!(
                "{name} {}/s p99 {:.1} ms",
                thousands(ok as f64 / elapsed.max(1e-9)),
                h.value_at_quantile(0.99) as f64 / 1e3
            ));
    }
    if bad > 0 {
        row = row.note(format!("{bad} requests got an unexpected status"));
    }
    stop_all(&control_tx, sockets_open).await;
    Ok(vec![apply(row, check)])
}

/// Each worker steps its request number by this, starting from its own index, so workers
/// spread over the chats; prime, so the cycle of kinds and the walk over chats never lock
/// into step.
const STRIDE: u64 = 31;

/// The n-th request of worker `w`: method, path, body, and the status that means success.
fn request(
    kind: usize,
    n: u64,
    chat: &Chat,
    last: i64,
    w: usize,
) -> (Method, String, Option<Bytes>, u16) {
    let word = WORDS[(n % WORDS.len() as u64) as usize];
    match kind {
        0 => {
            let mut body = json!({
                "text": format!("{} {word} {}", message_text(now_us(), 0), WORDS[((n / 8) % 8) as usize]),
                "client_id": format!("mixed-{w}-{n}"),
            });
            if n % 5 == 0 && last > 0 {
                body["reply_to"] = json!(last);
            }
            if n % 4 == 0 {
                body["mentions"] = json!([chat.members[0].id]);
            }
            let path = format!("/chats/{}/messages", chat.id);
            (Method::POST, path, Some(to_bytes(&body)), 201)
        }
        1 => {
            let emoji = EMOJI[((n / 5) % EMOJI.len() as u64) as usize];
            let path = format!("/chats/{}/messages/{last}/reactions/{emoji}", chat.id);
            let method = if (n / 20) % 3 == 2 {
                Method::DELETE
            } else {
                Method::PUT
            };
            (method, path, None, 204)
        }
        2 => {
            let body = json!({"message_id": last});
            let path = format!("/chats/{}/read", chat.id);
            (Method::POST, path, Some(to_bytes(&body)), 204)
        }
        3 => {
            let prefix: String = word.chars().take(3).collect();
            let q: String = format!("bench {prefix}")
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            (Method::GET, format!("/search/messages?q={q}"), None, 200)
        }
        _ => (Method::GET, "/unread".to_string(), None, 200),
    }
}

fn message_id(body: &[u8]) -> Option<i64> {
    serde_json::from_slice::<Value>(body).ok()?["id"].as_i64()
}

/// Each socket: its seq had no gap and no repeat, it got every message of its chat, and
/// `GET /events` after its last seq is empty (nothing committed for it was left unsent).
async fn tail_check(
    bench: &Bench,
    sockets: &[super::socket::ClientSocket],
    expected: &[u64],
) -> Check {
    let mut check = Check::default();
    for s in sockets {
        let st = &s.state;
        check.resyncs += st.resyncs.load(Ordering::Relaxed);
        if st.gave_up.load(Ordering::Relaxed) || st.ready_seq.load(Ordering::Relaxed) < 0 {
            continue;
        }
        let want = s.spec.chat.map(|c| expected[c]).unwrap_or(0);
        let got = st.messages.load(Ordering::Relaxed);
        check.lost += st.gaps.load(Ordering::Relaxed) + want.saturating_sub(got);
        check.duplicated += st.duplicates.load(Ordering::Relaxed) + got.saturating_sub(want);
        let since = st.last_seq.load(Ordering::Relaxed);
        let path = format!("/events?since={since}&limit=100");
        match bench
            .setup
            .rest
            .call_patiently(Method::GET, &path, Some(&s.spec.user.token), None)
            .await
        {
            Ok(r) if r.status == 200 => {
                let left = serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v["events"].as_array().map(Vec::len))
                    .unwrap_or(0);
                check.lost += left as u64;
            }
            _ => check.failed_sockets += 1,
        }
    }
    check
}
