//! What a request must look like before the app sees it: the `Host` it names, and, for an
//! action that changes data, a method and a body type that a cross-site page cannot send
//! without the browser asking the service first (a CORS preflight).

use manifold_core::data_source::DataSourceManager;
use manifold_core::request::parse_resource_path;
use poem::Request;
use poem::http::{Method, header};

use crate::app::API_PREFIX;

/// Body types a browser sends cross-site without a preflight (the CORS "simple" types).
const SIMPLE_BODY_TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

/// A refusal: the status, the message, and the methods to list in `Allow` for a 405.
pub(super) struct Refusal {
    pub status: u16,
    pub message: String,
    pub allow: Option<&'static str>,
}

impl Refusal {
    fn new(status: u16, message: String) -> Self {
        Self {
            status,
            message,
            allow: None,
        }
    }
}

/// Refuses a data-changing action sent with a method a link, an image or a preflight
/// uses, or with a body a form can send. Otherwise the name of such an action, for
/// [`check_untyped_body`] once the body is read.
///
/// Actions that only read are those `manager` knows as such
/// ([`DataSourceManager::declare_read_action`]): a new action is refused on `GET` until it
/// is declared, not the other way round.
pub(super) fn check_action(
    req: &Request,
    manager: &DataSourceManager,
) -> Result<Option<String>, Refusal> {
    // A path that does not parse is the router's to report.
    let Ok(Some(path)) = parse_resource_path(API_PREFIX, req.uri().path()) else {
        return Ok(None);
    };
    let Some(action) = path.action_for(req.method().as_str()) else {
        return Ok(None);
    };
    if manager.is_read_action(&action) {
        return Ok(None);
    }
    if !matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return Err(Refusal {
            status: 405,
            message: format!(
                "{} is not allowed for {action}, which changes data; send it with POST",
                req.method()
            ),
            allow: Some("POST, PUT, PATCH, DELETE"),
        });
    }
    if let Some(value) = req.headers().get(header::CONTENT_TYPE) {
        let media = value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        let Some(media) = media else {
            return Err(Refusal::new(
                415,
                "Content-Type is not readable; send application/json".to_owned(),
            ));
        };
        if SIMPLE_BODY_TYPES.contains(&media.as_str()) {
            return Err(Refusal::new(
                415,
                format!(
                    "Content-Type {media} is not accepted for :{action}, which changes data; send application/json"
                ),
            ));
        }
    }
    Ok(Some(action))
}

/// Refuses a body without a `Content-Type` on an action that changes data: a browser sends
/// one (a `Blob` of no type) cross-site without a preflight, and it would be read as JSON.
pub(super) fn check_untyped_body(
    req: &Request,
    changes: Option<&str>,
    body: &[u8],
) -> Result<(), Refusal> {
    let Some(action) = changes else {
        return Ok(());
    };
    if req.headers().contains_key(header::CONTENT_TYPE) || body.iter().all(u8::is_ascii_whitespace)
    {
        return Ok(());
    }
    Err(Refusal::new(
        415,
        format!(
            "a body without Content-Type is not accepted for :{action}, which changes data; send application/json"
        ),
    ))
}

/// Accepted `Host` names: empty accepts any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNames {
    names: Vec<String>,
}

impl HostNames {
    /// Parses `--accepted-host-headers` entries: `example.com`, `example.com:8080`,
    /// `*.example.com`, `[::1]`.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if !entry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:*[]_".contains(&b))
            {
                return Err(format!("{entry:?} is not a host name"));
            }
            names.push(entry);
        }
        Ok(Self { names })
    }

    /// Whether any `Host` is accepted.
    pub fn is_any(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether `host` (a `Host` header or an HTTP/2 authority) is accepted.
    pub fn accepts(&self, host: &str) -> bool {
        if self.names.is_empty() {
            return true;
        }
        let host = host.trim().to_ascii_lowercase();
        let name = strip_port(&host);
        self.names.iter().any(|rule| {
            let with_port = strip_port(rule) != rule.as_str();
            let subject = if with_port { host.as_str() } else { name };
            match rule.strip_prefix("*.") {
                Some(suffix) => subject
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                None => subject == rule,
            }
        })
    }
}

/// `example.com:80` → `example.com`; `[::1]:80` → `[::1]`; a bare IPv6 address is kept.
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.rfind(']') {
        return &host[..=end];
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The host the client addressed, or `None` when it names none or an unreadable one.
pub(super) fn requested_host(req: &Request) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    host.to_str().ok().map(str::to_owned)
}

/// Refuses an `X-Data-Source` that cannot name a source: not readable, or sent twice.
/// Read lossily, such a key would be one that no source has, or, once trimmed away,
/// none at all, which means `main`.
pub(super) fn check_data_source(req: &Request) -> Result<(), Refusal> {
    let mut values = req.headers().get_all("x-data-source").iter();
    let Some(first) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(Refusal::new(
            400,
            "X-Data-Source is sent more than once; send one key".to_owned(),
        ));
    }
    if !first
        .as_bytes()
        .iter()
        .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\t')
    {
        return Err(Refusal::new(
            400,
            "X-Data-Source is not readable: a key is letters, digits, _ or -".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::HostNames;

    fn names(list: &[&str]) -> HostNames {
        HostNames::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn host_names_match_with_or_without_a_port() {
        let n = names(&["api.example.com", "*.internal", "localhost:13000", "[::1]"]);
        assert!(n.accepts("api.example.com"));
        assert!(n.accepts("API.example.com:443"));
        assert!(n.accepts("db.internal"));
        assert!(n.accepts("a.b.internal:80"));
        assert!(!n.accepts("internal"));
        assert!(!n.accepts("evilinternal"));
        assert!(n.accepts("localhost:13000"));
        assert!(!n.accepts("localhost:13001"));
        assert!(!n.accepts("localhost"));
        assert!(n.accepts("[::1]:13000"));
        assert!(!n.accepts("attacker.example"));
        assert!(names(&[]).accepts("anything"));
        assert!(HostNames::parse(&["a b".to_owned()]).is_err());
    }
}
