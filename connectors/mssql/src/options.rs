//! Connection and pool settings for a SQL Server data source, read from the JSON options
//! of `dataSources:create`.

use std::fmt;
use std::time::Duration;

use manifold_core::data_source::ConnectTarget;
use manifold_core::error::{Error, Result};
use manifold_core::options::{int_option, option_error, required_string, string_option};
use serde_json::Value as Json;
use tiberius::{AuthMethod, Config, EncryptionLevel};

/// Whether this build can speak TLS to the server (the crate's `tls` feature).
pub const TLS_AVAILABLE: bool = cfg!(feature = "tls");

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encrypt {
    /// Everything in clear, the login included (`"notSupported"`, ADO `DANGER_PLAINTEXT`).
    NotSupported,
    /// Only the login is encrypted (`false`); needs the `tls` feature.
    Off,
    /// Everything is encrypted (`true`, `"required"`); needs the `tls` feature.
    Required,
}

impl Encrypt {
    fn level(self) -> EncryptionLevel {
        match self {
            Encrypt::NotSupported => EncryptionLevel::NotSupported,
            Encrypt::Off => EncryptionLevel::Off,
            Encrypt::Required => EncryptionLevel::Required,
        }
    }
}

/// Connection and pool settings for a SQL Server data source.
///
/// The password lives only inside the driver configuration; `Debug` prints it as `"***"`
/// and no error message built from these options contains it (nor the `url`, which may
/// carry it).
#[derive(Clone)]
pub struct MssqlOptions {
    config: Config,
    address: String,
    database: Option<String>,
    username: Option<String>,
    has_password: bool,
    /// How the connection is encrypted.
    pub encrypt: Encrypt,
    /// Accept any server certificate (self-signed development servers).
    pub trust_server_certificate: bool,
    /// The schema whose tables and views become collections (default `dbo`).
    pub schema: String,
    /// Most open connections (default 10).
    pub max_connections: u32,
    /// How long a request waits for a free connection, or for a new one to log in,
    /// before a 503 (default 5 s).
    pub acquire_timeout: Duration,
    /// How long one statement may run before the request fails with a 504 and its
    /// connection is closed; zero turns it off (default 30 s).
    pub statement_timeout: Duration,
    /// How long an unused connection stays in the pool (default 10 min).
    pub idle_timeout: Duration,
}

impl fmt::Debug for MssqlOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MssqlOptions")
            .field("address", &self.address)
            .field("database", &self.database)
            .field("username", &self.username)
            .field(
                "password",
                &if self.has_password { Some("***") } else { None },
            )
            .field("encrypt", &self.encrypt)
            .field("trust_server_certificate", &self.trust_server_certificate)
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

fn bool_option(options: &Json, name: &str) -> Result<Option<bool>> {
    match options.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(Json::String(s)) => parse_bool(s)
            .map(Some)
            .ok_or_else(|| option_error(name, "true or false")),
        Some(_) => Err(option_error(name, "true or false")),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

/// The `encrypt` option: `true`/`"required"`, `false`/`"off"`, or `"notSupported"`
/// (also spelled `"DANGER_PLAINTEXT"`, as in ADO strings).
fn encrypt_option(options: &Json) -> Result<Option<Encrypt>> {
    const EXPECTED: &str = "true, false, \"required\", \"off\" or \"notSupported\"";
    let text = match options.get("encrypt") {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::Bool(true)) => "required".to_owned(),
        Some(Json::Bool(false)) => "off".to_owned(),
        Some(Json::String(s)) => s.trim().to_ascii_lowercase(),
        Some(_) => return Err(option_error("encrypt", EXPECTED)),
    };
    let encrypt = match text.as_str() {
        "required" | "true" | "yes" | "mandatory" => Encrypt::Required,
        "off" | "false" | "no" | "optional" => Encrypt::Off,
        "notsupported" | "not_supported" | "danger_plaintext" | "none" => Encrypt::NotSupported,
        _ => return Err(option_error("encrypt", EXPECTED)),
    };
    Ok(Some(resolve_encrypt(encrypt)?))
}

/// What `encrypt` means in this build. Without TLS, `false` (encrypt the login only)
/// degrades to plaintext, as tiberius does for `encrypt=false` in an ADO string; asking
/// for full encryption is refused rather than silently sent in clear.
fn resolve_encrypt(asked: Encrypt) -> Result<Encrypt> {
    match (asked, TLS_AVAILABLE) {
        (Encrypt::Required, false) => Err(Error::bad_request(
            "options.encrypt: this build of Manifold has no TLS support (the manifold-mssql \
             `tls` feature); use encrypt \"notSupported\" on a trusted network",
        )),
        (Encrypt::Off, false) => Ok(Encrypt::NotSupported),
        (other, _) => Ok(other),
    }
}

/// The default when `encrypt` is not given: encrypted where the build can, as current
/// SQL Server drivers do.
fn default_encrypt() -> Encrypt {
    if TLS_AVAILABLE {
        Encrypt::Required
    } else {
        Encrypt::NotSupported
    }
}

/// The `key=value` pairs of an ADO.NET connection string, keys lower-cased, values
/// unquoted (`'…'`, `"…"` with doubled quotes, or `{…}`), as tiberius reads them.
///
/// Used to show and check the settings without echoing the string, which may carry the
/// password; `None` when the string is malformed.
pub fn ado_pairs(s: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', ';']);
        if rest.is_empty() {
            return Some(pairs);
        }
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = match after.chars().next() {
            Some(quote @ ('\'' | '"')) => {
                let mut value = String::new();
                let mut chars = after[1..].char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    if c == quote {
                        if after[1 + i + 1..].starts_with(quote) {
                            value.push(quote);
                            chars.next();
                        } else {
                            end = Some(1 + i + 1);
                            break;
                        }
                    } else {
                        value.push(c);
                    }
                }
                (value, &after[end?..])
            }
            Some('{') => {
                let close = after.find('}')?;
                (after[1..close].to_owned(), &after[close + 1..])
            }
            _ => {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim_end().to_owned(), &after[end..])
            }
        };
        let remainder = remainder.trim_start();
        if !(remainder.is_empty() || remainder.starts_with(';')) {
            return None;
        }
        pairs.push((key, value));
        rest = remainder;
    }
}

fn ado_value<'a>(pairs: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| keys.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

/// `tcp:host,port` or `host\instance` as the address shown in `Debug`.
fn ado_address(server: &str) -> String {
    let server = server.trim();
    let server = server.strip_prefix("tcp:").unwrap_or(server);
    match server.split_once(',') {
        Some((host, port)) => format!("{}:{}", host.trim(), port.trim()),
        None if server.contains('\\') => server.to_owned(),
        None => format!("{server}:1433"),
    }
}

const USER_KEYS: &[&str] = &["uid", "username", "user", "user id"];

impl MssqlOptions {
    /// Reads `{"url": "server=tcp:HOST,1433;user=…;password=…;…"}` (an ADO.NET connection
    /// string, optionally with a separate `password`) or `{host, port, database,
    /// username, password, encrypt, trustServerCertificate}`, plus `schema`,
    /// `maxConnections`, `acquireTimeoutMs`, `statementTimeoutMs` and `idleTimeoutMs`.
    ///
    /// A bad option is a 400 naming it; unknown keys are ignored.
    pub fn from_json(options: &Json) -> Result<Self> {
        if !options.is_object() {
            return Err(Error::bad_request(
                "options: expected an object with url, or host, database and username",
            ));
        }
        let trust = bool_option(options, "trustServerCertificate")?;
        let separate_password = string_option(options, "password")?.filter(|p| !p.is_empty());
        let (mut config, address, database, username, mut has_password, encrypt) =
            match string_option(options, "url")? {
                Some(url) => {
                    // Never echoed: the string may carry the password.
                    let pairs = ado_pairs(url).ok_or_else(|| {
                        option_error(
                            "url",
                            "an ADO.NET connection string (server=tcp:HOST,PORT;user=…;password=…); \
                             quote values that contain ; with '…'",
                        )
                    })?;
                    let server = ado_value(&pairs, &["server", "data source"])
                        .ok_or_else(|| option_error("url", "a connection string with server=…"))?;
                    let asked = match ado_value(&pairs, &["encrypt"]) {
                        None => None,
                        Some(v) if v.eq_ignore_ascii_case("DANGER_PLAINTEXT") => {
                            Some(Encrypt::NotSupported)
                        }
                        Some(v) => match parse_bool(v) {
                            Some(true) => Some(Encrypt::Required),
                            Some(false) => Some(Encrypt::Off),
                            None => {
                                return Err(option_error(
                                    "url",
                                    "encrypt=true, false or DANGER_PLAINTEXT in the connection string",
                                ));
                            }
                        },
                    };
                    let encrypt = match encrypt_option(options)? {
                        Some(e) => e,
                        None => match asked {
                            Some(e) => resolve_encrypt(e)?,
                            None => default_encrypt(),
                        },
                    };
                    // tiberius refuses encrypt=true without TLS before we could say why;
                    // the encryption is set from `encrypt` below either way.
                    let without_encrypt: String = pairs
                        .iter()
                        .filter(|(k, _)| k != "encrypt")
                        .map(|(k, v)| format!("{k}={}", quote_ado(v)))
                        .collect::<Vec<_>>()
                        .join(";");
                    let config = Config::from_ado_string(&without_encrypt).map_err(|_| {
                        option_error(
                            "url",
                            "a valid ADO.NET connection string (server=tcp:HOST,PORT;user=…;password=…)",
                        )
                    })?;
                    let username = ado_value(&pairs, USER_KEYS).map(str::to_owned);
                    let has_password =
                        ado_value(&pairs, &["password", "pwd"]).is_some_and(|p| !p.is_empty());
                    (
                        config,
                        ado_address(server),
                        ado_value(&pairs, &["database", "initial catalog"]).map(str::to_owned),
                        username,
                        has_password,
                        encrypt,
                    )
                }
                None => {
                    let host = required_string(options, "host", "mssql")?;
                    let port = int_option(options, "port", 1, 65_535)?.unwrap_or(1433) as u16;
                    let database = string_option(options, "database")?
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned);
                    let username = required_string(options, "username", "mssql")?;
                    let encrypt = encrypt_option(options)?.unwrap_or_else(default_encrypt);
                    let mut config = Config::new();
                    config.host(host);
                    config.port(port);
                    if let Some(database) = &database {
                        config.database(database);
                    }
                    config.authentication(AuthMethod::sql_server(
                        username,
                        separate_password.unwrap_or(""),
                    ));
                    (
                        config,
                        format!("{host}:{port}"),
                        database,
                        Some(username.to_owned()),
                        separate_password.is_some(),
                        encrypt,
                    )
                }
            };
        if string_option(options, "url")?.is_some()
            && let Some(password) = separate_password
        {
            // A separate password keeps the secret out of the URL.
            let user = username.clone().ok_or_else(|| {
                option_error(
                    "url",
                    "a connection string with user=… when password is separate",
                )
            })?;
            config.authentication(AuthMethod::sql_server(user, password));
            has_password = true;
        }
        config.encryption(encrypt.level());
        let url_pairs = string_option(options, "url")?
            .and_then(ado_pairs)
            .unwrap_or_default();
        let url_trusts =
            ado_value(&url_pairs, &["trustservercertificate"]).and_then(parse_bool) == Some(true);
        if trust == Some(true) && !url_trusts {
            if ado_value(&url_pairs, &["trustservercertificateca"]).is_some() {
                return Err(option_error(
                    "trustServerCertificate",
                    "not to be combined with TrustServerCertificateCA in the url",
                ));
            }
            config.trust_cert();
        }
        let trust_server_certificate = url_trusts || trust == Some(true);
        config.application_name("manifold");
        let schema = match string_option(options, "schema")? {
            None => "dbo".to_owned(),
            Some(s) if !s.is_empty() && s.chars().count() <= 128 => s.to_owned(),
            Some(_) => {
                return Err(option_error(
                    "schema",
                    "a schema name of 1 to 128 characters",
                ));
            }
        };
        let ms = |name: &str, min: u64, default: u64| -> Result<Duration> {
            Ok(Duration::from_millis(
                int_option(options, name, min, 86_400_000)?.unwrap_or(default),
            ))
        };
        let acquire_timeout = ms("acquireTimeoutMs", 1, 5_000)?;
        // The login is part of acquiring a connection, so it gets the same bound.
        config.handshake_timeout(Some(acquire_timeout));
        // Statements are bounded by our own timer (which also closes the connection);
        // tiberius' per-response timer would only race it.
        config.command_timeout(None);
        Ok(Self {
            config,
            address,
            database,
            username,
            has_password,
            encrypt,
            trust_server_certificate,
            schema,
            max_connections: int_option(options, "maxConnections", 1, 1000)?.unwrap_or(10) as u32,
            acquire_timeout,
            statement_timeout: ms("statementTimeoutMs", 0, 30_000)?,
            idle_timeout: ms("idleTimeoutMs", 1, 600_000)?,
        })
    }

    /// The driver configuration (it holds the password; never log it).
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Where the pool connects: the very `host:port` string it hands to
    /// `TcpStream::connect`, split at its last colon as the standard library splits it
    /// (tiberius' own defaults applied: `.` and `(local)` are `localhost`, a named
    /// instance without a port is 1434).
    pub fn target(&self) -> Result<ConnectTarget> {
        let addr = self.config.get_addr();
        addr.rsplit_once(':')
            .and_then(|(host, port)| {
                Some(ConnectTarget::Tcp {
                    host: host.to_owned(),
                    port: port.parse().ok()?,
                })
            })
            .ok_or_else(|| option_error("url", "a server=host,port the driver can connect to"))
    }

    /// `host:port` of the server.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The database name, if one was given (else the login's default database).
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The login name.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }
}

/// A value quoted for an ADO string when it needs it (tiberius reads it back unquoted).
fn quote_ado(value: &str) -> String {
    if value.contains([';', '\'', '"', '{', '}']) || value.trim() != value {
        format!("'{}'", value.replace('\'', "''"))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debug_masks_the_password_in_both_forms() {
        let options = MssqlOptions::from_json(&json!({
            "host": "db", "database": "erp", "username": "ro", "password": "s3cr3t-pw",
            "encrypt": "notSupported"
        }))
        .expect("valid options");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(shown.contains("password: Some(\"***\")"), "{shown}");
        assert!(shown.contains("address: \"db:1433\""), "{shown}");

        let options = MssqlOptions::from_json(&json!({
            "url": "server=tcp:db,1444;database=erp;user=sa;password='s3cr3t;pw';encrypt=DANGER_PLAINTEXT"
        }))
        .expect("valid url");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("address: \"db:1444\""), "{shown}");
        assert!(shown.contains("username: Some(\"sa\")"), "{shown}");
        assert!(shown.contains("database: Some(\"erp\")"), "{shown}");
        assert_eq!(options.encrypt, Encrypt::NotSupported);
    }

    #[test]
    fn errors_never_echo_the_url() {
        let err = MssqlOptions::from_json(&json!({"url": "password=hunter2-secret;oops"}))
            .expect_err("malformed");
        assert!(!err.message().contains("hunter2"), "{}", err.message());
        assert!(
            err.message().starts_with("options.url"),
            "{}",
            err.message()
        );
        let err = MssqlOptions::from_json(&json!({"url": "user=sa;password=hunter2-secret"}))
            .expect_err("no server");
        assert!(!err.message().contains("hunter2"), "{}", err.message());
    }

    #[test]
    fn bad_options_name_the_option() {
        let err = |v: Json| {
            MssqlOptions::from_json(&v)
                .expect_err("invalid options")
                .message()
                .to_owned()
        };
        assert!(err(json!({"host": "h"})).contains("options.username"));
        assert!(err(json!({"host": "h", "username": "u", "port": 70000})).contains("options.port"));
        assert!(
            err(json!({"host": "h", "username": "u", "maxConnections": 0}))
                .contains("options.maxConnections")
        );
        assert!(
            err(json!({"host": "h", "username": "u", "encrypt": "maybe"}))
                .contains("options.encrypt")
        );
        assert!(
            err(json!({"host": "h", "username": "u", "schema": ""})).contains("options.schema")
        );
        assert!(err(json!("nope")).starts_with("options"));
    }

    #[test]
    fn the_target_is_the_address_the_pool_dials() {
        let target = |v: Json| MssqlOptions::from_json(&v).and_then(|o| o.target());
        let tcp = |host: &str, port| {
            Ok(ConnectTarget::Tcp {
                host: host.into(),
                port,
            })
        };
        assert_eq!(
            target(
                json!({"url": "server=tcp:169.254.169.254,1444;user=sa;encrypt=DANGER_PLAINTEXT"})
            ),
            tcp("169.254.169.254", 1444)
        );
        assert_eq!(
            target(json!({"url": "Data Source=(local);user=sa;encrypt=DANGER_PLAINTEXT"})),
            tcp("localhost", 1433)
        );
        assert_eq!(
            target(json!({"url": "server=db\\SQLEXPRESS;user=sa;encrypt=DANGER_PLAINTEXT"})),
            tcp("db", 1434)
        );
        assert_eq!(
            target(
                json!({"host": "::1", "port": 2000, "username": "u", "encrypt": "notSupported"})
            ),
            tcp("::1", 2000)
        );
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let options =
            MssqlOptions::from_json(&json!({"host": "h", "username": "u"})).expect("valid");
        assert_eq!(options.schema, "dbo");
        assert_eq!(options.max_connections, 10);
        assert_eq!(options.acquire_timeout, Duration::from_millis(5_000));
        assert_eq!(options.statement_timeout, Duration::from_millis(30_000));
        assert_eq!(options.idle_timeout, Duration::from_millis(600_000));
        assert_eq!(options.address(), "h:1433");
        assert_eq!(options.encrypt, default_encrypt());
    }

    #[test]
    fn encryption_without_tls_is_refused_not_downgraded() {
        let asked =
            MssqlOptions::from_json(&json!({"host": "h", "username": "u", "encrypt": true}));
        let from_url =
            MssqlOptions::from_json(&json!({"url": "server=tcp:h,1433;user=u;encrypt=true"}));
        if TLS_AVAILABLE {
            assert_eq!(asked.map(|o| o.encrypt), Ok(Encrypt::Required));
            assert_eq!(from_url.map(|o| o.encrypt), Ok(Encrypt::Required));
        } else {
            let err = asked.expect_err("no TLS here");
            assert!(
                err.message().contains("no TLS support"),
                "{}",
                err.message()
            );
            assert!(from_url.is_err());
        }
    }

    #[test]
    fn ado_strings_are_read_with_their_quoting() {
        let pairs = ado_pairs("Server=tcp:h,1;Password=\"a\"\"b;c\";User ID={x;y};Database = d ")
            .expect("valid");
        assert_eq!(ado_value(&pairs, &["password"]), Some("a\"b;c"));
        assert_eq!(ado_value(&pairs, USER_KEYS), Some("x;y"));
        assert_eq!(ado_value(&pairs, &["database"]), Some("d"));
        assert_eq!(ado_pairs("server=h;password='unterminated"), None);
        assert_eq!(ado_pairs("no equals sign"), None);
        assert_eq!(quote_ado("a;b'c"), "'a;b''c'");
        assert_eq!(quote_ado("plain"), "plain");
    }
}
