//! Login attempts: counted in PostgreSQL (the cross-process truth, `store::login_attempts`),
//! fronted by an in-process memory of which keys are refused, so that a refused attempt
//! costs no database write. The policy is in the parent module's doc.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{addr_key, Limits, RateLimited, LOGIN_WINDOW};
use crate::store::{login_attempts, StoreError, StoreResult};

/// Why a login attempt was not admitted.
#[derive(Debug)]
pub enum LoginRefused {
    /// A key of the attempt is at its limit for the current window.
    RateLimited(RateLimited),
    /// The counters could not be read or written.
    Store(StoreError),
}

impl From<StoreError> for LoginRefused {
    fn from(e: StoreError) -> Self {
        LoginRefused::Store(e)
    }
}

impl From<tokio_postgres::Error> for LoginRefused {
    fn from(e: tokio_postgres::Error) -> Self {
        LoginRefused::Store(e.into())
    }
}

/// A login attempt admitted and counted as a failure; `Limits::login_succeeded` takes the
/// count back, `Limits::login_failed` remembers the keys it filled.
pub struct LoginTicket {
    keys: Vec<String>,
    windows: Vec<DateTime<Utc>>,
    /// Keys this attempt brought to their limit, with when their window ends.
    filled: Vec<(String, Instant)>,
}

impl Limits {
    /// The counter keys of a login for `email_key` (see `identity::email_key`) from `addr`,
    /// sorted so that two logins counting the same keys lock them in the same order.
    fn login_keys(email_key: &str, addr: IpAddr) -> Vec<String> {
        let addr = addr_key(addr);
        let mut keys = vec![
            format!("pair:{addr} {email_key}"),
            format!("email:{email_key}"),
            format!("addr:{addr}"),
        ];
        keys.sort();
        keys
    }

    /// Admits a login attempt and counts it as a failure in PostgreSQL (shared by every
    /// process), or refuses it when any of its keys is at its limit for the current window.
    /// A refused attempt writes nothing: keys this process knows to be refused are answered
    /// from memory, and otherwise the count is rolled back.
    pub async fn login_admit(
        &self,
        client: &mut deadpool_postgres::Object,
        email_key: &str,
        addr: IpAddr,
    ) -> Result<LoginTicket, LoginRefused> {
        let keys = Limits::login_keys(email_key, addr);
        let now = Instant::now();
        {
            let mut refused = self.login_refused.lock().expect("login lock poisoned");
            let wait = keys
                .iter()
                .filter_map(|k| refused.get_mut(k).map(|until| until.duration_since(now)))
                .filter(|wait| !wait.is_zero())
                .max();
            if let Some(wait) = wait {
                return Err(LoginRefused::RateLimited(RateLimited(wait)));
            }
        }
        let tx = client.transaction().await?;
        let counts = login_attempts::count(&tx, &keys, LOGIN_WINDOW, &self.login_limits).await?;
        let mut ticket = LoginTicket {
            keys: Vec::with_capacity(counts.len()),
            windows: Vec::with_capacity(counts.len()),
            filled: Vec::new(),
        };
        let mut refused = Vec::new();
        for count in counts {
            let until = now + Duration::from_secs_f64(count.remaining_secs.clamp(1.0, 3600.0));
            match (count.attempts, count.window_start) {
                (Some(attempts), Some(window)) => {
                    if attempts >= self.login_limit(&count.key) {
                        ticket.filled.push((count.key.clone(), until));
                    }
                    ticket.keys.push(count.key);
                    ticket.windows.push(window);
                }
                _ => refused.push((count.key, until)),
            }
        }
        if refused.is_empty() {
            tx.commit().await?;
            return Ok(ticket);
        }
        tx.rollback().await?;
        let wait = refused
            .iter()
            .map(|(_, until)| until.duration_since(now))
            .max();
        self.remember_refused(refused);
        Err(LoginRefused::RateLimited(RateLimited(
            wait.unwrap_or(LOGIN_WINDOW),
        )))
    }

    /// The password was wrong: the attempt stays counted, and keys it brought to their
    /// limit are refused from memory until their window ends.
    pub fn login_failed(&self, ticket: LoginTicket) {
        self.remember_refused(ticket.filled);
    }

    /// The password was right: takes the attempt's count back, in the caller's transaction
    /// (the one creating the session), so only failures count.
    pub async fn login_succeeded(
        &self,
        client: &impl GenericClient,
        ticket: &LoginTicket,
    ) -> StoreResult<()> {
        login_attempts::refund(client, &ticket.keys, &ticket.windows).await
    }

    fn login_limit(&self, key: &str) -> i32 {
        match key.split_once(':').map(|(kind, _)| kind) {
            Some("pair") => self.login_limits.per_pair,
            Some("email") => self.login_limits.per_email,
            _ => self.login_limits.per_addr,
        }
    }

    fn remember_refused(&self, keys: Vec<(String, Instant)>) {
        if keys.is_empty() {
            return;
        }
        let mut refused = self.login_refused.lock().expect("login lock poisoned");
        for (key, until) in keys {
            *refused.get_or_insert_with(&key, || until) = until;
        }
    }
}

/// Forgets login counters whose window has passed.
pub async fn prune_login_attempts(client: &impl GenericClient) -> StoreResult<u64> {
    login_attempts::prune(client, LOGIN_WINDOW).await
}
