//! What can go wrong when messages are added to a catalogue.

/// A catalogue that cannot take the messages given to it; the start stops with it when a
/// plugin's `load` returns it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum I18nError {
    /// The locale is not a language tag (`fr-FR`, `zh-CN`, `de`).
    #[error("messages for {locale:?}: not a language tag such as fr-FR")]
    BadLocale {
        /// The locale as given.
        locale: String,
    },
    /// The FTL source does not parse; the first error is reported, with its line.
    #[error("messages for {locale}: line {line}: {detail}")]
    Syntax {
        /// The catalogue's locale.
        locale: String,
        /// The line of the first syntax error, counted from 1.
        line: usize,
        /// What the Fluent parser says is wrong there.
        detail: String,
    },
    /// The source defines a message (or term) the locale's catalogue already has, from
    /// the built-in messages, another plugin, or the same source twice.
    #[error("messages for {locale}: {id} is already defined")]
    Duplicate {
        /// The catalogue's locale.
        locale: String,
        /// The message or term id defined twice.
        id: String,
    },
}

/// A plugin's `load` can return it with `?`: it stops the start, and the plugin's name is
/// put in front.
impl From<I18nError> for manifold_core::Error {
    fn from(e: I18nError) -> Self {
        manifold_core::Error::internal(e.to_string())
    }
}
