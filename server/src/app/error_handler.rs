//! Every error becomes `{"errors":[{"message"}]}` with the status of its kind: the one place
//! where error kinds meet HTTP, and where messages are put in the client's language.

use std::sync::Arc;

use manifold_core::error::{Error, ErrorKind};
use manifold_core::middleware::{Middleware, Next};
use manifold_core::{Context, Result};
use serde_json::json;

use crate::i18n::{I18n, requested_locale};

/// The HTTP status for an error kind.
pub fn status_of(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::BadRequest => 400,
        ErrorKind::Unauthorized => 401,
        ErrorKind::Forbidden => 403,
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::PayloadTooLarge => 413,
        ErrorKind::TooManyRequests => 429,
        ErrorKind::Internal => 500,
        ErrorKind::Unavailable => 503,
        ErrorKind::Timeout => 504,
    }
}

/// Writes `error` into the response, replacing anything a handler had produced; its
/// message is in the locale the request asks for where the catalogue has it (logs keep
/// the English one).
pub fn render(ctx: &mut Context, error: &Error, i18n: &I18n) {
    let status = status_of(error.kind());
    if status >= 500 {
        tracing::error!(status, error = %error.message(), path = %ctx.request.path, "request failed");
    } else {
        tracing::debug!(status, error = %error.message(), path = %ctx.request.path, "request refused");
    }
    ctx.status = Some(status);
    let message = i18n.error_message(requested_locale(&ctx.request).as_deref(), error);
    ctx.body = Some(match error.code() {
        Some(code) => json!({ "errors": [{ "message": message, "code": code }] }),
        None => json!({ "errors": [{ "message": message }] }),
    });
    ctx.body_meta = None;
    ctx.streamed = None;
    ctx.without_data_wrapping = true;
}

/// The app node tagged `errorHandler`, rendering with the application's catalogue.
pub struct ErrorHandler(pub Arc<I18n>);

#[async_trait::async_trait]
impl Middleware for ErrorHandler {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        if let Err(e) = next.run(ctx).await {
            render(ctx, &e, &self.0);
        }
        Ok(())
    }
}
