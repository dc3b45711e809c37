//! `/metrics` after scripted sessions: every delivery metric with the value the session
//! implies (exact where the session fixes it, sane where timing decides), and scrapes that
//! only read.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;
use crate::wsclient::{code, Ended, WsClient};

/// The text of `/metrics`.
async fn scrape(app: &TestApp) -> String {
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The value of one series (`name{labels}` exactly as exposed), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

#[track_caller]
fn get(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
}

/// Scrapes until `done` holds for the text (what the server counts after the client saw
/// it, such as a close the client initiated, lands a moment later).
async fn scrape_until(app: &TestApp, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(app).await;
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never held:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Frames a client saw, by `type`.
#[derive(Default)]
struct Tally(HashMap<String, u64>);

impl Tally {
    fn add(&mut self, frame: &serde_json::Value) {
        let kind = frame["type"].as_str().expect("frames have a type");
        *self.0.entry(kind.to_string()).or_default() += 1;
    }

    fn durable(&self) -> u64 {
        let durable = [
            "create_chat",
            "update_chat",
            "delete_chat",
            "new_message",
            "update_message",
            "delete_message",
            "read",
        ];
        durable.iter().map(|k| self.get(k)).sum()
    }

    fn get(&self, kind: &str) -> u64 {
        self.0.get(kind).copied().unwrap_or(0)
    }
}

/// Reads `n` frames into the tally.
async fn read(socket: &mut WsClient, n: usize, tally: &mut Tally) -> Vec<serde_json::Value> {
    let mut frames = Vec::new();
    for _ in 0..n {
        let frame = socket.next().await;
        tally.add(&frame);
        frames.push(frame);
    }
    frames
}

#[tokio::test]
async fn a_scripted_session_shows_in_every_delivery_metric() {
    let app = TestApp::spawn_with(|c| {
        // The slow reader below: only bytes bound its queue.
        c.ws_queue = 100_000;
        c.ws_queue_bytes = 64 * 1024;
        // A reader that stops reading is behind for as long as it is stuck, which the sweep
        // counts too; here it must count nothing (a lost hint is its own test below).
        c.sweep_interval = Duration::from_secs(3600);
    })
    .await;
    let mut tally = Tally::default();
    let (a, b, c) = (
        app.user("a").await,
        app.user("b").await,
        app.user("c").await,
    );
    let (w, s, t) = (
        app.user("w").await,
        app.user("s").await,
        app.user("t").await,
    );
    let chat = app.group(&a, &[&b]).await;
    let slow_chat = app.group(&w, &[&s]).await;
    for i in 0..3 {
        app.send(&a, chat, &format!("before {i}")).await;
    }

    // Connect: b replays its 3 messages after the create_chat it has seen (since=1).
    let mut sa = WsClient::connect(&app, &a.token, None).await;
    let mut sb = WsClient::connect(&app, &b.token, Some(1)).await;
    tally.add(&json!({"type": "ready"}));
    tally.add(&json!({"type": "ready"}));
    let replayed = read(&mut sb, 3, &mut tally).await;
    assert!(replayed.iter().all(|f| f["type"] == "new_message"));

    // Live frames of several types.
    let sent = app.send(&a, chat, "live").await;
    let r = app
        .patch(&format!("/chats/{chat}"), &a.token, json!({"title": "t"}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app
        .post(
            &format!("/chats/{chat}/read"),
            &b.token,
            json!({"message_id": sent["id"]}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    read(&mut sa, 3, &mut tally).await;
    read(&mut sb, 3, &mut tally).await;
    sb.send_text(&json!({"type": "typing", "payload": {"chat_id": chat}}).to_string())
        .await;
    assert_eq!(read(&mut sa, 1, &mut tally).await[0]["type"], "typing");
    sb.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(read(&mut sb, 1, &mut tally).await[0]["type"], "pong");
    sb.send_text(r#"{"type":"dance"}"#).await;
    assert_eq!(read(&mut sb, 1, &mut tally).await[0]["type"], "error");

    // A client that closes its socket.
    let mut sc = WsClient::connect(&app, &c.token, None).await;
    tally.add(&json!({"type": "ready"}));
    sc.ws.close(None).await.unwrap();
    sc.ended().await;

    // A token that expires while its socket is open (a session id nobody revokes).
    let now = rtchat::testing::unix_now();
    let short = encode(
        &Header::default(),
        &json!({"sub": t.id.to_string(), "iat": now, "exp": now + 2, "sid": 999_999}),
        &EncodingKey::from_secret(b"test-secret-test-secret-test-secret"),
    )
    .unwrap();
    let mut st = WsClient::connect(&app, &short, None).await;
    tally.add(&json!({"type": "ready"}));
    assert_eq!(code(&st.ended().await), Some(4001));

    // A reader that stops reading: 16 KiB frames fill the server's socket buffer, then
    // its 64 KiB queue, and it is closed with 1013. It then reads what was written before
    // the close frame.
    let mut slow = WsClient::connect_small_buffer(&app, &s.token).await;
    tally.add(&json!({"type": "ready"}));
    let text = "😀".repeat(4096);
    let slow_sends = 400;
    for _ in 0..slow_sends {
        app.send(&w, slow_chat, &text).await;
    }
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match slow.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    tally.add(&serde_json::from_str(&text).unwrap());
                }
                Some(Ok(Message::Close(f))) => return Ended::Closed(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                _ => return Ended::Dropped,
            }
        }
    })
    .await
    .expect("the slow socket ends");
    assert_eq!(end, Ended::Closed(Some(1013)));

    // A logout: its session is cached as revoked.
    let r = app.call("POST", "/auth/logout", Some(&c.token), None).await;
    assert_eq!(r.status, 204, "{r:?}");

    let m = scrape_until(&app, "the client's close is counted", |m| {
        value(m, "rtchat_ws_closes_total{code=\"client\"}") == Some(1.0)
    })
    .await;

    // Frames by type: exactly what the clients received.
    for kind in [
        "create_chat",
        "update_chat",
        "delete_chat",
        "new_message",
        "update_message",
        "delete_message",
        "read",
        "ready",
        "typing",
        "pong",
        "resync_required",
        "error",
        "other",
    ] {
        let series = format!("rtchat_ws_frames_total{{type=\"{kind}\"}}");
        assert_eq!(get(&m, &series), tally.get(kind) as f64, "{kind}");
    }
    assert_eq!(tally.get("ready"), 5);
    assert_eq!(tally.get("update_chat"), 2);
    assert_eq!(tally.get("read"), 2);
    assert!(tally.get("new_message") > 3 + 2, "the slow reader got some");

    // Closes by code.
    for (label, count) in [
        ("1001", 0),
        ("1002", 0),
        ("1003", 0),
        ("1007", 0),
        ("1008", 0),
        ("1009", 0),
        ("1011", 0),
        ("1013", 1),
        ("4001", 1),
        ("client", 1),
        ("timeout", 0),
        ("other", 0),
    ] {
        let series = format!("rtchat_ws_closes_total{{code=\"{label}\"}}");
        assert_eq!(get(&m, &series), f64::from(count), "{label}");
    }

    // One replay of 3 events.
    assert_eq!(get(&m, "rtchat_ws_replays_total"), 1.0);
    assert_eq!(get(&m, "rtchat_ws_replay_events_count"), 1.0);
    assert_eq!(get(&m, "rtchat_ws_replay_events_sum"), 3.0);
    assert_eq!(get(&m, "rtchat_ws_replay_events_bucket{le=\"1\"}"), 0.0);
    assert_eq!(get(&m, "rtchat_ws_replay_events_bucket{le=\"10\"}"), 1.0);

    // Latency: one observation per pushed event flushed to its socket, every one of them
    // committed here; none from other processes. The 6 live events of a and b are; the
    // slow reader's are, but for its last batch, cut off by the overflow (written only
    // with the close frame).
    let pushed = (tally.durable() - 3) as f64;
    let local = "rtchat_ws_delivery_latency_seconds_count{origin=\"local\"}";
    let m = scrape_until(&app, "the live frames' latency is observed", |m| {
        value(m, local).is_some_and(|n| n >= 6.0)
    })
    .await;
    let count = get(&m, local);
    assert!(count <= pushed, "{count} > {pushed}");
    let inf = "rtchat_ws_delivery_latency_seconds_bucket{origin=\"local\",le=\"+Inf\"}";
    assert_eq!(get(&m, inf), count);
    let sum = get(
        &m,
        "rtchat_ws_delivery_latency_seconds_sum{origin=\"local\"}",
    );
    assert!(sum > 0.0, "{sum}");
    let remote = "rtchat_ws_delivery_latency_seconds_count{origin=\"remote\"}";
    assert_eq!(get(&m, remote), 0.0);

    // Send batches: every send in exactly one batch; nothing left queued.
    let sends = (3 + 1 + slow_sends) as f64;
    assert_eq!(get(&m, "rtchat_send_batch_size_sum"), sends);
    let batches = get(&m, "rtchat_send_batch_size_count");
    assert!((1.0..=sends).contains(&batches), "{batches}");
    assert_eq!(get(&m, "rtchat_send_queue_depth"), 0.0);

    // Nothing lost, the listener up since the start, one revoked session.
    assert_eq!(get(&m, "rtchat_sweep_missing_events_total"), 0.0);
    assert_eq!(get(&m, "rtchat_listener_up"), 1.0);
    assert_eq!(get(&m, "rtchat_listener_reconnects_total"), 0.0);
    assert_eq!(get(&m, "rtchat_revoked_sessions"), 1.0);

    // The process and the build.
    assert!(get(&m, "process_resident_memory_bytes") > 1e6);
    let open = get(&m, "process_open_fds");
    assert!(open > 3.0, "{open}");
    assert!(get(&m, "process_max_fds") >= open);
    let build = format!(
        "rtchat_build_info{{version=\"{}\",commit=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        env!("BUILD_COMMIT")
    );
    assert_eq!(get(&m, &build), 1.0);
    assert!(m.contains("# TYPE rtchat_ws_delivery_latency_seconds histogram"));
}

#[tokio::test]
async fn concurrent_scrapes_report_the_same_counts() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let mut sa = WsClient::connect(&app, &a.token, None).await;
    let mut sb = WsClient::connect(&app, &b.token, None).await;
    let series = "rtchat_ws_frames_queued_total";
    let mut queued = 0.0;
    // Each round adds deliveries, then many scrapes run at once: each must report exactly
    // the deliveries made (copying the count into a counter at every scrape, as before,
    // let two scrapes add the same difference).
    for round in 0..5 {
        app.send(&a, chat, &format!("m{round}")).await;
        sa.next_event().await;
        sb.next_event().await;
        queued += 2.0;
        let scrapes: Vec<_> = (0..32)
            .map(|_| {
                let http = app.http.clone();
                let url = app.url("/metrics");
                tokio::spawn(
                    async move { http.get(url).send().await.unwrap().text().await.unwrap() },
                )
            })
            .collect();
        for scrape in scrapes {
            let text = scrape.await.unwrap();
            assert_eq!(get(&text, series), queued, "round {round}");
            let frames = get(&text, "rtchat_ws_frames_total{type=\"new_message\"}");
            assert_eq!(frames, queued, "round {round}");
        }
    }
    // Every pushed frame's latency was observed once, here all of them.
    let local = "rtchat_ws_delivery_latency_seconds_count{origin=\"local\"}";
    scrape_until(&app, "one latency per frame", |m| {
        value(m, local) == Some(queued)
    })
    .await;
}

#[tokio::test]
async fn an_event_whose_hint_was_lost_is_counted_by_the_sweep() {
    let app = TestApp::spawn_with(|c| c.sweep_interval = Duration::from_secs(1)).await;
    let b = app.user("b").await;
    let mut sb = WsClient::connect(&app, &b.token, None).await;
    // Appended by hand, as another process would, but with no hint and no push.
    let (client, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "SELECT * FROM rtchat_append_events(ARRAY['read'],
                 ARRAY['{\"chat_id\":1,\"user_id\":1,\"message_id\":1}'], ARRAY[$1::bigint], ARRAY[1])",
            &[&b.id],
        )
        .await
        .unwrap();
    // The sweep finds it an interval later, and the socket reads it from the log.
    let frame = sb.next_event().await;
    assert_eq!(
        (frame["type"].as_str(), frame["seq"].as_i64()),
        (Some("read"), Some(1))
    );
    let m = scrape_until(&app, "the missing event is counted", |m| {
        value(m, "rtchat_sweep_missing_events_total").is_some_and(|v| v > 0.0)
    })
    .await;
    assert_eq!(get(&m, "rtchat_sweep_missing_events_total"), 1.0);
    // Read from the log, not pushed: no latency to observe.
    let local = "rtchat_ws_delivery_latency_seconds_count{origin=\"local\"}";
    assert_eq!(get(&m, local), 0.0);
    assert_eq!(get(&m, "rtchat_ws_frames_total{type=\"read\"}"), 1.0);
}

#[tokio::test]
async fn a_lost_listen_connection_shows_as_down_then_one_reconnect() {
    let app = TestApp::spawn().await;
    let m = scrape(&app).await;
    assert_eq!(get(&m, "rtchat_listener_up"), 1.0);
    assert_eq!(get(&m, "rtchat_listener_reconnects_total"), 0.0);
    let (client, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let killed = client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'rtchat-listener' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let m = scrape_until(&app, "the listener reconnected", |m| {
        value(m, "rtchat_listener_reconnects_total") == Some(1.0)
    })
    .await;
    assert_eq!(get(&m, "rtchat_listener_up"), 1.0);
}

/// docs/OPERATIONS.md's metrics table names every family `/metrics` exposes, with its type and its
/// help text as exposed (a row per family: `| name | type | help |`).
#[tokio::test]
async fn the_operations_doc_lists_every_metric_with_its_type_and_help() {
    let app = TestApp::spawn().await;
    // Requests, so that the per-route families have series.
    app.call("GET", "/healthz", None, None).await;
    let text = scrape(&app).await;
    let mut helps = HashMap::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            helps.insert(name.to_string(), help.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            rows.push(format!("| `{name}` | {kind} | {} |", helps[name]));
        }
    }
    assert!(rows.len() > 20, "{text}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/OPERATIONS.md"))
        .expect("docs/OPERATIONS.md exists");
    let missing: Vec<&String> = rows.iter().filter(|row| !docs.contains(*row)).collect();
    assert!(
        missing.is_empty(),
        "docs/OPERATIONS.md's metrics table lacks these rows (or has them otherwise):\n{}",
        missing
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
