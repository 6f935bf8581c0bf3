//! Noticing that an HTTP client went away while its request runs, so the request stops.
//!
//! hyper does not read an HTTP/1 connection while a handler runs, so it never sees the
//! client leave and the handler (with its database query) runs to the end. The acceptor
//! here hands hyper a thin wrapper around the socket and watches the same socket itself:
//! when the peer closes, it cancels the token of that connection, and the endpoint drops
//! the request's future, which closes its database connection mid-query.

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
use tokio_util::sync::CancellationToken;

/// The cancellation token of every open connection, by peer address.
#[derive(Default)]
pub struct Disconnects {
    connections: DashMap<SocketAddr, CancellationToken>,
}

impl Disconnects {
    /// The token cancelled when the client at `peer` disconnects.
    pub fn token(&self, peer: &SocketAddr) -> Option<CancellationToken> {
        self.connections.get(peer).map(|t| t.clone())
    }
}

/// A TCP acceptor whose connections are watched for the client leaving.
pub struct WatchedAcceptor {
    inner: TcpAcceptor,
    disconnects: Arc<Disconnects>,
}

impl WatchedAcceptor {
    /// Watches the connections `inner` accepts, reporting to `disconnects`.
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
        let closed = CancellationToken::new();
        let served = CancellationToken::new();
        if let Some(peer) = remote.as_socket_addr().copied() {
            self.disconnects.connections.insert(peer, closed.clone());
            tokio::spawn(watch(
                stream.clone(),
                peer,
                closed,
                served.clone(),
                self.disconnects.clone(),
            ));
        }
        Ok((WatchedIo { stream, served }, local, remote, scheme))
    }
}

/// Waits for the peer to close (EOF or an error on a peek), or for hyper to be done with
/// the connection, whichever comes first.
async fn watch(
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    closed: CancellationToken,
    served: CancellationToken,
    disconnects: Arc<Disconnects>,
) {
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            () = served.cancelled() => break,
            peeked = stream.peek(&mut probe) => match peeked {
                Ok(0) | Err(_) => {
                    closed.cancel();
                    break;
                }
                // Unread bytes (a body, a pipelined request) are hyper's to read; look again
                // shortly rather than spin on a socket that stays readable.
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
    disconnects.connections.remove(&peer);
    // Dropping the last `Arc` closes the socket once hyper has let go of it too.
}

/// The socket as hyper sees it. Dropping it tells the watcher to let go, so the socket
/// closes as soon as hyper is done.
pub struct WatchedIo {
    stream: Arc<TcpStream>,
    served: CancellationToken,
}

impl Drop for WatchedIo {
    fn drop(&mut self) {
        self.served.cancel();
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
