use serde::{Deserialize, Serialize};

use super::{
    check_name, check_text, BusinessDay, BusinessDayStart, Currency, DomainError, MenuItemId,
    Money, RestaurantId, StaffCallId, TableId, TimeZone, Timestamp,
};

pub const DEFAULT_CURRENCY: &str = "JPY";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restaurant {
    pub id: RestaurantId,
    pub name: String,
    pub currency: Currency,
    /// The restaurant's clock: business days, and so ticket numbers, follow its local time.
    pub time_zone: TimeZone,
    /// The local time at which each business day starts.
    pub day_starts_at: BusinessDayStart,
}

impl Restaurant {
    /// The business day at `at` on this restaurant's clock.
    pub fn business_day(&self, at: Timestamp) -> BusinessDay {
        BusinessDay::of(at, &self.time_zone, self.day_starts_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub id: TableId,
    pub restaurant_id: RestaurantId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuItem {
    pub id: MenuItemId,
    pub restaurant_id: RestaurantId,
    pub name: String,
    pub price: Money,
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffCall {
    pub id: StaffCallId,
    pub restaurant_id: RestaurantId,
    pub table_id: TableId,
    pub message: Option<String>,
    pub at: Timestamp,
}

impl StaffCall {
    pub const MAX_MESSAGE_CHARS: usize = 200;

    pub fn new(
        table: &Table,
        message: Option<String>,
        at: Timestamp,
    ) -> Result<StaffCall, DomainError> {
        let message = match message {
            Some(mut message) => {
                check_text("message", &mut message, Self::MAX_MESSAGE_CHARS)?;
                Some(message)
            }
            None => None,
        };
        Ok(StaffCall {
            id: StaffCallId::generate(),
            restaurant_id: table.restaurant_id.clone(),
            table_id: table.id.clone(),
            message,
            at,
        })
    }
}

/// A restaurant as a client asks for it; `None` takes the default.
#[derive(Debug, Clone, Default)]
pub struct NewRestaurant {
    pub name: String,
    /// ISO 4217; defaults to [`DEFAULT_CURRENCY`].
    pub currency: Option<String>,
    /// An IANA name; defaults to [`TimeZone::default_for`] the currency.
    pub time_zone: Option<String>,
    /// `HH:MM`; defaults to [`BusinessDayStart::DEFAULT`].
    pub business_day_starts_at: Option<String>,
}

/// The longest restaurant name, in grapheme clusters.
pub const MAX_RESTAURANT_NAME: usize = 100;

/// Checks a new restaurant: `BadInput` for a blank or overlong name, an unknown currency or
/// time zone, or a start time that is not `HH:MM`.
pub fn validate_restaurant(input: NewRestaurant) -> Result<Restaurant, DomainError> {
    let name = check_name("name", &input.name, MAX_RESTAURANT_NAME)?;
    let currency = Currency::parse(input.currency.as_deref().unwrap_or(DEFAULT_CURRENCY))?;
    let time_zone = match input.time_zone.as_deref() {
        Some(zone) => TimeZone::parse(zone)?,
        None => TimeZone::default_for(&currency),
    };
    let day_starts_at = match input.business_day_starts_at.as_deref() {
        Some(start) => BusinessDayStart::parse(start)?,
        None => BusinessDayStart::DEFAULT,
    };
    Ok(Restaurant {
        id: RestaurantId::generate(),
        name,
        currency,
        time_zone,
        day_starts_at,
    })
}

/// A change to a restaurant's settings as a client asks for it: only what is given changes.
#[derive(Debug, Clone, Default)]
pub struct RestaurantSettings {
    pub name: Option<String>,
    /// An IANA name.
    pub time_zone: Option<String>,
    /// `HH:MM`.
    pub business_day_starts_at: Option<String>,
}

/// A checked [`RestaurantSettings`], to apply to the restaurant as it is when locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsChange {
    name: Option<String>,
    time_zone: Option<TimeZone>,
    day_starts_at: Option<BusinessDayStart>,
}

impl SettingsChange {
    /// Checks each given field with the rules of [`validate_restaurant`]; `BadInput` else.
    pub fn validate(input: RestaurantSettings) -> Result<Self, DomainError> {
        Ok(Self {
            name: input
                .name
                .map(|name| check_name("name", &name, MAX_RESTAURANT_NAME))
                .transpose()?,
            time_zone: input
                .time_zone
                .as_deref()
                .map(TimeZone::parse)
                .transpose()?,
            day_starts_at: input
                .business_day_starts_at
                .as_deref()
                .map(BusinessDayStart::parse)
                .transpose()?,
        })
    }

    /// The restaurant with the given fields changed and the rest as they were.
    pub fn apply(&self, restaurant: &Restaurant) -> Restaurant {
        Restaurant {
            id: restaurant.id.clone(),
            name: self.name.clone().unwrap_or_else(|| restaurant.name.clone()),
            currency: restaurant.currency.clone(),
            time_zone: self
                .time_zone
                .clone()
                .unwrap_or_else(|| restaurant.time_zone.clone()),
            day_starts_at: self.day_starts_at.unwrap_or(restaurant.day_starts_at),
        }
    }
}

pub fn validate_table_name(name: &str) -> Result<String, DomainError> {
    check_name("name", name, 50)
}

pub struct NewMenuItem {
    pub name: String,
    pub price: i64,
    pub available: Option<bool>,
}

pub fn validate_menu_item(
    restaurant: &Restaurant,
    input: NewMenuItem,
) -> Result<MenuItem, DomainError> {
    let name = check_name("name", &input.name, 100)?;
    if !(0..=Money::MAX_AMOUNT).contains(&input.price) {
        return Err(DomainError::BadInput(format!(
            "price must be between 0 and {} minor units",
            Money::MAX_AMOUNT
        )));
    }
    Ok(MenuItem {
        id: MenuItemId::generate(),
        restaurant_id: restaurant.id.clone(),
        name,
        price: Money::new(input.price, restaurant.currency.clone()),
        available: input.available.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restaurant() -> Restaurant {
        validate_restaurant(NewRestaurant {
            name: " Bistro ".into(),
            ..NewRestaurant::default()
        })
        .unwrap()
    }

    #[test]
    fn restaurants_default_to_yen_and_trim_names() {
        let r = restaurant();
        assert_eq!(r.currency.as_str(), "JPY");
        assert_eq!(r.name, "Bistro");
        assert!(validate_restaurant(NewRestaurant {
            name: "  ".into(),
            ..NewRestaurant::default()
        })
        .is_err());
        assert!(validate_restaurant(NewRestaurant {
            name: "x".into(),
            currency: Some("yen".into()),
            ..NewRestaurant::default()
        })
        .is_err());
    }

    #[test]
    fn menu_prices_are_bounded() {
        let r = restaurant();
        let item = |price| {
            validate_menu_item(
                &r,
                NewMenuItem {
                    name: "Ramen".into(),
                    price,
                    available: None,
                },
            )
        };
        assert!(item(0).unwrap().available);
        assert!(item(-1).is_err());
        assert!(item(Money::MAX_AMOUNT + 1).is_err());
    }

    #[test]
    fn staff_call_messages_refuse_control_characters() {
        let table = Table {
            id: TableId::generate(),
            restaurant_id: restaurant().id,
            name: "T1".into(),
        };
        assert!(StaffCall::new(&table, Some("water please".into()), Timestamp(0)).is_ok());
        assert!(StaffCall::new(&table, Some("bell\u{7}".into()), Timestamp(0)).is_err());
        assert!(StaffCall::new(&table, Some("x".repeat(201)), Timestamp(0)).is_err());
    }
}
