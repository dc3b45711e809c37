//! Cross-process wake-ups through PostgreSQL `LISTEN/NOTIFY`: after a commit, a small hint
//! ("these users have events up to these seqs") goes to the other processes (`notifier`),
//! whose sessions then read the log. Never the data: the log stays the truth.
//!
//! The listener keeps a dedicated connection LISTENing, reconnecting with backoff. While it
//! is down the revocation set is stale (tokens are refused with 503, see `revocation`); each
//! time it (re)connects it reloads the revoked sessions, closes their sockets, and wakes
//! every local session, since hints sent while it was away are lost. `sweep` is the safety
//! net for any other lost hint. So a lost notification, a dropped listener connection or a
//! PostgreSQL restart costs latency, never an event.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::frame::FrameTemplate;
use super::hints::{origin, parse_hint};
use super::hub::Hub;
use super::notifier::{keep_highest, CHANNEL};
use super::Delivery;
use crate::metrics::{FrameType, Stamp};
use crate::store::events as log;

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

/// Keeps a LISTEN connection open and wakes local sessions for hints from other processes.
/// A restarted listener starts down: whatever its predecessor held is gone.
pub(super) async fn run(state: Arc<Delivery>) {
    state.mark_down();
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut up_since = None;
        let error = listen_once(&state, &state.database_url, &mut up_since)
            .await
            .err()
            .unwrap_or_else(|| "the listener connection closed".into());
        state.mark_down();
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

async fn listen_once(
    state: &Arc<Delivery>,
    database_url: &str,
    up_since: &mut Option<Instant>,
) -> Result<(), String> {
    let mut config = tokio_postgres::Config::from_str(database_url).map_err(|e| e.to_string())?;
    config.application_name("rtchat-listener");
    config.connect_timeout(Duration::from_secs(5));
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    // Each hint with when it arrived (for the latency of what it delivers).
    let (tx, mut rx) = mpsc::channel::<(Stamp, String)>(LISTEN_QUEUE);
    let own = state.notifier.instance;
    let driver_state = state.clone();
    // Cleared by the driver when the connection ends, before it marks the set stale: checked
    // after marking it current, so that a drop during the catch-up cannot leave it current.
    let alive = Arc::new(AtomicBool::new(true));
    let driver_alive = alive.clone();
    // Aborted if this future is dropped (its task panicked): a driver left running would
    // mark a newer listener's state down when its own connection ends.
    let driver = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
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
                        let arrived = Stamp::now();
                        if tx.send((arrived, n.payload().to_string())).await.is_err() {
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
        driver_state.mark_down();
        ended
    }));
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    // Revocations committed while we were not listening: their hints are gone. Read after
    // LISTEN, so one committed later arrives as a hint.
    let client = state
        .pool
        .get()
        .await
        .map_err(|e| format!("reloading revoked sessions: {e}"))?;
    let newly_revoked = state
        .revoked
        .load(&client)
        .await
        .map_err(|e| format!("reloading revoked sessions: {e:?}"))?;
    drop(client);
    state.hub.close_sessions(&newly_revoked);
    state.revoked.set_current(true);
    state.listening.store(true, Ordering::Relaxed);
    if !alive.load(Ordering::SeqCst) {
        state.mark_down();
        return Err("the listener connection closed while catching up".into());
    }
    state.metrics.listening();
    tracing::info!("listening for other processes' events");
    *up_since = Some(Instant::now());
    // Hints sent while we were not listening are gone: every local session re-reads, and
    // presence rewrites this process's rows and reloads everyone's state.
    state.hub.wake_all();
    state.presence.request_resync();
    loop {
        let first = tokio::select! {
            biased;
            _ = state.faults.listener_panicked() => panic!("injected listener failure (a test)"),
            first = rx.recv() => match first {
                Some(first) => first,
                None => break,
            },
        };
        // Whatever else has arrived meanwhile is handled with it: one log read per batch.
        let (arrived, first) = first;
        let mut payloads = vec![first];
        while payloads.len() < HINT_BATCH {
            match rx.try_recv() {
                Ok((_, payload)) => payloads.push(payload),
                Err(_) => break,
            }
        }
        handle(state, &payloads, arrived).await;
    }
    state.mark_down();
    match driver.await {
        Ok(Err(e)) => Err(e),
        _ => Err("the listener connection closed".into()),
    }
}

/// Handles a batch of hints from other processes: revocations and typing at once; for
/// events, one query reads what the local sockets lack and the hub pushes it to them, so
/// a message to N members on this process costs one read, not N. `arrived` is when the
/// batch's first (oldest) hint arrived.
async fn handle(state: &Delivery, payloads: &[String], arrived: Stamp) {
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
        if !hint.p.is_empty() {
            state.presence.changed(&hint.p);
        }
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
    let mut events = Vec::new();
    let read = async {
        let client = state.pool.get().await?;
        log::hinted_events(
            &client,
            &users,
            &afters,
            &uptos,
            |kind, payload, users, seqs| {
                let template = FrameTemplate::new(kind, payload);
                let kind = FrameType::of_event(kind);
                events.extend(
                    users
                        .into_iter()
                        .zip(seqs)
                        .map(|(user, seq)| (user, seq, kind, template.frame(seq))),
                );
            },
        )
        .await
    }
    .await;
    match read {
        Ok(()) => {
            // Each user's events in seq order (a session reads the log when one is out of
            // order). Frames are built outside the hub's lock; one lock for the batch.
            events.sort_unstable_by_key(|(user, seq, _, _)| (*user, *seq));
            hub.push_events(events, arrived);
        }
        // The sockets read the log themselves, later.
        Err(_) => hub.wake(&users),
    }
}

/// Sends `typing` for each `(chat, typist)` to the chat's other members with a socket here:
/// one read of the chats' members for the batch. Best-effort, like typing itself: if the
/// read fails, these frames are dropped.
async fn forward_typing(state: &Delivery, typing: &[(i64, i64)]) {
    let mut chats: Vec<i64> = typing.iter().map(|(chat, _)| *chat).collect();
    chats.sort_unstable();
    chats.dedup();
    let members = async {
        let client = state.pool.get().await?;
        log::members_of_chats(&client, &chats).await
    }
    .await;
    let members = match members {
        Ok(members) => members,
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
        state.hub.send_ephemeral(
            &others,
            FrameType::Typing,
            super::typing_frame(chat, typist),
        );
    }
}
