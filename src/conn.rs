//! A client connection's resources below HTTP: its slot among `max_connections`, and its
//! stream with a bound on writes that make no progress.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

/// A connection's slot among `max_connections`, shared by its requests (an extension on
/// each). The HTTP connection ends at a WebSocket upgrade, so the session takes the slot
/// with it (`ws::upgrade`) and the socket counts as an open connection until it closes.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

impl ConnectionSlot {
    pub fn new(permit: OwnedSemaphorePermit) -> ConnectionSlot {
        ConnectionSlot(Arc::new(permit))
    }
}

/// A client's connection as hyper sees it: the TCP stream, where a write that makes no
/// progress for `stall` fails. hyper has no write timeout, and its header timer does not run
/// while it writes, so a client that sends requests but never reads the answers (pipelined,
/// until the socket buffers are full) would otherwise hold its slot forever. The WebSocket
/// upgrade takes the bare stream back (`into_tcp`); sessions bound their own writes.
pub struct ClientIo {
    io: TokioIo<TcpStream>,
    stall: Duration,
    /// Armed while writes are pending; progress disarms it.
    write_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ClientIo {
    pub fn new(stream: TcpStream, stall: Duration) -> ClientIo {
        ClientIo {
            io: TokioIo::new(stream),
            stall,
            write_deadline: None,
        }
    }

    /// The TCP stream, for the WebSocket session.
    pub fn into_tcp(self) -> TcpStream {
        self.io.into_inner()
    }

    /// After a write-side poll: progress disarms the deadline, a pending write arms it, and
    /// a deadline that passes fails the write.
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.write_deadline = None;
            return poll;
        }
        let stall = self.stall;
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading its responses",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Read for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.progress(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.progress(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.progress(cx, poll)
    }
}
