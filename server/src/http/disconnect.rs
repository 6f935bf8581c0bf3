//! Noticing that an HTTP client went away while its request runs, so the request stops.
//!
//! hyper does not read an HTTP/1 connection while a handler runs, so it never sees the
//! client leave and the handler (with its database query) runs to the end. The acceptor
//! here hands hyper the stream in a thin wrapper and keeps a duplicate descriptor of the
//! socket where the endpoint can find it: a request still running after a short grace
//! period peeks at that, and when the peer has closed, the endpoint drops the request's
//! future, which stops its database statement. Quick requests never look, so watching
//! costs them nothing.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dashmap::DashMap;
use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A second handle on every open connection's socket, by peer address.
#[derive(Default)]
pub struct Disconnects {
    connections: DashMap<SocketAddr, Arc<std::net::TcpStream>>,
}

impl Disconnects {
    /// The connection of the client at `peer`, to watch while its request runs.
    pub fn watch(&self, peer: &SocketAddr) -> Option<Watch> {
        self.connections.get(peer).map(|s| Watch {
            socket: s.value().clone(),
        })
    }
}

/// One client connection, watched for the client leaving.
pub struct Watch {
    socket: Arc<std::net::TcpStream>,
}

impl Watch {
    /// Resolves once the client has closed the connection (EOF or an error on a peek).
    /// Nothing is looked at during `grace`: a quick request costs no system call, and
    /// only a request still running after it registers the socket with the runtime and
    /// watches it. Never resolves if the socket cannot be watched.
    pub async fn closed_after(self, grace: Duration) {
        tokio::time::sleep(grace).await;
        // A handle of its own: the runtime allows one registration per descriptor, and
        // hyper's stream holds the first.
        let Some(stream) = self
            .socket
            .try_clone()
            .ok()
            .and_then(|s| TcpStream::from_std(s).ok())
        else {
            return std::future::pending().await;
        };
        let mut probe = [0u8; 1];
        loop {
            match stream.peek(&mut probe).await {
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
        // A duplicate descriptor, so hyper keeps the stream itself (tokio's reads know
        // when a short read drained the socket and skip the next system call) and a
        // watcher can still reach the socket. A connection that cannot be duplicated is
        // served unwatched.
        let peer = remote.as_socket_addr().copied().filter(|peer| {
            let duplicate = std::os::fd::AsFd::as_fd(&stream).try_clone_to_owned();
            match duplicate {
                Ok(fd) => {
                    let socket = Arc::new(std::net::TcpStream::from(fd));
                    self.disconnects.connections.insert(*peer, socket);
                    true
                }
                Err(_) => false,
            }
        });
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
    stream: TcpStream,
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
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
