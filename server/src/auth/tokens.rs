//! Tokens: HS256 JWTs signed with the secret every process of one main database shares.
//! Sign-in tokens are `temp` and renewable; API keys carry the role they are pinned to.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::store::{SETTINGS, Store};
use manifold_core::{Error, Result};

/// Tokens longer than this are refused unread (a real one is a few hundred bytes).
pub const MAX_TOKEN_LENGTH: usize = 4096;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user it was given to.
    #[serde(rename = "userId")]
    pub user_id: i64,
    /// Its id: a row of the issued tokens (sign-in) or of `apiKeys`.
    pub jti: String,
    /// Issued at, in seconds since the epoch.
    pub iat: i64,
    /// Expires at, in seconds since the epoch (API keys made with `never` have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// A sign-in token, renewable within the session.
    #[serde(default)]
    pub temp: bool,
    /// When the session began, in milliseconds (sign-in tokens).
    #[serde(
        rename = "signInTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sign_in_time: Option<i64>,
    /// The role an API key is pinned to.
    #[serde(rename = "roleName", default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
}

/// The signing and verifying keys.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Keys {
    /// Keys from `secret` (at least 32 bytes are recommended; docs/security.md).
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is judged by the caller, which may renew an expired sign-in token.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// The shared secret: `configured`, else the one stored in the main database, made
    /// there by whichever process started first.
    pub async fn load(configured: Option<&str>, store: &Store) -> Result<Self> {
        if let Some(secret) = configured {
            if secret.len() < 16 {
                return Err(Error::bad_request(
                    "MANIFOLD_JWT_SECRET: use at least 16 characters (32 random bytes are best)",
                ));
            }
            return Ok(Self::new(secret.as_bytes()));
        }
        let generated: String = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .map(|u| u.simple().to_string())
            .collect();
        store
            .insert_if_absent(
                SETTINGS,
                &json!("jwtSecret"),
                &json!({ "key": "jwtSecret", "value": generated }),
            )
            .await?;
        let stored = store
            .find_one(SETTINGS, &json!({ "key": "jwtSecret" }), &[])
            .await?
            .and_then(|row| row.get("value").and_then(|v| v.as_str()).map(str::to_owned))
            .ok_or_else(|| Error::internal("the stored signing secret vanished"))?;
        Ok(Self::new(stored.as_bytes()))
    }

    /// A signed token for `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| Error::internal(format!("cannot sign a token: {e}")))
    }

    /// The claims of `token` if its signature is ours (expiry is not checked here).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        if token.len() > MAX_TOKEN_LENGTH || !token.is_ascii() {
            return None;
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            user_id: 1,
            jti: "j".into(),
            iat: 1,
            exp: Some(2),
            temp: true,
            sign_in_time: Some(1000),
            role_name: None,
        }
    }

    #[test]
    fn round_trips_and_refuses_what_it_did_not_sign() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef");
        let token = keys.sign(&claims()).expect("sign");
        assert_eq!(
            keys.verify(&token),
            Some(claims()),
            "expired, still verified"
        );
        let other = Keys::new(b"another secret, another key....");
        assert_eq!(other.verify(&token), None, "wrong secret");
        let mut parts: Vec<&str> = token.split('.').collect();
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        parts[0] = unsigned;
        assert_eq!(
            keys.verify(&format!("{}.{}.", parts[0], parts[1])),
            None,
            "alg none"
        );
        assert_eq!(keys.verify(&token[..token.len() - 3]), None, "truncated");
        assert_eq!(keys.verify(&"a".repeat(100_000)), None, "too long");
        assert_eq!(keys.verify("é.é.é"), None, "not ASCII");
    }
}
