//! One socket's place in the hub: what it is handed (`Push`), the bounds of its queue, and
//! the session's end of it (`Subscription`), which unregisters itself when dropped.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::hub::Hub;
use crate::metrics::{FrameType, Origin, Stamp};

/// What a session is handed.
#[derive(Debug, Clone)]
pub enum Push {
    /// A durable event with the user's seq; the frame text is shared by the user's sockets.
    /// `kind`, `at` and `origin` are for the metrics: the frame's type, and when (and
    /// measured from what) it became deliverable.
    Event {
        seq: i64,
        frame: Utf8Bytes,
        kind: FrameType,
        at: Stamp,
        origin: Origin,
    },
    /// Something was appended for this user (by another process, or a push was lost):
    /// read the log.
    CatchUp,
    /// An ephemeral frame (typing), not logged.
    Ephemeral { kind: FrameType, frame: Utf8Bytes },
}

impl Push {
    /// The frame bytes this push holds in a queue (a shared frame counts in every queue that
    /// holds it: the worst case, distinct frames, is what the bound is for).
    pub(super) fn bytes(&self) -> usize {
        match self {
            Push::Event { frame, .. } | Push::Ephemeral { frame, .. } => frame.len(),
            Push::CatchUp => 0,
        }
    }
}

/// Why a socket could not be registered.
#[derive(Debug, PartialEq, Eq)]
pub enum CapReached {
    /// The process holds its maximum of sockets.
    Process,
    /// The user holds their maximum of sockets in this process.
    User,
}

/// The bounds of one socket's queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueBounds {
    /// Pushes queued at most (`CatchUp` holds no bytes but takes a place).
    pub frames: usize,
    /// Bytes of frames queued at most; one frame is always taken by an empty queue, so a
    /// frame larger than the bound is not a slow reader.
    pub bytes: usize,
}

pub(super) struct Subscriber {
    pub(super) id: u64,
    pub(super) tx: mpsc::Sender<Push>,
    /// The last seq the session sent (kept up to date by the session).
    pub(super) delivered: Arc<AtomicI64>,
    /// The login session of the socket's token.
    pub(super) session_id: i64,
    /// Cancelled when that login session is revoked: the socket closes with 4001.
    pub(super) revoked: CancellationToken,
    /// Cancelled when the queue overflowed: the session closes with 1013.
    pub(super) overflow: CancellationToken,
    /// Bytes of the frames in the queue, and their bound.
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) max_bytes: usize,
}

/// A session's end of the hub; unregisters itself when dropped.
pub struct Subscription {
    pub(super) hub: Arc<Hub>,
    pub(super) id: u64,
    pub(super) user_id: i64,
    /// What the hub hands this socket; a push taken from here directly is passed to `taken`.
    pub rx: mpsc::Receiver<Push>,
    /// Bytes of the frames in `rx`, released as they are taken.
    pub(super) queued: Arc<AtomicUsize>,
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
            let before = list.len();
            list.retain(|s| s.id != self.id);
            self.hub
                .sockets
                .fetch_sub(before - list.len(), Ordering::Relaxed);
            if list.is_empty() {
                sessions.remove(&self.user_id);
                if before > 0 {
                    self.hub.transitions.closed(self.user_id);
                }
            }
        }
    }
}

impl Subscription {
    /// This socket's number in this process (counted from process start), for its log lines.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Releases the queue bytes of a push taken from `rx`.
    pub fn taken(&self, push: &Push) {
        self.queued.fetch_sub(push.bytes(), Ordering::Relaxed);
    }

    /// The next push if one is queued.
    pub fn try_recv(&mut self) -> Option<Push> {
        let push = self.rx.try_recv().ok()?;
        self.taken(&push);
        Some(push)
    }
}
