//! The test harness: a throwaway PostgreSQL (or `TEST_DATABASE_URL`), a fresh database per
//! test, and the real server on port 0 with real HTTP and WebSocket clients.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use rtchat::config::Config;
use rtchat::EmbeddedPostgres;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every wait in a test is bounded by this.
pub const WAIT: Duration = Duration::from_secs(15);

/// How tests reach PostgreSQL: `TEST_DATABASE_URL`, or a cluster started for this process.
enum Cluster {
    External(Box<tokio_postgres::Config>),
    Embedded(EmbeddedPostgres),
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            let config = tokio_postgres::Config::from_str(&url).expect("TEST_DATABASE_URL parses");
            return Cluster::External(Box::new(config));
        }
        let root = std::env::temp_dir();
        remove_stale_clusters(&root);
        let dir = root.join(format!("rtchat-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pg = EmbeddedPostgres::start(
            &dir.join("pg"),
            &[
                // A throwaway cluster: durability buys nothing here.
                ("fsync", "off"),
                ("synchronous_commit", "off"),
                ("full_page_writes", "off"),
                ("max_connections", "400"),
            ],
        )
        .expect("the test PostgreSQL starts");
        Cluster::Embedded(pg)
    })
}

/// Deletes the directories of earlier test runs whose process is gone.
fn remove_stale_clusters(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(pid) = name
            .strip_prefix("rtchat-test-")
            .and_then(|p| p.parse::<u32>().ok())
        {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A key=value connection string for `database` on the test cluster.
fn url_for(database: &str) -> String {
    match cluster() {
        Cluster::Embedded(pg) => pg.url_for(database),
        Cluster::External(config) => {
            let mut parts = vec![format!("dbname={database}")];
            if let Some(host) = config.get_hosts().first() {
                match host {
                    tokio_postgres::config::Host::Tcp(h) => parts.push(format!("host={h}")),
                    tokio_postgres::config::Host::Unix(p) => {
                        parts.push(format!("host={}", p.display()))
                    }
                }
            }
            if let Some(port) = config.get_ports().first() {
                parts.push(format!("port={port}"));
            }
            if let Some(user) = config.get_user() {
                parts.push(format!("user={user}"));
            }
            if let Some(pw) = config.get_password() {
                parts.push(format!(
                    "password='{}'",
                    String::from_utf8_lossy(pw).replace('\'', "\\'")
                ));
            }
            parts.join(" ")
        }
    }
}

/// Creates an empty database for one test and returns its connection string.
pub async fn fresh_database() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "rtchat_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let admin = match cluster() {
        Cluster::External(config) => {
            let mut c = (**config).clone();
            c.dbname(config.get_dbname().unwrap_or("postgres"));
            c
        }
        Cluster::Embedded(pg) => tokio_postgres::Config::from_str(&pg.url()).expect("valid url"),
    };
    let (client, connection) = admin
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the test cluster");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    url_for(&name)
}

/// A running rtchat on port 0 with its own database.
#[allow(dead_code)] // used by the WebSocket tests
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

/// A registered, logged-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
}

/// A response's status and JSON body (`Value::Null` when the body is empty or not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

#[allow(dead_code)]
impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Starts a server on a fresh database, after `tweak` adjusted its configuration.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let database_url = fresh_database().await;
        TestApp::spawn_on(&database_url, tweak).await
    }

    /// Starts a server on an existing database (a second process of the same deployment).
    pub async fn spawn_on(database_url: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
        if std::env::var_os("RTCHAT_TEST_LOG").is_some() {
            rtchat::init_logging(&std::env::var("RTCHAT_TEST_LOG").unwrap_or_default());
        }
        let mut config = Config::for_tests(database_url);
        config.db_pool_size = 8;
        config.shutdown_grace = Duration::from_secs(5);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("bound");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(rtchat::run(listener, config, async {
            let _ = rx.await;
        }));
        let app = TestApp {
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(WAIT)
                .build()
                .expect("client"),
            database_url: database_url.to_string(),
            shutdown: Some(tx),
            handle: Some(handle),
        };
        // Ready = the database answers and the LISTEN connection is up (so cross-process
        // tests do not race the listener's start).
        for _ in 0..300 {
            if let Ok(r) = app.http.get(format!("{}/readyz", app.base)).send().await {
                if r.status() == 200 {
                    return app;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not come up");
    }

    /// Stops the server (SIGTERM's path) and waits for it to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(WAIT, handle)
                .await
                .expect("the server stops in time")
                .expect("the server task does not panic")
                .expect("the server stops cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method.parse().expect("method"), self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("POST", path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call("DELETE", path, Some(token), None).await
    }

    /// `POST /auth/login` with a JSON body.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// Registers and logs in a user whose email starts with `name`.
    pub async fn user(&self, name: &str) -> TestUser {
        static N: AtomicU64 = AtomicU64::new(0);
        let email = format!("{name}{}@example.com", N.fetch_add(1, Ordering::Relaxed));
        let r = self
            .call(
                "POST",
                "/auth/register",
                None,
                Some(json!({"email": email, "name": name, "password": "correct horse"})),
            )
            .await;
        assert_eq!(r.status, 201, "register: {r:?}");
        let id = r.body["id"].as_i64().expect("user id");
        let r = self.login(&email, "correct horse").await;
        assert_eq!(r.status, 200, "login: {r:?}");
        TestUser {
            id,
            email,
            token: r.body["access_token"].as_str().expect("token").to_string(),
            refresh_token: r.body["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_string(),
        }
    }

    /// Creates a group chat of `owner` with `others`; returns its id.
    pub async fn group(&self, owner: &TestUser, others: &[&TestUser]) -> i64 {
        let ids: Vec<i64> = others.iter().map(|u| u.id).collect();
        let r = self
            .post(
                "/chats",
                &owner.token,
                json!({"type": "group", "title": "g", "participant_ids": ids}),
            )
            .await;
        assert_eq!(r.status, 201, "create group: {r:?}");
        r.body["id"].as_i64().expect("chat id")
    }

    /// Sends a message; returns the message.
    pub async fn send(&self, user: &TestUser, chat_id: i64, text: &str) -> Value {
        let r = self
            .post(
                &format!("/chats/{chat_id}/messages"),
                &user.token,
                json!({ "text": text }),
            )
            .await;
        assert_eq!(r.status, 201, "send: {r:?}");
        r.body
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads a reqwest response into a `Reply`.
pub async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body read");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// Asserts an error reply: status, code, and (for 422) the named field.
#[track_caller]
pub fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.body["code"], code, "{r:?}");
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{r:?}"
    );
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{r:?}"
    );
}

/// Asserts a 422 that names `field`.
#[track_caller]
pub fn assert_invalid(r: &Reply, field: &str) {
    assert_error(r, 422, "validation_error");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .expect("errors list")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.iter().any(|f| f.contains(field)),
        "expected field {field} in {r:?}"
    );
}
