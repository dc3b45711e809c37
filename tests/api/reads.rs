//! Read state (v2): `GET /chats/{id}/reads`, the bound on `read` events, `unread_mentions`
//! in Chat views, and `GET /unread`.

use serde_json::{json, Value};

use crate::support::{assert_error, TestApp, TestUser};
use crate::wsclient::WsClient;

/// A direct connection to the test's database, for arranging what the API cannot (yet).
async fn database(app: &TestApp) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// `n` users created straight in the database (no password hashing: fast), their ids.
async fn silent_users(app: &TestApp, n: i64) -> Vec<i64> {
    let db = database(app).await;
    db.query(
        "INSERT INTO users (email, email_key, name, password_hash)
         SELECT 'silent' || g || '-' || $2 || '@example.com', 'silent' || g || '-' || $2 || '@example.com', 'silent', 'x'
         FROM generate_series(1, $1::bigint) g RETURNING id",
        &[&n, &app.addr.port().to_string()],
    )
    .await
    .expect("insert users")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// A group of `owner` with `members` (ids) besides.
async fn group_of(app: &TestApp, owner: &TestUser, members: &[i64]) -> i64 {
    let r = app
        .post(
            "/chats",
            &owner.token,
            json!({"type": "group", "title": "big", "participant_ids": members}),
        )
        .await;
    assert_eq!(r.status, 201, "create group: {r:?}");
    r.body["id"].as_i64().expect("chat id")
}

async fn mark_read(app: &TestApp, user: &TestUser, chat: i64, message: &Value) {
    let r = app
        .post(
            &format!("/chats/{chat}/read"),
            &user.token,
            json!({"message_id": message["id"]}),
        )
        .await;
    assert_eq!(r.status, 204, "read: {r:?}");
}

#[tokio::test]
async fn reads_lists_every_member_ascending_with_null_where_never_read() {
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    let b = app.user("b").await;
    let c = app.user("c").await;
    let stranger = app.user("stranger").await;
    let chat = app.group(&a, &[&b, &c]).await;
    let m1 = app.send(&a, chat, "one").await;
    let m2 = app.send(&a, chat, "two").await;
    mark_read(&app, &b, chat, &m2).await;
    mark_read(&app, &c, chat, &m1).await;

    let r = app.get(&format!("/chats/{chat}/reads"), &a.token).await;

    assert_eq!(r.status, 200, "{r:?}");
    let mut expected = vec![
        json!({"user_id": a.id, "last_read_message_id": null}),
        json!({"user_id": b.id, "last_read_message_id": m2["id"]}),
        json!({"user_id": c.id, "last_read_message_id": m1["id"]}),
    ];
    expected.sort_by_key(|v| v["user_id"].as_i64());
    assert_eq!(r.body, json!({ "reads": expected }));

    // Not a member: 404, as for a chat that does not exist.
    let r = app
        .get(&format!("/chats/{chat}/reads"), &stranger.token)
        .await;
    assert_error(&r, 404, "not_found");
    let r = app.get("/chats/999999/reads", &a.token).await;
    assert_error(&r, 404, "not_found");
    // A former member no longer sees it, and is no longer listed.
    let r = app
        .delete(&format!("/chats/{chat}/members/{}", c.id), &c.token)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = app.get(&format!("/chats/{chat}/reads"), &c.token).await;
    assert_error(&r, 404, "not_found");
    let r = app.get(&format!("/chats/{chat}/reads"), &b.token).await;
    let listed: Vec<i64> = r.body["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .map(|r| r["user_id"].as_i64().expect("id"))
        .collect();
    assert!(!listed.contains(&c.id), "{r:?}");
    assert_eq!(listed.len(), 2, "{r:?}");
    // HEAD answers as GET does.
    let r = app
        .call(
            "HEAD",
            &format!("/chats/{chat}/reads"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
}

/// The reader (with two sockets) and another member (with one) of a group of `size` members;
/// the reader marks a message read. Returns whether the other member's socket got `read`.
async fn read_reaches_others_in_a_group_of(size: i64) -> bool {
    let app = TestApp::spawn().await;
    let reader = app.user("reader").await;
    let other = app.user("other").await;
    let mut members = silent_users(&app, size - 2).await;
    members.push(other.id);
    let chat = group_of(&app, &reader, &members).await;
    let m = app.send(&other, chat, "read me").await;
    let mut reader1 = WsClient::connect(&app, &reader.token, None).await;
    let mut reader2 = WsClient::connect(&app, &reader.token, None).await;
    let mut others = WsClient::connect(&app, &other.token, None).await;
    let r = app.get(&format!("/chats/{chat}"), &reader.token).await;
    assert_eq!(
        r.body["participant_ids"].as_array().map(Vec::len),
        Some(size as usize)
    );

    mark_read(&app, &reader, chat, &m).await;

    let expected = json!({"chat_id": chat, "user_id": reader.id, "message_id": m["id"]});
    for socket in [&mut reader1, &mut reader2] {
        let f = socket.next_event().await;
        assert_eq!(f["type"], "read", "{f}");
        assert_eq!(f["payload"], expected);
    }
    let r = app.get(&format!("/chats/{chat}/reads"), &other.token).await;
    let cursor = r.body["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .find(|c| c["user_id"] == reader.id)
        .cloned();
    assert_eq!(
        cursor,
        Some(json!({"user_id": reader.id, "last_read_message_id": m["id"]}))
    );
    // The other member's next event tells: `read` first if it was sent, else the message
    // sent after it (no waiting for a silence).
    app.send(&reader, chat, "after").await;
    let f = others.next_event().await;
    match f["type"].as_str() {
        Some("read") => {
            assert_eq!(f["payload"], expected);
            true
        }
        Some("new_message") => false,
        _ => panic!("unexpected {f}"),
    }
}

#[tokio::test]
async fn read_in_a_group_of_101_goes_only_to_the_readers_own_sockets() {
    assert!(!read_reaches_others_in_a_group_of(101).await);
}

#[tokio::test]
async fn read_in_a_group_of_100_goes_to_every_member() {
    assert!(read_reaches_others_in_a_group_of(100).await);
}

#[tokio::test]
async fn marking_read_counts_against_the_message_limit() {
    let app = TestApp::spawn_with(|c| {
        c.rate_messages_per_sec = 0.01;
        c.rate_messages_burst = 3.0;
    })
    .await;
    let a = app.user("a").await;
    let chat = app.group(&a, &[]).await;
    let m = app.send(&a, chat, "one").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = app
            .post(
                &format!("/chats/{chat}/read"),
                &a.token,
                json!({"message_id": m["id"]}),
            )
            .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert_error(&r, 429, "rate_limited");
            assert!(r.headers.contains_key("retry-after"));
        }
    }
    // One send and two reads use the burst of 3; the third read is over it.
    assert_eq!(statuses, [204, 204, 429]);
}

/// `GET /unread` of `user`, and the same totals summed from `GET /chats` (active chats).
async fn unread_both_ways(app: &TestApp, user: &TestUser) -> (Value, Value) {
    let r = app.get("/unread", &user.token).await;
    assert_eq!(r.status, 200, "{r:?}");
    let chats = app.get("/chats?limit=100", &user.token).await;
    let (mut messages, mut with_unread, mut mentions) = (0, 0, 0);
    for c in chats.body["chats"].as_array().expect("chats") {
        if c["is_active"] != true {
            continue;
        }
        let n = c["unread_count"].as_i64().expect("unread_count");
        messages += n;
        with_unread += i64::from(n > 0);
        mentions += c["unread_mentions"].as_i64().expect("unread_mentions");
    }
    (
        r.body,
        json!({"messages": messages, "chats": with_unread, "mentions": mentions}),
    )
}

#[tokio::test]
async fn unread_totals_agree_with_the_chat_list_and_skip_own_messages_and_inactive_chats() {
    let app = TestApp::spawn().await;
    let me = app.user("me").await;
    let other = app.user("other").await;
    let first = app.group(&other, &[&me]).await;
    let second = app.group(&other, &[&me]).await;
    let inactive = app.group(&other, &[&me]).await;
    let quiet = app.group(&other, &[&me]).await;
    app.send(&other, first, "1").await;
    app.send(&me, first, "mine").await;
    let last_first = app.send(&other, first, "2").await;
    app.send(&other, second, "3").await;
    app.send(&me, quiet, "only mine").await;
    app.send(&other, inactive, "hidden").await;
    let r = app
        .patch(
            &format!("/chats/{inactive}"),
            &other.token,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    let (totals, summed) = unread_both_ways(&app, &me).await;

    assert_eq!(totals, json!({"messages": 3, "chats": 2, "mentions": 0}));
    assert_eq!(totals, summed);
    // unread_count counts others' messages only, on both sides.
    let r = app.get(&format!("/chats/{first}"), &me.token).await;
    assert_eq!(r.body["unread_count"], 2, "{r:?}");
    assert_eq!(r.body["unread_mentions"], 0, "{r:?}");
    let r = app.get(&format!("/chats/{first}"), &other.token).await;
    assert_eq!(r.body["unread_count"], 1, "{r:?}");
    let r = app.get(&format!("/chats/{quiet}"), &me.token).await;
    assert_eq!(r.body["unread_count"], 0, "{r:?}");
    // The inactive chat still shows its own count, but is not in the totals.
    let r = app.get(&format!("/chats/{inactive}"), &me.token).await;
    assert_eq!(r.body["unread_count"], 1, "{r:?}");

    // Reading moves them to 0.
    mark_read(&app, &me, first, &last_first).await;
    let (totals, summed) = unread_both_ways(&app, &me).await;
    assert_eq!(totals, json!({"messages": 1, "chats": 1, "mentions": 0}));
    assert_eq!(totals, summed);
    let m = app
        .get(&format!("/chats/{second}/messages"), &me.token)
        .await;
    mark_read(&app, &me, second, &m.body["messages"][0]).await;
    let (totals, _) = unread_both_ways(&app, &me).await;
    assert_eq!(totals, json!({"messages": 0, "chats": 0, "mentions": 0}));

    // A user in no chat has nothing unread.
    let loner = app.user("loner").await;
    let (totals, _) = unread_both_ways(&app, &loner).await;
    assert_eq!(totals, json!({"messages": 0, "chats": 0, "mentions": 0}));
}

#[tokio::test]
async fn unread_mentions_count_mentions_of_the_caller_after_the_cursor() {
    // The mention rows are written here as send writes them (one per mentioned member, by
    // someone else): the query is tested before sends with `mentions` exist on this branch.
    let app = TestApp::spawn().await;
    let me = app.user("me").await;
    let other = app.user("other").await;
    let third = app.user("third").await;
    let chat = app.group(&other, &[&me, &third]).await;
    let m1 = app.send(&other, chat, "@me one").await;
    let m2 = app.send(&other, chat, "@me two").await;
    let m3 = app.send(&other, chat, "@third").await;
    let db = database(&app).await;
    for (user, message) in [(me.id, &m1), (me.id, &m2), (third.id, &m3)] {
        db.execute(
            "INSERT INTO message_mentions (user_id, chat_id, message_id) VALUES ($1, $2, $3)",
            &[&user, &chat, &message["id"].as_i64().expect("id")],
        )
        .await
        .expect("insert mention");
    }

    let r = app.get(&format!("/chats/{chat}"), &me.token).await;
    assert_eq!(r.body["unread_mentions"], 2, "{r:?}");
    assert_eq!(r.body["unread_count"], 3, "{r:?}");
    let (totals, summed) = unread_both_ways(&app, &me).await;
    assert_eq!(totals, json!({"messages": 3, "chats": 1, "mentions": 2}));
    assert_eq!(totals, summed);

    // Mentions at or before the cursor no longer count.
    mark_read(&app, &me, chat, &m1).await;
    let r = app.get(&format!("/chats/{chat}"), &me.token).await;
    assert_eq!(r.body["unread_mentions"], 1, "{r:?}");
    let (totals, summed) = unread_both_ways(&app, &me).await;
    assert_eq!(totals, json!({"messages": 2, "chats": 1, "mentions": 1}));
    assert_eq!(totals, summed);
    mark_read(&app, &me, chat, &m3).await;
    let (totals, _) = unread_both_ways(&app, &me).await;
    assert_eq!(totals, json!({"messages": 0, "chats": 0, "mentions": 0}));
    let r = app.get("/chats", &third.token).await;
    assert_eq!(r.body["chats"][0]["unread_mentions"], 1, "{r:?}");
}

#[tokio::test]
async fn unread_mentions_count_messages_sent_with_mentions() {
    let app = TestApp::spawn().await;
    let me = app.user("me").await;
    let other = app.user("other").await;
    let chat = app.group(&other, &[&me]).await;
    let send = |text: &'static str, mentions: Value| {
        let (app, other) = (&app, &other);
        async move {
            let r = app
                .post(
                    &format!("/chats/{chat}/messages"),
                    &other.token,
                    json!({"text": text, "mentions": mentions}),
                )
                .await;
            assert_eq!(r.status, 201, "{r:?}");
            r.body
        }
    };
    send("hi @me", json!([me.id])).await;
    let last = send("hi all", json!([])).await;
    // The sender's self-mention does not count for anyone.
    app.post(
        &format!("/chats/{chat}/messages"),
        &me.token,
        json!({"text": "me myself", "mentions": [me.id]}),
    )
    .await;

    let r = app.get(&format!("/chats/{chat}"), &me.token).await;
    assert_eq!(r.body["unread_mentions"], 1, "{r:?}");
    let (totals, summed) = unread_both_ways(&app, &me).await;
    assert_eq!(totals, json!({"messages": 2, "chats": 1, "mentions": 1}));
    assert_eq!(totals, summed);
    mark_read(&app, &me, chat, &last).await;
    let (totals, _) = unread_both_ways(&app, &me).await;
    assert_eq!(totals, json!({"messages": 0, "chats": 0, "mentions": 0}));
}
