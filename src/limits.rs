//! Rate limits. In-process token buckets for message sends, typing and registrations (a
//! client talks to one process per connection, so a per-process limit is what it feels);
//! and for login, fixed-window counters in PostgreSQL, so that N processes behind a load
//! balancer do not allow N times the password guesses.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;

use crate::error::ApiError;

/// Keys a limiter remembers at most; past this, full (idle) buckets are forgotten first.
const MAX_KEYS: usize = 100_000;

/// The login window: attempts are counted per 5 minutes.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(300);

/// A token bucket per key: `rate` tokens a second, at most `burst` saved up.
pub struct Limiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: f64, burst: f64) -> Limiter<K> {
        Limiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how long until one is available (429).
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("limiter lock poisoned");
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(key.clone()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(ApiError::RateLimited(Duration::from_secs_f64(
                (1.0 - *tokens) / self.rate,
            )))
        }
    }
}

/// The process's limiters.
pub struct Limits {
    pub messages: Limiter<i64>,
    pub typing: Limiter<i64>,
    pub register: Limiter<IpAddr>,
    /// Registration attempts per email: each answers whether the email is taken (409).
    pub register_email: Limiter<String>,
    login_per_email: i32,
    login_per_addr: i32,
    /// Chat writes per user: every write that takes a chat's lock or creates a chat, other
    /// than sends and edits (those count as messages).
    pub writes: Limiter<i64>,
    /// Changes per chat (title, activity, members), whoever makes them: each change is one
    /// event per member, so a 1,000-member group costs 1,000 log rows a change.
    pub chat_changes: Limiter<i64>,
    /// One write transaction per chat at a time in this process; the others wait in memory.
    pub chat_turns: crate::gate::Gates<i64>,
}

impl Limits {
    pub fn new(config: &crate::config::Config) -> Limits {
        Limits {
            messages: Limiter::new(config.rate_messages_per_sec, config.rate_messages_burst),
            typing: Limiter::new(config.rate_typing_per_sec, 5.0),
            register: Limiter::new(
                config.rate_register_per_addr / 3600.0,
                config.rate_register_per_addr,
            ),
            register_email: Limiter::new(
                config.rate_register_per_email / 3600.0,
                config.rate_register_per_email,
            ),
            login_per_email: config.rate_login_per_email,
            login_per_addr: config.rate_login_per_addr,
            writes: Limiter::new(config.rate_writes_per_sec, config.rate_writes_burst),
            chat_changes: Limiter::new(
                config.rate_chat_changes_per_min / 60.0,
                config.rate_chat_changes_burst,
            ),
            chat_turns: crate::gate::Gates::default(),
        }
    }

    /// Counts a login attempt for this email and address in PostgreSQL (shared by every
    /// process); 429 once either is over its limit for the current window.
    pub async fn login_attempt(
        &self,
        client: &impl GenericClient,
        email: &str,
        addr: IpAddr,
    ) -> Result<(), ApiError> {
        let email_key = format!("email:{}", email.to_lowercase());
        let addr_key = format!("addr:{addr}");
        // Sorted, so two logins counting the same two keys lock them in the same order.
        let mut keys = vec![email_key.clone(), addr_key];
        keys.sort();
        let statement = client
            .prepare_cached(
                "INSERT INTO login_attempts AS la (key, window_start, attempts)
                 SELECT k, now(), 1 FROM unnest($1::text[]) AS k ORDER BY k
                 ON CONFLICT ON CONSTRAINT login_attempts_pkey DO UPDATE SET
                     attempts = CASE WHEN la.window_start < now() - make_interval(secs => $2)
                                     THEN 1 ELSE la.attempts + 1 END,
                     window_start = CASE WHEN la.window_start < now() - make_interval(secs => $2)
                                         THEN now() ELSE la.window_start END
                 RETURNING key, attempts,
                     extract(epoch FROM la.window_start + make_interval(secs => $2) - now())::float8",
            )
            .await?;
        let rows = client
            .query(&statement, &[&keys, &LOGIN_WINDOW.as_secs_f64()])
            .await?;
        for row in rows {
            let key: &str = row.get(0);
            let attempts: i32 = row.get(1);
            let remaining: f64 = row.get(2);
            let limit = if key == email_key {
                self.login_per_email
            } else {
                self.login_per_addr
            };
            if attempts > limit {
                return Err(ApiError::RateLimited(Duration::from_secs_f64(
                    remaining.max(1.0),
                )));
            }
        }
        Ok(())
    }
}

/// Forgets login counters whose window has passed.
pub async fn prune_login_attempts(client: &impl GenericClient) -> Result<u64, ApiError> {
    let statement = client
        .prepare_cached(
            "DELETE FROM login_attempts WHERE window_start < now() - make_interval(secs => $1)",
        )
        .await?;
    Ok(client
        .execute(&statement, &[&LOGIN_WINDOW.as_secs_f64()])
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_how_long_to_wait() {
        let limiter = Limiter::new(1.0, 3.0);
        for _ in 0..3 {
            assert!(limiter.check(&1).is_ok());
        }
        match limiter.check(&1) {
            Err(ApiError::RateLimited(wait)) => {
                assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1))
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check(&2).is_ok(), "keys are independent");
    }
}
