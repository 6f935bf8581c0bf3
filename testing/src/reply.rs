//! One answer of the application, read whole.

use serde_json::Value as Json;

/// An answer: status, headers and the JSON body (`Null` when the body is empty or not
/// JSON; [`Reply::text`] has it as sent).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as JSON.
    pub body: Json,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// `body.data`, or `Null`.
    pub fn data(&self) -> &Json {
        self.body.get("data").unwrap_or(&Json::Null)
    }

    /// `body.meta`, or `Null`.
    pub fn meta(&self) -> &Json {
        self.body.get("meta").unwrap_or(&Json::Null)
    }

    /// The first error's message (`body.errors[0].message`), or "".
    pub fn error(&self) -> &str {
        self.body["errors"][0]["message"].as_str().unwrap_or("")
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
