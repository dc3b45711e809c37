//! What an operator reads: the `X-Request-Id` on every response, the real binary's log lines
//! (JSON with `RTCHAT_LOG_FORMAT=json`, the access line with the request id, user and client,
//! one line per closed socket with its close code, no PostgreSQL NOTICEs, a last `stopped`
//! line), and the first database connection retried until the database is up.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::support::*;
use crate::wsclient::{code, WsClient};

/// The secret the spawned binaries sign with (the tests sign short-lived tokens with it too).
const SECRET: &str = "logs-test-secret-logs-test-secret";

/// How long a spawned binary may take to become ready or to exit: generous, since several
/// test binaries and builds share two cores.
const PROCESS_WAIT: Duration = Duration::from_secs(60);

fn request_id(r: &Reply) -> String {
    r.headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("an X-Request-Id header on {r:?}"))
        .to_str()
        .expect("ascii")
        .to_string()
}

fn is_generated(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn every_response_carries_a_request_id_errors_included() {
    let app = TestApp::spawn().await;
    let long_path = format!("/{}", "a".repeat(9000));
    let many_headers = {
        let mut headers = reqwest::header::HeaderMap::new();
        for i in 0..120 {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                "1".parse().unwrap(),
            );
        }
        headers
    };
    let replies = vec![
        (200, app.call("GET", "/healthz", None, None).await),
        (404, app.call("GET", "/no/such/path", None, None).await),
        (401, app.call("GET", "/auth/me", None, None).await),
        (405, app.call("DELETE", "/healthz", None, None).await),
        (
            413,
            reply(
                app.http
                    .post(app.url("/auth/login"))
                    .header("content-type", "application/json")
                    .body(vec![b' '; 70 * 1024])
                    .send()
                    .await
                    .unwrap(),
            )
            .await,
        ),
        (414, app.call("GET", &long_path, None, None).await),
        (
            431,
            reply(
                app.http
                    .get(app.url("/healthz"))
                    .headers(many_headers)
                    .send()
                    .await
                    .unwrap(),
            )
            .await,
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (status, r) in &replies {
        assert_eq!(r.status, *status, "{r:?}");
        let id = request_id(r);
        assert!(is_generated(&id), "{status}: {id}");
        assert!(seen.insert(id.clone()), "ids are unique: {id} twice");
    }
}

#[tokio::test]
async fn a_sane_supplied_request_id_is_echoed_and_any_other_replaced() {
    let app = TestApp::spawn().await;
    let with_id = |id: &str| {
        app.http
            .get(app.url("/healthz"))
            .header("x-request-id", id)
            .send()
    };
    for sane in ["client-42.retry_1", &"a".repeat(64)] {
        let r = reply(with_id(sane).await.unwrap()).await;
        assert_eq!(request_id(&r), sane);
    }
    for insane in ["has space", "semi;colon", "quote\"", &"a".repeat(65), "é"] {
        let r = reply(with_id(insane).await.unwrap()).await;
        let id = request_id(&r);
        assert!(is_generated(&id), "{insane:?} was replaced, not {id:?}");
    }
}

/// The real binary, its stdout and stderr collected as they come.
struct Binary {
    child: Option<Child>,
    output: Arc<Mutex<String>>,
    base: String,
}

impl Binary {
    /// Starts `rtchat` on a free port with `env` (nothing inherited that names a database).
    fn start(env: &[(&str, &str)]) -> Binary {
        let port = {
            let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            free.local_addr().expect("addr").port()
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_rtchat"));
        command
            .env_remove("DATABASE_URL")
            .env_remove("RTCHAT_LOG")
            .env_remove("RTCHAT_LOG_FORMAT")
            .env("RTCHAT_ADDR", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the rtchat binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped")),
            Box::new(child.stderr.take().expect("piped")),
        ];
        for mut pipe in pipes {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&chunk[..n]).into_owned();
                    output.lock().unwrap().push_str(&text);
                }
            });
        }
        Binary {
            child: Some(child),
            output,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output has a line for which `matches` holds, and returns it.
    async fn line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            if let Some(line) = self.output().lines().find(|l| matches(l)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} line in:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/readyz` answers 200.
    async fn ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PROCESS_WAIT;
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("rtchat exited ({status}):\n{}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("rtchat was not ready in time:\n{}", self.output());
    }

    /// Waits for the process to exit by itself; its exit code.
    async fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                // The readers finish with the pipes.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "rtchat did not exit in time:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for a clean exit.
    async fn stop(&mut self) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let code = self.exit_code().await;
        assert_eq!(code, Some(0), "a clean stop:\n{}", self.output());
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Registers and logs in through HTTP; the user id and the login reply.
async fn register(base: &str, name: &str) -> (i64, Value) {
    let http = reqwest::Client::new();
    let email = format!("{name}@example.com");
    let r = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": email, "name": name, "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"email": email, "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    (id, r.json().await.unwrap())
}

/// An access token for the same login session as `token`, expiring in `ttl`.
fn short_lived(token: &str, user_id: i64, ttl: Duration) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    let session = claims["sid"].as_i64().expect("a session id claim");
    rtchat::testing::Auth::new(SECRET.as_bytes(), ttl)
        .issue(user_id, session)
        .expect("signed")
}

fn parse_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[tokio::test]
async fn json_logs_show_requests_with_their_user_and_id_each_closed_socket_and_the_stop() {
    // Arrange
    let database_url = fresh_database().await;
    let mut rtchat = Binary::start(&[
        ("DATABASE_URL", &database_url),
        ("RTCHAT_LOG_FORMAT", "json"),
    ]);
    rtchat.ready().await;
    let (user_id, login) = register(&rtchat.base, "logged").await;
    let token = login["access_token"].as_str().unwrap().to_string();
    let addr: std::net::SocketAddr = rtchat.base["http://".len()..].parse().unwrap();

    // Act: an authenticated request with its own id, a socket the client closes, and one
    // whose token expires.
    let r = reqwest::Client::new()
        .get(format!("{}/auth/me", rtchat.base))
        .bearer_auth(&token)
        .header("x-request-id", "logs-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut closing = WsClient::connect_to(addr, &token, Some(0)).await;
    closing
        .ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let expiring = short_lived(&token, user_id, Duration::from_secs(2));
    let mut expired = WsClient::connect_to(addr, &expiring, None).await;
    assert_eq!(code(&expired.ended().await), Some(4001));

    // Assert
    let access = rtchat.line("access", |l| l.contains("\"logs-me-1\"")).await;
    let access = parse_line(&access);
    assert_eq!(access["msg"], "request", "{access}");
    assert_eq!(access["target"], "rtchat::access", "{access}");
    assert_eq!(access["level"], "INFO", "{access}");
    assert!(
        access["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{access}"
    );
    assert_eq!(access["request_id"], "logs-me-1", "{access}");
    assert_eq!(access["user_id"], user_id, "{access}");
    assert_eq!(access["client"], "127.0.0.1", "{access}");
    assert_eq!(access["status"], 200, "{access}");
    let ms = access["duration_ms"].as_f64().expect("a number");
    assert!(
        ((ms * 100.0).round() - ms * 100.0).abs() < 1e-6,
        "rounded to 0.01: {access}"
    );

    for path in ["/auth/register", "/auth/login"] {
        let line = rtchat
            .line(path, |l| l.contains(&format!("\"path\":\"{path}\"")))
            .await;
        assert_eq!(parse_line(&line)["user_id"], user_id, "{line}");
    }

    let closed_by_client = rtchat
        .line("client close", |l| {
            l.contains("socket closed") && l.contains("\"closed_by\":\"client\"")
        })
        .await;
    let closed_by_client = parse_line(&closed_by_client);
    assert_eq!(closed_by_client["close_code"], 1000, "{closed_by_client}");
    assert_eq!(closed_by_client["user_id"], user_id, "{closed_by_client}");
    assert!(closed_by_client["socket_id"].is_u64(), "{closed_by_client}");
    assert!(
        closed_by_client["duration_ms"].is_f64(),
        "{closed_by_client}"
    );
    // `ready`; the log after 0 holds nothing yet (logins and registrations are no events).
    assert_eq!(closed_by_client["frames_sent"], 1, "{closed_by_client}");
    assert_eq!(closed_by_client["replayed"], 0, "{closed_by_client}");

    let expiry = rtchat
        .line("token expiry", |l| {
            l.contains("socket closed") && l.contains("\"close_code\":4001")
        })
        .await;
    let expiry = parse_line(&expiry);
    assert_eq!(expiry["closed_by"], "server", "{expiry}");
    assert_eq!(expiry["reason"], "token expired", "{expiry}");
    assert_ne!(
        expiry["socket_id"], closed_by_client["socket_id"],
        "each socket its own id"
    );

    // A socket still open at SIGTERM is closed with 1001, and logged so before `stopped`.
    let mut open = WsClient::connect_to(addr, &token, None).await;
    rtchat.stop().await;
    assert_eq!(code(&open.ended().await), Some(1001));
    let output = rtchat.output();
    let shutdown = output
        .lines()
        .find(|l| l.contains("socket closed") && l.contains("\"close_code\":1001"))
        .unwrap_or_else(|| panic!("no 1001 socket line:\n{output}"));
    assert_eq!(parse_line(shutdown)["reason"], "server shutting down");
    let lines: Vec<&str> = output.lines().collect();
    for line in &lines {
        let line = parse_line(line);
        for key in ["ts", "level", "target", "msg"] {
            assert!(line[key].is_string(), "{key} in {line}");
        }
    }
    let last = parse_line(lines.last().expect("some output"));
    assert_eq!(last["msg"], "stopped", "the last line: {last}");
    assert!(
        last["uptime_secs"].as_f64().is_some_and(|s| s > 0.0),
        "{last}"
    );
    assert!(!output.contains(&token), "query tokens are never logged");
    assert!(!output.contains(&expiring), "query tokens are never logged");
}

#[tokio::test]
async fn starts_log_no_postgres_notices_first_or_again() {
    let database_url = fresh_database().await;
    for start in ["first", "second"] {
        let mut rtchat = Binary::start(&[("DATABASE_URL", &database_url)]);
        rtchat.ready().await;
        rtchat.stop().await;
        let output = rtchat.output();
        assert!(
            !output.contains("NOTICE"),
            "{start} start logged a NOTICE:\n{output}"
        );
        let last = output.lines().last().unwrap_or_default();
        assert!(
            last.contains("stopped") && last.contains("uptime_secs="),
            "{start} start ends with its stopped line:\n{output}"
        );
    }
}

/// Also: an unknown `RTCHAT_LOG_FORMAT` is warned about by name, and text is logged.
#[tokio::test]
async fn an_unreachable_database_is_retried_then_exits_with_host_and_cause() {
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        free.local_addr().expect("addr").port()
    };
    let url = format!("postgres://rtchat:hunter2-secret@127.0.0.1:{port}/rtchat");
    let started = Instant::now();
    let mut rtchat = Binary::start(&[
        ("DATABASE_URL", &url),
        ("RTCHAT_DB_CONNECT_TIMEOUT_SECS", "2"),
        ("RTCHAT_LOG_FORMAT", "yaml"),
    ]);
    let code = rtchat.exit_code().await;
    let output = rtchat.output();
    assert_ne!(code, Some(0), "{output}");
    assert!(
        output.contains("warning: RTCHAT_LOG_FORMAT \"yaml\" takes `text` or `json`"),
        "an unknown format is named:\n{output}"
    );
    // Generous: 2 s of retries, and a process start on a busy machine.
    assert!(started.elapsed() < Duration::from_secs(30), "{output}");
    let target = format!("127.0.0.1:{port}");
    let retries = output
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(&target) && l.contains("refused"))
        .count();
    assert!(
        retries >= 2,
        "each attempt is a warning naming host and cause:\n{output}"
    );
    let error = output
        .lines()
        .find(|l| l.starts_with("rtchat: ") && !l.starts_with("rtchat: warning"))
        .unwrap_or_else(|| panic!("a closing error on stderr:\n{output}"));
    assert!(
        error.contains(&target) && error.contains("refused"),
        "{error}"
    );
    assert!(!output.contains("hunter2"), "never the password:\n{output}");
}

#[tokio::test]
async fn a_database_that_comes_up_after_rtchat_is_waited_for() {
    // Arrange: rtchat pointed at a PostgreSQL socket where nothing listens yet.
    let dir = std::env::temp_dir().join(format!("rtchat-late-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the late PostgreSQL");
    let pg_dir = dir.join("pg");
    let url = format!(
        "host={} port=5432 user=postgres dbname=postgres",
        pg_dir.display()
    );
    let mut rtchat = Binary::start(&[
        ("DATABASE_URL", &url),
        ("RTCHAT_DB_CONNECT_TIMEOUT_SECS", "120"),
    ]);
    rtchat
        .line("a failed attempt", |l| {
            l.contains("cannot connect to PostgreSQL yet")
        })
        .await;

    // Act: PostgreSQL starts afterwards.
    let pg = tokio::task::spawn_blocking(move || rtchat::EmbeddedPostgres::start(&pg_dir, &[]))
        .await
        .expect("started")
        .expect("the late PostgreSQL starts");

    // Assert
    rtchat.ready().await;
    rtchat.stop().await;
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}
