//! Serving one accepted connection with hyper, under the slow-client limits.
//!
//! poem's `Server` builds hyper's connection without a timer, so hyper's own header read
//! timeout never runs and a client that stops halfway through its headers holds the
//! connection forever ([decisions/0008](../../../docs/decisions/0008-http-connection-limits.md)).
//! Here hyper is driven directly: its header timeout bounds the request head, and a watch
//! on the socket's traffic closes a connection that has no request running and has been
//! silent for the keep-alive timeout. The body timeout is the endpoint's (see `respond`).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::Service;

/// The body type poem converts its responses to.
type ResponseBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// How long a client may take over each part of its conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte of a request (or the end of the previous response) to the end
    /// of its headers.
    pub header_read_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_read_timeout: Duration,
    /// How long a connection with no request running may stay silent.
    pub keep_alive_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(5),
        }
    }
}

/// When the connection last moved bytes, and how many of its requests are running.
struct Activity {
    opened: Instant,
    last_millis: AtomicU64,
    running: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_millis: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }

    /// Marks a request as running until the guard drops.
    fn busy(self: &Arc<Self>) -> Busy {
        self.running.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Resolves once no request runs and nothing moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let deadline = self.last() + limit;
            if Instant::now() >= deadline {
                if self.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                // A running request is bounded by its own timeouts; look again later.
                tokio::time::sleep(limit).await;
                continue;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, noting every byte that moves either way.
struct Tracked<Io> {
    io: Io,
    activity: Arc<Activity>,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Tracked<Io> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Tracked<Io> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Where a connection came in.
pub(super) struct Peer {
    pub local: LocalAddr,
    pub remote: RemoteAddr,
    pub scheme: Scheme,
}

/// Serves `io` until the client is done, a limit runs out, or `stop` turns true (then the
/// running requests finish and the connection closes).
pub(super) async fn serve<Io>(
    io: Io,
    peer: Peer,
    service: Arc<Service>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let activity = Arc::new(Activity::new());
    let handler = hyper::service::service_fn({
        let activity = activity.clone();
        move |req: hyper::Request<Incoming>| {
            let service = service.clone();
            let request = poem::Request::from((
                req,
                peer.local.clone(),
                peer.remote.clone(),
                peer.scheme.clone(),
            ));
            let busy = activity.busy();
            // Boxed: hyper moves the request's future a few times, and unboxed it is the
            // whole answer's state, kilobytes copied per request.
            Box::pin(async move {
                let response = service.serve(request).await;
                drop(busy);
                Ok::<_, Infallible>(hyper::Response::<ResponseBody>::from(response))
            })
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // poem's settings, kept for HTTP/2 clients.
    builder
        .http2()
        .max_pending_accept_reset_streams(Some(20_usize))
        .max_header_list_size(16384);
    let tracked = Tracked {
        io,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tracked), handler);
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => return,
        // Nothing runs on it, so nothing is lost by closing it outright; hyper's graceful
        // path would wait for a head that a silent client never finishes.
        () = activity.idle_for(limits.keep_alive_timeout) => return,
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
