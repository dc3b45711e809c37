//! Revoked login sessions: a set each process keeps, so that a revoked session's access
//! tokens stop working at once without a database query per request. Filled at start-up
//! from PostgreSQL, by this process's logouts, by hints from other processes (`notify`),
//! and by the periodic sweep (in case a hint was lost).
//!
//! An entry is needed only while the session's access tokens can still be valid: for the
//! token lifetime (plus the clock leeway) after revocation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;

use crate::error::ApiError;

/// Clock leeway of token expiry checks (see `auth`).
const LEEWAY: Duration = Duration::from_secs(60);

pub struct Revoked {
    /// Session id → when the entry may be forgotten.
    sessions: Mutex<HashMap<i64, Instant>>,
    keep: Duration,
}

impl Revoked {
    pub fn new(token_ttl: Duration) -> Revoked {
        Revoked {
            sessions: Mutex::new(HashMap::new()),
            keep: token_ttl + LEEWAY,
        }
    }

    pub fn contains(&self, session_id: i64) -> bool {
        self.sessions
            .lock()
            .expect("revoked lock poisoned")
            .contains_key(&session_id)
    }

    /// Adds sessions; returns those that were not known yet.
    pub fn insert(&self, ids: &[i64]) -> Vec<i64> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("revoked lock poisoned");
        sessions.retain(|_, until| *until > now);
        ids.iter()
            .copied()
            .filter(|id| sessions.insert(*id, now + self.keep).is_none())
            .collect()
    }

    /// The sessions revoked recently enough that their tokens may still be presented.
    pub async fn load(&self, client: &impl GenericClient) -> Result<Vec<i64>, ApiError> {
        let statement = client
            .prepare_cached(
                "SELECT id FROM sessions
                 WHERE revoked_at IS NOT NULL AND revoked_at > now() - make_interval(secs => $1)",
            )
            .await?;
        let rows = client
            .query(&statement, &[&self.keep.as_secs_f64()])
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        Ok(self.insert(&ids))
    }
}
