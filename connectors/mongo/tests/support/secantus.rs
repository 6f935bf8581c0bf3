//! One SecantusDB (MongoDB-compatible) server per test, killed by its process id on drop;
//! a server that cannot start fails the test. Included by the MongoDB connector's tests
//! and by the end-to-end MongoDB tests, so both start it the same way.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One SecantusDB process, killed by its process id on drop.
pub struct Secantus {
    child: Child,
    pub port: u16,
}

/// `MANIFOLD_SECANTUSD`, else `.venv-mongo/bin/secantusd-py` in the nearest directory above
/// the crate that has one (the workspace root; scripts/test.sh creates it).
pub fn secantusd_path() -> String {
    std::env::var("MANIFOLD_SECANTUSD").unwrap_or_else(|_| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join(".venv-mongo/bin/secantusd-py"))
            .find(|path| path.exists())
            .map_or_else(
                || ".venv-mongo/bin/secantusd-py".to_owned(),
                |path| path.display().to_string(),
            )
    })
}

impl Secantus {
    /// An in-memory server with test commands (failpoints) enabled.
    pub fn start() -> Self {
        Self::start_with(&["--storage-path", ":memory:", "--enable-test-commands"])
    }

    pub fn start_with(args: &[&str]) -> Self {
        let path = secantusd_path();
        let mut child = Command::new(&path)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "SecantusDB could not be started from {path}: {e}. Install it with \
                     `python3 -m venv .venv-mongo && .venv-mongo/bin/pip install 'SecantusDB==0.7.0b3'` \
                     in the workspace root (scripts/test.sh does), or set MANIFOLD_SECANTUSD."
                )
            });
        let Some(stderr) = child.stderr.take() else {
            panic!("SecantusDB's stderr was not captured");
        };
        let (tx, rx) = std::sync::mpsc::channel::<Result<u16, String>>();
        // The log is read to its end, or the server would block once the pipe is full.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(sender) = &tx {
                    let port = line
                        .split_once("secantus listening on 127.0.0.1:")
                        .and_then(|(_, p)| p.trim().parse::<u16>().ok());
                    match port {
                        Some(port) => {
                            let _ = sender.send(Ok(port));
                            tx = None;
                        }
                        None => seen.push(line),
                    }
                }
            }
            if let Some(sender) = tx {
                let _ = sender.send(Err(seen.join("\n")));
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(port)) => Self { child, port },
            Ok(Err(log)) => {
                let _ = child.kill();
                panic!("SecantusDB ({path}) exited before it listened:\n{log}")
            }
            Err(_) => {
                let _ = child.kill();
                panic!("SecantusDB ({path}) did not report its port within 60 s")
            }
        }
    }

    /// Stops the server cleanly (SIGTERM to its process id), so an on-disk store keeps
    /// what was written; falls back to the kill of `Drop` after 30 s.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }
}

impl Drop for Secantus {
    fn drop(&mut self) {
        // `Child::kill` signals exactly this process id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
