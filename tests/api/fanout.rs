//! Fan-out of committed events to many sockets: in one process through the hub, across
//! processes through one log read per batch of hints. However the events of concurrent
//! sends interleave, every socket gets each of its user's events once, in seq order, and
//! exactly as `GET /events` has them.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;
use crate::wsclient::WsClient;

/// Sweeps so rare that only the hub and NOTIFY can deliver within a test's waits.
fn no_sweep(c: &mut rtchat::config::Config) {
    c.sweep_interval = Duration::from_secs(3600);
}

/// Users 0..8 in a big chat, 0..4 also in a small one; sockets on `socket_apps` (user 1
/// twice on the first); concurrent sends through `send_app` to both chats.
async fn a_burst_reaches_every_socket_as_the_log_has_it(
    socket_apps: &[&TestApp],
    send_app: &TestApp,
) {
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(send_app.user(&format!("fan{i}")).await);
    }
    let others: Vec<&TestUser> = users[1..].iter().collect();
    let big = send_app.group(&users[0], &others).await;
    let small = send_app.group(&users[0], &others[..3]).await;

    let mut sockets = Vec::new();
    for (i, user) in users.iter().enumerate() {
        for app in socket_apps {
            sockets.push((i, WsClient::connect(app, &user.token, None).await));
        }
        if i == 1 {
            sockets.push((
                i,
                WsClient::connect(socket_apps[0], &user.token, None).await,
            ));
        }
    }

    let sends = (0..40).map(|n| {
        let (sender, chat) = if n % 3 == 0 {
            (&users[n % 4], small)
        } else {
            (&users[n % 8], big)
        };
        async move { send_app.send(sender, chat, &format!("burst {n}")).await }
    });
    futures_util::future::join_all(sends).await;

    for (i, socket) in &mut sockets {
        let user = &users[*i];
        let since = socket.ready["seq"].as_i64().unwrap();
        let r = send_app
            .get(&format!("/events?since={since}&limit=100"), &user.token)
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["has_more"], false);
        let log: Vec<Value> = r.body["events"].as_array().unwrap().clone();
        let expected = if *i < 4 { 40 } else { 40 - 14 };
        assert_eq!(log.len(), expected, "user {i}'s log");
        let mut seen = Vec::new();
        for _ in 0..log.len() {
            seen.push(socket.next_event().await);
        }
        assert_eq!(seen, log, "user {i}: the socket and GET /events agree");
        socket.expect_silence(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_burst_fans_out_in_order_in_one_process() {
    let a = TestApp::spawn_with(no_sweep).await;
    a_burst_reaches_every_socket_as_the_log_has_it(&[&a], &a).await;
}

#[tokio::test]
async fn a_burst_fans_out_in_order_across_processes() {
    let a = TestApp::spawn_with(no_sweep).await;
    let b = TestApp::spawn_on(&a.database_url, no_sweep).await;
    // Sockets on both: the events reach those on `a` through hints, those on `b` through its hub.
    a_burst_reaches_every_socket_as_the_log_has_it(&[&a, &b], &b).await;
}
