//! Raw HTTP over TCP, byte for byte: a client for requests no HTTP library would send and
//! a parser for what comes back; and the garbage itself — broken request lines and headers,
//! smuggling-style lengths, HTTP/2 and TLS where HTTP/1.1 is expected, random and mutated
//! bytes — plus requests that stall half-way.

use std::time::Duration;

use serde_json::Value;

use super::gen::{self, Gen};
use super::{assert_envelope, run_all, Arena, CASE_TIMEOUT};
use crate::support::Reply;

/// What a raw TCP exchange brought back.
pub struct RawExchange {
    /// Every byte the server sent before closing (or before the timeout).
    pub data: Vec<u8>,
    /// Whether the server closed (or reset) the connection within the timeout.
    pub closed: bool,
}

/// One HTTP response parsed out of raw bytes.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Writes `request` on a fresh connection and reads until the server closes it. With
/// `half_close` the write side is shut after that delay (for garbage that the server may
/// still be waiting to see the end of); otherwise the request should say `Connection: close`.
pub async fn raw_exchange(
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    half_close: Option<Duration>,
) -> RawExchange {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::time::timeout(CASE_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server may answer and close before reading it all: write errors are expected.
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        if let Some(delay) = half_close {
            tokio::time::sleep(delay).await;
            let _ = writer.shutdown().await;
        } else {
            // Keep the write side open until the server closes.
            tokio::time::sleep(CASE_TIMEOUT * 2).await;
        }
        drop(writer);
    });
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + CASE_TIMEOUT;
    let closed = loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
        }
    };
    writing.abort();
    RawExchange { data, closed }
}

/// Splits raw bytes into the HTTP responses they hold; `Err` if they are not HTTP.
pub fn parse_responses(data: &[u8]) -> Result<Vec<RawResponse>, String> {
    let mut responses = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Err(format!("a truncated response head: {}", gen::show(rest)));
        };
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| head.strip_prefix("HTTP/1.0 "))
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP response: {}", gen::show(rest)))?;
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let body_start = end + 4;
        let body_end = (body_start + length).min(rest.len());
        responses.push(RawResponse {
            status,
            head,
            body: rest[body_start..body_end].to_vec(),
        });
        if status == 101 {
            break; // WebSocket frames follow
        }
        rest = &rest[body_end..];
    }
    Ok(responses)
}

/// Checks a raw answer: HTTP, never 5xx, and — when `ours` says the request reached rtchat
/// rather than being refused by hyper's own parser — errors in the JSON envelope.
pub fn check_raw(what: &str, exchange: &RawExchange, ours: bool) -> Vec<RawResponse> {
    let responses = parse_responses(&exchange.data).unwrap_or_else(|e| panic!("{what}: {e}"));
    for r in &responses {
        assert!(
            r.status < 500,
            "{what}: a {} ({}) — no request may cause a 5xx",
            r.status,
            gen::show(&r.body)
        );
        if ours && r.status >= 400 {
            let headers = r
                .head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .filter_map(|(k, v)| {
                    Some((
                        reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
                        reqwest::header::HeaderValue::from_str(v.trim()).ok()?,
                    ))
                })
                .collect();
            let reply = Reply {
                status: r.status,
                headers,
                body: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            };
            assert_envelope(what, &reply, &r.body);
        }
    }
    if ours {
        assert!(
            !responses.is_empty(),
            "{what}: no response at all (closed: {}); a panicking handler drops its connection",
            exchange.closed
        );
    }
    responses
}

/// A raw HTTP/1.1 request with `Connection: close`.
pub fn raw_request(method: &str, target: &str, token: Option<&str>, body: &str) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: rtchat\r\nConnection: close\r\n");
    if let Some(token) = token {
        out.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        out.push_str("Content-Type: application/json\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

#[tokio::test]
async fn raw_http_garbage_never_gets_a_5xx_or_kills_the_server() {
    let arena = Arena::new().await;
    let mut g = Gen::new("raw http");
    let token = arena.alice.token.clone();
    let mut garbage: Vec<Vec<u8>> = [
        "GET /healthz HTTP/1.0\r\n\r\n",
        "GET /healthz HTTP/2.0\r\n\r\n",
        "GET /healthz HTTP/9.9\r\n\r\n",
        "GET /healthz\r\n\r\n",
        "GET  /healthz  HTTP/1.1\r\n\r\n",
        "GET http://evil.example/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT /chats HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT evil.example:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n folded: header\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        "GET /healthz HTTP/1.1\nHost: x\n\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}\r\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n",
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nExpect: the-unexpected\r\nContent-Length: 2\r\n\r\n{}",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE / HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00garbage-after-the-preface",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "\r\n\r\n\r\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // The start of a TLS ClientHello.
    garbage.push(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec());
    let many_headers: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    garbage.push(format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes());
    garbage.push(format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes());
    garbage.push(
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "b".repeat(1 << 20)
        )
        .into_bytes(),
    );
    garbage.push(
        format!(
            "GET /auth/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            "c".repeat(1 << 20)
        )
        .into_bytes(),
    );
    garbage.push(
        format!(
            "GET /auth/me?token={} HTTP/1.1\r\nHost: x\r\n\r\n",
            "c".repeat(1 << 20)
        )
        .into_bytes(),
    );
    let valid = format!(
        "POST /chats/{}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{{\"text\":\"x\"}}",
        arena.chat
    )
    .into_bytes();
    for _ in 0..gen::cases(100) {
        garbage.push(match g.below(3) {
            0 => g.bytes(400),
            1 => {
                // A valid request with a few bytes changed.
                let mut request = valid.clone();
                for _ in 0..1 + g.below(4) {
                    let at = g.below(request.len());
                    request[at] = g.rng_byte();
                }
                request
            }
            _ => {
                // A valid request cut short.
                let cut = g.below(valid.len());
                valid[..cut].to_vec()
            }
        });
    }
    run_all(garbage, |request| {
        let arena = &arena;
        async move {
            let what = format!("raw request {}", gen::show(&request));
            // HTTP/2 answers in binary frames: there only the server's survival is checked.
            let http2 = request.starts_with(b"PRI * HTTP/2.0");
            let exchange = raw_exchange(
                arena.app.addr,
                request,
                Some(std::time::Duration::from_millis(300)),
            )
            .await;
            if !http2 {
                check_raw(&what, &exchange, false);
            }
        }
    })
    .await;
    arena.still_works("the raw HTTP garbage").await;
}

/// How long the server waits for a body after its head (`BODY_READ_TIMEOUT`), and for the
/// head itself (`RTCHAT_HEADER_TIMEOUT_SECS`, by default).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `bytes`, then waits (holding the connection open) for whatever the server sends
/// until it closes: what came back and when.
async fn stall(addr: std::net::SocketAddr, bytes: &[u8], wait: Duration) -> (Vec<u8>, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut data = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut data)).await;
    (data, started.elapsed())
}

#[tokio::test]
async fn a_body_that_never_arrives_is_408_within_the_read_timeout() {
    let arena = Arena::new().await;
    let head = format!(
        "POST /chats/{}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"text\":",
        arena.chat, arena.alice.token
    );
    let (data, took) = stall(arena.app.addr, head.as_bytes(), READ_TIMEOUT + CASE_TIMEOUT).await;
    let what = format!("a body of 8 of 100 bytes, then nothing (answered after {took:?})");
    let exchange = RawExchange { data, closed: true };
    let responses = check_raw(&what, &exchange, true);
    assert_eq!(responses[0].status, 408, "{what}: {responses:?}");
    assert!(took < READ_TIMEOUT + Duration::from_secs(3), "{what}");
    arena.still_works("a stalled body").await;
}

/// A connection that never sends a byte is closed by hyper's header timeout, which starts
/// when the connection does (HTTP/1.1 only: no protocol sniffing before it).
#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_within_the_read_timeout() {
    let arena = Arena::new().await;
    let (_, took) = stall(arena.app.addr, b"", READ_TIMEOUT * 2).await;
    assert!(
        took < READ_TIMEOUT + Duration::from_secs(3),
        "still open after {took:?}"
    );
}

/// The ways a client can take a connection slot and then go quiet: before, during and
/// after the HTTP/2 preface (the server once sniffed for it with no timeout), mid request
/// line, and idle on a kept-alive connection after one answer.
const STALLS: &[(&str, &[u8])] = &[
    ("nothing", b""),
    ("one byte of a preface", b"P"),
    ("an HTTP/2 request line", b"PRI * HTTP/2.0\r\n"),
    ("the whole h2c preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    (
        "the h2c preface and a SETTINGS frame",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    ),
    ("half a request line", b"GET /heal"),
    (
        "an idle keep-alive after one request",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
];

#[tokio::test]
async fn stalled_connections_are_closed_by_the_header_timeout_and_free_their_slots() {
    const SLOTS: usize = 6;
    let app = crate::support::TestApp::spawn_with(|c| {
        c.max_connections = SLOTS;
        c.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    // Three of each kind: over three times the slots, so most wait in the accept queue
    // until stalled ones before them are closed.
    let stalls: Vec<_> = STALLS
        .iter()
        .cycle()
        .take(STALLS.len() * 3)
        .map(|(what, bytes)| {
            let addr = app.addr;
            tokio::spawn(async move { (*what, stall(addr, bytes, crate::support::WAIT).await) })
        })
        .collect();
    // A client arriving behind them all is answered once they are closed (before the fix
    // it waited forever: the slots were never given back).
    // A client of its own: the harness's may still hold a kept-alive connection.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let healthz = tokio::time::timeout(
        crate::support::WAIT * 2,
        fresh.get(app.url("/healthz")).send(),
    )
    .await
    .expect("/healthz answers while stalled connections come and go")
    .expect("/healthz is served");
    assert_eq!(healthz.status(), 200);
    for stall in stalls {
        let (what, (data, took)) = stall.await.expect("the stall task");
        // Generous: each wave of SLOTS stalls takes one 1 s timeout, and 2 cores are busy.
        assert!(
            took < crate::support::WAIT,
            "{what}: still open after {took:?} (timeout 1 s)"
        );
        if what.starts_with("an idle keep-alive") {
            assert!(
                data.starts_with(b"HTTP/1.1 200"),
                "{what}: {}",
                gen::show(&data)
            );
        }
    }
    let r = fresh.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "after the stalls");
}

/// A client that asks and never reads the answers: pipelined requests whose responses fill
/// the socket buffers, so that the server's writes stop making progress. hyper's header timer
/// does not run while it writes; the write-stall bound (the same timeout) frees the slot.
#[tokio::test]
async fn a_client_that_never_reads_its_answers_gives_its_slot_back() {
    use tokio::io::AsyncWriteExt;
    let app = crate::support::TestApp::spawn_with(|c| {
        c.max_connections = 1;
        c.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("a small receive buffer");
    let mut staller = socket.connect(app.addr).await.expect("connect");
    // About 19 MB of answers: more than the kernel buffers on both sides take.
    let requests = "GET /openapi.yaml HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    staller.write_all(requests.as_bytes()).await.expect("write");
    // Answers are arriving (peeked, not read): the staller holds the only slot.
    let mut first = [0u8; 1];
    tokio::time::timeout(crate::support::WAIT, staller.peek(&mut first))
        .await
        .expect("the staller is served")
        .expect("peek");
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let healthz = tokio::time::timeout(crate::support::WAIT, fresh.get(app.url("/healthz")).send())
        .await
        .expect("/healthz answers once the staller's slot is freed")
        .expect("/healthz is served");
    assert_eq!(healthz.status(), 200);
    drop(staller);
}

/// rtchat's own limits on the request head come before hyper's, so they answer in the JSON
/// envelope: at most 100 headers and 32 KiB of them (431), a target of at most 8 KiB (414).
#[tokio::test]
async fn request_heads_over_our_limits_get_431_and_414_in_the_envelope() {
    let arena = Arena::new().await;
    let head = |target: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n").into_bytes()
    };
    let headers = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        // Host and Connection count: 98 more make 100.
        (
            "100 headers".into(),
            head("/healthz", &headers(98)),
            200,
            "",
        ),
        (
            "101 headers".into(),
            head("/healthz", &headers(99)),
            431,
            "request_header_fields_too_large",
        ),
        (
            "200 headers".into(),
            head("/healthz", &headers(198)),
            431,
            "request_header_fields_too_large",
        ),
        (
            "one 40 KiB header".into(),
            head("/healthz", &format!("X-Big: {}\r\n", "b".repeat(40 * 1024))),
            431,
            "request_header_fields_too_large",
        ),
        (
            "a 40 KiB bearer token".into(),
            head(
                "/auth/me",
                &format!("Authorization: Bearer {}\r\n", "c".repeat(40 * 1024)),
            ),
            431,
            "request_header_fields_too_large",
        ),
        (
            "an 8 KiB target".into(),
            head(&format!("/healthz?q={}", "a".repeat(8 * 1024 - 11)), ""),
            200,
            "",
        ),
        (
            "a 9 KiB path".into(),
            head(&format!("/{}", "a".repeat(9 * 1024)), ""),
            414,
            "uri_too_long",
        ),
        (
            "a 60 KiB query token".into(),
            head(&format!("/auth/me?token={}", "c".repeat(60 * 1024)), ""),
            414,
            "uri_too_long",
        ),
    ];
    for (what, request, status, code) in cases {
        let exchange = raw_exchange(arena.app.addr, request, None).await;
        let responses = check_raw(&what, &exchange, true);
        assert_eq!(responses[0].status, status, "{what}: {responses:?}");
        if !code.is_empty() {
            let body: Value = serde_json::from_slice(&responses[0].body).unwrap_or_default();
            assert_eq!(body["code"], code, "{what}: {responses:?}");
        }
    }
    arena.still_works("the oversized heads").await;
}

/// HEAD answers as GET does, without the body: the same status and Content-Length, and the
/// next request on the connection is read right after the head (no body bytes between).
#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let arena = Arena::new().await;
    let token = arena.alice.token.clone();
    for (path, auth) in [
        ("/healthz", false),
        ("/openapi.yaml", false),
        ("/auth/me", true),
        ("/chats", true),
        ("/auth/me", false),
        ("/nope", false),
        ("/chats/abc", true),
        ("/ws/notif", false),
        ("/ws/notif", true),
    ] {
        let authorization = if auth {
            format!("Authorization: Bearer {token}\r\n")
        } else {
            String::new()
        };
        let head_of =
            |method: &str| format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{authorization}\r\n");
        let get = raw_exchange(
            arena.app.addr,
            raw_request("GET", path, auth.then_some(token.as_str()), ""),
            None,
        )
        .await;
        let get = &check_raw(&format!("GET {path}"), &get, true)[0];
        // HEAD, then GET on the same connection, then close.
        let mut both = head_of("HEAD").into_bytes();
        both.extend(raw_request("GET", path, auth.then_some(token.as_str()), ""));
        let what = format!("HEAD {path} (token: {auth})");
        let exchange = raw_exchange(arena.app.addr, both, None).await;
        let data = &exchange.data;
        let end = data
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("{what}: no head: {}", gen::show(data)));
        let head = String::from_utf8_lossy(&data[..end]).to_string();
        assert!(
            head.starts_with(&format!("HTTP/1.1 {}", get.status)),
            "{what}: {head} (GET: {})",
            get.head
        );
        let length = |head: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().to_string())
        };
        assert_eq!(
            length(&head),
            Some(get.body.len().to_string()),
            "{what}: {head}"
        );
        // What follows the head is the GET's answer, not a body.
        let rest = &data[end + 4..];
        let after = parse_responses(rest).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(after.len(), 1, "{what}: {}", gen::show(rest));
        assert_eq!(after[0].status, get.status, "{what}");
        assert_eq!(after[0].body, get.body, "{what}");
    }
    arena.still_works("HEAD").await;
}

/// A request that arrives while the server shuts down gets a 503 saying so (not the
/// database's): its body comes after the send writers stopped.
#[tokio::test]
async fn a_send_caught_by_shutdown_is_503_shutting_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut app = crate::support::TestApp::spawn_with(|c| c.shutdown_grace = Duration::ZERO).await;
    let user = app.user("late").await;
    let chat = app.group(&user, &[]).await;
    let body = r#"{"text":"late"}"#;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /chats/{chat}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        user.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // `100 Continue`: the handler is running and reading the body.
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while !data.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(crate::support::WAIT, stream.read(&mut buf))
            .await
            .expect("100 Continue in time")
            .expect("read");
        assert!(n > 0, "closed before 100 Continue: {}", gen::show(&data));
        data.extend_from_slice(&buf[..n]);
    }
    assert!(data.starts_with(b"HTTP/1.1 100"), "{}", gen::show(&data));
    // With no grace, the writers are gone when `stop` returns; the connection is not.
    app.stop().await;
    stream
        .write_all(body.as_bytes())
        .await
        .expect("write the body");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(crate::support::WAIT, stream.read_to_end(&mut rest)).await;
    let what = "a send during shutdown";
    let responses = parse_responses(&rest).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(responses.len(), 1, "{what}: {responses:?}");
    assert_eq!(responses[0].status, 503, "{what}: {responses:?}");
    let body: Value = serde_json::from_slice(&responses[0].body).unwrap_or_default();
    assert_eq!(body["code"], "shutting_down", "{what}: {body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("shutting down")),
        "{body}"
    );
}
