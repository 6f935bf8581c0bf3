//! The options of a MongoDB data source, as `dataSources:create` sends them.

use std::fmt;
use std::time::Duration;

use manifold_core::data_source::ConnectTarget;
use manifold_core::error::{Error, Result};
use manifold_core::options::{self, int_option, option_error};
use mongodb::options::{ConnectionString, Credential, HostInfo, ServerAddress};
use serde_json::Value as Json;

/// Connection, pool and query settings for a MongoDB data source.
///
/// The password lives only inside the parsed connection string; `Debug` prints it as
/// `"***"` and no error built from these options contains it (nor the URL, which may
/// carry it).
#[derive(Clone)]
pub struct MongoOptions {
    connection: ConnectionString,
    has_password: bool,
    /// The database whose collections become resources.
    pub database: String,
    /// Most open connections per server (default 10).
    pub max_connections: u32,
    /// How long opening one connection may take (default 5 s).
    pub connect_timeout: Duration,
    /// How long an operation waits for a usable server before a 503 (default 5 s).
    pub server_selection_timeout: Duration,
    /// Sent as `maxTimeMS` with every read and with the matching step of every write;
    /// zero sends none (default 30 s).
    pub statement_timeout: Duration,
    /// How many documents per collection introspection reads to infer fields (default 100).
    pub sample_size: u32,
    /// Whether writes run in multi-document transactions: `None` (the default) asks the
    /// server (replica sets and sharded clusters have them, a standalone mongod does not).
    pub transactions: Option<bool>,
    /// The key of collections created with `autoGenId`: `false` (the default, option
    /// `generatedKeys: "objectId"`) gives `_id` ObjectIds; `true` (`"integer"`) gives an
    /// integer `id` (stored as `_id`) numbered 1, 2, 3, … as the SQL sources number rows.
    pub integer_keys: bool,
}

impl fmt::Debug for MongoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = match &self.connection.host_info {
            HostInfo::HostIdentifiers(hosts) => hosts.iter().map(ToString::to_string).collect(),
            HostInfo::DnsRecord(name) => vec![name.clone()],
            _ => Vec::new(),
        };
        let username = self
            .connection
            .credential
            .as_ref()
            .and_then(|c| c.username.as_deref());
        f.debug_struct("MongoOptions")
            .field("hosts", &hosts)
            .field("database", &self.database)
            .field("username", &username)
            .field(
                "password",
                &if self.has_password { Some("***") } else { None },
            )
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("sample_size", &self.sample_size)
            .field("transactions", &self.transactions)
            .field("integer_keys", &self.integer_keys)
            .finish()
    }
}

/// Option `name` as a string; an empty one counts as absent (forms send `""` for a field
/// left blank).
fn string_option<'a>(options: &'a Json, name: &str) -> Result<Option<&'a str>> {
    Ok(options::string_option(options, name)?.filter(|s| !s.is_empty()))
}

fn bool_option(options: &Json, name: &str) -> Result<Option<bool>> {
    match options.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(Json::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(_) => Err(option_error(name, "true or false")),
    }
}

/// A database name MongoDB accepts: 1 to 63 bytes, none of `/\. "$` and no NUL.
fn check_database(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 63
        || name
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '.' | ' ' | '"' | '$' | '\0'));
    if bad {
        return Err(option_error(
            "database",
            "a database name of 1 to 63 characters without / \\ . space \" or $",
        ));
    }
    Ok(())
}

impl MongoOptions {
    /// Reads `{"url": "mongodb://…", "database": "…"}` (the database may instead be the
    /// URL's path; a separate `password` keeps the secret out of the URL) or
    /// `{host, port (27017), database, username?, password?, authSource? ("admin")}`, plus
    /// `maxConnections` (10), `connectTimeoutMs` and `serverSelectionTimeoutMs` (5000),
    /// `statementTimeoutMs` (30000), `sampleSize` (100), `transactions` (auto) and
    /// `generatedKeys` (`"objectId"`, or `"integer"`).
    ///
    /// A bad option is a 400 naming it; unknown keys are ignored.
    pub fn from_json(options: &Json) -> Result<Self> {
        if !options.is_object() {
            return Err(Error::bad_request(
                "options: expected an object with url and database, or host and database",
            ));
        }
        let mut connection = match string_option(options, "url")? {
            Some(url) => {
                if url.starts_with("mongodb+srv://") {
                    // This build has no SRV resolver (the driver's `dns-resolver` feature
                    // is off), and the hosts an SRV record names could not be checked
                    // against the host rules before the driver used them anyway.
                    return Err(option_error(
                        "url",
                        "a mongodb:// URL listing its hosts; mongodb+srv:// is not supported",
                    ));
                }
                if !url.starts_with("mongodb://") {
                    return Err(option_error("url", "a mongodb:// URL"));
                }
                // The driver's message is not echoed: it may quote the URL, password included.
                ConnectionString::parse(url)
                    .map_err(|_| option_error("url", "a valid mongodb:// URL"))?
            }
            None => {
                let host = string_option(options, "host")?.ok_or_else(|| {
                    Error::bad_request("options.host is required for mongodb (or give options.url)")
                })?;
                let port = int_option(options, "port", 1, 65_535)?.unwrap_or(27_017) as u16;
                let mut connection = ConnectionString::default();
                connection.host_info = HostInfo::HostIdentifiers(vec![ServerAddress::Tcp {
                    host: host.to_owned(),
                    port: Some(port),
                }]);
                if let Some(username) = string_option(options, "username")? {
                    let source = string_option(options, "authSource")?.unwrap_or("admin");
                    connection.credential = Some(
                        Credential::builder()
                            .username(username.to_owned())
                            .source(source.to_owned())
                            .build(),
                    );
                }
                connection
            }
        };
        if let Some(password) = string_option(options, "password")? {
            let credential = connection.credential.as_mut().ok_or_else(|| {
                Error::bad_request(
                    "options.password needs a user name (options.username or in the URL)",
                )
            })?;
            credential.password = Some(password.to_owned());
        }
        let has_password = connection
            .credential
            .as_ref()
            .is_some_and(|c| c.password.is_some());
        let database = match string_option(options, "database")? {
            Some(name) => name.to_owned(),
            None => connection.default_database.clone().ok_or_else(|| {
                Error::bad_request(
                    "options.database is required for mongodb (or name it in the URL path)",
                )
            })?,
        };
        check_database(&database)?;
        let ms = |name: &str, min: u64, default: u64| -> Result<Duration> {
            Ok(Duration::from_millis(
                int_option(options, name, min, 86_400_000)?.unwrap_or(default),
            ))
        };
        Ok(Self {
            has_password,
            database,
            max_connections: int_option(options, "maxConnections", 1, 1000)?.unwrap_or(10) as u32,
            connect_timeout: ms("connectTimeoutMs", 1, 5_000)?,
            server_selection_timeout: ms("serverSelectionTimeoutMs", 1, 5_000)?,
            statement_timeout: ms("statementTimeoutMs", 0, 30_000)?,
            sample_size: int_option(options, "sampleSize", 1, 100_000)?.unwrap_or(100) as u32,
            transactions: bool_option(options, "transactions")?,
            integer_keys: match string_option(options, "generatedKeys")? {
                None | Some("objectId") => false,
                Some("integer") => true,
                Some(_) => {
                    return Err(option_error("generatedKeys", "\"objectId\" or \"integer\""));
                }
            },
            connection,
        })
    }

    /// The parsed connection string (credentials included), for the driver.
    /// The span attributes of this deployment: the database and the first host (never
    /// the connection string, which may carry a password).
    pub(crate) fn db_target(&self) -> manifold_core::telemetry::DbAttributes {
        let mut target =
            manifold_core::telemetry::DbAttributes::new("mongodb").namespace(&self.database);
        match &self.connection.host_info {
            HostInfo::HostIdentifiers(hosts) => match hosts.first() {
                Some(ServerAddress::Tcp { host, port }) => {
                    target.server(host, port.unwrap_or(27017))
                }
                _ => target,
            },
            HostInfo::DnsRecord(name) => {
                target.server_address = Some(name.clone());
                target
            }
            _ => target,
        }
    }

    /// Every seed host the driver starts from: the seed list of the URL, or the one
    /// `host`. (Hosts a server names later, in a replica set's configuration, are the
    /// server's to choose and are not among them.)
    pub fn targets(&self) -> Result<Vec<ConnectTarget>> {
        let HostInfo::HostIdentifiers(hosts) = &self.connection.host_info else {
            return Err(option_error(
                "url",
                "a mongodb:// URL listing its hosts; mongodb+srv:// is not supported",
            ));
        };
        hosts
            .iter()
            .map(|address| match address {
                ServerAddress::Tcp { host, port } => Ok(ConnectTarget::Tcp {
                    host: host.clone(),
                    port: port.unwrap_or(27017),
                }),
                #[cfg(unix)]
                ServerAddress::Unix { path } => Ok(ConnectTarget::UnixSocket(path.clone())),
                _ => Err(option_error("url", "hosts as host:port")),
            })
            .collect()
    }

    pub(crate) fn connection(&self) -> &ConnectionString {
        &self.connection
    }

    /// Whether a password was given (in the URL or separately).
    pub fn has_password(&self) -> bool {
        self.has_password
    }

    /// `maxTimeMS` for an operation, or `None` when the statement timeout is off.
    pub(crate) fn max_time(&self) -> Option<Duration> {
        (!self.statement_timeout.is_zero()).then_some(self.statement_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debug_masks_the_password() {
        for options in [
            json!({"host": "db", "database": "app", "username": "ro", "password": "s3cr3t-pw"}),
            json!({"url": "mongodb://ro:s3cr3t-pw@db:27018/app"}),
            json!({"url": "mongodb://ro@db/app", "password": "s3cr3t-pw"}),
        ] {
            let parsed = MongoOptions::from_json(&options).expect("valid options");
            let shown = format!("{parsed:?}");
            assert!(!shown.contains("s3cr3t-pw"), "{shown}");
            assert!(shown.contains("password: Some(\"***\")"), "{shown}");
            assert!(shown.contains("database: \"app\""), "{shown}");
        }
        let parsed =
            MongoOptions::from_json(&json!({"url": "mongodb://db:27018/app"})).expect("valid url");
        let shown = format!("{parsed:?}");
        assert!(shown.contains("password: None"), "{shown}");
        assert!(shown.contains("db:27018"), "{shown}");
    }

    #[test]
    fn bad_options_name_the_option_and_never_echo_the_url() {
        let err = |v: Json| {
            MongoOptions::from_json(&v)
                .expect_err("invalid options")
                .message()
                .to_owned()
        };
        assert!(err(json!({"host": "h"})).contains("options.database"));
        assert!(err(json!({"database": "d"})).contains("options.host"));
        assert!(err(json!({"host": "h", "database": "d", "port": 0})).contains("options.port"));
        assert!(err(json!({"url": "postgres://h/d"})).contains("options.url"));
        let bad = err(json!({"url": "mongodb://u:s3cr3t@h:notaport/d"}));
        assert!(
            bad.contains("options.url") && !bad.contains("s3cr3t"),
            "{bad}"
        );
        assert!(err(json!({"url": "mongodb://h", "database": "a.b"})).contains("options.database"));
        assert!(
            err(json!({"url": "mongodb://h/d", "maxConnections": 0}))
                .contains("options.maxConnections")
        );
        assert!(
            err(json!({"url": "mongodb://h/d", "transactions": "maybe"}))
                .contains("options.transactions")
        );
        assert!(err(json!({"url": "mongodb://h/d", "password": "p"})).contains("user name"));
        assert!(
            err(json!({"url": "mongodb://h/d", "generatedKeys": "uuid"}))
                .contains("options.generatedKeys")
        );
        assert!(err(json!([1])).starts_with("options:"));
    }

    #[test]
    fn every_seed_host_is_a_target_and_srv_is_refused() {
        let targets = |v: Json| MongoOptions::from_json(&v).and_then(|o| o.targets());
        let tcp = |host: &str, port| ConnectTarget::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(
            targets(json!({"url": "mongodb://u:p@a:27018,169.254.169.254,[::1]:1/d"})),
            Ok(vec![
                tcp("a", 27018),
                tcp("169.254.169.254", 27017),
                tcp("::1", 1)
            ])
        );
        assert_eq!(
            targets(json!({"url": "mongodb://%2Ftmp%2Fmongodb-27017.sock/d"})),
            Ok(vec![ConnectTarget::UnixSocket(
                "/tmp/mongodb-27017.sock".into()
            )])
        );
        assert_eq!(
            targets(json!({"host": "db", "port": 1, "database": "d"})),
            Ok(vec![tcp("db", 1)])
        );
        let err = targets(json!({"url": "mongodb+srv://cluster.example/d"})).expect_err("srv");
        assert!(err.message().contains("mongodb+srv"), "{}", err.message());
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let o = MongoOptions::from_json(&json!({"url": "mongodb://h", "database": "d"}))
            .expect("valid");
        assert_eq!(o.database, "d");
        assert_eq!(o.max_connections, 10);
        assert_eq!(o.connect_timeout, Duration::from_millis(5_000));
        assert_eq!(o.server_selection_timeout, Duration::from_millis(5_000));
        assert_eq!(o.statement_timeout, Duration::from_millis(30_000));
        assert_eq!(o.max_time(), Some(Duration::from_millis(30_000)));
        assert_eq!(o.sample_size, 100);
        assert_eq!(o.transactions, None);
        assert!(!o.integer_keys);
        let o = MongoOptions::from_json(&json!({
            "host": "h", "database": "d", "statementTimeoutMs": "0", "transactions": false
        }))
        .expect("valid");
        assert_eq!(o.max_time(), None);
        assert_eq!(o.transactions, Some(false));
        assert!(format!("{o:?}").contains("h:27017"));
    }
}
