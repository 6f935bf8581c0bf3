//! Cross-origin access for browser clients on other origins: off unless origins are listed.
//!
//! Written here rather than with poem's `Cors` middleware
//! ([decisions/0008](../../../docs/decisions/0008-http-connection-limits.md)): that one
//! unwraps a non-ASCII `Origin` when wildcards are configured, answers refusals as
//! `text/plain`, and sends no `Vary: Origin` for an origin it lists exactly.

use poem::Request;
use poem::http::{HeaderValue, Method, header};

/// Methods a preflight may ask for.
const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// Response headers a cross-origin script may read besides the safelisted ones.
const EXPOSED: &str = "x-new-token";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE_SECS: u32 = 600;

/// Origins allowed to call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins {
    any: bool,
    origins: Vec<String>,
}

impl CorsOrigins {
    /// Parses `--cors-origins` entries: `https://app.example.com`, `http://localhost:5173`,
    /// or `*` (any origin).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut parsed = Self::default();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                parsed.any = true;
                continue;
            }
            let origin = entry.trim_end_matches('/').to_ascii_lowercase();
            let well_formed = origin.split_once("://").is_some_and(|(scheme, host)| {
                matches!(scheme, "http" | "https")
                    && !host.is_empty()
                    && !host.contains('/')
                    && host.is_ascii()
            });
            if !well_formed {
                return Err(format!(
                    "{entry:?} is not an origin (scheme://host[:port], such as https://app.example.com)"
                ));
            }
            parsed.origins.push(origin);
        }
        Ok(parsed)
    }

    /// Whether CORS is configured at all.
    pub fn is_on(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The `Origin` of `req` when it is one of the allowed.
    fn allowed<'r>(&self, req: &'r Request) -> Option<&'r HeaderValue> {
        let origin = req.headers().get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        (self.any || self.origins.iter().any(|o| o.eq_ignore_ascii_case(text))).then_some(origin)
    }

    /// Whether `req` is a preflight (an `OPTIONS` naming the method it wants to send).
    pub(super) fn is_preflight(&self, req: &Request) -> bool {
        self.is_on()
            && req.method() == Method::OPTIONS
            && req.headers().contains_key(header::ORIGIN)
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight: 204 with the permissions for an allowed origin, 403
    /// otherwise.
    pub(super) fn preflight(&self, req: &Request) -> poem::Response {
        let Some(origin) = self.allowed(req) else {
            let shown = req
                .headers()
                .get(header::ORIGIN)
                .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
                .unwrap_or_default();
            return super::json_response(
                403,
                &serde_json::json!({ "errors": [{ "message": format!("origin {shown} is not allowed (see MANIFOLD_CORS_ORIGINS)") }] }),
            );
        };
        let mut response = poem::Response::builder()
            .status(poem::http::StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone())
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, METHODS)
            .header(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_SECS)
            .header(header::VARY, "Origin")
            .finish();
        // The headers it asks for are granted: the origin is trusted, and the API reads
        // only the headers it knows.
        if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            response
                .headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        response
    }

    /// Adds the CORS headers to the answer of an allowed origin's request.
    pub(super) fn decorate(&self, origin: Option<HeaderValue>, response: &mut poem::Response) {
        if !self.is_on() {
            return;
        }
        let headers = response.headers_mut();
        // Caches must not serve one origin's answer to another.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
            );
        }
    }

    /// The request's `Origin` when allowed, kept before the request is consumed.
    pub(super) fn origin_of(&self, req: &Request) -> Option<HeaderValue> {
        if !self.is_on() {
            return None;
        }
        self.allowed(req).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::CorsOrigins;

    #[test]
    fn origins_parse_or_are_refused() {
        let parse = |list: &[&str]| {
            CorsOrigins::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert!(!parse(&[]).map(|c| c.is_on()).unwrap_or(true));
        assert!(parse(&["https://app.example.com/"]).is_ok_and(|c| c.is_on()));
        assert!(parse(&["*"]).is_ok_and(|c| c.is_on()));
        assert!(parse(&["app.example.com"]).is_err());
        assert!(parse(&["https://app.example.com/path"]).is_err());
        assert!(parse(&["ftp://x"]).is_err());
    }
}
