//! One task owns each socket: it sends `ready`, replays the log after `since`, then
//! forwards live events in `seq` order, answers client frames, pings, and closes the socket
//! for shutdown (1001), overflow (1013), token expiry (4001) or bad input (1003, 1008, 1009).
//!
//! The session remembers `delivered`, the last seq it sent. A pushed event is sent only if
//! it is the next one; an older one is a duplicate and skipped; a newer one means something
//! was missed (a push raced another, or came from another process) and the session reads
//! the log from `delivered`. Pushes are a fast path; the log is the truth.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, ClientFrame};
use super::ws_config;
use crate::auth::{unix_now, Caller};
use crate::delivery::{Push, Subscription};
use crate::http::chats::chat_members;
use crate::logging::millis;
use crate::metrics::{Closed, FrameType, Origin, Stamp};
use crate::state::AppState;
use crate::store::StoreError;

/// Longer token lifetimes than this (ten years) are treated as this.
const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 86_400;
/// Events read from the log per query during replay.
const REPLAY_PAGE: i64 = 500;
/// Pushes handled per wake-up before flushing (bounds the latency of the first one).
const PUSH_BATCH: usize = 64;
/// A write that cannot complete in this time means the client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait to hand over a close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a reader closed for overflow (1013) gets to read up to our close frame: it is
/// slow, not gone, and resumes at once when it sees why. Its queue is freed meanwhile; only
/// its socket buffers wait.
const SLOW_CLOSE_TIMEOUT: Duration = WRITE_TIMEOUT;
/// Client frames allowed per window before the socket is closed with 1008.
const CLIENT_FRAMES_PER_WINDOW: u32 = 100;
const CLIENT_WINDOW: Duration = Duration::from_secs(10);
/// At most one `typing` per chat per this interval is forwarded.
const TYPING_INTERVAL: Duration = Duration::from_secs(2);
/// Chats remembered for typing throttling (a client typing in more is throttled afresh).
const TYPING_MEMORY: usize = 64;

/// Why a session ended.
enum End {
    /// Send this close frame, then drop the socket.
    Close(CloseCode, &'static str),
    /// The client sent its close frame (with this code, if any): answered, then dropped.
    ClientClosed(Option<u16>),
    /// The socket is gone or unusable: just drop it. How (`Closed::Client` or
    /// `Closed::Timeout`, for the metrics) and why (for the log line).
    Drop(Closed, &'static str),
}

/// The close codes a socket's log line shows where none was sent; RFC 6455 reserves these
/// two for reporting exactly that: 1006, no close frame at all (the connection was lost);
/// 1005, the client's close frame carried no code.
const CLOSE_ABNORMAL: u16 = 1006;
const CLOSE_NO_STATUS: u16 = 1005;

struct Session<S> {
    state: Arc<AppState>,
    user_id: i64,
    ws: WebSocketStream<S>,
    /// The last seq sent on this socket.
    delivered: i64,
    typing_sent: HashMap<i64, Instant>,
    /// Cancelled when this socket's queue overflowed: a write stuck on a client that does
    /// not read gives up at once instead of waiting for `WRITE_TIMEOUT`.
    overflow: CancellationToken,
    /// Shared with the hub: `delivered`, for hints and the sweep.
    delivered_shared: Arc<AtomicI64>,
    /// Text frames written, for the socket's closing log line.
    frames_sent: u64,
    /// Events sent from the log rather than pushed (the replay after `since`, and catch-ups
    /// after a gap), for the closing log line.
    replayed: u64,
}

/// Runs one socket until it ends: `io` after the upgrade's response, with `read`, the bytes
/// already read past the request, and `subscription`, its place in the hub (taken before the
/// handshake completed, so that it counts against the socket caps at once). `S` is the bare
/// `TcpStream` (see `super::upgrade`).
///
/// It builds the `WebSocketStream` (312 bytes) itself: a value handed to an async fn keeps
/// its slot in the future beside wherever the body moves it (into `Session` here), and this
/// future is most of an idle socket's task.
pub async fn run<S>(
    state: Arc<AppState>,
    caller: Caller,
    since: Option<i64>,
    subscription: Subscription,
    io: S,
    read: Vec<u8>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let opened = Instant::now();
    let socket_id = subscription.id();
    let ws = WebSocketStream::from_partially_read(io, read, Role::Server, Some(ws_config())).await;
    // Subscribed before the log is read, so nothing committed after the read is missed.
    let mut session = Session {
        state,
        user_id: caller.user_id,
        ws,
        delivered: 0,
        typing_sent: HashMap::new(),
        overflow: subscription.overflow.clone(),
        delivered_shared: subscription.delivered.clone(),
        frames_sent: 0,
        replayed: 0,
    };
    // The database parts (start, catch-up, typing) are boxed: they run rarely, and unboxed
    // their futures would size every idle socket's task for the largest of them.
    let end = match Box::pin(session.start(since)).await {
        Ok(()) => session.serve(subscription, caller.expires_at).await,
        Err(end) => end,
    };
    let (close_code, closed_by, why) = match &end {
        End::Close(code, reason) => (u16::from(*code), "server", *reason),
        End::ClientClosed(code) => (code.unwrap_or(CLOSE_NO_STATUS), "client", "client closed"),
        End::Drop(_, why) => (CLOSE_ABNORMAL, "network", *why),
    };
    // Counted before the close frame goes out: a client that saw it finds it counted.
    session.state.metrics.delivery.closed(match end {
        End::Close(code, _) => Closed::Code(code.into()),
        End::ClientClosed(_) => Closed::Client,
        End::Drop(how, _) => how,
    });
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        // The closing handshake: send ours, then read (and discard) until the client's
        // close arrives. Closing the TCP socket with unread data in it would reset the
        // connection, and the client could lose our close frame.
        let wait = if code == protocol::CLOSE_SLOW {
            SLOW_CLOSE_TIMEOUT
        } else {
            CLOSE_TIMEOUT
        };
        let _ = tokio::time::timeout(wait, async {
            session.ws.close(Some(frame)).await?;
            while let Some(message) = session.ws.next().await {
                message?;
            }
            Ok::<(), WsError>(())
        })
        .await;
    }
    tracing::info!(
        target: "rtchat::socket",
        user_id = caller.user_id,
        socket_id,
        duration_ms = millis(opened.elapsed()),
        close_code,
        closed_by,
        reason = why,
        frames_sent = session.frames_sent,
        replayed = session.replayed,
        "socket closed"
    );
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// `ready`, then the replay after `since`.
    async fn start(&mut self, since: Option<i64>) -> Result<(), End> {
        let latest = self.state.delivery.latest_seq(self.user_id).await;
        let latest =
            latest.map_err(|_| End::Close(protocol::CLOSE_SERVER_ERROR, "database unavailable"))?;
        let heartbeat_ms = self.state.config.heartbeat.as_millis();
        let ready = protocol::ready(self.user_id, latest, heartbeat_ms);
        self.feed(ready, FrameType::Ready).await?;
        let replayed = match since {
            None => {
                self.delivered = latest;
                None
            }
            Some(since) if since > latest => {
                // The client knows of events we never had (another deployment, a restored
                // backup): its state cannot be trusted.
                let frame = protocol::resync_required(latest);
                self.feed(frame, FrameType::ResyncRequired).await?;
                self.delivered = latest;
                Some(0)
            }
            Some(since) => {
                self.delivered = since;
                Some(self.catch_up().await?)
            }
        };
        self.flush().await?;
        if let Some(events) = replayed {
            self.state.metrics.delivery.replayed(events);
        }
        Ok(())
    }

    async fn serve(&mut self, mut sub: Subscription, expires_at: u64) -> End {
        let heartbeat = self.state.config.heartbeat;
        // Capped: a token may claim any `exp`, and Instant arithmetic overflows.
        let lifetime = Duration::from_secs(
            expires_at
                .saturating_sub(unix_now())
                .min(MAX_TOKEN_LIFETIME_SECS),
        );
        let expiry = Instant::now() + lifetime;
        // One timer for the next ping and the token's expiry, whichever comes first: a
        // timer is ~100 bytes of every socket's task (and an `Interval` boxes one more).
        let timer = tokio::time::sleep_until((Instant::now() + heartbeat).min(expiry));
        tokio::pin!(timer);
        let mut last_heard = Instant::now();
        let mut window_start = Instant::now();
        let mut frames_in_window = 0u32;
        let shutdown = self.state.shutdown.clone();

        // The handlers are boxed: inline, their futures (a write with its timeout, the frame
        // just read) would size the idle socket's task for them, though they run briefly.
        loop {
            let result = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::Close(protocol::CLOSE_SHUTDOWN, "server shutting down"),
                _ = sub.overflow.cancelled() => return End::Close(protocol::CLOSE_SLOW, "too slow: reconnect with since"),
                _ = timer.as_mut() => {
                    let now = Instant::now();
                    if now >= expiry {
                        return End::Close(protocol::CLOSE_TOKEN_EXPIRED, "token expired");
                    }
                    if last_heard.elapsed() > heartbeat * 2 {
                        return End::Drop(Closed::Timeout, "no answer to pings");
                    }
                    timer.as_mut().reset((now + heartbeat).min(expiry));
                    Box::pin(self.send(Message::Ping(Default::default()))).await
                }
                _ = sub.revoked.cancelled() => return End::Close(protocol::CLOSE_TOKEN_EXPIRED, "session ended"),
                push = sub.rx.recv() => match push {
                    Some(push) => Box::pin(self.handle_pushes(push, &mut sub)).await,
                    None => return End::Drop(Closed::Client, "queue closed"),
                },
                incoming = self.ws.next() => {
                    last_heard = Instant::now();
                    if window_start.elapsed() > CLIENT_WINDOW {
                        window_start = Instant::now();
                        frames_in_window = 0;
                    }
                    frames_in_window += 1;
                    if frames_in_window > CLIENT_FRAMES_PER_WINDOW {
                        return End::Close(protocol::CLOSE_POLICY, "too many frames");
                    }
                    Box::pin(self.handle_incoming(incoming)).await
                }
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Handles one push and whatever else is queued (up to a batch), then flushes once.
    async fn handle_pushes(&mut self, first: Push, sub: &mut Subscription) -> Result<(), End> {
        sub.taken(&first);
        let mut next = Some(first);
        let mut handled = 0;
        // When each pushed event written became deliverable, for the latency observed once
        // they are flushed.
        let mut stamps = [(Stamp::default(), Origin::Local); PUSH_BATCH];
        let mut stamped = 0;
        while let Some(push) = next.take() {
            match push {
                Push::Event {
                    seq,
                    frame,
                    kind,
                    at,
                    origin,
                } => {
                    if seq == self.delivered + 1 {
                        self.feed(frame, kind).await?;
                        self.delivered = seq;
                        stamps[stamped] = (at, origin);
                        stamped += 1;
                    } else if seq > self.delivered {
                        Box::pin(self.catch_up()).await?;
                    } // else: already delivered (by a replay); skip the duplicate.
                }
                Push::CatchUp => {
                    Box::pin(self.catch_up()).await?;
                }
                Push::Ephemeral { kind, frame } => self.feed(frame, kind).await?,
            }
            handled += 1;
            if handled < PUSH_BATCH {
                next = sub.try_recv();
            }
        }
        self.flush().await?;
        if stamped > 0 {
            let metrics = &self.state.metrics.delivery;
            metrics.written(&stamps[..stamped], Stamp::now());
        }
        Ok(())
    }

    /// Sends every logged event after `delivered`; how many it sent.
    async fn catch_up(&mut self) -> Result<u64, End> {
        let mut sent = 0;
        loop {
            let (user, after, delivery) = (self.user_id, self.delivered, &self.state.delivery);
            let page = delivery.read_since(user, after, REPLAY_PAGE).await;
            let (stored, has_more) = match page {
                Ok(page) => page,
                // The stream goes on after `seq`, the latest seq read with the gap, and the
                // frame says so: the client takes it as its cursor.
                Err(StoreError::ResyncRequired { seq }) => {
                    let frame = protocol::resync_required(seq);
                    self.feed(frame, FrameType::ResyncRequired).await?;
                    self.delivered = seq;
                    return Ok(sent);
                }
                Err(e) => {
                    let why = match e {
                        StoreError::Unavailable(_) => "database unavailable",
                        _ => "the event log could not be read",
                    };
                    return Err(End::Close(protocol::CLOSE_SERVER_ERROR, why));
                }
            };
            for event in stored {
                self.feed(event.frame.into(), event.kind).await?;
                self.delivered = event.seq;
                self.replayed += 1;
                sent += 1;
            }
            if !has_more {
                return Ok(sent);
            }
        }
    }

    async fn handle_incoming(
        &mut self,
        incoming: Option<Result<Message, WsError>>,
    ) -> Result<(), End> {
        match incoming {
            None => Err(End::Drop(
                Closed::Client,
                "connection closed without a close frame",
            )),
            Some(Err(WsError::Utf8(_))) => Err(End::Close(
                protocol::CLOSE_BAD_DATA,
                "text frames must be UTF-8",
            )),
            Some(Err(WsError::Protocol(_))) => Err(End::Close(
                protocol::CLOSE_PROTOCOL,
                "WebSocket protocol error",
            )),
            Some(Err(WsError::Capacity(_))) => {
                Err(End::Close(protocol::CLOSE_TOO_BIG, "frame too large"))
            }
            Some(Err(_)) => Err(End::Drop(Closed::Client, "read error")),
            Some(Ok(Message::Binary(_))) => Err(End::Close(
                protocol::CLOSE_BINARY,
                "binary frames are not accepted",
            )),
            // tungstenite queued the answer to a ping (or the close handshake); send it.
            Some(Ok(Message::Ping(_))) => self.flush().await,
            Some(Ok(Message::Close(frame))) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.ws.flush()).await;
                Err(End::ClientClosed(frame.map(|f| u16::from(f.code))))
            }
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => Ok(()),
            Some(Ok(Message::Text(text))) => match protocol::parse(&text) {
                Ok(ClientFrame::Ping) => self.send_text(protocol::pong(), FrameType::Pong).await,
                Ok(ClientFrame::Typing { chat_id }) => Box::pin(self.typing(chat_id)).await,
                Err(error_frame) => self.send_text(error_frame, FrameType::Error).await,
            },
        }
    }

    /// Forwards `typing` to the chat's other members, at most once per `TYPING_INTERVAL`.
    async fn typing(&mut self, chat_id: i64) -> Result<(), End> {
        if self.state.limits.typing.check(&self.user_id).is_err() {
            let frame = protocol::error("rate_limited", "too many typing frames: slow down");
            return self.send_text(frame, FrameType::Error).await;
        }
        let now = Instant::now();
        if self
            .typing_sent
            .get(&chat_id)
            .is_some_and(|t| now.duration_since(*t) < TYPING_INTERVAL)
        {
            return Ok(());
        }
        let members = match self.state.db().await {
            Ok(client) => chat_members(&client, chat_id).await,
            Err(e) => Err(e),
        };
        // A failed read says nothing about membership: not `not_found`.
        let Ok(members) = members else {
            let frame = protocol::error("unavailable", "the database is unavailable, try again");
            return self.send_text(frame, FrameType::Error).await;
        };
        if !members.contains(&self.user_id) {
            let frame = protocol::error("not_found", "chat not found");
            return self.send_text(frame, FrameType::Error).await;
        }
        if self.typing_sent.len() >= TYPING_MEMORY {
            self.typing_sent.clear();
        }
        self.typing_sent.insert(chat_id, now);
        let others: Vec<i64> = members
            .into_iter()
            .filter(|id| *id != self.user_id)
            .collect();
        // Members on other processes hear it through the hint (which names the chat, not
        // its members); these through the hub.
        self.state.delivery.typing(chat_id, self.user_id, &others);
        Ok(())
    }

    /// Queues a text frame of type `kind` without flushing.
    async fn feed(&mut self, frame: Utf8Bytes, kind: FrameType) -> Result<(), End> {
        let write = self.ws.feed(Message::Text(frame));
        bounded_write(write, &self.overflow).await?;
        self.frames_sent += 1;
        self.state.metrics.delivery.frame(kind);
        Ok(())
    }

    /// Sends a text frame of type `kind` at once.
    async fn send_text(&mut self, frame: Utf8Bytes, kind: FrameType) -> Result<(), End> {
        self.send(Message::Text(frame)).await?;
        self.state.metrics.delivery.frame(kind);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), End> {
        self.delivered_shared
            .store(self.delivered, Ordering::Relaxed);
        bounded_write(self.ws.flush(), &self.overflow).await
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        let text = message.is_text();
        bounded_write(self.ws.send(message), &self.overflow).await?;
        self.frames_sent += u64::from(text);
        Ok(())
    }
}

/// Runs a socket write for at most `WRITE_TIMEOUT`, and not past an overflow (which closes
/// with 1013: what was written so far stays buffered ahead of the close frame).
async fn bounded_write(
    write: impl std::future::Future<Output = Result<(), WsError>>,
    overflow: &CancellationToken,
) -> Result<(), End> {
    tokio::select! {
        result = tokio::time::timeout(WRITE_TIMEOUT, write) => match result {
            Ok(Ok(())) => Ok(()),
            // The peer reset or closed the connection.
            Ok(Err(_)) => Err(End::Drop(Closed::Client, "write error")),
            Err(_) => Err(End::Drop(Closed::Timeout, "write timed out: the client stopped reading")),
        },
        _ = overflow.cancelled() => Err(End::Close(protocol::CLOSE_SLOW, "too slow: reconnect with since")),
    }
}
