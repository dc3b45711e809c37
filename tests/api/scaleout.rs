//! Two server processes on one database: events committed through one reach the sockets of
//! the other live, through LISTEN/NOTIFY, with the same seq guarantees.

use std::time::Duration;

use serde_json::json;

use crate::delivery::{check_delivery, Load};
use crate::support::*;
use crate::wsclient::{code, WsClient};

/// Sweeps so rare that only NOTIFY can deliver within a test's waits.
fn no_sweep(c: &mut rtchat::config::Config) {
    c.sweep_interval = Duration::from_secs(3600);
}

#[tokio::test]
async fn an_event_through_one_process_reaches_a_socket_on_the_other_live() {
    let a = TestApp::spawn_with(no_sweep).await;
    let b = TestApp::spawn_on(&a.database_url, no_sweep).await;
    let (alice, bob) = (a.user("alice").await, a.user("bob").await);
    let chat = a.group(&alice, &[&bob]).await;
    let mut on_b = WsClient::connect(&b, &bob.token, None).await;
    let mut on_a = WsClient::connect(&a, &bob.token, None).await;
    let sent = a.send(&alice, chat, "across").await;
    for socket in [&mut on_b, &mut on_a] {
        let frame = socket.next_event().await;
        assert_eq!((frame["seq"].as_i64(), &frame["payload"]), (Some(2), &sent));
    }
    // And the other way round, with typing (ephemeral, carried in the hint).
    let mut alice_on_a = WsClient::connect(&a, &alice.token, None).await;
    on_b.send_text(&format!(
        r#"{{"type":"typing","payload":{{"chat_id":{chat}}}}}"#
    ))
    .await;
    assert_eq!(
        alice_on_a.next().await,
        json!({"type": "typing", "payload": {"chat_id": chat, "user_id": bob.id}})
    );
    b.send(&bob, chat, "back").await;
    assert_eq!(alice_on_a.next_event().await["payload"]["text"], "back");
}

#[tokio::test]
async fn the_delivery_property_holds_across_two_processes() {
    let a = TestApp::spawn_with(no_sweep).await;
    let b = TestApp::spawn_on(&a.database_url, no_sweep).await;
    let report = check_delivery(
        &[&a, &b],
        Load {
            users: 6,
            chats: 5,
            senders: 6,
            messages_per_sender: 50,
            seed: 0x5eed_0002,
        },
    )
    .await;
    eprintln!("delivery property, two processes: {report:?}");
    assert!(report.reconnects > 20, "{report:?}");
}

#[tokio::test]
async fn the_sweep_delivers_even_when_hints_are_lost() {
    // Process b never hears a hint (its listener points at nothing) yet its socket catches up.
    let a = TestApp::spawn().await;
    let a_listener = listener_pid(&a).await;
    let b = TestApp::spawn_on(&a.database_url, |c| {
        c.sweep_interval = Duration::from_secs(1)
    })
    .await;
    let (alice, bob) = (a.user("alice").await, a.user("bob").await);
    let chat = a.group(&alice, &[&bob]).await;
    let mut on_b = WsClient::connect(&b, &bob.token, None).await;
    // Lose the hints: b's listener connection is terminated again and again while a sends.
    let (admin, conn) = tokio_postgres::connect(&a.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // Only b's (and only in this test's database: other tests run beside this one).
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'rtchat-listener'
               AND datname = current_database() AND pid <> $1",
            &[&a_listener],
        )
        .await
        .unwrap();
    for i in 0..5 {
        a.send(&alice, chat, &format!("m{i}")).await;
    }
    for seq in 2..=6 {
        assert_eq!(on_b.next_event().await["seq"], seq);
    }
}

/// The backend of `app`'s LISTEN connection, while it is the only process on its database.
async fn listener_pid(app: &TestApp) -> i32 {
    admin(app)
        .await
        .query_one(
            "SELECT pid FROM pg_stat_activity
             WHERE application_name = 'rtchat-listener' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// An admin connection to the test database.
async fn admin(app: &TestApp) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn typing_reaches_a_400_member_group_across_processes() {
    let a = TestApp::spawn_with(no_sweep).await;
    let b = TestApp::spawn_on(&a.database_url, no_sweep).await;
    let (alice, bob) = (a.user("alice").await, a.user("bob").await);
    // 398 more members, written directly (registering each would cost a password hash),
    // with 19-digit ids: a list of them all is longer than a NOTIFY can carry.
    let filler: Vec<i64> = admin(&a)
        .await
        .query(
            "INSERT INTO users (id, email, name, password_hash) OVERRIDING SYSTEM VALUE
             SELECT 4000000000000000000 + i, 'filler' || i || '@example.com', 'filler', 'x'
             FROM generate_series(1, 398) i RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut others = filler.clone();
    others.push(bob.id);
    let r = a
        .post(
            "/chats",
            &alice.token,
            json!({"type": "group", "title": "big", "participant_ids": others}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let chat = r.body["id"].as_i64().unwrap();
    let mut bob_on_a = WsClient::connect(&a, &bob.token, None).await;
    let mut alice_on_b = WsClient::connect(&b, &alice.token, None).await;
    alice_on_b
        .send_text(&format!(
            r#"{{"type":"typing","payload":{{"chat_id":{chat}}}}}"#
        ))
        .await;
    assert_eq!(
        bob_on_a.next().await,
        json!({"type": "typing", "payload": {"chat_id": chat, "user_id": alice.id}})
    );
}

#[tokio::test]
async fn a_logout_is_refused_at_once_by_a_process_whose_listener_is_down() {
    let a = TestApp::spawn_with(no_sweep).await;
    let killer_db = admin(&a).await;
    let a_listener = listener_pid(&a).await;
    let b = TestApp::spawn_on(&a.database_url, no_sweep).await;
    let user = a.user("u").await;
    assert_eq!(b.get("/auth/me", &user.token).await.status, 200);
    let mut on_b = WsClient::connect(&b, &user.token, None).await;

    // Keep b's LISTEN connection down: terminate it whenever it comes back.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                killer_db
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = 'rtchat-listener'
                           AND datname = current_database() AND pid <> $1",
                        &[&a_listener],
                    )
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    // b knows its listener is down (it is not ready)...
    tokio::time::timeout(WAIT, async {
        while b.http.get(b.url("/readyz")).send().await.unwrap().status() == 200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("b notices its listener is gone");
    // ... so the hint of a logout through a is lost to it.
    let r = a
        .call("POST", "/auth/logout", Some(&user.token), None)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    // No window: b refuses the token at once (503 while it cannot know, or 401).
    for _ in 0..5 {
        let r = b.get("/auth/me", &user.token).await;
        assert!(r.status == 503 || r.status == 401, "{r:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    killer.await.unwrap();
    // Once its listener is back, b has caught up: 401, and the session's socket closes.
    tokio::time::timeout(WAIT, async {
        loop {
            let r = b.get("/auth/me", &user.token).await;
            match r.status {
                401 => break,
                503 => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => panic!("{r:?}"),
            }
        }
    })
    .await
    .expect("b catches up");
    assert_eq!(code(&on_b.ended().await), Some(4001));
}
