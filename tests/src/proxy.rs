//! A TCP proxy between Manifold and a test database that can be told to misbehave, so a
//! test can take one data source down mid-run and watch the others keep serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;
const KILLED: u8 = 2;

/// Forwards loopback connections to `upstream` until told to blackhole or kill them.
pub struct FaultyProxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    changed: watch::Sender<u8>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mode = Arc::new(AtomicU8::new(PASS));
        let (changed, _) = watch::channel(PASS);
        let accept = {
            let mode = mode.clone();
            let changed = changed.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if mode.load(Ordering::SeqCst) == KILLED {
                        drop(client);
                        continue;
                    }
                    let mode = mode.clone();
                    let watcher = changed.subscribe();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            relay(client, server, mode, watcher).await;
                        }
                    });
                }
            })
        };
        Self {
            addr,
            mode,
            changed,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, bytes are swallowed and sockets stay open: queries hang.
    pub fn blackhole(&self) {
        self.set(BLACKHOLE);
    }

    /// Closes every connection and refuses new ones: the database is gone.
    pub fn kill(&self) {
        self.set(KILLED);
    }

    /// Back to forwarding normally.
    pub fn pass(&self) {
        self.set(PASS);
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        let _ = self.changed.send(mode);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.kill();
        self.accept.abort();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    mode: Arc<AtomicU8>,
    mut changed: watch::Receiver<u8>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = pump(&mut client_read, &mut server_write, &mode);
    let down = pump(&mut server_read, &mut client_write, &mode);
    let killed = async {
        while changed.changed().await.is_ok() {
            if *changed.borrow() == KILLED {
                return;
            }
        }
    };
    // Whichever ends first ends the connection; dropping the halves closes both sockets.
    tokio::select! {
        _ = up => {}
        _ = down => {}
        () = killed => {}
    }
}

async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    mode: &AtomicU8,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match mode.load(Ordering::SeqCst) {
            PASS => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            BLACKHOLE => {}
            _ => return,
        }
    }
}
