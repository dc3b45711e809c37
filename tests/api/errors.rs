//! The error envelope at the edges: unknown paths, wrong methods, huge and malformed bodies,
//! bad query parameters and ids; and the 503s and 500s, each naming its own cause.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let user = app.user("e").await;
    let r = app.get("/nope", &user.token).await;
    assert_error(&r, 404, "not_found");
    let r = app.call("PUT", "/chats", Some(&user.token), None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "GET, HEAD, POST, OPTIONS");
    let r = app.call("POST", "/auth/me", Some(&user.token), None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "GET, HEAD, OPTIONS");
    let r = app.call("GET", "/auth/login", None, None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "POST, OPTIONS");
    // HEAD where there is no GET is a 405 like any other method (without the body).
    let r = app.call("HEAD", "/auth/login", None, None).await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.headers.get("allow").unwrap(), "POST, OPTIONS");
    // The preflight lists the same.
    let r = app.call("OPTIONS", "/chats", None, None).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.headers.get("allow").unwrap(), "GET, HEAD, POST, OPTIONS");
}

#[tokio::test]
async fn head_is_answered_wherever_get_is() {
    let app = TestApp::spawn().await;
    let user = app.user("h").await;
    let chat = app.group(&user, &[]).await;
    for (path, token) in [
        ("/healthz".to_string(), None),
        ("/readyz".to_string(), None),
        ("/".to_string(), None),
        ("/openapi.yaml".to_string(), None),
        ("/auth/me".to_string(), Some(user.token.as_str())),
        ("/auth/me".to_string(), None),
        (format!("/chats/{chat}"), Some(user.token.as_str())),
        (format!("/chats/{chat}/messages"), Some(user.token.as_str())),
        ("/events".to_string(), Some(user.token.as_str())),
        (format!("/users/{}", user.id), Some(user.token.as_str())),
    ] {
        let send = |method: reqwest::Method| {
            let mut req = app.http.request(method, app.url(&path));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            req.send()
        };
        let get = send(reqwest::Method::GET).await.unwrap();
        let head = send(reqwest::Method::HEAD).await.unwrap();
        let what = format!("HEAD {path} (token: {})", token.is_some());
        assert_eq!(head.status(), get.status(), "{what}");
        assert_ne!(head.status(), 405, "{what}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{what}"
        );
        assert_eq!(
            head.headers().get("www-authenticate"),
            get.headers().get("www-authenticate"),
            "{what}"
        );
        let get_length = get.bytes().await.unwrap().len();
        assert_eq!(
            head.headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()),
            Some(get_length.to_string().as_str()),
            "{what}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{what}");
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = TestApp::spawn().await;
    let user = app.user("big").await;
    let chat = app.group(&user, &[]).await;
    let huge = json!({ "text": "x".repeat(70 * 1024) });
    let r = app
        .post(&format!("/chats/{chat}/messages"), &user.token, huge)
        .await;
    assert_error(&r, 413, "payload_too_large");
    let r = app
        .call(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": "a@b.c", "name": "n", "password": "y".repeat(100_000)})),
        )
        .await;
    assert_error(&r, 413, "payload_too_large");
}

#[tokio::test]
async fn malformed_json_is_400_and_wrong_types_are_422() {
    let app = TestApp::spawn().await;
    let user = app.user("json").await;
    let chat = app.group(&user, &[]).await;
    let path = format!("/chats/{chat}/messages");
    for raw in [
        "{",
        "not json",
        "{\"text\": }",
        "",
        "[1,2",
        "{\"text\":\"a\"} trailing",
    ] {
        let r = reply(
            app.http
                .post(app.url(&path))
                .bearer_auth(&user.token)
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(&r, 400, "invalid_json");
    }
    let r = app.post(&path, &user.token, json!({"text": 42})).await;
    assert_invalid(&r, "text");
    let r = app.post(&path, &user.token, json!([1, 2])).await;
    assert_error(&r, 422, "validation_error");
    let r = app
        .post(
            "/chats",
            &user.token,
            json!({"type": "group", "participant_ids": [99999999999999999999u128 as f64]}),
        )
        .await;
    assert_invalid(&r, "participant_ids");
    let r = app
        .post(
            "/chats",
            &user.token,
            json!({"type": "channel", "participant_ids": []}),
        )
        .await;
    assert_invalid(&r, "type");
    let r = reply(
        app.http
            .post(app.url(&path))
            .bearer_auth(&user.token)
            .header("content-type", "text/plain")
            .body("{\"text\":\"hi\"}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 415, "unsupported_media_type");
}

#[tokio::test]
async fn bad_query_parameters_and_path_ids_are_422_never_clamped() {
    let app = TestApp::spawn().await;
    let user = app.user("q").await;
    let chat = app.group(&user, &[]).await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "before=-5",
        "before=x",
        "after=1.5",
        "before=1&after=2",
    ] {
        let r = app
            .get(&format!("/chats/{chat}/messages?{query}"), &user.token)
            .await;
        assert_eq!(r.status, 422, "{query}: {r:?}");
    }
    assert_invalid(&app.get("/chats?limit=1000", &user.token).await, "limit");
    assert_invalid(&app.get("/users?limit=0", &user.token).await, "limit");
    assert_invalid(&app.get("/events?since=-1", &user.token).await, "since");
    assert_invalid(&app.get("/chats/abc", &user.token).await, "chat_id");
    assert_invalid(
        &app.get("/chats/99999999999999999999999", &user.token).await,
        "chat_id",
    );
    assert_invalid(&app.get("/chats/0", &user.token).await, "chat_id");
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let r = app.call("GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200);
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("rtchat_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/readyz\""), "{text}");
    assert!(text.contains("rtchat_db_pool_connections"));
}

#[tokio::test]
async fn a_full_process_refuses_sockets_with_503_server_busy() {
    use crate::wsclient::WsClient;
    let app = TestApp::spawn_with(|c| c.max_sockets = 1).await;
    let (a, b) = (app.user("a").await, app.user("b").await);
    let _one = WsClient::connect(&app, &a.token, None).await;
    let err = tokio_tungstenite::connect_async(app.ws_url(&format!("/ws/notif?token={}", b.token)))
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
        panic!("expected an HTTP refusal, got {err:?}");
    };
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap_or_default();
    assert_eq!(response.status(), 503, "{body}");
    assert_eq!(body["code"], "server_busy", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("sockets")),
        "{body}"
    );
}

/// The database's own failures, classified: a connection that is gone or refused is 503
/// `unavailable` (retry), a query rtchat got wrong is 500 `internal_error` (a bug).
#[tokio::test]
async fn database_errors_without_a_sqlstate_are_bugs_unless_the_connection_is_gone() {
    use rtchat::testing::ApiError;
    use std::str::FromStr;
    let url = fresh_database().await;
    let config = tokio_postgres::Config::from_str(&url).unwrap();
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    let classify = |e: tokio_postgres::Error| {
        let shown = format!("{e:?}");
        let api = ApiError::from(e);
        (api.status().as_u16(), api.code(), shown)
    };

    // A row count rtchat did not expect: no SQLSTATE, and the database is fine.
    let e = client
        .query_one("SELECT 1 WHERE false", &[])
        .await
        .unwrap_err();
    let (status, code, shown) = classify(e);
    assert_eq!((status, code), (500, "internal_error"), "{shown}");
    // A column read as the wrong type.
    let row = client.query_one("SELECT 'x'::text", &[]).await.unwrap();
    let e = row.try_get::<_, i64>(0).unwrap_err();
    let (status, code, shown) = classify(e);
    assert_eq!((status, code), (500, "internal_error"), "{shown}");
    // A SQLSTATE outside the retryable ones (22012, division by zero).
    let e = client.query_one("SELECT 1/0", &[]).await.unwrap_err();
    let (status, code, shown) = classify(e);
    assert_eq!((status, code), (500, "internal_error"), "{shown}");

    // The backend terminated (57P01), then the connection closed under the client.
    let (admin, admin_conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(admin_conn);
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let terminated = client.query_one("SELECT pg_sleep(30)", &[]);
    let (result, _) = tokio::join!(terminated, async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
    });
    let (status, code, shown) = classify(result.unwrap_err());
    assert_eq!((status, code), (503, "unavailable"), "{shown}");
    let _ = tokio::time::timeout(WAIT, connection).await;
    let e = client.query_one("SELECT 1", &[]).await.unwrap_err();
    assert!(e.is_closed(), "{e:?}");
    let (status, code, shown) = classify(e);
    assert_eq!((status, code), (503, "unavailable"), "{shown}");

    // Nothing listening where the database should be.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=x dbname=x"),
        tokio_postgres::NoTls,
    )
    .await
    .err()
    .expect("nothing listens there");
    let (status, code, shown) = classify(e);
    assert_eq!((status, code), (503, "unavailable"), "{shown}");
}

/// A database that stops taking connections is a 503 `unavailable` over HTTP, and the
/// server recovers when it is back.
#[tokio::test]
async fn a_database_outage_is_503_unavailable_and_recovers() {
    use std::str::FromStr;
    let app = TestApp::spawn_with(|c| c.db_pool_size = 1).await;
    let user = app.user("outage").await;
    let config = tokio_postgres::Config::from_str(&app.database_url).unwrap();
    let name = config.get_dbname().unwrap().to_string();
    let mut admin_config = config.clone();
    admin_config.dbname("postgres");
    let (admin, connection) = admin_config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
        ))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap();
    let r = app.get("/auth/me", &user.token).await;
    assert_error(&r, 503, "unavailable");
    assert!(
        r.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("database")),
        "{r:?}"
    );
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..100 {
        let r = app.get("/auth/me", &user.token).await;
        if r.status == 200 {
            return;
        }
        last = Some(r);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the server did not recover: {last:?}");
}

#[tokio::test]
async fn a_bad_path_id_is_checked_after_the_token() {
    // The router parses path ids before any handler runs; the token is still checked first,
    // as when each handler parsed its own ids: a stranger learns nothing from a 422.
    let app = TestApp::spawn().await;
    let user = app.user("bad-id-order").await;
    for (method, path) in [
        ("GET", "/chats/abc"),
        ("DELETE", "/chats/1/members/0"),
        ("PATCH", "/chats/0/messages/1"),
        ("GET", "/users/-1"),
    ] {
        let r = app.call(method, path, None, None).await;
        assert_error(&r, 401, "unauthorized");
        let r = app.call(method, path, Some(&user.token), None).await;
        assert_eq!(r.status, 422, "{method} {path}: {r:?}");
    }
}
