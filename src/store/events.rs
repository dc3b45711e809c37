//! the durable event log: append with the change, read since a seq, prune.
