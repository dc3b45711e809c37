//! Register, login (JSON and OAuth2 form), me, refresh rotation, logout, and every way a
//! token can be wrong.

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn register_then_login_then_me() {
    let app = TestApp::spawn().await;
    let r = app
        .call("POST", "/auth/register", None, Some(json!({"email": "  Alice@Example.com ", "name": " Alice ", "password": "password123"})))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["email"], "Alice@Example.com");
    assert_eq!(r.body["name"], "Alice");
    assert!(r.body["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(r.body.get("password_hash").is_none());

    // Case-insensitive login.
    let r = app.login("alice@EXAMPLE.com", "password123").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 1800);
    let token = r.body["access_token"].as_str().unwrap().to_string();
    let me = app.get("/auth/me", &token).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], "Alice@Example.com");

    // The same token in the query string works too.
    let r = app
        .call("GET", &format!("/auth/me?token={token}"), None, None)
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn login_accepts_the_oauth2_password_form() {
    let app = TestApp::spawn().await;
    let user = app.user("form").await;
    let r = reply(
        app.http
            .post(app.url("/auth/login"))
            .form(&[
                ("grant_type", "password"),
                ("username", user.email.as_str()),
                ("password", "correct horse"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["access_token"].is_string());
    let r = reply(
        app.http
            .post(app.url("/auth/login"))
            .form(&[("username", user.email.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_invalid(&r, "password");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    let user = app.user("bob").await;
    let wrong = app.login(&user.email, "nope-nope").await;
    assert_error(&wrong, 401, "invalid_credentials");
    let unknown = app.login("ghost@example.com", "nope-nope").await;
    assert_error(&unknown, 401, "invalid_credentials");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
}

#[tokio::test]
async fn duplicate_email_is_409_even_in_another_case() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "dup@example.com", "name": "D", "password": "password123"});
    assert_eq!(
        app.call("POST", "/auth/register", None, Some(body))
            .await
            .status,
        201
    );
    let r = app
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "DUP@example.com", "name": "D", "password": "password123"})),
        )
        .await;
    assert_error(&r, 409, "email_taken");
}

#[tokio::test]
async fn concurrent_duplicate_registrations_give_one_201_and_409s() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "race@example.com", "name": "R", "password": "password123"});
    let calls = (0..6).map(|_| app.call("POST", "/auth/register", None, Some(body.clone())));
    let replies = futures_util::future::join_all(calls).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409], "{replies:?}");
}

#[tokio::test]
async fn register_validates_every_field() {
    let app = TestApp::spawn().await;
    let r = app
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "not-an-email", "name": "x", "password": "password123"})),
        )
        .await;
    assert_invalid(&r, "email");
    let r = app
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "a@b.c", "name": "   ", "password": "password123"})),
        )
        .await;
    assert_invalid(&r, "name");
    let r = app
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "a@b.c", "name": "x", "password": "short"})),
        )
        .await;
    assert_invalid(&r, "password");
    let r = app
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "a@b.c", "name": "x"})),
        )
        .await;
    assert_invalid(&r, "password");
    let r = app
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": 5, "name": "x", "password": "password123"})),
        )
        .await;
    assert_invalid(&r, "email");
    let r = app
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "a@b.c", "name": "x", "password": "password123", "admin": true})),
        )
        .await;
    assert_invalid(&r, "admin");
}

fn forge(secret: &[u8], sub: &str, exp: u64) -> String {
    let now = rtchat::auth::unix_now();
    encode(
        &Header::default(),
        &json!({"sub": sub, "iat": now, "exp": exp, "sid": 1}),
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_tokens_are_401_with_www_authenticate_in_header_and_query() {
    let app = TestApp::spawn().await;
    let user = app.user("tok").await;
    let now = rtchat::auth::unix_now();
    let wrong_secret = forge(
        b"not-the-server-secret-at-all",
        &user.id.to_string(),
        now + 600,
    );
    let expired = forge(
        b"test-secret-test-secret-test-secret",
        &user.id.to_string(),
        now - 120,
    );
    for token in [
        "",
        "garbage",
        "a.b.c",
        wrong_secret.as_str(),
        expired.as_str(),
    ] {
        let r = app.call("GET", "/auth/me", Some(token), None).await;
        assert_error(&r, 401, "unauthorized");
        assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
        let r = app
            .call("GET", &format!("/auth/me?token={token}"), None, None)
            .await;
        assert_error(&r, 401, "unauthorized");
    }
    let r = app.call("GET", "/chats", None, None).await;
    assert_error(&r, 401, "unauthorized");
    // The header wins over the query parameter.
    let r = app
        .call(
            "GET",
            &format!("/auth/me?token={}", user.token),
            Some("garbage"),
            None,
        )
        .await;
    assert_error(&r, 401, "unauthorized");
    let r = app
        .call("GET", "/auth/me?token=garbage", Some(&user.token), None)
        .await;
    assert_eq!(r.status, 200);
    // Within the 60 s leeway an expired token still works; beyond, it does not (above).
    let barely = forge(
        b"test-secret-test-secret-test-secret",
        &user.id.to_string(),
        now - 5,
    );
    assert_eq!(
        app.call("GET", "/auth/me", Some(&barely), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let app = TestApp::spawn().await;
    let user = app.user("ref").await;
    let first = app
        .call(
            "POST",
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": user.refresh_token})),
        )
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    let second_token = first.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second_token, user.refresh_token);
    // The old one again: theft suspected, the whole session dies.
    let reuse = app
        .call(
            "POST",
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": user.refresh_token})),
        )
        .await;
    assert_error(&reuse, 401, "unauthorized");
    let r = app
        .call(
            "POST",
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": second_token})),
        )
        .await;
    assert_error(&r, 401, "unauthorized");
    let r = app
        .call(
            "POST",
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": "x".repeat(10_000)})),
        )
        .await;
    assert_error(&r, 401, "unauthorized");
}

#[tokio::test]
async fn logout_kills_the_refresh_token() {
    let app = TestApp::spawn().await;
    let user = app.user("out").await;
    let r = app
        .call("POST", "/auth/logout", Some(&user.token), None)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = app
        .call(
            "POST",
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": user.refresh_token})),
        )
        .await;
    assert_error(&r, 401, "unauthorized");
    let r = app.call("POST", "/auth/logout", None, None).await;
    assert_error(&r, 401, "unauthorized");
}
