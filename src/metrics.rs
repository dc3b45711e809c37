//! Prometheus metrics: requests by route, method and status with latency histograms, pool
//! use, open sockets and delivered frames, rendered as text at `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

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
    delivered: IntCounter,
    task_restarts: IntCounterVec,
    online_users: IntGauge,
    presence_frames: IntCounter,
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
        let delivered = IntCounter::new(
            "rtchat_ws_frames_queued_total",
            "frames handed to socket queues",
        )
        .expect("valid metric");
        let task_restarts = IntCounterVec::new(
            Opts::new(
                "rtchat_task_restarts_total",
                "background tasks restarted after they ended unexpectedly, by task",
            ),
            &["task"],
        )
        .expect("valid metric");
        let online_users = IntGauge::new(
            "rtchat_online_users",
            "users online over all processes, as this process knows them (in their grace period included): every process reports about the same number, so take the max, not the sum",
        )
        .expect("valid metric");
        let presence_frames = IntCounter::new(
            "rtchat_presence_frames_total",
            "presence frames queued to this process's sockets",
        )
        .expect("valid metric");
        for c in [
            Box::new(online_users.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(presence_frames.clone()),
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(pool_size.clone()),
            Box::new(pool_available.clone()),
            Box::new(pool_waiting.clone()),
            Box::new(sockets.clone()),
            Box::new(delivered.clone()),
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
            delivered,
            task_restarts,
            online_users,
            presence_frames,
        }
    }

    /// Sets the presence metrics before a `render`: the users online over all processes and
    /// the presence frames queued so far.
    pub fn set_presence(&self, online_users: usize, frames: u64) {
        self.online_users.set(online_users as i64);
        self.presence_frames
            .inc_by(frames.saturating_sub(self.presence_frames.get()));
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

    /// The Prometheus text exposition, with the pool's status, the open sockets and the
    /// frames queued so far.
    pub fn render(
        &self,
        pool: deadpool_postgres::Status,
        sockets: usize,
        delivered: u64,
    ) -> String {
        let status = pool;
        self.pool_size.set(status.size as i64);
        self.pool_available.set(status.available as i64);
        self.pool_waiting.set(status.waiting as i64);
        self.sockets.set(sockets as i64);
        self.delivered
            .inc_by(delivered.saturating_sub(self.delivered.get()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}
