//! Everything around the body: query strings (random names and values, percent-encoding
//! junk, repeats, huge values) on every list endpoint and the WebSocket upgrade, path ids of
//! every shape sent byte for byte, unknown paths, odd methods, and raw HTTP garbage.

use futures_util::StreamExt;
use reqwest::Method;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use super::gen::{self, Gen};
use super::rawhttp::{check_raw, raw_exchange, raw_request};
use super::{assert_envelope, expect_error, run_all, send_ok, Arena, CASE_TIMEOUT};
use crate::support::Reply;

/// A list endpoint and its integer parameters `(name, min, max)` in the order its handler
/// reads them.
struct QueryTarget {
    path: String,
    ints: &'static [(&'static str, i64, i64)],
    names: &'static [&'static str],
}

/// rtchat's limit on a request target (path and query): longer ones are 414 `uri_too_long`
/// before anything else is looked at (`router::MAX_URI_BYTES`).
const MAX_TARGET: usize = 8 * 1024;

/// The last value of `name` (the contract: the same name twice, the last wins).
fn last<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// What a list endpoint must answer to `query`: 422 naming the first bad parameter, else
/// the endpoint's own rules.
fn query_oracle(target: &QueryTarget, arena: &Arena, query: &str) -> (Vec<u16>, Vec<String>) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    for (name, min, max) in target.ints {
        if let Some(raw) = last(&pairs, name) {
            match raw.trim().parse::<i64>() {
                Ok(v) if (*min..=*max).contains(&v) => {}
                _ => return (vec![422], vec![name.to_string()]),
            }
        }
    }
    let int = |name: &str| last(&pairs, name).and_then(|v| v.trim().parse::<i64>().ok());
    if target.path.ends_with("/messages") && int("before").is_some() && int("after").is_some() {
        return (vec![422], vec!["after".into()]);
    }
    if target.path == "/chats" {
        if let Some(before) = int("before") {
            let alices = [arena.chat, arena.patch_chat, arena.members_chat];
            if !alices.contains(&before) {
                return (vec![422], vec!["before".into()]);
            }
        }
    }
    if target.path == "/users" {
        if let Some(q) = last(&pairs, "q") {
            if q.chars().count() > 254 {
                return (vec![422], vec!["q".into()]);
            }
            if q.chars().any(char::is_control) {
                return (vec![200, 422], vec![]);
            }
        }
    }
    if target.path == "/events" {
        return (vec![200, 410], vec![]); // 410: `since` ahead of the log
    }
    if target.path == "/search/messages" {
        let Some(q) = last(&pairs, "q") else {
            return (vec![422], vec!["q".into()]);
        };
        let words = q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .count();
        if q.is_empty() || q.chars().count() > 200 || words == 0 || words > 10 {
            return (vec![422], vec!["q".into()]);
        }
        if let Some(chat) = int("chat_id") {
            let alices = [arena.chat, arena.patch_chat, arena.members_chat];
            if !alices.contains(&chat) {
                return (vec![404], vec![]);
            }
        }
    }
    (vec![200], vec![])
}

#[tokio::test]
async fn query_strings_are_parsed_without_a_5xx_and_never_clamped() {
    let arena = Arena::new().await;
    let mut g = Gen::new("queries");
    let targets = [
        QueryTarget {
            path: "/chats".into(),
            ints: &[("limit", 1, 100), ("before", 1, i64::MAX)],
            names: &["limit", "before", "token", "after"],
        },
        QueryTarget {
            path: format!("/chats/{}/messages", arena.chat),
            ints: &[
                ("limit", 1, 100),
                ("before", 0, i64::MAX),
                ("after", 0, i64::MAX),
            ],
            names: &["limit", "before", "after", "token"],
        },
        QueryTarget {
            path: "/users".into(),
            ints: &[("limit", 1, 100)],
            names: &["q", "limit", "token", "q"],
        },
        QueryTarget {
            path: "/search/messages".into(),
            // In the order the handler checks them.
            ints: &[
                ("limit", 1, 100),
                ("before", 0, i64::MAX),
                ("chat_id", 1, i64::MAX),
            ],
            names: &["q", "chat_id", "before", "limit", "token", "q"],
        },
        QueryTarget {
            path: "/unread".into(),
            ints: &[],
            names: &["limit", "token", "since"],
        },
        QueryTarget {
            path: format!("/chats/{}/reads", arena.chat),
            ints: &[],
            names: &["limit", "before", "token"],
        },
        QueryTarget {
            path: "/events".into(),
            ints: &[("since", 0, i64::MAX), ("limit", 1, 100)],
            names: &["since", "limit", "token"],
        },
    ];
    let mut cases = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        for n in 0..gen::cases(100) {
            let query = g.query(target.names);
            // One in eight without the header: then only `?token=` could authenticate.
            cases.push((t, query, n % 8 != 0));
        }
    }
    run_all(cases, |(t, query, with_header)| {
        let (arena, target) = (&arena, &targets[t]);
        async move {
            let url = reqwest::Url::parse(&format!("{}{}?{query}", arena.app.base, target.path))
                .expect("a URL");
            let sent = url.query().unwrap_or("").to_string();
            let what = format!("GET {}?{sent} (header: {with_header})", target.path);
            let mut request = arena.http.get(url);
            if with_header {
                request = request.bearer_auth(&arena.alice.token);
            }
            let r = send_ok(&what, request).await;
            if target.path.len() + 1 + sent.len() > MAX_TARGET {
                expect_error(&what, &r, 414, "uri_too_long", &[]);
                return;
            }
            if !with_header {
                expect_error(&what, &r, 401, "unauthorized", &[]);
                return;
            }
            let (statuses, fields) = query_oracle(target, arena, &sent);
            assert!(
                statuses.contains(&r.status),
                "{what}: expected one of {statuses:?}, got {r:?}"
            );
            if r.status == 422 {
                let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
                expect_error(&what, &r, 422, "validation_error", &fields);
            }
        }
    })
    .await;
    arena.still_works("the query strings").await;

    // The WebSocket upgrade reads `token` and `since` from its query.
    let mut cases = Vec::new();
    for n in 0..gen::cases(100) / 2 {
        cases.push((g.query(&["since", "token", "since"]), n % 4 != 0));
    }
    run_all(cases, |(query, with_header)| {
        let arena = &arena;
        async move {
            let url = reqwest::Url::parse(&format!("ws://{}/ws/notif?{query}", arena.app.addr))
                .expect("a URL");
            let sent = url.query().unwrap_or("").to_string();
            let what = format!("upgrade /ws/notif?{sent} (header: {with_header})");
            let pairs: Vec<(String, String)> = form_urlencoded::parse(sent.as_bytes())
                .into_owned()
                .collect();
            let since_ok =
                last(&pairs, "since").is_none_or(|s| s.trim().parse::<i64>().is_ok_and(|v| v >= 0));
            let expected = match (with_header, since_ok) {
                _ if "/ws/notif?".len() + sent.len() > MAX_TARGET => 414,
                (false, _) => 401,
                (true, true) => 101,
                (true, false) => 422,
            };
            let bearer = format!("Bearer {}", arena.alice.token).into_bytes();
            let headers = if with_header { vec![bearer] } else { vec![] };
            let status = upgrade(url.as_str(), &headers, &what).await;
            assert_eq!(status, expected, "{what}");
        }
    })
    .await;
    arena.still_works("the WebSocket query strings").await;
}

/// Attempts a WebSocket handshake with these `Authorization` header values; returns the
/// status (101 after closing the socket again) having checked an error's envelope.
pub async fn upgrade(url: &str, authorization: &[Vec<u8>], what: &str) -> u16 {
    let mut request = url.into_client_request().expect("a client request");
    for value in authorization {
        request.headers_mut().append(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(value).expect("a header value"),
        );
    }
    let attempt = tokio::time::timeout(CASE_TIMEOUT, tokio_tungstenite::connect_async(request));
    match attempt.await {
        Err(_) => panic!("{what}: no handshake answer within {CASE_TIMEOUT:?}"),
        Ok(Ok((mut ws, _))) => {
            // Close it properly, so the per-user socket count goes down again.
            let _ = ws.close(None).await;
            let _ =
                tokio::time::timeout(CASE_TIMEOUT, async { while ws.next().await.is_some() {} })
                    .await;
            101
        }
        Ok(Err(WsError::Http(response))) => {
            let status = response.status().as_u16();
            let body = response.body().clone().unwrap_or_default();
            assert!(status < 500, "{what}: {status} {}", gen::show(&body));
            let reply = Reply {
                status,
                headers: response.headers().clone(),
                body: serde_json::from_slice(&body).unwrap_or_default(),
            };
            assert_envelope(what, &reply, &body);
            status
        }
        Ok(Err(e)) => panic!("{what}: the handshake failed without an HTTP answer: {e:?}"),
    }
}

/// Path ids that are not positive 64-bit integers, as they go on the wire.
const BAD_IDS: &[&str] = &[
    "abc",
    "-1",
    "0",
    "-0",
    "00",
    "1.0",
    "1e3",
    "0x1",
    "9223372036854775808",
    "-9223372036854775808",
    "99999999999999999999999",
    "%31",
    "1%00",
    "%00",
    "%2F",
    "1%2F2",
    "%2e%2e",
    "..",
    ".",
    "%20",
    "1%20",
    "%201",
    "%D0%BF",
    "%F0%9F%A6%80",
    "%zz",
    "%",
    "1;2",
    "1,2",
    "(1)",
    "'",
    "~",
    "1!",
    "*",
    "$",
    "@",
    "1e",
    "true",
    "null",
    "NaN",
];

/// The routes with ids: template segments (`{name}` is an id) and a method that reaches
/// the handler, with the body it needs.
const ID_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/users/{user_id}", ""),
    ("GET", "/chats/{chat_id}", ""),
    ("PATCH", "/chats/{chat_id}", "{}"),
    ("DELETE", "/chats/{chat_id}", ""),
    ("POST", "/chats/{chat_id}/members", "{\"user_ids\":[1]}"),
    ("DELETE", "/chats/{chat_id}/members/{user_id}", ""),
    ("GET", "/chats/{chat_id}/messages", ""),
    ("POST", "/chats/{chat_id}/messages", "{\"text\":\"x\"}"),
    (
        "PATCH",
        "/chats/{chat_id}/messages/{message_id}",
        "{\"text\":\"x\"}",
    ),
    ("DELETE", "/chats/{chat_id}/messages/{message_id}", ""),
    (
        "PUT",
        "/chats/{chat_id}/messages/{message_id}/reactions/%F0%9F%91%8D",
        "",
    ),
    (
        "DELETE",
        "/chats/{chat_id}/messages/{message_id}/reactions/%F0%9F%91%8D",
        "",
    ),
    ("POST", "/chats/{chat_id}/read", "{\"message_id\":1}"),
];

#[tokio::test]
async fn path_ids_unknown_paths_and_odd_methods_get_422_404_405_never_5xx() {
    let arena = Arena::new().await;
    let mut g = Gen::new("paths");
    let token = arena.alice.token.clone();

    // Ids: one bad id per case, the others valid, sent byte for byte.
    let mut cases = Vec::new();
    for (method, template, body) in ID_ROUTES {
        let params: Vec<&str> = template.split('/').filter(|s| s.starts_with('{')).collect();
        for (p, param) in params.iter().enumerate() {
            let mut ids: Vec<String> = BAD_IDS.iter().map(|s| s.to_string()).collect();
            ids.push("9".repeat(5000));
            for _ in 0..gen::cases(100) / 10 {
                ids.push(match g.below(3) {
                    0 => g.query_value(),
                    1 => gen::percent_encode(&g.string()),
                    _ => g.int().to_string(),
                });
            }
            for id in ids {
                cases.push((*method, *template, *body, p, param.to_string(), id));
            }
        }
    }
    run_all(cases, |(method, template, body, p, param, id)| {
        let (arena, token) = (&arena, &token);
        async move {
            let mut index = 0;
            let path: String = template
                .split('/')
                .map(|segment| {
                    if !segment.starts_with('{') {
                        return segment.to_string();
                    }
                    index += 1;
                    if index - 1 == p {
                        id.clone()
                    } else {
                        arena.chat.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let what = format!("{method} {}", gen::show(path.as_bytes()));
            let exchange = raw_exchange(
                arena.app.addr,
                raw_request(method, &path, Some(token), body),
                None,
            )
            .await;
            let responses = check_raw(&what, &exchange, true);
            let status = responses[0].status;
            let valid = id.parse::<i64>().is_ok_and(|v| v > 0);
            if path.len() > MAX_TARGET {
                // Over the request target limit: refused before the path is looked at.
                let body: serde_json::Value =
                    serde_json::from_slice(&responses[0].body).unwrap_or_default();
                assert!(
                    status == 414 && body["code"] == "uri_too_long",
                    "{what}: expected 414 uri_too_long, got {responses:?}"
                );
            } else if id.is_empty() {
                assert!([404, 422].contains(&status), "{what}: {responses:?}");
            } else if valid {
                assert_ne!(status, 422, "{what}: a valid id refused: {responses:?}");
            } else {
                // The ids before this one are valid: this one is the first the handler
                // refuses, naming it.
                let body: serde_json::Value =
                    serde_json::from_slice(&responses[0].body).unwrap_or_default();
                assert!(
                    status == 422 && body["errors"][0]["field"] == param.trim_matches(['{', '}']),
                    "{what}: expected 422 naming {param}, got {responses:?}"
                );
            }
        }
    })
    .await;
    arena.still_works("the path ids").await;

    // Unknown paths: 404 whatever the method, including dot segments and encoded slashes;
    // and files the asset routes do not have (those routes take GET only).
    let unknown = [
        "/nope",
        "/auth",
        "/auth/",
        "/chats/",
        "//chats",
        "/CHATS",
        "/chats%2F1",
        "/%2e%2e/chats",
        "/chats/../users",
        "/chats/1/../../users",
        "/chats/1/unknown",
        "/chats/1/messages/2/x",
        "/users/1/",
        "/docs/../../etc/passwd",
        "/static/",
        "/ws/notif/x",
        "/healthz/",
        "/%00",
        "/chats/1/read/",
        "/events/1",
    ];
    let methods = ["GET", "POST", "DELETE", "PUT", "FOO"];
    let mut cases = Vec::new();
    for path in unknown {
        for method in methods {
            cases.push((method, path.to_string()));
        }
    }
    for file in [
        "/static/..%2fCargo.toml",
        "/static/..%5c..%5cCargo.toml",
        "/docs/nope.js",
        "/docs/%00",
        "/static/app.js.map",
    ] {
        cases.push(("GET", file.to_string()));
    }
    for _ in 0..gen::cases(100) / 2 {
        let depth = 1 + g.below(4);
        let path: String = (0..depth)
            .map(|_| format!("/{}", gen::percent_encode(&g.string())))
            .collect();
        cases.push(("GET", format!("/x{path}")));
    }
    run_all(cases, |(method, path)| {
        let (arena, token) = (&arena, &token);
        async move {
            let what = format!("{method} {}", gen::show(path.as_bytes()));
            let exchange = raw_exchange(
                arena.app.addr,
                raw_request(method, &path, Some(token), ""),
                None,
            )
            .await;
            let responses = check_raw(&what, &exchange, true);
            let expected = if path.len() > MAX_TARGET { 414 } else { 404 };
            assert_eq!(responses[0].status, expected, "{what}: {responses:?}");
        }
    })
    .await;
    arena.still_works("the unknown paths").await;

    // Methods a route does not allow: 405 with exactly the route's methods in `Allow`, plus
    // HEAD wherever GET is and OPTIONS (the preflight) everywhere.
    let routes: Vec<(String, &[&str])> = vec![
        ("/".into(), &["GET"]),
        ("/healthz".into(), &["GET"]),
        ("/metrics".into(), &["GET"]),
        ("/auth/register".into(), &["POST"]),
        ("/auth/login".into(), &["POST"]),
        ("/auth/refresh".into(), &["POST"]),
        ("/auth/logout".into(), &["POST"]),
        ("/auth/me".into(), &["GET"]),
        ("/users".into(), &["GET"]),
        (format!("/users/{}", arena.bob.id), &["GET"]),
        ("/chats".into(), &["GET", "POST"]),
        (
            format!("/chats/{}", arena.chat),
            &["GET", "PATCH", "DELETE"],
        ),
        (format!("/chats/{}/members", arena.chat), &["POST"]),
        (
            format!("/chats/{}/members/{}", arena.chat, arena.bob.id),
            &["DELETE"],
        ),
        (format!("/chats/{}/messages", arena.chat), &["GET", "POST"]),
        (
            format!("/chats/{}/messages/{}", arena.chat, arena.message),
            &["PATCH", "DELETE"],
        ),
        (format!("/chats/{}/read", arena.chat), &["POST"]),
        ("/events".into(), &["GET"]),
        ("/ws/notif".into(), &["GET"]),
    ];
    let odd = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO", "get",
        "M-SEARCH", "PROPFIND", "BREW",
    ];
    let mut cases = Vec::new();
    for (path, allowed) in &routes {
        for method in odd {
            let answered = allowed.contains(&method)
                || method == "OPTIONS"
                || (method == "HEAD" && allowed.contains(&"GET"));
            if !answered {
                cases.push((method, path.clone(), *allowed));
            }
        }
    }
    let long_method: &'static str = "X".repeat(100).leak();
    cases.push((long_method, "/chats".into(), &["GET", "POST"]));
    run_all(cases, |(method, path, allowed)| {
        let arena = &arena;
        async move {
            let what = format!("{method} {path}");
            let request = arena
                .http
                .request(
                    Method::from_bytes(method.as_bytes()).expect("a method token"),
                    arena.url(&path),
                )
                .bearer_auth(&arena.alice.token);
            let r = send_ok(&what, request).await;
            if method == "HEAD" {
                // The 405 of a HEAD has no body to carry the envelope.
                assert_eq!(r.status, 405, "{what}: {r:?}");
            } else {
                expect_error(&what, &r, 405, "method_not_allowed", &[]);
            }
            let allow = r
                .headers
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let mut listed: Vec<&str> = allow.split(',').map(str::trim).collect();
            listed.sort_unstable();
            let mut expected = allowed.to_vec();
            if allowed.contains(&"GET") {
                expected.push("HEAD");
            }
            expected.push("OPTIONS");
            expected.sort_unstable();
            assert_eq!(listed, expected, "{what}: Allow {allow:?}");
        }
    })
    .await;
    arena.still_works("the odd methods").await;
}
