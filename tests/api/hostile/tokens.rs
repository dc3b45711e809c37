//! Tokens: `alg: none` in its spellings, other algorithms (HS384/HS512 with the right secret,
//! RS256/ES256 headers over an HMAC — the algorithm-confusion attack), the wrong secret,
//! expired ones, claims of the wrong type, missing claims, tampered parts, malformed and
//! oversized tokens, non-ASCII, other auth schemes and several Authorization headers — in
//! the header and in `?token=`, for REST and for the WebSocket upgrade, which must refuse
//! them with 401 before the handshake.

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::forge::{b64, bad_tokens, claims_of, odd_but_signed, signed, test_secret};
use super::gen::{self, Gen};
use super::rawhttp::{check_raw, raw_exchange};
use super::requests::upgrade;
use super::{expect_error, run_all, send_ok, Arena};

/// How a request carries the token under test.
#[derive(Clone, Copy, Debug)]
enum Carrier {
    Header,
    Query,
}

/// What a bad token gets: 401, unless it makes the request head too large for rtchat's
/// limits (`router.rs`), which are checked first: a target over 8 KiB is 414, headers over
/// 32 KiB are 431.
fn over_head_limits(token: &str, path: &str, carrier: Carrier) -> (u16, &'static str) {
    match carrier {
        Carrier::Query => {
            let mut url = reqwest::Url::parse(&format!("http://x{path}")).expect("URL");
            url.query_pairs_mut().append_pair("token", token);
            if url.path().len() + 1 + url.query().map_or(0, str::len) > 8 * 1024 {
                return (414, "uri_too_long");
            }
        }
        Carrier::Header if token.len() > 32 * 1024 => {
            return (431, "request_header_fields_too_large")
        }
        Carrier::Header => {}
    }
    (401, "unauthorized")
}

#[tokio::test]
async fn bad_tokens_are_401_in_the_header_and_the_query_for_rest_and_websocket() {
    let arena = Arena::new().await;
    let chat = arena.chat;
    let mut tokens = bad_tokens(&arena);
    let mut g = Gen::new("tokens");
    for _ in 0..gen::cases(100) / 2 {
        let token = match g.below(3) {
            0 => g.string(),
            1 => {
                let parts: Vec<String> = (0..g.below(5)).map(|_| b64(&g.bytes(60))).collect();
                parts.join(".")
            }
            _ => {
                // The real token with one character changed.
                let mut bytes = arena.alice.token.clone().into_bytes();
                let at = g.below(bytes.len());
                bytes[at] = g.pick(b"AZaz09-_.=+/ ");
                String::from_utf8(bytes).expect("ASCII")
            }
        };
        if token != arena.alice.token {
            tokens.push(("random".into(), token));
        }
    }
    let rest: Vec<(reqwest::Method, String)> = vec![
        (reqwest::Method::GET, "/auth/me".into()),
        (reqwest::Method::GET, "/chats".into()),
        (reqwest::Method::POST, format!("/chats/{chat}/messages")),
        (reqwest::Method::POST, "/auth/logout".into()),
        (reqwest::Method::GET, "/events".into()),
    ];
    let mut cases = Vec::new();
    for (name, token) in &tokens {
        for (method, path) in &rest {
            for carrier in [Carrier::Header, Carrier::Query] {
                cases.push((
                    name.clone(),
                    token.clone(),
                    method.clone(),
                    path.clone(),
                    carrier,
                ));
            }
        }
    }
    run_all(cases, |(name, token, method, path, carrier)| {
        let arena = &arena;
        async move {
            let what = format!(
                "{method} {path} with {name} ({carrier:?}): {}",
                gen::show(token.as_bytes())
            );
            let mut request = match carrier {
                Carrier::Header => {
                    let value = format!("Bearer {token}");
                    let Ok(value) = reqwest::header::HeaderValue::from_bytes(value.as_bytes())
                    else {
                        return; // not sendable as a header (a NUL): hyper's parser's business
                    };
                    arena
                        .http
                        .request(method, arena.url(&path))
                        .header("authorization", value)
                }
                Carrier::Query => arena
                    .http
                    .request(method, arena.url(&path))
                    .query(&[("token", token.as_str())]),
            };
            if path.ends_with("/messages") {
                request = request.json(&json!({"text": "should never be sent"}));
            }
            let (status, code) = over_head_limits(&token, &path, carrier);
            let r = send_ok(&what, request).await;
            expect_error(&what, &r, status, code, &[]);
        }
    })
    .await;
    arena.still_works("the bad tokens over REST").await;

    // The WebSocket upgrade: 401 before the handshake, from the query and from the header.
    let mut cases = Vec::new();
    for (name, token) in &tokens {
        cases.push((name.clone(), token.clone(), Carrier::Query));
        cases.push((name.clone(), token.clone(), Carrier::Header));
    }
    run_all(cases, |(name, token, carrier)| {
        let arena = &arena;
        async move {
            let what = format!(
                "upgrade with {name} ({carrier:?}): {}",
                gen::show(token.as_bytes())
            );
            let (url, headers) = match carrier {
                Carrier::Query => {
                    let mut url = reqwest::Url::parse(&format!("ws://{}/ws/notif", arena.app.addr))
                        .expect("URL");
                    url.query_pairs_mut().append_pair("token", &token);
                    (url.to_string(), vec![])
                }
                Carrier::Header => {
                    let value = format!("Bearer {token}").into_bytes();
                    // The WebSocket client sends only visible ASCII (REST covers the rest).
                    if !value.iter().all(|b| (b' '..=b'~').contains(b)) {
                        return;
                    }
                    (format!("ws://{}/ws/notif", arena.app.addr), vec![value])
                }
            };
            let (status, _) = over_head_limits(&token, "/ws/notif", carrier);
            assert_eq!(upgrade(&url, &headers, &what).await, status, "{what}");
        }
    })
    .await;
    arena
        .still_works("the bad tokens on the WebSocket upgrade")
        .await;
}

#[tokio::test]
async fn auth_schemes_and_several_authorization_headers_are_read_as_the_contract_says() {
    let arena = Arena::new().await;
    let good = arena.alice.token.clone();
    let bad = "not.a.token".to_string();
    // (Authorization values in order, whether the caller is alice)
    let cases: Vec<(Vec<String>, bool)> = vec![
        (vec![format!("Bearer {good}")], true),
        (vec![format!("bearer {good}")], true),
        (vec![format!("BEARER {good}")], true),
        (vec![format!("Bearer  {good} ")], true),
        (vec![good.clone()], false),
        (vec!["Bearer".into()], false),
        (vec!["Bearer ".into()], false),
        (vec![format!("Bearer\t{good}")], false),
        (vec![format!("Bearer {good} extra")], false),
        (
            vec![format!("Basic {}", b64(b"alice:correct horse"))],
            false,
        ),
        (vec![format!("Token {good}")], false),
        (
            vec![format!("Bearer {bad}"), format!("Bearer {good}")],
            false,
        ),
        (vec![format!("Basic eA=="), format!("Bearer {good}")], false),
        (vec![String::new()], false),
    ];
    for (values, accepted) in &cases {
        for (path, query) in [("/auth/me", None), ("/auth/me", Some(&good))] {
            let what = format!(
                "GET {path} with Authorization {values:?}, ?token= {}",
                query.is_some()
            );
            let mut request = arena.http.get(arena.url(path));
            if let Some(token) = query {
                request = request.query(&[("token", token)]);
            }
            for value in values {
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            let r = send_ok(&what, request).await;
            // The header wins over the query, even when it is bad.
            if *accepted {
                assert_eq!(r.status, 200, "{what}: {r:?}");
            } else {
                expect_error(&what, &r, 401, "unauthorized", &[]);
            }
        }
        let what = format!("upgrade with Authorization {values:?}");
        let headers: Vec<Vec<u8>> = values.iter().map(|v| v.clone().into_bytes()).collect();
        let url = format!("ws://{}/ws/notif?token={good}", arena.app.addr);
        let status = upgrade(&url, &headers, &what).await;
        assert_eq!(status, if *accepted { 101 } else { 401 }, "{what}");
    }
    // Non-ASCII in the header: not a token.
    let r = send_ok(
        "Authorization with Latin-1 bytes",
        arena.http.get(arena.url("/auth/me")).header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xe9\xff").expect("obs-text"),
        ),
    )
    .await;
    expect_error(
        "Authorization with Latin-1 bytes",
        &r,
        401,
        "unauthorized",
        &[],
    );
    arena.still_works("the auth schemes").await;
}

#[tokio::test]
async fn odd_tokens_signed_with_the_right_secret_never_get_a_5xx() {
    let arena = Arena::new().await;
    let chat = arena.chat;
    let tokens = odd_but_signed(&arena);
    for (name, token) in &tokens {
        for (method, path, body) in [
            ("GET", "/auth/me".to_string(), None),
            ("GET", "/chats".to_string(), None),
            (
                "POST",
                "/chats".to_string(),
                Some(json!({"type": "group", "participant_ids": []})),
            ),
            (
                "POST",
                format!("/chats/{chat}/messages"),
                Some(json!({"text": "odd"})),
            ),
            ("GET", "/events".to_string(), None),
        ] {
            let what = format!("{method} {path} with {name}");
            let mut request = arena
                .http
                .request(method.parse().expect("method"), arena.url(&path))
                .bearer_auth(token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            send_ok(&what, request).await;
        }
        let url = format!("ws://{}/ws/notif?token={token}", arena.app.addr);
        let status = upgrade(&url, &[], &format!("upgrade with {name}")).await;
        assert!(
            status == 101 || status == 401,
            "upgrade with {name}: {status}"
        );
    }
    arena.still_works("the odd signed tokens").await;
}

/// `ws/session.rs` computes the expiry deadline as `Instant::now() + (exp - now)`, which
/// overflows and panics the session task for an `exp` near `u64::MAX`. Only a token signed
/// with the server's secret can carry one, so it is not reachable from outside; the fix
/// belongs to the session (a checked or capped add). Un-ignore once it is in.
#[tokio::test]
async fn a_socket_whose_token_expires_at_u64_max_does_not_panic() {
    let arena = Arena::new().await;
    let good = claims_of(&arena.alice.token);
    let claims =
        json!({"sub": good["sub"], "iat": good["iat"], "exp": u64::MAX, "sid": good["sid"]});
    let token = signed(
        &json!({"alg": "HS256"}),
        &claims,
        Algorithm::HS256,
        test_secret().as_bytes(),
    );
    let url = format!("ws://{}/ws/notif?token={token}", arena.app.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("handshake");
    let ready =
        tokio::time::timeout(super::CASE_TIMEOUT, futures_util::StreamExt::next(&mut ws)).await;
    assert!(matches!(ready, Ok(Some(Ok(_)))), "ready: {ready:?}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    arena.still_works("a token expiring at u64::MAX").await;
}

#[tokio::test]
async fn megabyte_tokens_are_refused_by_hyper_with_a_4xx() {
    let arena = Arena::new().await;
    let huge = "h".repeat(1 << 20);
    for (name, request) in [
        (
            "a 1 MiB Authorization header",
            format!("GET /auth/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {huge}\r\n\r\n"),
        ),
        (
            "a 1 MiB ?token=",
            format!("GET /auth/me?token={huge} HTTP/1.1\r\nHost: x\r\n\r\n"),
        ),
        (
            "a 1 MiB ?token= on the upgrade",
            format!("GET /ws/notif?token={huge} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        ),
        (
            "a 1 MiB Authorization header on the upgrade",
            format!("GET /ws/notif HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {huge}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        ),
    ] {
        let exchange = raw_exchange(arena.app.addr, request.into_bytes(), None).await;
        let responses = check_raw(name, &exchange, false);
        assert!(exchange.closed, "{name}: the connection stayed open");
        assert!(!responses.is_empty(), "{name}: no answer");
        for r in &responses {
            assert!((400..500).contains(&r.status), "{name}: {r:?}");
        }
    }
    arena.still_works("the megabyte tokens").await;
}
