//! The in-process fan-out: which sockets of which users live in this process, and handing
//! them events after their transaction committed.
//!
//! The hub is only a fast path. Each session tracks the last seq it delivered and reads the
//! log whenever what arrives is not the next one, so a lost or reordered push costs latency,
//! never an event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use crate::events::{self, Outbox};

/// What a session is handed.
#[derive(Debug, Clone)]
pub enum Push {
    /// A durable event with the user's seq; the frame text is shared by the user's sockets.
    Event { seq: i64, frame: Utf8Bytes },
    /// Something was appended for this user (by another process, or a push was lost):
    /// read the log.
    CatchUp,
    /// An ephemeral frame (typing), not logged.
    Ephemeral(Utf8Bytes),
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Push>,
    /// The last seq the session sent (kept up to date by the session).
    delivered: Arc<AtomicI64>,
    /// The login session of the socket's token.
    session_id: i64,
    /// Cancelled when that login session is revoked: the socket closes with 4001.
    revoked: CancellationToken,
    /// Cancelled when the queue overflowed: the session closes with 1013.
    overflow: CancellationToken,
}

/// The registry of this process's sessions by user.
#[derive(Default)]
pub struct Hub {
    sessions: Mutex<HashMap<i64, Vec<Subscriber>>>,
    next_id: AtomicU64,
    /// Frames handed to socket queues (each counts once per socket).
    pub delivered: AtomicU64,
}

/// A session's end of the hub; unregisters itself when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    user_id: i64,
    pub rx: mpsc::Receiver<Push>,
    pub overflow: CancellationToken,
    /// The session stores the last seq it sent here, for `wake_behind`.
    pub delivered: Arc<AtomicI64>,
    /// Cancelled when the socket's login session is revoked.
    pub revoked: CancellationToken,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut sessions = self.hub.sessions.lock().expect("hub lock poisoned");
        if let Some(list) = sessions.get_mut(&self.user_id) {
            list.retain(|s| s.id != self.id);
            if list.is_empty() {
                sessions.remove(&self.user_id);
            }
        }
    }
}

impl Hub {
    /// Registers a socket of `user_id` (token of login session `session_id`) with a queue of
    /// `capacity` pushes.
    pub fn subscribe(
        self: &Arc<Self>,
        user_id: i64,
        session_id: i64,
        capacity: usize,
    ) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity);
        let overflow = CancellationToken::new();
        let revoked = CancellationToken::new();
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
        };
        self.sessions
            .lock()
            .expect("hub lock poisoned")
            .entry(user_id)
            .or_default()
            .push(subscriber);
        Subscription {
            hub: self.clone(),
            id,
            user_id,
            rx,
            overflow,
            delivered,
            revoked,
        }
    }

    /// Hands committed events to the sockets of their recipients in this process.
    pub fn publish(&self, outbox: &Outbox) {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        if sessions.is_empty() {
            return;
        }
        for event in &outbox.events {
            for &(user_id, seq) in &event.deliveries {
                let Some(list) = sessions.get(&user_id) else {
                    continue;
                };
                // Serialised once per user; the user's sockets share the bytes.
                let frame = Utf8Bytes::from(events::frame(event.kind, seq, &event.payload));
                for s in list {
                    self.offer(
                        s,
                        Push::Event {
                            seq,
                            frame: frame.clone(),
                        },
                    );
                }
            }
        }
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
    /// log (hints from other processes, and the sweep).
    pub fn wake_behind(&self, seqs: &[(i64, i64)]) {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        for (user_id, seq) in seqs {
            for s in sessions.get(user_id).into_iter().flatten() {
                if s.delivered.load(Ordering::Relaxed) < *seq {
                    self.offer(s, Push::CatchUp);
                }
            }
        }
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

    /// Pushes one logged event to the sockets of `user_id` (they skip what they have).
    pub fn push_event(&self, user_id: i64, seq: i64, frame: Utf8Bytes) {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        for s in sessions.get(&user_id).into_iter().flatten() {
            self.offer(
                s,
                Push::Event {
                    seq,
                    frame: frame.clone(),
                },
            );
        }
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

    /// Sends an ephemeral frame to the sockets of `user_ids`; dropped where a queue is full.
    pub fn send_ephemeral(&self, user_ids: &[i64], frame: Utf8Bytes) {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        for user_id in user_ids {
            for s in sessions.get(user_id).into_iter().flatten() {
                let _ = s.tx.try_send(Push::Ephemeral(frame.clone()));
            }
        }
    }

    /// Open sockets in this process.
    pub fn socket_count(&self) -> usize {
        self.sessions
            .lock()
            .expect("hub lock poisoned")
            .values()
            .map(Vec::len)
            .sum()
    }

    fn offer(&self, s: &Subscriber, push: Push) {
        match s.tx.try_send(push) {
            Ok(()) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            // A full queue means a reader that does not keep up: it is closed with 1013 and
            // resumes with `since`; nobody else waits for it.
            Err(mpsc::error::TrySendError::Full(_)) => s.overflow.cancel(),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
