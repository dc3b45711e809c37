//! The error envelope at the edges: unknown paths, wrong methods, huge and malformed bodies,
//! bad query parameters and ids.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let user = app.user("e").await;
    let r = app.get("/nope", &user.token).await;
    assert_error(&r, 404, "not_found");
    let r = app.call("PUT", "/chats", Some(&user.token), None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "GET, POST");
    let r = app.call("POST", "/auth/me", Some(&user.token), None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "GET");
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = TestApp::spawn().await;
    let user = app.user("big").await;
    let chat = app.group(&user, &[]).await;
    let huge = json!({ "text": "x".repeat(70 * 1024) });
    let r = app
        .post(&format!("/chats/{chat}/messages"), &user.token, huge)
        .await;
    assert_error(&r, 413, "payload_too_large");
    let r = app
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "a@b.c", "name": "n", "password": "y".repeat(100_000)})),
        )
        .await;
    assert_error(&r, 413, "payload_too_large");
}

#[tokio::test]
async fn malformed_json_is_400_and_wrong_types_are_422() {
    let app = TestApp::spawn().await;
    let user = app.user("json").await;
    let chat = app.group(&user, &[]).await;
    let path = format!("/chats/{chat}/messages");
    for raw in [
        "{",
        "not json",
        "{\"text\": }",
        "",
        "[1,2",
        "{\"text\":\"a\"} trailing",
    ] {
        let r = reply(
            app.http
                .post(app.url(&path))
                .bearer_auth(&user.token)
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(&r, 400, "invalid_json");
    }
    let r = app.post(&path, &user.token, json!({"text": 42})).await;
    assert_invalid(&r, "text");
    let r = app.post(&path, &user.token, json!([1, 2])).await;
    assert_error(&r, 422, "validation_error");
    let r = app
        .post(
            "/chats",
            &user.token,
            json!({"type": "group", "participant_ids": [99999999999999999999u128 as f64]}),
        )
        .await;
    assert_invalid(&r, "participant_ids");
    let r = app
        .post(
            "/chats",
            &user.token,
            json!({"type": "channel", "participant_ids": []}),
        )
        .await;
    assert_invalid(&r, "type");
    let r = reply(
        app.http
            .post(app.url(&path))
            .bearer_auth(&user.token)
            .header("content-type", "text/plain")
            .body("{\"text\":\"hi\"}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 415, "unsupported_media_type");
}

#[tokio::test]
async fn bad_query_parameters_and_path_ids_are_422_never_clamped() {
    let app = TestApp::spawn().await;
    let user = app.user("q").await;
    let chat = app.group(&user, &[]).await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "before=-5",
        "before=x",
        "after=1.5",
        "before=1&after=2",
    ] {
        let r = app
            .get(&format!("/chats/{chat}/messages?{query}"), &user.token)
            .await;
        assert_eq!(r.status, 422, "{query}: {r:?}");
    }
    assert_invalid(&app.get("/chats?limit=1000", &user.token).await, "limit");
    assert_invalid(&app.get("/users?limit=0", &user.token).await, "limit");
    assert_invalid(&app.get("/events?since=-1", &user.token).await, "since");
    assert_invalid(&app.get("/chats/abc", &user.token).await, "chat_id");
    assert_invalid(
        &app.get("/chats/99999999999999999999999", &user.token).await,
        "chat_id",
    );
    assert_invalid(&app.get("/chats/0", &user.token).await, "chat_id");
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let r = app.call("GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200);
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("rtchat_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/readyz\""), "{text}");
    assert!(text.contains("rtchat_db_pool_connections"));
}
