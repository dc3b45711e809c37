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
