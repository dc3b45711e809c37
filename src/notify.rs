//! Cross-process wake-ups through PostgreSQL `LISTEN/NOTIFY`: after a commit, a small hint
//! ("these users have events up to these seqs") goes to the other processes, whose sessions
//! then read the log. Never the data: the log stays the truth.
//!
//! - `Notifier` coalesces hints: commits only add to a set; one task drains it with one
//!   `pg_notify` per batch, in its own short transaction (a NOTIFY inside the writing
//!   transaction would take PostgreSQL's instance-wide notify lock at every commit).
//! - `listen` keeps a dedicated connection LISTENing, reconnecting with backoff; each time
//!   it (re)connects it wakes every local session, since hints sent while it was away are
//!   lost.
//! - `sweep` is the safety net for any other lost hint: every few seconds one query compares
//!   the connected users' `last_seq` with what their sessions delivered.
//!
//! So a lost notification, a dropped listener connection or a PostgreSQL restart costs
//! latency, never an event.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::hub::{FrameTemplate, Hub};
use crate::state::AppState;

/// The channel every rtchat process listens on.
pub const CHANNEL: &str = "rtchat_events";

/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; batches are split below that.
const MAX_PAYLOAD: usize = 7000;

/// Backoff bounds for the listener's reconnects.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Hints handled together (one log read for all of them).
const HINT_BATCH: usize = 256;

/// A socket further behind than this many events reads the log itself instead of being
/// pushed what the hint names.
const MAX_HINT_SPAN: i64 = 64;

/// Notifications waiting between the listener connection and the task that handles them.
const LISTEN_QUEUE: usize = 1024;

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
    /// An ephemeral `typing` frame and the users it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<(String, Vec<i64>)>,
}

/// Collects hints after commits and sends them in batches.
pub struct Notifier {
    instance: u64,
    pending: Mutex<Pending>,
    wake: Notify,
}

#[derive(Default)]
struct Pending {
    seqs: HashMap<i64, i64>,
    revoked: Vec<i64>,
    typing: Vec<(String, Vec<i64>)>,
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
        for (user, seq) in deliveries {
            let entry = pending.seqs.entry(user).or_insert(seq);
            *entry = (*entry).max(seq);
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

    /// Queues an ephemeral frame for users on other processes.
    pub fn typing(&self, frame: &str, users: Vec<i64>) {
        let mut pending = self.pending.lock().expect("notifier lock poisoned");
        // Typing is best-effort: under a flood, drop rather than grow.
        if pending.typing.len() < 1024 {
            pending.typing.push((frame.to_string(), users));
        }
        drop(pending);
        self.wake.notify_one();
    }

    /// Turns what is pending into payloads under the size limit.
    fn take_payloads(&self) -> Vec<String> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("notifier lock poisoned"));
        let mut payloads = Vec::new();
        let mut hint = Hint {
            o: self.instance,
            ..Hint::default()
        };
        let mut size = 0;
        for (user, seq) in pending.seqs {
            hint.e.push((user, seq));
            size += 44; // the most one `[user,seq],` pair can take
            if size > MAX_PAYLOAD - 100 {
                payloads.push(serde_json::to_string(&hint).expect("hints serialise"));
                hint.e.clear();
                size = 0;
            }
        }
        if !hint.e.is_empty() {
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
        for (frame, users) in pending.typing {
            let t = Hint {
                o: self.instance,
                t: Some((frame, users)),
                ..Hint::default()
            };
            let text = serde_json::to_string(&t).expect("hints serialise");
            if text.len() < MAX_PAYLOAD {
                payloads.push(text);
            }
        }
        payloads
    }
}

/// Sends pending hints until the process stops. A failed send is retried with the hints
/// still pending, after a pause.
pub async fn run_notifier(state: Arc<AppState>) {
    loop {
        state.notifier.wake.notified().await;
        let payloads = state.notifier.take_payloads();
        for payload in payloads {
            let sent = async {
                let client = state.db().await.map_err(|e| format!("{e:?}"))?;
                let statement = client
                    .prepare_cached("SELECT pg_notify($1, $2)")
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .execute(&statement, &[&CHANNEL, &payload])
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            if let Err(e) = sent {
                // Other processes' sweeps and reconnect wake-ups cover a lost hint.
                tracing::warn!(error = %e, "NOTIFY failed; other processes will catch up by their sweep");
                tokio::time::sleep(MIN_BACKOFF).await;
            }
        }
    }
}

/// Keeps a LISTEN connection open and wakes local sessions for hints from other processes.
pub async fn run_listener(state: Arc<AppState>, database_url: String) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match listen_once(&state, &database_url).await {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "LISTEN connection lost"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn listen_once(state: &Arc<AppState>, database_url: &str) -> Result<(), String> {
    let mut config = tokio_postgres::Config::from_str(database_url).map_err(|e| e.to_string())?;
    config.application_name("rtchat-listener");
    config.connect_timeout(Duration::from_secs(5));
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::channel::<String>(LISTEN_QUEUE);
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("listening for other processes' events");
    state.listening.store(true, Ordering::Relaxed);
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
    state.listening.store(false, Ordering::Relaxed);
    match driver.await {
        Ok(Err(e)) => Err(e),
        _ => Err("the listener connection closed".into()),
    }
}

/// Handles a batch of hints from other processes: revocations and typing at once; for
/// events, one query reads what the local sockets lack and the hub pushes it to them, so
/// a message to N members on this process costs one read, not N.
async fn handle(state: &AppState, payloads: &[String]) {
    let hub: &Hub = &state.hub;
    let mut seqs: HashMap<i64, i64> = HashMap::new();
    for payload in payloads {
        let Ok(hint) = serde_json::from_str::<Hint>(payload) else {
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
        if let Some((frame, users)) = hint.t {
            hub.send_ephemeral(&users, Utf8Bytes::from(frame));
        }
        for (user, seq) in hint.e {
            let entry = seqs.entry(user).or_insert(seq);
            *entry = (*entry).max(seq);
        }
    }
    if seqs.is_empty() {
        return;
    }
    let behind = hub.behind(&seqs.into_iter().collect::<Vec<_>>());
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
}
