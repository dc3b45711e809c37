//! The command line, run as the real binary: `--version`, an unknown argument (exit 2,
//! nothing started), unknown `RTCHAT_*` variables named with the closest setting, and the
//! built-in health probe the container image uses instead of curl.

use std::process::{Command, Output};

use crate::support::*;

fn rtchat(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rtchat"));
    command.args(args).env_remove("DATABASE_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the rtchat binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_prints_the_crate_version() {
    let out = rtchat(&["--version"], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout).trim(),
        format!("rtchat {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_argument_is_exit_2_with_usage_and_starts_nothing() {
    let dir = std::env::temp_dir().join(format!("rtchat-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = rtchat(
        &["--bogus"],
        &[("RTCHAT_DATA_DIR", dir.to_str().expect("utf-8 path"))],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("unknown argument \"--bogus\""), "{err}");
    assert!(err.contains("Usage: rtchat"), "{err}");
    assert!(!dir.exists(), "no embedded PostgreSQL was started");
}

#[test]
fn a_mistyped_variable_is_named_with_the_setting_it_resembles() {
    // A bad pool size ends the start right after the warnings: nothing is started.
    let out = rtchat(
        &[],
        &[
            ("RTCHAT_ADRR", "127.0.0.1:1"),
            ("RTCHAT_DB_POOL_SIZE", "lots"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("RTCHAT_ADRR is not a setting (did you mean RTCHAT_ADDR?)"),
        "{err}"
    );
    assert!(err.contains("RTCHAT_DB_POOL_SIZE"), "{err}");
}

#[tokio::test]
async fn the_health_probe_answers_for_a_live_server_and_fails_for_none() {
    let app = TestApp::spawn().await;
    let addr = app.addr.to_string();
    let probe =
        tokio::task::spawn_blocking(move || rtchat(&["--healthcheck"], &[("RTCHAT_ADDR", &addr)]))
            .await
            .expect("probe ran");
    assert!(probe.status.success(), "{probe:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let probe =
        tokio::task::spawn_blocking(move || rtchat(&["--healthcheck"], &[("RTCHAT_ADDR", &addr)]))
            .await
            .expect("probe ran");
    assert_eq!(probe.status.code(), Some(1), "{probe:?}");
}

/// Starts the real binary on the embedded PostgreSQL in `dir`, and waits until it is ready.
fn start_embedded(dir: &std::path::Path, port: u16) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtchat"))
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env("RTCHAT_ADDR", format!("127.0.0.1:{port}"))
        .env("RTCHAT_DATA_DIR", dir)
        .env("RTCHAT_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the rtchat binary starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ =
                stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            if answer.starts_with(b"HTTP/1.1 200") {
                return child;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("rtchat on the embedded PostgreSQL was not ready in time");
}

fn stop(mut child: std::process::Child) {
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("rtchat exits");
    assert!(status.success(), "a clean stop: {status:?}");
}

#[tokio::test]
async fn the_embedded_default_keeps_its_tokens_across_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("rtchat-embedded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        free.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let first = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || start_embedded(&dir, port)
    })
    .await
    .expect("started");
    let body = serde_json::json!({"email": "kept@example.com", "name": "Kept", "password": "correct horse"});
    let r = http
        .post(format!("{base}/auth/register"))
        .json(&body)
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"email": "kept@example.com", "password": "correct horse"}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    let token = r.json::<serde_json::Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let mode = std::fs::metadata(dir.join("jwt_secret"))
        .expect("the secret is kept in the data directory")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only its owner reads the secret");
    tokio::task::spawn_blocking(move || stop(first))
        .await
        .expect("stopped");

    let second = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || start_embedded(&dir, port)
    })
    .await
    .expect("restarted");
    let r = http
        .get(format!("{base}/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    let status = r.status();
    tokio::task::spawn_blocking(move || stop(second))
        .await
        .expect("stopped");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, 200, "a token from before the restart still works");
}
