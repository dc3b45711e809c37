//! `--smoke`: every delivery scenario, small, checking correctness only (never a time).
//!
//! Without `--url` it starts its own deployment in this process: a throwaway PostgreSQL
//! (`rtchat::EmbeddedPostgres`, no fsync: nothing here is timed) and two `rtchat::run`
//! instances on port 0 sharing it. Sockets spread over both and REST goes through the second,
//! so half the deliveries cross "processes" through LISTEN/NOTIFY. A tiny socket queue makes
//! the slow-reader overflow (1013, resume with `since`) really happen.

use std::sync::Arc;
use std::time::Duration;

use rtchat::config::Config;
use rtchat::EmbeddedPostgres;
use tokio::sync::oneshot;

use super::net::{HttpConn, SourceIps, Target};
use super::report::Row;
use super::setup::Direct;
use super::{disrupt, scenarios};
use crate::Cli;

/// Frames queued per socket in the smoke servers: small, so a paused reader overflows fast.
const SMOKE_WS_QUEUE: usize = 16;

/// The in-process deployment; dropping it stops the servers, then PostgreSQL.
struct Deployment {
    targets: Vec<Target>,
    database_url: String,
    jwt_secret: String,
    stops: Vec<oneshot::Sender<()>>,
    servers: Vec<tokio::task::JoinHandle<Result<(), String>>>,
    postgres: Option<EmbeddedPostgres>,
    dir: std::path::PathBuf,
}

impl Deployment {
    async fn start() -> Result<Deployment, String> {
        let dir = std::env::temp_dir().join(format!("rtchat-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pg_dir = dir.join("pg");
        let postgres = tokio::task::spawn_blocking(move || {
            EmbeddedPostgres::start(
                &pg_dir,
                &[
                    // Throwaway and untimed: durability buys nothing here.
                    ("fsync", "off"),
                    ("synchronous_commit", "off"),
                    ("full_page_writes", "off"),
                ],
            )
        })
        .await
        .map_err(|e| e.to_string())??;
        let database_url = postgres.url();
        let mut config = Config::for_tests(&database_url);
        config.ws_queue = SMOKE_WS_QUEUE;
        config.db_pool_size = 8;
        config.shutdown_grace = Duration::from_secs(2);
        let jwt_secret = config
            .jwt_secret
            .as_ref()
            .map(|s| s.expose().to_string())
            .ok_or("the test configuration has a JWT secret")?;
        let mut deployment = Deployment {
            targets: Vec::new(),
            database_url,
            jwt_secret,
            stops: Vec::new(),
            servers: Vec::new(),
            postgres: Some(postgres),
            dir,
        };
        for _ in 0..2 {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("bind: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let (tx, rx) = oneshot::channel::<()>();
            deployment
                .servers
                .push(tokio::spawn(rtchat::run(listener, config.clone(), async {
                    let _ = rx.await;
                })));
            deployment.stops.push(tx);
            let target = Target::parse(&format!("http://{addr}"))?;
            wait_healthy(&target).await?;
            deployment.targets.push(target);
        }
        Ok(deployment)
    }

    async fn stop(mut self) {
        for tx in self.stops.drain(..) {
            let _ = tx.send(());
        }
        for server in self.servers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
        if let Some(pg) = self.postgres.take() {
            let _ = tokio::task::spawn_blocking(move || drop(pg)).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn wait_healthy(target: &Target) -> Result<(), String> {
    for _ in 0..300 {
        if let Ok(mut conn) = HttpConn::connect(target, None).await {
            if let Ok(r) = conn.call(hyper::Method::GET, "/healthz", None, None).await {
                if r.status == 200 {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{} did not become healthy", target.base))
}

/// Runs the smoke suite; returns its rows and the server pids to report.
pub async fn run(cli: &Cli, sources: Arc<SourceIps>) -> Result<(Vec<Row>, Vec<i32>), String> {
    let mut deployment = None;
    let (socket_targets, send_targets, direct, pids) = if cli.urls.is_empty() {
        let d = Deployment::start().await?;
        let direct = Direct {
            database_url: d.database_url.clone(),
            jwt_secret: d.jwt_secret.clone(),
        };
        let out = (
            d.targets.clone(),
            vec![d.targets[1].clone()],
            Some(direct),
            Vec::new(),
        );
        println!(
            "rtchat-bench --smoke: two in-process servers ({}) on a throwaway PostgreSQL",
            d.targets
                .iter()
                .map(|t| t.base.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        deployment = Some(d);
        out
    } else {
        let bench = crate::bench_from(cli, sources.clone())?;
        let direct = bench.setup.direct.as_ref().map(|d| Direct {
            database_url: d.database_url.clone(),
            jwt_secret: d.jwt_secret.clone(),
        });
        println!("rtchat-bench --smoke against {}", cli.urls.join(", "));
        (
            bench.socket_targets,
            bench.send_targets,
            direct,
            cli.server_pids.clone(),
        )
    };
    let result = suite(
        cli,
        sources,
        socket_targets,
        send_targets,
        direct,
        pids.clone(),
    )
    .await;
    if let Some(d) = deployment {
        d.stop().await;
    }
    Ok((result?, pids))
}

async fn suite(
    cli: &Cli,
    sources: Arc<SourceIps>,
    socket_targets: Vec<Target>,
    send_targets: Vec<Target>,
    direct: Option<Direct>,
    pids: Vec<i32>,
) -> Result<Vec<Row>, String> {
    let secs = Duration::from_secs;
    let make = |direct: Option<Direct>| {
        let mut bench = crate::make_bench(
            cli,
            socket_targets.clone(),
            send_targets.clone(),
            sources.clone(),
            direct,
            pids.clone(),
        );
        bench.connections = bench.connections.min(16);
        bench.connect_deadline = secs(15);
        bench
    };
    let copy = |d: &Option<Direct>| {
        d.as_ref().map(|d| Direct {
            database_url: d.database_url.clone(),
            jwt_secret: d.jwt_secret.clone(),
        })
    };
    let rates = |per_sec: u32| vec![per_sec.to_string()];
    let mut rows = Vec::new();
    // Users registered and logged in over REST: the path real clients take.
    let rest = make(None);
    rows.extend(scenarios::fanout(&rest, &[2], 8, &rates(50), secs(2)).await?);
    // Bulk users for the rest (over REST when the database is not ours to write).
    let bench = make(copy(&direct));
    rows.extend(scenarios::fanout(&bench, &[10, 50], 100, &rates(100), secs(2)).await?);
    rows.extend(disrupt::storm(&bench, 100, 10, 3, 50.0, None).await?);
    rows.extend(disrupt::slow(&bench, 20, 20, 0.05, 300.0, secs(4), 4000).await?);
    for row in &mut rows {
        row.scenario = format!("smoke {}", row.scenario);
    }
    Ok(rows)
}
