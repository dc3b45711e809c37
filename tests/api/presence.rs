//! Presence across processes: `presence` frames to chat partners on every process when a
//! user's socket count over all processes leaves or reaches 0 (offline only after the grace
//! period), a SIGKILLed process's users announced offline within the bound, and
//! `GET /presence`, which tells strangers nothing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;
use crate::wsclient::WsClient;

/// A short grace period and lease renewal, so that a test takes seconds.
fn quick(grace_secs: u64) -> impl Fn(&mut rtchat::config::Config) {
    move |c| {
        c.presence_grace = Duration::from_secs(grace_secs);
        c.lease_renew = Duration::from_secs(1);
    }
}

/// The next `presence` frame (other frames skipped), within `wait`.
async fn next_presence(socket: &mut WsClient, wait: Duration) -> Value {
    tokio::time::timeout(wait, async {
        loop {
            let frame = socket.next_any().await;
            if frame["type"] == "presence" {
                return frame;
            }
        }
    })
    .await
    .expect("a presence frame arrives in time")
}

/// Asserts that no `presence` frame arrives within `wait` (other frames are skipped).
async fn no_presence(socket: &mut WsClient, wait: Duration) {
    no_presence_of(socket, None, wait).await
}

/// Asserts that no `presence` frame about `user` (about anyone if `None`) arrives within
/// `wait`.
async fn no_presence_of(socket: &mut WsClient, user: Option<i64>, wait: Duration) {
    let got = tokio::time::timeout(wait, async {
        loop {
            let frame = socket.next_any().await;
            if frame["type"] == "presence" && user.is_none_or(|u| frame["payload"]["user_id"] == u)
            {
                return frame;
            }
        }
    })
    .await;
    if let Ok(frame) = got {
        panic!("expected no presence frame, got {frame}");
    }
}

fn online(user: &TestUser) -> Value {
    json!({"type": "presence", "payload": {"user_id": user.id, "online": true, "last_seen_at": null}})
}

/// `GET /presence?user_ids=...` as `user`, on `app`.
async fn presence(app: &TestApp, user: &TestUser, ids: &str) -> Reply {
    app.get(&format!("/presence?user_ids={ids}"), &user.token)
        .await
}

async fn close(mut socket: WsClient) {
    let _ = socket.ws.close(None).await;
}

/// A value of `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn partners_on_both_processes_see_online_then_offline_and_strangers_see_nothing() {
    let a = TestApp::spawn_with(quick(1)).await;
    let b = TestApp::spawn_on(&a.database_url, quick(1)).await;
    let (alice, bob, carol) = (
        a.user("alice").await,
        a.user("bob").await,
        a.user("carol").await,
    );
    a.group(&alice, &[&bob]).await;
    let mut bob_on_a = WsClient::connect(&a, &bob.token, None).await;
    let mut bob_on_b = WsClient::connect(&b, &bob.token, None).await;
    let mut carol_on_a = WsClient::connect(&a, &carol.token, None).await;
    // Bob's own sockets say nothing to him about himself.
    no_presence(&mut bob_on_a, Duration::from_millis(500)).await;

    let alice_on_a = WsClient::connect(&a, &alice.token, None).await;
    for socket in [&mut bob_on_a, &mut bob_on_b] {
        assert_eq!(next_presence(socket, WAIT).await, online(&alice));
    }
    let r = presence(&b, &bob, &alice.id.to_string()).await;
    assert_eq!(
        r.body,
        json!({"presence": [{"user_id": alice.id, "online": true, "last_seen_at": null}]})
    );

    close(alice_on_a).await;
    let mut seen = Vec::new();
    for socket in [&mut bob_on_a, &mut bob_on_b] {
        let frame = next_presence(socket, WAIT).await;
        assert_eq!(frame["payload"]["user_id"], alice.id, "{frame}");
        assert_eq!(frame["payload"]["online"], false, "{frame}");
        seen.push(frame["payload"]["last_seen_at"].clone());
    }
    assert!(seen[0].is_string(), "{seen:?}");
    assert_eq!(
        seen[0], seen[1],
        "both processes tell the same last_seen_at"
    );
    let r = presence(&a, &bob, &alice.id.to_string()).await;
    assert_eq!(
        r.body,
        json!({"presence": [{"user_id": alice.id, "online": false, "last_seen_at": seen[0]}]})
    );
    // Carol shares no chat with alice: not a frame about her.
    no_presence(&mut carol_on_a, Duration::from_millis(300)).await;
    assert!(metric(&a, "rtchat_presence_frames_total").await >= 2.0);
    // Bob and carol are online over all processes; alice is not.
    assert_eq!(metric(&b, "rtchat_online_users").await, 2.0);
}

#[tokio::test]
async fn the_users_own_sockets_get_no_presence_of_their_own() {
    let a = TestApp::spawn_with(quick(1)).await;
    let b = TestApp::spawn_on(&a.database_url, quick(1)).await;
    let (alice, bob) = (a.user("alice").await, a.user("bob").await);
    a.group(&alice, &[&bob]).await;
    let mut bob_on_b = WsClient::connect(&b, &bob.token, None).await;
    let mut alice_on_a = WsClient::connect(&a, &alice.token, None).await;
    assert_eq!(next_presence(&mut bob_on_b, WAIT).await, online(&alice));
    // A second socket of alice elsewhere, then closed: alice's first socket hears nothing
    // about her (about bob, it may: he came online just before her).
    let second = WsClient::connect(&b, &alice.token, None).await;
    close(second).await;
    no_presence_of(&mut alice_on_a, Some(alice.id), Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_reconnect_within_the_grace_and_closing_one_of_two_processes_say_nothing() {
    let grace = 3;
    let a = TestApp::spawn_with(quick(grace)).await;
    let b = TestApp::spawn_on(&a.database_url, quick(grace)).await;
    let (alice, bob) = (a.user("alice").await, a.user("bob").await);
    a.group(&alice, &[&bob]).await;
    let mut bob_on_b = WsClient::connect(&b, &bob.token, None).await;
    let alice_on_a = WsClient::connect(&a, &alice.token, None).await;
    assert_eq!(next_presence(&mut bob_on_b, WAIT).await, online(&alice));
    let quiet = Duration::from_secs(grace) + Duration::from_millis(1500);

    // A reconnect, to the other process, well within the grace period.
    close(alice_on_a).await;
    let alice_on_b = WsClient::connect(&b, &alice.token, None).await;
    no_presence(&mut bob_on_b, quiet).await;

    // Sockets on both processes; the one on b closes: alice is still online on a.
    let alice_on_a = WsClient::connect(&a, &alice.token, None).await;
    close(alice_on_b).await;
    no_presence(&mut bob_on_b, quiet).await;
    let r = presence(&b, &bob, &alice.id.to_string()).await;
    assert_eq!(r.body["presence"][0]["online"], true, "{r:?}");

    // The last one closes: offline after the grace, so the silences above were not a fluke.
    let closed = Instant::now();
    close(alice_on_a).await;
    let frame = next_presence(&mut bob_on_b, WAIT).await;
    assert_eq!(frame["payload"]["online"], false, "{frame}");
    assert!(
        closed.elapsed() >= Duration::from_secs(grace) - Duration::from_millis(200),
        "offline only after the grace period: {:?}",
        closed.elapsed()
    );
}

#[tokio::test]
async fn a_sigkilled_process_users_go_offline_within_the_bound_and_get_presence_agrees() {
    let renew = 1;
    let grace = 1;
    let a = TestApp::spawn_with(quick(grace)).await;
    let (alice, bob) = (a.user("alice").await, a.user("bob").await);
    a.group(&alice, &[&bob]).await;
    let mut bob_on_a = WsClient::connect(&a, &bob.token, None).await;

    // The real binary, on the same database and secret, holding alice's only socket.
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rtchat"))
        .env("DATABASE_URL", &a.database_url)
        .env("JWT_SECRET", "test-secret-test-secret-test-secret")
        .env("RTCHAT_ADDR", format!("127.0.0.1:{port}"))
        .env("RTCHAT_LOG", "warn")
        .env("RTCHAT_LEASE_RENEW_SECS", renew.to_string())
        .env("RTCHAT_PRESENCE_GRACE_SECS", grace.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the rtchat binary starts");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    loop {
        let ready = a.http.get(format!("http://{addr}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "the child process is ready in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _alice_on_child = WsClient::connect_to(addr, &alice.token, None).await;
    assert_eq!(next_presence(&mut bob_on_a, WAIT).await, online(&alice));

    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let killed = Instant::now();
    child.wait().expect("the child is reaped");
    // Lease lapses 3 renewals after the last one, a reaper notices within one more, and the
    // grace runs from the lapse: 4 × renew + grace, plus a generous margin for a loaded
    // machine (the point is "seconds, not never").
    let bound = Duration::from_secs(4 * renew + grace);
    let frame = next_presence(&mut bob_on_a, bound + Duration::from_secs(10)).await;
    let took = killed.elapsed();
    assert_eq!(frame["payload"]["user_id"], alice.id, "{frame}");
    assert_eq!(frame["payload"]["online"], false, "{frame}");
    assert!(frame["payload"]["last_seen_at"].is_string(), "{frame}");
    eprintln!("offline announced {took:?} after the SIGKILL (bound {bound:?})");
    let r = presence(&a, &bob, &alice.id.to_string()).await;
    assert_eq!(
        r.body,
        json!({"presence": [{"user_id": alice.id, "online": false, "last_seen_at": frame["payload"]["last_seen_at"]}]})
    );
}

#[tokio::test]
async fn presence_stays_right_when_the_database_drops_every_connection_and_loses_the_rows() {
    let grace = 3;
    let a = TestApp::spawn_with(quick(grace)).await;
    let b = TestApp::spawn_on(&a.database_url, quick(grace)).await;
    let (alice, bob) = (a.user("alice").await, a.user("bob").await);
    a.group(&alice, &[&bob]).await;
    let mut bob_on_b = WsClient::connect(&b, &bob.token, None).await;
    let alice_on_a = WsClient::connect(&a, &alice.token, None).await;
    assert_eq!(next_presence(&mut bob_on_b, WAIT).await, online(&alice));

    // What a PostgreSQL restart does to rtchat: every connection dropped at once (listeners
    // included, so hints are lost), and here the presence rows are gone too (as after a
    // restore). Only this test's database: other tests run beside this one.
    let (admin, conn) = tokio_postgres::connect(&a.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(
            "DELETE FROM presence_sockets;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid();",
        )
        .await
        .unwrap();
    // The processes resync: alice's row comes back and nobody hears her go offline.
    no_presence(
        &mut bob_on_b,
        Duration::from_secs(grace) + Duration::from_secs(2),
    )
    .await;
    let rows: i64 = admin
        .query_one(
            "SELECT count(*) FROM presence_sockets WHERE user_id = $1",
            &[&alice.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "alice's row was written again");
    let mut answer = Value::Null;
    for _ in 0..50 {
        let r = presence(&b, &bob, &alice.id.to_string()).await;
        if r.status == 200 {
            answer = r.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer["presence"][0]["online"], true, "{answer}");

    // And presence works as before afterwards.
    close(alice_on_a).await;
    let frame = next_presence(&mut bob_on_b, WAIT).await;
    assert_eq!(frame["payload"]["online"], false, "{frame}");
    let _alice_on_b = WsClient::connect(&b, &alice.token, None).await;
    assert_eq!(next_presence(&mut bob_on_b, WAIT).await, online(&alice));
}

#[tokio::test]
async fn get_presence_answers_in_order_and_tells_strangers_nothing() {
    let app = TestApp::spawn_with(quick(0)).await;
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    app.group(&alice, &[&bob]).await;
    let _alice_socket = WsClient::connect(&app, &alice.token, None).await;
    // Bob was seen and left; carol, a stranger to alice, is online right now.
    close(WsClient::connect(&app, &bob.token, None).await).await;
    let _carol_socket = WsClient::connect(&app, &carol.token, None).await;
    let mut bob_seen = Value::Null;
    for _ in 0..100 {
        let r = presence(&app, &alice, &bob.id.to_string()).await;
        bob_seen = r.body["presence"][0]["last_seen_at"].clone();
        if bob_seen.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bob_seen.is_string(), "bob's close is recorded");

    let unknown = i64::MAX;
    let ids = format!("{},{},{},{unknown},{}", carol.id, bob.id, alice.id, bob.id);
    let r = presence(&app, &alice, &ids).await;
    assert_eq!(r.status, 200, "{r:?}");
    let never = |id: i64| json!({"user_id": id, "online": false, "last_seen_at": null});
    assert_eq!(
        r.body,
        json!({"presence": [
            never(carol.id),
            {"user_id": bob.id, "online": false, "last_seen_at": bob_seen},
            {"user_id": alice.id, "online": true, "last_seen_at": null},
            never(unknown),
            {"user_id": bob.id, "online": false, "last_seen_at": bob_seen},
        ]})
    );
    // Carol herself is online to herself.
    let r = presence(&app, &carol, &carol.id.to_string()).await;
    assert_eq!(r.body["presence"][0]["online"], true, "{r:?}");
    // HEAD is answered as GET.
    let head = app
        .http
        .head(app.url(&format!("/presence?user_ids={}", alice.id)))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    // A token is needed.
    let r = app.call("GET", "/presence?user_ids=1", None, None).await;
    assert_error(&r, 401, "unauthorized");
}

#[tokio::test]
async fn get_presence_refuses_bad_id_lists_with_422() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let hundred: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    let r = presence(&app, &alice, &hundred.join(",")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["presence"].as_array().unwrap().len(), 100);

    let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    let too_many = many.join(",");
    let commas = ",".repeat(5000);
    for bad in [
        "",
        "a",
        "-1",
        "0",
        "1,,2",
        "1,",
        "1.0",
        "9223372036854775808",
        "99999999999999999999999999999999",
        "%00",
        too_many.as_str(),
        commas.as_str(),
    ] {
        let r = presence(&app, &alice, bad).await;
        assert_invalid(&r, "user_ids");
    }
    let r = app.get("/presence", &alice.token).await;
    assert_invalid(&r, "user_ids");
    // Ten thousand commas are past the request-target limit every route has: 414, not 500.
    let r = presence(&app, &alice, &",".repeat(10_000)).await;
    assert_error(&r, 414, "uri_too_long");
}

#[tokio::test]
async fn a_lost_hint_is_made_good_by_the_periodic_sweep() {
    let app = TestApp::spawn_with(quick(1)).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    app.group(&alice, &[&bob]).await;
    let mut bob_socket = WsClient::connect(&app, &bob.token, None).await;
    // Alice comes online through a process that never hints: a live lease and a row, written
    // straight into the database (as if its NOTIFY had been lost).
    let (admin, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .execute(
            "WITH lease AS (INSERT INTO process_leases (process_id, expires_at)
                            VALUES (42, now() + interval '1 hour'))
             INSERT INTO presence_sockets (process_id, user_id) VALUES (42, $1)",
            &[&alice.id],
        )
        .await
        .unwrap();
    // The sweep runs every 6 renewals (1 s here); a generous margin for a loaded machine.
    let frame = next_presence(&mut bob_socket, Duration::from_secs(6 + 10)).await;
    assert_eq!(frame, online(&alice));
}
