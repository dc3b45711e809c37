//! `logins`: password hashing under load. Registers users and logs them in over REST (one
//! argon2 hash per request) and reads the server's resident memory before, between and after.
//! Each hash needs a 19 MiB work area; the run fails when the server keeps more than
//! `--max-growth-mb` of what it took, which is how memory that is never given back shows up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::Method;
use serde_json::json;

use super::net::HttpPool;
use super::report::Row;
use super::scenarios::Bench;
use super::setup::{lossy, to_bytes};

/// The password of every user this scenario makes.
const PASSWORD: &str = "correct horse battery";

/// Latencies above this (µs) are recorded as this: a hash that waits a minute has failed anyway.
const MAX_LATENCY_US: u64 = 60_000_000;

/// How long the server is left alone before each memory reading, so that what a request held
/// only while running is freed (or not) before it is counted.
const SETTLE: Duration = Duration::from_secs(2);

/// Tries of one request answered 503 (100 ms apart) before it counts as failed.
const BUSY_ATTEMPTS: u32 = 50;

/// What one phase (registrations or logins) did.
struct Phase {
    latency: Histogram<u64>,
    elapsed: Duration,
    ok: u64,
    /// 503s: the hashing queue was full (each is retried after a pause).
    busy: u64,
    /// Anything else that was not the expected status.
    failed: u64,
}

/// `logins`: `users` registrations, then `logins` logins spread over those users, `parallel`
/// requests at a time.
pub async fn logins(
    bench: &Bench,
    users: usize,
    logins: usize,
    parallel: usize,
    max_growth_mb: u64,
) -> Result<Vec<Row>, String> {
    let users = users.max(1);
    let pools: Arc<Vec<HttpPool>> = Arc::new(
        bench
            .send_targets
            .iter()
            .map(|t| HttpPool::new(t.clone(), bench.sources.clone(), parallel.max(1)))
            .collect(),
    );
    let emails: Arc<Vec<String>> = Arc::new(
        (0..users)
            .map(|i| format!("logins-{}-{i}@bench.invalid", bench.setup.run_id))
            .collect(),
    );
    let measured = !bench.probe.servers.is_empty();
    if !measured {
        eprintln!("rtchat-bench logins: no --server-pid given, so memory is not measured");
    }

    tokio::time::sleep(SETTLE).await;
    let rss_start = bench.server_rss_kb();

    let register = {
        let emails = emails.clone();
        phase(&pools, users, parallel, 201, move |i| {
            let body = json!({"email": emails[i], "name": "bench", "password": PASSWORD});
            ("/auth/register", body)
        })
        .await?
    };
    tokio::time::sleep(SETTLE).await;
    let rss_registered = bench.server_rss_kb();

    let login = {
        let emails = emails.clone();
        phase(&pools, logins, parallel, 200, move |i| {
            let body = json!({"email": emails[i % emails.len()], "password": PASSWORD});
            ("/auth/login", body)
        })
        .await?
    };
    tokio::time::sleep(SETTLE).await;
    let rss_end = bench.server_rss_kb();

    let mb = |kb: u64| kb as f64 / 1024.0;
    let growth_kb = rss_end.saturating_sub(rss_start);
    let over = measured && growth_kb > max_growth_mb * 1024;
    let registered = row(
        format!("register {users} users, {parallel} at a time"),
        "registrations/s",
        &register,
    )
    .metric("server_rss_kb_before", rss_start)
    .metric("server_rss_kb_after", rss_registered);
    let registered = if measured {
        registered.note(format!(
            "server RSS {:.0} → {:.0} MB",
            mb(rss_start),
            mb(rss_registered)
        ))
    } else {
        registered
    };
    let mut logged_in = row(
        format!("{logins} logins over {users} users, {parallel} at a time"),
        "logins/s",
        &login,
    )
    .metric("server_rss_kb_start", rss_start)
    .metric("server_rss_kb_before", rss_registered)
    .metric("server_rss_kb_end", rss_end)
    .metric("server_rss_growth_kb", growth_kb)
    .metric("max_growth_mb", max_growth_mb);
    if measured {
        logged_in = logged_in.note(format!(
            "server RSS {:.0} → {:.0} MB after registrations, {:.0} MB after logins: \
             +{:.0} MB (bound {max_growth_mb} MB)",
            mb(rss_start),
            mb(rss_registered),
            mb(rss_end),
            mb(growth_kb)
        ));
    }
    if over {
        logged_in = logged_in
            .metric("failed", true)
            .note("FAILED: the server kept more memory than the bound");
    }
    Ok(vec![registered, logged_in])
}

fn row(case: String, unit: &str, phase: &Phase) -> Row {
    let mut row = Row::new("logins", case);
    row.throughput = Some(phase.ok as f64 / phase.elapsed.as_secs_f64().max(1e-9));
    row.unit = unit.into();
    let mut row = row
        .latency(&phase.latency)
        .metric("ok", phase.ok)
        .metric("busy_503", phase.busy)
        .metric("failed_requests", phase.failed)
        .metric("elapsed_secs", phase.elapsed.as_secs_f64());
    if phase.busy > 0 {
        row = row.note(format!(
            "{} answered 503 (hashing queue full), retried",
            phase.busy
        ));
    }
    if phase.failed > 0 {
        row = row
            .metric("failed", true)
            .note(format!("FAILED: {} requests failed", phase.failed));
    }
    row
}

/// Runs requests `0..n` (`request(i)` is the path and JSON body of the i-th), `parallel` at a
/// time, each expecting `expect`. A 429 stops the run: the server's rate limits must be raised.
async fn phase(
    pools: &Arc<Vec<HttpPool>>,
    n: usize,
    parallel: usize,
    expect: u16,
    request: impl Fn(usize) -> (&'static str, serde_json::Value) + Send + Sync + 'static,
) -> Result<Phase, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let latency = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"),
    ));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..parallel.max(1) {
        let (pools, next, request, latency) = (
            pools.clone(),
            next.clone(),
            request.clone(),
            latency.clone(),
        );
        workers.push(tokio::spawn(async move {
            let (mut ok, mut busy, mut failed) = (0u64, 0u64, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, String>((ok, busy, failed));
                }
                let (path, body) = request(i);
                let pool = &pools[i % pools.len()];
                for attempt in 1.. {
                    let sent = Instant::now();
                    let reply = pool
                        .call(Method::POST, path, None, Some(to_bytes(&body)))
                        .await;
                    let us = sent.elapsed().as_micros() as u64;
                    match reply {
                        Ok(r) if r.status == expect => {
                            ok += 1;
                            let _ = latency
                                .lock()
                                .expect("histogram lock")
                                .record(us.clamp(1, MAX_LATENCY_US));
                        }
                        Ok(r) if r.status == 503 && attempt < BUSY_ATTEMPTS => {
                            busy += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                        Ok(r) if r.status == 429 => {
                            return Err(format!(
                                "{path}: 429 rate limited. Start the server with raised limits, e.g. \
                                 RTCHAT_RATE_REGISTER_PER_ADDR=1000000 RTCHAT_RATE_LOGIN_PER_ADDR=1000000 \
                                 RTCHAT_RATE_LOGIN_PER_EMAIL=1000000"
                            ));
                        }
                        Ok(r) => {
                            failed += 1;
                            if failed <= 3 {
                                eprintln!("{path}: {} {}", r.status, lossy(&r.body));
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            if failed <= 3 {
                                eprintln!("{path}: {e}");
                            }
                        }
                    }
                    break;
                }
            }
        }));
    }
    let (mut ok, mut busy, mut failed) = (0, 0, 0);
    for worker in workers {
        let (o, b, f) = worker.await.map_err(|e| e.to_string())??;
        ok += o;
        busy += b;
        failed += f;
    }
    let elapsed = started.elapsed();
    let latency = latency.lock().expect("histogram lock").clone();
    Ok(Phase {
        latency,
        elapsed,
        ok,
        busy,
        failed,
    })
}
