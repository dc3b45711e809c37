//! `rtchat-bench`: the load generator of rtchat (the README's Performance section tells how to run each
//! scenario and what was measured). It drives a running server over its public interface
//! only — REST and `/ws/notif` — open-loop (fixed rate, latency from the intended send time)
//! or closed-loop (the maximum), checks by `seq` that no event was lost or duplicated, and
//! prints a markdown table plus a JSON file with the machine, commit and settings.
//!
//! `--smoke` starts its own rtchat (two instances sharing a throwaway PostgreSQL, so the
//! cross-process path is covered) unless `--url` is given, runs every delivery scenario small,
//! checks only correctness, and exits non-zero on any loss, duplicate or failed socket.

#[path = "rtchat_bench/disrupt.rs"]
mod disrupt;
#[path = "rtchat_bench/load.rs"]
mod load;
#[path = "rtchat_bench/logins.rs"]
mod logins;
#[path = "rtchat_bench/mixed.rs"]
mod mixed;
#[path = "rtchat_bench/net.rs"]
mod net;
#[path = "rtchat_bench/report.rs"]
mod report;
#[path = "rtchat_bench/scenarios.rs"]
mod scenarios;
#[path = "rtchat_bench/setup.rs"]
mod setup;
#[path = "rtchat_bench/smoke.rs"]
mod smoke;
#[path = "rtchat_bench/socket.rs"]
mod socket;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use net::{HttpPool, SourceIps, Target};
use report::{CpuProbe, Row};
use scenarios::Bench;
use setup::{Direct, Setup};

/// Load generator for rtchat: REST sends, WebSocket fan-out, idle sockets, reconnect storms,
/// slow consumers and logins, with a seq check that nothing was lost or duplicated.
#[derive(Parser, Debug)]
#[command(name = "rtchat-bench", version)]
struct Cli {
    /// A server to load (loopback only); repeat for several processes. With several and no
    /// --send-url, sockets spread over all but the last and REST goes through the last, so
    /// every delivery crosses processes.
    #[arg(long = "url", global = true)]
    urls: Vec<String>,
    /// Where REST load goes (default: see --url); repeatable.
    #[arg(long = "send-url", global = true)]
    send_urls: Vec<String>,
    /// Server pid(s) whose RSS (VmRSS) and CPU are reported; repeatable.
    #[arg(long = "server-pid", global = true)]
    server_pids: Vec<i32>,
    /// PostgreSQL's postmaster pid: its CPU and its backends' goes into CPU per operation.
    #[arg(long = "pg-pid", global = true)]
    pg_pid: Option<i32>,
    /// The server's database: with --jwt-secret, users are created in bulk directly there
    /// (setup only) instead of two argon2 hashes each over REST.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    /// The server's JWT_SECRET, to sign the bulk users' tokens.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    jwt_secret: Option<String>,
    /// First client source address; see --source-ips.
    #[arg(long, default_value = "127.0.0.2", global = true)]
    source_ip: Ipv4Addr,
    /// How many consecutive source addresses from --source-ip client sockets bind to
    /// (~28,000 sockets each); 0 lets the kernel choose.
    #[arg(long, default_value_t = 4, global = true)]
    source_ips: u32,
    /// HTTP connections carrying REST load.
    #[arg(long, default_value_t = 64, global = true)]
    connections: usize,
    /// Seconds between application pings on every socket.
    #[arg(long, default_value_t = 20, global = true)]
    ping_secs: u64,
    /// WebSocket handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 256, global = true)]
    connect_parallel: usize,
    /// Seconds a socket may take to (re)connect before it counts as failed.
    #[arg(long, default_value_t = 30, global = true)]
    connect_deadline_secs: u64,
    /// Seconds to wait for the last frames after the load stopped.
    #[arg(long, default_value_t = 20, global = true)]
    drain_secs: u64,
    /// Where to write the JSON report (default: target/rtchat-bench/<scenario>-<time>.json).
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Correctness only, in seconds: starts its own servers unless --url is given.
    #[arg(long)]
    smoke: bool,
    #[command(subcommand)]
    scenario: Option<Scenario>,
}

#[derive(Subcommand, Debug, Clone)]
enum Scenario {
    /// N authenticated sockets held open with pings; server RSS per socket.
    Idle {
        #[arg(long, default_value_t = 1000)]
        sockets: usize,
        /// Seconds to hold them after connecting.
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
    },
    /// REST message sends into 2-member chats: messages/s persisted, POST latency.
    Send {
        /// Rates per second, `max` (closed loop) or `N%` of the last max.
        #[arg(long, value_delimiter = ',', default_value = "max,70%,50%")]
        rates: Vec<String>,
        #[arg(long, default_value_t = 200)]
        chats: usize,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
    },
    /// Chats of each size with every member's socket connected: POST-to-receipt latency,
    /// deliveries/s, and the seq check.
    Fanout {
        #[arg(long, value_delimiter = ',', default_value = "2,10,100,1000")]
        sizes: Vec<usize>,
        /// Sockets per size (chats = sockets / size).
        #[arg(long, default_value_t = 2000)]
        sockets: usize,
        /// Message rates per size: messages/s, `max` (closed loop) or `N%` of that size's max.
        #[arg(long, value_delimiter = ',', default_value = "max,50%")]
        rates: Vec<String>,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
    },
    /// Every socket drops and reconnects with since; time until all caught up.
    Storm {
        #[arg(long, default_value_t = 2000)]
        sockets: usize,
        #[arg(long, default_value_t = 10)]
        chat_size: usize,
        /// Messages per chat written while everyone is away.
        #[arg(long, default_value_t = 5)]
        backlog: usize,
        /// Messages/s sent while they reconnect (the replay-to-live switch under load).
        #[arg(long, default_value_t = 100.0)]
        live_rate: f64,
        /// Drop at this Unix time (seconds), so several generators storm together.
        #[arg(long)]
        drop_at: Option<u64>,
    },
    /// A fraction of sockets stops reading: the others' latency against a baseline, server RSS.
    Slow {
        #[arg(long, default_value_t = 1000)]
        sockets: usize,
        #[arg(long, default_value_t = 20)]
        chat_size: usize,
        #[arg(long, default_value_t = 0.05)]
        fraction: f64,
        /// Messages/s in both phases.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// Characters added to every message, so a reader that stops backs up sooner.
        #[arg(long, default_value_t = 1000)]
        pad: usize,
    },
    /// An authenticated GET (default /auth/me): requests/s and latency.
    Get {
        #[arg(long, default_value = "/auth/me")]
        path: String,
        /// Count this status as success instead of 2xx (`--path /users/0 --expect-status
        /// 422`: the token is verified, then the request fails validation before any query).
        #[arg(long)]
        expect_status: Option<u16>,
        #[arg(long, value_delimiter = ',', default_value = "max")]
        rates: Vec<String>,
        #[arg(long, default_value_t = 100)]
        users: usize,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
    },
    /// The v2 mix, closed loop: sends (some replies and mentions), reactions, reads,
    /// searches and unread totals, 10:5:3:1:1, with every member's socket checked by seq.
    Mixed {
        #[arg(long, default_value_t = 1000)]
        sockets: usize,
        #[arg(long, default_value_t = 10)]
        chat_size: usize,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
    },
    /// Registrations, then logins, over REST (one argon2 hash each): server RSS before and
    /// after (needs --server-pid and the server's RTCHAT_RATE_REGISTER_PER_ADDR,
    /// RTCHAT_RATE_LOGIN_PER_ADDR and RTCHAT_RATE_LOGIN_PER_EMAIL raised).
    Logins {
        /// Users registered first.
        #[arg(long, default_value_t = 300)]
        users: usize,
        /// Logins, spread over those users.
        #[arg(long, default_value_t = 3000)]
        logins: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        parallel: usize,
        /// The run fails when the server's RSS grew by more than this many MB.
        #[arg(long, default_value_t = 100)]
        max_growth_mb: u64,
    },
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Idle { .. } => "idle",
            Scenario::Send { .. } => "send",
            Scenario::Fanout { .. } => "fanout",
            Scenario::Storm { .. } => "storm",
            Scenario::Slow { .. } => "slow",
            Scenario::Get { .. } => "get",
            Scenario::Logins { .. } => "logins",
            Scenario::Mixed { .. } => "mixed",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.smoke && cli.scenario.is_none() {
        eprintln!("rtchat-bench: name a scenario (idle, send, fanout, storm, slow, get, logins, mixed) or --smoke; see --help");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(rows) => {
            let bad = rows.iter().any(|r| {
                r.lost > 0
                    || r.duplicated > 0
                    || r.metrics
                        .get("failed_sockets")
                        .and_then(|v| v.as_u64())
                        .is_some_and(|n| n > 0)
                    || r.metrics.get("failed").and_then(|v| v.as_bool()) == Some(true)
            });
            if bad {
                eprintln!(
                    "rtchat-bench: FAILED: events were lost or duplicated, sockets or requests \
                     failed, or the server kept too much memory"
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("rtchat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<Vec<Row>, String> {
    let args = redacted_args();
    let sources = Arc::new(SourceIps::new(cli.source_ip, cli.source_ips)?);

    let (rows, server_pids) = if cli.smoke {
        smoke::run(&cli, sources).await?
    } else {
        let scenario = cli.scenario.clone().expect("checked in main");
        let bench = bench_from(&cli, sources)?;
        println!(
            "rtchat-bench {}: sockets → {}; REST → {}; setup {}",
            scenario.name(),
            list(&bench.socket_targets),
            list(&bench.send_targets),
            if bench.setup.direct.is_some() {
                "direct (database + JWT secret)"
            } else {
                "over REST"
            }
        );
        (
            run_scenario(&bench, &scenario).await?,
            cli.server_pids.clone(),
        )
    };

    let table = report::markdown(&rows);
    println!("\n{table}");
    let doc = report::document(&args, &server_pids, &rows);
    let name = if cli.smoke {
        "smoke"
    } else {
        cli.scenario.as_ref().map(Scenario::name).unwrap_or("run")
    };
    let path = cli.json.clone().unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(format!("target/rtchat-bench/{name}-{stamp}.json"))
    });
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    report::write_json(&path, &doc)?;
    println!("JSON: {}", path.display());
    Ok(rows)
}

/// The command line for the report, with the database URL and the JWT secret blanked.
fn redacted_args() -> Vec<String> {
    const SECRET: [&str; 2] = ["--database-url", "--jwt-secret"];
    let mut out: Vec<String> = Vec::new();
    for arg in std::env::args() {
        let after_flag = out
            .last()
            .is_some_and(|prev| SECRET.contains(&prev.as_str()));
        let redacted = if after_flag {
            "<redacted>".to_string()
        } else if let Some((flag, _)) = arg.split_once('=').filter(|(f, _)| SECRET.contains(f)) {
            format!("{flag}=<redacted>")
        } else {
            arg
        };
        out.push(redacted);
    }
    out
}

fn list(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| t.base.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Targets per the --url/--send-url rule, setup, probes.
fn bench_from(cli: &Cli, sources: Arc<SourceIps>) -> Result<Bench, String> {
    let urls: Vec<String> = if cli.urls.is_empty() {
        vec!["http://127.0.0.1:8000".into()]
    } else {
        cli.urls.clone()
    };
    let all: Vec<Target> = urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<Result<_, _>>()?;
    let (socket_targets, send_targets) = if !cli.send_urls.is_empty() {
        let send = cli
            .send_urls
            .iter()
            .map(|u| Target::parse(u))
            .collect::<Result<_, _>>()?;
        (all, send)
    } else if all.len() > 1 {
        let (sockets, last) = all.split_at(all.len() - 1);
        (sockets.to_vec(), last.to_vec())
    } else {
        (all.clone(), all)
    };
    let direct = match (&cli.database_url, &cli.jwt_secret) {
        (Some(database_url), Some(jwt_secret)) => Some(Direct {
            database_url: database_url.clone(),
            jwt_secret: jwt_secret.clone(),
        }),
        _ => None,
    };
    Ok(make_bench(
        cli,
        socket_targets,
        send_targets,
        sources,
        direct,
        cli.server_pids.clone(),
    ))
}

fn make_bench(
    cli: &Cli,
    socket_targets: Vec<Target>,
    send_targets: Vec<Target>,
    sources: Arc<SourceIps>,
    direct: Option<Direct>,
    server_pids: Vec<i32>,
) -> Bench {
    let rest = Arc::new(HttpPool::new(send_targets[0].clone(), sources.clone(), 32));
    Bench {
        socket_targets,
        send_targets,
        sources,
        setup: Setup::new(rest, direct),
        probe: CpuProbe {
            servers: server_pids,
            postgres: cli.pg_pid,
        },
        connections: cli.connections.max(1),
        ping_every: Duration::from_secs(cli.ping_secs.max(1)),
        connect_parallel: cli.connect_parallel,
        connect_deadline: Duration::from_secs(cli.connect_deadline_secs),
        drain: Duration::from_secs(cli.drain_secs),
    }
}

async fn run_scenario(bench: &Bench, scenario: &Scenario) -> Result<Vec<Row>, String> {
    let secs = Duration::from_secs;
    match scenario.clone() {
        Scenario::Idle { sockets, hold_secs } => {
            scenarios::idle(bench, sockets, secs(hold_secs)).await
        }
        Scenario::Send {
            rates,
            chats,
            duration_secs,
        } => scenarios::send(bench, &rates, chats, secs(duration_secs)).await,
        Scenario::Fanout {
            sizes,
            sockets,
            rates,
            duration_secs,
        } => scenarios::fanout(bench, &sizes, sockets, &rates, secs(duration_secs)).await,
        Scenario::Storm {
            sockets,
            chat_size,
            backlog,
            live_rate,
            drop_at,
        } => disrupt::storm(bench, sockets, chat_size, backlog, live_rate, drop_at).await,
        Scenario::Slow {
            sockets,
            chat_size,
            fraction,
            rate,
            duration_secs,
            pad,
        } => {
            disrupt::slow(
                bench,
                sockets,
                chat_size,
                fraction,
                rate,
                secs(duration_secs),
                pad,
            )
            .await
        }
        Scenario::Get {
            path,
            expect_status,
            rates,
            users,
            duration_secs,
        } => {
            scenarios::get(
                bench,
                &path,
                expect_status,
                &rates,
                users,
                secs(duration_secs),
            )
            .await
        }
        Scenario::Logins {
            users,
            logins,
            parallel,
            max_growth_mb,
        } => logins::logins(bench, users, logins, parallel, max_growth_mb).await,
        Scenario::Mixed {
            sockets,
            chat_size,
            duration_secs,
        } => mixed::mixed(bench, sockets, chat_size, secs(duration_secs)).await,
    }
}
