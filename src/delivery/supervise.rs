//! Supervision of delivery's tasks. A task that ends while the server runs (a panic, or a
//! return its loop never makes on purpose) is logged, counted in
//! `rtchat_task_restarts_total{task}` and restarted after a backoff.
//!
//! Every task is restarted rather than the process stopped at the first failure, because
//! none keeps state a fresh one lacks: a send writer's queue outlives it (the sends queued
//! meanwhile wait; only its batch in flight answers 503, and a retry with the same
//! `client_id` tells whether it committed); pending hints live in the notifier, not its task;
//! a restarted listener first marks this process not ready and its revocation set stale,
//! then reloads the revocations and wakes every socket, as after a dropped connection; the
//! sweep only compares with the previous reading. A task that keeps failing, though
//! (`MAX_QUICK_FAILURES` in a row, each sooner than `STABLE_RUN` after its start), is broken
//! beyond a restart: the process then fails `/readyz` and stops (`Delivery::failed`), so
//! that its orchestrator replaces it rather than leave it serving half a chat.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Delivery;

/// The first pause before a restart; doubled after each quick failure, up to the maximum.
const MIN_RESTART_BACKOFF: Duration = Duration::from_millis(50);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(2);

/// A task that ran this long before it ended counts as having worked: its backoff and its
/// count of quick failures start afresh.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Quick failures in a row after which a task is given up (50 ms + 100 + ... ≈ 5 s of
/// trying).
const MAX_QUICK_FAILURES: u32 = 8;

impl Delivery {
    /// Runs the task `start` makes until `stop` is cancelled, restarting it whenever it ends
    /// before that.
    pub(super) fn supervise<F, Fut>(
        self: &Arc<Self>,
        task: &'static str,
        stop: &CancellationToken,
        start: F,
    ) where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let delivery = self.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut backoff = MIN_RESTART_BACKOFF;
            let mut quick_failures = 0;
            loop {
                let started = Instant::now();
                let mut running = tokio::spawn(start());
                let ended = tokio::select! {
                    ended = &mut running => ended,
                    _ = stop.cancelled() => {
                        running.abort();
                        return;
                    }
                };
                if stop.is_cancelled() {
                    return;
                }
                let why = match ended {
                    Ok(()) => "it returned".to_string(),
                    Err(e) if e.is_panic() => {
                        let panic = e.into_panic();
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        format!("it panicked: {message}")
                    }
                    Err(e) => e.to_string(),
                };
                delivery.restarts.with_label_values(&[task]).inc();
                if started.elapsed() >= STABLE_RUN {
                    backoff = MIN_RESTART_BACKOFF;
                    quick_failures = 0;
                }
                quick_failures += 1;
                if quick_failures >= MAX_QUICK_FAILURES {
                    let reason = format!("the {task} task keeps failing ({why})");
                    tracing::error!(task, error = %why, failures = quick_failures, "a delivery task keeps failing: stopping the process");
                    let _ = delivery.failed.set(reason);
                    delivery.fatal.cancel();
                    return;
                }
                tracing::error!(task, error = %why, retry_in = ?backoff, "a delivery task ended; restarting it");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::config::Config;
    use crate::revocation::Revoked;

    fn delivery() -> Arc<Delivery> {
        let config = Config::for_tests("host=/nonexistent dbname=none");
        let pool = crate::db::pool("host=/nonexistent dbname=none", 1).unwrap();
        let restarts =
            prometheus::IntCounterVec::new(prometheus::Opts::new("restarts", "test"), &["task"])
                .unwrap();
        Delivery::new(
            &config,
            pool,
            Arc::new(Revoked::new(Duration::from_secs(60))),
            restarts,
            Arc::default(),
        )
    }

    #[tokio::test]
    async fn a_task_that_ends_is_restarted_and_one_that_keeps_failing_fails_readiness() {
        let d = delivery();
        d.listening
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let stop = CancellationToken::new();
        // Fails twice (a panic, then a return), then runs until stopped.
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        d.supervise("flaky", &stop, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => panic!("first run fails"),
                    1 => {}
                    _ => std::future::pending().await,
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while starts.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "restarted twice");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(d.restarts.with_label_values(&["flaky"]).get(), 2);
        assert!(d.ready().is_ok());

        // Always failing: given up after `MAX_QUICK_FAILURES`, and readiness fails with it.
        d.supervise("broken", &stop, || async { panic!("always") });
        let why = tokio::time::timeout(Duration::from_secs(30), d.failed())
            .await
            .expect("given up in bounded time");
        assert!(why.contains("broken"), "{why}");
        assert!(d.ready().is_err());
        assert_eq!(
            d.restarts.with_label_values(&["broken"]).get(),
            u64::from(MAX_QUICK_FAILURES)
        );
        stop.cancel();
    }
}
