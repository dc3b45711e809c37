//! Prometheus metrics: requests by route, method and status with latency histograms, pool
//! use, open sockets, delivery (`counters`), the process's resources (`process`) and the
//! build, rendered as text at `GET /metrics`. A scrape only reads: two at once report the
//! same values.

mod counters;
mod process;

use std::sync::Arc;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub use counters::{Closed, DeliveryMetrics, FrameType, Gauges, Origin, Stamp};

/// The commit the binary was built from (`build.rs`: `RTCHAT_COMMIT`, else git, else
/// "unknown").
const COMMIT: &str = env!("BUILD_COMMIT");

/// Latency buckets in seconds: sub-millisecond to several seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool_size: IntGauge,
    pool_available: IntGauge,
    pool_waiting: IntGauge,
    sockets: IntGauge,
    task_restarts: IntCounterVec,
    /// Bumped by delivery and the sockets; rendered by hand (see `counters`).
    pub delivery: Arc<DeliveryMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "rtchat_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "rtchat_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let pool_size = IntGauge::new("rtchat_db_pool_connections", "open PostgreSQL connections")
            .expect("valid metric");
        let pool_available = IntGauge::new("rtchat_db_pool_idle", "idle PostgreSQL connections")
            .expect("valid metric");
        let pool_waiting = IntGauge::new(
            "rtchat_db_pool_waiting",
            "requests waiting for a connection",
        )
        .expect("valid metric");
        let sockets = IntGauge::new("rtchat_ws_open_sockets", "open WebSocket sessions")
            .expect("valid metric");
        let task_restarts = IntCounterVec::new(
            Opts::new(
                "rtchat_task_restarts_total",
                "background tasks restarted after they ended unexpectedly, by task",
            ),
            &["task"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(pool_size.clone()),
            Box::new(pool_available.clone()),
            Box::new(pool_waiting.clone()),
            Box::new(sockets.clone()),
            Box::new(task_restarts.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            latency,
            pool_size,
            pool_available,
            pool_waiting,
            sockets,
            task_restarts,
            delivery: Arc::default(),
        }
    }

    /// Records one finished request. `route` is the route's template, never the raw path,
    /// so the label set stays bounded.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        // Methods are client input: unknown ones share a label, so the set stays bounded.
        let method = match method {
            "GET" | "POST" | "PATCH" | "DELETE" | "PUT" | "OPTIONS" | "HEAD" => method,
            _ => "other",
        };
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// The counter of task restarts, for the supervisor that makes them.
    pub fn task_restarts(&self) -> IntCounterVec {
        self.task_restarts.clone()
    }

    /// The Prometheus text exposition, with the pool's status, the open sockets, the frames
    /// queued so far (`frames_queued`, the hub's own counter, shown as it is: copying it into
    /// a registered counter made concurrent scrapes add it twice) and delivery's gauges.
    pub fn render(
        &self,
        pool: deadpool_postgres::Status,
        sockets: usize,
        frames_queued: u64,
        gauges: &Gauges,
    ) -> String {
        // Set, not added: a concurrent scrape sets the same values.
        self.pool_size.set(status_i64(pool.size));
        self.pool_available.set(status_i64(pool.available));
        self.pool_waiting.set(status_i64(pool.waiting));
        self.sockets.set(status_i64(sockets));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        let mut out = String::from_utf8(out).expect("prometheus text is UTF-8");
        counters::counter(
            &mut out,
            "rtchat_ws_frames_queued_total",
            "frames handed to socket queues",
            frames_queued,
        );
        self.delivery.render(&mut out, gauges);
        process::render(&mut out);
        counters::help(
            &mut out,
            "rtchat_build_info",
            "gauge",
            "the running build: version and commit, value 1",
        );
        out.push_str(&format!(
            "rtchat_build_info{{version=\"{}\",commit=\"{COMMIT}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ));
        out
    }
}

fn status_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;

    fn shown(text: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("rtchat_ws_frames_queued_total "))
            .expect("the series is there")
            .parse()
            .unwrap()
    }

    #[test]
    fn concurrent_scrapes_never_count_twice() {
        use std::sync::atomic::AtomicBool;
        const ROUNDS: u64 = 1500;
        let pool = deadpool_postgres::Status {
            max_size: 1,
            size: 1,
            available: 1,
            waiting: 0,
        };
        let metrics = Arc::new(Metrics::new());
        let round = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let wrong = Arc::new(AtomicBool::new(false));
        // Each round, 1000 more frames were queued and two scrapes are released at the same
        // instant (spinning, not parked): both must report exactly that. Copying the count
        // into a counter with get-then-add let both add the same difference, for good.
        let scrapers: Vec<_> = (0..2)
            .map(|_| {
                let (metrics, round, done, wrong) =
                    (metrics.clone(), round.clone(), done.clone(), wrong.clone());
                std::thread::spawn(move || {
                    for mine in 1..=ROUNDS {
                        while round.load(Ordering::Acquire) < mine {
                            std::hint::spin_loop();
                        }
                        let gauges = Gauges {
                            send_queue: 0,
                            listening: true,
                            revoked: 0,
                            online_users: 0,
                            presence_frames: 0,
                        };
                        let text = metrics.render(pool, 0, mine * 1000, &gauges);
                        if shown(&text) != mine * 1000 {
                            wrong.store(true, Ordering::Release);
                        }
                        done.fetch_add(1, Ordering::AcqRel);
                    }
                })
            })
            .collect();
        for r in 1..=ROUNDS {
            round.store(r, Ordering::Release);
            while done.load(Ordering::Acquire) < 2 * r {
                std::thread::yield_now();
            }
            assert!(!wrong.load(Ordering::Acquire), "round {r}");
        }
        for scraper in scrapers {
            scraper.join().unwrap();
        }
    }
}
