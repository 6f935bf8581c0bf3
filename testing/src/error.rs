//! What can go wrong in the harness itself, as opposed to an answer a test asserts on.

/// The harness could not do what a test asked of it.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The application did not start (a plugin failed to load, a bad option, …).
    #[error("the application did not start: {0}")]
    Start(#[source] manifold_core::Error),
    /// The temporary directory of the main database could not be made.
    #[error("cannot make a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    /// A request could not be built or its answer read.
    #[error("{0}")]
    Request(String),
    /// Signing in was refused.
    #[error("signing in as {account} was refused: {status} {body}")]
    SignIn {
        /// The account name.
        account: String,
        /// The answer's status.
        status: u16,
        /// The answer's body.
        body: serde_json::Value,
    },
}
