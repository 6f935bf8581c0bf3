//! The Redis backend: one multiplexed connection (`ConnectionManager`, which reconnects by
//! itself), `SET … PX` for TTLs, and `SCAN` + `UNLINK` to clear a namespace.
//!
//! Every command runs under the operation timeout; a failure is logged with the URL
//! redacted and returned as a [`CacheError`] without the URL, as its message may reach
//! a client.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Cmd, FromRedisValue, RedisError};

use super::{CONNECT_TIMEOUT, CacheError, encode_namespace, redact_url};

/// How many keys one `SCAN` round trip of a clear asks for.
const SCAN_COUNT: usize = 1000;

pub(super) struct RedisStore {
    connection: ConnectionManager,
    /// `<prefix>:`, the start of every key.
    prefix: String,
    timeout: Duration,
    /// The URL with its password replaced by `***`.
    described: String,
    /// The password as written in the URL and as sent, to scrub from any message.
    secrets: Vec<String>,
}

impl RedisStore {
    /// Connects to `url` and checks the server answers `PING`, within
    /// [`CONNECT_TIMEOUT`].
    pub(super) async fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, CacheError> {
        let described = redact_url(url);
        let secrets = secrets_of(url);
        let connect_error = |message: String| CacheError::Connect {
            url: described.clone(),
            message: scrub(message, &secrets),
        };
        let client = ::redis::Client::open(url).map_err(|e| CacheError::Config {
            option: "--cache-url",
            message: scrub(format!("{described}: {e}"), &secrets),
        })?;
        // Few retries, and short: a reconnect that takes longer than an operation's
        // timeout only keeps the callers waiting for a 503.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(timeout);
        let connection = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => return Err(connect_error(e.to_string())),
            Err(_) => {
                return Err(connect_error(format!(
                    "no connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
        let store = Self {
            connection,
            prefix: format!("{prefix}:"),
            timeout,
            described: described.clone(),
            secrets: secrets.clone(),
        };
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            ::redis::cmd("PING").query_async::<String>(&mut store.connection.clone()),
        )
        .await
        {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(connect_error(e.to_string())),
            Err(_) => Err(connect_error(format!(
                "no answer to PING within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    pub(super) fn describe(&self) -> &str {
        &self.described
    }

    /// `<prefix>:<namespace>:<key>`.
    fn key(&self, namespace: &str, key: &str) -> String {
        format!("{}{}:{key}", self.prefix, encode_namespace(namespace))
    }

    /// Runs `command` under the operation timeout.
    async fn run<T: FromRedisValue>(
        &self,
        operation: &'static str,
        command: &Cmd,
    ) -> Result<T, CacheError> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.timeout, command.query_async(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.failed(operation, &e)),
            Err(_) => {
                tracing::warn!(
                    cache = %self.described,
                    operation,
                    timeout_ms = self.timeout.as_millis(),
                    "the cache did not answer in time"
                );
                Err(CacheError::Timeout {
                    operation,
                    after: self.timeout,
                })
            }
        }
    }

    fn failed(&self, operation: &'static str, error: &RedisError) -> CacheError {
        let message = scrub(error.to_string(), &self.secrets);
        tracing::warn!(cache = %self.described, operation, error = %message, "cache operation failed");
        CacheError::Backend { operation, message }
    }

    pub(super) async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        let mut command = ::redis::cmd("GET");
        command.arg(self.key(namespace, key));
        self.run("get", &command).await
    }

    pub(super) async fn set(
        &self,
        namespace: &str,
        key: &str,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut command = ::redis::cmd("SET");
        command
            .arg(self.key(namespace, key))
            .arg(bytes)
            .arg("PX")
            .arg(millis);
        self.run("set", &command).await
    }

    /// `INCR` and `PEXPIRE` in one `MULTI`/`EXEC`: the count and its new lifetime land
    /// together, and concurrent increments from every replica all count.
    pub(super) async fn increment(
        &self,
        namespace: &str,
        key: &str,
        ttl: Duration,
    ) -> Result<u64, CacheError> {
        let key = self.key(namespace, key);
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis)
            .ignore();
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.timeout, pipe.query_async::<(u64,)>(&mut connection)).await
        {
            Ok(Ok((count,))) => Ok(count),
            Ok(Err(e)) => Err(self.failed("increment", &e)),
            Err(_) => Err(CacheError::Timeout {
                operation: "increment",
                after: self.timeout,
            }),
        }
    }

    /// `PTTL`: how long `key` has left, if it is there with a lifetime.
    pub(super) async fn time_to_live(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Duration>, CacheError> {
        let mut command = ::redis::cmd("PTTL");
        command.arg(self.key(namespace, key));
        let millis: i64 = self.run("time_to_live", &command).await?;
        // -2: no such key; -1: no lifetime, which this cache never sets.
        Ok(u64::try_from(millis).ok().map(Duration::from_millis))
    }

    pub(super) async fn delete(&self, namespace: &str, key: &str) -> Result<(), CacheError> {
        let mut command = ::redis::cmd("DEL");
        command.arg(self.key(namespace, key));
        self.run::<u64>("delete", &command).await.map(|_| ())
    }

    /// `SCAN` for the namespace's keys and `UNLINK` each batch (freed by the server in the
    /// background), until the cursor comes back to 0.
    pub(super) async fn clear(&self, namespace: &str) -> Result<(), CacheError> {
        let pattern = format!("{}*", glob_escape(&self.key(namespace, "")));
        let mut cursor: u64 = 0;
        loop {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.run("clear", &scan).await?;
            if !keys.is_empty() {
                let mut unlink = ::redis::cmd("UNLINK");
                unlink.arg(keys);
                self.run::<u64>("clear", &unlink).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// `text` with the glob characters of `SCAN … MATCH` escaped, so a prefix or namespace
/// holding `*`, `?`, `[` or `\` matches only itself.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The password of `url` as written and percent-decoded (what is sent with `AUTH`).
fn secrets_of(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let Some((userinfo, _)) = rest.rsplit_once('@') else {
        return Vec::new();
    };
    let Some((_, password)) = userinfo.split_once(':') else {
        return Vec::new();
    };
    let decoded = percent_encoding::percent_decode_str(password)
        .decode_utf8_lossy()
        .into_owned();
    [password.to_owned(), decoded]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
}

/// `message` with every secret replaced by `***`: a driver's message should hold no
/// password, and this makes sure.
fn scrub(mut message: String, secrets: &[String]) -> String {
    for secret in secrets {
        if message.contains(secret.as_str()) {
            message = message.replace(secret.as_str(), "***");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_match_only_themselves() {
        assert_eq!(glob_escape(r"a*b?c[d]e\f:"), r"a\*b\?c\[d\]e\\f:");
    }

    #[test]
    fn both_spellings_of_a_password_are_scrubbed() {
        let secrets = secrets_of("redis://user:p%40ss@127.0.0.1:6379");
        assert_eq!(secrets, ["p%40ss", "p@ss"]);
        assert_eq!(
            scrub("AUTH p@ss failed; url had p%40ss".to_owned(), &secrets),
            "AUTH *** failed; url had ***"
        );
        assert!(secrets_of("redis://127.0.0.1").is_empty());
        assert!(secrets_of("redis://user@127.0.0.1").is_empty());
    }
}
