//! The in-process fan-out: which sockets of which users live in this process, and handing
//! them events after their transaction committed.
//!
//! The hub is only a fast path. Each session tracks the last seq it delivered and reads the
//! log whenever what arrives is not the next one, so a lost or reordered push costs latency,
//! never an event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::frame::FrameTemplate;
use super::presence::Transitions;
use super::queue::{CapReached, Push, QueueBounds, Subscriber, Subscription};
use crate::metrics::{FrameType, Origin, Stamp};
use crate::store::events::Outbox;

/// The registry of this process's sessions by user.
#[derive(Default)]
pub struct Hub {
    /// Shared with `publish`, which takes what it needs under the lock and sends after it.
    pub(super) sessions: Mutex<HashMap<i64, Vec<Arc<Subscriber>>>>,
    next_id: AtomicU64,
    /// Open sockets (entries of `sessions`), kept so that counting them is not a walk over
    /// all of them at every upgrade.
    pub(super) sockets: AtomicUsize,
    /// Frames handed to socket queues (each counts once per socket).
    pub delivered: AtomicU64,
    /// Users whose count of sockets here left or reached 0, for the presence task; written
    /// under the `sessions` lock, so in the order the counts changed.
    pub(super) transitions: Transitions,
}

impl Hub {
    /// Registers a socket of `user_id` (token of login session `session_id`), unless that
    /// would take the process past `max_sockets` or the user past `max_per_user`: checked
    /// and counted under one lock, so concurrent handshakes cannot all pass the check.
    pub fn try_subscribe(
        self: &Arc<Self>,
        user_id: i64,
        session_id: i64,
        bounds: QueueBounds,
        max_sockets: usize,
        max_per_user: usize,
    ) -> Result<Subscription, CapReached> {
        let (tx, rx) = mpsc::channel(bounds.frames);
        let overflow = CancellationToken::new();
        let revoked = CancellationToken::new();
        let queued = Arc::new(AtomicUsize::new(0));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // "Not behind" until the session has read where it starts.
        let delivered = Arc::new(AtomicI64::new(i64::MAX));
        let subscriber = Subscriber {
            id,
            tx,
            overflow: overflow.clone(),
            delivered: delivered.clone(),
            session_id,
            revoked: revoked.clone(),
            queued: queued.clone(),
            max_bytes: bounds.bytes,
        };
        {
            let mut sessions = self.sessions.lock().expect("hub lock poisoned");
            // `sockets` changes only under this lock.
            if self.sockets.load(Ordering::Relaxed) >= max_sockets {
                return Err(CapReached::Process);
            }
            let list = sessions.entry(user_id).or_default();
            if list.len() >= max_per_user {
                if list.is_empty() {
                    sessions.remove(&user_id);
                }
                return Err(CapReached::User);
            }
            if list.is_empty() {
                self.transitions.opened(user_id);
            }
            list.push(Arc::new(subscriber));
            self.sockets.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Subscription {
            hub: self.clone(),
            id,
            user_id,
            rx,
            queued,
            overflow,
            delivered,
            revoked,
        })
    }

    /// Registers a socket with no cap (tests).
    #[cfg(test)]
    pub fn subscribe(
        self: &Arc<Self>,
        user_id: i64,
        session_id: i64,
        bounds: QueueBounds,
    ) -> Subscription {
        self.try_subscribe(user_id, session_id, bounds, usize::MAX, usize::MAX)
            .expect("no cap")
    }

    /// Hands committed events to the sockets of their recipients in this process;
    /// `committed` is when their transaction committed.
    ///
    /// The lock is held only to look up the recipients' sockets; their frames are built and
    /// queued after it is released (a 1000-member chat builds 1000 frames).
    pub fn publish(&self, outbox: &Outbox, committed: Stamp) {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        if sessions.is_empty() {
            return;
        }
        let deliveries = outbox.events.iter().map(|e| e.deliveries.len()).sum();
        // (event index, seq, end of the user's sockets in `targets`)
        let mut recipients: Vec<(usize, i64, usize)> = Vec::with_capacity(deliveries);
        let mut targets: Vec<Arc<Subscriber>> = Vec::with_capacity(deliveries);
        for (index, event) in outbox.events.iter().enumerate() {
            for &(user_id, seq) in &event.deliveries {
                if let Some(list) = sessions.get(&user_id) {
                    targets.extend(list.iter().cloned());
                    recipients.push((index, seq, targets.len()));
                }
            }
        }
        drop(sessions);
        let mut offered = 0;
        let mut start = 0;
        let mut template: Option<(usize, FrameTemplate, FrameType)> = None;
        for (index, seq, end) in recipients {
            // Each event's text around the seq is written once; each user's frame is that
            // and the seq's digits, shared by the user's sockets.
            let (template, kind) = match &mut template {
                Some((at, template, kind)) if *at == index => (&*template, *kind),
                slot => {
                    let event = &outbox.events[index];
                    let kind = FrameType::of_event(event.kind);
                    let (_, template, _) =
                        slot.insert((index, FrameTemplate::new(event.kind, &event.payload), kind));
                    (&*template, kind)
                }
            };
            let pushed = Pushed {
                seq,
                kind,
                at: committed,
                origin: Origin::Local,
            };
            offered += offer_event(&targets[start..end], pushed, template.frame(seq));
            start = end;
        }
        self.count(offered);
    }

    /// Tells the sessions of `user_ids` to read the log.
    pub fn wake(&self, user_ids: &[i64]) {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        for user_id in user_ids {
            for s in sessions.get(user_id).into_iter().flatten() {
                self.offer(s, Push::CatchUp);
            }
        }
    }

    /// Tells the sessions that delivered less than the given seq of their user to read the
    /// log (the sweep); returns how many events they lack, summed over the sockets.
    pub fn wake_behind(&self, seqs: &[(i64, i64)]) -> u64 {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        let mut missing = 0;
        for (user_id, seq) in seqs {
            for s in sessions.get(user_id).into_iter().flatten() {
                let delivered = s.delivered.load(Ordering::Relaxed);
                if delivered < *seq {
                    missing += seq.abs_diff(delivered);
                    self.offer(s, Push::CatchUp);
                }
            }
        }
        missing
    }

    /// Closes the sockets of these login sessions (4001).
    pub fn close_sessions(&self, session_ids: &[i64]) {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        for s in sessions.values().flatten() {
            if session_ids.contains(&s.session_id) {
                s.revoked.cancel();
            }
        }
    }

    /// Open sockets of `user_id` in this process.
    #[cfg(test)]
    pub fn user_socket_count(&self, user_id: i64) -> usize {
        self.sessions
            .lock()
            .expect("hub lock poisoned")
            .get(&user_id)
            .map_or(0, Vec::len)
    }

    /// For each `(user, seq)`: if a local socket of the user delivered less than `seq`,
    /// `(user, the least any such socket delivered, seq)`.
    pub fn behind(&self, seqs: &[(i64, i64)]) -> Vec<(i64, i64, i64)> {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        seqs.iter()
            .filter_map(|&(user, seq)| {
                let least = sessions
                    .get(&user)?
                    .iter()
                    .map(|s| s.delivered.load(Ordering::Relaxed))
                    .filter(|d| *d < seq)
                    .min()?;
                Some((user, least, seq))
            })
            .collect()
    }

    /// Pushes logged events `(user, seq, type, frame)` to the sockets of their users (they
    /// skip what they have); `arrived` is when their hint arrived. One lock for the batch;
    /// the pushes are queued after it is released, in the batch's order.
    pub fn push_events(&self, events: Vec<(i64, i64, FrameType, Utf8Bytes)>, arrived: Stamp) {
        let mut targets: Vec<Arc<Subscriber>> = Vec::new();
        let mut ends: Vec<usize> = Vec::with_capacity(events.len());
        {
            let sessions = self.sessions.lock().expect("hub lock poisoned");
            for (user_id, _, _, _) in &events {
                if let Some(list) = sessions.get(user_id) {
                    targets.extend(list.iter().cloned());
                }
                ends.push(targets.len());
            }
        }
        let mut offered = 0;
        let mut start = 0;
        for ((_, seq, kind, frame), end) in events.into_iter().zip(ends) {
            let pushed = Pushed {
                seq,
                kind,
                at: arrived,
                origin: Origin::Remote,
            };
            offered += offer_event(&targets[start..end], pushed, frame);
            start = end;
        }
        self.count(offered);
    }

    /// The users with a socket in this process.
    pub fn connected_users(&self) -> Vec<i64> {
        self.sessions
            .lock()
            .expect("hub lock poisoned")
            .keys()
            .copied()
            .collect()
    }

    /// Tells every session to read the log (after the cross-process listener reconnected).
    pub fn wake_all(&self) {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        for s in sessions.values().flatten() {
            self.offer(s, Push::CatchUp);
        }
    }

    /// Sends an ephemeral frame of type `kind` to the sockets of `user_ids`; dropped where
    /// a queue is full (typing and presence are best-effort: a socket is not closed for
    /// them). How many sockets took it.
    pub fn send_ephemeral(&self, user_ids: &[i64], kind: FrameType, frame: Utf8Bytes) -> u64 {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        let mut queued = 0;
        for user_id in user_ids {
            for s in sessions.get(user_id).into_iter().flatten() {
                let frame = frame.clone();
                queued += u64::from(enqueue(s, Push::Ephemeral { kind, frame }).is_ok());
            }
        }
        queued
    }

    /// Open sockets in this process.
    pub fn socket_count(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    fn offer(&self, s: &Subscriber, push: Push) {
        if offer(s, push) {
            self.count(1);
        }
    }

    fn count(&self, offered: u64) {
        if offered > 0 {
            self.delivered.fetch_add(offered, Ordering::Relaxed);
        }
    }
}

/// Queues `push` for one socket; whether it was queued.
fn offer(s: &Subscriber, push: Push) -> bool {
    match enqueue(s, push) {
        Ok(()) => true,
        // A full queue means a reader that does not keep up: it is closed with 1013 and
        // resumes with `since`; nobody else waits for it.
        Err(Refused::Full) => {
            s.overflow.cancel();
            false
        }
        Err(Refused::Closed) => false,
    }
}

enum Refused {
    /// Over the queue's frame or byte bound.
    Full,
    /// The session is gone.
    Closed,
}

/// Queues `push` within the socket's bounds, counting its bytes.
fn enqueue(s: &Subscriber, push: Push) -> Result<(), Refused> {
    let bytes = push.bytes();
    let before = s.queued.fetch_add(bytes, Ordering::Relaxed);
    if before > 0 && before + bytes > s.max_bytes {
        s.queued.fetch_sub(bytes, Ordering::Relaxed);
        return Err(Refused::Full);
    }
    s.tx.try_send(push).map_err(|e| {
        s.queued.fetch_sub(bytes, Ordering::Relaxed);
        match e {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        }
    })
}

/// One event's push, but its frame.
#[derive(Clone, Copy)]
struct Pushed {
    seq: i64,
    kind: FrameType,
    at: Stamp,
    origin: Origin,
}

impl Pushed {
    fn with(self, frame: Utf8Bytes) -> Push {
        let Pushed {
            seq,
            kind,
            at,
            origin,
        } = self;
        Push::Event {
            seq,
            frame,
            kind,
            at,
            origin,
        }
    }
}

/// Queues one event for the sockets of one user; how many took it. The last socket gets
/// the frame itself: most users have one socket, and the bytes are then never shared.
fn offer_event(sockets: &[Arc<Subscriber>], pushed: Pushed, frame: Utf8Bytes) -> u64 {
    let Some((last, others)) = sockets.split_last() else {
        return 0;
    };
    let mut offered = 0;
    for s in others {
        offered += u64::from(offer(s, pushed.with(frame.clone())));
    }
    offered + u64::from(offer(last, pushed.with(frame)))
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
