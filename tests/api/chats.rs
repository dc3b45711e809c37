//! Chats and members: creation rules, private de-duplication, visibility (404) and roles (403).

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_group_includes_its_creator_and_lists_participants_ascending() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (
        app.user("a").await,
        app.user("b").await,
        app.user("c").await,
    );
    let r = app
        .post(
            "/chats",
            &c.token,
            json!({"type": "group", "title": " Team ", "participant_ids": [b.id, a.id, a.id]}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["title"], "Team");
    assert_eq!(r.body["creator_id"], c.id);
    assert_eq!(r.body["is_active"], true);
    assert_eq!(r.body["participant_ids"], json!([a.id, b.id, c.id]));
    assert_eq!(r.body["unread_count"], 0);
    assert!(r.body["last_message"].is_null());
}

#[tokio::test]
async fn a_private_pair_has_one_chat_even_under_concurrency() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let calls = (0..4).map(|i| {
        let (me, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        app.post(
            "/chats",
            &me.token,
            json!({"type": "private", "participant_ids": [other.id]}),
        )
    });
    let replies = futures_util::future::join_all(calls).await;
    let ids: Vec<i64> = replies
        .iter()
        .map(|r| r.body["id"].as_i64().expect("chat id"))
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{replies:?}");
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 200, 201], "{replies:?}");
}

#[tokio::test]
async fn creation_rejects_bad_participants() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (
        app.user("a").await,
        app.user("b").await,
        app.user("c").await,
    );
    let r = app
        .post(
            "/chats",
            &a.token,
            json!({"type": "private", "participant_ids": [b.id, c.id]}),
        )
        .await;
    assert_invalid(&r, "participant_ids");
    let r = app
        .post(
            "/chats",
            &a.token,
            json!({"type": "private", "participant_ids": [a.id]}),
        )
        .await;
    assert_invalid(&r, "participant_ids");
    let r = app
        .post(
            "/chats",
            &a.token,
            json!({"type": "group", "participant_ids": [b.id, 987654321]}),
        )
        .await;
    assert_invalid(&r, "participant_ids");
    assert!(
        r.body["detail"].as_str().unwrap().contains("987654321"),
        "{r:?}"
    );
    let r = app
        .post(
            "/chats",
            &a.token,
            json!({"type": "group", "title": "t".repeat(129), "participant_ids": []}),
        )
        .await;
    assert_invalid(&r, "title");
    let many: Vec<i64> = (1..=1000).collect();
    let r = app
        .post(
            "/chats",
            &a.token,
            json!({"type": "group", "participant_ids": many}),
        )
        .await;
    assert_invalid(&r, "participant_ids");
}

#[tokio::test]
async fn non_members_get_404_and_non_creators_get_403() {
    let app = TestApp::spawn().await;
    let (owner, member, stranger) = (
        app.user("o").await,
        app.user("m").await,
        app.user("s").await,
    );
    let chat = app.group(&owner, &[&member]).await;
    let path = format!("/chats/{chat}");
    assert_error(&app.get(&path, &stranger.token).await, 404, "not_found");
    assert_error(
        &app.patch(&path, &stranger.token, json!({"title": "x"}))
            .await,
        404,
        "not_found",
    );
    assert_error(&app.delete(&path, &stranger.token).await, 404, "not_found");
    assert_error(
        &app.get(&format!("{path}/messages"), &stranger.token).await,
        404,
        "not_found",
    );
    assert_error(
        &app.post(
            &format!("{path}/messages"),
            &stranger.token,
            json!({"text": "hi"}),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &app.get("/chats/424242", &owner.token).await,
        404,
        "not_found",
    );

    assert_error(
        &app.patch(&path, &member.token, json!({"title": "x"})).await,
        403,
        "forbidden",
    );
    assert_error(&app.delete(&path, &member.token).await, 403, "forbidden");
    assert_error(
        &app.post(
            &format!("{path}/members"),
            &member.token,
            json!({"user_ids": [stranger.id]}),
        )
        .await,
        403,
        "forbidden",
    );
    assert_error(
        &app.delete(&format!("{path}/members/{}", owner.id), &member.token)
            .await,
        403,
        "forbidden",
    );
}

#[tokio::test]
async fn patch_updates_title_and_activity_and_validates_nulls() {
    let app = TestApp::spawn().await;
    let (owner, member) = (app.user("o").await, app.user("m").await);
    let chat = app.group(&owner, &[&member]).await;
    let path = format!("/chats/{chat}");
    let r = app
        .patch(&path, &owner.token, json!({"title": "New"}))
        .await;
    assert_eq!(
        (r.status, r.body["title"].clone()),
        (200, json!("New")),
        "{r:?}"
    );
    let r = app.patch(&path, &owner.token, json!({"title": null})).await;
    assert!(r.body["title"].is_null(), "{r:?}");
    assert_invalid(
        &app.patch(&path, &owner.token, json!({"is_active": null}))
            .await,
        "is_active",
    );
    assert_invalid(
        &app.patch(&path, &owner.token, json!({"is_active": "no"}))
            .await,
        "is_active",
    );
    let r = app
        .patch(&path, &owner.token, json!({"is_active": false}))
        .await;
    assert_eq!(r.body["is_active"], false);
    let r = app
        .post(
            &format!("{path}/messages"),
            &member.token,
            json!({"text": "hi"}),
        )
        .await;
    assert_error(&r, 403, "chat_inactive");
}

#[tokio::test]
async fn members_join_leave_and_lose_access() {
    let app = TestApp::spawn().await;
    let (owner, a, b) = (
        app.user("o").await,
        app.user("a").await,
        app.user("b").await,
    );
    let chat = app.group(&owner, &[&a]).await;
    let r = app
        .post(
            &format!("/chats/{chat}/members"),
            &owner.token,
            json!({"user_ids": [b.id]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["participant_ids"].as_array().unwrap().len(), 3);
    assert_eq!(
        app.get(&format!("/chats/{chat}"), &b.token).await.status,
        200
    );
    // b leaves on their own; the owner removes a.
    assert_eq!(
        app.delete(&format!("/chats/{chat}/members/{}", b.id), &b.token)
            .await
            .status,
        204
    );
    assert_eq!(
        app.delete(&format!("/chats/{chat}/members/{}", a.id), &owner.token)
            .await
            .status,
        204
    );
    assert_error(
        &app.get(&format!("/chats/{chat}"), &a.token).await,
        404,
        "not_found",
    );
    assert_error(
        &app.get(&format!("/chats/{chat}/messages"), &b.token).await,
        404,
        "not_found",
    );
    let r = app.get(&format!("/chats/{chat}"), &owner.token).await;
    assert_eq!(r.body["participant_ids"], json!([owner.id]));
    let r = app
        .post(
            &format!("/chats/{chat}/members"),
            &owner.token,
            json!({"user_ids": [55555555]}),
        )
        .await;
    assert_invalid(&r, "user_ids");
}

#[tokio::test]
async fn delete_takes_the_messages_with_it() {
    let app = TestApp::spawn().await;
    let (owner, a) = (app.user("o").await, app.user("a").await);
    let chat = app.group(&owner, &[&a]).await;
    app.send(&a, chat, "hello").await;
    assert_eq!(
        app.delete(&format!("/chats/{chat}"), &owner.token)
            .await
            .status,
        204
    );
    assert_error(
        &app.get(&format!("/chats/{chat}"), &owner.token).await,
        404,
        "not_found",
    );
    assert_error(
        &app.get(&format!("/chats/{chat}/messages"), &a.token).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn chat_list_is_by_recent_activity_with_unread_counts_and_pages() {
    let app = TestApp::spawn().await;
    let (me, other) = (app.user("me").await, app.user("other").await);
    let first = app.group(&me, &[&other]).await;
    let second = app.group(&me, &[&other]).await;
    let third = app.group(&me, &[&other]).await;
    let m = app.send(&other, first, "bump").await;
    app.send(&other, first, "again").await;
    let r = app.get("/chats", &me.token).await;
    let ids: Vec<i64> = r.body["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![first, third, second], "{r:?}");
    assert_eq!(r.body["chats"][0]["unread_count"], 2);
    assert_eq!(r.body["chats"][0]["last_message"]["text"], "again");
    assert_eq!(r.body["has_more"], false);

    let r = app
        .post(
            &format!("/chats/{first}/read"),
            &me.token,
            json!({"message_id": m["id"]}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = app.get(&format!("/chats/{first}"), &me.token).await;
    assert_eq!(r.body["unread_count"], 1);
    assert_eq!(r.body["last_read_message_id"], m["id"]);

    let page1 = app.get("/chats?limit=2", &me.token).await;
    assert_eq!(page1.body["has_more"], true);
    let r = app
        .get(&format!("/chats?limit=2&before={third}"), &me.token)
        .await;
    let ids: Vec<i64> = r.body["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![second]);
    assert_eq!(r.body["has_more"], false);
}

/// A connection of the test's own to the server's database.
async fn database(app: &TestApp) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn strangers_never_queue_on_a_chats_lock_and_members_wait_a_bounded_time() {
    let app = TestApp::spawn().await;
    let (owner, member, stranger) = (
        app.user("o").await,
        app.user("m").await,
        app.user("s").await,
    );
    let chat = app.group(&owner, &[&member]).await;
    let message = app.send(&member, chat, "hi").await["id"].clone();
    // Hold the chat's row lock, as a long write (or a stuck send batch) would.
    let db = database(&app).await;
    db.batch_execute(&format!(
        "BEGIN; SELECT 1 FROM chats WHERE id = {chat} FOR UPDATE"
    ))
    .await
    .unwrap();

    // Every chat write of a stranger answers 404 without queueing for that lock: one that
    // queued would wait for the holder (no answer while it holds on), or answer 503 once its
    // bounded wait ran out.
    let chat_path = format!("/chats/{chat}");
    let message_path = format!("{chat_path}/messages/{message}");
    let writes = [
        (
            "POST",
            format!("{chat_path}/read"),
            Some(json!({"message_id": message})),
        ),
        ("PATCH", chat_path.clone(), Some(json!({"title": "mine"}))),
        ("DELETE", chat_path.clone(), None),
        (
            "POST",
            format!("{chat_path}/members"),
            Some(json!({"user_ids": [stranger.id]})),
        ),
        ("DELETE", format!("{chat_path}/members/{}", member.id), None),
        ("PATCH", message_path.clone(), Some(json!({"text": "mine"}))),
        ("DELETE", message_path.clone(), None),
    ];
    for (method, path, body) in &writes {
        let r = app
            .call(method, path, Some(&stranger.token), body.clone())
            .await;
        assert_error(&r, 404, "not_found");
    }

    // A member's write queues, for a bounded time, then says so instead of holding a pooled
    // connection any longer.
    let r = app
        .patch(&chat_path, &owner.token, json!({"title": "renamed"}))
        .await;
    assert_error(&r, 503, "server_busy");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1", "{r:?}");
    let r = app
        .post(
            &format!("{chat_path}/read"),
            &member.token,
            json!({"message_id": message}),
        )
        .await;
    assert_error(&r, 503, "server_busy");

    db.batch_execute("ROLLBACK").await.unwrap();
    let r = app
        .patch(&chat_path, &owner.token, json!({"title": "renamed"}))
        .await;
    assert_eq!((r.status, r.body["title"].clone()), (200, json!("renamed")));
}

#[tokio::test]
async fn a_private_create_racing_its_chats_deletion_always_answers_a_chat() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let mut pair = vec![a.id, b.id];
    pair.sort();
    // Both users keep creating their private chat, and whoever created the one they got
    // deletes it at once: creates keep finding a chat that is being deleted.
    const ROUNDS: usize = 150;
    let looper = |me: &TestUser, other: &TestUser| {
        let (me, other, pair) = (me.clone(), other.clone(), pair.clone());
        let app = &app;
        async move {
            for _ in 0..ROUNDS {
                let r = app
                    .post(
                        "/chats",
                        &me.token,
                        json!({"type": "private", "participant_ids": [other.id]}),
                    )
                    .await;
                assert!(r.status == 200 || r.status == 201, "{r:?}");
                assert_eq!(r.body["type"], "private", "{r:?}");
                assert_eq!(r.body["participant_ids"], json!(pair), "{r:?}");
                let id = r.body["id"].as_i64().expect("chat id");
                if r.body["creator_id"] == me.id {
                    let r = app.delete(&format!("/chats/{id}"), &me.token).await;
                    // 404: the creator's other loop deleted it first.
                    assert!(r.status == 204 || r.status == 404, "{r:?}");
                }
            }
        }
    };
    futures_util::future::join4(
        looper(&a, &b),
        looper(&a, &b),
        looper(&b, &a),
        looper(&b, &a),
    )
    .await;
    // Afterwards a create answers a live chat.
    let r = app
        .post(
            "/chats",
            &a.token,
            json!({"type": "private", "participant_ids": [b.id]}),
        )
        .await;
    let id = r.body["id"].as_i64().expect("chat id");
    assert_eq!(app.get(&format!("/chats/{id}"), &b.token).await.status, 200);
}

#[tokio::test]
async fn a_creator_who_leaves_hands_the_group_to_the_longest_standing_member() {
    let app = TestApp::spawn().await;
    // `late` registers first, so the lowest id is not the longest-standing member.
    let late = app.user("late").await;
    let (owner, early) = (app.user("o").await, app.user("e").await);
    let chat = app.group(&owner, &[&early]).await;
    let r = app
        .post(
            &format!("/chats/{chat}/members"),
            &owner.token,
            json!({"user_ids": [late.id]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    let r = app
        .delete(&format!("/chats/{chat}/members/{}", owner.id), &owner.token)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = app.get(&format!("/chats/{chat}"), &late.token).await;
    assert_eq!(r.body["creator_id"], early.id, "{r:?}");
    assert_eq!(r.body["participant_ids"], json!([late.id, early.id]));
    // The members were told, by the update_chat of the leave.
    let events = app.get("/events?since=0", &late.token).await;
    let last = events.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["type"], "update_chat", "{events:?}");
    assert_eq!(last["payload"]["creator_id"], early.id, "{events:?}");
    // The new creator manages the group; the old one no longer sees it.
    let r = app
        .patch(
            &format!("/chats/{chat}"),
            &early.token,
            json!({"title": "ours"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_error(
        &app.get(&format!("/chats/{chat}"), &owner.token).await,
        404,
        "not_found",
    );

    // The last member to leave takes the group with them.
    app.delete(&format!("/chats/{chat}/members/{}", late.id), &early.token)
        .await;
    let r = app
        .delete(&format!("/chats/{chat}/members/{}", early.id), &early.token)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let db = database(&app).await;
    let left: i64 = db
        .query_one("SELECT count(*) FROM chats WHERE id = $1", &[&chat])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let events = app.get("/events?since=0", &early.token).await;
    let last = events.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["type"].clone(), last["payload"]["id"].clone()),
        (json!("delete_chat"), json!(chat))
    );
}
