//! The event log's vocabulary for the handlers: the event types, and the `Outbox` a
//! transaction stages its events in. The log itself (its SQL, how seqs stay consecutive) is
//! `store::events`; `delivery` commits an outbox and hands its events to the sockets.

pub use crate::store::events::{
    frame, latest_seq, prune, read_since, Appended, EventType, Outbox, Stored,
};
