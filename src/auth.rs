//! Tokens: JWT HS256 with claims `sub`, `role`, `restaurant_id`, `table_id`, `iat`, `exp`.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use orderhub_actors::domain::{Principal, PrincipalError, RestaurantId, Role, TableId, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Shorter secrets make HS256 brute-forceable.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restaurant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table_id: Option<String>,
    iat: i64,
    exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
    #[error("the token's scope is invalid: {0}")]
    Scope(#[from] PrincipalError),
    #[error("the Authorization header must be \"Bearer <token>\"")]
    Malformed,
}

#[derive(Debug, thiserror::Error)]
#[error("ORDERHUB_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long (it has {0})")]
pub struct WeakSecret(usize);

/// Issues and verifies tokens with one HS256 secret. Cloned per request and per WebSocket:
/// the keys are shared, not copied.
#[derive(Clone)]
pub struct Tokens {
    keys: Arc<Keys>,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Tokens {
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret(secret.len()));
        }
        // Only HS256 is accepted: a token that names another algorithm (or "none") is invalid.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let keys = Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        };
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        restaurant: Option<&RestaurantId>,
        table: Option<&TableId>,
        ttl: Duration,
    ) -> String {
        let iat = Timestamp::now().millis() / 1000;
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            restaurant_id: restaurant.map(|r| r.as_str().to_owned()),
            table_id: table.map(|t| t.as_str().to_owned()),
            iat,
            exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        };
        // HS256 signing of a serializable struct cannot fail.
        encode(&Header::new(Algorithm::HS256), &claims, &self.keys.encoding).unwrap_or_default()
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = decode::<Claims>(token, &self.keys.decoding, &self.keys.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?
            .claims;
        let restaurant = parse_id(claims.restaurant_id, RestaurantId::parse)?;
        let table = parse_id(claims.table_id, TableId::parse)?;
        let expires_at = Timestamp(claims.exp.saturating_mul(1000));
        Ok(Principal::new(claims.sub, claims.role, restaurant, table)?.expiring_at(expires_at))
    }

    /// `Authorization: Bearer <token>` (the scheme is case-insensitive).
    pub fn verify_header(&self, header: &str) -> Result<Principal, AuthError> {
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed);
        }
        self.verify(token.trim())
    }
}

fn parse_id<T>(raw: Option<String>, parse: fn(&str) -> Option<T>) -> Result<Option<T>, AuthError> {
    raw.map(|s| parse(&s).ok_or(AuthError::Invalid)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn round_trip_keeps_scope() {
        let (r, t) = (RestaurantId::generate(), TableId::generate());
        let token = tokens().issue(
            "phone",
            Role::Customer,
            Some(&r),
            Some(&t),
            Duration::from_secs(60),
        );
        let principal = tokens().verify_header(&format!("Bearer {token}")).unwrap();
        assert_eq!(principal.role, Role::Customer);
        assert_eq!(principal.restaurant_id(), Some(&r));
        assert_eq!(principal.table_id(), Some(&t));
    }

    #[test]
    fn weak_secrets_are_refused() {
        assert!(Tokens::new(b"short").is_err());
    }

    #[test]
    fn forged_expired_and_unsigned_tokens_fail() {
        let r = RestaurantId::generate();
        let other = Tokens::new(&[8u8; 32]).unwrap();
        let forged = other.issue("x", Role::Admin, None, None, Duration::from_secs(60));
        assert_eq!(tokens().verify(&forged), Err(AuthError::Invalid));

        let claims = Claims {
            sub: "x".into(),
            role: Role::Staff,
            restaurant_id: Some(r.to_string()),
            table_id: None,
            iat: 0,
            exp: 1,
        };
        let expired = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert_eq!(tokens().verify(&expired), Err(AuthError::Expired));

        // alg "none": header {"alg":"none","typ":"JWT"}, no signature.
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        assert_eq!(tokens().verify(unsigned), Err(AuthError::Invalid));
        assert_eq!(
            tokens().verify_header("Basic abc"),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn staff_tokens_need_a_restaurant() {
        let token = tokens().issue("kitchen", Role::Staff, None, None, Duration::from_secs(60));
        assert!(matches!(tokens().verify(&token), Err(AuthError::Scope(_))));
    }
}
