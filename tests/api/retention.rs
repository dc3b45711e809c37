//! Retention of login sessions: an ended session goes, with its refresh tokens, once no
//! token of it can be accepted any more; live and recently ended ones stay, and so do the
//! revocations every process still needs.

use std::time::Duration;

use serde_json::json;

use crate::support::{assert_error, TestApp, TestUser};

/// The access-token lifetime of these tests.
const TTL: Duration = Duration::from_secs(600);

/// Seconds after which an ended session is certainly prunable: the token lifetime, the
/// clock leeway (60 s), the prune's margin (an hour) and a minute to spare.
const LONG_AGO: f64 = 600.0 + 60.0 + 3600.0 + 60.0;

async fn login(app: &TestApp, user: &TestUser) -> (String, String) {
    let r = app.login(&user.email, "correct horse").await;
    assert_eq!(r.status, 200, "{r:?}");
    (
        r.body["access_token"].as_str().unwrap().to_string(),
        r.body["refresh_token"].as_str().unwrap().to_string(),
    )
}

fn sid(access_token: &str) -> i64 {
    use base64::Engine;
    let claims = access_token.split('.').nth(1).unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&claims).unwrap()["sid"]
        .as_i64()
        .unwrap()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> crate::support::Reply {
    app.call(
        "POST",
        "/auth/refresh",
        None,
        Some(json!({ "refresh_token": refresh_token })),
    )
    .await
}

#[tokio::test]
async fn ended_sessions_are_pruned_once_no_token_of_theirs_can_be_accepted() {
    let app = TestApp::spawn_with(|c| c.token_ttl = TTL).await;
    let user = app.user("pruned").await;
    let live = (user.token.clone(), user.refresh_token.clone());
    let expired_long_ago = login(&app, &user).await;
    let expired_just_now = login(&app, &user).await;
    let revoked_long_ago = login(&app, &user).await;
    let revoked_just_now = login(&app, &user).await;
    // Past the revocation list's look-back, but within the prune's margin.
    let revoked_at_the_edge = login(&app, &user).await;

    // A rotated session has a used refresh token too: both must go with it.
    let rotated = refresh(&app, &expired_long_ago.1).await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let expired_long_ago = (
        rotated.body["access_token"].as_str().unwrap().to_string(),
        rotated.body["refresh_token"].as_str().unwrap().to_string(),
    );
    let r = app
        .call("POST", "/auth/logout", Some(&revoked_just_now.0), None)
        .await;
    assert_eq!(r.status, 204, "{r:?}");

    let pool = rtchat::testing::pool(&app.database_url, 1).unwrap();
    let client = pool.get().await.unwrap();
    let age = |column: &'static str, session: &(String, String), secs: f64| {
        let client = &client;
        let id = sid(&session.0);
        async move {
            client
                .execute(
                    &format!(
                        "UPDATE sessions SET {column} = now() - make_interval(secs => $2) WHERE id = $1"
                    ),
                    &[&id, &secs],
                )
                .await
                .unwrap();
        }
    };
    age("expires_at", &expired_long_ago, LONG_AGO).await;
    age("expires_at", &expired_just_now, 60.0).await;
    age("revoked_at", &revoked_long_ago, LONG_AGO).await;
    age("revoked_at", &revoked_at_the_edge, 600.0 + 60.0 + 60.0).await;

    let count = |table: &'static str, session: &(String, String)| {
        let client = &client;
        let id = sid(&session.0);
        async move {
            let column = if table == "sessions" {
                "id"
            } else {
                "session_id"
            };
            let n: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM {table} WHERE {column} = $1"),
                    &[&id],
                )
                .await
                .unwrap()
                .get(0);
            n
        }
    };
    assert_eq!(count("refresh_tokens", &expired_long_ago).await, 2);

    let pruned = rtchat::testing::prune_sessions(&client, TTL).await.unwrap();
    assert_eq!(pruned, 2, "the two sessions that ended long ago");
    for gone in [&expired_long_ago, &revoked_long_ago] {
        assert_eq!(count("sessions", gone).await, 0);
        assert_eq!(count("refresh_tokens", gone).await, 0, "by the cascade");
    }
    for kept in [
        &live,
        &expired_just_now,
        &revoked_just_now,
        &revoked_at_the_edge,
    ] {
        assert_eq!(count("sessions", kept).await, 1);
        assert_eq!(count("refresh_tokens", kept).await, 1);
    }
    assert_eq!(
        rtchat::testing::prune_sessions(&client, TTL).await.unwrap(),
        0,
        "nothing more to prune"
    );

    // A pruned session's refresh token is unknown now: refused, and nothing else happens.
    assert_error(
        &refresh(&app, &expired_long_ago.1).await,
        401,
        "unauthorized",
    );
    // The live session works on.
    assert_eq!(app.get("/auth/me", &live.0).await.status, 200);
    assert_eq!(refresh(&app, &live.1).await.status, 200);
    // The recent revocation still holds, here and for a process that starts now.
    assert_error(
        &app.get("/auth/me", &revoked_just_now.0).await,
        401,
        "unauthorized",
    );
    let loaded = rtchat::testing::Revoked::new(TTL)
        .load(&client)
        .await
        .unwrap();
    assert!(
        loaded.contains(&sid(&revoked_just_now.0)),
        "{loaded:?} lacks the recently revoked session"
    );
}

#[tokio::test]
async fn the_prune_has_its_indexes() {
    let app = TestApp::spawn().await;
    let pool = rtchat::testing::pool(&app.database_url, 1).unwrap();
    let client = pool.get().await.unwrap();
    let names: Vec<String> = client
        .query(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('sessions', 'refresh_tokens')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for index in ["refresh_tokens_session_idx", "sessions_expires_at_idx"] {
        assert!(
            names.iter().any(|n| n == index),
            "{index} missing: {names:?}"
        );
    }
}
