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

#[tokio::test]
async fn chat_writes_are_rate_limited_per_user_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.rate_writes_per_sec = 1.0;
        c.rate_writes_burst = 3.0;
    })
    .await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let chat = app.group(&a, &[&b]).await; // a's first write
    let mut sent = Vec::new();
    for text in ["one", "two", "three", "four"] {
        sent.push(app.send(&b, chat, text).await["id"].clone());
    }
    let delete = |id: &serde_json::Value| format!("/chats/{chat}/messages/{id}");
    for id in &sent[0..2] {
        let r = app.delete(&delete(id), &a.token).await;
        assert_eq!(r.status, 204, "{r:?}");
    }
    let r = app.delete(&delete(&sent[2]), &a.token).await;
    assert_error(&r, 429, "rate_limited");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    // Every kind of chat write draws on the same budget.
    let r = app
        .patch(&format!("/chats/{chat}"), &a.token, json!({"title": "x"}))
        .await;
    assert_error(&r, 429, "rate_limited");
    // Marking read is not one: it counts as a message, as sends do (v2).
    let r = app
        .post(
            &format!("/chats/{chat}/read"),
            &a.token,
            json!({"message_id": sent[3]}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    // Per user: b is not limited by a.
    let r = app.delete(&delete(&sent[3]), &b.token).await;
    assert_eq!(r.status, 204, "{r:?}");
}

#[tokio::test]
async fn changes_of_one_chat_are_limited_per_chat_and_strangers_cannot_spend_them() {
    let app = TestApp::spawn_with(|c| {
        c.rate_chat_changes_per_min = 1.0;
        c.rate_chat_changes_burst = 2.0;
    })
    .await;
    let (owner, member, stranger) = (
        app.user("o").await,
        app.user("m").await,
        app.user("s").await,
    );
    let chat = app.group(&owner, &[&member]).await;
    let other = app.group(&owner, &[&member]).await;
    let path = format!("/chats/{chat}");
    // A stranger's and a member's refused attempts spend nothing of the chat's budget.
    for _ in 0..3 {
        let r = app
            .patch(&path, &stranger.token, json!({"title": "x"}))
            .await;
        assert_error(&r, 404, "not_found");
        let r = app.patch(&path, &member.token, json!({"title": "x"})).await;
        assert_error(&r, 403, "forbidden");
    }
    for title in ["one", "two"] {
        let r = app
            .patch(&path, &owner.token, json!({"title": title}))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = app
        .post(
            &format!("{path}/members"),
            &owner.token,
            json!({"user_ids": [stranger.id]}),
        )
        .await;
    assert_error(&r, 429, "rate_limited");
    assert!(r.headers.contains_key("retry-after"), "{r:?}");
    // Per chat: the owner's other chat changes as usual; and leaving is always possible.
    let r = app
        .patch(
            &format!("/chats/{other}"),
            &owner.token,
            json!({"title": "x"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app
        .delete(&format!("{path}/members/{}", member.id), &member.token)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
}

/// The nearest-rank 99th percentile.
fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99).div_ceil(100) - 1]
}

/// A bystander's `GET /auth/me` and message sends, one after another; their latencies.
async fn bystander_latencies(app: &TestApp, user: &TestUser, chat: i64, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(2 * n);
    for i in 0..n {
        let started = std::time::Instant::now();
        assert_eq!(app.get("/auth/me", &user.token).await.status, 200);
        samples.push(started.elapsed());
        let started = std::time::Instant::now();
        app.send(user, chat, &format!("m{i}")).await;
        samples.push(started.elapsed());
    }
    samples
}

// Multi-threaded: the server, the flood and the bystander must not take turns on one thread,
// or the bystander would measure the test's own scheduling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_chat_updates_by_one_user_does_not_slow_a_bystander() {
    // The write limits at their defaults (the test configuration raises every limit).
    let defaults = rtchat::config::Config::from_lookup(|_| None).unwrap();
    let app = TestApp::spawn_with(|c| {
        c.rate_writes_per_sec = defaults.rate_writes_per_sec;
        c.rate_writes_burst = defaults.rate_writes_burst;
        c.rate_chat_changes_per_min = defaults.rate_chat_changes_per_min;
        c.rate_chat_changes_burst = defaults.rate_chat_changes_burst;
    })
    .await;
    let (attacker, bystander, friend) = (
        app.user("attacker").await,
        app.user("bystander").await,
        app.user("friend").await,
    );
    let quiet_chat = app.group(&bystander, &[&friend]).await;
    // 998 members, inserted directly: registering them would hash 998 passwords.
    let (db, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let members: Vec<i64> = db
        .query(
            "INSERT INTO users (email, name, password_hash)
             SELECT 'member' || g || '@example.com', 'member' || g, 'x'
             FROM generate_series(1, 998) g RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let big = app
        .post(
            "/chats",
            &attacker.token,
            json!({"type": "group", "title": "big", "participant_ids": members}),
        )
        .await;
    assert_eq!(big.status, 201, "{big:?}");
    let big = big.body["id"].as_i64().unwrap();

    bystander_latencies(&app, &bystander, quiet_chat, 20).await; // warm-up

    // The flood: rounds of 32 concurrent renames of the 999-member group, two rounds a second.
    // Before the fix one round took seconds, so the pace changed nothing then; now it keeps
    // the measurement about the writes (locks, pooled connections, log rows) rather than about
    // answering requests at all: at ten rounds a second, a flood of as many `GET /auth/me`
    // raised this bystander's p99 threefold too, in a debug build on a shared 2-core machine.
    // The first round spends what the chat's burst allows (a few renames, each 999 log rows);
    // the bystander then measures the flood as it goes on, in blocks, alternately with and
    // without it, so that both see the same background load of the machine.
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    const BLOCKS: usize = 4;
    const PER_BLOCK: usize = 40;
    let (flooding, in_round, done) = (
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
    );
    let big_path = format!("/chats/{big}");
    let round = |n: usize| {
        let renames = (0..32).map(|i| {
            app.patch(
                &big_path,
                &attacker.token,
                json!({"title": format!("flood {n}.{i}")}),
            )
        });
        futures_util::future::join_all(renames)
    };
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let started = std::time::Instant::now();
    for r in round(0).await {
        *statuses.entry(r.status).or_default() += 1;
    }
    eprintln!("first round: {statuses:?} in {:?}", started.elapsed());
    let flood = async {
        let mut round_number = 1;
        while !done.load(SeqCst) {
            // Announced before looking, so a quiet block never starts under a round.
            in_round.store(true, SeqCst);
            if !flooding.load(SeqCst) {
                in_round.store(false, SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            for r in round(round_number).await {
                *statuses.entry(r.status).or_default() += 1;
            }
            round_number += 1;
            in_round.store(false, SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        statuses
    };
    let measured = async {
        let (mut unloaded, mut loaded) = (Vec::new(), Vec::new());
        for block in 0..2 * BLOCKS {
            let flood_now = block % 2 == 1;
            flooding.store(flood_now, SeqCst);
            // A quiet block starts once the flood's last round has ended.
            while !flood_now && in_round.load(SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let samples = bystander_latencies(&app, &bystander, quiet_chat, PER_BLOCK).await;
            if flood_now {
                &mut loaded
            } else {
                &mut unloaded
            }
            .extend(samples);
        }
        done.store(true, SeqCst);
        (p99(unloaded), p99(loaded))
    };
    let (statuses, (unloaded, loaded)) = tokio::join!(flood, measured);
    eprintln!("bystander p99: {unloaded:?} unloaded, {loaded:?} under the flood {statuses:?}");

    // The structural cause first: the flood was refused (429), or at worst told to come back
    // (503), not queued; the renames that went through are the chat's burst and its refill.
    let renamed = statuses.get(&200).copied().unwrap_or(0);
    let refused = statuses.get(&429).copied().unwrap_or(0);
    let busy = statuses.get(&503).copied().unwrap_or(0);
    assert!(refused > 0, "{statuses:?}");
    assert!(
        renamed <= defaults.rate_chat_changes_burst as usize + 5,
        "{statuses:?}"
    );
    assert_eq!(
        renamed + refused + busy,
        statuses.values().sum::<usize>(),
        "{statuses:?}"
    );
    // The comparison the issue asks for, in the same run; a floor of 5 ms keeps a sub-ms
    // unloaded p99 from turning scheduler noise into a failure (the flood used to cost the
    // bystander seconds).
    let bound = 3 * unloaded.max(Duration::from_millis(5));
    assert!(
        loaded <= bound,
        "bystander p99 {loaded:?} under the flood, {unloaded:?} without; flood {statuses:?}"
    );
}
