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
