//! The generator's network side: which servers it may talk to (loopback only), which
//! 127.0.0.x source addresses its sockets bind to, and a small HTTP/1.1 client on hyper's
//! connection-level API (so every connection is bound where we say and kept alive).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

/// A TCP connect (or a WebSocket handshake) that takes longer than this has failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP request may take this long before it counts as failed. Long, so an overloaded
/// server shows up as latency rather than as errors.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A server under test: `http://host:port`, resolved once. Only loopback addresses are
/// accepted: the generator must never send load anywhere else.
#[derive(Debug, Clone)]
pub struct Target {
    /// As given, e.g. `http://127.0.0.1:8000`.
    pub base: String,
    /// `host:port`, for the `Host` header and the WebSocket URL.
    pub authority: String,
    pub addr: SocketAddr,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let authority = rest.trim_end_matches('/').to_string();
        if authority.contains('/') {
            return Err(format!("{url}: give the server's root URL, without a path"));
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url}: cannot resolve: {e}"))?
            .find(|a| a.ip().is_loopback())
            .ok_or_else(|| {
                format!("{url}: not a loopback address; rtchat-bench only loads 127.0.0.0/8 or ::1")
            })?;
        Ok(Target {
            base: url.trim_end_matches('/').to_string(),
            authority,
            addr,
        })
    }
}

/// Source addresses for client sockets, used round-robin. Each address gives ~28,000
/// ephemeral ports, so large socket counts need several; all of 127.0.0.0/8 is local.
pub struct SourceIps {
    ips: Vec<IpAddr>,
    next: AtomicUsize,
}

impl SourceIps {
    /// `first` and `count` consecutive addresses (`count` 0: let the kernel choose).
    pub fn new(first: Ipv4Addr, count: u32) -> Result<SourceIps, String> {
        if count > 0 && !first.is_loopback() {
            return Err(format!("--source-ip {first} is not in 127.0.0.0/8"));
        }
        let base = u32::from(first);
        let ips = (0..count)
            .map(|i| IpAddr::V4(Ipv4Addr::from(base + i)))
            .collect::<Vec<_>>();
        if ips.iter().any(|ip| !ip.is_loopback()) {
            return Err("the source addresses run out of 127.0.0.0/8".into());
        }
        Ok(SourceIps {
            ips,
            next: AtomicUsize::new(0),
        })
    }

    pub fn pick(&self) -> Option<IpAddr> {
        if self.ips.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.ips[i % self.ips.len()])
    }
}

/// Connects to `addr`, bound to `source` when given; `recv_buffer` shrinks the receive
/// buffer before the connection exists (a slow reader's window then stays small).
pub async fn tcp_connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    recv_buffer: Option<u32>,
) -> Result<TcpStream, String> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        // Local ports of the last run's sockets sit in TIME_WAIT for a minute; without this
        // a rerun from the same source address runs out of ports.
        socket
            .set_reuseaddr(true)
            .map_err(|e| format!("SO_REUSEADDR: {e}"))?;
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    if let Some(size) = recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| format!("connect {addr}: timed out"))?
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// An answer: status, `Retry-After` seconds if any, body.
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Bytes,
}

/// One keep-alive HTTP/1.1 connection.
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl HttpConn {
    pub async fn connect(target: &Target, source: Option<IpAddr>) -> Result<HttpConn, String> {
        let stream = tcp_connect(target.addr, source, None).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("http handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpConn {
            sender,
            authority: target.authority.clone(),
        })
    }

    /// Whether the connection can carry another request.
    pub fn is_usable(&self) -> bool {
        !self.sender.is_closed()
    }

    /// One request; JSON body when given; bounded by `REQUEST_TIMEOUT`.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<Reply, String> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority);
        if let Some(token) = token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| format!("request: {e}"))?;
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|e| format!("connection: {e}"))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok(Reply {
                status,
                retry_after,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| "request timed out".to_string())?
    }
}

/// Keep-alive connections to one target for setup calls, at most `limit` at once.
pub struct HttpPool {
    target: Target,
    sources: std::sync::Arc<SourceIps>,
    idle: Mutex<Vec<HttpConn>>,
    permits: Semaphore,
}

impl HttpPool {
    pub fn new(target: Target, sources: std::sync::Arc<SourceIps>, limit: usize) -> HttpPool {
        HttpPool {
            target,
            sources,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(limit),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<Reply, String> {
        let _permit = self.permits.acquire().await.expect("never closed");
        let pooled = self.idle.lock().expect("pool lock").pop();
        let mut conn = match pooled.filter(HttpConn::is_usable) {
            Some(conn) => conn,
            None => HttpConn::connect(&self.target, self.sources.pick()).await?,
        };
        let reply = conn.call(method, path, token, body).await?;
        if conn.is_usable() {
            self.idle.lock().expect("pool lock").push(conn);
        }
        Ok(reply)
    }

    /// A call answered with `429` waits for `Retry-After` and tries again (a bounded number
    /// of times): setup must not fail on rate limits meant for humans.
    pub async fn call_patiently(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<Reply, String> {
        const ATTEMPTS: u32 = 20;
        for _ in 0..ATTEMPTS {
            let reply = self.call(method.clone(), path, token, body.clone()).await?;
            if reply.status != 429 {
                return Ok(reply);
            }
            let wait = reply.retry_after.unwrap_or(1).clamp(1, 30);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
        Err(format!(
            "{path}: still rate limited after {ATTEMPTS} attempts"
        ))
    }
}
