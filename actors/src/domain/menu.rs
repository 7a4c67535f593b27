use serde::{Deserialize, Serialize};

use super::{
    check_name, check_text, Currency, DomainError, MenuItemId, Money, RestaurantId, StaffCallId,
    TableId, Timestamp,
};

pub const DEFAULT_CURRENCY: &str = "JPY";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restaurant {
    pub id: RestaurantId,
    pub name: String,
    pub currency: Currency,
    /// Offset of the restaurant's local time from UTC; decides when its business day turns.
    pub utc_offset_minutes: i32,
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

pub struct NewRestaurant {
    pub name: String,
    pub currency: Option<String>,
}

pub fn validate_restaurant(input: NewRestaurant) -> Result<Restaurant, DomainError> {
    let name = check_name("name", &input.name, 100)?;
    let currency = Currency::parse(input.currency.as_deref().unwrap_or(DEFAULT_CURRENCY))?;
    Ok(Restaurant {
        id: RestaurantId::generate(),
        name,
        currency,
        utc_offset_minutes: 0,
    })
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
            currency: None,
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
            currency: None
        })
        .is_err());
        assert!(validate_restaurant(NewRestaurant {
            name: "x".into(),
            currency: Some("yen".into())
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
