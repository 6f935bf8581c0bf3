//! Messages in the client's language: errors rendered in the locale of `X-Locale` (or
//! `?locale=`, as NocoBase also reads), from Fluent catalogues that plugins extend.
//!
//! An error that names a catalogue message ([`manifold_core::Error::with_message_id`]) is
//! answered with that message's translation into the negotiated locale; any other error,
//! an id a locale lacks, or a translation that cannot be formatted keeps the English
//! message, which is the source of truth. Built in: `en-US`, `zh-CN` and `fr-FR`
//! (`server/locales/<locale>/manifold.ftl`). docs/plugins.md, "Messages in the client's
//! language"; ADR 0020.

mod built_in;
mod catalogue;
mod error;
mod negotiate;
mod request;

pub use catalogue::I18n;
pub use error::I18nError;
pub use negotiate::{DEFAULT_LOCALE, parse_locale};
pub use request::{MAX_LOCALE_LEN, requested_locale};
