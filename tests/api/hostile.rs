//! Hostile input: seeded random and hand-picked garbage thrown at every parser of outside
//! input, against the real server — JSON bodies of every endpoint, content types, query
//! strings, path ids and methods, raw HTTP, tokens (REST and the WebSocket upgrade) and
//! WebSocket frames — plus in-process fuzzing of the public pure parsers.
//!
//! Every answer must come in time (no hang), over a live connection (a panicking handler
//! drops it), below 500, and as the `{detail, code}` envelope when it is an error; no task
//! of the server may panic; and after each batch `/healthz` and a normal authenticated
//! request still work. Where the contract fixes the answer (malformed JSON is 400, a wrong
//! type is 422 naming the field, a bad token is 401), the generators know it and check it.
//!
//! Runs are bounded and reproducible: the seed is fixed (`RTCHAT_FUZZ_SEED` to change it)
//! and `RTCHAT_FUZZ_CASES` sets the random cases per generator (default in each test, sized
//! so the module stays well under a minute on 2 cores). A failure prints the input. A longer
//! hunt: `RTCHAT_FUZZ_SEED=7 RTCHAT_FUZZ_CASES=1000 cargo test --test api hostile` (about
//! two minutes).

mod bodies;
mod body_contract;
mod forge;
mod frames;
mod gen;
mod parsers;
mod rawhttp;
mod rawws;
mod requests;
mod search;
mod tokens;
mod v2;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures_util::{stream, Future, StreamExt};
use serde_json::{json, Value};

use crate::support::{Reply, TestApp, TestUser};

/// An answer slower than this is a hang.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests in flight at once: enough to keep the server busy, few enough for 2 cores.
pub const CONCURRENCY: usize = 8;

/// A server with users and chats to aim at, and a user nobody fuzzes, who proves the server
/// still serves.
pub struct Arena {
    pub app: TestApp,
    /// The caller of the fuzzed requests.
    pub alice: TestUser,
    /// Another member of alice's chats.
    pub bob: TestUser,
    /// Untouched by the fuzzing: `still_works` uses them.
    pub watch: TestUser,
    /// A group of alice and bob that takes the fuzzed messages.
    pub chat: i64,
    /// A message of alice in `chat` (edit and read target).
    pub message: i64,
    /// The target of PATCH fuzzing (it may end up inactive).
    pub patch_chat: i64,
    /// The target of member fuzzing (it may gain members).
    pub members_chat: i64,
    /// The chat `still_works` sends to.
    pub watch_chat: i64,
    /// An HTTP client whose idle connections expire well before the server's header-read
    /// timeout closes them, so no request races a closing connection.
    pub http: reqwest::Client,
}

impl Arena {
    pub async fn new() -> Arena {
        watch_for_panics();
        let app = TestApp::spawn().await;
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let watch = app.user("watch").await;
        let chat = app.group(&alice, &[&bob]).await;
        let message = app.send(&alice, chat, "first").await["id"]
            .as_i64()
            .expect("message id");
        let patch_chat = app.group(&alice, &[&bob]).await;
        let members_chat = app.group(&alice, &[]).await;
        let watch_chat = app.group(&watch, &[]).await;
        let http = reqwest::Client::builder()
            .timeout(CASE_TIMEOUT * 2)
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        Arena {
            app,
            alice,
            bob,
            watch,
            chat,
            message,
            patch_chat,
            members_chat,
            watch_chat,
            http,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        self.app.url(path_and_query)
    }

    /// After a batch: the server is alive, answers an authenticated read and takes a write.
    pub async fn still_works(&self, after: &str) {
        let r = send_ok(after, self.http.get(self.url("/healthz"))).await;
        assert_eq!(r.status, 200, "after {after}: /healthz {r:?}");
        let r = send_ok(
            after,
            self.http
                .get(self.url("/auth/me"))
                .bearer_auth(&self.watch.token),
        )
        .await;
        assert_eq!(r.status, 200, "after {after}: /auth/me {r:?}");
        assert_eq!(r.body["id"], self.watch.id, "after {after}: {r:?}");
        let r = send_ok(
            after,
            self.http
                .post(self.url(&format!("/chats/{}/messages", self.watch_chat)))
                .bearer_auth(&self.watch.token)
                .json(&json!({ "text": format!("still here after {after}") })),
        )
        .await;
        assert_eq!(r.status, 201, "after {after}: sending {r:?}");
        assert_no_server_panics(after);
    }
}

/// Runs `cases` with `CONCURRENCY` in flight; a failing case panics the test with its input.
pub async fn run_all<T, F, Fut>(cases: Vec<T>, run: F)
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = ()>,
{
    stream::iter(cases)
        .map(run)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// Sends a request and checks what every answer must be: in time, over a live connection,
/// not 5xx, and an error in the JSON envelope. Returns the answer for further checks.
pub async fn send_ok(what: &str, request: reqwest::RequestBuilder) -> Reply {
    let (client, request) = request.build_split();
    let request = request.unwrap_or_else(|e| panic!("{what}: the test built a bad request: {e}"));
    let method_is_head = request.method() == reqwest::Method::HEAD;
    let exchange = async {
        let response = client.execute(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    };
    let (status, headers, bytes) = match tokio::time::timeout(CASE_TIMEOUT, exchange).await {
        Err(_) => panic!("{what}: no answer within {CASE_TIMEOUT:?}: a hang"),
        Ok(Err(e)) => panic!(
            "{what}: the connection failed ({e:?}); a panicking handler drops its connection"
        ),
        Ok(Ok(answer)) => answer,
    };
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reply = Reply {
        status,
        headers,
        body,
    };
    assert!(
        status < 500,
        "{what}: a {status} ({}) — no request may cause a 5xx by its content",
        gen::show(&bytes)
    );
    if status >= 400 && !method_is_head {
        assert_envelope(what, &reply, &bytes);
    }
    reply
}

/// Asserts the error envelope of the contract and the headers its status requires.
pub fn assert_envelope(what: &str, r: &Reply, raw: &[u8]) {
    let content_type = r.headers.get("content-type").and_then(|v| v.to_str().ok());
    assert_eq!(
        content_type,
        Some("application/json"),
        "{what}: error {} without a JSON content type: {}",
        r.status,
        gen::show(raw)
    );
    let detail = r.body["detail"].as_str().unwrap_or("");
    let code = r.body["code"].as_str().unwrap_or("");
    assert!(
        !detail.is_empty()
            && !code.is_empty()
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "{what}: {} is not the {{detail, code}} envelope: {}",
        r.status,
        gen::show(raw)
    );
    match r.status {
        401 => assert_eq!(
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{what}: 401 without WWW-Authenticate"
        ),
        405 => assert!(r.headers.contains_key("allow"), "{what}: 405 without Allow"),
        422 => assert!(
            r.body["errors"].as_array().is_some_and(|errors| {
                !errors.is_empty()
                    && errors
                        .iter()
                        .all(|e| e["field"].is_string() && e["message"].is_string())
            }),
            "{what}: 422 without an errors list: {}",
            gen::show(raw)
        ),
        429 => assert!(
            r.headers.contains_key("retry-after"),
            "{what}: 429 without Retry-After"
        ),
        _ => {}
    }
}

/// Asserts a status and code; for 422 that the errors name one of `fields` (if any given).
#[track_caller]
pub fn expect_error(what: &str, r: &Reply, status: u16, code: &str, fields: &[&str]) {
    assert!(
        r.status == status && r.body["code"] == code,
        "{what}: expected {status} {code}, got {r:?}"
    );
    if !fields.is_empty() {
        let named: Vec<&str> = r.body["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            named
                .iter()
                .any(|n| fields.iter().any(|f| n.contains(f) || f.contains(n))),
            "{what}: expected the errors to name one of {fields:?}, got {r:?}"
        );
    }
}

/// Panics seen by the hook: (thread name, location, message).
type Seen = Vec<(String, String, String)>;

fn panics() -> &'static Mutex<Seen> {
    static PANICS: OnceLock<Mutex<Seen>> = OnceLock::new();
    PANICS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Records every panic (then lets the default hook print it). A panic in a spawned server
/// task is caught by tokio and would otherwise go unnoticed, e.g. in a WebSocket session.
fn watch_for_panics() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if let Ok(mut seen) = panics().lock() {
                seen.push((thread, location, message));
            }
            previous(info);
        }));
    });
}

/// Fails if server code panicked on this test's thread. Each `#[tokio::test]` runs its
/// server on its own (current-thread) runtime, so its panics happen on this thread; the
/// test's own assertions live under `tests/` and do not count.
pub fn assert_no_server_panics(after: &str) {
    let me = std::thread::current().name().unwrap_or("").to_string();
    let seen = panics().lock().map(|s| s.clone()).unwrap_or_default();
    let server: Vec<_> = seen
        .iter()
        .filter(|(thread, location, _)| *thread == me && !location.contains("tests/"))
        .collect();
    assert!(
        server.is_empty(),
        "after {after}: the server panicked: {server:?}"
    );
}
