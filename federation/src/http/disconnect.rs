//! Noticing that an HTTP client went away while its request runs, so the request stops.
//!
//! hyper does not read an HTTP/1 connection while a handler runs, so it never sees the
//! client leave and the handler (with its database query) runs to the end. The acceptor
//! here hands hyper a thin wrapper around the socket and keeps the same socket where the
//! endpoint can find it: a request still running after a short grace period peeks at it,
//! and when the peer has closed, the endpoint drops the request's future, which stops its
//! database statement. Quick requests never look, so watching costs them nothing.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use dashmap::DashMap;
use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The socket of every open connection, by peer address.
#[derive(Default)]
pub struct Disconnects {
    connections: DashMap<SocketAddr, Arc<TcpStream>>,
}

impl Disconnects {
    /// The connection of the client at `peer`, to watch while its request runs.
    pub fn watch(&self, peer: &SocketAddr) -> Option<Watch> {
        self.connections.get(peer).map(|s| Watch {
            stream: s.value().clone(),
        })
    }
}

/// One client connection, watched for the client leaving.
pub struct Watch {
    stream: Arc<TcpStream>,
}

impl Watch {
    /// Resolves once the client has closed the connection (EOF or an error on a peek).
    /// Nothing is looked at during `grace`: a quick request costs no system call, and
    /// only a request still running after it watches its socket.
    pub async fn closed_after(self, grace: Duration) {
        tokio::time::sleep(grace).await;
        let mut probe = [0u8; 1];
        loop {
            match self.stream.peek(&mut probe).await {
                Ok(0) | Err(_) => return,
                // Unread bytes (a body, a pipelined request) are hyper's to read; look
                // again shortly rather than spin on a socket that stays readable.
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// A TCP acceptor whose connections can be watched for the client leaving.
pub struct WatchedAcceptor {
    inner: TcpAcceptor,
    disconnects: Arc<Disconnects>,
}

impl WatchedAcceptor {
    /// Registers the connections `inner` accepts in `disconnects`.
    pub fn new(inner: TcpAcceptor, disconnects: Arc<Disconnects>) -> Self {
        Self { inner, disconnects }
    }
}

impl Acceptor for WatchedAcceptor {
    type Io = WatchedIo;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(WatchedIo, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, scheme) = self.inner.accept().await?;
        let stream = Arc::new(stream);
        let peer = remote.as_socket_addr().copied();
        if let Some(peer) = peer {
            self.disconnects.connections.insert(peer, stream.clone());
        }
        let io = WatchedIo {
            stream,
            peer,
            disconnects: self.disconnects.clone(),
        };
        Ok((io, local, remote, scheme))
    }
}

/// The socket as hyper sees it. Dropping it forgets the connection, so the socket closes
/// as soon as hyper is done and no request is watching it.
pub struct WatchedIo {
    stream: Arc<TcpStream>,
    peer: Option<SocketAddr>,
    disconnects: Arc<Disconnects>,
}

impl Drop for WatchedIo {
    fn drop(&mut self) {
        if let Some(peer) = &self.peer {
            self.disconnects.connections.remove(peer);
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(data) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write))
    }
}
