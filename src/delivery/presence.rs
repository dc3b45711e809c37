//! Presence across processes: who is online, told to whoever shares a (not too large) chat
//! with them, on every process.
//!
//! **Representation.** PostgreSQL is the only shared part. Each process counts its own
//! sockets per user (the hub) and keeps one row `presence_sockets (process_id, user_id)` per
//! user it holds at least one socket of; `process_id` is its lease's (`leases`). A user is
//! online while some row of theirs exists, or within `RTCHAT_PRESENCE_GRACE_SECS` of their
//! last close (`presence_last_seen`, written by every close: the latest one wins). One task
//! per process writes the hub's 0→1 and 1→0 transitions every `FLUSH_INTERVAL` in one
//! transaction (one INSERT and one DELETE over arrays), so a burst of 10,000 connects is a
//! few transactions, and nothing is written per frame or per socket beyond its user's first.
//!
//! **Announcing.** After each batch the task hints the other processes (`NOTIFY`, a `p`
//! hint naming the users). Every process, the writer included, then reads those users'
//! global state from the database and compares it with what it believes (`View`): a user
//! who turned live is announced online at once (unless this process still shows them online,
//! within their grace: a quick reconnect says nothing); one who turned not live is announced
//! offline when the grace, counted from `last_seen_at` by the database's clock, has passed
//! and they are still not live. Each process announces only to its own sockets, of users
//! who share a chat of at most `MAX_AUDIENCE_CHAT` members with the subject (never to the
//! subject's own sockets). Since every process reads the same rows and counts the grace from
//! the same timestamp, no process announces what the others contradict for longer than a
//! hint's trip: a lost hint delays one process's frame until the next hint about that user,
//! the next reconnect of its listener (which reloads everything), or the periodic sweep.
//!
//! **A crashed process.** Its rows stay until its lease lapses (3 × `RTCHAT_LEASE_RENEW_SECS`
//! after its last renewal). Every live process tries to reap every `RTCHAT_LEASE_RENEW_SECS`:
//! one statement deletes the rows of processes without a live lease and the lapsed leases,
//! and sets their users' `last_seen_at` to the lease's expiry; the reaper hints those users
//! and the grace runs from that expiry. So a SIGKILLed process's users are announced offline
//! within 3 × renew + renew + grace of the crash (with the defaults 15 + 5 + 5 = 25 s, within
//! the contract's 60 s); a user who reconnected elsewhere meanwhile has a row there and is
//! never announced offline. A process reaps only after its own listener has been up for a
//! lease lifetime: after a database outage every live process first gets the time to renew
//! its lease, and only the leases of processes that did not are reaped.
//!
//! **Resync.** Whenever the listener (re)connects (a PostgreSQL restart, a dropped connection)
//! and when this task starts, the process rewrites its rows to exactly the users it holds
//! (rows lost or reaped meanwhile come back; a failed batch is made good) and reloads every
//! online user into its view, announcing what changed. Every renewal interval it also counts
//! its rows in the database and resyncs if they differ from what it wrote, and every
//! `SWEEP_CHECKS` intervals it compares its view with the live users (a lost hint). A process
//! that stops cleanly gives up its lease at once, so the others reap its rows within a
//! renewal interval (its users, reconnecting elsewhere, have rows there by then).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::frame::presence_frame;
use super::Delivery;
use crate::metrics::FrameType;
use crate::store::presence::{self as store, Stored};
use crate::store::StoreResult;

/// How often this process writes its sockets' transitions: short enough that a partner sees
/// "online" well within a second, long enough that a connect storm is a few transactions.
const FLUSH_INTERVAL: Duration = Duration::from_millis(150);

/// Presence frames go only through chats of at most this many members: a user of a
/// 1,000-member group would otherwise cost 999 frames at each of their connects and closes
/// (and a group whose members all connect in the morning, a million). Members of larger
/// groups ask `GET /presence` for whom they show.
pub const MAX_AUDIENCE_CHAT: i64 = 100;

/// Every this many checks (renewal intervals: 30 s by default) the view is compared with
/// the database, the safety net for a lost hint; rarely, since it reads every row.
const SWEEP_CHECKS: u32 = 6;

/// Users recomputed per query: each is a row of `states` and of `audience`.
const RECOMPUTE_BATCH: usize = 2000;

/// Each process's socket transitions since the presence task last took them: for each user
/// whose count of sockets here left or reached 0, the latest of the two (`None`: opened,
/// `Some(when)`: closed). Written by the hub under its lock, so the order is the hub's.
#[derive(Default)]
pub(super) struct Transitions(Mutex<HashMap<i64, Option<Instant>>>);

impl Transitions {
    /// `user_id` has its first socket in this process.
    pub(super) fn opened(&self, user_id: i64) {
        self.0
            .lock()
            .expect("presence lock poisoned")
            .insert(user_id, None);
    }

    /// `user_id`'s last socket in this process closed.
    pub(super) fn closed(&self, user_id: i64) {
        self.0
            .lock()
            .expect("presence lock poisoned")
            .insert(user_id, Some(Instant::now()));
    }

    fn take(&self) -> HashMap<i64, Option<Instant>> {
        std::mem::take(&mut *self.0.lock().expect("presence lock poisoned"))
    }
}

/// Presence's share of the delivery component: what the listener and the metrics reach.
pub(super) struct Presence {
    /// This process's lease and rows (`process_leases`, `presence_sockets`).
    pub(super) process_id: i64,
    grace: Duration,
    renew: Duration,
    lease_ttl: Duration,
    /// Users whose global state may have changed (hints from the other processes); the set
    /// is bounded by the number of users.
    dirty: Mutex<HashSet<i64>>,
    /// Set when the listener (re)connected: rewrite the rows, reload the view.
    resync: AtomicBool,
    /// Presence frames queued to sockets so far.
    pub(super) frames: AtomicU64,
    /// Users online over all processes, as this process's view has them.
    pub(super) online: AtomicUsize,
}

impl Presence {
    pub(super) fn new(process_id: i64, grace: Duration, renew: Duration) -> Presence {
        Presence {
            process_id,
            grace,
            renew,
            lease_ttl: renew * crate::leases::LEASE_TTL_RENEWALS,
            dirty: Mutex::new(HashSet::new()),
            resync: AtomicBool::new(true),
            frames: AtomicU64::new(0),
            online: AtomicUsize::new(0),
        }
    }

    /// Another process says these users' presence may have changed.
    pub(super) fn changed(&self, users: &[i64]) {
        self.dirty
            .lock()
            .expect("presence lock poisoned")
            .extend(users.iter().copied());
    }

    /// The listener (re)connected: hints may have been lost, rows too.
    pub(super) fn request_resync(&self) {
        self.resync.store(true, Ordering::SeqCst);
    }
}

/// What this process believes, kept by its task (a restarted task begins with a resync).
#[derive(Default)]
struct View {
    /// Users this process has rows for, as far as it wrote them.
    written: HashSet<i64>,
    /// Users announced (or shown) online, those in their grace included.
    online: HashSet<i64>,
    /// Users in their grace: when it ends.
    leaving: HashMap<i64, Instant>,
}

/// Writes this process's transitions, announces presence to its sockets, reaps crashed
/// processes' rows, until the process stops.
pub(super) async fn run(d: Arc<Delivery>) {
    let p = &d.presence;
    let mut view = View::default();
    let mut must_resync = true;
    let mut must_reload = true;
    let mut stable_since: Option<Instant> = None;
    let mut next_check = Instant::now() + p.renew;
    let mut checks: u32 = 0;
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !d.listening.load(Ordering::Relaxed) {
            stable_since = None;
        }
        if p.resync.swap(false, Ordering::SeqCst) {
            must_resync = true;
            must_reload = true;
            stable_since = None;
        }
        if d.listening.load(Ordering::Relaxed) && stable_since.is_none() {
            stable_since = Some(Instant::now());
        }
        let mut dirty: HashSet<i64> =
            std::mem::take(&mut *p.dirty.lock().expect("presence lock poisoned"));
        let written = if must_resync {
            resync(&d, &mut view).await
        } else {
            flush(&d, &mut view).await
        };
        match written {
            Ok(changed) => {
                must_resync = false;
                if !changed.is_empty() {
                    d.notifier.presence(&changed);
                    dirty.extend(changed);
                }
            }
            Err(e) => {
                tracing::debug!(error = ?e, "writing presence failed; resyncing");
                must_resync = true;
            }
        }
        // Users in their grace when the view is reloaded: shown online until it ends, as
        // `GET /presence` shows them (this process may never have seen them go).
        let mut adopt = HashSet::new();
        if must_reload {
            match reload(&d).await {
                Ok(users) => {
                    must_reload = false;
                    adopt.extend(users.iter().copied());
                    dirty.extend(users);
                    dirty.extend(view.online.iter().copied());
                }
                Err(e) => tracing::debug!(error = ?e, "reloading presence failed"),
            }
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + p.renew;
            let stable = stable_since.is_some_and(|t| t.elapsed() >= p.lease_ttl);
            match check(&d, &view, stable).await {
                Ok((reaped, rows_lost)) => {
                    if !reaped.is_empty() {
                        d.notifier.presence(&reaped);
                        dirty.extend(reaped);
                    }
                    must_resync |= rows_lost;
                }
                Err(e) => tracing::debug!(error = ?e, "presence check failed"),
            }
            checks += 1;
            if checks % SWEEP_CHECKS == 0 {
                match sweep(&d, &view).await {
                    Ok(differ) => dirty.extend(differ),
                    Err(e) => tracing::debug!(error = ?e, "presence sweep failed"),
                }
            }
        }
        let now = Instant::now();
        dirty.extend(
            view.leaving
                .iter()
                .filter(|(_, deadline)| **deadline <= now)
                .map(|(user, _)| *user),
        );
        if !dirty.is_empty() {
            let users: Vec<i64> = dirty.into_iter().collect();
            for (i, chunk) in users.chunks(RECOMPUTE_BATCH).enumerate() {
                if let Err(e) = recompute(&d, &mut view, chunk, &adopt).await {
                    // This chunk and every one after it are tried again at the next hint,
                    // deadline or reload: none may wait for the periodic comparison.
                    tracing::debug!(error = ?e, "presence recomputation failed");
                    p.changed(&users[i * RECOMPUTE_BATCH..]);
                    break;
                }
            }
        }
        p.online.store(view.online.len(), Ordering::Relaxed);
    }
}

/// Writes the transitions since the last tick; the users whose rows changed.
async fn flush(d: &Delivery, view: &mut View) -> StoreResult<Vec<i64>> {
    let mut opened = Vec::new();
    let mut closed = Vec::new();
    let mut closed_ago = Vec::new();
    let mut changed = Vec::new();
    for (user, change) in d.hub.transitions.take() {
        match change {
            None => {
                if view.written.insert(user) {
                    opened.push(user);
                    changed.push(user);
                }
            }
            Some(at) => {
                // A socket opened and closed within one tick has no row, but the user was
                // seen: `last_seen_at` is written, and nobody is told (they never saw it).
                if view.written.remove(&user) {
                    changed.push(user);
                }
                closed.push(user);
                closed_ago.push(at.elapsed().as_secs_f64());
            }
        }
    }
    if opened.is_empty() && closed.is_empty() {
        return Ok(Vec::new());
    }
    let p = &d.presence;
    let mut client = d.pool.get().await?;
    store::apply(
        &mut client,
        p.process_id,
        p.lease_ttl,
        &opened,
        &closed,
        &closed_ago,
    )
    .await?;
    Ok(changed)
}

/// Rewrites this process's rows to the users it holds sockets of now.
async fn resync(d: &Delivery, view: &mut View) -> StoreResult<Vec<i64>> {
    // Taken first: a transition after this is in the hub and in the next flush.
    d.hub.transitions.take();
    let users = d.hub.connected_users();
    let p = &d.presence;
    let mut client = d.pool.get().await?;
    let changed = store::resync(&mut client, p.process_id, p.lease_ttl, &users).await?;
    view.written = users.into_iter().collect();
    Ok(changed)
}

/// Every user online or in their grace, over all processes.
async fn reload(d: &Delivery) -> StoreResult<Vec<i64>> {
    let client = d.pool.get().await?;
    store::online(&client, d.presence.grace).await
}

/// The periodic check: reaps the rows of crashed processes (if `stable`), and tells whether
/// this process's own rows are not what it wrote.
async fn check(d: &Delivery, view: &View, stable: bool) -> StoreResult<(Vec<i64>, bool)> {
    let mut client = d.pool.get().await?;
    let reaped = if stable {
        store::reap(&mut client).await?
    } else {
        Vec::new()
    };
    let rows = store::own_rows(&client, d.presence.process_id).await?;
    Ok((reaped, rows != view.written.len()))
}

/// The users whose presence in the database differs from the view (a hint about them was
/// lost): live but not shown online, or shown online (not in their grace) but not live.
async fn sweep(d: &Delivery, view: &View) -> StoreResult<Vec<i64>> {
    let client = d.pool.get().await?;
    let live: HashSet<i64> = store::live_users(&client).await?.into_iter().collect();
    let mut differ: Vec<i64> = live.difference(&view.online).copied().collect();
    differ.extend(
        view.online
            .iter()
            .filter(|u| !live.contains(u) && !view.leaving.contains_key(u)),
    );
    Ok(differ)
}

/// Reads `users`' global state, updates the view and announces what changed. Those of
/// `adopt` within their grace are taken as online (until it ends) though the view lacks them.
async fn recompute(
    d: &Delivery,
    view: &mut View,
    users: &[i64],
    adopt: &HashSet<i64>,
) -> StoreResult<()> {
    let grace = d.presence.grace;
    let client = d.pool.get().await?;
    let states = store::states(&client, users).await?;
    let now = Instant::now();
    let mut changes: Vec<(i64, bool, Option<DateTime<Utc>>)> = Vec::new();
    // A deleted user is forgotten (and not recomputed again at every tick).
    let found: HashSet<i64> = states.iter().map(|s| s.user_id).collect();
    for user in users.iter().filter(|u| !found.contains(u)) {
        view.leaving.remove(user);
        view.online.remove(user);
    }
    for Stored {
        user_id,
        live,
        last_seen_at,
        offline_for,
    } in states
    {
        if live {
            view.leaving.remove(&user_id);
            if view.online.insert(user_id) {
                changes.push((user_id, true, None));
            }
            continue;
        }
        let gone_for = Duration::from_secs_f64(offline_for.unwrap_or(0.0).max(0.0));
        let left = grace.saturating_sub(gone_for);
        if left.is_zero() {
            view.leaving.remove(&user_id);
            if view.online.remove(&user_id) {
                changes.push((user_id, false, last_seen_at));
            }
        } else if view.online.contains(&user_id) || adopt.contains(&user_id) {
            // Still within the grace: shown online (as `GET /presence` does) until it ends.
            view.online.insert(user_id);
            view.leaving.insert(user_id, now + left);
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    let watchers = d.hub.connected_users();
    if watchers.is_empty() {
        return Ok(());
    }
    let subjects: Vec<i64> = changes.iter().map(|(u, _, _)| *u).collect();
    let pairs = store::audience(&client, &subjects, &watchers, MAX_AUDIENCE_CHAT).await?;
    drop(client);
    let mut by_subject: HashMap<i64, Vec<i64>> = HashMap::new();
    for (subject, watcher) in pairs {
        by_subject.entry(subject).or_default().push(watcher);
    }
    let mut sent = 0;
    for (user_id, online, last_seen_at) in changes {
        if let Some(watchers) = by_subject.get(&user_id) {
            let frame = presence_frame(user_id, online, last_seen_at.as_ref());
            sent += d.hub.send_ephemeral(watchers, FrameType::Presence, frame);
        }
    }
    d.presence.frames.fetch_add(sent, Ordering::Relaxed);
    Ok(())
}
