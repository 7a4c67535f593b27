//! Tokens: JWT (RFC 7519) signed with HS256. orderhub's own claims are `role`, `restaurant_id`
//! and `table_id`; the registered claims are read as RFC 7519 §4.1 defines them (see
//! [`Claims`]), because tokens also come from identity providers, not only from
//! `orderhub token`.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use orderhub_actors::domain::{Principal, PrincipalError, RestaurantId, Role, TableId, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Shorter secrets make HS256 brute-forceable.
pub const MIN_SECRET_BYTES: usize = 32;

/// Clock skew allowed between the issuer and this node, in seconds: a token is still accepted
/// this long after its `exp` and this long before its `nbf` (RFC 7519 §4.1.4 and §4.1.5 allow
/// "some small leeway, usually no more than a few minutes").
pub const LEEWAY_SECONDS: f64 = 5.0;

/// What `orderhub token` signs. Its NumericDates are whole seconds, and it keeps issuing `iat`.
#[derive(Debug, Serialize)]
struct Issued<'a> {
    sub: &'a str,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    restaurant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table_id: Option<&'a str>,
    iat: i64,
    exp: i64,
}

/// A verified token's claims set. Claims this server does not know are ignored (RFC 7519 §4);
/// a claim name given twice makes the token invalid (serde refuses duplicate fields, §4).
#[derive(Debug, Deserialize)]
struct Claims {
    /// §4.1.2: whom the token is about. Required here: it names the client in logs, in
    /// read-your-writes and in the rate limit.
    sub: String,
    role: Role,
    #[serde(default)]
    restaurant_id: Option<String>,
    #[serde(default)]
    table_id: Option<String>,
    /// §4.1.4: the token MUST NOT be accepted on or after this time. Required here: every
    /// token ends, and a subscription ends with its token.
    exp: NumericDate,
    /// §4.1.5: the token MUST NOT be accepted before this time. Optional.
    #[serde(default, deserialize_with = "present")]
    nbf: Option<NumericDate>,
    /// §4.1.6: when the token was issued. Optional and informational: no rule depends on it,
    /// but when present it must be a NumericDate.
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    iat: Option<NumericDate>,
    /// §4.1.1: who issued the token, a case-sensitive string. Checked only against
    /// `ORDERHUB_JWT_ISSUER`.
    #[serde(default, deserialize_with = "present")]
    iss: Option<String>,
    /// §4.1.3: whom the token is for, one case-sensitive string or an array of them. Checked
    /// only against `ORDERHUB_JWT_AUDIENCE`.
    #[serde(default, deserialize_with = "present")]
    aud: Option<Audience>,
    /// §4.1.7: the token's unique identifier, a case-sensitive string. Not used, but when
    /// present it must be a string.
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    jti: Option<String>,
}

/// RFC 7519 §2: "A JSON numeric value representing the number of seconds from
/// 1970-01-01T00:00:00Z UTC until the specified UTC date/time, ignoring leap seconds" — any
/// JSON number, so fractions (`1700000000.5`) and exponents (`1.79e9`) included.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(transparent)]
struct NumericDate(f64);

/// RFC 7519 §4.1.3: "In the general case, the "aud" value is an array of case-sensitive
/// strings … In the special case when the JWT has one audience, the "aud" value MAY be a
/// single case-sensitive string".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|one| one == audience),
        }
    }
}

/// An optional claim that, when present, must have its type: `null` is not a NumericDate or a
/// string, so it is refused rather than read as absent.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// What a token must say about who issued it and for whom. Unset, `iss` and `aud` are not
/// checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimRules {
    /// `ORDERHUB_JWT_ISSUER`: a token's `iss` must equal it (RFC 7519 §4.1.1).
    pub issuer: Option<String>,
    /// `ORDERHUB_JWT_AUDIENCE`: a token's `aud` must be or contain it (RFC 7519 §4.1.3).
    pub audience: Option<String>,
}

impl Claims {
    /// The registered claims' rules at `now` (seconds since the epoch).
    fn check(&self, now: f64, rules: &ClaimRules) -> Result<(), AuthError> {
        // §4.1.4: "the current date/time MUST be before the expiration date/time".
        if now >= self.exp.0 + LEEWAY_SECONDS {
            return Err(AuthError::Expired);
        }
        // §4.1.5: "the current date/time MUST be after or equal to the not-before date/time".
        if let Some(NumericDate(nbf)) = self.nbf {
            if now + LEEWAY_SECONDS < nbf {
                return Err(AuthError::NotYetValid);
            }
        }
        // §4.1.1: "The "iss" value is a case-sensitive string".
        if let Some(issuer) = &rules.issuer {
            if self.iss.as_deref() != Some(issuer.as_str()) {
                return Err(AuthError::Issuer);
            }
        }
        // §4.1.3: "Each principal intended to process the JWT MUST identify itself with a
        // value in the audience claim."
        if let Some(audience) = &rules.audience {
            if !self.aud.as_ref().is_some_and(|aud| aud.contains(audience)) {
                return Err(AuthError::Audience);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's issuer (iss) is not the one this server accepts")]
    Issuer,
    #[error("the token's audience (aud) does not name this server")]
    Audience,
    #[error("the token is invalid")]
    Invalid,
    #[error("the token's scope is invalid: {0}")]
    Scope(#[from] PrincipalError),
    #[error("the Authorization header must be \"Bearer <token>\"")]
    Malformed,
    #[error("a token is required")]
    Missing,
}

#[derive(Debug, thiserror::Error)]
#[error("ORDERHUB_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long (it has {0})")]
pub struct WeakSecret(usize);

/// Issues and verifies tokens with one HS256 secret. Cloned per request and per WebSocket:
/// the keys are shared, not copied.
#[derive(Clone)]
pub struct Tokens {
    keys: Arc<Keys>,
    rules: Arc<ClaimRules>,
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
        // jsonwebtoken checks the signature only: it reads `exp` and `nbf` as integers
        // (refusing `3600.5`), an `aud` it was not told of as a reason to refuse, and an absent
        // `iss` as a match, none of which is RFC 7519. `Claims::check` applies the rules.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let keys = Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        };
        Ok(Self {
            keys: Arc::new(keys),
            rules: Arc::default(),
        })
    }

    /// The same keys, requiring `rules` of every token verified.
    pub fn with_rules(self, rules: ClaimRules) -> Self {
        Self {
            keys: self.keys,
            rules: Arc::new(rules),
        }
    }

    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        restaurant: Option<&RestaurantId>,
        table: Option<&TableId>,
        ttl: Duration,
    ) -> String {
        self.issue_expiring(subject, role, restaurant, table, ttl).0
    }

    /// As [`issue`](Self::issue), with the token's `exp` (whole seconds, as a timestamp).
    pub fn issue_expiring(
        &self,
        subject: &str,
        role: Role,
        restaurant: Option<&RestaurantId>,
        table: Option<&TableId>,
        ttl: Duration,
    ) -> (String, Timestamp) {
        let iat = Timestamp::now().millis() / 1000;
        let exp = iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let claims = Issued {
            sub: subject,
            role,
            restaurant_id: restaurant.map(RestaurantId::as_str),
            table_id: table.map(TableId::as_str),
            iat,
            exp,
        };
        // HS256 signing of a serializable struct cannot fail.
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.keys.encoding)
            .unwrap_or_default();
        (token, Timestamp(exp.saturating_mul(1000)))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.verify_at(token, now)
    }

    fn verify_at(&self, token: &str, now: f64) -> Result<Principal, AuthError> {
        let claims = decode::<Claims>(token, &self.keys.decoding, &self.keys.validation)
            .map_err(|_| AuthError::Invalid)?
            .claims;
        claims.check(now, &self.rules)?;
        let restaurant = parse_id(claims.restaurant_id, RestaurantId::parse)?;
        let table = parse_id(claims.table_id, TableId::parse)?;
        // Saturating: an `exp` of 1e300 is a token that never ends in practice.
        let expires_at = Timestamp((claims.exp.0 * 1000.0) as i64);
        Ok(Principal::new(claims.sub, claims.role, restaurant, table)?.expiring_at(expires_at))
    }

    /// `Authorization: Bearer <token>`: the scheme is case-insensitive (RFC 7235 §2.1) and
    /// may be followed by more than one space.
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const SECRET: [u8; 32] = [7u8; 32];
    /// "Now" in the claim tests: 2023-11-14T22:13:20Z.
    const NOW: f64 = 1_700_000_000.0;

    fn tokens() -> Tokens {
        Tokens::new(&SECRET).unwrap()
    }

    fn requiring(issuer: Option<&str>, audience: Option<&str>) -> Tokens {
        tokens().with_rules(ClaimRules {
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
        })
    }

    /// A token whose claims set is exactly `payload`, byte for byte, signed with HS256.
    fn signed(payload: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        let key = EncodingKey::from_secret(&SECRET);
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{message}.{signature}")
    }

    /// An admin token with `claims` after `sub` and `role`, as raw JSON members.
    fn admin(claims: &str) -> String {
        signed(&format!(r#"{{"sub":"op","role":"admin",{claims}}}"#))
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
        let other = Tokens::new(&[8u8; 32]).unwrap();
        let forged = other.issue("x", Role::Admin, None, None, Duration::from_secs(60));
        assert_eq!(tokens().verify(&forged), Err(AuthError::Invalid));

        let r = RestaurantId::generate();
        let expired = signed(&format!(
            r#"{{"sub":"x","role":"staff","restaurant_id":"{r}","iat":0,"exp":1}}"#
        ));
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
    fn staff_and_manager_tokens_need_a_restaurant() {
        for role in [Role::Staff, Role::Manager] {
            let token = tokens().issue("kitchen", role, None, None, Duration::from_secs(60));
            assert!(
                matches!(tokens().verify(&token), Err(AuthError::Scope(_))),
                "{role:?}"
            );
        }
        let r = RestaurantId::generate();
        let token = tokens().issue(
            "boss",
            Role::Manager,
            Some(&r),
            None,
            Duration::from_secs(60),
        );
        let manager = tokens()
            .verify(&token)
            .expect("a manager token with a restaurant");
        assert_eq!(
            (manager.role, manager.restaurant_id()),
            (Role::Manager, Some(&r))
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_spaces_are_allowed() {
        let token = tokens().issue("x", Role::Admin, None, None, Duration::from_secs(60));
        for scheme in ["Bearer ", "bearer ", "BEARER ", "Bearer  ", "bEaReR   "] {
            let header = format!("{scheme}{token}");
            assert!(tokens().verify_header(&header).is_ok(), "{header:?}");
        }
    }

    /// RFC 7519 §2: a NumericDate is any JSON number.
    #[test]
    fn numeric_dates_may_have_fractions_and_exponents() {
        for claims in [
            r#""iat":1699999999.25,"exp":1700003600.5"#,
            r#""exp":1.79e9"#,
            r#""exp":1.79E+9,"nbf":1.6e9,"iat":16.99e8"#,
            r#""exp":1700000004.999"#,
        ] {
            let principal = tokens().verify_at(&admin(claims), NOW);
            assert!(principal.is_ok(), "{claims}: {principal:?}");
        }
        let principal = tokens()
            .verify_at(&admin(r#""exp":1700003600.5"#), NOW)
            .unwrap();
        assert_eq!(principal.expires_at(), Some(Timestamp(1_700_003_600_500)));
    }

    /// RFC 7519 §4.1.6: `iat` is optional.
    #[test]
    fn iat_is_optional() {
        let r = RestaurantId::generate();
        let token = signed(&format!(
            r#"{{"sub":"k","role":"staff","restaurant_id":"{r}","exp":1700003600}}"#
        ));
        let principal = tokens().verify_at(&token, NOW).unwrap();
        assert_eq!(principal.restaurant_id(), Some(&r));
    }

    /// RFC 7519 §4.1.4, with the documented leeway.
    #[test]
    fn exp_is_enforced_with_the_leeway() {
        let verify = |exp: &str| tokens().verify_at(&admin(&format!(r#""exp":{exp}"#)), NOW);
        assert!(verify("1699999995.5").is_ok(), "within the leeway");
        assert_eq!(verify("1699999995"), Err(AuthError::Expired));
        assert_eq!(verify("1699999990"), Err(AuthError::Expired));
        assert_eq!(verify("0"), Err(AuthError::Expired));
    }

    /// RFC 7519 §4.1.5, with the documented leeway.
    #[test]
    fn nbf_is_enforced_with_the_leeway() {
        let verify = |nbf: &str| {
            tokens().verify_at(&admin(&format!(r#""exp":1700003600,"nbf":{nbf}"#)), NOW)
        };
        assert!(verify("1700000000").is_ok());
        assert!(verify("1700000005").is_ok(), "within the leeway");
        assert_eq!(verify("1700000005.5"), Err(AuthError::NotYetValid));
        assert_eq!(verify("1.8e9"), Err(AuthError::NotYetValid));
    }

    /// RFC 7519 §4.1.1: checked only when configured, then required and equal.
    #[test]
    fn iss_must_match_when_configured() {
        let with = |iss: &str| admin(&format!(r#""exp":1700003600,"iss":{iss}"#));
        let without = admin(r#""exp":1700003600"#);
        let strict = requiring(Some("https://id.example"), None);
        assert!(strict
            .verify_at(&with(r#""https://id.example""#), NOW)
            .is_ok());
        for token in [
            with(r#""https://other.example""#),
            with(r#""HTTPS://ID.EXAMPLE""#),
        ] {
            assert_eq!(strict.verify_at(&token, NOW), Err(AuthError::Issuer));
        }
        assert_eq!(strict.verify_at(&without, NOW), Err(AuthError::Issuer));
        // Unset: any issuer, or none.
        assert!(tokens().verify_at(&with(r#""anyone""#), NOW).is_ok());
        assert!(tokens().verify_at(&without, NOW).is_ok());
    }

    /// RFC 7519 §4.1.3: a string or an array of strings; checked only when configured, then
    /// required to name this server.
    #[test]
    fn aud_must_name_this_server_when_configured() {
        let with = |aud: &str| admin(&format!(r#""exp":1700003600,"aud":{aud}"#));
        let without = admin(r#""exp":1700003600"#);
        let strict = requiring(None, Some("orderhub"));
        for aud in [
            r#""orderhub""#,
            r#"["orderhub"]"#,
            r#"["billing","orderhub"]"#,
        ] {
            assert!(strict.verify_at(&with(aud), NOW).is_ok(), "{aud}");
        }
        for aud in [r#""billing""#, r#"["billing"]"#, "[]", r#""OrderHub""#] {
            assert_eq!(
                strict.verify_at(&with(aud), NOW),
                Err(AuthError::Audience),
                "{aud}"
            );
        }
        assert_eq!(strict.verify_at(&without, NOW), Err(AuthError::Audience));
        // Unset: any audience.
        assert!(tokens().verify_at(&with(r#"["billing"]"#), NOW).is_ok());
        assert!(tokens().verify_at(&with(r#""billing""#), NOW).is_ok());
        // Both at once.
        let both = requiring(Some("idp"), Some("orderhub"));
        let token = admin(r#""exp":1700003600,"iss":"idp","aud":["orderhub"],"jti":"t-1""#);
        assert!(both.verify_at(&token, NOW).is_ok());
    }

    /// Registered claims of the wrong JSON type, a missing `exp` or `sub`, and a claim given
    /// twice make the token invalid; unknown claims are ignored.
    #[test]
    fn malformed_registered_claims_are_refused() {
        for claims in [
            r#""exp":"1700003600""#,
            r#""exp":null"#,
            r#""exp":1700003600,"iat":null"#,
            r#""exp":1700003600,"iat":"yesterday""#,
            r#""exp":1700003600,"nbf":true"#,
            r#""exp":1700003600,"aud":7"#,
            r#""exp":1700003600,"aud":["orderhub",7]"#,
            r#""exp":1700003600,"iss":["idp"]"#,
            r#""exp":1700003600,"jti":42"#,
            r#""exp":1700003600,"exp":1700003601"#,
            r#""iat":1699999999"#,
        ] {
            assert_eq!(
                tokens().verify_at(&admin(claims), NOW),
                Err(AuthError::Invalid),
                "{claims}"
            );
        }
        let no_sub = signed(r#"{"role":"admin","exp":1700003600}"#);
        assert_eq!(tokens().verify_at(&no_sub, NOW), Err(AuthError::Invalid));
        let extra = admin(r#""exp":1700003600,"scope":"openid","email_verified":true"#);
        assert!(tokens().verify_at(&extra, NOW).is_ok());
    }
}
