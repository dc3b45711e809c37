//! Revoked login sessions: a set each process keeps, so that a revoked session's access
//! tokens stop working at once without a database query per request. Filled at start-up
//! from PostgreSQL, by this process's logouts, by hints from other processes (`delivery`),
//! and by the periodic sweep (in case a hint was lost).
//!
//! An entry is needed only while the session's access tokens can still be valid: for the
//! token lifetime (plus the clock leeway) after revocation.
//!
//! The set is only complete while the LISTEN connection is up: a hint sent while it is down
//! is lost. So the set is marked stale when that connection drops, and `check` then refuses
//! every token with 503 rather than trust it; the listener marks it current again only after
//! it is LISTENing again and has reloaded the revoked sessions from PostgreSQL (a logout
//! committed before the reload is in it, one after it sends a hint that now arrives).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;

use crate::store::{sessions, StoreResult};

/// Clock leeway of token expiry checks (see `auth`).
const LEEWAY: Duration = Duration::from_secs(60);

/// Why a token's session may not be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    /// The session was revoked (the edge's 401).
    Ended,
    /// This process may have missed a revocation (the edge's 503 with `Retry-After`).
    CatchingUp,
}

pub struct Revoked {
    /// Session id → when the entry may be forgotten.
    sessions: Mutex<HashMap<i64, Instant>>,
    keep: Duration,
    /// Whether every revocation committed so far is in `sessions` (see the module doc).
    current: AtomicBool,
}

impl Revoked {
    pub fn new(token_ttl: Duration) -> Revoked {
        Revoked {
            sessions: Mutex::new(HashMap::new()),
            keep: token_ttl + LEEWAY,
            current: AtomicBool::new(false),
        }
    }

    /// Whether a token of `session_id` may be trusted: not if the session was revoked, nor
    /// while this process may have missed a revocation.
    pub fn check(&self, session_id: i64) -> Result<(), Untrusted> {
        if self.contains(session_id) {
            return Err(Untrusted::Ended);
        }
        if !self.current.load(Ordering::SeqCst) {
            return Err(Untrusted::CatchingUp);
        }
        Ok(())
    }

    /// Marks the set complete (after a reload with the LISTEN connection up) or stale.
    pub fn set_current(&self, current: bool) {
        self.current.store(current, Ordering::SeqCst);
    }

    pub fn contains(&self, session_id: i64) -> bool {
        self.sessions
            .lock()
            .expect("revoked lock poisoned")
            .contains_key(&session_id)
    }

    /// Entries held (expired ones included until the next insert forgets them).
    pub fn size(&self) -> usize {
        self.sessions.lock().expect("revoked lock poisoned").len()
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
    /// Adds them, and returns those that were not known yet.
    pub async fn load(&self, client: &impl GenericClient) -> StoreResult<Vec<i64>> {
        let ids = sessions::revoked_within(client, self.keep).await?;
        Ok(self.insert(&ids))
    }
}
