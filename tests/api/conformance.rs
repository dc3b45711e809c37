//! What the schemathesis run of `.ci/docs-checks` found, kept as regressions: requests that
//! `openapi.yaml` calls valid are accepted, and those it calls invalid are refused with a 4xx,
//! never a 500.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn ids_written_as_integral_json_numbers_are_accepted() {
    // JSON has one number type: 2.0 is the integer 2, as JSON Schema says.
    let app = TestApp::spawn().await;
    let owner = app.user("float").await;
    let other = app.user("float-peer").await;
    let r = app
        .post(
            "/chats",
            &owner.token,
            json!({"type": "group", "participant_ids": [other.id as f64]}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let chat = r.body["id"].as_i64().unwrap();
    let message = app.send(&owner, chat, "hi").await;
    let id = message["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/chats/{chat}/read"),
            &owner.token,
            json!({"message_id": id as f64}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = app
        .post(
            &format!("/chats/{chat}/members"),
            &owner.token,
            json!({"user_ids": [other.id as f64]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    let r = app
        .post(
            &format!("/chats/{chat}/read"),
            &owner.token,
            json!({"message_id": 1.5}),
        )
        .await;
    assert_invalid(&r, "message_id");
    let r = app
        .post(
            &format!("/chats/{chat}/read"),
            &owner.token,
            json!({"message_id": 1e19}),
        )
        .await;
    assert_invalid(&r, "message_id");
}

#[tokio::test]
async fn text_with_a_nul_character_is_422_not_500() {
    let app = TestApp::spawn().await;
    let user = app.user("nul").await;
    let chat = app.group(&user, &[]).await;
    let path = format!("/chats/{chat}/messages");
    let r = app
        .post(&path, &user.token, json!({"text": "a\u{0}b"}))
        .await;
    assert_invalid(&r, "text");
    let id = app.send(&user, chat, "fine").await["id"].as_i64().unwrap();
    let r = app
        .patch(
            &format!("{path}/{id}"),
            &user.token,
            json!({"text": "\u{0}"}),
        )
        .await;
    assert_invalid(&r, "text");
}

#[tokio::test]
async fn a_user_search_with_control_characters_is_422_not_500() {
    let app = TestApp::spawn().await;
    let user = app.user("search").await;
    for q in ["%00", "a%01b", "%7F"] {
        let r = app.get(&format!("/users?q={q}"), &user.token).await;
        assert_invalid(&r, "q");
    }
    let r = app
        .get(&format!("/users?q={}", "a".repeat(255)), &user.token)
        .await;
    assert_invalid(&r, "q");
}

#[tokio::test]
async fn login_refuses_a_grant_type_other_than_password() {
    let app = TestApp::spawn().await;
    let user = app.user("grant").await;
    let r = reply(
        app.http
            .post(app.url("/auth/login"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("username", user.email.as_str()),
                ("password", "correct horse"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_invalid(&r, "grant_type");
}

#[tokio::test]
async fn lengths_and_control_characters_are_judged_as_sent() {
    // openapi.yaml's maxLength and pattern see the raw string, so the server must too.
    let app = TestApp::spawn().await;
    let register = |email: String, name: String| {
        app.call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": email, "name": name, "password": "correct horse"})),
        )
    };
    let padded_name = format!("{}{}", " ".repeat(10), "n".repeat(60));
    assert_invalid(&register("a@example.com".into(), padded_name).await, "name");
    assert_invalid(
        &register("b@example.com".into(), "Ann\n".into()).await,
        "name",
    );
    let padded_email = format!("{}c@example.com", " ".repeat(250));
    assert_invalid(&register(padded_email, "C".into()).await, "email");
    assert_invalid(
        &register("d@example.com\t".into(), "D".into()).await,
        "email",
    );
    let r = register("  e@example.com ".into(), " Eve ".into()).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["email"], "e@example.com");
    assert_eq!(r.body["name"], "Eve");

    let user = app.user("title").await;
    let padded_title = format!("{}{}", " ".repeat(10), "t".repeat(120));
    let r = app
        .post(
            "/chats",
            &user.token,
            json!({"type": "group", "title": padded_title, "participant_ids": []}),
        )
        .await;
    assert_invalid(&r, "title");
    let r = app
        .post(
            "/chats",
            &user.token,
            json!({"type": "group", "title": "  ", "participant_ids": []}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["title"], serde_json::Value::Null);
}
