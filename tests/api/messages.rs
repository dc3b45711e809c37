//! Messages: send, idempotency by client_id, history pages, edit, delete, read cursor.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn same_client_id_gives_the_original_message_with_200() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let path = format!("/chats/{chat}/messages");
    let body = json!({"text": "once", "client_id": "5f8a5c1e-0000-4000-8000-000000000001"});
    let first = app.post(&path, &a.token, body.clone()).await;
    assert_eq!(first.status, 201, "{first:?}");
    let again = app.post(&path, &a.token, body.clone()).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body, first.body);
    // Another sender may use the same client_id.
    assert_eq!(app.post(&path, &b.token, body).await.status, 201);
}

#[tokio::test]
async fn concurrent_sends_with_one_client_id_create_exactly_one_message() {
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    let chat = app.group(&a, &[]).await;
    let path = format!("/chats/{chat}/messages");
    let body = json!({"text": "race", "client_id": "dup-1"});
    let replies =
        futures_util::future::join_all((0..8).map(|_| app.post(&path, &a.token, body.clone())))
            .await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let repeated = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!((created, repeated), (1, 7), "{replies:?}");
    let ids: Vec<&serde_json::Value> = replies.iter().map(|r| &r.body["id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    let history = app.get(&path, &a.token).await;
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn message_validation() {
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    let chat = app.group(&a, &[]).await;
    let path = format!("/chats/{chat}/messages");
    assert_invalid(
        &app.post(&path, &a.token, json!({"text": ""})).await,
        "text",
    );
    assert_invalid(
        &app.post(&path, &a.token, json!({"text": "   "})).await,
        "text",
    );
    assert_invalid(
        &app.post(&path, &a.token, json!({"text": "x".repeat(4097)}))
            .await,
        "text",
    );
    assert_eq!(
        app.post(&path, &a.token, json!({"text": "я".repeat(4096)}))
            .await
            .status,
        201
    );
    assert_invalid(
        &app.post(&path, &a.token, json!({"text": "hi", "client_id": ""}))
            .await,
        "client_id",
    );
    assert_invalid(
        &app.post(
            &path,
            &a.token,
            json!({"text": "hi", "client_id": "c".repeat(65)}),
        )
        .await,
        "client_id",
    );
    assert_invalid(
        &app.post(&path, &a.token, json!({"client_id": "x"})).await,
        "text",
    );
}

#[tokio::test]
async fn history_pages_before_and_after_in_ascending_order() {
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    let chat = app.group(&a, &[]).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            app.send(&a, chat, &format!("m{i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let page = |r: &Reply| -> Vec<i64> {
        r.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect()
    };
    let latest = app
        .get(&format!("/chats/{chat}/messages?limit=3"), &a.token)
        .await;
    assert_eq!(page(&latest), ids[4..7].to_vec());
    assert_eq!(latest.body["has_more"], true);
    let older = app
        .get(
            &format!("/chats/{chat}/messages?limit=3&before={}", ids[4]),
            &a.token,
        )
        .await;
    assert_eq!(page(&older), ids[1..4].to_vec());
    assert_eq!(older.body["has_more"], true);
    let oldest = app
        .get(
            &format!("/chats/{chat}/messages?limit=3&before={}", ids[1]),
            &a.token,
        )
        .await;
    assert_eq!(page(&oldest), ids[0..1].to_vec());
    assert_eq!(oldest.body["has_more"], false);
    let newer = app
        .get(
            &format!("/chats/{chat}/messages?limit=4&after={}", ids[2]),
            &a.token,
        )
        .await;
    assert_eq!(page(&newer), ids[3..7].to_vec());
    assert_eq!(newer.body["has_more"], false);
    let none = app
        .get(
            &format!("/chats/{chat}/messages?after={}", ids[6]),
            &a.token,
        )
        .await;
    assert_eq!(page(&none), Vec::<i64>::new());
    assert_eq!(none.body["has_more"], false);
}

#[tokio::test]
async fn edit_and_delete_follow_roles() {
    let app = TestApp::spawn().await;
    let (owner, a, b) = (
        app.user("o").await,
        app.user("a").await,
        app.user("b").await,
    );
    let chat = app.group(&owner, &[&a, &b]).await;
    let m = app.send(&a, chat, "draft").await;
    let path = format!("/chats/{chat}/messages/{}", m["id"]);
    assert_error(
        &app.patch(&path, &b.token, json!({"text": "hijack"})).await,
        403,
        "forbidden",
    );
    let r = app.patch(&path, &a.token, json!({"text": "final"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["text"], "final");
    assert!(r.body["edited_at"].as_str().unwrap().ends_with('Z'));
    assert_invalid(
        &app.patch(&path, &a.token, json!({"text": ""})).await,
        "text",
    );
    assert_error(&app.delete(&path, &b.token).await, 403, "forbidden");
    assert_eq!(app.delete(&path, &owner.token).await.status, 204);
    assert_error(&app.delete(&path, &a.token).await, 404, "not_found");
    assert_error(
        &app.patch(
            &format!("/chats/{chat}/messages/999999"),
            &a.token,
            json!({"text": "x"}),
        )
        .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn read_cursor_only_moves_forward_and_must_be_in_the_chat() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let other_chat = app.group(&a, &[]).await;
    let m1 = app.send(&a, chat, "1").await;
    let m2 = app.send(&a, chat, "2").await;
    let foreign = app.send(&a, other_chat, "x").await;
    let path = format!("/chats/{chat}/read");
    assert_eq!(
        app.post(&path, &b.token, json!({"message_id": m2["id"]}))
            .await
            .status,
        204
    );
    assert_eq!(
        app.post(&path, &b.token, json!({"message_id": m1["id"]}))
            .await
            .status,
        204
    );
    assert_eq!(
        app.get(&format!("/chats/{chat}"), &b.token).await.body["last_read_message_id"],
        m2["id"]
    );
    assert_invalid(
        &app.post(&path, &b.token, json!({"message_id": foreign["id"]}))
            .await,
        "message_id",
    );
    assert_invalid(
        &app.post(&path, &b.token, json!({"message_id": "x"})).await,
        "message_id",
    );
}

#[tokio::test]
async fn users_search_by_prefix() {
    let app = TestApp::spawn().await;
    let zed = app.user("zed").await;
    app.user("amy").await;
    let r = app.get("/users?q=ZE", &zed.token).await;
    let users = r.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "{r:?}");
    assert_eq!(users[0]["id"], zed.id);
    assert_eq!(
        app.get("/users?q=%25", &zed.token).await.body["users"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        app.get(&format!("/users/{}", zed.id), &zed.token)
            .await
            .body["email"],
        zed.email.as_str()
    );
    assert_error(&app.get("/users/99999", &zed.token).await, 404, "not_found");
}

#[tokio::test]
async fn users_are_found_by_name_prefix_or_whole_email_never_by_email_prefix() {
    let app = TestApp::spawn().await;
    let me = app.user("me").await;
    // Emails start with the name: "Dana_Q7@example.com" and so on.
    let dana = app.user("Dana_Q").await;
    let danax = app.user("DanaxQ").await;
    let ids = |q: &str| {
        let app = &app;
        let token = me.token.clone();
        let q = q.to_string();
        async move {
            let r = app
                .http
                .get(app.url("/users"))
                .query(&[("q", q.as_str())])
                .bearer_auth(&token)
                .send()
                .await
                .expect("request sent");
            let r = reply(r).await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_i64().unwrap())
                .collect::<Vec<i64>>()
        }
    };
    // A name prefix, case-insensitively; `_` and `%` are literal.
    assert_eq!(ids("dana").await, vec![dana.id, danax.id]);
    assert_eq!(ids("DANA_").await, vec![dana.id]);
    assert_eq!(ids("dana%").await, Vec::<i64>::new());
    // A whole email, case-insensitively (and trimmed)...
    assert_eq!(
        ids(&format!(" {} ", dana.email.to_uppercase())).await,
        vec![dana.id]
    );
    // ...but no prefix of one that is not also a name prefix.
    let local_part = dana.email.split('@').next().unwrap();
    assert_eq!(ids(local_part).await, Vec::<i64>::new());
    assert_eq!(
        ids(&dana.email[..dana.email.len() - 1]).await,
        Vec::<i64>::new()
    );
    assert_eq!(ids("@example.com").await, Vec::<i64>::new());
}
