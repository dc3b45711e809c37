//! Two server processes on one database: events committed through one reach the sockets of
//! the other live, through LISTEN/NOTIFY, with the same seq guarantees.

use std::time::Duration;

use serde_json::json;

use crate::delivery::{check_delivery, Load};
use crate::support::*;
use crate::wsclient::WsClient;

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
    admin
        .batch_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rtchat-listener'")
        .await
        .unwrap();
    for i in 0..5 {
        a.send(&alice, chat, &format!("m{i}")).await;
    }
    for seq in 2..=6 {
        assert_eq!(on_b.next_event().await["seq"], seq);
    }
}
