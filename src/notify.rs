//! Cross-process wake-ups through PostgreSQL `LISTEN/NOTIFY`: after a commit, a small hint
//! ("these users have events up to these seqs") goes to the other processes, whose sessions
//! then read the log. Never the data: the log stays the truth.
//!
//! - `Notifier` coalesces hints: commits only add to a set; one task drains it with one
//!   `pg_notify` per batch, in its own short transaction (a NOTIFY inside the writing
//!   transaction would take PostgreSQL's instance-wide notify lock at every commit). A
//!   failed NOTIFY is retried a few times, then left to the sweep.
//! - `listen` keeps a dedicated connection LISTENing, reconnecting with backoff. While it is
//!   down the revocation set is stale (tokens are refused with 503, see `revocation`); each
//!   time it (re)connects it reloads the revoked sessions, closes their sockets, and wakes
//!   every local session, since hints sent while it was away are lost.
//! - `sweep` is the safety net for any other lost hint: every few seconds one query compares
//!   the connected users' `last_seq` with what their sessions delivered.
//!
//! So a lost notification, a dropped listener connection or a PostgreSQL restart costs
//! latency, never an event.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::hub::{FrameTemplate, Hub};
use crate::state::AppState;

/// The channel every rtchat process listens on.
pub const CHANNEL: &str = "rtchat_events";

/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; batches are split below that.
const MAX_PAYLOAD: usize = 7000;

/// The most one `[user,seq],` pair of an event hint can take, and how many go in one.
const MAX_PAIR_LEN: usize = 44;
const PAIRS_PER_HINT: usize = (MAX_PAYLOAD - 100) / MAX_PAIR_LEN;

/// Backoff bounds for the listener's reconnects.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A listener connection that was up this long before it dropped is reconnected at once
/// (this process refuses tokens until it is back); one that dropped sooner is flapping, and
/// waits for the backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(1);

/// Hints handled together (one log read for all of them).
const HINT_BATCH: usize = 256;

/// A socket further behind than this many events reads the log itself instead of being
/// pushed what the hint names.
const MAX_HINT_SPAN: i64 = 64;

/// Notifications waiting between the listener connection and the task that handles them.
const LISTEN_QUEUE: usize = 1024;

/// Tries per NOTIFY (pausing `MIN_BACKOFF`, then twice that, between them): a brief outage
/// is bridged; a longer one is left to the sweep rather than hold up later hints.
const NOTIFY_ATTEMPTS: u32 = 3;

/// Typing hints queued for the other processes; under a flood newer ones are dropped
/// (typing is best-effort).
const MAX_PENDING_TYPING: usize = 1024;

/// One NOTIFY payload.
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
struct Hint {
    /// The sending process, which ignores its own hints (its hub delivered already).
    o: u64,
    /// `(user_id, seq)`: these users have events up to these seqs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    e: Vec<(i64, i64)>,
    /// Revoked login sessions: their tokens stop working, their sockets close.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    r: Vec<i64>,
    /// `(chat_id, user_id)`: this user is typing in this chat. By reference: the receiver
    /// reads the chat's members itself (a list of a large group's members would not fit in
    /// a NOTIFY).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    y: Vec<(i64, i64)>,
}

/// Collects hints after commits and sends them in batches.
pub struct Notifier {
    instance: u64,
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
fn keep_highest(seqs: &mut Vec<(i64, i64)>) {
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
pub async fn run_notifier(state: Arc<AppState>) {
    loop {
        state.notifier.wake.notified().await;
        let payloads = state.notifier.take_payloads();
        for payload in payloads {
            let sent = retry(NOTIFY_ATTEMPTS, MIN_BACKOFF, || async {
                let client = state.db().await.map_err(|e| format!("{e:?}"))?;
                let statement = client
                    .prepare_cached("SELECT pg_notify($1, $2)")
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .execute(&statement, &[&CHANNEL, &payload])
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, attempts = NOTIFY_ATTEMPTS, "NOTIFY failed; other processes will catch up by their sweep");
            }
        }
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

/// Keeps a LISTEN connection open and wakes local sessions for hints from other processes.
pub async fn run_listener(state: Arc<AppState>, database_url: String) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut up_since = None;
        let error = listen_once(&state, &database_url, &mut up_since)
            .await
            .err()
            .unwrap_or_else(|| "the listener connection closed".into());
        mark_down(&state);
        if up_since.is_some_and(|t: Instant| t.elapsed() >= STABLE_CONNECTION) {
            // A connection that worked, then dropped: reconnect at once, and back off
            // afresh if that fails.
            tracing::warn!(error = %error, "LISTEN connection lost; reconnecting");
            backoff = MIN_BACKOFF;
            continue;
        }
        tracing::warn!(error = %error, retry_in = ?backoff, "LISTEN connection lost");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// From here on hints may be lost: readiness goes, and tokens are refused until the
/// revocation set is reloaded.
fn mark_down(state: &AppState) {
    state.revoked.set_current(false);
    state.listening.store(false, Ordering::Relaxed);
}

async fn listen_once(
    state: &Arc<AppState>,
    database_url: &str,
    up_since: &mut Option<Instant>,
) -> Result<(), String> {
    let mut config = tokio_postgres::Config::from_str(database_url).map_err(|e| e.to_string())?;
    config.application_name("rtchat-listener");
    config.connect_timeout(Duration::from_secs(5));
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::channel::<String>(LISTEN_QUEUE);
    let own = state.notifier.instance;
    let driver_state = state.clone();
    // Cleared by the driver when the connection ends, before it marks the set stale: checked
    // after marking it current, so that a drop during the catch-up cannot leave it current.
    let alive = Arc::new(AtomicBool::new(true));
    let driver_alive = alive.clone();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let ended = async {
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        // Our own hints come back too: the hub delivered those already.
                        // Dropped here, before they are copied, queued or parsed.
                        if origin(n.payload()) == Some(own) {
                            continue;
                        }
                        if tx.send(n.payload().to_string()).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        }
        .await;
        // At once, not after the hints still queued are handled: a revocation committed
        // from now on may not reach this process.
        driver_alive.store(false, Ordering::SeqCst);
        mark_down(&driver_state);
        ended
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    // Revocations committed while we were not listening: their hints are gone. Read after
    // LISTEN, so one committed later arrives as a hint.
    let newly_revoked = async {
        let client = state.pool.get().await?;
        state.revoked.load(&client).await
    }
    .await
    .map_err(|e| format!("reloading revoked sessions: {e:?}"))?;
    state.hub.close_sessions(&newly_revoked);
    state.revoked.set_current(true);
    state.listening.store(true, Ordering::Relaxed);
    if !alive.load(Ordering::SeqCst) {
        mark_down(state);
        return Err("the listener connection closed while catching up".into());
    }
    tracing::info!("listening for other processes' events");
    *up_since = Some(Instant::now());
    // Hints sent while we were not listening are gone: every local session re-reads.
    state.hub.wake_all();
    while let Some(first) = rx.recv().await {
        // Whatever else has arrived meanwhile is handled with it: one log read per batch.
        let mut payloads = vec![first];
        while payloads.len() < HINT_BATCH {
            match rx.try_recv() {
                Ok(payload) => payloads.push(payload),
                Err(_) => break,
            }
        }
        handle(state, &payloads).await;
    }
    mark_down(state);
    match driver.await {
        Ok(Err(e)) => Err(e),
        _ => Err("the listener connection closed".into()),
    }
}

/// The sending process of a hint, read from its start without parsing the rest: `Hint`
/// serialises `o` first (`{"o":123,...`). `None` if the payload does not start that way
/// (then only the full parse can tell).
fn origin(payload: &str) -> Option<u64> {
    let rest = payload.strip_prefix(r#"{"o":"#)?;
    let end = rest.find([',', '}'])?;
    rest[..end].parse().ok()
}

/// A hint from its text. Event hints, the common kind (one pair per recipient), are read
/// by hand in the exact form `take_payloads` writes (`{"o":N,"e":[[user,seq],...]}`);
/// anything else goes through serde.
fn parse_hint(payload: &str) -> Option<Hint> {
    parse_events_hint(payload).or_else(|| serde_json::from_str(payload).ok())
}

fn parse_events_hint(payload: &str) -> Option<Hint> {
    let rest = payload.strip_prefix(r#"{"o":"#)?;
    let (origin, rest) = rest.split_once(',')?;
    let (o, end) = json_uint(origin.as_bytes(), 0)?;
    if end != origin.len() {
        return None;
    }
    let body = rest
        .strip_prefix(r#""e":["#)?
        .strip_suffix("]}")?
        .as_bytes();
    let mut e = Vec::with_capacity(body.len() / 8);
    let mut at = 0;
    loop {
        // `[user,seq]`, then `,` or the end.
        if body.get(at) != Some(&b'[') {
            return None;
        }
        let (user, next) = json_int(body, at + 1)?;
        if body.get(next) != Some(&b',') {
            return None;
        }
        let (seq, next) = json_int(body, next + 1)?;
        if body.get(next) != Some(&b']') {
            return None;
        }
        e.push((user, seq));
        at = next + 1;
        match body.get(at) {
            None => break,
            Some(b',') => at += 1,
            Some(_) => return None,
        }
    }
    Some(Hint {
        o,
        e,
        ..Hint::default()
    })
}

/// The JSON unsigned integer at `at` as serde_json writes a `u64` (digits, no leading
/// zeros) and where it ends.
fn json_uint(text: &[u8], start: usize) -> Option<(u64, usize)> {
    let mut at = start;
    let mut value: u64 = 0;
    while let Some(&digit) = text.get(at).filter(|b| b.is_ascii_digit()) {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
        at += 1;
    }
    let len = at - start;
    if len == 0 || (len > 1 && text[start] == b'0') {
        return None;
    }
    Some((value, at))
}

/// The JSON integer at `at` as serde_json writes an `i64` (no sign but `-`, no leading
/// zeros) and where it ends.
fn json_int(text: &[u8], at: usize) -> Option<(i64, usize)> {
    let negative = text.get(at) == Some(&b'-');
    let (magnitude, end) = json_uint(text, at + usize::from(negative))?;
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude)?
    } else {
        i64::try_from(magnitude).ok()?
    };
    Some((value, end))
}

/// Handles a batch of hints from other processes: revocations and typing at once; for
/// events, one query reads what the local sockets lack and the hub pushes it to them, so
/// a message to N members on this process costs one read, not N.
async fn handle(state: &AppState, payloads: &[String]) {
    let hub: &Hub = &state.hub;
    let mut seqs: Vec<(i64, i64)> = Vec::new();
    let mut typing: Vec<(i64, i64)> = Vec::new();
    for payload in payloads {
        // Own hints in the fast form were dropped by the listener already; this catches
        // any other form.
        let Some(hint) = parse_hint(payload) else {
            tracing::warn!("ignoring a malformed hint");
            continue;
        };
        if hint.o == state.notifier.instance {
            continue;
        }
        if !hint.r.is_empty() {
            state.revoked.insert(&hint.r);
            hub.close_sessions(&hint.r);
        }
        typing.extend(hint.y);
        seqs.extend(hint.e);
    }
    if !typing.is_empty() && hub.socket_count() > 0 {
        forward_typing(state, &typing).await;
    }
    if seqs.is_empty() {
        return;
    }
    keep_highest(&mut seqs);
    let behind = hub.behind(&seqs);
    // Far behind (a socket that just reconnected, a burst): that socket reads the log itself.
    let (fetch, far): (Vec<_>, Vec<_>) = behind
        .into_iter()
        .partition(|(_, after, upto)| upto - after <= MAX_HINT_SPAN);
    if !far.is_empty() {
        hub.wake(&far.iter().map(|(user, _, _)| *user).collect::<Vec<_>>());
    }
    if fetch.is_empty() {
        return;
    }
    let users: Vec<i64> = fetch.iter().map(|(u, _, _)| *u).collect();
    let afters: Vec<i64> = fetch.iter().map(|(_, a, _)| *a).collect();
    let uptos: Vec<i64> = fetch.iter().map(|(_, _, u)| *u).collect();
    // One row per event, with the hinted users that have it: the payload crosses the wire
    // and is decoded once, not once per recipient.
    let rows = async {
        let client = state.db().await?;
        let statement = client
            .prepare_cached(
                "SELECT e.type, e.payload, array_agg(ue.user_id), array_agg(ue.seq)
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS w(user_id, after, upto)
                 JOIN user_events ue ON ue.user_id = w.user_id AND ue.seq > w.after AND ue.seq <= w.upto
                 JOIN events e ON e.id = ue.event_id
                 GROUP BY e.id",
            )
            .await?;
        Ok::<_, crate::error::ApiError>(client.query(&statement, &[&users, &afters, &uptos]).await?)
    }
    .await;
    match rows {
        Ok(rows) => {
            let mut events = Vec::new();
            for row in &rows {
                let (kind, payload, users, seqs): (&str, &str, Vec<i64>, Vec<i64>) =
                    (row.get(0), row.get(1), row.get(2), row.get(3));
                let template = FrameTemplate::new(kind, payload);
                events.extend(
                    users
                        .into_iter()
                        .zip(seqs)
                        .map(|(user, seq)| (user, seq, template.frame(seq))),
                );
            }
            // Each user's events in seq order (a session reads the log when one is out of
            // order). Frames are built outside the hub's lock; one lock for the batch.
            events.sort_unstable_by_key(|(user, seq, _)| (*user, *seq));
            hub.push_events(events);
        }
        // The sockets read the log themselves, later.
        Err(_) => hub.wake(&users),
    }
}

/// Sends `typing` for each `(chat, typist)` to the chat's other members with a socket here:
/// one read of the chats' members for the batch. Best-effort, like typing itself: if the
/// read fails, these frames are dropped.
async fn forward_typing(state: &AppState, typing: &[(i64, i64)]) {
    let mut chats: Vec<i64> = typing.iter().map(|(chat, _)| *chat).collect();
    chats.sort_unstable();
    chats.dedup();
    let rows = async {
        let client = state.db().await?;
        let statement = client
            .prepare_cached(
                "SELECT chat_id, array_agg(user_id) FROM chat_members
                 WHERE chat_id = ANY($1) GROUP BY chat_id",
            )
            .await?;
        Ok::<_, crate::error::ApiError>(client.query(&statement, &[&chats]).await?)
    }
    .await;
    let members: std::collections::HashMap<i64, Vec<i64>> = match rows {
        Ok(rows) => rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        Err(e) => return tracing::debug!(error = ?e, "typing from other processes dropped"),
    };
    for &(chat, typist) in typing {
        let Some(members) = members.get(&chat) else {
            continue;
        };
        // The typist was a member when it typed; one who left since is not forwarded.
        if !members.contains(&typist) {
            continue;
        }
        let others: Vec<i64> = members.iter().copied().filter(|u| *u != typist).collect();
        state
            .hub
            .send_ephemeral(&others, crate::ws::protocol::typing(chat, typist));
    }
}

/// Every `RTCHAT_SWEEP_SECS`, wakes local sessions that are still behind where the log
/// stood at the previous sweep. Comparing with the previous reading, not the current one,
/// leaves alone the events that are merely in flight: under load, waking every socket that
/// is a few milliseconds behind made them all re-read the log at once (a latency spike every
/// interval); a socket that has not caught up with a seq one interval old did miss its push.
pub async fn run_sweep(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Vec<(i64, i64)> = Vec::new();
    loop {
        tick.tick().await;
        // Revocations whose hint was lost.
        if let Ok(client) = state.db().await {
            if let Ok(new) = state.revoked.load(&client).await {
                state.hub.close_sessions(&new);
            }
        }
        state.hub.wake_behind(&previous);
        let users = state.hub.connected_users();
        if users.is_empty() {
            previous.clear();
            continue;
        }
        let result = async {
            let client = state.db().await?;
            let statement = client
                .prepare_cached("SELECT id, last_seq FROM users WHERE id = ANY($1)")
                .await?;
            Ok::<_, crate::error::ApiError>(client.query(&statement, &[&users]).await?)
        }
        .await;
        match result {
            Ok(rows) => previous = rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
            Err(e) => tracing::debug!(error = ?e, "sweep skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
