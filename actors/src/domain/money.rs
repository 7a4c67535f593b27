use serde::{Deserialize, Serialize};
use std::fmt;

use super::DomainError;

/// ISO 4217 code: three ASCII capital letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, DomainError> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code.to_owned()))
        } else {
            Err(DomainError::BadInput(format!(
                "currency must be an ISO 4217 code such as JPY, not {code:?}"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn from_trusted(code: String) -> Self {
        Self(code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount in the currency's minor unit. Never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    /// The largest amount the public API can carry (GraphQL `Int` is 32-bit).
    pub const MAX_AMOUNT: i64 = i32::MAX as i64;

    pub fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// `self × quantity`, refused when it leaves the representable range.
    pub fn times(&self, quantity: i64) -> Result<Money, DomainError> {
        self.amount
            .checked_mul(quantity)
            .filter(|a| *a <= Self::MAX_AMOUNT)
            .map(|amount| Money::new(amount, self.currency.clone()))
            .ok_or_else(|| too_large("order total"))
    }

    pub fn plus(&self, other: &Money) -> Result<Money, DomainError> {
        debug_assert_eq!(self.currency, other.currency);
        self.amount
            .checked_add(other.amount)
            .filter(|a| *a <= Self::MAX_AMOUNT)
            .map(|amount| Money::new(amount, self.currency.clone()))
            .ok_or_else(|| too_large("order total"))
    }
}

/// `BadInput`: `what` (an order total, a bill's tax) would pass [`Money::MAX_AMOUNT`].
pub(super) fn too_large(what: &str) -> DomainError {
    DomainError::BadInput(format!(
        "{what} exceeds the largest amount ({})",
        Money::MAX_AMOUNT
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpy(amount: i64) -> Money {
        Money::new(amount, Currency::parse("JPY").unwrap())
    }

    #[test]
    fn currency_codes_are_three_capitals() {
        assert!(Currency::parse("JPY").is_ok());
        for bad in ["jpy", "JP", "JPYY", "", "J€Y"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(jpy(1200).times(3).unwrap(), jpy(3600));
        assert_eq!(jpy(1).plus(&jpy(2)).unwrap(), jpy(3));
        assert!(jpy(Money::MAX_AMOUNT).times(2).is_err());
        assert!(jpy(Money::MAX_AMOUNT).plus(&jpy(1)).is_err());
        assert!(jpy(i64::MAX).times(99).is_err());
    }
}
