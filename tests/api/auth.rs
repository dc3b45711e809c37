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
    let now = rtchat::testing::unix_now();
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
    let now = rtchat::testing::unix_now();
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

/// A direct connection to a test's database, beside the server.
async fn database(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// The login limits as deployed (the harness raises them for every other test), with
/// 127.0.0.1 trusted as a proxy so that `X-Forwarded-For` names the client.
fn deployed_login_limits(pair: i32, global: i32) -> impl FnOnce(&mut rtchat::config::Config) {
    move |c| {
        c.rate_login_per_email = pair;
        c.rate_login_per_email_global = global;
        c.rate_login_per_addr = 50;
        c.trusted_proxies = vec![("127.0.0.1".parse().unwrap(), 32)];
    }
}

/// `POST /auth/login` from client address `from` (through the trusted proxy).
async fn login_from(app: &TestApp, from: &str, email: &str, password: &str) -> Reply {
    reply(
        app.http
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn fifteen_correct_logins_in_a_row_are_all_200() {
    let app = TestApp::spawn_with(deployed_login_limits(10, 100)).await;
    let user = app.user("often").await;
    for i in 0..15 {
        let r = login_from(&app, "203.0.113.1", &user.email, "correct horse").await;
        assert_eq!(r.status, 200, "login {i}: {r:?}");
    }
}

#[tokio::test]
async fn wrong_guesses_from_one_address_do_not_lock_out_the_owner_elsewhere() {
    let app = TestApp::spawn_with(deployed_login_limits(10, 100)).await;
    let user = app.user("victim").await;
    let attacker = "198.51.100.66";
    for _ in 0..10 {
        let r = login_from(&app, attacker, &user.email, "a wrong guess").await;
        assert_error(&r, 401, "invalid_credentials");
    }
    let r = login_from(&app, attacker, &user.email, "a wrong guess").await;
    assert_error(&r, 429, "rate_limited");
    // Even the right password from the guesser's address waits: the limit is on guesses.
    let r = login_from(&app, attacker, &user.email, "correct horse").await;
    assert_error(&r, 429, "rate_limited");
    // The owner, elsewhere, is not affected.
    let r = login_from(&app, "203.0.113.5", &user.email, "correct horse").await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn the_global_cap_per_email_still_stops_a_distributed_guesser() {
    // 3 failures per (email, address), 5 per email from everywhere.
    let app = TestApp::spawn_with(deployed_login_limits(3, 5)).await;
    let user = app.user("target").await;
    let guess = |from: &'static str| login_from(&app, from, &user.email, "a wrong guess");
    for from in ["198.51.100.1", "198.51.100.1", "198.51.100.1"] {
        assert_error(&guess(from).await, 401, "invalid_credentials");
    }
    assert_error(&guess("198.51.100.1").await, 429, "rate_limited");
    for from in ["198.51.100.2", "198.51.100.2"] {
        assert_error(&guess(from).await, 401, "invalid_credentials");
    }
    // Five failures in all: a third address is stopped before its first guess...
    assert_error(&guess("198.51.100.3").await, 429, "rate_limited");
    // ... and so is the owner, for the rest of the window: the documented price of the cap.
    let r = login_from(&app, "203.0.113.5", &user.email, "correct horse").await;
    assert_error(&r, 429, "rate_limited");
    // Other emails are not affected, from the guessers' addresses either.
    let other = app.user("bystander").await;
    let r = login_from(&app, "198.51.100.3", &other.email, "correct horse").await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn refused_logins_write_nothing() {
    let a = TestApp::spawn_with(deployed_login_limits(3, 100)).await;
    let b = TestApp::spawn_on(&a.database_url, deployed_login_limits(3, 100)).await;
    let user = a.user("quiet").await;
    let db = database(&a.database_url).await;
    let counters = || async {
        let row = db
            .query_one(
                "SELECT count(*), coalesce(sum(attempts), 0)::bigint FROM login_attempts",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1))
    };
    let attacker = "198.51.100.7";
    for _ in 0..3 {
        let r = login_from(&a, attacker, &user.email, "a wrong guess").await;
        assert_error(&r, 401, "invalid_credentials");
    }
    let after_failures = counters().await;
    assert_eq!(
        after_failures.1, 9,
        "three failures counted under the pair, the email and the address"
    );
    // Refused on the process that counted them (from memory) and on the other (which asks
    // PostgreSQL and rolls its count back), with wrong and right passwords alike.
    for (app, password) in [
        (&a, "a wrong guess"),
        (&a, "correct horse"),
        (&b, "a wrong guess"),
        (&b, "correct horse"),
        (&b, "a wrong guess"),
        (&a, "a wrong guess"),
    ] {
        let r = login_from(app, attacker, &user.email, password).await;
        assert_error(&r, 429, "rate_limited");
    }
    assert_eq!(counters().await, after_failures, "a refused attempt wrote");
    // A correct login elsewhere takes its count back: only failures count.
    let r = login_from(&b, "203.0.113.9", &user.email, "correct horse").await;
    assert_eq!(r.status, 200, "{r:?}");
    let (_, attempts) = counters().await;
    assert_eq!(attempts, after_failures.1);
}

#[tokio::test]
async fn equivalent_emails_are_one_account() {
    let app = TestApp::spawn().await;
    let register = |email: &str| {
        app.call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": email, "name": "J", "password": "correct horse"})),
        )
    };
    // José, precomposed (NFC) then decomposed (NFD).
    let r = register("jos\u{e9}@example.com").await;
    assert_eq!(r.status, 201, "{r:?}");
    let jose = r.body["id"].as_i64().unwrap();
    assert_error(
        &register("jose\u{301}@example.com").await,
        409,
        "email_taken",
    );
    assert_error(
        &register("JOSE\u{301}@EXAMPLE.com").await,
        409,
        "email_taken",
    );
    // Full case folding: ß is ss.
    let r = register("stra\u{df}e@example.com").await;
    assert_eq!(r.status, 201, "{r:?}");
    let strasse = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["email"], "stra\u{df}e@example.com", "shown as typed");
    assert_error(&register("STRASSE@example.com").await, 409, "email_taken");
    assert_error(
        &register("stra\u{1e9e}e@example.com").await,
        409,
        "email_taken",
    );
    // Any equivalent form logs in, to the one account.
    for (email, id) in [
        ("jos\u{e9}@example.com", jose),
        ("jose\u{301}@example.com", jose),
        ("JOS\u{c9}@example.com", jose),
        ("STRASSE@example.com", strasse),
        ("strasse@Example.com", strasse),
        ("stra\u{df}e@example.com", strasse),
    ] {
        let r = app.login(email, "correct horse").await;
        assert_eq!(r.status, 200, "{email:?}: {r:?}");
        let me = app
            .get("/auth/me", r.body["access_token"].as_str().unwrap())
            .await;
        assert_eq!(me.body["id"], id, "{email:?}");
    }
}

#[tokio::test]
async fn invisible_characters_in_names_and_emails_are_422() {
    let app = TestApp::spawn().await;
    let register = |email: &str, name: &str| {
        app.call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": email, "name": name, "password": "correct horse"})),
        )
    };
    for name in [
        "Ann\u{200b}",
        "\u{202e}nnA",
        "A\u{2066}nn",
        "\u{feff}Ann",
        "An\u{ad}n",
    ] {
        assert_invalid(&register("ann@example.com", name).await, "name");
    }
    assert_invalid(&register("ann\u{200b}@example.com", "Ann").await, "email");
    // Joiners where they join are writing: an emoji family, a Persian word.
    let r = register(
        "family@example.com",
        "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = register(
        "persian@example.com",
        "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}",
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test]
async fn accounts_from_before_email_keys_stay_reachable() {
    let app = TestApp::spawn().await;
    let older = app.user("legacy").await;
    let newer = app.user("legacy").await;
    // As a database from before keys: no keys, and two addresses that now fold to one.
    let db = database(&app.database_url).await;
    db.execute(
        "UPDATE users SET email_key = NULL,
             email = CASE id WHEN $1 THEN 'stra\u{df}e@example.com' ELSE 'STRASSE@example.com' END
         WHERE id IN ($1, $2)",
        &[&older.id, &newer.id],
    )
    .await
    .unwrap();
    // A new process applies the migration at start-up.
    let next = TestApp::spawn_on(&app.database_url, |_| {}).await;
    let keys: Vec<(i64, Option<String>)> = db
        .query("SELECT id, email_key FROM users ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        keys,
        vec![
            (older.id, Some("strasse@example.com".to_string())),
            (newer.id, None)
        ],
        "the older account keeps the key"
    );
    // Each logs in with the address it registered.
    for (email, id) in [
        ("stra\u{df}e@example.com", older.id),
        ("STRASSE@example.com", newer.id),
        ("strasse@example.com", newer.id),
    ] {
        let r = next.login(email, "correct horse").await;
        assert_eq!(r.status, 200, "{email:?}: {r:?}");
        let me = next
            .get("/auth/me", r.body["access_token"].as_str().unwrap())
            .await;
        assert_eq!(me.body["id"], id, "{email:?}");
    }
    // And the key stays taken.
    let r = next
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "Stra\u{df}e@example.com", "name": "S", "password": "correct horse"})),
        )
        .await;
    assert_error(&r, 409, "email_taken");
}
