//! The server: builds the shared state, runs the accept loop, and shuts down in order
//! (stop accepting, close sockets with 1001, drain HTTP within the grace period).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, Auth};
use crate::config::Config;
use crate::conn::{ClientIo, ConnectionSlot};
use crate::delivery::Delivery;
use crate::limits::{self, Limits};
use crate::logging::RequestIds;
use crate::metrics::Metrics;
use crate::revocation::Revoked;
use crate::state::AppState;
use crate::store::events;
use crate::{db, identity, leases, router};

/// hyper's request-head limit, set above rtchat's own (`router::MAX_HEADERS`), so that a
/// request with more headers than rtchat takes still reaches the router and gets its 431 in
/// the JSON envelope; only one with more than this gets hyper's bare 431. Past its default
/// of 100, hyper allocates these slots per request head instead of using the stack: 64 bytes
/// each, 16 KiB per request.
const HYPER_MAX_HEADERS: usize = 256;

/// How often retention prunes the event log and ended login sessions.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs rtchat on `listener` until `shutdown` completes, then shuts down gracefully.
/// `config.database_url` must be set (`main` starts the embedded PostgreSQL when it is not).
/// Also shuts down, and returns the reason as its error, when a delivery task fails for good
/// (see `delivery::supervise`): the process should then exit and be replaced.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), String> {
    warn_about_limits(&config);
    let state = build_state(config).await?;
    let sessions = state.sessions.clone();
    let grace = state.config.shutdown_grace;

    let prune = tokio::spawn(prune_events(state.clone()));
    // Delivery's tasks, supervised; its send writers stop only after the requests drained
    // (`stop_writers`), since requests still draining wait for them.
    state.delivery.start();
    let delivery = state.delivery.clone();
    let failed = delivery.failed();
    tokio::pin!(failed);
    let mut failure = None;
    // On the session tracker, so shutdown waits for the lease to be given up.
    state.sessions.spawn(leases::run(
        state.pool.clone(),
        state.delivery.process_id(),
        state.config.lease_renew,
        state.limits.live_processes.clone(),
        state.shutdown.clone(),
    ));

    // HTTP/1.1 only. The auto builder's HTTP/2 sniff read the first bytes with no timeout
    // before hyper's header timer started, so `P` and silence held a connection slot forever;
    // nothing speaks h2c to rtchat (nginx talks HTTP/1.1 to upstreams, browsers use h2 only
    // over TLS). hyper's HTTP/1 header timer starts when the connection starts reading and
    // again whenever a kept-alive connection waits for its next request, so it bounds a
    // silent client, a partial head and an idle keep-alive alike.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout)
        .max_headers(HYPER_MAX_HEADERS)
        .keep_alive(true);
    // Connections still serving HTTP; shutdown drains them (upgraded sockets are `sessions`).
    let http = TaskTracker::new();
    let connections = Arc::new(Semaphore::new(state.config.max_connections));

    tracing::info!(addr = %listener.local_addr().map_err(|e| e.to_string())?, "rtchat listening");
    tokio::pin!(shutdown);
    loop {
        // Waiting for a permit before accepting leaves excess clients in the kernel's queue.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            why = &mut failed => {
                failure = Some(why);
                break;
            }
            permit = connections.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            why = &mut failed => {
                failure = Some(why);
                break;
            }
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let stopping = state.shutdown.clone();
        let stall = state.config.header_read_timeout;
        let state = state.clone();
        let slot = ConnectionSlot::new(permit);
        let service = service_fn(move |mut req: hyper::Request<_>| {
            let state = state.clone();
            req.extensions_mut().insert(slot.clone());
            async move { Ok::<_, Infallible>(router::handle(state, req, peer).await) }
        });
        let io = ClientIo::new(stream, stall);
        let conn = builder.serve_connection(io, service).with_upgrades();
        http.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stopping.cancelled() => {
                    // Finish the request in flight, then close; an idle connection closes now.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            // The slot is free once the service (and any session it upgraded to) is gone.
        });
    }

    tracing::info!("shutting down: closing sockets and draining requests");
    drop(listener);
    state.shutdown.cancel();
    prune.abort();
    delivery.stop_background();
    http.close();
    if tokio::time::timeout(grace, http.wait()).await.is_err() {
        tracing::warn!("HTTP connections still open after the grace period");
    }
    delivery.stop_writers().await;
    sessions.close();
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        tracing::warn!("WebSocket sessions still open after the grace period");
    }
    match failure {
        Some(why) => Err(format!("stopped: {why}")),
        None => Ok(()),
    }
}

/// Open files beyond the connections: the database pool, the LISTEN connection, the
/// listener, logs and the embedded PostgreSQL's pipes.
const OTHER_FILES: u64 = 64;

/// Raises the soft open-file limit to the hard one (each connection is a file; the soft
/// default is often 1,024) and warns about limits that cannot all be reached: connections
/// beyond the open-file limit fail to be accepted, and sockets beyond `max_connections`
/// wait in the accept queue instead of getting their 503.
fn warn_about_limits(config: &Config) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            }
        }
        let needed = config.max_connections as u64 + config.db_pool_size as u64 + OTHER_FILES;
        if limit.rlim_cur < needed {
            tracing::warn!(
                open_file_limit = limit.rlim_cur,
                needed,
                "RTCHAT_MAX_CONNECTIONS does not fit the open-file limit: raise `ulimit -n` or lower it"
            );
        }
    }
    if config.max_sockets >= config.max_connections {
        tracing::warn!(
            max_sockets = config.max_sockets,
            max_connections = config.max_connections,
            "RTCHAT_MAX_SOCKETS is not below RTCHAT_MAX_CONNECTIONS: sockets count as \
             connections, so past the connection limit they wait instead of getting 503"
        );
    }
}

async fn build_state(config: Config) -> Result<Arc<AppState>, String> {
    let url = config
        .database_url
        .clone()
        .ok_or("DATABASE_URL is not set and no embedded PostgreSQL was started")?;
    let pool = db::pool(url.expose(), config.db_pool_size)?;
    db::wait_for_database(&pool, &db::target(url.expose()), config.db_connect_timeout).await?;
    crate::store::schema::apply_schema(&pool).await?;
    identity::backfill_email_keys(&pool).await?;
    let secret = match &config.jwt_secret {
        Some(secret) => secret.expose().to_string(),
        None => {
            tracing::warn!(
                "JWT_SECRET is not set: using a random secret, so every token dies with this \
                 process and other processes reject it. Set JWT_SECRET in production."
            );
            auth::random_secret()
        }
    };
    let revoked = Arc::new(Revoked::new(config.token_ttl));
    let client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    revoked
        .load(&client)
        .await
        .map_err(|e| format!("loading revoked sessions: {e:?}"))?;
    drop(client);
    let metrics = Metrics::new();
    let delivery = Delivery::new(
        &config,
        pool.clone(),
        revoked.clone(),
        metrics.task_restarts(),
        metrics.delivery.clone(),
    );
    Ok(Arc::new(AppState {
        auth: Auth::new(secret.as_bytes(), config.token_ttl),
        pool,
        delivery,
        limits: Limits::new(&config),
        revoked,
        metrics,
        shutdown: CancellationToken::new(),
        sessions: TaskTracker::new(),
        config,
        request_ids: RequestIds::default(),
    }))
}

/// Prunes events older than the retention window, login counters whose window has passed and
/// login sessions no token can use any more; now and then every `PRUNE_INTERVAL`. Each is
/// tried on its own: one failing leaves the others to do their part.
async fn prune_events(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tick.tick().await;
        let client = match state.pool.get().await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = ?e, "pruning failed");
                continue;
            }
        };
        logged(
            "login attempts",
            limits::prune_login_attempts(&client).await,
        );
        let sessions = logged(
            "sessions",
            auth::prune_sessions(&client, state.config.token_ttl).await,
        );
        let events = logged(
            "events",
            events::prune(&client, state.config.event_retention).await,
        );
        if events > 0 || sessions > 0 {
            tracing::info!(events, sessions, "pruned old events and ended sessions");
        }
    }
}

/// How many rows a pruning step deleted; a failure is logged and counts none.
fn logged<E: std::fmt::Debug>(what: &str, pruned: Result<u64, E>) -> u64 {
    pruned.unwrap_or_else(|e| {
        tracing::warn!(error = ?e, what, "pruning failed");
        0
    })
}
