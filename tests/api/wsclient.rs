//! A real WebSocket client for the tests: connects to `/ws/notif`, reads JSON frames with
//! a timeout, and can hold a socket that never reads.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{TestApp, WAIT};

pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `ready` frame's payload.
    pub ready: Value,
}

/// What a socket ended with.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(Option<u16>),
    Dropped,
}

impl WsClient {
    /// Connects with the token in the query string and waits for `ready`.
    pub async fn connect(app: &TestApp, token: &str, since: Option<i64>) -> WsClient {
        WsClient::connect_to(app.addr, token, since).await
    }

    /// Connects to the server at `addr`.
    pub async fn connect_to(
        addr: std::net::SocketAddr,
        token: &str,
        since: Option<i64>,
    ) -> WsClient {
        let mut url = format!("ws://{addr}/ws/notif?token={token}");
        if let Some(since) = since {
            url.push_str(&format!("&since={since}"));
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("handshake succeeds");
        let mut client = WsClient {
            ws,
            ready: Value::Null,
        };
        let ready = client.next().await;
        assert_eq!(ready["type"], "ready", "first frame is ready: {ready}");
        client.ready = ready["payload"].clone();
        client
    }

    /// Connects through a socket with a tiny receive buffer (for slow-reader tests).
    pub async fn connect_small_buffer(app: &TestApp, token: &str) -> WsClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(app.addr).await.unwrap();
        let request = app
            .ws_url(&format!("/ws/notif?token={token}"))
            .into_client_request()
            .unwrap();
        let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
        let mut client = WsClient {
            ws,
            ready: Value::Null,
        };
        let ready = client.next().await;
        assert_eq!(ready["type"], "ready");
        client.ready = ready["payload"].clone();
        client
    }

    /// The next JSON frame but `presence` (pings are answered by tungstenite and skipped).
    /// Presence frames come whenever a chat partner's sockets open or close, at times that
    /// depend on the presence task's tick; the tests of other behaviour skip them, and
    /// `tests/api/presence.rs` reads them with `next_any`.
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.next_untimed())
            .await
            .expect("a frame arrives in time")
    }

    /// The next JSON frame, `presence` included.
    pub async fn next_any(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.next_any_untimed())
            .await
            .expect("a frame arrives in time")
    }

    async fn next_untimed(&mut self) -> Value {
        loop {
            let frame = self.next_any_untimed().await;
            if frame["type"] != "presence" {
                return frame;
            }
        }
    }

    async fn next_any_untimed(&mut self) -> Value {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).expect("frames are JSON")
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next durable event (ephemeral frames skipped).
    pub async fn next_event(&mut self) -> Value {
        loop {
            let frame = self.next().await;
            if frame.get("seq").is_some() {
                return frame;
            }
        }
    }

    /// Asserts that no frame but `presence` arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(frame) = tokio::time::timeout(wait, self.next_untimed()).await {
            panic!("expected silence, got {frame}");
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// Reads until the socket ends, returning how (frames before it are discarded).
    pub async fn ended(&mut self) -> Ended {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(frame))) => {
                        return Ended::Closed(frame.map(|f| u16::from(f.code)))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Ended::Dropped,
                }
            }
        })
        .await
        .expect("the socket ends in time")
    }
}

/// The close code a socket ended with, if it sent one.
pub fn code(ended: &Ended) -> Option<u16> {
    match ended {
        Ended::Closed(code) => *code,
        Ended::Dropped => None,
    }
}
