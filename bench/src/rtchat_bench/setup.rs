//! Users and chats for a scenario. Two ways to get users:
//!
//! - **REST** (always works): `POST /auth/register` and `/auth/login` per user. Each costs two
//!   argon2 hashes (~tens of ms of server CPU), fine for tens of users, far too slow for the
//!   20,000 of a reconnect storm.
//! - **Direct** (`--database-url` and `--jwt-secret`, as the server has them): users and their
//!   login sessions are inserted in bulk with one shared password hash, and access tokens are
//!   signed here with the server's secret (`rtchat::testing::Auth`). Setup only: all measured
//!   traffic goes through the server's public interface.
//!
//! Chats are always created over REST (`POST /chats`), so they carry their real events.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::net::HttpPool;

/// The password of every generated user (REST setup logs in with it).
const PASSWORD: &str = "correct horse battery";

/// Access tokens signed here live this long: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// Users inserted per statement in direct setup.
const INSERT_BATCH: usize = 5_000;

/// Setup calls in flight at once.
const SETUP_PARALLEL: usize = 16;

/// A logged-in user.
#[derive(Debug)]
pub struct User {
    pub id: i64,
    pub token: String,
}

/// A chat and its members (`members[0]` created it).
#[derive(Debug)]
pub struct Chat {
    pub id: i64,
    pub members: Vec<Arc<User>>,
}

/// Direct database access for bulk setup.
pub struct Direct {
    pub database_url: String,
    pub jwt_secret: String,
}

/// Makes users and chats.
pub struct Setup {
    pub rest: Arc<HttpPool>,
    pub direct: Option<Direct>,
    /// Distinguishes this run's emails from earlier runs' on the same database.
    pub run_id: String,
    counter: AtomicU64,
}

impl Setup {
    pub fn new(rest: Arc<HttpPool>, direct: Option<Direct>) -> Setup {
        let run_id = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() % 100_000_000)
                .unwrap_or(0)
        );
        Setup {
            rest,
            direct,
            run_id,
            counter: AtomicU64::new(0),
        }
    }

    /// `n` new users with valid access tokens.
    pub async fn users(&self, n: usize) -> Result<Vec<Arc<User>>, String> {
        let first = self.counter.fetch_add(n as u64, Ordering::Relaxed);
        match &self.direct {
            Some(direct) => self.users_direct(direct, first, n).await,
            None => self.users_rest(first, n).await,
        }
    }

    async fn users_rest(&self, first: u64, n: usize) -> Result<Vec<Arc<User>>, String> {
        let gate = Arc::new(Semaphore::new(SETUP_PARALLEL));
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let rest = self.rest.clone();
            let gate = gate.clone();
            let email = format!("bench-{}-{}@bench.invalid", self.run_id, first + i);
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.expect("never closed");
                let body = json!({"email": email, "name": "bench", "password": PASSWORD});
                let r = rest
                    .call_patiently(Method::POST, "/auth/register", None, Some(to_bytes(&body)))
                    .await?;
                if r.status != 201 {
                    return Err(format!("register: {} {}", r.status, lossy(&r.body)));
                }
                let id = parse(&r.body)?["id"].as_i64().ok_or("register: no id")?;
                let body = json!({"email": email, "password": PASSWORD});
                let r = rest
                    .call_patiently(Method::POST, "/auth/login", None, Some(to_bytes(&body)))
                    .await?;
                if r.status != 200 {
                    return Err(format!("login: {} {}", r.status, lossy(&r.body)));
                }
                let token = parse(&r.body)?["access_token"]
                    .as_str()
                    .ok_or("login: no access_token")?
                    .to_string();
                Ok(Arc::new(User { id, token }))
            }));
        }
        let mut users = Vec::with_capacity(n);
        for task in tasks {
            users.push(task.await.map_err(|e| e.to_string())??);
        }
        Ok(users)
    }

    async fn users_direct(
        &self,
        direct: &Direct,
        first: u64,
        n: usize,
    ) -> Result<Vec<Arc<User>>, String> {
        let config = tokio_postgres::Config::from_str(&direct.database_url)
            .map_err(|e| format!("--database-url: {e}"))?;
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("--database-url: cannot connect: {e}"))?;
        tokio::spawn(connection);
        let auth = rtchat::testing::Auth::new(direct.jwt_secret.as_bytes(), TOKEN_TTL);
        // One real argon2 hash shared by all: login over REST still works for them.
        let hash = auth
            .hash_password(PASSWORD.into())
            .await
            .map_err(|e| format!("hash: {e:?}"))?;
        let mut users = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let count = INSERT_BATCH.min(n - start);
            let emails: Vec<String> = (start..start + count)
                .map(|i| format!("bench-{}-{}@bench.invalid", self.run_id, first + i as u64))
                .collect();
            let rows = client
                .query(
                    "WITH u AS (
                         INSERT INTO users (email, name, password_hash)
                         SELECT e, 'bench', $2 FROM unnest($1::text[]) WITH ORDINALITY AS x(e, o)
                         ORDER BY o
                         RETURNING id
                     )
                     INSERT INTO sessions (user_id, expires_at)
                     SELECT id, now() + interval '1 day' FROM u ORDER BY id
                     RETURNING user_id, id",
                    &[&emails, &hash],
                )
                .await
                .map_err(|e| format!("inserting users: {e}"))?;
            let mut batch: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            batch.sort();
            for (user_id, session_id) in batch {
                let token = auth
                    .issue(user_id, session_id)
                    .map_err(|e| format!("token: {e:?}"))?;
                users.push(Arc::new(User { id: user_id, token }));
            }
            start += count;
        }
        Ok(users)
    }

    /// Creates a group chat per member list (`members[0]` creates it).
    pub async fn chats(&self, groups: Vec<Vec<Arc<User>>>) -> Result<Vec<Chat>, String> {
        let gate = Arc::new(Semaphore::new(SETUP_PARALLEL));
        let mut tasks = Vec::with_capacity(groups.len());
        for members in groups {
            let rest = self.rest.clone();
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.expect("never closed");
                let others: Vec<i64> = members[1..].iter().map(|u| u.id).collect();
                let body = json!({"type": "group", "title": "bench", "participant_ids": others});
                let r = rest
                    .call_patiently(
                        Method::POST,
                        "/chats",
                        Some(&members[0].token),
                        Some(to_bytes(&body)),
                    )
                    .await?;
                if r.status != 201 {
                    return Err(format!("create chat: {} {}", r.status, lossy(&r.body)));
                }
                let id = parse(&r.body)?["id"].as_i64().ok_or("create chat: no id")?;
                Ok(Chat { id, members })
            }));
        }
        let mut chats = Vec::with_capacity(tasks.len());
        for task in tasks {
            chats.push(task.await.map_err(|e| e.to_string())??);
        }
        Ok(chats)
    }

    /// `n_chats` chats of `size` fresh users each.
    pub async fn chats_of(&self, n_chats: usize, size: usize) -> Result<Vec<Chat>, String> {
        let users = self.users(n_chats * size).await?;
        let groups = users.chunks(size).map(<[Arc<User>]>::to_vec).collect();
        self.chats(groups).await
    }
}

pub fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values serialise"))
}

fn parse(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("bad JSON from the server: {e}"))
}

pub fn lossy(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}
