//! The hub's tests (a file of their own, so that `hub.rs` stays short).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::*;
use crate::delivery::frame::FrameTemplate;
use crate::delivery::queue::{CapReached, Push, QueueBounds, Subscription};
use crate::metrics::{FrameType, Origin, Stamp};
use crate::store::events::{self, Outbox};

#[tokio::test]
async fn publish_hands_each_socket_its_users_frame_in_order() {
    use crate::store::events::{Appended, EventType};
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
    let committed = Stamp::now();
    hub.publish(&outbox, committed);
    let arrived = Stamp::now();
    // Pushes carry the frame's type and when (and from what) their latency is measured.
    let expect_push =
        |sub: &mut Subscription, seq, kind: &str, payload: &str, from| match sub.try_recv() {
            Some(Push::Event {
                seq: got,
                frame,
                kind: frame_type,
                at,
                origin,
            }) => {
                assert_eq!(got, seq);
                assert_eq!(frame.as_str(), events::frame(kind, seq, payload));
                assert_eq!(frame_type, FrameType::of_event(kind));
                assert_eq!(frame_type.label(), kind);
                assert_eq!((at, origin), from);
            }
            other => panic!("expected event {seq}, got {other:?}"),
        };
    let expect = |sub: &mut Subscription, seq: i64, kind: &str, payload: &str| {
        let from = if kind == "read" && seq >= 5 {
            (arrived, Origin::Remote) // the `push_events` below
        } else {
            (committed, Origin::Local)
        };
        expect_push(sub, seq, kind, payload, from)
    };
    expect(&mut a1, 7, "new_message", payload);
    expect(&mut a2, 7, "new_message", payload);
    expect(&mut b, 3, "new_message", payload);
    expect(&mut b, 4, "read", "{}");
    assert!(a1.try_recv().is_none() && b.try_recv().is_none());
    assert_eq!(hub.delivered.load(Ordering::Relaxed), 4);

    let read = FrameTemplate::new("read", "{}");
    let r = FrameType::Read;
    hub.push_events(
        vec![
            (2, 5, r, read.frame(5)),
            (3, 1, r, read.frame(1)),
            (2, 6, r, read.frame(6)),
        ],
        arrived,
    );
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
    use crate::store::events::{Appended, EventType};
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
        hub.publish_now(&big_event(seq, 16 * 1024));
        assert!(!slow.overflow.is_cancelled(), "overflowed at {seq}");
    }
    assert_eq!(slow.queued.load(Ordering::Relaxed), 64 * 1024);
    hub.publish_now(&big_event(5, 16 * 1024));
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
    hub.publish_now(&big_event(6, 100 * 1024));
    assert!(!other.overflow.is_cancelled());
    hub.send_ephemeral(&[1], FrameType::Typing, Utf8Bytes::from_static("{}"));
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

impl Hub {
    fn publish_now(&self, outbox: &Outbox) {
        self.publish(outbox, Stamp::now());
    }
}

#[test]
fn a_push_stays_as_small_as_before_it_carried_metrics() {
    // Every socket's queue holds blocks of 32 pushes, allocated with the socket.
    assert!(
        std::mem::size_of::<Push>() <= 48,
        "{}",
        std::mem::size_of::<Push>()
    );
}

#[test]
fn the_sweep_counts_the_events_each_socket_lacks() {
    let hub = Arc::new(Hub::default());
    let bounds = QueueBounds {
        frames: 16,
        bytes: 1 << 20,
    };
    let mut a1 = hub.subscribe(1, 10, bounds);
    let a2 = hub.subscribe(1, 11, bounds);
    let b = hub.subscribe(2, 20, bounds);
    let starting = hub.subscribe(3, 30, bounds);
    a1.delivered.store(5, Ordering::Relaxed);
    a2.delivered.store(7, Ordering::Relaxed);
    b.delivered.store(3, Ordering::Relaxed);
    // a1 lacks 2, a2 nothing, b nothing; a socket still starting (it has not read where
    // it begins) is not behind.
    assert_eq!(hub.wake_behind(&[(1, 7), (2, 3), (3, 9)]), 2);
    assert!(matches!(a1.try_recv(), Some(Push::CatchUp)));
    drop(starting);
}
