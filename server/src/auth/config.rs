//! The options of authentication: secrets, token lifetimes, sign-in throttling, the cache of
//! verified tokens.

use std::time::Duration;

use clap::Args;

/// A value that must never be printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use a duration such as 30s, 15m, 1d)"))
}

/// How callers sign in and how long what they are given lasts.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// The secret tokens are signed with (HS256). Every process that shares the main
    /// database must use the same one; without it, one is generated on the first start and
    /// stored in the main database.
    #[arg(long, env = "MANIFOLD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// The password of the user `root`, created on the first start with an empty main
    /// database; without it a password is generated and printed once to standard error.
    #[arg(long, env = "MANIFOLD_ROOT_PASSWORD", hide_env_values = true)]
    pub root_password: Option<Secret>,

    /// How long a sign-in token is valid.
    #[arg(long, env = "MANIFOLD_TOKEN_LIFETIME", default_value = "1d", value_parser = duration)]
    pub token_lifetime: Duration,

    /// How long a session lasts from sign-in, however often its token is renewed.
    #[arg(long, env = "MANIFOLD_SESSION_LIFETIME", default_value = "7d", value_parser = duration)]
    pub session_lifetime: Duration,

    /// How long after its expiry a token may still be exchanged for a new one (sent back in
    /// the `x-new-token` header).
    #[arg(long, env = "MANIFOLD_TOKEN_RENEWAL_WINDOW", default_value = "1d", value_parser = duration)]
    pub token_renewal_window: Duration,

    /// Failed sign-ins for one account or from one client address before further attempts
    /// are refused with 429.
    #[arg(long, env = "MANIFOLD_SIGN_IN_MAX_FAILURES", default_value_t = 5)]
    pub sign_in_max_failures: u32,

    /// How long an account or address stays refused after too many failed sign-ins.
    #[arg(long, env = "MANIFOLD_SIGN_IN_LOCKOUT", default_value = "15m", value_parser = duration)]
    pub sign_in_lockout: Duration,

    /// How long a verified token is trusted without asking the main database again (a
    /// sign-out or key revocation on another replica takes at most this long to reach this
    /// one).
    #[arg(long, env = "MANIFOLD_AUTH_CACHE_TTL", default_value = "10s", value_parser = duration)]
    pub auth_cache_ttl: Duration,

    /// How many verified tokens are kept in that cache.
    #[arg(long, env = "MANIFOLD_AUTH_CACHE_SIZE", default_value_t = 10_000)]
    pub auth_cache_size: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            root_password: None,
            token_lifetime: Duration::from_secs(86_400),
            session_lifetime: Duration::from_secs(7 * 86_400),
            token_renewal_window: Duration::from_secs(86_400),
            sign_in_max_failures: 5,
            sign_in_lockout: Duration::from_secs(15 * 60),
            auth_cache_ttl: Duration::from_secs(10),
            auth_cache_size: 10_000,
        }
    }
}
