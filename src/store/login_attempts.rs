//! login attempt counters shared by every process (fixed windows per key).
