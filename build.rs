//! Names the commit the binary is built from, for `rtchat_build_info`: `RTCHAT_COMMIT` if
//! set (the Dockerfile's build argument: its context has no `.git`), else
//! `git rev-parse --short HEAD`, else "unknown". Never fails the build.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RTCHAT_COMMIT");
    let commit = std::env::var("RTCHAT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .map(|c| c.trim().to_string())
        // A label value: anything but a plain commit name would need escaping.
        .filter(|c| {
            c.len() <= 64
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._+-".contains(ch))
        })
        .unwrap_or_else(|| "unknown".into());
    // Not an `RTCHAT_*` name: cargo also sets it in the environment of `cargo run` and
    // `cargo test`, where rtchat would warn about an unknown setting.
    println!("cargo:rustc-env=BUILD_COMMIT={commit}");
}

/// The short hash of HEAD, and the files to watch so that a new commit reruns this script
/// (with none named, cargo would rerun it only when the package's files change).
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        // `--git-path` finds each file where git keeps it (worktrees keep refs apart).
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    Some(commit)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}
