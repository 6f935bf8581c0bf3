//! Password hashing with Argon2id, off the async runtime: a hash takes tens of
//! milliseconds of CPU by design.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use manifold_core::{Error, Result};

/// The longest password accepted (Argon2 takes any length; this bounds the work).
pub const MAX_LENGTH: usize = 1024;

/// The PHC string (`$argon2id$v=19$…`) of `password` with a fresh salt.
pub async fn hash(password: String) -> Result<String> {
    if password.is_empty() || password.len() > MAX_LENGTH {
        return Err(Error::bad_request(format!(
            "values.password: a password is 1 to {MAX_LENGTH} bytes long"
        )));
    }
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
            .map_err(|e| Error::internal(format!("password salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| Error::internal(format!("password hashing stopped: {e}")))?
}

/// Whether `password` matches the stored `hash` (compared in constant time by argon2). A
/// missing or unreadable hash is compared against a dummy one, so an unknown account
/// costs the caller the same time as a wrong password.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    tokio::task::spawn_blocking(move || {
        let stored = hash.as_deref().and_then(|h| PasswordHash::new(h).ok());
        match stored {
            Some(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            None => {
                let dummy = DUMMY.get_or_init(|| {
                    let salt = SaltString::encode_b64(&[0u8; 16]).ok();
                    salt.and_then(|s| {
                        Argon2::default()
                            .hash_password(b"-", &s)
                            .ok()
                            .map(|h| h.to_string())
                    })
                    .unwrap_or_default()
                });
                if let Ok(parsed) = PasswordHash::new(dummy) {
                    let _ = Argon2::default().verify_password(password.as_bytes(), &parsed);
                }
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
