//! Reactions (v2): PUT/DELETE `/chats/{id}/messages/{mid}/reactions/{emoji}`, the `reaction`
//! event exactly when the set changed, counts and `my_reactions` on every Message, and the
//! limits.

use serde_json::{json, Value};

use crate::support::*;
use crate::wsclient::WsClient;

/// A reaction path; `emoji` is percent-encoded here.
fn path(chat: i64, message: i64, emoji: &str) -> String {
    format!(
        "/chats/{chat}/messages/{message}/reactions/{}",
        utf8_percent_encode(emoji)
    )
}

fn utf8_percent_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// PUT or DELETE until it is not `503 server_busy` (a chat write that waited its bounded time
/// for its turn behind the others changed nothing, and a client retries it): 50 writers of
/// one chat at once on a 2-core test box may wait that long.
async fn react(app: &TestApp, method: &str, user: &TestUser, path: &str) -> Reply {
    for _ in 0..20 {
        let r = app.call(method, path, Some(&user.token), None).await;
        if !(r.status == 503 && r.body["code"] == "server_busy") {
            return r;
        }
    }
    panic!("{method} {path}: server_busy 20 times in a row");
}

async fn put(app: &TestApp, user: &TestUser, chat: i64, message: i64, emoji: &str) -> Reply {
    react(app, "PUT", user, &path(chat, message, emoji)).await
}

async fn del(app: &TestApp, user: &TestUser, chat: i64, message: i64, emoji: &str) -> Reply {
    react(app, "DELETE", user, &path(chat, message, emoji)).await
}

/// The user's whole event log over REST.
async fn log(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let since = events
            .last()
            .map(|e: &Value| e["seq"].as_i64().unwrap())
            .unwrap_or(0);
        let r = app
            .get(&format!("/events?since={since}&limit=100"), &user.token)
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        events.extend(r.body["events"].as_array().unwrap().iter().cloned());
        if r.body["has_more"] == false {
            return events;
        }
    }
}

fn reactions_of(log: &[Value]) -> Vec<Value> {
    log.iter()
        .filter(|e| e["type"] == "reaction")
        .map(|e| e["payload"].clone())
        .collect()
}

#[tokio::test]
async fn reactions_keep_first_add_order_counts_and_the_callers_own_in_get_responses() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (
        app.user("a").await,
        app.user("b").await,
        app.user("c").await,
    );
    let chat = app.group(&a, &[&b, &c]).await;
    let first = app.send(&a, chat, "first").await["id"].as_i64().unwrap();
    let last = app.send(&b, chat, "last").await["id"].as_i64().unwrap();
    assert_eq!(first_reactions(&app, &a, chat, last).await, json!([]));

    for (user, emoji) in [(&b, "🎉"), (&a, "👍"), (&c, "👍"), (&c, "🎉"), (&a, "❤️")] {
        let r = put(&app, user, chat, last, emoji).await;
        assert_eq!(r.status, 204, "{r:?}");
    }
    // 🎉 came first. b takes theirs back and adds it again: the order is by the earliest
    // reaction still there (min(id) per emoji), now c's 🎉, which came after a's 👍.
    assert_eq!(del(&app, &b, chat, last, "🎉").await.status, 204);
    assert_eq!(put(&app, &b, chat, last, "🎉").await.status, 204);

    let expected = json!([
        {"emoji": "👍", "count": 2},
        {"emoji": "🎉", "count": 2},
        {"emoji": "❤️", "count": 1},
    ]);
    let page = app.get(&format!("/chats/{chat}/messages"), &a.token).await;
    assert_eq!(page.status, 200, "{page:?}");
    let messages = page.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["id"], first);
    assert_eq!(messages[0]["reactions"], json!([]));
    assert_eq!(messages[0]["my_reactions"], json!([]));
    assert_eq!(messages[1]["reactions"], expected);
    assert_eq!(messages[1]["my_reactions"], json!(["👍", "❤️"]));
    let as_c = app.get(&format!("/chats/{chat}/messages"), &c.token).await;
    assert_eq!(
        as_c.body["messages"][1]["my_reactions"],
        json!(["👍", "🎉"])
    );

    // The chat views: last_message carries the same, for each caller.
    let view = app.get(&format!("/chats/{chat}"), &b.token).await;
    assert_eq!(view.body["last_message"]["reactions"], expected);
    assert_eq!(view.body["last_message"]["my_reactions"], json!(["🎉"]));
    let list = app.get("/chats", &a.token).await;
    let listed = &list.body["chats"][0]["last_message"];
    assert_eq!(listed["id"], last);
    assert_eq!(listed["reactions"], expected);
    assert_eq!(listed["my_reactions"], json!(["👍", "❤️"]));

    // An emoji everyone took back is gone, and a later add puts it last.
    assert_eq!(del(&app, &b, chat, last, "🎉").await.status, 204);
    assert_eq!(del(&app, &c, chat, last, "🎉").await.status, 204);
    assert_eq!(put(&app, &c, chat, last, "🎉").await.status, 204);
    assert_eq!(
        first_reactions(&app, &a, chat, last).await,
        json!([
            {"emoji": "👍", "count": 2},
            {"emoji": "❤️", "count": 1},
            {"emoji": "🎉", "count": 1},
        ])
    );
}

/// The reactions of message `id` in the latest page, as `user` gets it.
async fn first_reactions(app: &TestApp, user: &TestUser, chat: i64, id: i64) -> Value {
    let r = app
        .get(&format!("/chats/{chat}/messages"), &user.token)
        .await;
    r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .expect("the message is on the page")["reactions"]
        .clone()
}

#[tokio::test]
async fn reaction_events_go_to_every_member_only_on_change_and_replay_with_consecutive_seqs() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let m = app.send(&a, chat, "react to me").await["id"]
        .as_i64()
        .unwrap();
    let mut socket = WsClient::connect(&app, &b.token, None).await;
    let before = socket.ready["seq"].as_i64().unwrap();

    assert_eq!(put(&app, &b, chat, m, "👍").await.status, 204);
    assert_eq!(
        put(&app, &b, chat, m, "👍").await.status,
        204,
        "again: no change"
    );
    assert_eq!(put(&app, &a, chat, m, "👍").await.status, 204);
    assert_eq!(
        del(&app, &a, chat, m, "🎉").await.status,
        204,
        "not there: no change"
    );
    assert_eq!(del(&app, &b, chat, m, "👍").await.status, 204);
    assert_eq!(
        del(&app, &b, chat, m, "👍").await.status,
        204,
        "again: no change"
    );

    let expected = [(b.id, true, 1), (a.id, true, 2), (b.id, false, 1)];
    for (i, (user, added, count)) in expected.iter().enumerate() {
        let frame = socket.next_event().await;
        assert_eq!(frame["type"], "reaction", "{frame}");
        assert_eq!(frame["seq"], before + 1 + i as i64, "{frame}");
        assert_eq!(
            frame["payload"],
            json!({"chat_id": chat, "message_id": m, "user_id": user, "emoji": "👍",
                   "added": added, "count": count}),
        );
    }
    socket
        .expect_silence(std::time::Duration::from_millis(300))
        .await;

    // The same events for the other member, and replayed by `since` in seq order.
    for user in [&a, &b] {
        let events = log(&app, user).await;
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
        let reactions = reactions_of(&events);
        assert_eq!(reactions.len(), 3, "{user:?}: {reactions:?}");
        let since = events.iter().position(|e| e["type"] == "reaction").unwrap() as i64;
        let mut replay = WsClient::connect(&app, &user.token, Some(since)).await;
        for expected in &events[since as usize..] {
            assert_eq!(&replay.next_event().await, expected);
        }
    }
}

#[tokio::test]
async fn fifty_parallel_puts_of_one_emoji_by_one_user_emit_exactly_one_event() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let m = app.send(&a, chat, "once").await["id"].as_i64().unwrap();
    let replies =
        futures_util::future::join_all((0..50).map(|_| put(&app, &b, chat, m, "🔥"))).await;
    assert!(replies.iter().all(|r| r.status == 204), "{replies:?}");
    for user in [&a, &b] {
        let reactions = reactions_of(&log(&app, user).await);
        assert_eq!(
            reactions,
            vec![
                json!({"chat_id": chat, "message_id": m, "user_id": b.id, "emoji": "🔥",
                        "added": true, "count": 1})
            ]
        );
    }
    assert_eq!(
        first_reactions(&app, &a, chat, m).await,
        json!([{"emoji": "🔥", "count": 1}])
    );
}

#[tokio::test]
async fn fifty_users_putting_one_emoji_in_parallel_get_counts_one_to_fifty() {
    let app = TestApp::spawn().await;
    let owner = app.user("owner").await;
    let mut users = Vec::new();
    for i in 0..50 {
        users.push(app.user(&format!("u{i}_")).await);
    }
    let others: Vec<&TestUser> = users.iter().collect();
    let chat = app.group(&owner, &others).await;
    let m = app.send(&owner, chat, "vote").await["id"].as_i64().unwrap();
    let replies =
        futures_util::future::join_all(users.iter().map(|u| put(&app, u, chat, m, "✅"))).await;
    assert!(replies.iter().all(|r| r.status == 204), "{replies:?}");

    let reactions = reactions_of(&log(&app, &owner).await);
    let mut counts: Vec<i64> = reactions
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .collect();
    assert_eq!(
        counts,
        (1..=50).collect::<Vec<_>>(),
        "in seq order, each count once"
    );
    counts.sort();
    let mut reactors: Vec<i64> = reactions
        .iter()
        .map(|r| r["user_id"].as_i64().unwrap())
        .collect();
    reactors.sort();
    let mut ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    ids.sort();
    assert_eq!(reactors, ids, "one event per user");
    assert_eq!(
        first_reactions(&app, &owner, chat, m).await,
        json!([{"emoji": "✅", "count": 50}])
    );
}

#[tokio::test]
async fn who_may_react_to_what_and_the_limits() {
    let app = TestApp::spawn().await;
    let (a, b, stranger) = (
        app.user("a").await,
        app.user("b").await,
        app.user("s").await,
    );
    let chat = app.group(&a, &[&b]).await;
    let other = app.group(&a, &[]).await;
    let m = app.send(&a, chat, "m").await["id"].as_i64().unwrap();
    let elsewhere = app.send(&a, other, "x").await["id"].as_i64().unwrap();

    // A stranger, a message of another chat, a message that does not exist: 404.
    assert_error(&put(&app, &stranger, chat, m, "👍").await, 404, "not_found");
    assert_error(
        &put(&app, &a, chat, elsewhere, "👍").await,
        404,
        "not_found",
    );
    assert_error(
        &del(&app, &a, chat, elsewhere, "👍").await,
        404,
        "not_found",
    );
    assert_error(&put(&app, &a, chat, m + 1000, "👍").await, 404, "not_found");
    assert_error(
        &put(&app, &b, other, elsewhere, "👍").await,
        404,
        "not_found",
    );

    // 20 distinct emoji; a 21st is refused, an existing one still taken.
    for i in 0..20u32 {
        let emoji = char::from_u32(0x1F600 + i).unwrap().to_string();
        assert_eq!(put(&app, &a, chat, m, &emoji).await.status, 204);
    }
    let r = put(&app, &b, chat, m, "🦀").await;
    assert_error(&r, 422, "too_many_reactions");
    assert_eq!(r.body["errors"][0]["field"], "emoji", "{r:?}");
    assert_eq!(put(&app, &b, chat, m, "😀").await.status, 204);
    let reactions = first_reactions(&app, &a, chat, m).await;
    assert_eq!(reactions.as_array().unwrap().len(), 20);
    assert_eq!(reactions[0], json!({"emoji": "😀", "count": 2}));

    // An inactive chat takes no new reactions, but lets members take theirs back.
    let r = app
        .patch(
            &format!("/chats/{chat}"),
            &a.token,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_error(&put(&app, &b, chat, m, "🦀").await, 403, "chat_inactive");
    assert_eq!(del(&app, &b, chat, m, "😀").await.status, 204);

    // The route's methods: PUT and DELETE, OPTIONS listed in Allow.
    let r = app
        .call("GET", &path(chat, m, "👍"), Some(&a.token), None)
        .await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers["allow"], "PUT, DELETE, OPTIONS");
    let r = app
        .call("POST", &path(chat, m, "👍"), Some(&a.token), None)
        .await;
    assert_error(&r, 405, "method_not_allowed");
    let r = app
        .call("HEAD", &path(chat, m, "👍"), Some(&a.token), None)
        .await;
    assert_eq!(r.status, 405, "no GET, so no HEAD: {r:?}");
    assert_eq!(r.headers["allow"], "PUT, DELETE, OPTIONS");
    let r = app.call("OPTIONS", &path(chat, m, "👍"), None, None).await;
    assert_eq!(r.status, 204, "the preflight: {r:?}");
    assert_eq!(r.headers["allow"], "PUT, DELETE, OPTIONS");
}

#[tokio::test]
async fn deleting_a_message_deletes_its_reactions_and_edits_carry_them() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let m = app.send(&a, chat, "soon gone").await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(put(&app, &b, chat, m, "👀").await.status, 204);

    // update_message carries the current reactions (no my_reactions), as does the answer.
    let r = app
        .patch(
            &format!("/chats/{chat}/messages/{m}"),
            &a.token,
            json!({"text": "edited"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["reactions"], json!([{"emoji": "👀", "count": 1}]));
    let events = log(&app, &b).await;
    let update = events
        .iter()
        .rev()
        .find(|e| e["type"] == "update_message")
        .unwrap();
    assert_eq!(
        update["payload"]["reactions"],
        json!([{"emoji": "👀", "count": 1}])
    );
    assert!(update["payload"].get("my_reactions").is_none(), "{update}");
    assert_eq!(update["payload"], r.body);

    assert_eq!(
        app.delete(&format!("/chats/{chat}/messages/{m}"), &a.token)
            .await
            .status,
        204
    );
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM message_reactions WHERE message_id = $1",
            &[&m],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the reactions went with the message");
    assert_error(&put(&app, &b, chat, m, "👀").await, 404, "not_found");
}
