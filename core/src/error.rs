//! The one error type of the core and its connectors.
//!
//! Every error carries a [`ErrorKind`] that says *whose* fault it is; the HTTP service maps
//! kinds to status codes in one place, so libraries never talk HTTP.

use std::fmt;

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or names something invalid (400).
    BadRequest,
    /// The resource, action, record or data source does not exist (404).
    NotFound,
    /// The caller is not signed in, or its token or key is not valid (401).
    Unauthorized,
    /// The caller may not do this (403).
    Forbidden,
    /// The request conflicts with the current state, e.g. a duplicate name (409).
    Conflict,
    /// The request body is larger than allowed (413).
    PayloadTooLarge,
    /// The caller tried too often; it may try again later (429).
    TooManyRequests,
    /// A data source is down, still loading, or its pool is exhausted (503).
    Unavailable,
    /// A data source did not answer in time (504).
    Timeout,
    /// A bug or an unexpected failure on our side (500).
    Internal,
}

/// The `code` connectors give a foreign-key violation. An action that only deletes can
/// then tell "still referenced" (409) from other bad input, which SQLite cannot say.
pub const FOREIGN_KEY_VIOLATION: &str = "FOREIGN_KEY_VIOLATION";

/// The `code` connectors give a unique-key violation, so `firstOrCreate` and
/// `updateOrCreate` can tell "another writer created it first" from other bad input.
pub const UNIQUE_VIOLATION: &str = "UNIQUE_VIOLATION";

/// An error with a message meant for the client (it must never contain secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    code: Option<&'static str>,
    /// Boxed: most errors have none, and `Result<T, Error>` stays small.
    localized: Option<Box<MessageRef>>,
}

/// The catalogue message that says what an [`Error`]'s English message says, so that the
/// service can answer in the client's language (`X-Locale`). The English message stays
/// the source of truth: a locale without this id gets it unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    id: &'static str,
    args: Vec<(&'static str, String)>,
    prefix: String,
}

impl MessageRef {
    /// The message id in the catalogues (`acl-no-permission`).
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The message's arguments, by name (`$path` is `("path", …)`).
    pub fn args(&self) -> &[(&'static str, String)] {
        &self.args
    }

    /// What [`Error::context`] put in front of the message since the id was given, kept
    /// verbatim before the translation: contexts name places in the request, not words.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    /// An error of `kind` with a client-facing message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
            localized: None,
        }
    }

    /// The same error naming the catalogue message `id` that translates its message, with
    /// the values of the message's arguments (`vec![("key", key.to_owned())]`).
    pub fn with_message_id(mut self, id: &'static str, args: Vec<(&'static str, String)>) -> Self {
        self.localized = Some(Box::new(MessageRef {
            id,
            args,
            prefix: String::new(),
        }));
        self
    }

    /// The catalogue message that translates this error, where it names one.
    pub fn message_ref(&self) -> Option<&MessageRef> {
        self.localized.as_deref()
    }

    /// 401: the caller must sign in (again); `code` says why (`EMPTY_TOKEN`, …).
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message).with_code(code)
    }

    /// The same error with a machine-readable `code` beside its message.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The machine-readable code, where the error has one (`EMPTY_TOKEN`, …).
    pub fn code(&self) -> Option<&'static str> {
        self.code
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// 404: something named by the request does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// 403: the caller is not allowed to do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// 409: conflicts with existing state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// 503: a backend cannot serve right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// 500: an unexpected failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The client-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context: ` in front of its message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        if let Some(localized) = &mut self.localized {
            localized.prefix = format!("{context}: {}", localized.prefix);
        }
        self
    }
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_keeps_the_english_message_and_collects_contexts() {
        let e = Error::bad_request("x: expected an integer, got \"a\"")
            .with_message_id("value-type-mismatch", vec![("path", "x".into())])
            .context("values.1")
            .context("batch 2");
        assert_eq!(
            e.message(),
            "batch 2: values.1: x: expected an integer, got \"a\""
        );
        let localized = e.message_ref().expect("an id");
        assert_eq!(localized.id(), "value-type-mismatch");
        assert_eq!(localized.args(), [("path", "x".to_owned())]);
        assert_eq!(localized.prefix(), "batch 2: values.1: ");
        assert!(Error::bad_request("plain").message_ref().is_none());
    }
}
