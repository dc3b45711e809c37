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

use crate::events::Outbox;

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

impl Push {
    /// The frame bytes this push holds in a queue (a shared frame counts in every queue that
    /// holds it: the worst case, distinct frames, is what the bound is for).
    fn bytes(&self) -> usize {
        match self {
            Push::Event { frame, .. } | Push::Ephemeral(frame) => frame.len(),
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
    /// Bytes of the frames in the queue, and their bound.
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The registry of this process's sessions by user.
#[derive(Default)]
pub struct Hub {
    /// Shared with `publish`, which takes what it needs under the lock and sends after it.
    sessions: Mutex<HashMap<i64, Vec<Arc<Subscriber>>>>,
    next_id: AtomicU64,
    /// Open sockets (entries of `sessions`), kept so that counting them is not a walk over
    /// all of them at every upgrade.
    sockets: AtomicUsize,
    /// Frames handed to socket queues (each counts once per socket).
    pub delivered: AtomicU64,
}

/// A session's end of the hub; unregisters itself when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    user_id: i64,
    /// What the hub hands this socket; a push taken from here directly is passed to `taken`.
    pub rx: mpsc::Receiver<Push>,
    /// Bytes of the frames in `rx`, released as they are taken.
    queued: Arc<AtomicUsize>,
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
            }
        }
    }
}

impl Subscription {
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

    /// Hands committed events to the sockets of their recipients in this process.
    ///
    /// The lock is held only to look up the recipients' sockets; their frames are built and
    /// queued after it is released (a 1000-member chat builds 1000 frames).
    pub fn publish(&self, outbox: &Outbox) {
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
        let mut template: Option<(usize, FrameTemplate)> = None;
        for (index, seq, end) in recipients {
            // Each event's text around the seq is written once; each user's frame is that
            // and the seq's digits, shared by the user's sockets.
            let template = match &mut template {
                Some((at, template)) if *at == index => template,
                slot => {
                    let event = &outbox.events[index];
                    &slot
                        .insert((index, FrameTemplate::new(event.kind, &event.payload)))
                        .1
                }
            };
            offered += offer_event(&targets[start..end], seq, template.frame(seq));
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

    /// Pushes logged events `(user, seq, frame)` to the sockets of their users (they skip
    /// what they have). One lock for the batch; the pushes are queued after it is released,
    /// in the batch's order.
    pub fn push_events(&self, events: Vec<(i64, i64, Utf8Bytes)>) {
        let mut targets: Vec<Arc<Subscriber>> = Vec::new();
        let mut ends: Vec<usize> = Vec::with_capacity(events.len());
        {
            let sessions = self.sessions.lock().expect("hub lock poisoned");
            for (user_id, _, _) in &events {
                if let Some(list) = sessions.get(user_id) {
                    targets.extend(list.iter().cloned());
                }
                ends.push(targets.len());
            }
        }
        let mut offered = 0;
        let mut start = 0;
        for ((_, seq, frame), end) in events.into_iter().zip(ends) {
            offered += offer_event(&targets[start..end], seq, frame);
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

    /// Sends an ephemeral frame to the sockets of `user_ids`; dropped where a queue is full
    /// (typing is best-effort: a socket is not closed for it).
    pub fn send_ephemeral(&self, user_ids: &[i64], frame: Utf8Bytes) {
        let sessions = self.sessions.lock().expect("hub lock poisoned");
        for user_id in user_ids {
            for s in sessions.get(user_id).into_iter().flatten() {
                let _ = enqueue(s, Push::Ephemeral(frame.clone()));
            }
        }
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

/// Queues one event for the sockets of one user; how many took it. The last socket gets
/// the frame itself: most users have one socket, and the bytes are then never shared.
fn offer_event(sockets: &[Arc<Subscriber>], seq: i64, frame: Utf8Bytes) -> u64 {
    let Some((last, others)) = sockets.split_last() else {
        return 0;
    };
    let mut offered = 0;
    for s in others {
        let frame = frame.clone();
        offered += u64::from(offer(s, Push::Event { seq, frame }));
    }
    offered + u64::from(offer(last, Push::Event { seq, frame }))
}

/// `{"type":"` and `","seq":`.
const HEAD_LEN: usize = 17;
/// `,"payload":` and `}`.
const TAIL_LEN: usize = 12;

/// One event's frame text without its seq: `{"type":"<kind>","seq":` and
/// `,"payload":<payload>}`, written once per event, so that each recipient's frame is one
/// allocation of exactly its size and three copies (no formatting machinery: that runs
/// once per recipient). Byte for byte `events::frame(kind, seq, payload)`.
pub struct FrameTemplate {
    head: String,
    tail: String,
}

impl FrameTemplate {
    pub fn new(kind: &str, payload: &str) -> FrameTemplate {
        let mut head = String::with_capacity(HEAD_LEN + kind.len());
        head.push_str(r#"{"type":""#);
        head.push_str(kind);
        head.push_str(r#"","seq":"#);
        let mut tail = String::with_capacity(TAIL_LEN + payload.len());
        tail.push_str(r#","payload":"#);
        tail.push_str(payload);
        tail.push('}');
        FrameTemplate { head, tail }
    }

    /// The frame of this event for the recipient's `seq`.
    pub fn frame(&self, seq: i64) -> Utf8Bytes {
        let mut digits = [0u8; 20];
        let seq = decimal(seq, &mut digits);
        let mut text = String::with_capacity(self.head.len() + seq.len() + self.tail.len());
        text.push_str(&self.head);
        // Byte by byte: cheaper than checking the digits are UTF-8 as a `&str`.
        text.extend(seq.iter().map(|&digit| char::from(digit)));
        text.push_str(&self.tail);
        // Exact capacity: `Bytes` takes the buffer over without allocating again.
        debug_assert_eq!(text.len(), text.capacity());
        Utf8Bytes::from(text)
    }
}

/// `n` in decimal (ASCII), written at the end of `buf` (two digits per step).
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    const PAIRS: &[u8; 200] = b"\
        0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut rest = n.unsigned_abs();
    let mut at = buf.len();
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + rest as u8;
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events;

    #[test]
    fn frames_are_byte_identical_to_events_frame() {
        let seqs = [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            999_999_999,
            1_000_000_000,
            i64::MAX,
            -1,
            -10,
            i64::MIN,
        ];
        let payloads = [
            r#"{}"#,
            r#"{"id":1,"chat_id":2,"text":"héllo \"x\" ✓ 𝄞","sent_at":"2026-01-01T00:00:00Z"}"#,
            "",
            "null",
        ];
        let kinds = ["new_message", "read", "delete_chat", ""];
        for kind in kinds {
            for payload in payloads {
                let template = FrameTemplate::new(kind, payload);
                assert_eq!(template.head.len(), template.head.capacity());
                assert_eq!(template.tail.len(), template.tail.capacity());
                for seq in seqs {
                    let expected = events::frame(kind, seq, payload);
                    assert_eq!(template.frame(seq).as_str(), expected);
                }
            }
        }
        let mut digits = [0u8; 20];
        let powers = (0..19).flat_map(|p| {
            let x = 10i64.pow(p);
            [x - 1, x, x + 1, -x + 1, -x, -x - 1]
        });
        for n in (-2000..2000)
            .chain(powers)
            .chain([i64::MAX, i64::MAX - 1, i64::MIN, i64::MIN + 1])
        {
            assert_eq!(decimal(n, &mut digits), n.to_string().as_bytes());
        }
    }

    #[tokio::test]
    async fn publish_hands_each_socket_its_users_frame_in_order() {
        use crate::events::{Appended, EventType};
        let hub = Arc::new(Hub::default());
        let bounds = QueueBounds {
            frames: 16,
            bytes: 1 << 20,
        };
        let mut a1 = hub.subscribe(1, 10, bounds);
        let mut a2 = hub.subscribe(1, 11, bounds);
        let mut b = hub.subscribe(2, 20, bounds);
        assert_eq!(hub.socket_count(), 3);
        let payload = r#"{"text":"hi"}"#;
        let outbox = Outbox::from_committed(vec![
            Appended {
                kind: EventType::NewMessage.as_str(),
                payload: payload.into(),
                deliveries: vec![(1, 7), (2, 3), (3, 1)],
            },
            Appended {
                kind: EventType::Read.as_str(),
                payload: "{}".into(),
                deliveries: vec![(2, 4)],
            },
        ]);
        hub.publish(&outbox);
        let expect =
            |sub: &mut Subscription, seq: i64, kind: &str, payload: &str| match sub.try_recv() {
                Some(Push::Event { seq: got, frame }) => {
                    assert_eq!(got, seq);
                    assert_eq!(frame.as_str(), events::frame(kind, seq, payload));
                }
                other => panic!("expected event {seq}, got {other:?}"),
            };
        expect(&mut a1, 7, "new_message", payload);
        expect(&mut a2, 7, "new_message", payload);
        expect(&mut b, 3, "new_message", payload);
        expect(&mut b, 4, "read", "{}");
        assert!(a1.try_recv().is_none() && b.try_recv().is_none());
        assert_eq!(hub.delivered.load(Ordering::Relaxed), 4);

        let read = FrameTemplate::new("read", "{}");
        hub.push_events(vec![
            (2, 5, read.frame(5)),
            (3, 1, read.frame(1)),
            (2, 6, read.frame(6)),
        ]);
        expect(&mut b, 5, "read", "{}");
        expect(&mut b, 6, "read", "{}");
        assert_eq!(hub.delivered.load(Ordering::Relaxed), 6);

        drop(a2);
        assert_eq!(hub.socket_count(), 2);
        assert_eq!(hub.user_socket_count(1), 1);
        drop(a1);
        drop(b);
        assert_eq!(hub.socket_count(), 0);
        assert!(hub.connected_users().is_empty());
    }

    /// A `Read` event for user 1 at `seq` whose frame is `len` bytes.
    fn big_event(seq: i64, len: usize) -> Outbox {
        use crate::events::{Appended, EventType};
        let head = events::frame("read", seq, r#""""#).len();
        let payload = format!(r#""{}""#, "x".repeat(len - head));
        Outbox::from_committed(vec![Appended {
            kind: EventType::Read.as_str(),
            payload: payload.into(),
            deliveries: vec![(1, seq)],
        }])
    }

    #[test]
    fn a_queue_is_bounded_by_the_bytes_of_its_frames() {
        let hub = Arc::new(Hub::default());
        let bounds = QueueBounds {
            frames: 1000,
            bytes: 64 * 1024,
        };
        let mut slow = hub.subscribe(1, 10, bounds);
        // Four 16 KiB frames fill 64 KiB exactly; the fifth overflows, long before the
        // frame bound.
        for seq in 1..=4 {
            hub.publish(&big_event(seq, 16 * 1024));
            assert!(!slow.overflow.is_cancelled(), "overflowed at {seq}");
        }
        assert_eq!(slow.queued.load(Ordering::Relaxed), 64 * 1024);
        hub.publish(&big_event(5, 16 * 1024));
        assert!(slow.overflow.is_cancelled());
        assert_eq!(slow.queued.load(Ordering::Relaxed), 64 * 1024);
        // What the session takes is released.
        for seq in 1..=4 {
            assert!(matches!(slow.try_recv(), Some(Push::Event { seq: s, .. }) if s == seq));
        }
        assert!(slow.try_recv().is_none());
        assert_eq!(slow.queued.load(Ordering::Relaxed), 0);

        // An empty queue takes one frame of any size; typing never closes a socket.
        let mut other = hub.subscribe(1, 11, bounds);
        hub.publish(&big_event(6, 100 * 1024));
        assert!(!other.overflow.is_cancelled());
        hub.send_ephemeral(&[1], Utf8Bytes::from_static("{}"));
        assert!(!other.overflow.is_cancelled());
        assert!(matches!(other.try_recv(), Some(Push::Event { seq: 6, .. })));
        assert!(
            other.try_recv().is_none(),
            "typing over the bound is dropped"
        );
    }

    #[test]
    fn socket_caps_are_checked_and_taken_under_one_lock() {
        let hub = Arc::new(Hub::default());
        let bounds = QueueBounds {
            frames: 4,
            bytes: 1024,
        };
        let a = hub.try_subscribe(1, 10, bounds, 3, 2).unwrap();
        let _b = hub.try_subscribe(1, 11, bounds, 3, 2).unwrap();
        assert_eq!(
            hub.try_subscribe(1, 12, bounds, 3, 2).err(),
            Some(CapReached::User)
        );
        let _c = hub.try_subscribe(2, 20, bounds, 3, 2).unwrap();
        assert_eq!(
            hub.try_subscribe(3, 30, bounds, 3, 2).err(),
            Some(CapReached::Process)
        );
        assert_eq!(hub.socket_count(), 3);
        assert!(!hub.connected_users().contains(&3));
        drop(a);
        assert!(hub.try_subscribe(3, 30, bounds, 3, 2).is_ok());
    }
}
