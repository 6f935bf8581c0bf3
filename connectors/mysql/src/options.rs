//! Connection and pool options of a MySQL/MariaDB data source, read from the JSON a client
//! sends to `dataSources:create`.
//!
//! The password lives only inside the sqlx connect options: it is never formatted by
//! [`fmt::Debug`], never part of an error message and never logged.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use manifold_core::data_source::ConnectTarget;
use manifold_core::error::{Error, Result};
use manifold_core::options::{int_option, option_error, string_option};
use serde_json::Value as Json;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

/// Pool settings of a MySQL/MariaDB data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MySqlPoolSettings {
    /// Most open connections (`maxConnections`, default 10).
    pub max_connections: u32,
    /// How long a request waits for a free connection before a 503 (`acquireTimeoutMs`,
    /// default 5 s); also bounds how long opening the pool keeps retrying.
    pub acquire_timeout: Duration,
    /// Longest a statement may run before the server aborts it (`statementTimeoutMs`,
    /// default 30 s); zero means no limit.
    pub statement_timeout: Duration,
    /// How long an idle connection is kept (`idleTimeoutMs`, default 10 min); zero keeps
    /// idle connections forever.
    pub idle_timeout: Duration,
}

impl Default for MySqlPoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_millis(5_000),
            statement_timeout: Duration::from_millis(30_000),
            idle_timeout: Duration::from_millis(600_000),
        }
    }
}

/// Everything needed to open a MySQL/MariaDB pool: where, as whom, and the pool settings.
#[derive(Clone)]
pub struct MySqlOptions {
    connect: MySqlConnectOptions,
    has_password: bool,
    /// Pool settings.
    pub pool: MySqlPoolSettings,
}

impl fmt::Debug for MySqlOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // sqlx's own Debug for the connect options prints the password, so it is never used.
        f.debug_struct("MySqlOptions")
            .field("host", &self.connect.get_host())
            .field("port", &self.connect.get_port())
            .field("database", &self.connect.get_database())
            .field("username", &self.connect.get_username())
            .field("password", &if self.has_password { "***" } else { "" })
            .field("ssl", &self.connect.get_ssl_mode())
            .field("pool", &self.pool)
            .finish()
    }
}

fn ssl_mode(options: &Json) -> Result<Option<MySqlSslMode>> {
    let expected =
        "true, false or one of disabled, preferred, required, verify_ca, verify_identity";
    match options.get("ssl") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(true)) => Ok(Some(MySqlSslMode::Required)),
        Some(Json::Bool(false)) => Ok(Some(MySqlSslMode::Disabled)),
        Some(Json::String(s)) => MySqlSslMode::from_str(s)
            .map(Some)
            .map_err(|_| option_error("ssl", expected)),
        Some(_) => Err(option_error("ssl", expected)),
    }
}

/// Whether a `mysql://user:pass@host/db` URL carries a password, read without decoding it.
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

impl MySqlOptions {
    /// Reads `{"url": "mysql://user:pass@host:port/db"}` or `{host, port?, database,
    /// username, password?, ssl?}`, plus the pool options `maxConnections`,
    /// `acquireTimeoutMs`, `statementTimeoutMs` and `idleTimeoutMs`; a bad option is a 400
    /// that names it.
    pub fn from_json(options: &Json) -> Result<Self> {
        if !options.is_object() {
            return Err(Error::bad_request("options: expected an object"));
        }
        let (connect, has_password) = match string_option(options, "url")? {
            Some(url) => Self::from_url(url)?,
            None => Self::from_parts(options)?,
        };
        let mut connect = connect;
        if let Some(mode) = ssl_mode(options)? {
            connect = connect.ssl_mode(mode);
        }
        let defaults = MySqlPoolSettings::default();
        let ms = |key: &str, min: u64, default: Duration| -> Result<Duration> {
            Ok(int_option(options, key, min, 86_400_000)?
                .map(Duration::from_millis)
                .unwrap_or(default))
        };
        let pool = MySqlPoolSettings {
            max_connections: int_option(options, "maxConnections", 1, 1_000)?
                .map_or(defaults.max_connections, |n| n as u32),
            acquire_timeout: ms("acquireTimeoutMs", 1, defaults.acquire_timeout)?,
            statement_timeout: ms("statementTimeoutMs", 0, defaults.statement_timeout)?,
            idle_timeout: ms("idleTimeoutMs", 0, defaults.idle_timeout)?,
        };
        Ok(Self {
            connect,
            has_password,
            pool,
        })
    }

    fn from_url(url: &str) -> Result<(MySqlConnectOptions, bool)> {
        let normalized = match url.split_once("://") {
            Some(("mysql", rest)) | Some(("mariadb", rest)) => format!("mysql://{rest}"),
            _ => {
                return Err(Error::bad_request(
                    "options.url: expected a mysql:// or mariadb:// URL",
                ));
            }
        };
        // sqlx's parse errors name the faulty part, never the password.
        let connect = MySqlConnectOptions::from_str(&normalized)
            .map_err(|e| Error::bad_request(format!("options.url: invalid MySQL URL: {e}")))?;
        if connect.get_database().is_none_or(str::is_empty) {
            return Err(Error::bad_request(
                "options.url: the URL must name a database (mysql://host:3306/<database>)",
            ));
        }
        Ok((connect, url_has_password(url)))
    }

    fn from_parts(options: &Json) -> Result<(MySqlConnectOptions, bool)> {
        let required = |key: &str| -> Result<&str> {
            string_option(options, key)?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    Error::bad_request(format!(
                        "options.{key} is required (or give options.url = mysql://user:password@host:3306/database)"
                    ))
                })
        };
        let host = required("host")?;
        let database = required("database")?;
        let username = required("username")?;
        let port = int_option(options, "port", 1, 65_535)?.unwrap_or(3306) as u16;
        let mut connect = MySqlConnectOptions::new()
            .host(host)
            .port(port)
            .database(database)
            .username(username);
        let password = string_option(options, "password")?.filter(|p| !p.is_empty());
        if let Some(password) = password {
            connect = connect.password(password);
        }
        Ok((connect, password.is_some()))
    }

    /// The sqlx connect options (they hold the password; never format them).
    pub(crate) fn connect_options(&self) -> &MySqlConnectOptions {
        &self.connect
    }

    /// The database every collection of this source lives in.
    pub fn database(&self) -> &str {
        self.connect.get_database().unwrap_or("")
    }

    /// Where sqlx will connect: the Unix socket when one is set (it then ignores the host),
    /// else the host and port over TCP.
    pub fn target(&self) -> ConnectTarget {
        match self.connect.get_socket() {
            Some(path) => ConnectTarget::UnixSocket(path.clone()),
            None => ConnectTarget::Tcp {
                host: self.connect.get_host().to_owned(),
                port: self.connect.get_port(),
            },
        }
    }

    /// The host connected to.
    pub fn host(&self) -> &str {
        self.connect.get_host()
    }

    /// The port connected to.
    pub fn port(&self) -> u16 {
        self.connect.get_port()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use manifold_core::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn parts_and_pool_options_are_read_with_defaults() {
        let o = MySqlOptions::from_json(&json!({
            "host": "db", "database": "erp", "username": "ro", "password": "pw",
            "maxConnections": 3, "statementTimeoutMs": "250"
        }))
        .expect("valid options");
        assert_eq!((o.host(), o.port(), o.database()), ("db", 3306, "erp"));
        assert_eq!(o.pool.max_connections, 3);
        assert_eq!(o.pool.statement_timeout, Duration::from_millis(250));
        assert_eq!(o.pool.acquire_timeout, Duration::from_millis(5_000));
        assert_eq!(o.pool.idle_timeout, Duration::from_millis(600_000));
    }

    #[test]
    fn urls_need_a_mysql_scheme_and_a_database() {
        let o = MySqlOptions::from_json(&json!({"url": "mariadb://u:p%40ss@h:3307/d"}))
            .expect("valid url");
        assert_eq!((o.host(), o.port(), o.database()), ("h", 3307, "d"));
        for bad in [
            json!({"url": "postgres://h/d"}),
            json!({"url": "mysql://h:3306"}),
        ] {
            let err = MySqlOptions::from_json(&bad).expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::BadRequest);
            assert!(
                err.message().starts_with("options.url"),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn a_socket_replaces_the_host() {
        let o = MySqlOptions::from_json(
            &json!({"url": "mysql://u@127.0.0.1:3306/d?socket=/run/mysqld/mysqld.sock"}),
        )
        .expect("valid");
        assert_eq!(
            o.target(),
            ConnectTarget::UnixSocket("/run/mysqld/mysqld.sock".into())
        );
        let o =
            MySqlOptions::from_json(&json!({"url": "mariadb://u@[::1]:3307/d"})).expect("valid");
        assert_eq!(
            o.target(),
            ConnectTarget::Tcp {
                host: "[::1]".into(),
                port: 3307
            }
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        for (input, option) in [
            (json!({"host": "h", "database": "d"}), "options.username"),
            (
                json!({"host": "h", "database": "d", "username": "u", "port": 0}),
                "options.port",
            ),
            (
                json!({"url": "mysql://h/d", "maxConnections": "many"}),
                "options.maxConnections",
            ),
            (
                json!({"url": "mysql://h/d", "ssl": "sometimes"}),
                "options.ssl",
            ),
            (
                json!({"url": "mysql://h/d", "acquireTimeoutMs": 0}),
                "options.acquireTimeoutMs",
            ),
        ] {
            let err = MySqlOptions::from_json(&input).expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::BadRequest);
            assert!(err.message().contains(option), "{}", err.message());
        }
    }

    #[test]
    fn debug_masks_the_password_from_parts_and_urls() {
        let parts = MySqlOptions::from_json(&json!({
            "host": "h", "database": "d", "username": "u", "password": "s3cr3t-parts"
        }))
        .expect("valid");
        let url =
            MySqlOptions::from_json(&json!({"url": "mysql://u:s3cr3t-url@h/d"})).expect("valid");
        for (o, secret) in [(parts, "s3cr3t-parts"), (url, "s3cr3t-url")] {
            let shown = format!("{o:?}");
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("password: \"***\""), "{shown}");
        }
    }
}
