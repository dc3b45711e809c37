//! Upgrades keep data: a database written by the previous release (its schema and data are
//! kept under `tests/fixtures/`) is opened by the current server, which migrates it at start,
//! and every user, chat, message and event is still there and still works.

use serde_json::{json, Value};

use crate::support::*;

const SCHEMA_V1: &str = include_str!("../fixtures/schema-v1.sql");
const DATA_V1: &str = include_str!("../fixtures/data-v1.sql");

#[tokio::test]
async fn a_database_of_the_previous_release_keeps_its_users_chats_messages_and_events() {
    // Arrange: the previous release's schema with data in it.
    let database_url = fresh_database().await;
    let (client, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
        .batch_execute(SCHEMA_V1)
        .await
        .expect("the v1 schema applies");
    client
        .batch_execute(DATA_V1)
        .await
        .expect("the v1 data loads");

    // Act: the current server starts on it (and migrates it).
    let app = TestApp::spawn_on(&database_url, |_| {}).await;

    // Assert: the schema is at this build's version.
    let version: i32 = client
        .query_one("SELECT max(version) FROM schema_version", &[])
        .await
        .expect("schema_version")
        .get(0);
    assert_eq!(version, rtchat::testing::schema_version());

    // The users log in with their old passwords; Bob by his email in any case.
    let alice = login(&app, "alice@example.com").await;
    let bob = login(&app, "BOB@example.com").await;

    // Their chats, messages and read cursors.
    let chats = app.get("/chats", &alice).await;
    assert_eq!(chats.status, 200, "{chats:?}");
    let listed: Vec<i64> = chats.body["chats"]
        .as_array()
        .expect("chats")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(listed.len(), 2, "{chats:?}");
    let private = app.get("/chats/1", &alice).await;
    assert_eq!(
        private.body["participant_ids"],
        json!([1, 2]),
        "{private:?}"
    );
    assert_eq!(private.body["last_message"]["text"], "third");
    assert_eq!(private.body["last_read_message_id"], 2);
    assert_eq!(
        private.body["unread_count"], 0,
        "alice's own message is not unread"
    );
    let group = app.get("/chats/2", &bob).await;
    assert_eq!(group.body["title"], "Old friends", "{group:?}");
    let messages = app.get("/chats/1/messages", &bob).await;
    let texts: Vec<&str> = messages.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["Привет из чата!", "hello back", "third"]);
    assert_eq!(messages.body["messages"][0]["client_id"], "c-1");

    // The event log replays with its seqs, and new events continue after them.
    let events = app.get("/events?since=0", &bob).await;
    assert_eq!(events.status, 200, "{events:?}");
    let seqs: Vec<i64> = events.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(
        events.body["events"][2]["payload"]["text"],
        "Привет из чата!"
    );
    let sent = app
        .post(
            "/chats/1/messages",
            &bob,
            json!({ "text": "after the upgrade", "client_id": "c-1" }),
        )
        .await;
    assert_eq!(
        sent.status, 201,
        "a client_id of alice's is not bob's: {sent:?}"
    );
    let after = app.get("/events?since=5", &alice).await;
    assert_eq!(after.body["events"][0]["seq"], 6, "{after:?}");
    assert_eq!(
        after.body["events"][0]["payload"]["text"],
        Value::from("after the upgrade")
    );

    // A repeated send of an old client_id is still recognised.
    let again = app
        .post(
            "/chats/1/messages",
            &alice,
            json!({ "text": "Привет из чата!", "client_id": "c-1" }),
        )
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["id"], 1);
}

/// Logs in with the fixture's password and returns the access token.
async fn login(app: &TestApp, email: &str) -> String {
    let reply = app.login(email, "correct horse").await;
    assert_eq!(
        reply.status, 200,
        "{email} logs in after the upgrade: {reply:?}"
    );
    reply.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// A new database gets every version recorded once; a restart on it applies nothing; a
/// database written by a newer build makes this one refuse to start.
#[tokio::test]
async fn versions_are_recorded_once_and_a_newer_database_is_refused() {
    let database_url = fresh_database().await;
    let first = TestApp::spawn_on(&database_url, |_| {}).await;
    let (client, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    let versions =
        |rows: Vec<tokio_postgres::Row>| -> Vec<i32> { rows.iter().map(|r| r.get(0)).collect() };
    let recorded = versions(
        client
            .query("SELECT version FROM schema_version ORDER BY version", &[])
            .await
            .expect("schema_version"),
    );
    let target = rtchat::testing::schema_version();
    assert_eq!(recorded, (1..=target).collect::<Vec<_>>());

    // A second process on the same database (a restart) finds nothing to do.
    let second = TestApp::spawn_on(&database_url, |_| {}).await;
    let user = second.user("after-restart").await;
    assert!(user.id > 0);
    let again = versions(
        client
            .query("SELECT version FROM schema_version ORDER BY version", &[])
            .await
            .expect("schema_version"),
    );
    assert_eq!(again, recorded);
    drop((first, second));

    // A newer build's database: this build must not touch it.
    client
        .execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(target + 1)],
        )
        .await
        .expect("a newer version");
    let pool = rtchat::testing::pool(&database_url, 1).expect("pool");
    let refused = rtchat::testing::apply_schema(&pool)
        .await
        .expect_err("a newer database is refused");
    assert!(refused.contains("newer than this build"), "{refused}");
}
