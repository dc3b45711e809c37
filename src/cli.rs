//! The command line: what `rtchat` was asked to do (serve, help, version, a health probe),
//! the environment variables it does not know (warned about by name, with the closest known
//! one), and the probe itself, small enough that a container image needs no curl.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::SETTINGS;

/// How long the health probe waits to connect and for the answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The most of an answer the probe reads: its status line is all it needs.
const PROBE_READ: usize = 256;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve,
    Help,
    Version,
    /// `GET /healthz` on `RTCHAT_ADDR`; exit 0 on 200.
    Healthcheck,
}

/// The usage line shown with `--help` and after a bad argument.
pub const USAGE: &str = "Usage: rtchat [--help | --version | --healthcheck]";

/// Reads the arguments (without the program name); an unknown one is an error naming it, so
/// a typo never starts a server.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    match args.as_slice() {
        [] => Ok(Command::Serve),
        [one] => match one.as_str() {
            "--help" | "-h" => Ok(Command::Help),
            "--version" | "-V" => Ok(Command::Version),
            "--healthcheck" => Ok(Command::Healthcheck),
            other => Err(format!("unknown argument {other:?}")),
        },
        _ => Err(format!("one argument at most, got {}", args.len())),
    }
}

/// `rtchat --version`: the crate version, and the commit when the build was given one
/// (`RTCHAT_COMMIT` at compile time, as the Dockerfile can pass it).
pub fn version() -> String {
    match option_env!("RTCHAT_COMMIT") {
        Some(commit) if !commit.is_empty() => {
            format!("rtchat {} ({commit})", env!("CARGO_PKG_VERSION"))
        }
        _ => format!("rtchat {}", env!("CARGO_PKG_VERSION")),
    }
}

/// The `RTCHAT_*` variables in `vars` that no setting reads, each with the closest known name
/// when one is close enough to be the likely meaning (a typo).
pub fn unknown_variables<'a>(
    vars: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, Option<&'static str>)> {
    vars.into_iter()
        .filter(|name| name.starts_with("RTCHAT_"))
        .filter(|name| !SETTINGS.iter().any(|s| s.name == *name))
        .filter(|name| !TOOL_VARIABLES.contains(name))
        .map(|name| {
            let closest = SETTINGS
                .iter()
                .map(|s| (distance(name, s.name), s.name))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, known)| known);
            (name.to_string(), closest)
        })
        .collect()
}

/// `RTCHAT_*` variables read by the project's tools (tests, CI, the client's suite), not by
/// the server: not worth a warning.
const TOOL_VARIABLES: &[&str] = &[
    "RTCHAT_TEST_LOG",
    "RTCHAT_FUZZ_SEED",
    "RTCHAT_FUZZ_CASES",
    "RTCHAT_BIN",
    "RTCHAT_CHAOS_SEED",
    "RTCHAT_OPENAPI",
    "RTCHAT_COMMIT",
];

/// Edit distance (insertions, deletions, substitutions) between two ASCII names.
fn distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (here + 1)
                .min(row[j] + 1)
                .min(previous + usize::from(ca != *cb));
            previous = here;
        }
    }
    row[b.len()]
}

/// `GET /healthz` on the listen address (an unspecified address is probed on loopback);
/// true when it answers 200 in time.
pub fn healthcheck(addr: SocketAddr) -> bool {
    let target = if addr.ip().is_unspecified() {
        match addr {
            SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], addr.port())),
            SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        }
    } else {
        addr
    };
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&target, PROBE_TIMEOUT)?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
        stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::with_capacity(PROBE_READ);
        stream.take(PROBE_READ as u64).read_to_end(&mut answer)?;
        Ok(answer.starts_with(b"HTTP/1.1 200 "))
    };
    probe().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_a_known_command_or_an_error() {
        let parse = |args: &[&str]| parse_args(args.iter().map(|a| a.to_string()));
        assert_eq!(parse(&[]), Ok(Command::Serve));
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["--version"]), Ok(Command::Version));
        assert_eq!(parse(&["--healthcheck"]), Ok(Command::Healthcheck));
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["serve"]).is_err());
        assert!(parse(&["--help", "--version"]).is_err());
    }

    #[test]
    fn unknown_variables_name_the_closest_setting() {
        let found = unknown_variables([
            "RTCHAT_ADRR",
            "RTCHAT_ADDR",
            "PATH",
            "RTCHAT_TEST_LOG",
            "RTCHAT_SOMETHING_ELSE_ENTIRELY",
        ]);
        assert_eq!(
            found,
            vec![
                ("RTCHAT_ADRR".to_string(), Some("RTCHAT_ADDR")),
                ("RTCHAT_SOMETHING_ELSE_ENTIRELY".to_string(), None),
            ]
        );
    }
}
