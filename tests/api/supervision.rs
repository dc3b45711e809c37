//! Delivery's tasks are supervised: one that dies (a failure injected through the test-only
//! `Config::faults`) is restarted, and what it served works again.

use std::time::Duration;

use rtchat::config::{Config, Faults};
use serde_json::json;

use crate::support::*;
use crate::wsclient::WsClient;

/// The restarts of `task` that `/metrics` reports.
async fn restarts(app: &TestApp, task: &str) -> u64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("rtchat_task_restarts_total{{task=\"{task}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_send_writer_that_died_is_replaced_on_its_queue() {
    let faults = Faults::default();
    let app = TestApp::spawn_with(|c| {
        c.send_writers = 1;
        c.faults = faults.clone();
    })
    .await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let chat = app.group(&alice, &[&bob]).await;
    let mut socket = WsClient::connect(&app, &bob.token, None).await;
    let path = format!("/chats/{chat}/messages");

    faults.panic_next_send_writer();
    // The batch the writer died with has no known outcome: 503, retry with the client_id.
    let lost = app
        .post(
            &path,
            &alice.token,
            json!({"text": "lost?", "client_id": "k1"}),
        )
        .await;
    assert_error(&lost, 503, "unavailable");

    // The writer is replaced on the same queue: sends work again, and are delivered.
    let again = app
        .post(
            &path,
            &alice.token,
            json!({"text": "lost?", "client_id": "k1"}),
        )
        .await;
    assert_eq!(again.status, 201, "{again:?}");
    let frame = socket.next_event().await;
    assert_eq!(frame["payload"], again.body);
    for n in 0..5 {
        app.send(&alice, chat, &format!("after {n}")).await;
        assert_eq!(
            socket.next_event().await["payload"]["text"],
            format!("after {n}")
        );
    }
    assert_eq!(restarts(&app, "send_writer").await, 1);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

/// Sweeps so rare that only the listener can deliver across processes within a test's waits.
fn no_sweep(c: &mut Config) {
    c.sweep_interval = Duration::from_secs(3600);
}

#[tokio::test]
async fn a_listener_that_died_is_replaced_and_cross_process_delivery_resumes() {
    let faults = Faults::default();
    let a = TestApp::spawn_with(no_sweep).await;
    let b = TestApp::spawn_on(&a.database_url, |c| {
        no_sweep(c);
        c.faults = faults.clone();
    })
    .await;
    let (alice, bob) = (a.user("alice").await, a.user("bob").await);
    let chat = a.group(&alice, &[&bob]).await;
    let mut on_b = WsClient::connect(&b, &bob.token, None).await;
    let first = a.send(&alice, chat, "before").await;
    assert_eq!(on_b.next_event().await["payload"], first);

    faults.panic_listener();
    // Sent while b's listener is dead or restarting: the replacement wakes every socket.
    let during = a.send(&alice, chat, "during").await;
    assert_eq!(on_b.next_event().await["payload"], during);
    assert_eq!(restarts(&b, "listener").await, 1);
    let mut ready = false;
    for _ in 0..(WAIT.as_millis() / 20) {
        if b.http.get(b.url("/readyz")).send().await.unwrap().status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "b is ready again once its listener is back");
    // Hints reach b again, and nothing left of the dead listener (its connection) takes b
    // out of readiness or makes it distrust tokens when they arrive.
    for text in ["after", "again"] {
        let sent = a.send(&alice, chat, text).await;
        assert_eq!(on_b.next_event().await["payload"], sent);
    }
    let ready = b.http.get(b.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let chat_on_b = b.get(&format!("/chats/{chat}"), &bob.token).await;
    assert_eq!(chat_on_b.status, 200, "{chat_on_b:?}");
    assert_eq!(restarts(&b, "listener").await, 1);
}
