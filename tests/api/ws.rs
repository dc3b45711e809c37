//! `/ws/notif`: handshake, fan-out to exactly the right sockets, replay with `since`,
//! client frames, typing, slow readers, token expiry and shutdown.

use std::time::Duration;

use futures_util::SinkExt;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;
use crate::wsclient::*;

const SILENCE: Duration = Duration::from_millis(300);

#[tokio::test]
async fn handshake_with_a_bad_token_is_401_before_upgrade() {
    let app = TestApp::spawn().await;
    let user = app.user("u").await;
    let expired = encode(
        &Header::default(),
        &json!({"sub": user.id.to_string(), "iat": 0, "exp": rtchat::testing::unix_now() - 120, "sid": 1}),
        &EncodingKey::from_secret(b"test-secret-test-secret-test-secret"),
    )
    .unwrap();
    for query in [
        "",
        "?token=",
        "?token=garbage",
        &format!("?token={expired}"),
    ] {
        let err = tokio_tungstenite::connect_async(app.ws_url(&format!("/ws/notif{query}")))
            .await
            .unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), 401, "{query}")
            }
            other => panic!("{query}: expected HTTP 401, got {other:?}"),
        }
    }
    // A plain GET (no handshake) with a good token: 426.
    let r = app.get("/ws/notif", &user.token).await;
    assert_error(&r, 426, "upgrade_required");
}

#[tokio::test]
async fn ready_then_every_member_socket_gets_the_message_and_nobody_else() {
    let app = TestApp::spawn().await;
    let (a, b, stranger) = (
        app.user("a").await,
        app.user("b").await,
        app.user("s").await,
    );
    let chat = app.group(&a, &[&b]).await;
    let mut a1 = WsClient::connect(&app, &a.token, None).await;
    let mut a2 = WsClient::connect(&app, &a.token, None).await;
    let mut b1 = WsClient::connect(&app, &b.token, None).await;
    let mut s1 = WsClient::connect(&app, &stranger.token, None).await;
    assert_eq!(a1.ready["user_id"], a.id);
    assert_eq!(a1.ready["seq"], 1, "create_chat was a's first event");
    assert_eq!(a1.ready["heartbeat_interval_ms"], 25_000);

    let sent = app.send(&a, chat, "Привет из чата!").await;
    for socket in [&mut a1, &mut a2] {
        let frame = socket.next_event().await;
        assert_eq!(frame["type"], "new_message");
        assert_eq!(frame["seq"], 2);
        assert_eq!(frame["payload"], sent);
    }
    let frame = b1.next_event().await;
    assert_eq!(
        (frame["type"].clone(), frame["seq"].clone()),
        (json!("new_message"), json!(2))
    );
    assert_eq!(frame["payload"]["text"], "Привет из чата!");
    s1.expect_silence(SILENCE).await;
}

#[tokio::test]
async fn every_event_type_reaches_exactly_its_recipients() {
    let app = TestApp::spawn().await;
    let (owner, a, b, outsider) = (
        app.user("o").await,
        app.user("a").await,
        app.user("b").await,
        app.user("x").await,
    );
    let mut so = WsClient::connect(&app, &owner.token, None).await;
    let mut sa = WsClient::connect(&app, &a.token, None).await;
    let mut sb = WsClient::connect(&app, &b.token, None).await;
    let mut sx = WsClient::connect(&app, &outsider.token, None).await;

    let chat = app.group(&owner, &[&a]).await;
    for s in [&mut so, &mut sa] {
        let f = s.next_event().await;
        assert_eq!(
            (f["type"].as_str(), f["seq"].as_i64()),
            (Some("create_chat"), Some(1))
        );
        assert_eq!(f["payload"]["id"], chat);
    }
    app.patch(
        &format!("/chats/{chat}"),
        &owner.token,
        json!({"title": "renamed"}),
    )
    .await;
    for s in [&mut so, &mut sa] {
        let f = s.next_event().await;
        assert_eq!(f["type"], "update_chat");
        assert_eq!(f["payload"]["title"], "renamed");
    }
    // No change, no event.
    app.patch(
        &format!("/chats/{chat}"),
        &owner.token,
        json!({"title": "renamed"}),
    )
    .await;
    app.post(
        &format!("/chats/{chat}/members"),
        &owner.token,
        json!({"user_ids": [b.id]}),
    )
    .await;
    let f = sb.next_event().await;
    assert_eq!(
        (f["type"].as_str(), f["seq"].as_i64()),
        (Some("create_chat"), Some(1))
    );
    for s in [&mut so, &mut sa] {
        let f = s.next_event().await;
        assert_eq!(
            (f["type"].as_str(), f["seq"].as_i64()),
            (Some("update_chat"), Some(3))
        );
    }
    let m = app.send(&a, chat, "hi").await;
    for s in [&mut so, &mut sa, &mut sb] {
        assert_eq!(s.next_event().await["type"], "new_message");
    }
    app.patch(
        &format!("/chats/{chat}/messages/{}", m["id"]),
        &a.token,
        json!({"text": "hi!"}),
    )
    .await;
    for s in [&mut so, &mut sa, &mut sb] {
        let f = s.next_event().await;
        assert_eq!(f["type"], "update_message");
        assert_eq!(f["payload"]["text"], "hi!");
    }
    app.post(
        &format!("/chats/{chat}/read"),
        &b.token,
        json!({"message_id": m["id"]}),
    )
    .await;
    for s in [&mut so, &mut sa, &mut sb] {
        let f = s.next_event().await;
        assert_eq!(f["type"], "read");
        assert_eq!(
            f["payload"],
            json!({"chat_id": chat, "user_id": b.id, "message_id": m["id"]})
        );
    }
    app.delete(&format!("/chats/{chat}/messages/{}", m["id"]), &a.token)
        .await;
    for s in [&mut so, &mut sa, &mut sb] {
        let f = s.next_event().await;
        assert_eq!(f["type"], "delete_message");
        assert_eq!(f["payload"], json!({"id": m["id"], "chat_id": chat}));
    }
    // b is removed: b gets delete_chat, the rest update_chat, and b nothing after that.
    app.delete(&format!("/chats/{chat}/members/{}", b.id), &owner.token)
        .await;
    let f = sb.next_event().await;
    assert_eq!(f["type"], "delete_chat");
    assert_eq!(f["payload"], json!({"id": chat}));
    for s in [&mut so, &mut sa] {
        let f = s.next_event().await;
        assert_eq!(f["type"], "update_chat");
        assert_eq!(f["payload"]["participant_ids"], json!([owner.id, a.id]));
    }
    app.send(&a, chat, "after b left").await;
    for s in [&mut so, &mut sa] {
        assert_eq!(s.next_event().await["type"], "new_message");
    }
    app.delete(&format!("/chats/{chat}"), &owner.token).await;
    for s in [&mut so, &mut sa] {
        let f = s.next_event().await;
        assert_eq!(f["type"], "delete_chat");
    }
    sb.expect_silence(SILENCE).await;
    sx.expect_silence(SILENCE).await;
    // And seqs were consecutive: owner saw 1..=10.
    let events = app.get("/events?since=0", &owner.token).await;
    let seqs: Vec<i64> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn reconnecting_with_since_replays_exactly_the_missed_events_then_live_ones() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let mut sb = WsClient::connect(&app, &b.token, None).await;
    app.send(&a, chat, "one").await;
    let seen = sb.next_event().await["seq"].as_i64().unwrap();
    assert_eq!(seen, 2);
    drop(sb);
    for text in ["two", "three", "four"] {
        app.send(&a, chat, text).await;
    }
    let mut sb = WsClient::connect(&app, &b.token, Some(seen)).await;
    assert_eq!(sb.ready["seq"], 5);
    for (seq, text) in [(3, "two"), (4, "three"), (5, "four")] {
        let f = sb.next_event().await;
        assert_eq!(
            (f["seq"].as_i64(), f["payload"]["text"].as_str()),
            (Some(seq), Some(text))
        );
    }
    app.send(&a, chat, "five").await;
    let f = sb.next_event().await;
    assert_eq!(
        (f["seq"].as_i64(), f["payload"]["text"].as_str()),
        (Some(6), Some("five"))
    );
    sb.expect_silence(SILENCE).await;

    // The same log over REST, paged.
    let r = app.get("/events?since=2&limit=2", &b.token).await;
    assert_eq!(r.body["has_more"], true);
    let seqs: Vec<i64> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    assert_eq!(r.body["events"][0]["payload"]["text"], "two");
    let r = app.get("/events?since=6", &b.token).await;
    assert_eq!(r.body["events"], json!([]));
    assert_eq!(r.body["has_more"], false);
}

#[tokio::test]
async fn a_since_ahead_of_the_log_or_pruned_asks_for_resync() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let mut s = WsClient::connect(&app, &b.token, Some(99)).await;
    assert_eq!(
        s.next().await,
        json!({"type": "resync_required", "payload": {"seq": 1}})
    );
    // Prune everything (as retention would after 30 days).
    let (client, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("DELETE FROM user_events; DELETE FROM events;")
        .await
        .unwrap();
    let mut s2 = WsClient::connect(&app, &b.token, Some(0)).await;
    assert_eq!(
        s2.next().await,
        json!({"type": "resync_required", "payload": {"seq": 1}})
    );
    let r = app.get("/events?since=0", &b.token).await;
    assert_error(&r, 410, "resync_required");
    assert_eq!(r.body["seq"], 1, "{r:?}");
    // Live events continue after the resync.
    app.send(&a, chat, "after").await;
    let f = s2.next_event().await;
    assert_eq!(
        (f["seq"].as_i64(), f["type"].as_str()),
        (Some(2), Some("new_message"))
    );
}

#[tokio::test]
async fn client_frames_ping_typing_errors_and_binary() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (
        app.user("a").await,
        app.user("b").await,
        app.user("c").await,
    );
    let chat = app.group(&a, &[&b]).await;
    let mut sa = WsClient::connect(&app, &a.token, None).await;
    let mut sb = WsClient::connect(&app, &b.token, None).await;
    let mut sc = WsClient::connect(&app, &c.token, None).await;

    sa.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(sa.next().await, json!({"type": "pong"}));
    sa.send_text(&format!(
        r#"{{"type":"typing","payload":{{"chat_id":{chat}}}}}"#
    ))
    .await;
    assert_eq!(
        sb.next().await,
        json!({"type": "typing", "payload": {"chat_id": chat, "user_id": a.id}})
    );
    sa.expect_silence(SILENCE).await;
    // Throttled: a second typing right away is not forwarded.
    sa.send_text(&format!(
        r#"{{"type":"typing","payload":{{"chat_id":{chat}}}}}"#
    ))
    .await;
    sb.expect_silence(SILENCE).await;
    // Typing into someone else's chat: an error frame, nothing forwarded.
    sc.send_text(&format!(
        r#"{{"type":"typing","payload":{{"chat_id":{chat}}}}}"#
    ))
    .await;
    let f = sc.next().await;
    assert_eq!(
        (f["type"].as_str(), f["payload"]["code"].as_str()),
        (Some("error"), Some("not_found"))
    );
    for junk in [
        "nonsense",
        "{}",
        r#"{"type":"dance"}"#,
        r#"{"type":"typing","payload":{"chat_id":"x"}}"#,
    ] {
        sa.send_text(junk).await;
        let f = sa.next().await;
        assert_eq!(f["type"], "error", "{junk}: {f}");
        assert!(f["payload"]["code"].is_string());
    }
    sa.ws
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(code(&sa.ended().await), Some(1003));
}

#[tokio::test]
async fn an_expired_token_closes_the_socket_with_4001() {
    let app = TestApp::spawn().await;
    let user = app.user("u").await;
    let now = rtchat::testing::unix_now();
    let short = encode(
        &Header::default(),
        &json!({"sub": user.id.to_string(), "iat": now, "exp": now + 2, "sid": 1}),
        &EncodingKey::from_secret(b"test-secret-test-secret-test-secret"),
    )
    .unwrap();
    let mut s = WsClient::connect(&app, &short, None).await;
    assert_eq!(code(&s.ended().await), Some(4001));
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let mut app = TestApp::spawn().await;
    let user = app.user("u").await;
    let mut s = WsClient::connect(&app, &user.token, None).await;
    app.stop().await;
    assert_eq!(code(&s.ended().await), Some(1001));
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off_without_slowing_anyone() {
    let app = TestApp::spawn_with(|c| c.ws_queue = 8).await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let mut slow = WsClient::connect_small_buffer(&app, &b.token).await;
    let mut fast = WsClient::connect(&app, &b.token, None).await;
    // 16 KB per message (4-byte characters): enough in all to fill the server's socket
    // send buffer (up to 4 MiB here) behind a client that reads nothing.
    let text = "😀".repeat(4096);
    let total = 400;
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < total {
            seqs.push(fast.next_event().await["seq"].as_i64().unwrap());
        }
        seqs
    });
    for _ in 0..total {
        app.send(&a, chat, &text).await;
    }
    let seqs = tokio::time::timeout(WAIT, reader)
        .await
        .expect("the fast reader keeps up")
        .unwrap();
    assert_eq!(seqs, (2..2 + total as i64).collect::<Vec<_>>());
    // The slow socket was cut off: it does not get every event, and it ends.
    let mut received = 0;
    let end = tokio::time::timeout(WAIT, async {
        loop {
            use futures_util::StreamExt;
            match slow.ws.next().await {
                Some(Ok(Message::Text(_))) => received += 1,
                Some(Ok(Message::Close(f))) => return Ended::Closed(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                _ => return Ended::Dropped,
            }
        }
    })
    .await
    .expect("the slow socket ends");
    assert!(
        received < total,
        "the slow socket got everything ({received}): it was never cut off"
    );
    assert!(
        matches!(end, Ended::Dropped | Ended::Closed(Some(1013))),
        "{end:?}"
    );
}

#[tokio::test]
async fn retention_prunes_a_prefix_and_old_cursors_must_resync() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    app.send(&a, chat, "old").await;
    let pool = rtchat::testing::pool(&app.database_url, 1).unwrap();
    let client = pool.get().await.unwrap();
    // Everything is older than a zero retention window.
    let pruned = rtchat::testing::prune_events(&client, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(pruned, 4, "two events for each of two users");
    app.send(&a, chat, "new").await;
    // since=2 is the pruned edge: its successor (3) is kept, so it still works.
    let r = app.get("/events?since=2", &b.token).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["events"][0]["payload"]["text"], "new");
    assert_error(
        &app.get("/events?since=1", &b.token).await,
        410,
        "resync_required",
    );
    let mut s = WsClient::connect(&app, &b.token, Some(1)).await;
    assert_eq!(s.next().await["type"], "resync_required");
}

#[tokio::test]
async fn an_open_socket_holds_its_connection_slot() {
    // Three slots: the test client's pooled keep-alive connection and two sockets.
    let app = TestApp::spawn_with(|c| c.max_connections = 3).await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let first = WsClient::connect(&app, &a.token, None).await;
    let _second = WsClient::connect(&app, &b.token, None).await;

    // A new connection waits in the accept queue while the sockets hold every slot.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    raw.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    assert!(
        tokio::time::timeout(Duration::from_secs(1), raw.read_exact(&mut head))
            .await
            .is_err(),
        "served while both sockets were open"
    );

    // Closing a socket frees its slot.
    drop(first);
    tokio::time::timeout(WAIT, raw.read_exact(&mut head))
        .await
        .expect("served once a socket closed")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

#[tokio::test]
async fn a_reader_past_its_byte_bound_is_closed_with_1013_and_resumes_losing_nothing() {
    // Only bytes bound the queue here: its frame bound is far above what is sent.
    let app = TestApp::spawn_with(|c| {
        c.ws_queue = 100_000;
        c.ws_queue_bytes = 64 * 1024;
    })
    .await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let mut slow = WsClient::connect_small_buffer(&app, &b.token).await;
    // 16 KiB frames: 400 of them fill the server's socket send buffer (up to 4 MiB here)
    // behind a client that reads nothing, and then the 64 KiB queue behind it.
    let text = "😀".repeat(4096);
    let total = 400i64;
    for _ in 0..total {
        app.send(&a, chat, &text).await;
    }
    let mut seqs = Vec::new();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            use futures_util::StreamExt;
            match slow.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                    seqs.push(frame["seq"].as_i64().expect("only events are sent"));
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
    let got = seqs.len() as i64;
    assert!(got < total, "got all {got}: never cut off");
    assert_eq!(seqs, (2..2 + got).collect::<Vec<_>>(), "in order, no gap");
    // Resuming with `since` loses nothing.
    let mut again = WsClient::connect(&app, &b.token, Some(1 + got)).await;
    for seq in 2 + got..=1 + total {
        assert_eq!(again.next_event().await["seq"], seq);
    }
}

#[tokio::test]
async fn concurrent_handshakes_cannot_pass_the_per_user_socket_cap() {
    const CAP: usize = 3;
    let app = TestApp::spawn_with(|c| c.max_sockets_per_user = CAP).await;
    let user = app.user("u").await;
    let url = app.ws_url(&format!("/ws/notif?token={}", user.token));
    let attempts: Vec<_> = (0..CAP + 5)
        .map(|_| tokio::spawn(tokio_tungstenite::connect_async(url.clone())))
        .collect();
    let (mut open, mut refused) = (Vec::new(), 0);
    for attempt in attempts {
        match tokio::time::timeout(WAIT, attempt).await.unwrap().unwrap() {
            Ok((ws, _)) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
                refused += 1;
            }
            Err(e) => panic!("handshake: {e}"),
        }
    }
    assert_eq!((open.len(), refused), (CAP, 5));
}

#[tokio::test]
async fn a_hole_anywhere_in_a_replay_asks_for_resync_with_the_seq_to_go_on_from() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    for i in 0..5 {
        app.send(&a, chat, &format!("m{i}")).await;
    }
    // b's log is 1..=6. Lose seq 4's row, and the event body of seq 6 (as retention pruning
    // the two tables apart would).
    let (client, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "DELETE FROM user_events WHERE user_id = $1 AND seq = 4",
            &[&b.id],
        )
        .await
        .unwrap();
    client
        .execute(
            "DELETE FROM events WHERE id = (SELECT event_id FROM user_events WHERE user_id = $1 AND seq = 6)",
            &[&b.id],
        )
        .await
        .unwrap();
    for since in [0, 4] {
        let r = app.get(&format!("/events?since={since}"), &b.token).await;
        assert_error(&r, 410, "resync_required");
        assert_eq!(r.body["seq"], 6, "since={since}: {r:?}");
    }
    let r = app.get("/events?since=6", &b.token).await;
    assert_eq!((r.status, &r.body["events"]), (200, &json!([])), "{r:?}");

    // At connect: the replay finds the hole and says where the stream goes on.
    let mut s = WsClient::connect(&app, &b.token, Some(0)).await;
    assert_eq!(
        s.next().await,
        json!({"type": "resync_required", "payload": {"seq": 6}})
    );
    app.send(&a, chat, "after").await;
    let f = s.next().await;
    assert_eq!(
        (f["seq"].as_i64(), &f["payload"]["text"]),
        (Some(7), &json!("after"))
    );
    // Mid-stream: seq 8 is never written, so the push of 9 makes the session read the log,
    // which finds the hole.
    client
        .execute(
            "UPDATE users SET last_seq = last_seq + 1 WHERE id = $1",
            &[&b.id],
        )
        .await
        .unwrap();
    app.send(&a, chat, "skipped").await;
    assert_eq!(
        s.next().await,
        json!({"type": "resync_required", "payload": {"seq": 9}})
    );
    app.send(&a, chat, "goes on").await;
    let f = s.next().await;
    assert_eq!(
        (f["seq"].as_i64(), &f["payload"]["text"]),
        (Some(10), &json!("goes on"))
    );
}

#[tokio::test]
async fn a_database_error_while_typing_is_unavailable_not_not_found() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    // A second process, which has not read chat_members yet (no statement cached): its read
    // fails while the table is away.
    let other = TestApp::spawn_on(&app.database_url, |_| {}).await;
    let mut s = WsClient::connect(&other, &a.token, None).await;
    let (client, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("ALTER TABLE chat_members RENAME TO chat_members_away")
        .await
        .unwrap();
    s.send_text(&format!(
        r#"{{"type":"typing","payload":{{"chat_id":{chat}}}}}"#
    ))
    .await;
    let f = s.next().await;
    client
        .batch_execute("ALTER TABLE chat_members_away RENAME TO chat_members")
        .await
        .unwrap();
    assert_eq!(
        (f["type"].as_str(), f["payload"]["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{f}"
    );
}
