//! Rate limits. In-process token buckets for message sends, typing and registrations, each
//! budget divided evenly among the live rtchat processes (src/leases.rs) so that a user
//! spreading requests over N processes gets what one process allows; and for login,
//! failure counters in PostgreSQL (the cross-process truth) fronted by an in-process memory of
//! which keys are refused, so that a refused attempt costs no database write.
//!
//! Login policy, per 5-minute window, failures only (a correct password refunds its
//! attempt): `RTCHAT_RATE_LOGIN_PER_EMAIL` per email *and client address* (a guesser locks
//! out only their own address, not the owner elsewhere), `RTCHAT_RATE_LOGIN_PER_EMAIL_GLOBAL`
//! per email from all addresses (stops a distributed guesser; reaching it does lock the email
//! for the rest of the window, the price of that protection), `RTCHAT_RATE_LOGIN_PER_ADDR`
//! per address over all emails. IPv6 clients are counted per /64, the block one host gets.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::leases::LiveProcesses;
use crate::lru::Lru;
use crate::store::login_attempts;

mod login;

pub use login::{prune_login_attempts, LoginRefused};

/// Keys a limiter remembers at most (a hard cap: past it the least recently used key is
/// forgotten). A bucket is ~100 bytes with its key, so a full limiter is ~10 MiB.
///
/// Forgetting a key forgives its debt: its next request starts with a full bucket. That is
/// acceptable because the key forgotten is the least recently used, i.e. the one that has
/// refilled longest, and pushing it out takes `MAX_KEYS` requests under *fresh* keys, each of
/// which has a full budget of its own: a spray that resets one drained bucket has already
/// been given `MAX_KEYS` times more. Limits that protect a victim rather than throttle the
/// caller (login) are not kept here but in PostgreSQL, which forgets nothing early.
const MAX_KEYS: usize = 100_000;

/// Login keys remembered as refused until their window ends. Forgetting one early costs one
/// database read to learn it again, never a wrong answer.
const MAX_REFUSED_LOGIN_KEYS: usize = 100_000;

/// The login window: failures are counted per 5 minutes.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(300);

/// A request over its budget, and how long until one is allowed (the edge's 429 with
/// `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimited(pub Duration);

/// A token bucket per key: `rate` tokens a second, at most `burst` saved up, both divided by
/// the number of live rtchat processes (a burst never below one request).
pub struct Limiter<K> {
    rate: f64,
    burst: f64,
    processes: LiveProcesses,
    buckets: Mutex<Lru<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter whose budget is shared among the `processes` that are live.
    pub fn new(rate: f64, burst: f64, processes: &LiveProcesses) -> Limiter<K> {
        Limiter::with_capacity(rate, burst, processes, MAX_KEYS)
    }

    fn with_capacity(rate: f64, burst: f64, processes: &LiveProcesses, keys: usize) -> Limiter<K> {
        Limiter {
            rate,
            burst: burst.max(1.0),
            processes: processes.clone(),
            buckets: Mutex::new(Lru::new(keys)),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        let share = self.processes.get() as f64;
        let (rate, burst) = (self.rate / share, (self.burst / share).max(1.0));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("limiter lock poisoned");
        let (tokens, at) = buckets.get_or_insert_with(key, || (burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(RateLimited(Duration::from_secs_f64((1.0 - *tokens) / rate)))
        }
    }

    #[cfg(test)]
    /// Keys remembered now.
    pub fn keys(&self) -> usize {
        self.buckets.lock().expect("limiter lock poisoned").len()
    }
}

/// The address a per-address limit counts: IPv4 as is (an IPv4-mapped IPv6 address as its
/// IPv4), IPv6 by its /64, since one host or home is given a whole /64 and could otherwise
/// walk through 2^64 fresh keys.
pub fn addr_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// The process's limiters.
pub struct Limits {
    pub messages: Limiter<i64>,
    pub typing: Limiter<i64>,
    pub register: Limiter<IpAddr>,
    /// Registration attempts per email: each answers whether the email is taken (409).
    pub register_email: Limiter<String>,
    /// Live rtchat processes (src/leases.rs keeps it current); every limiter above divides
    /// its budget by it.
    pub live_processes: LiveProcesses,
    login_limits: login_attempts::Limits,
    /// Login keys PostgreSQL refused, until their window ends.
    login_refused: Mutex<Lru<String, Instant>>,
    /// Chat writes per user: every write that takes a chat's lock or creates a chat, other
    /// than sends, edits and read cursor moves (those count as messages).
    pub writes: Limiter<i64>,
    /// Changes per chat (title, activity, members), whoever makes them: each change is one
    /// event per member, so a 1,000-member group costs 1,000 log rows a change.
    pub chat_changes: Limiter<i64>,
    /// One write transaction per chat at a time in this process; the others wait in memory.
    pub chat_turns: crate::gate::Gates<i64>,
    /// Message searches per user: each may hold a pooled connection for the search timeout.
    pub searches: Limiter<i64>,
}

/// Searches a user may make in a burst: a search box that searches as the user types (after
/// a pause) sends a few in a row, and ten covers a query typed and corrected; the sustained
/// rate (`RTCHAT_RATE_SEARCHES_PER_SEC`) is what keeps one user from holding connections.
const SEARCH_BURST: f64 = 10.0;

impl Limits {
    pub fn new(config: &crate::config::Config) -> Limits {
        // Every limiter divides its budget by the live processes (src/leases.rs keeps the count).
        let live_processes = LiveProcesses::default();
        let live = &live_processes;
        Limits {
            messages: Limiter::new(
                config.rate_messages_per_sec,
                config.rate_messages_burst,
                live,
            ),
            typing: Limiter::new(config.rate_typing_per_sec, 5.0, live),
            register: Limiter::new(
                config.rate_register_per_addr / 3600.0,
                config.rate_register_per_addr,
                live,
            ),
            register_email: Limiter::new(
                config.rate_register_per_email / 3600.0,
                config.rate_register_per_email,
                live,
            ),
            live_processes: live_processes.clone(),
            login_limits: login_attempts::Limits {
                per_pair: config.rate_login_per_email,
                per_email: config.rate_login_per_email_global,
                per_addr: config.rate_login_per_addr,
            },
            login_refused: Mutex::new(Lru::new(MAX_REFUSED_LOGIN_KEYS)),
            writes: Limiter::new(config.rate_writes_per_sec, config.rate_writes_burst, live),
            chat_changes: Limiter::new(
                config.rate_chat_changes_per_min / 60.0,
                config.rate_chat_changes_burst,
                live,
            ),
            chat_turns: crate::gate::Gates::default(),
            searches: Limiter::new(config.rate_searches_per_sec, SEARCH_BURST, live),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_how_long_to_wait() {
        let limiter = Limiter::new(1.0, 3.0, &LiveProcesses::default());
        for _ in 0..3 {
            assert!(limiter.check(&1).is_ok());
        }
        match limiter.check(&1) {
            Err(RateLimited(wait)) => {
                assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1))
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check(&2).is_ok(), "keys are independent");
    }

    #[test]
    fn a_spray_of_fresh_keys_never_grows_the_map_past_its_cap_and_costs_the_same_per_key() {
        const CAP: usize = 1_000;
        // A slow refill: every sprayed bucket stays partly drained, so none is "idle" (the
        // old cap only forgot idle buckets and grew without bound here).
        let limiter = Limiter::with_capacity(0.001, 5.0, &LiveProcesses::default(), CAP);
        let drained = 0u128;
        for _ in 0..5 {
            limiter.check(&drained).unwrap();
        }
        let steps_before = limiter.buckets.lock().unwrap().steps();
        let spray = 20 * CAP as u128;
        for key in 1..=spray {
            limiter.check(&key).unwrap();
            assert!(limiter.keys() <= CAP);
        }
        assert_eq!(limiter.keys(), CAP);
        // Counted, not timed: each check relinks a constant number of slots (at most 6:
        // unlink 3, push 2, plus the slot itself), whatever the number of keys held. A scan
        // of the map per new key would be ~CAP steps each.
        let steps = limiter.buckets.lock().unwrap().steps() - steps_before;
        assert!(
            steps <= 6 * spray as u64,
            "{steps} steps for {spray} checks"
        );
        // The drained bucket was the least recently used, so it went first (and its debt
        // with it: see MAX_KEYS).
        assert!(limiter.check(&drained).is_ok());
    }

    #[test]
    fn a_limiter_built_by_limits_shares_the_budget_with_the_other_live_processes() {
        let mut config = crate::config::Config::for_tests("host=unused");
        config.rate_messages_burst = 10.0;
        config.rate_messages_per_sec = 1.0;
        let limits = Limits::new(&config);
        limits.live_processes.set(2);
        let allowed = (0..10)
            .filter(|_| limits.messages.check(&7).is_ok())
            .count();
        assert_eq!(allowed, 5, "a burst of 10 over two processes is 5 each");
        // Never below one request, however many processes.
        limits.live_processes.set(100);
        assert!(limits.messages.check(&8).is_ok());
        assert!(limits.messages.check(&8).is_err());
        // A limiter with a count of its own (one process, the default) keeps its whole burst.
        let alone = Limiter::new(1.0, 4.0, &LiveProcesses::default());
        assert_eq!((0..10).filter(|_| alone.check(&1).is_ok()).count(), 4);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(addr_key(a), addr_key(b));
        assert_ne!(addr_key(a), addr_key(c));
        assert_eq!(
            addr_key("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(addr_key(v4), v4);
    }
}
