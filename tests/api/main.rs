//! rtchat's integration tests: one binary, the real server on port 0 against a real
//! PostgreSQL (a throwaway cluster, or `TEST_DATABASE_URL`), a fresh database per test.

mod auth;
mod batches;
mod chats;
mod cli;
mod conformance;
mod delivery;
mod docs;
mod errors;
mod fanout;
mod hostile;
mod limits;
mod logs;
mod messages;
mod metrics;
mod presence;
mod reactions;
mod reads;
mod retention;
mod scaleout;
mod search;
mod security;
mod supervision;
mod support;
mod upgrade;
mod wire;
mod ws;
mod wsclient;
