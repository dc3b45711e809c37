//! Hints to the other processes after commits: commits only add to a set (`Notifier`); one
//! task drains it with one `pg_notify` per batch, in its own short statement (a NOTIFY
//! inside the writing transaction would take PostgreSQL's instance-wide notify lock at every
//! commit). A failed NOTIFY is retried a few times, then left to the other processes' sweeps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::hints::{Hint, PAIRS_PER_HINT, USERS_PER_HINT};
use super::Delivery;
use crate::store::events as log;

/// The channel every rtchat process listens on.
pub const CHANNEL: &str = "rtchat_events";

/// Tries per NOTIFY (pausing `RETRY_PAUSE`, then twice that, between them): a brief outage
/// is bridged; a longer one is left to the sweep rather than hold up later hints.
const NOTIFY_ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Typing hints queued for the other processes; under a flood newer ones are dropped
/// (typing is best-effort).
const MAX_PENDING_TYPING: usize = 1024;

/// Collects hints after commits and sends them in batches.
pub struct Notifier {
    pub(super) instance: u64,
    pending: Mutex<Pending>,
    wake: Notify,
}

#[derive(Default)]
struct Pending {
    /// `(user, seq)` as committed, duplicates included: appending is all a commit pays;
    /// `take_payloads` keeps each user's highest, and so does `compact` when it grows.
    seqs: Vec<(i64, i64)>,
    /// `seqs` is compacted when it grows past this.
    compact_at: usize,
    revoked: Vec<i64>,
    typing: Vec<(i64, i64)>,
    /// Users whose presence may have changed; bounded by the number of users (deduplicated
    /// when it grows past `compact_at`).
    presence: Vec<i64>,
}

/// Pending `(user, seq)`s kept before the first compaction.
const PENDING_COMPACT_MIN: usize = 4096;

impl Pending {
    /// Sorts `seqs` by user and keeps each user's highest seq.
    fn compact(&mut self) {
        keep_highest(&mut self.seqs);
        self.compact_at = (self.seqs.len() * 2).max(PENDING_COMPACT_MIN);
    }
}

/// Sorts `(user, seq)`s by user and keeps each user's highest seq.
pub(super) fn keep_highest(seqs: &mut Vec<(i64, i64)>) {
    // Highest seq first within a user: `dedup_by_key` keeps the first of each run.
    seqs.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    seqs.dedup_by_key(|(user, _)| *user);
}

impl Notifier {
    pub fn new(instance: u64) -> Notifier {
        Notifier {
            instance,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
        }
    }

    /// Notes that `user_id` has events up to `seq`. Never blocks, never fails.
    pub fn events(&self, deliveries: impl IntoIterator<Item = (i64, i64)>) {
        let mut pending = self.pending.lock().expect("notifier lock poisoned");
        pending.seqs.extend(deliveries);
        // Bounded while the sender cannot keep up (or the database is away): by about twice
        // the number of users with pending hints.
        if pending.seqs.len() > pending.compact_at.max(PENDING_COMPACT_MIN) {
            pending.compact();
        }
        drop(pending);
        self.wake.notify_one();
    }

    /// Tells the other processes that these login sessions were revoked.
    pub fn revoked(&self, session_ids: &[i64]) {
        let mut pending = self.pending.lock().expect("notifier lock poisoned");
        pending.revoked.extend_from_slice(session_ids);
        drop(pending);
        self.wake.notify_one();
    }

    /// Tells the other processes that `user_id` is typing in `chat_id`.
    pub fn typing(&self, chat_id: i64, user_id: i64) {
        let mut pending = self.pending.lock().expect("notifier lock poisoned");
        if pending.typing.len() < MAX_PENDING_TYPING {
            pending.typing.push((chat_id, user_id));
        }
        drop(pending);
        self.wake.notify_one();
    }

    /// Tells the other processes that these users' presence may have changed.
    pub fn presence(&self, users: &[i64]) {
        let mut pending = self.pending.lock().expect("notifier lock poisoned");
        pending.presence.extend_from_slice(users);
        if pending.presence.len() > pending.compact_at.max(PENDING_COMPACT_MIN) {
            pending.presence.sort_unstable();
            pending.presence.dedup();
        }
        drop(pending);
        self.wake.notify_one();
    }

    /// Turns what is pending into payloads under the size limit.
    fn take_payloads(&self) -> Vec<String> {
        let mut pending =
            std::mem::take(&mut *self.pending.lock().expect("notifier lock poisoned"));
        pending.compact();
        let mut payloads = Vec::new();
        for pairs in pending.seqs.chunks(PAIRS_PER_HINT) {
            let hint = Hint {
                o: self.instance,
                e: pairs.to_vec(),
                ..Hint::default()
            };
            payloads.push(serde_json::to_string(&hint).expect("hints serialise"));
        }
        for ids in pending.revoked.chunks(500) {
            let r = Hint {
                o: self.instance,
                r: ids.to_vec(),
                ..Hint::default()
            };
            payloads.push(serde_json::to_string(&r).expect("hints serialise"));
        }
        pending.presence.sort_unstable();
        pending.presence.dedup();
        for users in pending.presence.chunks(USERS_PER_HINT) {
            let p = Hint {
                o: self.instance,
                p: users.to_vec(),
                ..Hint::default()
            };
            payloads.push(serde_json::to_string(&p).expect("hints serialise"));
        }
        for pairs in pending.typing.chunks(PAIRS_PER_HINT) {
            let y = Hint {
                o: self.instance,
                y: pairs.to_vec(),
                ..Hint::default()
            };
            payloads.push(serde_json::to_string(&y).expect("hints serialise"));
        }
        payloads
    }
}

/// Sends pending hints until the process stops. A failed send is tried again up to
/// `NOTIFY_ATTEMPTS` times in all, then given up: the other processes' sweeps (events and
/// revocations) and reconnect wake-ups cover a lost hint.
pub(super) async fn run(delivery: Arc<Delivery>) {
    let notifier = &delivery.notifier;
    // Drains first: a notifier restarted after a failure sends what is pending at once.
    loop {
        let payloads = notifier.take_payloads();
        for payload in payloads {
            let sent = retry(NOTIFY_ATTEMPTS, RETRY_PAUSE, || async {
                let client = delivery.pool.get().await.map_err(|e| e.to_string())?;
                log::notify(&client, CHANNEL, &payload)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, attempts = NOTIFY_ATTEMPTS, "NOTIFY failed; other processes will catch up by their sweep");
            }
        }
        notifier.wake.notified().await;
    }
}

/// Runs `attempt` until it succeeds, at most `attempts` times, pausing `pause` after the
/// first failure and twice as long after each next one; the last error if none succeeded.
async fn retry<F, Fut>(attempts: u32, pause: Duration, mut attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut pause = pause;
    let mut tried = 1;
    loop {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) if tried >= attempts => return Err(e),
            Err(e) => tracing::debug!(error = %e, tried, "NOTIFY failed; trying again"),
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        tried += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::delivery::hints::{origin, parse_events_hint, parse_hint};

    #[test]
    fn hints_coalesce_and_split_under_the_payload_limit() {
        let n = Notifier::new(7);
        n.events([(1, 5), (1, 9), (2, 3)]);
        n.events([(1, 7)]);
        let payloads = n.take_payloads();
        assert_eq!(payloads.len(), 1);
        let mut hint: Hint = serde_json::from_str(&payloads[0]).unwrap();
        hint.e.sort();
        assert_eq!(
            hint,
            Hint {
                o: 7,
                e: vec![(1, 9), (2, 3)],
                ..Hint::default()
            }
        );
        assert!(n.take_payloads().is_empty());

        n.events((0..5000).map(|u| (u, u64::MAX as i64)));
        let payloads = n.take_payloads();
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let total: usize = payloads
            .iter()
            .map(|p| serde_json::from_str::<Hint>(p).unwrap().e.len())
            .sum();
        assert_eq!(total, 5000);
    }

    #[test]
    fn own_hints_are_recognised_without_parsing() {
        let n = Notifier::new(u64::MAX);
        n.events([(1, 2)]);
        n.revoked(&[5]);
        n.typing(4, 3);
        let payloads = n.take_payloads();
        assert_eq!(payloads.len(), 3);
        for payload in &payloads {
            assert_eq!(origin(payload), Some(u64::MAX));
        }
        assert_eq!(origin(r#"{"o":7}"#), Some(7));
        assert_eq!(origin(r#"{"e":[[1,2]],"o":7}"#), None);
        assert_eq!(origin(r#"{"o":"7"}"#), None);
        assert_eq!(origin("not json"), None);
    }

    #[test]
    fn pending_hints_stay_bounded_and_keep_each_users_highest_seq() {
        let n = Notifier::new(1);
        for round in 0..100 {
            n.events((0..1000).map(|u| (u, round * 1000 + u)));
            let len = n.pending.lock().unwrap().seqs.len();
            assert!(len <= 2 * PENDING_COMPACT_MIN + 1000, "{len}");
        }
        let mut got: Vec<(i64, i64)> = n
            .take_payloads()
            .iter()
            .flat_map(|p| serde_json::from_str::<Hint>(p).unwrap().e)
            .collect();
        got.sort();
        let want: Vec<(i64, i64)> = (0..1000).map(|u| (u, 99_000 + u)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn event_hints_read_by_hand_as_serde_reads_them() {
        let n = Notifier::new(u64::MAX);
        n.events((0..2000).map(|u| (u * 7919 - 5000, i64::MAX - u)));
        n.events([(i64::MIN, i64::MIN), (i64::MAX, 0)]);
        let payloads = n.take_payloads();
        assert!(payloads.len() > 1);
        let mut pairs = 0;
        for payload in &payloads {
            let hint: Hint = serde_json::from_str(payload).unwrap();
            assert_eq!(payload, &serde_json::to_string(&hint).unwrap());
            pairs += hint.e.len();
            let fast = parse_events_hint(payload).expect("the fast path takes event hints");
            assert_eq!(fast, hint);
        }
        assert_eq!(pairs, 2002);
        for text in [
            r#"{"o":1,"e":[[1,2]]}"#,
            r#"{"o":0,"e":[[-1,0],[3,4]]}"#,
            r#"{"o":18446744073709551615,"e":[[1,2]]}"#,
            r#"{"o":5,"e":[[-9223372036854775808,9223372036854775807]]}"#,
        ] {
            let fast = parse_events_hint(text).unwrap();
            assert_eq!(fast, serde_json::from_str::<Hint>(text).unwrap(), "{text}");
        }
        // Anything else is left to serde.
        for text in [
            r#"{"o":1,"e":[]}"#,
            r#"{"o":1,"e":[[1,2]],"r":[3]}"#,
            r#"{"o":1,"r":[3]}"#,
            r#"{"o":1,"e":[[1,2],]}"#,
            r#"{"o":1,"e":[[+1,2]]}"#,
            r#"{"o":1,"e":[[01,2]]}"#,
            r#"{"o":1,"e":[[1 ,2]]}"#,
            r#"{"o":-1,"e":[[1,2]]}"#,
            r#"{"o":1,"e":[[1,2,3]]}"#,
            r#"{"o":1,"e":[[1,99999999999999999999]]}"#,
            r#"{"o":1,"e":[[1,9223372036854775808]]}"#,
            r#"{"o":1,"e":[[-9223372036854775809,1]]}"#,
            r#"{"o":18446744073709551616,"e":[[1,2]]}"#,
            r#"{"o":01,"e":[[1,2]]}"#,
            r#"{"o":1x,"e":[[1,2]]}"#,
            r#"{"o":1,"e":[[1,2]"#,
            r#"{"o":1,"e":[[1,2]]]}"#,
            r#"{"o":1,"e":[[-,2]]}"#,
            r#"{"e":[[1,2]],"o":1}"#,
        ] {
            assert_eq!(parse_events_hint(text), None, "{text}");
        }
        assert_eq!(
            parse_hint(r#"{"o":1,"r":[3]}"#),
            Some(Hint {
                o: 1,
                r: vec![3],
                ..Hint::default()
            })
        );
        assert_eq!(parse_hint("nonsense"), None);
    }

    #[tokio::test]
    async fn a_failed_notify_is_tried_again_a_bounded_number_of_times() {
        use std::sync::atomic::AtomicU32;
        let calls = AtomicU32::new(0);
        let failing_twice = || async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Err("down".to_string()),
                _ => Ok(()),
            }
        };
        let pause = Duration::from_millis(1);
        assert_eq!(retry(3, pause, failing_twice).await, Ok(()));
        assert_eq!(calls.load(Ordering::Relaxed), 3);

        calls.store(0, Ordering::Relaxed);
        let always = || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>("down".to_string())
        };
        assert_eq!(retry(3, pause, always).await, Err("down".to_string()));
        assert_eq!(calls.load(Ordering::Relaxed), 3, "bounded");
    }

    #[test]
    fn presence_hints_name_each_user_once_and_split_under_the_payload_limit() {
        let n = Notifier::new(u64::MAX);
        n.presence(&[3, 1, 3]);
        n.presence(&(0..5000).map(|u| i64::MIN + u).collect::<Vec<_>>());
        let payloads = n.take_payloads();
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let mut users: Vec<i64> = Vec::new();
        for payload in &payloads {
            assert_eq!(origin(payload), Some(u64::MAX));
            users.extend(parse_hint(payload).expect("parses").p);
        }
        assert_eq!(users.len(), 5002);
        assert!(users.contains(&1) && users.contains(&3));
    }

    #[test]
    fn typing_hints_name_the_chat_not_its_members() {
        let n = Notifier::new(1);
        for user in 0..1000 {
            n.typing(42, user);
        }
        let payloads = n.take_payloads();
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let pairs: Vec<(i64, i64)> = payloads
            .iter()
            .flat_map(|p| serde_json::from_str::<Hint>(p).unwrap().y)
            .collect();
        assert_eq!(pairs, (0..1000).map(|u| (42, u)).collect::<Vec<_>>());
    }
}
