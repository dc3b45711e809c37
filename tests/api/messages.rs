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

/// The `message_mentions` rows of a message, `(user_id, chat_id)` ascending: what
/// `unread_mentions` counts.
async fn mention_rows(app: &TestApp, message: i64) -> Vec<(i64, i64)> {
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
        .query(
            "SELECT user_id, chat_id FROM message_mentions WHERE message_id = $1 ORDER BY user_id",
            &[&message],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_reply_names_a_message_of_the_same_chat_that_exists() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let other = app.group(&a, &[]).await;
    let path = format!("/chats/{chat}/messages");
    let original = app.send(&a, chat, "question").await["id"].as_i64().unwrap();
    let foreign = app.send(&a, other, "elsewhere").await["id"]
        .as_i64()
        .unwrap();
    let gone = app.send(&a, chat, "gone").await["id"].as_i64().unwrap();
    assert_eq!(
        app.delete(&format!("{path}/{gone}"), &a.token).await.status,
        204
    );

    let r = app
        .post(
            &path,
            &b.token,
            json!({"text": "answer", "reply_to": original}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["reply_to"], original);
    let reply = r.body["id"].as_i64().unwrap();
    let r = app
        .post(
            &path,
            &b.token,
            json!({"text": "no reply", "reply_to": null}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.body["reply_to"].is_null());

    for bad in [
        json!(foreign),
        json!(gone),
        json!(999_999),
        json!(0),
        json!(-1),
    ] {
        let r = app
            .post(&path, &b.token, json!({"text": "x", "reply_to": bad}))
            .await;
        assert_invalid(&r, "reply_to");
    }
    for wrong in [json!("x"), json!(1.5), json!([original]), json!(true)] {
        let r = app
            .post(&path, &b.token, json!({"text": "x", "reply_to": wrong}))
            .await;
        assert_invalid(&r, "reply_to");
    }

    // The reply keeps naming its original after that is deleted.
    assert_eq!(
        app.delete(&format!("{path}/{original}"), &a.token)
            .await
            .status,
        204
    );
    let page = app.get(&path, &a.token).await;
    let kept = page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == reply)
        .unwrap()
        .clone();
    assert_eq!(kept["reply_to"], original);
}

#[tokio::test]
async fn mentions_are_members_stored_ascending_without_duplicates() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (
        app.user("a").await,
        app.user("b").await,
        app.user("c").await,
    );
    let stranger = app.user("s").await;
    let chat = app.group(&a, &[&b, &c]).await;
    let path = format!("/chats/{chat}/messages");

    let r = app
        .post(
            &path,
            &a.token,
            json!({"text": "hi all", "mentions": [c.id, a.id, b.id, c.id, a.id]}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let mut expected = vec![a.id, b.id, c.id];
    expected.sort();
    assert_eq!(r.body["mentions"], json!(expected));
    let id = r.body["id"].as_i64().unwrap();
    let page = app.get(&path, &b.token).await;
    assert_eq!(page.body["messages"][0]["mentions"], json!(expected));
    // One row per mention of someone else: the sender's self-mention has none.
    let mut others = vec![(b.id, chat), (c.id, chat)];
    others.sort();
    assert_eq!(mention_rows(&app, id).await, others);

    let plain = app.send(&a, chat, "nobody").await;
    assert_eq!(plain["mentions"], json!([]));

    // Not members: 422 naming them, nothing sent.
    let r = app
        .post(
            &path,
            &a.token,
            json!({"text": "x", "mentions": [b.id, stranger.id, 999_999]}),
        )
        .await;
    assert_invalid(&r, "mentions");
    let message = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&stranger.id.to_string()) && message.contains("999999"),
        "{r:?}"
    );
    assert!(!message.contains(&format!(" {},", b.id)), "{r:?}");
    // More than 50 as sent (duplicates count), wrong types.
    let r = app
        .post(
            &path,
            &a.token,
            json!({"text": "x", "mentions": vec![b.id; 51]}),
        )
        .await;
    assert_invalid(&r, "mentions");
    let fifty = app
        .post(
            &path,
            &a.token,
            json!({"text": "x", "mentions": vec![b.id; 50]}),
        )
        .await;
    assert_eq!(fifty.status, 201, "{fifty:?}");
    assert_eq!(fifty.body["mentions"], json!([b.id]));
    for wrong in [
        json!("1"),
        json!([1.5]),
        json!([null]),
        json!(null),
        json!([b.id.to_string()]),
    ] {
        let r = app
            .post(&path, &a.token, json!({"text": "x", "mentions": wrong}))
            .await;
        assert_invalid(&r, "mentions");
    }
    let history = app.get(&format!("{path}?limit=100"), &a.token).await;
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_repeated_client_id_answers_the_original_with_its_v2_fields() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    let path = format!("/chats/{chat}/messages");
    let first = app.send(&a, chat, "first").await["id"].clone();
    let body = json!({"text": "re", "client_id": "v2-1", "reply_to": first, "mentions": [b.id]});
    let created = app.post(&path, &a.token, body.clone()).await;
    assert_eq!(created.status, 201, "{created:?}");
    let again = app.post(&path, &a.token, body).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body, created.body);
}

#[tokio::test]
async fn an_edit_changes_the_text_the_mentions_or_both_never_neither() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (
        app.user("a").await,
        app.user("b").await,
        app.user("c").await,
    );
    let stranger = app.user("s").await;
    let chat = app.group(&a, &[&b, &c]).await;
    let r = app
        .post(
            &format!("/chats/{chat}/messages"),
            &a.token,
            json!({"text": "hey b", "mentions": [b.id]}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    let path = format!("/chats/{chat}/messages/{id}");
    assert_eq!(mention_rows(&app, id).await, vec![(b.id, chat)]);

    // Mentions only: the text stays.
    let r = app
        .patch(&path, &a.token, json!({"mentions": [c.id, a.id, c.id]}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["text"], "hey b");
    let mut expected = vec![a.id, c.id];
    expected.sort();
    assert_eq!(r.body["mentions"], json!(expected));
    assert_eq!(mention_rows(&app, id).await, vec![(c.id, chat)]);
    // The update_message event carries them.
    let events = app.get("/events?since=0", &c.token).await;
    let update = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["type"] == "update_message")
        .unwrap()
        .clone();
    assert_eq!(update["payload"], r.body);

    // Text only: the mentions stay.
    let r = app.patch(&path, &a.token, json!({"text": "hey c"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.body["text"].clone(), r.body["mentions"].clone()),
        (json!("hey c"), json!(expected))
    );
    assert_eq!(mention_rows(&app, id).await, vec![(c.id, chat)]);

    // Neither, a non-member, too many, wrong types: 422, nothing changed.
    assert_invalid(&app.patch(&path, &a.token, json!({})).await, "body");
    assert_invalid(
        &app.patch(&path, &a.token, json!({"mentions": [stranger.id]}))
            .await,
        "mentions",
    );
    assert_invalid(
        &app.patch(&path, &a.token, json!({"mentions": vec![b.id; 51]}))
            .await,
        "mentions",
    );
    assert_invalid(
        &app.patch(&path, &a.token, json!({"mentions": null})).await,
        "mentions",
    );
    assert_invalid(
        &app.patch(&path, &a.token, json!({"text": null})).await,
        "text",
    );
    // Both, and clearing the mentions.
    let r = app
        .patch(&path, &a.token, json!({"text": "nobody", "mentions": []}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.body["text"].clone(), r.body["mentions"].clone()),
        (json!("nobody"), json!([]))
    );
    assert_eq!(mention_rows(&app, id).await, vec![]);
}
