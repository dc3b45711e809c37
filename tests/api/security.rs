//! Sessions and abuse: revocation everywhere at once, rate limits (across processes for
//! login), socket limits, CORS and forwarded client addresses.

use std::time::Duration;

use serde_json::json;

use crate::support::*;
use crate::wsclient::*;

fn no_sweep(c: &mut rtchat::config::Config) {
    c.sweep_interval = Duration::from_secs(3600);
}

#[tokio::test]
async fn logout_kills_tokens_and_closes_sockets_on_every_process() {
    let a = TestApp::spawn_with(no_sweep).await;
    let b = TestApp::spawn_on(&a.database_url, no_sweep).await;
    let user = a.user("leaver").await;
    // A second login session of the same user survives a plain logout.
    let other = a.login(&user.email, "correct horse").await;
    let other_token = other.body["access_token"].as_str().unwrap().to_string();
    let mut on_b = WsClient::connect(&b, &user.token, None).await;
    let mut other_on_b = WsClient::connect(&b, &other_token, None).await;

    assert_eq!(
        a.call("POST", "/auth/logout", Some(&user.token), None)
            .await
            .status,
        204
    );
    assert_eq!(
        code(&on_b.ended().await),
        Some(4001),
        "the socket on the other process closes"
    );
    assert_error(&a.get("/auth/me", &user.token).await, 401, "unauthorized");
    // On the other process the token dies as soon as the hint arrives (no sweep here).
    let mut dead_on_b = false;
    for _ in 0..100 {
        if b.get("/auth/me", &user.token).await.status == 401 {
            dead_on_b = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dead_on_b,
        "the revoked token still works on the other process"
    );
    assert_eq!(b.get("/auth/me", &other_token).await.status, 200);
    other_on_b.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(other_on_b.next().await["type"], "pong");

    // logout {"all": true} ends the other session too.
    assert_eq!(
        b.call(
            "POST",
            "/auth/logout",
            Some(&other_token),
            Some(json!({"all": true}))
        )
        .await
        .status,
        204
    );
    assert_eq!(code(&other_on_b.ended().await), Some(4001));
    // The other process hears of it through the hint: its handshake is refused soon after.
    let mut refused = false;
    for _ in 0..100 {
        let url = a.ws_url(&format!("/ws/notif?token={other_token}"));
        if let Err(tokio_tungstenite::tungstenite::Error::Http(r)) =
            tokio_tungstenite::connect_async(url).await
        {
            assert_eq!(r.status(), 401);
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "the revoked token still opens sockets on the other process"
    );
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_session_and_its_access_tokens() {
    let app = TestApp::spawn().await;
    let user = app.user("victim").await;
    let mut socket = WsClient::connect(&app, &user.token, None).await;
    let rotated = app
        .call(
            "POST",
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": user.refresh_token})),
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new_access = rotated.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.get("/auth/me", &new_access).await.status, 200);
    // The thief replays the old refresh token: the whole session ends.
    let replay = app
        .call(
            "POST",
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": user.refresh_token})),
        )
        .await;
    assert_error(&replay, 401, "unauthorized");
    assert_error(&app.get("/auth/me", &new_access).await, 401, "unauthorized");
    assert_error(&app.get("/auth/me", &user.token).await, 401, "unauthorized");
    assert_eq!(code(&socket.ended().await), Some(4001));
}

#[tokio::test]
async fn brute_force_login_through_two_processes_is_limited_as_one() {
    let limit = |c: &mut rtchat::config::Config| c.rate_login_per_email = 4;
    let a = TestApp::spawn_with(limit).await;
    let b = TestApp::spawn_on(&a.database_url, limit).await;
    let user = a.user("target").await; // its own login is no failure: it does not count
    let guess = json!({"email": user.email, "password": "wrong guess"});
    for (i, app) in [&a, &b, &a, &b].iter().enumerate() {
        let r = app
            .call("POST", "/auth/login", None, Some(guess.clone()))
            .await;
        assert_error(&r, 401, "invalid_credentials");
        let _ = i;
    }
    let r = b
        .call("POST", "/auth/login", None, Some(guess.clone()))
        .await;
    assert_error(&r, 429, "rate_limited");
    let retry: u64 = r
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    // Even the right password waits now; another email is not affected.
    let r = a.login(&user.email, "correct horse").await;
    assert_error(&r, 429, "rate_limited");
    let other = a.user("bystander").await;
    assert!(!other.token.is_empty());
}

#[tokio::test]
async fn message_sends_are_rate_limited_per_user_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.rate_messages_per_sec = 1.0;
        c.rate_messages_burst = 3.0;
    })
    .await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await;
    for i in 0..3 {
        app.send(&a, chat, &format!("m{i}")).await;
    }
    let r = app
        .post(
            &format!("/chats/{chat}/messages"),
            &a.token,
            json!({"text": "one too many"}),
        )
        .await;
    assert_error(&r, 429, "rate_limited");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    // Per user: b is not limited by a.
    app.send(&b, chat, "fine").await;
}

#[tokio::test]
async fn registration_is_limited_per_address_and_forwarded_addresses_count_only_from_trusted_proxies(
) {
    let app = TestApp::spawn_with(|c| {
        c.rate_register_per_addr = 2.0;
        c.trusted_proxies = vec![("127.0.0.1".parse().unwrap(), 32)];
    })
    .await;
    let register = |n: u32, forwarded: &'static str| {
        let req = app
            .http
            .post(app.url("/auth/register"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"email": format!("r{n}@example.com"), "name": "r", "password": "password123"}));
        async move { reply(req.send().await.unwrap()).await }
    };
    assert_eq!(register(1, "203.0.113.7").await.status, 201);
    assert_eq!(register(2, "203.0.113.7").await.status, 201);
    assert_error(&register(3, "203.0.113.7").await, 429, "rate_limited");
    // Another client behind the same proxy has its own budget.
    assert_eq!(register(4, "198.51.100.1, 127.0.0.1").await.status, 201);

    // Without trust, the header is ignored: every request counts for the peer itself.
    let untrusting = TestApp::spawn_with(|c| c.rate_register_per_addr = 1.0).await;
    let body = |n: u32| json!({"email": format!("u{n}@example.com"), "name": "u", "password": "password123"});
    let first = untrusting
        .http
        .post(untrusting.url("/auth/register"))
        .header("x-forwarded-for", "203.0.113.1")
        .json(&body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let second = untrusting
        .http
        .post(untrusting.url("/auth/register"))
        .header("x-forwarded-for", "203.0.113.2")
        .json(&body(2))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429);
}

#[tokio::test]
async fn sockets_per_user_are_limited_with_429() {
    let app = TestApp::spawn_with(|c| c.max_sockets_per_user = 2).await;
    let user = app.user("many").await;
    let _one = WsClient::connect(&app, &user.token, None).await;
    let _two = WsClient::connect(&app, &user.token, None).await;
    let err =
        tokio_tungstenite::connect_async(app.ws_url(&format!("/ws/notif?token={}", user.token)))
            .await
            .unwrap_err();
    assert!(matches!(err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 429));
    drop(_one);
    // Once one closes, a new one is accepted.
    let mut ok = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(app.ws_url(&format!("/ws/notif?token={}", user.token)))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok);
}

#[tokio::test]
async fn typing_floods_get_rate_limited_error_frames() {
    let app = TestApp::spawn_with(|c| c.rate_typing_per_sec = 1.0).await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let mut chats = Vec::new();
    for _ in 0..7 {
        chats.push(app.group(&a, &[&b]).await);
    }
    let mut sa = WsClient::connect(&app, &a.token, None).await;
    let mut limited = false;
    for chat in chats {
        sa.send_text(&format!(
            r#"{{"type":"typing","payload":{{"chat_id":{chat}}}}}"#
        ))
        .await;
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(200), sa.next()).await {
            if frame["type"] == "error" && frame["payload"]["code"] == "rate_limited" {
                limited = true;
                break;
            }
        }
    }
    assert!(limited, "typing in 7 chats at once was never limited");
}

#[tokio::test]
async fn cors_preflight_and_narrowed_origins() {
    let open = TestApp::spawn().await;
    let r = open
        .http
        .request(reqwest::Method::OPTIONS, open.url("/chats"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let r = open
        .http
        .get(open.url("/healthz"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");

    let narrow =
        TestApp::spawn_with(|c| c.cors_origins = Some(vec!["https://good.example".into()])).await;
    let preflight = |origin: &'static str| {
        narrow
            .http
            .request(reqwest::Method::OPTIONS, narrow.url("/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let good = preflight("https://good.example").await.unwrap();
    assert_eq!(
        good.headers()["access-control-allow-origin"],
        "https://good.example"
    );
    let bad = preflight("https://evil.example").await.unwrap();
    assert!(bad.headers().get("access-control-allow-origin").is_none());
    let r = narrow
        .http
        .get(narrow.url("/nope"))
        .header("origin", "https://good.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn registering_one_email_again_and_again_is_limited() {
    let app = TestApp::spawn_with(|c| c.rate_register_per_email = 5.0).await;
    let body = json!({"email": "probe@example.com", "name": "p", "password": "password123"});
    assert_eq!(
        app.call("POST", "/auth/register", None, Some(body.clone()))
            .await
            .status,
        201
    );
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            app.call("POST", "/auth/register", None, Some(body.clone()))
                .await
                .status,
        );
    }
    assert_eq!(
        statuses,
        vec![409, 409, 409, 409, 429, 429],
        "five attempts an hour per email"
    );
}

#[tokio::test]
async fn a_process_full_of_sockets_refuses_more_with_503() {
    let app = TestApp::spawn_with(|c| c.max_sockets = 2).await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let _one = WsClient::connect(&app, &a.token, None).await;
    let _two = WsClient::connect(&app, &b.token, None).await;
    let err = tokio_tungstenite::connect_async(app.ws_url(&format!("/ws/notif?token={}", b.token)))
        .await
        .unwrap_err();
    assert!(matches!(err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 503));
}
